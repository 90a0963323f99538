//! The one error type of the crate.
//!
//! Every message names the offending values, so that a user who reads only the
//! message knows which setting or which input to change.

/// Why a layer could not be built, or could not run on an input.
///
/// Configuration errors are returned by `try_init`; input errors by
/// `try_forward` (and the panicking `init` / `forward` carry the same message).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConvError {
    /// A kernel size, stride or dilation of zero.
    #[error("{what} must be positive in every dimension, got {value:?}")]
    ZeroParameter {
        /// `"kernel_size"`, `"stride"` or `"dilation"`.
        what: &'static str,
        /// The value as given, `[height, width]`.
        value: [usize; 2],
    },

    /// `groups == 0`.
    #[error("groups must be positive, got 0")]
    ZeroGroups,

    /// A channel count of zero.
    #[error("{which} must be positive, got 0")]
    ZeroChannels {
        /// `"in_channels"`, `"out_channels"` or `"num_features"`.
        which: &'static str,
    },

    /// A channel count that the group count does not divide.
    #[error("{which} ({channels}) must be divisible by groups ({groups})")]
    ChannelsNotDivisible {
        /// `"in_channels"`, `"out_channels"` or `"num_features"`.
        which: &'static str,
        /// The channel count.
        channels: usize,
        /// The group count.
        groups: usize,
    },

    /// PyTorch's rule for transposed convolutions: in each dimension the output
    /// padding must be smaller than the stride or smaller than the dilation.
    #[error(
        "output_padding {output_padding:?} must be smaller than either stride {stride:?} \
         or dilation {dilation:?} in each dimension"
    )]
    OutputPaddingTooLarge {
        /// The output padding, `[height, width]`.
        output_padding: [usize; 2],
        /// The stride, `[height, width]`.
        stride: [usize; 2],
        /// The dilation, `[height, width]`.
        dilation: [usize; 2],
    },

    /// `Padding::Same` with a stride other than 1 (PyTorch refuses it too: the
    /// output cannot have the input's size).
    #[error("padding Same needs stride 1 in every dimension, got stride {stride:?}")]
    SameWithStride {
        /// The stride, `[height, width]`.
        stride: [usize; 2],
    },

    /// The input's channel dimension differs from the layer's `in_channels`.
    #[error("expected an input with {expected} channels, got {got} (input shape {shape:?})")]
    InputChannels {
        /// The layer's `in_channels`.
        expected: usize,
        /// The input's channel count.
        got: usize,
        /// The input's shape, `[batch, channels, height, width]`.
        shape: [usize; 4],
    },

    /// An input with zero elements along some dimension.
    #[error("input shape {shape:?} has an empty dimension")]
    EmptyInput {
        /// The input's shape, `[batch, channels, height, width]`.
        shape: [usize; 4],
    },

    /// The padded input is smaller than the dilated kernel, so there is no
    /// output position.
    #[error(
        "input size {input:?} padded to {padded:?} is smaller than the dilated kernel {kernel:?}"
    )]
    InputTooSmall {
        /// The input's spatial size, `[height, width]`.
        input: [usize; 2],
        /// The input's size after padding.
        padded: [usize; 2],
        /// The dilated kernel's extent, `dilation * (kernel_size - 1) + 1`.
        kernel: [usize; 2],
    },

    /// A transposed convolution whose output would have fewer than one row or column.
    #[error("input size {input:?} gives an output size of {output:?}, which is below 1")]
    OutputTooSmall {
        /// The input's spatial size, `[height, width]`.
        input: [usize; 2],
        /// The output size the formula gives (may be negative).
        output: [i64; 2],
    },

    /// `forward_with_output_size` was asked for a size that no output padding reaches.
    #[error(
        "requested output size {requested:?} is not reachable from input size {input:?}: \
         each dimension must lie between {min:?} and {max:?}"
    )]
    OutputSizeUnreachable {
        /// The requested size, `[height, width]`.
        requested: [usize; 2],
        /// The input's spatial size.
        input: [usize; 2],
        /// The smallest reachable size (output padding 0).
        min: [usize; 2],
        /// The largest reachable size (output padding `stride - 1`).
        max: [usize; 2],
    },

    /// A tensor given to build a layer does not have the shape the config implies.
    #[error("{name}: expected shape {expected:?}, got {got:?}")]
    ShapeMismatch {
        /// Which tensor (`"weight"`, `"bias"`, or a parameter path).
        name: String,
        /// The shape the config implies.
        expected: Vec<usize>,
        /// The shape given.
        got: Vec<usize>,
    },

    /// A bias tensor given for a layer configured without bias, or none for one with bias.
    #[error("the config says bias = {configured}, but a bias tensor was {}", if *.configured { "not given" } else { "given" })]
    BiasMismatch {
        /// The config's `bias` setting.
        configured: bool,
    },

    /// The bilinear initialiser maps channel `i` to channel `i`, so it needs as
    /// many output channels as input channels.
    #[error(
        "the bilinear initialiser needs in_channels == out_channels, got {in_channels} -> {out_channels}"
    )]
    BilinearChannels {
        /// The layer's `in_channels`.
        in_channels: usize,
        /// The layer's `out_channels`.
        out_channels: usize,
    },

    /// Batch-norm settings out of range.
    #[error(
        "batch norm needs epsilon > 0 and momentum in [0, 1], got epsilon {epsilon}, momentum {momentum}"
    )]
    NormSettings {
        /// The epsilon asked for.
        epsilon: f64,
        /// The momentum asked for.
        momentum: f64,
    },

    /// A training batch norm over one value per channel, whose variance
    /// PyTorch refuses to estimate.
    #[error(
        "batch norm in training needs more than one value per channel, got input shape {shape:?}"
    )]
    OneValuePerChannel {
        /// The input's shape, `[batch, channels, height, width]`.
        shape: [usize; 4],
    },

    /// A pooling window larger than the input in some dimension, so there
    /// is no whole window (PyTorch: "Output size is too small").
    #[error("pooling window {kernel:?} is larger than the input {input:?}: no whole window fits")]
    WindowTooLarge {
        /// The input's spatial size, `[height, width]`.
        input: [usize; 2],
        /// The window, `[height, width]`.
        kernel: [usize; 2],
    },
}
