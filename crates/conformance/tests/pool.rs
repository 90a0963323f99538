//! Max pooling against PyTorch's `max_pool2d` (`golden/max_pool.json`,
//! written by the PyTorch script beside it) on every backend: output and
//! input gradient, with ties, sizes the window does not divide, NaN and
//! infinities. Flex and ndarray run this project's kernels, wgpu Burn's.

use conformance::{PoolFile, Report, Tolerance, load_pool, run_pool};
use unet_train::BackendKind;

const CASES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/golden/max_pool.json");

/// The case whose windows hold NaN and infinities.
const NON_FINITE: &str = "nan_and_infinities";

fn cases() -> PoolFile {
    let file = load_pool(CASES).unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(file.cases.len(), 7, "the cases of {CASES}");
    file
}

fn assert_all_pass(report: &Report, backend: BackendKind) {
    let failures = report.failure_lines();
    assert!(
        failures.is_empty(),
        "{backend}: {}\n{}",
        report.summary(),
        failures.join("\n")
    );
}

#[test]
fn flex_matches_pytorch() {
    let report = run_pool(&cases(), &BackendKind::Flex.device(), Tolerance::default());
    assert_all_pass(&report, BackendKind::Flex);
}

#[test]
fn ndarray_matches_pytorch() {
    let report = run_pool(
        &cases(),
        &BackendKind::Ndarray.device(),
        Tolerance::default(),
    );
    assert_all_pass(&report, BackendKind::Ndarray);
}

/// Burn 0.22.1's GPU kernel skips NaN, gives -3.4e38 for a window of -inf
/// and sends that window no gradient (`docs/convolution.md`, max pooling), so
/// on wgpu the finite cases are checked.
#[test]
fn wgpu_matches_pytorch_on_finite_values() {
    let mut file = cases();
    file.cases.retain(|case| case.name != NON_FINITE);
    assert_eq!(file.cases.len(), 6);
    let report = run_pool(&file, &BackendKind::Wgpu.device(), Tolerance::default());
    assert_all_pass(&report, BackendKind::Wgpu);
}
