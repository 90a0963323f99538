//! The per-channel passes batch norm is made of, on contiguous `f32`
//! buffers `[n, c, plane]` (`plane` = the pixels of one image and channel):
//!
//! - statistics: the mean and the biased variance of each channel, in two
//!   passes with `f64` sums (one pass of `E[x^2] - E[x]^2` in `f32` loses
//!   digits when the mean is large against the spread);
//! - their gradient: `dx = g_mean / m + g_var * 2 (x - mean) / m`, `m = n * plane`;
//! - an [`Affine`] map per channel, `y = x * scale[c] + shift[c]`, optionally
//!   followed by ReLU (the normalisation, and the activation after it), and
//!   its gradients in one pass: `dx`, `sum(g * x)` and `sum(g)` per channel,
//!   `g` the output gradient where the output is positive (with ReLU) or
//!   everywhere.
//!
//! Planes run in parallel, each compiled for the widest vector instructions
//! the CPU has ([`Level`]); sums run in [`LANES`] independent `f64` lanes so
//! that they vectorise, in the same order on every level.

use rayon::prelude::*;

use super::kernel::zeros;
use super::simd::Level;

/// Lanes of a sum: one AVX-512 register of `f64`.
const LANES: usize = 8;

/// The layout of a `[n, c, h, w]` tensor as planes, and the instructions
/// the passes over it use.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Planes {
    /// Images.
    pub n: usize,
    /// Channels.
    pub channels: usize,
    /// Values per image and channel (`h * w`).
    pub plane: usize,
    /// Instruction set of the loops.
    pub level: Level,
}

impl Planes {
    /// The planes of a `[n, c, h, w]` tensor, for this CPU's widest level.
    pub(crate) fn of([n, channels, h, w]: [usize; 4]) -> Self {
        Planes {
            n,
            channels,
            plane: h * w,
            level: Level::detect(),
        }
    }

    /// Values per channel: `n * plane`.
    fn per_channel(&self) -> usize {
        self.n * self.plane
    }

    /// The planes of `values`, with the channel of each, in parallel.
    fn par_planes<'a>(
        &self,
        values: &'a mut [f32],
    ) -> impl IndexedParallelIterator<Item = (usize, usize, &'a mut [f32])> {
        let channels = self.channels;
        values
            .par_chunks_mut(self.plane.max(1))
            .enumerate()
            .map(move |(i, plane)| (i, i % channels, plane))
    }
}

/// `sum(f(v))` over `values` in [`LANES`] lanes, in `f64`.
#[inline(always)]
fn lane_sum(values: &[f32], f: impl Fn(f32) -> f64) -> f64 {
    let chunks = values.chunks_exact(LANES);
    let tail: f64 = chunks.remainder().iter().map(|&v| f(v)).sum();
    let mut lanes = [0f64; LANES];
    for chunk in chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane += f(v);
        }
    }
    lanes.iter().sum::<f64>() + tail
}

/// Sums `f(x)` over the planes of channel `c`.
fn channel_sum(x: &[f32], planes: Planes, c: usize, f: impl Fn(f32) -> f64 + Copy) -> f64 {
    (0..planes.n)
        .map(|b| {
            let plane = &x[(b * planes.channels + c) * planes.plane..][..planes.plane];
            planes.level.run(
                #[inline(always)]
                || lane_sum(plane, f),
            )
        })
        .sum()
}

/// `[mean_0 .. mean_{c-1}, var_0 .. var_{c-1}]`: each channel's mean and
/// biased variance.
pub(crate) fn channel_stats(x: &[f32], planes: Planes) -> Vec<f32> {
    let m = planes.per_channel().max(1) as f64;
    let stats: Vec<(f32, f32)> = (0..planes.channels)
        .into_par_iter()
        .map(|c| {
            let mean = channel_sum(x, planes, c, f64::from) / m;
            let var = channel_sum(x, planes, c, |v| (f64::from(v) - mean).powi(2)) / m;
            (mean as f32, var as f32)
        })
        .collect();
    stats
        .iter()
        .map(|s| s.0)
        .chain(stats.iter().map(|s| s.1))
        .collect()
}

/// The gradient with respect to `x` of [`channel_stats`], given the
/// gradients `grad` of its result (`[2 * c]`, means then variances).
pub(crate) fn channel_stats_grad(
    x: &[f32],
    stats: &[f32],
    grad: &[f32],
    planes: Planes,
) -> Vec<f32> {
    let channels = planes.channels;
    let m = planes.per_channel().max(1) as f32;
    let mut dx = zeros(x.len());
    planes.par_planes(&mut dx).for_each(|(i, c, out)| {
        let (mean, g_mean, g_var) = (stats[c], grad[c] / m, 2.0 * grad[channels + c] / m);
        let x = &x[i * planes.plane..][..planes.plane];
        planes.level.run(
            #[inline(always)]
            || {
                for (d, &v) in out.iter_mut().zip(x) {
                    *d = g_mean + g_var * (v - mean);
                }
            },
        );
    });
    dx
}

/// A per-channel affine map `y = x * scale[c] + shift[c]`, followed by
/// ReLU (`max(y, 0)`, NaN kept) if `relu`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Affine<'a> {
    pub scale: &'a [f32],
    pub shift: &'a [f32],
    pub relu: bool,
}

impl Affine<'_> {
    /// The map applied to `x`.
    pub(crate) fn apply(&self, x: &[f32], planes: Planes) -> Vec<f32> {
        let mut y = zeros(x.len());
        planes.par_planes(&mut y).for_each(|(i, c, out)| {
            let (a, b, relu) = (self.scale[c], self.shift[c], self.relu);
            let x = &x[i * planes.plane..][..planes.plane];
            planes.level.run(
                #[inline(always)]
                || {
                    for (o, &v) in out.iter_mut().zip(x) {
                        let y = v * a + b;
                        *o = if relu && y <= 0.0 { 0.0 } else { y };
                    }
                },
            );
        });
        y
    }

    /// The gradients of [`Affine::apply`] for output gradient `dy`: the
    /// input's, and per channel `[sum(g * x) .., sum(g) ..]` (`[2 * c]`: those
    /// of `scale` and `shift`), where `g` is `dy` with ReLU's mask (zero where
    /// the output is not positive, as PyTorch) or `dy` itself.
    pub(crate) fn grads(&self, dy: &[f32], x: &[f32], planes: Planes) -> (Vec<f32>, Vec<f32>) {
        let mut dx = zeros(x.len());
        let partial: Vec<(usize, f64, f64)> = planes
            .par_planes(&mut dx)
            .map(|(i, c, out)| {
                let at = i * planes.plane;
                let (dy, x) = (&dy[at..][..planes.plane], &x[at..][..planes.plane]);
                let (a, b, relu) = (self.scale[c], self.shift[c], self.relu);
                let (dot, total) = planes.level.run(
                    #[inline(always)]
                    || affine_grads(dy, x, out, [a, b], relu),
                );
                (c, dot, total)
            })
            .collect();
        let mut sums = vec![0f64; 2 * planes.channels];
        for (c, dot, total) in partial {
            sums[c] += dot;
            sums[planes.channels + c] += total;
        }
        (dx, sums.into_iter().map(|s| s as f32).collect())
    }
}

/// One plane of [`Affine::grads`]: writes `dx` and returns `(sum(g * x), sum(g))`.
#[inline(always)]
fn affine_grads(dy: &[f32], x: &[f32], dx: &mut [f32], [a, b]: [f32; 2], relu: bool) -> (f64, f64) {
    // Zero where the output is not positive (NaN included), as PyTorch.
    let masked = |g: f32, v: f32| if !relu || v * a + b > 0.0 { g } else { 0.0 };
    let (mut dot, mut total) = ([0f64; LANES], [0f64; LANES]);
    let start = dx.len() - dx.len() % LANES;
    let chunks = dx.chunks_exact_mut(LANES);
    for ((out, dy), x) in chunks
        .zip(dy.chunks_exact(LANES))
        .zip(x.chunks_exact(LANES))
    {
        for lane in 0..LANES {
            let g = masked(dy[lane], x[lane]);
            out[lane] = g * a;
            dot[lane] += f64::from(g) * f64::from(x[lane]);
            total[lane] += f64::from(g);
        }
    }
    let (mut tail_dot, mut tail_total) = (0f64, 0f64);
    for i in start..dx.len() {
        let g = masked(dy[i], x[i]);
        dx[i] = g * a;
        tail_dot += f64::from(g) * f64::from(x[i]);
        tail_total += f64::from(g);
    }
    (
        dot.iter().sum::<f64>() + tail_dot,
        total.iter().sum::<f64>() + tail_total,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planes(n: usize, channels: usize, plane: usize, level: Level) -> Planes {
        Planes {
            n,
            channels,
            plane,
            level,
        }
    }

    #[test]
    fn statistics_of_a_small_case_by_hand() {
        // n = 2, c = 2, plane = 2: channel 0 holds 1, 3 (image 0) and 5, 7
        // (image 1): mean 4, variance (9 + 1 + 1 + 9) / 4 = 5. Channel 1:
        // 2, 2, 2, 2: mean 2, variance 0.
        let x = [1.0, 3.0, 2.0, 2.0, 5.0, 7.0, 2.0, 2.0];
        let p = planes(2, 2, 2, Level::detect());
        assert_eq!(channel_stats(&x, p), [4.0, 2.0, 5.0, 0.0]);
        // A large mean with a small spread keeps its variance.
        let big: Vec<f32> = (0..1000).map(|i| 1e4 + (i % 2) as f32).collect();
        let stats = channel_stats(&big, planes(1, 1, 1000, Level::detect()));
        assert!((stats[1] - 0.25).abs() < 1e-6, "{stats:?}");
    }

    /// A loss of the passes' results, `sum(w * result)`, and its gradient
    /// with respect to `x` by central differences.
    fn numeric_grad(x: &[f32], i: usize, loss: impl Fn(&[f32]) -> f64) -> f64 {
        let (mut up, mut down) = (x.to_vec(), x.to_vec());
        up[i] += 1e-2;
        down[i] -= 1e-2;
        (loss(&up) - loss(&down)) / 2e-2
    }

    #[test]
    fn the_gradients_are_the_derivatives() {
        let p = planes(2, 3, 4, Level::detect());
        let x: Vec<f32> = (0..24).map(|i| ((i * 7) % 11) as f32 / 3.0 - 1.0).collect();
        let stats = channel_stats(&x, p);
        // L = sum_c (a_c mean_c + b_c var_c).
        let weights: Vec<f32> = (0..6).map(|i| i as f32 * 0.5 - 1.0).collect();
        let loss = |x: &[f32]| -> f64 {
            let s = channel_stats(x, p);
            s.iter().zip(&weights).map(|(s, w)| f64::from(s * w)).sum()
        };
        let dx = channel_stats_grad(&x, &stats, &weights, p);
        for (i, &d) in dx.iter().enumerate() {
            let numeric = numeric_grad(&x, i, loss);
            assert!(
                (numeric - f64::from(d)).abs() < 1e-3,
                "{i}: {numeric} vs {d}"
            );
        }
    }

    #[test]
    fn the_affine_map_and_its_gradients_with_and_without_relu() {
        let p = planes(2, 3, 4, Level::detect());
        // Values a step of 1/3 apart, none where an output is zero, so that
        // central differences never straddle ReLU's kink.
        let x: Vec<f32> = (0..24).map(|i| ((i * 7) % 11) as f32 / 3.0 - 1.1).collect();
        let dy: Vec<f32> = (0..24).map(|i| (i % 5) as f32 - 1.5).collect();
        for relu in [false, true] {
            let affine = Affine {
                scale: &[2.0, -1.0, 0.5],
                shift: &[1.0, 0.0, -0.3],
                relu,
            };
            let y = affine.apply(&x, p);
            // Channel 1 of image 0 is at 4..8: y = -x, or relu(-x).
            for i in 4..8 {
                let expected = if relu { (-x[i]).max(0.0) } else { -x[i] };
                assert_eq!(y[i], expected, "relu {relu}, {i}");
            }
            let loss = |x: &[f32]| -> f64 {
                let y = affine.apply(x, p);
                y.iter().zip(&dy).map(|(y, g)| f64::from(y * g)).sum()
            };
            let (dx, sums) = affine.grads(&dy, &x, p);
            for (i, &d) in dx.iter().enumerate() {
                let numeric = numeric_grad(&x, i, loss);
                assert!(
                    (numeric - f64::from(d)).abs() < 1e-3,
                    "relu {relu}, {i}: {numeric} vs {d}"
                );
            }
            // The parameter gradients: those of `scale[1]` and `shift[1]`.
            let channel = |c: usize| (0..2).flat_map(move |b| (b * 3 + c) * 4..(b * 3 + c) * 4 + 4);
            let g = |i: usize| if relu && y[i] <= 0.0 { 0.0 } else { dy[i] };
            let dot: f32 = channel(1).map(|i| g(i) * x[i]).sum();
            let total: f32 = channel(1).map(g).sum();
            assert!(
                (sums[1] - dot).abs() < 1e-5 && (sums[4] - total).abs() < 1e-5,
                "relu {relu}: {sums:?}"
            );
        }
    }

    #[test]
    fn every_instruction_set_gives_the_portable_values() {
        // Planes of 37 values: four full lanes of eight and a tail.
        let x: Vec<f32> = (0..2 * 3 * 37)
            .map(|i| ((i * 13) % 29) as f32 / 7.0 - 2.0)
            .collect();
        let dy: Vec<f32> = (0..x.len()).map(|i| ((i * 5) % 11) as f32 - 5.0).collect();
        let affine = Affine {
            scale: &[1.5, -0.5, 0.25],
            shift: &[0.5, 0.1, -0.2],
            relu: true,
        };
        let run = |level| {
            let p = planes(2, 3, 37, level);
            let stats = channel_stats(&x, p);
            let stats_grad = channel_stats_grad(&x, &stats, &[0.5, 1.0, -1.0, 2.0, 0.0, 1.0], p);
            (
                stats,
                stats_grad,
                affine.apply(&x, p),
                affine.grads(&dy, &x, p),
            )
        };
        let portable = run(Level::Portable);
        for level in Level::available() {
            assert_eq!(run(level), portable, "{level:?}");
        }
    }
}
