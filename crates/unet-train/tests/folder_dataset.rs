//! Image folders: the real nuclei dataset loads, and every kind of broken
//! folder gives an error naming the file.

use std::path::{Path, PathBuf};

use burn::data::dataset::Dataset;
use image::{GrayImage, Luma};
use unet_train::data::{DataError, FolderDataset};

const NUCLEI: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/data/nuclei-dsb2018"
);

#[test]
fn the_nuclei_dataset_loads() {
    let data = FolderDataset::open(NUCLEI, 1, 2, None).unwrap();
    assert_eq!(data.len(), 12);
    assert_eq!(data.names()[0], "tile_r0_c0");
    for i in 0..data.len() {
        let sample = data.get(i).unwrap();
        assert_eq!(
            (sample.channels, sample.height, sample.width),
            (1, 128, 128)
        );
        // The README: foreground covers 12-28% of a tile.
        let foreground = sample.mask.iter().filter(|&&c| c == 1).count() as f64 / (128.0 * 128.0);
        assert!(
            (0.11..0.29).contains(&foreground),
            "{}: {foreground}",
            data.names()[i]
        );
        assert!(sample.mask.iter().all(|&c| c <= 1));
        assert!(sample.image.iter().all(|v| (0.0..=1.0).contains(v)));
    }
    assert_eq!(FolderDataset::detect_channels(NUCLEI).unwrap(), 1);
    // Grayscale files are not silently taken for RGB.
    assert_eq!(
        FolderDataset::open(NUCLEI, 3, 2, None)
            .unwrap_err()
            .to_string(),
        format!(
            "{NUCLEI}/images/tile_r0_c0.png: grayscale image, but the model takes 3 channels (RGB)"
        )
    );
}

#[test]
fn resizing_moves_masks_with_their_images() {
    let data = FolderDataset::open(NUCLEI, 1, 2, Some(64)).unwrap();
    let full = FolderDataset::open(NUCLEI, 1, 2, None).unwrap();
    for i in [0, 5] {
        let (small, big) = (data.get(i).unwrap(), full.get(i).unwrap());
        assert_eq!(
            (small.height, small.width, small.image.len()),
            (64, 64, 64 * 64)
        );
        // Nearest-neighbour: the small mask samples the big one at odd pixels.
        for y in 0..64 {
            for x in 0..64 {
                assert_eq!(
                    small.mask[y * 64 + x],
                    big.mask[(2 * y + 1) * 128 + 2 * x + 1]
                );
            }
        }
    }
}

/// A fresh folder with `images/` and `masks/`.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("unet-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("images")).unwrap();
    std::fs::create_dir_all(dir.join("masks")).unwrap();
    dir
}

fn write(path: &Path, width: u32, height: u32, value: u8) {
    GrayImage::from_pixel(width, height, Luma([value]))
        .save(path)
        .unwrap();
}

fn error(dir: &Path) -> String {
    let err: DataError = FolderDataset::open(dir, 1, 2, None).unwrap_err();
    let _ = std::fs::remove_dir_all(dir);
    err.to_string()
}

#[test]
fn broken_folders_are_clear_errors() {
    let missing = std::env::temp_dir().join("unet-cli-no-such-dir");
    assert_eq!(
        FolderDataset::open(&missing, 1, 2, None)
            .unwrap_err()
            .to_string(),
        format!("{}: no such directory", missing.display())
    );

    let dir = scratch("no-targets");
    write(&dir.join("images/a.png"), 8, 8, 10);
    std::fs::remove_dir(dir.join("masks")).unwrap();
    assert_eq!(
        error(&dir),
        format!(
            "{}: neither masks/ (class masks) nor labels/ (instance labels) is there",
            dir.display()
        )
    );

    let dir = scratch("no-mask");
    write(&dir.join("images/a.png"), 8, 8, 10);
    assert_eq!(
        error(&dir),
        format!(
            "{}: no mask (expected {})",
            dir.join("images/a.png").display(),
            dir.join("masks/a.png").display()
        )
    );

    let dir = scratch("no-image");
    write(&dir.join("images/a.png"), 8, 8, 10);
    write(&dir.join("masks/a.png"), 8, 8, 0);
    write(&dir.join("masks/b.png"), 8, 8, 0);
    assert!(error(&dir).starts_with(&format!(
        "{}: mask without an image",
        dir.join("masks/b.png").display()
    )));

    let dir = scratch("size");
    write(&dir.join("images/a.png"), 8, 8, 10);
    write(&dir.join("masks/a.png"), 8, 6, 0);
    assert!(error(&dir).contains("mask is [8, 6] (width x height) but its image"));

    let dir = scratch("value");
    write(&dir.join("images/a.png"), 8, 8, 10);
    write(&dir.join("masks/a.png"), 8, 8, 7);
    assert_eq!(
        error(&dir),
        format!(
            "{}: mask value 7 at (x 0, y 0) is not a class index below 2 (binary masks may use 0 and 255)",
            dir.join("masks/a.png").display()
        )
    );

    let dir = scratch("corrupt");
    std::fs::write(dir.join("images/a.png"), b"not a png").unwrap();
    write(&dir.join("masks/a.png"), 8, 8, 0);
    assert!(error(&dir).starts_with(&format!(
        "{}: cannot read image",
        dir.join("images/a.png").display()
    )));

    let dir = scratch("mixed-sizes");
    write(&dir.join("images/a.png"), 8, 8, 10);
    write(&dir.join("masks/a.png"), 8, 8, 0);
    write(&dir.join("images/b.png"), 6, 8, 10);
    write(&dir.join("masks/b.png"), 6, 8, 0);
    assert_eq!(
        error(&dir),
        format!(
            "{}: image is [6, 8] (width x height) but {} is [8, 8]; images of one dataset \
             must have one size (or pass --image-size to resize them)",
            dir.join("images/b.png").display(),
            dir.join("images/a.png").display()
        )
    );

    let dir = scratch("empty");
    assert_eq!(
        error(&dir),
        format!(
            "{}: no .png, .jpg or .tif images",
            dir.join("images").display()
        )
    );

    let dir = scratch("channels");
    assert_eq!(
        FolderDataset::open(&dir, 2, 2, None)
            .unwrap_err()
            .to_string(),
        "2 image channels asked for: only 1 (grayscale) and 3 (RGB) are supported"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn binary_masks_map_255_to_the_foreground() {
    let dir = scratch("binary");
    write(&dir.join("images/a.png"), 4, 4, 200);
    write(&dir.join("masks/a.png"), 4, 4, 255);
    let sample = FolderDataset::open(&dir, 1, 2, None)
        .unwrap()
        .get(0)
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(sample.mask.iter().all(|&c| c == 1));
    assert!(
        sample
            .image
            .iter()
            .all(|&v| (v - 200.0 / 255.0).abs() < 1e-6)
    );
}
