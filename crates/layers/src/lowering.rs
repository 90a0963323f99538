//! Convolutions written as matrix products, so that every backend and
//! autodiff get them, with their gradients, for free:
//!
//! - a 1x1 convolution (stride 1, no padding) is one matrix product per
//!   group over the pixels: `[c_out, c_in] x [c_in, h * w]` per image;
//! - a transposed convolution whose stride equals its kernel (the U-Net's
//!   k2 s2 upsampler) has no overlapping windows: one matrix product
//!   `[c_out * kh * kw, c_in] x [c_in, h * w]` per image, then a
//!   rearrangement of each pixel's `kh x kw` block into place;
//! - any convolution is one matrix product per image and group over its
//!   patches ([`patches`], im2col), in bands of output rows where the
//!   device cannot hold them all in one tensor: the GPU path of
//!   half-precision inputs, whose matrix products accumulate in `f32` where
//!   Burn 0.22's direct convolution kernels accumulate in the half type.
//!
//! They give the numbers of the general kernels up to the order of float
//! additions; the conformance cases check them against PyTorch.
//! [`crate::dispatch`] decides when they are used.

use burn::tensor::ops::{ConvOptions, PadMode};
use burn::tensor::{Device, Slice, Tensor};

use crate::capacity::device_holds;
use crate::shape::conv_output_size;

/// Whether [`pointwise`] computes a convolution of this geometry.
pub(crate) fn is_pointwise(
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [(usize, usize); 2],
) -> bool {
    kernel == [1, 1] && stride == [1, 1] && padding == [(0, 0); 2]
}

/// A 1x1 convolution without bias.
///
/// # Shapes
/// - `x`: `[batch, c_in, height, width]`
/// - `weight`: `[c_out, c_in / groups, 1, 1]`
/// - output: `[batch, c_out, height, width]`
pub(crate) fn pointwise(x: Tensor<4>, weight: Tensor<4>, groups: usize) -> Tensor<4> {
    let [n, c_in, h, w] = x.dims();
    let [c_out, group_in, _, _] = weight.dims();
    let x = x.reshape([n, groups, c_in / groups, h * w]);
    let weight = weight.reshape([1, groups, c_out / groups, group_in]);
    weight.matmul(x).reshape([n, c_out, h, w])
}

/// How many bytes of patches one matrix product of [`patches`] may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PatchBudget {
    /// As many as the input's device holds in one tensor ([`held_bytes`]).
    Device,
    /// At most this many (at least one output row a band).
    #[cfg_attr(not(test), expect(dead_code, reason = "the tests choose their bands"))]
    Bytes(usize),
}

/// A convolution without bias as matrix products over the input's patches:
/// the `kh * kw` shifted (strided, dilated) views of the padded input, each
/// `[n, c_in, rows, w_out]`, stacked into `[n, groups, c_in / groups * kh * kw,
/// rows * w_out]` and multiplied by the weight (cast to the input's type) as
/// `[groups, c_out / groups, c_in / groups * kh * kw]`, all output rows at
/// once or in bands of rows within `budget`. Under autodiff the gradients
/// are matrix products too, and the input's the sum of the views'
/// gradients put back in place.
///
/// Bands split the weight gradient's sum over the pixels: each band's part
/// is rounded to the input's type, then the parts are summed in the
/// weight's own type (each band casts the weight anew).
///
/// # Shapes
/// - `x`: `[batch, c_in, height, width]`
/// - `weight`: `[c_out, c_in / groups, kh, kw]`
/// - output: `[batch, c_out, height_out, width_out]`, as [`crate::shape::conv_output_size`]
pub(crate) fn patches(
    x: Tensor<4>,
    weight: Tensor<4>,
    options: &ConvOptions<2>,
    budget: PatchBudget,
) -> Tensor<4> {
    let [n, c_in, h, w] = x.dims();
    let [_, _, kh, kw] = weight.dims();
    let [ho, wo] = [(h, kh, 0), (w, kw, 1)].map(|(size, k, i)| {
        let (stride, dilation) = (options.stride[i], options.dilation[i]);
        conv_output_size(size, k, stride, options.padding[i], dilation)
            .expect("the layers check the output size before they get here")
    });
    let dtype = x.dtype();
    let x = x.pad(options.padding, PadMode::Constant(0.0));
    let row_bytes = [n, c_in, kh * kw, wo, dtype.size()]
        .into_iter()
        .fold(1usize, usize::saturating_mul);
    let max_bytes = match budget {
        PatchBudget::Bytes(bytes) => bytes,
        PatchBudget::Device => held_bytes(&x.device(), row_bytes.saturating_mul(ho)),
    };
    let band = (max_bytes / row_bytes).clamp(1, ho);
    if band == ho {
        return band_product(x, weight.cast(dtype), options, ho, wo);
    }
    let bands = (0..ho).step_by(band).map(|first| {
        let rows = band.min(ho - first);
        // The padded input rows the band's windows cover.
        let start = first * options.stride[0];
        let extent = (rows - 1) * options.stride[0] + options.dilation[0] * (kh - 1) + 1;
        let input = x.clone().narrow(2, start, extent);
        band_product(input, weight.clone().cast(dtype), options, rows, wo)
    });
    Tensor::cat(bands.collect(), 2)
}

/// Bytes of patches every device is taken to hold in one tensor: half of
/// the 128 MiB that Mesa's lavapipe and WebGPU's defaults bind.
const SURELY_HELD: usize = 1 << 26;

/// `needed` bytes of patches where `device` holds a tensor of that size
/// ([`crate::capacity`]), else the largest `needed / 2^k` it holds (at
/// least [`SURELY_HELD`]). Patches are `kh * kw` times the input, so a large
/// image passes a GPU's limit where its input and output do not (a 3x3
/// convolution of 8 channels at 1024x1024 in `f16`: 151 MB on lavapipe's
/// 128 MiB), and then every matrix-product kernel fails (Burn 0.22.1 /
/// CubeCL 0.11.3 name the naive kernel's "Cube count too big").
fn held_bytes(device: &Device, needed: usize) -> usize {
    let mut size = needed;
    while size > SURELY_HELD && !device_holds(device, size) {
        size /= 2;
    }
    size.max(SURELY_HELD)
}

/// [`patches`] for the `rows` output rows of the padded input band `x`.
fn band_product(
    x: Tensor<4>,
    weight: Tensor<4>,
    options: &ConvOptions<2>,
    rows: usize,
    wo: usize,
) -> Tensor<4> {
    let [n, _, _, _] = x.dims();
    let [c_out, group_in, kh, kw] = weight.dims();
    let groups = options.groups;
    let view = |start: usize, count: usize, i: usize| {
        let step = options.stride[i];
        let end = start + (count - 1) * step + 1;
        Slice::new(start as isize, Some(end as isize), step as isize)
    };
    let taps: Vec<Tensor<5>> = (0..kh * kw)
        .map(|tap| {
            let (ky, kx) = (tap / kw, tap % kw);
            x.clone()
                .slice([
                    Slice::from(..),
                    Slice::from(..),
                    view(ky * options.dilation[0], rows, 0),
                    view(kx * options.dilation[1], wo, 1),
                ])
                .reshape([n, groups, group_in, 1, rows * wo])
        })
        .collect();
    let columns = Tensor::cat(taps, 3).reshape([n, groups, group_in * kh * kw, rows * wo]);
    let weight = weight.reshape([1, groups, c_out / groups, group_in * kh * kw]);
    weight.matmul(columns).reshape([n, c_out, rows, wo])
}

/// Whether [`non_overlapping_transposed`] computes a transposed convolution
/// of this geometry (before padding and output padding, which the caller applies).
pub(crate) fn is_non_overlapping(
    kernel: [usize; 2],
    stride: [usize; 2],
    dilation: [usize; 2],
    groups: usize,
) -> bool {
    kernel == stride && dilation == [1, 1] && groups == 1
}

/// A transposed convolution with stride equal to the kernel, one group, no
/// dilation, padding or bias: every input pixel writes its own
/// `kh x kw` block of the output.
///
/// # Shapes
/// - `x`: `[batch, c_in, height, width]`
/// - `weight`: `[c_in, c_out, kh, kw]`
/// - output: `[batch, c_out, height * kh, width * kw]`
pub(crate) fn non_overlapping_transposed(x: Tensor<4>, weight: Tensor<4>) -> Tensor<4> {
    let [n, c_in, h, w] = x.dims();
    let [_, c_out, kh, kw] = weight.dims();
    let weight = weight
        .reshape([c_in, c_out * kh * kw])
        .transpose()
        .reshape([1, c_out * kh * kw, c_in]);
    let blocks = weight.matmul(x.reshape([n, c_in, h * w]));
    // [n, c_out, kh, kw, h, w] -> [n, c_out, h, kh, w, kw]
    blocks
        .reshape([n, c_out, kh, kw, h, w])
        .permute([0, 1, 4, 2, 5, 3])
        .reshape([n, c_out, h * kh, w * kw])
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::module::{conv_transpose2d, conv2d};
    use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};
    use burn::tensor::{Device, Distribution};

    /// Values drawn from the standard normal distribution.
    fn normal<const D: usize>(dims: [usize; D], device: &Device) -> Tensor<D> {
        Tensor::random(dims, Distribution::Normal(0.0, 1.0), device)
    }

    fn max_difference(a: Tensor<4>, b: Tensor<4>) -> f32 {
        assert_eq!(a.dims(), b.dims());
        (a - b).abs().max().into_scalar()
    }

    #[test]
    fn pointwise_equals_the_general_kernel() {
        let device = Device::flex();
        for groups in [1, 3] {
            let x = normal([2, 6, 5, 7], &device);
            let w = normal([9, 6 / groups, 1, 1], &device);
            let general = conv2d(
                x.clone(),
                w.clone(),
                None,
                ConvOptions::new([1, 1], [0, 0], [1, 1], groups),
            );
            assert!(max_difference(pointwise(x, w, groups), general) < 1e-5);
        }
    }

    #[test]
    fn patches_equal_the_general_kernel() {
        let device = Device::flex();
        // Stride, padding, dilation and groups, each away from 1 somewhere.
        let cases = [
            ([3, 3], [1, 1], [1, 1], [1, 1], 1),
            ([3, 2], [2, 1], [1, 2], [2, 1], 2),
            ([1, 3], [1, 3], [0, 1], [1, 2], 3),
        ];
        for (kernel, stride, padding, dilation, groups) in cases {
            let x = normal([2, 6, 9, 8], &device);
            let w = normal([3 * groups, 6 / groups, kernel[0], kernel[1]], &device);
            let options = ConvOptions::new(stride, padding, dilation, groups);
            let general = conv2d(x.clone(), w.clone(), None, options.clone());
            let whole = patches(x, w, &options, PatchBudget::Device);
            assert!(max_difference(whole, general) < 1e-5);
        }
    }

    /// Bands of a few output rows (`max_bytes` below one band of the
    /// whole) give the general kernel's output and all three gradients.
    #[test]
    fn patches_in_bands_equal_the_general_kernel() {
        let device = Device::flex().autodiff();
        let cases = [
            ([3, 3], [1, 1], [1, 1], [1, 1], 1),
            ([3, 2], [2, 1], [2, 1], [2, 1], 2),
        ];
        for (kernel, stride, padding, dilation, groups) in cases {
            let x = normal([2, 4, 13, 6], &device);
            let w = normal([2 * groups, 4 / groups, kernel[0], kernel[1]], &device);
            let options = ConvOptions::new(stride, padding, dilation, groups);
            // A loss whose gradient differs at every output element.
            let dims = conv2d(x.clone(), w.clone(), None, options.clone()).dims();
            let upstream = normal(dims, &device);
            // Bands of two output rows (13 and 7 rows: the last band has one):
            // 2 images x 4 channels x kh * kw taps x w_out columns, 4 bytes each.
            let [_, _, ho, wo] = dims;
            assert_eq!(ho % 2, 1);
            let max_bytes = 2 * (2 * 4 * kernel[0] * kernel[1] * wo * 4);
            let [banded, general] = [Some(max_bytes), None].map(|bands| {
                let (x, w) = (x.clone().require_grad(), w.clone().require_grad());
                let y = match bands {
                    Some(max_bytes) => patches(
                        x.clone(),
                        w.clone(),
                        &options,
                        PatchBudget::Bytes(max_bytes),
                    ),
                    None => conv2d(x.clone(), w.clone(), None, options.clone()),
                };
                let grads = (y.clone() * upstream.clone()).sum().backward();
                [y, x.grad(&grads).unwrap(), w.grad(&grads).unwrap()]
            });
            for (name, (a, b)) in ["output", "input gradient", "weight gradient"]
                .into_iter()
                .zip(banded.into_iter().zip(general))
            {
                assert!(max_difference(a, b) < 1e-3, "{name}, kernel {kernel:?}");
            }
        }
    }

    #[test]
    fn non_overlapping_transposed_equals_the_general_kernel() {
        let device = Device::flex();
        for kernel in [[2, 2], [3, 2]] {
            let x = normal([2, 4, 3, 5], &device);
            let w = normal([4, 3, kernel[0], kernel[1]], &device);
            let general = conv_transpose2d(
                x.clone(),
                w.clone(),
                None,
                ConvTransposeOptions::new(kernel, [0, 0], [0, 0], [1, 1], 1),
            );
            assert!(max_difference(non_overlapping_transposed(x, w), general) < 1e-5);
        }
    }
}
