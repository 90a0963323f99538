//! The `unet` program end to end: every kind of bad input is one clear line
//! and exit code 1 (never a panic), a run killed and resumed ends as an
//! uninterrupted one, and predict, eval and import work on real models.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use image::{GrayImage, Luma, Rgb, RgbImage};
use unet_train::history::{EpochRecord, from_csv};
use unet_train::score::ClassCounts;

mod common;

use common::{
    GOLDEN_UNET, UNET, fails_with, golden, import, path, scratch, succeeds, tiny_model, unet,
    write_dataset, write_labels,
};

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
    let masks = root.join("masks");
    fails_with(
        &[
            "predict",
            "--model",
            path(model),
            "--input",
            path(&rgb),
            "--output",
            path(&masks),
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
    // `--out`, as `train` and `import` call it, is the same option.
    let again = root.join("again");
    let input = data.join("images");
    succeeds(&[
        "predict",
        "--model",
        path(model),
        "--input",
        path(&input),
        "--out",
        path(&again),
    ]);
    for i in 0..3 {
        let mask = format!("s{i}_mask.png");
        let read = |dir: &Path| std::fs::read(dir.join(&mask)).unwrap();
        assert_eq!(read(&masks), read(&again), "{mask}");
    }

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

/// The arguments of a run long enough (about half a second an epoch here)
/// for a kill to land before it ends; dropout, so that the random stream
/// matters too.
fn resumable_run(out: &Path) -> Vec<String> {
    [
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
    ]
    .map(String::from)
    .to_vec()
}

/// Whether epoch `epoch`'s three checkpoint files are there, none empty.
fn checkpoint_complete(dir: &Path, epoch: usize) -> bool {
    ["model", "optim", "scheduler"].iter().all(|kind| {
        std::fs::metadata(dir.join(format!("checkpoint/{kind}-{epoch}.bpk")))
            .is_ok_and(|m| m.len() > 0)
    })
}

/// Whether a training batch of epoch 1 has been logged.
fn trained_a_batch(dir: &Path) -> bool {
    std::fs::metadata(dir.join("train/epoch-1/Loss.log")).is_ok_and(|m| m.len() > 0)
}

/// Starts a run into `out` and kills it (SIGKILL) the moment `now(out)` holds.
fn kill_when(out: &Path, now: impl Fn(&Path) -> bool) {
    let mut child = Command::new(UNET)
        .args(resumable_run(out))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !now(out) {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "the moment never came"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it was killed"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!out.join("model.bpk").exists(), "killed before the end");
}

fn assert_same_metrics(whole: &[EpochRecord], resumed: &[EpochRecord], moment: &str) {
    assert_eq!(whole.len(), 4);
    assert_eq!(resumed.len(), 4, "{moment}");
    assert!(whole[3].val_dice > 0.5, "a run that learns: {:?}", whole[3]);
    for (x, y) in whole.iter().zip(resumed) {
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
                "killed {moment}, epoch {} {what}: uninterrupted {u}, resumed {v}",
                x.epoch
            );
        }
    }
}

/// A moment to kill a run at: its name, and when it has come.
type Moment = (&'static str, Box<dyn Fn(&Path) -> bool>);

/// Killed at several moments (before the first batch, during epoch 1
/// before any checkpoint, while epoch 2's checkpoint is being written,
/// between epochs) and resumed, a
/// run ends as the uninterrupted one, and never trains again an epoch
/// whose checkpoint was complete.
/// The epochs of the files in a run's checkpoint folder (`model-3.bpk`,
/// and the temporary files of cut writes, `optim-2.bpk.<id>.tmp`).
fn checkpoint_epochs(run: &Path) -> std::collections::BTreeSet<usize> {
    std::fs::read_dir(run.join("checkpoint"))
        .unwrap()
        .map(|entry| {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            let epoch = name
                .split_once('-')
                .and_then(|(_, rest)| rest.split_once(".bpk"))
                .and_then(|(epoch, _)| epoch.parse().ok());
            epoch.unwrap_or_else(|| panic!("{name} in {}", run.display()))
        })
        .collect()
}

#[test]
fn runs_killed_at_any_moment_resume_to_the_same_end() {
    let root = scratch("resume");
    let whole = root.join("whole");
    succeeds(
        &resumable_run(&whole)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    let moments: [Moment; 4] = [
        (
            "before the first batch",
            Box::new(|dir| dir.join("config.json").is_file()),
        ),
        ("during epoch 1", Box::new(trained_a_batch)),
        (
            "during epoch 2's checkpoint",
            Box::new(|dir| dir.join("checkpoint/model-2.bpk").exists()),
        ),
        (
            "between epochs 2 and 3",
            Box::new(|dir| checkpoint_complete(dir, 2)),
        ),
    ];
    for (i, (moment, now)) in moments.into_iter().enumerate() {
        let killed = root.join(format!("killed-{i}"));
        kill_when(&killed, now);
        let finished = (1..=4)
            .filter(|&e| checkpoint_complete(&killed, e))
            .max()
            .unwrap_or(0);
        let out = unet(&["train", "--resume", path(&killed)]);
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(out.status.success(), "{moment}: {stdout}\n{stderr}");
        assert!(stdout.starts_with("resuming"), "{stdout}");
        let start: usize = stdout
            .split_once("from epoch ")
            .and_then(|(_, rest)| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{moment}: no starting epoch in {stdout}"));
        // The newest complete checkpoint, or, where the kill left one of its
        // files cut short (it loads as damaged, and says so), one before.
        let fell_back = stderr.contains("does not load");
        assert!(
            start == finished + 1 || (fell_back && start <= finished),
            "{moment}: resumed from epoch {start} with epoch {finished} checkpointed\n{stdout}\n{stderr}"
        );
        for epoch in 1..start {
            assert!(
                !stdout.contains(&format!("epoch {epoch}/4 ")),
                "{moment}: epoch {epoch} trained again\n{stdout}"
            );
        }
        assert_same_metrics(&metrics(&whole), &metrics(&killed), moment);
        // The last two epochs and the best, whichever process wrote them.
        for run in [&whole, &killed] {
            let epochs = checkpoint_epochs(run);
            assert!(
                epochs.contains(&3) && epochs.contains(&4) && epochs.len() <= 3,
                "{moment}: checkpoints of epochs {epochs:?} kept in {}",
                run.display()
            );
        }
    }
    // A finished run: nothing to do, and nothing rewritten.
    let weights = std::fs::read(whole.join("model.bpk")).unwrap();
    let stdout = succeeds(&["train", "--resume", path(&whole)]);
    assert!(
        stdout.contains("finished all 4 epochs; nothing to resume"),
        "{stdout}"
    );
    assert_eq!(std::fs::read(whole.join("model.bpk")).unwrap(), weights);
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn imported_pytorch_weights_predict_as_pytorch() {
    let root = scratch("import");
    let model = root.join("reference");
    let weights = format!("{GOLDEN_UNET}/unet_reference.safetensors");
    import(Path::new(&weights), &model);
    // The golden input through `segment`, against the argmax of PyTorch's logits.
    let golden: serde_json::Value =
        serde_json::from_str(&String::from_utf8(golden("unet_io.json")).unwrap()).unwrap();
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
    let trained = unet_train::model_dir::load(&model, &device).unwrap();
    assert!(trained.config.training.is_none());
    let mask = unet_train::predict::segment(&trained.unet, &input[..3 * h * w], [3, h, w], &device)
        .unwrap();
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

/// The U-Net paper's recipe on instance labels (no masks): training with the
/// weight map, elastic deformation and intensity changes; `predict
/// --instances` writes object ids and outlines; `eval` scores the objects as
/// a hand count over the written ids does.
#[test]
fn instances_are_trained_on_predicted_and_scored() {
    let root = scratch("instances");
    let data = root.join("data");
    write_dataset(&data, 6, 32);
    write_labels(&data, 6, 32);
    std::fs::remove_dir_all(data.join("masks")).unwrap();
    let model = root.join("model");
    succeeds(&[
        "train",
        "--data",
        path(&data),
        "--epochs",
        "2",
        "--depth",
        "2",
        "--base-width",
        "8",
        "--batch-size",
        "2",
        "--lr",
        "0.01",
        "--border-weight",
        "--elastic",
        "--intensity",
        "--loss",
        "ce",
        "--out",
        path(&model),
    ]);
    let config = std::fs::read_to_string(model.join("config.json")).unwrap();
    for key in ["\"border_weight\"", "\"elastic\"", "\"intensity\""] {
        assert!(config.contains(key), "{key} in {config}");
    }
    let out = root.join("out");
    let stdout = succeeds(&[
        "predict",
        "--model",
        path(&model),
        "--input",
        path(&data.join("images")),
        "--output",
        path(&out),
        "--instances",
        "--min-size",
        "4",
    ]);
    assert!(stdout.contains(" object"), "{stdout}");
    let mut counts = unet_train::instances::InstanceCounts::default();
    for i in 0..6 {
        let labels = image::open(out.join(format!("s{i}_labels.png"))).unwrap();
        assert!(
            matches!(labels, image::DynamicImage::ImageLuma16(_)),
            "16-bit ids"
        );
        assert!(out.join(format!("s{i}_instances.png")).is_file());
        let predicted: Vec<u32> = labels
            .to_luma16()
            .into_raw()
            .into_iter()
            .map(u32::from)
            .collect();
        let truth: Vec<u32> = image::open(data.join(format!("labels/s{i}.png")))
            .unwrap()
            .to_luma16()
            .into_raw()
            .into_iter()
            .map(u32::from)
            .collect();
        counts.add(&truth, &predicted, [32, 32]).unwrap();
    }
    let json = root.join("scores.json");
    let table = succeeds(&[
        "eval",
        "--model",
        path(&model),
        "--data",
        path(&data),
        "--min-size",
        "4",
        "--json",
        path(&json),
    ]);
    assert!(
        table.contains("instances:") && table.contains("DSB2018 mean AP"),
        "{table}"
    );
    let scores: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let expected = counts.scores();
    assert_eq!(scores["instances"]["true_objects"], expected.true_objects);
    assert_eq!(
        scores["instances"]["predicted_objects"],
        expected.predicted_objects
    );
    assert_eq!(scores["instances"]["matched"], expected.matched);
    let close = |v: &serde_json::Value, want: f64| (v.as_f64().unwrap() - want).abs() < 1e-12;
    assert!(close(&scores["instances"]["f1"], expected.f1), "{scores}");
    assert!(
        close(&scores["instances"]["mean_ap"], expected.mean_ap),
        "{scores}"
    );
    let _ = std::fs::remove_dir_all(&root);
}

/// `--probabilities` writes the foreground probability as 16-bit PNG, and
/// the mask is where it reaches one half (or `--threshold`); test-time
/// augmentation and tiles give masks of the image's size.
#[test]
fn probabilities_thresholds_tiles_and_tta() {
    let model = tiny_model();
    let root = scratch("probabilities");
    let data = root.join("data");
    write_dataset(&data, 1, 40);
    let image = data.join("images/s0.png");
    let read16 = |path: &Path| image::open(path).unwrap().to_luma16().into_raw();
    let read8 = |path: &Path| image::open(path).unwrap().to_luma8().into_raw();
    for (threshold, name) in [(None, "half"), (Some("0.9"), "high")] {
        let out = root.join(name);
        let mut args = vec![
            "predict",
            "--model",
            path(model),
            "--input",
            path(&image),
            "--output",
            path(&out),
            "--probabilities",
        ];
        if let Some(t) = threshold {
            args.extend(["--threshold", t]);
        }
        succeeds(&args);
        let probs = read16(&out.join("s0_prob.png"));
        let mask = read8(&out.join("s0_mask.png"));
        let cut = threshold.map_or(0.5, |t| t.parse::<f64>().unwrap()) * 65535.0;
        for (p, m) in probs.iter().zip(&mask) {
            // Probabilities within a rounding step of the cut may go either way.
            if (f64::from(*p) - cut).abs() > 1.0 {
                assert_eq!(*m == 255, f64::from(*p) >= cut, "probability {p}, mask {m}");
            }
        }
    }
    let out = root.join("tiled");
    let stdout = succeeds(&[
        "predict",
        "--model",
        path(model),
        "--input",
        path(&image),
        "--output",
        path(&out),
        "--tile",
        "16",
        "--overlap",
        "0.5",
        "--tta",
        "--tile-batch",
        "3",
    ]);
    assert!(stdout.contains("tiles of 16x16"), "{stdout}");
    assert_eq!(read8(&out.join("s0_mask.png")).len(), 40 * 40);
    fails_with(
        &[
            "predict",
            "--model",
            path(model),
            "--input",
            path(&image),
            "--output",
            path(&out),
            "--threshold",
            "1.5",
        ],
        &["--threshold 1.5", "in [0, 1]"],
    );
    fails_with(
        &[
            "predict",
            "--model",
            path(model),
            "--input",
            path(&image),
            "--output",
            path(&out),
            "--overlap",
            "1",
        ],
        &["--overlap 1", "in [0, 1)"],
    );
    fails_with(
        &[
            "predict",
            "--model",
            path(model),
            "--input",
            path(&image),
            "--output",
            path(&out),
            "--tile",
            "2",
        ],
        &["--tile 2", "at least 4"],
    );
    let _ = std::fs::remove_dir_all(&root);
}
