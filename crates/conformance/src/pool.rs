//! `pool-golden/1`: `torch.nn.functional.max_pool2d(x, kernel_size)`
//! (stride = kernel, no padding, floor), the output and the input gradient,
//! through [`layers::max_pool2d`], the pooling of the U-Net. The format is
//! described in `golden/max_pool.py`, which writes the file.

use std::path::Path;

use burn::tensor::{Device, Tensor};
use serde::Deserialize;

use crate::{
    ConformanceError, Failure, GoldenTensor, Report, Tolerance, compare, load_json, rank4,
    run_cases,
};

/// A file of max-pooling reference cases.
#[derive(Debug, Clone, Deserialize)]
pub struct PoolFile {
    /// Must be `pool-golden/1`.
    pub format: String,
    /// What produced the values.
    #[serde(default)]
    pub generator: Option<String>,
    /// The cases.
    pub cases: Vec<PoolCase>,
}

/// One reference case.
#[derive(Debug, Clone, Deserialize)]
#[allow(missing_docs)]
pub struct PoolCase {
    pub name: String,
    /// `[kh, kw]`, also the stride.
    pub kernel_size: [usize; 2],
    pub input: GoldenTensor,
    pub grad_output: GoldenTensor,
    pub output: GoldenTensor,
    pub grad_input: GoldenTensor,
}

/// Reads and checks a `pool-golden/1` file.
pub fn load_pool(path: impl AsRef<Path>) -> Result<PoolFile, ConformanceError> {
    load_json(path.as_ref(), "pool-golden/1", |file: &PoolFile| {
        &file.format
    })
}

/// Runs every case of `file` on `device` (autodiff is enabled on it for the gradient).
pub fn run_pool(file: &PoolFile, device: &Device, tolerance: Tolerance) -> Report {
    run_cases(
        &file.cases,
        device,
        |case| &case.name,
        |case, device| run_case(case, device, tolerance),
    )
}

fn run_case(
    case: &PoolCase,
    device: &Device,
    tolerance: Tolerance,
) -> Result<Vec<Failure>, Failure> {
    let input = rank4("input", case.input.clone())?;
    let grad_output = rank4("grad_output", case.grad_output.clone())?;
    let x = Tensor::<4>::from_data(input, device).require_grad();
    let y = layers::max_pool2d(x.clone(), case.kernel_size)
        .map_err(|err| Failure::Refused(err.to_string()))?;
    let mut failures = Vec::new();
    compare(
        "output",
        y.clone().into_data(),
        &case.output,
        tolerance,
        &mut failures,
    );
    let gradients = (y * Tensor::from_data(grad_output, device))
        .sum()
        .backward();
    match x.grad(&gradients) {
        Some(grad) => compare(
            "grad_input",
            grad.into_data(),
            &case.grad_input,
            tolerance,
            &mut failures,
        ),
        None => failures.push(Failure::MissingGradient {
            tensor: "grad_input",
        }),
    }
    Ok(failures)
}
