//! Loading weights trained in PyTorch, through Burn's own store machinery.

use std::path::Path;

use burn::store::{
    ApplyError, ApplyResult, ModuleSnapshot, PyTorchToBurnAdapter, PytorchStore, SafetensorsStore,
};

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{DType, Tensor};

use crate::error::UNetError;
use crate::model::UNet;

/// How the reference's parameter names (`unet_reference.py`) map onto this
/// crate's: its `DoubleConv` has `conv1, bn1, conv2, bn2`, ours a list of units.
/// Enum variant names (`Dense`, `Batch`, `Transposed`) are skipped by the store,
/// and batch norm's `weight`/`bias` become `gamma`/`beta` (PyTorch adapter).
pub const PYTORCH_KEY_MAP: [(&str, &str); 4] = [
    (r"\.conv1\.", ".units.0.conv."),
    (r"\.bn1\.", ".units.0.norm."),
    (r"\.conv2\.", ".units.1.conv."),
    (r"\.bn2\.", ".units.1.norm."),
];

/// PyTorch bookkeeping that has no counterpart in Burn.
fn ignorable(key: &str) -> bool {
    key.ends_with("num_batches_tracked")
}

/// Loads a state dict of the PyTorch reference U-Net (`.safetensors`, or a
/// `torch.save`d `.pt`/`.pth`) into `model`, whose configuration must match:
/// every tensor must be present, with the right shape, and nothing else.
///
/// Errors name the file and, for a shape mismatch, the tensor and both shapes.
pub fn load_pytorch_weights(mut model: UNet, path: impl AsRef<Path>) -> Result<UNet, UNetError> {
    let path = path.as_ref();
    let fail = |reason: String| UNetError::Weights {
        path: path.display().to_string(),
        reason,
    };
    if !path.is_file() {
        return Err(fail("no such file".into()));
    }
    let extension = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let result = match extension {
        "safetensors" => {
            let mut store = SafetensorsStore::from_file(path)
                .with_from_adapter(PyTorchToBurnAdapter)
                .skip_enum_variants(true)
                .validate(false)
                .allow_partial(true);
            for (from, to) in PYTORCH_KEY_MAP {
                store = store.with_key_remapping(from, to);
            }
            model
                .load_from(&mut store)
                .map_err(|err| fail(err.to_string()))?
        }
        "pt" | "pth" => {
            let mut store = PytorchStore::from_file(path)
                .skip_enum_variants(true)
                .validate(false)
                .allow_partial(true);
            for (from, to) in PYTORCH_KEY_MAP {
                store = store.with_key_remapping(from, to);
            }
            model
                .load_from(&mut store)
                .map_err(|err| fail(err.to_string()))?
        }
        other => {
            return Err(fail(format!(
                "unknown extension '{other}': expected .safetensors, .pt or .pth"
            )));
        }
    };
    check(&result).map_err(fail)?;
    Ok(model.into_f32())
}

/// Casts every float tensor of a module (parameters and running
/// statistics) to `f32`.
struct ToF32;

impl ModuleMapper for ToF32 {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        param.map(|tensor| {
            if tensor.dtype() == DType::F32 {
                tensor
            } else {
                tensor.cast(DType::F32)
            }
        })
    }
}

impl UNet {
    /// The network with every weight and running statistic in `f32`, the
    /// precision the layers compute in: weights saved in half precision
    /// (F16, BF16) or in F64 load as any others.
    pub fn into_f32(self) -> Self {
        self.map(&mut ToF32)
    }
}

/// Turns an [`ApplyResult`] into the first problem it reports, if any.
fn check(result: &ApplyResult) -> Result<(), String> {
    if let Some(error) = result.errors.first() {
        return Err(match error {
            ApplyError::ShapeMismatch {
                path,
                expected,
                found,
            } => format!(
                "tensor '{path}' has shape {:?} in the file, but the model expects {:?}",
                &found[..],
                &expected[..]
            ),
            other => format!("{other:?}"),
        });
    }
    if let Some((path, _)) = result.missing.first() {
        return Err(format!(
            "tensor '{path}' is missing from the file ({} missing in all); does the configuration match the weights?",
            result.missing.len()
        ));
    }
    let unused: Vec<&String> = result.unused.iter().filter(|k| !ignorable(k)).collect();
    if let Some(path) = unused.first() {
        return Err(format!(
            "the file has tensor '{path}' that the model does not ({} such in all); does the configuration match the weights?",
            unused.len()
        ));
    }
    Ok(())
}
