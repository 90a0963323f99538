//! Draws the pictures of the nuclei recipe in `docs/program.md`: the loss
//! weight map of a tile and a grid of augmented samples.
//!
//! ```text
//! cargo run --example recipe_figures
//! ```

use std::path::Path;

const NUCLEI: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/nuclei-dsb2018");
const IMAGES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/images");

fn main() -> Result<(), String> {
    let nuclei = Path::new(NUCLEI);
    for (name, figure) in [
        (
            "weight-map.png",
            unet_rs::figures::weight_map_figure(nuclei)?,
        ),
        (
            "augmentation.png",
            unet_rs::figures::augmentation_figure(nuclei)?,
        ),
    ] {
        let path = Path::new(IMAGES).join(name);
        figure
            .save(&path)
            .map_err(|err| format!("{}: {err}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
