//! The `unet` program end to end: every kind of bad input is one clear line
//! and exit code 1 (never a panic), a run killed and resumed ends as an
//! uninterrupted one, and predict, eval and import work on real models.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use image::{GrayImage, Luma, Rgb, RgbImage};
use unet_cli::data::SyntheticDataset;
use unet_cli::history::{EpochRecord, from_csv};
use unet_cli::score::ClassCounts;

const UNET: &str = env!("CARGO_BIN_EXE_unet");
const GOLDEN_UNET: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/golden/unet");

/// The options of a tiny, quick run (on top of which tests add theirs).
const TINY: [&str; 14] = [
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

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("unet-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn unet(args: &[&str]) -> Output {
    Command::new(UNET).args(args).output().unwrap()
}

fn succeeds(args: &[&str]) -> String {
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
fn fails_with(args: &[&str], expected: &[&str]) {
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

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A tiny model trained once for all tests of this file.
fn tiny_model() -> &'static Path {
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
fn write_dataset(dir: &Path, n: usize, size: usize) {
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

#[test]
fn broken_datasets_are_one_line_errors() {
    let root = scratch("broken");
    let train = |data: &Path| {
        let out = root.join("out");
        let _ = std::fs::remove_dir_all(&out);
        vec![
            "train".to_string(),
            "--data".into(),
            path(data).into(),
            "--epochs".into(),
            "1".into(),
            "--out".into(),
            path(&out).into(),
        ]
    };
    let check = |name: &str, setup: &dyn Fn(&Path), expected: &[&str]| {
        let data = root.join(name);
        write_dataset(&data, 3, 16);
        setup(&data);
        let args = train(&data);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        fails_with(&args, expected);
    };
    let missing = root.join("no-such-data");
    let args = train(&missing);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    fails_with(&args, &[path(&missing.join("images")), "no such directory"]);

    check(
        "no-mask",
        &|d| std::fs::remove_file(d.join("masks/s1.png")).unwrap(),
        &["s1.png", "no mask"],
    );
    check(
        "no-image",
        &|d| std::fs::remove_file(d.join("images/s1.png")).unwrap(),
        &["masks/s1.png", "mask without an image"],
    );
    check(
        "size",
        &|d| GrayImage::new(16, 12).save(d.join("masks/s2.png")).unwrap(),
        &["masks/s2.png", "mask is [16, 12]"],
    );
    check(
        "value",
        &|d| {
            GrayImage::from_pixel(16, 16, Luma([3]))
                .save(d.join("masks/s0.png"))
                .unwrap()
        },
        &["masks/s0.png", "mask value 3", "not a class index below 2"],
    );
    check(
        "corrupt",
        &|d| std::fs::write(d.join("images/s0.png"), b"\x89PNG truncated").unwrap(),
        &["images/s0.png", "cannot read image"],
    );
    check(
        "mixed-channels",
        &|d| {
            RgbImage::from_pixel(16, 16, Rgb([9, 200, 30]))
                .save(d.join("images/s2.png"))
                .unwrap()
        },
        &[
            "images/s2.png",
            "colour (RGB) image, but the model takes 1 channel",
        ],
    );
    fails_with(
        &["train", "--lr", "3", "--epochs", "1"],
        &["--lr 3: must be in (0, 1]"],
    );
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn bad_model_directories_and_inputs_are_one_line_errors() {
    let model = tiny_model();
    let root = scratch("bad-model");
    let data = root.join("data");
    write_dataset(&data, 2, 16);

    let missing = root.join("no-model");
    fails_with(
        &[
            "predict",
            "--model",
            path(&missing),
            "--input",
            path(&data),
            "--output",
            path(&root),
        ],
        &[path(&missing), "no such directory"],
    );

    // An RGB image for a grayscale model.
    let rgb = root.join("rgb.png");
    RgbImage::from_pixel(16, 16, Rgb([1, 2, 250]))
        .save(&rgb)
        .unwrap();
    fails_with(
        &[
            "predict",
            "--model",
            path(model),
            "--input",
            path(&rgb),
            "--output",
            path(&root),
        ],
        &[
            path(&rgb),
            "colour (RGB) image, but the model takes 1 channel (grayscale)",
        ],
    );

    // A config.json that does not describe the weights.
    let other = root.join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::copy(model.join("model.bpk"), other.join("model.bpk")).unwrap();
    let config = std::fs::read_to_string(model.join("config.json")).unwrap();
    let wider = config.replace("\"base_width\": 4", "\"base_width\": 8");
    assert_ne!(config, wider);
    std::fs::write(other.join("config.json"), wider).unwrap();
    fails_with(
        &["eval", "--model", path(&other), "--data", path(&data)],
        &[
            path(&other.join("model.bpk")),
            "the weights do not fit the model of",
        ],
    );

    // A config.json that is not one.
    std::fs::write(other.join("config.json"), "{\"format\": 3}").unwrap();
    fails_with(
        &["eval", "--model", path(&other), "--data", path(&data)],
        &[path(&other), "config.json is not a run configuration"],
    );

    // A fresh run into a run directory.
    fails_with(
        &["train", "--out", path(model)],
        &[path(model), "already holds a training run", "--resume"],
    );
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn predict_writes_masks_and_overlays_and_eval_scores_them() {
    let model = tiny_model();
    let root = scratch("predict");
    let data = root.join("data");
    write_dataset(&data, 3, 16);
    let masks = root.join("masks");
    let stdout = succeeds(&[
        "predict",
        "--model",
        path(model),
        "--input",
        path(&data.join("images")),
        "--output",
        path(&masks),
    ]);
    assert_eq!(stdout.lines().count(), 3, "{stdout}");

    // Score the written masks by hand, then compare with `unet eval`.
    let mut counts = ClassCounts::new(2);
    for i in 0..3 {
        let predicted = image::open(masks.join(format!("s{i}_mask.png")))
            .unwrap()
            .to_luma8();
        let overlay = image::open(masks.join(format!("s{i}_overlay.png"))).unwrap();
        assert_eq!(predicted.dimensions(), (16, 16));
        assert_eq!((overlay.width(), overlay.height()), (16, 16));
        assert!(predicted.pixels().all(|p| p.0[0] == 0 || p.0[0] == 255));
        let truth = image::open(data.join(format!("masks/s{i}.png")))
            .unwrap()
            .to_luma8();
        let classes = |img: &GrayImage| img.pixels().map(|p| p.0[0] / 255).collect::<Vec<u8>>();
        counts.add(&classes(&predicted), &classes(&truth));
    }
    let json = root.join("scores.json");
    let table = succeeds(&[
        "eval",
        "--model",
        path(model),
        "--data",
        path(&data),
        "--json",
        path(&json),
    ]);
    assert!(
        table.contains("pixel acc") && table.contains("mean*"),
        "{table}"
    );
    let scores: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let expected = counts.scores();
    let close = |key: &serde_json::Value, want: f64| (key.as_f64().unwrap() - want).abs() < 1e-12;
    assert!(close(&scores["mean_dice"], expected.mean_dice), "{scores}");
    assert!(close(&scores["mean_iou"], expected.mean_iou), "{scores}");
    assert!(
        close(&scores["pixel_accuracy"], expected.pixel_accuracy),
        "{scores}"
    );
    for class in 0..2 {
        let entry = &scores["per_class"][class];
        assert_eq!(entry["class"], class);
        assert!(close(&entry["dice"], expected.per_class[class].dice));
        assert!(close(&entry["iou"], expected.per_class[class].iou));
        assert!(close(
            &entry["pixel_accuracy"],
            expected.per_class[class].pixel_accuracy
        ));
    }
    let _ = std::fs::remove_dir_all(&root);
}

fn metrics(dir: &Path) -> Vec<EpochRecord> {
    from_csv(&std::fs::read_to_string(dir.join("metrics.csv")).unwrap()).unwrap()
}

#[test]
fn a_run_killed_and_resumed_ends_as_an_uninterrupted_one() {
    let root = scratch("resume");
    let (whole, killed) = (root.join("whole"), root.join("killed"));
    // Epochs long enough (about half a second here) for the kill to land
    // before the run ends; dropout, so that the random stream matters too.
    let run = |out: &Path| {
        let args = [
            "train",
            "--epochs",
            "4",
            "--samples",
            "160",
            "--image-size",
            "32",
            "--depth",
            "2",
            "--base-width",
            "8",
            "--lr",
            "0.01",
            "--dropout",
            "0.2",
            "--out",
            path(out),
        ];
        args.map(String::from).to_vec()
    };
    succeeds(&run(&whole).iter().map(String::as_str).collect::<Vec<_>>());

    // Kill the second run as soon as epoch 1's checkpoint is complete.
    let mut child = Command::new(UNET)
        .args(run(&killed))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let checkpoint = killed.join("checkpoint");
    let started = Instant::now();
    while !["model", "optim", "scheduler"]
        .iter()
        .all(|kind| checkpoint.join(format!("{kind}-1.bpk")).is_file())
    {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "no checkpoint"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it was killed"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(metrics(&killed).len() < 4, "killed before the end");
    assert!(!killed.join("model.bpk").exists());

    let stdout = succeeds(&["train", "--resume", path(&killed)]);
    assert!(stdout.starts_with("resuming"), "{stdout}");
    let (a, b) = (metrics(&whole), metrics(&killed));
    assert_eq!(a.len(), 4);
    assert_eq!(b.len(), 4);
    assert!(a[3].val_dice > 0.5, "a run that learns: {:?}", a[3]);
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.epoch, y.epoch);
        for (what, u, v) in [
            ("lr", x.lr, y.lr),
            ("train_loss", x.train_loss, y.train_loss),
            ("train_dice", x.train_dice, y.train_dice),
            ("val_loss", x.val_loss, y.val_loss),
            ("val_dice", x.val_dice, y.val_dice),
            ("val_iou", x.val_iou, y.val_iou),
        ] {
            assert!(
                (u - v).abs() <= 1e-4 * (1.0 + u.abs()),
                "epoch {} {what}: uninterrupted {u}, resumed {v}",
                x.epoch
            );
        }
    }
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn imported_pytorch_weights_predict_as_pytorch() {
    let root = scratch("import");
    let model = root.join("reference");
    let weights = format!("{GOLDEN_UNET}/unet_reference.safetensors");
    succeeds(&[
        "import",
        "--weights",
        &weights,
        "--in-channels",
        "3",
        "--classes",
        "3",
        "--base-width",
        "8",
        "--depth",
        "3",
        "--out",
        path(&model),
    ]);
    // The golden input through `segment`, against the argmax of PyTorch's logits.
    let golden: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{GOLDEN_UNET}/unet_io.json")).unwrap(),
    )
    .unwrap();
    let values = |key: &serde_json::Value| -> Vec<f32> {
        key["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect()
    };
    let input = values(&golden["input"]);
    let logits = values(&golden["eval_mode"]["output"]);
    let (h, w) = (32, 48);
    let device = burn::tensor::Device::flex();
    let trained = unet_cli::model_dir::load(&model, &device).unwrap();
    assert!(trained.config.training.is_none());
    let mask =
        unet_cli::predict::segment(&trained.unet, &input[..3 * h * w], [3, h, w], &device).unwrap();
    let mut decided = 0;
    for p in 0..h * w {
        let mut scores: Vec<(f32, u8)> = (0..3).map(|c| (logits[c * h * w + p], c as u8)).collect();
        scores.sort_by(|a, b| b.0.total_cmp(&a.0));
        // Pixels whose two best logits are within float noise may go either way.
        if scores[0].0 - scores[1].0 > 1e-4 {
            assert_eq!(mask[p], scores[0].1, "pixel {p}");
            decided += 1;
        }
    }
    assert!(decided > h * w * 99 / 100);
    let _ = std::fs::remove_dir_all(&root);
}
