//! Scores of a model on a labelled folder: `unet eval`.

use std::path::Path;

use burn::tensor::Device;

use crate::data::{image_mask_pairs, read_pair};
use crate::error::CliError;
use crate::model_dir::TrainedModel;
use crate::predict::segment_file;
use crate::score::{ClassCounts, Scores};

/// Dice, IoU and pixel accuracy of `model` on `dir/images` against
/// `dir/masks`, counted over all pixels of all images at their own size
/// (predictions of a model trained on resized images are resized back first).
pub fn evaluate(model: &TrainedModel, dir: &Path, device: &Device) -> Result<Scores, CliError> {
    let (channels, classes) = (
        model.config.model.in_channels,
        model.config.model.num_classes,
    );
    let mut counts = ClassCounts::new(classes);
    for pair in image_mask_pairs(dir)? {
        let truth = read_pair(&pair.image, &pair.mask, channels, classes, None)?;
        let predicted = segment_file(model, &pair.image, device)?;
        counts.add(&predicted, &truth.mask);
    }
    Ok(counts.scores())
}
