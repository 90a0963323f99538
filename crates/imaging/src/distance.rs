//! Exact Euclidean distance transform (Felzenszwalb & Huttenlocher, "Distance
//! Transforms of Sampled Functions", Theory of Computing 8, 2012).
//!
//! The squared distance `D(y, x) = min_{(p, q) feature} (y - p)^2 + (x - q)^2`
//! is separable: a 1-D transform `d(i) = min_q (i - q)^2 + f(q)` is applied to
//! every column (with `f = 0` on features, `+inf` elsewhere) and then to every
//! row of the result. Each 1-D transform is the lower envelope of the
//! parabolas `(i - q)^2 + f(q)`, built in one left-to-right sweep, so the whole
//! transform is O(pixels). Arithmetic is done in `f64` on integer-valued
//! squared distances, which is exact up to 2^53; only the final `sqrt` is
//! rounded (to `f32` in the public functions).

use super::error::{Result, expect_len};

/// Euclidean distance from every pixel to the nearest `true` pixel.
///
/// `features` is row-major `[height, width]`; the result has the same shape.
/// A feature pixel has distance 0; if there is no feature pixel at all every
/// entry is `f32::INFINITY`. Pixels outside the image are never features.
///
/// Errors: `features.len() != height * width` (or the product overflows).
pub fn distance_to(features: &[bool], height: usize, width: usize) -> Result<Vec<f32>> {
    expect_len("features", features.len(), &[height, width])?;
    let squared = squared_distance_to(features, height, width);
    Ok(squared.iter().map(|&d| d.sqrt() as f32).collect())
}

/// Inside distance: for each `true` (foreground) pixel, the Euclidean distance
/// to the nearest `false` (background) pixel; 0 on background pixels.
///
/// This is `distance_to(!foreground)` restricted to the foreground (the same
/// convention as `scipy.ndimage.distance_transform_edt(foreground)`): the
/// region outside the image is *not* background, so a nucleus cut by the image
/// border is not cut short by it. If the image has no background pixel at all,
/// every pixel gets `f32::INFINITY`.
///
/// Errors: `foreground.len() != height * width` (or the product overflows).
pub fn inside_distance(foreground: &[bool], height: usize, width: usize) -> Result<Vec<f32>> {
    expect_len("foreground", foreground.len(), &[height, width])?;
    let squared = squared_inside_distance(foreground, height, width);
    Ok(squared.iter().map(|&d| d.sqrt() as f32).collect())
}

/// Squared inside distance in `f64` (see [`inside_distance`]); the caller has
/// checked `foreground.len() == height * width`.
pub(crate) fn squared_inside_distance(
    foreground: &[bool],
    height: usize,
    width: usize,
) -> Vec<f64> {
    let background: Vec<bool> = foreground.iter().map(|&f| !f).collect();
    let mut squared = squared_distance_to(&background, height, width);
    for (d, &f) in squared.iter_mut().zip(foreground) {
        if !f {
            *d = 0.0;
        }
    }
    squared
}

/// Squared Euclidean distance to the nearest `true` pixel, in `f64`
/// (`+inf` where there is none). The caller has checked
/// `features.len() == height * width`.
pub(crate) fn squared_distance_to(features: &[bool], height: usize, width: usize) -> Vec<f64> {
    let mut grid: Vec<f64> = features
        .iter()
        .map(|&f| if f { 0.0 } else { f64::INFINITY })
        .collect();
    let mut scratch = Scratch::default();
    // Columns: gather, transform, scatter.
    let mut column_in = vec![0.0; height];
    let mut column_out = vec![0.0; height];
    for x in 0..width {
        for (y, v) in column_in.iter_mut().enumerate() {
            *v = grid[y * width + x];
        }
        envelope_1d(&column_in, &mut column_out, &mut scratch);
        for (y, &v) in column_out.iter().enumerate() {
            grid[y * width + x] = v;
        }
    }
    // Rows: contiguous, transformed through one reusable buffer.
    let mut row_out = vec![0.0; width];
    if width > 0 {
        for row in grid.chunks_exact_mut(width) {
            envelope_1d(row, &mut row_out, &mut scratch);
            row.copy_from_slice(&row_out);
        }
    }
    grid
}

/// Reusable buffers of the 1-D transform: `v` holds the abscissae of the
/// parabolas in the lower envelope, `z[k]` the left end of the interval
/// where parabola `v[k]` is lowest (`z[0] = -inf`).
#[derive(Default)]
struct Scratch {
    v: Vec<usize>,
    z: Vec<f64>,
}

/// One-dimensional squared distance transform `out[i] = min_q (i - q)^2 + f[q]`.
///
/// Samples with `f[q] = +inf` can never be the minimum and are skipped; if
/// every sample is infinite the output is all `+inf`. The intersection of the
/// parabolas rooted at `p < q` is `s = ((f[q] + q^2) - (f[p] + p^2)) / (2q - 2p)`;
/// parabola `p` is hidden (popped) when `s <= z[p]`.
fn envelope_1d(f: &[f64], out: &mut [f64], scratch: &mut Scratch) {
    let Scratch { v, z } = scratch;
    v.clear();
    z.clear();
    for (q, &fq) in f.iter().enumerate() {
        if !fq.is_finite() {
            continue;
        }
        let qf = q as f64;
        let mut s = f64::NEG_INFINITY;
        while let (Some(&p), Some(&zp)) = (v.last(), z.last()) {
            let pf = p as f64;
            let candidate = ((fq + qf * qf) - (f[p] + pf * pf)) / (2.0 * (qf - pf));
            if candidate <= zp {
                v.pop();
                z.pop();
            } else {
                s = candidate;
                break;
            }
        }
        v.push(q);
        z.push(s);
    }
    if v.is_empty() {
        out.fill(f64::INFINITY);
        return;
    }
    let mut k = 0;
    for (i, o) in out.iter_mut().enumerate() {
        let x = i as f64;
        while k + 1 < v.len() && z[k + 1] < x {
            k += 1;
        }
        let d = x - v[k] as f64;
        *o = d * d + f[v[k]];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::InstanceError;
    use proptest::prelude::*;

    /// O(pixels^2) reference: minimum over all features of the distance.
    fn brute_force(features: &[bool], height: usize, width: usize) -> Vec<f32> {
        let points: Vec<(f64, f64)> = (0..height * width)
            .filter(|&i| features[i])
            .map(|i| ((i / width) as f64, (i % width) as f64))
            .collect();
        (0..height * width)
            .map(|i| {
                let (y, x) = ((i / width) as f64, (i % width) as f64);
                points
                    .iter()
                    .map(|&(py, px)| ((y - py).powi(2) + (x - px).powi(2)).sqrt())
                    .fold(f64::INFINITY, f64::min) as f32
            })
            .collect()
    }

    #[test]
    fn single_point_gives_exact_euclidean_distances() {
        let (h, w) = (7, 9);
        let mut features = vec![false; h * w];
        features[2 * w + 3] = true;
        let d = distance_to(&features, h, w).unwrap();
        for y in 0..h {
            for x in 0..w {
                let dy = y as f32 - 2.0;
                let dx = x as f32 - 3.0;
                assert_eq!(d[y * w + x], (dy * dy + dx * dx).sqrt(), "at ({y}, {x})");
            }
        }
        assert_eq!(d[2 * w + 3], 0.0);
        assert_eq!(d[6 * w + 8], 41f32.sqrt()); // (4, 5) away
    }

    #[test]
    fn two_points_take_the_nearer_one() {
        let (h, w) = (1, 10);
        let mut features = vec![false; 10];
        features[1] = true;
        features[8] = true;
        let d = distance_to(&features, h, w).unwrap();
        assert_eq!(d, vec![1.0, 0.0, 1.0, 2.0, 3.0, 3.0, 2.0, 1.0, 0.0, 1.0]);
    }

    #[test]
    fn no_feature_gives_infinity_and_empty_image_is_empty() {
        let d = distance_to(&[false; 12], 3, 4).unwrap();
        assert!(d.iter().all(|v| v.is_infinite()));
        assert!(distance_to(&[], 0, 5).unwrap().is_empty());
        assert!(distance_to(&[], 5, 0).unwrap().is_empty());
    }

    #[test]
    fn wrong_length_is_an_error() {
        assert!(matches!(
            distance_to(&[true; 5], 2, 3),
            Err(InstanceError::LengthMismatch { .. })
        ));
        assert!(matches!(
            inside_distance(&[true; 5], usize::MAX, 3),
            Err(InstanceError::SizeOverflow { .. })
        ));
    }

    #[test]
    fn inside_distance_of_a_square() {
        // 5x5 foreground square in the middle of a 7x7 image.
        let (h, w) = (7, 7);
        let fg: Vec<bool> = (0..h * w)
            .map(|i| (1..6).contains(&(i / w)) && (1..6).contains(&(i % w)))
            .collect();
        let d = inside_distance(&fg, h, w).unwrap();
        assert_eq!(d[0], 0.0);
        assert_eq!(d[w + 1], 1.0); // corner of the square
        assert_eq!(d[2 * w + 2], 2.0);
        assert_eq!(d[3 * w + 3], 3.0); // centre
        assert_eq!(d[3 * w + 1], 1.0);
    }

    #[test]
    fn inside_distance_ignores_the_image_border() {
        // Foreground everywhere except the last column: distance grows to the left.
        let (h, w) = (3, 5);
        let fg: Vec<bool> = (0..h * w).map(|i| i % w != 4).collect();
        let d = inside_distance(&fg, h, w).unwrap();
        assert_eq!(&d[0..5], &[4.0, 3.0, 2.0, 1.0, 0.0]);
        let all = inside_distance(&[true; 6], 2, 3).unwrap();
        assert!(all.iter().all(|v| v.is_infinite()));
    }

    fn mask_strategy() -> impl Strategy<Value = (usize, usize, Vec<bool>)> {
        (1usize..24, 1usize..24, 0.0f64..0.3).prop_flat_map(|(h, w, density)| {
            let cells = proptest::collection::vec(proptest::bool::weighted(density), h * w);
            cells.prop_map(move |v| (h, w, v))
        })
    }

    proptest! {
        #[test]
        fn matches_brute_force((h, w, features) in mask_strategy()) {
            let fast = distance_to(&features, h, w).unwrap();
            let slow = brute_force(&features, h, w);
            for (a, b) in fast.iter().zip(&slow) {
                if b.is_infinite() {
                    prop_assert!(a.is_infinite());
                } else {
                    prop_assert!((a - b).abs() <= 1e-4, "{} vs {}", a, b);
                }
            }
        }

        #[test]
        fn inside_matches_brute_force((h, w, background) in mask_strategy()) {
            let fg: Vec<bool> = background.iter().map(|&b| !b).collect();
            let fast = inside_distance(&fg, h, w).unwrap();
            let slow = brute_force(&background, h, w);
            for i in 0..h * w {
                let expected = if fg[i] { slow[i] } else { 0.0 };
                if expected.is_infinite() {
                    prop_assert!(fast[i].is_infinite());
                } else {
                    prop_assert!((fast[i] - expected).abs() <= 1e-4);
                }
            }
        }
    }
}
