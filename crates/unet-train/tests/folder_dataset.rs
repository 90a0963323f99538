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

    let dir = scratch("dangling");
    write(&dir.join("images/a.png"), 8, 8, 10);
    write(&dir.join("masks/a.png"), 8, 8, 0);
    std::os::unix::fs::symlink(dir.join("gone.png"), dir.join("images/b.png")).unwrap();
    assert_eq!(
        error(&dir),
        format!(
            "{}: cannot read image: a link to a file that is not there",
            dir.join("images/b.png").display()
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

/// The `._a.png` files macOS leaves beside each file it copies to a USB
/// drive or a network share (resource forks, not images), and other hidden
/// files, are not part of a dataset.
#[test]
fn hidden_files_are_not_images() {
    let dir = scratch("hidden");
    write(&dir.join("images/a.png"), 8, 8, 10);
    write(&dir.join("masks/a.png"), 8, 8, 0);
    for name in [
        "images/._a.png",
        "masks/._a.png",
        "masks/._b.png",
        "images/.c.png",
    ] {
        std::fs::write(dir.join(name), b"\x00\x05\x16\x07 AppleDouble").unwrap();
    }
    let data = FolderDataset::open(&dir, 1, 2, None).unwrap();
    assert_eq!(data.names(), ["a"]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A binary mask put in `labels/` (one id on every object) is refused: its
/// objects would be scored as one. One object in two pieces is fine.
#[test]
fn labels_with_one_id_on_several_objects_are_refused() {
    let dir = scratch("one-id");
    std::fs::remove_dir(dir.join("masks")).unwrap();
    std::fs::create_dir_all(dir.join("labels")).unwrap();
    write(&dir.join("images/a.png"), 8, 8, 10);
    write(&dir.join("images/b.png"), 8, 8, 10);
    // `count` 2x2 squares on row 1, three columns apart.
    let squares = |path: &Path, count: u32| {
        GrayImage::from_fn(8, 8, |x, y| {
            let inside = (1..3).contains(&y) && x % 3 != 2 && x / 3 < count;
            Luma([if inside { 255 } else { 0 }])
        })
        .save(path)
        .unwrap();
    };
    // One object, or one cut in two by the edge or a gap: fine.
    squares(&dir.join("labels/a.png"), 2);
    squares(&dir.join("labels/b.png"), 3);
    assert_eq!(
        error(&dir),
        format!(
            "{}: one id (255) on 3 separate objects: labels/ holds one id per object \
             (instance labels); a mask of classes goes in masks/",
            dir.join("labels/b.png").display()
        )
    );
}

/// Writes a grayscale PNG stored 3 wide and 1 high (values 10, 20, 30
/// left to right) whose EXIF orientation is 6: "rotate 90 degrees
/// clockwise to view", as a camera stores a picture taken upright.
fn write_sideways(path: &Path) {
    use image::ImageEncoder;
    let mut bytes = Vec::new();
    let mut encoder = image::codecs::png::PngEncoder::new(&mut bytes);
    // A big-endian TIFF header and one IFD entry: Orientation (0x0112),
    // SHORT, count 1, value 6.
    let exif = vec![
        b'M', b'M', 0, 42, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0,
    ];
    encoder.set_exif_metadata(exif).unwrap();
    encoder
        .write_image(&[10, 20, 30], 3, 1, image::ExtendedColorType::L8)
        .unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// An image is read as viewers show it (EXIF orientation applied); one
/// with a mask is refused, since the mask may be drawn either way up.
#[test]
fn turned_images_are_read_upright_and_refused_with_masks() {
    let dir = scratch("turned");
    write_sideways(&dir.join("images/a.png"));
    let upright = unet_train::data::decode(&dir.join("images/a.png"))
        .unwrap()
        .to_luma8();
    assert_eq!(upright.dimensions(), (1, 3));
    assert_eq!(upright.into_raw(), [10, 20, 30], "top to bottom");
    write(&dir.join("masks/a.png"), 1, 3, 0);
    assert_eq!(
        error(&dir),
        format!(
            "{}: the file asks to be shown turned or flipped (EXIF orientation 6), and its \
             mask may have been drawn on it as shown or as stored: save the image upright, \
             without the orientation tag, with its mask to match",
            dir.join("images/a.png").display()
        )
    );
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
