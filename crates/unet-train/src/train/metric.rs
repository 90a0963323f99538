//! burn-train metrics for segmentation: Dice and IoU from pixel counts over
//! the whole epoch, and a guard that stops training on a non-finite loss.

use std::sync::{Arc, Mutex};

use burn::tensor::{Int, Tensor, TensorReadError};
use burn::train::Interrupter;
use burn::train::metric::{
    Adaptor, Metric, MetricAttributes, MetricMetadata, MetricName, Numeric, NumericAttributes,
    NumericEntry, SerializedEntry,
};

use super::step::SegmentationOutput;
use crate::score::ClassCounts;

/// The predictions of a batch, as the overlap metrics read them.
pub struct PredictionInput {
    predicted: Tensor<3, Int>,
    target: Tensor<3, Int>,
}

impl Adaptor<PredictionInput> for SegmentationOutput {
    fn adapt(&self) -> PredictionInput {
        PredictionInput {
            predicted: self.predicted.clone(),
            target: self.target.clone(),
        }
    }
}

/// Which overlap score.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlap {
    /// `2 |P ∩ T| / (|P| + |T|)`.
    Dice,
    /// `|P ∩ T| / |P ∪ T|`.
    Iou,
}

impl Overlap {
    /// The metric's name in burn-train's logs and display.
    pub fn name(self) -> &'static str {
        match self {
            Overlap::Dice => "Dice",
            Overlap::Iou => "IoU",
        }
    }
}

/// Dice or IoU, the mean over the foreground classes, from pixel counts
/// accumulated over the epoch (so the epoch value is the dataset's score, not
/// a mean of batch scores).
#[derive(Clone)]
pub struct OverlapMetric {
    kind: Overlap,
    name: MetricName,
    epoch: ClassCounts,
    last_batch: f64,
    last_batch_size: usize,
}

impl OverlapMetric {
    /// The metric for `classes` classes (background included).
    pub fn new(kind: Overlap, classes: usize) -> Self {
        Self {
            kind,
            name: Arc::new(kind.name().to_string()),
            epoch: ClassCounts::new(classes),
            last_batch: f64::NAN,
            last_batch_size: 0,
        }
    }

    fn score(&self, counts: &ClassCounts) -> f64 {
        let scores = counts.scores();
        match self.kind {
            Overlap::Dice => scores.mean_dice,
            Overlap::Iou => scores.mean_iou,
        }
    }
}

fn classes_of(tensor: Tensor<3, Int>) -> Result<Vec<u8>, TensorReadError> {
    Ok(tensor
        .try_into_vec_as::<i64>()?
        .into_iter()
        .map(|class| class as u8)
        .collect())
}

impl Metric for OverlapMetric {
    type Input = PredictionInput;

    fn name(&self) -> MetricName {
        self.name.clone()
    }

    fn attributes(&self) -> MetricAttributes {
        NumericAttributes {
            unit: None,
            higher_is_better: true,
        }
        .into()
    }

    fn update(
        &mut self,
        input: &PredictionInput,
        _metadata: &MetricMetadata,
    ) -> Result<SerializedEntry, TensorReadError> {
        let batch_size = input.target.dims()[0];
        let predicted = classes_of(input.predicted.clone())?;
        let target = classes_of(input.target.clone())?;
        let mut batch = ClassCounts::new(self.epoch.classes());
        batch.add(&predicted, &target);
        self.epoch.merge(&batch);
        self.last_batch = self.score(&batch);
        self.last_batch_size = batch_size;
        Ok(SerializedEntry::new(
            format!(
                "{:.4} (batch {:.4})",
                self.score(&self.epoch),
                self.last_batch
            ),
            self.value().expect("always a value").serialize(),
        ))
    }

    fn compute(&mut self) -> Result<SerializedEntry, TensorReadError> {
        let value = self.score(&self.epoch);
        Ok(SerializedEntry::new(
            format!("{value:.4}"),
            NumericEntry::Final(value).serialize(),
        ))
    }

    fn clear(&mut self) {
        *self = Self::new(self.kind, self.epoch.classes());
    }
}

impl Numeric for OverlapMetric {
    fn value(&self) -> Option<NumericEntry> {
        Some(NumericEntry::Aggregated {
            aggregated_value: self.last_batch,
            count: self.last_batch_size,
        })
    }

    fn running_value(&self) -> Option<NumericEntry> {
        Some(NumericEntry::Aggregated {
            aggregated_value: self.score(&self.epoch),
            count: 1,
        })
    }

    fn final_value(&self) -> NumericEntry {
        NumericEntry::Final(self.score(&self.epoch))
    }
}

/// The loss of a batch, as [`NanGuard`] reads it.
pub struct LossProbe(Tensor<1>);

impl Adaptor<LossProbe> for SegmentationOutput {
    fn adapt(&self) -> LossProbe {
        LossProbe(self.loss.clone())
    }
}

/// Stops training at the first non-finite loss, before that epoch is
/// checkpointed, and records why in `reason`.
#[derive(Clone)]
pub struct NanGuard {
    interrupter: Interrupter,
    reason: Arc<Mutex<Option<String>>>,
    name: MetricName,
}

impl NanGuard {
    /// A guard that stops through `interrupter` and writes the reason into `reason`.
    pub fn new(interrupter: Interrupter, reason: Arc<Mutex<Option<String>>>) -> Self {
        Self {
            interrupter,
            reason,
            name: Arc::new("Non-finite loss guard".into()),
        }
    }
}

impl Metric for NanGuard {
    type Input = LossProbe;

    fn name(&self) -> MetricName {
        self.name.clone()
    }

    fn update(
        &mut self,
        input: &LossProbe,
        metadata: &MetricMetadata,
    ) -> Result<SerializedEntry, TensorReadError> {
        let loss = input.0.clone().sum().try_into_scalar::<f64>()?;
        if !loss.is_finite() {
            let mut reason = self.reason.lock().expect("no panic while holding the lock");
            if reason.is_none() {
                let message = format!(
                    "the loss became {loss} at training iteration {}",
                    metadata.iteration.unwrap_or(0)
                );
                self.interrupter.stop(Some(&message));
                *reason = Some(message);
            }
        }
        Ok(SerializedEntry::not_available(None))
    }

    fn compute(&mut self) -> Result<SerializedEntry, TensorReadError> {
        Ok(SerializedEntry::not_available(None))
    }

    fn clear(&mut self) {}
}
