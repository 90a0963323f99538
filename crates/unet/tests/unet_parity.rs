//! The U-Net against its PyTorch twin (`../shared/golden/unet/`): the
//! reference's weights load through burn-store, and output, loss, gradients
//! and running statistics match what PyTorch computed, in evaluation and in
//! training mode, on every backend.

use std::collections::BTreeMap;

use burn::module::Module;
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::Deserialize;
use unet::{NormLayer, UNet, UNetConfig, UnitConv, Upsampler, cross_entropy, load_pytorch_weights};
use unet_train::BackendKind;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/golden/unet");

#[derive(Deserialize)]
struct Golden {
    input: Named,
    target: Named,
    eval_mode: Mode,
    train_mode: Mode,
}

#[derive(Deserialize, Clone)]
struct Named {
    shape: Vec<usize>,
    data: Vec<f64>,
}

#[derive(Deserialize)]
struct Mode {
    output: Named,
    cross_entropy_loss: f64,
    grads: BTreeMap<String, Named>,
    #[serde(default)]
    running_stats_after: BTreeMap<String, Named>,
}

fn golden() -> Golden {
    let path = format!("{DIR}/unet_io.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|err| {
        panic!("{path}: {err} (the PyTorch reference U-Net, expected in ../shared/golden/unet beside the repository)")
    });
    serde_json::from_str(&text).expect("unet-golden/1")
}

/// The reference's configuration (its README): depth 3, base width 8, k2 s2
/// transposed upsampling, standard blocks with batch norm, `Same` padding.
fn reference_model(device: &Device, weights: &str) -> UNet {
    let model = UNetConfig::new(3, 3)
        .with_base_width(8)
        .with_depth(3)
        .init(device);
    load_pytorch_weights(model, format!("{DIR}/{weights}")).unwrap_or_else(|err| panic!("{err}"))
}

/// `||got - expected|| / ||expected||`, the README's measure.
fn relative_error(got: &[f32], expected: &[f64]) -> f64 {
    assert_eq!(got.len(), expected.len());
    let diff: f64 = got
        .iter()
        .zip(expected)
        .map(|(&g, &e)| (g as f64 - e).powi(2))
        .sum();
    let norm: f64 = expected.iter().map(|e| e * e).sum();
    (diff / norm).sqrt()
}

fn values<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
    tensor.into_data().convert::<f32>().try_to_vec().unwrap()
}

/// A parameter (or running statistic) of the model.
enum Parameter {
    Vector(Tensor<1>),
    Kernel(Tensor<4>),
}

impl Parameter {
    fn values(self) -> Vec<f32> {
        match self {
            Parameter::Vector(t) => values(t),
            Parameter::Kernel(t) => values(t),
        }
    }

    fn grad(self, gradients: &burn::tensor::Gradients) -> Option<Vec<f32>> {
        match self {
            Parameter::Vector(t) => t.grad(gradients).map(values),
            Parameter::Kernel(t) => t.grad(gradients).map(values),
        }
    }
}

/// A parameter of the model by its PyTorch name (`downs.2.conv.conv2.weight`).
fn parameter(model: &UNet, name: &str) -> Parameter {
    let parts: Vec<&str> = name.split('.').collect();
    let (block, rest) = match parts.as_slice() {
        ["outc", "weight"] => return Parameter::Kernel(model.outc.weight.val()),
        ["outc", "bias"] => return Parameter::Vector(model.outc.bias.as_ref().unwrap().val()),
        ["ups", i, "up", which] => {
            let Upsampler::Transposed(up) = &model.ups[i.parse::<usize>().unwrap()].up else {
                panic!("not a transposed upsampler")
            };
            return match *which {
                "weight" => Parameter::Kernel(up.weight.val()),
                _ => Parameter::Vector(up.bias.as_ref().unwrap().val()),
            };
        }
        ["inc", rest @ ..] => (&model.inc, rest),
        ["downs", i, "conv", rest @ ..] => (&model.downs[i.parse::<usize>().unwrap()].conv, rest),
        ["ups", i, "conv", rest @ ..] => (&model.ups[i.parse::<usize>().unwrap()].conv, rest),
        _ => panic!("unknown parameter {name}"),
    };
    let unit = &block.units[rest[0][rest[0].len() - 1..].parse::<usize>().unwrap() - 1];
    match (&rest[0][..rest[0].len() - 1], rest[1]) {
        ("conv", "weight") => match &unit.conv {
            UnitConv::Dense(conv) => Parameter::Kernel(conv.weight.val()),
            UnitConv::Separable(_) => panic!("not a dense convolution"),
        },
        ("bn", which) => match &unit.norm {
            Some(NormLayer::Batch(bn)) => match which {
                "weight" => Parameter::Vector(bn.gamma.val()),
                "bias" => Parameter::Vector(bn.beta.val()),
                "running_mean" => Parameter::Vector(bn.running_mean.value_sync()),
                _ => Parameter::Vector(bn.running_var.value_sync()),
            },
            _ => panic!("not a batch norm"),
        },
        _ => panic!("unknown parameter {name}"),
    }
}

fn inputs(golden: &Golden, device: &Device) -> (Tensor<4>, Tensor<3, Int>) {
    let input: Vec<f32> = golden.input.data.iter().map(|&v| v as f32).collect();
    let target: Vec<i64> = golden.target.data.iter().map(|&v| v as i64).collect();
    let [n, c, h, w] = golden.input.shape[..] else {
        panic!("input rank")
    };
    (
        Tensor::from_data(TensorData::new(input, [n, c, h, w]), device),
        Tensor::from_data(TensorData::new(target, [n, h, w]), device),
    )
}

fn check_mode(
    model: &UNet,
    mode: &Mode,
    golden: &Golden,
    device: &Device,
    what: &str,
    tolerances: (f64, f64),
) {
    let (value_tolerance, grad_tolerance) = tolerances;
    let (input, target) = inputs(golden, device);
    let output = model.forward(input);
    let error = relative_error(&values(output.clone()), &mode.output.data);
    assert!(
        error < value_tolerance,
        "{what}: output relative error {error:e}"
    );
    let loss = cross_entropy(output, target);
    let got = values(loss.clone())[0] as f64;
    let error = (got - mode.cross_entropy_loss).abs() / mode.cross_entropy_loss.abs();
    assert!(
        error < value_tolerance,
        "{what}: loss {got} vs {}",
        mode.cross_entropy_loss
    );

    let gradients = loss.backward();
    assert_eq!(mode.grads.len(), 8);
    for (name, expected) in &mode.grads {
        let grad = parameter(model, name)
            .grad(&gradients)
            .unwrap_or_else(|| panic!("{what}: no gradient for {name}"));
        let error = relative_error(&grad, &expected.data);
        assert!(
            error < grad_tolerance,
            "{what}: gradient of {name}: relative error {error:e}"
        );
    }
}

fn parity(backend: BackendKind) {
    let golden = golden();
    let device = backend.device().autodiff();

    // Training mode: batch statistics, and the running statistics move.
    let train = reference_model(&device, "unet_reference.safetensors");
    check_mode(
        &train,
        &golden.train_mode,
        &golden,
        &device,
        &format!("{backend} train"),
        (1e-5, 5e-2),
    );
    // Evaluation mode: batch norm uses the running statistics; gradients still flow.
    let eval = reference_model(&device, "unet_reference.safetensors")
        .freeze()
        .set_require_grad(true)
        .train();
    check_mode(
        &eval,
        &golden.eval_mode,
        &golden,
        &device,
        &format!("{backend} eval"),
        (1e-5, 1e-4),
    );

    assert_eq!(golden.train_mode.running_stats_after.len(), 2);
    for (name, expected) in &golden.train_mode.running_stats_after {
        let got = parameter(&train, name).values();
        let error = relative_error(&got, &expected.data);
        assert!(
            error < 1e-5,
            "{backend}: {name} after one step: relative error {error:e}"
        );
    }
}

#[test]
fn flex_matches_pytorch() {
    parity(BackendKind::Flex);
}

#[test]
fn ndarray_matches_pytorch() {
    parity(BackendKind::Ndarray);
}

#[test]
fn wgpu_and_vulkan_match_pytorch() {
    for backend in BackendKind::GPUS {
        parity(backend);
    }
}

/// The `torch.save` file loads to the same numbers as the safetensors one.
#[test]
fn pytorch_pickle_loads_the_same_weights() {
    let device = BackendKind::Flex.device();
    let a = reference_model(&device, "unet_reference.safetensors");
    let b = reference_model(&device, "unet_reference.pt");
    let (x, _) = inputs(&golden(), &device);
    let (ya, yb) = (
        values(a.valid().forward(x.clone())),
        values(b.valid().forward(x)),
    );
    assert_eq!(ya, yb);
}

/// Weights that do not fit the configuration are an error naming the tensor
/// and both shapes.
#[test]
fn mismatched_weights_are_a_clear_error() {
    let device = BackendKind::Flex.device();
    let wider = UNetConfig::new(3, 3)
        .with_base_width(16)
        .with_depth(3)
        .init(&device);
    let err = load_pytorch_weights(wider, format!("{DIR}/unet_reference.safetensors")).unwrap_err();
    let message = err.to_string();
    assert!(
        message.starts_with("cannot load weights from "),
        "{message}"
    );
    assert!(
        message.ends_with(
            "unet_reference.safetensors: tensor 'inc.units.0.conv.weight' has shape [8, 3, 3, 3] \
             in the file, but the model expects [16, 3, 3, 3]"
        ),
        "{message}"
    );
    let without_norm = UNetConfig::new(3, 3)
        .with_base_width(8)
        .with_depth(3)
        .with_norm(unet::Norm::None)
        .init(&device);
    let message = load_pytorch_weights(without_norm, format!("{DIR}/unet_reference.safetensors"))
        .unwrap_err()
        .to_string();
    assert!(message.contains("is missing from the file"), "{message}");
    let missing = format!("{DIR}/no_such_file.safetensors");
    let message = load_pytorch_weights(UNetConfig::new(3, 3).init(&device), &missing)
        .unwrap_err()
        .to_string();
    assert_eq!(
        message,
        format!("cannot load weights from {missing}: no such file")
    );
}
