//! Continuing a run from its directory: which epoch to start after, what to
//! set aside, and checks of burn-train's own files before burn-train reads
//! them (it panics on a damaged one).
//!
//! A checkpoint is complete when its model, optimizer and learning-rate
//! schedule files all load. A damaged newest checkpoint falls back to the
//! one before, and says so; a run killed before its first checkpoint starts
//! again from epoch 1. What belonged to later epochs (checkpoint files,
//! metric logs, rows of `metrics.csv`) is moved to `superseded/`, never deleted.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::optim::OptimizerRecord;
use burn::optim::lr_scheduler::LrSchedulerRecord;
use burn::tensor::Device;
use burn::train::checkpoint::{Checkpointer, FileCheckpointer};
use burn::train::metric::NumericEntry;

use super::{CHECKPOINT_DIR, METRICS_FILE, Segmenter};
use crate::config::RunConfig;
use crate::error::RunError;
use crate::history::{self, EpochRecord};

/// Where later epochs' files are moved when a run resumes before them.
pub const SUPERSEDED_DIR: &str = "superseded";

/// A checkpoint that could not be used, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DamagedCheckpoint {
    /// Its epoch.
    pub epoch: usize,
    /// The file that did not load.
    pub file: PathBuf,
    /// The loader's message.
    pub reason: String,
}

/// Where a resumed run starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumePoint {
    /// The last complete epoch (0: none, the run starts again from epoch 1).
    pub epoch: usize,
    /// Newer checkpoints passed over, newest first.
    pub damaged: Vec<DamagedCheckpoint>,
}

/// The last epoch of the run in `dir` whose model, optimizer and schedule
/// all load, and the newer ones that did not.
pub fn resume_point(
    config: &RunConfig,
    dir: &Path,
    device: &Device,
) -> Result<ResumePoint, RunError> {
    let checkpoints = dir.join(CHECKPOINT_DIR);
    let mut epochs = checkpoint_epochs(&checkpoints);
    epochs.sort_unstable();
    let mut damaged = Vec::new();
    for &epoch in epochs.iter().rev() {
        match check_checkpoint(config, &checkpoints, epoch, device) {
            Ok(()) => return Ok(ResumePoint { epoch, damaged }),
            Err(problem) => damaged.push(problem),
        }
    }
    Ok(ResumePoint { epoch: 0, damaged })
}

/// The epochs with a `model-N.bpk` in `checkpoints`.
fn checkpoint_epochs(checkpoints: &Path) -> Vec<usize> {
    let Ok(entries) = std::fs::read_dir(checkpoints) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            name.strip_prefix("model-")?
                .strip_suffix(".bpk")?
                .parse()
                .ok()
        })
        .collect()
}

/// Loads the three files of checkpoint `epoch` as burn-train will.
fn check_checkpoint(
    config: &RunConfig,
    checkpoints: &Path,
    epoch: usize,
    device: &Device,
) -> Result<(), DamagedCheckpoint> {
    let file = |kind: &str| checkpoints.join(format!("{kind}-{epoch}.bpk"));
    let damaged = |kind: &str, reason: String| DamagedCheckpoint {
        epoch,
        file: file(kind),
        reason,
    };
    let model =
        Segmenter::of_run(config, device).map_err(|err| damaged("model", err.to_string()))?;
    model
        .try_load_file(file("model"))
        .map_err(|err| damaged("model", err.to_string()))?;
    let optim: Result<OptimizerRecord, _> =
        FileCheckpointer::new(checkpoints, "optim").restore(epoch);
    optim.map_err(|err| damaged("optim", format!("{err:?}")))?;
    let schedule: Result<LrSchedulerRecord, _> =
        FileCheckpointer::new(checkpoints, "scheduler").restore(epoch);
    schedule.map_err(|err| damaged("scheduler", format!("{err:?}")))?;
    Ok(())
}

/// Checks every metric log burn-train will read back for epochs up to
/// `start` (`train|valid/epoch-N/*.log`): each line one of its entries.
pub fn check_metric_logs(dir: &Path, start: usize) -> Result<(), RunError> {
    for split in ["train", "valid"] {
        for epoch in 1..=start {
            let folder = dir.join(split).join(format!("epoch-{epoch}"));
            let Ok(entries) = std::fs::read_dir(&folder) else {
                continue;
            };
            for path in entries.flatten().map(|e| e.path()) {
                if path.extension().is_some_and(|e| e == "log") {
                    check_log(&path)?;
                }
            }
        }
    }
    Ok(())
}

fn check_log(path: &Path) -> Result<(), RunError> {
    let text = std::fs::read(path).map_err(|err| RunError::io(path, err))?;
    let text = String::from_utf8_lossy(&text);
    for (number, line) in text.split('\n').enumerate().filter(|(_, l)| !l.is_empty()) {
        if let Err(reason) = NumericEntry::deserialize(line) {
            return Err(RunError::ModelDir {
                dir: path.to_path_buf(),
                reason: format!(
                    "damaged metric log: line {} ({:?}) is not a metric entry ({reason}); \
                     move this epoch's folders and checkpoint files away to resume from the epoch before",
                    number + 1,
                    line.chars().take(40).collect::<String>()
                ),
            });
        }
    }
    Ok(())
}

/// Moves what came after epoch `start` into `superseded/`: metric logs and
/// checkpoints of later epochs (burn-train reads the logs back to pick the
/// best epoch), and the later rows of `metrics.csv`. Returns the rows kept.
pub fn set_aside_later_epochs(dir: &Path, start: usize) -> Result<Vec<EpochRecord>, RunError> {
    let aside = dir.join(SUPERSEDED_DIR);
    for split in ["train", "valid"] {
        for (epoch, path) in numbered(&dir.join(split), epoch_folder) {
            if epoch > start {
                move_into(&path, &aside.join(format!("epoch-{epoch}")).join(split))?;
            }
        }
    }
    let checkpoints = dir.join(CHECKPOINT_DIR);
    for (epoch, path) in numbered(&checkpoints, checkpoint_epoch) {
        if epoch > start {
            move_into(
                &path,
                &aside.join(format!("epoch-{epoch}")).join(CHECKPOINT_DIR),
            )?;
        }
    }
    let path = dir.join(METRICS_FILE);
    let rows = match std::fs::read_to_string(&path) {
        Ok(text) => history::from_csv(&text).ok_or_else(|| RunError::ModelDir {
            dir: dir.to_path_buf(),
            reason: format!("{METRICS_FILE} is not a metrics file of this program"),
        })?,
        Err(_) => Vec::new(),
    };
    if rows.iter().any(|row| row.epoch > start) {
        std::fs::create_dir_all(&aside).map_err(|err| RunError::io(&aside, err))?;
        let copy = free_name(&aside, METRICS_FILE.as_ref());
        std::fs::copy(&path, &copy).map_err(|err| RunError::io(&copy, err))?;
    }
    Ok(rows.into_iter().filter(|row| row.epoch <= start).collect())
}

/// The epoch of a metric-log folder name: `5` of `epoch-5`.
fn epoch_folder(name: &str) -> Option<&str> {
    name.strip_prefix("epoch-")
}

/// The epoch of a checkpoint file name: `5` of `model-5.bpk`.
fn checkpoint_epoch(name: &str) -> Option<&str> {
    let (_, epoch) = name.strip_suffix(".bpk")?.rsplit_once('-')?;
    Some(epoch)
}

/// The entries of `folder` whose name `number` maps to a number, with it.
fn numbered(folder: &Path, number: fn(&str) -> Option<&str>) -> Vec<(usize, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let epoch = number(&name)?.parse().ok()?;
            Some((epoch, entry.path()))
        })
        .collect()
}

/// Moves `path` into the folder `into` (made if needed), keeping its name;
/// whatever is already there under that name is kept too, the newcomer
/// taking a numbered name beside it.
fn move_into(path: &Path, into: &Path) -> Result<(), RunError> {
    std::fs::create_dir_all(into).map_err(|err| RunError::io(into, err))?;
    let target = free_name(into, path.file_name().unwrap_or_default());
    std::fs::rename(path, &target).map_err(|err| RunError::io(path, err))
}

/// `into/name`, or where that is taken (an earlier resume set a file of
/// that name aside) the first free `into/name.1`, `into/name.2`, ...
fn free_name(into: &Path, name: &std::ffi::OsStr) -> PathBuf {
    let mut target = into.join(name);
    let mut n = 1;
    while target.exists() {
        let mut numbered = name.to_os_string();
        numbered.push(format!(".{n}"));
        target = into.join(numbered);
        n += 1;
    }
    target
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{EpochRecord, to_csv};

    fn rows(epochs: std::ops::RangeInclusive<usize>) -> String {
        let records: Vec<EpochRecord> = epochs
            .map(|epoch| EpochRecord {
                epoch,
                lr: 1e-3,
                train_loss: 0.5,
                train_dice: 0.9,
                train_iou: 0.8,
                val_loss: 0.4,
                val_dice: 0.91,
                val_iou: 0.81,
                seconds: 1.0,
            })
            .collect();
        to_csv(&records)
    }

    #[test]
    fn every_resume_keeps_the_rows_it_sets_aside() {
        let dir = std::env::temp_dir().join(format!("unet-set-aside-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let metrics = dir.join(METRICS_FILE);
        std::fs::write(&metrics, rows(1..=5)).unwrap();
        let kept = set_aside_later_epochs(&dir, 3).unwrap();
        assert_eq!(kept.iter().map(|r| r.epoch).collect::<Vec<_>>(), [1, 2, 3]);
        std::fs::write(&metrics, rows(1..=7)).unwrap();
        set_aside_later_epochs(&dir, 6).unwrap();
        let aside = dir.join(SUPERSEDED_DIR);
        let first = std::fs::read_to_string(aside.join(METRICS_FILE)).unwrap();
        let second = std::fs::read_to_string(aside.join("metrics.csv.1")).unwrap();
        assert_eq!((first, second), (rows(1..=5), rows(1..=7)));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
