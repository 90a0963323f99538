//! Mixed-precision training through the library: a small synthetic run in
//! `f16` or `bf16` ends where the same run in `f32` does. In a test binary of
//! its own, and one run at a time: a run's initial weights and augmentation
//! come from its device's seeded random stream, which runs beside each other
//! on the same device would share.

use std::path::PathBuf;
use std::sync::Mutex;

use burn::module::Module;
use burn::tensor::Device;
use unet::UNetConfig;
use unet_train::config::{DataSource, Preprocess, RunConfig, TrainingConfig};
use unet_train::history::EpochRecord;
use unet_train::precision::ScaleState;
use unet_train::train::Segmenter;
use unet_train::train::{Progress, train};
use unet_train::{BackendKind, Precision};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("unet-precision-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Runs take turns (see above).
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The last epoch of `config`'s run, one run at a time.
fn last_epoch(config: &RunConfig, name: &str) -> EpochRecord {
    let _turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let dir = scratch(name);
    let report = train(config, &dir, false, Progress::Quiet).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    *report.history.last().unwrap()
}

/// The small synthetic run of the precision tests: 96 images of 32x32, a
/// U-Net of base width 8 and depth 2, four epochs of 10 steps.
fn small(backend: BackendKind, precision: Precision) -> RunConfig {
    RunConfig::trained(
        UNetConfig::new(1, 2).with_base_width(8).with_depth(2),
        Preprocess::default(),
        TrainingConfig {
            data: DataSource::Synthetic {
                samples: 96,
                size: 32,
            },
            epochs: 4,
            batch_size: 8,
            lr: 1e-2,
            backend,
            precision,
            ..TrainingConfig::synthetic()
        },
    )
}

/// The small run in `precision` on `backend` ends within 0.01 Dice of the
/// same run (same seed, data and order) in `f32`, on the last epoch's
/// training batches and on the validation images.
fn half_precision_trains_as_f32(backend: BackendKind, precision: Precision) {
    let run = |p: Precision| {
        let name = format!("{}-{precision}-as-{p}", backend.name());
        last_epoch(&small(backend, p), &name)
    };
    let (full, half) = (run(Precision::F32), run(precision));
    assert!(
        full.val_dice > 0.8,
        "{backend}: the f32 run learnt: {full:?}"
    );
    let gaps = [
        (half.train_dice - full.train_dice).abs(),
        (half.val_dice - full.val_dice).abs(),
    ];
    assert!(
        gaps.iter().all(|&gap| gap <= 0.01),
        "{backend}: {precision} {half:?} against f32 {full:?}"
    );
}

#[test]
fn f16_trains_as_f32_on_flex() {
    half_precision_trains_as_f32(BackendKind::Flex, Precision::F16);
}

#[test]
fn bf16_trains_as_f32_on_flex() {
    half_precision_trains_as_f32(BackendKind::Flex, Precision::Bf16);
}

#[test]
fn f16_trains_as_f32_on_wgpu() {
    half_precision_trains_as_f32(BackendKind::Wgpu, Precision::F16);
}

/// The loss scale is part of the checkpoint: after one f16 epoch of 10
/// finite steps, the checkpoint's model holds the scale and the count of
/// good steps (a model made afresh has 0), which `--resume` loads.
#[test]
fn checkpoints_keep_the_loss_scale() {
    let config = small(BackendKind::Flex, Precision::F16);
    let mut one_epoch = config.clone();
    one_epoch.training.as_mut().unwrap().epochs = 1;
    let _turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let dir = scratch("checkpoint-scale");
    train(&one_epoch, &dir, false, Progress::Quiet).unwrap();
    let device = Device::flex();
    let fresh = Segmenter::of_run(&one_epoch, &device).unwrap();
    let state = |model: &Segmenter| model.loss_scale.as_ref().map(|scale| scale.state());
    assert_eq!(state(&fresh).map(|s| s.good_steps), Some(0));
    let saved = fresh
        .try_load_file(dir.join("checkpoint").join("model-1.bpk"))
        .unwrap();
    let expected = ScaleState {
        scale: 65536.0,
        good_steps: 10,
    };
    assert_eq!(state(&saved), Some(expected));
    std::fs::remove_dir_all(&dir).unwrap();
}
