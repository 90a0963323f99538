//! Masks for new images: `unet predict`, of any size, whole or in tiles.

mod tiles;

pub use tiles::{
    Blend, Dihedral, Layout, Planar, TileSource, Tiler, Window, same_origins, window_weights,
};

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use burn::tensor::Device;
use image::DynamicImage;
use image::imageops::{self, FilterType};
use imaging::WatershedConfig;
use unet::{UNet, UNetPadding, nearest_valid_input_sizes, summary};

use crate::data::{
    DataError, IMAGE_EXTENSIONS, SourceImage, decode, files_by_stem, open_image, resize_nearest,
};
use crate::error::RunError;
use crate::instances::instances_of;
use crate::memory::{device_holds, human, largest_tensor};
use crate::model_dir::{CONFIG_FILE, TrainedModel};
use crate::precision::Precision;
use crate::render::{
    RowFormat, display_row, instance_row, made_by_predict, mask_value, tint, write_png_rows,
};

/// The most memory one forward pass of an automatic layout may take:
/// larger images are cut into tiles that fit.
pub const INFERENCE_BUDGET: u64 = 1 << 30;
/// The largest tile side an automatic layout picks.
const MAX_AUTO_TILE: usize = 1024;

/// Whether and how images are cut into tiles.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Tiling {
    /// Whole when one forward pass of the image fits [`INFERENCE_BUDGET`]
    /// and the device holds its largest tensor at once, else tiles of the
    /// largest square side (a multiple of `2^depth`, at most 1024) for
    /// which both hold, overlapping by a quarter, Gaussian blending.
    #[default]
    Auto,
    /// The whole image in one forward pass.
    Whole,
    /// This window.
    Window(Window),
}

/// The window of [`Tiling::Auto`] with square tiles of `side`.
fn auto_window(side: usize) -> Window {
    Window {
        tile: [side; 2],
        overlap: 0.25,
        blend: Blend::Gaussian,
        batch: 1,
    }
}

/// The window of a whole-image layout: one tile, nothing to blend.
fn whole_window(layout: &Layout) -> Window {
    Window {
        tile: layout.input,
        overlap: 0.0,
        blend: Blend::Constant,
        batch: 1,
    }
}

/// What `predict` computes and writes besides the mask.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PredictOptions {
    /// Whole image or tiles.
    pub tiling: Tiling,
    /// Average the eight flips and rotations (test-time augmentation).
    pub tta: bool,
    /// Also write class probabilities as 16-bit PNG images.
    pub probabilities: bool,
    /// Two classes: foreground where its probability is at least this
    /// (default: the larger probability, 0.5).
    pub threshold: Option<f32>,
    /// Also separate the foreground into objects (touching ones split by a
    /// marker watershed) and write their ids and outlines.
    pub instances: Option<WatershedConfig>,
}

/// One image's prediction, at its own size.
#[derive(Debug, Clone, PartialEq)]
pub struct Segmentation {
    /// Class per pixel, `[height, width]`.
    pub classes: Vec<u8>,
    /// With [`PredictOptions::probabilities`]: per class, the probability of
    /// each pixel scaled to `0..=65535`, `[classes][height * width]`.
    pub probabilities: Option<Vec<Vec<u16>>>,
    /// `[height, width]`.
    pub size: [usize; 2],
    /// The layout used.
    pub layout: Layout,
}

/// Memory of one forward pass per input pixel, from the layer shapes.
pub fn inference_bytes_per_pixel(unet: &UNet) -> Result<f64, RunError> {
    let config = unet.config();
    let probe = match config.padding {
        UNetPadding::Same => 256,
        UNetPadding::Valid => nearest_valid_input_sizes(config, 256)[1].unwrap_or(256),
    };
    let table = summary(unet, [1, config.in_channels, probe, probe])?;
    let values: usize = table
        .layers
        .iter()
        .map(|l| l.output.iter().product::<usize>())
        .sum();
    Ok(4.0 * values as f64 / (probe * probe) as f64)
}

/// The layout `tiling` gives for an image of `size` pixels on `device`.
///
/// # Errors
/// A window the network cannot take; on a GPU, a window (or whole image)
/// whose largest tensor the device cannot hold at once
/// ([`RunError::TensorTooLarge`], naming the layer), or an automatic layout
/// for which not even the smallest tile fits.
pub fn layout(
    unet: &UNet,
    size: [usize; 2],
    tiling: Tiling,
    device: &Device,
) -> Result<(Layout, Window), RunError> {
    let (layout, window) = match tiling {
        Tiling::Auto => return auto_layout(unet, size, device),
        Tiling::Whole => {
            let layout = Layout::whole(unet, size)?;
            let window = whole_window(&layout);
            (layout, window)
        }
        Tiling::Window(window) => (Layout::new(unet, size, &window)?, window),
    };
    match refused(unet, &layout, &window, device)? {
        None => Ok((layout, window)),
        Some(refusal) => Err(refusal.error(&layout, tiling)),
    }
}

/// [`Tiling::Auto`]: the whole image when it fits both the budget and the
/// device, else the budget's tile side where the device holds it, else the
/// largest side it holds, found by bisection over the multiples of
/// `2^depth` below.
fn auto_layout(
    unet: &UNet,
    size: [usize; 2],
    device: &Device,
) -> Result<(Layout, Window), RunError> {
    let per_pixel = inference_bytes_per_pixel(unet)?;
    let pixels = (size[0] as f64) * (size[1] as f64);
    if pixels * per_pixel <= INFERENCE_BUDGET as f64 {
        let layout = Layout::whole(unet, size)?;
        let window = whole_window(&layout);
        if refused(unet, &layout, &window, device)?.is_none() {
            return Ok((layout, window));
        }
    }
    let align = 1usize << unet.config().depth;
    let budget_side = ((INFERENCE_BUDGET as f64 / per_pixel).sqrt() as usize).min(MAX_AUTO_TILE);
    let tiled = |multiple: usize| -> Result<(Layout, Window), RunError> {
        let window = auto_window(auto_tile_side(unet, multiple * align));
        Ok((Layout::new(unet, size, &window)?, window))
    };
    let largest = (budget_side / align).max(1);
    let (layout, window) = tiled(largest)?;
    if refused(unet, &layout, &window, device)?.is_none() {
        return Ok((layout, window));
    }
    // The largest multiple whose tiles the device holds: `low` fits (once
    // checked), `high + 1` does not.
    let (mut low, mut high) = (1, largest - 1);
    let (smallest, window) = tiled(low)?;
    if let Some(refusal) = refused(unet, &smallest, &window, device)? {
        return Err(refusal.error(&smallest, Tiling::Auto));
    }
    while low < high {
        let middle = low + (high - low).div_ceil(2);
        let (layout, window) = tiled(middle)?;
        if refused(unet, &layout, &window, device)?.is_none() {
            low = middle;
        } else {
            high = middle - 1;
        }
    }
    tiled(low)
}

/// A forward pass's largest tensor that the device cannot hold at once.
struct Refusal {
    /// The layer whose output it is.
    layer: String,
    /// Its bytes.
    bytes: u64,
    /// Tiles per forward pass.
    batch: usize,
}

/// The largest tensor of one forward pass of `layout`'s tiles,
/// `window.batch` at a time, in `f32`, where `device` cannot hold it at once.
fn refused(
    unet: &UNet,
    layout: &Layout,
    window: &Window,
    device: &Device,
) -> Result<Option<Refusal>, RunError> {
    let batch = window.batch.clamp(1, layout.cols.len().max(1));
    let (layer, bytes) = largest_tensor(unet.config(), batch, layout.input, Precision::F32)?;
    Ok((!device_holds(bytes, device)).then_some(Refusal {
        layer,
        bytes,
        batch,
    }))
}

impl Refusal {
    /// The error for `layout` of `tiling`, with what to change.
    fn error(self, layout: &Layout, tiling: Tiling) -> RunError {
        let [h, w] = layout.image;
        let [th, tw] = layout.input;
        let (how, remedy) = match tiling {
            Tiling::Whole => (format!("in one {th}x{tw} pass"), "predict it in tiles"),
            Tiling::Window(_) => (
                format!("in {th}x{tw} tiles, {} at a time", self.batch),
                "use a smaller --tile or --tile-batch",
            ),
            Tiling::Auto => (
                format!("in {th}x{tw} tiles, the smallest the network takes"),
                "predict on the CPU (--backend flex)",
            ),
        };
        RunError::TensorTooLarge {
            what: format!("predicting a {h}x{w} image {how}"),
            layer: self.layer,
            size: human(self.bytes),
            device: "the GPU".into(),
            remedy: remedy.into(),
        }
    }
}

/// `side`, or for a `Valid` network the nearest size it takes at or below it.
fn auto_tile_side(unet: &UNet, side: usize) -> usize {
    match unet.config().padding {
        UNetPadding::Same => side,
        UNetPadding::Valid => {
            let [below, above] = nearest_valid_input_sizes(unet.config(), side);
            below.or(above).unwrap_or(side)
        }
    }
}

/// The prediction of an image (values already normalised as the model
/// takes them), tile by tile where `options` says.
pub fn segment_with(
    unet: &UNet,
    source: &dyn TileSource,
    options: &PredictOptions,
    device: &Device,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Segmentation, RunError> {
    let [height, width] = source.size();
    let (layout, window) = layout(unet, [height, width], options.tiling, device)?;
    let classes = unet.config().num_classes;
    let mut mask = vec![0u8; height * width];
    let mut probabilities = options
        .probabilities
        .then(|| vec![vec![0u16; height * width]; classes]);
    let mut sink = |first: usize, logits: &[f32]| {
        let rows = logits.len() / (classes * width);
        let offset = first * width;
        let pixels = rows * width;
        for p in 0..pixels {
            let probs = softmax((0..classes).map(|c| logits[c * pixels + p]));
            mask[offset + p] = decide(&probs, options.threshold);
            if let Some(planes) = probabilities.as_mut() {
                for (plane, prob) in planes.iter_mut().zip(&probs) {
                    plane[offset + p] = (prob * 65535.0).round() as u16;
                }
            }
        }
    };
    let tiler = Tiler {
        unet,
        layout: layout.clone(),
        window,
        tta: options.tta,
        device,
    };
    tiler.logits(source, &mut sink, progress)?;
    Ok(Segmentation {
        classes: mask,
        probabilities,
        size: [height, width],
        layout,
    })
}

/// Class indices `[height, width]` for one image `[channels, height, width]`
/// (values already normalised), at the image's size, in one forward pass.
///
/// A `Same` network takes any size. A `Valid` (unpadded) network sees the
/// image mirrored outwards so that its smaller output covers every pixel
/// (the paper's overlap-tile strategy).
pub fn segment(
    unet: &UNet,
    image: &[f32],
    [channels, height, width]: [usize; 3],
    device: &Device,
) -> Result<Vec<u8>, RunError> {
    let options = PredictOptions {
        tiling: Tiling::Whole,
        ..PredictOptions::default()
    };
    let source = Planar {
        values: image,
        channels,
        size: [height, width],
    };
    Ok(segment_with(unet, &source, &options, device, &mut |_, _| {})?.classes)
}

/// Softmax of logits.
fn softmax(logits: impl Iterator<Item = f32> + Clone) -> Vec<f32> {
    let max = logits.clone().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = logits.map(|v| (v - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    exp.into_iter().map(|e| e / sum).collect()
}

/// The class of a pixel: with a threshold (two classes), foreground where
/// its probability reaches it; otherwise the most probable class (the first
/// of equals).
fn decide(probs: &[f32], threshold: Option<f32>) -> u8 {
    match threshold {
        Some(t) if probs.len() == 2 => u8::from(probs[1] >= t),
        _ => {
            probs
                .iter()
                .enumerate()
                .fold((0, f32::NEG_INFINITY), |best, (c, &p)| {
                    if p > best.1 { (c, p) } else { best }
                })
                .0 as u8
        }
    }
}

/// Reads an image file as the model takes it and segments it: the result
/// at the file's own size.
pub fn segment_file(
    model: &TrainedModel,
    path: &Path,
    options: &PredictOptions,
    device: &Device,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Segmentation, RunError> {
    Ok(segment_image(model, path, options, device, progress)?.0)
}

/// [`segment_file`], also handing back the image as read (at the size the
/// network saw it).
fn segment_image(
    model: &TrainedModel,
    path: &Path,
    options: &PredictOptions,
    device: &Device,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(Segmentation, SourceImage), RunError> {
    let channels = model.config.model.in_channels;
    let preprocess = model.config.preprocess;
    let (source, [width, height]) =
        open_image(path, channels, preprocess.resize, preprocess.normalize)?;
    let [width, height] = [width as usize, height as usize];
    let mut result = segment_with(&model.unet, &source, options, device, progress)?;
    let side = result.size;
    if side != [height, width] {
        result.classes = resize_nearest(&result.classes, side, [height, width]);
        result.probabilities = result.probabilities.map(|planes| {
            planes
                .into_iter()
                .map(|plane| {
                    let small: image::ImageBuffer<image::Luma<u16>, Vec<u16>> =
                        image::ImageBuffer::from_raw(side[1] as u32, side[0] as u32, plane)
                            .expect("one value per pixel");
                    imageops::resize(&small, width as u32, height as u32, FilterType::Triangle)
                        .into_raw()
                })
                .collect()
        });
        result.size = [height, width];
    }
    Ok((result, source))
}

/// The images to predict: `input` itself, or the `.png`/`.jpg`/`.tif` files in it,
/// by name (two files of one name are an error).
pub fn input_files(input: &Path) -> Result<Vec<PathBuf>, RunError> {
    if input.is_file() {
        return Ok(vec![input.to_path_buf()]);
    }
    if !input.is_dir() {
        return Err(RunError::io(input, "no such image or folder"));
    }
    let files = files_by_stem(input, &IMAGE_EXTENSIONS)?;
    if files.is_empty() {
        return Err(DataError::NoImages {
            path: input.to_path_buf(),
        }
        .into());
    }
    Ok(files.into_values().collect())
}

/// What `predict` wrote for one image.
#[derive(Debug, Clone)]
pub struct Prediction {
    /// The image read.
    pub input: PathBuf,
    /// `<stem>_mask.png`: class indices (0/255 with two classes).
    pub mask: PathBuf,
    /// `<stem>_overlay.png`: the mask tinted over the image.
    pub overlay: PathBuf,
    /// `<stem>_prob.png` (two classes: the foreground probability) or
    /// `<stem>_prob<k>.png` per class, 16-bit, with `--probabilities`.
    pub probabilities: Vec<PathBuf>,
    /// Share of pixels predicted as each class.
    pub class_shares: Vec<f64>,
    /// How the image was cut.
    pub layout: Layout,
    /// With [`PredictOptions::instances`]: `<stem>_labels.png` (16-bit ids),
    /// `<stem>_instances.png` (outlines over the image), and the object count.
    pub instances: Option<(PathBuf, PathBuf, usize)>,
}

/// An image `predict` could not segment, and why.
#[derive(Debug)]
pub struct Failure {
    /// The image.
    pub input: PathBuf,
    /// What went wrong.
    pub error: RunError,
}

/// Checks that `output` can take `predict`'s files: not the input folder
/// (its masks would be read as images next time), not a model directory.
pub fn check_output(input: &Path, output: &Path) -> Result<(), RunError> {
    // The folder of the images: --input itself, or the folder of one image.
    let images = if input.is_dir() {
        Some(input)
    } else {
        input.parent().map(|p| {
            if p.as_os_str().is_empty() {
                Path::new(".")
            } else {
                p
            }
        })
    };
    let same = match (images.map(Path::canonicalize), output.canonicalize()) {
        (Some(Ok(a)), Ok(b)) => a == b,
        _ => false,
    };
    if same {
        return Err(RunError::option(
            "--output",
            output.display(),
            "another folder than the images' (the masks would be read as images next time)",
        ));
    }
    if output.exists() && !output.is_dir() {
        return Err(RunError::option(
            "--output",
            output.display(),
            "a folder (this is a file)",
        ));
    }
    if output.join(CONFIG_FILE).exists() {
        return Err(RunError::option(
            "--output",
            output.display(),
            "a folder that is not a model directory",
        ));
    }
    Ok(())
}

/// `<stem><suffix>` in `dir`, from a file name that may not be UTF-8.
fn output_path(dir: &Path, input: &Path, suffix: &str) -> PathBuf {
    let mut name: OsString = input.file_stem().map(OsString::from).unwrap_or_default();
    name.push(suffix);
    dir.join(name)
}

/// Segments one image file and writes its mask, overlay and (if asked)
/// probabilities and objects into `output`, each written row by row.
pub fn predict_file(
    model: &TrainedModel,
    path: &Path,
    output: &Path,
    options: &PredictOptions,
    device: &Device,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Prediction, RunError> {
    let classes = model.config.model.num_classes;
    check_not_users(output, path, options, classes)?;
    let (result, source) = segment_image(model, path, options, device, progress)?;
    let size = result.size;
    // The picture overlays are drawn on: the image as read, unless the
    // network saw it resized.
    let resized;
    let picture = if source.size() == size {
        source.image()
    } else {
        resized = decode(path)?;
        &resized
    };
    // Objects first: an image with more than its labels can number fails
    // before any of its files is written.
    let objects = match &options.instances {
        Some(config) => Some(object_labels(output, path, &result.classes, size, config)?),
        None => None,
    };
    let mask_path = output_path(output, path, "_mask.png");
    let overlay_path = output_path(output, path, "_overlay.png");
    write_mask(&mask_path, &result.classes, size, classes)?;
    write_overlay(&overlay_path, picture, &result.classes, size)?;
    let instances = match objects {
        Some((labels, count)) => Some(write_instances(
            output, path, &labels, count, size, picture,
        )?),
        None => None,
    };
    let probabilities = match &result.probabilities {
        Some(planes) => write_probabilities(output, path, planes, size)?,
        None => Vec::new(),
    };
    let mut counts = vec![0usize; classes];
    for &class in &result.classes {
        counts[class as usize] += 1;
    }
    let total = result.classes.len().max(1) as f64;
    Ok(Prediction {
        input: path.to_path_buf(),
        mask: mask_path,
        overlay: overlay_path,
        probabilities,
        class_shares: counts.into_iter().map(|n| n as f64 / total).collect(),
        layout: result.layout,
        instances,
    })
}

/// The suffixes of the probability files of `classes` classes, with the
/// class of each: the foreground's alone for two classes, every class's
/// otherwise.
fn probability_suffixes(classes: usize) -> Vec<(usize, String)> {
    if classes == 2 {
        vec![(1, "_prob.png".into())]
    } else {
        (0..classes).map(|c| (c, format!("_prob{c}.png"))).collect()
    }
}

/// Refuses to predict `path` where one of the files it would write exists
/// and is not one `predict` wrote (a file of the user's with that name),
/// before anything is computed or written.
fn check_not_users(
    output: &Path,
    path: &Path,
    options: &PredictOptions,
    classes: usize,
) -> Result<(), RunError> {
    let mut suffixes = vec!["_mask.png".to_string(), "_overlay.png".to_string()];
    if options.instances.is_some() {
        suffixes.extend(["_labels.png".to_string(), "_instances.png".to_string()]);
    }
    if options.probabilities {
        suffixes.extend(probability_suffixes(classes).into_iter().map(|(_, s)| s));
    }
    for suffix in suffixes {
        let file = output_path(output, path, &suffix);
        if file.exists() && !made_by_predict(&file) {
            return Err(RunError::io(
                &file,
                "exists and was not written by unet predict, so it is not written over \
                 (move it, or choose another --output)",
            ));
        }
    }
    Ok(())
}

/// The mask PNG: 0/255 with two classes, class indices with more.
fn write_mask(
    path: &Path,
    classes_of: &[u8],
    [h, w]: [usize; 2],
    classes: usize,
) -> Result<(), RunError> {
    write_png_rows(path, [w, h], RowFormat::Gray8, |y, row| {
        row.extend(
            classes_of[y * w..][..w]
                .iter()
                .map(|&c| mask_value(c, classes)),
        )
    })
}

/// The classes tinted over the picture, row by row.
fn write_overlay(
    path: &Path,
    picture: &DynamicImage,
    classes_of: &[u8],
    [h, w]: [usize; 2],
) -> Result<(), RunError> {
    write_png_rows(path, [w, h], RowFormat::Rgb8, |y, row| {
        display_row(picture, y, row);
        for (pixel, &class) in row.chunks_exact_mut(3).zip(&classes_of[y * w..][..w]) {
            let tinted = tint([pixel[0], pixel[1], pixel[2]], class);
            pixel.copy_from_slice(&tinted);
        }
    })
}

/// `<stem>_prob.png` (two classes: the foreground) or `<stem>_prob<k>.png`, 16-bit.
fn write_probabilities(
    output: &Path,
    path: &Path,
    planes: &[Vec<u16>],
    [h, w]: [usize; 2],
) -> Result<Vec<PathBuf>, RunError> {
    let mut files = Vec::new();
    for (class, suffix) in probability_suffixes(planes.len()) {
        let file = output_path(output, path, &suffix);
        write_png_rows(&file, [w, h], RowFormat::Gray16, |y, row| {
            row.extend(
                planes[class][y * w..][..w]
                    .iter()
                    .flat_map(|v| v.to_be_bytes()),
            )
        })?;
        files.push(file);
    }
    Ok(files)
}

/// The objects of `mask` (an id per pixel) and their count, for
/// `<stem>_labels.png`: refused where they are more than its 16 bits can
/// number.
fn object_labels(
    output: &Path,
    path: &Path,
    mask: &[u8],
    size: [usize; 2],
    config: &WatershedConfig,
) -> Result<(Vec<u32>, usize), RunError> {
    let labels = instances_of(mask, size, config)?;
    let count = labels.iter().copied().max().unwrap_or(0) as usize;
    if count > usize::from(u16::MAX) {
        return Err(RunError::io(
            output_path(output, path, "_labels.png"),
            format!(
                "{count} objects, more than a 16-bit image can number (65535): \
                 predict the image in parts, or without --instances"
            ),
        ));
    }
    Ok((labels, count))
}

/// Writes `<stem>_labels.png` (16-bit object ids) and `<stem>_instances.png`
/// (each object outlined in its colour over the picture).
fn write_instances(
    output: &Path,
    path: &Path,
    labels: &[u32],
    count: usize,
    [h, w]: [usize; 2],
    picture: &DynamicImage,
) -> Result<(PathBuf, PathBuf, usize), RunError> {
    let labels_path = output_path(output, path, "_labels.png");
    write_png_rows(&labels_path, [w, h], RowFormat::Gray16, |y, row| {
        row.extend(
            labels[y * w..][..w]
                .iter()
                .flat_map(|&id| (id as u16).to_be_bytes()),
        )
    })?;
    let outlines = output_path(output, path, "_instances.png");
    write_png_rows(&outlines, [w, h], RowFormat::Rgb8, |y, row| {
        display_row(picture, y, row);
        instance_row(labels, [h, w], y, row);
    })?;
    Ok((labels_path, outlines, count))
}

/// What [`predict`] did: the images written and those that failed.
#[derive(Debug, Default)]
pub struct PredictReport {
    /// One per image written, in input order.
    pub done: Vec<Prediction>,
    /// One per image that could not be segmented or written.
    pub failed: Vec<Failure>,
}

/// What [`predict`] reports while it works.
#[derive(Debug)]
pub enum Event<'a> {
    /// `done` of `total` tiles of `input` computed.
    Tiles {
        /// The image.
        input: &'a Path,
        /// Tiles computed so far.
        done: usize,
        /// Tiles in all.
        total: usize,
    },
    /// An image's files are written.
    Done(&'a Prediction),
    /// An image failed; the others go on.
    Failed(&'a Failure),
}

/// Segments every image of `input` (a file or a folder) into `output`,
/// going on past an image that fails, telling `events` as it goes.
///
/// # Errors
/// Only for what stops all of them: no images, an `output` that is the
/// input folder or a model directory, an `output` that cannot be made.
pub fn predict(
    model: &TrainedModel,
    input: &Path,
    output: &Path,
    options: &PredictOptions,
    device: &Device,
    events: &mut dyn FnMut(Event),
) -> Result<PredictReport, RunError> {
    let files = input_files(input)?;
    check_output(input, output)?;
    std::fs::create_dir_all(output).map_err(|err| RunError::io(output, err))?;
    crate::atomic::remove_leftovers(output);
    let mut report = PredictReport::default();
    for path in files {
        let result = {
            let mut tiles = |done, total| {
                events(Event::Tiles {
                    input: &path,
                    done,
                    total,
                })
            };
            // A panic in a decoder or a kernel fails this image only.
            crate::guard::catch(|| predict_file(model, &path, output, options, device, &mut tiles))
                .unwrap_or_else(|panic| Err(RunError::Internal(panic)))
        };
        match result {
            Ok(prediction) => {
                events(Event::Done(&prediction));
                report.done.push(prediction);
            }
            Err(error) => {
                let failure = Failure { input: path, error };
                events(Event::Failed(&failure));
                report.failed.push(failure);
            }
        }
    }
    Ok(report)
}
