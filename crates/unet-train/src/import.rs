//! PyTorch weights into a model directory: `unet import`.

use std::path::Path;

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor};
use unet::{UNetConfig, UNetError, load_pytorch_weights};

use crate::config::{FORMAT, Preprocess, RunConfig};
use crate::error::RunError;
use crate::model_dir;

/// Reads a state dict of the PyTorch reference U-Net
/// (`shared/golden/unet/unet_reference.py`, `.safetensors` or `.pt`) whose
/// architecture is `model`, and writes a model directory `out` that
/// `predict` and `eval` take.
///
/// `out` must be new or empty (hidden files aside): a model directory, a
/// training run or any other file there is never written over.
pub fn import(weights: &Path, model: UNetConfig, out: &Path) -> Result<RunConfig, RunError> {
    model_dir::check_new_folder(out, "import")?;
    let config = RunConfig {
        format: FORMAT.to_string(),
        model: model.clone(),
        preprocess: Preprocess::default(),
        training: None,
        imported_from: Some(weights.to_string_lossy().into_owned()),
    };
    config.validate()?;
    let unet = load_pytorch_weights(model.try_init(&Device::flex())?, weights)?;
    let mut finite = NonFinite::default();
    unet.visit(&mut finite);
    if let Some(shape) = finite.first {
        return Err(UNetError::Weights {
            path: weights.display().to_string(),
            reason: match finite.count {
                1 => format!("a tensor of shape {shape:?} holds NaN or infinite values"),
                n => format!(
                    "{n} tensors hold NaN or infinite values (the first of shape {shape:?})"
                ),
            } + ": such a network predicts nothing",
        }
        .into());
    }
    model_dir::save(out, &config, unet)?;
    Ok(config)
}

/// The float tensors of a module (weights and running statistics) that
/// hold a NaN or an infinity: how many, and the shape of the first.
#[derive(Default)]
struct NonFinite {
    count: usize,
    first: Option<Vec<usize>>,
}

impl ModuleVisitor for NonFinite {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let tensor = param.val();
        let shape = tensor.dims().to_vec();
        let data = tensor.into_data().convert::<f32>();
        if !data.iter::<f32>().all(f32::is_finite) {
            self.count += 1;
            self.first.get_or_insert(shape);
        }
    }
}
