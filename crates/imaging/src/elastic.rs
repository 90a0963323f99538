//! Elastic deformation as used for training U-Net (Ronneberger et al. 2015,
//! section 3.1): random displacement vectors on a coarse grid, interpolated
//! bicubically to a dense per-pixel field that resamples the image.
//!
//! Conventions:
//! * Backward mapping: output pixel `(y, x)` takes the input value at
//!   `(y + dy(y, x), x + dx(y, x))`; `dy`, `dx` are in pixels.
//! * Control grid: `grid x grid` points spanning the image, control row `i`
//!   sitting on pixel row `i * (height - 1) / (grid - 1)` (first and last on
//!   the image edges), likewise for columns. Each point gets an independent
//!   `N(0, sigma^2)` displacement per component (Box-Muller, drawn row-major,
//!   `dy` then `dx`).
//! * Cubic interpolation, for both the control grid and the image, is cubic
//!   convolution with `a = -0.5` (Catmull-Rom): at fractional offset `t` the
//!   weights of samples `floor-1 .. floor+2` are
//!   `((-t^3 + 2t^2 - t)/2, (3t^3 - 5t^2 + 2)/2, (-3t^3 + 4t^2 + t)/2, (t^3 - t^2)/2)`.
//!   It interpolates (weights `(0, 1, 0, 0)` at `t = 0`, so integer positions
//!   are reproduced exactly) and reproduces polynomials up to degree 2 away
//!   from the borders.
//! * Borders: mirror (reflect about the edge pixels, `... 2 1 | 0 1 2 ... n-1 | n-2 ...`,
//!   `scipy.ndimage` mode `"mirror"`), for the control grid, the image and
//!   the nearest-neighbour resampling alike, so labels stay aligned with the
//!   image. A nucleus near the border can thus be reflected into view and
//!   appear twice with the same id.
//! * Masks and labels use nearest neighbour (position rounded half away from
//!   zero), so values are copied, never blended.

use rand::Rng;

use super::error::{Result, checked_len, expect_len, invalid};
use super::gaussian::standard_normal_pair;

/// Parameters of the random displacement field.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ElasticConfig {
    /// Control points per side (paper: 3). Must be `>= 1`; 1 gives a random
    /// constant shift.
    pub grid: usize,
    /// Standard deviation in pixels of each displacement component at the
    /// control points (paper: 10). Must be finite and `>= 0`.
    pub sigma: f32,
}

impl Default for ElasticConfig {
    /// A 3x3 grid with `sigma = 10` px, as in the paper.
    fn default() -> Self {
        ElasticConfig {
            grid: 3,
            sigma: 10.0,
        }
    }
}

/// A dense displacement field: row-major `[height, width]` components `dy`,
/// `dx` in pixels (backward mapping, see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    height: usize,
    width: usize,
    dy: Vec<f32>,
    dx: Vec<f32>,
}

impl Field {
    /// A field from its two components. Errors: a component whose length is
    /// not `height * width`, or a non-finite displacement.
    pub fn from_components(
        height: usize,
        width: usize,
        dy: Vec<f32>,
        dx: Vec<f32>,
    ) -> Result<Self> {
        expect_len("dy", dy.len(), &[height, width])?;
        expect_len("dx", dx.len(), &[height, width])?;
        if !dy.iter().chain(&dx).all(|v| v.is_finite()) {
            return Err(invalid("field", "displacements must be finite"));
        }
        Ok(Field {
            height,
            width,
            dy,
            dx,
        })
    }

    /// The same displacement `(dy, dx)` everywhere.
    pub fn constant(height: usize, width: usize, dy: f32, dx: f32) -> Result<Self> {
        let n = checked_len(&[height, width])?;
        Field::from_components(height, width, vec![dy; n], vec![dx; n])
    }

    /// The identity warp.
    pub fn zero(height: usize, width: usize) -> Result<Self> {
        Field::constant(height, width, 0.0, 0.0)
    }

    /// Interpolates control displacements (row-major `[grid, grid]` each)
    /// bicubically to a dense field; see the module docs for the grid
    /// geometry. Errors: `grid == 0`, wrong lengths, non-finite values.
    pub fn from_control_points(
        height: usize,
        width: usize,
        grid: usize,
        dy: &[f32],
        dx: &[f32],
    ) -> Result<Self> {
        if grid == 0 {
            return Err(invalid("grid", "must be >= 1"));
        }
        expect_len("control dy", dy.len(), &[grid, grid])?;
        expect_len("control dx", dx.len(), &[grid, grid])?;
        if checked_len(&[height, width])? == 0 {
            return Field::from_components(height, width, Vec::new(), Vec::new());
        }
        let dense_dy = interpolate_grid(dy, grid, height, width);
        let dense_dx = interpolate_grid(dx, grid, height, width);
        Field::from_components(height, width, dense_dy, dense_dx)
    }

    /// Image height in pixels.
    pub fn height(&self) -> usize {
        self.height
    }

    /// Image width in pixels.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Row displacement per pixel, row-major `[height, width]`.
    pub fn dy(&self) -> &[f32] {
        &self.dy
    }

    /// Column displacement per pixel, row-major `[height, width]`.
    pub fn dx(&self) -> &[f32] {
        &self.dx
    }
}

/// Draws a random elastic displacement field: `grid x grid` control
/// displacements, each component `N(0, sigma^2)`, interpolated bicubically
/// (see the module docs). Deterministic given the state of `rng`.
///
/// Errors: `grid == 0`, `sigma` negative or not finite, size overflow.
pub fn displacement_field<R: Rng + ?Sized>(
    height: usize,
    width: usize,
    config: &ElasticConfig,
    rng: &mut R,
) -> Result<Field> {
    if !(config.sigma.is_finite() && config.sigma >= 0.0) {
        return Err(invalid(
            "sigma",
            format!("must be finite and >= 0, got {}", config.sigma),
        ));
    }
    if config.grid == 0 {
        return Err(invalid("grid", "must be >= 1"));
    }
    let points = checked_len(&[config.grid, config.grid])?;
    let sigma = f64::from(config.sigma);
    let (mut dy, mut dx) = (Vec::with_capacity(points), Vec::with_capacity(points));
    for _ in 0..points {
        let (a, b) = standard_normal_pair(rng);
        dy.push((sigma * a) as f32);
        dx.push((sigma * b) as f32);
    }
    Field::from_control_points(height, width, config.grid, &dy, &dx)
}

/// Resamples a planar `[channels, height, width]` image through `field` with
/// Catmull-Rom bicubic interpolation and mirrored borders. Output has the
/// same shape. Errors: `image.len() != channels * height * width`.
pub fn warp_image(field: &Field, image: &[f32], channels: usize) -> Result<Vec<f32>> {
    let plane = field.dy.len();
    expect_len("image", image.len(), &[channels, field.height, field.width])?;
    let mut out = vec![0.0f32; image.len()];
    for (i, (&dy, &dx)) in field.dy.iter().zip(&field.dx).enumerate() {
        let (y, x) = (i / field.width, i % field.width);
        let ty = cubic_taps(y as f64 + f64::from(dy), field.height);
        let tx = cubic_taps(x as f64 + f64::from(dx), field.width);
        for c in 0..channels {
            let source = &image[c * plane..(c + 1) * plane];
            let mut sum = 0.0f64;
            for (&row, &wy) in ty.index.iter().zip(&ty.weight) {
                let line = &source[row * field.width..(row + 1) * field.width];
                let across: f64 = tx
                    .index
                    .iter()
                    .zip(&tx.weight)
                    .map(|(&col, &wx)| wx * f64::from(line[col]))
                    .sum();
                sum += wy * across;
            }
            out[c * plane + i] = sum as f32;
        }
    }
    Ok(out)
}

/// Resamples a single-channel `[height, width]` buffer (mask, labels) through
/// `field` by nearest neighbour with mirrored borders: every output value is
/// a copy of an input value. Errors: `values.len() != height * width`.
pub fn warp_nearest<T: Copy>(field: &Field, values: &[T]) -> Result<Vec<T>> {
    expect_len("values", values.len(), &[field.height, field.width])?;
    let out = field
        .dy
        .iter()
        .zip(&field.dx)
        .enumerate()
        .map(|(i, (&dy, &dx))| {
            let (y, x) = (i / field.width, i % field.width);
            let row = mirror((y as f64 + f64::from(dy)).round() as i64, field.height);
            let col = mirror((x as f64 + f64::from(dx)).round() as i64, field.width);
            values[row * field.width + col]
        })
        .collect();
    Ok(out)
}

/// The four samples and weights of cubic convolution at a position.
#[derive(Debug, Clone, Copy)]
struct Taps {
    index: [usize; 4],
    weight: [f64; 4],
}

/// Catmull-Rom weights of samples `floor-1 .. floor+2` at offset `t` in `[0, 1)`.
fn catmull_rom(t: f64) -> [f64; 4] {
    let (t2, t3) = (t * t, t * t * t);
    [
        0.5 * (-t3 + 2.0 * t2 - t),
        0.5 * (3.0 * t3 - 5.0 * t2 + 2.0),
        0.5 * (-3.0 * t3 + 4.0 * t2 + t),
        0.5 * (t3 - t2),
    ]
}

/// Taps of cubic convolution at `position` along an axis of `n >= 1` samples,
/// indices mirrored into range. `position` must be finite (`as` saturates).
fn cubic_taps(position: f64, n: usize) -> Taps {
    let floor = position.floor();
    let base = floor as i64;
    let mut index = [0usize; 4];
    for (k, slot) in index.iter_mut().enumerate() {
        *slot = mirror(base.saturating_add(k as i64 - 1), n);
    }
    Taps {
        index,
        weight: catmull_rom(position - floor),
    }
}

/// Mirror (reflect about the edge samples) an index into `0..n`, `n >= 1`:
/// period `2 (n - 1)`, `-1 -> 1`, `n -> n - 2`.
fn mirror(i: i64, n: usize) -> usize {
    if n <= 1 {
        return 0;
    }
    // Buffers hold at most isize::MAX bytes, so a real axis length fits i64.
    let last = i64::try_from(n - 1).unwrap_or(i64::MAX / 2);
    let m = i.rem_euclid(2 * last);
    (if m > last { 2 * last - m } else { m }) as usize
}

/// Bicubic interpolation of a row-major `[grid, grid]` control array to a
/// `[height, width]` field (both non-zero), separably: rows then columns.
fn interpolate_grid(control: &[f32], grid: usize, height: usize, width: usize) -> Vec<f32> {
    let axis = |n: usize| -> Vec<Taps> {
        let scale = if n > 1 && grid > 1 {
            (grid - 1) as f64 / (n - 1) as f64
        } else {
            0.0
        };
        (0..n).map(|p| cubic_taps(p as f64 * scale, grid)).collect()
    };
    let (rows, cols) = (axis(height), axis(width));
    // Interpolate down each control column: partial[y * grid + j].
    let mut partial = vec![0.0f64; height * grid];
    for (y, taps) in rows.iter().enumerate() {
        for j in 0..grid {
            partial[y * grid + j] = (0..4)
                .map(|k| taps.weight[k] * f64::from(control[taps.index[k] * grid + j]))
                .sum();
        }
    }
    let mut out = Vec::with_capacity(height * width);
    for y in 0..height {
        let line = &partial[y * grid..(y + 1) * grid];
        out.extend(cols.iter().map(|taps| {
            (0..4)
                .map(|k| taps.weight[k] * line[taps.index[k]])
                .sum::<f64>() as f32
        }));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};
    use std::collections::HashSet;

    fn random_image(rng: &mut StdRng, n: usize) -> Vec<f32> {
        (0..n).map(|_| rng.random::<f32>() * 2.0 - 1.0).collect()
    }

    #[test]
    fn zero_field_is_the_identity() {
        let (h, w, c) = (13, 17, 3);
        let mut rng = StdRng::seed_from_u64(3);
        let image = random_image(&mut rng, c * h * w);
        let mask: Vec<u8> = (0..h * w).map(|_| rng.random_range(0..3u8)).collect();
        let labels: Vec<u32> = (0..h * w).map(|_| rng.random_range(0..1000u32)).collect();
        let field = Field::zero(h, w).unwrap();
        assert_eq!(warp_image(&field, &image, c).unwrap(), image);
        assert_eq!(warp_nearest(&field, &mask).unwrap(), mask);
        assert_eq!(warp_nearest(&field, &labels).unwrap(), labels);
        // A random field with sigma = 0 is also exactly zero.
        let cfg = ElasticConfig {
            grid: 3,
            sigma: 0.0,
        };
        let field = displacement_field(h, w, &cfg, &mut rng).unwrap();
        assert_eq!(warp_image(&field, &image, c).unwrap(), image);
    }

    #[test]
    fn integer_shift_moves_the_image() {
        let (h, w, c) = (12, 15, 2);
        let mut rng = StdRng::seed_from_u64(5);
        let image = random_image(&mut rng, c * h * w);
        let labels: Vec<u32> = (0..(h * w) as u32).collect();
        let field = Field::constant(h, w, 2.0, -3.0).unwrap();
        let warped = warp_image(&field, &image, c).unwrap();
        let warped_labels = warp_nearest(&field, &labels).unwrap();
        for y in 0..h - 2 {
            for x in 3..w {
                let (src, dst) = ((y + 2) * w + x - 3, y * w + x);
                assert_eq!(warped_labels[dst], labels[src]);
                for ch in 0..c {
                    assert_eq!(warped[ch * h * w + dst], image[ch * h * w + src]);
                }
            }
        }
        // Mirror border: row h - 1 reads row h + 1 -> h - 3; column 0 reads -3 -> 3.
        assert_eq!(warped_labels[(h - 1) * w], labels[(h - 3) * w + 3]);
    }

    #[test]
    fn half_pixel_shift_reproduces_a_ramp() {
        // Catmull-Rom reproduces linear functions away from the border.
        let (h, w) = (4, 10);
        let image: Vec<f32> = (0..h * w).map(|i| 3.0 * (i % w) as f32 + 1.0).collect();
        let field = Field::constant(h, w, 0.0, 0.5).unwrap();
        let warped = warp_image(&field, &image, 1).unwrap();
        for y in 0..h {
            for x in 1..w - 2 {
                let expected = 3.0 * (x as f32 + 0.5) + 1.0;
                assert!((warped[y * w + x] - expected).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn warped_labels_use_only_existing_ids() {
        let (h, w) = (40, 50);
        let mut rng = StdRng::seed_from_u64(11);
        let labels: Vec<u32> = (0..h * w)
            .map(|i| [0, 3, 17, 900][(i / 97 + i % 7) % 4])
            .collect();
        let original: HashSet<u32> = labels.iter().copied().collect();
        for _ in 0..10 {
            let field = displacement_field(h, w, &ElasticConfig::default(), &mut rng).unwrap();
            let warped = warp_nearest(&field, &labels).unwrap();
            assert!(warped.iter().all(|id| original.contains(id)));
            assert_ne!(warped, labels);
        }
    }

    #[test]
    fn same_seed_same_field_and_output() {
        let cfg = ElasticConfig::default();
        let a = displacement_field(30, 20, &cfg, &mut StdRng::seed_from_u64(9)).unwrap();
        let b = displacement_field(30, 20, &cfg, &mut StdRng::seed_from_u64(9)).unwrap();
        let c = displacement_field(30, 20, &cfg, &mut StdRng::seed_from_u64(10)).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        let image = random_image(&mut StdRng::seed_from_u64(1), 600);
        assert_eq!(
            warp_image(&a, &image, 1).unwrap(),
            warp_image(&b, &image, 1).unwrap()
        );
    }

    #[test]
    fn control_points_are_interpolated() {
        // 9x9 image, 3x3 grid: control points on rows/cols 0, 4, 8.
        let dy: Vec<f32> = (0..9).map(|v| v as f32 - 4.0).collect();
        let dx: Vec<f32> = vec![2.5; 9];
        let f = Field::from_control_points(9, 9, 3, &dy, &dx).unwrap();
        for i in 0..3 {
            for j in 0..3 {
                assert_eq!(f.dy()[i * 4 * 9 + j * 4], dy[i * 3 + j]);
            }
        }
        assert!(f.dx().iter().all(|&v| (v - 2.5).abs() < 1e-6));
        // Between control points the field stays between neighbouring values.
        let mid = f.dy()[2 * 9 + 2];
        assert!(mid > dy[0] && mid < dy[4], "{mid}");
    }

    #[test]
    fn control_displacements_have_std_sigma() {
        // On a 3x3 image the 3x3 control points are the pixels themselves.
        let cfg = ElasticConfig {
            grid: 3,
            sigma: 10.0,
        };
        let mut rng = StdRng::seed_from_u64(21);
        let mut values = Vec::new();
        for _ in 0..2000 {
            let f = displacement_field(3, 3, &cfg, &mut rng).unwrap();
            values.extend(f.dy().iter().chain(f.dx()).map(|&v| f64::from(v)));
        }
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let std = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
        assert!(mean.abs() < 0.3, "{mean}");
        assert!((std - 10.0).abs() < 0.2, "{std}");
    }

    #[test]
    fn bad_inputs_are_errors() {
        let field = Field::zero(4, 5).unwrap();
        assert!(warp_image(&field, &[0.0; 19], 1).is_err());
        assert!(warp_image(&field, &[0.0; 40], 2).is_ok());
        assert!(warp_nearest(&field, &[0u8; 21]).is_err());
        assert!(Field::from_components(2, 2, vec![0.0; 4], vec![f32::NAN; 4]).is_err());
        let mut rng = StdRng::seed_from_u64(0);
        let bad = ElasticConfig {
            grid: 0,
            sigma: 1.0,
        };
        assert!(displacement_field(4, 4, &bad, &mut rng).is_err());
        let bad = ElasticConfig {
            grid: 3,
            sigma: -1.0,
        };
        assert!(displacement_field(4, 4, &bad, &mut rng).is_err());
        let empty = displacement_field(0, 7, &ElasticConfig::default(), &mut rng).unwrap();
        assert!(warp_image(&empty, &[], 3).unwrap().is_empty());
    }

    #[test]
    fn mirror_reflects_about_the_edges() {
        let got: Vec<usize> = (-5..9).map(|i| mirror(i, 4)).collect();
        assert_eq!(got, vec![1, 2, 3, 2, 1, 0, 1, 2, 3, 2, 1, 0, 1, 2]);
        assert_eq!(mirror(-7, 1), 0);
        assert_eq!(mirror(i64::MAX, 5), mirror(i64::MAX - 8, 5));
    }
}
