//! 2D transposed convolution, PyTorch's `torch.nn.ConvTranspose2d`.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor, TensorData};

use crate::dispatch;
use crate::error::ConvError;
use crate::geometry::ConvGeometry;
use crate::init::{ParamSource, WeightInit};
use crate::ops::{add_bias, pad_or_crop};
use crate::shape::{conv_transpose2d_output_shape, conv_transpose2d_output_size_range};

/// Configuration of a [`ConvTranspose2d`]; build it with
/// [`ConvTranspose2dConfig::try_init`].
///
/// The defaults are PyTorch's: stride 1, padding 0, output padding 0,
/// dilation 1, one group, with bias, PyTorch's initialisation.
///
/// ```
/// use burn::tensor::{Device, Tensor};
/// use layers::ConvTranspose2dConfig;
///
/// let device = Device::flex();
/// // Kernel 3, stride 2, padding 1, output padding 1: exactly doubles the size.
/// let up = ConvTranspose2dConfig::new(8, 4, [3, 3])
///     .with_stride([2, 2])
///     .with_padding([1, 1])
///     .with_output_padding([1, 1])
///     .try_init(&device)?;
/// let y = up.try_forward(Tensor::<4>::zeros([1, 8, 5, 7], &device))?;
/// assert_eq!(y.dims(), [1, 4, 10, 14]);
/// # Ok::<(), layers::ConvError>(())
/// ```
#[derive(Config, Debug)]
pub struct ConvTranspose2dConfig {
    /// Channels of the input.
    pub in_channels: usize,
    /// Channels of the output.
    pub out_channels: usize,
    /// Kernel size `[height, width]`.
    pub kernel_size: [usize; 2],
    /// Spacing of the input values in the output, `[height, width]`.
    #[config(default = "[1, 1]")]
    pub stride: [usize; 2],
    /// Rows (columns) removed from each side of the full output, `[height, width]`:
    /// the padding of the convolution this one transposes.
    #[config(default = "[0, 0]")]
    pub padding: [usize; 2],
    /// Rows (columns) added at the bottom (right) of the output, to reach the
    /// size a strided convolution rounded down. Must be smaller than the
    /// stride or the dilation in each dimension.
    #[config(default = "[0, 0]")]
    pub output_padding: [usize; 2],
    /// Spacing between kernel taps, `[height, width]`.
    #[config(default = "[1, 1]")]
    pub dilation: [usize; 2],
    /// Channel groups (see [`Conv2dConfig::groups`](crate::Conv2dConfig::groups)).
    #[config(default = 1)]
    pub groups: usize,
    /// Whether a learned bias is added to each output channel.
    #[config(default = true)]
    pub bias: bool,
    /// Initial values of weight and bias.
    #[config(default = "WeightInit::PyTorch")]
    pub init: WeightInit,
}

impl ConvTranspose2dConfig {
    /// The U-Net "up-convolution": kernel 2, stride 2, doubling height and width.
    pub fn up_convolution(in_channels: usize, out_channels: usize) -> Self {
        Self::new(in_channels, out_channels, [2, 2]).with_stride([2, 2])
    }

    /// Bilinear upsampling by `factor` as FCN starts it: kernel
    /// `2 * factor - factor % 2`, stride `factor`, padding `ceil((factor - 1) / 2)`,
    /// one group per channel, no bias, [`WeightInit::Bilinear`]. Away from the
    /// border it computes exactly what bilinear interpolation (with
    /// `align_corners = false`) does, and stays trainable.
    pub fn bilinear_upsampling(channels: usize, factor: usize) -> Self {
        let kernel = (2 * factor).saturating_sub(factor % 2);
        Self::new(channels, channels, [kernel, kernel])
            .with_stride([factor, factor])
            .with_padding([factor.saturating_sub(1).div_ceil(2); 2])
            .with_groups(channels)
            .with_bias(false)
            .with_init(WeightInit::Bilinear)
    }

    /// Validates the configuration.
    pub fn geometry(&self) -> Result<ConvGeometry, ConvError> {
        let geometry = ConvGeometry::new(
            self.in_channels,
            self.out_channels,
            self.kernel_size,
            self.stride,
            self.dilation,
            self.groups,
        )?;
        crate::shape::check_output_padding(self.output_padding, self.stride, self.dilation)?;
        Ok(geometry)
    }

    /// Weight shape in PyTorch's layout: `[in_channels, out_channels / groups, kh, kw]`.
    pub fn weight_shape(&self) -> [usize; 4] {
        [
            self.in_channels,
            self.out_channels / self.groups.max(1),
            self.kernel_size[0],
            self.kernel_size[1],
        ]
    }

    /// Builds the layer with freshly initialised parameters.
    pub fn try_init(&self, device: &Device) -> Result<ConvTranspose2d, ConvError> {
        self.build(ParamSource::Fresh, device)
    }

    /// Builds the layer with freshly initialised parameters.
    ///
    /// # Panics
    /// With the message of [`ConvTranspose2dConfig::try_init`]'s error.
    pub fn init(&self, device: &Device) -> ConvTranspose2d {
        self.try_init(device).unwrap_or_else(|err| panic!("{err}"))
    }

    /// Builds the layer from given parameters (a PyTorch `weight` of shape
    /// [`ConvTranspose2dConfig::weight_shape`] and a `bias` of `[out_channels]`).
    pub fn try_init_from(
        &self,
        weight: TensorData,
        bias: Option<TensorData>,
        device: &Device,
    ) -> Result<ConvTranspose2d, ConvError> {
        self.build(ParamSource::Given(weight, bias), device)
    }

    fn build(&self, source: ParamSource, device: &Device) -> Result<ConvTranspose2d, ConvError> {
        let geometry = self.geometry()?;
        let (weight, bias) = source.into_params(
            &self.init,
            &geometry,
            self.weight_shape(),
            self.bias.then_some(self.out_channels),
            device,
        )?;
        Ok(ConvTranspose2d {
            weight,
            bias,
            geometry,
            padding: self.padding,
            output_padding: self.output_padding,
        })
    }
}

/// 2D transposed convolution over `[batch, channels, height, width]` tensors,
/// equal to `torch.nn.ConvTranspose2d`: the gradient of a convolution with
/// respect to its input, used as a learnable upsampler.
///
/// Output size per spatial dimension:
/// `out = (in - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1`.
#[derive(Module, Debug)]
pub struct ConvTranspose2d {
    /// `[in_channels, out_channels / groups, kh, kw]`, PyTorch's layout.
    pub weight: Param<Tensor<4>>,
    /// `[out_channels]`.
    pub bias: Option<Param<Tensor<1>>>,
    #[module(skip)]
    pub(crate) geometry: ConvGeometry,
    #[module(skip)]
    pub(crate) padding: [usize; 2],
    #[module(skip)]
    pub(crate) output_padding: [usize; 2],
}

impl ConvTranspose2d {
    /// Channels, kernel, stride, dilation and groups.
    pub fn geometry(&self) -> &ConvGeometry {
        &self.geometry
    }

    /// Rows and columns removed from each side of the full output.
    pub fn padding(&self) -> [usize; 2] {
        self.padding
    }

    /// Rows and columns added at the bottom and right of the output.
    pub fn output_padding(&self) -> [usize; 2] {
        self.output_padding
    }

    /// The output shape for an input of shape `[batch, in_channels, height, width]`,
    /// or the reason there is none.
    pub fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4], ConvError> {
        self.output_shape_with_padding(input, self.output_padding)
    }

    pub(crate) fn output_shape_with_padding(
        &self,
        input: [usize; 4],
        output_padding: [usize; 2],
    ) -> Result<[usize; 4], ConvError> {
        transposed_output_shape(&self.geometry, self.padding, output_padding, input)
    }

    /// The output padding that makes the output `size` (`[height, width]`)
    /// for an input of shape `input`, as PyTorch's `output_size` argument does.
    pub fn output_padding_for(
        &self,
        input: [usize; 4],
        size: [usize; 2],
    ) -> Result<[usize; 2], ConvError> {
        let g = &self.geometry;
        let spatial = g.check_input(input)?;
        let (min, max) = conv_transpose2d_output_size_range(
            spatial,
            g.kernel_size(),
            g.stride(),
            self.padding,
            g.dilation(),
        )?;
        if (0..2).any(|i| size[i] < min[i] || size[i] > max[i]) {
            return Err(ConvError::OutputSizeUnreachable {
                requested: size,
                input: spatial,
                min,
                max,
            });
        }
        Ok([size[0] - min[0], size[1] - min[1]])
    }

    /// Applies the transposed convolution.
    ///
    /// # Shapes
    /// - `input`: `[batch, in_channels, height, width]`
    /// - output: `[batch, out_channels, height_out, width_out]`
    pub fn try_forward(&self, input: Tensor<4>) -> Result<Tensor<4>, ConvError> {
        self.forward_padded(input, self.output_padding)
    }

    /// Applies the transposed convolution.
    ///
    /// # Panics
    /// With the message of [`ConvTranspose2d::try_forward`]'s error.
    pub fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        self.try_forward(input)
            .unwrap_or_else(|err| panic!("{err}"))
    }

    /// Applies the transposed convolution so that the output has spatial size
    /// `size`, like PyTorch's `forward(input, output_size)`: a strided
    /// convolution maps several input sizes to one output size, and this picks
    /// the output padding (in `0..stride`) that inverts it. The configured
    /// `output_padding` is ignored.
    ///
    /// ```
    /// use burn::tensor::{Device, Tensor};
    /// use layers::ConvTranspose2dConfig;
    ///
    /// let device = Device::flex();
    /// let up = ConvTranspose2dConfig::new(2, 2, [3, 3])
    ///     .with_stride([2, 2])
    ///     .with_padding([1, 1])
    ///     .init(&device);
    /// let x = Tensor::<4>::zeros([1, 2, 4, 4], &device);
    /// // A stride-2 convolution maps both 7 and 8 rows to 4: say which one to get back.
    /// assert_eq!(up.try_forward_with_output_size(x.clone(), [8, 7])?.dims(), [1, 2, 8, 7]);
    /// assert!(up.try_forward_with_output_size(x, [9, 7]).is_err());
    /// # Ok::<(), layers::ConvError>(())
    /// ```
    pub fn try_forward_with_output_size(
        &self,
        input: Tensor<4>,
        size: [usize; 2],
    ) -> Result<Tensor<4>, ConvError> {
        let output_padding = self.output_padding_for(input.dims(), size)?;
        self.forward_padded(input, output_padding)
    }

    /// As [`ConvTranspose2d::try_forward_with_output_size`].
    ///
    /// # Panics
    /// With the message of its error.
    pub fn forward_with_output_size(&self, input: Tensor<4>, size: [usize; 2]) -> Tensor<4> {
        self.try_forward_with_output_size(input, size)
            .unwrap_or_else(|err| panic!("{err}"))
    }

    fn forward_padded(
        &self,
        input: Tensor<4>,
        output_padding: [usize; 2],
    ) -> Result<Tensor<4>, ConvError> {
        self.output_shape_with_padding(input.dims(), output_padding)?;
        let g = &self.geometry;
        let full = dispatch::conv_transpose2d_full(
            input,
            self.weight.val(),
            g.stride(),
            g.dilation(),
            g.groups(),
        );
        let pads: [(i64, i64); 2] = std::array::from_fn(|i| {
            let p = self.padding[i] as i64;
            (-p, output_padding[i] as i64 - p)
        });
        Ok(add_bias(pad_or_crop(full, pads), self.bias.as_ref()))
    }
}

/// The output shape of a transposed convolution (shared by [`ConvTranspose2d`]
/// and [`UpConv2d`](crate::UpConv2d)).
pub(crate) fn transposed_output_shape(
    geometry: &ConvGeometry,
    padding: [usize; 2],
    output_padding: [usize; 2],
    input: [usize; 4],
) -> Result<[usize; 4], ConvError> {
    let [h, w] = conv_transpose2d_output_shape(
        geometry.check_input(input)?,
        geometry.kernel_size(),
        geometry.stride(),
        padding,
        output_padding,
        geometry.dilation(),
    )?;
    Ok([input[0], geometry.out_channels(), h, w])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(x: Tensor<4>) -> Vec<f32> {
        x.into_data().try_to_vec().unwrap()
    }

    /// Seed 002: PyTorch's `ConvTranspose2d(1, 1, 2, bias=False)` with kernel
    /// `[[1, 0], [0, 1]]` on `[[2, 2], [0, 2]]`:
    ///
    /// ```python
    /// conv = torch.nn.ConvTranspose2d(1, 1, 2, bias=False)
    /// conv.weight.data = torch.tensor([[[[1., 0.], [0., 1.]]]])
    /// conv(torch.tensor([[[[2., 2.], [0., 2.]]]]))  # [[2, 2, 0], [0, 4, 2], [0, 0, 2]]
    /// ```
    #[test]
    fn seed_example_2x2() {
        let device = Device::flex();
        let conv = ConvTranspose2dConfig::new(1, 1, [2, 2])
            .with_bias(false)
            .try_init_from(
                TensorData::new(vec![1.0f32, 0.0, 0.0, 1.0], [1, 1, 2, 2]),
                None,
                &device,
            )
            .unwrap();
        let x = Tensor::from_data(
            TensorData::new(vec![2.0f32, 2.0, 0.0, 2.0], [1, 1, 2, 2]),
            &device,
        );
        let y = conv.forward(x);
        assert_eq!(y.dims(), [1, 1, 3, 3]);
        assert_eq!(values(y), [2.0, 2.0, 0.0, 0.0, 4.0, 2.0, 0.0, 0.0, 2.0]);
    }

    #[test]
    fn output_size_picks_the_output_padding() {
        let device = Device::flex();
        let conv = ConvTranspose2dConfig::new(1, 1, [3, 3])
            .with_stride([3, 2])
            .with_padding([1, 1])
            .init(&device);
        // min = (4 - 1) * 3 - 2 + 3 = 10 rows, (4 - 1) * 2 - 2 + 3 = 7 columns.
        assert_eq!(conv.output_padding_for([1, 1, 4, 4], [12, 8]), Ok([2, 1]));
        assert_eq!(
            conv.output_padding_for([1, 1, 4, 4], [13, 8]),
            Err(ConvError::OutputSizeUnreachable {
                requested: [13, 8],
                input: [4, 4],
                min: [10, 7],
                max: [12, 8]
            })
        );
    }

    #[test]
    fn output_padding_follows_pytorchs_rule() {
        let device = Device::flex();
        let base = ConvTranspose2dConfig::new(2, 2, [3, 3]);
        assert!(
            base.clone()
                .with_output_padding([1, 1])
                .try_init(&device)
                .is_err()
        );
        // Allowed below the dilation even with stride 1.
        assert!(
            base.clone()
                .with_output_padding([1, 1])
                .with_dilation([2, 2])
                .try_init(&device)
                .is_ok()
        );
    }

    #[test]
    fn bilinear_needs_equal_channels() {
        let err = ConvTranspose2dConfig::new(2, 3, [4, 4])
            .with_init(WeightInit::Bilinear)
            .try_init(&Device::flex())
            .unwrap_err();
        assert_eq!(
            err,
            ConvError::BilinearChannels {
                in_channels: 2,
                out_channels: 3
            }
        );
    }
}
