//! Image files as the network sees them: decoded at their own bit depth
//! (8- or 16-bit PNG, TIFF, JPEG), as grayscale or RGB planes, resized if asked,
//! and normalised the same way in training, prediction and evaluation.

use std::path::Path;

use image::imageops::FilterType;
use image::metadata::Orientation;
use image::{DynamicImage, ImageBuffer, ImageDecoder, ImageFormat, ImageReader};
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

    /// The map of one channel whose values `samples` yields (already divided
    /// by the bit depth's largest value).
    pub fn fit(&self, samples: &Samples) -> ChannelMap {
        match *self {
            Normalize::Divide => ChannelMap::Identity,
            Normalize::Percentile { low, high } => {
                let (lo, hi) = (samples.percentile(low), samples.percentile(high));
                let scale = if hi > lo { 1.0 / (hi - lo) } else { 1.0 };
                ChannelMap::Affine { lo, scale }
            }
            Normalize::ZScore => {
                let n = samples.len().max(1) as f64;
                let mean = samples.iter().map(f64::from).sum::<f64>() / n;
                let var = samples
                    .iter()
                    .map(|v| (f64::from(v) - mean).powi(2))
                    .sum::<f64>()
                    / n;
                let std = if var > 0.0 { var.sqrt() } else { 1.0 };
                ChannelMap::Standard { mean, std }
            }
        }
    }
}

/// How one channel's values are normalised: what [`Normalize::fit`] finds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ChannelMap {
    /// As they are.
    Identity,
    /// `(v - lo) * scale`.
    Affine {
        /// Subtracted.
        lo: f32,
        /// Then multiplied by.
        scale: f32,
    },
    /// `(v - mean) / std`, in `f64`.
    Standard {
        /// The mean.
        mean: f64,
        /// The standard deviation.
        std: f64,
    },
}

impl ChannelMap {
    /// The normalised value of `v`.
    pub fn apply(&self, v: f32) -> f32 {
        match *self {
            ChannelMap::Identity => v,
            ChannelMap::Affine { lo, scale } => (v - lo) * scale,
            ChannelMap::Standard { mean, std } => ((f64::from(v) - mean) / std) as f32,
        }
    }
}

/// The stored samples of a decoded image: 8- or 16-bit integers or floats,
/// interleaved, `stride` per pixel.
#[derive(Debug, Clone, Copy)]
enum Stored<'a> {
    U8(&'a [u8]),
    U16(&'a [u16]),
    F32(&'a [f32]),
}

/// One channel of a decoded image, read as values in `[0, 1]` (divided by
/// the largest value of the bit depth), without a copy.
#[derive(Debug, Clone, Copy)]
pub struct Samples<'a> {
    stored: Stored<'a>,
    stride: usize,
    offset: usize,
    len: usize,
}

impl<'a> Samples<'a> {
    /// Pixels in the channel.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the channel has no pixel.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The value of pixel `i` (row-major).
    pub fn get(&self, i: usize) -> f32 {
        let at = i * self.stride + self.offset;
        match self.stored {
            Stored::U8(v) => f32::from(v[at]) / 255.0,
            Stored::U16(v) => f32::from(v[at]) / 65535.0,
            Stored::F32(v) => v[at],
        }
    }

    /// Every value, row-major.
    pub fn iter(&self) -> impl Iterator<Item = f32> + '_ {
        (0..self.len).map(|i| self.get(i))
    }

    /// The `q`-th percentile (linear interpolation between order
    /// statistics, as NumPy's default), from a histogram for integer
    /// samples, without sorting a copy of the image.
    fn percentile(&self, q: f64) -> f32 {
        if self.len == 0 {
            return 0.0;
        }
        let position = q / 100.0 * (self.len - 1) as f64;
        let (i, frac) = (position.floor() as usize, position.fract() as f32);
        let (a, b) = (
            self.order_statistic(i),
            self.order_statistic((i + 1).min(self.len - 1)),
        );
        a + frac * (b - a)
    }

    /// The `k`-th smallest value.
    fn order_statistic(&self, k: usize) -> f32 {
        let levels = match self.stored {
            Stored::U8(_) => 256,
            Stored::U16(_) => 65536,
            Stored::F32(_) => {
                let mut sorted: Vec<f32> = self.iter().collect();
                sorted.sort_unstable_by(f32::total_cmp);
                return sorted[k];
            }
        };
        let mut counts = vec![0usize; levels];
        for i in 0..self.len {
            let at = i * self.stride + self.offset;
            match self.stored {
                Stored::U8(v) => counts[usize::from(v[at])] += 1,
                Stored::U16(v) => counts[usize::from(v[at])] += 1,
                Stored::F32(_) => unreachable!("floats are sorted above"),
            }
        }
        let mut seen = 0;
        let level = counts
            .iter()
            .position(|&count| {
                seen += count;
                seen > k
            })
            .unwrap_or(levels - 1);
        let max = (levels - 1) as f32;
        level as f32 / max
    }
}

/// A decoded image as the network's input: each channel read through its
/// normalisation, pixel by pixel, so that a large image is never copied
/// whole into floats.
#[derive(Debug)]
pub struct SourceImage {
    image: DynamicImage,
    channels: usize,
    maps: Vec<ChannelMap>,
}

impl SourceImage {
    /// The normalised image of `image` as a `channels`-channel input
    /// (the caller checked the channel count).
    pub fn new(image: DynamicImage, channels: usize, normalize: Normalize) -> Self {
        let image = match image {
            DynamicImage::ImageLuma8(_)
            | DynamicImage::ImageLumaA8(_)
            | DynamicImage::ImageRgb8(_)
            | DynamicImage::ImageRgba8(_)
            | DynamicImage::ImageLuma16(_)
            | DynamicImage::ImageLumaA16(_)
            | DynamicImage::ImageRgb16(_)
            | DynamicImage::ImageRgba16(_)
            | DynamicImage::ImageRgb32F(_)
            | DynamicImage::ImageRgba32F(_) => image,
            // A layout added to `image` after this was written: as floats.
            other => DynamicImage::ImageRgba32F(other.to_rgba32f()),
        };
        let mut source = Self {
            image,
            channels,
            maps: Vec::new(),
        };
        source.maps = (0..channels)
            .map(|c| normalize.fit(&source.samples(c)))
            .collect();
        source
    }

    /// Channel `c`'s stored samples.
    fn samples(&self, c: usize) -> Samples<'_> {
        let (w, h) = (self.image.width() as usize, self.image.height() as usize);
        let (stored, stride) = match &self.image {
            DynamicImage::ImageLuma8(b) => (Stored::U8(b.as_raw()), 1),
            DynamicImage::ImageLumaA8(b) => (Stored::U8(b.as_raw()), 2),
            DynamicImage::ImageRgb8(b) => (Stored::U8(b.as_raw()), 3),
            DynamicImage::ImageRgba8(b) => (Stored::U8(b.as_raw()), 4),
            DynamicImage::ImageLuma16(b) => (Stored::U16(b.as_raw()), 1),
            DynamicImage::ImageLumaA16(b) => (Stored::U16(b.as_raw()), 2),
            DynamicImage::ImageRgb16(b) => (Stored::U16(b.as_raw()), 3),
            DynamicImage::ImageRgba16(b) => (Stored::U16(b.as_raw()), 4),
            DynamicImage::ImageRgb32F(b) => (Stored::F32(b.as_raw()), 3),
            DynamicImage::ImageRgba32F(b) => (Stored::F32(b.as_raw()), 4),
            _ => unreachable!("SourceImage::new converts every other layout"),
        };
        Samples {
            stored,
            stride,
            offset: c,
            len: w * h,
        }
    }

    /// `[height, width]`.
    pub fn size(&self) -> [usize; 2] {
        [self.image.height() as usize, self.image.width() as usize]
    }

    /// Channels of the network's input.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// The normalised values of channel `c`, row `y`, at columns `cols`, appended to `out`.
    pub fn row(&self, c: usize, y: usize, cols: &[usize], out: &mut Vec<f32>) {
        let (samples, map) = (self.samples(c), self.maps[c]);
        let base = y * self.image.width() as usize;
        out.extend(cols.iter().map(|&x| map.apply(samples.get(base + x))));
    }

    /// The whole normalised image, planar `[channels, h, w]`.
    pub fn planar(&self) -> Vec<f32> {
        (0..self.channels)
            .flat_map(|c| {
                let map = self.maps[c];
                self.samples(c)
                    .iter()
                    .map(move |v| map.apply(v))
                    .collect::<Vec<f32>>()
            })
            .collect()
    }

    /// The decoded image itself (for overlays).
    pub fn image(&self) -> &DynamicImage {
        &self.image
    }
}

/// Decodes an image file as image viewers show it: turned and flipped as
/// its EXIF orientation says (a camera's JPEG, a TIFF's orientation tag),
/// with a memory limit instead of an abort for a file whose pixels would
/// not fit. A TIFF holding several full-size images (a stack) is refused
/// rather than read as its first one.
pub fn decode(path: &Path) -> Result<DynamicImage, DataError> {
    let mut decoder = decoder(path)?;
    let unreadable = |err: image::ImageError| DataError::Unreadable {
        path: path.to_path_buf(),
        reason: err.to_string(),
    };
    let orientation = decoder.orientation().map_err(unreadable)?;
    // A quarter turn makes a second image of the same size.
    let turns = matches!(
        orientation,
        Orientation::Rotate90
            | Orientation::Rotate270
            | Orientation::Rotate90FlipH
            | Orientation::Rotate270FlipH
    );
    let bytes = decoder.total_bytes();
    if bytes.saturating_mul(1 + u64::from(turns)) > MAX_DECODED_BYTES as u64 {
        let (width, height) = decoder.dimensions();
        return Err(DataError::Unreadable {
            path: path.to_path_buf(),
            reason: format!(
                "its {width}x{height} pixels take {bytes} bytes decoded{}, more than the {} GiB limit",
                if turns {
                    ", twice that to turn them upright"
                } else {
                    ""
                },
                MAX_DECODED_BYTES >> 30
            ),
        });
    }
    let mut image = DynamicImage::from_decoder(decoder).map_err(unreadable)?;
    image.apply_orientation(orientation);
    Ok(image)
}

/// The EXIF orientation of an image file (`NoTransforms` where it has none).
pub fn orientation_of(path: &Path) -> Result<Orientation, DataError> {
    decoder(path)?
        .orientation()
        .map_err(|err| DataError::Unreadable {
            path: path.to_path_buf(),
            reason: err.to_string(),
        })
}

/// The decoder of an image file, its format guessed from the content, with
/// the memory limit; a TIFF stack is refused here.
fn decoder(path: &Path) -> Result<impl ImageDecoder, DataError> {
    let unreadable = |reason: String| DataError::Unreadable {
        path: path.to_path_buf(),
        reason,
    };
    let mut reader = ImageReader::open(path)
        .map_err(|err| unreadable(err.to_string()))?
        .with_guessed_format()
        .map_err(|err| unreadable(err.to_string()))?;
    if reader.format() == Some(ImageFormat::Tiff) {
        single_tiff_image(path)?;
    }
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(MAX_DECODED_BYTES as u64);
    reader.limits(limits);
    reader
        .into_decoder()
        .map_err(|err| unreadable(err.to_string()))
}

/// Fails for a TIFF file that holds more than one full-size image (pages of
/// a z-stack, channels or frames); reduced-resolution pages (thumbnails,
/// `NewSubfileType` bit 0) do not count.
fn single_tiff_image(path: &Path) -> Result<(), DataError> {
    use tiff::decoder::Decoder;
    use tiff::tags::Tag;
    let unreadable = |err: tiff::TiffError| DataError::Unreadable {
        path: path.to_path_buf(),
        reason: err.to_string(),
    };
    let file = std::fs::File::open(path).map_err(|err| DataError::Unreadable {
        path: path.to_path_buf(),
        reason: err.to_string(),
    })?;
    let mut decoder = Decoder::new(std::io::BufReader::new(file)).map_err(unreadable)?;
    let mut full_size = 0usize;
    loop {
        let kind = decoder
            .find_tag_unsigned::<u32>(Tag::NewSubfileType)
            .map_err(unreadable)?
            .unwrap_or(0);
        full_size += usize::from(kind & 1 == 0);
        // A later page that does not parse is not counted: the first is
        // what `image` reads, and it decides whether the file is readable.
        if !decoder.more_images() || decoder.next_image().is_err() {
            break;
        }
    }
    if full_size > 1 {
        return Err(DataError::ImageStack {
            path: path.to_path_buf(),
            images: full_size,
        });
    }
    Ok(())
}

/// 1 for a grayscale image, 3 for a colour one (alpha does not count).
pub fn channels_of(image: &DynamicImage) -> usize {
    if image.color().has_color() { 3 } else { 1 }
}

/// Whether an image stored in colour holds only grays (`R = G = B` in
/// every pixel): a palette of grays, a grayscale picture saved as RGB.
/// Images of floats are not looked into.
fn is_gray(image: &DynamicImage) -> bool {
    fn equal<T: PartialEq + Copy>(values: &[T], stride: usize) -> bool {
        values
            .chunks_exact(stride)
            .all(|p| p[0] == p[1] && p[1] == p[2])
    }
    match image {
        DynamicImage::ImageRgb8(b) => equal(b.as_raw(), 3),
        DynamicImage::ImageRgba8(b) => equal(b.as_raw(), 4),
        DynamicImage::ImageRgb16(b) => equal(b.as_raw(), 3),
        DynamicImage::ImageRgba16(b) => equal(b.as_raw(), 4),
        _ => false,
    }
}

/// An [`is_gray`] image as grayscale at its own bit depth: each pixel's
/// first sample (all three are equal; alpha, which never counts, dropped).
fn as_grayscale(image: &DynamicImage) -> DynamicImage {
    fn first<T: Copy>(values: &[T], stride: usize) -> Vec<T> {
        values.chunks_exact(stride).map(|p| p[0]).collect()
    }
    let (w, h) = (image.width(), image.height());
    let gray8 = |values| {
        DynamicImage::ImageLuma8(ImageBuffer::from_raw(w, h, values).expect("w x h values"))
    };
    let gray16 = |values| {
        DynamicImage::ImageLuma16(ImageBuffer::from_raw(w, h, values).expect("w x h values"))
    };
    match image {
        DynamicImage::ImageRgb8(b) => gray8(first(b.as_raw(), 3)),
        DynamicImage::ImageRgba8(b) => gray8(first(b.as_raw(), 4)),
        DynamicImage::ImageRgb16(b) => gray16(first(b.as_raw(), 3)),
        DynamicImage::ImageRgba16(b) => gray16(first(b.as_raw(), 4)),
        other => other.clone(),
    }
}

/// Opens an image file as the network's input: decoded, checked to have
/// `channels` channels (grayscale for 1, colour for 3; a colour image whose
/// every pixel is gray is read as grayscale for 1), resized to
/// `resize x resize` (bilinear) if asked, normalised by `normalize`. Also
/// returns the file's own `[width, height]`.
pub fn open_image(
    path: &Path,
    channels: usize,
    resize: Option<usize>,
    normalize: Normalize,
) -> Result<(SourceImage, [u32; 2]), DataError> {
    if channels != 1 && channels != 3 {
        return Err(DataError::Channels { channels });
    }
    let mut image = decode(path)?;
    let found = channels_of(&image);
    if found == 3 && channels == 1 && is_gray(&image) {
        image = as_grayscale(&image);
    } else if found != channels {
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
    Ok((SourceImage::new(image, channels, normalize), size))
}

/// Reads an image file as planar `[channels, h, w]` values: [`open_image`],
/// then copied out whole.
pub fn read_image(
    path: &Path,
    channels: usize,
    resize: Option<usize>,
    normalize: Normalize,
) -> Result<(Vec<f32>, [u32; 2]), DataError> {
    let (source, size) = open_image(path, channels, resize, normalize)?;
    Ok((source.planar(), size))
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageBuffer, Luma};

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("unet-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A TIFF stack is refused, naming its pages; a thumbnail page beside
    /// the image (reduced resolution) is not a second image.
    #[test]
    fn tiff_stacks_are_refused() {
        use tiff::encoder::{TiffEncoder, colortype::Gray8};
        use tiff::tags::Tag;
        let dir = scratch("stack");
        let write = |name: &str, thumbnail: bool| {
            let path = dir.join(name);
            let mut encoder = TiffEncoder::new(std::fs::File::create(&path).unwrap()).unwrap();
            encoder.write_image::<Gray8>(4, 4, &[7; 16]).unwrap();
            let mut second = encoder.new_image::<Gray8>(2, 2).unwrap();
            if thumbnail {
                second
                    .encoder()
                    .write_tag(Tag::NewSubfileType, 1u32)
                    .unwrap();
            }
            second.write_data(&[9; 4]).unwrap();
            path
        };
        let stack = write("stack.tif", false);
        let err = decode(&stack).unwrap_err();
        assert!(
            matches!(err, DataError::ImageStack { images: 2, .. }),
            "{err}"
        );
        assert!(
            err.to_string().contains("stack.tif: a TIFF of 2 images"),
            "{err}"
        );
        let with_thumbnail = write("thumb.tif", true);
        let image = decode(&with_thumbnail).unwrap().to_luma8();
        assert_eq!(image.dimensions(), (4, 4));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn sixteen_bit_images_keep_their_depth() {
        let dir = std::env::temp_dir().join(format!("unet-image-16-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // Four values 1 apart: an 8-bit reading would make them all equal.
        let image: ImageBuffer<Luma<u16>, Vec<u16>> =
            ImageBuffer::from_raw(4, 1, vec![1000, 1001, 1002, 1003]).unwrap();
        for name in ["deep.png", "deep.tif"] {
            let path = dir.join(name);
            image.save(&path).unwrap();
            let (values, size) = read_image(&path, 1, None, Normalize::Divide).unwrap();
            assert_eq!(size, [4, 1]);
            for (v, raw) in values.iter().zip(1000..) {
                assert!((v - raw as f32 / 65535.0).abs() < 1e-7, "{name}: {v}");
            }
            let (z, _) = read_image(&path, 1, None, Normalize::ZScore).unwrap();
            // (0, 1, 2, 3) - 1.5 over the population std sqrt(1.25).
            for (v, want) in z.iter().zip([-1.5f32, -0.5, 0.5, 1.5]) {
                assert!((v - want / 1.25f32.sqrt()).abs() < 1e-3, "{name}: {z:?}");
            }
        }
        // 16-bit colour, as a TIFF: three channels at full depth.
        let path = dir.join("colour.tif");
        let colour: ImageBuffer<image::Rgb<u16>, Vec<u16>> =
            ImageBuffer::from_raw(2, 1, vec![1000, 2000, 3000, 1001, 2001, 3001]).unwrap();
        colour.save(&path).unwrap();
        let (values, _) = read_image(&path, 3, None, Normalize::Divide).unwrap();
        let expected = [1000, 1001, 2000, 2001, 3000, 3001].map(|v| v as f32 / 65535.0);
        for (v, want) in values.iter().zip(expected) {
            assert!((v - want).abs() < 1e-7, "{values:?}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn gray_pixels_stored_in_colour_are_grayscale_for_a_grayscale_model() {
        let dir = std::env::temp_dir().join(format!("unet-image-gray-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let gray = dir.join("gray.png");
        image::RgbImage::from_fn(3, 1, |x, _| image::Rgb([x as u8 * 100; 3]))
            .save(&gray)
            .unwrap();
        let (values, _) = read_image(&gray, 1, None, Normalize::Divide).unwrap();
        assert_eq!(values, [0.0, 100.0 / 255.0, 200.0 / 255.0]);
        let deep = dir.join("gray16.png");
        ImageBuffer::<image::Rgba<u16>, Vec<u16>>::from_raw(
            2,
            1,
            vec![7, 7, 7, 9, 65535, 65535, 65535, 0],
        )
        .unwrap()
        .save(&deep)
        .unwrap();
        let (values, _) = read_image(&deep, 1, None, Normalize::Divide).unwrap();
        assert_eq!(values, [7.0 / 65535.0, 1.0]);
        // For an RGB model it stays three channels; one coloured pixel
        // keeps it colour for a grayscale model.
        let (values, _) = read_image(&gray, 3, None, Normalize::Divide).unwrap();
        assert_eq!(values.len(), 9);
        let colour = dir.join("colour.png");
        image::RgbImage::from_fn(3, 1, |x, _| image::Rgb([x as u8, x as u8, 1]))
            .save(&colour)
            .unwrap();
        assert!(matches!(
            read_image(&colour, 1, None, Normalize::Divide),
            Err(DataError::ChannelMismatch { found: 3, .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn percentiles_follow_numpy_for_integer_and_float_samples() {
        // numpy.percentile([0, 0.1, ..., 1.0], [1, 99.8]) == [0.01, 0.998]
        let floats: Vec<f32> = (0..=10).map(|v| v as f32 / 10.0).collect();
        let as_floats = Samples {
            stored: Stored::F32(&floats),
            stride: 1,
            offset: 0,
            len: 11,
        };
        assert!((as_floats.percentile(1.0) - 0.01).abs() < 1e-6);
        assert!((as_floats.percentile(99.8) - 0.998).abs() < 1e-6);
        // The same order statistics as 8-bit levels 0, 25, ..., 250, read
        // from a histogram (every other byte a second channel, skipped).
        let bytes: Vec<u8> = (0..=10u8).flat_map(|v| [v * 25, 7]).collect();
        let as_bytes = Samples {
            stored: Stored::U8(&bytes),
            stride: 2,
            offset: 0,
            len: 11,
        };
        let unit = 25.0 / 255.0;
        assert!((as_bytes.percentile(1.0) - 0.1 * unit).abs() < 1e-6);
        assert!((as_bytes.percentile(99.8) - 9.98 * unit).abs() < 1e-5);
        let map = Normalize::Percentile {
            low: 1.0,
            high: 99.8,
        }
        .fit(&as_floats);
        assert!((map.apply(0.0) + 0.01 / 0.988).abs() < 1e-5, "{map:?}");
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
