//! Mask files: PNG images whose pixel values are class indices (8- or
//! 16-bit grayscale, or palette images read by index, as Pascal VOC and most
//! labelling tools write them), or instance labels (one id per object) whose
//! foreground becomes class 1.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use png::{BitDepth, ColorType, Transformations};
use serde::{Deserialize, Serialize};

use super::DataError;

/// What the values of a mask file mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaskKind {
    /// Class indices `0..classes` (with two classes, 0/255 and 0/65535
    /// binary masks work too).
    #[default]
    Classes,
    /// Instance labels: 0 is background, any other value an object; the
    /// network learns foreground (class 1) against background.
    Instances,
}

/// The most distinct values a class mask may hold before it is taken for an
/// instance-label image: a class mask with more classes than this is rare,
/// an instance image with fewer objects is not, so the check only explains
/// the error, it never decides what a file is.
const FEW_VALUES: usize = 32;

/// A decoded mask: one value per pixel, row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMask {
    /// Columns.
    pub width: u32,
    /// Rows.
    pub height: u32,
    /// The stored value of each pixel: the gray level, or the palette index.
    pub values: Vec<u16>,
}

/// Reads a mask PNG as stored: gray levels of 1- to 16-bit grayscale
/// images (the gray channel of gray + alpha), palette indices of indexed
/// images. Colour (RGB) masks are refused: a colour is not a class index.
pub fn read_raw_mask(path: &Path) -> Result<RawMask, DataError> {
    let unreadable = |reason: String| DataError::Unreadable {
        path: path.to_path_buf(),
        reason,
    };
    let file = File::open(path).map_err(|err| unreadable(err.to_string()))?;
    let mut decoder = png::Decoder::new_with_limits(
        BufReader::new(file),
        png::Limits {
            bytes: super::MAX_DECODED_BYTES,
        },
    );
    decoder.set_transformations(Transformations::IDENTITY);
    let mut reader = decoder
        .read_info()
        .map_err(|err| unreadable(err.to_string()))?;
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| unreadable("the image is too large".into()))?;
    let mut buffer = vec![0; size];
    let info = reader
        .next_frame(&mut buffer)
        .map_err(|err| unreadable(err.to_string()))?;
    let samples = match info.color_type {
        ColorType::Grayscale | ColorType::Indexed => 1,
        ColorType::GrayscaleAlpha => 2,
        ColorType::Rgb | ColorType::Rgba => {
            return Err(DataError::ColourMask {
                path: path.to_path_buf(),
            });
        }
    };
    let bits = info.bit_depth as usize;
    let values = (0..info.height as usize)
        .flat_map(|y| {
            let row = &buffer[y * info.line_size..][..info.line_size];
            (0..info.width as usize).map(move |x| sample(row, x * samples, info.bit_depth, bits))
        })
        .collect();
    Ok(RawMask {
        width: info.width,
        height: info.height,
        values,
    })
}

/// Sample number `index` of a packed PNG row of `bits`-bit samples.
fn sample(row: &[u8], index: usize, depth: BitDepth, bits: usize) -> u16 {
    match depth {
        BitDepth::Sixteen => u16::from_be_bytes([row[2 * index], row[2 * index + 1]]),
        BitDepth::Eight => row[index] as u16,
        _ => {
            let per_byte = 8 / bits;
            let byte = row[index / per_byte];
            let shift = 8 - bits * (index % per_byte + 1);
            ((byte >> shift) & ((1u8 << bits) - 1)) as u16
        }
    }
}

impl RawMask {
    /// The class of every pixel: for [`MaskKind::Classes`] the value itself
    /// (below `classes`; with two classes the largest value of the bit depth
    /// too, 255 or 65535, means class 1), for [`MaskKind::Instances`] 1 for
    /// any object and 0 for background.
    ///
    /// # Errors
    /// The first value that is not a class, naming it and where it is; when
    /// the mask looks like instance labels (many distinct values), the error
    /// says so and names the option that reads them.
    pub fn classes(
        &self,
        path: &Path,
        classes: usize,
        kind: MaskKind,
    ) -> Result<Vec<u8>, DataError> {
        if kind == MaskKind::Instances {
            if classes != 2 {
                return Err(DataError::InstancesNeedTwoClasses { classes });
            }
            return Ok(self.values.iter().map(|&v| u8::from(v != 0)).collect());
        }
        let binary_one = |v: u16| classes == 2 && (v == 255 || v == u16::MAX);
        let class_of = |v: u16| match v {
            v if (v as usize) < classes => Some(v as u8),
            v if binary_one(v) => Some(1),
            _ => None,
        };
        let mut out = Vec::with_capacity(self.values.len());
        for (i, &value) in self.values.iter().enumerate() {
            match class_of(value) {
                Some(class) => out.push(class),
                None => return Err(self.bad_value(path, i, value, classes)),
            }
        }
        Ok(out)
    }

    fn bad_value(&self, path: &Path, index: usize, value: u16, classes: usize) -> DataError {
        let mut distinct = self.values.clone();
        distinct.sort_unstable();
        distinct.dedup();
        if distinct.len() > FEW_VALUES.max(classes + 1) {
            return DataError::InstanceMask {
                path: path.to_path_buf(),
                values: distinct.len(),
            };
        }
        let width = self.width as usize;
        DataError::MaskValue {
            path: path.to_path_buf(),
            value,
            x: (index % width) as u32,
            y: (index / width) as u32,
            classes,
            distinct: distinct.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_png(
        path: &Path,
        width: u32,
        height: u32,
        color: ColorType,
        depth: BitDepth,
        data: &[u8],
        palette: Option<Vec<u8>>,
    ) {
        let file = File::create(path).unwrap();
        let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), width, height);
        encoder.set_color(color);
        encoder.set_depth(depth);
        if let Some(palette) = palette {
            encoder.set_palette(palette);
        }
        encoder
            .write_header()
            .unwrap()
            .write_image_data(data)
            .unwrap();
    }

    fn dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("unet-mask-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn palette_masks_are_read_by_index_not_by_colour() {
        let dir = dir("palette");
        let path = dir.join("voc.png");
        // Index 1 is VOC's dark red (128, 0, 0): its brightness would read as 38.
        let palette = vec![0, 0, 0, 128, 0, 0, 0, 128, 0];
        write_png(
            &path,
            3,
            1,
            ColorType::Indexed,
            BitDepth::Eight,
            &[0, 1, 2],
            Some(palette.clone()),
        );
        let mask = read_raw_mask(&path).unwrap();
        assert_eq!(mask.values, [0, 1, 2]);
        assert_eq!(
            mask.classes(&path, 3, MaskKind::Classes).unwrap(),
            [0, 1, 2]
        );
        // Packed 2-bit indices: 0b00_01_10_00 holds 0, 1, 2 (and padding).
        write_png(
            &path,
            3,
            1,
            ColorType::Indexed,
            BitDepth::Two,
            &[0b0001_1000],
            Some(palette),
        );
        assert_eq!(read_raw_mask(&path).unwrap().values, [0, 1, 2]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn sixteen_bit_masks_keep_their_values() {
        let dir = dir("sixteen");
        let path = dir.join("m.png");
        let values: [u16; 4] = [0, 1, 2, 300];
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_be_bytes()).collect();
        write_png(
            &path,
            4,
            1,
            ColorType::Grayscale,
            BitDepth::Sixteen,
            &bytes,
            None,
        );
        let mask = read_raw_mask(&path).unwrap();
        assert_eq!(mask.values, values);
        // 1 and 2 are classes of a 3-class mask; 300 is not (it is not divided by 257).
        let err = mask.classes(&path, 3, MaskKind::Classes).unwrap_err();
        assert!(
            err.to_string().contains("mask value 300 at (x 3, y 0)"),
            "{err}"
        );
        assert_eq!(
            mask.classes(&path, 2, MaskKind::Instances).unwrap(),
            [0, 1, 1, 1]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn instance_labels_are_recognised_in_the_error() {
        let path = Path::new("labels.png");
        let mask = RawMask {
            width: 10,
            height: 10,
            values: (0..100).collect(),
        };
        let err = mask.classes(path, 2, MaskKind::Classes).unwrap_err();
        assert!(
            matches!(err, DataError::InstanceMask { values: 100, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("--masks instances"), "{err}");
        let err = mask.classes(path, 3, MaskKind::Instances).unwrap_err();
        assert!(matches!(
            err,
            DataError::InstancesNeedTwoClasses { classes: 3 }
        ));
        // A tile with a dozen objects: the value is named, with the hint.
        let few = RawMask {
            values: (0..100).map(|i| i % 13).collect(),
            ..mask
        };
        let err = few.classes(path, 2, MaskKind::Classes).unwrap_err();
        assert!(
            matches!(err, DataError::MaskValue { value: 2, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("13 distinct values"), "{err}");
        assert!(err.to_string().contains("labels/"), "{err}");
        // A binary mask with one stray value: no hint.
        let stray = RawMask {
            values: (0..100).map(|i| [0, 255, 7][i % 3]).collect(),
            width: 10,
            height: 10,
        };
        let err = stray.classes(path, 2, MaskKind::Classes).unwrap_err();
        assert!(!err.to_string().contains("distinct"), "{err}");
    }

    #[test]
    fn binary_masks_and_colour_masks() {
        let dir = dir("binary");
        let path = dir.join("b.png");
        write_png(
            &path,
            2,
            1,
            ColorType::Grayscale,
            BitDepth::Eight,
            &[0, 255],
            None,
        );
        let mask = read_raw_mask(&path).unwrap();
        assert_eq!(mask.classes(&path, 2, MaskKind::Classes).unwrap(), [0, 1]);
        assert!(mask.classes(&path, 3, MaskKind::Classes).is_err());
        write_png(
            &path,
            1,
            1,
            ColorType::Rgb,
            BitDepth::Eight,
            &[1, 2, 3],
            None,
        );
        let err = read_raw_mask(&path).unwrap_err();
        assert!(matches!(err, DataError::ColourMask { .. }), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
