//! Training through the library: the loss falls on every backend, and a loss
//! that turns NaN stops the run with a clear error, keeping the last good epoch.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use burn::data::dataset::{Dataset, DatasetError};
use unet::UNetConfig;
use unet_train::BackendKind;
use unet_train::RunError;
use unet_train::config::{DataSource, Preprocess, RunConfig, TrainingConfig};
use unet_train::data::{Sample, SyntheticDataset};
use unet_train::model_dir;
use unet_train::train::{Progress, RunData, train, train_on};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("unet-training-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn tiny(backend: BackendKind, epochs: usize) -> RunConfig {
    RunConfig::trained(
        UNetConfig::new(1, 2).with_base_width(4).with_depth(2),
        Preprocess::default(),
        TrainingConfig {
            data: DataSource::Synthetic {
                samples: 20,
                size: 16,
            },
            epochs,
            batch_size: 4,
            lr: 1e-2,
            backend,
            ..TrainingConfig::synthetic()
        },
    )
}

fn two_epochs_lower_the_loss(backend: BackendKind) {
    let dir = scratch(backend.name());
    let report = train(&tiny(backend, 2), &dir, false, Progress::Quiet).unwrap();
    let [first, second] = [report.history[0], report.history[1]];
    assert!(
        second.train_loss < first.train_loss,
        "{backend}: training loss {} then {}",
        first.train_loss,
        second.train_loss
    );
    assert!(second.val_loss.is_finite() && (0.0..=1.0).contains(&second.val_dice));
    // The run directory is a model directory.
    model_dir::load(&dir, &backend.device()).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn two_epochs_lower_the_loss_on_flex() {
    two_epochs_lower_the_loss(BackendKind::Flex);
}

#[test]
fn two_epochs_lower_the_loss_on_ndarray() {
    two_epochs_lower_the_loss(BackendKind::Ndarray);
}

#[test]
fn two_epochs_lower_the_loss_on_wgpu_and_vulkan() {
    for backend in BackendKind::GPUS {
        two_epochs_lower_the_loss(backend);
    }
}

/// The U-Net paper's recipe (the border weight map from the synthetic
/// shapes' instance labels, elastic deformation) with intensity changes and
/// class weights, through the same code on every backend: two epochs lower
/// the loss.
fn the_recipe_trains(backend: BackendKind) {
    let dir = scratch(&format!("recipe-{}", backend.name()));
    let mut config = tiny(backend, 2);
    let training = config.training.as_mut().unwrap();
    training.border_weight = Some(imaging::BorderWeight::default());
    training.elastic = Some(imaging::ElasticConfig::default());
    training.intensity = Some(imaging::IntensityConfig::default());
    training.class_weights = Some(vec![1.0, 2.0]);
    let report = train(&config, &dir, false, Progress::Quiet).unwrap();
    let [first, second] = [report.history[0], report.history[1]];
    assert!(
        second.train_loss < first.train_loss,
        "{backend}: {first:?} then {second:?}"
    );
    assert!(second.val_loss.is_finite());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_recipe_trains_on_flex() {
    the_recipe_trains(BackendKind::Flex);
}

#[test]
fn the_recipe_trains_on_ndarray() {
    the_recipe_trains(BackendKind::Ndarray);
}

#[test]
fn the_recipe_trains_on_wgpu() {
    the_recipe_trains(BackendKind::Wgpu);
}

/// Synthetic samples whose images turn NaN after `clean` reads.
struct TurnsNan {
    inner: SyntheticDataset,
    reads: AtomicUsize,
    clean: usize,
}

impl Dataset<Sample> for TurnsNan {
    fn get(&self, index: usize) -> Result<Sample, DatasetError> {
        let mut sample = self.inner.get(index)?;
        if self.reads.fetch_add(1, Ordering::SeqCst) >= self.clean {
            sample.image.fill(f32::NAN);
        }
        Ok(sample)
    }

    fn len(&self) -> usize {
        self.inner.len()
    }
}

#[test]
fn a_nan_loss_stops_training_and_keeps_the_last_good_epoch() {
    let dir = scratch("nan");
    let config = tiny(BackendKind::Flex, 4);
    let dataset = TurnsNan {
        inner: SyntheticDataset::new(20, 16, 2, 1, 42).unwrap(),
        reads: AtomicUsize::new(0),
        // The first epoch (16 training and 4 validation reads) and one more
        // read for the input-size check are clean.
        clean: 21,
    };
    let data = RunData::split(Arc::new(dataset), 0.2, 42);
    let err = train_on(&config, data, &dir, false, Progress::Quiet).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, RunError::NonFiniteLoss { .. }), "{message}");
    assert!(
        message.starts_with("training stopped: the loss became NaN at training iteration"),
        "{message}"
    );
    assert!(
        message.contains("the last good checkpoint (epoch 1)"),
        "{message}"
    );
    assert!(dir.join("checkpoint/model-1.bpk").is_file());
    assert!(!dir.join("checkpoint/model-2.bpk").exists());
    // The kept model loads and is epoch 1's.
    model_dir::load(&dir, &BackendKind::Flex.device()).unwrap();
    let metrics = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    assert_eq!(
        metrics.lines().count(),
        2,
        "a header and epoch 1:\n{metrics}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
