//! `bn-golden/1`: `torch.nn.BatchNorm2d` in training mode (batch statistics,
//! running statistics updated with momentum and the unbiased variance) and
//! in evaluation mode (running statistics), through [`layers::BatchNorm`],
//! the batch norm of the U-Net's blocks; a case may add `"activation":
//! "relu"` (an extension of the format: `output` is then `relu(bn(x))`,
//! computed by [`BatchNorm::try_forward_relu`]).

use std::path::Path;

use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor, TensorData};
use layers::{BatchNorm, BatchNormConfig};
use serde::Deserialize;

use crate::{
    ConformanceError, Failure, GoldenTensor, Report, Tolerance, compare, load_json, rank4,
    run_cases, to_data,
};

/// A file of batch-norm reference cases.
#[derive(Debug, Clone, Deserialize)]
pub struct BnFile {
    /// Must be `bn-golden/1`.
    pub format: String,
    /// What produced the values.
    #[serde(default)]
    pub generator: Option<String>,
    /// The cases.
    pub cases: Vec<BnCase>,
}

/// Training or evaluation behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BnMode {
    /// Batch statistics; running statistics updated.
    Train,
    /// Running statistics; no update.
    Eval,
}

/// What follows the normalisation in a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BnActivation {
    /// `torch.relu`.
    Relu,
}

/// A batch norm's configuration, in PyTorch's terms.
#[derive(Debug, Clone, Deserialize)]
#[allow(missing_docs)]
pub struct BnConfig {
    pub num_features: usize,
    pub eps: f64,
    pub momentum: f64,
    pub affine: bool,
}

/// One reference case (`BATCHNORM.md`).
#[derive(Debug, Clone, Deserialize)]
#[allow(missing_docs)]
pub struct BnCase {
    pub name: String,
    pub mode: BnMode,
    /// Absent in `BATCHNORM.md`'s cases: the normalisation alone.
    #[serde(default)]
    pub activation: Option<BnActivation>,
    pub config: BnConfig,
    pub input: GoldenTensor,
    pub weight: Option<GoldenTensor>,
    pub bias: Option<GoldenTensor>,
    pub running_mean: GoldenTensor,
    pub running_var: GoldenTensor,
    pub grad_output: GoldenTensor,
    pub output: GoldenTensor,
    pub running_mean_after: GoldenTensor,
    pub running_var_after: GoldenTensor,
    pub grad_input: GoldenTensor,
    pub grad_weight: Option<GoldenTensor>,
    pub grad_bias: Option<GoldenTensor>,
}

/// Reads and checks a `bn-golden/1` file.
pub fn load_batchnorm(path: impl AsRef<Path>) -> Result<BnFile, ConformanceError> {
    load_json(path.as_ref(), "bn-golden/1", |file: &BnFile| &file.format)
}

/// Runs every case of `file` on `device` (autodiff is enabled on it for the gradients).
pub fn run_batchnorm(file: &BnFile, device: &Device, tolerance: Tolerance) -> Report {
    run_cases(
        &file.cases,
        device,
        |case| &case.name,
        |case, device| run_case(case, device, tolerance),
    )
}

/// A 1-D parameter from a reference vector.
fn vector(tensor: &GoldenTensor, device: &Device) -> Tensor<1> {
    Tensor::from_data(to_data(tensor), device)
}

/// The layer of a case: PyTorch's statistics and affine parameters (ones
/// and zeros without `affine`), in the mode the case asks for.
fn layer(case: &BnCase, device: &Device) -> Result<BatchNorm, layers::ConvError> {
    let c = &case.config;
    let mut bn = BatchNormConfig::new(c.num_features)
        .with_epsilon(c.eps)
        .with_momentum(c.momentum)
        .try_init(device)?;
    if let (Some(weight), Some(bias)) = (&case.weight, &case.bias) {
        bn.gamma = Param::from_tensor(vector(weight, device));
        bn.beta = Param::from_tensor(vector(bias, device));
    }
    bn.running_mean = burn::module::RunningState::new(vector(&case.running_mean, device));
    bn.running_var = burn::module::RunningState::new(vector(&case.running_var, device));
    Ok(match case.mode {
        BnMode::Train => bn,
        // Running statistics, with gradients still flowing to input and parameters.
        BnMode::Eval => bn.freeze().set_require_grad(true).train(),
    })
}

fn run_case(case: &BnCase, device: &Device, tolerance: Tolerance) -> Result<Vec<Failure>, Failure> {
    let input = rank4("input", case.input.clone())?;
    let grad_output = rank4("grad_output", case.grad_output.clone())?;
    let bn = layer(case, device).map_err(|err| Failure::Refused(err.to_string()))?;
    let x = Tensor::<4>::from_data(input, device).require_grad();
    let y = match case.activation {
        None => bn.try_forward(x.clone()),
        Some(BnActivation::Relu) => bn.try_forward_relu(x.clone()),
    }
    .map_err(|err| Failure::Refused(err.to_string()))?;
    let mut failures = Vec::new();
    compare(
        "output",
        y.clone().into_data(),
        &case.output,
        tolerance,
        &mut failures,
    );
    let running: [(&'static str, Tensor<1>, &GoldenTensor); 2] = [
        (
            "running_mean",
            bn.running_mean.value_sync(),
            &case.running_mean_after,
        ),
        (
            "running_var",
            bn.running_var.value_sync(),
            &case.running_var_after,
        ),
    ];
    for (name, got, expected) in running {
        compare(name, got.into_data(), expected, tolerance, &mut failures);
    }
    let gradients = (y * Tensor::from_data(grad_output, device))
        .sum()
        .backward();
    let mut check =
        |name: &'static str, grad: Option<TensorData>, expected: &GoldenTensor| match grad {
            Some(grad) => compare(name, grad, expected, tolerance, &mut failures),
            None => failures.push(Failure::MissingGradient { tensor: name }),
        };
    check(
        "grad_input",
        x.grad(&gradients).map(Tensor::into_data),
        &case.grad_input,
    );
    if case.config.affine {
        let (Some(grad_weight), Some(grad_bias)) = (&case.grad_weight, &case.grad_bias) else {
            return Err(Failure::Malformed(
                "affine case without grad_weight and grad_bias".into(),
            ));
        };
        check(
            "grad_weight",
            bn.gamma.val().grad(&gradients).map(Tensor::into_data),
            grad_weight,
        );
        check(
            "grad_bias",
            bn.beta.val().grad(&gradients).map(Tensor::into_data),
            grad_bias,
        );
    }
    Ok(failures)
}
