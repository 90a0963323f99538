//! Splitting touching nuclei: marker-based watershed on the inside distance
//! transform of a foreground mask.
//!
//! Steps of [`split_instances`]:
//! 1. `D` = inside distance of the foreground (Euclidean distance of each
//!    foreground pixel to the nearest background pixel; the image border is
//!    not background), computed exactly.
//! 2. Markers = h-maxima: the regional maxima of the morphological
//!    reconstruction by dilation `HMAX_h(D) = R_D(D - h)` (Soille,
//!    "Morphological Image Analysis", 6.3.4), computed on the foreground
//!    graph only. A maximum of `D` becomes a marker iff its dynamic (how far
//!    one must descend from it to reach a higher maximum) exceeds `h`, so
//!    bumps of the distance map up to `h` pixels high — discretisation
//!    ripples, slight waists — do not split a nucleus, while two lobes whose
//!    neck is more than `h` narrower (in radius) than the smaller lobe do.
//!    The highest plateau of each connected foreground component is always a
//!    marker, so every component gets at least one. Each connected plateau of
//!    the reconstruction that no neighbour exceeds is one marker.
//! 3. Flooding (Meyer): a priority queue seeded with all marker pixels pops
//!    the pixel of highest `D` first, ties in first-in-first-out order
//!    (deterministic); each unlabelled foreground neighbour of a popped pixel
//!    takes its label and is pushed. Every foreground pixel is labelled; no
//!    watershed lines are drawn; background stays 0.
//! 4. Objects smaller than `min_size` pixels are handled smallest first (ties:
//!    lowest id): merged into the neighbouring object with which they share
//!    the most adjacent pixel pairs (under the configured connectivity; ties:
//!    lowest id), or deleted if they touch no other object. Sizes and
//!    contacts are updated after each merge. Survivors are renumbered
//!    `1..=n` in raster order of their first pixel.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use super::components::{Components, Connectivity, relabel_sequential};
use super::distance::squared_inside_distance;
use super::error::{InstanceError, Result, expect_len, invalid};

/// Parameters of [`split_instances`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WatershedConfig {
    /// Minimum dynamic, in pixels of distance, of a distance maximum to become
    /// a marker (default 2). Finite, `>= 0`.
    pub h: f32,
    /// Objects with fewer pixels are merged or removed (default 10).
    pub min_size: usize,
    /// Pixel adjacency for plateaus, flooding and contacts (default 8).
    pub connectivity: Connectivity,
}

impl Default for WatershedConfig {
    fn default() -> Self {
        WatershedConfig {
            h: 2.0,
            min_size: 10,
            connectivity: Connectivity::Eight,
        }
    }
}

/// Splits the foreground (row-major `[height, width]`) into instances
/// `1..=n` (0 = background) as described in the module docs.
///
/// Errors: wrong buffer length, `h` negative or not finite.
pub fn split_instances(
    foreground: &[bool],
    height: usize,
    width: usize,
    config: &WatershedConfig,
) -> Result<Vec<u32>> {
    let distance = checked_distance(foreground, height, width, config)?;
    let markers = h_maxima_of(&distance, foreground, height, width, config)?;
    let mut labels = flood(
        &distance,
        foreground,
        markers.labels,
        height,
        width,
        config.connectivity,
    );
    merge_small_objects(&mut labels, markers.count, height, width, config);
    Ok(relabel_sequential(&labels, height, width)?.labels)
}

/// The watershed markers of [`split_instances`] (step 2), labelled `1..=m`
/// in raster order of their first pixel.
///
/// Errors: as [`split_instances`].
pub fn h_maxima_markers(
    foreground: &[bool],
    height: usize,
    width: usize,
    config: &WatershedConfig,
) -> Result<Components> {
    let distance = checked_distance(foreground, height, width, config)?;
    h_maxima_of(&distance, foreground, height, width, config)
}

/// Validates the inputs and returns the inside distance in `f64`.
fn checked_distance(
    foreground: &[bool],
    height: usize,
    width: usize,
    config: &WatershedConfig,
) -> Result<Vec<f64>> {
    expect_len("foreground", foreground.len(), &[height, width])?;
    if !(config.h.is_finite() && config.h >= 0.0) {
        return Err(invalid(
            "h",
            format!("must be finite and >= 0, got {}", config.h),
        ));
    }
    let squared = squared_inside_distance(foreground, height, width);
    Ok(squared.into_iter().map(f64::sqrt).collect())
}

/// Regional maxima of `R_D(D - h)` on the foreground.
fn h_maxima_of(
    values: &[f64],
    foreground: &[bool],
    height: usize,
    width: usize,
    config: &WatershedConfig,
) -> Result<Components> {
    let h = f64::from(config.h);
    let marker: Vec<f64> = values.iter().map(|&v| v - h).collect();
    let reconstructed = reconstruct_by_dilation(
        marker,
        values,
        foreground,
        height,
        width,
        config.connectivity,
    );
    regional_maxima(
        &reconstructed,
        foreground,
        height,
        width,
        config.connectivity,
    )
}

/// Priority-queue entry: highest `value` first, then lowest `order` (FIFO).
#[derive(Debug)]
struct Entry {
    value: f64,
    order: u64,
    index: usize,
}

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        self.value
            .total_cmp(&other.value)
            .then_with(|| other.order.cmp(&self.order))
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Entry {}

/// Max-priority queue with deterministic first-in-first-out tie breaking.
#[derive(Default)]
struct Queue {
    heap: BinaryHeap<Entry>,
    pushed: u64,
}

impl Queue {
    fn push(&mut self, value: f64, index: usize) {
        self.heap.push(Entry {
            value,
            order: self.pushed,
            index,
        });
        self.pushed += 1;
    }

    fn pop(&mut self) -> Option<(f64, usize)> {
        self.heap.pop().map(|e| (e.value, e.index))
    }
}

/// Geodesic reconstruction by dilation of `marker <= mask` within the
/// foreground: `R(p) = max over foreground paths q -> p of
/// min(marker(q), mask along the path after q)`, computed by a max-first
/// priority flood (each pixel settles at its final value when popped).
fn reconstruct_by_dilation(
    marker: Vec<f64>,
    mask: &[f64],
    foreground: &[bool],
    height: usize,
    width: usize,
    connectivity: Connectivity,
) -> Vec<f64> {
    let mut result = marker;
    let mut queue = Queue::default();
    for (i, &v) in result.iter().enumerate().filter(|&(i, _)| foreground[i]) {
        queue.push(v, i);
    }
    while let Some((value, p)) = queue.pop() {
        if value < result[p] {
            continue; // stale entry: p was raised after this push
        }
        connectivity.for_each_neighbor(p, height, width, |q| {
            let candidate = value.min(mask[q]);
            if foreground[q] && candidate > result[q] {
                result[q] = candidate;
                queue.push(candidate, q);
            }
        });
    }
    result
}

/// Labels `1..=m` (raster order) the regional maxima of `values` on the
/// foreground: connected plateaus of equal value with no strictly higher
/// foreground neighbour.
fn regional_maxima(
    values: &[f64],
    foreground: &[bool],
    height: usize,
    width: usize,
    connectivity: Connectivity,
) -> Result<Components> {
    let mut visited = vec![false; values.len()];
    let mut labels = vec![0u32; values.len()];
    let mut count = 0u32;
    let (mut plateau, mut stack) = (Vec::new(), Vec::new());
    for start in 0..values.len() {
        if !foreground[start] || visited[start] {
            continue;
        }
        let level = values[start];
        let mut is_maximum = true;
        plateau.clear();
        visited[start] = true;
        stack.push(start);
        while let Some(p) = stack.pop() {
            plateau.push(p);
            connectivity.for_each_neighbor(p, height, width, |q| {
                if !foreground[q] {
                    return;
                }
                if values[q] > level {
                    is_maximum = false;
                } else if values[q] == level && !visited[q] {
                    visited[q] = true;
                    stack.push(q);
                }
            });
        }
        if is_maximum {
            count = count.checked_add(1).ok_or(InstanceError::TooManyLabels {
                count: u32::MAX as usize + 1,
            })?;
            plateau.iter().for_each(|&p| labels[p] = count);
        }
    }
    Ok(Components { labels, count })
}

/// Meyer flooding from `markers` in decreasing `distance`, restricted to the
/// foreground (see the module docs, step 3).
fn flood(
    distance: &[f64],
    foreground: &[bool],
    markers: Vec<u32>,
    height: usize,
    width: usize,
    connectivity: Connectivity,
) -> Vec<u32> {
    let mut labels = markers;
    let mut queue = Queue::default();
    for (i, _) in labels.iter().enumerate().filter(|&(_, &l)| l != 0) {
        queue.push(distance[i], i);
    }
    while let Some((_, p)) = queue.pop() {
        let label = labels[p];
        connectivity.for_each_neighbor(p, height, width, |q| {
            if foreground[q] && labels[q] == 0 {
                labels[q] = label;
                queue.push(distance[q], q);
            }
        });
    }
    labels
}

/// Pixel counts and contact counts (adjacent pixel pairs, each ordered pair
/// counted) of objects `1..=count`.
fn sizes_and_contacts(
    labels: &[u32],
    count: u32,
    height: usize,
    width: usize,
    connectivity: Connectivity,
) -> (Vec<usize>, Vec<BTreeMap<u32, u64>>) {
    let mut sizes = vec![0usize; count as usize + 1];
    let mut contacts = vec![BTreeMap::new(); count as usize + 1];
    for (p, &a) in labels.iter().enumerate().filter(|&(_, &a)| a != 0) {
        sizes[a as usize] += 1;
        connectivity.for_each_neighbor(p, height, width, |q| {
            let b = labels[q];
            if b != 0 && b != a {
                *contacts[a as usize].entry(b).or_insert(0u64) += 1;
            }
        });
    }
    (sizes, contacts)
}

/// Step 4 of the module docs, in place on labels `1..=count` (not renumbered).
fn merge_small_objects(
    labels: &mut [u32],
    count: u32,
    height: usize,
    width: usize,
    config: &WatershedConfig,
) {
    let (mut sizes, mut contacts) =
        sizes_and_contacts(labels, count, height, width, config.connectivity);
    let mut target: Vec<u32> = (0..=count).collect();
    let mut queue: BTreeSet<(usize, u32)> =
        (1..=count).map(|id| (sizes[id as usize], id)).collect();
    while let Some(&(size, id)) = queue.first() {
        if size >= config.min_size {
            break;
        }
        queue.remove(&(size, id));
        // Most contacts first, then the lowest id.
        let best = contacts[id as usize]
            .iter()
            .max_by(|(ia, ca), (ib, cb)| ca.cmp(cb).then(ib.cmp(ia)))
            .map(|(&b, _)| b);
        let Some(b) = best else {
            target[id as usize] = 0;
            continue;
        };
        target[id as usize] = b;
        queue.remove(&(sizes[b as usize], b));
        sizes[b as usize] += size;
        queue.insert((sizes[b as usize], b));
        for (k, c) in std::mem::take(&mut contacts[id as usize]) {
            contacts[k as usize].remove(&id);
            if k != b {
                *contacts[b as usize].entry(k).or_insert(0) += c;
                *contacts[k as usize].entry(b).or_insert(0) += c;
            }
        }
    }
    // Follow merge chains to the surviving object (or 0 for deleted ones).
    let resolved: Vec<u32> = (0..=count)
        .map(|mut id| {
            while id != 0 && target[id as usize] != id {
                id = target[id as usize];
            }
            id
        })
        .collect();
    labels.iter_mut().for_each(|l| *l = resolved[*l as usize]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::components::label_components;
    use proptest::prelude::*;
    use std::collections::HashSet;

    /// Union of discs `(cy, cx, r)` on an `h x w` image.
    fn discs(h: usize, w: usize, discs: &[(f64, f64, f64)]) -> Vec<bool> {
        (0..h * w)
            .map(|i| {
                let (y, x) = ((i / w) as f64, (i % w) as f64);
                discs
                    .iter()
                    .any(|&(cy, cx, r)| (y - cy).powi(2) + (x - cx).powi(2) <= r * r)
            })
            .collect()
    }

    fn count(labels: &[u32]) -> u32 {
        labels.iter().copied().max().unwrap_or(0)
    }

    fn assert_contiguous(labels: &[u32]) {
        let ids: HashSet<u32> = labels.iter().copied().filter(|&l| l != 0).collect();
        assert_eq!(ids, (1..=count(labels)).collect::<HashSet<u32>>());
    }

    #[test]
    fn two_touching_discs_are_cut_at_the_neck() {
        // Radius 10 at x = 20 and x = 36: they overlap; the neck is at x = 28,
        // 13 px high (|y - 20| <= 6). Peak distance ~10.5, neck ~6.5.
        let (h, w) = (41, 57);
        let fg = discs(h, w, &[(20.0, 20.0, 10.0), (20.0, 36.0, 10.0)]);
        assert_eq!(
            label_components(&fg, h, w, Connectivity::Eight)
                .unwrap()
                .count,
            1
        );
        let labels = split_instances(&fg, h, w, &WatershedConfig::default()).unwrap();
        assert_eq!(count(&labels), 2);
        for i in (0..h * w).filter(|&i| fg[i]) {
            let x = i % w;
            assert_ne!(labels[i], 0);
            if x <= 25 {
                assert_eq!(labels[i], 1, "pixel {i}");
            }
            if x >= 31 {
                assert_eq!(labels[i], 2, "pixel {i}");
            }
        }
        // Along the centre row the cut lies within one pixel of the neck.
        let row = &labels[20 * w..21 * w];
        let cut = (0..w - 1)
            .find(|&x| row[x] == 1 && row[x + 1] == 2)
            .unwrap();
        assert!((27..=28).contains(&cut), "cut after column {cut}");
        // Background untouched.
        assert!((0..h * w).all(|i| fg[i] || labels[i] == 0));
    }

    #[test]
    fn large_h_keeps_touching_discs_together() {
        let (h, w) = (41, 57);
        let fg = discs(h, w, &[(20.0, 20.0, 10.0), (20.0, 36.0, 10.0)]);
        let cfg = WatershedConfig {
            h: 6.0,
            ..WatershedConfig::default()
        };
        assert_eq!(count(&split_instances(&fg, h, w, &cfg).unwrap()), 1);
    }

    #[test]
    fn single_disc_and_separate_discs() {
        let (h, w) = (40, 60);
        let fg = discs(h, w, &[(20.0, 20.0, 12.0)]);
        let labels = split_instances(&fg, h, w, &WatershedConfig::default()).unwrap();
        assert_eq!(count(&labels), 1);
        assert!((0..h * w).all(|i| (labels[i] == 1) == fg[i]));
        let fg = discs(
            h,
            w,
            &[(10.0, 10.0, 6.0), (28.0, 45.0, 8.0), (30.0, 12.0, 3.0)],
        );
        let labels = split_instances(&fg, h, w, &WatershedConfig::default()).unwrap();
        assert_eq!(count(&labels), 3);
        assert_contiguous(&labels);
    }

    #[test]
    fn empty_and_full_masks() {
        let labels = split_instances(&[false; 30], 5, 6, &WatershedConfig::default()).unwrap();
        assert_eq!(labels, vec![0; 30]);
        let labels = split_instances(&[true; 30], 5, 6, &WatershedConfig::default()).unwrap();
        assert_eq!(labels, vec![1; 30]);
        assert!(
            split_instances(&[], 0, 0, &WatershedConfig::default())
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn invalid_inputs_are_errors() {
        let cfg = WatershedConfig::default();
        assert!(split_instances(&[true; 5], 2, 3, &cfg).is_err());
        let bad = WatershedConfig { h: -1.0, ..cfg };
        assert!(split_instances(&[true; 6], 2, 3, &bad).is_err());
    }

    #[test]
    fn h_maxima_keep_peaks_with_dynamic_above_h() {
        // A 1 x 9 profile, all foreground: peaks 5 (global) and 3.5, separated
        // by a saddle at 2, so the dynamic of the lower peak is 1.5.
        let values = [0.0, 2.0, 5.0, 4.0, 2.0, 3.0, 3.5, 3.5, 1.0];
        let fg = [true; 9];
        let markers = |h: f32| {
            let cfg = WatershedConfig {
                h,
                ..WatershedConfig::default()
            };
            h_maxima_of(&values, &fg, 1, 9, &cfg).unwrap()
        };
        // h = 1: R_D(D - 1) = [0, 2, 4, 4, 2, 2.5, 2.5, 2.5, 1]; its maxima are
        // the plateaus {2, 3} at 4 and {5, 6, 7} at 2.5 (pixels within h of
        // their peak).
        let m = markers(1.0);
        assert_eq!(m.count, 2);
        assert_eq!(m.labels, vec![0, 0, 1, 1, 0, 2, 2, 2, 0]);
        // Dynamic 1.5 is not above h = 1.5: one marker, on the global peak.
        assert_eq!(markers(1.5).count, 1);
        // h = 0: plain regional maxima.
        assert_eq!(markers(0.0).labels, vec![0, 0, 1, 0, 0, 0, 2, 2, 0]);
        // The global peak always survives, even with h above its height.
        assert_eq!(markers(100.0).count, 1);
    }

    #[test]
    fn small_objects_merge_into_the_most_touched_neighbour() {
        // Sizes: 1 -> 5, 2 -> 2, 3 -> 3, 4 -> 1; min_size 3. Object 4 is
        // isolated and is deleted; object 2 is merged.
        #[rustfmt::skip]
        let mut labels = vec![
            1, 1, 1, 0, 0,
            1, 2, 2, 3, 0,
            1, 0, 3, 3, 0,
            0, 0, 0, 0, 4,
        ];
        let cfg = WatershedConfig {
            min_size: 3,
            connectivity: Connectivity::Four,
            ..WatershedConfig::default()
        };
        merge_small_objects(&mut labels, 4, 4, 5, &cfg);
        // Object 2 touches 1 in three pixel pairs ((1,1)-(0,1), (1,1)-(1,0),
        // (1,2)-(0,2)) and 3 in two ((1,2)-(1,3), (1,2)-(2,2)): it joins 1.
        #[rustfmt::skip]
        let expected = vec![
            1, 1, 1, 0, 0,
            1, 1, 1, 3, 0,
            1, 0, 3, 3, 0,
            0, 0, 0, 0, 0,
        ];
        assert_eq!(labels, expected);
    }

    #[test]
    fn merges_cascade_through_small_objects() {
        // 1 (1 px) touches only 2 (2 px), which touches only 3 (5 px): with
        // min_size 4, 1 joins 2 (now 3 px, still small), which joins 3.
        let mut labels = vec![1, 2, 2, 3, 3, 3, 3, 3];
        let cfg = WatershedConfig {
            min_size: 4,
            ..WatershedConfig::default()
        };
        merge_small_objects(&mut labels, 3, 1, 8, &cfg);
        assert_eq!(labels, vec![3; 8]);
    }

    fn blob_mask() -> impl Strategy<Value = (usize, usize, Vec<bool>)> {
        (8usize..40, 8usize..40).prop_flat_map(|(h, w)| {
            let disc = (0.0..h as f64, 0.0..w as f64, 1.0f64..9.0);
            proptest::collection::vec(disc, 0..6).prop_map(move |ds| (h, w, discs(h, w, &ds)))
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn labels_are_contiguous_and_respect_components(
            (h, w, fg) in blob_mask(),
            min_size in 0usize..20,
            four in any::<bool>(),
        ) {
            let connectivity = if four { Connectivity::Four } else { Connectivity::Eight };
            let cfg = WatershedConfig { min_size, connectivity, ..WatershedConfig::default() };
            let labels = split_instances(&fg, h, w, &cfg).unwrap();
            let components = label_components(&fg, h, w, connectivity).unwrap();
            let n = count(&labels) as usize;
            let mut sizes = vec![0usize; n + 1];
            let mut component_of = vec![0u32; n + 1];
            let mut component_sizes = vec![0usize; components.count as usize + 1];
            components.labels.iter().for_each(|&c| component_sizes[c as usize] += 1);
            for i in 0..h * w {
                prop_assert!(fg[i] || labels[i] == 0);
                let l = labels[i] as usize;
                if fg[i] {
                    // Merging keeps a component's objects in contact, so a
                    // pixel is dropped iff its whole component is too small.
                    let small = component_sizes[components.labels[i] as usize] < min_size;
                    prop_assert_eq!(l == 0, small);
                }
                if l == 0 {
                    continue;
                }
                sizes[l] += 1;
                let c = components.labels[i];
                prop_assert!(component_of[l] == 0 || component_of[l] == c);
                component_of[l] = c;
            }
            prop_assert!(sizes[1..].iter().all(|&s| s > 0 && s >= min_size));
        }
    }
}
