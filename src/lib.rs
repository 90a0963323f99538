//! Umbrella crate of the workspace: re-exports [`layers`] and [`unet`], and
//! generates the figures of the documentation (so that tests can check that
//! `docs/` shows what the code computes).
#![warn(missing_docs)]

pub mod figures;

pub use layers;
pub use unet;

use burn::tensor::Device;
use unet::{
    Block, Norm, UNetConfig, UNetError, UNetPadding, Upsampling, nearest_valid_input_sizes,
    output_size, summary,
};

/// The U-Net cost figures of `docs/unet.md`: the default network's layer
/// table, and a Markdown table of what each option costs in parameters and
/// FLOPs, for one 256x256 grayscale image with two classes.
pub fn unet_cost_report() -> Result<(String, String), UNetError> {
    let device = Device::flex();
    let base = UNetConfig::new(1, 2).with_base_width(64).with_depth(4);
    let layer_table = summary(&base.try_init(&device)?, [1, 1, 256, 256])?.to_string();

    let options: Vec<(&str, UNetConfig)> = vec![
        (
            "default (standard blocks, k2 s2 transposed conv, batch norm, same)",
            base.clone(),
        ),
        (
            "block: depthwise-separable",
            base.clone().with_block(Block::DepthwiseSeparable),
        ),
        (
            "block: grouped, 4 groups",
            base.clone().with_block(Block::Grouped { groups: 4 }),
        ),
        (
            "bottleneck dilations 1, 2, 4",
            base.clone().with_bottleneck_dilations(vec![1, 2, 4]),
        ),
        (
            "upsampling: zero insertion + conv (UpConv)",
            base.clone().with_upsampling(Upsampling::UpConv),
        ),
        (
            "upsampling: bilinear + conv 3x3",
            base.clone().with_upsampling(Upsampling::BilinearConv),
        ),
        (
            "upsampling: transposed k4 s2, bilinear init",
            base.clone().with_upsampling(Upsampling::TransposedConv {
                bilinear_init: true,
            }),
        ),
        (
            "norm: group norm, 8 groups",
            base.clone().with_norm(Norm::Group { groups: 8 }),
        ),
        (
            "norm: none (convolutions get a bias)",
            base.clone().with_norm(Norm::None),
        ),
    ];
    let mut costs = String::from("| option | parameters | GFLOPs |\n|---|---:|---:|\n");
    for (name, config) in options {
        let table = summary(&config.try_init(&device)?, [1, 1, 256, 256])?;
        costs += &format!(
            "| {name} | {} | {:.2} |\n",
            table.total_params(),
            table.total_flops() as f64 / 1e9
        );
    }
    let valid = base.clone().with_padding(UNetPadding::Valid);
    let size = match nearest_valid_input_sizes(&valid, 256) {
        [_, Some(above)] => above,
        [Some(below), None] => below,
        [None, None] => return Err(output_size(&valid, [256, 256]).unwrap_err()),
    };
    let table = summary(&valid.try_init(&device)?, [1, 1, size, size])?;
    costs += &format!(
        "| padding: valid ({size}x{size} in, {}x{} out) | {} | {:.2} |\n",
        table.output()[2],
        table.output()[3],
        table.total_params(),
        table.total_flops() as f64 / 1e9
    );
    Ok((layer_table, costs))
}

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

#[cfg(doctest)]
#[doc = include_str!("../docs/unet.md")]
struct UnetDocDoctests;
