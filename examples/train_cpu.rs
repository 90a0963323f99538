//! Train a small U-Net on the synthetic shapes on the CPU (Burn's flex
//! backend) through the library API, then segment an image it never saw.
//!
//! ```sh
//! cargo run --example train_cpu
//! ```

use unet::UNetConfig;
use unet_train::BackendKind;
use unet_train::RunError;
use unet_train::config::{DataSource, Preprocess, RunConfig, TrainingConfig};
use unet_train::data::SyntheticDataset;
use unet_train::model_dir;
use unet_train::predict::segment;
use unet_train::train::{Progress, train};

// `cargo test` runs this example as a test too (see `tests` below).
#[cfg_attr(test, allow(dead_code))]
fn main() -> Result<(), RunError> {
    let backend = BackendKind::Flex;
    let size = 32;
    let config = RunConfig::trained(
        UNetConfig::new(1, 2).with_base_width(8).with_depth(3),
        Preprocess::default(),
        TrainingConfig {
            data: DataSource::Synthetic { samples: 80, size },
            epochs: 3,
            backend,
            ..TrainingConfig::synthetic()
        },
    );
    let dir = std::env::temp_dir().join(format!("unet-example-cpu-{}", std::process::id()));
    let report = train(&config, &dir, false, Progress::Plain)?;
    println!(
        "best validation Dice {:.3} (epoch {}); the run is in {}",
        report.best.val_dice,
        report.best.epoch,
        dir.display()
    );

    // An image from another seed: never seen in training.
    let device = backend.device();
    let model = model_dir::load(&dir, &device)?;
    let image = SyntheticDataset::new(1, size, 2, 1, 1234)?.sample(0);
    let mask = segment(&model.unet, &image.image, [1, size, size], &device)?;
    let right = mask.iter().zip(&image.mask).filter(|(a, b)| a == b).count();
    println!(
        "a new image: {:.1}% of its pixels labelled right",
        100.0 * right as f64 / mask.len() as f64
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_example_runs() {
        super::main().unwrap();
    }
}
