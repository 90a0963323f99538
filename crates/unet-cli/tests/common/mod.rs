//! What the tests of the `unet` program share: running it, checking its
//! errors, a tiny trained model, made-up datasets.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use image::{GrayImage, Luma};
use unet_train::data::SyntheticDataset;

pub const UNET: &str = env!("CARGO_BIN_EXE_unet");
pub const GOLDEN_UNET: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/golden/unet");

/// The options of a tiny, quick run (on top of which tests add theirs).
pub const TINY: [&str; 14] = [
    "--samples",
    "24",
    "--image-size",
    "16",
    "--depth",
    "2",
    "--base-width",
    "4",
    "--batch-size",
    "4",
    "--lr",
    "0.01",
    "--seed",
    "7",
];

pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("unet-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `unet` in a working directory of its own, so that nothing it
/// writes by default (`runs/`) lands in the source tree.
pub fn unet(args: &[&str]) -> Output {
    Command::new(UNET)
        .args(args)
        .current_dir(working_dir())
        .output()
        .unwrap()
}

fn working_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| scratch("cwd"))
}

/// The bytes of a file of the reference U-Net (`../shared/golden/unet`),
/// failing with the path it expected when it is missing.
pub fn golden(name: &str) -> Vec<u8> {
    let file = format!("{GOLDEN_UNET}/{name}");
    std::fs::read(&file).unwrap_or_else(|err| {
        panic!("fixture {file} ({err}): the shared/ folder must sit beside the checkout")
    })
}

pub fn succeeds(args: &[&str]) -> String {
    let out = unet(args);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "unet {args:?}\n{stdout}\n{stderr}");
    stdout.into_owned()
}

/// Runs `unet` and checks it fails with exit code 1 and one line on stderr
/// containing every one of `expected`.
pub fn fails_with(args: &[&str], expected: &[&str]) {
    let out = unet(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "unet {args:?}: {stderr}");
    assert!(
        !stderr.contains("panicked"),
        "unet {args:?} panicked: {stderr}"
    );
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    for part in expected {
        assert!(
            stderr.contains(part),
            "unet {args:?}: expected '{part}' in: {stderr}"
        );
    }
}

pub fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `unet predict --model M --input I --output O`, as arguments.
pub fn predict_args<'a>(model: &'a Path, input: &'a Path, output: &'a Path) -> [&'a str; 7] {
    [
        "predict",
        "--model",
        path(model),
        "--input",
        path(input),
        "--output",
        path(output),
    ]
}

/// A tiny model trained once for all tests of this file.
pub fn tiny_model() -> &'static Path {
    static MODEL: OnceLock<PathBuf> = OnceLock::new();
    MODEL.get_or_init(|| {
        let dir = scratch("model");
        let out = dir.join("run");
        let mut args = vec!["train", "--epochs", "2", "--out", path(&out)];
        args.extend(TINY);
        succeeds(&args);
        out
    })
}

/// Writes `n` synthetic images and masks (0/255) as PNG files into `dir/images`, `dir/masks`.
pub fn write_dataset(dir: &Path, n: usize, size: usize) {
    std::fs::create_dir_all(dir.join("images")).unwrap();
    std::fs::create_dir_all(dir.join("masks")).unwrap();
    let data = SyntheticDataset::new(n, size, 2, 1, 99).unwrap();
    for i in 0..n {
        let sample = data.sample(i);
        let s = size as u32;
        GrayImage::from_fn(s, s, |x, y| {
            Luma([(sample.pixel(0, y as usize, x as usize) * 255.0).round() as u8])
        })
        .save(dir.join(format!("images/s{i}.png")))
        .unwrap();
        GrayImage::from_fn(s, s, |x, y| {
            Luma([sample.mask[y as usize * size + x as usize] * 255])
        })
        .save(dir.join(format!("masks/s{i}.png")))
        .unwrap();
    }
}

/// `unet import` of `weights` with the reference U-Net's architecture
/// (3 classes, base width 8, depth 3) and `in_channels`, into `out`.
pub fn import_args<'a>(weights: &'a Path, in_channels: &'a str, out: &'a Path) -> [&'a str; 13] {
    [
        "import",
        "--weights",
        path(weights),
        "--in-channels",
        in_channels,
        "--classes",
        "3",
        "--base-width",
        "8",
        "--depth",
        "3",
        "--out",
        path(out),
    ]
}

/// `unet import` of `weights` (the reference U-Net's architecture) into `out`.
pub fn import(weights: &Path, out: &Path) -> String {
    succeeds(&import_args(weights, "3", out))
}

/// Writes `dir/labels/s<i>.png` (16-bit instance ids) for the images of
/// [`write_dataset`]: each synthetic shape its own object.
pub fn write_labels(dir: &Path, n: usize, size: usize) {
    std::fs::create_dir_all(dir.join("labels")).unwrap();
    let data = SyntheticDataset::new(n, size, 2, 1, 99).unwrap();
    for i in 0..n {
        let labels = data.sample(i).labels.unwrap();
        let ids: Vec<u16> = labels.iter().map(|&id| id as u16).collect();
        image::ImageBuffer::<image::Luma<u16>, Vec<u16>>::from_raw(size as u32, size as u32, ids)
            .unwrap()
            .save(dir.join(format!("labels/s{i}.png")))
            .unwrap();
    }
}
