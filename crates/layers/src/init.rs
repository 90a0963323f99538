//! How a layer's weight and bias start.

use burn::config::Config;
use burn::module::Param;
use burn::nn::Initializer;
use burn::tensor::{Device, Tensor, TensorData};

use crate::error::ConvError;
use crate::geometry::ConvGeometry;

/// The initial values of a convolution's weight and bias.
#[derive(Config, Debug, PartialEq)]
pub enum WeightInit {
    /// PyTorch's default (`reset_parameters` of `torch.nn.Conv2d` and
    /// `ConvTranspose2d`): Kaiming-uniform with `a = sqrt(5)` for the weight and
    /// the same bound for the bias, that is both uniform in
    /// `±1 / sqrt(fan_in)`, where `fan_in = weight.shape[1] * kh * kw`
    /// (`in/groups * kh * kw` for a convolution, `out/groups * kh * kw` for a
    /// transposed one, as PyTorch computes it from the weight tensor).
    PyTorch,
    /// The fixed bilinear-interpolation kernel FCN starts its upsampling layers
    /// with: channel `c` maps to channel `c` only, with the separable tent
    /// filter `(1 - |y - cy| / f) * (1 - |x - cx| / f)` where
    /// `f = ceil(k / 2)` and `c = f - 1` (odd `k`) or `f - 0.5` (even `k`);
    /// bias zero. Needs `in_channels == out_channels`. With stride `f`,
    /// kernel `2f - f % 2` and padding `ceil((f - 1) / 2)`, a transposed
    /// convolution so initialised is bilinear upsampling by `f`.
    Bilinear,
    /// One of Burn's initialisers, called with the layer's fan-in and fan-out
    /// for the weight and the bias alike (Burn's own convention).
    Burn(Initializer),
}

/// The tent filter of [`WeightInit::Bilinear`] along one axis of length `kernel`.
pub fn bilinear_filter(kernel: usize) -> Vec<f64> {
    let factor = kernel.div_ceil(2) as f64;
    let center = if kernel % 2 == 1 {
        factor - 1.0
    } else {
        factor - 0.5
    };
    (0..kernel)
        .map(|i| 1.0 - (i as f64 - center).abs() / factor)
        .collect()
}

/// Creates the parameters of a layer whose weight has `weight_shape` (PyTorch's
/// layout) and, with `bias`, a bias of `bias_len` values.
///
/// `fan_in` / `fan_out` are those of PyTorch's `_calculate_fan_in_and_fan_out`.
fn init_params(
    init: &WeightInit,
    weight_shape: [usize; 4],
    bias_len: Option<usize>,
    device: &Device,
) -> (Param<Tensor<4>>, Option<Param<Tensor<1>>>) {
    let receptive = weight_shape[2] * weight_shape[3];
    let fan_in = weight_shape[1] * receptive;
    let fan_out = weight_shape[0] * receptive;
    match init {
        WeightInit::PyTorch => {
            let bound = 1.0 / (fan_in as f64).sqrt();
            let uniform = Initializer::Uniform {
                min: -bound,
                max: bound,
            };
            (
                uniform.init(weight_shape, device),
                bias_len.map(|n| uniform.init([n], device)),
            )
        }
        WeightInit::Bilinear => {
            let [channels, per_group, kh, kw] = weight_shape;
            let (fh, fw) = (bilinear_filter(kh), bilinear_filter(kw));
            let mut values = vec![0.0f32; channels * per_group * kh * kw];
            for c in 0..channels {
                let base = (c * per_group + c % per_group) * kh * kw;
                for y in 0..kh {
                    for x in 0..kw {
                        values[base + y * kw + x] = (fh[y] * fw[x]) as f32;
                    }
                }
            }
            (
                Param::from_data(TensorData::new(values, weight_shape), device),
                bias_len.map(|n| Param::from_data(TensorData::zeros::<f32, _>([n]), device)),
            )
        }
        WeightInit::Burn(initializer) => (
            initializer.init_with(weight_shape, Some(fan_in), Some(fan_out), device),
            bias_len.map(|n| initializer.init_with([n], Some(fan_in), Some(fan_out), device)),
        ),
    }
}

/// Where a layer's parameters come from: a fresh initialisation, or given
/// values (a PyTorch state dict entry, say).
// Lives for one call; boxing the data would buy nothing.
#[allow(clippy::large_enum_variant)]
pub(crate) enum ParamSource {
    /// Initialise with the config's [`WeightInit`].
    Fresh,
    /// These values, checked against the shapes the config implies.
    Given(TensorData, Option<TensorData>),
}

impl ParamSource {
    /// The layer's weight (`weight_shape`, PyTorch's layout) and bias
    /// (`bias_len` values, `None` for no bias).
    pub(crate) fn into_params(
        self,
        init: &WeightInit,
        geometry: &ConvGeometry,
        weight_shape: [usize; 4],
        bias_len: Option<usize>,
        device: &Device,
    ) -> Result<(Param<Tensor<4>>, Option<Param<Tensor<1>>>), ConvError> {
        match self {
            ParamSource::Fresh => {
                check_init(init, geometry)?;
                Ok(init_params(init, weight_shape, bias_len, device))
            }
            ParamSource::Given(weight, bias) => {
                params_from_data(weight, bias, weight_shape, bias_len, device)
            }
        }
    }
}

/// Checks that `init` can initialise a layer of this geometry.
fn check_init(init: &WeightInit, geometry: &ConvGeometry) -> Result<(), ConvError> {
    match init {
        WeightInit::Bilinear if geometry.in_channels() != geometry.out_channels() => {
            Err(ConvError::BilinearChannels {
                in_channels: geometry.in_channels(),
                out_channels: geometry.out_channels(),
            })
        }
        _ => Ok(()),
    }
}

/// Turns given weight and bias values into parameters, after checking their
/// shapes against those the config implies.
fn params_from_data(
    weight: TensorData,
    bias: Option<TensorData>,
    weight_shape: [usize; 4],
    bias_len: Option<usize>,
    device: &Device,
) -> Result<(Param<Tensor<4>>, Option<Param<Tensor<1>>>), ConvError> {
    check_shape("weight", &weight_shape, weight.shape())?;
    let bias = match (bias, bias_len) {
        (Some(bias), Some(len)) => {
            check_shape("bias", &[len], bias.shape())?;
            Some(Param::from_data(bias, device))
        }
        (None, None) => None,
        (_, configured) => {
            return Err(ConvError::BiasMismatch {
                configured: configured.is_some(),
            });
        }
    };
    Ok((Param::from_data(weight, device), bias))
}

/// `Ok` when `got` equals `expected`, else a [`ConvError::ShapeMismatch`] naming `name`.
pub(crate) fn check_shape(name: &str, expected: &[usize], got: &[usize]) -> Result<(), ConvError> {
    if expected == got {
        Ok(())
    } else {
        Err(ConvError::ShapeMismatch {
            name: name.to_string(),
            expected: expected.to_vec(),
            got: got.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bilinear_filters_match_fcn() {
        // FCN's get_upsampling_weight(kernel_size=4): factor 2, center 1.5.
        assert_eq!(bilinear_filter(4), vec![0.25, 0.75, 0.75, 0.25]);
        // kernel 3: factor 2, center 1.
        assert_eq!(bilinear_filter(3), vec![0.5, 1.0, 0.5]);
        assert_eq!(bilinear_filter(1), vec![1.0]);
    }
}
