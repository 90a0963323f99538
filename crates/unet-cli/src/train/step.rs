//! One training or validation step of a U-Net, in burn-train's terms.

use burn::module::Module;
use burn::tensor::{ExecutionError, Int, Tensor};
use burn::train::metric::{Adaptor, ItemLazy, LossInput};
use burn::train::{InferenceStep, TrainOutput, TrainStep};
use unet::{UNet, cross_entropy, dice_loss};

use crate::loader::SegmentationBatch;

/// A U-Net as burn-train trains it: the loss is cross-entropy plus soft Dice
/// over the foreground classes.
#[derive(Module, Debug)]
pub struct Segmenter {
    /// The network.
    pub unet: UNet,
}

/// What a step hands to the metrics: the loss and the hard predictions.
pub struct SegmentationOutput {
    /// Cross-entropy + Dice, `[1]`.
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
        let target = center_crop(batch.masks, logits.dims());
        let loss = cross_entropy(logits.clone(), target.clone())
            + dice_loss(logits.clone(), target.clone());
        let predicted = logits.detach().argmax(1).squeeze_dim::<3>(1);
        SegmentationOutput {
            loss,
            predicted,
            target,
        }
    }
}

/// The centre of `masks` `[n, h, w]` with the spatial size of `logits` `[n, c, h', w']`.
fn center_crop(masks: Tensor<3, Int>, logits: [usize; 4]) -> Tensor<3, Int> {
    let [n, h, w] = masks.dims();
    let (th, tw) = (logits[2], logits[3]);
    if (h, w) == (th, tw) {
        return masks;
    }
    let (top, left) = ((h - th) / 2, (w - tw) / 2);
    masks.slice([0..n, top..top + th, left..left + tw])
}

impl TrainStep for Segmenter {
    type Input = SegmentationBatch;
    type Output = SegmentationOutput;

    fn step(&self, batch: SegmentationBatch) -> TrainOutput<SegmentationOutput> {
        let output = self.forward_step(batch);
        let gradients = output.loss.backward();
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
