//! A model directory: `config.json` (a [`RunConfig`]) and `model.bpk` (the
//! U-Net's weights, Burn's burnpack format). `train` and `import` write one;
//! `predict` and `eval` read one.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::Device;
use unet::UNet;

use crate::atomic;
use crate::config::{FORMAT, RunConfig};
use crate::error::RunError;

/// The configuration file of a model directory.
pub const CONFIG_FILE: &str = "config.json";
/// The weights file of a model directory.
pub const WEIGHTS_FILE: &str = "model.bpk";

/// A model read from its directory.
#[derive(Debug)]
pub struct TrainedModel {
    /// Its `config.json`.
    pub config: RunConfig,
    /// The network, in inference mode.
    pub unet: UNet,
}

/// Checks that `writer` (`"a run"`, `"import"`) may write into `dir`: it
/// must be new or an empty folder; hidden files (`.gitkeep`, `.DS_Store`)
/// do not count. A file, or a folder holding other files, is refused
/// ([`RunError::OutputTaken`]): nothing of the user's is mixed with or
/// written over.
pub fn check_new_folder(dir: &Path, writer: &'static str) -> Result<(), RunError> {
    let taken = |what| RunError::OutputTaken {
        path: dir.to_path_buf(),
        what,
        writer,
    };
    if dir.exists() && !dir.is_dir() {
        return Err(taken("a file"));
    }
    if let Ok(entries) = std::fs::read_dir(dir)
        && entries
            .flatten()
            .any(|entry| !entry.file_name().to_string_lossy().starts_with('.'))
    {
        return Err(taken("a folder holding other files"));
    }
    Ok(())
}

/// Writes `config.json` into `dir` (atomically).
pub fn write_config(dir: &Path, config: &RunConfig) -> Result<(), RunError> {
    let path = dir.join(CONFIG_FILE);
    let json = serde_json::to_string_pretty(config).map_err(|err| RunError::io(&path, err))? + "\n";
    atomic::write(&path, json.as_bytes()).map_err(|err| RunError::io(path, err))
}

/// Reads `dir/config.json`.
pub fn read_config(dir: &Path) -> Result<RunConfig, RunError> {
    if !dir.is_dir() {
        let reason = if dir.exists() {
            "a file, not a model directory"
        } else {
            "no such directory"
        };
        return Err(RunError::ModelDir {
            dir: dir.to_path_buf(),
            reason: reason.into(),
        });
    }
    let path = dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&path).map_err(|err| RunError::ModelDir {
        dir: dir.to_path_buf(),
        reason: format!("not a model directory: cannot read {CONFIG_FILE} ({err})"),
    })?;
    let config: RunConfig = serde_json::from_str(&text).map_err(|err| RunError::ModelDir {
        dir: dir.to_path_buf(),
        reason: format!("{CONFIG_FILE} is not a run configuration: {err}"),
    })?;
    if config.format != FORMAT {
        return Err(RunError::ModelDir {
            dir: dir.to_path_buf(),
            reason: format!(
                "{CONFIG_FILE} has format '{}', this program reads '{FORMAT}'",
                config.format
            ),
        });
    }
    config.validate().map_err(|err| RunError::ModelDir {
        dir: dir.to_path_buf(),
        reason: format!("{CONFIG_FILE}: {err}"),
    })?;
    Ok(config)
}

/// Writes the weights of `unet` to `dir/model.bpk` (atomically).
pub fn write_weights(dir: &Path, unet: UNet) -> Result<PathBuf, RunError> {
    let path = dir.join(WEIGHTS_FILE);
    let bytes = unet
        .into_record()
        .into_bytes()
        .map_err(|err| RunError::io(&path, err))?;
    atomic::write(&path, &bytes).map_err(|err| RunError::io(&path, err))?;
    Ok(path)
}

/// Loads `weights` into a network built from `config` on `device`; the file
/// must hold exactly the tensors of that network, with their shapes.
pub fn load_weights(
    config: &RunConfig,
    config_path: &Path,
    weights: &Path,
    device: &Device,
) -> Result<UNet, RunError> {
    if !weights.is_file() {
        return Err(RunError::io(weights, "no such file"));
    }
    config
        .model
        .try_init(device)?
        .try_load_file(weights)
        .map(UNet::into_f32)
        .map_err(|err| RunError::Weights {
            path: weights.to_path_buf(),
            config: config_path.to_path_buf(),
            reason: err.to_string(),
        })
}

/// Reads a model directory onto `device`.
pub fn load(dir: &Path, device: &Device) -> Result<TrainedModel, RunError> {
    let config = read_config(dir)?;
    let unet = load_weights(
        &config,
        &dir.join(CONFIG_FILE),
        &dir.join(WEIGHTS_FILE),
        device,
    )?;
    Ok(TrainedModel { config, unet })
}

/// Writes a model directory: `config.json` and `model.bpk`.
pub fn save(dir: &Path, config: &RunConfig, unet: UNet) -> Result<(), RunError> {
    std::fs::create_dir_all(dir).map_err(|err| RunError::io(dir, err))?;
    write_config(dir, config)?;
    write_weights(dir, unet)?;
    Ok(())
}
