//! The per-channel passes batch norm is made of, on contiguous `f32`
//! buffers `[n, c, plane]` (`plane` = the pixels of one image and channel):
//!
//! - statistics: the mean and the biased variance of each channel, in two
//!   passes with `f64` sums (one pass of `E[x^2] - E[x]^2` in `f32` loses
//!   digits when the mean is large against the spread);
//! - their gradient: `dx = g_mean / m + g_var * 2 (x - mean) / m`, `m = n * plane`;
//! - an affine map per channel, `y = x * scale[c] + shift[c]` (the
//!   normalisation itself, and the input gradient of it with `shift = 0`);
//! - the sums its parameter gradients need, `sum(dy * x)` and `sum(dy)`.
//!
//! Channels (or planes) run in parallel.

use rayon::prelude::*;

/// `[n, channels, plane]` of a `[n, c, h, w]` tensor.
pub(crate) type Dims = [usize; 3];

/// Sums `f(x)` over the planes of channel `c`, in `f64`.
fn channel_sum(x: &[f32], [n, channels, plane]: Dims, c: usize, f: impl Fn(f32) -> f64) -> f64 {
    (0..n)
        .map(|b| {
            x[(b * channels + c) * plane..][..plane]
                .iter()
                .map(|&v| f(v))
                .sum::<f64>()
        })
        .sum()
}

/// `[mean_0 .. mean_{c-1}, var_0 .. var_{c-1}]`: each channel's mean and
/// biased variance.
pub(crate) fn channel_stats(x: &[f32], dims: Dims) -> Vec<f32> {
    let [n, channels, plane] = dims;
    let m = (n * plane).max(1) as f64;
    let stats: Vec<(f32, f32)> = (0..channels)
        .into_par_iter()
        .map(|c| {
            let mean = channel_sum(x, dims, c, f64::from) / m;
            let var = channel_sum(x, dims, c, |v| (f64::from(v) - mean).powi(2)) / m;
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
pub(crate) fn channel_stats_grad(x: &[f32], stats: &[f32], grad: &[f32], dims: Dims) -> Vec<f32> {
    let [n, channels, plane] = dims;
    let m = (n * plane).max(1) as f32;
    let mut dx = vec![0.0; x.len()];
    dx.par_chunks_mut(plane.max(1))
        .enumerate()
        .for_each(|(i, out)| {
            let c = i % channels;
            let (mean, g_mean, g_var) = (stats[c], grad[c] / m, 2.0 * grad[channels + c] / m);
            let x = &x[i * plane..][..plane];
            for (d, &v) in out.iter_mut().zip(x) {
                *d = g_mean + g_var * (v - mean);
            }
        });
    dx
}

/// `y = x * scale[c] + shift[c]`, channel by channel.
pub(crate) fn channel_affine(x: &[f32], scale: &[f32], shift: &[f32], dims: Dims) -> Vec<f32> {
    let [_, channels, plane] = dims;
    let mut y = vec![0.0; x.len()];
    y.par_chunks_mut(plane.max(1))
        .enumerate()
        .for_each(|(i, out)| {
            let c = i % channels;
            let (a, b) = (scale[c], shift[c]);
            for (o, &v) in out.iter_mut().zip(&x[i * plane..][..plane]) {
                *o = v * a + b;
            }
        });
    y
}

/// `[sum(dy * x) per channel, sum(dy) per channel]`: the gradients of
/// [`channel_affine`]'s `scale` and `shift`.
pub(crate) fn channel_sums(dy: &[f32], x: &[f32], dims: Dims) -> Vec<f32> {
    let [n, channels, plane] = dims;
    let sums: Vec<(f32, f32)> = (0..channels)
        .into_par_iter()
        .map(|c| {
            let (mut dot, mut total) = (0f64, 0f64);
            for b in 0..n {
                let at = (b * channels + c) * plane;
                for (&g, &v) in dy[at..][..plane].iter().zip(&x[at..][..plane]) {
                    dot += f64::from(g) * f64::from(v);
                    total += f64::from(g);
                }
            }
            (dot as f32, total as f32)
        })
        .collect();
    sums.iter()
        .map(|s| s.0)
        .chain(sums.iter().map(|s| s.1))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics_of_a_small_case_by_hand() {
        // n = 2, c = 2, plane = 2: channel 0 holds 1, 3 (image 0) and 5, 7
        // (image 1): mean 4, variance (9 + 1 + 1 + 9) / 4 = 5. Channel 1:
        // 2, 2, 2, 2: mean 2, variance 0.
        let x = [1.0, 3.0, 2.0, 2.0, 5.0, 7.0, 2.0, 2.0];
        assert_eq!(channel_stats(&x, [2, 2, 2]), [4.0, 2.0, 5.0, 0.0]);
        // A large mean with a small spread keeps its variance.
        let big: Vec<f32> = (0..1000).map(|i| 1e4 + (i % 2) as f32).collect();
        let stats = channel_stats(&big, [1, 1, 1000]);
        assert!((stats[1] - 0.25).abs() < 1e-6, "{stats:?}");
    }

    #[test]
    fn the_gradients_are_the_derivatives() {
        let dims = [2, 3, 4];
        let x: Vec<f32> = (0..24).map(|i| ((i * 7) % 11) as f32 / 3.0 - 1.0).collect();
        let stats = channel_stats(&x, dims);
        // L = sum_c (a_c mean_c + b_c var_c): its derivative by central differences.
        let weights: Vec<f32> = (0..6).map(|i| i as f32 * 0.5 - 1.0).collect();
        let loss = |x: &[f32]| -> f64 {
            let s = channel_stats(x, dims);
            s.iter().zip(&weights).map(|(s, w)| f64::from(s * w)).sum()
        };
        let dx = channel_stats_grad(&x, &stats, &weights, dims);
        for i in 0..x.len() {
            let (mut up, mut down) = (x.clone(), x.clone());
            up[i] += 1e-2;
            down[i] -= 1e-2;
            let numeric = (loss(&up) - loss(&down)) / 2e-2;
            assert!(
                (numeric - f64::from(dx[i])).abs() < 1e-3,
                "{i}: {numeric} vs {}",
                dx[i]
            );
        }
        // The affine map and its parameter sums.
        let (scale, shift) = ([2.0, -1.0, 0.5], [1.0, 0.0, -3.0]);
        let y = channel_affine(&x, &scale, &shift, dims);
        assert_eq!(y[5], -x[5]);
        let dy: Vec<f32> = (0..24).map(|i| (i % 5) as f32).collect();
        let sums = channel_sums(&dy, &x, dims);
        let channel = |c: usize| (0..2).flat_map(move |b| (b * 3 + c) * 4..(b * 3 + c) * 4 + 4);
        let dot: f32 = channel(1).map(|i| dy[i] * x[i]).sum();
        let total: f32 = channel(1).map(|i| dy[i]).sum();
        assert!((sums[1] - dot).abs() < 1e-5 && (sums[4] - total).abs() < 1e-5);
    }
}
