//! A dataset in the layout `DIR/images/<stem>.png|jpg` + `DIR/masks/<stem>.png`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::data::dataset::{Dataset, DatasetError};

use super::{DataError, Sample};

const IMAGE_EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// Images and masks read from a folder, all checked and held in memory.
///
/// Images are read as grayscale (`channels = 1`) or RGB (`channels = 3`)
/// whatever their file format, and divided by 255. A mask is an 8-bit
/// grayscale PNG of class indices; with two classes a binary 0/255 mask works
/// too (255 is class 1).
#[derive(Debug, Clone)]
pub struct FolderDataset {
    samples: Vec<Sample>,
    names: Vec<String>,
}

impl FolderDataset {
    /// Reads every image of `dir/images` and its mask in `dir/masks`.
    ///
    /// Fails, naming the file, on a missing folder, an image without a mask or
    /// a mask without an image, an unreadable file, a mask whose size differs
    /// from its image's, or a mask value that is not a class index.
    pub fn open(dir: impl AsRef<Path>, channels: usize, classes: usize) -> Result<Self, DataError> {
        if channels != 1 && channels != 3 {
            return Err(DataError::Channels { channels });
        }
        let dir = dir.as_ref();
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
        let mut samples = Vec::with_capacity(images.len());
        let mut names = Vec::with_capacity(images.len());
        for (stem, image) in &images {
            let mask = masks.get(stem).ok_or_else(|| DataError::ImageWithoutMask {
                image: image.clone(),
                expected: masks_dir.join(format!("{stem}.png")),
            })?;
            samples.push(read_pair(image, mask, channels, classes)?);
            names.push(stem.clone());
        }
        Ok(Self { samples, names })
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

/// Reads an image file as `channels` channels divided by 255, `[c, h, w]`.
pub fn read_image(path: &Path, channels: usize) -> Result<(Vec<f32>, [u32; 2]), DataError> {
    let image = image::open(path).map_err(|err| DataError::Unreadable {
        path: path.to_path_buf(),
        reason: err.to_string(),
    })?;
    let size = [image.width(), image.height()];
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

fn read_pair(
    image: &Path,
    mask: &Path,
    channels: usize,
    classes: usize,
) -> Result<Sample, DataError> {
    let (pixels, image_size) = read_image(image, channels)?;
    let decoded = image::open(mask).map_err(|err| DataError::Unreadable {
        path: mask.to_path_buf(),
        reason: err.to_string(),
    })?;
    let mask_size = [decoded.width(), decoded.height()];
    if mask_size != image_size {
        return Err(DataError::SizeMismatch {
            image: image.to_path_buf(),
            image_size,
            mask: mask.to_path_buf(),
            mask_size,
        });
    }
    let raw = decoded.to_luma8();
    let mut classes_of = Vec::with_capacity(raw.len());
    for (x, y, value) in raw.enumerate_pixels() {
        let value = value.0[0];
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
        classes_of.push(class);
    }
    Ok(Sample {
        image: pixels,
        mask: classes_of,
        channels,
        height: image_size[1] as usize,
        width: image_size[0] as usize,
    })
}
