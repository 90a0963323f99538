//! Images of random filled shapes on a noisy textured background, generated
//! on the fly from a seed: the default data, with no files and no download.

use burn::data::dataset::{Dataset, DatasetError};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::{DataError, Sample, mix};

/// The shape kinds; with more than two classes, class `k` is always kind
/// `(k - 1) % 3`, so shape tells class apart along with brightness.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Ellipse,
    Rectangle,
    Triangle,
}

/// `len` synthetic samples of `size x size` pixels, deterministic in
/// `(seed, index)`: sample `i` is the same whatever else is asked for.
///
/// Each image holds one to four filled ellipses, rectangles and triangles
/// (each its own instance, later shapes drawn over earlier ones)
/// (class 1, or with more classes class `k` drawn as one kind of shape and a
/// brightness step of its own) over a background of low-frequency texture;
/// everything carries pixel noise.
#[derive(Debug, Clone)]
pub struct SyntheticDataset {
    len: usize,
    size: usize,
    classes: usize,
    channels: usize,
    seed: u64,
}

impl SyntheticDataset {
    /// A dataset of `len` images of `size x size` with `classes` classes
    /// (background included) and `channels` image channels (1 or 3).
    pub fn new(
        len: usize,
        size: usize,
        classes: usize,
        channels: usize,
        seed: u64,
    ) -> Result<Self, DataError> {
        if channels != 1 && channels != 3 {
            return Err(DataError::Channels { channels });
        }
        if !(2..=256).contains(&classes) {
            return Err(DataError::Classes { classes });
        }
        if !(8..=crate::config::MAX_SIDE).contains(&size) {
            return Err(DataError::SyntheticSize { size });
        }
        Ok(Self {
            len,
            size,
            classes,
            channels,
            seed,
        })
    }

    /// Sample `index`.
    pub fn sample(&self, index: usize) -> Sample {
        let mut rng = StdRng::seed_from_u64(mix(self.seed, index as u64));
        let n = self.size;
        let s = n as f32;
        let mut mask = vec![0u8; n * n];
        let mut labels = vec![0u32; n * n];
        let shapes: i32 = rng.random_range(1..=4);
        for id in 1..=shapes {
            let class = rng.random_range(1..self.classes) as u8;
            let kind = if self.classes > 2 {
                [Kind::Ellipse, Kind::Rectangle, Kind::Triangle][(class as usize - 1) % 3]
            } else {
                [Kind::Ellipse, Kind::Rectangle, Kind::Triangle][rng.random_range(0..3)]
            };
            let (cx, cy) = (
                rng.random_range(0.15..0.85) * s,
                rng.random_range(0.15..0.85) * s,
            );
            let (rx, ry) = (
                rng.random_range(0.07..0.2) * s,
                rng.random_range(0.07..0.2) * s,
            );
            let turn: f32 = rng.random_range(0.0..std::f32::consts::TAU);
            let corners: [(f32, f32); 3] = std::array::from_fn(|k| {
                let angle = turn + k as f32 * std::f32::consts::TAU / 3.0;
                (cx + rx * 1.3 * angle.cos(), cy + ry * 1.3 * angle.sin())
            });
            for y in 0..n {
                for x in 0..n {
                    let (px, py) = (x as f32 + 0.5, y as f32 + 0.5);
                    let inside = match kind {
                        Kind::Ellipse => ((px - cx) / rx).powi(2) + ((py - cy) / ry).powi(2) <= 1.0,
                        Kind::Rectangle => (px - cx).abs() <= rx && (py - cy).abs() <= ry,
                        Kind::Triangle => in_triangle((px, py), corners),
                    };
                    if inside {
                        mask[y * n + x] = class;
                        labels[y * n + x] = id as u32;
                    }
                }
            }
        }
        // Texture: two random low-frequency waves; the shapes are brighter,
        // each class by its own step, and everything is noisy.
        let waves: [(f32, f32, f32); 2] = std::array::from_fn(|_| {
            (
                rng.random_range(0.5..3.0),
                rng.random_range(0.5..3.0),
                rng.random_range(0.0..6.3),
            )
        });
        let tint: Vec<f32> = (0..self.channels)
            .map(|_| rng.random_range(0.85..1.15))
            .collect();
        let mut image = vec![0f32; self.channels * n * n];
        for y in 0..n {
            for x in 0..n {
                let (u, v) = (
                    x as f32 / s * std::f32::consts::TAU,
                    y as f32 / s * std::f32::consts::TAU,
                );
                let texture: f32 = waves
                    .iter()
                    .map(|(a, b, p)| (a * u + b * v + p).sin())
                    .sum::<f32>()
                    * 0.06;
                let class = mask[y * n + x] as f32;
                let level = if class == 0.0 {
                    0.3 + texture
                } else {
                    0.55 + 0.1 * class + 0.5 * texture
                };
                for (c, t) in tint.iter().enumerate() {
                    let noise = rng.random_range(-0.12..0.12);
                    image[(c * n + y) * n + x] = (level * t + noise).clamp(0.0, 1.0);
                }
            }
        }
        Sample {
            image,
            mask,
            labels: Some(labels),
            channels: self.channels,
            height: n,
            width: n,
        }
    }
}

impl Dataset<Sample> for SyntheticDataset {
    fn get(&self, index: usize) -> Result<Sample, DatasetError> {
        if index >= self.len {
            return Err(DatasetError::new(DataError::IndexOutOfRange {
                index,
                len: self.len,
            }));
        }
        Ok(self.sample(index))
    }

    fn len(&self) -> usize {
        self.len
    }
}

fn in_triangle(p: (f32, f32), [a, b, c]: [(f32, f32); 3]) -> bool {
    let side = |(x1, y1): (f32, f32), (x2, y2): (f32, f32)| {
        (x2 - x1) * (p.1 - y1) - (y2 - y1) * (p.0 - x1)
    };
    let (d1, d2, d3) = (side(a, b), side(b, c), side(c, a));
    let negative = d1 < 0.0 || d2 < 0.0 || d3 < 0.0;
    let positive = d1 > 0.0 || d2 > 0.0 || d3 > 0.0;
    !(negative && positive)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_deterministic_and_varied() {
        let data = SyntheticDataset::new(10, 32, 2, 1, 42).unwrap();
        assert_eq!(data.sample(3), data.sample(3));
        assert_ne!(data.sample(3).mask, data.sample(4).mask);
        let other_seed = SyntheticDataset::new(10, 32, 2, 1, 43).unwrap();
        assert_ne!(data.sample(3).image, other_seed.sample(3).image);
        for i in 0..10 {
            let sample = data.sample(i);
            assert_eq!(sample.image.len(), 32 * 32);
            let foreground = sample.mask.iter().filter(|&&c| c == 1).count();
            assert!(
                foreground > 0 && foreground < 32 * 32,
                "sample {i}: {foreground} foreground pixels"
            );
            assert!(sample.mask.iter().all(|&c| c < 2));
            assert!(sample.image.iter().all(|v| (0.0..=1.0).contains(v)));
        }
    }

    #[test]
    fn shapes_are_brighter_than_the_background() {
        let data = SyntheticDataset::new(4, 48, 4, 3, 1).unwrap();
        let sample = data.sample(0);
        let mean = |class: u8| {
            let values: Vec<f32> = (0..48 * 48)
                .filter(|&p| sample.mask[p] == class)
                .map(|p| sample.image[p])
                .collect();
            values.iter().sum::<f32>() / values.len().max(1) as f32
        };
        let background = mean(0);
        for class in 1..4u8 {
            if sample.mask.contains(&class) {
                assert!(mean(class) > background + 0.15, "class {class}");
            }
        }
        assert_eq!(sample.image.len(), 3 * 48 * 48);
        assert!(sample.mask.iter().any(|&c| c > 0));
    }
}
