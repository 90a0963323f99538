//! Conformance against PyTorch: runs reference cases in the `conv-golden/1`
//! format (forward output and the gradients of input, weight and bias, plus
//! configurations and inputs PyTorch refuses) through the [`layers`] crate.
//!
//! The format: `shared/golden/FORMAT.md` in this project's workspace. The
//! gradients are those of `L = sum(output * grad_output)`.

#![warn(missing_docs)]

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use serde::Deserialize;

use layers::{
    Conv2d, Conv2dConfig, ConvError, ConvTranspose2d, ConvTranspose2dConfig, Padding, UpConv2d,
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

/// A tensor: shape and row-major values.
#[derive(Debug, Clone, Deserialize)]
pub struct GoldenTensor {
    /// The shape.
    pub shape: Vec<usize>,
    /// The values, last dimension fastest.
    pub data: Vec<f64>,
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

/// A file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConformanceError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid JSON of the expected structure.
    #[error("{path} is not a conv-golden file: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// Why.
        source: serde_json::Error,
    },
    /// The file declares another format.
    #[error("{path} has format '{found}', expected 'conv-golden/1'")]
    Format {
        /// The file.
        path: PathBuf,
        /// The declared format.
        found: String,
    },
}

/// Reads and checks a reference file.
pub fn load(path: impl AsRef<Path>) -> Result<GoldenFile, ConformanceError> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|source| ConformanceError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let file: GoldenFile =
        serde_json::from_str(&text).map_err(|source| ConformanceError::Json {
            path: path.to_path_buf(),
            source,
        })?;
    if file.format != "conv-golden/1" {
        return Err(ConformanceError::Format {
            path: path.to_path_buf(),
            found: file.format,
        });
    }
    Ok(file)
}

/// Element-wise tolerance `|got - ref| <= abs + rel * |ref|`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerance {
    /// Absolute part.
    pub abs: f64,
    /// Relative part.
    pub rel: f64,
}

impl Default for Tolerance {
    /// The format's recommendation for float32 code: `1e-4 + 1e-4 * |ref|`.
    fn default() -> Self {
        Self {
            abs: 1e-4,
            rel: 1e-4,
        }
    }
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

/// What went wrong in one case.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// Values outside the tolerance.
    Values {
        /// `output`, `grad_input`, `grad_weight` or `grad_bias`.
        tensor: &'static str,
        /// Elements outside the tolerance.
        bad: usize,
        /// Elements compared.
        total: usize,
        /// Largest absolute error.
        max_abs: f64,
        /// Largest relative error among elements with `|ref| > 0.01`.
        max_rel: f64,
    },
    /// A result of the wrong shape.
    Shape {
        /// Which tensor.
        tensor: &'static str,
        /// Expected shape.
        expected: Vec<usize>,
        /// Shape computed.
        got: Vec<usize>,
    },
    /// No gradient reached this tensor.
    MissingGradient {
        /// Which tensor.
        tensor: &'static str,
    },
    /// The layer refused a case PyTorch accepts.
    Refused(ConvError),
    /// The layer accepted a case PyTorch refuses.
    Accepted {
        /// PyTorch's message.
        expected: String,
    },
    /// The case itself is malformed.
    Malformed(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Values {
                tensor,
                bad,
                total,
                max_abs,
                max_rel,
            } => write!(
                f,
                "{tensor}: {bad} of {total} values outside tolerance, max abs err {max_abs:.3e}, max rel err {max_rel:.3e}"
            ),
            Failure::Shape {
                tensor,
                expected,
                got,
            } => write!(f, "{tensor}: shape {got:?}, expected {expected:?}"),
            Failure::MissingGradient { tensor } => write!(f, "{tensor}: no gradient"),
            Failure::Refused(err) => write!(f, "refused a case PyTorch accepts: {err}"),
            Failure::Accepted { expected } => {
                write!(f, "accepted a case PyTorch refuses ({expected})")
            }
            Failure::Malformed(why) => write!(f, "malformed case: {why}"),
        }
    }
}

/// The outcome of one case.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// The case's name.
    pub name: String,
    /// Empty when the case passed.
    pub failures: Vec<Failure>,
}

/// The outcome of a run.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// One entry per case run.
    pub cases: Vec<CaseResult>,
}

impl Report {
    /// Cases without failures.
    pub fn passed(&self) -> usize {
        self.cases.iter().filter(|c| c.failures.is_empty()).count()
    }

    /// Cases with failures.
    pub fn failed(&self) -> usize {
        self.cases.len() - self.passed()
    }

    /// One line per failure: `FAIL case: what`.
    pub fn failure_lines(&self) -> Vec<String> {
        self.cases
            .iter()
            .flat_map(|case| {
                case.failures
                    .iter()
                    .map(move |failure| format!("FAIL {}: {failure}", case.name))
            })
            .collect()
    }

    /// `N passed, M failed`.
    pub fn summary(&self) -> String {
        format!("{} passed, {} failed", self.passed(), self.failed())
    }
}

/// Runs every case of `file` on `device` (autodiff is enabled on it for the
/// gradients).
pub fn run(
    file: &GoldenFile,
    device: &Device,
    implementation: Implementation,
    tolerance: Tolerance,
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
            failures: run_case(case, &device, implementation, tolerance),
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
) -> Vec<Failure> {
    match &case.expect_error {
        Some(expected) => run_error_case(case, device, implementation, expected),
        None => run_valid_case(case, device, implementation, tolerance)
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
    let layer =
        Layer::build(case, implementation, Some(params), device).map_err(Failure::Refused)?;
    let x = Tensor::<4>::from_data(input, device).require_grad();
    let y = layer.try_forward(x.clone()).map_err(Failure::Refused)?;

    let mut failures = Vec::new();
    compare(
        "output",
        y.clone().into_data(),
        &output,
        tolerance,
        &mut failures,
    );
    let gradients = (y * Tensor::from_data(grad_output, device))
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

fn to_data(tensor: &GoldenTensor) -> TensorData {
    let values: Vec<f32> = tensor.data.iter().map(|&v| v as f32).collect();
    TensorData::new(values, tensor.shape.clone())
}

fn rank4(name: &str, tensor: GoldenTensor) -> Result<TensorData, Failure> {
    if tensor.shape.len() != 4 || tensor.shape.iter().product::<usize>() != tensor.data.len() {
        return Err(Failure::Malformed(format!(
            "'{name}' has shape {:?} and {} values; expected a 4-D tensor",
            tensor.shape,
            tensor.data.len()
        )));
    }
    Ok(to_data(&tensor))
}

fn compare(
    name: &'static str,
    got: TensorData,
    expected: &GoldenTensor,
    tolerance: Tolerance,
    failures: &mut Vec<Failure>,
) {
    if got.shape().as_slice() != expected.shape.as_slice() {
        failures.push(Failure::Shape {
            tensor: name,
            expected: expected.shape.clone(),
            got: got.shape().to_vec(),
        });
        return;
    }
    let got: Vec<f32> = match got.convert::<f32>().try_to_vec() {
        Ok(values) => values,
        Err(err) => {
            failures.push(Failure::Malformed(format!("{name}: {err:?}")));
            return;
        }
    };
    let (mut bad, mut max_abs, mut max_rel) = (0, 0f64, 0f64);
    for (&g, &r) in got.iter().zip(&expected.data) {
        let err = (g as f64 - r).abs();
        if err.is_nan() || err > tolerance.abs + tolerance.rel * r.abs() {
            bad += 1;
        }
        max_abs = max_abs.max(if err.is_nan() { f64::INFINITY } else { err });
        if r.abs() > 0.01 {
            max_rel = max_rel.max(err / r.abs());
        }
    }
    if bad > 0 {
        failures.push(Failure::Values {
            tensor: name,
            bad,
            total: got.len(),
            max_abs,
            max_rel,
        });
    }
}
