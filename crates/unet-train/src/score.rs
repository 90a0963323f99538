//! Segmentation scores: Dice, IoU and pixel accuracy per class, from counts
//! accumulated over a whole dataset (not averaged over batches, so a small
//! last batch weighs what its pixels weigh).

use serde::Serialize;

use crate::instances::InstanceScores;

/// Per-class pixel counts of predictions against targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassCounts {
    /// Pixels predicted as the class that are the class (true positives), per class.
    pub hits: Vec<u64>,
    /// Pixels predicted as the class, per class.
    pub predicted: Vec<u64>,
    /// Pixels that are the class, per class.
    pub actual: Vec<u64>,
}

/// The scores of one class.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ClassScore {
    /// The class index (0 is background).
    pub class: usize,
    /// `2 |P ∩ T| / (|P| + |T|)`; 1 when the class is in neither.
    pub dice: f64,
    /// `|P ∩ T| / |P ∪ T|`; 1 when the class is in neither.
    pub iou: f64,
    /// `|P ∩ T| / |T|`: the share of the class's pixels labelled right; 1 when there are none.
    pub pixel_accuracy: f64,
}

/// All the scores of an evaluation, in the shape `unet eval --json` writes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scores {
    /// Every class, background included.
    pub per_class: Vec<ClassScore>,
    /// Mean Dice over the foreground classes (1..K).
    pub mean_dice: f64,
    /// Mean IoU over the foreground classes (1..K).
    pub mean_iou: f64,
    /// Share of all pixels labelled right.
    pub pixel_accuracy: f64,
    /// Object-level scores, where the data has instance labels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instances: Option<InstanceScores>,
}

impl ClassCounts {
    /// Zero counts for `classes` classes.
    pub fn new(classes: usize) -> Self {
        Self {
            hits: vec![0; classes],
            predicted: vec![0; classes],
            actual: vec![0; classes],
        }
    }

    /// The number of classes.
    pub fn classes(&self) -> usize {
        self.hits.len()
    }

    /// Adds one prediction: class indices per pixel, in the same order as the target's.
    ///
    /// # Panics
    /// If the lengths differ or an index is not below [`ClassCounts::classes`]:
    /// both are programming errors, the data is checked when it is read.
    pub fn add(&mut self, predicted: &[u8], actual: &[u8]) {
        assert_eq!(predicted.len(), actual.len(), "prediction and target sizes");
        for (&p, &t) in predicted.iter().zip(actual) {
            self.predicted[p as usize] += 1;
            self.actual[t as usize] += 1;
            if p == t {
                self.hits[p as usize] += 1;
            }
        }
    }

    /// Adds the counts of another set of predictions.
    pub fn merge(&mut self, other: &ClassCounts) {
        for (mine, theirs) in [
            (&mut self.hits, &other.hits),
            (&mut self.predicted, &other.predicted),
            (&mut self.actual, &other.actual),
        ] {
            for (a, b) in mine.iter_mut().zip(theirs) {
                *a += b;
            }
        }
    }

    /// The scores of class `class`.
    pub fn class_score(&self, class: usize) -> ClassScore {
        let hits = self.hits[class] as f64;
        let (p, t) = (self.predicted[class] as f64, self.actual[class] as f64);
        let ratio = |num: f64, den: f64| if den == 0.0 { 1.0 } else { num / den };
        ClassScore {
            class,
            dice: ratio(2.0 * hits, p + t),
            iou: ratio(hits, p + t - hits),
            pixel_accuracy: ratio(hits, t),
        }
    }

    /// Every score: per class, the foreground means, and overall pixel accuracy.
    pub fn scores(&self) -> Scores {
        let per_class: Vec<ClassScore> = (0..self.classes()).map(|c| self.class_score(c)).collect();
        let foreground = &per_class[1.min(per_class.len())..];
        let mean = |f: fn(&ClassScore) -> f64| {
            foreground.iter().map(f).sum::<f64>() / foreground.len().max(1) as f64
        };
        let total: u64 = self.actual.iter().sum();
        let hits: u64 = self.hits.iter().sum();
        Scores {
            mean_dice: mean(|s| s.dice),
            mean_iou: mean(|s| s.iou),
            pixel_accuracy: if total == 0 {
                1.0
            } else {
                hits as f64 / total as f64
            },
            per_class,
            instances: None,
        }
    }
}

impl Scores {
    /// A plain-text table: one row per class, then the means.
    pub fn table(&self) -> String {
        let mut out = format!(
            "{:>7} {:>8} {:>8} {:>10}\n",
            "class", "dice", "iou", "pixel acc"
        );
        for s in &self.per_class {
            out += &format!(
                "{:>7} {:>8.4} {:>8.4} {:>10.4}\n",
                s.class, s.dice, s.iou, s.pixel_accuracy
            );
        }
        out += &format!(
            "{:>7} {:>8.4} {:>8.4} {:>10.4}\n",
            "mean*", self.mean_dice, self.mean_iou, self.pixel_accuracy
        );
        out += "* Dice and IoU: mean over the foreground classes; pixel accuracy: all pixels\n";
        if let Some(instances) = &self.instances {
            out += &instances.table();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_of_a_small_case_by_hand() {
        // Target:    0 0 1 1 2 2     Prediction: 0 1 1 1 2 0
        let mut counts = ClassCounts::new(3);
        counts.add(&[0, 1, 1, 1, 2, 0], &[0, 0, 1, 1, 2, 2]);
        let scores = counts.scores();
        // Class 1: |P| 3, |T| 2, hits 2 -> dice 4/5, iou 2/3, acc 1.
        assert_eq!(scores.per_class[1].dice, 0.8);
        assert_eq!(scores.per_class[1].iou, 2.0 / 3.0);
        assert_eq!(scores.per_class[1].pixel_accuracy, 1.0);
        // Class 2: |P| 1, |T| 2, hits 1 -> dice 2/3, iou 1/2, acc 1/2.
        assert_eq!(scores.per_class[2].dice, 2.0 / 3.0);
        assert_eq!(scores.per_class[2].iou, 0.5);
        assert_eq!(scores.per_class[2].pixel_accuracy, 0.5);
        // Class 0: |P| 2, |T| 2, hits 1.
        assert_eq!(scores.per_class[0].dice, 0.5);
        assert_eq!(scores.mean_dice, (0.8 + 2.0 / 3.0) / 2.0);
        assert_eq!(scores.mean_iou, (2.0 / 3.0 + 0.5) / 2.0);
        assert_eq!(scores.pixel_accuracy, 4.0 / 6.0);
    }

    #[test]
    fn merged_counts_equal_counts_of_the_whole() {
        let (p, t) = ([0u8, 1, 1, 0, 1, 1, 0], [0u8, 1, 0, 0, 1, 1, 1]);
        let mut whole = ClassCounts::new(2);
        whole.add(&p, &t);
        let mut parts = ClassCounts::new(2);
        let mut second = ClassCounts::new(2);
        parts.add(&p[..3], &t[..3]);
        second.add(&p[3..], &t[3..]);
        parts.merge(&second);
        assert_eq!(parts, whole);
    }

    #[test]
    fn a_class_absent_everywhere_scores_one() {
        let mut counts = ClassCounts::new(3);
        counts.add(&[0, 1], &[0, 1]);
        assert_eq!(counts.class_score(2).dice, 1.0);
        assert_eq!(counts.class_score(2).iou, 1.0);
        assert_eq!(counts.scores().mean_dice, 1.0);
    }
}
