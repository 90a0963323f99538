//! The inputs real users bring, one test per case: each ends in one clear
//! line and exit code 1, or in the right behaviour; nothing the user made is
//! overwritten or deleted.

mod common;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use burn::tensor::{DType, Tensor};
use common::{
    GOLDEN_UNET, TINY, UNET, fails_with, golden, import, import_args, path, predict_args, scratch,
    succeeds, tiny_model, unet, write_dataset,
};
use image::{GrayImage, ImageBuffer, Luma};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use unet_train::backend::BackendKind;
use unet_train::precision::Precision;

/// `unet train` with the tiny settings, `extra` on top, into `out`.
fn train_args<'a>(out: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["train", "--out", path(out)];
    args.extend(TINY);
    args.extend(extra);
    args
}

#[test]
fn one_class_is_refused_before_anything_runs() {
    fails_with(&["train", "--classes", "1"], &["--classes 1", "2 to 256"]);
    let root = scratch("one-class");
    let data = root.join("data");
    write_dataset(&data, 2, 16);
    let out = root.join("out");
    fails_with(
        &[
            "train",
            "--data",
            path(&data),
            "--classes",
            "1",
            "--out",
            path(&out),
        ],
        &["--classes 1"],
    );
    assert!(!out.exists(), "nothing written");
    let _ = std::fs::remove_dir_all(&root);
}

/// The reference weights rewritten to `to`, each tensor's `(dtype, bytes)`
/// given by `rewrite(name, view)`.
fn rewrite_reference(to: &Path, rewrite: impl Fn(&str, &TensorView) -> (Dtype, Vec<u8>)) {
    let bytes = golden("unet_reference.safetensors");
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let rewritten: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = file
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            let (dtype, data) = rewrite(&name, &view);
            (name, dtype, view.shape().to_vec(), data)
        })
        .collect();
    let views = rewritten.iter().map(|(name, dtype, shape, data)| {
        (
            name.clone(),
            TensorView::new(*dtype, shape.clone(), data).unwrap(),
        )
    });
    safetensors::serialize_to_file(views, None, to).unwrap();
}

/// The reference weights with every f32 tensor stored as `dtype`.
fn convert(dtype: Dtype, to: &Path) {
    rewrite_reference(to, |_, view| {
        if view.dtype() != Dtype::F32 {
            return (view.dtype(), view.data().to_vec());
        }
        let values = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        let data: Vec<u8> = match dtype {
            Dtype::F16 => values
                .flat_map(|v| half::f16::from_f32(v).to_le_bytes())
                .collect(),
            Dtype::BF16 => values
                .flat_map(|v| half::bf16::from_f32(v).to_le_bytes())
                .collect(),
            Dtype::F64 => values.flat_map(|v| f64::from(v).to_le_bytes()).collect(),
            other => panic!("not a conversion target: {other:?}"),
        };
        (dtype, data)
    });
}

/// An RGB image for the reference model.
fn rgb_image(path: &Path) {
    image::RgbImage::from_fn(40, 24, |x, y| {
        image::Rgb([(x * 6) as u8, (y * 9) as u8, ((x + y) * 3) as u8])
    })
    .save(path)
    .unwrap();
}

#[test]
fn half_precision_and_double_weights_import_as_f32() {
    let root = scratch("dtypes");
    let image = root.join("in.png");
    rgb_image(&image);
    let mut masks = Vec::new();
    for (name, dtype) in [
        ("f64", Dtype::F64),
        ("f16", Dtype::F16),
        ("bf16", Dtype::BF16),
    ] {
        let weights = root.join(format!("{name}.safetensors"));
        convert(dtype, &weights);
        let model = root.join(format!("model-{name}"));
        import(&weights, &model);
        let trained = unet_train::model_dir::load(&model, &burn::tensor::Device::flex()).unwrap();
        let weight = trained.unet.outc.weight.val();
        assert_eq!(weight.dtype(), burn::tensor::DType::F32, "{name}");
        for backend in ["flex", "ndarray"] {
            let out = root.join(format!("pred-{name}-{backend}"));
            succeeds(&[
                "predict",
                "--model",
                path(&model),
                "--input",
                path(&image),
                "--output",
                path(&out),
                "--backend",
                backend,
            ]);
            masks.push(std::fs::read(out.join("in_mask.png")).unwrap());
        }
    }
    // F64 holds the f32 values exactly: both backends agree with it.
    let f32_model = root.join("model-f32");
    import(
        Path::new(&format!("{GOLDEN_UNET}/unet_reference.safetensors")),
        &f32_model,
    );
    let out = root.join("pred-f32");
    succeeds(&[
        "predict",
        "--model",
        path(&f32_model),
        "--input",
        path(&image),
        "--output",
        path(&out),
    ]);
    let reference = std::fs::read(out.join("in_mask.png")).unwrap();
    assert_eq!(masks[0], reference);
    assert_eq!(masks[1], reference);
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn import_never_writes_over_a_run() {
    let model = tiny_model();
    let config = std::fs::read(model.join("config.json")).unwrap();
    let weights = std::fs::read(model.join("model.bpk")).unwrap();
    fails_with(
        &[
            "import",
            "--weights",
            &format!("{GOLDEN_UNET}/unet_reference.safetensors"),
            "--classes",
            "3",
            "--base-width",
            "8",
            "--depth",
            "3",
            "--out",
            path(model),
        ],
        &[
            "--out",
            path(model),
            "a folder holding other files",
            "import writes into a new or empty folder",
        ],
    );
    assert_eq!(std::fs::read(model.join("config.json")).unwrap(), config);
    assert_eq!(std::fs::read(model.join("model.bpk")).unwrap(), weights);
    let root = scratch("import-onto-file");
    let file = root.join("notes.txt");
    std::fs::write(&file, "mine").unwrap();
    let weights = format!("{GOLDEN_UNET}/unet_reference.safetensors");
    fails_with(
        &import_args(Path::new(&weights), "1", &file),
        &["a file; import writes"],
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "mine");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn sixteen_bit_masks_are_read_by_value() {
    let root = scratch("mask16");
    let data = root.join("data");
    write_dataset(&data, 3, 16);
    // Every mask in 16 bits: class 1 stored as 1 is class 1 (divided by 257,
    // as an 8-bit reading does, it was 0); 200 is no class of three.
    for i in 0..3 {
        let path = data.join(format!("masks/s{i}.png"));
        let eight = image::open(&path).unwrap().to_luma8();
        let mask: ImageBuffer<Luma<u16>, Vec<u16>> = ImageBuffer::from_fn(16, 16, |x, y| {
            Luma([u16::from(eight.get_pixel(x, y).0[0] > 0)])
        });
        mask.save(&path).unwrap();
    }
    let out = root.join("out");
    succeeds(&train_args(
        &out,
        &["--data", path(&data), "--epochs", "1", "--classes", "3"],
    ));
    let bad: ImageBuffer<Luma<u16>, Vec<u16>> =
        ImageBuffer::from_fn(16, 16, |x, _| Luma([if x == 3 { 200 } else { 0 }]));
    bad.save(data.join("masks/s1.png")).unwrap();
    fails_with(
        &["eval", "--model", path(&out), "--data", path(&data)],
        &["masks/s1.png", "mask value 200 at (x 3, y 0)", "below 3"],
    );
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn two_files_of_one_name_are_refused_not_dropped() {
    let root = scratch("stems");
    let data = root.join("data");
    write_dataset(&data, 3, 16);
    std::fs::copy(data.join("images/s0.png"), data.join("images/s0.PNG")).unwrap();
    fails_with(
        &train_args(&root.join("out"), &["--data", path(&data)]),
        &["images/s0.PNG", "images/s0.png", "have one name"],
    );
    let out = root.join("masks");
    fails_with(
        &[
            "predict",
            "--model",
            path(tiny_model()),
            "--input",
            path(&data.join("images")),
            "--output",
            path(&out),
        ],
        &["s0.PNG", "have one name"],
    );
    assert!(!out.exists(), "nothing written");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn huge_sizes_are_refused_with_the_limit_or_the_estimate() {
    fails_with(
        &["train", "--samples", "1000000000"],
        &["--samples 1000000000", "2 to 10000000"],
    );
    fails_with(
        &["train", "--classes", "1000000000"],
        &["--classes 1000000000"],
    );
    fails_with(
        &["train", "--image-size", "100000"],
        &["--image-size 100000", "8 to 65536"],
    );
    fails_with(
        &["train", "--base-width", "1000000"],
        &["base_width 1000000", "channels"],
    );
    // Within every limit, but beyond any machine's memory: the estimate says so.
    fails_with(
        &[
            "train",
            "--base-width",
            "60000",
            "--image-size",
            "4096",
            "--batch-size",
            "64",
        ],
        &["a training step", "needs about", "available"],
    );
    // Synthetic images whose one sample would take tens of GiB: refused by
    // the estimate before the first sample is made (an allocation of that
    // size would abort the program or get it killed).
    let root = scratch("huge-sample");
    let out = root.join("out");
    fails_with(
        &["train", "--image-size", "60000", "--out", path(&out)],
        &["a training step", "60000x60000", "needs about"],
    );
    assert!(!out.exists(), "nothing written");
    let _ = std::fs::remove_dir_all(&root);
}

/// A step whose largest tensor (the full-resolution decoder level's
/// concatenation: 51 images x 128 channels x 4096 x 4096 in f32, 408 GiB)
/// no GPU holds is refused before training, naming it and the device; the
/// run's folder is not made.
#[test]
fn a_tensor_larger_than_the_gpu_holds_is_one_line() {
    let root = scratch("gpu-too-large");
    let out = root.join("out");
    for backend in BackendKind::GPUS {
        fails_with(
            &[
                "train",
                "--backend",
                backend.name(),
                "--samples",
                "64",
                "--image-size",
                "4096",
                "--batch-size",
                "64",
                "--base-width",
                "64",
                "--depth",
                "2",
                "--out",
                path(&out),
            ],
            &[
                "a training step (batch 51 of 4096x4096 images in f32)",
                "its largest tensor (ups.1.concat, 408.0 GiB)",
                &format!("more than the --backend {backend} GPU can hold at once"),
            ],
        );
        assert!(!out.exists(), "{backend}: nothing written");
    }
    let _ = std::fs::remove_dir_all(&root);
}

/// A GPU whose sums over the pixels of a step come out wrong (Mesa's
/// lavapipe, which ends a kernel's loops after 65535 iterations, from about
/// 65536 values) refuses the run by name before training, where it would
/// train on wrong batch-norm statistics; a GPU whose sums are right trains
/// it. Whether they are right is computed here, apart from the program.
#[test]
fn a_gpu_that_sums_a_step_wrong_refuses_it() {
    let root = scratch("gpu-wrong-sums");
    for backend in BackendKind::GPUS {
        let out = root.join(backend.name());
        let device = backend.open(None).unwrap();
        // Batch 2 of 256x256 images: sums of 131072 values, which the
        // device gets right or not (along rows, contiguous and strided).
        let inner = device.inner();
        let ones = |dims: [usize; 2]| Tensor::<2>::ones(dims, &inner);
        let rows = ones([4, 131072]).sum_dim(1);
        let columns = ones([131072, 4]).transpose().sum_dim(1);
        let sums = Tensor::cat(vec![rows, columns], 0);
        let sums = sums.try_into_vec_as::<f32>().unwrap();
        let wrong = sums.iter().any(|&sum| sum != 131072.0);
        let args = [
            "train",
            "--backend",
            backend.name(),
            "--samples",
            "6",
            "--image-size",
            "256",
            "--batch-size",
            "2",
            "--base-width",
            "4",
            "--depth",
            "2",
            "--epochs",
            "1",
            "--out",
            path(&out),
        ];
        if wrong {
            let expected = format!("the --backend {backend} GPU sums 131072 values wrong");
            let step = "a training step (batch 2 of 256x256 images) takes such sums";
            fails_with(&args, &[&expected, step, "--backend flex"]);
            assert!(!out.exists(), "{backend}: nothing written");
        } else {
            succeeds(&args);
        }
    }
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn refused_arguments_are_one_line_with_clap_s_reason() {
    fails_with(
        &["train", "--epochz", "3"],
        &["unexpected argument '--epochz'", "tip:"],
    );
    fails_with(
        &["train", "--backend", "cuda"],
        &["invalid value 'cuda'", "--backend"],
    );
    fails_with(
        &[
            "predict", "--model", "m", "--input", "i", "--output", "o", "--tile", "abc",
        ],
        &["invalid value 'abc'", "--tile"],
    );
    fails_with(
        &[
            "predict",
            "--model",
            "m",
            "--input",
            "i",
            "--output",
            "o",
            "--tile-batch",
            "0",
        ],
        &["--tile-batch 0", "at least 1"],
    );
    fails_with(&["import"], &["required arguments were not provided"]);
    // Weights for a loss that has none to apply them to.
    fails_with(
        &["train", "--loss", "tversky", "--class-weights", "1,3"],
        &["--loss tversky", "--class-weights"],
    );
    // `unet` alone lists the commands, and is an error.
    let bare = unet(&[]);
    assert_eq!(bare.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bare.stderr).contains("train"));
    // Help is not an error.
    let help = unet(&["train", "--help"]);
    assert_eq!(help.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&help.stdout).contains("--epochs"));
}

#[test]
fn overflowing_values_are_errors_or_work() {
    let max = u64::MAX.to_string();
    fails_with(
        &["train", "--image-size", "4294967296"],
        &["--image-size 4294967296"],
    );
    fails_with(
        &["train", "--classes", "257"],
        &["--classes 257", "2 to 256"],
    );
    fails_with(&["train", "--epochs", &max], &["--epochs", "1 to 1000000"]);
    // A batch larger than the data is one batch of all of it.
    let root = scratch("overflow");
    let out = root.join("out");
    let mut args = train_args(&out, &["--epochs", "1"]);
    let batch = args.iter().position(|&a| a == "--batch-size").unwrap() + 1;
    args[batch] = &max;
    succeeds(&args);
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn non_utf8_names_are_read_and_named() {
    let root = scratch("non-utf8");
    let data = root.join("data");
    write_dataset(&data, 3, 16);
    let odd = OsStr::from_bytes(b"caf\xe9");
    for folder in ["images", "masks"] {
        let mut name = odd.to_os_string();
        name.push(".png");
        std::fs::rename(
            data.join(folder).join("s2.png"),
            data.join(folder).join(&name),
        )
        .unwrap();
    }
    let out = root.join("out");
    succeeds(&train_args(&out, &["--data", path(&data), "--epochs", "1"]));
    // A bad mask under that name is named, not skipped.
    let mut name = odd.to_os_string();
    name.push(".png");
    GrayImage::from_pixel(16, 16, Luma([9]))
        .save(data.join("masks").join(&name))
        .unwrap();
    fails_with(
        &["eval", "--model", path(&out), "--data", path(&data)],
        &["caf", "mask value 9"],
    );
    // Weights from a file whose name is not UTF-8.
    let mut weights = odd.to_os_string();
    weights.push(".safetensors");
    let weights = root.join(weights);
    std::fs::copy(
        format!("{GOLDEN_UNET}/unet_reference.safetensors"),
        &weights,
    )
    .unwrap();
    let model = root.join("imported");
    let out = std::process::Command::new(UNET)
        .args([
            "import",
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
        ])
        .arg("--weights")
        .arg(&weights)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config = std::fs::read_to_string(model.join("config.json")).unwrap();
    assert!(config.contains("caf\u{fffd}.safetensors"), "{config}");
    let _ = std::fs::remove_dir_all(&root);
}

/// The graphics drivers a GPU backend's one-line error names.
fn drivers(backend: BackendKind) -> &'static str {
    match backend {
        BackendKind::Vulkan => "no Vulkan driver",
        _ => "no Vulkan, Metal or DirectX 12 driver",
    }
}

#[test]
fn a_gpu_that_is_not_there_is_one_line() {
    for backend in BackendKind::GPUS {
        let name = backend.name();
        fails_with(
            &[
                "predict",
                "--model",
                path(tiny_model()),
                "--input",
                "x.png",
                "--output",
                "y",
                "--backend",
                name,
                "--device",
                "99",
            ],
            &[
                &format!("--backend {name} --device 99"),
                "no usable GPU adapter",
                drivers(backend),
            ],
        );
    }
}

/// No GPU driver at all: `vulkan` has none without a Vulkan driver (it never
/// falls back to another API); `wgpu` would go on to OpenGL through Mesa's
/// EGL (llvmpipe), so that is hidden from it too.
#[test]
fn no_gpu_driver_is_one_line() {
    let root = scratch("no-driver");
    let run = root.join("out");
    for backend in BackendKind::GPUS {
        let mut hidden = vec!["VK_ICD_FILENAMES", "VK_DRIVER_FILES"];
        if backend == BackendKind::Wgpu {
            hidden.push("__EGL_VENDOR_LIBRARY_FILENAMES");
        }
        let mut command = std::process::Command::new(UNET);
        command
            .args(["train", "--backend", backend.name(), "--epochs", "1"])
            .args(["--out", path(&run)])
            .args(TINY);
        for variable in hidden {
            command.env(variable, "/nonexistent.json");
        }
        let out = command.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{backend}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        let expected = format!("--backend {backend}: no usable GPU adapter");
        assert!(stderr.contains(&expected), "{stderr}");
        assert!(stderr.contains(drivers(backend)), "{stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
        assert!(!run.exists(), "nothing written");
    }
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn device_lists_that_cannot_work_are_one_line() {
    let root = scratch("devices-refused");
    let out = root.join("out");
    let refused: [(&[&str], &[&str]); 5] = [
        (
            &["--devices", "0,0"],
            &["--devices 0,0", "each device named once"],
        ),
        (
            &["--devices", "x"],
            &["--devices", "'x' is not a device number"],
        ),
        (
            &["--devices", "0,1", "--device", "0"],
            &["--devices", "cannot be used with", "--device"],
        ),
        (
            &["--backend", "ndarray", "--devices", "0,1"],
            &["--devices 0,1", "--backend wgpu, vulkan or flex"],
        ),
        (
            &["--devices", "0,1", "--epoch-samples", "1"],
            &["--devices 0,1", "the 1 training images of an epoch"],
        ),
    ];
    for (extra, expected) in refused {
        fails_with(&train_args(&out, extra), expected);
        assert!(!out.exists(), "{extra:?}: nothing written");
    }
    // TINY sets --batch-size 4; these set their own.
    let small = |extra: &[&'static str]| {
        let mut args = vec!["train", "--out", path(&out), "--samples", "24"];
        args.extend(["--image-size", "16"]);
        args.extend(extra);
        args
    };
    fails_with(
        &small(&["--batch-size", "3", "--devices", "0,1"]),
        &[
            "--batch-size 3",
            "a multiple of the 2 devices of --devices 0,1",
        ],
    );
    // Lavapipe serves devices 0 and 1 (the machines this runs on have no third GPU).
    for backend in BackendKind::GPUS {
        let three = ["--batch-size", "6", "--backend", backend.name()];
        let three = small(&[&three[..], &["--devices", "0,1,2"]].concat());
        fails_with(&three, &["--devices 0,1,2"]);
        let stderr = String::from_utf8_lossy(&unet(&three).stderr).into_owned();
        assert!(!stderr.contains("--batch-size"), "{backend}: {stderr}");
    }
    assert!(!out.exists(), "nothing written");
    let _ = std::fs::remove_dir_all(&root);
}

/// `unet train --devices 0,1` on `backend` in `precision`, one epoch of
/// the tiny run without normalisation: it trains, says so, and records the
/// devices and the precision.
fn trains_on_two_devices(backend: BackendKind, precision: Precision) {
    let root = scratch(&format!("devices-{backend}-{precision}"));
    let out = root.join("run");
    let (backend_name, precision_name) = (backend.name(), precision.name());
    let extra = [
        "--backend",
        backend_name,
        "--devices",
        "0,1",
        "--precision",
        precision_name,
        "--epochs",
        "1",
        "--norm",
        "none",
        "--loss",
        "ce",
    ];
    let stdout = succeeds(&train_args(&out, &extra));
    let on = match precision {
        Precision::F32 => format!("on {backend} (devices 0,1):"),
        _ => format!("on {backend} (devices 0,1) in {precision}:"),
    };
    assert!(stdout.contains(&on), "{stdout}");
    let training = unet_train::model_dir::read_config(&out)
        .unwrap()
        .training
        .unwrap();
    assert_eq!(training.devices, Some(vec![0, 1]));
    assert_eq!(training.precision, precision);
    assert!(out.join("model.bpk").is_file());
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn training_on_two_flex_devices_records_them() {
    trains_on_two_devices(BackendKind::Flex, Precision::F32);
}

/// Each GPU backend and each precision once: `f32` on two `vulkan`
/// devices, `f16` on two `wgpu` devices. (On Mesa's lavapipe, which CI runs,
/// both backends run the same SPIR-V kernels, and every device autotunes
/// and compiles its kernels anew, so the four combinations would cost twice
/// the time to check the same two options; `--devices` on both backends
/// together is `a_software_adapter_serves_two_devices_per_gpu_backend`.)
#[test]
fn training_on_two_vulkan_devices_records_them() {
    trains_on_two_devices(BackendKind::Vulkan, Precision::F32);
}

#[test]
fn training_on_two_wgpu_devices_in_f16_records_them() {
    trains_on_two_devices(BackendKind::Wgpu, Precision::F16);
}

#[test]
fn half_precision_where_it_cannot_run_is_one_line() {
    let root = scratch("precision-refused");
    let out = root.join("out");
    fails_with(
        &train_args(&out, &["--backend", "ndarray", "--precision", "f16"]),
        &["--precision f16", "f32 with --backend ndarray"],
    );
    fails_with(
        &train_args(&out, &["--precision", "f8"]),
        &["--precision", "unknown precision 'f8'"],
    );
    assert!(!out.exists(), "nothing written");
    // The program refuses bf16 exactly where the device says it lacks it
    // (lavapipe's Vulkan driver has no bfloat16, nor has WGSL on any GPU).
    for backend in BackendKind::GPUS {
        let args = ["--backend", backend.name(), "--precision", "bf16"];
        let mut args = train_args(&out, &args);
        args.extend(["--epochs", "1"]);
        if backend.device().supports_dtype(DType::BF16) {
            succeeds(&args);
            std::fs::remove_dir_all(&out).unwrap();
        } else {
            fails_with(&args, &["--precision bf16", "does not compute in bf16"]);
            assert!(!out.exists(), "{backend}: nothing written");
        }
    }
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn resize_sizes_out_of_range_are_named() {
    let root = scratch("resize");
    let data = root.join("data");
    write_dataset(&data, 2, 16);
    fails_with(
        &["train", "--data", path(&data), "--image-size", "4294967312"],
        &["--image-size 4294967312", "1 to 65536"],
    );
    fails_with(
        &["train", "--data", path(&data), "--image-size", "0"],
        &["--image-size 0", "at least 1"],
    );
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn palette_masks_are_read_by_index() {
    let root = scratch("palette");
    let data = root.join("data");
    write_dataset(&data, 3, 16);
    // Rewrite every mask as a palette PNG: index 1 is VOC's dark red.
    for i in 0..3 {
        let path = data.join(format!("masks/s{i}.png"));
        let gray = image::open(&path).unwrap().to_luma8();
        let indices: Vec<u8> = gray.pixels().map(|p| u8::from(p.0[0] > 0)).collect();
        let file = std::fs::File::create(&path).unwrap();
        let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), 16, 16);
        encoder.set_color(png::ColorType::Indexed);
        encoder.set_depth(png::BitDepth::Eight);
        encoder.set_palette(vec![0u8, 0, 0, 128, 0, 0]);
        encoder
            .write_header()
            .unwrap()
            .write_image_data(&indices)
            .unwrap();
    }
    let out = root.join("out");
    succeeds(&train_args(&out, &["--data", path(&data), "--epochs", "1"]));
    let scores = succeeds(&["eval", "--model", path(&out), "--data", path(&data)]);
    assert!(scores.contains("mean*"), "{scores}");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn predict_goes_on_past_a_bad_image_and_says_which() {
    let root = scratch("bad-image");
    let data = root.join("data");
    write_dataset(&data, 3, 16);
    std::fs::write(data.join("images/s1.png"), b"\x89PNG broken").unwrap();
    let out = root.join("masks");
    let run = unet(&[
        "predict",
        "--model",
        path(tiny_model()),
        "--input",
        path(&data.join("images")),
        "--output",
        path(&out),
    ]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(
        lines[0].contains("images/s1.png") && lines[0].contains("cannot read image"),
        "{stderr}"
    );
    assert!(
        lines[1].contains("1 of 3 images failed") && lines[1].contains("other 2"),
        "{stderr}"
    );
    assert!(out.join("s0_mask.png").is_file() && out.join("s2_mask.png").is_file());
    assert!(!out.join("s1_mask.png").exists());
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn predict_refuses_to_write_into_its_input_folder() {
    let root = scratch("same-folder");
    let data = root.join("data");
    write_dataset(&data, 2, 16);
    let images = data.join("images");
    fails_with(
        &[
            "predict",
            "--model",
            path(tiny_model()),
            "--input",
            path(&images),
            "--output",
            path(&images),
        ],
        &["--output", "another folder than the images'"],
    );
    // One image of the folder, its masks asked for beside it.
    let one = images.join("s0.png");
    fails_with(
        &[
            "predict",
            "--model",
            path(tiny_model()),
            "--input",
            path(&one),
            "--output",
            path(&images),
        ],
        &["--output", "another folder than the images'"],
    );
    assert_eq!(
        std::fs::read_dir(&images).unwrap().count(),
        2,
        "nothing written"
    );
    fails_with(
        &[
            "predict",
            "--model",
            path(tiny_model()),
            "--input",
            path(&images),
            "--output",
            path(tiny_model()),
        ],
        &["--output", "not a model directory"],
    );
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn an_edited_config_with_a_huge_dilation_is_named() {
    let root = scratch("dilation");
    let model = root.join("model");
    std::fs::create_dir_all(&model).unwrap();
    std::fs::copy(tiny_model().join("model.bpk"), model.join("model.bpk")).unwrap();
    let config = std::fs::read_to_string(tiny_model().join("config.json")).unwrap();
    let value: serde_json::Value = serde_json::from_str(&config).unwrap();
    let mut value = value;
    value["model"]["padding"] = "Valid".into();
    value["model"]["bottleneck_dilations"] = serde_json::json!([usize::MAX / 2]);
    std::fs::write(model.join("config.json"), value.to_string()).unwrap();
    let data = root.join("data");
    write_dataset(&data, 2, 16);
    fails_with(
        &["eval", "--model", path(&model), "--data", path(&data)],
        &["bottleneck dilation", "more than 256"],
    );
    let _ = std::fs::remove_dir_all(&root);
}

/// A tiny run (with `extra` options) trained for `epochs` epochs, its
/// configuration then asking for one more: what `--resume` continues.
fn run_to_extend(root: &Path, epochs: usize, extra: &[&str]) -> PathBuf {
    let out = root.join("run");
    let count = epochs.to_string();
    let mut options = vec!["--epochs", &count];
    options.extend(extra);
    succeeds(&train_args(&out, &options));
    extend(&out, epochs);
    out
}

/// Asks the run in `out`, trained for `epochs` epochs, for one more.
fn extend(out: &Path, epochs: usize) {
    let config = std::fs::read_to_string(out.join("config.json")).unwrap();
    let extended = config.replace(
        &format!("\"epochs\": {epochs}"),
        &format!("\"epochs\": {}", epochs + 1),
    );
    assert_ne!(config, extended);
    std::fs::write(out.join("config.json"), extended).unwrap();
}

/// A run on a folder records the folder whole and its images by name:
/// resumed from another working folder it finds the data, a folder whose
/// images changed since is refused on resume and by `eval
/// --validation-only` (the split would put other images in validation),
/// and a folder that moved is given with `--data`.
#[test]
fn a_run_keeps_to_the_images_it_started_with() {
    let root = scratch("same-images");
    let data = root.join("data");
    write_dataset(&data, 5, 16);
    let run = root.join("run");
    let trained = std::process::Command::new(UNET)
        .args(train_args(&run, &["--data", "data", "--epochs", "1"]))
        .current_dir(&root)
        .output()
        .unwrap();
    assert!(
        trained.status.success(),
        "{}",
        String::from_utf8_lossy(&trained.stderr)
    );
    extend(&run, 1);
    for kind in ["images", "masks"] {
        let folder = data.join(kind);
        std::fs::copy(folder.join("s0.png"), folder.join("s9.png")).unwrap();
    }
    let changed = ["5 at its start, 6 now", "'s9' new"];
    fails_with(&["train", "--resume", path(&run)], &changed);
    let eval = [
        "eval",
        "--model",
        path(&run),
        "--data",
        path(&data),
        "--validation-only",
    ];
    fails_with(&eval, &changed);
    for kind in ["images", "masks"] {
        std::fs::remove_file(data.join(kind).join("s9.png")).unwrap();
    }
    succeeds(&eval);
    let moved = root.join("moved");
    std::fs::rename(&data, &moved).unwrap();
    fails_with(
        &["train", "--resume", path(&run)],
        &[path(&data), "no such directory"],
    );
    let stdout = succeeds(&["train", "--resume", path(&run), "--data", path(&moved)]);
    assert!(stdout.contains(path(&moved)), "{stdout}");
    fails_with(
        &[
            "train",
            "--resume",
            path(&run_to_extend(&root.join("synthetic"), 1, &[])),
            "--data",
            path(&moved),
        ],
        &["--data", "only for a run on a folder"],
    );
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_damaged_optimizer_checkpoint_falls_back_and_says_so() {
    let root = scratch("damaged-optim");
    let run = run_to_extend(&root, 3, &[]);
    std::fs::write(run.join("checkpoint/optim-3.bpk"), b"").unwrap();
    let out = unet(&["train", "--resume", path(&run)]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("checkpoint/optim-3.bpk (epoch 3) does not load"),
        "{stderr}"
    );
    assert!(stdout.contains("from epoch 3"), "{stdout}");
    assert!(
        run.join("superseded/epoch-3/checkpoint/optim-3.bpk")
            .is_file(),
        "set aside, not deleted"
    );
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_damaged_model_checkpoint_falls_back_and_keeps_the_files() {
    let root = scratch("damaged-model");
    let run = run_to_extend(&root, 3, &[]);
    let model = run.join("checkpoint/model-3.bpk");
    let bytes = std::fs::read(&model).unwrap();
    std::fs::write(&model, &bytes[..bytes.len() / 2]).unwrap();
    let out = unet(&["train", "--resume", path(&run)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("model-3.bpk (epoch 3) does not load"),
        "{stderr}"
    );
    for kept in [
        "checkpoint/model-3.bpk",
        "checkpoint/optim-3.bpk",
        "checkpoint/scheduler-3.bpk",
    ] {
        let file = run.join("superseded/epoch-3").join(kept);
        assert!(file.is_file(), "{} kept", file.display());
    }
    assert!(run.join("superseded/epoch-3/train/epoch-3").is_dir());
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_damaged_metric_log_is_named() {
    let root = scratch("damaged-log");
    let run = run_to_extend(&root, 2, &[]);
    let logs: Vec<PathBuf> = std::fs::read_dir(run.join("valid/epoch-2"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    std::fs::write(&logs[0], "0.5\nnot a number\n").unwrap();
    fails_with(
        &["train", "--resume", path(&run)],
        &[path(&logs[0]), "damaged metric log", "line 2"],
    );
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_resumed_run_keeps_its_backend_unless_told() {
    let root = scratch("resume-backend");
    let run = run_to_extend(&root, 1, &["--backend", "ndarray"]);
    let stdout = succeeds(&["train", "--resume", path(&run)]);
    assert!(stdout.contains(" on ndarray: "), "{stdout}");
    let run = run_to_extend(&root.join("again"), 1, &["--backend", "ndarray"]);
    let stdout = succeeds(&["train", "--resume", path(&run), "--backend", "flex"]);
    assert!(stdout.contains(" on flex: "), "{stdout}");
    let _ = std::fs::remove_dir_all(&root);
}

/// Runs `unet args` with stdout a pipe that is closed after its first line
/// (as `unet ... | head -1` does), and returns the exit status and stderr;
/// fails if the program is still running after five minutes.
fn with_stdout_closed_after_a_line(args: &[&str]) -> (std::process::ExitStatus, String) {
    use std::io::{BufRead, BufReader, Read};
    use std::process::{Command, Stdio};
    let mut child = Command::new(UNET)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > std::time::Duration::from_secs(300) {
            child.kill().unwrap();
            panic!("unet {args:?} still running 5 min after its stdout closed");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (status, stderr)
}

#[test]
fn a_closed_stdout_stops_the_lines_not_the_work() {
    let root = scratch("closed-stdout");
    let run = root.join("run");
    let (status, stderr) = with_stdout_closed_after_a_line(&train_args(&run, &["--epochs", "2"]));
    assert!(status.success(), "train: {status}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(run.join("model.bpk").is_file() && run.join("metrics.csv").is_file());
    let data = root.join("data");
    write_dataset(&data, 3, 16);
    let (images, out) = (data.join("images"), root.join("masks"));
    let args = predict_args(&run, &images, &out);
    let (status, stderr) = with_stdout_closed_after_a_line(&args);
    assert!(status.success(), "predict: {status}: {stderr}");
    for i in 0..3 {
        assert!(
            out.join(format!("s{i}_mask.png")).is_file(),
            "s{i}: {stderr}"
        );
    }
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn eval_never_writes_over_an_existing_file() {
    let root = scratch("eval-json");
    let data = root.join("data");
    write_dataset(&data, 2, 16);
    let mine = root.join("mine.json");
    std::fs::write(&mine, "mine").unwrap();
    let config = tiny_model().join("config.json");
    let before = std::fs::read(&config).unwrap();
    for target in [&mine, &config, &root] {
        fails_with(
            &[
                "eval",
                "--model",
                path(tiny_model()),
                "--data",
                path(&data),
                "--json",
                path(target),
            ],
            &["--json", "a new file", "exists"],
        );
    }
    assert_eq!(std::fs::read_to_string(&mine).unwrap(), "mine");
    assert_eq!(std::fs::read(&config).unwrap(), before);
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn train_writes_only_into_a_new_or_empty_folder() {
    let root = scratch("train-out");
    let folder = root.join("mine");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("metrics.csv"), "mine").unwrap();
    fails_with(
        &train_args(&folder, &["--epochs", "1"]),
        &[
            "--out",
            "a folder holding other files",
            "new or empty folder",
        ],
    );
    assert_eq!(
        std::fs::read_to_string(folder.join("metrics.csv")).unwrap(),
        "mine"
    );
    assert_eq!(std::fs::read_dir(&folder).unwrap().count(), 1);
    let file = root.join("notes.txt");
    std::fs::write(&file, "mine").unwrap();
    fails_with(&train_args(&file, &["--epochs", "1"]), &["--out", "a file"]);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "mine");
    let empty = root.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::write(empty.join(".gitkeep"), "").unwrap();
    succeeds(&train_args(&empty, &["--epochs", "1"]));
    assert!(empty.join("model.bpk").is_file());
    let _ = std::fs::remove_dir_all(&root);
}

/// The reference weights with one value of `tensor` set to NaN.
fn with_a_nan(tensor: &str, to: &Path) {
    rewrite_reference(to, |name, view| {
        let mut data = view.data().to_vec();
        if name == tensor {
            data[..4].copy_from_slice(&f32::NAN.to_le_bytes());
        }
        (view.dtype(), data)
    });
}

#[test]
fn import_refuses_weights_the_program_cannot_use() {
    let root = scratch("import-unusable");
    let weights = root.join("nan.safetensors");
    with_a_nan("inc.conv1.weight", &weights);
    let model = root.join("model");
    fails_with(
        &import_args(&weights, "3", &model),
        &[path(&weights), "NaN or infinite", "[8, 3, 3, 3]"],
    );
    // Four channels: the layers take them, the program reads no such images.
    let reference = PathBuf::from(format!("{GOLDEN_UNET}/unet_reference.safetensors"));
    fails_with(
        &import_args(&reference, "4", &model),
        &["4 image channels", "only 1 (grayscale) and 3 (RGB)"],
    );
    assert!(!model.exists(), "nothing written");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn predict_writes_over_its_own_files_only() {
    let root = scratch("own-files");
    let data = root.join("data");
    write_dataset(&data, 2, 16);
    let (images, out) = (data.join("images"), root.join("masks"));
    let args = predict_args(tiny_model(), &images, &out);
    succeeds(&args);
    // Again: its own files are written over.
    succeeds(&args);
    // A file of the user's under one of the names: that image is refused
    // before anything of it is written, the other goes on.
    let mine = out.join("s1_overlay.png");
    std::fs::remove_file(out.join("s1_mask.png")).unwrap();
    std::fs::copy(images.join("s1.png"), &mine).unwrap();
    let before = std::fs::read(&mine).unwrap();
    let run = unet(&args);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(path(&mine)) && stderr.contains("not written by unet predict"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&mine).unwrap(), before);
    assert!(!out.join("s1_mask.png").exists(), "nothing of s1 written");
    assert!(out.join("s0_mask.png").is_file());
    let _ = std::fs::remove_dir_all(&root);
}
