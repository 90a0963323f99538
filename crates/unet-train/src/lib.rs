//! Training and using U-Nets for segmentation: data (the synthetic generator,
//! image folders, augmentation, the train/validation split), training on
//! burn-train, prediction, evaluation, and PyTorch weight import. The `unet`
//! program (crate `unet-cli`) is a command line over this library.
//!
//! ```
//! use unet_train::config::{DataSource, Preprocess, RunConfig, TrainingConfig};
//! use unet::UNetConfig;
//!
//! let config = RunConfig::trained(
//!     UNetConfig::new(1, 2).with_base_width(8).with_depth(2),
//!     Preprocess::default(),
//!     TrainingConfig {
//!         data: DataSource::Synthetic { samples: 16, size: 32 },
//!         epochs: 2,
//!         ..TrainingConfig::synthetic()
//!     },
//! );
//! assert!(config.training()?.validate().is_ok());
//! # Ok::<(), unet_train::RunError>(())
//! ```
#![warn(missing_docs)]

pub mod allocator;
pub mod atomic;
pub mod backend;
pub mod config;
pub mod console;
pub mod data;
pub mod error;
pub mod eval;
pub mod guard;
pub mod history;
pub mod import;
pub mod instances;
pub mod memory;
pub mod model_dir;
pub mod precision;
pub mod predict;
pub mod render;
pub mod score;
pub mod train;

pub use backend::BackendKind;
pub use error::RunError;
pub use precision::Precision;
