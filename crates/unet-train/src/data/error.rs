//! What can be wrong with a dataset on disk.

use std::path::PathBuf;

/// A dataset that cannot be used; every message names the file or folder.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A folder that should exist does not.
    #[error("{path}: no such directory")]
    MissingDir {
        /// The folder.
        path: PathBuf,
    },
    /// A dataset folder with neither `masks/` nor `labels/`.
    #[error("{path}: neither masks/ (class masks) nor labels/ (instance labels) is there")]
    NoTargets {
        /// The dataset folder.
        path: PathBuf,
    },
    /// A folder without any image.
    #[error("{path}: no .png, .jpg or .tif images")]
    NoImages {
        /// The folder.
        path: PathBuf,
    },
    /// An image without a mask of the same stem.
    #[error("{image}: no mask (expected {expected})")]
    ImageWithoutMask {
        /// The image.
        image: PathBuf,
        /// The mask path looked for.
        expected: PathBuf,
    },
    /// A mask without an image of the same stem.
    #[error("{mask}: mask without an image of the same name in {images}")]
    MaskWithoutImage {
        /// The mask.
        mask: PathBuf,
        /// The images folder.
        images: PathBuf,
    },
    /// A file that is not a readable image.
    #[error("{path}: cannot read image: {reason}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The decoder's message.
        reason: String,
    },
    /// A TIFF file of several full-size images (a z-stack, channels or time
    /// points stored as pages).
    #[error(
        "{path}: a TIFF of {images} images (a stack); save the plane to segment as an image of its own"
    )]
    ImageStack {
        /// The file.
        path: PathBuf,
        /// Its full-size images.
        images: usize,
    },
    /// A dataset folder whose images are not those a run recorded.
    #[error(
        "{dir}: the images are not the run's: {recorded} at its start, {found} now{}{}; \
         a run resumes, and is evaluated on its validation images, with the images it started with",
        missing.as_ref().map(|name| format!(", '{name}' missing")).unwrap_or_default(),
        added.as_ref().map(|name| format!(", '{name}' new")).unwrap_or_default()
    )]
    ImagesChanged {
        /// The dataset folder.
        dir: PathBuf,
        /// The images the run recorded.
        recorded: usize,
        /// The images there now.
        found: usize,
        /// The first recorded image not there now.
        missing: Option<String>,
        /// The first image there now that was not recorded.
        added: Option<String>,
    },
    /// Instance labels with one id on several separate objects: a binary
    /// mask put in `labels/`.
    #[error(
        "{path}: one id ({id}) on {objects} separate objects: labels/ holds one id per object \
         (instance labels); a mask of classes goes in masks/"
    )]
    OneIdLabels {
        /// The labels file.
        path: PathBuf,
        /// The one id.
        id: u16,
        /// The separate objects it covers.
        objects: u32,
    },
    /// An image with masks or labels whose file asks to be shown turned or
    /// flipped: which way up its targets were drawn cannot be told.
    #[error(
        "{path}: the file asks to be shown turned or flipped (EXIF orientation {exif}), and its \
         mask may have been drawn on it as shown or as stored: save the image upright, without \
         the orientation tag, with its mask to match"
    )]
    TurnedImage {
        /// The image.
        path: PathBuf,
        /// Its EXIF orientation, 2 to 8.
        exif: u8,
    },
    /// A mask whose size differs from its image's.
    #[error(
        "{mask}: mask is {mask_size:?} (width x height) but its image {image} is {image_size:?}"
    )]
    SizeMismatch {
        /// The image.
        image: PathBuf,
        /// Its `[width, height]`.
        image_size: [u32; 2],
        /// The mask.
        mask: PathBuf,
        /// Its `[width, height]`.
        mask_size: [u32; 2],
    },
    /// A mask value that is not a class index (nor 255 in a binary mask).
    #[error(
        "{path}: mask value {value} at (x {x}, y {y}) is not a class index below {classes} \
         (binary masks may use 0 and 255){}",
        ids_hint(*distinct, *classes)
    )]
    MaskValue {
        /// The mask.
        path: PathBuf,
        /// The value found (a gray level or a palette index).
        value: u16,
        /// Column.
        x: u32,
        /// Row.
        y: u32,
        /// The number of classes.
        classes: usize,
        /// How many distinct values the mask holds.
        distinct: usize,
    },
    /// 255 in a two-class mask that is not binary (it holds class 1 too, or
    /// is a palette mask): Pascal VOC's "void" outline, not a class.
    #[error(
        "{path}: mask value 255 at (x {x}, y {y}) is not a class index below 2 ({}); \
         if it marks outlines to leave out (Pascal VOC's 'void'), give those pixels a class",
        if *palette {
            "a palette mask is read by index"
        } else {
            "255 means class 1 only in a mask of 0 and 255 alone"
        }
    )]
    VoidValue {
        /// The mask.
        path: PathBuf,
        /// Column.
        x: u32,
        /// Row.
        y: u32,
        /// Whether the mask is a palette one.
        palette: bool,
    },
    /// A channel count other than 1 (grayscale) or 3 (RGB).
    #[error("{channels} image channels asked for: only 1 (grayscale) and 3 (RGB) are supported")]
    Channels {
        /// The count asked for.
        channels: usize,
    },
    /// An image whose channel count is not the model's.
    #[error(
        "{path}: {} image, but the model takes {expected} channel{} ({})",
        if *found == 1 { "grayscale" } else { "colour (RGB)" },
        if *expected == 1 { "" } else { "s" },
        if *expected == 1 { "grayscale" } else { "RGB" }
    )]
    ChannelMismatch {
        /// The image.
        path: PathBuf,
        /// Its channels (1 or 3).
        found: usize,
        /// The channels expected.
        expected: usize,
    },
    /// Images of different sizes, which cannot be batched.
    #[error(
        "{path}: image is {size:?} (width x height) but {first} is {first_size:?}; \
         images of one dataset must have one size (or pass --image-size to resize them)"
    )]
    MixedSizes {
        /// The first image.
        first: PathBuf,
        /// Its `[width, height]`.
        first_size: [u32; 2],
        /// The image that differs.
        path: PathBuf,
        /// Its `[width, height]`.
        size: [u32; 2],
    },
    /// A mask with many distinct values: instance labels, not classes.
    #[error(
        "{path}: mask holds {values} distinct values, more than the classes: it looks like \
         an instance-label image; train on its foreground with --masks instances"
    )]
    InstanceMask {
        /// The mask.
        path: PathBuf,
        /// How many distinct values it holds.
        values: usize,
    },
    /// Instance-label masks with a class count other than two.
    #[error(
        "--masks instances trains foreground against background: --classes must be 2, got {classes}"
    )]
    InstancesNeedTwoClasses {
        /// The classes asked for.
        classes: usize,
    },
    /// A colour (RGB) mask.
    #[error(
        "{path}: colour mask; masks hold class indices, as grayscale or palette (indexed) PNG images"
    )]
    ColourMask {
        /// The mask.
        path: PathBuf,
    },
    /// Two files of one stem (`a.png` and `a.PNG`, `a.png` and `a.jpg`).
    #[error("{first} and {second} have one name: rename or remove one of them")]
    DuplicateStem {
        /// The first, in name order.
        first: PathBuf,
        /// The second.
        second: PathBuf,
    },
    /// A sample index past the end of a dataset.
    #[error("sample {index} asked of a dataset of {len}")]
    IndexOutOfRange {
        /// The index asked for.
        index: usize,
        /// The dataset's length.
        len: usize,
    },
    /// A class count masks of 8-bit indices cannot hold.
    #[error("{classes} classes: masks hold 8-bit class indices, so 2 to 256 classes")]
    Classes {
        /// The count asked for.
        classes: usize,
    },
    /// A synthetic image side out of range.
    #[error("synthetic images of {size}x{size} pixels: the side must be 8 to {max}", max = crate::config::MAX_SIDE)]
    SyntheticSize {
        /// The side asked for.
        size: usize,
    },
    /// An augmentation that could not be applied to a sample.
    #[error("augmentation failed: {reason}")]
    Augment {
        /// What went wrong.
        reason: String,
    },
    /// A loss weight map asked of a sample without instance labels.
    #[error(
        "--border-weight needs instance labels: a labels/ folder of 16-bit images with one id per object"
    )]
    NoLabels,
}

/// For a mask with a value that is not a class: a hint when it holds more
/// distinct values than the classes (and a binary mask's 255), as a mask
/// of object ids does.
fn ids_hint(distinct: usize, classes: usize) -> String {
    if distinct > classes + 1 {
        format!(
            "; it holds {distinct} distinct values: if they are object ids, put the masks in \
             labels/ or train with --masks instances"
        )
    } else {
        String::new()
    }
}
