//! Image algorithms of nuclei segmentation, in pure Rust: the exact
//! Euclidean distance transform, connected components, marker watershed,
//! instance matching and the DSB2018 score, the U-Net paper's loss weight
//! map, and elastic and intensity augmentation.
//!
//! Conventions: images are row-major buffers with explicit `height`, `width`;
//! multi-channel images are planar `[channels, height, width]` `f32`. Instance
//! labels are `&[u32]` (0 = background, one id per nucleus, ids need not be
//! contiguous); semantic masks are `&[u8]` class indices. Every function
//! checks buffer lengths against the given shape (with overflow-checked
//! products) and returns [`InstanceError`] instead of panicking.
//!
//! | module | content |
//! |---|---|
//! | `distance.rs` | exact Euclidean distance transform (Felzenszwalb & Huttenlocher) |
//! | `weight_map.rs` | U-Net loss weight map (class balance + border term) |
//! | `components.rs` | connected components, small-object removal, relabelling |
//! | `watershed.rs` | h-maxima marker watershed splitting touching nuclei |
//! | `matching.rs` | IoU matching, precision/recall/F1, DSB2018 mean AP |
//! | `elastic.rs` | elastic deformation (bicubic field, bicubic/nearest warps) |
//! | `intensity.rs` | brightness/contrast/gamma/noise augmentation |
//! | `gaussian.rs` | Box-Muller normal samples |
//! | `error.rs` | [`InstanceError`] and checked sizes |
//!
//! ```
//! use imaging::{
//!     BorderWeight, WatershedConfig, mean_ap, split_instances, weight_map,
//! };
//! let (h, w) = (4, 9);
//! #[rustfmt::skip]
//! let labels: Vec<u32> = vec![
//!     0, 7, 7, 7, 0, 3, 3, 3, 0,
//!     0, 7, 7, 7, 0, 3, 3, 3, 0,
//!     0, 7, 7, 7, 0, 3, 3, 3, 0,
//!     0, 0, 0, 0, 0, 0, 0, 0, 0,
//! ];
//! let weights = weight_map(&labels, h, w, &BorderWeight::default())?;
//! assert!(weights[4] > weights[0]); // the gap between the nuclei weighs more
//! let foreground: Vec<bool> = labels.iter().map(|&l| l != 0).collect();
//! let config = WatershedConfig { min_size: 1, ..WatershedConfig::default() };
//! let split = split_instances(&foreground, h, w, &config)?;
//! assert_eq!(split.iter().max(), Some(&2));
//! assert_eq!(mean_ap(&labels, &split, h, w)?, 1.0);
//! # Ok::<(), imaging::InstanceError>(())
//! ```

#![warn(missing_docs)]

mod components;
mod distance;
mod elastic;
mod error;
mod gaussian;
mod intensity;
mod matching;
mod watershed;
mod weight_map;

pub use components::{
    Components, Connectivity, label_components, label_components_min_size, relabel_sequential,
    remove_small_objects,
};
pub use distance::{distance_to, inside_distance};
pub use elastic::{ElasticConfig, Field, displacement_field, warp_image, warp_nearest};
pub use error::{InstanceError, Result};
pub use gaussian::{fill_normal, standard_normal_pair};
pub use intensity::{AppliedIntensity, IntensityConfig, Jitter, augment_intensity};
pub use matching::{DSB_THRESHOLDS, MatchStats, Overlap, Overlaps, matching, mean_ap, overlaps};
pub use watershed::{WatershedConfig, h_maxima_markers, split_instances};
pub use weight_map::{BORDER_TRUNCATION, BorderWeight, class_balance_weights, weight_map};
