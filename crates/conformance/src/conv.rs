//! `conv-golden/1`: convolutions and transposed convolutions against
//! PyTorch's `conv2d` and `conv_transpose2d`.

use std::path::Path;

use burn::tensor::{Device, FloatDType, Tensor, TensorData};
use layers::{
    Conv2d, Conv2dConfig, ConvError, ConvTranspose2d, ConvTranspose2dConfig, Padding, UpConv2d,
};
use serde::Deserialize;

use crate::{
    CaseResult, ConformanceError, Failure, GoldenTensor, Report, Tolerance, compare, load_json,
    rank4, to_data,
};

/// A file of reference cases.
#[derive(Debug, Clone, Deserialize)]
pub struct GoldenFile {
    /// Must be `conv-golden/1`.
    pub format: String,
    /// What produced the values (e.g. `PyTorch 2.15.0`).
    #[serde(default)]
    pub generator: Option<String>,
    /// The cases.
    pub cases: Vec<GoldenCase>,
}

/// The operation a case exercises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GoldenOp {
    /// `torch.nn.functional.conv2d`.
    Conv2d,
    /// `torch.nn.functional.conv_transpose2d`.
    ConvTranspose2d,
}

/// A layer configuration, in PyTorch's terms.
#[derive(Debug, Clone, Deserialize)]
#[allow(missing_docs)]
pub struct GoldenConfig {
    pub in_channels: usize,
    pub out_channels: usize,
    pub kernel_size: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub dilation: [usize; 2],
    pub groups: usize,
    pub bias: bool,
    #[serde(default)]
    pub output_padding: [usize; 2],
}

/// One reference case: a valid case carries tensors, an error case
/// `input_shape` and `expect_error`.
#[derive(Debug, Clone, Deserialize)]
#[allow(missing_docs)]
pub struct GoldenCase {
    pub name: String,
    pub op: GoldenOp,
    pub config: GoldenConfig,
    #[serde(default)]
    pub input_shape: Option<[usize; 4]>,
    #[serde(default)]
    pub expect_error: Option<String>,
    #[serde(default)]
    pub input: Option<GoldenTensor>,
    #[serde(default)]
    pub weight: Option<GoldenTensor>,
    #[serde(default)]
    pub bias: Option<GoldenTensor>,
    #[serde(default)]
    pub output: Option<GoldenTensor>,
    #[serde(default)]
    pub grad_output: Option<GoldenTensor>,
    #[serde(default)]
    pub grad_input: Option<GoldenTensor>,
    #[serde(default)]
    pub grad_weight: Option<GoldenTensor>,
    #[serde(default)]
    pub grad_bias: Option<GoldenTensor>,
}

/// Reads and checks a `conv-golden/1` file.
pub fn load(path: impl AsRef<Path>) -> Result<GoldenFile, ConformanceError> {
    load_json(path.as_ref(), "conv-golden/1", |file: &GoldenFile| {
        &file.format
    })
}

/// Which implementation the transposed-convolution cases run through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Implementation {
    /// [`Conv2d`] and [`ConvTranspose2d`].
    #[default]
    Native,
    /// [`UpConv2d`] (zero insertion + convolution) for the transposed cases;
    /// the `conv2d` cases are left out.
    UpConv,
}

/// Runs every case of `file` on `device` (autodiff is enabled on it for the
/// gradients).
pub fn run(
    file: &GoldenFile,
    device: &Device,
    implementation: Implementation,
    tolerance: Tolerance,
) -> Report {
    run_in(file, device, implementation, tolerance, FloatDType::F32)
}

/// [`run`] with the inputs in `dtype`, as mixed-precision training runs the
/// layers: the input and the output gradient are rounded to `dtype`, the
/// weights and bias stay `f32` (the layers cast them), and the results are
/// compared with the float64 reference.
pub fn run_in(
    file: &GoldenFile,
    device: &Device,
    implementation: Implementation,
    tolerance: Tolerance,
    dtype: FloatDType,
) -> Report {
    let device = device.clone().autodiff();
    let cases = file
        .cases
        .iter()
        .filter(|case| {
            implementation == Implementation::Native || case.op == GoldenOp::ConvTranspose2d
        })
        .map(|case| CaseResult {
            name: case.name.clone(),
            failures: run_case(case, &device, implementation, tolerance, dtype),
        })
        .collect();
    Report { cases }
}

/// A layer under test.
enum Layer {
    Conv(Conv2d),
    Transposed(ConvTranspose2d),
    UpConv(UpConv2d),
}

impl Layer {
    fn build(
        case: &GoldenCase,
        implementation: Implementation,
        params: Option<(TensorData, Option<TensorData>)>,
        device: &Device,
    ) -> Result<Self, ConvError> {
        let c = &case.config;
        match case.op {
            GoldenOp::Conv2d => {
                let config = Conv2dConfig::new(c.in_channels, c.out_channels, c.kernel_size)
                    .with_stride(c.stride)
                    .with_padding(Padding::Explicit(c.padding))
                    .with_dilation(c.dilation)
                    .with_groups(c.groups)
                    .with_bias(c.bias);
                Ok(Layer::Conv(match params {
                    Some((weight, bias)) => config.try_init_from(weight, bias, device)?,
                    None => config.try_init(device)?,
                }))
            }
            GoldenOp::ConvTranspose2d => {
                let config =
                    ConvTranspose2dConfig::new(c.in_channels, c.out_channels, c.kernel_size)
                        .with_stride(c.stride)
                        .with_padding(c.padding)
                        .with_output_padding(c.output_padding)
                        .with_dilation(c.dilation)
                        .with_groups(c.groups)
                        .with_bias(c.bias);
                let layer = match params {
                    Some((weight, bias)) => config.try_init_from(weight, bias, device)?,
                    None => config.try_init(device)?,
                };
                Ok(match implementation {
                    Implementation::Native => Layer::Transposed(layer),
                    Implementation::UpConv => Layer::UpConv(UpConv2d::from(layer)),
                })
            }
        }
    }

    fn try_forward(&self, x: Tensor<4>) -> Result<Tensor<4>, ConvError> {
        match self {
            Layer::Conv(layer) => layer.try_forward(x),
            Layer::Transposed(layer) => layer.try_forward(x),
            Layer::UpConv(layer) => layer.try_forward(x),
        }
    }

    fn weight(&self) -> Tensor<4> {
        match self {
            Layer::Conv(layer) => layer.weight.val(),
            Layer::Transposed(layer) => layer.weight.val(),
            Layer::UpConv(layer) => layer.weight.val(),
        }
    }

    fn bias(&self) -> Option<Tensor<1>> {
        let bias = match self {
            Layer::Conv(layer) => &layer.bias,
            Layer::Transposed(layer) => &layer.bias,
            Layer::UpConv(layer) => &layer.bias,
        };
        bias.as_ref().map(|b| b.val())
    }
}

fn run_case(
    case: &GoldenCase,
    device: &Device,
    implementation: Implementation,
    tolerance: Tolerance,
    dtype: FloatDType,
) -> Vec<Failure> {
    match &case.expect_error {
        Some(expected) => run_error_case(case, device, implementation, expected),
        None => run_valid_case(case, device, implementation, tolerance, dtype)
            .unwrap_or_else(|failure| vec![failure]),
    }
}

fn run_error_case(
    case: &GoldenCase,
    device: &Device,
    implementation: Implementation,
    expected: &str,
) -> Vec<Failure> {
    let Some(shape) = case.input_shape else {
        return vec![Failure::Malformed("error case without input_shape".into())];
    };
    let refused = match Layer::build(case, implementation, None, device) {
        Err(_) => true,
        Ok(layer) => layer.try_forward(Tensor::zeros(shape, device)).is_err(),
    };
    if refused {
        Vec::new()
    } else {
        vec![Failure::Accepted {
            expected: expected.to_string(),
        }]
    }
}

fn run_valid_case(
    case: &GoldenCase,
    device: &Device,
    implementation: Implementation,
    tolerance: Tolerance,
    dtype: FloatDType,
) -> Result<Vec<Failure>, Failure> {
    let required = |name: &str, tensor: &Option<GoldenTensor>| {
        tensor
            .clone()
            .ok_or_else(|| Failure::Malformed(format!("valid case without '{name}'")))
    };
    let input = rank4("input", required("input", &case.input)?)?;
    let weight = required("weight", &case.weight)?;
    let output = required("output", &case.output)?;
    let grad_output = rank4("grad_output", required("grad_output", &case.grad_output)?)?;
    let grad_input = required("grad_input", &case.grad_input)?;
    let grad_weight = required("grad_weight", &case.grad_weight)?;

    let params = (to_data(&weight), case.bias.as_ref().map(to_data));
    let layer = Layer::build(case, implementation, Some(params), device)
        .map_err(|err: ConvError| Failure::Refused(err.to_string()))?;
    let x = Tensor::<4>::from_data(input, device)
        .cast(dtype)
        .require_grad();
    let y = layer
        .try_forward(x.clone())
        .map_err(|err: ConvError| Failure::Refused(err.to_string()))?;

    let mut failures = Vec::new();
    compare(
        "output",
        y.clone().into_data(),
        &output,
        tolerance,
        &mut failures,
    );
    // In f32: the output gradient reaches `y` through the cast, rounded to `dtype`.
    let gradients = (y.cast(FloatDType::F32) * Tensor::from_data(grad_output, device))
        .sum()
        .backward();
    let mut check_grad =
        |name: &'static str, grad: Option<TensorData>, expected: &GoldenTensor| match grad {
            Some(grad) => compare(name, grad, expected, tolerance, &mut failures),
            None => failures.push(Failure::MissingGradient { tensor: name }),
        };
    check_grad(
        "grad_input",
        x.grad(&gradients).map(Tensor::into_data),
        &grad_input,
    );
    check_grad(
        "grad_weight",
        layer.weight().grad(&gradients).map(Tensor::into_data),
        &grad_weight,
    );
    match (layer.bias(), &case.grad_bias) {
        (Some(bias), Some(expected)) => check_grad(
            "grad_bias",
            bias.grad(&gradients).map(Tensor::into_data),
            expected,
        ),
        (None, None) => {}
        _ => failures.push(Failure::Malformed("bias and grad_bias disagree".into())),
    }
    Ok(failures)
}
