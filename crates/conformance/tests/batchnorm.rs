//! Batch norm against PyTorch's `BatchNorm2d` (`../shared/golden/batchnorm_public.json`)
//! on every backend: output, running statistics, and the gradients of input,
//! weight and bias, in training and evaluation mode.

use conformance::{BnFile, Report, Tolerance, load_batchnorm, run_batchnorm};
use unet_train::BackendKind;

const PUBLIC: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/golden/batchnorm_public.json"
);

fn public_cases() -> BnFile {
    load_batchnorm(PUBLIC).unwrap_or_else(|err| panic!("{err}"))
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
    let golden = public_cases();
    let report = run_batchnorm(&golden, &backend.device(), Tolerance::default());
    assert_eq!(report.cases.len(), 8, "the public file's cases");
    assert_all_pass(&report, &format!("batchnorm_public.json on {backend}"));
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
