//! Every combination of the U-Net's options builds, runs forward and backward,
//! gives the shape its size rules promise for odd and even inputs, and sends a
//! gradient to every parameter; bad inputs and configurations are errors.

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Distribution, Gradients, Int, Tensor, TensorData};
use layers::ConvError;
use unet::{
    Block, Norm, UNet, UNetConfig, UNetError, UNetPadding, Upsampling, cross_entropy,
    nearest_valid_input_sizes, output_size,
};
use unet_train::BackendKind;

const UPSAMPLINGS: [Upsampling; 4] = [
    Upsampling::TransposedConv {
        bilinear_init: false,
    },
    Upsampling::TransposedConv {
        bilinear_init: true,
    },
    Upsampling::UpConv,
    Upsampling::BilinearConv,
];
const BLOCKS: [Block; 3] = [
    Block::Standard,
    Block::DepthwiseSeparable,
    Block::Grouped { groups: 2 },
];
const NORMS: [Norm; 3] = [Norm::Batch, Norm::Group { groups: 2 }, Norm::None];
const PADDINGS: [UNetPadding; 2] = [UNetPadding::Same, UNetPadding::Valid];

/// Collects the parameters (running statistics aside) that received no
/// gradient, or an all-zero one.
struct GradientReach<'a> {
    gradients: &'a Gradients,
    path: Vec<String>,
    params: usize,
    unreached: Vec<String>,
}

impl ModuleVisitor for GradientReach<'_> {
    fn enter_module(&mut self, name: &str, _container: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let is_running_statistic = !param.val().is_require_grad();
        if is_running_statistic {
            return;
        }
        self.params += 1;
        let reached = param
            .val()
            .grad(self.gradients)
            .is_some_and(|g| g.abs().sum().into_scalar::<f32>() > 0.0);
        if !reached {
            self.unreached.push(self.path.join("."));
        }
    }
}

fn config(upsampling: Upsampling, block: Block, norm: Norm, padding: UNetPadding) -> UNetConfig {
    // Without a norm, PyTorch's initialisation shrinks the activations layer
    // by layer until the biases dominate; in a network 4 channels wide, all
    // four biases of a layer are negative one time in sixteen, every ReLU of
    // that layer is dead and no gradient passes (rightly). 16 channels make
    // that vanishingly rare.
    let width = if norm == Norm::None { 16 } else { 4 };
    UNetConfig::new(3, 3)
        .with_base_width(width)
        .with_depth(2)
        .with_upsampling(upsampling)
        .with_block(block)
        .with_norm(norm)
        .with_padding(padding)
}

/// An odd and an even input size the configuration accepts.
fn sizes(config: &UNetConfig) -> [[usize; 2]; 2] {
    match config.padding {
        UNetPadding::Same => [[13, 10], [16, 9]],
        UNetPadding::Valid => {
            // Valid sizes are even (every pooling needs an even size), so
            // "odd" here is the next valid size above an odd one.
            let above = |n: usize| nearest_valid_input_sizes(config, n)[1].expect("a valid size");
            [[above(29), above(41)], [above(44), above(30)]]
        }
    }
}

/// Forward and backward of one batch; checks shapes and that every parameter learns.
fn train_step(model: &UNet, input: [usize; 4], device: &Device, what: &str) {
    let x = Tensor::<4>::random(input, Distribution::Normal(0.0, 1.0), device);
    let logits = model
        .try_forward(x)
        .unwrap_or_else(|err| panic!("{what}: {err}"));
    let [n, classes, h, w] = logits.dims();
    assert_eq!(
        [n, classes, h, w],
        model.output_shape(input).unwrap(),
        "{what}"
    );
    assert_eq!(
        [h, w],
        output_size(model.config(), [input[2], input[3]]).unwrap(),
        "{what}"
    );
    let target: Vec<i64> = (0..n * h * w).map(|i| (i % classes) as i64).collect();
    let target = Tensor::<3, Int>::from_data(TensorData::new(target, [n, h, w]), device);
    let loss = cross_entropy(logits, target);
    let gradients = loss.backward();
    let mut reach = GradientReach {
        gradients: &gradients,
        path: Vec::new(),
        params: 0,
        unreached: Vec::new(),
    };
    model.visit(&mut reach);
    assert!(
        reach.params > 10,
        "{what}: only {} parameters",
        reach.params
    );
    assert!(
        reach.unreached.is_empty(),
        "{what}: no gradient reaches {:?}",
        reach.unreached
    );
}

#[test]
fn every_option_combination_trains_on_flex() {
    let device = BackendKind::Flex.device().autodiff();
    device.seed(7);
    let mut combinations = 0;
    for upsampling in UPSAMPLINGS {
        for block in BLOCKS {
            for norm in NORMS {
                for padding in PADDINGS {
                    let config = config(upsampling, block, norm, padding);
                    let model = config.try_init(&device).unwrap();
                    for [h, w] in sizes(&config) {
                        let what = format!("{upsampling:?} {block:?} {norm:?} {padding:?} {h}x{w}");
                        train_step(&model, [2, 3, h, w], &device, &what);
                    }
                    combinations += 1;
                }
            }
        }
    }
    assert_eq!(combinations, 72);
}

#[test]
fn the_dilated_bottleneck_trains() {
    let device = BackendKind::Flex.device().autodiff();
    device.seed(7);
    for padding in PADDINGS {
        let config = config(UPSAMPLINGS[0], Block::Standard, Norm::Batch, padding)
            .with_bottleneck_dilations(vec![1, 2, 4])
            .with_dropout(0.2);
        let model = config.try_init(&device).unwrap();
        assert_eq!(model.downs[1].conv.units.len(), 3);
        for [h, w] in sizes(&config) {
            train_step(
                &model,
                [1, 3, h, w],
                &device,
                &format!("dilated {padding:?} {h}x{w}"),
            );
        }
    }
}

/// The default configuration (standard blocks, transposed convolutions,
/// batch norm) on the autodiff form of every backend.
#[test]
fn forward_and_backward_on_every_backend() {
    for backend in [BackendKind::Ndarray, BackendKind::Wgpu] {
        let device = backend.device().autodiff();
        device.seed(7);
        for padding in PADDINGS {
            let config = config(UPSAMPLINGS[0], Block::Standard, Norm::Batch, padding);
            let model = config.try_init(&device).unwrap();
            let [odd, _] = sizes(&config);
            train_step(
                &model,
                [2, 3, odd[0], odd[1]],
                &device,
                &format!("{backend} {padding:?}"),
            );
        }
    }
}

#[test]
fn bad_inputs_and_configurations_are_errors() {
    let device = BackendKind::Flex.device();
    let model = UNetConfig::new(3, 2)
        .with_base_width(4)
        .with_depth(2)
        .init(&device);
    let err = model
        .try_forward(Tensor::zeros([1, 1, 16, 16], &device))
        .unwrap_err();
    assert!(
        matches!(
            err,
            UNetError::Layer(ConvError::InputChannels {
                expected: 3,
                got: 1,
                ..
            })
        ),
        "{err}"
    );
    let err = model
        .try_forward(Tensor::zeros([1, 3, 0, 16], &device))
        .unwrap_err();
    assert!(
        matches!(err, UNetError::Layer(ConvError::EmptyInput { .. })),
        "{err}"
    );

    let valid = UNetConfig::new(3, 2)
        .with_base_width(4)
        .with_depth(2)
        .with_padding(UNetPadding::Valid)
        .init(&device);
    let err = valid
        .try_forward(Tensor::zeros([1, 3, 31, 44], &device))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "input size [31, 44] cannot pass a valid-padding U-Net of depth 2; \
         nearest valid sizes: height 44 (none below), width 44 or 48"
    );

    for (config, expected) in [
        (
            UNetConfig::new(3, 2).with_depth(0),
            "depth must be positive, got 0",
        ),
        (
            UNetConfig::new(3, 2).with_dropout(1.0),
            "dropout must be in [0, 1), got 1",
        ),
        (
            UNetConfig::new(3, 2)
                .with_base_width(6)
                .with_depth(2)
                .with_norm(Norm::Group { groups: 4 }),
            "norm groups (4) must divide every width [6, 12, 24]",
        ),
        (
            UNetConfig::new(3, 2)
                .with_base_width(6)
                .with_depth(2)
                .with_block(Block::Grouped { groups: 4 }),
            "block groups (4) must divide every width [6, 12, 24]",
        ),
        (
            UNetConfig::new(3, 2).with_bottleneck_dilations(vec![]),
            "bottleneck_dilations must be positive and non-empty, got []",
        ),
    ] {
        let err = config.try_init(&device).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("invalid U-Net configuration: {expected}")
        );
    }
}

#[test]
fn the_config_saves_and_loads_as_json() {
    let config = config(
        Upsampling::BilinearConv,
        Block::Grouped { groups: 2 },
        Norm::Group { groups: 2 },
        UNetPadding::Valid,
    )
    .with_bottleneck_dilations(vec![1, 2, 4]);
    let path = std::env::temp_dir().join(format!("unet-config-{}.json", std::process::id()));
    burn::config::Config::save(&config, &path).unwrap();
    let loaded = <UNetConfig as burn::config::Config>::load(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(loaded, config);
}
