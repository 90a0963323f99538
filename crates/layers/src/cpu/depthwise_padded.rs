//! Stride-1 depthwise convolutions on a padded plane: each plane (one image
//! and channel) is copied once into a zero-bordered buffer in which every
//! tap's pixels lie in bounds, so that an output row is a sum of shifted
//! buffer rows with no bounds to work out per tap and row.
//!
//! - forward: `y[r][c] = sum_(i, j) w[i][j] xp[r + i dh][c + j dw]`, `xp` the
//!   input with its leading padding;
//! - input gradient: the same sum over the output gradient with its top and
//!   left padded by the kernel's reach, the taps flipped:
//!   `dx[r][c] = sum w[i][j] dyp[r + ph + dh (kh - 1 - i)][c + pw + dw (kw - 1 - j)]`;
//! - weight gradient: `dw[i][j] = sum_(r, c) dy[r][c] xp[r + i dh][c + j dw]`.

use rayon::prelude::*;

use super::kernel::{ConvShape, zeros};
use super::simd::Level;

/// Lanes of the weight gradient's sums: one AVX-512 register of `f32`.
const LANES: usize = 16;

/// A zero-bordered copy of one plane: `rows x width` values.
#[derive(Debug, Clone, Copy)]
struct Frame {
    rows: usize,
    width: usize,
    /// Where the plane's `[0, 0]` sits.
    top: usize,
    left: usize,
}

impl Frame {
    fn len(&self) -> usize {
        self.rows * self.width
    }

    /// Copies the `[h, w]` plane `src` in, at `(top, left)`; rows and columns
    /// past the frame are never read and not copied.
    fn fill(&self, src: &[f32], [h, w]: [usize; 2], dst: &mut [f32]) {
        let rows = h.min(self.rows.saturating_sub(self.top));
        let cols = w.min(self.width.saturating_sub(self.left));
        for (y, src) in src.chunks_exact(w).take(rows).enumerate() {
            let at = (self.top + y) * self.width + self.left;
            dst[at..at + cols].copy_from_slice(&src[..cols]);
        }
    }

    /// The offset in the frame of tap `(i, j)` at row and column offsets
    /// `(row, col)`.
    fn offset(&self, row: usize, col: usize) -> usize {
        row * self.width + col
    }
}

/// The frame of the padded input (`oh + dh (kh - 1)` rows of
/// `ow + dw (kw - 1)`, the input at the leading padding), and the offsets in
/// it of the taps, row-major, at `(i dh, j dw)`.
fn input_frame(shape: &ConvShape) -> (Frame, Vec<usize>) {
    let [kh, kw] = shape.kernel;
    let [dh, dw] = shape.dilation;
    let frame = Frame {
        rows: shape.output[0] + dh * (kh - 1),
        width: shape.output[1] + dw * (kw - 1),
        top: shape.padding[0],
        left: shape.padding[1],
    };
    let offsets = (0..kh * kw)
        .map(|t| frame.offset(t / kw * dh, t % kw * dw))
        .collect();
    (frame, offsets)
}

/// `out[r][c] = sum_t weight[t] * frame[r * width + c + taps[t]]` for the
/// `[rows, cols]` of `out`: for each row, one pass over it per tap (the row
/// stays in the first-level cache).
#[inline(always)]
fn correlate(
    frame: &[f32],
    width: usize,
    taps: &[usize],
    weight: &[f32],
    out: &mut [f32],
    cols: usize,
) {
    for (r, row) in out.chunks_exact_mut(cols).enumerate() {
        let base = r * width;
        for (t, (&tap, &w)) in taps.iter().zip(weight).enumerate() {
            let src = &frame[base + tap..][..cols];
            if t == 0 {
                row.iter_mut().zip(src).for_each(|(o, &s)| *o = w * s);
            } else {
                row.iter_mut().zip(src).for_each(|(o, &s)| *o += w * s);
            }
        }
    }
}

/// As [`super::kernel::forward`] for a stride-1 depthwise convolution.
pub(super) fn forward(level: Level, shape: &ConvShape, x: &[f32], weight: &[f32]) -> Vec<f32> {
    let [h, w] = shape.input;
    let [oh, ow] = shape.output;
    let taps = shape.kernel[0] * shape.kernel[1];
    let per_group = shape.out_channels / shape.groups;
    let (frame, offsets) = input_frame(shape);
    let mut y = zeros(shape.batch * shape.out_channels * oh * ow);
    if y.is_empty() {
        return y;
    }
    y.par_chunks_mut(oh * ow).enumerate().for_each_init(
        || vec![0.0; frame.len()],
        |buffer, (plane, out)| {
            let (b, co) = (plane / shape.out_channels, plane % shape.out_channels);
            let input = &x[(b * shape.in_channels + co / per_group) * h * w..][..h * w];
            frame.fill(input, [h, w], buffer);
            let weight = &weight[co * taps..][..taps];
            level.run(
                #[inline(always)]
                || correlate(buffer, frame.width, &offsets, weight, out, ow),
            );
        },
    );
    y
}

/// As [`super::kernel::input_grad`] for a stride-1 depthwise convolution.
pub(super) fn input_grad(level: Level, shape: &ConvShape, dy: &[f32], weight: &[f32]) -> Vec<f32> {
    let [h, w] = shape.input;
    let [oh, ow] = shape.output;
    let [kh, kw] = shape.kernel;
    let [dh, dw] = shape.dilation;
    let [ph, pw] = shape.padding;
    let taps = kh * kw;
    let per_group = shape.out_channels / shape.groups;
    let frame = Frame {
        rows: h + ph + dh * (kh - 1),
        width: w + pw + dw * (kw - 1),
        top: dh * (kh - 1),
        left: dw * (kw - 1),
    };
    // Tap (i, j) reads the frame at (r + ph + dh (kh - 1 - i), c + pw + dw (kw - 1 - j)).
    let offsets: Vec<usize> = (0..taps)
        .map(|t| frame.offset(ph + dh * (kh - 1 - t / kw), pw + dw * (kw - 1 - t % kw)))
        .collect();
    let mut dx = zeros(shape.batch * shape.in_channels * h * w);
    if dx.is_empty() {
        return dx;
    }
    dx.par_chunks_mut(h * w).enumerate().for_each_init(
        || (vec![0.0; frame.len()], vec![0.0; h * w]),
        |(buffer, part), (plane, grad)| {
            let (b, c) = (plane / shape.in_channels, plane % shape.in_channels);
            for (n, co) in (c * per_group..(c + 1) * per_group).enumerate() {
                let dy = &dy[(b * shape.out_channels + co) * oh * ow..][..oh * ow];
                frame.fill(dy, [oh, ow], buffer);
                let weight = &weight[co * taps..][..taps];
                let out = if n == 0 { &mut *grad } else { &mut part[..] };
                level.run(
                    #[inline(always)]
                    || correlate(buffer, frame.width, &offsets, weight, out, w),
                );
                if n > 0 {
                    grad.iter_mut().zip(part.iter()).for_each(|(g, p)| *g += p);
                }
            }
        },
    );
    dx
}

/// As [`super::kernel::weight_grad`] for a stride-1 depthwise convolution.
pub(super) fn weight_grad(level: Level, shape: &ConvShape, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let [h, w] = shape.input;
    let [oh, ow] = shape.output;
    let taps = shape.kernel[0] * shape.kernel[1];
    let per_group = shape.out_channels / shape.groups;
    let (frame, offsets) = input_frame(shape);
    let mut dw = vec![0.0; shape.out_channels * taps];
    dw.par_chunks_mut(taps).enumerate().for_each_init(
        || vec![0.0; frame.len()],
        |buffer, (co, grad)| {
            let c = co / per_group;
            for b in 0..shape.batch {
                let input = &x[(b * shape.in_channels + c) * h * w..][..h * w];
                frame.fill(input, [h, w], buffer);
                let dy = &dy[(b * shape.out_channels + co) * oh * ow..][..oh * ow];
                for (g, &tap) in grad.iter_mut().zip(&offsets) {
                    *g += level.run(
                        #[inline(always)]
                        || tap_sum(buffer, frame.width, tap, dy, ow),
                    );
                }
            }
        },
    );
    dw
}

/// `sum_(r, c) dy[r][c] * frame[r * width + c + tap]`, in [`LANES`] lanes.
#[inline(always)]
fn tap_sum(frame: &[f32], width: usize, tap: usize, dy: &[f32], cols: usize) -> f32 {
    let mut lanes = [0f32; LANES];
    let mut tail = 0f32;
    for (r, row) in dy.chunks_exact(cols).enumerate() {
        let src = &frame[r * width + tap..][..cols];
        let (rows, srcs) = (row.chunks_exact(LANES), src.chunks_exact(LANES));
        tail += rows
            .remainder()
            .iter()
            .zip(srcs.remainder())
            .map(|(d, s)| d * s)
            .sum::<f32>();
        for (d, s) in rows.zip(srcs) {
            for lane in 0..LANES {
                lanes[lane] += d[lane] * s[lane];
            }
        }
    }
    lanes.iter().sum::<f32>() + tail
}
