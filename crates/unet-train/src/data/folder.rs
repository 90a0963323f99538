//! A dataset in the layout `DIR/images/<stem>.png|jpg` + `DIR/masks/<stem>.png`.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use burn::data::dataset::{Dataset, DatasetError};
use image::metadata::Orientation;

use super::mask::{MaskKind, RawMask, read_raw_mask};
use super::pixels::{channels_of, decode, orientation_of, read_image};
use super::{DataError, Sample};
use crate::config::Preprocess;

/// The image file endings read (case-insensitive).
pub const IMAGE_EXTENSIONS: [&str; 5] = ["png", "jpg", "jpeg", "tif", "tiff"];

/// Images and masks read from a folder, all checked and held in memory.
///
/// Images are grayscale (`channels = 1`) or colour (`channels = 3`, any
/// alpha ignored), all of one kind, read at their bit depth and normalised
/// as [`Preprocess`] says. A mask is a PNG of class indices (8- or 16-bit
/// grayscale, or a palette image read by index); with two classes a binary
/// 0/255 mask works too, and instance labels with [`MaskKind::Instances`](super::MaskKind::Instances).
/// With `resize`, images are resized to a square (bilinear) and masks with
/// them (nearest neighbour); without it, all images must have one size so
/// that they batch.
#[derive(Debug, Clone)]
pub struct FolderDataset {
    samples: Vec<Sample>,
    names: Vec<String>,
}

impl FolderDataset {
    /// Reads every image of `dir/images` and its mask in `dir/masks`, kept at
    /// their size (`resize = None`) or resized, values divided by 255.
    ///
    /// Fails, naming the file, on a missing folder, an image without a mask or
    /// a mask without an image, two files of one stem, an unreadable file, an
    /// image with the wrong channel count, a mask whose size differs from its
    /// image's, images of different sizes (without `resize`), or a mask value
    /// that is not a class index.
    pub fn open(
        dir: impl AsRef<Path>,
        channels: usize,
        classes: usize,
        resize: Option<usize>,
    ) -> Result<Self, DataError> {
        Self::open_with(dir, channels, classes, &Preprocess::resized(resize))
    }

    /// [`FolderDataset::open`] with every preprocessing choice.
    pub fn open_with(
        dir: impl AsRef<Path>,
        channels: usize,
        classes: usize,
        preprocess: &Preprocess,
    ) -> Result<Self, DataError> {
        if channels != 1 && channels != 3 {
            return Err(DataError::Channels { channels });
        }
        let pairs = image_mask_pairs(dir.as_ref())?;
        let mut samples: Vec<Sample> = Vec::with_capacity(pairs.len());
        for pair in &pairs {
            let sample = read_pair(pair, channels, classes, preprocess)?;
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
        }
        let names = pairs.into_iter().map(|pair| pair.stem).collect();
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

    /// The file stem of each sample, in order (not valid UTF-8 replaced).
    pub fn names(&self) -> &[String] {
        &self.names
    }
}

impl Dataset<Sample> for FolderDataset {
    fn get(&self, index: usize) -> Result<Sample, DatasetError> {
        self.samples.get(index).cloned().ok_or_else(|| {
            DatasetError::new(DataError::IndexOutOfRange {
                index,
                len: self.samples.len(),
            })
        })
    }

    fn len(&self) -> usize {
        self.samples.len()
    }
}

/// An image file and its targets: a mask of classes, instance labels, or both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageMaskPair {
    /// The common file stem (not valid UTF-8 replaced, for display).
    pub stem: String,
    /// `dir/images/<stem>.png|jpg`.
    pub image: PathBuf,
    /// `dir/masks/<stem>.png`, where the dataset has masks.
    pub mask: Option<PathBuf>,
    /// `dir/labels/<stem>.png` (one id per object), where the dataset has labels.
    pub labels: Option<PathBuf>,
}

/// The image files of a dataset folder and their masks (`masks/`) and
/// instance labels (`labels/`), by stem: at least one of the two folders,
/// and in each folder there is one file for every image and none without.
pub fn image_mask_pairs(dir: &Path) -> Result<Vec<ImageMaskPair>, DataError> {
    let images_dir = dir.join("images");
    for path in [dir, &images_dir] {
        if !path.is_dir() {
            return Err(DataError::MissingDir {
                path: path.to_path_buf(),
            });
        }
    }
    let (masks_dir, labels_dir) = (dir.join("masks"), dir.join("labels"));
    if !masks_dir.is_dir() && !labels_dir.is_dir() {
        return Err(DataError::NoTargets {
            path: dir.to_path_buf(),
        });
    }
    let images = files_by_stem(&images_dir, &IMAGE_EXTENSIONS)?;
    if images.is_empty() {
        return Err(DataError::NoImages { path: images_dir });
    }
    let masks = targets(&masks_dir, &images, &images_dir)?;
    let labels = targets(&labels_dir, &images, &images_dir)?;
    Ok(images
        .into_iter()
        .map(|(stem, image)| ImageMaskPair {
            mask: masks.as_ref().and_then(|m| m.get(&stem).cloned()),
            labels: labels.as_ref().and_then(|l| l.get(&stem).cloned()),
            stem: stem.to_string_lossy().into_owned(),
            image,
        })
        .collect())
}

/// The `.png` files of a target folder (`None` if there is none), one for
/// every image and none without one.
fn targets(
    folder: &Path,
    images: &BTreeMap<OsString, PathBuf>,
    images_dir: &Path,
) -> Result<Option<BTreeMap<OsString, PathBuf>>, DataError> {
    if !folder.is_dir() {
        return Ok(None);
    }
    let files = files_by_stem(folder, &["png"])?;
    if let Some((_, file)) = files.iter().find(|(stem, _)| !images.contains_key(*stem)) {
        return Err(DataError::MaskWithoutImage {
            mask: file.clone(),
            images: images_dir.to_path_buf(),
        });
    }
    if let Some((stem, image)) = images.iter().find(|(stem, _)| !files.contains_key(*stem)) {
        let mut expected = stem.clone();
        expected.push(".png");
        return Err(DataError::ImageWithoutMask {
            image: image.clone(),
            expected: folder.join(expected),
        });
    }
    Ok(Some(files))
}

/// Fails unless a folder holds the images a run recorded, by name: the
/// split, and so the validation images, are made of them.
pub fn same_images(dir: &Path, recorded: &[String], found: &[String]) -> Result<(), DataError> {
    if recorded == found {
        return Ok(());
    }
    let first =
        |of: &[String], not_in: &[String]| of.iter().find(|name| !not_in.contains(name)).cloned();
    Err(DataError::ImagesChanged {
        dir: dir.to_path_buf(),
        recorded: recorded.len(),
        found: found.len(),
        missing: first(recorded, found),
        added: first(found, recorded),
    })
}

/// The files of `dir` with one of `extensions` (case-insensitive), by stem.
/// Hidden files (`.a.png`, and the `._a.png` companions macOS writes on
/// other file systems) are not images. Two files of one stem (`a.png` and
/// `a.PNG`, or `a.png` and `a.jpg`) are an error: which of them is meant
/// cannot be guessed; so is a link to a file that is not there.
pub fn files_by_stem(
    dir: &Path,
    extensions: &[&str],
) -> Result<BTreeMap<OsString, PathBuf>, DataError> {
    let entries = std::fs::read_dir(dir).map_err(|err| DataError::Unreadable {
        path: dir.to_path_buf(),
        reason: err.to_string(),
    })?;
    let mut files: BTreeMap<OsString, PathBuf> = BTreeMap::new();
    for entry in entries {
        let path = entry
            .map_err(|err| DataError::Unreadable {
                path: dir.to_path_buf(),
                reason: err.to_string(),
            })?
            .path();
        let (Some(stem), true) = (path.file_stem(), has_extension(&path, extensions)) else {
            continue;
        };
        if stem.as_encoded_bytes().starts_with(b".") {
            continue;
        }
        if path.is_symlink() && !path.exists() {
            return Err(DataError::Unreadable {
                path,
                reason: "a link to a file that is not there".into(),
            });
        }
        if !path.is_file() {
            continue;
        }
        if let Some(first) = files.get(stem) {
            let (first, second) = ordered(first.clone(), path);
            return Err(DataError::DuplicateStem { first, second });
        }
        files.insert(stem.to_os_string(), path);
    }
    Ok(files)
}

/// The two paths in name order, so that the message is the same whatever
/// order the directory lists them in.
fn ordered(a: PathBuf, b: PathBuf) -> (PathBuf, PathBuf) {
    if a <= b { (a, b) } else { (b, a) }
}

/// Whether `path` ends in one of `extensions`, ignoring case; names that are
/// not valid UTF-8 are compared byte by byte.
pub fn has_extension(path: &Path, extensions: &[&str]) -> bool {
    path.extension()
        .map(OsStr::as_encoded_bytes)
        .is_some_and(|ext| {
            extensions
                .iter()
                .any(|e| ext.eq_ignore_ascii_case(e.as_bytes()))
        })
}

/// Reads an image and its targets as one sample (see [`read_image`]): the
/// classes from the mask (class indices below `classes`, or what
/// [`Preprocess::masks`] says), or, without a mask, the foreground of the
/// instance labels; and the labels themselves where there are any. Each must
/// have the image's size.
pub fn read_pair(
    pair: &ImageMaskPair,
    channels: usize,
    classes: usize,
    preprocess: &Preprocess,
) -> Result<Sample, DataError> {
    let (pixels, image_size) = read_image(
        &pair.image,
        channels,
        preprocess.resize,
        preprocess.normalize,
    )?;
    let target = |path: &Path| -> Result<_, DataError> {
        let raw = read_raw_mask(path)?;
        if [raw.width, raw.height] != image_size {
            return Err(DataError::SizeMismatch {
                image: pair.image.clone(),
                image_size,
                mask: path.to_path_buf(),
                mask_size: [raw.width, raw.height],
            });
        }
        Ok(raw)
    };
    upright(&pair.image)?;
    let labels = pair.labels.as_deref().map(target).transpose()?;
    if let (Some(path), Some(raw)) = (pair.labels.as_deref(), &labels) {
        check_ids(path, raw)?;
    }
    let classes_of = match (&pair.mask, &labels) {
        (Some(mask), _) => target(mask)?.classes(mask, classes, preprocess.masks)?,
        (None, Some(raw)) => raw.classes(
            pair.labels.as_deref().unwrap_or(&pair.image),
            classes,
            MaskKind::Instances,
        )?,
        (None, None) => {
            return Err(DataError::MissingDir {
                path: pair.image.with_file_name("masks"),
            });
        }
    };
    let from = [image_size[1] as usize, image_size[0] as usize];
    let size = preprocess.resize.map_or(from, |side| [side, side]);
    Ok(Sample {
        image: pixels,
        mask: resize_nearest(&classes_of, from, size),
        labels: labels.map(|raw| {
            let ids: Vec<u32> = raw.values.iter().map(|&v| u32::from(v)).collect();
            resize_nearest(&ids, from, size)
        }),
        channels,
        height: size[0],
        width: size[1],
    })
}

/// Fails for an image whose file asks to be shown turned or flipped: a
/// mask may have been drawn on it as shown or as stored.
fn upright(image: &Path) -> Result<(), DataError> {
    let orientation = orientation_of(image)?;
    if orientation == Orientation::NoTransforms {
        return Ok(());
    }
    Err(DataError::TurnedImage {
        path: image.to_path_buf(),
        exif: orientation.to_exif(),
    })
}

/// Fails for instance labels that give every object one id (a binary mask
/// in `labels/`): its objects would be scored as one. Two pieces may be
/// one object that the image's edge or a thin gap cuts; more are not.
fn check_ids(path: &Path, raw: &RawMask) -> Result<(), DataError> {
    let mut ids = raw.values.iter().filter(|&&v| v != 0);
    let Some(&id) = ids.next() else {
        return Ok(());
    };
    if ids.any(|&v| v != id) {
        return Ok(());
    }
    let foreground: Vec<bool> = raw.values.iter().map(|&v| v != 0).collect();
    let [h, w] = [raw.height as usize, raw.width as usize];
    let objects = imaging::label_components(&foreground, h, w, imaging::Connectivity::Eight)
        .map_or(1, |components| components.count);
    if objects > 2 {
        return Err(DataError::OneIdLabels {
            path: path.to_path_buf(),
            id,
            objects,
        });
    }
    Ok(())
}

/// Nearest-neighbour resampling of a `[height, width]` plane to `to`: output
/// pixel `(y, x)` takes input pixel `(floor((y + 0.5) * h / h'), ..)`.
pub fn resize_nearest<T: Copy>(values: &[T], from: [usize; 2], to: [usize; 2]) -> Vec<T> {
    if from == to {
        return values.to_vec();
    }
    let source =
        |i: usize, axis: usize| ((i as f64 + 0.5) * from[axis] as f64 / to[axis] as f64) as usize;
    let cols: Vec<usize> = (0..to[1]).map(|x| source(x, 1).min(from[1] - 1)).collect();
    (0..to[0])
        .flat_map(|y| {
            let row = source(y, 0).min(from[0] - 1) * from[1];
            cols.iter().map(move |&x| values[row + x])
        })
        .collect()
}
