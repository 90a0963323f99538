//! Prints the layer table of the default U-Net and what each option costs,
//! in parameters and forward FLOPs, for one 256x256 grayscale image with two
//! classes: the figures of `docs/unet.md`.
//!
//! ```text
//! cargo run --example unet_costs
//! ```

fn main() -> Result<(), unet::UNetError> {
    let (layer_table, option_costs) = unet_rs::unet_cost_report()?;
    println!("{layer_table}\n{option_costs}");
    Ok(())
}
