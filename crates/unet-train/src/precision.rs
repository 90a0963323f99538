//! Mixed-precision training (`unet train --precision f16|bf16`), as PyTorch's
//! automatic mixed precision does it:
//!
//! - the weights and Adam's state stay `f32`; each layer casts its weights
//!   to its input's type ([`layers`]), so the forward and backward passes of
//!   the convolutions run in the lower precision, and each weight's gradient
//!   comes back through the cast in `f32`;
//! - batch norm computes its statistics in `f32`, and the loss is computed
//!   on `f32` logits;
//! - with `f16`, whose smallest normal number is 6.1e-5, the loss is
//!   multiplied by a scale before the backward pass so that small gradients
//!   do not vanish, and the gradients are divided by it before the optimizer
//!   sees them: [`LossScale`], PyTorch's `GradScaler` with its defaults.
//!   `bf16` has `f32`'s range and trains unscaled, as in PyTorch.

use std::fmt;
use std::str::FromStr;

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::{DType, Device, FloatDType, Tensor, TensorData};

use crate::backend::BackendKind;
use crate::error::RunError;

/// The float type a training step computes in. Serialised by its
/// command-line name.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Everything in `f32` (the default).
    #[default]
    F32,
    /// Convolutions in IEEE half precision, with dynamic loss scaling.
    F16,
    /// Convolutions in bfloat16 (`f32`'s range, 8 bits of mantissa), unscaled.
    Bf16,
}

impl Precision {
    /// Every precision.
    pub const ALL: [Precision; 3] = [Precision::F32, Precision::F16, Precision::Bf16];

    /// The name used on command lines: `f32`, `f16` or `bf16`.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
            Precision::Bf16 => "bf16",
        }
    }

    /// The float type of the convolutions' inputs and outputs.
    pub fn dtype(self) -> FloatDType {
        match self {
            Precision::F32 => FloatDType::F32,
            Precision::F16 => FloatDType::F16,
            Precision::Bf16 => FloatDType::BF16,
        }
    }

    /// Whether the loss is scaled ([`LossScale`]): `f16` only.
    pub fn scales_loss(self) -> bool {
        self == Precision::F16
    }

    /// Checks that `backend` has this precision's type: ndarray has no
    /// half-precision types.
    pub fn check_backend(self, backend: BackendKind) -> Result<(), RunError> {
        if self != Precision::F32 && backend == BackendKind::Ndarray {
            return Err(RunError::option(
                "--precision",
                self,
                "f32 with --backend ndarray (it has no half-precision types)",
            ));
        }
        Ok(())
    }

    /// Checks that `device` computes in this precision: a GPU may not
    /// (f16 needs WebGPU's `shader-f16` or Vulkan's `shaderFloat16`;
    /// bfloat16 an extension few drivers have).
    pub fn check_device(self, backend: BackendKind, device: &Device) -> Result<(), RunError> {
        self.check_backend(backend)?;
        if self != Precision::F32 && !device.supports_dtype(DType::from(self.dtype())) {
            return Err(RunError::option(
                "--precision",
                self,
                &format!("f32 on this --backend {backend} device (it does not compute in {self})"),
            ));
        }
        Ok(())
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A precision name that is not one of `f32`, `f16`, `bf16`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown precision '{0}': expected f32, f16 or bf16")]
pub struct UnknownPrecision(pub String);

impl FromStr for Precision {
    type Err = UnknownPrecision;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|precision| precision.name() == name)
            .ok_or_else(|| UnknownPrecision(name.to_string()))
    }
}

/// The rule of dynamic loss scaling, PyTorch's `GradScaler` defaults: start
/// at 2^16; a step whose gradients hold an infinity or a NaN is skipped and
/// halves the scale; 2000 steps in a row without one double it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScaleRule {
    /// The first scale.
    pub initial: f32,
    /// Finite steps in a row after which the scale doubles.
    pub growth_interval: u32,
}

impl Default for ScaleRule {
    fn default() -> Self {
        Self {
            initial: 65536.0,
            growth_interval: 2000,
        }
    }
}

/// Where the scale stands: the scale, and the finite steps since it last changed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScaleState {
    /// What the loss is multiplied by.
    pub scale: f32,
    /// Finite steps in a row since the scale last changed.
    pub good_steps: u32,
}

impl ScaleRule {
    /// The state after a step whose gradients were `finite` or not. The
    /// scale changes by factors of two, so scaling and unscaling are exact;
    /// a doubling that would overflow is not made.
    pub fn after(self, state: ScaleState, finite: bool) -> ScaleState {
        if !finite {
            return ScaleState {
                scale: state.scale * 0.5,
                good_steps: 0,
            };
        }
        let good_steps = state.good_steps + 1;
        if good_steps < self.growth_interval {
            return ScaleState {
                good_steps,
                ..state
            };
        }
        let doubled = state.scale * 2.0;
        ScaleState {
            scale: if doubled.is_finite() {
                doubled
            } else {
                state.scale
            },
            good_steps: 0,
        }
    }
}

/// Dynamic loss scaling for `f16` training: a part of the trained module, so
/// that burn-train's checkpoints keep the scale and a resumed run goes on
/// with it. Its one parameter, `[scale, good steps]`, is not trained.
#[derive(Module, Debug)]
pub struct LossScale {
    state: Param<Tensor<1>>,
    #[module(skip)]
    rule: ScaleRule,
}

impl LossScale {
    /// The scale at the start of a run, on `device`.
    pub fn new(rule: ScaleRule, device: &Device) -> Self {
        let state = ScaleState {
            scale: rule.initial,
            good_steps: 0,
        };
        Self {
            state: Self::param(state, device),
            rule,
        }
    }

    fn param(state: ScaleState, device: &Device) -> Param<Tensor<1>> {
        let values = TensorData::new(vec![state.scale, state.good_steps as f32], [2]);
        Param::initialized(ParamId::new(), Tensor::from_data(values, device))
            .set_require_grad(false)
    }

    /// The current state (read from the device).
    pub fn state(&self) -> ScaleState {
        Self::read(self.state.val()).0
    }

    /// The state, and whether the values after it are all finite, from
    /// `values` (`[scale, good steps, ..]`): one read from the device.
    fn read(values: Tensor<1>) -> (ScaleState, bool) {
        let values: Vec<f32> = values.into_data().iter::<f32>().collect();
        let state = ScaleState {
            scale: values[0],
            good_steps: values[1] as u32,
        };
        (state, values[2..].iter().all(|v| v.is_finite()))
    }

    /// `loss` times the scale (on the device: no read).
    pub fn scaled(&self, loss: Tensor<1>) -> Tensor<1> {
        let scale = self.state.val().detach().slice_dim(0, 0..1);
        let device = loss.device();
        loss * scale.to_device(&device)
    }

    /// Takes the gradients of a scaled loss: if all are finite, returns them
    /// divided by the scale; otherwise `None` (the step is to be skipped).
    /// Either way the scale moves on by its rule. One read from the device.
    pub fn unscale<M: Module>(
        self,
        module: &M,
        mut grads: GradientsParams,
    ) -> (Option<GradientsParams>, Self) {
        let mut sums = GradientSums {
            grads: &grads,
            total: None,
        };
        module.visit(&mut sums);
        let values = self.state.val();
        let device = values.device();
        let values = match sums.total {
            Some(total) => Tensor::cat(vec![values, total.to_device(&device)], 0),
            None => values,
        };
        let (state, finite) = Self::read(values);
        let next = Self {
            state: Self::param(self.rule.after(state, finite), &device),
            rule: self.rule,
        };
        if !finite {
            return (None, next);
        }
        module.visit(&mut Unscale {
            grads: &mut grads,
            factor: 1.0 / state.scale,
        });
        (Some(grads), next)
    }
}

/// The sum of every gradient: finite exactly when each gradient is.
struct GradientSums<'a> {
    grads: &'a GradientsParams,
    total: Option<Tensor<1>>,
}

impl ModuleVisitor for GradientSums<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(grad) = self.grads.get::<D>(param.id) {
            let sum = grad.sum();
            self.total = Some(match self.total.take() {
                Some(total) => {
                    let device = total.device();
                    total + sum.to_device(&device)
                }
                None => sum,
            });
        }
    }
}

/// Multiplies every gradient by `factor`.
struct Unscale<'a> {
    grads: &'a mut GradientsParams,
    factor: f32,
}

impl ModuleVisitor for Unscale<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(grad) = self.grads.remove::<D>(param.id) {
            self.grads.register(param.id, grad * self.factor);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for precision in Precision::ALL {
            assert_eq!(precision.name().parse::<Precision>(), Ok(precision));
        }
        assert_eq!(
            "f8".parse::<Precision>().unwrap_err().to_string(),
            "unknown precision 'f8': expected f32, f16 or bf16"
        );
    }

    #[test]
    fn the_scale_halves_on_an_overflow_and_doubles_after_the_interval() {
        let rule = ScaleRule {
            initial: 1024.0,
            growth_interval: 3,
        };
        let start = ScaleState {
            scale: 1024.0,
            good_steps: 2,
        };
        let halved = rule.after(start, false);
        assert_eq!(
            halved,
            ScaleState {
                scale: 512.0,
                good_steps: 0
            }
        );
        let after = |state, n| (0..n).fold(state, |s, _| rule.after(s, true));
        assert_eq!(after(halved, 2).scale, 512.0);
        assert_eq!(
            after(halved, 3),
            ScaleState {
                scale: 1024.0,
                good_steps: 0
            }
        );
        let top = ScaleState {
            scale: f32::MAX,
            good_steps: 2,
        };
        assert_eq!(
            rule.after(top, true).scale,
            f32::MAX,
            "no doubling to infinity"
        );
    }

    #[test]
    fn ndarray_is_refused_half_precision() {
        #[allow(deprecated)]
        let device = Device::ndarray();
        let err = Precision::F16.check_device(BackendKind::Ndarray, &device);
        assert_eq!(
            err.unwrap_err().to_string(),
            "--precision f16: must be f32 with --backend ndarray (it has no half-precision types)"
        );
        assert!(
            Precision::F32
                .check_device(BackendKind::Ndarray, &device)
                .is_ok()
        );
        for precision in [Precision::F16, Precision::Bf16] {
            assert!(
                precision
                    .check_device(BackendKind::Flex, &Device::flex())
                    .is_ok()
            );
        }
    }
}
