//! PyTorch-exact 2D convolution layers for [Burn](https://burn.dev).
//!
//! [`Conv2d`] and [`ConvTranspose2d`] take every option of `torch.nn.Conv2d` and
//! `torch.nn.ConvTranspose2d` (stride, padding including `same`, dilation,
//! groups, bias, output padding, output size), keep PyTorch's weight layouts
//! and default initialisation, and give PyTorch's numbers forward and
//! backward on every Burn backend. The usual variants have a named way in:
//!
//! | variant | how |
//! |---|---|
//! | pointwise 1x1 | [`Conv2dConfig::pointwise`] |
//! | grouped | [`Conv2dConfig::grouped`] |
//! | depthwise (with channel multiplier) | [`Conv2dConfig::depthwise`] |
//! | dilated (atrous) | [`Conv2dConfig::dilated`] |
//! | depthwise-separable | [`DepthwiseSeparableConv2d`] |
//! | spatially separable (`k x 1` then `1 x k`) | [`SpatiallySeparableConv2d`] |
//! | U-Net up-convolution (k2 s2 transposed) | [`ConvTranspose2dConfig::up_convolution`] |
//! | transposed conv as zero insertion + conv | [`UpConv2d`] |
//! | bilinear upsampling (FCN initialiser) | [`ConvTranspose2dConfig::bilinear_upsampling`] |
//!
//! Beside them, the rest of a U-Net's blocks with kernels of their own on
//! the CPU backends: [`BatchNorm`] (PyTorch's `BatchNorm2d`, with the ReLU
//! after it fused) and [`max_pool2d`].
//!
//! Impossible configurations and inputs are a [`ConvError`], never a panic:
//! every layer has `try_init` and `try_forward`.
//!
//! ```
//! use burn::tensor::{Device, Tensor};
//! use layers::{Conv2dConfig, ConvTranspose2dConfig, Padding};
//!
//! let device = Device::flex();
//! let down = Conv2dConfig::new(1, 8, [3, 3])
//!     .with_stride([2, 2])
//!     .with_padding(Padding::uniform(1))
//!     .try_init(&device)?;
//! let up = ConvTranspose2dConfig::up_convolution(8, 1).try_init(&device)?;
//! let x = Tensor::<4>::zeros([2, 1, 32, 32], &device);
//! let y = up.try_forward(down.try_forward(x)?)?;
//! assert_eq!(y.dims(), [2, 1, 32, 32]);
//! # Ok::<(), layers::ConvError>(())
//! ```
#![warn(missing_docs)]

mod batch_norm;
mod capacity;
mod conv2d;
mod conv_transpose2d;
mod cpu;
mod dispatch;
mod error;
mod geometry;
pub mod init;
mod lowering;
mod ops;
mod padding;
mod pool;
mod separable;
pub mod shape;
mod up_conv;

pub use batch_norm::{BatchNorm, BatchNormConfig};
pub use capacity::device_holds;
pub use conv_transpose2d::{ConvTranspose2d, ConvTranspose2dConfig};
pub use conv2d::{Conv2d, Conv2dConfig};
pub use error::ConvError;
pub use geometry::ConvGeometry;
pub use init::WeightInit;
pub use padding::Padding;
pub use pool::max_pool2d;
pub use separable::{
    DepthwiseSeparableConv2d, DepthwiseSeparableConv2dConfig, SpatiallySeparableConv2d,
    SpatiallySeparableConv2dConfig,
};
pub use up_conv::UpConv2d;
