//! A dataset in the layout `DIR/images/<stem>.png|jpg` + `DIR/masks/<stem>.png`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::data::dataset::{Dataset, DatasetError};
use image::imageops::{self, FilterType};
use image::{DynamicImage, Luma};

use super::{DataError, Sample};

const IMAGE_EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// Images and masks read from a folder, all checked and held in memory.
///
/// Images are grayscale (`channels = 1`) or colour (`channels = 3`, any
/// alpha ignored), all of one kind, divided by 255. A mask is an 8-bit
/// grayscale PNG of class indices; with two classes a binary 0/255 mask works
/// too (255 is class 1). With `resize`, images are resized to a square
/// (bilinear) and masks with them (nearest neighbour); without it, all images
/// must have one size so that they batch.
#[derive(Debug, Clone)]
pub struct FolderDataset {
    samples: Vec<Sample>,
    names: Vec<String>,
}

impl FolderDataset {
    /// Reads every image of `dir/images` and its mask in `dir/masks`.
    ///
    /// Fails, naming the file, on a missing folder, an image without a mask or
    /// a mask without an image, an unreadable file, an image with the wrong
    /// channel count, a mask whose size differs from its image's, images of
    /// different sizes (without `resize`), or a mask value that is not a class index.
    pub fn open(
        dir: impl AsRef<Path>,
        channels: usize,
        classes: usize,
        resize: Option<usize>,
    ) -> Result<Self, DataError> {
        if channels != 1 && channels != 3 {
            return Err(DataError::Channels { channels });
        }
        let pairs = image_mask_pairs(dir.as_ref())?;
        let mut samples: Vec<Sample> = Vec::with_capacity(pairs.len());
        let mut names = Vec::with_capacity(pairs.len());
        for pair in &pairs {
            let sample = read_pair(&pair.image, &pair.mask, channels, classes, resize)?;
            if let Some(first) = samples.first()
                && (first.height, first.width) != (sample.height, sample.width)
            {
                return Err(DataError::MixedSizes {
                    first: pairs[0].image.clone(),
                    first_size: [first.width as u32, first.height as u32],
                    path: pair.image.clone(),
                    size: [sample.width as u32, sample.height as u32],
                });
            }
            samples.push(sample);
            names.push(pair.stem.clone());
        }
        Ok(Self { samples, names })
    }

    /// The channel count of the images of `dir/images`: 1 if the first image
    /// (by name) is grayscale, 3 if it is in colour.
    pub fn detect_channels(dir: impl AsRef<Path>) -> Result<usize, DataError> {
        let images_dir = dir.as_ref().join("images");
        if !images_dir.is_dir() {
            return Err(DataError::MissingDir { path: images_dir });
        }
        let images = files_by_stem(&images_dir, &IMAGE_EXTENSIONS)?;
        let first = images
            .values()
            .next()
            .ok_or(DataError::NoImages { path: images_dir })?;
        Ok(channels_of(&decode(first)?))
    }

    /// The file stem of each sample, in order.
    pub fn names(&self) -> &[String] {
        &self.names
    }
}

impl Dataset<Sample> for FolderDataset {
    fn get(&self, index: usize) -> Result<Sample, DatasetError> {
        Ok(self.samples[index].clone())
    }

    fn len(&self) -> usize {
        self.samples.len()
    }
}

/// An image file and its mask file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageMaskPair {
    /// The common file stem.
    pub stem: String,
    /// `dir/images/<stem>.png|jpg`.
    pub image: PathBuf,
    /// `dir/masks/<stem>.png`.
    pub mask: PathBuf,
}

/// The image and mask files of a dataset folder, by stem; every image must
/// have a mask and every mask an image.
pub fn image_mask_pairs(dir: &Path) -> Result<Vec<ImageMaskPair>, DataError> {
    let (images_dir, masks_dir) = (dir.join("images"), dir.join("masks"));
    for path in [dir, &images_dir, &masks_dir] {
        if !path.is_dir() {
            return Err(DataError::MissingDir {
                path: path.to_path_buf(),
            });
        }
    }
    let images = files_by_stem(&images_dir, &IMAGE_EXTENSIONS)?;
    let masks = files_by_stem(&masks_dir, &["png"])?;
    if images.is_empty() {
        return Err(DataError::NoImages { path: images_dir });
    }
    if let Some((_, mask)) = masks.iter().find(|(stem, _)| !images.contains_key(*stem)) {
        return Err(DataError::MaskWithoutImage {
            mask: mask.clone(),
            images: images_dir,
        });
    }
    images
        .into_iter()
        .map(|(stem, image)| {
            let mask = masks
                .get(&stem)
                .ok_or_else(|| DataError::ImageWithoutMask {
                    image: image.clone(),
                    expected: masks_dir.join(format!("{stem}.png")),
                })?
                .clone();
            Ok(ImageMaskPair { stem, image, mask })
        })
        .collect()
}

/// The files of `dir` with one of `extensions` (case-insensitive), by stem.
fn files_by_stem(dir: &Path, extensions: &[&str]) -> Result<BTreeMap<String, PathBuf>, DataError> {
    let entries = std::fs::read_dir(dir).map_err(|_| DataError::MissingDir {
        path: dir.to_path_buf(),
    })?;
    let mut files = BTreeMap::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .map(str::to_string);
        if let (Some(extension), Some(stem)) = (extension, stem)
            && path.is_file()
            && extensions.contains(&extension.as_str())
        {
            files.insert(stem, path);
        }
    }
    Ok(files)
}

fn decode(path: &Path) -> Result<DynamicImage, DataError> {
    image::open(path).map_err(|err| DataError::Unreadable {
        path: path.to_path_buf(),
        reason: err.to_string(),
    })
}

/// 1 for a grayscale image, 3 for a colour one (alpha does not count).
fn channels_of(image: &DynamicImage) -> usize {
    if image.color().has_color() { 3 } else { 1 }
}

/// Reads an image file as `[channels, h, w]` values divided by 255, resized
/// to `resize x resize` (bilinear) if asked; also returns the file's own
/// `[width, height]`. The file must have `channels` channels: grayscale for 1,
/// colour for 3.
pub fn read_image(
    path: &Path,
    channels: usize,
    resize: Option<usize>,
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
    let image = match resize {
        Some(side) if [side as u32; 2] != size => {
            image.resize_exact(side as u32, side as u32, FilterType::Triangle)
        }
        _ => image,
    };
    let values: Vec<f32> = if channels == 1 {
        image
            .to_luma8()
            .into_raw()
            .into_iter()
            .map(|v| v as f32 / 255.0)
            .collect()
    } else {
        // Interleaved RGB to planar [3, h, w].
        let rgb = image.to_rgb8().into_raw();
        let plane = rgb.len() / 3;
        (0..3 * plane)
            .map(|i| rgb[(i % plane) * 3 + i / plane] as f32 / 255.0)
            .collect()
    };
    Ok((values, size))
}

/// Reads an image and its mask as one sample (see [`read_image`]); the
/// mask must have the image's size and hold class indices below `classes`
/// (or 0/255 with two classes).
pub fn read_pair(
    image: &Path,
    mask: &Path,
    channels: usize,
    classes: usize,
    resize: Option<usize>,
) -> Result<Sample, DataError> {
    let (pixels, image_size) = read_image(image, channels, resize)?;
    let decoded = decode(mask)?;
    let mask_size = [decoded.width(), decoded.height()];
    if mask_size != image_size {
        return Err(DataError::SizeMismatch {
            image: image.to_path_buf(),
            image_size,
            mask: mask.to_path_buf(),
            mask_size,
        });
    }
    let mut raw = decoded.to_luma8();
    // The size the network sees.
    let size = resize.map_or(image_size, |side| [side as u32; 2]);
    for (x, y, pixel) in raw.enumerate_pixels_mut() {
        let value = pixel.0[0];
        let class = match value {
            v if (v as usize) < classes => v,
            255 if classes == 2 => 1,
            _ => {
                return Err(DataError::MaskValue {
                    path: mask.to_path_buf(),
                    value,
                    x,
                    y,
                    classes,
                });
            }
        };
        *pixel = Luma([class]);
    }
    if size != mask_size {
        raw = imageops::resize(&raw, size[0], size[1], FilterType::Nearest);
    }
    Ok(Sample {
        image: pixels,
        mask: raw.into_raw(),
        channels,
        height: size[1] as usize,
        width: size[0] as usize,
    })
}
