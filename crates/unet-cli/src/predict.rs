//! Masks for new images: `unet predict`.

use std::path::{Path, PathBuf};

use burn::tensor::ops::PadMode;
use burn::tensor::{Device, Tensor, TensorData};
use image::GrayImage;
use image::imageops::{self, FilterType};
use unet::{UNet, UNetConfig, UNetPadding, valid_output_size};

use crate::config::Preprocess;
use crate::data::{DataError, read_image};
use crate::error::CliError;
use crate::model_dir::TrainedModel;
use crate::render::{mask_image, overlay, write_png};

/// Class indices `[height, width]` for one image `[channels, height, width]`
/// (values already divided by 255), at the image's size.
///
/// A `Same` network takes any size. A `Valid` (unpadded) network sees the
/// image mirrored outwards so that its smaller output covers every pixel
/// (the paper's overlap-tile strategy).
pub fn segment(
    unet: &UNet,
    image: &[f32],
    [channels, height, width]: [usize; 3],
    device: &Device,
) -> Result<Vec<u8>, CliError> {
    let input = Tensor::<4>::from_data(
        TensorData::new(image.to_vec(), [1, channels, height, width]),
        device,
    );
    let config = unet.config();
    let input = match config.padding {
        UNetPadding::Same => input,
        UNetPadding::Valid => {
            // The output is centred on the padded input: it starts at the
            // image's first pixel and is at least as long.
            let [(top, bottom), (left, right)] =
                [height, width].map(|size| valid_margins(config, size));
            let fits = top.max(bottom) < height && left.max(right) < width;
            let mode = if fits {
                PadMode::Reflect
            } else {
                PadMode::Edge
            };
            input.pad([(top, bottom), (left, right)], mode)
        }
    };
    let logits = unet.try_forward(input)?;
    let [_, classes, _, _] = logits.dims();
    let classes_of = logits
        .slice([0..1, 0..classes, 0..height, 0..width])
        .argmax(1)
        .try_into_vec_as::<i64>()
        .map_err(|err| CliError::Device(err.to_string()))?;
    Ok(classes_of.into_iter().map(|c| c as u8).collect())
}

/// For a `Valid` network: the padding `(before, after)` that makes an input
/// of `size` pixels yield an output at least `size` long, centred on it.
fn valid_margins(config: &UNetConfig, size: usize) -> (usize, usize) {
    let (input, output) = (size..)
        .find_map(|input| {
            valid_output_size(config, input)
                .filter(|&out| out >= size)
                .map(|out| (input, out))
        })
        .expect("large enough inputs pass a valid U-Net");
    let before = (input - output) / 2;
    (before, input - size - before)
}

/// Reads an image file as the model takes it and segments it: the mask at
/// the file's own size.
pub fn segment_file(
    model: &TrainedModel,
    path: &Path,
    device: &Device,
) -> Result<Vec<u8>, CliError> {
    let channels = model.config.model.in_channels;
    let Preprocess { resize } = model.config.preprocess;
    let (values, [width, height]) = read_image(path, channels, resize)?;
    let side = resize.map_or([height as usize, width as usize], |s| [s, s]);
    let mask = segment(&model.unet, &values, [channels, side[0], side[1]], device)?;
    Ok(match resize {
        Some(s) if [s as u32; 2] != [width, height] => {
            let small = GrayImage::from_raw(s as u32, s as u32, mask).expect("s x s classes");
            imageops::resize(&small, width, height, FilterType::Nearest).into_raw()
        }
        _ => mask,
    })
}

/// The images to predict: `input` itself, or the `.png`/`.jpg` files in it, by name.
pub fn input_files(input: &Path) -> Result<Vec<PathBuf>, CliError> {
    if input.is_file() {
        return Ok(vec![input.to_path_buf()]);
    }
    let entries = std::fs::read_dir(input).map_err(|err| CliError::io(input, err))?;
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| {
            path.is_file()
                && path.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                    ["png", "jpg", "jpeg"].contains(&e.to_ascii_lowercase().as_str())
                })
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(DataError::NoImages {
            path: input.to_path_buf(),
        }
        .into());
    }
    Ok(files)
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
    /// Share of pixels predicted as each class.
    pub class_shares: Vec<f64>,
}

/// Segments every image of `input` (a file or a folder) and writes
/// `<stem>_mask.png` and `<stem>_overlay.png` into `output`.
pub fn predict(
    model: &TrainedModel,
    input: &Path,
    output: &Path,
    device: &Device,
) -> Result<Vec<Prediction>, CliError> {
    let files = input_files(input)?;
    std::fs::create_dir_all(output).map_err(|err| CliError::io(output, err))?;
    let classes = model.config.model.num_classes;
    files
        .iter()
        .map(|path| {
            let mask = segment_file(model, path, device)?;
            let picture = image::open(path)
                .map_err(|err| CliError::io(path, err))?
                .to_rgb8();
            let (w, h) = picture.dimensions();
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let mask_path = output.join(format!("{stem}_mask.png"));
            let overlay_path = output.join(format!("{stem}_overlay.png"));
            write_png(
                &mask_path,
                mask_image(&mask, h as usize, w as usize, classes),
            )?;
            write_png(&overlay_path, overlay(&picture, &mask))?;
            let mut counts = vec![0usize; classes];
            for &class in &mask {
                counts[class as usize] += 1;
            }
            Ok(Prediction {
                input: path.clone(),
                mask: mask_path,
                overlay: overlay_path,
                class_shares: counts
                    .into_iter()
                    .map(|n| n as f64 / mask.len().max(1) as f64)
                    .collect(),
            })
        })
        .collect()
}
