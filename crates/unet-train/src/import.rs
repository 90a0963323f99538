//! PyTorch weights into a model directory: `unet import`.

use std::path::Path;

use burn::tensor::Device;
use unet::{UNetConfig, load_pytorch_weights};

use crate::config::{FORMAT, Preprocess, RunConfig};
use crate::error::RunError;
use crate::model_dir;

/// Reads a state dict of the PyTorch reference U-Net
/// (`shared/golden/unet/unet_reference.py`, `.safetensors` or `.pt`) whose
/// architecture is `model`, and writes a model directory `out` that
/// `predict` and `eval` take.
///
/// `out` must be new or empty: a model directory, a training run or any
/// other file there is never written over.
pub fn import(weights: &Path, model: UNetConfig, out: &Path) -> Result<RunConfig, RunError> {
    if out.exists() {
        let empty = std::fs::read_dir(out)
            .map(|mut entries| entries.next().is_none())
            .unwrap_or(false);
        if !empty {
            return Err(RunError::option(
                "--out",
                out.display(),
                "a new or empty folder (it holds files, which import does not write over)",
            ));
        }
    }
    let unet = load_pytorch_weights(model.try_init(&Device::flex())?, weights)?;
    let config = RunConfig {
        format: FORMAT.to_string(),
        model,
        preprocess: Preprocess::default(),
        training: None,
        imported_from: Some(weights.to_string_lossy().into_owned()),
    };
    config.validate()?;
    model_dir::save(out, &config, unet)?;
    Ok(config)
}
