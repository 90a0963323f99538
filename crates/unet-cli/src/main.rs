//! `unet`: train U-Nets for image segmentation, predict masks, evaluate and
//! import PyTorch weights. Errors are one line naming the file or value at
//! fault, with exit code 1.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use layers::Backend;
use unet::{Block, Norm, UNetConfig, UNetPadding, Upsampling};
use unet_cli::config::{
    DataSource, Preprocess, RunConfig, SYNTHETIC_SAMPLES, SYNTHETIC_SIZE, TrainingConfig, device,
};
use unet_cli::data::FolderDataset;
use unet_cli::train::{Progress, TrainReport, train};
use unet_cli::{CliError, atomic, eval, import, model_dir, predict};

#[derive(Parser)]
#[command(
    name = "unet",
    version,
    about = "Train U-Nets for image segmentation on the CPU or a GPU, predict masks, evaluate, import PyTorch weights"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a U-Net (default: synthetic shapes, flex CPU backend).
    Train(Box<TrainArgs>),
    /// Predict masks for an image or a folder of images.
    Predict(PredictArgs),
    /// Score a model on a labelled folder (Dice, IoU, pixel accuracy).
    Eval(EvalArgs),
    /// Turn PyTorch weights of the reference U-Net into a model directory.
    Import(ImportArgs),
}

#[derive(Args)]
struct BackendArgs {
    /// flex (fast pure-Rust CPU), ndarray (CPU) or wgpu (GPU through
    /// Vulkan/Metal/DX12; software Vulkan without one).
    #[arg(long, default_value = "flex")]
    backend: Backend,
    /// With wgpu: the GPU to use, by index among discrete GPUs (default: the preferred adapter).
    #[arg(long)]
    device: Option<usize>,
}

#[derive(Args)]
struct TrainArgs {
    #[command(flatten)]
    backend: BackendArgs,
    /// `synthetic` (generated shapes) or a folder with images/ and masks/.
    #[arg(long, default_value = "synthetic", conflicts_with = "resume")]
    data: String,
    /// Epochs.
    #[arg(long, default_value_t = defaults().epochs, conflicts_with = "resume")]
    epochs: usize,
    /// Samples per batch.
    #[arg(long, default_value_t = defaults().batch_size, conflicts_with = "resume")]
    batch_size: usize,
    /// Training samples per epoch (the training images cycled, reshuffled and
    /// re-augmented each pass; for small folders). Default: one pass.
    #[arg(long, conflicts_with = "resume")]
    epoch_samples: Option<usize>,
    /// Adam's initial learning rate (cosine-annealed to --min-lr).
    #[arg(long, default_value_t = defaults().lr, conflicts_with = "resume")]
    lr: f64,
    /// Learning rate at the last step.
    #[arg(long, default_value_t = defaults().min_lr, conflicts_with = "resume")]
    min_lr: f64,
    /// Synthetic data: side of the generated images. Folder data: resize
    /// images to this square size (default: keep their size).
    #[arg(long, conflicts_with = "resume")]
    image_size: Option<usize>,
    /// Synthetic data: number of images (training and validation).
    #[arg(long, default_value_t = SYNTHETIC_SAMPLES, conflicts_with = "resume")]
    samples: usize,
    /// Share of the images held out for validation.
    #[arg(long, default_value_t = defaults().val_fraction, conflicts_with = "resume")]
    val_fraction: f64,
    /// Seed of everything random (split, data, weights, order, augmentation).
    #[arg(long, default_value_t = defaults().seed, conflicts_with = "resume")]
    seed: u64,
    /// Turn off random flips and rotations of training images.
    #[arg(long, conflicts_with = "resume")]
    no_augment: bool,
    /// Classes, background included (masks hold 0..classes-1; 0/255 for two).
    #[arg(long, default_value_t = 2, conflicts_with = "resume")]
    classes: usize,
    /// Input channels: 1 (grayscale) or 3 (RGB). Default: from the data.
    #[arg(long, conflicts_with = "resume")]
    channels: Option<usize>,
    #[command(flatten)]
    model: ModelArgs,
    /// The run directory (default: runs/<date>-<time>).
    #[arg(long, conflicts_with = "resume")]
    out: Option<PathBuf>,
    /// Continue the run in this directory from its last complete checkpoint
    /// (--backend and --device may change; nothing else).
    #[arg(long)]
    resume: Option<PathBuf>,
}

#[derive(Args)]
struct ModelArgs {
    /// Poolings (and upsamplings).
    #[arg(long, default_value_t = 4, conflicts_with = "resume")]
    depth: usize,
    /// Channels of the first level (doubling at each level).
    #[arg(long, default_value_t = 16, conflicts_with = "resume")]
    base_width: usize,
    /// How the decoder upsamples.
    #[arg(long, value_enum, default_value_t = UpsamplingArg::Transposed, conflicts_with = "resume")]
    upsampling: UpsamplingArg,
    /// The convolution block.
    #[arg(long, value_enum, default_value_t = BlockArg::Standard, conflicts_with = "resume")]
    block: BlockArg,
    /// Channel groups of `--block grouped`.
    #[arg(long, default_value_t = 4, conflicts_with = "resume")]
    groups: usize,
    /// Normalisation after each convolution.
    #[arg(long, value_enum, default_value_t = NormArg::Batch, conflicts_with = "resume")]
    norm: NormArg,
    /// Groups of `--norm group`.
    #[arg(long, default_value_t = 8, conflicts_with = "resume")]
    norm_groups: usize,
    /// `same` keeps the image size; `valid` is the paper's unpadded network.
    #[arg(long, value_enum, default_value_t = PaddingArg::Same, conflicts_with = "resume")]
    padding: PaddingArg,
    /// Dropout before the bottleneck's output.
    #[arg(long, default_value_t = 0.0, conflicts_with = "resume")]
    dropout: f64,
}

#[derive(Clone, Copy, ValueEnum)]
enum UpsamplingArg {
    /// Transposed convolution, kernel 2, stride 2.
    Transposed,
    /// Transposed convolution, kernel 4, stride 2, initialised as bilinear interpolation.
    TransposedBilinear,
    /// Zero insertion + convolution (the same numbers as `transposed`).
    Upconv,
    /// Bilinear resize + 3x3 convolution.
    Bilinear,
}

#[derive(Clone, Copy, ValueEnum)]
enum BlockArg {
    /// Two 3x3 convolutions.
    Standard,
    /// Depthwise 3x3 + pointwise 1x1 (MobileNet).
    Separable,
    /// Grouped 3x3 convolutions with a channel shuffle (ShuffleNet).
    Grouped,
}

#[derive(Clone, Copy, ValueEnum)]
enum NormArg {
    Batch,
    Group,
    None,
}

#[derive(Clone, Copy, ValueEnum)]
enum PaddingArg {
    Same,
    Valid,
}

#[derive(Args)]
struct PredictArgs {
    /// A model directory (from `unet train` or `unet import`).
    #[arg(long)]
    model: PathBuf,
    /// An image, or a folder of .png/.jpg images.
    #[arg(long)]
    input: PathBuf,
    /// Where `<stem>_mask.png` and `<stem>_overlay.png` go.
    #[arg(long)]
    output: PathBuf,
    #[command(flatten)]
    backend: BackendArgs,
}

#[derive(Args)]
struct EvalArgs {
    /// A model directory.
    #[arg(long)]
    model: PathBuf,
    /// A folder with images/ and masks/.
    #[arg(long)]
    data: PathBuf,
    /// Also write the scores as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    #[command(flatten)]
    backend: BackendArgs,
}

#[derive(Args)]
struct ImportArgs {
    /// The PyTorch state dict (.safetensors, .pt or .pth).
    #[arg(long)]
    weights: PathBuf,
    /// Input channels.
    #[arg(long, default_value_t = 3)]
    in_channels: usize,
    /// Classes.
    #[arg(long)]
    classes: usize,
    /// Channels of the first level.
    #[arg(long)]
    base_width: usize,
    /// Poolings.
    #[arg(long)]
    depth: usize,
    /// The model directory to write.
    #[arg(long)]
    out: PathBuf,
}

/// The default run's settings: the command line's defaults come from here.
fn defaults() -> TrainingConfig {
    TrainingConfig::synthetic()
}

fn main() -> ExitCode {
    // Burn's own panics would print a backtrace hint; keep failures to one line.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("unet: internal error: {info}");
    }));
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("unet: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Burn loads optimizer state on its default device, which prefers a GPU;
/// point it at the backend in use before anything starts a thread.
fn set_default_backend(backend: Backend) {
    // SAFETY: called first thing in `run`, while the process has one thread.
    unsafe { std::env::set_var("BURN_DEVICE", backend.name()) };
}

fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Train(args) => run_train(*args),
        Command::Predict(args) => {
            set_default_backend(args.backend.backend);
            let device = device(args.backend.backend, args.backend.device);
            let model = model_dir::load(&args.model, &device)?;
            for p in predict::predict(&model, &args.input, &args.output, &device)? {
                let shares: Vec<String> = p
                    .class_shares
                    .iter()
                    .enumerate()
                    .skip(1)
                    .map(|(class, share)| format!("class {class} {:.1}%", 100.0 * share))
                    .collect();
                println!(
                    "{} -> {}, {} ({})",
                    p.input.display(),
                    p.mask.display(),
                    p.overlay.display(),
                    shares.join(", ")
                );
            }
            Ok(())
        }
        Command::Eval(args) => {
            set_default_backend(args.backend.backend);
            let device = device(args.backend.backend, args.backend.device);
            let model = model_dir::load(&args.model, &device)?;
            let scores = eval::evaluate(&model, &args.data, &device)?;
            print!("{}", scores.table());
            if let Some(path) = args.json {
                let json = serde_json::to_string_pretty(&scores).expect("scores serialise") + "\n";
                atomic::write(&path, json.as_bytes()).map_err(|err| CliError::io(&path, err))?;
                println!("wrote {}", path.display());
            }
            Ok(())
        }
        Command::Import(args) => {
            let model = UNetConfig::new(args.in_channels, args.classes)
                .with_base_width(args.base_width)
                .with_depth(args.depth);
            import::import(&args.weights, model, &args.out)?;
            println!(
                "wrote {} ({} and {})",
                args.out.display(),
                model_dir::CONFIG_FILE,
                model_dir::WEIGHTS_FILE
            );
            Ok(())
        }
    }
}

fn run_train(args: TrainArgs) -> Result<(), CliError> {
    let (config, dir, resume) = match &args.resume {
        Some(dir) => {
            let mut config = model_dir::read_config(dir)?;
            let training = config.training.as_mut().ok_or(CliError::NotTrainable)?;
            training.backend = args.backend.backend;
            training.gpu = args.backend.device;
            (config, dir.clone(), true)
        }
        None => {
            let config = train_config(&args)?;
            let dir = args.out.clone().unwrap_or_else(|| {
                Path::new("runs").join(chrono::Local::now().format("%Y%m%d-%H%M%S").to_string())
            });
            (config, dir, false)
        }
    };
    let training = config.training()?;
    set_default_backend(training.backend);
    println!(
        "{} {} on {}: {}, {} epochs, into {}",
        if resume { "resuming" } else { "training" },
        describe(&config.model),
        training.backend,
        match &training.data {
            DataSource::Synthetic { samples, size } =>
                format!("{samples} synthetic {size}x{size} images"),
            DataSource::Folder { dir } => dir.display().to_string(),
        },
        training.epochs,
        dir.display()
    );
    let report = train(&config, &dir, resume, Progress::Auto)?;
    print_report(&report);
    Ok(())
}

fn describe(model: &UNetConfig) -> String {
    format!(
        "a U-Net (depth {}, base width {}, {} -> {} classes)",
        model.depth,
        model.base_width,
        match model.in_channels {
            1 => "grayscale".to_string(),
            3 => "RGB".to_string(),
            c => format!("{c} channels"),
        },
        model.num_classes
    )
}

fn train_config(args: &TrainArgs) -> Result<RunConfig, CliError> {
    let (data, resize, channels) = if args.data == "synthetic" {
        let size = args.image_size.unwrap_or(SYNTHETIC_SIZE);
        let data = DataSource::Synthetic {
            samples: args.samples,
            size,
        };
        (data, None, args.channels.unwrap_or(1))
    } else {
        let dir = PathBuf::from(&args.data);
        let channels = match args.channels {
            Some(c) => c,
            None => FolderDataset::detect_channels(&dir)?,
        };
        (DataSource::Folder { dir }, args.image_size, channels)
    };
    let m = &args.model;
    let model = UNetConfig::new(channels, args.classes)
        .with_depth(m.depth)
        .with_base_width(m.base_width)
        .with_upsampling(match m.upsampling {
            UpsamplingArg::Transposed => Upsampling::TransposedConv {
                bilinear_init: false,
            },
            UpsamplingArg::TransposedBilinear => Upsampling::TransposedConv {
                bilinear_init: true,
            },
            UpsamplingArg::Upconv => Upsampling::UpConv,
            UpsamplingArg::Bilinear => Upsampling::BilinearConv,
        })
        .with_block(match m.block {
            BlockArg::Standard => Block::Standard,
            BlockArg::Separable => Block::DepthwiseSeparable,
            BlockArg::Grouped => Block::Grouped { groups: m.groups },
        })
        .with_norm(match m.norm {
            NormArg::Batch => Norm::Batch,
            NormArg::Group => Norm::Group {
                groups: m.norm_groups,
            },
            NormArg::None => Norm::None,
        })
        .with_padding(match m.padding {
            PaddingArg::Same => UNetPadding::Same,
            PaddingArg::Valid => UNetPadding::Valid,
        })
        .with_dropout(m.dropout);
    let training = TrainingConfig {
        data,
        epochs: args.epochs,
        batch_size: args.batch_size,
        epoch_samples: args.epoch_samples,
        lr: args.lr,
        min_lr: args.min_lr,
        val_fraction: args.val_fraction,
        seed: args.seed,
        augment: !args.no_augment,
        backend: args.backend.backend,
        gpu: args.backend.device,
    };
    training.validate()?;
    model.validate()?;
    Ok(RunConfig::trained(model, Preprocess { resize }, training))
}

fn print_report(report: &TrainReport) {
    let best = &report.best;
    println!(
        "best epoch {} of {}: validation Dice {:.4}, IoU {:.4} (mean over the foreground classes), loss {:.4}",
        best.epoch,
        report.history.len(),
        best.val_dice,
        best.val_iou,
        best.val_loss
    );
    for (path, what) in report.files() {
        println!("  {:<40} {what}", path.display());
    }
}
