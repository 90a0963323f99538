//! `unet`: train U-Nets for image segmentation, predict masks, evaluate and
//! import PyTorch weights. Errors are one line naming the file or value at
//! fault, with exit code 1.

mod args;

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use clap::error::ErrorKind;
use unet::UNetConfig;
use unet_train::config::{
    DataSource, Preprocess, RunConfig, SYNTHETIC_SIZE, TrainingConfig, devices_text,
};
use unet_train::data::FolderDataset;
use unet_train::predict::{Event, Layout, Prediction};
use unet_train::train::{Progress, SUPERSEDED_DIR, TrainReport, resume_point, train};
use unet_train::{BackendKind, Precision, RunError, atomic, eval, import, model_dir, predict};

use args::{BackendArgs, Cli, Command, EvalArgs, ImportArgs, PredictArgs, TrainArgs};

fn main() -> ExitCode {
    unet_train::allocator::keep_freed_memory();
    // Burn's own panics would print a backtrace hint; keep failures to one line.
    // Panics caught where burn-train or CubeCL is called become errors
    // (`unet_train::guard`); print only those that are not, and not those of
    // CubeCL's device threads, which reach their callers as errors.
    std::panic::set_hook(Box::new(|info| {
        if !unet_train::guard::record(info) && !unet_train::guard::on_device_thread() {
            unet_train::errln!("unet: internal error: {info}");
        }
    }));
    let cli = match parse_args() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            unet_train::errln!("unet: {}", one_line(&err.to_string()));
            ExitCode::FAILURE
        }
    }
}

/// The command line, or the exit code after clap has answered: help and
/// version as clap prints them; a refused argument as one line (clap's
/// message and its tips, without the usage) with exit code 1, like every
/// other error.
fn parse_args() -> Result<Cli, ExitCode> {
    let err = match Cli::try_parse() {
        Ok(cli) => return Ok(cli),
        Err(err) => err,
    };
    if !err.use_stderr() {
        // Help or version asked for: clap's own text.
        let _ = err.print();
        return Err(ExitCode::SUCCESS);
    }
    if err.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        // `unet` alone: the commands, and exit code 1 as for any error.
        let _ = err.print();
        return Err(ExitCode::FAILURE);
    }
    let rendered = err.render().to_string();
    let reason: Vec<&str> = rendered
        .lines()
        .filter(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .map(|l| l.strip_prefix("error: ").unwrap_or(l))
        .collect();
    unet_train::errln!("unet: {}", one_line(&reason.join("\n")));
    Err(ExitCode::FAILURE)
}

/// A message on one line: the lines of a multi-line one (burn-train's
/// chains of causes, clap's reason and tips) joined with semicolons, or
/// with a space after a line that ends in ':' and introduces the next.
fn one_line(message: &str) -> String {
    let lines = message.lines().map(str::trim).filter(|l| !l.is_empty());
    lines.fold(String::new(), |joined, line| match joined.as_str() {
        "" => line.to_string(),
        _ if joined.ends_with(':') => format!("{joined} {line}"),
        _ => format!("{joined}; {line}"),
    })
}

fn run(cli: Cli) -> Result<ExitCode, RunError> {
    match cli.command {
        Command::Train(args) => run_train(*args).map(|()| ExitCode::SUCCESS),
        Command::Predict(args) => run_predict(args),
        Command::Eval(args) => run_eval(args).map(|()| ExitCode::SUCCESS),
        Command::Import(args) => run_import(args).map(|()| ExitCode::SUCCESS),
    }
}

/// The device of `--backend` / `--device`, checked to work. Burn loads
/// optimizer state on its default device, which prefers a GPU: point that
/// at the chosen backend too, before anything starts a thread.
///
/// Without a login session (`XDG_RUNTIME_DIR` unset: CI, a server over ssh),
/// Mesa's drivers, asked for a display while wgpu looks for adapters, print
/// an error line per attempt; they get an empty private folder instead.
fn open_device(backend: BackendKind, gpu: Option<usize>) -> Result<burn::tensor::Device, RunError> {
    use_backend(backend);
    backend.open(gpu)
}

/// Points Burn's default device (`BURN_DEVICE`) at `backend`, and gives
/// Mesa's drivers a runtime folder where there is none (see [`open_device`]).
fn use_backend(backend: BackendKind) {
    let runtime = (backend.is_gpu() && std::env::var_os("XDG_RUNTIME_DIR").is_none())
        .then(private_runtime_dir)
        .flatten();
    // SAFETY: `main` has started no thread when a command gets here: the
    // arguments are parsed and at most `config.json` read, nothing else.
    unsafe {
        std::env::set_var("BURN_DEVICE", backend.name());
        if let Some(dir) = runtime {
            std::env::set_var("XDG_RUNTIME_DIR", dir);
        }
    }
}

/// A folder only this user can enter (made once per user), for `XDG_RUNTIME_DIR`.
fn private_runtime_dir() -> Option<std::path::PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    let uid = std::fs::metadata("/proc/self").ok()?.uid();
    let dir = std::env::temp_dir().join(format!("unet-runtime-{uid}"));
    let _ = std::fs::DirBuilder::new().mode(0o700).create(&dir);
    let meta = std::fs::symlink_metadata(&dir).ok()?;
    let private = meta.is_dir() && meta.uid() == uid && meta.permissions().mode() & 0o077 == 0;
    private.then_some(dir)
}

fn run_predict(args: PredictArgs) -> Result<ExitCode, RunError> {
    let mut options = args.window.options()?;
    options.probabilities = args.probabilities;
    if let Some(t) = args.threshold {
        if !(0.0..=1.0).contains(&t) {
            return Err(RunError::option("--threshold", t, "in [0, 1]"));
        }
        options.threshold = Some(t);
    }
    if args.instances {
        options.instances = Some(args.objects.config()?);
    }
    let model = model_dir::read_config(&args.model)?;
    if options.threshold.is_some() && model.model.num_classes != 2 {
        return Err(RunError::option(
            "--threshold",
            args.threshold.unwrap_or_default(),
            "used with a two-class model only",
        ));
    }
    let device = open(&args.backend)?;
    let model = model_dir::load(&args.model, &device)?;
    let mut progress = TileProgress::default();
    let folder = args.input.is_dir();
    let report = predict::predict(
        &model,
        &args.input,
        &args.output,
        &options,
        &device,
        &mut |event| match event {
            Event::Tiles { input, done, total } => progress.update(input, done, total),
            Event::Done(prediction) => unet_train::outln!("{}", prediction_line(prediction)),
            Event::Failed(failure) if folder => {
                unet_train::errln!(
                    "unet: {}: not segmented: {}",
                    failure.input.display(),
                    one_line(&failure.error.to_string())
                )
            }
            Event::Failed(_) => {}
        },
    )?;
    if report.failed.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    if !folder {
        // One image: its error is the one line.
        return Err(report.failed.into_iter().next().expect("one failure").error);
    }
    report_failures(&report, &args.output);
    Ok(ExitCode::FAILURE)
}

/// The last line of a folder's prediction where images failed: how many,
/// and where the others' masks are.
fn report_failures(report: &predict::PredictReport, output: &Path) {
    if report.done.is_empty() {
        let failed = report.failed.len();
        let all = if failed > 1 { "all " } else { "" };
        unet_train::errln!("unet: {all}{} failed", plural(failed, "image"));
    } else {
        unet_train::errln!(
            "unet: {} of {} images failed; the masks of the other {} are in {}",
            report.failed.len(),
            report.failed.len() + report.done.len(),
            report.done.len(),
            output.display()
        );
    }
}

fn open(backend: &BackendArgs) -> Result<burn::tensor::Device, RunError> {
    open_device(backend.kind(), backend.device)
}

/// What `predict` prints for an image it wrote.
fn prediction_line(p: &Prediction) -> String {
    let shares: Vec<String> = p
        .class_shares
        .iter()
        .enumerate()
        .skip(1)
        .map(|(class, share)| format!("class {class} {:.1}%", 100.0 * share))
        .collect();
    let mut files = vec![
        p.mask.display().to_string(),
        p.overlay.display().to_string(),
    ];
    files.extend(p.probabilities.iter().map(|f| f.display().to_string()));
    let mut shares = shares;
    if let Some((labels, outlines, count)) = &p.instances {
        files.push(labels.display().to_string());
        files.push(outlines.display().to_string());
        shares.push(plural(*count, "object"));
    }
    format!(
        "{} -> {} ({}; {})",
        p.input.display(),
        files.join(", "),
        shares.join(", "),
        layout_words(&p.layout)
    )
}

/// How an image was cut, in words.
fn layout_words(layout: &Layout) -> String {
    if layout.tiles() == 1 {
        return "whole image".into();
    }
    let [h, w] = layout.input;
    format!("{} tiles of {h}x{w}", layout.tiles())
}

/// A progress line every few seconds while an image's tiles are computed.
#[derive(Default)]
struct TileProgress {
    started: Option<Instant>,
    last: Option<Instant>,
}

impl TileProgress {
    /// Called with `done = 0` when an image's tiles start, then after each batch.
    fn update(&mut self, input: &Path, done: usize, total: usize) {
        let now = Instant::now();
        if done == 0 || done == total {
            (self.started, self.last) = (Some(now), Some(now));
            return;
        }
        let (Some(started), Some(last)) = (self.started, self.last) else {
            return;
        };
        if now - last < Duration::from_secs(5) {
            return;
        }
        self.last = Some(now);
        let left = (now - started).as_secs_f64() * (total - done) as f64 / done as f64;
        unet_train::outln!(
            "  {}: tile {done}/{total} ({:.0}%), about {left:.0} s left",
            input.display(),
            100.0 * done as f64 / total as f64
        );
    }
}

fn run_eval(args: EvalArgs) -> Result<(), RunError> {
    let options = args.window.options()?;
    if let Some(path) = args.json.as_ref().filter(|path| path.exists()) {
        let what = if path.is_dir() { "folder" } else { "file" };
        return Err(RunError::option(
            "--json",
            path.display(),
            &format!("a new file: this {what} exists, and unet does not write over it"),
        ));
    }
    model_dir::read_config(&args.model)?;
    let device = open(&args.backend)?;
    let model = model_dir::load(&args.model, &device)?;
    let only = if args.validation_only {
        Some(eval::validation_images(&model, &args.data)?)
    } else {
        None
    };
    let scores = eval::evaluate_images(
        &model,
        &args.data,
        only.as_deref(),
        &options,
        &args.objects.config()?,
        &device,
    )?;
    unet_train::outln!("{}", scores.table().trim_end_matches('\n'));
    if let Some(path) = args.json {
        let json =
            serde_json::to_string_pretty(&scores).map_err(|err| RunError::io(&path, err))? + "\n";
        atomic::write(&path, json.as_bytes()).map_err(|err| RunError::io(&path, err))?;
        unet_train::outln!("wrote {}", path.display());
    }
    Ok(())
}

fn run_import(args: ImportArgs) -> Result<(), RunError> {
    let model = UNetConfig::new(args.in_channels, args.classes)
        .with_base_width(args.base_width)
        .with_depth(args.depth);
    import::import(&args.weights, model, &args.out)?;
    unet_train::outln!(
        "wrote {} ({} and {})",
        args.out.display(),
        model_dir::CONFIG_FILE,
        model_dir::WEIGHTS_FILE
    );
    Ok(())
}

fn run_train(args: TrainArgs) -> Result<(), RunError> {
    let (config, dir, resume) = match &args.resume {
        Some(dir) => {
            let mut config = model_dir::read_config(dir)?;
            let training = config.training.as_mut().ok_or(RunError::NotTrainable)?;
            resume_devices(training, &args);
            if let Some(moved) = &args.data {
                moved_data(training, moved)?;
            }
            // The new device settings against the stored ones (a fresh run's
            // settings are checked where they are made, in `train_config`).
            training.validate()?;
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
    use_backend(training.backend);
    let devices = training.open_devices()?;
    let device = &devices[0];
    let from = if resume {
        match resume_notes(&config, &dir, device)? {
            Some(from) => from,
            None => return Ok(()),
        }
    } else {
        String::new()
    };
    announce(&config, &dir, resume, &from)?;
    let report = train(&config, &dir, resume, Progress::Auto)?;
    print_report(&report);
    Ok(())
}

/// The first line of a run: what is trained, on what, from what, into where.
fn announce(config: &RunConfig, dir: &Path, resume: bool, from: &str) -> Result<(), RunError> {
    let training = config.training()?;
    let mut on = match &training.devices {
        Some(list) => format!("{} (devices {})", training.backend, devices_text(list)),
        None => training.backend.to_string(),
    };
    if training.precision != Precision::F32 {
        on.push_str(&format!(" in {}", training.precision));
    }
    unet_train::outln!(
        "{} {} on {on}: {}, {}, into {}{from}",
        if resume { "resuming" } else { "training" },
        describe(&config.model),
        match &training.data {
            DataSource::Synthetic { samples, size } =>
                format!("{samples} synthetic {size}x{size} images"),
            DataSource::Folder { dir, .. } => dir.display().to_string(),
        },
        plural(training.epochs, "epoch"),
        dir.display()
    );
    Ok(())
}

/// The device settings of a resumed run: the recorded ones, unless the
/// command line gives `--backend`, `--device` or `--devices`; then its
/// `--device` and `--devices` replace the recorded ones, and its
/// `--backend`, where given, the recorded backend.
fn resume_devices(training: &mut TrainingConfig, args: &TrainArgs) {
    let given = &args.backend;
    if given.backend.is_none() && given.device.is_none() && args.devices.is_none() {
        return;
    }
    training.backend = given.backend.unwrap_or(training.backend);
    training.gpu = given.device;
    training.devices = args.devices.as_ref().map(|list| list.0.clone());
}

/// A resumed run's folder data, moved to `moved` (`--data` with
/// `--resume`); its images are checked against the recorded ones when the
/// run opens them.
fn moved_data(training: &mut TrainingConfig, moved: &str) -> Result<(), RunError> {
    match &mut training.data {
        DataSource::Folder { dir, .. } => {
            *dir = absolute(moved)?;
            Ok(())
        }
        DataSource::Synthetic { .. } => Err(RunError::option(
            "--data",
            moved,
            "given with --resume only for a run on a folder (this one trains on synthetic data)",
        )),
    }
}

/// `path` made absolute (not resolving links), as a run records its data
/// folder: a resume from any working folder finds it.
fn absolute(path: &str) -> Result<std::path::PathBuf, RunError> {
    std::path::absolute(path).map_err(|err| RunError::io(path, err))
}

/// Says on stderr which checkpoints a resumed run passes over and why; returns
/// where it resumes, for the first line, or `None` for a run that finished
/// (every epoch checkpointed and its weights file, the last a run writes,
/// there), which is left as it is.
fn resume_notes(
    config: &RunConfig,
    dir: &Path,
    device: &burn::tensor::Device,
) -> Result<Option<String>, RunError> {
    let point = resume_point(config, dir, device)?;
    let epochs = config.training()?.epochs;
    if point.epoch >= epochs && dir.join(model_dir::WEIGHTS_FILE).is_file() {
        unet_train::outln!(
            "{}: the run finished all {}; nothing to resume",
            dir.display(),
            plural(epochs, "epoch")
        );
        return Ok(None);
    }
    for damaged in &point.damaged {
        unet_train::errln!(
            "unet: {} (epoch {}) does not load ({}); falling back to the checkpoint before, \
             later files set aside in {}",
            damaged.file.display(),
            damaged.epoch,
            damaged.reason.lines().next().unwrap_or_default(),
            dir.join(SUPERSEDED_DIR).display()
        );
    }
    Ok(Some(if point.epoch == 0 {
        unet_train::errln!(
            "unet: {}: no complete checkpoint yet; starting again from epoch 1",
            dir.display()
        );
        String::from(", from epoch 1")
    } else {
        format!(", from epoch {}", point.epoch + 1)
    }))
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

fn train_config(args: &TrainArgs) -> Result<RunConfig, RunError> {
    let data = args.data.as_deref().unwrap_or("synthetic");
    let (data, resize, channels) = if data == "synthetic" {
        let size = args.image_size.unwrap_or(SYNTHETIC_SIZE);
        let data = DataSource::Synthetic {
            samples: args.samples,
            size,
        };
        (data, None, args.channels.unwrap_or(1))
    } else {
        if args.image_size == Some(0) {
            return Err(RunError::option("--image-size", 0, "at least 1"));
        }
        let dir = absolute(data)?;
        let channels = match args.channels {
            Some(c) => c,
            None => FolderDataset::detect_channels(&dir)?,
        };
        let data = DataSource::Folder { dir, images: None };
        (data, args.image_size, channels)
    };
    let model = args.model.config(channels, args.classes);
    let mut training = TrainingConfig {
        data,
        epochs: args.epochs,
        batch_size: args.batch_size,
        epoch_samples: args.epoch_samples,
        lr: args.lr,
        min_lr: args.min_lr,
        val_fraction: args.val_fraction,
        seed: args.seed,
        augment: !args.no_augment,
        backend: args.backend.kind(),
        gpu: args.backend.device,
        devices: args.devices.as_ref().map(|list| list.0.clone()),
        precision: args.precision,
        ..TrainingConfig::synthetic()
    };
    args.recipe.apply(&mut training);
    let preprocess = Preprocess {
        resize,
        normalize: args.normalize.0,
        masks: args.masks.into(),
    };
    let config = RunConfig::trained(model, preprocess, training);
    config.validate()?;
    Ok(config)
}

fn print_report(report: &TrainReport) {
    let best = &report.best;
    unet_train::outln!(
        "best epoch {} of {}: validation Dice {:.4}, IoU {:.4} (mean over the foreground classes), loss {:.4}",
        best.epoch,
        report.history.len(),
        best.val_dice,
        best.val_iou,
        best.val_loss
    );
    for (path, what) in report.files() {
        unet_train::outln!("  {:<40} {what}", path.display());
    }
}

/// `1 epoch`, `2 epochs`.
fn plural(count: usize, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}
