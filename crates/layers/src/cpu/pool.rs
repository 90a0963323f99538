//! Max pooling over windows that do not overlap (stride = kernel, no
//! padding, PyTorch's floor mode: rows and columns past the last whole
//! window belong to none) on contiguous `f32` planes, forward and backward.
//!
//! The maximum is PyTorch's: a window is scanned in row-major order and a
//! value replaces the running maximum (from -inf) when it is greater or NaN.
//! So ties go to the first maximum, a window holding a NaN gives NaN and
//! sends its gradient to its last NaN, and a window of -inf sends it to its
//! first value. The backward pass finds that position again from the input
//! rather than keeping an index per output (Burn keeps an `i64` tensor of
//! them): the input is kept for the backward pass either way.
//!
//! The gradient written at a maximum is `0.0 + g`, as PyTorch adds it
//! into zeros (a gradient of -0.0 arrives as +0.0).
//!
//! Planes run in parallel, each compiled for the widest vector instructions
//! the CPU has ([`Level`]).

use rayon::prelude::*;

use super::kernel::zeros;
use super::simd::Level;

/// The windows of a pooling: `planes` planes (images times channels) of
/// `input` pixels, cut into windows of `kernel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Windows {
    /// Planes: images times channels.
    pub planes: usize,
    /// `[height, width]` of a plane.
    pub input: [usize; 2],
    /// `[height, width]` of a window, each at least 1.
    pub kernel: [usize; 2],
    /// Instruction set of the loops.
    pub level: Level,
}

impl Windows {
    /// The windows of a `[n, c, h, w]` tensor, for this CPU's widest level.
    pub(crate) fn of([n, c, h, w]: [usize; 4], kernel: [usize; 2]) -> Self {
        Windows {
            planes: n * c,
            input: [h, w],
            kernel,
            level: Level::detect(),
        }
    }

    /// `[height, width]` of the output: whole windows per axis.
    pub(crate) fn output(&self) -> [usize; 2] {
        [0, 1].map(|a| self.input[a] / self.kernel[a])
    }

    fn plane_in(&self) -> usize {
        self.input[0] * self.input[1]
    }

    fn plane_out(&self) -> usize {
        let [oh, ow] = self.output();
        oh * ow
    }
}

/// PyTorch's step through a window: `value` replaces the running maximum
/// `max` when it is greater, or NaN.
#[inline(always)]
fn replaces(value: f32, max: f32) -> bool {
    (value > max) | value.is_nan()
}

/// The maximum of every window: `[planes, oh, ow]`.
pub(crate) fn forward(x: &[f32], windows: Windows) -> Vec<f32> {
    let mut y = vec![0.0; windows.planes * windows.plane_out()];
    if y.is_empty() {
        return y;
    }
    y.par_chunks_mut(windows.plane_out())
        .zip(x.par_chunks(windows.plane_in()))
        .for_each(|(out, plane)| {
            windows.level.run(
                #[inline(always)]
                || forward_plane(plane, out, windows),
            )
        });
    y
}

/// The gradient of the input (`[planes, h, w]`) for output gradient `dy`
/// (`[planes, oh, ow]`): each window's output gradient at the position of
/// its maximum, zero elsewhere.
pub(crate) fn input_grad(x: &[f32], dy: &[f32], windows: Windows) -> Vec<f32> {
    let mut dx = zeros(windows.planes * windows.plane_in());
    if windows.plane_out() == 0 {
        return dx;
    }
    dx.par_chunks_mut(windows.plane_in())
        .zip(x.par_chunks(windows.plane_in()))
        .zip(dy.par_chunks(windows.plane_out()))
        .for_each(|((dx, plane), dy)| {
            windows.level.run(
                #[inline(always)]
                || input_grad_plane(plane, dy, dx, windows),
            )
        });
    dx
}

/// The maximum of the values of a window in row-major order, and its
/// position among them, written as selects without branches (the 2x2
/// forward loop vectorises with it; the 2x2 backward one needs
/// [`argmax_2x2`]'s flags).
#[inline(always)]
fn window_max(values: impl IntoIterator<Item = f32>) -> (f32, usize) {
    let (mut max, mut at) = (f32::NEG_INFINITY, 0);
    for (position, value) in values.into_iter().enumerate() {
        let replace = replaces(value, max);
        max = if replace { value } else { max };
        at = if replace { position } else { at };
    }
    (max, at)
}

/// The maxima of one plane into `out`.
#[inline(always)]
fn forward_plane(plane: &[f32], out: &mut [f32], windows: Windows) {
    let (w, ow) = (windows.input[1], windows.output()[1]);
    let [kh, kw] = windows.kernel;
    for (oy, out) in out.chunks_exact_mut(ow).enumerate() {
        let rows = &plane[oy * kh * w..][..kh * w];
        if windows.kernel == [2, 2] {
            let (top, bottom) = rows.split_at(w);
            maxima_2x2(top, bottom, out);
        } else {
            for (ox, out) in out.iter_mut().enumerate() {
                *out = window_max(window(rows, w, [kh, kw], ox)).0;
            }
        }
    }
}

/// The maxima of the 2x2 windows of two rows, one row of windows; the
/// windows zipped from the rows, a loop the compiler vectorises.
#[inline(always)]
fn maxima_2x2(top: &[f32], bottom: &[f32], out: &mut [f32]) {
    let pairs = top.chunks_exact(2).zip(bottom.chunks_exact(2));
    for (out, (t, b)) in out.iter_mut().zip(pairs) {
        *out = window_max([t[0], t[1], b[0], b[1]]).0;
    }
}

/// The values of window `ox` of a row of windows (`rows`, `kh` input rows
/// of width `w`) in row-major order.
#[inline(always)]
fn window(
    rows: &[f32],
    w: usize,
    [kh, kw]: [usize; 2],
    ox: usize,
) -> impl Iterator<Item = f32> + '_ {
    (0..kh).flat_map(move |i| rows[i * w + ox * kw..][..kw].iter().copied())
}

/// One plane of [`input_grad`] into `dx`, which holds zeros.
#[inline(always)]
fn input_grad_plane(plane: &[f32], dy: &[f32], dx: &mut [f32], windows: Windows) {
    let (w, ow) = (windows.input[1], windows.output()[1]);
    let [kh, kw] = windows.kernel;
    for (oy, dy) in dy.chunks_exact(ow).enumerate() {
        let rows = &plane[oy * kh * w..][..kh * w];
        let grads = &mut dx[oy * kh * w..][..kh * w];
        if windows.kernel == [2, 2] {
            let (top, bottom) = rows.split_at(w);
            let (grad_top, grad_bottom) = grads.split_at_mut(w);
            grads_2x2([top, bottom], dy, [grad_top, grad_bottom]);
        } else {
            for (ox, &g) in dy.iter().enumerate() {
                let at = window_max(window(rows, w, [kh, kw], ox)).1;
                grads[(at / kw) * w + ox * kw + at % kw] = 0.0 + g;
            }
        }
    }
}

/// The input gradient of one row of 2x2 windows: every value of each window
/// written, the output gradient where the maximum lies and zero elsewhere,
/// a loop the compiler vectorises.
#[inline(always)]
fn grads_2x2([top, bottom]: [&[f32]; 2], dy: &[f32], [grad_top, grad_bottom]: [&mut [f32]; 2]) {
    let pairs = top.chunks_exact(2).zip(bottom.chunks_exact(2));
    let grad_pairs = grad_top
        .chunks_exact_mut(2)
        .zip(grad_bottom.chunks_exact_mut(2));
    for ((&g, (t, b)), (gt, gb)) in dy.iter().zip(pairs).zip(grad_pairs) {
        let [a, c, d, e] =
            argmax_2x2([t[0], t[1], b[0], b[1]]).map(|at| if at { 0.0 + g } else { 0.0 });
        [gt[0], gt[1], gb[0], gb[1]] = [a, c, d, e];
    }
}

/// Which value of a 2x2 window (row-major) is its maximum, as a flag per
/// value: the last one that replaced the running maximum, or the first
/// if none did (a window of -inf). Flags rather than an index, so that
/// the caller's loop has no branch on it.
#[inline(always)]
fn argmax_2x2(window: [f32; 4]) -> [bool; 4] {
    let mut max = f32::NEG_INFINITY;
    let [_, r1, r2, r3] = window.map(|value| {
        let replace = replaces(value, max);
        max = if replace { value } else { max };
        replace
    });
    [!(r1 | r2 | r3), r1 & !(r2 | r3), r2 & !r3, r3]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::kernel::tests::values;

    /// PyTorch's `max_pool2d` and its input gradient by the definition: a
    /// scan of each window in row-major order, one output at a time.
    fn reference(x: &[f32], dy: &[f32], windows: Windows) -> (Vec<f32>, Vec<f32>) {
        let ([h, w], [kh, kw], [oh, ow]) = (windows.input, windows.kernel, windows.output());
        let mut y = Vec::new();
        let mut dx = vec![0.0; x.len()];
        for p in 0..windows.planes {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut best = (f32::NEG_INFINITY, (oy * kh) * w + ox * kw);
                    for i in 0..kh {
                        for j in 0..kw {
                            let index = (oy * kh + i) * w + ox * kw + j;
                            let value = x[p * h * w + index];
                            if value > best.0 || value.is_nan() {
                                best = (value, index);
                            }
                        }
                    }
                    y.push(best.0);
                    dx[p * h * w + best.1] = dy[(p * oh + oy) * ow + ox];
                }
            }
        }
        (y, dx)
    }

    /// Values with ties (a few distinct levels), NaN and infinities.
    fn awkward(len: usize) -> Vec<f32> {
        values(len, 5)
            .into_iter()
            .enumerate()
            .map(|(i, v)| match i % 23 {
                3 => f32::NAN,
                7 | 8 => f32::NEG_INFINITY,
                11 => f32::INFINITY,
                _ => (v * 2.0).round(),
            })
            .collect()
    }

    fn same(a: &[f32], b: &[f32]) -> bool {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(a, b)| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()))
    }

    #[test]
    fn forward_and_gradient_follow_pytorch_scan_on_every_level() {
        for (input, kernel) in [
            ([8, 10], [2, 2]),
            ([7, 9], [2, 2]),
            ([9, 8], [3, 2]),
            ([5, 5], [5, 5]),
            ([10, 11], [3, 3]),
            ([4, 7], [1, 3]),
            ([3, 3], [4, 1]),
        ] {
            for level in Level::available() {
                let windows = Windows {
                    planes: 3,
                    input,
                    kernel,
                    level,
                };
                let x = awkward(windows.planes * windows.plane_in());
                let dy = values(windows.planes * windows.plane_out(), 9);
                let (y, dx) = reference(&x, &dy, windows);
                assert!(same(&forward(&x, windows), &y), "{windows:?}");
                assert!(same(&input_grad(&x, &dy, windows), &dx), "{windows:?}");
            }
        }
    }
}
