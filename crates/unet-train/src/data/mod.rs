//! Segmentation data: samples, the synthetic generator, image folders,
//! augmentation and the train/validation split.

mod augment;
mod error;
mod folder;
mod mask;
mod pixels;
mod synthetic;

pub use augment::{Augmentation, augment};
pub use error::DataError;
pub use folder::{
    FolderDataset, IMAGE_EXTENSIONS, ImageMaskPair, files_by_stem, has_extension, image_mask_pairs,
    read_pair, resize_nearest, same_images,
};
pub use mask::{MaskKind, RawMask, read_raw_mask};
pub use pixels::{
    ChannelMap, Normalize, Samples, SourceImage, channels_of, decode, open_image, read_image,
};
pub use synthetic::SyntheticDataset;

/// The most bytes one decoded image or mask may take; a larger file is an
/// error naming it rather than an allocation that could end the program.
pub const MAX_DECODED_BYTES: usize = 4 << 30;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

/// One image, its mask, and its instance labels if any, as the network sees them.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Pixel values divided by 255, `[channels, height, width]`, row-major.
    pub image: Vec<f32>,
    /// Class index per pixel, `[height, width]`, row-major.
    pub mask: Vec<u8>,
    /// Instance id per pixel (0 background, one id per object), `[height,
    /// width]`, where the data has them: the loss weight map and the
    /// instance scores come from these.
    pub labels: Option<Vec<u32>>,
    /// Image channels (1 grayscale, 3 RGB).
    pub channels: usize,
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
}

impl Sample {
    /// The image value at channel `c`, row `y`, column `x`.
    pub fn pixel(&self, c: usize, y: usize, x: usize) -> f32 {
        self.image[(c * self.height + y) * self.width + x]
    }
}

/// A deterministic split of `0..len` into training and validation indices:
/// a seeded shuffle, then the first `round(len * val_fraction)` (at least one
/// when `len > 1` and `val_fraction > 0`) go to validation.
pub fn split_indices(len: usize, val_fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut indices: Vec<usize> = (0..len).collect();
    indices.shuffle(&mut StdRng::seed_from_u64(seed));
    let mut n_val = (len as f64 * val_fraction.clamp(0.0, 1.0)).round() as usize;
    if val_fraction > 0.0 && len > 1 {
        n_val = n_val.clamp(1, len - 1);
    }
    let train = indices.split_off(n_val);
    (train, indices)
}

/// SplitMix64 of `seed` and `value`: independent random streams from one
/// seed (per sample, per epoch).
pub(crate) fn mix(seed: u64, value: u64) -> u64 {
    let mut z = seed ^ value.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_split_is_deterministic_and_complete() {
        let (train, val) = split_indices(12, 0.25, 3);
        assert_eq!((train.len(), val.len()), (9, 3));
        let mut all: Vec<usize> = train.iter().chain(&val).copied().collect();
        all.sort();
        assert_eq!(all, (0..12).collect::<Vec<_>>());
        assert_eq!(split_indices(12, 0.25, 3), (train, val));
        assert_ne!(split_indices(12, 0.25, 4).1, split_indices(12, 0.25, 3).1);
        assert_eq!(split_indices(3, 0.01, 0).1.len(), 1);
    }
}
