//! Scores of a model on a labelled folder: `unet eval`.

use std::path::Path;

use burn::tensor::Device;

use crate::config::{DataSource, Preprocess};
use imaging::WatershedConfig;

use crate::data::{ImageMaskPair, image_mask_pairs, read_pair, same_images, split_indices};
use crate::error::RunError;
use crate::instances::{InstanceCounts, instances_of};
use crate::model_dir::TrainedModel;
use crate::predict::{PredictOptions, segment_file};
use crate::score::{ClassCounts, Scores};

/// Dice, IoU and pixel accuracy of `model` on `dir/images` against
/// `dir/masks` (or the foreground of `dir/labels`), counted over all pixels
/// of all images at their own size (predictions of a model trained on
/// resized images are resized back first), the images predicted as
/// `options` says. Where the folder has instance labels, also the instance
/// scores of the objects `instances` separates in the predictions.
pub fn evaluate(
    model: &TrainedModel,
    dir: &Path,
    options: &PredictOptions,
    instances: &WatershedConfig,
    device: &Device,
) -> Result<Scores, RunError> {
    evaluate_images(model, dir, None, options, instances, device)
}

/// The images of `dir` a model held out for validation: those its run's
/// split (seed and validation fraction) put aside, when `dir` is the folder
/// it was trained on.
///
/// # Errors
/// Where the run recorded its images' names, a folder that does not hold
/// the same images ([`crate::data::DataError::ImagesChanged`]).
pub fn validation_images(model: &TrainedModel, dir: &Path) -> Result<Vec<usize>, RunError> {
    let training = model.config.training()?;
    let pairs = image_mask_pairs(dir)?;
    if let DataSource::Folder {
        images: Some(recorded),
        ..
    } = &training.data
    {
        let names: Vec<String> = pairs.iter().map(|pair| pair.stem.clone()).collect();
        same_images(dir, recorded, &names)?;
    }
    Ok(split_indices(pairs.len(), training.val_fraction, training.seed).1)
}

/// [`evaluate`] on the images of `dir` at `only` (positions in name order), or all.
pub fn evaluate_images(
    model: &TrainedModel,
    dir: &Path,
    only: Option<&[usize]>,
    options: &PredictOptions,
    instances: &WatershedConfig,
    device: &Device,
) -> Result<Scores, RunError> {
    let (channels, classes) = (
        model.config.model.in_channels,
        model.config.model.num_classes,
    );
    let mut counts = ClassCounts::new(classes);
    let mut objects = InstanceCounts::default();
    let mut any_labels = false;
    // The truth at the image's own size.
    let full_size = Preprocess {
        resize: None,
        ..model.config.preprocess
    };
    let pairs = image_mask_pairs(dir)?;
    let chosen: Vec<&ImageMaskPair> = match only {
        Some(indices) => indices.iter().filter_map(|&i| pairs.get(i)).collect(),
        None => pairs.iter().collect(),
    };
    for pair in chosen {
        let truth = read_pair(pair, channels, classes, &full_size)?;
        let predicted = segment_file(model, &pair.image, options, device, &mut |_, _| {})?;
        counts.add(&predicted.classes, &truth.mask);
        if let Some(labels) = &truth.labels {
            any_labels = true;
            let size = [truth.height, truth.width];
            let found = instances_of(&predicted.classes, size, instances)?;
            objects.add(labels, &found, size)?;
        }
    }
    let mut scores = counts.scores();
    scores.instances = any_labels.then(|| objects.scores());
    Ok(scores)
}
