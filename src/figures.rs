//! The pictures of the nuclei recipe in `docs/program.md`: the loss weight
//! map of a tile, and a grid of augmented samples. Both are functions of the
//! data and fixed seeds, so a test can check that the files in `docs/images`
//! are what the code draws today.

use std::path::Path;

use burn::data::dataset::Dataset;
use image::{Rgb, RgbImage, imageops};
use imaging::{BorderWeight, ElasticConfig, IntensityConfig, weight_map};
use rand::SeedableRng;
use rand::rngs::StdRng;
use unet_train::config::Preprocess;
use unet_train::data::{Augmentation, FolderDataset, Sample};
use unet_train::render::{instance_color, instance_overlay, to_rgb};

/// The tile the figures show: many touching nuclei.
const TILE: &str = "tile_r3_c0";
/// Panels are drawn twice their size.
const ZOOM: u32 = 2;
const GAP: u32 = 6;

/// The nuclei dataset's sample `name`, with its instance labels.
fn sample(nuclei: &Path, name: &str) -> Result<Sample, String> {
    let data = FolderDataset::open_with(nuclei, 1, 2, &Preprocess::default())
        .map_err(|e| e.to_string())?;
    let index = data
        .names()
        .iter()
        .position(|n| n == name)
        .ok_or(format!("{name}: not in {}", nuclei.display()))?;
    data.get(index).map_err(|e| e.to_string())
}

/// Panels side by side on white, each zoomed.
fn row(panels: &[RgbImage]) -> RgbImage {
    let zoomed: Vec<RgbImage> = panels
        .iter()
        .map(|p| {
            imageops::resize(
                p,
                p.width() * ZOOM,
                p.height() * ZOOM,
                imageops::FilterType::Nearest,
            )
        })
        .collect();
    let width = zoomed.iter().map(|p| p.width() + GAP).sum::<u32>() + GAP;
    let height = zoomed.iter().map(RgbImage::height).max().unwrap_or(0) + 2 * GAP;
    let mut canvas = RgbImage::from_pixel(width, height, Rgb([255, 255, 255]));
    let mut x = GAP;
    for panel in &zoomed {
        imageops::overlay(&mut canvas, panel, x.into(), GAP.into());
        x += panel.width() + GAP;
    }
    canvas
}

/// Stacks rows vertically.
fn column(rows: &[RgbImage]) -> RgbImage {
    let width = rows.iter().map(RgbImage::width).max().unwrap_or(0);
    let height = rows.iter().map(RgbImage::height).sum();
    let mut canvas = RgbImage::from_pixel(width, height, Rgb([255, 255, 255]));
    let mut y = 0i64;
    for r in rows {
        imageops::overlay(&mut canvas, r, 0, y);
        y += i64::from(r.height());
    }
    canvas
}

/// A value in `[0, 1]` on a dark-blue to yellow ramp.
fn heat(t: f32) -> Rgb<u8> {
    const STOPS: [[f32; 3]; 5] = [
        [13.0, 8.0, 135.0],
        [126.0, 3.0, 168.0],
        [204.0, 71.0, 120.0],
        [248.0, 149.0, 64.0],
        [240.0, 249.0, 33.0],
    ];
    let t = t.clamp(0.0, 1.0) * (STOPS.len() - 1) as f32;
    let (i, f) = ((t.floor() as usize).min(STOPS.len() - 2), t.fract());
    let f = if t >= (STOPS.len() - 1) as f32 {
        1.0
    } else {
        f
    };
    Rgb(std::array::from_fn(|c| {
        (STOPS[i][c] + f * (STOPS[i + 1][c] - STOPS[i][c])) as u8
    }))
}

/// The image, its instance labels, and the U-Net paper's weight map
/// (w0 = 10, sigma = 5) of one nuclei tile, the map on a colour ramp from 0
/// to its largest value.
pub fn weight_map_figure(nuclei: &Path) -> Result<RgbImage, String> {
    let s = sample(nuclei, TILE)?;
    let labels = s.labels.clone().ok_or("the nuclei tiles have labels")?;
    let (h, w) = (s.height, s.width);
    let weights = weight_map(&labels, h, w, &BorderWeight::default()).map_err(|e| e.to_string())?;
    let top = weights.iter().cloned().fold(0f32, f32::max);
    let image = to_rgb(&s.image, 1, h, w);
    let ids = RgbImage::from_fn(w as u32, h as u32, |x, y| {
        match labels[y as usize * w + x as usize] {
            0 => Rgb([0, 0, 0]),
            id => Rgb(instance_color(id)),
        }
    });
    let map = RgbImage::from_fn(w as u32, h as u32, |x, y| {
        heat(weights[y as usize * w + x as usize] / top)
    });
    Ok(row(&[image, ids, map]))
}

/// One nuclei tile and seven random augmentations of it (flips and
/// rotations, elastic deformation with the paper's 3x3 grid and 10-pixel
/// displacements, intensity changes), objects outlined.
pub fn augmentation_figure(nuclei: &Path) -> Result<RgbImage, String> {
    let s = sample(nuclei, TILE)?;
    let augmentation = Augmentation {
        flips: true,
        elastic: Some(ElasticConfig::default()),
        intensity: Some(IntensityConfig::default()),
    };
    let draw = |s: &Sample| {
        let picture = to_rgb(&s.image, 1, s.height, s.width);
        instance_overlay(&picture, s.labels.as_deref().unwrap_or(&[]))
    };
    let mut panels = vec![draw(&s)];
    for seed in 1..8 {
        let out = augmentation
            .apply(&s, &mut StdRng::seed_from_u64(seed))
            .map_err(|e| e.to_string())?;
        panels.push(draw(&out));
    }
    Ok(column(&[row(&panels[..4]), row(&panels[4..])]))
}
