//! Training: `unet train`, on burn-train's `Learner`.
//!
//! A run directory holds `config.json`, `metrics.csv` and `curves.png`
//! (rewritten after every epoch), burn-train's `checkpoint/` (the last two
//! epochs and the best by validation Dice: model, optimizer and learning-rate
//! schedule), its per-epoch metric logs (`train/`, `valid/`), and at the end
//! `model.bpk` (the best epoch's weights) and `samples.png`. The files of
//! this crate are written atomically ([`crate::atomic`]); burn-train's
//! checkpoints and metric logs are not, and are checked before a resume
//! (`resume`), so a run killed at any moment resumes from its last
//! complete checkpoint and ends as an uninterrupted one would.

mod loader;
mod metric;
mod recorder;
mod resume;
mod step;

pub use loader::{EpochLoader, Order, SegmentationBatch};
pub use metric::{NanGuard, Overlap, OverlapMetric};
pub use recorder::Recorder;
pub use resume::{DamagedCheckpoint, ResumePoint, SUPERSEDED_DIR, resume_point};
use resume::{check_metric_logs, set_aside_later_epochs};
pub use step::{Objective, SegmentationOutput, Segmenter};

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use burn::data::dataset::Dataset;
use burn::lr_scheduler::cosine::CosineAnnealingLrSchedulerConfig;
use burn::module::Module;
use burn::optim::AdamConfig;
use burn::tensor::Device;
use burn::train::checkpoint::{
    ComposedCheckpointingStrategy, KeepLastNCheckpoints, MetricCheckpointingStrategy,
};
use burn::train::metric::store::{Aggregate, Direction, Split};
use burn::train::metric::{LearningRateMetric, LossMetric};
use burn::train::renderer::MetricsRenderer;
use burn::train::renderer::tui::TuiMetricsRendererWrapper;
use burn::train::{ExecutionStrategy, Interrupter, Learner, MultiDeviceOptim, SupervisedTraining};

use crate::atomic;
use crate::config::{DataSource, RunConfig, TrainingConfig, devices_text};
use crate::data::{DataError, FolderDataset, Sample, SyntheticDataset, same_images, split_indices};
use crate::error::RunError;
use crate::history::{self, EpochRecord};
use crate::memory::{
    check_training_fits, device_holds, human, largest_tensor, longest_sum, wrong_sum,
};
use crate::model_dir::{self, CONFIG_FILE};
use crate::precision::Precision;
use crate::predict::segment;
use crate::render::{samples_grid, write_png};

/// How a run shows its progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Burn's terminal UI when stdout is a terminal, plain lines otherwise.
    Auto,
    /// One line per epoch (and a progress line every few seconds).
    Plain,
    /// Nothing (library use, tests).
    Quiet,
}

/// A dataset split for training.
pub struct RunData {
    /// All samples.
    pub dataset: Arc<dyn Dataset<Sample>>,
    /// Indices of the training samples.
    pub train: Vec<usize>,
    /// Indices of the validation samples.
    pub valid: Vec<usize>,
    /// The names of a folder's images, in the dataset's order.
    pub names: Option<Vec<String>>,
}

impl RunData {
    /// Splits `dataset` by the run's seed and validation fraction.
    pub fn split(dataset: Arc<dyn Dataset<Sample>>, val_fraction: f64, seed: u64) -> Self {
        let (train, valid) = split_indices(dataset.len(), val_fraction, seed);
        Self {
            dataset,
            train,
            valid,
            names: None,
        }
    }

    /// Opens the data a configuration names.
    pub fn open(config: &RunConfig) -> Result<Self, RunError> {
        let training = config.training()?;
        let model = &config.model;
        let mut names = None;
        let dataset: Arc<dyn Dataset<Sample>> = match &training.data {
            DataSource::Synthetic { samples, size } => Arc::new(SyntheticDataset::new(
                *samples,
                *size,
                model.num_classes,
                model.in_channels,
                training.seed,
            )?),
            DataSource::Folder { dir, images } => {
                let folder = FolderDataset::open_with(
                    dir,
                    model.in_channels,
                    model.num_classes,
                    &config.preprocess,
                )?;
                if let Some(recorded) = images {
                    same_images(dir, recorded, folder.names())?;
                }
                names = Some(folder.names().to_vec());
                Arc::new(folder)
            }
        };
        if dataset.len() < 2 {
            return Err(RunError::Option {
                name: "--data".into(),
                value: match &training.data {
                    DataSource::Folder { dir, .. } => dir.display().to_string(),
                    DataSource::Synthetic { .. } => "synthetic".into(),
                },
                expected: "a dataset of at least 2 images (training and validation)".into(),
            });
        }
        Ok(Self {
            names,
            ..Self::split(dataset, training.val_fraction, training.seed)
        })
    }

    /// The configuration to write at the start of a fresh run: `config`,
    /// with the names of a folder's images recorded.
    fn recorded(&self, config: &RunConfig) -> RunConfig {
        let mut config = config.clone();
        if let Some(training) = config.training.as_mut()
            && let DataSource::Folder { images, .. } = &mut training.data
            && images.is_none()
        {
            images.clone_from(&self.names);
        }
        config
    }
}

/// What a finished run reports.
#[derive(Debug, Clone)]
pub struct TrainReport {
    /// The run directory.
    pub dir: PathBuf,
    /// One record per epoch.
    pub history: Vec<EpochRecord>,
    /// The epoch whose weights are in `model.bpk` (best validation Dice).
    pub best: EpochRecord,
}

impl TrainReport {
    /// The files a run leaves, with what they hold.
    pub fn files(&self) -> Vec<(PathBuf, &'static str)> {
        [
            (CONFIG_FILE, "the run configuration (model included)"),
            (model_dir::WEIGHTS_FILE, "weights of the best epoch"),
            (METRICS_FILE, "loss, Dice and IoU per epoch"),
            (CURVES_FILE, "loss and Dice curves"),
            (SAMPLES_FILE, "validation images, true and predicted masks"),
            ("checkpoint", "checkpoints, to continue with --resume"),
        ]
        .into_iter()
        .map(|(name, what)| (self.dir.join(name), what))
        .collect()
    }
}

/// Per-epoch figures, one row per epoch.
pub const METRICS_FILE: &str = "metrics.csv";
/// Loss and Dice curves.
pub const CURVES_FILE: &str = "curves.png";
/// A grid of validation samples.
pub const SAMPLES_FILE: &str = "samples.png";
/// burn-train's checkpoints: `model-N.bpk`, `optim-N.bpk`, `scheduler-N.bpk`.
pub const CHECKPOINT_DIR: &str = "checkpoint";
/// Validation samples shown in `samples.png`.
const SAMPLE_ROWS: usize = 6;

/// Trains the model `config` describes on its data, into `dir`; with
/// `resume`, continues the run in `dir` from its last complete checkpoint.
pub fn train(
    config: &RunConfig,
    dir: &Path,
    resume: bool,
    progress: Progress,
) -> Result<TrainReport, RunError> {
    let data = RunData::open(config)?;
    train_on(config, data, dir, resume, progress)
}

/// [`train`] on data given by the caller.
pub fn train_on(
    config: &RunConfig,
    data: RunData,
    dir: &Path,
    resume: bool,
    progress: Progress,
) -> Result<TrainReport, RunError> {
    let training = config.training()?;
    training.validate()?;
    config.model.validate()?;
    let size = checked_size(config, training, &data)?;
    let devices = open_devices(training, &data)?;
    check_devices(config, training, &data, size, &devices)?;
    let base = devices[0].clone();
    let (start, history) = if resume {
        let start = resume_point(config, dir, &base)?.epoch;
        check_metric_logs(dir, start)?;
        atomic::remove_leftovers(dir);
        (start, set_aside_later_epochs(dir, start)?)
    } else {
        prepare_fresh(dir, &data.recorded(config))?;
        (0, Vec::new())
    };
    if start >= training.epochs {
        return finish(config, &data, dir, history, &base);
    }
    let device = base.clone().autodiff();
    device.seed(training.seed);
    let learner = learner(config, training, &data, &device)?;
    let watch = Watch::new(history);
    let run = Run {
        config,
        training,
        data: &data,
        dir,
    };
    let (result, handled) = crate::guard::catch_handled(|| {
        run.supervised(start, progress, &watch, &devices)
            .launch(learner)
    })
    .map_err(|reason| {
        RunError::Training(format!(
            "burn-train stopped ({reason}); the run in {} resumes from its last checkpoint with --resume",
            dir.display()
        ))
    })?;
    if let Some(error) = result.error {
        // A device's panic, caught by burn-train, is this error: say it once.
        return Err(RunError::Training(error.to_string()));
    }
    crate::guard::print_handled(&handled);
    watch.outcome(config, &data, dir, &base)
}

/// The run's devices ([`TrainingConfig::open_devices`]); an epoch with
/// fewer training samples than devices is refused (each device takes a part
/// of it).
fn open_devices(training: &TrainingConfig, data: &RunData) -> Result<Vec<Device>, RunError> {
    let devices = training.device_count();
    let epoch = training.epoch_samples.unwrap_or(data.train.len());
    if devices > 1 && epoch < devices {
        let shown = devices_text(training.devices.as_deref().unwrap_or_default());
        return Err(RunError::option(
            "--devices",
            shown,
            &format!(
                "no more devices than the {epoch} training images of an epoch (each device takes a part of it)"
            ),
        ));
    }
    training.open_devices()
}

/// The model, Adam and the cosine learning-rate schedule over all steps.
fn learner(
    config: &RunConfig,
    training: &TrainingConfig,
    data: &RunData,
    device: &Device,
) -> Result<Learner<Segmenter>, RunError> {
    let model = Segmenter::of_run(config, device)?;
    let steps_per_epoch = training
        .epoch_samples
        .unwrap_or(data.train.len())
        .div_ceil(training.batch_size);
    let steps = training.epochs.saturating_mul(steps_per_epoch);
    let schedule = CosineAnnealingLrSchedulerConfig::new(training.lr, steps)
        .with_min_lr(training.min_lr)
        .init()
        .map_err(|reason| RunError::Option {
            name: "--lr".into(),
            value: training.lr.to_string(),
            expected: format!("a valid learning rate ({reason})"),
        })?;
    let optimizer = AdamConfig::new().with_epsilon(1e-8).init();
    Ok(Learner::new(model, optimizer, schedule))
}

/// The loaders of both splits from epoch `start + 1` on: training batches
/// shuffled and augmented per epoch on the autodiff `device` (each batch
/// split between the run's devices when it has several), validation in
/// order on the plain one.
fn loaders(
    training: &TrainingConfig,
    data: &RunData,
    start: usize,
    device: &Device,
) -> (EpochLoader, EpochLoader) {
    let loader = |indices: &[usize], order, device: Device| {
        EpochLoader::new(
            data.dataset.clone(),
            indices.to_vec(),
            training.batch_size,
            order,
            start + 1,
            device,
        )
        .with_border_weight(training.border_weight)
    };
    let shuffled = Order::Shuffled {
        seed: training.seed,
        augmentation: training.augmentation(),
        epoch_samples: training.epoch_samples,
    };
    (
        loader(&data.train, shuffled, device.clone()).with_devices(training.device_count()),
        loader(&data.valid, Order::Sequential, device.clone().inner()),
    )
}

/// A run's settings, data and directory.
#[derive(Clone, Copy)]
struct Run<'a> {
    config: &'a RunConfig,
    training: &'a TrainingConfig,
    data: &'a RunData,
    dir: &'a Path,
}

impl Run<'_> {
    /// burn-train's run: the loaders, loss, Dice and IoU, the NaN guard,
    /// checkpoints (the last two epochs and the best by validation Dice), and
    /// the progress display, all reporting to `watch`. With several
    /// `devices`, burn-train's data-parallel strategy: every step, each
    /// device computes the gradients of its part of the batch, and their sum
    /// updates the model on the first device.
    fn supervised(
        &self,
        start: usize,
        progress: Progress,
        watch: &Watch,
        devices: &[Device],
    ) -> SupervisedTraining<Segmenter> {
        let Run {
            config,
            training,
            data,
            dir,
        } = *self;
        let device = devices[0].clone().autodiff();
        let (train_loader, valid_loader) = loaders(training, data, start, &device);
        let classes = config.model.num_classes;
        let dice = OverlapMetric::new(Overlap::Dice, classes);
        let keep = ComposedCheckpointingStrategy::builder()
            .add(KeepLastNCheckpoints::new(2))
            .add(MetricCheckpointingStrategy::new(
                &dice,
                Aggregate::Mean,
                Direction::Highest,
                Split::Valid,
            ))
            .build();
        let run = SupervisedTraining::new(dir, Arc::new(train_loader), Arc::new(valid_loader))
            .metrics((
                LossMetric::new(),
                dice,
                OverlapMetric::new(Overlap::Iou, classes),
            ))
            .metric_train_numeric(LearningRateMetric::new())
            .metric_train(NanGuard::new(
                watch.interrupter.clone(),
                watch.non_finite.clone(),
            ))
            .num_epochs(training.epochs)
            .with_default_checkpointers()
            .with_checkpointing_strategy(keep)
            .with_interrupter(watch.interrupter.clone())
            .with_application_logger(None)
            .renderer(Box::new(watch.renderer(
                dir,
                training.epochs,
                start,
                progress,
            )));
        let run = on_devices(run, devices);
        if start > 0 {
            run.checkpoint(start)
        } else {
            run
        }
    }
}

/// `run` on `devices`: with several, burn-train's data-parallel strategy,
/// the optimizer on the first; with one, its default (that device).
fn on_devices(
    run: SupervisedTraining<Segmenter>,
    devices: &[Device],
) -> SupervisedTraining<Segmenter> {
    if devices.len() < 2 {
        return run;
    }
    let strategy = ExecutionStrategy::multi(devices.to_vec(), MultiDeviceOptim::OptimMainDevice);
    run.with_training_strategy(strategy.into())
}

/// What the running epochs report back: the per-epoch records, a NaN loss,
/// a file that could not be written; and the interrupter that stops the run
/// on either.
struct Watch {
    interrupter: Interrupter,
    history: Arc<Mutex<Vec<EpochRecord>>>,
    non_finite: Arc<Mutex<Option<String>>>,
    write_failure: Arc<Mutex<Option<RunError>>>,
}

impl Watch {
    fn new(history: Vec<EpochRecord>) -> Self {
        Self {
            interrupter: Interrupter::new(),
            history: Arc::new(Mutex::new(history)),
            non_finite: Arc::default(),
            write_failure: Arc::default(),
        }
    }

    /// The renderer: plain epoch lines (or nothing), or burn-train's
    /// terminal UI, each epoch also recorded and written to the run directory.
    fn renderer(&self, dir: &Path, epochs: usize, start: usize, progress: Progress) -> Recorder {
        let plain = match progress {
            Progress::Auto => !std::io::stdout().is_terminal(),
            Progress::Plain => true,
            Progress::Quiet => false,
        };
        let sink = epoch_sink(
            dir,
            epochs,
            plain,
            self.history.clone(),
            self.write_failure.clone(),
            self.interrupter.clone(),
        );
        let tui = (progress == Progress::Auto && !plain).then(|| {
            Box::new(TuiMetricsRendererWrapper::new(
                self.interrupter.clone(),
                (start > 0).then_some(start),
            )) as Box<dyn MetricsRenderer>
        });
        Recorder::new(tui, sink)
    }

    /// The end of a run that stopped without an error from burn-train: the
    /// end products, unless a file could not be written; a NaN loss is an
    /// error that says what was kept.
    fn outcome(
        self,
        config: &RunConfig,
        data: &RunData,
        dir: &Path,
        device: &Device,
    ) -> Result<TrainReport, RunError> {
        let history = std::mem::take(&mut *lock(&self.history));
        if let Some(failure) = lock(&self.write_failure).take() {
            return Err(failure);
        }
        let report = finish(config, data, dir, history, device);
        let Some(reason) = lock(&self.non_finite).take() else {
            return report;
        };
        let kept = match &report {
            Ok(report) => format!(
                "the last good checkpoint (epoch {}) is in {}, and {} holds epoch {}'s weights",
                report.history.last().map_or(0, |r| r.epoch),
                dir.join(CHECKPOINT_DIR).display(),
                dir.join(model_dir::WEIGHTS_FILE).display(),
                report.best.epoch
            ),
            Err(_) => "no epoch finished, so there is no checkpoint".into(),
        };
        Err(RunError::NonFiniteLoss { reason, kept })
    }
}

/// Locks a mutex whose holders never panic while holding it.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The size of every training image where the configuration fixes it:
/// synthetic images (their own size; they are never resized), or folder
/// images resized to `--image-size`.
fn known_size(config: &RunConfig) -> Option<[usize; 2]> {
    match &config.training.as_ref()?.data {
        DataSource::Synthetic { size, .. } => Some([*size, *size]),
        DataSource::Folder { .. } => config.preprocess.resize.map(|side| [side, side]),
    }
}

/// Refuses a training step on images of `size` that would not fit in the
/// machine's memory (on the CPU backends, whose memory the estimate is for).
fn check_fits(
    config: &RunConfig,
    training: &TrainingConfig,
    data: &RunData,
    size: [usize; 2],
) -> Result<(), RunError> {
    if training.backend.is_gpu() {
        return Ok(());
    }
    // A batch larger than an epoch is the epoch.
    let epoch = training.epoch_samples.unwrap_or(data.train.len());
    check_training_fits(&config.model, training.batch_size.min(epoch), size)
}

/// The images' `[height, width]`, once they fit the network
/// ([`check_input`]) and a training step on them fits the machine's memory
/// ([`check_fits`]). The memory estimate comes before the first sample is
/// made where the configuration fixes the size: a sample of a size too
/// large to train on may itself be too large to allocate.
fn checked_size(
    config: &RunConfig,
    training: &TrainingConfig,
    data: &RunData,
) -> Result<[usize; 2], RunError> {
    let fits = |size| check_fits(config, training, data, size);
    match known_size(config) {
        Some(size) => {
            fits(size)?;
            check_input(config, data)?;
            Ok(size)
        }
        None => {
            let size = check_input(config, data)?;
            fits(size)?;
            Ok(size)
        }
    }
}

/// Refuses a run on GPU `devices` one of which cannot do its part of the
/// work (each device its share of a training batch, the first also a
/// validation batch, which runs there unsplit, and the `f32` forward pass
/// of one image that draws the samples): hold the largest tensor at once
/// ([`largest_tensor`], [`device_holds`]), and get the step's longest sums
/// right ([`longest_sum`], [`wrong_sum`]).
fn check_devices(
    config: &RunConfig,
    training: &TrainingConfig,
    data: &RunData,
    size: [usize; 2],
    devices: &[Device],
) -> Result<(), RunError> {
    if !training.backend.is_gpu() {
        return Ok(());
    }
    let [h, w] = size;
    let batches = device_batches(training, data, devices);
    for (i, (device, batch)) in devices.iter().zip(batches).enumerate() {
        let precision = training.precision;
        let mut passes = vec![(
            batch,
            precision,
            format!("a training step (batch {batch} of {h}x{w} images in {precision})"),
        )];
        if i == 0 {
            let samples = format!("drawing the validation samples (one {h}x{w} image in f32)");
            passes.push((1, Precision::F32, samples));
        }
        for (images, precision, what) in passes {
            let (layer, bytes) = largest_tensor(&config.model, images, size, precision)?;
            if !device_holds(bytes, device) {
                return Err(RunError::TensorTooLarge {
                    what,
                    layer,
                    size: human(bytes),
                    device: device_label(training, i),
                    remedy: "use a smaller --batch-size or image size".into(),
                });
            }
        }
        let longest = longest_sum(&config.model, batch, size)?;
        if let Some(wrong) = wrong_sum(longest, device)? {
            return Err(RunError::WrongSums {
                what: format!("a training step (batch {batch} of {h}x{w} images)"),
                len: wrong.len,
                got: wrong.got,
                device: device_label(training, i),
            });
        }
    }
    Ok(())
}

/// The largest batch each device of a run takes: its share of a training
/// batch, and on the first device (which validates) a validation batch.
fn device_batches(training: &TrainingConfig, data: &RunData, devices: &[Device]) -> Vec<usize> {
    let epoch = training.epoch_samples.unwrap_or(data.train.len());
    let share = training.batch_size.min(epoch).div_ceil(devices.len());
    let validation = training.batch_size.min(data.valid.len());
    (0..devices.len())
        .map(|i| if i == 0 { share.max(validation) } else { share })
        .collect()
}

/// The `i`-th device of a run, as its options name it.
fn device_label(training: &TrainingConfig, i: usize) -> String {
    let backend = training.backend;
    match (&training.devices, training.gpu) {
        (Some(list), _) => format!(
            "--backend {backend} device {} (of --devices {})",
            list[i],
            devices_text(list)
        ),
        (None, Some(gpu)) => format!("--backend {backend} --device {gpu}"),
        (None, None) => format!("the --backend {backend} GPU"),
    }
}

/// Fails early when the data's images do not fit the network: another
/// channel count, or (unpadded `Valid` networks) a size that cannot pass,
/// with the nearest sizes that can. Returns the images' `[height, width]`.
fn check_input(config: &RunConfig, data: &RunData) -> Result<[usize; 2], RunError> {
    let first = data
        .dataset
        .get(data.train[0])
        .map_err(|err| RunError::Training(err.to_string()))?;
    config
        .model
        .output_shape([1, first.channels, first.height, first.width])?;
    let wants_labels = config
        .training
        .as_ref()
        .is_some_and(|t| t.border_weight.is_some());
    if wants_labels && first.labels.is_none() {
        return Err(DataError::NoLabels.into());
    }
    Ok([first.height, first.width])
}

/// A fresh run: `dir` must be new or an empty folder (hidden files aside);
/// one holding a run already is told to resume.
fn prepare_fresh(dir: &Path, config: &RunConfig) -> Result<(), RunError> {
    if dir.join(CONFIG_FILE).exists() || dir.join(CHECKPOINT_DIR).exists() {
        return Err(RunError::OutputExists {
            dir: dir.to_path_buf(),
        });
    }
    model_dir::check_new_folder(dir, "a run")?;
    std::fs::create_dir_all(dir).map_err(|err| RunError::io(dir, err))?;
    model_dir::write_config(dir, config)
}

/// What happens after each epoch: the record is kept, `metrics.csv` and
/// `curves.png` are rewritten, and (plain progress) a line is printed.
fn epoch_sink(
    dir: &Path,
    epochs: usize,
    plain: bool,
    history: Arc<Mutex<Vec<EpochRecord>>>,
    failure: Arc<Mutex<Option<RunError>>>,
    interrupter: Interrupter,
) -> recorder::EpochSink {
    let dir = dir.to_path_buf();
    Box::new(move |record: EpochRecord| {
        let mut history = lock(&history);
        history.retain(|row| row.epoch < record.epoch);
        history.push(record);
        if plain {
            crate::outln!("{}", epoch_line(&record, epochs));
        }
        let written = write_history(&dir, &history);
        if let Err(err) = written {
            interrupter.stop(Some(&err.to_string()));
            *lock(&failure) = Some(err);
        }
    })
}

fn write_history(dir: &Path, history: &[EpochRecord]) -> Result<(), RunError> {
    let path = dir.join(METRICS_FILE);
    atomic::write(&path, history::to_csv(history).as_bytes())
        .map_err(|err| RunError::io(&path, err))?;
    write_png(&dir.join(CURVES_FILE), history::curves(history))
}

/// One epoch as a line of text.
pub fn epoch_line(record: &EpochRecord, epochs: usize) -> String {
    format!(
        "epoch {:>width$}/{epochs}  loss {:.4} (val {:.4})  Dice {:.4} (val {:.4})  val IoU {:.4}  lr {:.2e}  {:.1} s",
        record.epoch,
        record.train_loss,
        record.val_loss,
        record.train_dice,
        record.val_dice,
        record.val_iou,
        record.lr,
        record.seconds,
        width = epochs.to_string().len(),
    )
}

/// The best epoch by validation Dice among those whose checkpoint exists
/// (the first of equals, as burn-train's own choice).
fn best_epoch(dir: &Path, history: &[EpochRecord]) -> Option<EpochRecord> {
    history
        .iter()
        .filter(|r| r.val_dice.is_finite())
        .filter(|r| checkpoint_file(dir, r.epoch).is_file())
        .fold(None, |best: Option<&EpochRecord>, r| match best {
            Some(b) if b.val_dice >= r.val_dice => Some(b),
            _ => Some(r),
        })
        .copied()
}

fn checkpoint_file(dir: &Path, epoch: usize) -> PathBuf {
    dir.join(CHECKPOINT_DIR).join(format!("model-{epoch}.bpk"))
}

/// Removes the checkpoint files (`model-N.bpk`, `optim-N.bpk`,
/// `scheduler-N.bpk`) of the epochs not in `keep`, and the temporary files
/// of checkpoint writes a kill cut short (`optim-N.bpk.<id>.tmp`). burn-train
/// keeps the last two and the best as it goes, but a resumed run's
/// checkpointer never saw the epochs before it, whose files would stay for
/// good. A file that cannot be removed stays: the run's results are written
/// already.
fn prune_checkpoints(dir: &Path, keep: &[usize]) {
    let Ok(entries) = std::fs::read_dir(dir.join(CHECKPOINT_DIR)) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        let epoch = name
            .split_once('-')
            .filter(|(kind, _)| matches!(*kind, "model" | "optim" | "scheduler"))
            .and_then(|(_, rest)| rest.split_once(".bpk"))
            .and_then(|(epoch, _)| epoch.parse::<usize>().ok());
        let Some(epoch) = epoch else {
            continue;
        };
        if !keep.contains(&epoch) || name.ends_with(".tmp") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Writes the end products: `model.bpk` from the best epoch, the curves,
/// and `samples.png`, then keeps only the checkpoints of the last two
/// epochs and the best.
fn finish(
    config: &RunConfig,
    data: &RunData,
    dir: &Path,
    history: Vec<EpochRecord>,
    device: &Device,
) -> Result<TrainReport, RunError> {
    let best = best_epoch(dir, &history).ok_or_else(|| RunError::ModelDir {
        dir: dir.to_path_buf(),
        reason: "no epoch finished with a checkpoint".into(),
    })?;
    let path = checkpoint_file(dir, best.epoch);
    let model = Segmenter::of_run(config, device)?
        .try_load_file(&path)
        .map_err(|err| RunError::io(&path, err))?;
    let unet = model.unet;
    let mut rows = Vec::new();
    for &index in data.valid.iter().take(SAMPLE_ROWS) {
        let sample = data
            .dataset
            .get(index)
            .map_err(|err| RunError::Training(err.to_string()))?;
        let predicted = segment(
            &unet,
            &sample.image,
            [sample.channels, sample.height, sample.width],
            device,
        )?;
        rows.push((sample, predicted));
    }
    write_png(&dir.join(SAMPLES_FILE), samples_grid(&rows))?;
    write_history(dir, &history)?;
    model_dir::write_weights(dir, unet)?;
    let last_two = history.iter().rev().take(2).map(|r| r.epoch);
    prune_checkpoints(dir, &last_two.chain([best.epoch]).collect::<Vec<_>>());
    Ok(TrainReport {
        dir: dir.to_path_buf(),
        history,
        best,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::{ModuleVisitor, Param};
    use burn::optim::SgdConfig;
    use burn::tensor::Tensor;
    use unet::{Norm, UNetConfig};

    use crate::config::{Loss, Preprocess};
    use crate::precision::{Precision, ScaleRule, ScaleState};

    /// Every float parameter of a module, in visiting order.
    struct Weights(Vec<f32>);

    impl ModuleVisitor for Weights {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0
                .extend(param.val().into_data().try_to_vec::<f32>().unwrap());
        }
    }

    /// The network's weights (not the loss scale).
    fn weights(model: &Segmenter) -> Vec<f32> {
        let mut weights = Weights(Vec::new());
        model.unet.visit(&mut weights);
        weights.0
    }

    /// Two plain SGD steps (a constant learning rate; Adam would hide a
    /// gradient off by a constant factor) of a tiny network without
    /// normalisation or dropout, on plain cross-entropy, launched on
    /// `devices` as [`train_on`] launches a run. Returns the weights before
    /// and after.
    fn sgd_steps(devices: Vec<Device>) -> (Vec<f32>, Vec<f32>) {
        let (before, after, _) = sgd_steps_in(devices, Precision::F32, ScaleRule::default());
        (before, after)
    }

    /// [`sgd_steps`] computing in `precision`, the loss scaled by `rule`;
    /// also returns where the scale ends. One run at a time: the initial
    /// weights come from the device's seeded random stream, which tests
    /// running beside each other would share.
    fn sgd_steps_in(
        devices: Vec<Device>,
        precision: Precision,
        rule: ScaleRule,
    ) -> (Vec<f32>, Vec<f32>, Option<ScaleState>) {
        static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
        let _turn = ONE_AT_A_TIME
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = devices.len();
        let config = RunConfig::trained(
            UNetConfig::new(1, 2)
                .with_base_width(4)
                .with_depth(2)
                .with_norm(Norm::None),
            Preprocess::default(),
            TrainingConfig {
                data: DataSource::Synthetic {
                    samples: 20,
                    size: 16,
                },
                epochs: 1,
                batch_size: 4,
                epoch_samples: Some(8),
                loss: Loss::Ce,
                devices: (count > 1).then(|| (0..count).collect()),
                ..TrainingConfig::synthetic()
            },
        );
        let training = config.training().unwrap();
        training.validate().unwrap();
        let data = RunData::open(&config).unwrap();
        let name = format!(
            "unet-sgd-{count}-devices-{precision}-{}-{}",
            rule.initial,
            std::process::id()
        );
        let dir = std::env::temp_dir().join(name);
        let _ = std::fs::remove_dir_all(&dir);
        prepare_fresh(&dir, &config).unwrap();
        let device = devices[0].clone().autodiff();
        device.seed(training.seed);
        let objective = Objective {
            loss: Loss::Ce,
            class_weights: None,
        };
        let model = Segmenter::with_objective(config.model.try_init(&device).unwrap(), objective)
            .with_precision(precision, rule, &device);
        let before = weights(&model);
        let learner = Learner::new(model, SgdConfig::new().init(), 0.5);
        let run = Run {
            config: &config,
            training,
            data: &data,
            dir: &dir,
        };
        let watch = Watch::new(Vec::new());
        let result = run
            .supervised(0, Progress::Quiet, &watch, &devices)
            .launch(learner);
        assert!(result.error.is_none(), "{:?}", result.error);
        std::fs::remove_dir_all(&dir).unwrap();
        let scale = result.model.loss_scale.as_ref().map(|scale| scale.state());
        (before, weights(&result.model), scale)
    }

    fn largest_difference(a: &[f32], b: &[f32]) -> f32 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max)
    }

    #[test]
    fn two_devices_step_as_one_device_on_the_whole_batch() {
        let (start, one) = sgd_steps(vec![Device::flex()]);
        let (same_start, two) = sgd_steps(vec![Device::flex(); 2]);
        assert_eq!(start, same_start, "both runs start from the same weights");
        let largest = largest_difference;
        // Summed unscaled gradients would move the weights twice as far:
        // the steps are far larger than the tolerance.
        let moved = largest(&start, &one);
        assert!(moved > 1e-3, "the steps moved the weights by {moved}");
        let off = largest(&one, &two);
        assert!(
            off < 1e-5,
            "two devices end {off} away from one (moved {moved})"
        );
    }

    /// A loss scale of 2^100 makes the gradients overflow `f16` (largest
    /// 65504) in the backward pass: both steps are skipped, the weights do
    /// not move, and the scale halves at each.
    #[test]
    fn an_overflowing_step_is_skipped_and_halves_the_scale() {
        let rule = ScaleRule {
            initial: 2f32.powi(100),
            ..ScaleRule::default()
        };
        let (before, after, scale) = sgd_steps_in(vec![Device::flex()], Precision::F16, rule);
        assert_eq!(before, after, "the weights moved");
        let expected = ScaleState {
            scale: 2f32.powi(98),
            good_steps: 0,
        };
        assert_eq!(scale, Some(expected));
    }

    /// Two `f16` steps with the default scale (2^16) move the weights as two
    /// `f32` steps do, within a thousandth of how far they move (measured:
    /// 1.3e-4); gradients left scaled would move them 65536 times as far.
    #[test]
    fn half_precision_steps_follow_the_f32_steps() {
        let devices = || vec![Device::flex()];
        let (start, full) = sgd_steps(devices());
        let (same_start, half, scale) =
            sgd_steps_in(devices(), Precision::F16, ScaleRule::default());
        assert_eq!(start, same_start);
        let expected = ScaleState {
            scale: 65536.0,
            good_steps: 2,
        };
        assert_eq!(scale, Some(expected));
        let moved = largest_difference(&start, &full);
        let off = largest_difference(&full, &half);
        assert!(moved > 1e-3, "the steps moved the weights by {moved}");
        assert!(
            off < 1e-3 * moved,
            "f16 ends {off} away from f32 (moved {moved})"
        );
    }
}
