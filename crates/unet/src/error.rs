//! The U-Net's errors.

use layers::ConvError;

/// Why a U-Net could not be built, run, or loaded.
#[derive(Debug, thiserror::Error)]
pub enum UNetError {
    /// A configuration value out of range.
    #[error("invalid U-Net configuration: {0}")]
    Config(String),

    /// A layer refused its configuration or input.
    #[error(transparent)]
    Layer(#[from] ConvError),

    /// An input whose channel count is not the model's `in_channels`.
    #[error("the model expects {expected} input channels, got {got} (input shape {shape:?})")]
    InputChannels {
        /// The model's `in_channels`.
        expected: usize,
        /// The input's channel count.
        got: usize,
        /// The input's shape.
        shape: [usize; 4],
    },

    /// An input with an empty dimension.
    #[error("input shape {shape:?} has an empty dimension")]
    EmptyInput {
        /// The input's shape.
        shape: [usize; 4],
    },

    /// In `Valid` mode, an input size that cannot pass through the network.
    #[error(
        "input size {size:?} cannot pass a valid-padding U-Net of depth {depth}; \
         nearest valid sizes: height {height:?}, width {width:?}"
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
