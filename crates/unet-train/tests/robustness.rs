//! Whatever values and files a user brings, the data layer and the
//! configuration checks answer with an error or a usable dataset: never a
//! panic, never an allocation beyond what the checks allow.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use burn::data::dataset::Dataset;
use image::{DynamicImage, ImageBuffer, ImageFormat, Luma, LumaA, Rgb, Rgba};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use unet::{UNetConfig, UNetPadding};
use unet_train::config::{DataSource, Preprocess, RunConfig, TrainingConfig};
use unet_train::data::{FolderDataset, MAX_DECODED_BYTES, MaskKind, Normalize, SyntheticDataset};
use unet_train::memory::training_bytes;

fn scratch() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("unet-robust-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("images")).unwrap();
    std::fs::create_dir_all(dir.join("masks")).unwrap();
    dir
}

/// Sizes a user may type: mostly ordinary ones in `usual`, and the extremes.
fn size(usual: std::ops::Range<usize>) -> impl Strategy<Value = usize> {
    prop_oneof![
        40 => usual,
        1 => Just(0usize),
        1 => Just(1),
        1 => Just(usize::MAX),
        1 => Just(1 << 32),
        1 => Just((1 << 32) + 16),
        1 => 1usize..70_000,
        1 => any::<usize>(),
    ]
}

fn normalize() -> impl Strategy<Value = Normalize> {
    prop_oneof![
        Just(Normalize::Divide),
        Just(Normalize::ZScore),
        (-10.0f64..110.0, -10.0f64..110.0)
            .prop_map(|(low, high)| Normalize::Percentile { low, high }),
    ]
}

prop_compose! {
    fn run_config()(
        epochs in size(1..50), batch in size(1..64), samples in size(2..2000), side in size(8..512),
        classes in size(2..8), base_width in size(1..64), depth in 0usize..8, growth in 0usize..4,
        lr in prop_oneof![8 => 1e-5f64..1.0, 1 => Just(0.0), 1 => Just(f64::NAN), 1 => -1.0f64..2.0],
        val_fraction in prop_oneof![8 => 0.05f64..0.95, 1 => Just(0.0), 1 => Just(f64::NAN), 1 => -1.0f64..2.0],
        dilation in size(1..8), dropout in prop_oneof![8 => 0.0f64..0.9, 1 => -1.0f64..2.0], valid in any::<bool>(),
        resize in proptest::option::of(size(1..512)), normalize in normalize(), instances in any::<bool>(),
        folder in any::<bool>(),
    ) -> RunConfig {
        let model = UNetConfig::new(1, classes)
            .with_base_width(base_width)
            .with_depth(depth)
            .with_growth(growth)
            .with_bottleneck_dilations(vec![dilation])
            .with_dropout(dropout)
            .with_padding(if valid { UNetPadding::Valid } else { UNetPadding::Same });
        let data = if folder {
            DataSource::Folder { dir: "no-such-folder".into() }
        } else {
            DataSource::Synthetic { samples, size: side }
        };
        let training = TrainingConfig {
            data, epochs, batch_size: batch, lr, val_fraction, ..TrainingConfig::synthetic()
        };
        let masks = if instances { MaskKind::Instances } else { MaskKind::Classes };
        RunConfig::trained(model, Preprocess { resize, normalize, masks }, training)
    }
}

/// Any configuration is refused with an error or accepted; an accepted
/// one has a memory estimate, and its synthetic data can be made. Random
/// values are mostly ordinary, so that many configurations get accepted.
#[test]
fn configurations_are_errors_or_usable() {
    let mut runner = TestRunner::new(ProptestConfig::with_cases(3000));
    let accepted = AtomicUsize::new(0);
    runner
        .run(&run_config(), |config| {
            if config.validate().is_err() {
                return Ok(());
            }
            accepted.fetch_add(1, Ordering::Relaxed);
            let training = config.training().unwrap();
            let size = match training.data {
                DataSource::Synthetic { samples, size } => {
                    let data = SyntheticDataset::new(samples, size, config.model.num_classes, 1, 7)
                        .unwrap();
                    prop_assert_eq!(data.len(), samples);
                    size
                }
                DataSource::Folder { .. } => config.preprocess.resize.unwrap_or(64),
            };
            // Images the network takes have the estimate (saturating) every
            // run is checked against; the others are an error before it.
            if config.model.output_shape([1, 1, size, size]).is_ok() {
                prop_assert!(
                    training_bytes(&config.model, training.batch_size, [size, size]).is_ok()
                );
            }
            Ok(())
        })
        .unwrap();
    let accepted = accepted.into_inner();
    assert!(
        accepted >= 100,
        "only {accepted} of 3000 configurations accepted"
    );
}

/// An image of `width x height` with `kind` pixels (gray, gray + alpha, RGB,
/// RGBA; 8 or 16 bits), encoded as PNG.
fn png(kind: u8, sixteen: bool, width: u32, height: u32, seed: u8) -> Vec<u8> {
    let v8 = move |x: u32, y: u32| (x.wrapping_mul(31) ^ y.wrapping_mul(17)) as u8 ^ seed;
    let v16 = move |x: u32, y: u32| u16::from(v8(x, y)) * 257;
    let image: DynamicImage = match (kind % 4, sixteen) {
        (0, false) => ImageBuffer::from_fn(width, height, |x, y| Luma([v8(x, y) % 3])).into(),
        (0, true) => ImageBuffer::from_fn(width, height, |x, y| Luma([v16(x, y)])).into(),
        (1, false) => ImageBuffer::from_fn(width, height, |x, y| LumaA([v8(x, y) % 2, 255])).into(),
        (1, true) => ImageBuffer::from_fn(width, height, |x, y| LumaA([v16(x, y), 65535])).into(),
        (2, false) => ImageBuffer::from_fn(width, height, |x, y| Rgb([v8(x, y); 3])).into(),
        (2, true) => ImageBuffer::from_fn(width, height, |x, y| Rgb([v16(x, y); 3])).into(),
        (_, false) => ImageBuffer::from_fn(width, height, |x, y| Rgba([v8(x, y); 4])).into(),
        (_, true) => ImageBuffer::from_fn(width, height, |x, y| Rgba([v16(x, y); 4])).into(),
    };
    let mut bytes = Vec::new();
    image
        .write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png)
        .unwrap();
    bytes
}

/// `bytes` cut at `cut` (a share of the length) and with `flips` bytes changed.
fn damage(mut bytes: Vec<u8>, cut: Option<f64>, flips: &[(f64, u8)]) -> Vec<u8> {
    for &(at, value) in flips {
        if !bytes.is_empty() {
            let i = ((bytes.len() - 1) as f64 * at) as usize;
            bytes[i] ^= value;
        }
    }
    if let Some(cut) = cut {
        bytes.truncate((bytes.len() as f64 * cut) as usize);
    }
    bytes
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Any pair of image and mask files, whole or damaged, of any pixel
    /// kind and size, opens as a dataset of valid samples or is an error.
    #[test]
    fn files_are_errors_or_valid_samples(
        image_kind in 0u8..4, image_sixteen in any::<bool>(),
        mask_kind in 0u8..4, mask_sixteen in any::<bool>(),
        width in 1u32..48, height in 1u32..48, mask_width in 1u32..48,
        cut in proptest::option::of(0.0f64..1.0),
        flips in proptest::collection::vec((0.0f64..1.0, 1u8..=255), 0..3),
        mask_cut in proptest::option::of(0.0f64..1.0),
        channels in prop_oneof![Just(1usize), Just(3)], classes in 2usize..5,
        resize in proptest::option::of(1usize..40), normalize in normalize(),
        instances in any::<bool>(),
    ) {
        let dir = scratch();
        write(&dir.join("images/a.png"), &damage(png(image_kind, image_sixteen, width, height, 1), cut, &flips));
        let mask_width = if mask_width % 2 == 0 { width } else { mask_width };
        write(&dir.join("masks/a.png"), &damage(png(mask_kind, mask_sixteen, mask_width, height, 2), mask_cut, &[]));
        let masks = if instances { MaskKind::Instances } else { MaskKind::Classes };
        let preprocess = Preprocess { resize, normalize: normalize.validate().map_or(Normalize::Divide, |()| normalize), masks };
        let opened = FolderDataset::open_with(&dir, channels, classes, &preprocess);
        let _ = std::fs::remove_dir_all(&dir);
        if let Ok(data) = opened {
            let sample = data.get(0).unwrap();
            let side = resize.map_or([height as usize, width as usize], |s| [s, s]);
            prop_assert_eq!([sample.height, sample.width], side);
            prop_assert_eq!(sample.image.len(), channels * side[0] * side[1]);
            prop_assert_eq!(sample.mask.len(), side[0] * side[1]);
            prop_assert!(sample.mask.iter().all(|&c| (c as usize) < classes));
            prop_assert!(sample.image.iter().all(|v| v.is_finite()));
        }
    }
}

/// A PNG whose header claims a huge image is refused by the decoder's
/// memory limit, before it allocates the pixels.
#[test]
fn a_huge_declared_size_is_an_error_not_an_allocation() {
    let mut bytes = png(0, false, 4, 4, 0);
    // After the 8-byte signature, the IHDR chunk: length (4), "IHDR" (4),
    // width (4) at byte 16, height (4) at byte 20, ...; its CRC after 13 bytes.
    let (width, height) = (16, 20);
    let side = 200_000u32.to_be_bytes();
    bytes[width..width + 4].copy_from_slice(&side);
    bytes[height..height + 4].copy_from_slice(&side);
    let crc = crc32fast::hash(&bytes[12..12 + 4 + 13]);
    bytes[29..33].copy_from_slice(&crc.to_be_bytes());
    let needed = 200_000u64 * 200_000;
    assert!(needed > MAX_DECODED_BYTES as u64);
    let dir = scratch();
    write(&dir.join("images/a.png"), &bytes);
    write(&dir.join("masks/a.png"), &bytes);
    let err = FolderDataset::open(&dir, 1, 2, None)
        .unwrap_err()
        .to_string();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        err.contains("images/a.png") && err.contains("cannot read image"),
        "{err}"
    );
}
