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
            DataSource::Folder { dir: "no-such-folder".into(), images: None }
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
    let (accepted, sampled) = (AtomicUsize::new(0), AtomicUsize::new(0));
    runner
        .run(&run_config(), |config| {
            if config.validate().is_err() {
                return Ok(());
            }
            accepted.fetch_add(1, Ordering::Relaxed);
            let training = config.training().unwrap();
            let (size, synthetic) = match training.data {
                DataSource::Synthetic { samples, size } => {
                    let data = SyntheticDataset::new(samples, size, config.model.num_classes, 1, 7)
                        .unwrap();
                    prop_assert_eq!(data.len(), samples);
                    (size, Some(data))
                }
                DataSource::Folder { .. } => (config.preprocess.resize.unwrap_or(64), None),
            };
            // Images the network takes have the estimate (saturating) every
            // run is checked against; the others are an error before it.
            if config.model.output_shape([1, 1, size, size]).is_err() {
                return Ok(());
            }
            let estimate = training_bytes(&config.model, training.batch_size, [size, size]);
            prop_assert!(estimate.is_ok());
            // A sample (what a run allocates before its first step) fits
            // inside the estimate; made where it is quick to make.
            if let (Ok(estimate), Some(data)) = (estimate, synthetic)
                && size <= 1024
            {
                let sample = data.get(0).unwrap();
                let bytes = 4 * sample.image.len()
                    + sample.mask.len()
                    + 4 * sample.labels.as_ref().map_or(0, Vec::len);
                prop_assert!(
                    bytes as u64 <= estimate,
                    "a sample of {} bytes, estimate {}",
                    bytes,
                    estimate
                );
                sampled.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        })
        .unwrap();
    let (accepted, sampled) = (accepted.into_inner(), sampled.into_inner());
    assert!(
        accepted >= 100 && sampled >= 20,
        "only {accepted} of 3000 configurations accepted, {sampled} sampled"
    );
}

/// An image of `width x height` with `kind` pixels (gray, gray + alpha, RGB,
/// RGBA; 8 or 16 bits), encoded as PNG.
fn png(kind: u8, sixteen: bool, width: u32, height: u32, seed: u8) -> Vec<u8> {
    encode(pixels(kind, sixteen, width, height, seed), ImageFormat::Png)
}

fn pixels(kind: u8, sixteen: bool, width: u32, height: u32, seed: u8) -> DynamicImage {
    let v8 = move |x: u32, y: u32| (x.wrapping_mul(31) ^ y.wrapping_mul(17)) as u8 ^ seed;
    let v16 = move |x: u32, y: u32| u16::from(v8(x, y)) * 257;
    match (kind % 4, sixteen) {
        (0, false) => ImageBuffer::from_fn(width, height, |x, y| Luma([v8(x, y) % 3])).into(),
        (0, true) => ImageBuffer::from_fn(width, height, |x, y| Luma([v16(x, y)])).into(),
        (1, false) => ImageBuffer::from_fn(width, height, |x, y| LumaA([v8(x, y) % 2, 255])).into(),
        (1, true) => ImageBuffer::from_fn(width, height, |x, y| LumaA([v16(x, y), 65535])).into(),
        (2, false) => ImageBuffer::from_fn(width, height, |x, y| Rgb([v8(x, y); 3])).into(),
        (2, true) => ImageBuffer::from_fn(width, height, |x, y| Rgb([v16(x, y); 3])).into(),
        (_, false) => ImageBuffer::from_fn(width, height, |x, y| Rgba([v8(x, y); 4])).into(),
        (_, true) => ImageBuffer::from_fn(width, height, |x, y| Rgba([v16(x, y); 4])).into(),
    }
}

fn encode(image: DynamicImage, format: ImageFormat) -> Vec<u8> {
    let image = match format {
        // JPEG holds 8-bit gray or RGB only.
        ImageFormat::Jpeg if image.color().has_color() => image.to_rgb8().into(),
        ImageFormat::Jpeg => image.to_luma8().into(),
        _ => image,
    };
    let mut bytes = Vec::new();
    image
        .write_to(&mut Cursor::new(&mut bytes), format)
        .unwrap();
    bytes
}

/// An indexed (palette) PNG of `bits` bits per pixel, as Pascal VOC and
/// labelling tools write masks: index `(x + y) % colours` at each pixel.
fn palette_png(bits: u8, width: u32, height: u32) -> Vec<u8> {
    let depth = match bits {
        1 => png::BitDepth::One,
        2 => png::BitDepth::Two,
        4 => png::BitDepth::Four,
        _ => png::BitDepth::Eight,
    };
    let bits = u32::from(depth as u8);
    let colours = 1u32 << bits.min(3);
    let row_bytes = (width * bits).div_ceil(8) as usize;
    let mut data = vec![0u8; row_bytes * height as usize];
    for y in 0..height {
        for x in 0..width {
            let index = (x + y) % colours;
            let bit = (x * bits) as usize;
            let shift = 8 - bits as usize - bit % 8;
            data[y as usize * row_bytes + bit / 8] |= (index as u8) << shift;
        }
    }
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, width, height);
    encoder.set_color(png::ColorType::Indexed);
    encoder.set_depth(depth);
    encoder.set_palette(
        (0..colours * 3)
            .map(|v| (v * 37) as u8)
            .collect::<Vec<u8>>(),
    );
    let mut writer = encoder.write_header().unwrap();
    writer.write_image_data(&data).unwrap();
    writer.finish().unwrap();
    bytes
}

/// How a test file is encoded.
#[derive(Debug, Clone, Copy)]
enum Encoding {
    /// PNG of a pixel kind (see [`pixels`]), 8 or 16 bits.
    Png { kind: u8, sixteen: bool },
    /// Palette PNG of 1, 2, 4 or 8 bits.
    Palette { bits: u8 },
    /// Baseline JPEG of a pixel kind.
    Jpeg { kind: u8 },
    /// TIFF of a pixel kind (gray + alpha as gray), 8 or 16 bits.
    Tiff { kind: u8, sixteen: bool },
}

impl Encoding {
    fn bytes(self, width: u32, height: u32, seed: u8) -> Vec<u8> {
        match self {
            Encoding::Png { kind, sixteen } => png(kind, sixteen, width, height, seed),
            Encoding::Palette { bits } => palette_png(bits, width, height),
            Encoding::Jpeg { kind } => {
                encode(pixels(kind, false, width, height, seed), ImageFormat::Jpeg)
            }
            Encoding::Tiff { kind, sixteen } => {
                let kind = if kind % 4 == 1 { 0 } else { kind };
                encode(
                    pixels(kind, sixteen, width, height, seed),
                    ImageFormat::Tiff,
                )
            }
        }
    }
}

fn encoding() -> impl Strategy<Value = Encoding> {
    prop_oneof![
        6 => (0u8..4, any::<bool>()).prop_map(|(kind, sixteen)| Encoding::Png { kind, sixteen }),
        2 => prop_oneof![Just(1u8), Just(2), Just(4), Just(8)].prop_map(|bits| Encoding::Palette { bits }),
        1 => (0u8..4).prop_map(|kind| Encoding::Jpeg { kind }),
        2 => (0u8..4, any::<bool>()).prop_map(|(kind, sixteen)| Encoding::Tiff { kind, sixteen }),
    ]
}

/// Image sides: mostly small, sometimes one side long (up to 4096) with
/// the other short, so that large files stay quick to make.
fn sides() -> impl Strategy<Value = (u32, u32)> {
    prop_oneof![
        30 => (1u32..48, 1u32..48),
        1 => (1u32..=4096, 1u32..4),
        1 => (1u32..4, 1u32..=4096),
    ]
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

/// One case of [`files_are_errors_or_valid_samples`].
#[derive(Debug)]
struct FileCase {
    image: Encoding,
    mask: Encoding,
    size: (u32, u32),
    /// The mask's width when it differs from the image's.
    mask_width: Option<u32>,
    cut: Option<f64>,
    flips: Vec<(f64, u8)>,
    mask_cut: Option<f64>,
    channels: usize,
    classes: usize,
    preprocess: Preprocess,
}

prop_compose! {
    fn file_case()(
        image in encoding(),
        // Class masks often, so that many pairs open; any encoding else.
        mask in prop_oneof![4 => Just(Encoding::Png { kind: 0, sixteen: false }), 3 => encoding()],
        size in sides(),
        mask_width in proptest::option::weighted(0.15, 1u32..48),
        cut in proptest::option::weighted(0.2, 0.0f64..1.0),
        flips in prop_oneof![
            2 => Just(Vec::new()),
            1 => proptest::collection::vec((0.0f64..1.0, 1u8..=255), 1..3),
        ],
        mask_cut in proptest::option::weighted(0.15, 0.0f64..1.0),
        channels in prop_oneof![Just(1usize), Just(3)], classes in 2usize..5,
        resize in proptest::option::of(1usize..40), normalize in normalize(),
        instances in proptest::bool::weighted(0.2),
    ) -> FileCase {
        let masks = if instances { MaskKind::Instances } else { MaskKind::Classes };
        let normalize = normalize.validate().map_or(Normalize::Divide, |()| normalize);
        FileCase {
            image, mask, size, mask_width, cut, flips, mask_cut, channels, classes,
            preprocess: Preprocess { resize, normalize, masks },
        }
    }
}

/// Any pair of image and mask files, whole or damaged, of any encoding,
/// pixel kind and size, opens as a dataset of valid samples or is an error;
/// and enough of them are valid that the check means something.
#[test]
fn files_are_errors_or_valid_samples() {
    let mut runner = TestRunner::new(ProptestConfig::with_cases(2000));
    let accepted = AtomicUsize::new(0);
    runner
        .run(&file_case(), |case| {
            let (width, height) = case.size;
            let dir = scratch();
            let image = damage(case.image.bytes(width, height, 1), case.cut, &case.flips);
            write(&dir.join("images/a.png"), &image);
            let mask_width = case.mask_width.unwrap_or(width);
            let mask = damage(case.mask.bytes(mask_width, height, 2), case.mask_cut, &[]);
            write(&dir.join("masks/a.png"), &mask);
            let opened =
                FolderDataset::open_with(&dir, case.channels, case.classes, &case.preprocess);
            let _ = std::fs::remove_dir_all(&dir);
            let Ok(data) = opened else { return Ok(()) };
            accepted.fetch_add(1, Ordering::Relaxed);
            let sample = data.get(0).unwrap();
            let side = case
                .preprocess
                .resize
                .map_or([height as usize, width as usize], |s| [s, s]);
            prop_assert_eq!([sample.height, sample.width], side);
            prop_assert_eq!(sample.image.len(), case.channels * side[0] * side[1]);
            prop_assert_eq!(sample.mask.len(), side[0] * side[1]);
            prop_assert!(sample.mask.iter().all(|&c| (c as usize) < case.classes));
            prop_assert!(sample.image.iter().all(|v| v.is_finite()));
            Ok(())
        })
        .unwrap();
    let accepted = accepted.into_inner();
    eprintln!("{accepted} of 2000 file pairs opened");
    assert!(accepted >= 100, "only {accepted} of 2000 file pairs opened");
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
    // The error of a dataset of one image and its mask.
    let error = |image: &[u8], mask: &[u8]| {
        let dir = scratch();
        write(&dir.join("images/a.png"), image);
        write(&dir.join("masks/a.png"), mask);
        let err = FolderDataset::open(&dir, 1, 2, None)
            .unwrap_err()
            .to_string();
        let _ = std::fs::remove_dir_all(&dir);
        err
    };
    let err = error(&bytes, &bytes);
    assert!(
        err.contains("images/a.png") && err.contains("cannot read image"),
        "{err}"
    );
    // The same header on a mask whose image is fine: refused, naming the mask.
    let err = error(&png(0, false, 4, 4, 0), &bytes);
    assert!(
        err.contains("masks/a.png") && err.contains("4 GiB limit"),
        "{err}"
    );
}
