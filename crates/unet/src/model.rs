//! The U-Net module.

use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig};
use burn::tensor::kind::Basic;
use burn::tensor::ops::PadMode;
use burn::tensor::{Device, Tensor};
use layers::{Conv2d, Conv2dConfig, ConvError};

use crate::blocks::{BlockSpec, ConvBlock, Upsampler};
use crate::config::{Block, MAX_DEPTH, MAX_DILATION, MAX_WIDTH, Norm, UNetConfig, UNetPadding};
use crate::error::{ConfigError, UNetError};
use crate::shape::output_size;

/// An encoder level: 2x2 max-pooling, then a block.
#[derive(Module, Debug)]
pub struct Down {
    /// The block after the pooling.
    pub conv: ConvBlock,
}

/// A decoder level: upsample the deeper features, concatenate
/// `[skip, upsampled]` along channels (skip first, as the reference), then a block.
#[derive(Module, Debug)]
pub struct Up {
    /// Doubles the size, divides the channels by the growth.
    pub up: Upsampler,
    /// The block after the concatenation.
    pub conv: ConvBlock,
}

/// A U-Net (Ronneberger et al., 2015): an encoder of `depth` poolings, a
/// decoder of as many upsamplings, skip connections between levels of equal
/// resolution, and a 1x1 convolution to `num_classes` logits.
///
/// Parameter names follow the PyTorch reference (`inc`, `downs.i.conv`,
/// `ups.i.up`, `ups.i.conv`, `outc`), so its weights load with a fixed key
/// mapping (see [`crate::load_pytorch_weights`]).
#[derive(Module, Debug)]
pub struct UNet {
    /// The first block, on the image.
    pub inc: ConvBlock,
    /// The encoder levels, top to bottom (the last is the bottleneck).
    pub downs: Vec<Down>,
    /// The decoder levels, bottom to top.
    pub ups: Vec<Up>,
    /// The final 1x1 convolution to class logits.
    pub outc: Conv2d,
    /// Dropout on the bottleneck's output.
    pub dropout: Dropout,
    #[module(skip)]
    config: UNetConfig,
}

impl UNetConfig {
    /// Checks the values the layers do not check themselves.
    pub fn validate(&self) -> Result<(), UNetError> {
        for (field, value) in [
            ("in_channels", self.in_channels),
            ("num_classes", self.num_classes),
            ("base_width", self.base_width),
            ("depth", self.depth),
            ("growth", self.growth),
        ] {
            if value == 0 {
                return Err(ConfigError::Zero { field }.into());
            }
        }
        if self.depth > MAX_DEPTH {
            return Err(ConfigError::TooDeep { depth: self.depth }.into());
        }
        let dilations = &self.bottleneck_dilations;
        if dilations.is_empty() || dilations.contains(&0) {
            return Err(ConfigError::BottleneckDilations {
                dilations: dilations.clone(),
            }
            .into());
        }
        if let Some(&dilation) = dilations.iter().find(|&&d| d > MAX_DILATION) {
            return Err(ConfigError::DilationTooLarge { dilation }.into());
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(ConfigError::Dropout {
                dropout: self.dropout,
            }
            .into());
        }
        let widths = self.widths();
        if widths.last().copied().unwrap_or(0) >= MAX_WIDTH {
            return Err(ConfigError::TooWide {
                base_width: self.base_width,
                growth: self.growth,
                depth: self.depth,
            }
            .into());
        }
        self.check_groups(&widths)
    }

    /// Norm and block groups must divide every level's width.
    fn check_groups(&self, widths: &[usize]) -> Result<(), UNetError> {
        let norm = match self.norm {
            Norm::Group { groups } => Some(groups),
            _ => None,
        };
        let block = match self.block {
            Block::Grouped { groups } => Some(groups),
            _ => None,
        };
        for (what, groups) in [("norm groups", norm), ("block groups", block)] {
            if let Some(groups) = groups
                && (groups == 0 || widths.iter().any(|w| w % groups != 0))
            {
                return Err(ConfigError::Groups {
                    what,
                    groups,
                    widths: widths.to_vec(),
                }
                .into());
            }
        }
        Ok(())
    }

    /// The output shape `[batch, num_classes, height, width]` of this network
    /// for an input shape, or why the input cannot pass (another channel count,
    /// an empty dimension, a size a `Valid` network cannot take).
    pub fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4], UNetError> {
        if input[1] != self.in_channels {
            return Err(ConvError::InputChannels {
                expected: self.in_channels,
                got: input[1],
                shape: input,
            }
            .into());
        }
        if input.contains(&0) {
            return Err(ConvError::EmptyInput { shape: input }.into());
        }
        let [h, w] = output_size(self, [input[2], input[3]])?;
        Ok([input[0], self.num_classes, h, w])
    }

    /// Builds the network with freshly initialised parameters (PyTorch's
    /// initialisation for the convolutions, ones and zeros for the norms).
    pub fn try_init(&self, device: &Device) -> Result<UNet, UNetError> {
        self.validate()?;
        let widths = self.widths();
        let spec = BlockSpec {
            block: self.block,
            norm: self.norm,
            padding: self.padding,
        };
        let standard = [1, 1];
        let inc = spec.block(self.in_channels, widths[0], &standard, true, device)?;
        let downs = (0..self.depth)
            .map(|level| {
                let dilations = if level + 1 == self.depth {
                    &self.bottleneck_dilations[..]
                } else {
                    &standard[..]
                };
                Ok(Down {
                    conv: spec.block(widths[level], widths[level + 1], dilations, false, device)?,
                })
            })
            .collect::<Result<_, UNetError>>()?;
        let ups = (0..self.depth)
            .rev()
            .map(|level| {
                let (deep, out) = (widths[level + 1], widths[level]);
                Ok(Up {
                    up: Upsampler::new(self.upsampling, deep, out, device)?,
                    conv: spec.block(2 * out, out, &standard, false, device)?,
                })
            })
            .collect::<Result<_, UNetError>>()?;
        let outc = Conv2dConfig::pointwise(widths[0], self.num_classes).try_init(device)?;
        Ok(UNet {
            inc,
            downs,
            ups,
            outc,
            dropout: DropoutConfig::new(self.dropout).init(),
            config: self.clone(),
        })
    }

    /// Builds the network.
    ///
    /// # Panics
    /// With the message of [`UNetConfig::try_init`]'s error.
    pub fn init(&self, device: &Device) -> UNet {
        self.try_init(device).unwrap_or_else(|err| panic!("{err}"))
    }
}

impl UNet {
    /// The configuration the network was built from.
    pub fn config(&self) -> &UNetConfig {
        &self.config
    }

    /// The output shape `[batch, num_classes, height, width]` for an input
    /// shape, or why the input cannot pass.
    pub fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4], UNetError> {
        self.config.output_shape(input)
    }

    /// Class logits for a batch of images.
    ///
    /// # Shapes
    /// - `input`: `[batch, in_channels, height, width]`
    /// - output: `[batch, num_classes, height, width]` (`Same`), or the size
    ///   [`crate::output_size`] gives (`Valid`)
    pub fn try_forward(&self, input: Tensor<4>) -> Result<Tensor<4>, UNetError> {
        let [_, _, height, width] = input.dims();
        self.output_shape(input.dims())?;
        let input = match self.config.padding {
            UNetPadding::Same => {
                let multiple = 1 << self.config.depth;
                let grow = |s: usize| s.div_ceil(multiple) * multiple - s;
                let (dh, dw) = (grow(height), grow(width));
                if dh + dw == 0 {
                    input
                } else {
                    input.pad([(0, dh), (0, dw)], PadMode::Constant(0.0))
                }
            }
            UNetPadding::Valid => input,
        };
        let mut skips = vec![self.inc.try_forward(input)?];
        for down in &self.downs {
            let above = skips.last().expect("inc output").clone();
            skips.push(down.conv.try_forward(layers::max_pool2d(above, [2, 2])?)?);
        }
        let mut x = self
            .dropout
            .forward(skips.pop().expect("bottleneck output"));
        for (up, skip) in self.ups.iter().zip(skips.into_iter().rev()) {
            let upsampled = up.up.try_forward(x)?;
            let [_, _, h, w] = upsampled.dims();
            let skip = center_crop(skip, [h, w]);
            x = up.conv.try_forward(Tensor::cat(vec![skip, upsampled], 1))?;
        }
        let logits = self.outc.try_forward(x)?;
        Ok(match self.config.padding {
            UNetPadding::Same => {
                let [n, c, _, _] = logits.dims();
                logits.slice([0..n, 0..c, 0..height, 0..width])
            }
            UNetPadding::Valid => logits,
        })
    }

    /// Class logits for a batch of images.
    ///
    /// # Panics
    /// With the message of [`UNet::try_forward`]'s error.
    pub fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        self.try_forward(input)
            .unwrap_or_else(|err| panic!("{err}"))
    }
}

/// The centre `[height, width]` of the last two dimensions of `x`: the
/// paper's crop of skip features in a `Valid` network, and of the masks its
/// smaller output is scored against.
///
/// # Shapes
/// - `x`: `[..., h, w]` with `h >= height`, `w >= width`
/// - output: `[..., height, width]`
pub fn center_crop<const D: usize, K: Basic>(
    x: Tensor<D, K>,
    [height, width]: [usize; 2],
) -> Tensor<D, K> {
    let dims = x.dims();
    let (h, w) = (dims[D - 2], dims[D - 1]);
    if (h, w) == (height, width) {
        return x;
    }
    x.narrow(D - 2, (h - height) / 2, height)
        .narrow(D - 1, (w - width) / 2, width)
}
