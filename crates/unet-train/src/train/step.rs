//! One training or validation step of a U-Net, in burn-train's terms.

use burn::module::Module;
use burn::tensor::{ExecutionError, Int, Tensor, TensorData};
use burn::train::metric::{Adaptor, ItemLazy, LossInput};
use burn::train::{InferenceStep, TrainOutput, TrainStep};
use unet::{
    UNet, center_crop, cross_entropy, dice_loss, focal_loss, tversky_loss, weighted_cross_entropy,
};

use super::loader::SegmentationBatch;
use crate::config::Loss;

/// A U-Net as burn-train trains it, with the loss it minimises.
#[derive(Module, Debug)]
pub struct Segmenter {
    /// The network.
    pub unet: UNet,
    /// The loss and its class weights.
    #[module(skip)]
    pub objective: Objective,
}

/// The loss of a [`Segmenter`]: which one, and a weight per class for the
/// cross-entropy and focal losses. Pixel weights come with the batch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Objective {
    /// The loss.
    pub loss: Loss,
    /// One weight per class, if any.
    pub class_weights: Option<Vec<f32>>,
}

impl Segmenter {
    /// A network trained for the default objective: cross-entropy plus soft
    /// Dice, unweighted.
    pub fn new(unet: UNet) -> Self {
        Self::with_objective(unet, Objective::default())
    }

    /// A network trained for `objective`.
    pub fn with_objective(unet: UNet, objective: Objective) -> Self {
        Self { unet, objective }
    }

    /// The loss of `logits` against `target` (both cropped alike), with
    /// per-pixel `weights` if the batch has them.
    fn loss(
        &self,
        logits: Tensor<4>,
        target: Tensor<3, Int>,
        weights: Option<Tensor<3>>,
    ) -> Tensor<1> {
        let class = self.objective.class_weights.as_ref().map(|w| {
            Tensor::<1>::from_data(TensorData::new(w.clone(), [w.len()]), &logits.device())
        });
        let weighted = weights.is_some() || class.is_some();
        match self.objective.loss {
            Loss::CeDice if !weighted => {
                cross_entropy(logits.clone(), target.clone()) + dice_loss(logits, target)
            }
            Loss::CeDice => {
                weighted_cross_entropy(logits.clone(), target.clone(), weights, class)
                    + dice_loss(logits, target)
            }
            Loss::Ce => weighted_cross_entropy(logits, target, weights, class),
            Loss::Focal { gamma } => focal_loss(logits, target, gamma, weights, class),
            Loss::Tversky { alpha, beta } => tversky_loss(logits, target, alpha, beta),
        }
    }
}

/// What a step hands to the metrics: the loss and the hard predictions.
pub struct SegmentationOutput {
    /// The loss, `[1]`.
    pub loss: Tensor<1>,
    /// Predicted class per pixel, `[batch, height, width]`.
    pub predicted: Tensor<3, Int>,
    /// True class per pixel, same shape.
    pub target: Tensor<3, Int>,
}

impl Segmenter {
    /// Runs the network on a batch and scores it.
    pub fn forward_step(&self, batch: SegmentationBatch) -> SegmentationOutput {
        let logits = self.unet.forward(batch.images);
        // With unpadded (`Valid`) convolutions the output is the centre of the input.
        let [_, _, h, w] = logits.dims();
        let target = center_crop(batch.masks, [h, w]);
        let weights = batch.weights.map(|weights| center_crop(weights, [h, w]));
        let loss = self.loss(logits.clone(), target.clone(), weights);
        let predicted = logits.detach().argmax(1).squeeze_dim::<3>(1);
        SegmentationOutput {
            loss,
            predicted,
            target,
        }
    }
}

impl TrainStep for Segmenter {
    type Input = SegmentationBatch;
    type Output = SegmentationOutput;

    /// The gradients of the batch's loss scaled by its share of the step
    /// ([`SegmentationBatch::share`]: 1 on one device), so that the
    /// gradients burn-train sums over the devices of a step are those of
    /// the step's mean loss. The metrics get the unscaled loss.
    fn step(&self, batch: SegmentationBatch) -> TrainOutput<SegmentationOutput> {
        let share = batch.share;
        let output = self.forward_step(batch);
        let gradients = if share == 1.0 {
            output.loss.backward()
        } else {
            (output.loss.clone() * share).backward()
        };
        TrainOutput::new(self, gradients, output)
    }
}

impl InferenceStep for Segmenter {
    type Input = SegmentationBatch;
    type Output = SegmentationOutput;

    fn step(&self, batch: SegmentationBatch) -> SegmentationOutput {
        self.forward_step(batch)
    }
}

impl ItemLazy for SegmentationOutput {
    fn sync(self) -> Result<Self, ExecutionError> {
        // Metrics run on another thread: drop the autodiff graph first.
        Ok(Self {
            loss: self.loss.without_autodiff(),
            predicted: self.predicted.without_autodiff(),
            target: self.target.without_autodiff(),
        })
    }
}

impl Adaptor<LossInput> for SegmentationOutput {
    fn adapt(&self) -> LossInput {
        LossInput::new(self.loss.clone())
    }
}
