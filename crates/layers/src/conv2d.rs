//! 2D convolution, PyTorch's `torch.nn.Conv2d`.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Tensor, TensorData};

use crate::dispatch;
use crate::error::ConvError;
use crate::geometry::ConvGeometry;
use crate::init::{ParamSource, WeightInit};
use crate::ops::add_bias;
use crate::padding::Padding;
use crate::shape::conv2d_output_shape;

/// Configuration of a [`Conv2d`]; build it with [`Conv2dConfig::try_init`].
///
/// The defaults are PyTorch's: stride 1, no padding, dilation 1, one group,
/// with bias, PyTorch's initialisation.
///
/// ```
/// use burn::tensor::{Device, Tensor};
/// use layers::{Conv2dConfig, Padding};
///
/// let device = Device::flex();
/// let conv = Conv2dConfig::new(3, 8, [3, 3])
///     .with_stride([2, 2])
///     .with_padding(Padding::uniform(1))
///     .try_init(&device)?;
/// let y = conv.try_forward(Tensor::<4>::zeros([1, 3, 28, 28], &device))?;
/// assert_eq!(y.dims(), [1, 8, 14, 14]);
/// # Ok::<(), layers::ConvError>(())
/// ```
#[derive(Config, Debug)]
pub struct Conv2dConfig {
    /// Channels of the input.
    pub in_channels: usize,
    /// Channels of the output.
    pub out_channels: usize,
    /// Kernel size `[height, width]`.
    pub kernel_size: [usize; 2],
    /// Step between output positions, `[height, width]`.
    #[config(default = "[1, 1]")]
    pub stride: [usize; 2],
    /// Zero padding around the input.
    #[config(default = "Padding::Valid")]
    pub padding: Padding,
    /// Spacing between kernel taps, `[height, width]` (atrous convolution when above 1).
    #[config(default = "[1, 1]")]
    pub dilation: [usize; 2],
    /// Channel groups: input and output channels are split into `groups`
    /// blocks and block `g` of the output sees only block `g` of the input.
    #[config(default = 1)]
    pub groups: usize,
    /// Whether a learned bias is added to each output channel.
    #[config(default = true)]
    pub bias: bool,
    /// Initial values of weight and bias.
    #[config(default = "WeightInit::PyTorch")]
    pub init: WeightInit,
}

impl Conv2dConfig {
    /// A 1x1 (pointwise) convolution: a per-pixel linear map across channels.
    pub fn pointwise(in_channels: usize, out_channels: usize) -> Self {
        Self::new(in_channels, out_channels, [1, 1])
    }

    /// A grouped convolution (ResNeXt, ShuffleNet): `groups` independent
    /// convolutions, each from `in_channels / groups` to `out_channels / groups`
    /// channels.
    pub fn grouped(
        in_channels: usize,
        out_channels: usize,
        kernel_size: [usize; 2],
        groups: usize,
    ) -> Self {
        Self::new(in_channels, out_channels, kernel_size).with_groups(groups)
    }

    /// A depthwise convolution: every input channel is convolved with its own
    /// `multiplier` filters (`groups = channels`, `out = multiplier * channels`),
    /// padded to keep the size.
    pub fn depthwise(channels: usize, multiplier: usize, kernel_size: [usize; 2]) -> Self {
        Self::new(channels, channels.saturating_mul(multiplier), kernel_size)
            .with_groups(channels)
            .with_padding(Padding::Same)
    }

    /// A dilated (atrous) convolution, padded to keep the size: the kernel's
    /// taps are `dilation` apart, so a 3x3 kernel with dilation 2 sees a 5x5 window.
    pub fn dilated(
        in_channels: usize,
        out_channels: usize,
        kernel_size: [usize; 2],
        dilation: [usize; 2],
    ) -> Self {
        Self::new(in_channels, out_channels, kernel_size)
            .with_dilation(dilation)
            .with_padding(Padding::Same)
    }

    /// Validates the configuration.
    pub fn geometry(&self) -> Result<ConvGeometry, ConvError> {
        self.resolve().map(|(geometry, _)| geometry)
    }

    /// The validated geometry and the options of the convolution (padding
    /// resolved to rows and columns).
    fn resolve(&self) -> Result<(ConvGeometry, ConvOptions<2>), ConvError> {
        let geometry = ConvGeometry::new(
            self.in_channels,
            self.out_channels,
            self.kernel_size,
            self.stride,
            self.dilation,
            self.groups,
        )?;
        let padding = self
            .padding
            .resolve(self.kernel_size, self.stride, self.dilation)?;
        let options =
            ConvOptions::new_with_padding(self.stride, padding, self.dilation, self.groups);
        Ok((geometry, options))
    }

    /// Weight shape in PyTorch's layout: `[out_channels, in_channels / groups, kh, kw]`.
    pub fn weight_shape(&self) -> [usize; 4] {
        [
            self.out_channels,
            self.in_channels / self.groups.max(1),
            self.kernel_size[0],
            self.kernel_size[1],
        ]
    }

    /// Builds the layer with freshly initialised parameters.
    pub fn try_init(&self, device: &Device) -> Result<Conv2d, ConvError> {
        self.build(ParamSource::Fresh, device)
    }

    /// Builds the layer with freshly initialised parameters.
    ///
    /// # Panics
    /// With the message of [`Conv2dConfig::try_init`]'s error.
    pub fn init(&self, device: &Device) -> Conv2d {
        self.try_init(device).unwrap_or_else(|err| panic!("{err}"))
    }

    /// Builds the layer from given parameters (a PyTorch `weight` of shape
    /// [`Conv2dConfig::weight_shape`] and a `bias` of `[out_channels]`).
    pub fn try_init_from(
        &self,
        weight: TensorData,
        bias: Option<TensorData>,
        device: &Device,
    ) -> Result<Conv2d, ConvError> {
        self.build(ParamSource::Given(weight, bias), device)
    }

    fn build(&self, source: ParamSource, device: &Device) -> Result<Conv2d, ConvError> {
        let (geometry, options) = self.resolve()?;
        let (weight, bias) = source.into_params(
            &self.init,
            &geometry,
            self.weight_shape(),
            self.bias.then_some(self.out_channels),
            device,
        )?;
        Ok(Conv2d {
            weight,
            bias,
            geometry,
            padding: self.padding,
            options,
        })
    }
}

/// 2D convolution (cross-correlation, as in every framework) over
/// `[batch, channels, height, width]` tensors, equal to `torch.nn.Conv2d`.
///
/// Output size per spatial dimension:
/// `out = floor((in + pad_begin + pad_end - dilation * (kernel - 1) - 1) / stride) + 1`.
#[derive(Module, Debug)]
pub struct Conv2d {
    /// `[out_channels, in_channels / groups, kh, kw]`, PyTorch's layout.
    pub weight: Param<Tensor<4>>,
    /// `[out_channels]`.
    pub bias: Option<Param<Tensor<1>>>,
    #[module(skip)]
    geometry: ConvGeometry,
    #[module(skip)]
    padding: Padding,
    /// Stride, padding in rows and columns, dilation and groups, resolved once.
    #[module(skip)]
    options: ConvOptions<2>,
}

impl Conv2d {
    /// Channels, kernel, stride, dilation and groups.
    pub fn geometry(&self) -> &ConvGeometry {
        &self.geometry
    }

    /// The padding setting.
    pub fn padding(&self) -> Padding {
        self.padding
    }

    /// The output shape for an input of shape `[batch, in_channels, height, width]`,
    /// or the reason there is none.
    pub fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4], ConvError> {
        let g = &self.geometry;
        let spatial = g.check_input(input)?;
        let [h, w] = conv2d_output_shape(
            spatial,
            g.kernel_size(),
            g.stride(),
            self.options.padding,
            g.dilation(),
        )?;
        Ok([input[0], g.out_channels(), h, w])
    }

    /// Applies the convolution.
    ///
    /// # Shapes
    /// - `input`: `[batch, in_channels, height, width]`
    /// - output: `[batch, out_channels, height_out, width_out]`
    pub fn try_forward(&self, input: Tensor<4>) -> Result<Tensor<4>, ConvError> {
        self.output_shape(input.dims())?;
        let output = dispatch::conv2d(input, self.weight.val(), &self.options);
        Ok(add_bias(output, self.bias.as_ref()))
    }

    /// Applies the convolution.
    ///
    /// # Panics
    /// With the message of [`Conv2d::try_forward`]'s error.
    pub fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        self.try_forward(input)
            .unwrap_or_else(|err| panic!("{err}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pytorch_init_bound_is_one_over_sqrt_fan_in() {
        let device = Device::flex();
        let conv = Conv2dConfig::new(4, 6, [3, 2]).with_groups(2).init(&device);
        // fan_in = 4 / 2 * 3 * 2 = 12
        let bound = 1.0 / 12f32.sqrt();
        let weight = conv.weight.val().into_data().try_to_vec::<f32>().unwrap();
        let bias = conv
            .bias
            .unwrap()
            .val()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert_eq!(weight.len(), 6 * 2 * 3 * 2);
        assert!(weight.iter().chain(&bias).all(|v| v.abs() <= bound));
        // Not degenerate: the draws spread over most of the interval.
        let max = weight.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(max > 0.5 * bound, "max |w| = {max}, bound {bound}");
    }

    #[test]
    fn variants_set_what_their_names_say() {
        let depthwise = Conv2dConfig::depthwise(8, 2, [3, 3]);
        assert_eq!(
            (depthwise.out_channels, depthwise.groups, depthwise.padding),
            (16, 8, Padding::Same)
        );
        assert_eq!(depthwise.weight_shape(), [16, 1, 3, 3]);
        assert_eq!(Conv2dConfig::pointwise(8, 4).weight_shape(), [4, 8, 1, 1]);
        assert_eq!(
            Conv2dConfig::grouped(8, 4, [3, 3], 4).weight_shape(),
            [4, 2, 3, 3]
        );
    }

    #[test]
    fn impossible_configurations_are_errors() {
        let device = Device::flex();
        let err = Conv2dConfig::new(3, 4, [3, 3])
            .with_stride([2, 2])
            .with_padding(Padding::Same)
            .try_init(&device)
            .unwrap_err();
        assert_eq!(err, ConvError::SameWithStride { stride: [2, 2] });
        let err = Conv2dConfig::grouped(6, 4, [3, 3], 4)
            .try_init(&device)
            .unwrap_err();
        assert!(matches!(
            err,
            ConvError::ChannelsNotDivisible {
                which: "in_channels",
                ..
            }
        ));
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let device = Device::flex();
        let conv = Conv2dConfig::new(2, 2, [5, 5]).init(&device);
        let err = conv
            .try_forward(Tensor::zeros([1, 2, 3, 3], &device))
            .unwrap_err();
        assert!(matches!(err, ConvError::InputTooSmall { .. }), "{err}");
        let err = conv
            .try_forward(Tensor::zeros([1, 3, 8, 8], &device))
            .unwrap_err();
        assert!(matches!(
            err,
            ConvError::InputChannels {
                expected: 2,
                got: 3,
                ..
            }
        ));
    }

    #[test]
    fn same_padding_keeps_the_size_for_even_kernels_and_dilation() {
        let device = Device::flex();
        for (kernel, dilation) in [([2, 4], [1, 1]), ([3, 2], [2, 3])] {
            let conv = Conv2dConfig::new(1, 1, kernel)
                .with_dilation(dilation)
                .with_padding(Padding::Same)
                .init(&device);
            let y = conv.forward(Tensor::zeros([1, 1, 7, 6], &device));
            assert_eq!(y.dims(), [1, 1, 7, 6]);
        }
    }
}
