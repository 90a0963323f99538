//! The layers against PyTorch's reference cases (`../shared/golden/conv_public.json`)
//! on every backend: forward output and the gradients of input, weight and bias,
//! and the configurations PyTorch refuses.

use burn::tensor::FloatDType;
use conformance::{GoldenFile, GoldenOp, Implementation, Report, Tolerance, load, run, run_in};
use unet_train::BackendKind;

const PUBLIC: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/golden/conv_public.json"
);

fn public_cases() -> GoldenFile {
    load(PUBLIC).unwrap_or_else(|err| panic!("{err}"))
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
    let report = run(
        &golden,
        &backend.device(),
        Implementation::Native,
        Tolerance::default(),
    );
    assert_eq!(report.cases.len(), golden.cases.len());
    assert_eq!(report.cases.len(), 134, "121 valid and 13 error cases");
    assert_all_pass(&report, &format!("conv_public.json on {backend}"));
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
fn wgpu_and_vulkan_match_pytorch() {
    for backend in BackendKind::GPUS {
        conformance(backend);
    }
}

/// The cases in a half-precision type, as mixed-precision training runs the
/// layers (input and output gradient rounded to it, weights cast to it),
/// against the float64 reference with `|got - ref| <= t + t * |ref|`.
/// PyTorch's own error on these cases is the yardstick
/// (`golden/half_precision.py`, PyTorch 2.15 on the CPU): it needs t =
/// 9.5e-3 in f16 and 4.6e-2 in bf16; the tolerances are those rounded up.
fn half_conformance(golden: &GoldenFile, backend: BackendKind, dtype: FloatDType, t: f64) {
    let tolerance = Tolerance { abs: t, rel: t };
    let report = run_in(
        golden,
        &backend.device(),
        Implementation::Native,
        tolerance,
        dtype,
    );
    assert_eq!(report.cases.len(), golden.cases.len());
    assert_all_pass(
        &report,
        &format!("conv_public.json on {backend} in {dtype:?}"),
    );
}

#[test]
fn flex_matches_pytorch_in_f16() {
    half_conformance(&public_cases(), BackendKind::Flex, FloatDType::F16, 1e-2);
}

#[test]
fn flex_matches_pytorch_in_bf16() {
    half_conformance(&public_cases(), BackendKind::Flex, FloatDType::BF16, 5e-2);
}

/// On the GPUs, one case per path the half-precision layers take (see
/// [`one_case_per_path`]).
#[test]
fn wgpu_and_vulkan_match_pytorch_in_f16() {
    let golden = one_case_per_path(public_cases());
    assert_eq!(golden.cases.len(), 16 + 13, "16 valid and 13 error cases");
    for backend in BackendKind::GPUS {
        half_conformance(&golden, backend, FloatDType::F16, 1e-2);
    }
}

/// Every error case, and the first valid case of each path a half-precision
/// input takes on a GPU (`layers`' `dispatch`, whose conditions for one
/// product, `lowering::is_pointwise` and `is_non_overlapping`, are
/// restated here): a convolution as one matrix
/// product (1x1, stride 1, unpadded) or as products over patches, dense,
/// grouped or depthwise, with and without stride and dilation; a transposed
/// convolution as one product (stride = kernel, ungrouped) or in `f32`,
/// with and without output padding. On a GPU each new size of those matrix
/// products compiles kernels of its own (on Mesa's lavapipe, which CI runs,
/// seconds to tens of seconds each), so the 121 cases run on the CPU; that
/// the patches equal the general kernel on every configuration is checked
/// there too (`layers::lowering`'s tests).
fn one_case_per_path(mut golden: GoldenFile) -> GoldenFile {
    let mut seen = Vec::new();
    golden.cases.retain(|case| {
        if case.expect_error.is_some() {
            return true;
        }
        let c = &case.config;
        let grouping = match c.groups {
            1 => "dense",
            g if g == c.in_channels => "depthwise",
            _ => "grouped",
        };
        let (strided, dilated) = (c.stride != [1, 1], c.dilation != [1, 1]);
        let path = match case.op {
            GoldenOp::Conv2d => {
                let one_product = c.kernel_size == [1, 1] && !strided && c.padding == [0, 0];
                (one_product, grouping, strided, dilated)
            }
            GoldenOp::ConvTranspose2d => {
                let one_product = c.kernel_size == c.stride && !dilated && c.groups == 1;
                let padded = c.output_padding != [0, 0];
                (one_product, "transposed", padded, false)
            }
        };
        let first = !seen.contains(&path);
        if first {
            seen.push(path);
        }
        first
    });
    golden
}

/// The zero-insertion form of the transposed convolution gives the same
/// numbers as PyTorch's `conv_transpose2d`, forward and backward.
#[test]
fn up_convolution_matches_pytorch() {
    let golden = public_cases();
    let report = run(
        &golden,
        &BackendKind::Flex.device(),
        Implementation::UpConv,
        Tolerance::default(),
    );
    let transposed = golden
        .cases
        .iter()
        .filter(|c| c.op == conformance::GoldenOp::ConvTranspose2d)
        .count();
    assert_eq!(report.cases.len(), transposed);
    assert_all_pass(&report, "conv_transpose2d cases through UpConv2d");
}

/// The runner catches a wrong value, a wrong gradient and a wrongly accepted
/// configuration: a checker that cannot fail checks nothing.
#[test]
fn the_runner_reports_wrong_results() {
    let mut golden = public_cases();
    golden.cases.retain(|c| {
        c.name == "conv2d_k3_s1_p1_d1_g1_b_n3_c3_4_8x8_k3" || c.name == "err_conv2d_zero_stride"
    });
    assert_eq!(golden.cases.len(), 2);
    let valid = golden.cases[0].clone();

    let mut wrong_output = valid.clone();
    wrong_output.output.as_mut().unwrap().data[5] += 1e-3;
    let mut wrong_grad = valid.clone();
    wrong_grad.grad_bias.as_mut().unwrap().data[0] *= 1.01;
    let mut malformed = golden.cases[1].clone();
    malformed.expect_error = None;
    let mut wrongly_accepted = valid;
    wrongly_accepted.expect_error = Some("PyTorch refuses this".into());
    wrongly_accepted.input_shape = Some([1, 3, 8, 8]);
    golden.cases = vec![wrong_output, wrong_grad, malformed, wrongly_accepted];

    let report = run(
        &golden,
        &BackendKind::Flex.device(),
        Implementation::Native,
        Tolerance::default(),
    );
    assert_eq!(report.summary(), "0 passed, 4 failed");
    let lines = report.failure_lines();
    assert!(
        lines[0].contains("output: 1 of 768 values outside tolerance"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains("grad_bias: 1 of 4 values"),
        "{}",
        lines[1]
    );
    assert!(lines[2].contains("malformed case"), "{}", lines[2]);
    assert!(
        lines[3].contains("accepted a case PyTorch refuses"),
        "{}",
        lines[3]
    );
}
