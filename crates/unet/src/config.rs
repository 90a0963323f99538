//! The U-Net's configuration: depth, widths, and the building blocks.

// `Upsampling`'s variant names are the ones users know; the `Config` derive
// copies them into a serde twin, so the allowance is module-wide.
#![allow(clippy::enum_variant_names)]

use burn::config::Config;

/// The most poolings a U-Net may have (a 4096-pixel input halves to 1 in 12).
pub const MAX_DEPTH: usize = 12;
/// The largest bottleneck dilation.
pub const MAX_DILATION: usize = 256;
/// Channels no level may reach.
pub const MAX_WIDTH: usize = 1 << 20;

/// How the decoder doubles the spatial size at each level.
#[derive(Config, Debug, PartialEq, Eq, Copy)]
pub enum Upsampling {
    /// A transposed convolution, kernel 2, stride 2, with bias, halving the
    /// channels (the paper's "up-convolution"; PyTorch `ConvTranspose2d(c, c/2, 2, 2)`).
    /// With `bilinear_init` it is instead kernel 4, stride 2, padding 1,
    /// starting as bilinear interpolation followed by an average over each
    /// pair of channels (FCN's initialisation), and trainable from there.
    TransposedConv {
        /// Start from bilinear interpolation (kernel 4, stride 2, padding 1).
        bilinear_init: bool,
    },
    /// The same k2 s2 transposed convolution computed as zero insertion then a
    /// convolution ([`layers::UpConv2d`]): equal numbers, slower; same weights.
    UpConv,
    /// Bilinear resize by 2 then a 3x3 convolution (padding 1) halving the
    /// channels: no kernel overlap pattern, so no checkerboard artefacts.
    BilinearConv,
}

/// The two-convolution block used at every level.
#[derive(Config, Debug, PartialEq, Eq, Copy)]
pub enum Block {
    /// Two 3x3 convolutions, each followed by the norm and ReLU (the paper).
    Standard,
    /// Each 3x3 convolution replaced by a depthwise 3x3 and a pointwise 1x1
    /// (MobileNet style): far fewer parameters and FLOPs.
    DepthwiseSeparable,
    /// Each 3x3 convolution split into `groups` channel groups (ResNeXt
    /// style), followed by a channel shuffle (ShuffleNet) so that the groups
    /// exchange features. Widths that `groups` does not divide are an error.
    /// The convolution that reads the image is never grouped.
    Grouped {
        /// Channel groups.
        groups: usize,
    },
}

/// Normalisation after each convolution of a block.
#[derive(Config, Debug, PartialEq, Eq, Copy)]
pub enum Norm {
    /// Batch normalisation (eps 1e-5, momentum 0.1, as PyTorch).
    Batch,
    /// Group normalisation with `groups` groups (eps 1e-5), independent of the batch size.
    Group {
        /// Channel groups; must divide every width.
        groups: usize,
    },
    /// No normalisation: the convolutions then have a bias.
    None,
}

/// Whether the network keeps the input's size.
#[derive(Config, Debug, PartialEq, Eq, Copy)]
pub enum UNetPadding {
    /// 3x3 convolutions padded by 1: the output has the input's size. Inputs
    /// whose size is not a multiple of `2^depth` are zero-padded at the bottom
    /// and right to the next multiple and the output is cropped back.
    Same,
    /// Unpadded convolutions as in the original paper: each block loses
    /// `2 * dilation` pixels per convolution, skip features are centre-cropped
    /// to the decoder's size, and the output is smaller than the input. Only
    /// some input sizes pass: see [`crate::valid_output_size`].
    Valid,
}

/// Configuration of a [`UNet`](crate::UNet). The defaults are the paper's
/// (depth 4, 64 channels at the first level doubling at each, transposed
/// convolution upsampling, batch norm, padded convolutions).
///
/// ```
/// use unet::{Block, UNetConfig};
/// let config = UNetConfig::new(1, 2).with_base_width(16).with_block(Block::DepthwiseSeparable);
/// assert_eq!(config.widths(), vec![16, 32, 64, 128, 256]);
/// let json = serde_json::to_string(&config).unwrap();
/// assert_eq!(serde_json::from_str::<UNetConfig>(&json).unwrap(), config);
/// ```
#[derive(Config, Debug, PartialEq)]
pub struct UNetConfig {
    /// Channels of the input image (1 grayscale, 3 RGB).
    pub in_channels: usize,
    /// Classes predicted per pixel (the output's channels).
    pub num_classes: usize,
    /// Channels of the first level.
    #[config(default = 64)]
    pub base_width: usize,
    /// Number of poolings (and of upsamplings).
    #[config(default = 4)]
    pub depth: usize,
    /// Factor by which the width grows at each level.
    #[config(default = 2)]
    pub growth: usize,
    /// How the decoder upsamples.
    #[config(default = "Upsampling::TransposedConv { bilinear_init: false }")]
    pub upsampling: Upsampling,
    /// The convolution block.
    #[config(default = "Block::Standard")]
    pub block: Block,
    /// Dilations of the convolutions of the deepest block (the bottleneck):
    /// `[1, 1]` is the standard two convolutions; `[1, 2, 4]` is three
    /// dilated ones, a larger receptive field at the same resolution.
    #[config(default = "vec![1, 1]")]
    pub bottleneck_dilations: Vec<usize>,
    /// Normalisation after each convolution.
    #[config(default = "Norm::Batch")]
    pub norm: Norm,
    /// Dropout probability before the bottleneck's output (0 disables it).
    #[config(default = 0.0)]
    pub dropout: f64,
    /// Padded (`Same`) or unpadded (`Valid`) convolutions.
    #[config(default = "UNetPadding::Same")]
    pub padding: UNetPadding,
}

impl UNetConfig {
    /// The channel width of each level, from the first (`base_width`) to the bottleneck.
    pub fn widths(&self) -> Vec<usize> {
        (0..=self.depth)
            .map(|level| {
                self.base_width
                    .saturating_mul(self.growth.saturating_pow(level as u32))
            })
            .collect()
    }
}
