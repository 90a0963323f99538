//! The run configuration, saved as `config.json` in every model directory:
//! the network, how images enter it, and (for trained models) the training
//! run that produced it.

use std::path::PathBuf;

use burn::tensor::Device;
use serde::{Deserialize, Serialize};
use unet::UNetConfig;

use crate::backend::BackendKind;
use crate::precision::Precision;
use imaging::{BorderWeight, ElasticConfig, IntensityConfig};

use crate::data::{Augmentation, DataError, MaskKind, Normalize};
use crate::error::RunError;

/// The version of the `config.json` layout.
pub const FORMAT: &str = "unet-run/1";
/// Images of the default synthetic data (training and validation).
pub const SYNTHETIC_SAMPLES: usize = 800;
/// Side of the default synthetic images.
pub const SYNTHETIC_SIZE: usize = 64;
/// The most synthetic images a run may ask for.
pub const MAX_SAMPLES: usize = 10_000_000;
/// The largest image side `--image-size` may ask for.
pub const MAX_SIDE: usize = 1 << 16;
/// The most epochs a run may ask for.
pub const MAX_EPOCHS: usize = 1_000_000;
/// The most classes: masks hold 8-bit class indices.
pub const MAX_CLASSES: usize = 256;
/// Most devices `--devices` may name.
pub const MAX_DEVICES: usize = 64;

/// A device list as `--devices` takes it: `0,1`.
pub fn devices_text(list: &[usize]) -> String {
    let numbers: Vec<String> = list.iter().map(usize::to_string).collect();
    numbers.join(",")
}

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
    /// The weights file a model was imported from, for imported models (as
    /// text: a name that is not UTF-8 has its odd bytes replaced).
    pub imported_from: Option<String>,
}

/// How image and mask files become the network's input and target, the
/// same in `train`, `predict` and `eval`: images decoded as grayscale or RGB
/// (the model's `in_channels`) at their own bit depth, resized to
/// `resize x resize` when set (masks with nearest-neighbour, and predictions
/// back to the image's size), normalised by `normalize`; masks read as
/// `masks` says.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct Preprocess {
    /// Square size images are resized to; `None` keeps their size.
    pub resize: Option<usize>,
    /// How pixel values are scaled (default: divided by the bit depth's
    /// largest value, 255 for 8-bit images).
    #[serde(default)]
    pub normalize: Normalize,
    /// What mask values mean (default: class indices).
    #[serde(default)]
    pub masks: MaskKind,
}

impl Preprocess {
    /// Images kept at their size, divided by their bit depth's largest value;
    /// masks of class indices.
    pub fn resized(resize: Option<usize>) -> Self {
        Self {
            resize,
            ..Self::default()
        }
    }
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
    /// `dir/images/*.png|jpg|tif` and `dir/masks/<stem>.png` (or
    /// `dir/labels/<stem>.png`).
    Folder {
        /// The dataset folder (absolute, as `unet train` records it).
        dir: PathBuf,
        /// The names (stems) of its images in name order, as a run found
        /// them at its start: the train/validation split is made of these,
        /// so a resumed run and `eval --validation-only` check that the
        /// folder still holds them. `None` in configurations written without.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        images: Option<Vec<String>>,
    },
}

/// The loss a run minimises.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Loss {
    /// Cross-entropy plus soft Dice over the foreground classes.
    #[default]
    CeDice,
    /// Cross-entropy.
    Ce,
    /// Focal loss: cross-entropy scaled by `(1 - p_t)^gamma`.
    Focal {
        /// The focusing exponent (2 in the paper that introduced it).
        gamma: f32,
    },
    /// Tversky loss: a Dice that weighs false positives by `alpha` and
    /// false negatives by `beta`.
    Tversky {
        /// Weight of false positives.
        alpha: f32,
        /// Weight of false negatives.
        beta: f32,
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
    /// Elastic deformation of training samples (the U-Net paper's).
    #[serde(default)]
    pub elastic: Option<ElasticConfig>,
    /// Brightness, contrast, gamma and noise changes of training samples.
    #[serde(default)]
    pub intensity: Option<IntensityConfig>,
    /// What the network is trained to minimise.
    #[serde(default)]
    pub loss: Loss,
    /// The U-Net paper's loss weight map (class balance plus a border term
    /// between touching objects), from instance labels: weights the
    /// cross-entropy and focal losses.
    #[serde(default)]
    pub border_weight: Option<BorderWeight>,
    /// A weight per class for the cross-entropy and focal losses.
    #[serde(default)]
    pub class_weights: Option<Vec<f32>>,
    /// The backend trained on.
    pub backend: BackendKind,
    /// The GPU index for `wgpu` (`None`: the default adapter).
    pub gpu: Option<usize>,
    /// Data-parallel training on these devices of `backend` (`--devices`):
    /// each takes an equal share of every batch, and their gradients are
    /// summed into one optimizer step. `None` is one device (`gpu`).
    #[serde(default)]
    pub devices: Option<Vec<usize>>,
    /// The float type the network computes in (`--precision`; the weights
    /// and the optimizer stay `f32`).
    #[serde(default)]
    pub precision: Precision,
}

impl TrainingConfig {
    /// The augmentations of training samples.
    pub fn augmentation(&self) -> Augmentation {
        Augmentation {
            flips: self.augment,
            elastic: self.elastic,
            intensity: self.intensity,
        }
    }

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
            elastic: None,
            intensity: None,
            loss: Loss::default(),
            border_weight: None,
            class_weights: None,
            backend: BackendKind::Flex,
            gpu: None,
            devices: None,
            precision: Precision::F32,
        }
    }

    /// The run's devices ([`BackendKind::open_all`], the main one first),
    /// each checked to compute in the run's precision.
    pub fn open_devices(&self) -> Result<Vec<Device>, RunError> {
        let devices = self.backend.open_all(self.devices.as_deref(), self.gpu)?;
        for device in &devices {
            self.precision.check_device(self.backend, device)?;
        }
        Ok(devices)
    }

    /// The number of devices trained on: one unless `--devices` names more.
    pub fn device_count(&self) -> usize {
        self.devices.as_ref().map_or(1, |list| list.len().max(1))
    }

    /// Checks `--devices` against itself, `--device`, the backend and the
    /// batch size, which every device must get an equal share of.
    fn validate_devices(&self) -> Result<(), RunError> {
        let Some(list) = &self.devices else {
            return Ok(());
        };
        let shown = devices_text(list);
        if !(1..=MAX_DEVICES).contains(&list.len()) {
            let expected = format!("1 to {MAX_DEVICES} device numbers");
            return Err(RunError::option("--devices", shown, &expected));
        }
        let mut sorted = list.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() != list.len() {
            return Err(RunError::option(
                "--devices",
                shown,
                "distinct device numbers (each device named once)",
            ));
        }
        if let Some(gpu) = self.gpu {
            return Err(RunError::option(
                "--devices",
                shown,
                &format!("given without --device {gpu} (one or the other)"),
            ));
        }
        if self.backend == BackendKind::Ndarray {
            return Err(RunError::option(
                "--devices",
                shown,
                "used with --backend wgpu, vulkan or flex (ndarray trains on one device)",
            ));
        }
        if !self.batch_size.is_multiple_of(list.len()) {
            return Err(RunError::option(
                "--batch-size",
                self.batch_size,
                &format!(
                    "a multiple of the {} devices of --devices {shown} (each device takes an equal share of a batch)",
                    list.len()
                ),
            ));
        }
        Ok(())
    }

    /// Checks the loss settings against the class count.
    fn validate_loss(&self, classes: usize) -> Result<(), RunError> {
        if let Some(weights) = &self.class_weights
            && (weights.len() != classes || !weights.iter().all(|w| w.is_finite() && *w > 0.0))
        {
            return Err(RunError::option(
                "--class-weights",
                format!("{weights:?}"),
                &format!("{classes} positive numbers, one per class"),
            ));
        }
        if let Some(border) = &self.border_weight
            && !(border.w0.is_finite()
                && border.w0 >= 0.0
                && border.sigma.is_finite()
                && border.sigma > 0.0)
        {
            return Err(RunError::option(
                "--border-weight",
                format!("w0 {} sigma {}", border.w0, border.sigma),
                "w0 at least 0 and sigma above 0",
            ));
        }
        if let Some(elastic) = &self.elastic
            && !((1..=64).contains(&elastic.grid)
                && elastic.sigma.is_finite()
                && elastic.sigma >= 0.0)
        {
            return Err(RunError::option(
                "--elastic",
                format!("grid {} sigma {}", elastic.grid, elastic.sigma),
                "a grid of 1 to 64 points and a sigma at least 0",
            ));
        }
        if let Loss::Tversky { .. } = self.loss
            && (self.class_weights.is_some() || self.border_weight.is_some())
        {
            // The Tversky index is a ratio of sums over the image: it has no
            // per-pixel or per-class weights to apply them to.
            let option = if self.class_weights.is_some() {
                "--class-weights"
            } else {
                "--border-weight"
            };
            return Err(RunError::option(
                "--loss",
                "tversky",
                &format!(
                    "a cross-entropy loss (ce, ce+dice or focal) with {option}, which tversky has no weights for"
                ),
            ));
        }
        match self.loss {
            Loss::Focal { gamma } if !(gamma.is_finite() && gamma >= 0.0) => {
                Err(RunError::option("--focal-gamma", gamma, "at least 0"))
            }
            Loss::Tversky { alpha, beta }
                if !(alpha.is_finite()
                    && beta.is_finite()
                    && alpha >= 0.0
                    && beta >= 0.0
                    && alpha + beta > 0.0) =>
            {
                Err(RunError::option(
                    "--tversky",
                    format!("{alpha},{beta}"),
                    "two weights at least 0, not both 0",
                ))
            }
            _ => Ok(()),
        }
    }

    /// Checks the values a run cannot start with.
    pub fn validate(&self) -> Result<(), RunError> {
        let fail = |name: &str, value: String, expected: &str| {
            Err(RunError::Option {
                name: name.to_string(),
                value,
                expected: expected.to_string(),
            })
        };
        if !(1..=MAX_EPOCHS).contains(&self.epochs) {
            return fail(
                "--epochs",
                self.epochs.to_string(),
                &format!("1 to {MAX_EPOCHS}"),
            );
        }
        if self.batch_size == 0 {
            return fail("--batch-size", "0".into(), "at least 1");
        }
        if self.epoch_samples == Some(0) {
            return fail("--epoch-samples", "0".into(), "at least 1");
        }
        self.validate_devices()?;
        self.precision.check_backend(self.backend)?;
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
            if !(2..=MAX_SAMPLES).contains(&samples) {
                return fail(
                    "--samples",
                    samples.to_string(),
                    &format!("2 to {MAX_SAMPLES}"),
                );
            }
            if !(8..=MAX_SIDE).contains(&size) {
                return fail(
                    "--image-size",
                    size.to_string(),
                    &format!("8 to {MAX_SIDE}"),
                );
            }
        }
        Ok(())
    }
}

impl RunConfig {
    /// Checks everything a run cannot start with (before any data is read):
    /// the training settings, the network, the class count, the preprocessing.
    pub fn validate(&self) -> Result<(), RunError> {
        if let Some(training) = &self.training {
            training.validate()?;
        }
        self.model.validate()?;
        let channels = self.model.in_channels;
        if !matches!(channels, 1 | 3) {
            return Err(DataError::Channels { channels }.into());
        }
        let classes = self.model.num_classes;
        if !(2..=MAX_CLASSES).contains(&classes) {
            return Err(RunError::option(
                "--classes",
                classes,
                &format!(
                    "2 to {MAX_CLASSES} (background and at least one class; masks hold 8-bit class indices)"
                ),
            ));
        }
        if let Some(side) = self.preprocess.resize
            && !(1..=MAX_SIDE).contains(&side)
        {
            return Err(RunError::option(
                "--image-size",
                side,
                &format!("1 to {MAX_SIDE}"),
            ));
        }
        self.preprocess
            .normalize
            .validate()
            .map_err(|reason| RunError::option("--normalize", "percentile", &reason))?;
        if let Some(training) = &self.training {
            training.validate_loss(classes)?;
        }
        if self.preprocess.masks == MaskKind::Instances && classes != 2 {
            return Err(DataError::InstancesNeedTwoClasses { classes }.into());
        }
        Ok(())
    }

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
    pub fn training(&self) -> Result<&TrainingConfig, RunError> {
        self.training.as_ref().ok_or(RunError::NotTrainable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_json_round_trips() {
        let config = RunConfig::trained(
            UNetConfig::new(3, 4).with_depth(3),
            Preprocess::resized(Some(96)),
            TrainingConfig {
                data: DataSource::Folder {
                    dir: "data/x".into(),
                    images: Some(vec!["a".into(), "b".into()]),
                },
                backend: BackendKind::Wgpu,
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
    fn device_lists_round_trip_and_old_files_have_none() {
        let mut config = RunConfig::trained(
            UNetConfig::new(1, 2),
            Preprocess::resized(None),
            TrainingConfig {
                devices: Some(vec![0, 1]),
                ..TrainingConfig::synthetic()
            },
        );
        let json = serde_json::to_string(&config).unwrap();
        assert!(json.contains("\"devices\":[0,1]"), "{json}");
        assert_eq!(serde_json::from_str::<RunConfig>(&json).unwrap(), config);
        // A config.json written before `devices` existed still loads.
        config.training.as_mut().unwrap().devices = None;
        let old = serde_json::to_string(&config)
            .unwrap()
            .replace(",\"devices\":null", "");
        assert!(!old.contains("devices"), "{old}");
        assert_eq!(serde_json::from_str::<RunConfig>(&old).unwrap(), config);
    }

    #[test]
    fn device_lists_are_checked_against_the_other_settings() {
        let with = |devices: Vec<usize>, change: fn(&mut TrainingConfig)| {
            let mut training = TrainingConfig {
                devices: Some(devices),
                ..TrainingConfig::synthetic()
            };
            change(&mut training);
            training.validate().err().map(|err| err.to_string())
        };
        assert_eq!(with(vec![0, 1], |_| {}), None);
        assert_eq!(
            with(vec![0, 0], |_| {}).unwrap(),
            "--devices 0,0: must be distinct device numbers (each device named once)"
        );
        assert_eq!(
            with(vec![], |_| {}).unwrap(),
            "--devices : must be 1 to 64 device numbers"
        );
        assert_eq!(
            with(vec![0, 1], |t| t.gpu = Some(0)).unwrap(),
            "--devices 0,1: must be given without --device 0 (one or the other)"
        );
        assert_eq!(
            with(vec![0, 1], |t| t.backend = BackendKind::Ndarray).unwrap(),
            "--devices 0,1: must be used with --backend wgpu, vulkan or flex (ndarray trains on one device)"
        );
        assert_eq!(
            with(vec![0, 1], |t| t.batch_size = 3).unwrap(),
            "--batch-size 3: must be a multiple of the 2 devices of --devices 0,1 \
             (each device takes an equal share of a batch)"
        );
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
