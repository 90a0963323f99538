//! Sliding-window prediction: an image of any size through a network in
//! tiles, in memory bounded by the tile, not the image.
//!
//! - A `Same` network sees overlapping tiles inside the image (the tiles at
//!   the border are shifted inwards, never padded); their logits are
//!   blended with a Gaussian window (sigma = tile / 8, as nnU-Net) or
//!   evenly, and normalised by the accumulated weight.
//! - A `Valid` network uses the U-Net paper's overlap-tile strategy: the
//!   image is mirrored outwards, each tile carries the context its smaller
//!   output needs, and the outputs abut. Tile origins are multiples of
//!   `2^depth`, where the network is translation-equivariant, so the tiled
//!   logits equal the whole-image ones.
//!
//! Tiles are processed row by row; the logits of a row of tiles are kept
//! until no later tile touches them, then handed to a sink, so the memory
//! is a band of `tile` rows across the image.

use burn::tensor::{Device, Tensor, TensorData};
use unet::{UNet, UNetPadding, valid_output_size};

use crate::data::SourceImage;
use crate::error::RunError;

/// How the logits of overlapping tiles are weighted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Blend {
    /// A Gaussian window, sigma = tile / 8 per axis: tile centres count most.
    #[default]
    Gaussian,
    /// Every pixel of every tile the same.
    Constant,
}

/// A sliding window: tile size, overlap, blending and tiles per forward pass.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    /// `[height, width]` of a tile as the network sees it (for a `Valid`
    /// network, the tile with its context).
    pub tile: [usize; 2],
    /// Share of a tile that overlaps the next one, in `[0, 1)` (`Same`
    /// networks; `Valid` tiles abut).
    pub overlap: f64,
    /// How overlapping logits are weighted.
    pub blend: Blend,
    /// Tiles per forward pass.
    pub batch: usize,
}

/// How one image is cut: the tile the network sees, the part of its output
/// kept, and where each tile's output goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// `[height, width]` of the network's input tile.
    pub input: [usize; 2],
    /// `[height, width]` of the tile's output.
    pub output: [usize; 2],
    /// Rows (columns) of context before each tile's output: the input tile
    /// starts `margin` pixels before its output (`Valid` networks).
    pub margin: [usize; 2],
    /// Output origins of the tile rows.
    pub rows: Vec<usize>,
    /// Output origins of the tile columns.
    pub cols: Vec<usize>,
    /// The image's `[height, width]`.
    pub image: [usize; 2],
    /// Whether the mirrored border repeats the edge pixel (images smaller
    /// than the context) instead of reflecting.
    pub edge: bool,
}

impl Layout {
    /// The layout of an `image`-sized image cut by `window` for `unet`.
    ///
    /// # Errors
    /// A tile the network cannot take (a `Valid` network's sizes), or an
    /// overlap outside `[0, 1)`.
    pub fn new(unet: &UNet, image: [usize; 2], window: &Window) -> Result<Self, RunError> {
        if !(0.0..1.0).contains(&window.overlap) {
            return Err(RunError::option("--overlap", window.overlap, "in [0, 1)"));
        }
        let config = unet.config();
        let align = 1usize << config.depth;
        match config.padding {
            UNetPadding::Same => {
                if let Some(&small) = window.tile.iter().find(|&&t| t < align) {
                    return Err(RunError::option(
                        "--tile",
                        small,
                        &format!(
                            "at least {align} (2^depth: the network pools down to one pixel per {align})"
                        ),
                    ));
                }
                Ok(Self::same(image, window.tile, window.overlap, align))
            }
            UNetPadding::Valid => Self::valid(unet, image, window.tile, align),
        }
    }

    /// Overlapping tiles of a `Same` network (one tile per axis no longer than the image).
    fn same(image: [usize; 2], tile: [usize; 2], overlap: f64, align: usize) -> Self {
        let tile: [usize; 2] = std::array::from_fn(|a| tile[a].min(image[a]).max(1));
        Self {
            input: tile,
            output: tile,
            margin: [0, 0],
            rows: same_origins(image[0], tile[0], overlap, align),
            cols: same_origins(image[1], tile[1], overlap, align),
            image,
            edge: false,
        }
    }

    /// The whole image as one tile (a `Valid` network: one tile whose output
    /// covers the image).
    pub fn whole(unet: &UNet, image: [usize; 2]) -> Result<Self, RunError> {
        match unet.config().padding {
            UNetPadding::Same => Ok(Self::same(image, image, 0.0, 1)),
            UNetPadding::Valid => {
                let [h, w] = image.map(|size| smallest_valid_input_covering(unet, size));
                Self::valid(unet, image, [h?, w?], usize::MAX)
            }
        }
    }

    fn valid(
        unet: &UNet,
        image: [usize; 2],
        tile: [usize; 2],
        align: usize,
    ) -> Result<Self, RunError> {
        let config = unet.config();
        let mut output = [0; 2];
        let mut margin = [0; 2];
        let mut origins: [Vec<usize>; 2] = Default::default();
        for a in 0..2 {
            let out = valid_output_size(config, tile[a]).ok_or_else(|| {
                let nearest = unet::nearest_valid_input_sizes(config, tile[a]);
                RunError::option(
                    "--tile",
                    tile[a],
                    &format!(
                        "a size the valid-padding network takes (nearest: {})",
                        unet::nearest_sizes_text(nearest)
                    ),
                )
            })?;
            // Origins a multiple of 2^depth apart, where the network is
            // translation-equivariant; one tile if it covers the image.
            let step = if out >= image[a] {
                out
            } else {
                out / align * align
            };
            if step == 0 {
                return Err(RunError::option(
                    "--tile",
                    tile[a],
                    &format!("an output of at least {align} pixels"),
                ));
            }
            output[a] = out;
            margin[a] = (tile[a] - out) / 2;
            origins[a] = (0..image[a]).step_by(step).collect();
        }
        let [rows, cols] = origins;
        // Reflection needs a context shorter than the image; a smaller image
        // repeats its edge pixels instead. The choice depends on the image
        // and the network only, so every tiling of an image sees one border.
        let edge = margin[0] >= image[0] || margin[1] >= image[1];
        Ok(Self {
            input: tile,
            output,
            margin,
            rows,
            cols,
            image,
            edge,
        })
    }

    /// Tiles in all.
    pub fn tiles(&self) -> usize {
        self.rows.len() * self.cols.len()
    }
}

/// For a `Valid` network, the smallest input whose output covers `size`.
fn smallest_valid_input_covering(unet: &UNet, size: usize) -> Result<usize, RunError> {
    let config = unet.config();
    (size..size.saturating_add(1 << 16))
        .find(|&input| valid_output_size(config, input).is_some_and(|out| out >= size))
        .ok_or_else(|| {
            RunError::option(
                "image size",
                size,
                "a size a valid-padding network can cover",
            )
        })
}

/// Tile origins along an axis of `size` pixels for `tile`-pixel tiles that
/// overlap by `overlap`: steps of `tile * (1 - overlap)` rounded down to a
/// multiple of `align` (at least one pixel), the last tile shifted inwards
/// so that it ends at the border.
pub fn same_origins(size: usize, tile: usize, overlap: f64, align: usize) -> Vec<usize> {
    if tile >= size {
        return vec![0];
    }
    let step = (tile as f64 * (1.0 - overlap)).floor() as usize;
    let step = if step >= align {
        step / align * align
    } else {
        step.max(1)
    };
    let last = size - tile;
    let mut origins: Vec<usize> = (0..last).step_by(step).collect();
    origins.push(last);
    origins
}

/// The blending weight of each pixel of a `[height, width]` tile output.
pub fn window_weights(blend: Blend, [height, width]: [usize; 2]) -> Vec<f32> {
    match blend {
        Blend::Constant => vec![1.0; height * width],
        Blend::Gaussian => {
            let axis = |n: usize| -> Vec<f64> {
                let (center, sigma) = ((n as f64 - 1.0) / 2.0, (n as f64 / 8.0).max(1e-3));
                (0..n)
                    .map(|i| (-(i as f64 - center).powi(2) / (2.0 * sigma * sigma)).exp())
                    .collect()
            };
            let (wy, wx) = (axis(height), axis(width));
            wy.iter()
                .flat_map(|y| {
                    wx.iter()
                        .map(move |x| ((y * x) as f32).max(f32::MIN_POSITIVE))
                })
                .collect()
        }
    }
}

/// `index` (possibly outside `0..size`) mirrored into the image: reflected
/// without repeating the edge (`-1 -> 1`), as `PadMode::Reflect`, or
/// clamped to the edge.
fn mirror(index: isize, size: usize, edge: bool) -> usize {
    let n = size as isize;
    if edge || n == 1 {
        return index.clamp(0, n - 1) as usize;
    }
    let period = 2 * (n - 1);
    let i = index.rem_euclid(period);
    (if i < n { i } else { period - i }) as usize
}

/// Where tiles come from: an image's normalised values, row by row.
pub trait TileSource {
    /// `[height, width]`.
    fn size(&self) -> [usize; 2];
    /// Channels.
    fn channels(&self) -> usize;
    /// Appends to `out` the values of channel `c`, row `y`, at columns `cols`.
    fn row(&self, c: usize, y: usize, cols: &[usize], out: &mut Vec<f32>);
}

/// An image already in memory as planar `[channels, height, width]` values.
#[derive(Debug, Clone, Copy)]
pub struct Planar<'a> {
    /// The values.
    pub values: &'a [f32],
    /// Channels.
    pub channels: usize,
    /// `[height, width]`.
    pub size: [usize; 2],
}

impl TileSource for Planar<'_> {
    fn size(&self) -> [usize; 2] {
        self.size
    }

    fn channels(&self) -> usize {
        self.channels
    }

    fn row(&self, c: usize, y: usize, cols: &[usize], out: &mut Vec<f32>) {
        let [h, w] = self.size;
        let row = &self.values[(c * h + y) * w..][..w];
        out.extend(cols.iter().map(|&x| row[x]));
    }
}

impl TileSource for SourceImage {
    fn size(&self) -> [usize; 2] {
        SourceImage::size(self)
    }

    fn channels(&self) -> usize {
        SourceImage::channels(self)
    }

    fn row(&self, c: usize, y: usize, cols: &[usize], out: &mut Vec<f32>) {
        SourceImage::row(self, c, y, cols, out)
    }
}

/// The input tile whose output starts at `[y, x]`: `[channels, th, tw]`
/// values of `source`, mirrored where it leaves the image.
pub fn cut_tile(source: &dyn TileSource, layout: &Layout, [y, x]: [usize; 2]) -> Vec<f32> {
    let [h, w] = layout.image;
    let [th, tw] = layout.input;
    let top = y as isize - layout.margin[0] as isize;
    let left = x as isize - layout.margin[1] as isize;
    let cols: Vec<usize> = (0..tw)
        .map(|j| mirror(left + j as isize, w, layout.edge))
        .collect();
    let mut tile = Vec::with_capacity(source.channels() * th * tw);
    for c in 0..source.channels() {
        for i in 0..th {
            source.row(
                c,
                mirror(top + i as isize, h, layout.edge),
                &cols,
                &mut tile,
            );
        }
    }
    tile
}

/// A network, a layout and a window: what [`Tiler::logits`] runs.
pub struct Tiler<'a> {
    /// The network, in inference mode.
    pub unet: &'a UNet,
    /// How the image is cut.
    pub layout: Layout,
    /// Blending and tiles per forward pass.
    pub window: Window,
    /// Whether to average the eight flips and rotations of every tile.
    pub tta: bool,
    /// Where the network runs.
    pub device: &'a Device,
}

impl Tiler<'_> {
    /// The logits of every pixel of `source`, computed tile by tile and
    /// blended, handed to `sink` a band of rows at a time:
    /// `sink(first_row, logits)` with logits `[classes, rows, w]`.
    /// `progress(done, total)` after each batch of tiles.
    pub fn logits(
        &self,
        source: &dyn TileSource,
        sink: &mut dyn FnMut(usize, &[f32]),
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<(), RunError> {
        let channels = source.channels();
        let layout = &self.layout;
        let classes = self.unet.config().num_classes;
        let [h, w] = layout.image;
        let [oh, ow] = layout.output;
        // Abutting `Valid` tiles agree where they meet: no window needed.
        let blend = match self.unet.config().padding {
            UNetPadding::Same => self.window.blend,
            UNetPadding::Valid => Blend::Constant,
        };
        let weights = window_weights(blend, layout.output);
        let mut band = Band::new(classes, oh, w);
        let mut done = 0;
        progress(0, layout.tiles());
        for (r, &y) in layout.rows.iter().enumerate() {
            for batch in layout.cols.chunks(self.window.batch.max(1)) {
                let tiles: Vec<Vec<f32>> = batch
                    .iter()
                    .map(|&x| cut_tile(source, layout, [y, x]))
                    .collect();
                let logits = self.forward(&tiles, channels)?;
                let per_tile = classes * oh * ow;
                for (tile, &x) in logits.chunks_exact(per_tile).zip(batch) {
                    band.add(tile, [oh, ow], x, &weights);
                }
                done += batch.len();
                progress(done, layout.tiles());
            }
            let next = layout.rows.get(r + 1).copied().unwrap_or(h).min(h);
            band.emit(y, next.saturating_sub(y), sink);
        }
        Ok(())
    }

    /// The logits `[tiles, classes, oh, ow]` of a batch of input tiles; with
    /// `tta`, the mean over the eight flips and rotations, each undone.
    fn forward(&self, tiles: &[Vec<f32>], channels: usize) -> Result<Vec<f32>, RunError> {
        let [th, tw] = self.layout.input;
        let shape = [tiles.len(), channels, th, tw];
        let input = Tensor::<4>::from_data(TensorData::new(tiles.concat(), shape), self.device);
        let transforms: &[Dihedral] = if self.tta {
            &Dihedral::ALL
        } else {
            &[Dihedral::IDENTITY]
        };
        let mut sum: Option<Tensor<4>> = None;
        for transform in transforms {
            let logits = transform.undo(self.unet.try_forward(transform.apply(input.clone()))?);
            sum = Some(match sum {
                Some(total) => total + logits,
                None => logits,
            });
        }
        let mean = sum.expect("at least one transform") / transforms.len() as f32;
        mean.try_into_vec_as::<f32>()
            .map_err(|err| RunError::device("computing the logits of a batch of tiles", err))
    }
}

/// One of the eight flips and 90-degree rotations of an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dihedral {
    /// Swap rows and columns (applied first).
    pub transpose: bool,
    /// Reverse the rows.
    pub flip_rows: bool,
    /// Reverse the columns.
    pub flip_cols: bool,
}

impl Dihedral {
    /// No change.
    pub const IDENTITY: Dihedral = Dihedral {
        transpose: false,
        flip_rows: false,
        flip_cols: false,
    };
    /// All eight.
    pub const ALL: [Dihedral; 8] = {
        let mut all = [Self::IDENTITY; 8];
        let mut i = 0;
        while i < 8 {
            all[i] = Dihedral {
                transpose: i & 4 != 0,
                flip_rows: i & 2 != 0,
                flip_cols: i & 1 != 0,
            };
            i += 1;
        }
        all
    };

    /// The transform of a `[batch, channels, h, w]` tensor.
    pub fn apply(self, x: Tensor<4>) -> Tensor<4> {
        let x = if self.transpose { x.swap_dims(2, 3) } else { x };
        self.flips(x)
    }

    /// The inverse transform.
    pub fn undo(self, x: Tensor<4>) -> Tensor<4> {
        let x = self.flips(x);
        if self.transpose { x.swap_dims(2, 3) } else { x }
    }

    fn flips(self, x: Tensor<4>) -> Tensor<4> {
        match (self.flip_rows, self.flip_cols) {
            (false, false) => x,
            (true, false) => x.flip([2]),
            (false, true) => x.flip([3]),
            (true, true) => x.flip([2, 3]),
        }
    }
}

/// The weighted sums of logits and weights for the rows a row of tiles
/// covers: `[classes, rows, width]`.
struct Band {
    classes: usize,
    rows: usize,
    width: usize,
    logits: Vec<f32>,
    weights: Vec<f32>,
}

impl Band {
    fn new(classes: usize, rows: usize, width: usize) -> Self {
        Self {
            classes,
            rows,
            width,
            logits: vec![0.0; classes * rows * width],
            weights: vec![0.0; rows * width],
        }
    }

    /// Adds a tile's logits `[classes, oh, ow]` at column `x` (columns past the image are dropped).
    fn add(&mut self, logits: &[f32], [oh, ow]: [usize; 2], x: usize, weights: &[f32]) {
        let cols = ow.min(self.width - x);
        for i in 0..oh.min(self.rows) {
            let (wrow, acc_w) = (
                &weights[i * ow..][..cols],
                &mut self.weights[i * self.width + x..][..cols],
            );
            acc_w.iter_mut().zip(wrow).for_each(|(a, w)| *a += w);
            for c in 0..self.classes {
                let src = &logits[(c * oh + i) * ow..][..cols];
                let dst = &mut self.logits[(c * self.rows + i) * self.width + x..][..cols];
                dst.iter_mut()
                    .zip(src)
                    .zip(wrow)
                    .for_each(|((d, s), w)| *d += s * w);
            }
        }
    }

    /// Hands the first `count` rows (image rows from `first`) to `sink`,
    /// normalised by their weight, and moves the rest up.
    fn emit(&mut self, first: usize, count: usize, sink: &mut dyn FnMut(usize, &[f32])) {
        let (rows, width) = (self.rows, self.width);
        let count = count.min(rows);
        let mut out = Vec::with_capacity(self.classes * count * width);
        for c in 0..self.classes {
            for i in 0..count {
                let row = &self.logits[(c * rows + i) * width..][..width];
                let weight = &self.weights[i * width..][..width];
                out.extend(
                    row.iter()
                        .zip(weight)
                        .map(|(v, w)| if *w > 0.0 { v / w } else { 0.0 }),
                );
            }
        }
        if count > 0 {
            sink(first, &out);
        }
        for c in 0..self.classes {
            let plane = &mut self.logits[c * rows * width..][..rows * width];
            plane.copy_within(count * width.., 0);
            plane[(rows - count) * width..].fill(0.0);
        }
        self.weights.copy_within(count * width.., 0);
        self.weights[(rows - count) * width..].fill(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_origins_cover_the_axis_and_shift_the_last_tile_inwards() {
        assert_eq!(same_origins(100, 64, 0.25, 16), vec![0, 36]);
        assert_eq!(same_origins(300, 128, 0.5, 16), vec![0, 64, 128, 172]);
        assert_eq!(same_origins(50, 64, 0.25, 16), vec![0]);
        for (size, tile, overlap) in [(1000, 96, 0.1), (257, 64, 0.0), (65, 64, 0.9)] {
            let origins = same_origins(size, tile, overlap, 16);
            assert_eq!(*origins.last().unwrap() + tile, size);
            assert!(
                origins
                    .windows(2)
                    .all(|o| o[0] < o[1] && o[1] - o[0] <= tile)
            );
        }
    }

    #[test]
    fn the_gaussian_window_peaks_in_the_middle() {
        let w = window_weights(Blend::Gaussian, [16, 8]);
        let at = |y: usize, x: usize| w[y * 8 + x];
        // The four centre pixels are half a pixel from the centre (7.5, 3.5).
        let centre = ((-0.25f64 / 8.0).exp() * (-0.25f64 / 2.0).exp()) as f32;
        for (y, x) in [(7, 3), (7, 4), (8, 3), (8, 4)] {
            assert!((at(y, x) - centre).abs() < 1e-6);
        }
        assert!(w.iter().all(|&v| v <= centre));
        // sigma = 2 along rows: one sigma from the centre weighs exp(-1/2).
        let centre = 7.5f64;
        let expected = (-(0.0 - centre).powi(2) / 8.0).exp() * (-(0.5f64).powi(2) / 2.0).exp();
        assert!((at(0, 3) as f64 - expected).abs() < 1e-6);
        assert!(w.iter().all(|&v| v > 0.0));
    }

    #[test]
    fn mirroring_reflects_without_repeating_the_edge() {
        let got: Vec<usize> = (-3..7).map(|i| mirror(i, 4, false)).collect();
        assert_eq!(got, [3, 2, 1, 0, 1, 2, 3, 2, 1, 0]);
        assert_eq!(mirror(-5, 3, true), 0);
        assert_eq!(mirror(9, 3, true), 2);
    }

    #[test]
    fn bands_average_overlapping_tiles_by_weight() {
        // Two 1-class 2x3 tiles on a 2x4 image at columns 0 and 1; weights 1 and 3.
        let mut band = Band::new(1, 2, 4);
        band.add(&[1.0; 6], [2, 3], 0, &[1.0; 6]);
        band.add(&[5.0; 6], [2, 3], 1, &[3.0; 6]);
        let mut seen = Vec::new();
        band.emit(0, 2, &mut |first, rows| seen.push((first, rows.to_vec())));
        assert_eq!(
            seen,
            vec![(0, vec![1.0, 4.0, 4.0, 5.0, 1.0, 4.0, 4.0, 5.0])]
        );
    }
}
