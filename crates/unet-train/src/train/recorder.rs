//! A burn-train renderer that turns each finished epoch into an
//! [`EpochRecord`], and shows progress: through Burn's terminal UI when
//! stdout is a terminal, as plain lines otherwise (logs, CI, pipes).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use burn::train::LearnerSummary;
use burn::train::logger::{EvaluationProgressLogger, TrainingProgressLogger};
use burn::train::metric::{MetricDefinition, MetricId, NumericEntry};
use burn::train::renderer::{
    EvaluationName, MetricState, MetricsRenderer, MetricsRendererEvaluation,
    MetricsRendererTraining,
};

use crate::history::EpochRecord;

/// Called with each finished epoch (after validation, before its checkpoint).
pub type EpochSink = Box<dyn FnMut(EpochRecord) + Send + Sync>;

/// Records epochs and forwards everything to an inner renderer, if any.
pub struct Recorder {
    inner: Option<Box<dyn MetricsRenderer>>,
    sink: EpochSink,
    names: HashMap<MetricId, String>,
    train: HashMap<String, f64>,
    valid: HashMap<String, f64>,
    epoch_started: Instant,
    // Plain progress (when there is no inner renderer).
    total_epochs: usize,
    epoch: usize,
    split: String,
    split_items: usize,
    last_progress: Instant,
}

/// How often plain progress lines are printed within an epoch.
const PROGRESS_EVERY: Duration = Duration::from_secs(15);

impl Recorder {
    /// A recorder that passes epochs to `sink` and draws through `inner`
    /// (Burn's terminal UI), or prints plain progress lines when `inner` is `None`.
    pub fn new(inner: Option<Box<dyn MetricsRenderer>>, sink: EpochSink) -> Self {
        Self {
            inner,
            sink,
            names: HashMap::new(),
            train: HashMap::new(),
            valid: HashMap::new(),
            epoch_started: Instant::now(),
            total_epochs: 0,
            epoch: 0,
            split: String::new(),
            split_items: 0,
            last_progress: Instant::now(),
        }
    }

    fn keep_final(&mut self, state: &MetricState, valid: bool) {
        if let MetricState::Numeric(entry, Some(NumericEntry::Final(value))) = state
            && let Some(name) = self.names.get(&entry.metric_id)
        {
            let split = if valid {
                &mut self.valid
            } else {
                &mut self.train
            };
            split.insert(name.clone(), *value);
        }
    }
}

impl MetricsRendererTraining for Recorder {
    fn update_train(&mut self, state: MetricState) {
        self.keep_final(&state, false);
        if let Some(inner) = &mut self.inner {
            inner.update_train(state);
        }
    }

    fn update_valid(&mut self, state: MetricState) {
        self.keep_final(&state, true);
        if let Some(inner) = &mut self.inner {
            inner.update_valid(state);
        }
    }

    fn on_train_end(
        &mut self,
        summary: Option<LearnerSummary>,
    ) -> Result<(), Box<dyn core::error::Error>> {
        // The run prints its own summary; the terminal UI needs its end event.
        match &mut self.inner {
            Some(inner) => inner.on_train_end(summary),
            None => Ok(()),
        }
    }
}

impl TrainingProgressLogger for Recorder {
    fn start(
        &mut self,
        total_epochs: usize,
        starting_epoch: usize,
        total_items: Option<usize>,
        label: Option<&str>,
    ) {
        self.total_epochs = total_epochs;
        self.epoch = starting_epoch;
        self.epoch_started = Instant::now();
        if let Some(inner) = &mut self.inner {
            inner.start(total_epochs, starting_epoch, total_items, label);
        }
    }

    fn update_epoch(&mut self, epoch: usize) {
        let get =
            |split: &HashMap<String, f64>, name: &str| split.get(name).copied().unwrap_or(f64::NAN);
        let record = EpochRecord {
            epoch,
            lr: get(&self.train, "Learning Rate"),
            train_loss: get(&self.train, "Loss"),
            train_dice: get(&self.train, "Dice"),
            train_iou: get(&self.train, "IoU"),
            val_loss: get(&self.valid, "Loss"),
            val_dice: get(&self.valid, "Dice"),
            val_iou: get(&self.valid, "IoU"),
            seconds: self.epoch_started.elapsed().as_secs_f64(),
        };
        self.train.clear();
        self.valid.clear();
        self.epoch_started = Instant::now();
        self.epoch = epoch + 1;
        (self.sink)(record);
        if let Some(inner) = &mut self.inner {
            inner.update_epoch(epoch);
        }
    }

    fn start_split(&mut self, split: &str, total_items: usize) {
        self.split = split.to_string();
        self.split_items = total_items;
        self.last_progress = Instant::now();
        if let Some(inner) = &mut self.inner {
            inner.start_split(split, total_items);
        }
    }

    fn update_split(&mut self, items_processed: usize) {
        match &mut self.inner {
            Some(inner) => inner.update_split(items_processed),
            None if self.last_progress.elapsed() >= PROGRESS_EVERY => {
                self.last_progress = Instant::now();
                crate::outln!(
                    "  epoch {}/{} {}: {items_processed}/{} samples",
                    self.epoch,
                    self.total_epochs,
                    self.split,
                    self.split_items
                );
            }
            None => {}
        }
    }

    fn end_split(&mut self) {
        if let Some(inner) = &mut self.inner {
            inner.end_split();
        }
    }

    fn end(&mut self) {
        if let Some(inner) = &mut self.inner {
            inner.end();
        }
    }

    fn log_event_training(&mut self, event: String) {
        if let Some(inner) = &mut self.inner {
            inner.log_event_training(event);
        }
    }
}

// Training only: evaluation events pass straight through.
impl EvaluationProgressLogger for Recorder {
    fn start_global_progress(&mut self, total_tests: usize) {
        if let Some(inner) = &mut self.inner {
            inner.start_global_progress(total_tests);
        }
    }

    fn start_test(&mut self, name: &str, total_items: usize) {
        if let Some(inner) = &mut self.inner {
            inner.start_test(name, total_items);
        }
    }

    fn update_test_progress(&mut self, items_processed: usize) {
        if let Some(inner) = &mut self.inner {
            inner.update_test_progress(items_processed);
        }
    }

    fn end_test(&mut self) {
        if let Some(inner) = &mut self.inner {
            inner.end_test();
        }
    }

    fn end_global_progress(&mut self) {
        if let Some(inner) = &mut self.inner {
            inner.end_global_progress();
        }
    }

    fn log_event_evaluation(&mut self, event: String) {
        if let Some(inner) = &mut self.inner {
            inner.log_event_evaluation(event);
        }
    }
}

impl MetricsRendererEvaluation for Recorder {
    fn update_test(&mut self, name: EvaluationName, state: MetricState) {
        if let Some(inner) = &mut self.inner {
            inner.update_test(name, state);
        }
    }
}

impl MetricsRenderer for Recorder {
    fn manual_close(&mut self) {
        if let Some(inner) = &mut self.inner {
            inner.manual_close();
        }
    }

    fn register_metric(&mut self, definition: MetricDefinition) {
        self.names
            .insert(definition.metric_id.clone(), definition.name.to_string());
        if let Some(inner) = &mut self.inner {
            inner.register_metric(definition);
        }
    }
}
