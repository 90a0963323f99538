//! Pictures of masks: the mask files `predict` writes, overlays, and the
//! grid of validation samples a training run ends with.

use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, GrayImage, ImageBuffer, ImageFormat, Luma, Rgb, RgbImage, imageops};
use plotters::prelude::*;

use crate::atomic;
use crate::data::Sample;
use crate::error::CliError;

/// Writes an image as PNG, atomically.
pub fn write_png(path: &Path, image: impl Into<DynamicImage>) -> Result<(), CliError> {
    let mut bytes = Vec::new();
    image
        .into()
        .write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png)
        .map_err(|err| CliError::io(path, err))?;
    atomic::write(path, &bytes).map_err(|err| CliError::io(path, err))
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

/// A mask as the PNG `predict` writes: class indices, or 0/255 with two classes.
pub fn mask_image(mask: &[u8], height: usize, width: usize, classes: usize) -> GrayImage {
    let scale = if classes == 2 { 255 } else { 1 };
    GrayImage::from_fn(width as u32, height as u32, |x, y| {
        Luma([mask[y as usize * width + x as usize] * scale])
    })
}

/// A plane of probabilities scaled to `0..=65535` as a 16-bit grayscale image.
pub fn probability_image(
    plane: &[u16],
    height: usize,
    width: usize,
) -> ImageBuffer<Luma<u16>, Vec<u16>> {
    ImageBuffer::from_fn(width as u32, height as u32, |x, y| {
        Luma([plane[y as usize * width + x as usize]])
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

/// The mask's classes tinted over the image: half image, half class colour,
/// background left as it is.
pub fn overlay(image: &RgbImage, mask: &[u8]) -> RgbImage {
    let width = image.width() as usize;
    RgbImage::from_fn(image.width(), image.height(), |x, y| {
        let pixel = image.get_pixel(x, y).0;
        match mask[y as usize * width + x as usize] {
            0 => Rgb(pixel),
            class => {
                let color = class_color(class);
                Rgb(std::array::from_fn(|i| {
                    ((pixel[i] as u16 + color[i] as u16) / 2) as u8
                }))
            }
        }
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
    let at = |x: usize, y: usize| labels[y * w + x];
    RgbImage::from_fn(image.width(), image.height(), |x, y| {
        let (x, y) = (x as usize, y as usize);
        let pixel = image.get_pixel(x as u32, y as u32).0;
        let id = at(x, y);
        if id == 0 {
            return Rgb(pixel);
        }
        let edge = (x == 0 || at(x - 1, y) != id)
            || (x + 1 == w || at(x + 1, y) != id)
            || (y == 0 || at(x, y - 1) != id)
            || (y + 1 == h || at(x, y + 1) != id);
        let color = instance_color(id);
        Rgb(if edge {
            color
        } else {
            std::array::from_fn(|i| ((3 * pixel[i] as u16 + color[i] as u16) / 4) as u8)
        })
    })
}

/// Instance ids as a 16-bit image (ids above 65535 cannot be stored: `None`).
pub fn labels_image(
    labels: &[u32],
    height: usize,
    width: usize,
) -> Option<ImageBuffer<Luma<u16>, Vec<u16>>> {
    let ids: Option<Vec<u16>> = labels.iter().map(|&id| u16::try_from(id).ok()).collect();
    ImageBuffer::from_raw(width as u32, height as u32, ids?)
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
