//! Batch normalisation, PyTorch's `torch.nn.BatchNorm2d`.

use burn::config::Config;
use burn::module::{Flag, Module, Param, RunningState};
use burn::nn::Initializer;
use burn::tensor::{Device, Tensor};

use crate::dispatch;
use crate::error::ConvError;

/// Configuration of a [`BatchNorm`]; the defaults are PyTorch's.
///
/// ```
/// use burn::tensor::{Device, Tensor};
/// use layers::BatchNormConfig;
///
/// let device = Device::flex();
/// let bn = BatchNormConfig::new(8).try_init(&device)?;
/// let y = bn.try_forward(Tensor::<4>::ones([2, 8, 5, 5], &device))?;
/// assert_eq!(y.dims(), [2, 8, 5, 5]);
/// # Ok::<(), layers::ConvError>(())
/// ```
#[derive(Config, Debug)]
pub struct BatchNormConfig {
    /// Channels normalised (`C` of `[N, C, H, W]`).
    pub num_features: usize,
    /// Added to the variance before its square root. Default 1e-5.
    #[config(default = 1e-5)]
    pub epsilon: f64,
    /// Weight of the batch statistics in the running ones:
    /// `running = (1 - momentum) * running + momentum * batch`. Default 0.1.
    #[config(default = 0.1)]
    pub momentum: f64,
}

impl BatchNormConfig {
    /// Builds the layer: `gamma` ones, `beta` zeros, running mean zeros and
    /// running variance ones, as PyTorch.
    pub fn try_init(&self, device: &Device) -> Result<BatchNorm, ConvError> {
        if self.num_features == 0 {
            return Err(ConvError::ZeroChannels {
                which: "num_features",
            });
        }
        let epsilon_ok = self.epsilon.is_finite() && self.epsilon > 0.0;
        let momentum_ok = self.momentum.is_finite() && (0.0..=1.0).contains(&self.momentum);
        if !epsilon_ok || !momentum_ok {
            return Err(ConvError::NormSettings {
                epsilon: self.epsilon,
                momentum: self.momentum,
            });
        }
        let c = self.num_features;
        Ok(BatchNorm {
            gamma: Initializer::Ones.init([c], device),
            beta: Initializer::Zeros.init([c], device),
            training: Param::from_bool(true),
            running_mean: RunningState::new(Tensor::zeros([c], device)),
            running_var: RunningState::new(Tensor::ones([c], device)),
            momentum: self.momentum,
            epsilon: self.epsilon,
        })
    }

    /// Builds the layer.
    ///
    /// # Panics
    /// With the message of [`BatchNormConfig::try_init`]'s error.
    pub fn init(&self, device: &Device) -> BatchNorm {
        self.try_init(device).unwrap_or_else(|err| panic!("{err}"))
    }
}

/// Batch normalisation over `[batch, channels, height, width]` tensors,
/// equal to `torch.nn.BatchNorm2d`: `y = (x - mean) / sqrt(var + eps) * gamma + beta`.
///
/// On an autodiff device with training enabled it normalises with the
/// batch's mean and biased variance and updates the running statistics as
/// PyTorch does, the variance with its unbiased estimate
/// (`var * m / (m - 1)`, `m` the values per channel); otherwise it uses the
/// running statistics. Parameter names are Burn's (`gamma`, `beta`,
/// `running_mean`, `running_var`), so PyTorch's `weight` and `bias` load
/// into them as into Burn's own batch norm.
#[derive(Module, Debug)]
pub struct BatchNorm {
    /// Scale, `[channels]`.
    pub gamma: Param<Tensor<1>>,
    /// Shift, `[channels]`.
    pub beta: Param<Tensor<1>>,
    /// Whether the batch statistics are used (and the running ones updated)
    /// on an autodiff device; `Module::freeze` and `valid` turn it off.
    pub training: Param<Flag>,
    /// The running mean, `[channels]`.
    pub running_mean: RunningState<Tensor<1>>,
    /// The running variance, `[channels]`.
    pub running_var: RunningState<Tensor<1>>,
    /// See [`BatchNormConfig::momentum`].
    pub momentum: f64,
    /// See [`BatchNormConfig::epsilon`].
    pub epsilon: f64,
}

impl BatchNorm {
    /// Normalises `input`.
    ///
    /// # Shapes
    /// - `input`: `[batch, channels, height, width]`
    /// - output: the same
    pub fn try_forward(&self, input: Tensor<4>) -> Result<Tensor<4>, ConvError> {
        self.normalise(input, false)
    }

    /// Normalises `input`.
    ///
    /// # Panics
    /// With the message of [`BatchNorm::try_forward`]'s error.
    pub fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        self.try_forward(input)
            .unwrap_or_else(|err| panic!("{err}"))
    }

    /// `relu(self.try_forward(input))`, the pair most networks use; on flex
    /// and ndarray the ReLU runs inside the normalisation's pass, forward
    /// and backward, instead of two more passes over the activations.
    ///
    /// # Shapes
    /// - `input`: `[batch, channels, height, width]`
    /// - output: the same
    pub fn try_forward_relu(&self, input: Tensor<4>) -> Result<Tensor<4>, ConvError> {
        self.normalise(input, true)
    }

    fn normalise(&self, input: Tensor<4>, relu: bool) -> Result<Tensor<4>, ConvError> {
        let shape = input.dims();
        let [channels] = self.gamma.dims();
        if shape[1] != channels {
            return Err(ConvError::InputChannels {
                expected: channels,
                got: shape[1],
                shape,
            });
        }
        if input.device().is_autodiff() && self.training.is_enabled() {
            self.forward_train(input, relu)
        } else {
            Ok(self.forward_inference(input, relu))
        }
    }

    fn forward_inference(&self, input: Tensor<4>, relu: bool) -> Tensor<4> {
        let device = input.device();
        let mean = self.running_mean.value().to_device(&device);
        let var = self.running_var.value().to_device(&device);
        let (gamma, beta) = (self.gamma.val(), self.beta.val());
        dispatch::batch_norm(input, gamma, beta, [mean, var], self.epsilon, relu)
    }

    fn forward_train(&self, input: Tensor<4>, relu: bool) -> Result<Tensor<4>, ConvError> {
        let shape = input.dims();
        let per_channel = shape[0] * shape[2] * shape[3];
        if per_channel < 2 {
            return Err(ConvError::OneValuePerChannel { shape });
        }
        let device = input.device();
        let (gamma, beta) = (self.gamma.val(), self.beta.val());
        let (output, mean, variance) =
            dispatch::batch_norm_train(input, gamma, beta, self.epsilon, relu);
        let unbiased = variance.detach() * (per_channel as f64 / (per_channel - 1) as f64);
        let blend = |running: &RunningState<Tensor<1>>, batch: Tensor<1>| {
            let old = running.value_sync().to_device(&device);
            let new = old * (1.0 - self.momentum) + batch * self.momentum;
            running.update(new.detach());
        };
        blend(&self.running_mean, mean.detach());
        blend(&self.running_var, unbiased);
        Ok(output)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    #[test]
    fn running_statistics_follow_pytorch() {
        // One channel, values 1, 2, 3, 6 (m = 4): mean 3, biased variance
        // 3.5, unbiased 14/3. With momentum 0.1 from (0, 1):
        // mean 0.3, variance 0.9 + 0.1 * 14/3.
        let device = Device::flex().autodiff();
        let bn = BatchNormConfig::new(1).init(&device);
        let x = Tensor::<4>::from_data(
            TensorData::new(vec![1.0f32, 2.0, 3.0, 6.0], [1, 1, 2, 2]),
            &device,
        );
        let y: Vec<f32> = bn.forward(x).into_data().try_to_vec().unwrap();
        let std = (3.5f32 + 1e-5).sqrt();
        for (got, v) in y.iter().zip([1.0f32, 2.0, 3.0, 6.0]) {
            assert!((got - (v - 3.0) / std).abs() < 1e-6);
        }
        let mean: Vec<f32> = bn
            .running_mean
            .value_sync()
            .into_data()
            .try_to_vec()
            .unwrap();
        let var: Vec<f32> = bn
            .running_var
            .value_sync()
            .into_data()
            .try_to_vec()
            .unwrap();
        assert!((mean[0] - 0.3).abs() < 1e-6);
        assert!((var[0] - (0.9 + 0.1 * 14.0 / 3.0)).abs() < 1e-6, "{var:?}");
    }

    #[test]
    fn bad_settings_and_inputs_are_errors() {
        let device = Device::flex();
        assert!(BatchNormConfig::new(0).try_init(&device).is_err());
        assert!(
            BatchNormConfig::new(2)
                .with_momentum(2.0)
                .try_init(&device)
                .is_err()
        );
        let bn = BatchNormConfig::new(2).init(&device);
        assert!(matches!(
            bn.try_forward(Tensor::zeros([1, 3, 2, 2], &device)),
            Err(ConvError::InputChannels {
                expected: 2,
                got: 3,
                ..
            })
        ));
        let training = BatchNormConfig::new(2).init(&device.clone().autodiff());
        assert!(matches!(
            training.try_forward(Tensor::zeros([1, 2, 1, 1], &device.autodiff())),
            Err(ConvError::OneValuePerChannel { .. })
        ));
    }
}
