//! Training: `unet train`, on burn-train's `Learner`.
//!
//! A run directory holds `config.json`, `metrics.csv` and `curves.png`
//! (rewritten after every epoch), burn-train's `checkpoint/` (the last two
//! epochs and the best by validation Dice: model, optimizer and learning-rate
//! schedule), its per-epoch metric logs (`train/`, `valid/`), and at the end
//! `model.bpk` (the best epoch's weights) and `samples.png`. Every file is
//! written atomically, so a run killed at any moment can be resumed from its
//! last complete checkpoint and ends exactly as an uninterrupted one.

mod metric;
mod recorder;
mod step;

pub use metric::{NanGuard, Overlap, OverlapMetric};
pub use recorder::Recorder;
pub use step::{SegmentationOutput, Segmenter};

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
use burn::train::{Interrupter, Learner, SupervisedTraining};
use unet::{UNetError, output_size};

use crate::atomic;
use crate::config::{DataSource, RunConfig, device};
use crate::data::{FolderDataset, Sample, SyntheticDataset, split_indices};
use crate::error::CliError;
use crate::history::{self, EpochRecord};
use crate::loader::{EpochLoader, Order};
use crate::model_dir::{self, CONFIG_FILE};
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
}

impl RunData {
    /// Splits `dataset` by the run's seed and validation fraction.
    pub fn split(dataset: Arc<dyn Dataset<Sample>>, val_fraction: f64, seed: u64) -> Self {
        let (train, valid) = split_indices(dataset.len(), val_fraction, seed);
        Self {
            dataset,
            train,
            valid,
        }
    }

    /// Opens the data a configuration names.
    pub fn open(config: &RunConfig) -> Result<Self, CliError> {
        let training = config.training()?;
        let model = &config.model;
        let dataset: Arc<dyn Dataset<Sample>> = match &training.data {
            DataSource::Synthetic { samples, size } => Arc::new(SyntheticDataset::new(
                *samples,
                *size,
                model.num_classes,
                model.in_channels,
                training.seed,
            )?),
            DataSource::Folder { dir } => Arc::new(FolderDataset::open(
                dir,
                model.in_channels,
                model.num_classes,
                config.preprocess.resize,
            )?),
        };
        if dataset.len() < 2 {
            return Err(CliError::Option {
                name: "--data".into(),
                value: format!("{:?}", training.data),
                expected: "a dataset of at least 2 images (training and validation)".into(),
            });
        }
        Ok(Self::split(dataset, training.val_fraction, training.seed))
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
const CHECKPOINT_DIR: &str = "checkpoint";
/// Validation samples shown in `samples.png`.
const SAMPLE_ROWS: usize = 6;

/// Trains the model `config` describes on its data, into `dir`; with
/// `resume`, continues the run in `dir` from its last complete checkpoint.
pub fn train(
    config: &RunConfig,
    dir: &Path,
    resume: bool,
    progress: Progress,
) -> Result<TrainReport, CliError> {
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
) -> Result<TrainReport, CliError> {
    let training = config.training()?;
    training.validate()?;
    config.model.validate()?;
    let base = device(training.backend, training.gpu);
    check_input(config, &data)?;

    let (start, history) = if resume {
        let start = last_complete_checkpoint(config, dir, &base)?;
        (start, prepare_resume(dir, start)?)
    } else {
        prepare_fresh(dir, config)?;
        (0, Vec::new())
    };
    let epochs = training.epochs;
    if start >= epochs {
        return finish(config, &data, dir, history, &base);
    }

    let device = base.clone().autodiff();
    device.seed(training.seed);
    let model = Segmenter {
        unet: config.model.try_init(&device)?,
    };
    let train_loader = EpochLoader::new(
        data.dataset.clone(),
        data.train.clone(),
        training.batch_size,
        Order::Shuffled {
            seed: training.seed,
            augment: training.augment,
            epoch_samples: training.epoch_samples,
        },
        start + 1,
        device.clone(),
    );
    let valid_loader = EpochLoader::new(
        data.dataset.clone(),
        data.valid.clone(),
        training.batch_size,
        Order::Sequential,
        start + 1,
        base.clone(),
    );
    let steps_per_epoch = training
        .epoch_samples
        .unwrap_or(data.train.len())
        .div_ceil(training.batch_size);
    let schedule = CosineAnnealingLrSchedulerConfig::new(training.lr, epochs * steps_per_epoch)
        .with_min_lr(training.min_lr)
        .init()
        .map_err(|reason| CliError::Option {
            name: "--lr".into(),
            value: training.lr.to_string(),
            expected: format!("a valid learning rate ({reason})"),
        })?;
    let learner = Learner::new(model, AdamConfig::new().with_epsilon(1e-8).init(), schedule);

    let interrupter = Interrupter::new();
    let non_finite = Arc::new(Mutex::new(None));
    let write_failure = Arc::new(Mutex::new(None));
    let history = Arc::new(Mutex::new(history));
    let plain = match progress {
        Progress::Auto => !std::io::stdout().is_terminal(),
        Progress::Plain => true,
        Progress::Quiet => false,
    };
    let sink = epoch_sink(
        dir,
        epochs,
        plain,
        history.clone(),
        write_failure.clone(),
        interrupter.clone(),
    );
    let inner: Option<Box<dyn MetricsRenderer>> =
        (progress == Progress::Auto && !plain).then(|| {
            Box::new(TuiMetricsRendererWrapper::new(
                interrupter.clone(),
                (start > 0).then_some(start),
            )) as Box<dyn MetricsRenderer>
        });
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
    let mut run = SupervisedTraining::new(dir, Arc::new(train_loader), Arc::new(valid_loader))
        .metrics((
            LossMetric::new(),
            dice,
            OverlapMetric::new(Overlap::Iou, classes),
        ))
        .metric_train_numeric(LearningRateMetric::new())
        .metric_train(NanGuard::new(interrupter.clone(), non_finite.clone()))
        .num_epochs(epochs)
        .with_default_checkpointers()
        .with_checkpointing_strategy(keep)
        .with_interrupter(interrupter)
        .with_application_logger(None)
        .renderer(Box::new(Recorder::new(inner, sink)));
    if start > 0 {
        run = run.checkpoint(start);
    }
    let result = run.launch(learner);

    let history = std::mem::take(&mut *history.lock().expect("no panic while locked"));
    if let Some(error) = result.error {
        return Err(CliError::Training(error.to_string()));
    }
    if let Some(failure) = write_failure.lock().expect("no panic while locked").take() {
        return Err(failure);
    }
    let report = finish(config, &data, dir, history, &base);
    if let Some(reason) = non_finite.lock().expect("no panic while locked").take() {
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
        return Err(CliError::NonFiniteLoss { reason, kept });
    }
    report
}

/// Fails early when the data's images do not fit the network: another
/// channel count, or (unpadded `Valid` networks) a size that cannot pass,
/// with the nearest sizes that can.
fn check_input(config: &RunConfig, data: &RunData) -> Result<(), CliError> {
    let first = data
        .dataset
        .get(data.train[0])
        .map_err(|err| CliError::Training(err.to_string()))?;
    let model = &config.model;
    if first.channels != model.in_channels {
        return Err(UNetError::InputChannels {
            expected: model.in_channels,
            got: first.channels,
            shape: [1, first.channels, first.height, first.width],
        }
        .into());
    }
    output_size(model, [first.height, first.width])?;
    Ok(())
}

/// A fresh run: `dir` must not hold a run already.
fn prepare_fresh(dir: &Path, config: &RunConfig) -> Result<(), CliError> {
    if dir.join(CONFIG_FILE).exists() || dir.join(CHECKPOINT_DIR).exists() {
        return Err(CliError::OutputExists {
            dir: dir.to_path_buf(),
        });
    }
    std::fs::create_dir_all(dir).map_err(|err| CliError::io(dir, err))?;
    model_dir::write_config(dir, config)
}

/// The last epoch whose model, optimizer and schedule were all written and
/// whose model loads.
fn last_complete_checkpoint(
    config: &RunConfig,
    dir: &Path,
    device: &Device,
) -> Result<usize, CliError> {
    let checkpoints = dir.join(CHECKPOINT_DIR);
    let file = |kind: &str, epoch: usize| checkpoints.join(format!("{kind}-{epoch}.bpk"));
    let mut epochs: Vec<usize> = std::fs::read_dir(&checkpoints)
        .map_err(|_| CliError::ModelDir {
            dir: dir.to_path_buf(),
            reason: format!("no {CHECKPOINT_DIR}/ folder: nothing to resume"),
        })?
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            name.strip_prefix("model-")?
                .strip_suffix(".bpk")?
                .parse()
                .ok()
        })
        .filter(|&epoch| {
            ["optim", "scheduler"]
                .iter()
                .all(|k| file(k, epoch).is_file())
        })
        .collect();
    epochs.sort_unstable();
    for &epoch in epochs.iter().rev() {
        let model = Segmenter {
            unet: config.model.try_init(device)?,
        };
        if model.try_load_file(file("model", epoch)).is_ok() {
            return Ok(epoch);
        }
    }
    Err(CliError::ModelDir {
        dir: dir.to_path_buf(),
        reason: "no complete checkpoint to resume from".into(),
    })
}

/// Forgets what came after epoch `start`: metric logs and checkpoints of
/// later epochs (burn-train reads the logs back to pick the best epoch), and
/// rows of `metrics.csv`. Returns the rows kept.
fn prepare_resume(dir: &Path, start: usize) -> Result<Vec<EpochRecord>, CliError> {
    for split in ["train", "valid"] {
        let Ok(entries) = std::fs::read_dir(dir.join(split)) else {
            continue;
        };
        for entry in entries.flatten() {
            let later = entry
                .file_name()
                .to_str()
                .and_then(|name| name.strip_prefix("epoch-"))
                .and_then(|n| n.parse::<usize>().ok())
                .is_some_and(|epoch| epoch > start);
            if later {
                std::fs::remove_dir_all(entry.path())
                    .map_err(|err| CliError::io(entry.path(), err))?;
            }
        }
    }
    if let Ok(entries) = std::fs::read_dir(dir.join(CHECKPOINT_DIR)) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let epoch = name
                .rsplit_once('-')
                .and_then(|(_, rest)| rest.strip_suffix(".bpk"))
                .and_then(|n| n.parse::<usize>().ok());
            if epoch.is_some_and(|epoch| epoch > start) {
                std::fs::remove_file(entry.path())
                    .map_err(|err| CliError::io(entry.path(), err))?;
            }
        }
    }
    let path = dir.join(METRICS_FILE);
    let rows = match std::fs::read_to_string(&path) {
        Ok(text) => history::from_csv(&text).ok_or_else(|| CliError::ModelDir {
            dir: dir.to_path_buf(),
            reason: format!("{METRICS_FILE} is not a metrics file of this program"),
        })?,
        Err(_) => Vec::new(),
    };
    Ok(rows.into_iter().filter(|row| row.epoch <= start).collect())
}

/// What happens after each epoch: the record is kept, `metrics.csv` and
/// `curves.png` are rewritten, and (plain progress) a line is printed.
fn epoch_sink(
    dir: &Path,
    epochs: usize,
    plain: bool,
    history: Arc<Mutex<Vec<EpochRecord>>>,
    failure: Arc<Mutex<Option<CliError>>>,
    interrupter: Interrupter,
) -> recorder::EpochSink {
    let dir = dir.to_path_buf();
    Box::new(move |record: EpochRecord| {
        let mut history = history.lock().expect("no panic while locked");
        history.retain(|row| row.epoch < record.epoch);
        history.push(record);
        if plain {
            println!("{}", epoch_line(&record, epochs));
        }
        let written = write_history(&dir, &history);
        if let Err(err) = written {
            interrupter.stop(Some(&err.to_string()));
            *failure.lock().expect("no panic while locked") = Some(err);
        }
    })
}

fn write_history(dir: &Path, history: &[EpochRecord]) -> Result<(), CliError> {
    let path = dir.join(METRICS_FILE);
    atomic::write(&path, history::to_csv(history).as_bytes())
        .map_err(|err| CliError::io(&path, err))?;
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

/// Writes the end products: `model.bpk` from the best epoch, the curves,
/// and `samples.png`.
fn finish(
    config: &RunConfig,
    data: &RunData,
    dir: &Path,
    history: Vec<EpochRecord>,
    device: &Device,
) -> Result<TrainReport, CliError> {
    let best = best_epoch(dir, &history).ok_or_else(|| CliError::ModelDir {
        dir: dir.to_path_buf(),
        reason: "no epoch finished with a checkpoint".into(),
    })?;
    let path = checkpoint_file(dir, best.epoch);
    let model = Segmenter {
        unet: config.model.try_init(device)?,
    }
    .try_load_file(&path)
    .map_err(|err| CliError::io(&path, err))?;
    let unet = model.unet;
    let mut rows = Vec::new();
    for &index in data.valid.iter().take(SAMPLE_ROWS) {
        let sample = data
            .dataset
            .get(index)
            .map_err(|err| CliError::Training(err.to_string()))?;
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
    Ok(TrainReport {
        dir: dir.to_path_buf(),
        history,
        best,
    })
}
