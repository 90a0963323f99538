//! Connected components of a binary mask, removal of small components and
//! sequential relabelling of an instance image.

use std::collections::HashMap;

use super::error::{InstanceError, Result, expect_len};

/// Pixel adjacency used to decide which pixels are connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Connectivity {
    /// Edge neighbours only: up, down, left, right.
    Four,
    /// Edge and corner neighbours (the default, as in `scipy.ndimage.label`
    /// with a full 3x3 structure and `skimage.measure.label` in 2-D).
    #[default]
    Eight,
}

/// Neighbour offsets `(dy, dx)`, the four edge neighbours first.
const OFFSETS: [(isize, isize); 8] = [
    (-1, 0),
    (0, -1),
    (0, 1),
    (1, 0),
    (-1, -1),
    (-1, 1),
    (1, -1),
    (1, 1),
];

impl Connectivity {
    /// Calls `f` with the flat index of every in-image neighbour of pixel
    /// `index` of a row-major `[height, width]` image.
    pub(crate) fn for_each_neighbor(
        self,
        index: usize,
        height: usize,
        width: usize,
        mut f: impl FnMut(usize),
    ) {
        let count = match self {
            Connectivity::Four => 4,
            Connectivity::Eight => 8,
        };
        let (y, x) = (index / width, index % width);
        for &(dy, dx) in &OFFSETS[..count] {
            let (Some(ny), Some(nx)) = (y.checked_add_signed(dy), x.checked_add_signed(dx)) else {
                continue;
            };
            if ny < height && nx < width {
                f(ny * width + nx);
            }
        }
    }
}

/// A label image with labels `1..=count` (0 = background).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Components {
    /// Row-major `[height, width]` labels.
    pub labels: Vec<u32>,
    /// Number of objects; the labels used are exactly `1..=count`.
    pub count: u32,
}

/// Labels the connected components of `foreground` (row-major
/// `[height, width]`) under `connectivity`.
///
/// Components are numbered `1..=n` in raster order of their first pixel (the
/// component containing the first foreground pixel met scanning rows top to
/// bottom, each left to right, is 1, and so on); background is 0. O(pixels),
/// by an explicit-stack flood fill.
///
/// Errors: wrong buffer length, or more than `u32::MAX` components.
pub fn label_components(
    foreground: &[bool],
    height: usize,
    width: usize,
    connectivity: Connectivity,
) -> Result<Components> {
    expect_len("foreground", foreground.len(), &[height, width])?;
    let mut labels = vec![0u32; foreground.len()];
    let mut count = 0u32;
    let mut stack = Vec::new();
    for start in 0..foreground.len() {
        if !foreground[start] || labels[start] != 0 {
            continue;
        }
        count = count.checked_add(1).ok_or(InstanceError::TooManyLabels {
            count: u32::MAX as usize + 1,
        })?;
        labels[start] = count;
        stack.push(start);
        while let Some(p) = stack.pop() {
            connectivity.for_each_neighbor(p, height, width, |q| {
                if foreground[q] && labels[q] == 0 {
                    labels[q] = count;
                    stack.push(q);
                }
            });
        }
    }
    Ok(Components { labels, count })
}

/// Renumbers an arbitrary label image (ids need not be contiguous) to
/// `1..=n` in raster order of each id's first pixel; 0 stays 0.
///
/// Note that this keeps ids as given: two separate regions carrying the same
/// id stay one object. Errors: wrong buffer length.
pub fn relabel_sequential(labels: &[u32], height: usize, width: usize) -> Result<Components> {
    expect_len("labels", labels.len(), &[height, width])?;
    let mut map: HashMap<u32, u32> = HashMap::new();
    let mut out = Vec::with_capacity(labels.len());
    for &id in labels {
        if id == 0 {
            out.push(0);
            continue;
        }
        // At most `u32::MAX` nonzero ids exist, so `len + 1` fits in u32.
        let next = map.len() as u32 + 1;
        out.push(*map.entry(id).or_insert(next));
    }
    Ok(Components {
        labels: out,
        count: map.len() as u32,
    })
}

/// Removes every object of `labels` with fewer than `min_size` pixels (sets
/// it to 0) and renumbers the survivors `1..=n` in raster order of their
/// first pixel. An object is an id, not a connected region.
///
/// Errors: wrong buffer length.
pub fn remove_small_objects(
    labels: &[u32],
    height: usize,
    width: usize,
    min_size: usize,
) -> Result<Components> {
    expect_len("labels", labels.len(), &[height, width])?;
    let mut sizes: HashMap<u32, usize> = HashMap::new();
    for &id in labels.iter().filter(|&&id| id != 0) {
        *sizes.entry(id).or_insert(0) += 1;
    }
    let kept: Vec<u32> = labels
        .iter()
        .map(|&id| match sizes.get(&id) {
            Some(&n) if n >= min_size => id,
            _ => 0,
        })
        .collect();
    relabel_sequential(&kept, height, width)
}

/// Connected components of `foreground` with fewer than `min_size` pixels
/// removed, the rest numbered `1..=n` in raster order of their first pixel.
///
/// Errors: wrong buffer length.
pub fn label_components_min_size(
    foreground: &[bool],
    height: usize,
    width: usize,
    connectivity: Connectivity,
    min_size: usize,
) -> Result<Components> {
    let components = label_components(foreground, height, width, connectivity)?;
    remove_small_objects(&components.labels, height, width, min_size)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses a picture: `#` is foreground, `.` background.
    fn picture(rows: &[&str]) -> (Vec<bool>, usize, usize) {
        let w = rows[0].len();
        let mask = rows
            .iter()
            .flat_map(|r| r.chars().map(|c| c == '#'))
            .collect();
        (mask, rows.len(), w)
    }

    const DIAGONAL: [&str; 5] = [
        "##...#", //
        "##..#.", //
        "......", //
        ".#....", //
        "..#..#", //
    ];

    #[test]
    fn eight_connectivity_joins_diagonals() {
        let (mask, h, w) = picture(&DIAGONAL);
        let c = label_components(&mask, h, w, Connectivity::Eight).unwrap();
        assert_eq!(c.count, 4);
        #[rustfmt::skip]
        let expected = vec![
            1, 1, 0, 0, 0, 2,
            1, 1, 0, 0, 2, 0,
            0, 0, 0, 0, 0, 0,
            0, 3, 0, 0, 0, 0,
            0, 0, 3, 0, 0, 4,
        ];
        assert_eq!(c.labels, expected);
    }

    #[test]
    fn four_connectivity_splits_diagonals() {
        let (mask, h, w) = picture(&DIAGONAL);
        let c = label_components(&mask, h, w, Connectivity::Four).unwrap();
        assert_eq!(c.count, 6);
        #[rustfmt::skip]
        let expected = vec![
            1, 1, 0, 0, 0, 2,
            1, 1, 0, 0, 3, 0,
            0, 0, 0, 0, 0, 0,
            0, 4, 0, 0, 0, 0,
            0, 0, 5, 0, 0, 6,
        ];
        assert_eq!(c.labels, expected);
    }

    #[test]
    fn raster_order_is_by_first_pixel() {
        // The U-shaped object starts at (0, 0), the dot at (0, 2): U is 1 even
        // though most of it lies below the dot.
        let (mask, h, w) = picture(&["#.#.#", "#...#", "#####"]);
        let c = label_components(&mask, h, w, Connectivity::Four).unwrap();
        assert_eq!(c.count, 2);
        assert_eq!(c.labels[0], 1);
        assert_eq!(c.labels[2], 2);
        assert_eq!(c.labels[4], 1);
    }

    #[test]
    fn empty_and_full_images() {
        let c = label_components(&[false; 6], 2, 3, Connectivity::Eight).unwrap();
        assert_eq!((c.count, c.labels), (0, vec![0; 6]));
        let c = label_components(&[true; 6], 2, 3, Connectivity::Four).unwrap();
        assert_eq!((c.count, c.labels), (1, vec![1; 6]));
        let c = label_components(&[], 0, 0, Connectivity::Four).unwrap();
        assert_eq!(c.count, 0);
    }

    #[test]
    fn wrong_length_is_an_error() {
        assert!(label_components(&[true; 5], 2, 3, Connectivity::Eight).is_err());
        assert!(remove_small_objects(&[1; 5], 2, 3, 1).is_err());
    }

    #[test]
    fn small_components_are_removed_and_relabelled() {
        let (mask, h, w) = picture(&DIAGONAL);
        // Sizes under 8-connectivity: 4, 2, 2, 1.
        let c = label_components_min_size(&mask, h, w, Connectivity::Eight, 2).unwrap();
        assert_eq!(c.count, 3);
        assert_eq!(c.labels[29], 0); // the single pixel at (4, 5)
        assert_eq!(c.labels[19], 3); // (3, 1) was 3 and stays 3
        let c = label_components_min_size(&mask, h, w, Connectivity::Eight, 3).unwrap();
        assert_eq!(c.count, 1);
        assert_eq!(c.labels.iter().filter(|&&l| l == 1).count(), 4);
        let c = label_components_min_size(&mask, h, w, Connectivity::Eight, 0).unwrap();
        assert_eq!(c.count, 4);
    }

    #[test]
    fn relabel_makes_ids_contiguous_in_raster_order() {
        let labels = [0, 70, 70, 5, 0, 9, 5, 0];
        let c = relabel_sequential(&labels, 2, 4).unwrap();
        assert_eq!(c.labels, vec![0, 1, 1, 2, 0, 3, 2, 0]);
        assert_eq!(c.count, 3);
    }
}
