//! Instance matching and detection scores, as in StarDist's `matching` module
//! and the 2018 Data Science Bowl (DSB2018) metric.
//!
//! * IoU of every ground-truth/prediction pair that overlaps at all, from one
//!   pass over the pixels counting `(true id, pred id)` pairs in a hash map
//!   (O(pixels + overlapping pairs)); pairs that do not overlap have IoU 0 and
//!   are never stored.
//! * At threshold `t` a pair can match if `IoU > t` (strictly, as DSB2018).
//!   For `t >= 0.5` such pairs are unique — `IoU > 0.5` implies the overlap
//!   covers more than half of each object, so an object has at most one
//!   candidate — and the candidates are the matching. For `t < 0.5` an
//!   object may have several candidates; the matching is then an optimal
//!   assignment maximising first the number of matches, then their total IoU
//!   (pair weight `1 + IoU / (2 k)`, `k` the smaller side of the component,
//!   so the IoU bonus, at most 1/2 in total, never outweighs one more match),
//!   solved by the Hungarian algorithm separately on each connected component
//!   of the candidate graph. This is StarDist's rule with the tie-break
//!   restricted to matched pairs.
//! * Scores: `precision = tp / (tp + fp)`, `recall = tp / (tp + fn)`,
//!   `f1 = 2 tp / (2 tp + fp + fn)`, `ap = tp / (tp + fp + fn)` (the DSB2018
//!   "average precision" at one threshold), mean matched IoU. The DSB2018
//!   score is the mean of `ap` over `t = 0.5, 0.55, ..., 0.95`.
//! * Empty cases: a ratio `0 / 0` is 1 when both images have no object
//!   (nothing to find, nothing wrongly found: a perfect score, including the
//!   mean matched IoU) and 0 otherwise (e.g. precision of an empty prediction
//!   against a non-empty ground truth).

use std::collections::HashMap;

use super::error::{Result, expect_len, invalid};

/// The ten DSB2018 IoU thresholds `0.5, 0.55, ..., 0.95`.
pub const DSB_THRESHOLDS: [f64; 10] = [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95];

/// One overlapping pair of a ground-truth and a predicted object.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Overlap {
    /// Ground-truth id.
    pub true_id: u32,
    /// Predicted id.
    pub pred_id: u32,
    /// Number of shared pixels (`> 0`).
    pub intersection: u64,
    /// `intersection / (area_true + area_pred - intersection)`.
    pub iou: f64,
}

/// Object counts and all overlapping pairs of a ground-truth and a predicted
/// label image, sorted by `(true_id, pred_id)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Overlaps {
    true_ids: Vec<u32>,
    pred_ids: Vec<u32>,
    pairs: Vec<Overlap>,
}

/// Matching result at one IoU threshold (see the module docs for formulas
/// and empty cases).
#[derive(Debug, Clone, PartialEq)]
pub struct MatchStats {
    /// The IoU threshold `t`; pairs match when `IoU > t`.
    pub threshold: f64,
    /// Number of ground-truth objects.
    pub n_true: usize,
    /// Number of predicted objects.
    pub n_pred: usize,
    /// Matched pairs (true positives).
    pub tp: usize,
    /// Unmatched predictions (false positives).
    pub fp: usize,
    /// Unmatched ground-truth objects (false negatives).
    pub fn_: usize,
    /// `tp / (tp + fp)`.
    pub precision: f64,
    /// `tp / (tp + fn)`.
    pub recall: f64,
    /// `2 tp / (2 tp + fp + fn)`.
    pub f1: f64,
    /// Mean IoU of the matched pairs.
    pub mean_matched_iou: f64,
    /// `tp / (tp + fp + fn)`, the DSB2018 score at this threshold.
    pub ap: f64,
    /// The matched pairs `(true_id, pred_id, iou)`, sorted by `true_id`.
    pub matches: Vec<(u32, u32, f64)>,
}

/// Counts objects and overlapping pairs of two label images (row-major
/// `[height, width]`, 0 = background, arbitrary ids).
///
/// Errors: either buffer's length differs from `height * width`.
pub fn overlaps(truth: &[u32], pred: &[u32], height: usize, width: usize) -> Result<Overlaps> {
    expect_len("truth", truth.len(), &[height, width])?;
    expect_len("pred", pred.len(), &[height, width])?;
    let mut true_area: HashMap<u32, u64> = HashMap::new();
    let mut pred_area: HashMap<u32, u64> = HashMap::new();
    let mut shared: HashMap<(u32, u32), u64> = HashMap::new();
    for (&t, &p) in truth.iter().zip(pred) {
        if t != 0 {
            *true_area.entry(t).or_insert(0) += 1;
        }
        if p != 0 {
            *pred_area.entry(p).or_insert(0) += 1;
        }
        if t != 0 && p != 0 {
            *shared.entry((t, p)).or_insert(0) += 1;
        }
    }
    let mut pairs: Vec<Overlap> = shared
        .into_iter()
        .map(|((true_id, pred_id), intersection)| {
            // Both ids were counted in their areas when the pair was counted.
            let union = true_area[&true_id] + pred_area[&pred_id] - intersection;
            let iou = intersection as f64 / union as f64;
            Overlap {
                true_id,
                pred_id,
                intersection,
                iou,
            }
        })
        .collect();
    pairs.sort_by_key(|o| (o.true_id, o.pred_id));
    let sorted = |area: HashMap<u32, u64>| {
        let mut ids: Vec<u32> = area.into_keys().collect();
        ids.sort_unstable();
        ids
    };
    Ok(Overlaps {
        true_ids: sorted(true_area),
        pred_ids: sorted(pred_area),
        pairs,
    })
}

/// Matches two label images at one threshold `t` in `[0, 1]`.
///
/// Errors: length mismatch, threshold outside `[0, 1]` or NaN.
pub fn matching(
    truth: &[u32],
    pred: &[u32],
    height: usize,
    width: usize,
    threshold: f64,
) -> Result<MatchStats> {
    overlaps(truth, pred, height, width)?.stats(threshold)
}

/// The DSB2018 score: mean of `ap` over [`DSB_THRESHOLDS`].
///
/// Errors: length mismatch.
pub fn mean_ap(truth: &[u32], pred: &[u32], height: usize, width: usize) -> Result<f64> {
    overlaps(truth, pred, height, width)?.mean_ap()
}

impl Overlaps {
    /// Number of ground-truth objects.
    pub fn n_true(&self) -> usize {
        self.true_ids.len()
    }

    /// Number of predicted objects.
    pub fn n_pred(&self) -> usize {
        self.pred_ids.len()
    }

    /// All overlapping pairs, sorted by `(true_id, pred_id)`.
    pub fn pairs(&self) -> &[Overlap] {
        &self.pairs
    }

    /// Mean of `ap` over [`DSB_THRESHOLDS`].
    pub fn mean_ap(&self) -> Result<f64> {
        let mut sum = 0.0;
        for &t in &DSB_THRESHOLDS {
            sum += self.stats(t)?.ap;
        }
        Ok(sum / DSB_THRESHOLDS.len() as f64)
    }

    /// Matching and scores at threshold `t` in `[0, 1]` (module docs).
    ///
    /// Errors: threshold outside `[0, 1]` or NaN.
    pub fn stats(&self, threshold: f64) -> Result<MatchStats> {
        if !(0.0..=1.0).contains(&threshold) {
            return Err(invalid("threshold", format!("{threshold} outside [0, 1]")));
        }
        let candidates: Vec<Overlap> = self
            .pairs
            .iter()
            .copied()
            .filter(|o| o.iou > threshold)
            .collect();
        let mut matched = if threshold >= 0.5 {
            candidates
        } else {
            optimal_matching(&candidates)
        };
        matched.sort_by_key(|o| o.true_id);
        let (n_true, n_pred, tp) = (self.n_true(), self.n_pred(), matched.len());
        let (fp, fn_) = (n_pred - tp, n_true - tp);
        let empty = n_true == 0 && n_pred == 0;
        let ratio = |num: f64, den: usize| match den {
            0 if empty => 1.0,
            0 => 0.0,
            d => num / d as f64,
        };
        let iou_sum: f64 = matched.iter().map(|o| o.iou).sum();
        Ok(MatchStats {
            threshold,
            n_true,
            n_pred,
            tp,
            fp,
            fn_,
            precision: ratio(tp as f64, tp + fp),
            recall: ratio(tp as f64, tp + fn_),
            f1: ratio(2.0 * tp as f64, 2 * tp + fp + fn_),
            mean_matched_iou: ratio(iou_sum, tp),
            ap: ratio(tp as f64, tp + fp + fn_),
            matches: matched
                .iter()
                .map(|o| (o.true_id, o.pred_id, o.iou))
                .collect(),
        })
    }
}

/// Maximum matching (most pairs, then highest total IoU) of the candidate
/// pairs, one Hungarian problem per connected component of the bipartite
/// candidate graph.
fn optimal_matching(candidates: &[Overlap]) -> Vec<Overlap> {
    // Nodes: true ids and pred ids, numbered in order of appearance.
    let mut true_node: HashMap<u32, usize> = HashMap::new();
    let mut pred_node: HashMap<u32, usize> = HashMap::new();
    let mut parent: Vec<usize> = Vec::new();
    let node = |map: &mut HashMap<u32, usize>, id: u32, parent: &mut Vec<usize>| {
        *map.entry(id).or_insert_with(|| {
            parent.push(parent.len());
            parent.len() - 1
        })
    };
    let mut edges = Vec::with_capacity(candidates.len());
    for o in candidates {
        let a = node(&mut true_node, o.true_id, &mut parent);
        let b = node(&mut pred_node, o.pred_id, &mut parent);
        let (ra, rb) = (find(&mut parent, a), find(&mut parent, b));
        parent[ra] = rb;
        edges.push(b);
    }
    let mut groups: HashMap<usize, Vec<Overlap>> = HashMap::new();
    for (o, &b) in candidates.iter().zip(&edges) {
        let root = find(&mut parent, b);
        groups.entry(root).or_default().push(*o);
    }
    let mut roots: Vec<usize> = groups.keys().copied().collect();
    roots.sort_unstable();
    roots
        .iter()
        .flat_map(|root| match_component(&groups[root]))
        .collect()
}

/// Union-find root with path halving.
fn find(parent: &mut [usize], mut i: usize) -> usize {
    while parent[i] != i {
        parent[i] = parent[parent[i]];
        i = parent[i];
    }
    i
}

/// Optimal matching of one connected component of candidate pairs.
fn match_component(pairs: &[Overlap]) -> Vec<Overlap> {
    let mut rows: Vec<u32> = pairs.iter().map(|o| o.true_id).collect();
    let mut cols: Vec<u32> = pairs.iter().map(|o| o.pred_id).collect();
    for ids in [&mut rows, &mut cols] {
        ids.sort_unstable();
        ids.dedup();
    }
    let transpose = rows.len() > cols.len();
    let (n, m) = if transpose {
        (cols.len(), rows.len())
    } else {
        (rows.len(), cols.len())
    };
    let bonus = 1.0 / (2.0 * n as f64);
    let mut weight = vec![0.0; n * m];
    let mut pair_at = vec![None; n * m];
    for o in pairs {
        let (Ok(r), Ok(c)) = (
            rows.binary_search(&o.true_id),
            cols.binary_search(&o.pred_id),
        ) else {
            continue;
        };
        let k = if transpose { c * m + r } else { r * m + c };
        weight[k] = 1.0 + o.iou * bonus;
        pair_at[k] = Some(*o);
    }
    max_weight_assignment(&weight, n, m)
        .iter()
        .enumerate()
        .filter_map(|(i, &j)| pair_at[i * m + j])
        .collect()
}

/// Maximum-weight assignment of every row of a dense row-major `n x m`
/// matrix (`n <= m`) to distinct columns: the Hungarian algorithm with
/// potentials (Kuhn-Munkres, O(n^2 m)) minimising `-weight`. Returns the
/// column of each row.
fn max_weight_assignment(weight: &[f64], n: usize, m: usize) -> Vec<usize> {
    let cost = |i: usize, j: usize| -weight[(i - 1) * m + (j - 1)];
    let (mut u, mut v) = (vec![0.0f64; n + 1], vec![0.0f64; m + 1]);
    // p[j]: row assigned to column j (1-based, 0 = none); way: augmenting path.
    let (mut p, mut way) = (vec![0usize; m + 1], vec![0usize; m + 1]);
    for i in 1..=n {
        p[0] = i;
        let mut j0 = 0;
        let mut min_v = vec![f64::INFINITY; m + 1];
        let mut used = vec![false; m + 1];
        loop {
            used[j0] = true;
            let (i0, mut delta, mut j1) = (p[j0], f64::INFINITY, 0);
            for j in (1..=m).filter(|&j| !used[j]) {
                let reduced = cost(i0, j) - u[i0] - v[j];
                if reduced < min_v[j] {
                    min_v[j] = reduced;
                    way[j] = j0;
                }
                if min_v[j] < delta {
                    delta = min_v[j];
                    j1 = j;
                }
            }
            for j in 0..=m {
                if used[j] {
                    u[p[j]] += delta;
                    v[j] -= delta;
                } else {
                    min_v[j] -= delta;
                }
            }
            j0 = j1;
            if p[j0] == 0 {
                break;
            }
        }
        while j0 != 0 {
            let j1 = way[j0];
            p[j0] = p[j1];
            j0 = j1;
        }
    }
    let mut assignment = vec![0usize; n];
    for j in 1..=m {
        if p[j] != 0 {
            assignment[p[j] - 1] = j - 1;
        }
    }
    assignment
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::InstanceError;
    use proptest::prelude::*;

    /// Paints rectangles `(id, y0, y1, x0, x1)` (inclusive) on an `h x w` image.
    fn paint(h: usize, w: usize, rects: &[(u32, usize, usize, usize, usize)]) -> Vec<u32> {
        let mut labels = vec![0u32; h * w];
        for &(id, y0, y1, x0, x1) in rects {
            for y in y0..=y1 {
                for x in x0..=x1 {
                    labels[y * w + x] = id;
                }
            }
        }
        labels
    }

    /// 10 x 10 example.
    /// Ground truth: g1 rows 0-4 x cols 0-3 (20 px), g2 rows 0-3 x cols 5-9
    /// (20 px), g3 rows 7-9 x cols 7-9 (9 px).
    /// Prediction: p10 rows 0-3 x cols 0-3 (16 px, inside g1: IoU 16/20 = 0.8);
    /// g2 split into p20 cols 5-7 (12 px, IoU 12/20 = 0.6) and p30 cols 8-9
    /// (8 px, IoU 0.4); p40 rows 7-8 x cols 0-1 (4 px) a false positive; g3
    /// missed.
    fn example() -> (Vec<u32>, Vec<u32>) {
        let truth = paint(10, 10, &[(1, 0, 4, 0, 3), (2, 0, 3, 5, 9), (3, 7, 9, 7, 9)]);
        let pred = paint(
            10,
            10,
            &[
                (10, 0, 3, 0, 3),
                (20, 0, 3, 5, 7),
                (30, 0, 3, 8, 9),
                (40, 7, 8, 0, 1),
            ],
        );
        (truth, pred)
    }

    #[test]
    fn hand_made_example_at_half() {
        let (truth, pred) = example();
        // t = 0.5: g1-p10 (0.8) and g2-p20 (0.6) match; p30, p40 are false
        // positives, g3 a false negative.
        let s = matching(&truth, &pred, 10, 10, 0.5).unwrap();
        assert_eq!((s.n_true, s.n_pred, s.tp, s.fp, s.fn_), (3, 4, 2, 2, 1));
        assert_eq!(s.matches, vec![(1, 10, 0.8), (2, 20, 0.6)]);
        assert_eq!(s.precision, 0.5); // 2 / 4
        assert_eq!(s.recall, 2.0 / 3.0); // 2 / 3
        assert_eq!(s.f1, 4.0 / 7.0); // 4 / (4 + 2 + 1)
        assert_eq!(s.ap, 0.4); // 2 / (2 + 2 + 1)
        assert!((s.mean_matched_iou - 0.7).abs() < 1e-12);
    }

    #[test]
    fn hand_made_example_at_three_quarters() {
        let (truth, pred) = example();
        // t = 0.75: only g1-p10 (0.8) is above the threshold.
        let s = matching(&truth, &pred, 10, 10, 0.75).unwrap();
        assert_eq!((s.tp, s.fp, s.fn_), (1, 3, 2));
        assert_eq!(s.ap, 1.0 / 6.0); // 1 / (1 + 3 + 2)
        assert_eq!(s.precision, 0.25);
        assert_eq!(s.recall, 1.0 / 3.0);
        assert_eq!(s.f1, 2.0 / 7.0);
        assert_eq!(s.mean_matched_iou, 0.8);
        // IoU must exceed the threshold strictly: 0.8 does not match at 0.8.
        assert_eq!(matching(&truth, &pred, 10, 10, 0.8).unwrap().tp, 0);
    }

    #[test]
    fn hand_made_example_mean_ap() {
        let (truth, pred) = example();
        // ap = 0.4 at 0.5 and 0.55 (0.6 > 0.55); 1/6 at 0.6 .. 0.75 (0.6 is not
        // > 0.6); 0 at 0.8 .. 0.95.
        let expected = (2.0 * 0.4 + 4.0 / 6.0) / 10.0;
        assert!((mean_ap(&truth, &pred, 10, 10).unwrap() - expected).abs() < 1e-12);
    }

    #[test]
    fn below_half_uses_an_optimal_assignment() {
        // 1 x 20: truth a = cols 0-9, b = cols 10-19; prediction y = cols 0-3,
        // x = cols 4-13. IoU(a, x) = 6/14, IoU(a, y) = 4/10, IoU(b, x) = 4/16.
        let truth = paint(1, 20, &[(1, 0, 0, 0, 9), (2, 0, 0, 10, 19)]);
        let pred = paint(1, 20, &[(5, 0, 0, 0, 3), (6, 0, 0, 4, 13)]);
        // t = 0.2: greedy by IoU would take a-x and leave b unmatched; the
        // optimum matches both: a-y, b-x.
        let s = matching(&truth, &pred, 1, 20, 0.2).unwrap();
        assert_eq!((s.tp, s.fp, s.fn_), (2, 0, 0));
        assert_eq!(s.matches, vec![(1, 5, 0.4), (2, 6, 0.25)]);
        // t = 0.3: a has two candidates, b none; one match, the higher IoU.
        let s = matching(&truth, &pred, 1, 20, 0.3).unwrap();
        assert_eq!((s.tp, s.fp, s.fn_), (1, 1, 1));
        assert_eq!(s.matches, vec![(1, 6, 6.0 / 14.0)]);
    }

    #[test]
    fn empty_cases() {
        let s = matching(&[0; 4], &[0; 4], 2, 2, 0.5).unwrap();
        assert_eq!((s.tp, s.fp, s.fn_), (0, 0, 0));
        assert_eq!((s.precision, s.recall, s.f1, s.ap), (1.0, 1.0, 1.0, 1.0));
        assert_eq!(s.mean_matched_iou, 1.0);
        assert_eq!(mean_ap(&[0; 4], &[0; 4], 2, 2).unwrap(), 1.0);
        let s = matching(&[0, 0, 0, 0], &[0, 7, 7, 0], 2, 2, 0.5).unwrap();
        assert_eq!(
            (s.tp, s.fp, s.fn_, s.ap, s.precision, s.recall),
            (0, 1, 0, 0.0, 0.0, 0.0)
        );
        let s = matching(&[3, 3, 0, 0], &[0; 4], 2, 2, 0.5).unwrap();
        assert_eq!(
            (s.tp, s.fp, s.fn_, s.ap, s.precision, s.recall),
            (0, 0, 1, 0.0, 0.0, 0.0)
        );
        assert_eq!(s.mean_matched_iou, 0.0);
    }

    #[test]
    fn invalid_inputs_are_errors() {
        assert!(matches!(
            matching(&[0; 4], &[0; 5], 2, 2, 0.5),
            Err(InstanceError::LengthMismatch { what: "pred", .. })
        ));
        assert!(matching(&[0; 4], &[0; 4], 2, 2, f64::NAN).is_err());
        assert!(matching(&[0; 4], &[0; 4], 2, 2, -0.1).is_err());
        assert!(matching(&[0; 4], &[0; 4], 2, 2, 1.5).is_err());
        assert_eq!(matching(&[1; 4], &[1; 4], 2, 2, 1.0).unwrap().tp, 0);
    }

    #[test]
    fn overlaps_are_sparse_and_exact() {
        let (truth, pred) = example();
        let o = overlaps(&truth, &pred, 10, 10).unwrap();
        assert_eq!((o.n_true(), o.n_pred()), (3, 4));
        let got: Vec<(u32, u32, u64)> = o
            .pairs()
            .iter()
            .map(|p| (p.true_id, p.pred_id, p.intersection))
            .collect();
        assert_eq!(got, vec![(1, 10, 16), (2, 20, 12), (2, 30, 8)]);
    }

    /// Best total weight over all injective row -> column maps (n <= m).
    fn brute_best(weight: &[f64], n: usize, m: usize, row: usize, used: &mut Vec<bool>) -> f64 {
        if row == n {
            return 0.0;
        }
        let mut best = f64::NEG_INFINITY;
        for j in 0..m {
            if !used[j] {
                used[j] = true;
                let w = weight[row * m + j] + brute_best(weight, n, m, row + 1, used);
                best = best.max(w);
                used[j] = false;
            }
        }
        best
    }

    fn random_labels() -> impl Strategy<Value = Vec<u32>> {
        let rect = (1u32..7, 0usize..12, 0usize..12, 1usize..7, 1usize..7);
        proptest::collection::vec(rect, 0..8).prop_map(|rects| {
            let clipped: Vec<_> = rects
                .into_iter()
                .map(|(id, y, x, h, w)| (id, y, (y + h - 1).min(11), x, (x + w - 1).min(11)))
                .collect();
            paint(12, 12, &clipped)
        })
    }

    proptest! {
        #[test]
        fn hungarian_is_optimal(
            (n, m, weight) in (1usize..5, 0usize..3).prop_flat_map(|(n, extra)| {
                let m = n + extra;
                (Just(n), Just(m), proptest::collection::vec(0.0f64..2.0, n * m))
            })
        ) {
            let assignment = max_weight_assignment(&weight, n, m);
            let mut columns = assignment.clone();
            columns.sort_unstable();
            columns.dedup();
            prop_assert_eq!(columns.len(), n);
            let total: f64 = assignment.iter().enumerate().map(|(i, &j)| weight[i * m + j]).sum();
            let best = brute_best(&weight, n, m, 0, &mut vec![false; m]);
            prop_assert!((total - best).abs() < 1e-9, "{} vs {}", total, best);
        }

        #[test]
        fn solver_agrees_with_unique_matches_above_half(
            truth in random_labels(),
            pred in random_labels(),
            t in 0.5f64..1.0,
        ) {
            let o = overlaps(&truth, &pred, 12, 12).unwrap();
            let candidates: Vec<Overlap> =
                o.pairs().iter().copied().filter(|p| p.iou > t).collect();
            let mut solved = optimal_matching(&candidates);
            solved.sort_by_key(|p| p.true_id);
            let direct = o.stats(t).unwrap();
            let solved: Vec<(u32, u32, f64)> =
                solved.iter().map(|p| (p.true_id, p.pred_id, p.iou)).collect();
            prop_assert_eq!(solved, direct.matches);
        }

        #[test]
        fn optimum_is_at_least_greedy(truth in random_labels(), pred in random_labels(), t in 0.0f64..0.5) {
            let o = overlaps(&truth, &pred, 12, 12).unwrap();
            let mut candidates: Vec<Overlap> =
                o.pairs().iter().copied().filter(|p| p.iou > t).collect();
            candidates.sort_by(|a, b| b.iou.total_cmp(&a.iou));
            let (mut used_true, mut used_pred) = (Vec::new(), Vec::new());
            for c in &candidates {
                if !used_true.contains(&c.true_id) && !used_pred.contains(&c.pred_id) {
                    used_true.push(c.true_id);
                    used_pred.push(c.pred_id);
                }
            }
            prop_assert!(o.stats(t).unwrap().tp >= used_true.len());
        }

        #[test]
        fn scores_are_consistent(truth in random_labels(), pred in random_labels(), t in 0.0f64..1.0) {
            let s = matching(&truth, &pred, 12, 12, t).unwrap();
            prop_assert_eq!(s.tp + s.fn_, s.n_true);
            prop_assert_eq!(s.tp + s.fp, s.n_pred);
            prop_assert!(s.matches.iter().all(|m| m.2 > t));
            let mut preds: Vec<u32> = s.matches.iter().map(|m| m.1).collect();
            preds.sort_unstable();
            preds.dedup();
            prop_assert_eq!(preds.len(), s.tp);
            for v in [s.precision, s.recall, s.f1, s.ap, s.mean_matched_iou] {
                prop_assert!((0.0..=1.0).contains(&v));
            }
            // Against itself, with ids renamed, everything matches.
            let renamed: Vec<u32> = truth.iter().map(|&l| if l == 0 { 0 } else { 100 - l }).collect();
            prop_assert_eq!(mean_ap(&truth, &renamed, 12, 12).unwrap(), 1.0);
        }
    }
}
