//! How much memory a training step takes, estimated from the network's
//! layer shapes before anything is allocated, so that a size the machine
//! cannot hold is refused with the figures instead of ending the program.

use burn::tensor::{Device, Tensor};
use sysinfo::{MemoryRefreshKind, RefreshKind, System};
use unet::{LayerSummary, Norm, Summary, UNetConfig, summary};

use crate::error::RunError;
use crate::precision::Precision;

/// Values kept per activation value in a training step: the forward output
/// (kept for the backward pass), its gradient, and the temporaries around
/// them. Measured peak resident memory of the default U-Net's step on flex
/// stays below this estimate (`docs/program.md`).
const TRAINING_FACTOR: u64 = 3;
/// Values per parameter: the weight, its gradient, Adam's two moments.
const PARAMETER_FACTOR: u64 = 4;

/// The layer shapes of `model` on one image of `size` (`[height, width]`).
/// Builds the network to read them; Burn creates parameters lazily, so
/// nothing of its size is allocated.
fn layer_table(model: &UNetConfig, size: [usize; 2]) -> Result<Summary, RunError> {
    let unet = model.try_init(&Device::flex())?;
    Ok(summary(&unet, [1, model.in_channels, size[0], size[1]])?)
}

/// The estimated peak memory of one training step of `model` on a batch
/// of `batch` images of `size` (`[height, width]`), in bytes (saturating).
pub fn training_bytes(model: &UNetConfig, batch: usize, size: [usize; 2]) -> Result<u64, RunError> {
    let table = layer_table(model, size)?;
    let activations = table
        .layers
        .iter()
        .map(|layer| {
            layer
                .output
                .iter()
                .fold(1u64, |n, &d| n.saturating_mul(d as u64))
        })
        .fold(0u64, u64::saturating_add);
    let params = table.total_params() as u64;
    let values = activations
        .saturating_mul(batch as u64)
        .saturating_mul(TRAINING_FACTOR)
        .saturating_add(params.saturating_mul(PARAMETER_FACTOR));
    Ok(values.saturating_mul(4))
}

/// The largest single tensor of a forward or backward pass of `model` on a
/// batch of `batch` images of `size` (`[height, width]`) in `precision`:
/// the layer whose output it is, and its bytes (saturating). Layer outputs
/// are in the precision's type, except where batch norm follows, which
/// computes half-precision inputs in `f32`.
pub fn largest_tensor(
    model: &UNetConfig,
    batch: usize,
    size: [usize; 2],
    precision: Precision,
) -> Result<(String, u64), RunError> {
    let table = layer_table(model, size)?;
    let bytes = |layer: &LayerSummary| {
        let value = match (precision, layer.norm) {
            (Precision::F32, _) | (_, Norm::Batch) => 4,
            (Precision::F16 | Precision::Bf16, _) => 2,
        };
        layer
            .output
            .iter()
            .fold(batch as u64, |n, &d| n.saturating_mul(d as u64))
            .saturating_mul(value)
    };
    let largest = table
        .layers
        .iter()
        .max_by_key(|layer| bytes(layer))
        .expect("a U-Net has layers");
    Ok((largest.name.clone(), bytes(largest)))
}

/// Whether `device` holds a tensor of `bytes` at once ([`layers::device_holds`]).
/// A panic on the way is the answer, not something to report.
pub fn device_holds(bytes: u64, device: &Device) -> bool {
    let Ok(bytes) = usize::try_from(bytes) else {
        return false;
    };
    matches!(
        crate::guard::catch_handled(|| layers::device_holds(device, bytes)),
        Ok((true, _))
    )
}

/// The most values a training step of `model` on a batch of `batch` images
/// of `size` sums at once: the batch's pixels (the cross-entropy's mean;
/// batch norm's statistics and their gradients, per channel), or a group
/// of channels of one image (group norm's, per image and group).
pub fn longest_sum(model: &UNetConfig, batch: usize, size: [usize; 2]) -> Result<usize, RunError> {
    let table = layer_table(model, size)?;
    let pixels = batch.saturating_mul(size[0]).saturating_mul(size[1]);
    let groups = table.layers.iter().filter_map(|layer| match layer.norm {
        Norm::Group { groups } => {
            let [_, channels, h, w] = layer.output;
            Some(
                (channels / groups.max(1))
                    .saturating_mul(h)
                    .saturating_mul(w),
            )
        }
        Norm::Batch | Norm::None => None,
    });
    Ok(groups.fold(pixels, usize::max))
}

/// The longest sum [`wrong_sum`] tries: 2^22 values, whose four rows take
/// 64 MiB (within what GPUs bind at once) and are exact in `f32`.
pub const LONGEST_TRIED: usize = 1 << 22;

/// A sum a device got wrong: how many ones it summed, and what it gave.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WrongSum {
    /// Ones summed.
    pub len: usize,
    /// The sum the device gave.
    pub got: f32,
}

/// What `device` gives for sums of `len` ones (at most [`LONGEST_TRIED`]):
/// along the rows of a `[4, len]` tensor, contiguous and strided (a
/// transposed view), and over all of a `[len]` one; the first wrong sum.
/// Burn's `sum_dim`, `mean_dim` and `sum` are such sums ([`longest_sum`]
/// says how long a training step's are). Mesa's lavapipe ends the loops
/// of a GPU kernel after 65535 iterations in all (gallivm's
/// `LP_MAX_TGSI_LOOP_ITERATIONS`), so CubeCL 0.11.3's reductions, one
/// invocation a row, come out short from about 65536 values: a strided sum
/// of 65536 ones gives 65532, a contiguous one (four values an iteration)
/// at most 262128.
///
/// # Errors
/// The device's own, where it fails to compute or read the sums.
pub fn wrong_sum(len: usize, device: &Device) -> Result<Option<WrongSum>, RunError> {
    const ROWS: usize = 4;
    let len = len.clamp(1, LONGEST_TRIED);
    let device = device.clone().inner();
    let sums = crate::guard::catch(|| {
        let contiguous = Tensor::<2>::ones([ROWS, len], &device).sum_dim(1);
        let strided = Tensor::<2>::ones([len, ROWS], &device)
            .transpose()
            .sum_dim(1);
        let whole = Tensor::<1>::ones([len], &device).sum();
        Tensor::cat(
            vec![contiguous.reshape([ROWS]), strided.reshape([ROWS]), whole],
            0,
        )
        .try_into_vec_as::<f32>()
        .map_err(|err| err.to_string())
    })
    .and_then(|read| read)
    .map_err(|reason| RunError::device(&format!("summing {len} values"), reason))?;
    Ok(first_wrong(&sums, len).map(|got| WrongSum { len, got }))
}

/// The first of `sums` that is not `len`.
fn first_wrong(sums: &[f32], len: usize) -> Option<f32> {
    sums.iter().copied().find(|&sum| sum != len as f32)
}

/// The memory the system can give this process now, in bytes (`None` where
/// it cannot be read).
pub fn available_bytes() -> Option<u64> {
    let system = System::new_with_specifics(
        RefreshKind::nothing().with_memory(MemoryRefreshKind::nothing().with_ram()),
    );
    Some(system.available_memory()).filter(|&bytes| bytes > 0)
}

/// Bytes in binary units: `3.2 GiB`.
pub fn human(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < units.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", units[unit])
}

/// Refuses a training run whose step would need more memory than the
/// machine has available, naming the estimate.
pub fn check_training_fits(
    model: &UNetConfig,
    batch: usize,
    size: [usize; 2],
) -> Result<(), RunError> {
    let needed = training_bytes(model, batch, size)?;
    match available_bytes() {
        Some(available) if needed > available => Err(RunError::TooLarge {
            what: format!(
                "a training step (batch {batch} of {}x{} images, base width {}, depth {})",
                size[0], size[1], model.base_width, model.depth
            ),
            needed: human(needed),
            available: human(available),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A grayscale two-class U-Net of depth 2.
    fn model(base_width: usize, norm: Norm) -> UNetConfig {
        UNetConfig::new(1, 2)
            .with_base_width(base_width)
            .with_depth(2)
            .with_norm(norm)
    }

    /// The full-resolution concatenation (2 images x 32 channels x 64 x 64)
    /// is the largest output; in half precision it takes two bytes a value,
    /// and a batch-normalised output (16 channels) four.
    #[test]
    fn the_largest_tensor_follows_the_precision_and_batch_norm() {
        let largest = |norm, precision| largest_tensor(&model(16, norm), 2, [64, 64], precision);
        let values = 2 * 32 * 64 * 64;
        let (layer, bytes) = largest(Norm::Batch, Precision::F32).unwrap();
        assert_eq!((layer.as_str(), bytes), ("ups.1.concat", 4 * values));
        let (layer, bytes) = largest(Norm::None, Precision::F16).unwrap();
        assert_eq!((layer.as_str(), bytes), ("ups.1.concat", 2 * values));
        let (_, bytes) = largest(Norm::Batch, Precision::Bf16).unwrap();
        assert_eq!(bytes, 4 * (values / 2));
    }

    /// The CPU sums exactly, along either layout; a sum that stops early
    /// (as lavapipe's strided one does) is the one reported.
    #[test]
    fn a_short_sum_is_found_and_the_cpu_sums_exactly() {
        assert_eq!(first_wrong(&[8.0, 8.0, 8.0], 8), None);
        assert_eq!(first_wrong(&[8.0, 8.0, 4.0, 0.0], 8), Some(4.0));
        for len in [1, 65536, 131072, LONGEST_TRIED] {
            assert_eq!(wrong_sum(len, &Device::flex()).unwrap(), None, "{len}");
        }
    }

    /// Batch norm sums over the batch's pixels; group norm over a group of
    /// one image's channels, which can be longer (8 groups of 32 channels
    /// at 128x128: 65536 values, where a batch of 2 has 32768 pixels).
    #[test]
    fn the_longest_sum_follows_the_norm() {
        let longest = |norm| longest_sum(&model(32, norm), 2, [128, 128]).unwrap();
        assert_eq!(longest(Norm::Batch), 32768);
        assert_eq!(longest(Norm::None), 32768);
        assert_eq!(longest(Norm::Group { groups: 8 }), 65536);
        assert_eq!(longest(Norm::Group { groups: 32 }), 32768);
    }

    #[test]
    fn the_estimate_grows_with_batch_and_size_and_refuses_the_impossible() {
        let model = UNetConfig::new(1, 2).with_base_width(16).with_depth(4);
        let bytes = |batch, side| training_bytes(&model, batch, [side, side]).unwrap();
        // Parameters (1.9 million: weights, gradients, Adam's moments) and
        // activations growing with the batch and the pixels.
        let params = bytes(0, 128);
        assert_eq!(params, bytes(0, 256));
        assert!((25 << 20..35 << 20).contains(&params), "{}", human(params));
        let activations = bytes(4, 128) - params;
        assert_eq!(bytes(8, 128) - params, 2 * activations);
        assert_eq!(bytes(4, 256) - params, 4 * activations);
        // The default step (batch 4 of 128x128) is some tens of MiB.
        assert!(
            (50 << 20..400 << 20).contains(&bytes(4, 128)),
            "{}",
            human(bytes(4, 128))
        );
        // Hundreds of TiB: refused, whatever the machine.
        let err = check_training_fits(&model, 8, [1 << 20, 1 << 20]).unwrap_err();
        assert!(err.to_string().contains("needs about"), "{err}");
        assert_eq!(human(3 << 30), "3.0 GiB");
    }
}
