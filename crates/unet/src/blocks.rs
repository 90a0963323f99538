//! The U-Net's building blocks: convolution units, the two-convolution
//! block, and the upsamplers.

use burn::module::Module;
use burn::nn::{GroupNorm, GroupNormConfig};
use burn::tensor::activation::relu;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use burn::tensor::{Device, Tensor, TensorData};
use layers::{BatchNorm, BatchNormConfig};
use layers::{
    Conv2d, Conv2dConfig, ConvError, ConvTranspose2d, ConvTranspose2dConfig,
    DepthwiseSeparableConv2d, DepthwiseSeparableConv2dConfig, Padding, UpConv2d,
};

use crate::config::{Block, Norm, UNetPadding, Upsampling};

/// The convolution of a [`ConvUnit`].
// Built once per model; boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum UnitConv {
    /// A full (possibly grouped) convolution.
    Dense(Conv2d),
    /// Depthwise then pointwise.
    Separable(DepthwiseSeparableConv2d),
}

impl UnitConv {
    fn try_forward(&self, x: Tensor<4>) -> Result<Tensor<4>, ConvError> {
        match self {
            UnitConv::Dense(conv) => {
                let y = conv.try_forward(x)?;
                Ok(match conv.geometry().groups() {
                    1 => y,
                    groups => channel_shuffle(y, groups),
                })
            }
            UnitConv::Separable(conv) => conv.try_forward(x),
        }
    }
}

/// ShuffleNet's channel shuffle: channel `j` of group `g` moves to position
/// `j * groups + g`, so that the next grouped convolution sees every group.
/// Without it, stacked grouped convolutions form `groups` separate networks,
/// and a U-Net's grouped decoder would never mix skip and upsampled features.
fn channel_shuffle(x: Tensor<4>, groups: usize) -> Tensor<4> {
    let [n, c, h, w] = x.dims();
    x.reshape([n, groups, c / groups, h, w])
        .swap_dims(1, 2)
        .reshape([n, c, h, w])
}

/// The normalisation of a [`ConvUnit`].
#[derive(Module, Debug)]
pub enum NormLayer {
    /// Batch normalisation.
    Batch(BatchNorm),
    /// Group normalisation.
    Group(GroupNorm),
}

impl NormLayer {
    /// `relu(norm(x))`; batch norm fuses the two on the CPU backends.
    fn forward_relu(&self, x: Tensor<4>) -> Result<Tensor<4>, ConvError> {
        match self {
            NormLayer::Batch(norm) => norm.try_forward_relu(x),
            NormLayer::Group(norm) => Ok(relu(norm.forward(x))),
        }
    }
}

/// Convolution, normalisation, ReLU.
#[derive(Module, Debug)]
pub struct ConvUnit {
    /// The 3x3 convolution (or its factorised form).
    pub conv: UnitConv,
    /// The normalisation, if any.
    pub norm: Option<NormLayer>,
}

impl ConvUnit {
    /// `relu(norm(conv(x)))`.
    pub fn try_forward(&self, x: Tensor<4>) -> Result<Tensor<4>, ConvError> {
        let x = self.conv.try_forward(x)?;
        match &self.norm {
            Some(norm) => norm.forward_relu(x),
            None => Ok(relu(x)),
        }
    }
}

/// The settings a block is built from (taken from the [`UNetConfig`](crate::UNetConfig)).
#[derive(Debug, Clone, Copy)]
pub(crate) struct BlockSpec {
    pub block: Block,
    pub norm: Norm,
    pub padding: UNetPadding,
}

impl BlockSpec {
    /// One unit `in -> out` with a 3x3 kernel of `dilation`; `groupable` is
    /// false for the convolution that reads the image.
    fn unit(
        &self,
        in_channels: usize,
        out_channels: usize,
        dilation: usize,
        groupable: bool,
        device: &Device,
    ) -> Result<ConvUnit, ConvError> {
        let padding = match self.padding {
            UNetPadding::Same => Padding::Same,
            UNetPadding::Valid => Padding::Valid,
        };
        let bias = self.norm == Norm::None;
        let conv = match self.block {
            Block::DepthwiseSeparable => UnitConv::Separable(
                DepthwiseSeparableConv2dConfig::new(in_channels, out_channels, [3, 3])
                    .with_padding(padding)
                    .with_dilation([dilation; 2])
                    .with_bias(bias)
                    .try_init(device)?,
            ),
            Block::Standard | Block::Grouped { .. } => {
                let groups = match self.block {
                    Block::Grouped { groups } if groupable => groups,
                    _ => 1,
                };
                UnitConv::Dense(
                    Conv2dConfig::new(in_channels, out_channels, [3, 3])
                        .with_padding(padding)
                        .with_dilation([dilation; 2])
                        .with_groups(groups)
                        .with_bias(bias)
                        .try_init(device)?,
                )
            }
        };
        let norm = match self.norm {
            Norm::Batch => Some(NormLayer::Batch(
                BatchNormConfig::new(out_channels).init(device),
            )),
            Norm::Group { groups } => Some(NormLayer::Group(
                GroupNormConfig::new(groups, out_channels).init(device),
            )),
            Norm::None => None,
        };
        Ok(ConvUnit { conv, norm })
    }

    /// A block `in -> out` with one unit per dilation.
    pub fn block(
        &self,
        in_channels: usize,
        out_channels: usize,
        dilations: &[usize],
        reads_image: bool,
        device: &Device,
    ) -> Result<ConvBlock, ConvError> {
        let units = dilations
            .iter()
            .enumerate()
            .map(|(i, &dilation)| {
                let input = if i == 0 { in_channels } else { out_channels };
                self.unit(
                    input,
                    out_channels,
                    dilation,
                    !(reads_image && i == 0),
                    device,
                )
            })
            .collect::<Result<_, _>>()?;
        Ok(ConvBlock { units })
    }
}

/// Consecutive [`ConvUnit`]s (two in the paper's "double convolution").
#[derive(Module, Debug)]
pub struct ConvBlock {
    /// The units, in order.
    pub units: Vec<ConvUnit>,
}

impl ConvBlock {
    /// Applies the units in order.
    pub fn try_forward(&self, x: Tensor<4>) -> Result<Tensor<4>, ConvError> {
        self.units.iter().try_fold(x, |x, unit| unit.try_forward(x))
    }
}

/// The decoder's upsampling layer: doubles the size, halves the channels.
#[derive(Module, Debug)]
pub enum Upsampler {
    /// Transposed convolution (k2 s2, or k4 s2 p1 with bilinear initialisation).
    Transposed(ConvTranspose2d),
    /// The k2 s2 transposed convolution by zero insertion.
    UpConv(UpConv2d),
    /// Bilinear resize, then this 3x3 convolution.
    Resize(Conv2d),
}

impl Upsampler {
    pub(crate) fn new(
        upsampling: Upsampling,
        in_channels: usize,
        out_channels: usize,
        device: &Device,
    ) -> Result<Self, ConvError> {
        Ok(match upsampling {
            Upsampling::TransposedConv {
                bilinear_init: false,
            } => Upsampler::Transposed(
                ConvTranspose2dConfig::up_convolution(in_channels, out_channels)
                    .try_init(device)?,
            ),
            Upsampling::TransposedConv {
                bilinear_init: true,
            } => Upsampler::Transposed(bilinear_transposed(in_channels, out_channels, device)?),
            Upsampling::UpConv => Upsampler::UpConv(UpConv2d::from(
                ConvTranspose2dConfig::up_convolution(in_channels, out_channels)
                    .try_init(device)?,
            )),
            Upsampling::BilinearConv => Upsampler::Resize(
                Conv2dConfig::new(in_channels, out_channels, [3, 3])
                    .with_padding(Padding::Same)
                    .try_init(device)?,
            ),
        })
    }

    /// Upsamples `[batch, in, h, w]` to `[batch, out, 2h, 2w]`.
    pub fn try_forward(&self, x: Tensor<4>) -> Result<Tensor<4>, ConvError> {
        match self {
            Upsampler::Transposed(conv) => conv.try_forward(x),
            Upsampler::UpConv(conv) => conv.try_forward(x),
            Upsampler::Resize(conv) => {
                let [_, _, h, w] = x.dims();
                let resized = interpolate(
                    x,
                    InterpolateOptions::new(InterpolateMode::Bilinear)
                        .with_output_size([2 * h, 2 * w]),
                );
                conv.try_forward(resized)
            }
        }
    }
}

/// A k4 s2 p1 transposed convolution `in -> out` that starts as bilinear
/// upsampling by 2, each output channel the mean of its `in / out` input
/// channels; bias zero.
fn bilinear_transposed(
    in_channels: usize,
    out_channels: usize,
    device: &Device,
) -> Result<ConvTranspose2d, ConvError> {
    let config = ConvTranspose2dConfig::new(in_channels, out_channels, [4, 4])
        .with_stride([2, 2])
        .with_padding([1, 1]);
    let filter = layers::init::bilinear_filter(4);
    let share = out_channels as f64 / in_channels.max(1) as f64;
    let mut weight = vec![0f32; in_channels * out_channels * 16];
    for i in 0..in_channels {
        let o = i * out_channels / in_channels.max(1);
        for y in 0..4 {
            for x in 0..4 {
                weight[((i * out_channels + o) * 4 + y) * 4 + x] =
                    (filter[y] * filter[x] * share) as f32;
            }
        }
    }
    config.try_init_from(
        TensorData::new(weight, config.weight_shape()),
        Some(TensorData::zeros::<f32, _>([out_channels])),
        device,
    )
}
