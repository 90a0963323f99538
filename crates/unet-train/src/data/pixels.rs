//! Image files as the network sees them: decoded at their own bit depth
//! (8- or 16-bit PNG, JPEG), as grayscale or RGB planes, resized if asked,
//! and normalised the same way in training, prediction and evaluation.

use std::path::Path;

use image::imageops::FilterType;
use image::{DynamicImage, ImageReader};
use serde::{Deserialize, Serialize};

use super::{DataError, MAX_DECODED_BYTES};

/// How pixel values become the network's input.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Normalize {
    /// Divided by the largest value of the file's bit depth (255 for 8-bit,
    /// 65535 for 16-bit images): values in `[0, 1]`.
    #[default]
    Divide,
    /// Per image and channel, `(v - p_low) / (p_high - p_low)` with `p_low`,
    /// `p_high` the `low`-th and `high`-th percentiles of its values (not
    /// clipped), as CSBDeep and StarDist normalise microscopy images
    /// (1 and 99.8 by default there).
    Percentile {
        /// The lower percentile, in `[0, 100)`.
        low: f64,
        /// The upper percentile, in `(low, 100]`.
        high: f64,
    },
    /// Per image and channel, `(v - mean) / std` (the standard deviation
    /// taken as 1 for a constant channel).
    ZScore,
}

impl Normalize {
    /// Checks the percentiles.
    pub fn validate(&self) -> Result<(), String> {
        match *self {
            Normalize::Percentile { low, high } if !(0.0 <= low && low < high && high <= 100.0) => {
                Err(format!(
                    "percentiles {low},{high}: need 0 <= low < high <= 100"
                ))
            }
            _ => Ok(()),
        }
    }

    /// Normalises one channel's values (already divided by the bit depth's
    /// largest value) in place.
    pub fn apply(&self, values: &mut [f32]) {
        match *self {
            Normalize::Divide => {}
            Normalize::Percentile { low, high } => {
                let (lo, hi) = percentiles(values, low, high);
                let scale = if hi > lo { 1.0 / (hi - lo) } else { 1.0 };
                values.iter_mut().for_each(|v| *v = (*v - lo) * scale);
            }
            Normalize::ZScore => {
                let n = values.len().max(1) as f64;
                let mean = values.iter().map(|&v| v as f64).sum::<f64>() / n;
                let var = values
                    .iter()
                    .map(|&v| (v as f64 - mean).powi(2))
                    .sum::<f64>()
                    / n;
                let std = if var > 0.0 { var.sqrt() } else { 1.0 };
                values
                    .iter_mut()
                    .for_each(|v| *v = ((*v as f64 - mean) / std) as f32);
            }
        }
    }
}

/// The `low`-th and `high`-th percentiles of `values` (linear interpolation
/// between order statistics, as NumPy's default).
fn percentiles(values: &[f32], low: f64, high: f64) -> (f32, f32) {
    if values.is_empty() {
        return (0.0, 1.0);
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable_by(f32::total_cmp);
    let at = |q: f64| {
        let position = q / 100.0 * (sorted.len() - 1) as f64;
        let (i, frac) = (position.floor() as usize, position.fract() as f32);
        let next = sorted[(i + 1).min(sorted.len() - 1)];
        sorted[i] + frac * (next - sorted[i])
    };
    (at(low), at(high))
}

/// Decodes an image file, with a memory limit instead of an abort for a
/// file whose pixels would not fit.
pub fn decode(path: &Path) -> Result<DynamicImage, DataError> {
    let unreadable = |reason: String| DataError::Unreadable {
        path: path.to_path_buf(),
        reason,
    };
    let mut reader = ImageReader::open(path)
        .map_err(|err| unreadable(err.to_string()))?
        .with_guessed_format()
        .map_err(|err| unreadable(err.to_string()))?;
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(MAX_DECODED_BYTES as u64);
    reader.limits(limits);
    reader.decode().map_err(|err| unreadable(err.to_string()))
}

/// 1 for a grayscale image, 3 for a colour one (alpha does not count).
pub fn channels_of(image: &DynamicImage) -> usize {
    if image.color().has_color() { 3 } else { 1 }
}

/// Reads an image file as planar `[channels, h, w]` values, divided by the
/// largest value of its bit depth, then normalised by `normalize`; resized
/// to `resize x resize` (bilinear, before normalising) if asked. Also returns
/// the file's own `[width, height]`. The file must have `channels` channels:
/// grayscale for 1, colour for 3.
pub fn read_image(
    path: &Path,
    channels: usize,
    resize: Option<usize>,
    normalize: Normalize,
) -> Result<(Vec<f32>, [u32; 2]), DataError> {
    if channels != 1 && channels != 3 {
        return Err(DataError::Channels { channels });
    }
    let image = decode(path)?;
    let found = channels_of(&image);
    if found != channels {
        return Err(DataError::ChannelMismatch {
            path: path.to_path_buf(),
            found,
            expected: channels,
        });
    }
    let size = [image.width(), image.height()];
    let image = match resize.map(u32::try_from) {
        Some(Ok(side)) if [side; 2] != size => image.resize_exact(side, side, FilterType::Triangle),
        Some(Err(_)) => {
            return Err(DataError::Unreadable {
                path: path.to_path_buf(),
                reason: "the resize target does not fit in 32 bits".into(),
            });
        }
        _ => image,
    };
    let mut values = planar(&image, channels);
    let plane = values.len() / channels;
    for channel in values.chunks_exact_mut(plane.max(1)) {
        normalize.apply(channel);
    }
    Ok((values, size))
}

/// The image as `[channels, h, w]` floats in `[0, 1]`.
fn planar(image: &DynamicImage, channels: usize) -> Vec<f32> {
    if channels == 1 {
        return image.to_luma32f().into_raw();
    }
    let rgb = image.to_rgb32f().into_raw();
    let plane = rgb.len() / 3;
    (0..3 * plane)
        .map(|i| rgb[(i % plane) * 3 + i / plane])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageBuffer, Luma};

    #[test]
    fn sixteen_bit_images_keep_their_depth() {
        let dir = std::env::temp_dir().join(format!("unet-image-16-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("deep.png");
        // Four values 1 apart: an 8-bit reading would make them all equal.
        let image: ImageBuffer<Luma<u16>, Vec<u16>> =
            ImageBuffer::from_raw(4, 1, vec![1000, 1001, 1002, 1003]).unwrap();
        image.save(&path).unwrap();
        let (values, size) = read_image(&path, 1, None, Normalize::Divide).unwrap();
        assert_eq!(size, [4, 1]);
        for (v, raw) in values.iter().zip(1000..) {
            assert!((v - raw as f32 / 65535.0).abs() < 1e-7, "{v}");
        }
        let (z, _) = read_image(&path, 1, None, Normalize::ZScore).unwrap();
        // (0, 1, 2, 3) - 1.5 over the population std sqrt(1.25).
        for (v, want) in z.iter().zip([-1.5f32, -0.5, 0.5, 1.5]) {
            assert!((v - want / 1.25f32.sqrt()).abs() < 1e-3, "{z:?}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn percentiles_follow_numpy() {
        // numpy.percentile([0, 1, ..., 10], [1, 99.8]) == [0.1, 9.98]
        let values: Vec<f32> = (0..=10).map(|v| v as f32).collect();
        let (lo, hi) = percentiles(&values, 1.0, 99.8);
        assert!(
            (lo - 0.1).abs() < 1e-5 && (hi - 9.98).abs() < 1e-5,
            "{lo} {hi}"
        );
        let mut scaled = values.clone();
        Normalize::Percentile {
            low: 1.0,
            high: 99.8,
        }
        .apply(&mut scaled);
        assert!((scaled[0] + 0.1 / 9.88).abs() < 1e-5, "{scaled:?}");
        assert!((scaled[10] - 9.9 / 9.88).abs() < 1e-5, "{scaled:?}");
        assert!(
            Normalize::Percentile {
                low: 5.0,
                high: 5.0
            }
            .validate()
            .is_err()
        );
    }
}
