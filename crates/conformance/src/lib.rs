//! Conformance against PyTorch: runs reference files computed with PyTorch
//! (in float64) through this project's layers and compares every tensor:
//!
//! - `conv-golden/1` ([`conv`]): convolutions and transposed convolutions,
//!   forward output and the gradients of input, weight and bias, plus
//!   configurations and inputs PyTorch refuses, through the [`layers`] crate;
//! - `bn-golden/1` ([`batchnorm`]): `BatchNorm2d` in training and evaluation
//!   mode, output, running statistics and the three gradients, through the
//!   batch norm the U-Net uses;
//! - `pool-golden/1` ([`pool`]): `max_pool2d` with stride = kernel, output and
//!   input gradient, through the max pooling the U-Net uses.
//!
//! The formats: `shared/golden/FORMAT.md` and `BATCHNORM.md` in this
//! project's workspace. The gradients are those of `L = sum(output * grad_output)`.
#![warn(missing_docs)]

pub mod batchnorm;
pub mod conv;
pub mod pool;

pub use batchnorm::{BnFile, load_batchnorm, run_batchnorm};
pub use conv::{GoldenCase, GoldenConfig, GoldenFile, GoldenOp, Implementation, load, run, run_in};
pub use pool::{PoolFile, load_pool, run_pool};

use std::path::{Path, PathBuf};

use burn::tensor::TensorData;
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// A tensor: shape and row-major values.
#[derive(Debug, Clone, Deserialize)]
pub struct GoldenTensor {
    /// The shape.
    pub shape: Vec<usize>,
    /// The values, last dimension fastest. JSON has no NaN or infinities:
    /// a file writes those as the strings `"nan"`, `"inf"` and `"-inf"`.
    #[serde(deserialize_with = "values")]
    pub data: Vec<f64>,
}

/// A value of [`GoldenTensor::data`]: a number, or one of the strings
/// standing for the values JSON cannot write.
#[derive(Deserialize)]
#[serde(untagged)]
enum Value {
    Number(f64),
    Special(Special),
}

#[derive(Deserialize)]
enum Special {
    #[serde(rename = "nan")]
    Nan,
    #[serde(rename = "inf")]
    Infinity,
    #[serde(rename = "-inf")]
    NegInfinity,
}

fn values<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<f64>, D::Error> {
    let values = Vec::<Value>::deserialize(deserializer)?;
    Ok(values
        .into_iter()
        .map(|value| match value {
            Value::Number(v) => v,
            Value::Special(Special::Nan) => f64::NAN,
            Value::Special(Special::Infinity) => f64::INFINITY,
            Value::Special(Special::NegInfinity) => f64::NEG_INFINITY,
        })
        .collect())
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
    #[error("{path} is not a {format} file: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The format expected.
        format: &'static str,
        /// Why.
        source: serde_json::Error,
    },
    /// The file declares another format.
    #[error("{path} has format '{found}', expected '{expected}'")]
    Format {
        /// The file.
        path: PathBuf,
        /// The declared format.
        found: String,
        /// The format expected.
        expected: &'static str,
    },
}

/// A reference file of either format.
#[derive(Debug, Clone)]
pub enum AnyGolden {
    /// `conv-golden/1`.
    Conv(GoldenFile),
    /// `bn-golden/1`.
    BatchNorm(BnFile),
    /// `pool-golden/1`.
    Pool(PoolFile),
}

/// Reads a reference file, whichever of the formats its `format` field names.
pub fn load_any(path: impl AsRef<Path>) -> Result<AnyGolden, ConformanceError> {
    let path = path.as_ref();
    #[derive(Deserialize)]
    struct Header {
        format: String,
    }
    let header: Header = load_json(path, "golden", |_: &Header| "golden")?;
    match header.format.as_str() {
        "bn-golden/1" => load_batchnorm(path).map(AnyGolden::BatchNorm),
        "pool-golden/1" => load_pool(path).map(AnyGolden::Pool),
        _ => load(path).map(AnyGolden::Conv),
    }
}

/// Runs every case of a file of either format on `device` (the
/// transposed-convolution cases of a convolution file through `implementation`).
pub fn run_any(
    golden: &AnyGolden,
    device: &burn::tensor::Device,
    implementation: Implementation,
    tolerance: Tolerance,
) -> Report {
    match golden {
        AnyGolden::Conv(file) => run(file, device, implementation, tolerance),
        AnyGolden::BatchNorm(file) => run_batchnorm(file, device, tolerance),
        AnyGolden::Pool(file) => run_pool(file, device, tolerance),
    }
}

/// Runs `run` on every case with `device`'s autodiff form (for the
/// gradients): one entry per case, named by `name`.
pub(crate) fn run_cases<C>(
    cases: &[C],
    device: &burn::tensor::Device,
    name: impl Fn(&C) -> &str,
    run: impl Fn(&C, &burn::tensor::Device) -> Result<Vec<Failure>, Failure>,
) -> Report {
    let device = device.clone().autodiff();
    let cases = cases
        .iter()
        .map(|case| CaseResult {
            name: name(case).to_string(),
            failures: run(case, &device).unwrap_or_else(|failure| vec![failure]),
        })
        .collect();
    Report { cases }
}

/// Reads a reference file of `format` (its `format` field must say so).
pub(crate) fn load_json<T: DeserializeOwned>(
    path: &Path,
    format: &'static str,
    declared: impl Fn(&T) -> &str,
) -> Result<T, ConformanceError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConformanceError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let file: T = serde_json::from_str(&text).map_err(|source| ConformanceError::Json {
        path: path.to_path_buf(),
        format,
        source,
    })?;
    if declared(&file) != format {
        return Err(ConformanceError::Format {
            path: path.to_path_buf(),
            found: declared(&file).to_string(),
            expected: format,
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

/// What went wrong in one case.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// Values outside the tolerance.
    Values {
        /// `output`, `grad_input`, `grad_weight`, `grad_bias`, a running statistic.
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
    Refused(String),
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

pub(crate) fn to_data(tensor: &GoldenTensor) -> TensorData {
    let values: Vec<f32> = tensor.data.iter().map(|&v| v as f32).collect();
    TensorData::new(values, tensor.shape.clone())
}

pub(crate) fn rank4(name: &str, tensor: GoldenTensor) -> Result<TensorData, Failure> {
    if tensor.shape.len() != 4 || tensor.shape.iter().product::<usize>() != tensor.data.len() {
        return Err(Failure::Malformed(format!(
            "'{name}' has shape {:?} and {} values; expected a 4-D tensor",
            tensor.shape,
            tensor.data.len()
        )));
    }
    Ok(to_data(&tensor))
}

pub(crate) fn compare(
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
        let g = g as f64;
        // NaN where the reference has NaN, and equal infinities, are exact;
        // any other value against a NaN or an infinity is wrong.
        let exact = (g.is_nan() && r.is_nan()) || g == r;
        let err = if exact { 0.0 } else { (g - r).abs() };
        let outside =
            !r.is_finite() || err.is_nan() || err > tolerance.abs + tolerance.rel * r.abs();
        if !exact && outside {
            bad += 1;
        }
        max_abs = max_abs.max(if err.is_nan() { f64::INFINITY } else { err });
        if r.abs() > 0.01 && r.is_finite() {
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
