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
    /// Whether the values are palette indices.
    pub indexed: bool,
}

/// Reads a mask PNG as stored: gray levels of 1- to 16-bit grayscale
/// images (the gray channel of gray + alpha, and of colour images whose
/// every pixel is gray), palette indices of indexed images. Colour masks
/// with a pixel that is not gray are refused: a colour is not a class
/// index.
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
    let mut buffer = vec![0; decoded_bytes(&reader).map_err(unreadable)?];
    let info = reader
        .next_frame(&mut buffer)
        .map_err(|err| unreadable(err.to_string()))?;
    let samples = info.color_type.samples();
    let bits = info.bit_depth as usize;
    let rows =
        || (0..info.height as usize).map(|y| &buffer[y * info.line_size..][..info.line_size]);
    let pixel = |row: &[u8], x: usize, channel: usize| {
        sample(row, x * samples + channel, info.bit_depth, bits)
    };
    if matches!(info.color_type, ColorType::Rgb | ColorType::Rgba) {
        let gray = rows().all(|row| {
            (0..info.width as usize).all(|x| {
                pixel(row, x, 0) == pixel(row, x, 1) && pixel(row, x, 1) == pixel(row, x, 2)
            })
        });
        if !gray {
            return Err(DataError::ColourMask {
                path: path.to_path_buf(),
            });
        }
    }
    let values = rows()
        .flat_map(|row| (0..info.width as usize).map(move |x| pixel(row, x, 0)))
        .collect();
    Ok(RawMask {
        width: info.width,
        height: info.height,
        values,
        indexed: info.color_type == ColorType::Indexed,
    })
}

/// The bytes of a mask's decoded rows, where they and the values read from
/// them (held at once) fit the decoding limit; else why not.
fn decoded_bytes<R: std::io::BufRead + std::io::Seek>(
    reader: &png::Reader<R>,
) -> Result<usize, String> {
    let (width, height) = reader.info().size();
    let rows = reader.output_buffer_size();
    let values = (width as usize)
        .checked_mul(height as usize)
        .and_then(|pixels| pixels.checked_mul(2));
    match rows
        .zip(values)
        .and_then(|(rows, values)| Some((rows, rows.checked_add(values)?)))
    {
        Some((rows, total)) if total <= super::MAX_DECODED_BYTES => Ok(rows),
        _ => Err(format!(
            "its {width}x{height} pixels take more than the {} GiB limit decoded",
            super::MAX_DECODED_BYTES >> 30
        )),
    }
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
    /// (below `classes`; with two classes, a grayscale mask of 0 and 255
    /// alone, or of 0 and 65535, is binary: that value means class 1), for
    /// [`MaskKind::Instances`] 1 for any object and 0 for background.
    ///
    /// # Errors
    /// The first value that is not a class, naming it and where it is; when
    /// the mask looks like instance labels (many distinct values), the error
    /// says so and names the option that reads them. 255 beside class 1, or
    /// as a palette index, is named as what it likely is: Pascal VOC's
    /// "void" outline, which is not a class.
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
        let one = self.binary_one(classes);
        let mut out = Vec::with_capacity(self.values.len());
        for (i, &value) in self.values.iter().enumerate() {
            match value {
                v if Some(v) == one => out.push(1),
                v if (v as usize) < classes => out.push(v as u8),
                _ => return Err(self.bad_value(path, i, value, classes)),
            }
        }
        Ok(out)
    }

    /// The value that stands for class 1 in a binary mask: 255 or 65535,
    /// where the mask has two classes, is grayscale, and holds no other
    /// value than that and 0.
    fn binary_one(&self, classes: usize) -> Option<u16> {
        if classes != 2 || self.indexed {
            return None;
        }
        [255, u16::MAX]
            .into_iter()
            .find(|&one| self.values.iter().all(|&v| v == 0 || v == one))
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
        // With two classes, 255 and 65535 are class 1 in a binary mask: a
        // value that is a class under no reading is the one to name.
        let binary = |v: u16| classes == 2 && (v == 255 || v == u16::MAX);
        let (index, value) = self
            .values
            .iter()
            .position(|&v| v as usize >= classes && !binary(v))
            .map_or((index, value), |i| (i, self.values[i]));
        let width = self.width as usize;
        let (x, y) = ((index % width) as u32, (index / width) as u32);
        if value == 255 && classes == 2 {
            return DataError::VoidValue {
                path: path.to_path_buf(),
                x,
                y,
                palette: self.indexed,
            };
        }
        DataError::MaskValue {
            path: path.to_path_buf(),
            value,
            x,
            y,
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
            indexed: false,
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
            indexed: false,
        };
        let err = stray.classes(path, 2, MaskKind::Classes).unwrap_err();
        assert!(!err.to_string().contains("distinct"), "{err}");
        assert!(
            matches!(err, DataError::MaskValue { value: 7, x: 2, .. }),
            "the value no reading makes a class: {err}"
        );
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
        // A binary mask saved in colour: every pixel gray.
        write_png(
            &path,
            2,
            1,
            ColorType::Rgba,
            BitDepth::Eight,
            &[0, 0, 0, 255, 255, 255, 255, 255],
            None,
        );
        let mask = read_raw_mask(&path).unwrap();
        assert_eq!(mask.classes(&path, 2, MaskKind::Classes).unwrap(), [0, 1]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Pascal VOC's masks mark object outlines 'void' with 255: in a
    /// two-class mask beside class 1, or as a palette index, 255 is not
    /// taken for class 1.
    #[test]
    fn void_outlines_are_not_foreground() {
        let dir = dir("void");
        let path = dir.join("v.png");
        write_png(
            &path,
            3,
            1,
            ColorType::Indexed,
            BitDepth::Eight,
            &[0, 1, 255],
            Some([[0u8; 3]; 256].concat()),
        );
        let mask = read_raw_mask(&path).unwrap();
        let err = mask.classes(&path, 2, MaskKind::Classes).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::VoidValue {
                    x: 2,
                    palette: true,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("read by index"), "{err}");
        write_png(
            &path,
            3,
            1,
            ColorType::Grayscale,
            BitDepth::Eight,
            &[0, 1, 255],
            None,
        );
        let err = read_raw_mask(&path)
            .unwrap()
            .classes(&path, 2, MaskKind::Classes)
            .unwrap_err();
        assert!(
            matches!(err, DataError::VoidValue { palette: false, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("Pascal VOC"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
