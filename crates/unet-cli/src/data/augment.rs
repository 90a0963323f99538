//! Training-time augmentation: flips and 90-degree rotations, applied to the
//! image and its mask alike.

use rand::RngExt;

use super::Sample;

/// A random element of the dihedral group: horizontal flip, vertical flip, and
/// (for square samples) a transpose, each with probability one half. Together
/// they give all eight flips and 90-degree rotations. Image and mask move together.
pub fn augment(sample: &Sample, rng: &mut impl rand::Rng) -> Sample {
    let (flip_x, flip_y) = (rng.random_bool(0.5), rng.random_bool(0.5));
    let transpose = sample.height == sample.width && rng.random_bool(0.5);
    let (h, w) = (sample.height, sample.width);
    // The source position of output pixel (y, x).
    let source = |y: usize, x: usize| {
        let (y, x) = if transpose { (x, y) } else { (y, x) };
        let y = if flip_y { h - 1 - y } else { y };
        let x = if flip_x { w - 1 - x } else { x };
        y * w + x
    };
    let plane = h * w;
    let mut image = vec![0f32; sample.image.len()];
    let mut mask = vec![0u8; plane];
    for y in 0..h {
        for x in 0..w {
            let from = source(y, x);
            mask[y * w + x] = sample.mask[from];
            for c in 0..sample.channels {
                image[c * plane + y * w + x] = sample.image[c * plane + from];
            }
        }
    }
    Sample {
        image,
        mask,
        ..sample.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn image_and_mask_move_together() {
        // Each pixel's mask value encodes its image value, so any mismatch shows.
        let (h, w) = (5, 5);
        let sample = Sample {
            image: (0..2 * h * w).map(|i| (i % (h * w)) as f32).collect(),
            mask: (0..h * w).map(|i| i as u8).collect(),
            channels: 2,
            height: h,
            width: w,
        };
        let mut rng = StdRng::seed_from_u64(5);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..64 {
            let out = augment(&sample, &mut rng);
            for p in 0..h * w {
                assert_eq!(out.image[p], out.mask[p] as f32);
                assert_eq!(out.image[h * w + p], out.mask[p] as f32);
            }
            let mut sorted = out.mask.clone();
            sorted.sort();
            assert_eq!(sorted, sample.mask, "a permutation of the pixels");
            seen.insert(out.mask);
        }
        assert_eq!(seen.len(), 8, "all eight flips and rotations occur");
    }
}
