//! The one place that decides which implementation computes a convolution,
//! a batch norm or a max pooling. The layers call [`conv2d`] or [`conv_transpose2d_full`]
//! ([`batch_norm_train`], [`batch_norm`], [`max_pool2d`]) and add their bias
//! themselves ([`crate::ops::add_bias`]), whatever computed the product:
//!
//! | the input tensor | engine |
//! |---|---|
//! | `f32` on flex or ndarray, with or without autodiff | the kernels of [`crate::cpu`] |
//! | `f16` or `bf16` on flex or ndarray | the same kernels in `f32`, the result rounded |
//! | `f16` or `bf16` on another backend (wgpu) | [`crate::lowering`]: convolutions as matrix products over patches; transposed ones with stride = kernel as one product, others in `f32`, the result rounded |
//! | `f32` carrying gradients on another backend (wgpu), in a shape with a matrix-product form (1x1 stride 1 unpadded; transposed with stride = kernel) | [`crate::lowering`] |
//! | anything else | Burn's `conv2d` / `conv_transpose2d` |
//!
//! The float type is the input's: a weight is cast to the input's type
//! (a no-op unless it is a half-precision one), and batch norm computes a
//! half-precision input in `f32` and returns the input's type (its
//! statistics would lose too much in half precision; PyTorch's autocast
//! keeps it in `f32` too). Half-precision
//! products must accumulate in `f32`, as PyTorch's do: Burn 0.22's direct
//! convolution kernels on wgpu accumulate in the half type (a weight
//! gradient over 4608 pixels came out 93% off in `f16`:
//! `crates/conformance/tests/half_accumulation.rs`), its matrix products in
//! `f32`, hence the table. The CPU has no half-precision arithmetic to gain
//! from, so there half-precision inputs take the `f32` kernels.
//!
//! Why the matrix-product forms only when training: measured on flex before
//! the CPU kernels existed (`docs/performance.md`), their backward pass was
//! 1.5 to 2.5 times faster than Burn's convolution backward and their forward
//! pass alone slower than Burn's direct kernels.

use burn::tensor::module::{
    batch_norm as burn_batch_norm, batch_norm_train as burn_batch_norm_train, conv_transpose2d,
    conv2d as burn_conv2d, max_pool2d as burn_max_pool2d,
};
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions, MaxPoolOptions};
use burn::tensor::{DType, Tensor, activation};

use crate::{cpu, lowering};

/// What computes one convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Engine {
    CpuKernels,
    MatrixProducts,
    /// A half-precision input converted to `f32`, the convolution computed
    /// by the engine of that, the result converted back.
    InF32,
    Burn,
}

/// The engine for `input`, given whether the convolution has a cheaper
/// matrix-product form (`fast_form`, used when training) and whether it has
/// one at all (`any_form`, used for every half-precision input on a GPU).
fn engine(input: &Tensor<4>, fast_form: bool, any_form: bool) -> Engine {
    let half = is_half(input.dtype());
    if cpu::has_kernels_for(input) {
        Engine::CpuKernels
    } else if half && (cpu::on_cpu(input) || !any_form) {
        Engine::InF32
    } else if half || (fast_form && input.is_autodiff()) {
        Engine::MatrixProducts
    } else {
        Engine::Burn
    }
}

/// The convolution of `x` with `weight`, without bias.
///
/// # Shapes
/// - `x`: `[batch, in_channels, height, width]`
/// - `weight`: `[out_channels, in_channels / groups, kh, kw]`
/// - output: `[batch, out_channels, height_out, width_out]`
pub(crate) fn conv2d(x: Tensor<4>, weight: Tensor<4>, options: &ConvOptions<2>) -> Tensor<4> {
    let [_, _, kh, kw] = weight.dims();
    let pointwise = lowering::is_pointwise([kh, kw], options.stride, options.padding);
    let dtype = x.dtype();
    match engine(&x, pointwise, true) {
        Engine::CpuKernels => cpu::conv2d(x, weight, options.clone()),
        Engine::InF32 => conv2d(x.cast(DType::F32), weight, options).cast(dtype),
        Engine::MatrixProducts if pointwise => {
            lowering::pointwise(x, weight.cast(dtype), options.groups)
        }
        Engine::MatrixProducts => {
            lowering::patches(x, weight, options, lowering::PatchBudget::Device)
        }
        Engine::Burn => burn_conv2d(x, weight.cast(dtype), None, options.clone()),
    }
}

/// The transposed convolution of `x` with `weight` before padding, output
/// padding and bias: the full output, every input pixel's window whole.
/// The layers crop and pad it; this keeps every combination exact (Burn 0.22
/// requires `padding <= dilation * (kernel - 1)`).
///
/// # Shapes
/// - `x`: `[batch, in_channels, height, width]`
/// - `weight`: `[in_channels, out_channels / groups, kh, kw]`
/// - output: `[batch, out_channels, (height - 1) * stride + dilation * (kh - 1) + 1, ..]`
pub(crate) fn conv_transpose2d_full(
    x: Tensor<4>,
    weight: Tensor<4>,
    stride: [usize; 2],
    dilation: [usize; 2],
    groups: usize,
) -> Tensor<4> {
    let [_, _, kh, kw] = weight.dims();
    let non_overlapping = lowering::is_non_overlapping([kh, kw], stride, dilation, groups);
    let dtype = x.dtype();
    match engine(&x, non_overlapping, non_overlapping) {
        Engine::CpuKernels => cpu::conv_transpose2d(x, weight, stride, dilation, groups),
        Engine::InF32 => {
            let y = conv_transpose2d_full(x.cast(DType::F32), weight, stride, dilation, groups);
            y.cast(dtype)
        }
        Engine::MatrixProducts => lowering::non_overlapping_transposed(x, weight.cast(dtype)),
        Engine::Burn => conv_transpose2d(
            x,
            weight.cast(dtype),
            None,
            ConvTransposeOptions::new(stride, [0, 0], [0, 0], dilation, groups),
        ),
    }
}

/// The maximum of each `kernel` window of `x`, windows side by side
/// (stride = kernel, no padding, floor). On the CPU backends the kernels of
/// [`crate::cpu`] (half-precision inputs in `f32`: exact, a maximum is one of
/// the values); elsewhere Burn's `max_pool2d`.
///
/// # Shapes
/// - `x`: `[n, c, h, w]`
/// - output: `[n, c, h / kh, w / kw]`
pub(crate) fn max_pool2d(x: Tensor<4>, kernel: [usize; 2]) -> Tensor<4> {
    let dtype = x.dtype();
    if is_half(dtype) && cpu::on_cpu(&x) {
        max_pool2d(x.cast(DType::F32), kernel).cast(dtype)
    } else if cpu::has_kernels_for(&x) {
        cpu::max_pool2d(x, kernel)
    } else {
        burn_max_pool2d(x, MaxPoolOptions::new(kernel))
    }
}

/// A training batch norm of `x` (`[n, c, h, w]`) with its own batch
/// statistics, followed by ReLU if `relu`: `(output, mean, biased
/// variance)`, the statistics `[c]`. On the CPU backends, two passes of
/// [`crate::cpu`]'s channel kernels (ReLU inside the second) and a few `[c]`
/// operations that autodiff differentiates; elsewhere Burn's
/// `batch_norm_train` (one operation under autodiff) and its `relu`.
pub(crate) fn batch_norm_train(
    x: Tensor<4>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    epsilon: f64,
    relu: bool,
) -> (Tensor<4>, Tensor<1>, Tensor<1>) {
    let dtype = x.dtype();
    if is_half(dtype) {
        let (y, mean, variance) = batch_norm_train(x.cast(DType::F32), gamma, beta, epsilon, relu);
        return (y.cast(dtype), mean, variance);
    }
    if !cpu::has_kernels_for(&x) {
        let result = burn_batch_norm_train(x, gamma, beta, epsilon);
        return (then_relu(result.output, relu), result.mean, result.variance);
    }
    let [_, channels, _, _] = x.dims();
    let stats = cpu::channel_stats(x.clone());
    let mean = stats.clone().slice([0..1, 0..channels]).reshape([channels]);
    let variance = stats.slice([1..2, 0..channels]).reshape([channels]);
    let (scale, shift) = scale_and_shift(gamma, beta, mean.clone(), variance.clone(), epsilon);
    (cpu::channel_affine(x, scale, shift, relu), mean, variance)
}

/// Batch norm of `x` (`[n, c, h, w]`) with given statistics (inference),
/// followed by ReLU if `relu`.
pub(crate) fn batch_norm(
    x: Tensor<4>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    [mean, variance]: [Tensor<1>; 2],
    epsilon: f64,
    relu: bool,
) -> Tensor<4> {
    let dtype = x.dtype();
    if is_half(dtype) {
        let y = batch_norm(
            x.cast(DType::F32),
            gamma,
            beta,
            [mean, variance],
            epsilon,
            relu,
        );
        return y.cast(dtype);
    }
    if !cpu::has_kernels_for(&x) {
        let y = burn_batch_norm(x, gamma, beta, mean, variance, epsilon);
        return then_relu(y, relu);
    }
    let (scale, shift) = scale_and_shift(gamma, beta, mean, variance, epsilon);
    cpu::channel_affine(x, scale, shift, relu)
}

/// Whether `dtype` is a half-precision float type.
fn is_half(dtype: DType) -> bool {
    matches!(dtype, DType::F16 | DType::BF16)
}

fn then_relu(x: Tensor<4>, relu: bool) -> Tensor<4> {
    if relu { activation::relu(x) } else { x }
}

/// Batch norm as a per-channel affine map: `scale = gamma / sqrt(var + eps)`,
/// `shift = beta - mean * scale`.
fn scale_and_shift(
    gamma: Tensor<1>,
    beta: Tensor<1>,
    mean: Tensor<1>,
    variance: Tensor<1>,
    epsilon: f64,
) -> (Tensor<1>, Tensor<1>) {
    let scale = gamma / (variance + epsilon).sqrt();
    let shift = beta - mean * scale.clone();
    (scale, shift)
}
