//! Benchmarks of the convolution layers and the U-Net, one JSON line per
//! measurement, in the schema of the PyTorch baselines in `../shared/bench`
//! so that `scripts/bench-vs-pytorch.sh` can set them side by side.
//!
//! ```sh
//! cargo bench --profile dev --bench bench -- conv [--backend flex|ndarray|wgpu|vulkan] [--reps 10] [--warmup 3] [--only NAME] [--impl ours|burn|burn-per-group]
//! cargo bench --profile dev --bench bench -- unet [--mode train|infer] [--size 128] [--batch 4] [--base 16] [--precision f32|f16|bf16] [--backend ..] [--steps 10] [--warmup 3]
//! cargo bench --profile dev --bench bench -- predict [--size 4096] [--backend ..]
//! ```
//!
//! (`--profile dev` reuses the test build, whose dependencies are fully
//! optimised; a release build of Burn takes half an hour on two cores.)
//!
//! `conv` times each layer of `../shared/bench/torch_conv_bench.py` forward and forward+backward
//! (gradients of input, weight and bias), for this project's layer (`ours`)
//! and Burn's plain `burn::nn::conv` layer (`burn`) on the same input; with
//! `--impl burn-per-group`, a grouped layer (more than one channel per group)
//! as one ungrouped Burn layer per group, the outputs concatenated: the form
//! that would give grouped convolutions Burn's im2col gradients on GPUs
//! (not used by the layers: on lavapipe it measured the same or slower,
//! `docs/performance.md`). `unet`
//! times a training step (forward, cross-entropy, backward, Adam) or an
//! inference pass of the U-Net of `torch_unet_bench.py`. `predict` predicts
//! a `size x size` image made of the nuclei tiles with the default model
//! (automatic tiling) in a process of its own, and reports the time per
//! megapixel and the peak resident memory.

use std::time::Instant;

use burn::module::Module;
use burn::nn::PaddingConfig2d;
use burn::nn::conv as burn_conv;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Distribution, FloatDType, Int, Tensor};
use layers::{Conv2dConfig, ConvTranspose2dConfig, Padding};
use unet::{UNet, UNetConfig, cross_entropy};
use unet_train::precision::{LossScale, ScaleRule};
use unet_train::{BackendKind, Precision};

/// A layer of the benchmark: name, input shape, and how to build it.
struct Case {
    name: &'static str,
    input: [usize; 4],
    kind: Kind,
}

#[derive(Clone, Copy)]
enum Kind {
    /// `Conv2d(c_in, c_out, k, padding = dilation * (k - 1) / 2, dilation, groups)`.
    Conv {
        out: usize,
        kernel: usize,
        dilation: usize,
        groups: usize,
    },
    /// `ConvTranspose2d(c_in, c_out, k, stride = k)`.
    Transposed { out: usize, kernel: usize },
}

const CASES: [Case; 7] = [
    Case {
        name: "conv3x3_c32_128x128",
        input: [4, 32, 128, 128],
        kind: Kind::Conv {
            out: 32,
            kernel: 3,
            dilation: 1,
            groups: 1,
        },
    },
    Case {
        name: "conv3x3_c64_64x64",
        input: [4, 64, 64, 64],
        kind: Kind::Conv {
            out: 64,
            kernel: 3,
            dilation: 1,
            groups: 1,
        },
    },
    Case {
        name: "convT2x2s2_c64to32_32x32",
        input: [4, 64, 32, 32],
        kind: Kind::Transposed { out: 32, kernel: 2 },
    },
    Case {
        name: "depthwise3x3_c64_64x64",
        input: [4, 64, 64, 64],
        kind: Kind::Conv {
            out: 64,
            kernel: 3,
            dilation: 1,
            groups: 64,
        },
    },
    Case {
        name: "pointwise1x1_c64_64x64",
        input: [4, 64, 64, 64],
        kind: Kind::Conv {
            out: 64,
            kernel: 1,
            dilation: 1,
            groups: 1,
        },
    },
    Case {
        name: "dilated3x3_d2_c64_64x64",
        input: [4, 64, 64, 64],
        kind: Kind::Conv {
            out: 64,
            kernel: 3,
            dilation: 2,
            groups: 1,
        },
    },
    Case {
        name: "grouped3x3_g4_c64_64x64",
        input: [4, 64, 64, 64],
        kind: Kind::Conv {
            out: 64,
            kernel: 3,
            dilation: 1,
            groups: 4,
        },
    },
];

/// Whose layer a measurement times.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Impl {
    Ours,
    Burn,
    /// A grouped convolution as one ungrouped Burn convolution per group.
    BurnPerGroup,
}

impl Impl {
    fn name(self) -> &'static str {
        match self {
            Impl::Ours => "ours",
            Impl::Burn => "burn",
            Impl::BurnPerGroup => "burn-per-group",
        }
    }
}

/// One layer, built by this project or by Burn.
enum Layer {
    Ours(layers::Conv2d),
    OursTransposed(layers::ConvTranspose2d),
    Burn(burn_conv::Conv2d),
    BurnTransposed(burn_conv::ConvTranspose2d),
    BurnPerGroup(Vec<burn_conv::Conv2d>),
}

impl Layer {
    /// The layer of `kind` by `implementation`; `None` where that
    /// implementation has no such layer (one convolution per group of an
    /// ungrouped or depthwise convolution).
    fn build(kind: Kind, c_in: usize, implementation: Impl, device: &Device) -> Option<Self> {
        match (kind, implementation) {
            (
                Kind::Conv {
                    out,
                    kernel,
                    dilation,
                    groups,
                },
                Impl::BurnPerGroup,
            ) if groups > 1 && c_in / groups > 1 => {
                let one =
                    |_| burn_conv2d([c_in / groups, out / groups], kernel, dilation, 1, device);
                Some(Layer::BurnPerGroup((0..groups).map(one).collect()))
            }
            (_, Impl::BurnPerGroup) => None,
            (kind, Impl::Ours) => Some(Layer::ours(kind, c_in, device)),
            (kind, Impl::Burn) => Some(Layer::burn(kind, c_in, device)),
        }
    }

    fn ours(kind: Kind, c_in: usize, device: &Device) -> Self {
        match kind {
            Kind::Conv {
                out,
                kernel,
                dilation,
                groups,
            } => Layer::Ours(
                Conv2dConfig::new(c_in, out, [kernel; 2])
                    .with_padding(Padding::uniform(dilation * (kernel - 1) / 2))
                    .with_dilation([dilation; 2])
                    .with_groups(groups)
                    .init(device),
            ),
            Kind::Transposed { out, kernel } => Layer::OursTransposed(
                ConvTranspose2dConfig::new(c_in, out, [kernel; 2])
                    .with_stride([kernel; 2])
                    .init(device),
            ),
        }
    }

    fn burn(kind: Kind, c_in: usize, device: &Device) -> Self {
        match kind {
            Kind::Conv {
                out,
                kernel,
                dilation,
                groups,
            } => Layer::Burn(burn_conv2d([c_in, out], kernel, dilation, groups, device)),
            Kind::Transposed { out, kernel } => Layer::BurnTransposed(
                burn_conv::ConvTranspose2dConfig::new([c_in, out], [kernel; 2])
                    .with_stride([kernel; 2])
                    .init(device),
            ),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Layer::Ours(l) => l.forward(x),
            Layer::OursTransposed(l) => l.forward(x),
            Layer::Burn(l) => l.forward(x),
            Layer::BurnTransposed(l) => l.forward(x),
            Layer::BurnPerGroup(groups) => {
                let outputs = x
                    .chunk(groups.len(), 1)
                    .into_iter()
                    .zip(groups)
                    .map(|(x, l)| l.forward(x))
                    .collect();
                Tensor::cat(outputs, 1)
            }
        }
    }
}

/// Burn's `Conv2d(channels[0], channels[1], kernel, padding = dilation * (kernel - 1) / 2, dilation, groups)`.
fn burn_conv2d(
    channels: [usize; 2],
    kernel: usize,
    dilation: usize,
    groups: usize,
    device: &Device,
) -> burn_conv::Conv2d {
    let pad = dilation * (kernel - 1) / 2;
    burn_conv::Conv2dConfig::new(channels, [kernel; 2])
        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
        .with_dilation([dilation; 2])
        .with_groups(groups)
        .init(device)
}

/// Forward FLOPs, a multiply-add counting two (as the PyTorch script).
fn forward_flops(case: &Case, output: [usize; 4]) -> f64 {
    let [n, c_in, h, w] = case.input;
    match case.kind {
        Kind::Conv { kernel, groups, .. } => {
            let [_, c_out, ho, wo] = output;
            2.0 * (n * c_out * ho * wo * (c_in / groups) * kernel * kernel) as f64
        }
        Kind::Transposed { out, kernel } => 2.0 * (n * c_in * h * w * out * kernel * kernel) as f64,
    }
}

/// The median time of `run` in seconds, after `warmup` runs; `run` must
/// wait for its results.
fn median_seconds(warmup: usize, reps: usize, mut run: impl FnMut()) -> f64 {
    for _ in 0..warmup {
        run();
    }
    let mut times: Vec<f64> = (0..reps.max(1))
        .map(|_| {
            let start = Instant::now();
            run();
            start.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn sync(device: &Device) {
    device.sync().expect("the device finishes its work");
}

struct Options {
    backend: BackendKind,
    warmup: usize,
    reps: usize,
    only: Option<String>,
    /// `conv`: whose layers to time (default ours and Burn's).
    impls: Vec<Impl>,
    mode: String,
    /// The side of the square image (`unet`: 128, `predict`: 4096).
    size: Option<usize>,
    /// `unet`: images per step.
    batch: usize,
    /// `unet`: the network's base width.
    base: usize,
    /// `unet`: the float type of the forward and backward passes.
    precision: Precision,
}

fn bench_conv(options: &Options) {
    let device = options.backend.device();
    let autodiff = device.clone().autodiff();
    for case in &CASES {
        if options
            .only
            .as_ref()
            .is_some_and(|only| !case.name.contains(only.as_str()))
        {
            continue;
        }
        for &implementation in &options.impls {
            let c_in = case.input[1];
            let Some(layer) = Layer::build(case.kind, c_in, implementation, &device) else {
                continue;
            };
            let x = Tensor::<4>::random(case.input, Distribution::Normal(0.0, 1.0), &device);
            let output = layer.forward(x.clone()).dims();
            let flops = forward_flops(case, output);
            let fwd = median_seconds(options.warmup, options.reps, || {
                let _ = layer.forward(x.clone());
                sync(&device);
            });
            let trained = Layer::build(case.kind, c_in, implementation, &autodiff)
                .expect("built on the other device");
            let x = Tensor::<4>::from_data(x.clone().into_data(), &autodiff).require_grad();
            let dy = Tensor::<4>::random(output, Distribution::Normal(0.0, 1.0), &autodiff);
            let fwd_bwd = median_seconds(options.warmup, options.reps, || {
                let y = trained.forward(x.clone());
                let _gradients = (y * dy.clone()).sum().backward();
                sync(&autodiff);
            });
            println!(
                "{{\"layer\": \"{}\", \"impl\": \"{}\", \"backend\": \"{}\", \"input\": {:?}, \"output\": {:?}, \
                 \"fwd_ms\": {:.3}, \"fwd_gflops\": {:.2}, \"fwd_bwd_ms\": {:.3}, \"fwd_bwd_gflops\": {:.2}, \"fwd_gflop\": {:.4}}}",
                case.name,
                implementation.name(),
                options.backend,
                case.input,
                output,
                fwd * 1e3,
                flops / fwd / 1e9,
                fwd_bwd * 1e3,
                3.0 * flops / fwd_bwd / 1e9,
                flops / 1e9,
            );
        }
    }
}

/// Peak resident memory of this process in bytes (Linux), if known.
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn bench_unet(options: &Options) {
    // The network of torch_unet_bench.py: base 16 (--base), depth 4, 2
    // classes; by default batch 4 of 1x128x128, as its defaults.
    let (batch, size, classes, base) =
        (options.batch, options.size.unwrap_or(128), 2, options.base);
    let config = UNetConfig::new(1, classes)
        .with_base_width(base)
        .with_depth(4);
    let plain = options.backend.device();
    let train = options.mode == "train";
    let device = if train {
        plain.clone().autodiff()
    } else {
        plain.clone()
    };
    device.seed(0);
    let model = config.init(&device);
    let x = Tensor::<4>::random(
        [batch, 1, size, size],
        Distribution::Normal(0.0, 1.0),
        &device,
    )
    .cast(options.precision.dtype());
    let target = Tensor::<3, Int>::random(
        [batch, size, size],
        Distribution::Uniform(0.0, classes as f64),
        &device,
    );
    let mut step = Step {
        model,
        optimizer: AdamConfig::new().with_epsilon(1e-8).init(),
        scale: (train && options.precision.scales_loss())
            .then(|| LossScale::new(ScaleRule::default(), &device)),
    };
    let mut times = Vec::new();
    for i in 0..options.warmup + options.reps {
        let start = Instant::now();
        if train {
            step.train(x.clone(), target.clone());
        } else {
            let _ = step
                .model
                .forward(x.clone())
                .slice([0..1, 0..1, 0..1, 0..1])
                .into_scalar::<f32>();
        }
        sync(&device);
        if i >= options.warmup {
            times.push(start.elapsed().as_secs_f64());
        }
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let params = step.model.num_params();
    // Forward FLOPs from the layer table; a training step counts three
    // forward passes (forward, and the two gradients of every product).
    let forward = unet::summary(&step.model, [1, 1, size, size]).map_or(0, |s| s.total_flops());
    let step_flops = batch as f64 * forward as f64 * if train { 3.0 } else { 1.0 };
    // What the GPU allocator holds after the steps (CubeCL keeps pages for
    // reuse: about the peak); `null` on the CPU backends.
    let reserved = plain
        .memory_pool_usage()
        .map_or("null".to_string(), |usage| usage.bytes_reserved.to_string());
    println!(
        "{{\"mode\": \"{}\", \"backend\": \"{}\", \"precision\": \"{}\", \"images_per_s\": {:.3}, \
         \"ms_per_step_median\": {:.2}, \"ms_per_step_min\": {:.2}, \"ms_per_step_max\": {:.2}, \
         \"params\": {params}, \"batch\": {batch}, \"size\": {size}, \"base\": {base}, \
         \"peak_rss_bytes\": {}, \"device_reserved_bytes\": {reserved}, \"steps\": {}, \"gflops\": {:.1}}}",
        options.mode,
        options.backend,
        options.precision,
        batch as f64 / median,
        median * 1e3,
        times[0] * 1e3,
        times[times.len() - 1] * 1e3,
        peak_rss().map_or("null".to_string(), |b| b.to_string()),
        options.reps,
        step_flops / median / 1e9,
    );
}

/// A training step as `unet train` makes it: the input in the run's
/// precision, the loss on `f32` logits, Adam on `f32` weights, and with
/// `f16` the loss scaled and the gradients unscaled and checked.
struct Step {
    model: UNet,
    optimizer: ModuleOptimizer,
    scale: Option<LossScale>,
}

impl Step {
    fn train(&mut self, x: Tensor<4>, target: Tensor<3, Int>) {
        let model = self.model.clone();
        let logits = model.forward(x).cast(FloatDType::F32);
        let loss = cross_entropy(logits, target);
        let scaled = match &self.scale {
            Some(scale) => scale.scaled(loss.clone()),
            None => loss.clone(),
        };
        let gradients = GradientsParams::from_grads(scaled.backward(), &model);
        let gradients = match self.scale.take() {
            Some(scale) => {
                let (gradients, next) = scale.unscale(&model, gradients);
                self.scale = Some(next);
                gradients
            }
            None => Some(gradients),
        };
        if let Some(gradients) = gradients {
            self.model = self.optimizer.step(1e-3, model, gradients);
        }
        let _ = loss.into_scalar::<f32>();
    }
}

const NUCLEI: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/nuclei-dsb2018");

/// Where `predict` keeps its model and image between its two processes.
fn predict_dir(size: usize) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("unet-bench-predict-{size}"))
}

/// Writes the default model (seeded, untrained: the cost does not depend on
/// the weights) and a `size x size` image made of the nuclei tiles, then
/// predicts it in a fresh process, so that the peak memory is prediction's.
fn bench_predict(options: &Options) {
    let side = options.size.unwrap_or(4096);
    let dir = predict_dir(side);
    std::fs::create_dir_all(&dir).unwrap_or_else(|err| fail(&err.to_string()));
    let model = dir.join("model");
    if !model.join("config.json").is_file() {
        let device = Device::flex();
        device.seed(0);
        let config = UNetConfig::new(1, 2).with_base_width(16).with_depth(4);
        let run = unet_train::config::RunConfig::trained(
            config.clone(),
            unet_train::config::Preprocess::default(),
            unet_train::config::TrainingConfig::synthetic(),
        );
        unet_train::model_dir::save(&model, &run, config.init(&device))
            .unwrap_or_else(|err| fail(&err.to_string()));
    }
    let image = dir.join("image.png");
    if !image.is_file() {
        mosaic(side)
            .save(&image)
            .unwrap_or_else(|err| fail(&err.to_string()));
    }
    let status = std::process::Command::new(
        std::env::current_exe().unwrap_or_else(|err| fail(&err.to_string())),
    )
    .args([
        "predict-run",
        "--size",
        &side.to_string(),
        "--backend",
        options.backend.name(),
    ])
    .status()
    .unwrap_or_else(|err| fail(&err.to_string()));
    if !status.success() {
        fail("the prediction failed");
    }
}

/// A `side x side` grayscale image of the nuclei tiles, mirrored at every edge.
fn mosaic(side: usize) -> image::GrayImage {
    let tiles: Vec<image::GrayImage> = (0..4)
        .flat_map(|r| (0..3).map(move |c| format!("{NUCLEI}/images/tile_r{r}_c{c}.png")))
        .map(|path| {
            image::open(&path)
                .unwrap_or_else(|err| fail(&format!("{path}: {err}")))
                .to_luma8()
        })
        .collect();
    image::GrayImage::from_fn(side as u32, side as u32, |x, y| {
        let (tx, ty) = (x / 128, y / 128);
        let (mut u, mut v) = (x % 128, y % 128);
        if tx % 2 == 1 {
            u = 127 - u;
        }
        if ty % 2 == 1 {
            v = 127 - v;
        }
        *tiles[((tx + 5 * ty) % 12) as usize].get_pixel(u, v)
    })
}

/// The second process of `predict`: loads, predicts (automatic tiling),
/// writes the mask and overlay, reports time and peak memory.
fn predict_run(options: &Options) {
    let side = options.size.unwrap_or(4096);
    let dir = predict_dir(side);
    let device = options.backend.device();
    let model = unet_train::model_dir::load(&dir.join("model"), &device)
        .unwrap_or_else(|err| fail(&err.to_string()));
    let opts = unet_train::predict::PredictOptions::default();
    let start = Instant::now();
    let out = dir.join("out");
    std::fs::create_dir_all(&out).unwrap_or_else(|err| fail(&err.to_string()));
    let image = dir.join("image.png");
    let prediction =
        unet_train::predict::predict_file(&model, &image, &out, &opts, &device, &mut |_, _| {})
            .unwrap_or_else(|err| fail(&err.to_string()));
    let seconds = start.elapsed().as_secs_f64();
    let megapixels = (side * side) as f64 / 1e6;
    println!(
        "{{\"mode\": \"predict\", \"backend\": \"{}\", \"size\": {}, \"tiles\": {}, \"tile\": {:?}, \
         \"seconds\": {seconds:.2}, \"seconds_per_megapixel\": {:.3}, \"peak_rss_bytes\": {}}}",
        options.backend,
        side,
        prediction.layout.tiles(),
        prediction.layout.input,
        seconds / megapixels,
        peak_rss().map_or("null".to_string(), |b| b.to_string()),
    );
}

fn main() {
    // As the `unet` program does (`unet_train::allocator`).
    unet_train::allocator::keep_freed_memory();
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let what = args.next().unwrap_or_default();
    let mut options = Options {
        backend: BackendKind::Flex,
        warmup: 3,
        reps: 10,
        only: None,
        impls: vec![Impl::Ours, Impl::Burn],
        mode: "train".into(),
        size: None,
        batch: 4,
        base: 16,
        precision: Precision::F32,
    };
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .unwrap_or_else(|| fail(&format!("{flag} needs a value")));
        let count = || {
            value
                .parse()
                .unwrap_or_else(|_| fail(&format!("{flag} {value}: not a count")))
        };
        match flag.as_str() {
            "--backend" => {
                options.backend = value.parse().unwrap_or_else(|err| fail(&format!("{err}")))
            }
            "--warmup" => options.warmup = count(),
            "--reps" | "--steps" => options.reps = count(),
            "--only" => options.only = Some(value),
            "--impl" => {
                let all = [Impl::Ours, Impl::Burn, Impl::BurnPerGroup];
                let chosen = all.into_iter().find(|i| i.name() == value);
                let chosen = chosen.unwrap_or_else(|| {
                    fail(&format!(
                        "--impl {value}: not one of ours, burn, burn-per-group"
                    ))
                });
                options.impls = vec![chosen];
            }
            "--mode" if value == "train" || value == "infer" => options.mode = value,
            "--size" => options.size = Some(count()),
            "--batch" => options.batch = count(),
            "--base" => options.base = count(),
            "--precision" => {
                options.precision = value.parse().unwrap_or_else(|err| fail(&format!("{err}")))
            }
            _ => fail(&format!("unknown option {flag} {value}")),
        }
    }
    match what.as_str() {
        "conv" => bench_conv(&options),
        "unet" => bench_unet(&options),
        "predict" => bench_predict(&options),
        "predict-run" => predict_run(&options),
        _ => fail("the first argument is `conv`, `unet` or `predict`"),
    }
}

fn fail(message: &str) -> ! {
    eprintln!("bench: {message}");
    std::process::exit(2)
}
