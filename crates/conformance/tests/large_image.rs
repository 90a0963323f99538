//! A half-precision 3x3 convolution of 32 channels at 512x512
//! (`golden/large_image.json`, written by the PyTorch script beside it),
//! forward and backward. On the GPU backends its patches (151 MB in `f16`)
//! pass what Mesa's lavapipe binds at once (128 MiB), so the layers compute
//! it in bands of output rows (`layers::lowering`); row sums of the output
//! and of the input gradient, and the weight gradient, stay within twice
//! PyTorch's own `f16` error on the same case.

use burn::module::Param;
use burn::tensor::{Device, FloatDType, Tensor, TensorData};
use conformance::GoldenTensor;
use layers::{Conv2dConfig, Padding};
use serde::Deserialize;
use unet_train::BackendKind;

const CASE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/golden/large_image.json");

#[derive(Deserialize)]
struct Case {
    input_shape: [usize; 4],
    weight_shape: [usize; 4],
    output_row_sums: GoldenTensor,
    output_row_scale: GoldenTensor,
    input_grad_row_sums: GoldenTensor,
    input_grad_row_scale: GoldenTensor,
    grad_weight: GoldenTensor,
    pytorch_f16_needed_tolerance: Tolerances,
}

#[derive(Deserialize)]
struct Tolerances {
    output_row_sums: f64,
    input_grad_row_sums: f64,
    grad_weight: f64,
}

/// `factor * f(scale * i)` for every flat index `i` of `shape`, as the
/// script makes it.
fn formula(
    shape: [usize; 4],
    scale: f64,
    f: fn(f64) -> f64,
    factor: f64,
    device: &Device,
) -> Tensor<4> {
    let values: Vec<f32> = (0..shape.iter().product::<usize>())
        .map(|i| (factor * f(scale * i as f64)) as f32)
        .collect();
    Tensor::from_data(TensorData::new(values, shape), device)
}

/// `tensor` (`f32`) summed over `dims`, as `f64` values.
fn sums(tensor: Tensor<4>, dims: &[usize]) -> Vec<f64> {
    let summed = dims.iter().fold(tensor, |t, &dim| t.sum_dim(dim));
    summed.into_data().iter::<f32>().map(f64::from).collect()
}

/// The largest `|got - reference| / (1 + scale)`.
fn error(got: &[f64], reference: &GoldenTensor, scale: &[f64]) -> f64 {
    assert_eq!(got.len(), reference.data.len());
    got.iter()
        .zip(&reference.data)
        .zip(scale)
        .map(|((&g, &r), &s)| (g - r).abs() / (1.0 + s))
        .fold(0.0, f64::max)
}

fn matches_pytorch(backend: BackendKind) {
    let case: Case = serde_json::from_str(&std::fs::read_to_string(CASE).unwrap()).unwrap();
    let device = backend.device().autodiff();
    let [c_out, c_in, kh, kw] = case.weight_shape;
    let mut conv = Conv2dConfig::new(c_in, c_out, [kh, kw])
        .with_padding(Padding::uniform(1))
        .with_bias(false)
        .try_init(&device)
        .unwrap();
    let weight = formula(case.weight_shape, 0.3, f64::cos, 0.1, &device);
    conv.weight = Param::from_tensor(weight);
    let x = formula(case.input_shape, 0.1, f64::sin, 1.0, &device)
        .cast(FloatDType::F16)
        .require_grad();
    let [n, _, h, w] = case.input_shape;
    let gy = formula([n, c_out, h, w], 0.07, f64::cos, 1.0, &device).cast(FloatDType::F16);
    let y = conv.forward(x.clone());
    let gradients = (y.clone() * gy).cast(FloatDType::F32).sum().backward();
    let grad_x = x.grad(&gradients).unwrap().cast(FloatDType::F32);
    let grad_w = conv.weight.val().grad(&gradients).unwrap();
    let y = y.cast(FloatDType::F32);

    let weight_scale: Vec<f64> = case.grad_weight.data.iter().map(|r| r.abs()).collect();
    let checks = [
        (
            "output row sums",
            error(
                &sums(y, &[3]),
                &case.output_row_sums,
                &case.output_row_scale.data,
            ),
            case.pytorch_f16_needed_tolerance.output_row_sums,
        ),
        (
            "input gradient row sums",
            error(
                &sums(grad_x, &[1, 3]),
                &case.input_grad_row_sums,
                &case.input_grad_row_scale.data,
            ),
            case.pytorch_f16_needed_tolerance.input_grad_row_sums,
        ),
        (
            "weight gradient",
            error(&sums(grad_w, &[]), &case.grad_weight, &weight_scale),
            case.pytorch_f16_needed_tolerance.grad_weight,
        ),
    ];
    for (name, ours, pytorch) in checks {
        assert!(
            ours <= 2.0 * pytorch,
            "{backend}: {name} need t = {ours:.2e}; PyTorch's f16 needs {pytorch:.2e}"
        );
    }
}

#[test]
fn flex_matches_pytorch_on_a_large_image() {
    matches_pytorch(BackendKind::Flex);
}

#[test]
fn wgpu_matches_pytorch_on_a_large_image() {
    matches_pytorch(BackendKind::Wgpu);
}
