//! Training-time augmentation: flips and 90-degree rotations, the U-Net
//! paper's elastic deformation, and intensity changes. Image, mask and
//! instance labels move together; masks and labels are resampled by nearest
//! neighbour, so classes and ids never blend. Every draw comes from the
//! generator it is given, seeded per sample and epoch by the loader, so a
//! resumed run sees what an uninterrupted one sees.

use imaging::{
    ElasticConfig, IntensityConfig, augment_intensity, displacement_field, warp_image, warp_nearest,
};
use rand::RngExt;
use serde::{Deserialize, Serialize};

use super::{DataError, Sample};

/// Which augmentations a training run applies, in this order.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Augmentation {
    /// Random flips and (square samples) 90-degree rotations.
    pub flips: bool,
    /// Elastic deformation: a random displacement on a coarse grid,
    /// interpolated bicubically.
    #[serde(default)]
    pub elastic: Option<ElasticConfig>,
    /// Brightness, contrast, gamma and noise.
    #[serde(default)]
    pub intensity: Option<IntensityConfig>,
}

impl Augmentation {
    /// Flips and rotations only.
    pub fn flips() -> Self {
        Self {
            flips: true,
            ..Self::default()
        }
    }

    /// Whether anything is applied.
    pub fn is_on(&self) -> bool {
        self.flips || self.elastic.is_some() || self.intensity.is_some()
    }

    /// The augmented sample.
    pub fn apply(&self, sample: &Sample, rng: &mut impl rand::Rng) -> Result<Sample, DataError> {
        let mut out = if self.flips {
            augment(sample, rng)
        } else {
            sample.clone()
        };
        let invalid = |err: imaging::InstanceError| DataError::Augment {
            reason: err.to_string(),
        };
        if let Some(elastic) = &self.elastic {
            let field = displacement_field(out.height, out.width, elastic, rng).map_err(invalid)?;
            out.image = warp_image(&field, &out.image, out.channels).map_err(invalid)?;
            out.mask = warp_nearest(&field, &out.mask).map_err(invalid)?;
            if let Some(labels) = &out.labels {
                out.labels = Some(warp_nearest(&field, labels).map_err(invalid)?);
            }
        }
        if let Some(intensity) = &self.intensity {
            augment_intensity(
                &mut out.image,
                out.channels,
                out.height,
                out.width,
                intensity,
                rng,
            )
            .map_err(invalid)?;
        }
        Ok(out)
    }
}

/// A random element of the dihedral group: horizontal flip, vertical flip, and
/// (for square samples) a transpose, each with probability one half. Together
/// they give all eight flips and 90-degree rotations. Image, mask and labels
/// move together.
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
    let moved =
        |values: &[u8]| -> Vec<u8> { (0..plane).map(|p| values[source(p / w, p % w)]).collect() };
    let mut image = vec![0f32; sample.image.len()];
    for c in 0..sample.channels {
        for p in 0..plane {
            image[c * plane + p] = sample.image[c * plane + source(p / w, p % w)];
        }
    }
    let labels = sample
        .labels
        .as_ref()
        .map(|labels| (0..plane).map(|p| labels[source(p / w, p % w)]).collect());
    Sample {
        image,
        mask: moved(&sample.mask),
        labels,
        ..sample.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    /// Each pixel's mask value and label encode its image value, so any mismatch shows.
    fn encoded(h: usize, w: usize) -> Sample {
        Sample {
            image: (0..2 * h * w).map(|i| (i % (h * w)) as f32).collect(),
            mask: (0..h * w).map(|i| i as u8).collect(),
            labels: Some((0..h * w).map(|i| i as u32 + 1000).collect()),
            channels: 2,
            height: h,
            width: w,
        }
    }

    #[test]
    fn image_mask_and_labels_move_together() {
        let (h, w) = (5, 5);
        let sample = encoded(h, w);
        let mut rng = StdRng::seed_from_u64(5);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..64 {
            let out = augment(&sample, &mut rng);
            let labels = out.labels.as_ref().unwrap();
            for (p, (&class, &label)) in out.mask.iter().zip(labels).enumerate() {
                assert_eq!(out.image[p], class as f32);
                assert_eq!(out.image[h * w + p], class as f32);
                assert_eq!(label, class as u32 + 1000);
            }
            let mut sorted = out.mask.clone();
            sorted.sort();
            assert_eq!(sorted, sample.mask, "a permutation of the pixels");
            seen.insert(out.mask);
        }
        assert_eq!(seen.len(), 8, "all eight flips and rotations occur");
    }

    #[test]
    fn elastic_deformation_keeps_ids_and_classes_apart() {
        let sample = encoded(12, 12);
        let elastic = Augmentation {
            elastic: Some(ElasticConfig::default()),
            ..Augmentation::default()
        };
        let out = elastic
            .apply(&sample, &mut StdRng::seed_from_u64(3))
            .unwrap();
        assert_ne!(out.mask, sample.mask, "a deformation happened");
        let labels = out.labels.unwrap();
        // Nearest neighbour: every label and class is one of the input's, and
        // each pixel's label still belongs with its class.
        for (label, class) in labels.iter().zip(&out.mask) {
            assert_eq!(*label, *class as u32 + 1000);
        }
        // The same seed, the same deformation.
        let again = elastic
            .apply(&sample, &mut StdRng::seed_from_u64(3))
            .unwrap();
        assert_eq!(again.image, out.image);
    }
}
