//! A configurable U-Net (Ronneberger et al., 2015) for [Burn](https://burn.dev),
//! built from the [`layers`] crate's PyTorch-exact convolutions, that loads
//! weights trained in PyTorch.
//!
//! ```
//! use burn::tensor::{Device, Tensor};
//! use unet::{Block, UNetConfig, Upsampling};
//!
//! let device = Device::flex();
//! let model = UNetConfig::new(1, 2)
//!     .with_base_width(8)
//!     .with_depth(3)
//!     .with_block(Block::DepthwiseSeparable)
//!     .with_upsampling(Upsampling::BilinearConv)
//!     .try_init(&device)?;
//! // Any size: 37 x 50 is padded to 40 x 56 inside and cropped back.
//! let logits = model.try_forward(Tensor::<4>::zeros([2, 1, 37, 50], &device))?;
//! assert_eq!(logits.dims(), [2, 2, 37, 50]);
//! # Ok::<(), unet::UNetError>(())
//! ```
#![warn(missing_docs)]

mod blocks;
mod config;
mod error;
mod loss;
mod model;
mod shape;
mod summary;
mod weights;

pub use blocks::{ConvBlock, ConvUnit, NormLayer, UnitConv, Upsampler};
pub use config::{
    Block, MAX_DEPTH, MAX_DILATION, MAX_WIDTH, Norm, UNetConfig, UNetPadding, Upsampling,
};
pub use error::{ConfigError, UNetError};
pub use loss::{cross_entropy, dice_loss, focal_loss, tversky_loss, weighted_cross_entropy};
pub use model::{Down, UNet, Up, center_crop};
pub use shape::{nearest_sizes_text, nearest_valid_input_sizes, output_size, valid_output_size};
pub use summary::{LayerSummary, Summary, summary};
pub use weights::{PYTORCH_KEY_MAP, load_pytorch_weights};
