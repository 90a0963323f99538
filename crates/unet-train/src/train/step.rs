//! One training or validation step of a U-Net, in burn-train's terms.

use burn::module::Module;
use burn::optim::lr_scheduler::module_lr_scheduler::ModuleLearningRate;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, ExecutionError, FloatDType, Int, Tensor, TensorData};
use burn::train::metric::{Adaptor, ItemLazy, LossInput};
use burn::train::{InferenceStep, TrainOutput, TrainStep};
use unet::{
    UNet, center_crop, cross_entropy, dice_loss, focal_loss, tversky_loss, weighted_cross_entropy,
};

use super::loader::SegmentationBatch;
use crate::config::{Loss, RunConfig};
use crate::error::RunError;
use crate::precision::{LossScale, Precision, ScaleRule};

/// A U-Net as burn-train trains it, with the loss it minimises and the
/// precision it computes in.
#[derive(Module, Debug)]
pub struct Segmenter {
    /// The network.
    pub unet: UNet,
    /// The loss and its class weights.
    #[module(skip)]
    pub objective: Objective,
    /// The float type of the network's forward and backward passes.
    #[module(skip)]
    pub precision: Precision,
    /// The loss scale, when `precision` scales the loss.
    pub loss_scale: Option<LossScale>,
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
        Self {
            unet,
            objective,
            precision: Precision::F32,
            loss_scale: None,
        }
    }

    /// The model a run trains, as `config` describes it, on `device`.
    pub fn of_run(config: &RunConfig, device: &Device) -> Result<Self, RunError> {
        let training = config.training()?;
        let objective = Objective {
            loss: training.loss,
            class_weights: training.class_weights.clone(),
        };
        let unet = config.model.try_init(device)?;
        Ok(Self::with_objective(unet, objective).with_precision(
            training.precision,
            ScaleRule::default(),
            device,
        ))
    }

    /// The network computing in `precision`, its loss scale (if it has
    /// one) made on `device` by `rule`.
    pub fn with_precision(self, precision: Precision, rule: ScaleRule, device: &Device) -> Self {
        Self {
            precision,
            loss_scale: precision
                .scales_loss()
                .then(|| LossScale::new(rule, device)),
            ..self
        }
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
    /// Runs the network on a batch, in its precision, and scores it (the
    /// loss on `f32` logits).
    pub fn forward_step(&self, batch: SegmentationBatch) -> SegmentationOutput {
        let images = batch.images.cast(self.precision.dtype());
        let logits = self.unet.forward(images).cast(FloatDType::F32);
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
    /// the step's mean loss; and by the loss scale, if there is one
    /// ([`TrainStep::optimize`] divides it out). The metrics get the
    /// unscaled loss.
    fn step(&self, batch: SegmentationBatch) -> TrainOutput<SegmentationOutput> {
        let share = batch.share;
        let output = self.forward_step(batch);
        let loss = if share == 1.0 {
            output.loss.clone()
        } else {
            output.loss.clone() * share
        };
        let loss = match &self.loss_scale {
            Some(scale) => scale.scaled(loss),
            None => loss,
        };
        TrainOutput::new(self, loss.backward(), output)
    }

    /// The optimizer's step on the gradients of the step's loss. With a loss
    /// scale, the summed gradients are unscaled first, and a step whose
    /// gradients overflowed is skipped (the weights and Adam's state stay
    /// as they are), as PyTorch's `GradScaler.step` does. burn-train calls
    /// this with the gradients of all devices summed (`OptimMainDevice`,
    /// the strategy this crate runs several devices with).
    fn optimize(
        mut self,
        optim: &mut ModuleOptimizer,
        lr: ModuleLearningRate,
        grads: GradientsParams,
    ) -> Self {
        let Some(scale) = self.loss_scale.take() else {
            return optim.step(lr, self, grads);
        };
        let (grads, scale) = scale.unscale(&self, grads);
        let mut model = match grads {
            Some(grads) => optim.step(lr, self, grads),
            None => self,
        };
        model.loss_scale = Some(scale);
        model
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
