//! Convolutions of our own on the CPU backends (flex and ndarray), with their
//! own backward pass.
//!
//! Burn 0.22 computes a convolution's weight gradient as a convolution of
//! the input with the output gradient as kernel (on flex, 2.5x the forward
//! time; on ndarray, a direct loop at about 1 GFLOP/s), and the grouped and
//! depthwise gradients one group at a time. Here the three products are
//! matrix products on the `gemm` crate Burn's flex backend itself uses: one
//! per kernel tap on a once-padded input for stride-1 convolutions with
//! enough channels (`taps`), im2col + one per image and group otherwise
//! (`kernel`); depthwise convolutions are direct loops (`depthwise`). Batch
//! norm, with the ReLU after it, is two passes of per-channel loops
//! (`norm`), max pooling one pass forward and one backward (`pool`; Burn's
//! finds each maximum with a division per value and keeps an `i64` index
//! per output). They reach Burn through backend extensions: [`CpuConv`],
//! [`CpuNorm`] and [`CpuPool`] are implemented for `Flex`, `NdArray` and for `Autodiff` over
//! them, where handwritten backward nodes call the gradient kernels. Other
//! backends and types keep Burn's kernels: [`has_kernels_for`] says when
//! this path is taken ([`crate::dispatch`] asks it, and gives half-precision
//! inputs on the CPU backends to it in `f32`). The element-wise loops run
//! with the widest vector instructions the CPU has (`simd`).

mod depthwise;
mod depthwise_padded;
mod extension;
mod kernel;
mod norm;
mod norm_extension;
mod pool;
mod pool_extension;
mod rows;
mod simd;
mod taps;

use burn::backend::Dispatch;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{DType, Device, Shape, Tensor};

use crate::shape::{conv_output_size, conv_transpose_output_size};
use extension::CpuConv;
use kernel::ConvShape;
use norm_extension::CpuNorm;
use pool_extension::CpuPool;

/// Whether this module has kernels for convolutions of `input`: `f32`
/// tensors on the flex or ndarray device, with or without autodiff.
pub(crate) fn has_kernels_for(input: &Tensor<4>) -> bool {
    input.dtype() == DType::F32 && on_cpu(input)
}

/// Whether `input` is on the flex or ndarray device.
pub(crate) fn on_cpu(input: &Tensor<4>) -> bool {
    is_cpu(&input.device())
}

/// Whether `device` is the flex or ndarray device, with or without autodiff.
pub(crate) fn is_cpu(device: &Device) -> bool {
    let device = device.clone().inner();
    #[allow(deprecated)]
    let ndarray = Device::ndarray();
    device == Device::flex() || device == ndarray
}

/// `conv2d(x, weight)` without bias, through [`CpuConv`]. Call only where
/// [`has_kernels_for`] holds.
///
/// # Shapes
/// - `x`: `[batch, in_channels, height, width]`
/// - `weight`: `[out_channels, in_channels / groups, kh, kw]`
/// - output: `[batch, out_channels, height_out, width_out]`
pub(crate) fn conv2d(x: Tensor<4>, weight: Tensor<4>, options: ConvOptions<2>) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as CpuConv>::cpu_conv2d(
        x.into_dispatch(),
        weight.into_dispatch(),
        options,
    ))
}

/// The transposed convolution of `x` with `weight` before padding, output
/// padding and bias, through [`CpuConv`]. Call only where [`has_kernels_for`] holds.
///
/// # Shapes
/// - `x`: `[batch, in_channels, height, width]`
/// - `weight`: `[in_channels, out_channels / groups, kh, kw]`
/// - output: `[batch, out_channels, (height - 1) * stride + dilation * (kh - 1) + 1, ..]`
pub(crate) fn conv_transpose2d(
    x: Tensor<4>,
    weight: Tensor<4>,
    stride: [usize; 2],
    dilation: [usize; 2],
    groups: usize,
) -> Tensor<4> {
    let options = ConvOptions::new(stride, [0, 0], dilation, groups);
    Tensor::from_dispatch(<Dispatch as CpuConv>::cpu_conv_transpose2d(
        x.into_dispatch(),
        weight.into_dispatch(),
        options,
    ))
}

/// Each channel's mean and biased variance, `[2, channels]` (row 0 the
/// means), of `x` (`[n, channels, h, w]`). Call only where
/// [`has_kernels_for`] holds.
pub(crate) fn channel_stats(x: Tensor<4>) -> Tensor<2> {
    Tensor::from_dispatch(<Dispatch as CpuNorm>::cpu_channel_stats(x.into_dispatch()))
}

/// `x * scale[c] + shift[c]` for `x` of `[n, c, h, w]`, `scale` and `shift`
/// of `[c]`, then ReLU if `relu`. Call only where [`has_kernels_for`] holds.
pub(crate) fn channel_affine(
    x: Tensor<4>,
    scale: Tensor<1>,
    shift: Tensor<1>,
    relu: bool,
) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as CpuNorm>::cpu_channel_affine(
        x.into_dispatch(),
        scale.into_dispatch(),
        shift.into_dispatch(),
        relu,
    ))
}

/// The maximum of each `kernel` window of `x` (`[n, c, h, w]`), windows
/// side by side (stride = kernel, no padding, floor), PyTorch's maximum
/// (ties to the first, NaN wins). Call only where [`has_kernels_for`] holds.
///
/// # Shapes
/// - `x`: `[n, c, h, w]`
/// - output: `[n, c, h / kh, w / kw]`
pub(crate) fn max_pool2d(x: Tensor<4>, kernel: [usize; 2]) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as CpuPool>::cpu_max_pool2d(
        x.into_dispatch(),
        kernel,
    ))
}

/// The convolution kernel for `shape`: depthwise loops, a product per tap,
/// or im2col + gemm.
fn forward(shape: &ConvShape, x: &[f32], weight: &[f32]) -> Vec<f32> {
    if depthwise::handles(shape) {
        depthwise::forward(shape, x, weight)
    } else if taps::suits(shape) {
        taps::forward(shape, x, weight)
    } else {
        kernel::forward(shape, x, weight)
    }
}

/// The input-gradient kernel for `shape` (also the transposed convolution).
fn input_grad(shape: &ConvShape, dy: &[f32], weight: &[f32]) -> Vec<f32> {
    if depthwise::handles(shape) {
        depthwise::input_grad(shape, dy, weight)
    } else if taps::suits(shape) {
        taps::input_grad(shape, dy, weight)
    } else {
        kernel::input_grad(shape, dy, weight)
    }
}

/// The weight-gradient kernel for `shape`.
fn weight_grad(shape: &ConvShape, x: &[f32], dy: &[f32]) -> Vec<f32> {
    if depthwise::handles(shape) {
        depthwise::weight_grad(shape, x, dy)
    } else if taps::suits(shape) {
        taps::weight_grad(shape, x, dy)
    } else {
        kernel::weight_grad(shape, x, dy)
    }
}

/// The kernels' view of a convolution of `x` (`[n, c_in, h, w]`) by `weight`.
pub(crate) fn conv_shape(x: &Shape, weight: &Shape, options: &ConvOptions<2>) -> ConvShape {
    let [batch, in_channels, h, w] = x.dims();
    let [out_channels, _, kh, kw] = weight.dims();
    let padding = options.padding_begin();
    let end = options.padding_end();
    let output = std::array::from_fn(|a| {
        conv_output_size(
            [h, w][a],
            [kh, kw][a],
            options.stride[a],
            (padding[a], end[a]),
            options.dilation[a],
        )
        .expect("the layers check the output size before they get here")
    });
    ConvShape {
        batch,
        in_channels,
        input: [h, w],
        out_channels,
        output,
        kernel: [kh, kw],
        stride: options.stride,
        dilation: options.dilation,
        padding,
        groups: options.groups,
    }
}

/// The convolution (no padding) whose input gradient is the transposed
/// convolution of `x` (`[n, c_in, h, w]`) by `weight` (`[c_in, c_out / g, kh, kw]`):
/// it maps `c_out` channels of the full transposed size back to `c_in`
/// channels of size `h x w`.
pub(crate) fn transposed_shape(x: &Shape, weight: &Shape, options: &ConvOptions<2>) -> ConvShape {
    let [batch, in_channels, h, w] = x.dims();
    let [_, group_out, kh, kw] = weight.dims();
    let full = std::array::from_fn(|a| {
        conv_transpose_output_size(
            [h, w][a],
            [kh, kw][a],
            options.stride[a],
            0,
            0,
            options.dilation[a],
        )
        .expect("the layers check the output size before they get here")
    });
    ConvShape {
        batch,
        in_channels: group_out * options.groups,
        input: full,
        out_channels: in_channels,
        output: [h, w],
        kernel: [kh, kw],
        stride: options.stride,
        dilation: options.dilation,
        padding: [0, 0],
        groups: options.groups,
    }
}
