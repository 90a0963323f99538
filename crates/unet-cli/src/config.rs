//! The run configuration, saved as `config.json` in every model directory:
//! the network, how images enter it, and (for trained models) the training
//! run that produced it.

use std::path::PathBuf;

use burn::tensor::{Device, DeviceKind};
use layers::Backend;
use serde::{Deserialize, Serialize};
use unet::UNetConfig;

use crate::error::CliError;

/// The version of the `config.json` layout.
pub const FORMAT: &str = "unet-run/1";
/// Images of the default synthetic data (training and validation).
pub const SYNTHETIC_SAMPLES: usize = 800;
/// Side of the default synthetic images.
pub const SYNTHETIC_SIZE: usize = 64;

/// Everything needed to rebuild a model and feed it images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    /// Always [`FORMAT`].
    pub format: String,
    /// The network (`in_channels` tells grayscale (1) from RGB (3) input).
    pub model: UNetConfig,
    /// How pixels are prepared: see [`Preprocess`].
    pub preprocess: Preprocess,
    /// The training run, for trained models; `None` for imported ones.
    pub training: Option<TrainingConfig>,
    /// The weights file a model was imported from, for imported models.
    pub imported_from: Option<PathBuf>,
}

/// How an image file becomes the network's input, the same in `train`,
/// `predict` and `eval`: decoded as grayscale or RGB (the model's
/// `in_channels`), resized to `resize x resize` when set (masks with
/// nearest-neighbour, and predictions back to the image's size), pixel
/// values divided by 255, nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Preprocess {
    /// Square size images are resized to; `None` keeps their size.
    pub resize: Option<usize>,
}

/// Where training images come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DataSource {
    /// Generated shapes ([`crate::data::SyntheticDataset`]).
    Synthetic {
        /// Images in all (training and validation).
        samples: usize,
        /// Their side in pixels.
        size: usize,
    },
    /// `dir/images/*.png|jpg` and `dir/masks/<stem>.png`.
    Folder {
        /// The dataset folder.
        dir: PathBuf,
    },
}

/// The training run's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingConfig {
    /// The data.
    pub data: DataSource,
    /// Epochs in all (a resumed run continues up to this).
    pub epochs: usize,
    /// Samples per batch.
    pub batch_size: usize,
    /// Training samples drawn per epoch (the training split cycled through,
    /// reshuffled and re-augmented each pass); `None` is one pass.
    pub epoch_samples: Option<usize>,
    /// Adam's initial learning rate, annealed along a cosine to `min_lr`.
    pub lr: f64,
    /// The learning rate at the last step.
    pub min_lr: f64,
    /// Share of the data held out for validation.
    pub val_fraction: f64,
    /// Seeds everything: the split, the synthetic data, initial weights,
    /// order, augmentation, dropout.
    pub seed: u64,
    /// Random flips and 90-degree rotations of training samples.
    pub augment: bool,
    /// The backend trained on.
    pub backend: Backend,
    /// The GPU index for `wgpu` (`None`: the default adapter).
    pub gpu: Option<usize>,
}

impl TrainingConfig {
    /// The default run: the synthetic data on the default CPU backend.
    pub fn synthetic() -> Self {
        Self {
            data: DataSource::Synthetic {
                samples: SYNTHETIC_SAMPLES,
                size: SYNTHETIC_SIZE,
            },
            epochs: 8,
            batch_size: 8,
            epoch_samples: None,
            lr: 2e-3,
            min_lr: 1e-5,
            val_fraction: 0.2,
            seed: 42,
            augment: true,
            backend: Backend::Flex,
            gpu: None,
        }
    }

    /// Checks the values a run cannot start with.
    pub fn validate(&self) -> Result<(), CliError> {
        let fail = |name: &str, value: String, expected: &str| {
            Err(CliError::Option {
                name: name.to_string(),
                value,
                expected: expected.to_string(),
            })
        };
        if self.epochs == 0 {
            return fail("--epochs", "0".into(), "at least 1");
        }
        if self.batch_size == 0 {
            return fail("--batch-size", "0".into(), "at least 1");
        }
        if self.epoch_samples == Some(0) {
            return fail("--epoch-samples", "0".into(), "at least 1");
        }
        if !(self.lr > 0.0 && self.lr <= 1.0) {
            return fail("--lr", self.lr.to_string(), "in (0, 1]");
        }
        if !(self.min_lr >= 0.0 && self.min_lr <= self.lr) {
            return fail("--min-lr", self.min_lr.to_string(), "in [0, --lr]");
        }
        if !(self.val_fraction > 0.0 && self.val_fraction < 1.0) {
            return fail("--val-fraction", self.val_fraction.to_string(), "in (0, 1)");
        }
        if let DataSource::Synthetic { samples, size } = self.data {
            if samples < 2 {
                return fail("--samples", samples.to_string(), "at least 2");
            }
            if size < 8 {
                return fail("--image-size", size.to_string(), "at least 8");
            }
        }
        Ok(())
    }
}

/// The device of `backend`; for `wgpu`, GPU number `gpu` (discrete GPUs
/// first, as wgpu lists them) or the default adapter.
pub fn device(backend: Backend, gpu: Option<usize>) -> Device {
    match (backend, gpu) {
        (Backend::Wgpu, Some(index)) => Device::wgpu(DeviceKind::DiscreteGpu(index)),
        (backend, _) => backend.device(),
    }
}

impl RunConfig {
    /// A trained model's configuration.
    pub fn trained(model: UNetConfig, preprocess: Preprocess, training: TrainingConfig) -> Self {
        Self {
            format: FORMAT.to_string(),
            model,
            preprocess,
            training: Some(training),
            imported_from: None,
        }
    }

    /// The training settings.
    ///
    /// # Errors
    /// For an imported model, which has none.
    pub fn training(&self) -> Result<&TrainingConfig, CliError> {
        self.training.as_ref().ok_or(CliError::NotTrainable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_json_round_trips() {
        let config = RunConfig::trained(
            UNetConfig::new(3, 4).with_depth(3),
            Preprocess { resize: Some(96) },
            TrainingConfig {
                data: DataSource::Folder {
                    dir: "data/x".into(),
                },
                backend: Backend::Wgpu,
                gpu: Some(1),
                ..TrainingConfig::synthetic()
            },
        );
        let json = serde_json::to_string_pretty(&config).unwrap();
        assert!(json.contains("\"backend\": \"wgpu\""), "{json}");
        assert!(json.contains("\"kind\": \"folder\""), "{json}");
        assert_eq!(serde_json::from_str::<RunConfig>(&json).unwrap(), config);
    }

    #[test]
    fn impossible_settings_name_the_option() {
        let bad = TrainingConfig {
            lr: 0.0,
            ..TrainingConfig::synthetic()
        };
        assert_eq!(
            bad.validate().unwrap_err().to_string(),
            "--lr 0: must be in (0, 1]"
        );
        assert!(TrainingConfig::synthetic().validate().is_ok());
    }
}
