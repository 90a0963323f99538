//! Everything that can stop `unet`, each a one-line message naming the
//! file, folder or option at fault.

use std::path::PathBuf;

use unet::UNetError;

use crate::data::DataError;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A dataset or image that cannot be used.
    #[error(transparent)]
    Data(#[from] DataError),

    /// A model that cannot be built or run.
    #[error(transparent)]
    Model(#[from] UNetError),

    /// An option value out of range.
    #[error("{name} {value}: must be {expected}")]
    Option {
        /// The option, as typed (`--lr`).
        name: String,
        /// Its value.
        value: String,
        /// What it must be.
        expected: String,
    },

    /// A file or folder that cannot be read or written.
    #[error("{path}: {reason}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The system's message.
        reason: String,
    },

    /// A fresh run pointed at a folder that already holds one.
    #[error(
        "{dir}: already holds a training run; continue it with --resume {dir}, or choose another --out"
    )]
    OutputExists {
        /// The folder.
        dir: PathBuf,
    },

    /// A fresh run or an import pointed at a file, or at a folder holding
    /// files of someone else's, which its own files would mix with or replace.
    #[error(
        "--out {path}: {what}; {writer} writes into a new or empty folder (choose another --out)"
    )]
    OutputTaken {
        /// The path.
        path: PathBuf,
        /// What is there: `"a file"`, `"a folder holding other files"`.
        what: &'static str,
        /// What would write there: `"a run"`, `"import"`.
        writer: &'static str,
    },

    /// A `--model` or `--resume` folder that is not what it should be.
    #[error("{dir}: {reason}")]
    ModelDir {
        /// The folder.
        dir: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// Weights that do not fit the model described by `config.json`.
    #[error("{path}: the weights do not fit the model of {config}: {reason}")]
    Weights {
        /// The weights file.
        path: PathBuf,
        /// The configuration file.
        config: PathBuf,
        /// What does not fit.
        reason: String,
    },

    /// A size whose memory, estimated before allocating, exceeds what the
    /// machine has available.
    #[error("{what} needs about {needed}; this machine has {available} available")]
    TooLarge {
        /// What was asked for.
        what: String,
        /// The estimate.
        needed: String,
        /// The memory available.
        available: String,
    },

    /// A tensor of a training step or a prediction that a GPU cannot hold
    /// at once.
    #[error(
        "{what}: its largest tensor ({layer}, {size}) is more than {device} can hold at once; \
         {remedy}"
    )]
    TensorTooLarge {
        /// What was asked for.
        what: String,
        /// The layer whose output it is.
        layer: String,
        /// Its size.
        size: String,
        /// The device, as the options name it.
        device: String,
        /// What to change.
        remedy: String,
    },

    /// A GPU whose sums over as many values as a training step takes come
    /// out wrong ([`crate::memory::wrong_sum`]).
    #[error(
        "{device} sums {len} values wrong (rows of ones summed to {got}): {what} takes such \
         sums (batch norm, group norm, the loss), and would train on wrong numbers; use a \
         smaller --batch-size or image size, or --backend flex"
    )]
    WrongSums {
        /// What was asked for.
        what: String,
        /// The values summed.
        len: usize,
        /// The first wrong sum.
        got: f32,
        /// The device, as the options name it.
        device: String,
    },

    /// `--resume` on an imported model.
    #[error("an imported model has no training run to resume")]
    NotTrainable,

    /// Training stopped on a NaN or infinite loss.
    #[error("training stopped: {reason}; {kept}")]
    NonFiniteLoss {
        /// When it happened.
        reason: String,
        /// What was kept (the last good checkpoint).
        kept: String,
    },

    /// The device failed to compute or return a result.
    #[error("the device failed: {0}")]
    Device(String),

    /// burn-train reported an error.
    #[error("training failed: {0}")]
    Training(String),
    /// A panic in this program or a library it calls, caught where one
    /// piece of work (an image to predict) is done, so that the others go on.
    #[error("internal error: {0}")]
    Internal(String),
}

impl RunError {
    /// An option value out of range: `name value: must be expected`.
    pub fn option(name: &str, value: impl std::fmt::Display, expected: &str) -> Self {
        RunError::Option {
            name: name.to_string(),
            value: value.to_string(),
            expected: expected.to_string(),
        }
    }

    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, err: impl std::fmt::Display) -> Self {
        RunError::Io {
            path: path.into(),
            reason: err.to_string(),
        }
    }

    /// A device's failure, `what` failed and its deepest cause ([`root_cause`]).
    pub fn device(what: &str, err: impl std::fmt::Display) -> Self {
        RunError::Device(format!("{what}: {}", root_cause(&err.to_string())))
    }
}

/// A CubeCL execution error in a line: what failed and its deepest cause,
/// without the chain between (several failures at once, the kernels
/// skipped for them) and the backtrace placeholders. CubeCL 0.11.3 writes
/// a failure as its summary, then `Caused by:` and an indented cause, as
/// often as the chain is long.
pub fn root_cause(message: &str) -> String {
    let parts: Vec<&str> = message.split("Caused by:").collect();
    let head = parts[0].trim();
    let cause = parts[1..].last().map(|last| {
        last.lines()
            .map(str::trim)
            .take_while(|line| !line.starts_with("No backtrace") && !line.starts_with("Asked at"))
            .filter(|line| !line.is_empty())
            .collect::<Vec<_>>()
            .join("; ")
    });
    match cause {
        Some(cause) if !cause.is_empty() => format!("{head}: {cause}"),
        _ => head.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The text CubeCL 0.11.3 gave for a 240 MB tensor on lavapipe (which
    /// binds at most 128 MiB), as Burn 0.22.1's read returned it.
    const ALLOCATION_FAILED: &str = "An error happened during execution
Caused by:
  Several failures at once
Caused by:
  The bytes were never written (failure #2, still claiming 2 buffer(s))
  skipped `ReduceKernel`: it needed memory ManagedMemoryId { value: 1 }, which carried the failure
Caused by:
  An IO error happened
Caused by:
  can't allocate buffer of size: 240000000
No backtrace available
Asked at:
No backtrace available";

    #[test]
    fn a_device_failure_is_its_summary_and_deepest_cause() {
        assert_eq!(
            root_cause(ALLOCATION_FAILED),
            "An error happened during execution: can't allocate buffer of size: 240000000"
        );
        let err = RunError::device("reading tile 3", ALLOCATION_FAILED);
        assert_eq!(
            err.to_string(),
            "the device failed: reading tile 3: An error happened during execution: \
             can't allocate buffer of size: 240000000"
        );
        assert_eq!(root_cause("lost the device"), "lost the device");
    }
}
