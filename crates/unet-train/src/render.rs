//! Pictures of masks: the mask files `predict` writes, overlays, and the
//! grid of validation samples a training run ends with.

use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, GrayImage, ImageFormat, Luma, Rgb, RgbImage, imageops};
use plotters::prelude::*;

use crate::atomic;
use crate::data::Sample;
use crate::error::RunError;

/// Writes an image as PNG, atomically.
pub fn write_png(path: &Path, image: impl Into<DynamicImage>) -> Result<(), RunError> {
    let mut bytes = Vec::new();
    image
        .into()
        .write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png)
        .map_err(|err| RunError::io(path, err))?;
    atomic::write(path, &bytes).map_err(|err| RunError::io(path, err))
}

/// The pixel layout of a PNG written row by row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowFormat {
    /// One byte per pixel.
    Gray8,
    /// Two bytes per pixel (a 16-bit value; rows filled big-endian, as PNG stores it).
    Gray16,
    /// Three bytes per pixel.
    Rgb8,
}

/// The PNG text chunk (keyword, text) that marks the files `predict`
/// writes, so that a later run knows which files it may write over.
const MADE_BY: (&str, &str) = ("Software", "unet predict");

/// Whether `path` is a PNG file that `predict` wrote ([`MADE_BY`] among its
/// text chunks). Unreadable files, other images and other files are not.
pub fn made_by_predict(path: &Path) -> bool {
    let Ok(file) = std::fs::File::open(path) else {
        return false;
    };
    let Ok(reader) = png::Decoder::new(std::io::BufReader::new(file)).read_info() else {
        return false;
    };
    reader
        .info()
        .uncompressed_latin1_text
        .iter()
        .any(|chunk| (chunk.keyword.as_str(), chunk.text.as_str()) == MADE_BY)
}

/// Writes a `width x height` PNG atomically, row by row: `row(y, buffer)`
/// fills an emptied buffer with row `y`. The image is never held whole. The
/// file carries [`MADE_BY`].
pub fn write_png_rows(
    path: &Path,
    [width, height]: [usize; 2],
    format: RowFormat,
    mut row: impl FnMut(usize, &mut Vec<u8>),
) -> Result<(), RunError> {
    let (color, depth) = match format {
        RowFormat::Gray8 => (png::ColorType::Grayscale, png::BitDepth::Eight),
        RowFormat::Gray16 => (png::ColorType::Grayscale, png::BitDepth::Sixteen),
        RowFormat::Rgb8 => (png::ColorType::Rgb, png::BitDepth::Eight),
    };
    let (w, h) = (
        u32::try_from(width).map_err(|_| RunError::io(path, "wider than a PNG can be"))?,
        u32::try_from(height).map_err(|_| RunError::io(path, "taller than a PNG can be"))?,
    );
    atomic::write_with(path, |file| {
        let mut encoder = png::Encoder::new(file, w, h);
        encoder.set_color(color);
        encoder.set_depth(depth);
        encoder
            .add_text_chunk(MADE_BY.0.into(), MADE_BY.1.into())
            .map_err(std::io::Error::other)?;
        let mut writer = encoder.write_header().map_err(std::io::Error::other)?;
        let mut stream = writer.stream_writer().map_err(std::io::Error::other)?;
        let mut buffer = Vec::new();
        for y in 0..height {
            buffer.clear();
            row(y, &mut buffer);
            std::io::Write::write_all(&mut stream, &buffer)?;
        }
        stream.finish().map_err(std::io::Error::other)
    })
    .map_err(|err| RunError::io(path, err))
}

/// Appends row `y` of `image` as 8-bit RGB (grayscale repeated, 16-bit
/// values divided by 257, floats clamped to `[0, 1]`), for overlays.
pub fn display_row(image: &DynamicImage, y: usize, out: &mut Vec<u8>) {
    let width = image.width() as usize;
    let push = |out: &mut Vec<u8>, px: &[u8]| match px.len() {
        1 | 2 => out.extend([px[0]; 3]),
        _ => out.extend(&px[..3]),
    };
    match image {
        DynamicImage::ImageLuma8(b) => b.as_raw()[y * width..][..width]
            .iter()
            .for_each(|&v| out.extend([v; 3])),
        DynamicImage::ImageRgb8(b) => out.extend(&b.as_raw()[y * width * 3..][..width * 3]),
        other => {
            let row = other.crop_imm(0, y as u32, image.width(), 1).to_rgb8();
            row.pixels().for_each(|p| push(out, &p.0));
        }
    }
}

/// The colour of each class in overlays and sample grids: background black,
/// then well-separated hues.
pub fn class_color(class: u8) -> [u8; 3] {
    const COLORS: [[u8; 3]; 8] = [
        [255, 215, 0],
        [0, 200, 255],
        [255, 64, 160],
        [64, 230, 64],
        [255, 128, 0],
        [160, 96, 255],
        [255, 255, 255],
        [0, 128, 128],
    ];
    match class {
        0 => [0, 0, 0],
        c => COLORS[(c as usize - 1) % COLORS.len()],
    }
}

/// A class as the mask PNGs `predict` writes store it: the index, or 0/255
/// with two classes.
pub fn mask_value(class: u8, classes: usize) -> u8 {
    if classes == 2 {
        class.saturating_mul(255)
    } else {
        class
    }
}

/// A mask as the PNG `predict` writes (see [`mask_value`]).
pub fn mask_image(mask: &[u8], height: usize, width: usize, classes: usize) -> GrayImage {
    GrayImage::from_fn(width as u32, height as u32, |x, y| {
        Luma([mask_value(mask[y as usize * width + x as usize], classes)])
    })
}

/// An image `[channels, h, w]` in `[0, 1]` as 8-bit RGB (grayscale repeated).
pub fn to_rgb(sample_image: &[f32], channels: usize, height: usize, width: usize) -> RgbImage {
    let plane = height * width;
    RgbImage::from_fn(width as u32, height as u32, |x, y| {
        let p = y as usize * width + x as usize;
        let value = |c: usize| (sample_image[c * plane + p].clamp(0.0, 1.0) * 255.0).round() as u8;
        if channels == 3 {
            Rgb([value(0), value(1), value(2)])
        } else {
            Rgb([value(0); 3])
        }
    })
}

/// A pixel tinted with its class: half image, half class colour; background
/// left as it is.
pub fn tint(pixel: [u8; 3], class: u8) -> [u8; 3] {
    if class == 0 {
        return pixel;
    }
    let color = class_color(class);
    std::array::from_fn(|i| ((u16::from(pixel[i]) + u16::from(color[i])) / 2) as u8)
}

/// The mask's classes tinted over the image (see [`tint`]).
pub fn overlay(image: &RgbImage, mask: &[u8]) -> RgbImage {
    let width = image.width() as usize;
    RgbImage::from_fn(image.width(), image.height(), |x, y| {
        Rgb(tint(
            image.get_pixel(x, y).0,
            mask[y as usize * width + x as usize],
        ))
    })
}

/// A bright colour for instance `id` (1, 2, ...): the golden angle around the
/// hue circle, so that neighbouring ids differ.
pub fn instance_color(id: u32) -> [u8; 3] {
    let hue = (id as f64 * 137.507_764) % 360.0;
    let sector = hue / 60.0;
    let x = 1.0 - (sector % 2.0 - 1.0).abs();
    let (r, g, b) = match sector as u32 {
        0 => (1.0, x, 0.0),
        1 => (x, 1.0, 0.0),
        2 => (0.0, 1.0, x),
        3 => (0.0, x, 1.0),
        4 => (x, 0.0, 1.0),
        _ => (1.0, 0.0, x),
    };
    [r, g, b].map(|c: f64| (55.0 + 200.0 * c) as u8)
}

/// Instances drawn over the image: each object outlined in its own colour
/// (pixels with a 4-neighbour of another id), its inside lightly tinted.
pub fn instance_overlay(image: &RgbImage, labels: &[u32]) -> RgbImage {
    let (w, h) = (image.width() as usize, image.height() as usize);
    let mut out = image.clone();
    for (y, row) in out.chunks_exact_mut(3 * w).enumerate() {
        let mut pixels = row.to_vec();
        instance_row(labels, [h, w], y, &mut pixels);
        row.copy_from_slice(&pixels);
    }
    out
}

/// Draws the objects of row `y` of `labels` (`[h, w]`) over `row`, 8-bit
/// RGB pixels: outlines (a 4-neighbour of another id) in the object's
/// colour, insides tinted a quarter of the way to it.
pub fn instance_row(labels: &[u32], [h, w]: [usize; 2], y: usize, row: &mut [u8]) {
    let at = |x: usize, y: usize| labels[y * w + x];
    for (x, pixel) in row.chunks_exact_mut(3).enumerate().take(w) {
        let id = at(x, y);
        if id == 0 {
            continue;
        }
        let edge = (x == 0 || at(x - 1, y) != id)
            || (x + 1 == w || at(x + 1, y) != id)
            || (y == 0 || at(x, y - 1) != id)
            || (y + 1 == h || at(x, y + 1) != id);
        let color = instance_color(id);
        for (p, c) in pixel.iter_mut().zip(color) {
            *p = if edge {
                c
            } else {
                ((3 * u16::from(*p) + u16::from(c)) / 4) as u8
            };
        }
    }
}

/// A mask in class colours.
pub fn colored_mask(mask: &[u8], height: usize, width: usize) -> RgbImage {
    RgbImage::from_fn(width as u32, height as u32, |x, y| {
        Rgb(class_color(mask[y as usize * width + x as usize]))
    })
}

/// Registers the embedded font with plotters (once); text needs it.
pub(crate) fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            include_bytes!("../assets/DejaVuSans.ttf"),
        )
        .unwrap_or_else(|_| panic!("the embedded DejaVu Sans font is a valid TrueType font"));
    });
}

/// A grid with one row per sample: the image, the true mask, the predicted
/// mask, and the prediction over the image; each tile at least 128 pixels wide.
pub fn samples_grid(rows: &[(Sample, Vec<u8>)]) -> RgbImage {
    const HEADER: u32 = 28;
    const GAP: u32 = 4;
    let Some((first, _)) = rows.first() else {
        return RgbImage::new(1, 1);
    };
    let zoom = (128 / first.width.max(1)).max(1) as u32;
    let (tile_w, tile_h) = (first.width as u32 * zoom, first.height as u32 * zoom);
    let columns = ["image", "true mask", "prediction", "overlay"];
    let width = columns.len() as u32 * (tile_w + GAP) + GAP;
    let height = HEADER + rows.len() as u32 * (tile_h + GAP) + GAP;
    let mut grid = RgbImage::from_pixel(width, height, Rgb([255, 255, 255]));
    for (row, (sample, predicted)) in rows.iter().enumerate() {
        let (h, w) = (sample.height, sample.width);
        let image = to_rgb(&sample.image, sample.channels, h, w);
        let tiles = [
            image.clone(),
            colored_mask(&sample.mask, h, w),
            colored_mask(predicted, h, w),
            overlay(&image, predicted),
        ];
        for (column, tile) in tiles.iter().enumerate() {
            let tile = imageops::resize(tile, tile_w, tile_h, imageops::FilterType::Nearest);
            let x = GAP + column as u32 * (tile_w + GAP);
            let y = HEADER + GAP + row as u32 * (tile_h + GAP);
            imageops::overlay(&mut grid, &tile, x as i64, y as i64);
        }
    }
    register_font();
    let (w, h) = grid.dimensions();
    {
        let root = BitMapBackend::with_buffer(grid.as_mut(), (w, h)).into_drawing_area();
        let style = ("sans-serif", 18).into_font().color(&BLACK);
        for (column, label) in columns.iter().enumerate() {
            let x = GAP + column as u32 * (tile_w + GAP) + 4;
            root.draw_text(label, &style, (x as i32, 5))
                .expect("drawing into a memory buffer cannot fail");
        }
        root.present()
            .expect("drawing into a memory buffer cannot fail");
    }
    grid
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_masks_are_written_as_0_and_255() {
        let mask = mask_image(&[0, 1, 1, 0], 2, 2, 2);
        assert_eq!(mask.into_raw(), [0, 255, 255, 0]);
        let mask = mask_image(&[0, 1, 2, 0], 2, 2, 3);
        assert_eq!(mask.into_raw(), [0, 1, 2, 0]);
    }

    #[test]
    fn overlays_tint_only_the_foreground() {
        let image = RgbImage::from_pixel(2, 1, Rgb([100, 100, 100]));
        let tinted = overlay(&image, &[0, 1]);
        assert_eq!(tinted.get_pixel(0, 0).0, [100, 100, 100]);
        let c = class_color(1);
        assert_eq!(
            tinted.get_pixel(1, 0).0,
            std::array::from_fn(|i| ((100 + c[i] as u16) / 2) as u8)
        );
    }

    #[test]
    fn the_grid_holds_every_sample_and_labels() {
        let sample = Sample {
            image: vec![0.5; 16 * 16],
            labels: None,
            mask: vec![1; 16 * 16],
            channels: 1,
            height: 16,
            width: 16,
        };
        let grid = samples_grid(&[(sample.clone(), vec![0; 256]), (sample, vec![1; 256])]);
        // Tiles are zoomed to 128 pixels: 4 columns, 2 rows.
        assert_eq!(grid.dimensions(), (4 * 132 + 4, 28 + 2 * 132 + 4));
        // The true mask tile of row 0 is class 1's colour, the prediction black.
        assert_eq!(grid.get_pixel(132 + 70, 28 + 70).0, class_color(1));
        assert_eq!(grid.get_pixel(2 * 132 + 70, 28 + 70).0, [0, 0, 0]);
        // Some label text was drawn in the header.
        assert!((0..grid.width()).any(|x| grid.get_pixel(x, 14).0 != [255, 255, 255]));
    }
}
