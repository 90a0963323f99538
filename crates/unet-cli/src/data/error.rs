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
    /// A folder without any image.
    #[error("{path}: no .png or .jpg images")]
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
         (binary masks may use 0 and 255)"
    )]
    MaskValue {
        /// The mask.
        path: PathBuf,
        /// The value found.
        value: u8,
        /// Column.
        x: u32,
        /// Row.
        y: u32,
        /// The number of classes.
        classes: usize,
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
}
