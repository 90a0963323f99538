//! Stride-1 convolutions without im2col: a sum over the kernel's taps of
//! matrix products on a once-padded input.
//!
//! Padded once to `[c_in, hp, wp]` (`hp = oh + dh (kh - 1)`,
//! `wp = ow + dw (kw - 1)`), the pixel that tap `(i, j)` sees at output
//! `(oy, ox)` sits at `(oy + i dh) wp + ox + j dw` of its padded plane.
//! Computed on the padded width (`oh * wp` columns, of which the first `ow`
//! of each `wp` are kept), every tap's operand is the padded input itself,
//! shifted by `i dh wp + j dw`: a `[c_in / g, oh * wp]` matrix read in place.
//!
//! - forward: `Y' = sum_tap W_tap x shift_tap(Xp)`, then the kept columns;
//! - input gradient: `shift_tap(dXp) += W_tap^T x dY'`, with `dY'` the output
//!   gradient on the padded width (zero in the extra columns), then the
//!   unpadded window of `dXp`;
//! - weight gradient: `dW_tap^T += shift_tap(Xp) x dY'^T`, summed over images.
//!
//! That is `kh * kw` products with reduction `c_in / g` (forward),
//! `c_out / g` (input gradient) or the pixels (weight gradient), where
//! im2col makes one with reduction `kh kw c_in / g` (or one `kh kw` times
//! wider) after copying the input `kh * kw` times (and the input gradient
//! adds col2im). [`suits`] says where that trade wins; `docs/performance.md`
//! has the measurements.

use super::kernel::{
    ConvShape, Mat, MatMut, accumulate_weight_grad, for_each_image, matmul, zeros,
};

/// Channels per group below which one product per tap is too narrow to
/// beat im2col's single wide one.
const MIN_REDUCTION: usize = 16;

/// Whether [`forward`], [`input_grad`] and [`weight_grad`] compute this
/// convolution: stride 1, and a padded plane that holds the input at its
/// leading padding.
fn computes(shape: &ConvShape) -> bool {
    shape.stride == [1, 1]
        && (0..2).all(|a| {
            let padded = shape.output[a] + shape.dilation[a] * (shape.kernel[a] - 1);
            shape.input[a] + shape.padding[a] <= padded
        })
}

/// Whether [`forward`], [`input_grad`] and [`weight_grad`] are the faster choice for this
/// convolution: they compute it, its kernel is larger than 1x1, it has at
/// least [`MIN_REDUCTION`] channels per group on both sides, and its output
/// rows are at least four times as wide as the columns the padded width
/// adds to each (computed and dropped).
pub(super) fn suits(shape: &ConvShape) -> bool {
    let extra = shape.dilation[1] * (shape.kernel[1] - 1);
    computes(shape)
        && shape.kernel != [1, 1]
        && shape.group_in() >= MIN_REDUCTION
        && shape.group_out() >= MIN_REDUCTION
        && shape.output[1] >= 4 * extra
}

/// Where the padded input lives: each channel a `[hp, wp]` plane followed
/// by the `dw (kw - 1)` values the last tap's operand reads past it.
#[derive(Debug, Clone, Copy)]
struct Padded {
    width: usize,
    /// Values from one channel's plane to the next.
    plane: usize,
}

impl Padded {
    fn of(shape: &ConvShape) -> Self {
        let [oh, ow] = shape.output;
        let [kh, kw] = shape.kernel;
        let [dh, dw] = shape.dilation;
        let width = ow + dw * (kw - 1);
        Padded {
            width,
            plane: (oh + dh * (kh - 1)) * width + dw * (kw - 1),
        }
    }

    /// Columns of a product: the output rows on the padded width.
    fn columns(&self, shape: &ConvShape) -> usize {
        shape.output[0] * self.width
    }

    /// The offset of tap `t` (`i * kw + j`) inside a padded plane.
    fn tap_offset(&self, shape: &ConvShape, t: usize) -> usize {
        let (i, j) = (t / shape.kernel[1], t % shape.kernel[1]);
        i * shape.dilation[0] * self.width + j * shape.dilation[1]
    }

    /// Copies the `[c, h, w]` planes of `x` into `xp`, zero around them.
    fn fill(&self, shape: &ConvShape, x: &[f32], xp: &mut [f32]) {
        let [h, w] = shape.input;
        let [ph, pw] = shape.padding;
        for (src, dst) in x.chunks_exact(h * w).zip(xp.chunks_exact_mut(self.plane)) {
            let (top, rest) = dst.split_at_mut(ph * self.width);
            top.fill(0.0);
            let (middle, bottom) = rest.split_at_mut(h * self.width);
            for (row, src) in middle.chunks_exact_mut(self.width).zip(src.chunks_exact(w)) {
                row[..pw].fill(0.0);
                row[pw..pw + w].copy_from_slice(src);
                row[pw + w..].fill(0.0);
            }
            bottom.fill(0.0);
        }
    }

    /// Copies the `[c, oh, ow]` rows of `dy` into `wide` (`[c, oh * width]`),
    /// zero in the columns the padded width adds.
    fn widen(&self, shape: &ConvShape, dy: &[f32], wide: &mut [f32]) {
        let kept = shape.output[1];
        for (row, dy) in wide.chunks_exact_mut(self.width).zip(dy.chunks_exact(kept)) {
            row[..kept].copy_from_slice(dy);
            row[kept..].fill(0.0);
        }
    }

    /// Copies the `[h, w]` window of each plane of `xp` into
    /// the `[c, h, w]` planes of `x` (the inverse of [`Padded::fill`]).
    fn crop(&self, shape: &ConvShape, xp: &[f32], x: &mut [f32]) {
        let [h, w] = shape.input;
        let [ph, pw] = shape.padding;
        for (src, dst) in xp.chunks_exact(self.plane).zip(x.chunks_exact_mut(h * w)) {
            let rows = src[ph * self.width..].chunks_exact(self.width);
            for (dst, row) in dst.chunks_exact_mut(w).zip(rows) {
                dst.copy_from_slice(&row[pw..pw + w]);
            }
        }
    }
}

/// Tap `t` of group `g`'s weights, `[c_out / g, c_in / g]` read in place
/// from `[c_out, c_in / g, kh, kw]`, or its transpose.
fn weight_tap<'a>(
    shape: &ConvShape,
    weight: &'a [f32],
    g: usize,
    t: usize,
    transposed: bool,
) -> Mat<'a> {
    let (gi, go) = (shape.group_in(), shape.group_out());
    let taps = shape.kernel[0] * shape.kernel[1];
    let data = &weight[g * go * gi * taps + t..];
    if transposed {
        Mat::new(data, [gi, go], [taps, gi * taps])
    } else {
        Mat::new(data, [go, gi], [gi * taps, taps])
    }
}

/// The convolution of `x` (`[n, c_in, h, w]`) with `weight`: `[n, c_out, oh, ow]`, without bias.
pub(super) fn forward(shape: &ConvShape, x: &[f32], weight: &[f32]) -> Vec<f32> {
    let padded = Padded::of(shape);
    let (gi, go, p) = (shape.group_in(), shape.group_out(), shape.pixels_out());
    let (n, taps) = (padded.columns(shape), shape.kernel[0] * shape.kernel[1]);
    let xp_len = shape.in_channels * padded.plane;
    let mut y = zeros(shape.batch * shape.output_len());
    if shape.batch == 0 || p == 0 {
        return y;
    }
    for_each_image(
        shape.batch,
        &mut y,
        shape.output_len(),
        xp_len + go * n,
        |b, y, scratch, parallelism| {
            let (xp, wide) = scratch.split_at_mut(xp_len);
            padded.fill(shape, &x[b * shape.input_len()..][..shape.input_len()], xp);
            for g in 0..shape.groups {
                for t in 0..taps {
                    let start = g * gi * padded.plane + padded.tap_offset(shape, t);
                    matmul(
                        MatMut::rows(wide, go, n),
                        weight_tap(shape, weight, g, t, false),
                        Mat::new(&xp[start..], [gi, n], [padded.plane, 1]),
                        t > 0,
                        parallelism,
                    );
                }
                let kept = shape.output[1];
                let y = y[g * go * p..][..go * p].chunks_exact_mut(kept);
                for (y, row) in y.zip(wide.chunks_exact(padded.width)) {
                    y.copy_from_slice(&row[..kept]);
                }
            }
        },
    );
    y
}

/// The gradient of the input, `[n, c_in, h, w]`, from `dy` (`[n, c_out, oh, ow]`);
/// also the transposed convolution of `dy` with `weight`.
pub(super) fn input_grad(shape: &ConvShape, dy: &[f32], weight: &[f32]) -> Vec<f32> {
    let padded = Padded::of(shape);
    let (gi, go, p) = (shape.group_in(), shape.group_out(), shape.pixels_out());
    let (n, taps) = (padded.columns(shape), shape.kernel[0] * shape.kernel[1]);
    let dxp_len = shape.in_channels * padded.plane;
    let mut dx = zeros(shape.batch * shape.input_len());
    if shape.batch == 0 || p == 0 {
        return dx;
    }
    for_each_image(
        shape.batch,
        &mut dx,
        shape.input_len(),
        dxp_len + go * n,
        |b, dx, scratch, parallelism| {
            let (dxp, wide) = scratch.split_at_mut(dxp_len);
            dxp.fill(0.0);
            let dy = &dy[b * shape.output_len()..][..shape.output_len()];
            for g in 0..shape.groups {
                padded.widen(shape, &dy[g * go * p..][..go * p], wide);
                for t in 0..taps {
                    let start = g * gi * padded.plane + padded.tap_offset(shape, t);
                    matmul(
                        MatMut::new(&mut dxp[start..], [gi, n], padded.plane),
                        weight_tap(shape, weight, g, t, true),
                        Mat::rows(wide, go, n),
                        true,
                        parallelism,
                    );
                }
            }
            padded.crop(shape, dxp, dx);
        },
    );
    dx
}

/// The gradient of the weight, `[c_out, c_in / g, kh, kw]`, from `x` and
/// `dy`: per image, group and tap, `dW_tap^T += shift_tap(Xp) x dY'^T`
/// (`[c_in / g, oh * wp] x [oh * wp, c_out / g]`), the padded input read in
/// place and `dY'` the output gradient on the padded width, whose zero
/// columns drop the products of the extra ones.
pub(super) fn weight_grad(shape: &ConvShape, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let padded = Padded::of(shape);
    let (gi, go, p) = (shape.group_in(), shape.group_out(), shape.pixels_out());
    let (n, taps) = (padded.columns(shape), shape.kernel[0] * shape.kernel[1]);
    let xp_len = shape.in_channels * padded.plane;
    accumulate_weight_grad(shape, xp_len + go * n, |b, dwt, scratch, parallelism| {
        let (xp, wide) = scratch.split_at_mut(xp_len);
        padded.fill(shape, &x[b * shape.input_len()..][..shape.input_len()], xp);
        let dy = &dy[b * shape.output_len()..][..shape.output_len()];
        for g in 0..shape.groups {
            padded.widen(shape, &dy[g * go * p..][..go * p], wide);
            for t in 0..taps {
                // Rows `c * taps + t` of the group's `[c_in / g * taps, c_out / g]`.
                let rows = &mut dwt[(g * gi * taps + t) * go..];
                let start = g * gi * padded.plane + padded.tap_offset(shape, t);
                matmul(
                    MatMut::new(rows, [gi, go], taps * go),
                    Mat::new(&xp[start..], [gi, n], [padded.plane, 1]),
                    Mat::transposed(wide, n, go),
                    true,
                    parallelism,
                );
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::super::kernel::tests::{BASE, check_kernels, with_outputs};
    use super::*;

    /// Stride-1 shapes, with the edge cases of the layout: no padding,
    /// padding wider than the kernel's reach, dilation, groups, a single
    /// image, uneven padding, an input smaller than the kernel.
    fn shapes() -> Vec<ConvShape> {
        let base = ConvShape {
            in_channels: 16,
            out_channels: 32,
            input: [9, 12],
            kernel: [3, 3],
            padding: [1, 1],
            ..BASE
        };
        let mut shapes = with_outputs(&[
            base,
            ConvShape {
                padding: [0, 0],
                ..base
            },
            ConvShape {
                padding: [3, 2],
                kernel: [3, 2],
                ..base
            },
            ConvShape {
                dilation: [2, 3],
                padding: [2, 3],
                ..base
            },
            ConvShape {
                in_channels: 32,
                groups: 2,
                batch: 1,
                ..base
            },
        ]);
        // Trailing padding other than the leading (the output size says
        // which: here none at the bottom and one column at the right), and
        // an input smaller than the kernel.
        shapes.push(ConvShape {
            input: [5, 6],
            padding: [2, 1],
            output: [5, 6],
            ..base
        });
        shapes.push(ConvShape {
            input: [2, 9],
            padding: [1, 1],
            output: [2, 9],
            ..base
        });
        shapes
    }

    #[test]
    fn forward_and_gradients_are_the_definitions() {
        for shape in shapes() {
            assert!(computes(&shape), "{shape:?}");
            check_kernels(&shape, forward, input_grad, Some(weight_grad));
        }
    }

    #[test]
    fn suits_stride_one_convolutions_with_enough_channels() {
        let [base, ..] = shapes()[..] else {
            unreachable!()
        };
        assert!(suits(&base));
        assert!(!computes(&ConvShape {
            stride: [2, 2],
            ..base
        }));
        assert!(!suits(&ConvShape {
            in_channels: 8,
            ..base
        }));
        assert!(!suits(&ConvShape {
            kernel: [1, 1],
            padding: [0, 0],
            ..base
        }));
        // Rows of 12 outputs with 8 padded columns each: mostly waste.
        assert!(!suits(&ConvShape {
            dilation: [4, 4],
            ..base
        }));
    }
}
