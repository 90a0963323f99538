//! The U-Net's errors.

use layers::ConvError;

/// Why a U-Net could not be built, run, or loaded.
#[derive(Debug, thiserror::Error)]
pub enum UNetError {
    /// A configuration value out of range.
    #[error("invalid U-Net configuration: {0}")]
    Config(#[from] ConfigError),

    /// A layer refused its configuration or input.
    #[error(transparent)]
    Layer(#[from] ConvError),

    /// In `Valid` mode, an input size that cannot pass through the network.
    #[error(
        "input size {size:?} cannot pass a valid-padding U-Net of depth {depth}; \
         nearest valid sizes: height {}, width {}",
        crate::shape::nearest_sizes_text(*height),
        crate::shape::nearest_sizes_text(*width)
    )]
    InvalidInputSize {
        /// The input's `[height, width]`.
        size: [usize; 2],
        /// The network's depth.
        depth: usize,
        /// The nearest valid heights below and above (`None` where there is none).
        height: [Option<usize>; 2],
        /// The nearest valid widths below and above.
        width: [Option<usize>; 2],
    },

    /// Weights that cannot be loaded.
    #[error("cannot load weights from {path}: {reason}")]
    Weights {
        /// The weights file.
        path: String,
        /// What went wrong (names the tensor and both shapes for a shape mismatch).
        reason: String,
    },
}

/// A [`UNetConfig`](crate::UNetConfig) value out of range; each names the
/// field and the value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// A count that must be at least 1.
    #[error("{field} must be positive, got 0")]
    Zero {
        /// The field (`in_channels`, `num_classes`, `base_width`, `depth`, `growth`).
        field: &'static str,
    },

    /// More poolings than [`MAX_DEPTH`](crate::MAX_DEPTH).
    #[error("depth {depth} is more than {max} poolings", max = crate::MAX_DEPTH)]
    TooDeep {
        /// The depth asked for.
        depth: usize,
    },

    /// Bottleneck dilations empty or zero.
    #[error("bottleneck_dilations must be positive and non-empty, got {dilations:?}")]
    BottleneckDilations {
        /// The dilations asked for.
        dilations: Vec<usize>,
    },

    /// A bottleneck dilation above [`MAX_DILATION`](crate::MAX_DILATION).
    #[error("bottleneck dilation {dilation} is more than {max}", max = crate::MAX_DILATION)]
    DilationTooLarge {
        /// The dilation asked for.
        dilation: usize,
    },

    /// A dropout probability outside `[0, 1)`.
    #[error("dropout must be in [0, 1), got {dropout}")]
    Dropout {
        /// The probability asked for.
        dropout: f64,
    },

    /// Level widths at or above [`MAX_WIDTH`](crate::MAX_WIDTH) channels (or overflowing).
    #[error(
        "base_width {base_width} with growth {growth} over depth {depth} gives more than {max} channels",
        max = crate::MAX_WIDTH
    )]
    TooWide {
        /// The first level's width.
        base_width: usize,
        /// The factor between levels.
        growth: usize,
        /// The depth.
        depth: usize,
    },

    /// Channel groups that do not divide every level's width.
    #[error("{what} ({groups}) must divide every width {widths:?}")]
    Groups {
        /// `norm groups` or `block groups`.
        what: &'static str,
        /// The groups asked for.
        groups: usize,
        /// The level widths.
        widths: Vec<usize>,
    },
}
