//! The command line: what each command takes, and how its values become the
//! library's configurations.

use std::path::PathBuf;
use std::str::FromStr;

use clap::{Args, Parser, Subcommand, ValueEnum};
use imaging::{BorderWeight, ElasticConfig, IntensityConfig, WatershedConfig};
use unet::{Block, Norm, UNetConfig, UNetPadding, Upsampling};
use unet_train::config::{Loss, SYNTHETIC_SAMPLES, TrainingConfig};
use unet_train::data::{MaskKind, Normalize};
use unet_train::predict::{Blend, PredictOptions, Tiling, Window};
use unet_train::{BackendKind, Precision};

#[derive(Parser)]
#[command(
    name = "unet",
    version,
    about = "Train U-Nets for image segmentation on the CPU or a GPU, predict masks, evaluate, import PyTorch weights"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// Negative numbers are values (`--threshold -0.1` is refused with its
// range, not taken for an option `-0`).
#[derive(Subcommand)]
pub enum Command {
    /// Train a U-Net (default: synthetic shapes, flex CPU backend).
    #[command(allow_negative_numbers = true)]
    Train(Box<TrainArgs>),
    /// Predict masks for an image or a folder of images.
    #[command(allow_negative_numbers = true)]
    Predict(PredictArgs),
    /// Score a model on a labelled folder (Dice, IoU, pixel accuracy).
    #[command(allow_negative_numbers = true)]
    Eval(EvalArgs),
    /// Turn PyTorch weights of the reference U-Net into a model directory.
    #[command(allow_negative_numbers = true)]
    Import(ImportArgs),
}

#[derive(Args)]
pub struct BackendArgs {
    /// flex (fast pure-Rust CPU), ndarray (CPU), wgpu (GPU through
    /// Vulkan/Metal/DX12; software Vulkan without one) or vulkan (GPU
    /// through Vulkan only, kernels in SPIR-V) [default: flex; a resumed
    /// run: its own].
    #[arg(long)]
    pub backend: Option<BackendKind>,
    /// With wgpu or vulkan: the GPU to use, by index among discrete GPUs (default: the preferred adapter).
    #[arg(long)]
    pub device: Option<usize>,
}

impl BackendArgs {
    /// The backend asked for, flex where none is.
    pub fn kind(&self) -> BackendKind {
        self.backend.unwrap_or(BackendKind::Flex)
    }
}

/// The default run's settings: the command line's defaults come from here.
fn defaults() -> TrainingConfig {
    TrainingConfig::synthetic()
}

#[derive(Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub backend: BackendArgs,
    /// Data-parallel training on several devices (0,1): each takes an equal
    /// share of every --batch-size batch (which must be a multiple of the
    /// device count), and each scales its loss by that share, so their summed
    /// gradients make the step one device would. wgpu, vulkan: GPUs
    /// by index as --device counts them; a software adapter (lavapipe)
    /// serves 0 and 1. flex: replicas on the same CPU, to check, not for
    /// speed. Batch norm statistics are per device.
    #[arg(long, conflicts_with = "device")]
    pub devices: Option<DevicesArg>,
    /// The float type the network computes in: f32, f16 (with dynamic loss
    /// scaling) or bf16. Weights and optimizer state stay f32, batch norm
    /// and the loss compute in f32 (PyTorch's automatic mixed precision).
    /// flex, wgpu and vulkan (a GPU needs the type; for f16 most have it).
    #[arg(long, default_value_t = defaults().precision, conflicts_with = "resume")]
    pub precision: Precision,
    /// `synthetic` (generated shapes) or a folder with images/ and masks/
    /// [default: synthetic]. With --resume: where the run's folder is now,
    /// if it moved (it must hold the same images).
    #[arg(long)]
    pub data: Option<String>,
    /// Epochs.
    #[arg(long, default_value_t = defaults().epochs, conflicts_with = "resume")]
    pub epochs: usize,
    /// Samples per batch (per optimizer step; with --devices, split between them).
    #[arg(long, default_value_t = defaults().batch_size, conflicts_with = "resume")]
    pub batch_size: usize,
    /// Training samples per epoch (the training images cycled, reshuffled and
    /// re-augmented each pass; for small folders). Default: one pass.
    #[arg(long, conflicts_with = "resume")]
    pub epoch_samples: Option<usize>,
    /// Adam's initial learning rate (cosine-annealed to --min-lr).
    #[arg(long, default_value_t = defaults().lr, conflicts_with = "resume")]
    pub lr: f64,
    /// Learning rate at the last step.
    #[arg(long, default_value_t = defaults().min_lr, conflicts_with = "resume")]
    pub min_lr: f64,
    /// Synthetic data: side of the generated images. Folder data: resize
    /// images to this square size (default: keep their size).
    #[arg(long, conflicts_with = "resume")]
    pub image_size: Option<usize>,
    /// Synthetic data: number of images (training and validation).
    #[arg(long, default_value_t = SYNTHETIC_SAMPLES, conflicts_with = "resume")]
    pub samples: usize,
    /// Share of the images held out for validation.
    #[arg(long, default_value_t = defaults().val_fraction, conflicts_with = "resume")]
    pub val_fraction: f64,
    /// Seed of everything random (split, data, weights, order, augmentation).
    #[arg(long, default_value_t = defaults().seed, conflicts_with = "resume")]
    pub seed: u64,
    /// Turn off random flips and rotations of training images.
    #[arg(long, conflicts_with = "resume")]
    pub no_augment: bool,
    /// Classes, background included (masks hold 0..classes-1; 0/255 for two).
    #[arg(long, default_value_t = 2, conflicts_with = "resume")]
    pub classes: usize,
    /// Input channels: 1 (grayscale) or 3 (RGB). Default: from the data.
    #[arg(long, conflicts_with = "resume")]
    pub channels: Option<usize>,
    /// What mask values are: class indices, or instance labels (one id per
    /// object) whose foreground is learnt.
    #[arg(long, value_enum, default_value_t = MasksArg::Classes, conflicts_with = "resume")]
    pub masks: MasksArg,
    /// How pixel values are scaled: divide (by 255, or 65535 for 16-bit
    /// images), percentile[:LOW,HIGH] (per image, 1 and 99.8 by default, for
    /// microscopy) or zscore. Stored with the model; predict and eval use it.
    #[arg(long, default_value = "divide", conflicts_with = "resume")]
    pub normalize: NormalizeArg,
    #[command(flatten)]
    pub recipe: RecipeArgs,
    #[command(flatten)]
    pub model: ModelArgs,
    /// The run directory (default: runs/<date>-<time>).
    #[arg(long, visible_alias = "output", conflicts_with = "resume")]
    pub out: Option<PathBuf>,
    /// Continue the run in this directory from its last complete checkpoint
    /// (--backend, --device and --devices may change; nothing else).
    #[arg(long)]
    pub resume: Option<PathBuf>,
}

/// The loss and the augmentations: the U-Net paper's recipe for touching
/// objects is `--border-weight --elastic`.
#[derive(Args)]
pub struct RecipeArgs {
    /// The loss: ce+dice (cross-entropy plus soft Dice), ce, focal or tversky.
    #[arg(long, value_enum, default_value_t = LossArg::CeDice, conflicts_with = "resume")]
    pub loss: LossArg,
    /// Focusing exponent of --loss focal.
    #[arg(long, default_value_t = 2.0, conflicts_with = "resume")]
    pub focal_gamma: f32,
    /// Weights of false positives and false negatives of --loss tversky (ALPHA,BETA).
    #[arg(long, default_value = "0.3,0.7", conflicts_with = "resume")]
    pub tversky: PairArg,
    /// A weight per class for the cross-entropy and focal losses (W0,W1,...).
    #[arg(long, conflicts_with = "resume")]
    pub class_weights: Option<ListArg>,
    /// Weigh each pixel's loss by the U-Net paper's weight map: class balance
    /// plus w0 exp(-(d1 + d2)^2 / 2 sigma^2) between touching objects (needs
    /// instance labels: a labels/ folder, or the synthetic data).
    #[arg(long, conflicts_with = "resume")]
    pub border_weight: bool,
    /// w0 and sigma (pixels) of --border-weight (W0,SIGMA).
    #[arg(long, default_value = "10,5", conflicts_with = "resume")]
    pub border: PairArg,
    /// Elastic deformation of training samples: random displacements on a
    /// coarse grid, interpolated bicubically (the U-Net paper's augmentation).
    #[arg(long, conflicts_with = "resume")]
    pub elastic: bool,
    /// Control points per side and displacement standard deviation (pixels)
    /// of --elastic (GRID,SIGMA).
    #[arg(long, default_value = "3,10", conflicts_with = "resume")]
    pub elastic_grid: PairArg,
    /// Random brightness, contrast, gamma and noise of training samples.
    #[arg(long, conflicts_with = "resume")]
    pub intensity: bool,
}

impl RecipeArgs {
    /// The training settings these options give.
    pub fn apply(&self, training: &mut TrainingConfig) {
        training.loss = match self.loss {
            LossArg::CeDice => Loss::CeDice,
            LossArg::Ce => Loss::Ce,
            LossArg::Focal => Loss::Focal {
                gamma: self.focal_gamma,
            },
            LossArg::Tversky => Loss::Tversky {
                alpha: self.tversky.0[0] as f32,
                beta: self.tversky.0[1] as f32,
            },
        };
        training.class_weights = self.class_weights.as_ref().map(|w| w.0.clone());
        training.border_weight = self.border_weight.then_some(BorderWeight {
            w0: self.border.0[0] as f32,
            sigma: self.border.0[1] as f32,
        });
        training.elastic = self.elastic.then_some(ElasticConfig {
            grid: self.elastic_grid.0[0].max(0.0) as usize,
            sigma: self.elastic_grid.0[1] as f32,
        });
        training.intensity = self.intensity.then(IntensityConfig::default);
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub enum LossArg {
    /// Cross-entropy plus soft Dice over the foreground classes.
    #[value(name = "ce+dice")]
    CeDice,
    /// Cross-entropy.
    Ce,
    /// Focal loss.
    Focal,
    /// Tversky loss.
    Tversky,
}

/// Two numbers: `A,B`.
#[derive(Clone, Copy, Debug)]
pub struct PairArg(pub [f64; 2]);

impl FromStr for PairArg {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let list = ListArg::from_str(text)?;
        match list.0[..] {
            [a, b] => Ok(Self([a as f64, b as f64])),
            _ => Err(format!("'{text}': expected two numbers, A,B")),
        }
    }
}

/// Numbers separated by commas.
#[derive(Clone, Debug)]
pub struct ListArg(pub Vec<f32>);

impl FromStr for ListArg {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        text.split(',')
            .map(|part| {
                part.trim()
                    .parse::<f32>()
                    .ok()
                    .filter(|v| v.is_finite())
                    .ok_or_else(|| format!("'{part}' is not a number"))
            })
            .collect::<Result<Vec<f32>, String>>()
            .map(Self)
    }
}

/// Device numbers separated by commas: `0,1`.
#[derive(Clone, Debug)]
pub struct DevicesArg(pub Vec<usize>);

impl FromStr for DevicesArg {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        text.split(',')
            .map(|part| {
                part.trim()
                    .parse::<usize>()
                    .map_err(|_| format!("'{part}' is not a device number (0, 1, ...)"))
            })
            .collect::<Result<Vec<usize>, String>>()
            .map(Self)
    }
}

/// The objects of a prediction: touching ones split by a marker watershed.
#[derive(Args)]
pub struct InstanceArgs {
    /// Objects smaller than this (pixels) are merged into a neighbour or dropped.
    #[arg(long, default_value_t = 10)]
    pub min_size: usize,
    /// Least height of a distance-transform peak to start its own object
    /// (pixels; larger merges more).
    #[arg(long, default_value_t = 2.0)]
    pub split_height: f32,
}

impl InstanceArgs {
    /// The watershed settings.
    pub fn config(&self) -> Result<WatershedConfig, unet_train::RunError> {
        if !(self.split_height.is_finite() && self.split_height >= 0.0) {
            return Err(unet_train::RunError::option(
                "--split-height",
                self.split_height,
                "at least 0",
            ));
        }
        Ok(WatershedConfig {
            h: self.split_height,
            min_size: self.min_size,
            ..WatershedConfig::default()
        })
    }
}

#[derive(Args)]
pub struct ModelArgs {
    /// Poolings (and upsamplings).
    #[arg(long, default_value_t = 4, conflicts_with = "resume")]
    pub depth: usize,
    /// Channels of the first level (doubling at each level).
    #[arg(long, default_value_t = 16, conflicts_with = "resume")]
    pub base_width: usize,
    /// How the decoder upsamples.
    #[arg(long, value_enum, default_value_t = UpsamplingArg::Transposed, conflicts_with = "resume")]
    pub upsampling: UpsamplingArg,
    /// The convolution block.
    #[arg(long, value_enum, default_value_t = BlockArg::Standard, conflicts_with = "resume")]
    pub block: BlockArg,
    /// Channel groups of `--block grouped`.
    #[arg(long, default_value_t = 4, conflicts_with = "resume")]
    pub groups: usize,
    /// Normalisation after each convolution.
    #[arg(long, value_enum, default_value_t = NormArg::Batch, conflicts_with = "resume")]
    pub norm: NormArg,
    /// Groups of `--norm group`.
    #[arg(long, default_value_t = 8, conflicts_with = "resume")]
    pub norm_groups: usize,
    /// `same` keeps the image size; `valid` is the paper's unpadded network.
    #[arg(long, value_enum, default_value_t = PaddingArg::Same, conflicts_with = "resume")]
    pub padding: PaddingArg,
    /// Dropout before the bottleneck's output.
    #[arg(long, default_value_t = 0.0, conflicts_with = "resume")]
    pub dropout: f64,
}

impl ModelArgs {
    /// The network these options describe.
    pub fn config(&self, channels: usize, classes: usize) -> UNetConfig {
        UNetConfig::new(channels, classes)
            .with_depth(self.depth)
            .with_base_width(self.base_width)
            .with_upsampling(match self.upsampling {
                UpsamplingArg::Transposed => Upsampling::TransposedConv {
                    bilinear_init: false,
                },
                UpsamplingArg::TransposedBilinear => Upsampling::TransposedConv {
                    bilinear_init: true,
                },
                UpsamplingArg::Upconv => Upsampling::UpConv,
                UpsamplingArg::Bilinear => Upsampling::BilinearConv,
            })
            .with_block(match self.block {
                BlockArg::Standard => Block::Standard,
                BlockArg::Separable => Block::DepthwiseSeparable,
                BlockArg::Grouped => Block::Grouped {
                    groups: self.groups,
                },
            })
            .with_norm(match self.norm {
                NormArg::Batch => Norm::Batch,
                NormArg::Group => Norm::Group {
                    groups: self.norm_groups,
                },
                NormArg::None => Norm::None,
            })
            .with_padding(match self.padding {
                PaddingArg::Same => UNetPadding::Same,
                PaddingArg::Valid => UNetPadding::Valid,
            })
            .with_dropout(self.dropout)
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub enum UpsamplingArg {
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
pub enum BlockArg {
    /// Two 3x3 convolutions.
    Standard,
    /// Depthwise 3x3 + pointwise 1x1 (MobileNet).
    Separable,
    /// Grouped 3x3 convolutions with a channel shuffle (ShuffleNet).
    Grouped,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum NormArg {
    Batch,
    Group,
    None,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum PaddingArg {
    Same,
    Valid,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum MasksArg {
    /// Class indices 0..classes-1 (0/255 for two classes).
    Classes,
    /// Instance labels: 0 background, any other value an object.
    Instances,
}

impl From<MasksArg> for MaskKind {
    fn from(arg: MasksArg) -> Self {
        match arg {
            MasksArg::Classes => MaskKind::Classes,
            MasksArg::Instances => MaskKind::Instances,
        }
    }
}

/// `--normalize`: `divide`, `zscore`, `percentile` or `percentile:LOW,HIGH`.
#[derive(Clone, Copy, Debug)]
pub struct NormalizeArg(pub Normalize);

impl FromStr for NormalizeArg {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let normalize = match text.split_once(':') {
            None if text == "divide" => Normalize::Divide,
            None if text == "zscore" => Normalize::ZScore,
            None if text == "percentile" => Normalize::Percentile {
                low: 1.0,
                high: 99.8,
            },
            Some(("percentile", range)) => {
                let (low, high) = range
                    .split_once(',')
                    .and_then(|(l, h)| Some((l.parse().ok()?, h.parse().ok()?)))
                    .ok_or("percentile:LOW,HIGH takes two numbers, e.g. percentile:1,99.8")?;
                Normalize::Percentile { low, high }
            }
            _ => return Err("expected divide, zscore, percentile or percentile:LOW,HIGH".into()),
        };
        normalize.validate()?;
        Ok(Self(normalize))
    }
}

/// `--tile`: `SIDE` or `HEIGHTxWIDTH`.
#[derive(Clone, Copy, Debug)]
pub struct TileArg(pub [usize; 2]);

impl FromStr for TileArg {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let side = |s: &str| -> Result<usize, String> {
            match s.parse::<usize>() {
                Ok(0) | Err(_) => Err(format!("'{s}' is not a positive whole number of pixels")),
                Ok(n) => Ok(n),
            }
        };
        Ok(Self(match text.split_once(['x', 'X']) {
            Some((h, w)) => [side(h)?, side(w)?],
            None => [side(text)?; 2],
        }))
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub enum BlendArg {
    /// Gaussian window (sigma = tile / 8): tile centres count most.
    Gaussian,
    /// Every pixel of every tile the same.
    Constant,
}

/// How images are cut into tiles, and what is averaged.
#[derive(Args)]
pub struct WindowArgs {
    /// Predict in tiles of this size (SIDE or HEIGHTxWIDTH). Default: the
    /// whole image when it fits a 1 GiB memory budget (and, on a GPU, its
    /// largest tensor fits what the GPU holds at once), else the largest
    /// square tile that does.
    #[arg(long)]
    pub tile: Option<TileArg>,
    /// Share of a tile that overlaps its neighbour, in [0, 1).
    #[arg(long, default_value_t = 0.25)]
    pub overlap: f64,
    /// How overlapping tiles are blended.
    #[arg(long, value_enum, default_value_t = BlendArg::Gaussian)]
    pub blend: BlendArg,
    /// Tiles per forward pass.
    #[arg(long, default_value_t = 1)]
    pub tile_batch: usize,
    /// Average the eight flips and rotations of each tile (test-time augmentation).
    #[arg(long)]
    pub tta: bool,
}

impl WindowArgs {
    /// The prediction options these arguments give (no files beside the mask).
    pub fn options(&self) -> Result<PredictOptions, unet_train::RunError> {
        use unet_train::RunError;
        if !(0.0..1.0).contains(&self.overlap) {
            return Err(RunError::option("--overlap", self.overlap, "in [0, 1)"));
        }
        if self.tile_batch == 0 {
            return Err(RunError::option("--tile-batch", 0, "at least 1"));
        }
        let tiling = match self.tile {
            Some(TileArg(tile)) => Tiling::Window(Window {
                tile,
                overlap: self.overlap,
                blend: match self.blend {
                    BlendArg::Gaussian => Blend::Gaussian,
                    BlendArg::Constant => Blend::Constant,
                },
                batch: self.tile_batch,
            }),
            None => Tiling::Auto,
        };
        Ok(PredictOptions {
            tiling,
            tta: self.tta,
            ..PredictOptions::default()
        })
    }
}

#[derive(Args)]
pub struct PredictArgs {
    /// A model directory (from `unet train` or `unet import`).
    #[arg(long)]
    pub model: PathBuf,
    /// An image, or a folder of .png/.jpg/.tif images.
    #[arg(long)]
    pub input: PathBuf,
    /// Where `<stem>_mask.png` and `<stem>_overlay.png` go (not the input folder).
    #[arg(long, visible_alias = "out")]
    pub output: PathBuf,
    #[command(flatten)]
    pub window: WindowArgs,
    /// Also write class probabilities as 16-bit PNG: `<stem>_prob.png` (the
    /// foreground, two classes) or `<stem>_prob<k>.png` per class.
    #[arg(long)]
    pub probabilities: bool,
    /// Two classes: foreground where its probability is at least this (default 0.5).
    #[arg(long)]
    pub threshold: Option<f32>,
    /// Also write the objects: `<stem>_labels.png` (16-bit ids, touching
    /// objects split) and `<stem>_instances.png` (each outlined in its colour).
    #[arg(long)]
    pub instances: bool,
    #[command(flatten)]
    pub objects: InstanceArgs,
    #[command(flatten)]
    pub backend: BackendArgs,
}

#[derive(Args)]
pub struct EvalArgs {
    /// A model directory.
    #[arg(long)]
    pub model: PathBuf,
    /// A folder with images/ and masks/ or labels/ (instance ids: adds
    /// object scores).
    #[arg(long)]
    pub data: PathBuf,
    /// Also write the scores as JSON to this new file (an existing one is
    /// refused, not written over).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Score only the images the model's training run held out for
    /// validation (--data must be the folder it was trained on).
    #[arg(long)]
    pub validation_only: bool,
    #[command(flatten)]
    pub window: WindowArgs,
    #[command(flatten)]
    pub objects: InstanceArgs,
    #[command(flatten)]
    pub backend: BackendArgs,
}

#[derive(Args)]
pub struct ImportArgs {
    /// The PyTorch state dict (.safetensors, .pt or .pth).
    #[arg(long)]
    pub weights: PathBuf,
    /// Input channels.
    #[arg(long, default_value_t = 3)]
    pub in_channels: usize,
    /// Classes.
    #[arg(long)]
    pub classes: usize,
    /// Channels of the first level.
    #[arg(long)]
    pub base_width: usize,
    /// Poolings.
    #[arg(long)]
    pub depth: usize,
    /// The model directory to write (new, or empty).
    #[arg(long, visible_alias = "output")]
    pub out: PathBuf,
}
