//! The U-Net module.

use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig};
use burn::tensor::module::max_pool2d;
use burn::tensor::ops::{MaxPoolOptions, PadMode};
use burn::tensor::{Device, Tensor};
use layers::{Conv2d, Conv2dConfig};

use crate::blocks::{BlockSpec, ConvBlock, Upsampler};
use crate::config::{Block, Norm, UNetConfig, UNetPadding};
use crate::error::UNetError;
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
        let fail = |message: String| Err(UNetError::Config(message));
        for (name, value) in [
            ("in_channels", self.in_channels),
            ("num_classes", self.num_classes),
            ("base_width", self.base_width),
            ("depth", self.depth),
            ("growth", self.growth),
        ] {
            if value == 0 {
                return fail(format!("{name} must be positive, got 0"));
            }
        }
        if self.depth > 12 {
            return fail(format!("depth {} is more than 12 poolings", self.depth));
        }
        if self.bottleneck_dilations.is_empty() || self.bottleneck_dilations.contains(&0) {
            return fail(format!(
                "bottleneck_dilations must be positive and non-empty, got {:?}",
                self.bottleneck_dilations
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return fail(format!("dropout must be in [0, 1), got {}", self.dropout));
        }
        let widths = self.widths();
        if widths.last().copied().unwrap_or(0) >= 1 << 20 {
            return fail(format!("widths {widths:?} are too large"));
        }
        for (what, groups) in [
            (
                "norm groups",
                match self.norm {
                    Norm::Group { groups } => Some(groups),
                    _ => None,
                },
            ),
            (
                "block groups",
                match self.block {
                    Block::Grouped { groups } => Some(groups),
                    _ => None,
                },
            ),
        ] {
            if let Some(groups) = groups
                && (groups == 0 || widths.iter().any(|w| w % groups != 0))
            {
                return fail(format!(
                    "{what} ({groups}) must divide every width {widths:?}"
                ));
            }
        }
        Ok(())
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
        if input[1] != self.config.in_channels {
            return Err(UNetError::InputChannels {
                expected: self.config.in_channels,
                got: input[1],
                shape: input,
            });
        }
        if input.contains(&0) {
            return Err(UNetError::EmptyInput { shape: input });
        }
        let [h, w] = output_size(&self.config, [input[2], input[3]])?;
        Ok([input[0], self.config.num_classes, h, w])
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
            skips.push(down.conv.try_forward(pool(above))?);
        }
        let mut x = self
            .dropout
            .forward(skips.pop().expect("bottleneck output"));
        for (up, skip) in self.ups.iter().zip(skips.into_iter().rev()) {
            let upsampled = up.up.try_forward(x)?;
            let skip = center_crop(skip, upsampled.dims());
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

/// 2x2 max-pooling with stride 2.
fn pool(x: Tensor<4>) -> Tensor<4> {
    max_pool2d(x, MaxPoolOptions::new([2, 2]))
}

/// The centre of `skip` with the spatial size of `target` (the paper's crop;
/// a no-op with `Same` padding).
fn center_crop(skip: Tensor<4>, target: [usize; 4]) -> Tensor<4> {
    let [n, c, h, w] = skip.dims();
    let (th, tw) = (target[2], target[3]);
    if (h, w) == (th, tw) {
        return skip;
    }
    let (top, left) = ((h - th) / 2, (w - tw) / 2);
    skip.slice([0..n, 0..c, top..top + th, left..left + tw])
}
