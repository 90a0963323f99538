//! Factorised convolutions: depthwise-separable (Xception, MobileNet) and
//! spatially separable (`k x 1` then `1 x k`).

use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Device, Tensor};

use crate::conv2d::{Conv2d, Conv2dConfig};
use crate::error::ConvError;
use crate::init::WeightInit;
use crate::padding::Padding;

/// Configuration of a [`DepthwiseSeparableConv2d`].
///
/// ```
/// use burn::tensor::{Device, Tensor};
/// use layers::DepthwiseSeparableConv2dConfig;
///
/// let device = Device::flex();
/// let conv = DepthwiseSeparableConv2dConfig::new(16, 32, [3, 3]).try_init(&device)?;
/// let y = conv.try_forward(Tensor::<4>::zeros([2, 16, 20, 20], &device))?;
/// assert_eq!(y.dims(), [2, 32, 20, 20]);
/// // 16*9 + 16 depthwise, 16*32 + 32 pointwise parameters, against 16*32*9 + 32.
/// assert_eq!(burn::module::Module::num_params(&conv), 704);
/// # Ok::<(), layers::ConvError>(())
/// ```
#[derive(Config, Debug)]
pub struct DepthwiseSeparableConv2dConfig {
    /// Channels of the input.
    pub in_channels: usize,
    /// Channels of the output.
    pub out_channels: usize,
    /// Kernel size of the depthwise convolution, `[height, width]`.
    pub kernel_size: [usize; 2],
    /// Filters per input channel in the depthwise step.
    #[config(default = 1)]
    pub depth_multiplier: usize,
    /// Stride of the depthwise convolution.
    #[config(default = "[1, 1]")]
    pub stride: [usize; 2],
    /// Padding of the depthwise convolution (default: keep the size).
    #[config(default = "Padding::Same")]
    pub padding: Padding,
    /// Dilation of the depthwise convolution.
    #[config(default = "[1, 1]")]
    pub dilation: [usize; 2],
    /// Whether both convolutions have a bias.
    #[config(default = true)]
    pub bias: bool,
    /// Initial values of both convolutions.
    #[config(default = "WeightInit::PyTorch")]
    pub init: WeightInit,
}

impl DepthwiseSeparableConv2dConfig {
    /// The depthwise step: `in -> in * depth_multiplier` channels, one group per input channel.
    pub fn depthwise_config(&self) -> Conv2dConfig {
        Conv2dConfig::depthwise(self.in_channels, self.depth_multiplier, self.kernel_size)
            .with_stride(self.stride)
            .with_padding(self.padding)
            .with_dilation(self.dilation)
            .with_bias(self.bias)
            .with_init(self.init.clone())
    }

    /// The pointwise step: `in * depth_multiplier -> out` channels, 1x1.
    pub fn pointwise_config(&self) -> Conv2dConfig {
        Conv2dConfig::pointwise(
            self.in_channels.saturating_mul(self.depth_multiplier),
            self.out_channels,
        )
        .with_bias(self.bias)
        .with_init(self.init.clone())
    }

    /// Builds the layer.
    pub fn try_init(&self, device: &Device) -> Result<DepthwiseSeparableConv2d, ConvError> {
        if self.depth_multiplier == 0 {
            return Err(ConvError::ZeroChannels {
                which: "depth_multiplier",
            });
        }
        Ok(DepthwiseSeparableConv2d {
            depthwise: self.depthwise_config().try_init(device)?,
            pointwise: self.pointwise_config().try_init(device)?,
        })
    }

    /// Builds the layer.
    ///
    /// # Panics
    /// With the message of [`DepthwiseSeparableConv2dConfig::try_init`]'s error.
    pub fn init(&self, device: &Device) -> DepthwiseSeparableConv2d {
        self.try_init(device).unwrap_or_else(|err| panic!("{err}"))
    }
}

/// A depthwise convolution (each channel filtered on its own) followed by a
/// pointwise 1x1 convolution that mixes channels: about `1/out + 1/(kh*kw)`
/// of the multiply-adds of a full convolution.
#[derive(Module, Debug)]
pub struct DepthwiseSeparableConv2d {
    /// `in -> in * multiplier`, `groups = in`.
    pub depthwise: Conv2d,
    /// `in * multiplier -> out`, 1x1.
    pub pointwise: Conv2d,
}

impl DepthwiseSeparableConv2d {
    /// Applies both convolutions.
    ///
    /// # Shapes
    /// - `input`: `[batch, in_channels, height, width]`
    /// - output: `[batch, out_channels, height_out, width_out]`
    pub fn try_forward(&self, input: Tensor<4>) -> Result<Tensor<4>, ConvError> {
        self.pointwise
            .try_forward(self.depthwise.try_forward(input)?)
    }

    /// Applies both convolutions.
    ///
    /// # Panics
    /// With the message of [`DepthwiseSeparableConv2d::try_forward`]'s error.
    pub fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        self.try_forward(input)
            .unwrap_or_else(|err| panic!("{err}"))
    }
}

/// Configuration of a [`SpatiallySeparableConv2d`].
///
/// ```
/// use burn::tensor::{Device, Tensor};
/// use layers::{Padding, SpatiallySeparableConv2dConfig};
///
/// let device = Device::flex();
/// let conv = SpatiallySeparableConv2dConfig::new(4, 8, [3, 3])
///     .with_padding(Padding::Same)
///     .try_init(&device)?;
/// assert_eq!(conv.vertical.weight.dims(), [8, 4, 3, 1]);
/// assert_eq!(conv.horizontal.weight.dims(), [8, 8, 1, 3]);
/// let y = conv.try_forward(Tensor::<4>::zeros([1, 4, 9, 9], &device))?;
/// assert_eq!(y.dims(), [1, 8, 9, 9]);
/// # Ok::<(), layers::ConvError>(())
/// ```
#[derive(Config, Debug)]
pub struct SpatiallySeparableConv2dConfig {
    /// Channels of the input.
    pub in_channels: usize,
    /// Channels of the output.
    pub out_channels: usize,
    /// The `[kh, kw]` window the pair covers: a `kh x 1` then a `1 x kw` kernel.
    pub kernel_size: [usize; 2],
    /// Channels between the two convolutions (default: `out_channels`).
    #[config(default = "None")]
    pub mid_channels: Option<usize>,
    /// Stride `[sh, sw]`: `sh` in the first convolution, `sw` in the second.
    #[config(default = "[1, 1]")]
    pub stride: [usize; 2],
    /// Padding: the rows go to the first convolution, the columns to the second.
    #[config(default = "Padding::Valid")]
    pub padding: Padding,
    /// Dilation `[dh, dw]`, split like the stride.
    #[config(default = "[1, 1]")]
    pub dilation: [usize; 2],
    /// Whether both convolutions have a bias.
    #[config(default = true)]
    pub bias: bool,
    /// Initial values of both convolutions.
    #[config(default = "WeightInit::PyTorch")]
    pub init: WeightInit,
}

impl SpatiallySeparableConv2dConfig {
    fn mid(&self) -> usize {
        self.mid_channels.unwrap_or(self.out_channels)
    }

    /// The first convolution: `kh x 1`, `in -> mid` channels.
    pub fn vertical_config(&self) -> Conv2dConfig {
        let (rows, _) = self.padding.split_axes();
        Conv2dConfig::new(self.in_channels, self.mid(), [self.kernel_size[0], 1])
            .with_stride([self.stride[0], 1])
            .with_padding(rows)
            .with_dilation([self.dilation[0], 1])
            .with_bias(self.bias)
            .with_init(self.init.clone())
    }

    /// The second convolution: `1 x kw`, `mid -> out` channels.
    pub fn horizontal_config(&self) -> Conv2dConfig {
        let (_, columns) = self.padding.split_axes();
        Conv2dConfig::new(self.mid(), self.out_channels, [1, self.kernel_size[1]])
            .with_stride([1, self.stride[1]])
            .with_padding(columns)
            .with_dilation([1, self.dilation[1]])
            .with_bias(self.bias)
            .with_init(self.init.clone())
    }

    /// Builds the layer.
    pub fn try_init(&self, device: &Device) -> Result<SpatiallySeparableConv2d, ConvError> {
        Ok(SpatiallySeparableConv2d {
            vertical: self.vertical_config().try_init(device)?,
            horizontal: self.horizontal_config().try_init(device)?,
        })
    }

    /// Builds the layer.
    ///
    /// # Panics
    /// With the message of [`SpatiallySeparableConv2dConfig::try_init`]'s error.
    pub fn init(&self, device: &Device) -> SpatiallySeparableConv2d {
        self.try_init(device).unwrap_or_else(|err| panic!("{err}"))
    }
}

/// A `kh x 1` convolution followed by a `1 x kw` one (Inception v3's
/// factorisation): `kh + kw` taps per channel pair instead of `kh * kw`.
/// Without a nonlinearity in between it can express exactly the rank-1
/// (outer-product) kernels of a full `kh x kw` convolution.
#[derive(Module, Debug)]
pub struct SpatiallySeparableConv2d {
    /// `kh x 1`, `in -> mid`.
    pub vertical: Conv2d,
    /// `1 x kw`, `mid -> out`.
    pub horizontal: Conv2d,
}

impl SpatiallySeparableConv2d {
    /// Applies both convolutions.
    ///
    /// # Shapes
    /// - `input`: `[batch, in_channels, height, width]`
    /// - output: `[batch, out_channels, height_out, width_out]`
    pub fn try_forward(&self, input: Tensor<4>) -> Result<Tensor<4>, ConvError> {
        self.horizontal
            .try_forward(self.vertical.try_forward(input)?)
    }

    /// Applies both convolutions.
    ///
    /// # Panics
    /// With the message of [`SpatiallySeparableConv2d::try_forward`]'s error.
    pub fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        self.try_forward(input)
            .unwrap_or_else(|err| panic!("{err}"))
    }
}
