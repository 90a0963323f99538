//! Sliding-window prediction against whole-image prediction: exact for a
//! `Valid` network (the overlap-tile strategy), within 1% of pixels near
//! the seams for a `Same` one; test-time augmentation invariant to flips.
//! Automatic layouts within the memory budget and, on a GPU, within what
//! the device holds at once; a window it cannot hold refused by name.

use burn::tensor::Device;
use unet::{UNet, UNetConfig, UNetPadding};
use unet_train::BackendKind;
use unet_train::RunError;
use unet_train::config::{DataSource, Preprocess, RunConfig, TrainingConfig};
use unet_train::data::FolderDataset;
use unet_train::memory::{device_holds, largest_tensor};
use unet_train::model_dir;
use unet_train::precision::Precision;
use unet_train::predict::{
    Blend, INFERENCE_BUDGET, Layout, Planar, Tiler, Tiling, Window, inference_bytes_per_pixel,
    layout,
};
use unet_train::train::{Progress, train};

use burn::data::dataset::Dataset;

const NUCLEI: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/data/nuclei-dsb2018"
);

/// The logits `[classes, h, w]` of `image` (`[channels, h, w]`) cut by `layout`.
fn logits(
    unet: &UNet,
    image: &[f32],
    channels: usize,
    layout: Layout,
    window: Window,
    tta: bool,
    device: &Device,
) -> Vec<f32> {
    let [h, w] = layout.image;
    let classes = unet.config().num_classes;
    let mut out = vec![f32::NAN; classes * h * w];
    let mut sink = |first: usize, rows: &[f32]| {
        let n = rows.len() / (classes * w);
        for c in 0..classes {
            out[(c * h + first) * w..][..n * w].copy_from_slice(&rows[c * n * w..][..n * w]);
        }
    };
    let source = Planar {
        values: image,
        channels,
        size: [h, w],
    };
    Tiler {
        unet,
        layout,
        window,
        tta,
        device,
    }
    .logits(&source, &mut sink, &mut |_, _| {})
    .unwrap();
    assert!(out.iter().all(|v| v.is_finite()), "every pixel written");
    out
}

fn argmax(logits: &[f32], classes: usize) -> Vec<usize> {
    let plane = logits.len() / classes;
    (0..plane)
        .map(|p| {
            (0..classes)
                .max_by(|&a, &b| logits[a * plane + p].total_cmp(&logits[b * plane + p]))
                .unwrap()
        })
        .collect()
}

fn whole(unet: &UNet, size: [usize; 2]) -> (Layout, Window) {
    let layout = Layout::whole(unet, size).unwrap();
    let window = Window {
        tile: layout.input,
        overlap: 0.0,
        blend: Blend::Constant,
        batch: 1,
    };
    (layout, window)
}

/// A `Valid` network's tiles abut exactly: the tiled logits are the whole
/// image's, everywhere.
fn valid_tiles_equal_the_whole_image(backend: BackendKind, size: [usize; 2], tile: usize) {
    let device = backend.device();
    device.seed(3);
    let unet = UNetConfig::new(1, 3)
        .with_depth(2)
        .with_base_width(4)
        .with_padding(UNetPadding::Valid)
        .init(&device);
    let image: Vec<f32> = (0..size[0] * size[1])
        .map(|i| ((i * 7919) % 251) as f32 / 251.0)
        .collect();
    let (layout, window) = whole(&unet, size);
    let reference = logits(&unet, &image, 1, layout, window, false, &device);
    let window = Window {
        tile: [tile; 2],
        overlap: 0.0,
        blend: Blend::Gaussian,
        batch: 2,
    };
    let layout = Layout::new(&unet, size, &window).unwrap();
    assert!(layout.tiles() >= 4, "{layout:?}");
    let tiled = logits(&unet, &image, 1, layout, window, false, &device);
    let worst = reference
        .iter()
        .zip(&tiled)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(worst <= 1e-5, "{backend}: logits differ by {worst}");
    assert_eq!(argmax(&reference, 3), argmax(&tiled, 3), "{backend}");
}

#[test]
fn valid_tiles_equal_the_whole_image_on_flex() {
    valid_tiles_equal_the_whole_image(BackendKind::Flex, [150, 170], 60);
}

#[test]
fn valid_tiles_equal_the_whole_image_on_wgpu() {
    valid_tiles_equal_the_whole_image(BackendKind::Wgpu, [70, 76], 44);
}

/// A 512x512 image of the nuclei tiles (four rows of four, the twelve tiles
/// then the first four again, each mirrored on alternate columns).
fn nuclei_mosaic(data: &FolderDataset) -> Vec<f32> {
    let side = 512;
    let mut image = vec![0f32; side * side];
    for (k, (ty, tx)) in (0..4).flat_map(|y| (0..4).map(move |x| (y, x))).enumerate() {
        let tile = data.get(k % data.len()).unwrap();
        for y in 0..128 {
            for x in 0..128 {
                let sx = if tx % 2 == 1 { 127 - x } else { x };
                image[(ty * 128 + y) * side + tx * 128 + x] = tile.image[y * 128 + sx];
            }
        }
    }
    image
}

/// A small `Same` model trained on the nuclei for a few epochs.
fn nuclei_model(backend: BackendKind, dir: &std::path::Path) -> UNet {
    let config = RunConfig::trained(
        UNetConfig::new(1, 2).with_depth(3).with_base_width(8),
        Preprocess::default(),
        TrainingConfig {
            data: DataSource::Folder {
                dir: NUCLEI.into(),
                images: None,
            },
            epochs: 3,
            epoch_samples: Some(40),
            batch_size: 4,
            backend,
            ..TrainingConfig::synthetic()
        },
    );
    train(&config, dir, false, Progress::Quiet).unwrap();
    model_dir::load(dir, &backend.device()).unwrap().unet
}

/// Distance from `(y, x)` to the nearest edge of a tile (inside the image).
fn to_seam(layout: &Layout, y: usize, x: usize) -> usize {
    let [th, tw] = layout.output;
    let [h, w] = layout.image;
    let edges = |origins: &[usize], tile: usize, size: usize| -> Vec<usize> {
        origins
            .iter()
            .flat_map(|&o| [o, o + tile])
            .filter(|&e| e > 0 && e < size)
            .collect()
    };
    let rows = edges(&layout.rows, th, h);
    let cols = edges(&layout.cols, tw, w);
    let near = |v: usize, edges: &[usize]| {
        edges
            .iter()
            .map(|&e| v.abs_diff(e))
            .min()
            .unwrap_or(usize::MAX)
    };
    near(y, &rows).min(near(x, &cols))
}

/// 128-pixel tiles overlapping by a quarter, Gaussian blending, on a
/// 512x512 image: the tiled argmax agrees with the whole image's on at least
/// 99% of pixels, and most disagreements sit within 16 pixels of a seam.
#[test]
fn same_tiles_agree_with_the_whole_image_on_flex() {
    let backend = BackendKind::Flex;
    let dir = std::env::temp_dir().join(format!("unet-tiling-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let unet = nuclei_model(backend, &dir);
    let device = backend.device();
    let data = FolderDataset::open(NUCLEI, 1, 2, None).unwrap();
    let image = nuclei_mosaic(&data);
    let size = [512, 512];
    let (layout, window) = whole(&unet, size);
    let reference = argmax(&logits(&unet, &image, 1, layout, window, false, &device), 2);
    let window = Window {
        tile: [128; 2],
        overlap: 0.25,
        blend: Blend::Gaussian,
        batch: 4,
    };
    let layout = Layout::new(&unet, size, &window).unwrap();
    assert_eq!(layout.tiles(), 25, "{layout:?}");
    let tiled = argmax(
        &logits(&unet, &image, 1, layout.clone(), window, false, &device),
        2,
    );
    let foreground = reference.iter().filter(|&&c| c == 1).count();
    assert!(
        foreground > 512 * 512 / 20,
        "a model that found nuclei: {foreground} pixels"
    );
    let differ: Vec<usize> = (0..512 * 512)
        .filter(|&p| reference[p] != tiled[p])
        .collect();
    let agreement = 1.0 - differ.len() as f64 / (512.0 * 512.0);
    assert!(agreement >= 0.99, "agreement {agreement}");
    let near = differ
        .iter()
        .filter(|&&p| to_seam(&layout, p / 512, p % 512) <= 16)
        .count();
    assert!(
        near * 10 >= differ.len() * 9,
        "{near} of {} disagreements near a seam",
        differ.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The same on wgpu with small sizes: a 128x128 crop, 64-pixel tiles.
#[test]
fn same_tiles_agree_with_the_whole_image_on_wgpu() {
    let backend = BackendKind::Wgpu;
    let device = backend.device();
    device.seed(5);
    let unet = UNetConfig::new(1, 2)
        .with_depth(2)
        .with_base_width(4)
        .init(&device);
    let data = FolderDataset::open(NUCLEI, 1, 2, None).unwrap();
    let image = data.get(0).unwrap().image;
    let size = [128, 128];
    let (layout, window) = whole(&unet, size);
    let reference = argmax(&logits(&unet, &image, 1, layout, window, false, &device), 2);
    let window = Window {
        tile: [64; 2],
        overlap: 0.25,
        blend: Blend::Gaussian,
        batch: 2,
    };
    let layout = Layout::new(&unet, size, &window).unwrap();
    let tiled = argmax(&logits(&unet, &image, 1, layout, window, false, &device), 2);
    let same = reference.iter().zip(&tiled).filter(|(a, b)| a == b).count();
    assert!(
        same as f64 >= 0.99 * 128.0 * 128.0,
        "agreement {}",
        same as f64 / (128.0 * 128.0)
    );
}

/// Test-time augmentation averages the eight flips and rotations: the
/// prediction of a flipped image is the flipped prediction.
#[test]
fn test_time_augmentation_is_invariant_to_flips() {
    let device = Device::flex();
    device.seed(9);
    let unet = UNetConfig::new(1, 2)
        .with_depth(2)
        .with_base_width(4)
        .init(&device);
    let n = 40;
    let image: Vec<f32> = (0..n * n).map(|i| ((i * 31) % 97) as f32 / 97.0).collect();
    let flipped: Vec<f32> = (0..n * n)
        .map(|p| image[(p / n) * n + (n - 1 - p % n)])
        .collect();
    let (layout, window) = whole(&unet, [n, n]);
    let a = logits(&unet, &image, 1, layout.clone(), window, true, &device);
    let b = logits(&unet, &flipped, 1, layout.clone(), window, true, &device);
    for c in 0..2 {
        for p in 0..n * n {
            let mirrored = (p / n) * n + (n - 1 - p % n);
            let (u, v) = (a[c * n * n + p], b[c * n * n + mirrored]);
            assert!(
                (u - v).abs() <= 1e-4 * (1.0 + u.abs()),
                "class {c} pixel {p}: {u} vs {v}"
            );
        }
    }
    // Without it, the network alone is not invariant.
    let plain_a = logits(&unet, &image, 1, layout.clone(), window, false, &device);
    let plain_b = logits(&unet, &flipped, 1, layout, window, false, &device);
    let worst = (0..n * n)
        .map(|p| (plain_a[p] - plain_b[(p / n) * n + (n - 1 - p % n)]).abs())
        .fold(0f32, f32::max);
    assert!(
        worst > 1e-3,
        "an untrained network is not symmetric by itself"
    );
}

/// A network whose automatic tiles of a 2048x2048 image (856x856 on the
/// CPU, by the 1 GiB budget) have a 64-channel full-resolution concatenation
/// of 179 MiB: more than Mesa's lavapipe binds at once (128 MiB).
fn wide_network() -> UNet {
    UNetConfig::new(1, 2)
        .with_depth(2)
        .with_base_width(32)
        .init(&Device::flex())
}

/// The largest tensor of one forward pass of `layout`'s tiles, one at a time.
fn largest(unet: &UNet, layout: &Layout) -> u64 {
    largest_tensor(unet.config(), 1, layout.input, Precision::F32)
        .unwrap()
        .1
}

/// On the CPU, a large image is cut into the largest tiles (a multiple of
/// 2^depth) whose forward pass fits the budget, a small one is whole.
#[test]
fn automatic_tiles_fit_the_inference_budget() {
    let unet = wide_network();
    let cpu = Device::flex();
    let per_pixel = inference_bytes_per_pixel(&unet).unwrap();
    let (tiled, window) = layout(&unet, [2048, 2048], Tiling::Auto, &cpu).unwrap();
    let side = tiled.input[0];
    assert_eq!(tiled.input, [side, side]);
    assert_eq!(
        (side % 4, window.overlap, window.blend),
        (0, 0.25, Blend::Gaussian)
    );
    let pass = |side: usize| per_pixel * (side * side) as f64;
    assert!(pass(side) <= INFERENCE_BUDGET as f64, "{side}");
    assert!(
        pass(side + 4) > INFERENCE_BUDGET as f64,
        "{side}: not the largest"
    );
    assert!(
        largest(&unet, &tiled) > 128 << 20,
        "the GPU test below needs this"
    );
    let (small, _) = layout(&unet, [300, 200], Tiling::Auto, &cpu).unwrap();
    assert_eq!((small.input, small.tiles()), ([300, 200], 1));
}

/// On a GPU, the automatic tiles are the CPU's where the device holds their
/// largest tensor, else the largest multiple of 2^depth that it holds (on
/// lavapipe, which binds 128 MiB, smaller than the CPU's).
#[test]
fn automatic_tiles_shrink_to_what_the_gpu_holds() {
    let unet = wide_network();
    let (cpu, _) = layout(&unet, [2048, 2048], Tiling::Auto, &Device::flex()).unwrap();
    for backend in BackendKind::GPUS {
        let device = backend.open(None).unwrap();
        let (gpu, window) = layout(&unet, [2048, 2048], Tiling::Auto, &device).unwrap();
        let side = gpu.input[0];
        assert!(
            device_holds(largest(&unet, &gpu), &device),
            "{backend}: {side}"
        );
        if device_holds(largest(&unet, &cpu), &device) {
            assert_eq!(gpu, cpu, "{backend}");
            continue;
        }
        assert!(side < cpu.input[0] && side % 4 == 0, "{backend}: {side}");
        let larger = Layout::new(
            &unet,
            [2048, 2048],
            &Window {
                tile: [side + 4; 2],
                ..window
            },
        );
        let larger = largest(&unet, &larger.unwrap());
        assert!(
            !device_holds(larger, &device),
            "{backend}: {side} is not the largest"
        );
    }
}

/// A window whose largest tensor no GPU holds (11 tiles of 8192x8192 at a
/// time: a 128-channel concatenation of 352 GiB) is refused before anything
/// runs, naming the layer and what to change.
#[test]
fn a_window_larger_than_the_gpu_holds_is_refused_by_name() {
    let unet = UNetConfig::new(1, 2)
        .with_depth(2)
        .with_base_width(64)
        .init(&Device::flex());
    let window = Window {
        tile: [8192; 2],
        overlap: 0.25,
        blend: Blend::Gaussian,
        batch: 64,
    };
    for backend in BackendKind::GPUS {
        let device = backend.open(None).unwrap();
        let tiling = Tiling::Window(window);
        let err = layout(&unet, [65536, 65536], tiling, &device).unwrap_err();
        assert!(matches!(err, RunError::TensorTooLarge { .. }), "{err}");
        let message = err.to_string();
        for part in [
            "predicting a 65536x65536 image in 8192x8192 tiles, 11 at a time",
            "its largest tensor (ups.1.concat, 352.0 GiB)",
            "use a smaller --tile or --tile-batch",
        ] {
            assert!(message.contains(part), "{backend}: {message}");
        }
    }
}
