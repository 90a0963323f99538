//! Batch norm against PyTorch's `BatchNorm2d` (`../shared/golden/batchnorm_public.json`)
//! on every backend: output, running statistics, and the gradients of input,
//! weight and bias, in training and evaluation mode; and batch norm followed
//! by ReLU (`golden/batchnorm_relu.json`, written by the PyTorch script
//! beside it), fused on the CPU backends.

use conformance::{BnFile, Report, Tolerance, load_batchnorm, run_batchnorm};
use unet_train::BackendKind;

const PUBLIC: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/golden/batchnorm_public.json"
);

const RELU: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/golden/batchnorm_relu.json");

fn cases(path: &str) -> BnFile {
    load_batchnorm(path).unwrap_or_else(|err| panic!("{err}"))
}

fn assert_all_pass(report: &Report, what: &str) {
    let failures = report.failure_lines();
    assert!(
        failures.is_empty(),
        "{what}: {}\n{}",
        report.summary(),
        failures.join("\n")
    );
}

fn conformance(backend: BackendKind) {
    for (path, count) in [(PUBLIC, 8), (RELU, 4)] {
        let report = run_batchnorm(&cases(path), &backend.device(), Tolerance::default());
        assert_eq!(report.cases.len(), count, "the cases of {path}");
        assert_all_pass(&report, &format!("{path} on {backend}"));
    }
}

#[test]
fn flex_matches_pytorch() {
    conformance(BackendKind::Flex);
}

#[test]
fn ndarray_matches_pytorch() {
    conformance(BackendKind::Ndarray);
}

#[test]
fn wgpu_matches_pytorch() {
    conformance(BackendKind::Wgpu);
}
