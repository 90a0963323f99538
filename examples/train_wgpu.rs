//! Train a lighter U-Net (depthwise-separable blocks) on a GPU through wgpu
//! (Vulkan, Metal or DirectX 12; Mesa's software Vulkan on a machine without
//! a GPU), through the library API, then write a mask and an overlay for a
//! new image file, as `unet predict` does.
//!
//! ```sh
//! cargo run --example train_wgpu
//! ```

use image::{GrayImage, Luma};
use unet::{Block, UNetConfig};
use unet_train::BackendKind;
use unet_train::RunError;
use unet_train::config::{DataSource, Preprocess, RunConfig, TrainingConfig};
use unet_train::data::SyntheticDataset;
use unet_train::model_dir;
use unet_train::predict::{PredictOptions, predict};
use unet_train::train::{Progress, train};

// `cargo test` runs this example as a test too (see `tests` below).
#[cfg_attr(test, allow(dead_code))]
fn main() -> Result<(), RunError> {
    let backend = BackendKind::Wgpu;
    let config = RunConfig::trained(
        UNetConfig::new(1, 2)
            .with_base_width(8)
            .with_depth(3)
            .with_block(Block::DepthwiseSeparable),
        Preprocess::default(),
        TrainingConfig {
            data: DataSource::Synthetic {
                samples: 64,
                size: 32,
            },
            epochs: 2,
            backend,
            ..TrainingConfig::synthetic()
        },
    );
    let dir = std::env::temp_dir().join(format!("unet-example-wgpu-{}", std::process::id()));
    let report = train(&config, &dir, false, Progress::Plain)?;
    let last = report.history.last().expect("two epochs ran");
    println!(
        "after {} epochs: validation loss {:.3}",
        last.epoch, last.val_loss
    );

    // A new image file, never seen in training (another seed).
    let sample = SyntheticDataset::new(1, 32, 2, 1, 1234)?.sample(0);
    let file = dir.join("new.png");
    GrayImage::from_fn(32, 32, |x, y| {
        Luma([(sample.pixel(0, y as usize, x as usize) * 255.0) as u8])
    })
    .save(&file)
    .map_err(|err| RunError::io(&file, err))?;

    let device = backend.device();
    let model = model_dir::load(&dir, &device)?;
    let options = PredictOptions::default();
    let report = predict(
        &model,
        &file,
        &dir.join("predicted"),
        &options,
        &device,
        &mut |_| {},
    )?;
    if let Some(failure) = report.failed.into_iter().next() {
        return Err(failure.error);
    }
    for written in report.done {
        println!(
            "{} -> {} and {}",
            written.input.display(),
            written.mask.display(),
            written.overlay.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_example_runs() {
        super::main().unwrap();
    }
}
