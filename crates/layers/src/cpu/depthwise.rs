//! Depthwise convolutions (one input channel per group, `m` outputs each) as
//! direct loops: stride 1 on a padded copy of each plane
//! ([`depthwise_padded`]); other strides, for each tap, one multiply-add of
//! a shifted input row into an output row. A plane fits in cache, so this runs near memory speed
//! where im2col would copy the input `kh * kw` times for a product with
//! a single row. Each plane's loops are compiled for the widest vector
//! instructions the CPU has ([`Level`]).

use rayon::prelude::*;

use super::depthwise_padded;
use super::kernel::{ConvShape, zeros};
use super::rows::zip_strided;
use super::simd::Level;

/// Whether [`forward`], [`input_grad`] and [`weight_grad`] compute this
/// convolution: one input channel per group.
pub(crate) fn handles(shape: &ConvShape) -> bool {
    shape.groups == shape.in_channels && shape.groups > 1
}

/// For each tap `(i, j)` (its index `i * kw + j`) and output row `oy` whose
/// input row `iy` is inside the image, calls `f(tap, oy, iy, lo..hi, ix)`:
/// output columns `lo..hi` read input columns `ix, ix + stride, ...`.
#[inline(always)]
fn for_each_tap_row(
    shape: &ConvShape,
    mut f: impl FnMut(usize, usize, usize, std::ops::Range<usize>, usize),
) {
    let [h, w] = shape.input;
    let [oh, ow] = shape.output;
    let [kh, kw] = shape.kernel;
    for i in 0..kh {
        let dy = shape.offset(0, i);
        let (y_lo, y_hi) = ConvShape::valid_range(dy, shape.stride[0], h, oh);
        for j in 0..kw {
            let dx = shape.offset(1, j);
            let (x_lo, x_hi) = ConvShape::valid_range(dx, shape.stride[1], w, ow);
            if x_lo >= x_hi {
                continue;
            }
            let ix = ((x_lo * shape.stride[1]) as isize + dx) as usize;
            for oy in y_lo..y_hi {
                let iy = ((oy * shape.stride[0]) as isize + dy) as usize;
                f(i * kw + j, oy, iy, x_lo..x_hi, ix);
            }
        }
    }
}

/// `sum(a[i] * b[i])` over `a`'s length, in eight lanes so that it vectorises.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let b = &b[..a.len()];
    let mut lanes = [0.0f32; 8];
    let (a_chunks, b_chunks) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a_chunks
        .remainder()
        .iter()
        .zip(b_chunks.remainder())
        .map(|(a, b)| a * b)
        .sum();
    for (a, b) in a_chunks.zip(b_chunks) {
        for lane in 0..8 {
            lanes[lane] += a[lane] * b[lane];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// As [`super::kernel::forward`] for a depthwise convolution.
pub(crate) fn forward(shape: &ConvShape, x: &[f32], weight: &[f32]) -> Vec<f32> {
    forward_at(Level::detect(), shape, x, weight)
}

/// As [`super::kernel::input_grad`] for a depthwise convolution.
pub(crate) fn input_grad(shape: &ConvShape, dy: &[f32], weight: &[f32]) -> Vec<f32> {
    input_grad_at(Level::detect(), shape, dy, weight)
}

/// As [`super::kernel::weight_grad`] for a depthwise convolution.
pub(crate) fn weight_grad(shape: &ConvShape, x: &[f32], dy: &[f32]) -> Vec<f32> {
    weight_grad_at(Level::detect(), shape, x, dy)
}

fn forward_at(level: Level, shape: &ConvShape, x: &[f32], weight: &[f32]) -> Vec<f32> {
    if shape.stride == [1, 1] {
        return depthwise_padded::forward(level, shape, x, weight);
    }
    let [h, w] = shape.input;
    let [oh, ow] = shape.output;
    let taps = shape.kernel[0] * shape.kernel[1];
    let per_group = shape.out_channels / shape.groups;
    let mut y = zeros(shape.batch * shape.out_channels * oh * ow);
    if y.is_empty() {
        return y;
    }
    y.par_chunks_mut(oh * ow)
        .enumerate()
        .for_each(|(plane, out)| {
            let (b, co) = (plane / shape.out_channels, plane % shape.out_channels);
            let input = &x[(b * shape.in_channels + co / per_group) * h * w..][..h * w];
            let weight = &weight[co * taps..][..taps];
            level.run(
                #[inline(always)]
                || {
                    for_each_tap_row(shape, |tap, oy, iy, cols, ix| {
                        let (out, input) =
                            (&mut out[oy * ow + cols.start..], &input[iy * w + ix..]);
                        let a = weight[tap];
                        zip_strided(out, 1, input, shape.stride[1], cols.len(), |o, x| {
                            *o += a * x
                        });
                    })
                },
            );
        });
    y
}

fn input_grad_at(level: Level, shape: &ConvShape, dy: &[f32], weight: &[f32]) -> Vec<f32> {
    if shape.stride == [1, 1] {
        return depthwise_padded::input_grad(level, shape, dy, weight);
    }
    let [h, w] = shape.input;
    let [oh, ow] = shape.output;
    let taps = shape.kernel[0] * shape.kernel[1];
    let per_group = shape.out_channels / shape.groups;
    let sw = shape.stride[1];
    let mut dx = zeros(shape.batch * shape.in_channels * h * w);
    if dx.is_empty() {
        return dx;
    }
    dx.par_chunks_mut(h * w)
        .enumerate()
        .for_each(|(plane, grad)| {
            let (b, c) = (plane / shape.in_channels, plane % shape.in_channels);
            level.run(
                #[inline(always)]
                || {
                    for co in c * per_group..(c + 1) * per_group {
                        let dy = &dy[(b * shape.out_channels + co) * oh * ow..][..oh * ow];
                        let weight = &weight[co * taps..][..taps];
                        for_each_tap_row(shape, |tap, oy, iy, cols, ix| {
                            let src = &dy[oy * ow..][cols];
                            let a = weight[tap];
                            zip_strided(&mut grad[iy * w + ix..], sw, src, 1, src.len(), |d, s| {
                                *d += a * s
                            });
                        });
                    }
                },
            );
        });
    dx
}

fn weight_grad_at(level: Level, shape: &ConvShape, x: &[f32], dy: &[f32]) -> Vec<f32> {
    if shape.stride == [1, 1] {
        return depthwise_padded::weight_grad(level, shape, x, dy);
    }
    let [h, w] = shape.input;
    let [oh, ow] = shape.output;
    let taps = shape.kernel[0] * shape.kernel[1];
    let per_group = shape.out_channels / shape.groups;
    let sw = shape.stride[1];
    let mut dw = vec![0.0; shape.out_channels * taps];
    dw.par_chunks_mut(taps).enumerate().for_each(|(co, grad)| {
        let c = co / per_group;
        level.run(
            #[inline(always)]
            || {
                for b in 0..shape.batch {
                    let input = &x[(b * shape.in_channels + c) * h * w..][..h * w];
                    let dy = &dy[(b * shape.out_channels + co) * oh * ow..][..oh * ow];
                    for_each_tap_row(shape, |tap, oy, iy, cols, ix| {
                        let d = &dy[oy * ow..][cols];
                        let input = &input[iy * w + ix..];
                        grad[tap] += if sw == 1 {
                            dot(d, input)
                        } else {
                            d.iter()
                                .zip(input.iter().step_by(sw))
                                .map(|(d, x)| d * x)
                                .sum::<f32>()
                        };
                    });
                }
            },
        );
    });
    dw
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::kernel::tests::{BASE, check_kernels, values, with_outputs};

    #[test]
    fn forward_and_gradients_are_the_definitions() {
        let depthwise = ConvShape {
            in_channels: 3,
            groups: 3,
            ..BASE
        };
        let shapes = with_outputs(&[
            depthwise,
            ConvShape {
                out_channels: 3,
                kernel: [3, 3],
                padding: [1, 1],
                ..depthwise
            },
            ConvShape {
                stride: [2, 3],
                ..depthwise
            },
            ConvShape {
                dilation: [2, 2],
                padding: [2, 1],
                ..depthwise
            },
            ConvShape {
                batch: 1,
                padding: [0, 3],
                ..depthwise
            },
            // Rows of 37: two groups of sixteen lanes and a partial one.
            ConvShape {
                input: [5, 37],
                kernel: [3, 3],
                padding: [1, 1],
                ..depthwise
            },
            // Stride 2 along one axis only.
            ConvShape {
                stride: [2, 1],
                ..depthwise
            },
        ]);
        let mut shapes = shapes;
        // Stride 1 with no trailing padding (the output says so), and an
        // input smaller than the kernel.
        for (input, padding, output) in [([5, 6], [2, 1], [5, 6]), ([2, 9], [1, 1], [2, 9])] {
            shapes.push(ConvShape {
                input,
                kernel: [3, 3],
                padding,
                output,
                ..depthwise
            });
        }
        for shape in shapes {
            assert!(handles(&shape));
            check_kernels(&shape, forward, input_grad, Some(weight_grad));
            every_level_gives_the_portable_values(&shape);
        }
    }

    fn every_level_gives_the_portable_values(shape: &ConvShape) {
        let x = values(shape.batch * shape.input_len(), 1);
        let w = values(shape.weight_len(), 2);
        let dy = values(shape.batch * shape.output_len(), 3);
        let run = |level| {
            (
                forward_at(level, shape, &x, &w),
                input_grad_at(level, shape, &dy, &w),
                weight_grad_at(level, shape, &x, &dy),
            )
        };
        let portable = run(Level::Portable);
        for level in Level::available() {
            assert!(run(level) == portable, "{level:?} {shape:?}");
        }
    }
}
