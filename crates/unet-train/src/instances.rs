//! Objects, not pixels: instances separated from a predicted mask (marker
//! watershed on the distance transform splits touching nuclei), and the
//! instance scores of the 2018 Data Science Bowl and of StarDist's
//! `matching`, accumulated over a dataset.

use imaging::{DSB_THRESHOLDS, WatershedConfig, overlaps, split_instances};
use serde::Serialize;

use crate::error::RunError;

/// Instance ids `1..=n` (0 background) of the foreground (every class but 0)
/// of a class mask `[height, width]`, touching objects split by a marker
/// watershed on the distance to the background.
pub fn instances_of(
    mask: &[u8],
    [height, width]: [usize; 2],
    config: &WatershedConfig,
) -> Result<Vec<u32>, RunError> {
    let foreground: Vec<bool> = mask.iter().map(|&class| class != 0).collect();
    split_instances(&foreground, height, width, config)
        .map_err(|err| RunError::option("--instances", "", &err.to_string()))
}

/// Instance scores of a dataset: counts of matches at IoU 0.5 over all its
/// objects, and the DSB2018 score averaged over its images.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct InstanceCounts {
    images: usize,
    true_objects: usize,
    predicted: usize,
    matched: usize,
    ap_sum: f64,
}

/// What [`InstanceCounts::scores`] reports (and `unet eval --json` writes).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct InstanceScores {
    /// Images scored.
    pub images: usize,
    /// Objects in the labels.
    pub true_objects: usize,
    /// Objects predicted.
    pub predicted_objects: usize,
    /// Pairs matched at IoU > 0.5 (true positives).
    pub matched: usize,
    /// `matched / predicted_objects` at IoU 0.5.
    pub precision: f64,
    /// `matched / true_objects` at IoU 0.5.
    pub recall: f64,
    /// `2 matched / (predicted_objects + true_objects)` at IoU 0.5.
    pub f1: f64,
    /// The 2018 Data Science Bowl score: per image, `TP / (TP + FP + FN)`
    /// averaged over the IoU thresholds 0.5, 0.55, ..., 0.95; then averaged
    /// over the images.
    pub mean_ap: f64,
}

impl InstanceCounts {
    /// Adds one image: true and predicted instance ids, `[height, width]`.
    pub fn add(
        &mut self,
        truth: &[u32],
        predicted: &[u32],
        [height, width]: [usize; 2],
    ) -> Result<(), RunError> {
        let failed =
            |err: imaging::InstanceError| RunError::option("instance labels", "", &err.to_string());
        let pairs = overlaps(truth, predicted, height, width).map_err(failed)?;
        let at_half = pairs.stats(DSB_THRESHOLDS[0]).map_err(failed)?;
        self.images += 1;
        self.true_objects += at_half.n_true;
        self.predicted += at_half.n_pred;
        self.matched += at_half.tp;
        self.ap_sum += pairs.mean_ap().map_err(failed)?;
        Ok(())
    }

    /// The scores so far (1 where there is nothing to count, as an empty
    /// prediction of an empty image is right).
    pub fn scores(&self) -> InstanceScores {
        let ratio = |a: usize, b: usize| if b == 0 { 1.0 } else { a as f64 / b as f64 };
        InstanceScores {
            images: self.images,
            true_objects: self.true_objects,
            predicted_objects: self.predicted,
            matched: self.matched,
            precision: ratio(self.matched, self.predicted),
            recall: ratio(self.matched, self.true_objects),
            f1: ratio(2 * self.matched, self.predicted + self.true_objects),
            mean_ap: if self.images == 0 {
                1.0
            } else {
                self.ap_sum / self.images as f64
            },
        }
    }
}

impl InstanceScores {
    /// Two lines of text for the `eval` table.
    pub fn table(&self) -> String {
        format!(
            "instances: {} true, {} predicted, {} matched at IoU 0.5: precision {:.4}, recall {:.4}, F1 {:.4}\n\
             DSB2018 mean AP (IoU 0.5:0.05:0.95, mean over {} images): {:.4}\n",
            self.true_objects,
            self.predicted_objects,
            self.matched,
            self.precision,
            self.recall,
            self.f1,
            self.images,
            self.mean_ap
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn touching_squares_are_two_instances_and_score_one() {
        // Two 8x8 squares joined by a neck 2 pixels high, on a 10x20 image.
        let (h, w) = (10, 20);
        let mut mask = vec![0u8; h * w];
        let mut truth = vec![0u32; h * w];
        for y in 1..9 {
            for x in 1..9 {
                mask[y * w + x] = 1;
                truth[y * w + x] = 1;
                mask[y * w + x + 10] = 1;
                truth[y * w + x + 10] = 2;
            }
        }
        for y in 4..6 {
            mask[y * w + 9] = 1;
            mask[y * w + 10] = 1;
        }
        let config = WatershedConfig {
            min_size: 4,
            ..WatershedConfig::default()
        };
        let predicted = instances_of(&mask, [h, w], &config).unwrap();
        assert_eq!(predicted.iter().max(), Some(&2), "split at the neck");
        let mut counts = InstanceCounts::default();
        counts.add(&truth, &predicted, [h, w]).unwrap();
        let scores = counts.scores();
        assert_eq!(
            (
                scores.true_objects,
                scores.predicted_objects,
                scores.matched
            ),
            (2, 2, 2)
        );
        assert_eq!(scores.f1, 1.0);
        // The neck's 4 pixels go to the squares: IoU at least 64/68 = 0.94,
        // a match at every threshold up to 0.9 at least.
        assert!(scores.mean_ap >= 0.9, "{scores:?}");
    }

    #[test]
    fn counts_pool_objects_and_average_images() {
        let mut counts = InstanceCounts::default();
        // Image 1: one object found exactly. Image 2: one object missed, one false.
        counts.add(&[1, 1, 0, 0], &[1, 1, 0, 0], [2, 2]).unwrap();
        counts.add(&[1, 0, 0, 0], &[0, 0, 0, 5], [2, 2]).unwrap();
        let scores = counts.scores();
        assert_eq!(
            (
                scores.true_objects,
                scores.predicted_objects,
                scores.matched
            ),
            (2, 2, 1)
        );
        assert_eq!(
            (scores.precision, scores.recall, scores.f1),
            (0.5, 0.5, 0.5)
        );
        // AP: image 1 is 1 at every threshold, image 2 is 0.
        assert_eq!(scores.mean_ap, 0.5);
    }
}
