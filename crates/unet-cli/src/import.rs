//! PyTorch weights into a model directory: `unet import`.

use std::path::Path;

use burn::tensor::Device;
use unet::{UNetConfig, load_pytorch_weights};

use crate::config::{FORMAT, Preprocess, RunConfig};
use crate::error::CliError;
use crate::model_dir;

/// Reads a state dict of the PyTorch reference U-Net
/// (`shared/golden/unet/unet_reference.py`, `.safetensors` or `.pt`) whose
/// architecture is `model`, and writes a model directory `out` that
/// `predict` and `eval` take.
pub fn import(weights: &Path, model: UNetConfig, out: &Path) -> Result<RunConfig, CliError> {
    let unet = load_pytorch_weights(model.try_init(&Device::flex())?, weights)?;
    let config = RunConfig {
        format: FORMAT.to_string(),
        model,
        preprocess: Preprocess::default(),
        training: None,
        imported_from: Some(weights.to_path_buf()),
    };
    model_dir::save(out, &config, unet)?;
    Ok(config)
}
