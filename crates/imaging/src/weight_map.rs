//! The U-Net loss weight map (Ronneberger, Fischer & Brox, "U-Net:
//! Convolutional Networks for Biomedical Image Segmentation", MICCAI 2015,
//! eq. 2):
//!
//! `w(x) = w_c(x) + w0 * exp(-(d1(x) + d2(x))^2 / (2 sigma^2))`
//!
//! with `d1`, `d2` the Euclidean distances from pixel `x` to the nearest and
//! the second-nearest instance (distance to the nearest pixel of that
//! instance, so 1 for a background pixel edge-adjacent to it).
//!
//! Choices made here:
//! * `w_c` balances the two classes of the semantic mask `labels != 0`:
//!   `w_c(x) = N / (K * n_{class(x)})`, `N` the pixel count, `n_c` the count
//!   of class `c`, `K` the number of classes present (1 or 2). The mean of
//!   `w_c` over the image is exactly 1 and each present class carries the
//!   same total weight `N / K`. An image with one class only gets `w_c = 1`.
//! * The border term is added to background pixels only (`labels == 0`), as
//!   in figure 3d of the paper and common re-implementations: the narrow
//!   background gaps between touching nuclei are what it emphasises; inside a
//!   nucleus `d1 = 0` and the term would only blur the nucleus' own weight. It
//!   needs two instances: with fewer, `w = w_c`.
//! * Truncation, for speed: each instance's exact distance transform is
//!   computed only inside its bounding box grown by `ceil(R)` pixels, with
//!   `R = sigma * sqrt(2 ln(1 / BORDER_TRUNCATION))` (26.28 px for the
//!   default sigma = 5), and only distances `<= R` are kept. Every pixel
//!   within Euclidean distance `R` of an instance lies in that window and the
//!   window contains the whole instance, so kept distances are exact. A pixel
//!   whose true second-nearest distance is `<= R` therefore gets exactly the
//!   true `d1`, `d2`. Any other pixel gets no border term, while its true term
//!   is `w0 * exp(-(d1 + d2)^2 / (2 sigma^2)) <= w0 * exp(-d2^2 / (2 sigma^2))
//!   < w0 * exp(-R^2 / (2 sigma^2)) = w0 * BORDER_TRUNCATION`. So the map
//!   differs from the untruncated one by less than `w0 * 1e-6` anywhere
//!   (before rounding to `f32`). Cost: the sum of the window areas instead of
//!   `pixels x instances`.

use std::collections::HashMap;

use super::distance::squared_distance_to;
use super::error::{Result, expect_len, invalid};

/// Relative size below which the border term is dropped (see module docs).
pub const BORDER_TRUNCATION: f64 = 1e-6;

/// Parameters of the border term `w0 * exp(-(d1 + d2)^2 / (2 sigma^2))`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BorderWeight {
    /// Peak border weight (paper: 10). Must be finite and `>= 0`.
    pub w0: f32,
    /// Width of the border term in pixels (paper: about 5). Must be finite and `> 0`.
    pub sigma: f32,
}

impl Default for BorderWeight {
    /// `w0 = 10`, `sigma = 5` as in the paper.
    fn default() -> Self {
        BorderWeight {
            w0: 10.0,
            sigma: 5.0,
        }
    }
}

impl BorderWeight {
    /// Truncation radius `R = sigma * sqrt(2 ln(1 / BORDER_TRUNCATION))`: for
    /// `d2 > R` the border term is below `w0 * BORDER_TRUNCATION`.
    pub fn truncation_radius(&self) -> f64 {
        f64::from(self.sigma) * (2.0 * (1.0 / BORDER_TRUNCATION).ln()).sqrt()
    }

    fn validate(&self) -> Result<()> {
        if !(self.w0.is_finite() && self.w0 >= 0.0) {
            return Err(invalid(
                "w0",
                format!("must be finite and >= 0, got {}", self.w0),
            ));
        }
        if !(self.sigma.is_finite() && self.sigma > 0.0) {
            return Err(invalid(
                "sigma",
                format!("must be finite and > 0, got {}", self.sigma),
            ));
        }
        Ok(())
    }
}

/// Class-balancing weights `w_c(x) = N / (K * n_{class(x)})` of the mask
/// `labels != 0` (row-major `[height, width]`); see the module docs.
///
/// Errors: wrong buffer length.
pub fn class_balance_weights(labels: &[u32], height: usize, width: usize) -> Result<Vec<f32>> {
    let n = expect_len("labels", labels.len(), &[height, width])?;
    let foreground = labels.iter().filter(|&&l| l != 0).count();
    let background = n - foreground;
    let classes = usize::from(foreground > 0) + usize::from(background > 0);
    let weight = |count: usize| (n as f64 / (classes as f64 * count as f64)) as f32;
    let (w_fg, w_bg) = (weight(foreground), weight(background));
    Ok(labels
        .iter()
        .map(|&l| if l != 0 { w_fg } else { w_bg })
        .collect())
}

/// The U-Net weight map `w = w_c + w0 * exp(-(d1 + d2)^2 / (2 sigma^2))` of an
/// instance label image (row-major `[height, width]`, 0 = background, any
/// ids), border term on background pixels only and truncated below
/// `w0 * 1e-6` as described in the module docs.
///
/// Errors: wrong buffer length, `w0 < 0`, `sigma <= 0` or non-finite values.
pub fn weight_map(
    labels: &[u32],
    height: usize,
    width: usize,
    config: &BorderWeight,
) -> Result<Vec<f32>> {
    config.validate()?;
    let mut weights = class_balance_weights(labels, height, width)?;
    let (d1, d2) = two_nearest_instances(labels, height, width, config.truncation_radius());
    let w0 = f64::from(config.w0);
    let two_sigma_sq = 2.0 * f64::from(config.sigma).powi(2);
    for (i, w) in weights.iter_mut().enumerate() {
        if labels[i] == 0 && d2[i].is_finite() {
            let s = d1[i] + d2[i];
            *w = (f64::from(*w) + w0 * (-s * s / two_sigma_sq).exp()) as f32;
        }
    }
    Ok(weights)
}

/// Inclusive bounding box of one instance.
#[derive(Debug, Clone, Copy)]
struct BoundingBox {
    id: u32,
    y0: usize,
    y1: usize,
    x0: usize,
    x1: usize,
}

/// Bounding boxes of every nonzero id, in raster order of first pixel.
fn bounding_boxes(labels: &[u32], width: usize) -> Vec<BoundingBox> {
    let mut index: HashMap<u32, usize> = HashMap::new();
    let mut boxes: Vec<BoundingBox> = Vec::new();
    for (i, &id) in labels.iter().enumerate().filter(|(_, id)| **id != 0) {
        let (y, x) = (i / width, i % width);
        let k = *index.entry(id).or_insert_with(|| {
            boxes.push(BoundingBox {
                id,
                y0: y,
                y1: y,
                x0: x,
                x1: x,
            });
            boxes.len() - 1
        });
        let b = &mut boxes[k];
        b.y1 = b.y1.max(y);
        b.x0 = b.x0.min(x);
        b.x1 = b.x1.max(x);
    }
    boxes
}

/// For every pixel, the two smallest distances `d1 <= d2` to distinct
/// instances among those at distance `<= max_distance` (`+inf` where fewer
/// than two/one instances are that close). Exact for the kept distances; see
/// the module docs. The caller has checked the buffer length.
pub(crate) fn two_nearest_instances(
    labels: &[u32],
    height: usize,
    width: usize,
    max_distance: f64,
) -> (Vec<f64>, Vec<f64>) {
    let mut d1 = vec![f64::INFINITY; labels.len()];
    let mut d2 = vec![f64::INFINITY; labels.len()];
    if width == 0 {
        return (d1, d2);
    }
    // `as` saturates, so a huge radius simply means "the whole image".
    let margin = max_distance.ceil() as usize;
    let max_sq = max_distance * max_distance;
    for b in bounding_boxes(labels, width) {
        let (y0, x0) = (b.y0.saturating_sub(margin), b.x0.saturating_sub(margin));
        let y1 = b.y1.saturating_add(margin).min(height - 1);
        let x1 = b.x1.saturating_add(margin).min(width - 1);
        let (wh, ww) = (y1 - y0 + 1, x1 - x0 + 1);
        let mut features = Vec::with_capacity(wh * ww);
        for y in y0..=y1 {
            features.extend(
                labels[y * width + x0..=y * width + x1]
                    .iter()
                    .map(|&l| l == b.id),
            );
        }
        let squared = squared_distance_to(&features, wh, ww);
        for (k, &sq) in squared.iter().enumerate() {
            if sq > max_sq {
                continue;
            }
            let i = (y0 + k / ww) * width + x0 + k % ww;
            let d = sq.sqrt();
            if d < d1[i] {
                d2[i] = d1[i];
                d1[i] = d;
            } else if d < d2[i] {
                d2[i] = d;
            }
        }
    }
    (d1, d2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::InstanceError;
    use proptest::prelude::*;

    /// Untruncated reference: for every background pixel, the minimum squared
    /// distance to each instance by scanning all its pixels; then eq. 2.
    fn brute_force(labels: &[u32], h: usize, w: usize, cfg: &BorderWeight) -> Vec<f64> {
        let mut pixels: HashMap<u32, Vec<(f64, f64)>> = HashMap::new();
        for (i, &l) in labels.iter().enumerate().filter(|(_, l)| **l != 0) {
            pixels
                .entry(l)
                .or_default()
                .push(((i / w) as f64, (i % w) as f64));
        }
        let wc = class_balance_weights(labels, h, w).unwrap();
        let two_sigma_sq = 2.0 * f64::from(cfg.sigma).powi(2);
        (0..h * w)
            .map(|i| {
                let base = f64::from(wc[i]);
                if labels[i] != 0 || pixels.len() < 2 {
                    return base;
                }
                let (y, x) = ((i / w) as f64, (i % w) as f64);
                let mut d: Vec<f64> = pixels
                    .values()
                    .map(|ps| {
                        ps.iter()
                            .map(|&(py, px)| (y - py).powi(2) + (x - px).powi(2))
                            .fold(f64::INFINITY, f64::min)
                            .sqrt()
                    })
                    .collect();
                d.sort_by(f64::total_cmp);
                base + f64::from(cfg.w0) * (-(d[0] + d[1]).powi(2) / two_sigma_sq).exp()
            })
            .collect()
    }

    #[test]
    fn two_single_pixel_nuclei_by_hand() {
        // 11x11 image, nuclei at (5, 2) and (5, 8).
        let (h, w) = (11, 11);
        let mut labels = vec![0u32; h * w];
        labels[5 * w + 2] = 4;
        labels[5 * w + 8] = 9;
        let cfg = BorderWeight::default();
        let map = weight_map(&labels, h, w, &cfg).unwrap();
        // N = 121, n_fg = 2, n_bg = 119, K = 2.
        let wc_bg = 121.0 / (2.0 * 119.0);
        let wc_fg = 121.0 / (2.0 * 2.0);
        // Midpoint (5, 5): d1 = d2 = 3, term = 10 exp(-36 / 50).
        let expected = wc_bg + 10.0 * (-36.0f64 / 50.0).exp();
        assert!((f64::from(map[5 * w + 5]) - expected).abs() < 1e-5);
        assert!((expected - (0.508_403 + 4.867_523)).abs() < 1e-5);
        // Corner (0, 0): d1 = sqrt(5^2 + 2^2), d2 = sqrt(5^2 + 8^2).
        let s = 29f64.sqrt() + 89f64.sqrt();
        let expected = wc_bg + 10.0 * (-s * s / 50.0).exp();
        assert!((f64::from(map[0]) - expected).abs() < 1e-5);
        // Nuclei themselves: class weight only.
        assert_eq!(map[5 * w + 2], wc_fg as f32);
        assert_eq!(map[5 * w + 8], 30.25);
    }

    #[test]
    fn class_weights_have_mean_one() {
        let labels = [0, 0, 0, 3, 3, 0, 7, 0, 0, 0];
        let wc = class_balance_weights(&labels, 2, 5).unwrap();
        assert_eq!(wc[0], 10.0 / (2.0 * 7.0));
        assert_eq!(wc[3], 10.0 / (2.0 * 3.0));
        let mean: f32 = wc.iter().sum::<f32>() / 10.0;
        assert!((mean - 1.0).abs() < 1e-6);
        assert_eq!(class_balance_weights(&[0; 4], 2, 2).unwrap(), vec![1.0; 4]);
        assert_eq!(class_balance_weights(&[5; 4], 2, 2).unwrap(), vec![1.0; 4]);
    }

    #[test]
    fn one_instance_has_no_border_term() {
        let mut labels = vec![0u32; 64];
        labels[9] = 1;
        labels[10] = 1;
        let map = weight_map(&labels, 8, 8, &BorderWeight::default()).unwrap();
        let wc = class_balance_weights(&labels, 8, 8).unwrap();
        assert_eq!(map, wc);
    }

    #[test]
    fn terms_are_kept_up_to_r_and_dropped_beyond() {
        // sigma = 2: R = 10.51. 1 x 13 image, nuclei at x = 0 and x = 12.
        // x = 2: d1 = 2, d2 = 10 <= R: term kept, w0 exp(-144 / 8).
        // x = 1: d1 = 1, d2 = 11 > R: term dropped (the true term, the same
        // w0 exp(-144 / 8) = 1.5e-8 w0, is below the bound 1e-6 w0).
        // A large w0 makes the kept term visible.
        let cfg = BorderWeight {
            w0: 1e6,
            sigma: 2.0,
        };
        let mut labels = vec![0u32; 13];
        labels[0] = 1;
        labels[12] = 2;
        let map = weight_map(&labels, 1, 13, &cfg).unwrap();
        let wc_bg = 13.0 / 22.0;
        let term = 1e6 * (-144.0f64 / 8.0).exp();
        assert!((f64::from(map[2]) - (wc_bg + term)).abs() < 1e-6);
        assert_eq!(map[1], wc_bg as f32);
        assert_eq!(map[11], wc_bg as f32);
        assert!(term < 1e6 * BORDER_TRUNCATION);
    }

    #[test]
    fn truncation_radius_meets_the_bound() {
        let cfg = BorderWeight::default();
        let r = cfg.truncation_radius();
        assert!((r - 26.2826).abs() < 1e-3, "{r}");
        let term = (-r * r / (2.0 * 25.0)).exp();
        assert!((term - BORDER_TRUNCATION).abs() < 1e-12);
    }

    #[test]
    fn invalid_inputs_are_errors() {
        let bad = BorderWeight {
            w0: 10.0,
            sigma: 0.0,
        };
        assert!(matches!(
            weight_map(&[0; 4], 2, 2, &bad),
            Err(InstanceError::InvalidParameter { name: "sigma", .. })
        ));
        let bad = BorderWeight {
            w0: f32::NAN,
            sigma: 5.0,
        };
        assert!(weight_map(&[0; 4], 2, 2, &bad).is_err());
        assert!(matches!(
            weight_map(&[0; 3], 2, 2, &BorderWeight::default()),
            Err(InstanceError::LengthMismatch { .. })
        ));
        assert!(
            weight_map(&[], 0, 7, &BorderWeight::default())
                .unwrap()
                .is_empty()
        );
    }

    /// Random label images: up to 8 rectangles painted in order, ids drawn
    /// from 1..6 so that one id may cover several separate regions.
    fn labels_strategy() -> impl Strategy<Value = (usize, usize, Vec<u32>)> {
        (4usize..40, 4usize..40).prop_flat_map(|(h, w)| {
            let rect = (0..h, 0..w, 1usize..6, 1usize..6, 1u32..6);
            proptest::collection::vec(rect, 0..8).prop_map(move |rects| {
                let mut labels = vec![0u32; h * w];
                for (y, x, rh, rw, id) in rects {
                    for yy in y..(y + rh).min(h) {
                        for xx in x..(x + rw).min(w) {
                            labels[yy * w + xx] = id;
                        }
                    }
                }
                (h, w, labels)
            })
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]
        #[test]
        fn truncated_map_matches_brute_force(
            (h, w, labels) in labels_strategy(),
            sigma in 0.5f32..8.0,
            w0 in 0.1f32..20.0,
        ) {
            let cfg = BorderWeight { w0, sigma };
            let fast = weight_map(&labels, h, w, &cfg).unwrap();
            let slow = brute_force(&labels, h, w, &cfg);
            for (i, (&a, &b)) in fast.iter().zip(&slow).enumerate() {
                // Truncation bound (1e-6 w0, tested at 1e-5 w0) plus the
                // rounding of the output to f32.
                let tolerance = 1e-5 * f64::from(w0) + f64::from(f32::EPSILON) * b.abs();
                prop_assert!(
                    (f64::from(a) - b).abs() <= tolerance,
                    "pixel {}: {} vs {}", i, a, b
                );
            }
        }
    }
}
