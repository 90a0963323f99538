//! Transposed convolution computed as "up-convolution": zero insertion
//! followed by an ordinary convolution.

use burn::module::{Module, Param};
use burn::tensor::Tensor;
use burn::tensor::ops::ConvOptions;

use crate::conv_transpose2d::{ConvTranspose2d, transposed_output_shape};
use crate::dispatch;
use crate::error::ConvError;
use crate::geometry::ConvGeometry;
use crate::ops::{add_bias, insert_zeros, pad_or_crop};

/// A transposed convolution computed the way it is usually explained: spread
/// the input by the stride with zeros between the values, pad by
/// `dilation * (kernel - 1) - padding` (plus `output_padding` at the end), and
/// run an ordinary stride-1 convolution with the kernel rotated by 180 degrees
/// and its channel axes swapped.
///
/// It holds the same parameters as [`ConvTranspose2d`] (same layout, same
/// names) and gives the same numbers, forward and backward; it is slower,
/// since it multiplies the inserted zeros too. Convert either way with `From`.
///
/// ```
/// use burn::tensor::{Device, Tensor};
/// use layers::{ConvTranspose2dConfig, UpConv2d};
///
/// let device = Device::flex();
/// let transposed = ConvTranspose2dConfig::up_convolution(4, 2).init(&device);
/// let up = UpConv2d::from(transposed.clone());
/// let x = Tensor::<4>::random([1, 4, 3, 3], burn::tensor::Distribution::Default, &device);
/// let (a, b) = (transposed.forward(x.clone()), up.forward(x));
/// assert!(a.all_close(b, None, Some(1e-5)));
/// ```
#[derive(Module, Debug)]
pub struct UpConv2d {
    /// `[in_channels, out_channels / groups, kh, kw]`, as in [`ConvTranspose2d`].
    pub weight: Param<Tensor<4>>,
    /// `[out_channels]`.
    pub bias: Option<Param<Tensor<1>>>,
    #[module(skip)]
    geometry: ConvGeometry,
    #[module(skip)]
    padding: [usize; 2],
    #[module(skip)]
    output_padding: [usize; 2],
}

impl From<ConvTranspose2d> for UpConv2d {
    fn from(layer: ConvTranspose2d) -> Self {
        Self {
            weight: layer.weight,
            bias: layer.bias,
            geometry: layer.geometry,
            padding: layer.padding,
            output_padding: layer.output_padding,
        }
    }
}

impl From<UpConv2d> for ConvTranspose2d {
    fn from(layer: UpConv2d) -> Self {
        Self {
            weight: layer.weight,
            bias: layer.bias,
            geometry: layer.geometry,
            padding: layer.padding,
            output_padding: layer.output_padding,
        }
    }
}

impl UpConv2d {
    /// Channels, kernel, stride, dilation and groups.
    pub fn geometry(&self) -> &ConvGeometry {
        &self.geometry
    }

    /// The output shape for an input of shape `[batch, in_channels, height, width]`,
    /// the same as [`ConvTranspose2d::output_shape`].
    pub fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4], ConvError> {
        transposed_output_shape(&self.geometry, self.padding, self.output_padding, input)
    }

    /// The equivalent ordinary convolution's kernel, `[out, in / groups, kh, kw]`:
    /// the transposed kernel rotated by 180 degrees, with input and output
    /// channel axes swapped within each group.
    pub fn convolution_weight(&self) -> Tensor<4> {
        let g = &self.geometry;
        let [kh, kw] = g.kernel_size();
        let groups = g.groups();
        let (in_per_group, out_per_group) = (g.in_channels() / groups, g.out_channels() / groups);
        self.weight
            .val()
            .flip([2, 3])
            .reshape([groups, in_per_group, out_per_group, kh, kw])
            .swap_dims(1, 2)
            .reshape([g.out_channels(), in_per_group, kh, kw])
    }

    /// Applies the transposed convolution by zero insertion and convolution.
    ///
    /// # Shapes
    /// - `input`: `[batch, in_channels, height, width]`
    /// - output: `[batch, out_channels, height_out, width_out]`
    pub fn try_forward(&self, input: Tensor<4>) -> Result<Tensor<4>, ConvError> {
        self.output_shape(input.dims())?;
        let g = &self.geometry;
        let spread = insert_zeros(input, g.stride());
        let pads: [(i64, i64); 2] = std::array::from_fn(|i| {
            let extent = (g.dilation()[i] * (g.kernel_size()[i] - 1)) as i64;
            let begin = extent - self.padding[i] as i64;
            (begin, begin + self.output_padding[i] as i64)
        });
        let padded = pad_or_crop(spread, pads);
        let options = ConvOptions::new([1, 1], [0, 0], g.dilation(), g.groups());
        let output = dispatch::conv2d(padded, self.convolution_weight(), &options);
        Ok(add_bias(output, self.bias.as_ref()))
    }

    /// Applies the transposed convolution.
    ///
    /// # Panics
    /// With the message of [`UpConv2d::try_forward`]'s error.
    pub fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        self.try_forward(input)
            .unwrap_or_else(|err| panic!("{err}"))
    }
}
