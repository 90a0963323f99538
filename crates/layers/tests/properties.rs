//! Property tests: random configurations and inputs, valid and invalid.
//!
//! The oracle for PyTorch's rules is written here independently of the crate:
//! output sizes are counted by brute force (kernel placements, scattered
//! positions), not by the formulas the crate uses.

use burn::tensor::{Device, Tensor, TensorData};
use layers::shape::{conv_transpose2d_output_shape, conv2d_output_shape};
use layers::{Conv2dConfig, ConvTranspose2dConfig, Padding, UpConv2d};
use proptest::prelude::*;

fn device() -> Device {
    Device::flex()
}

/// Number of kernel placements that fit in a padded input (PyTorch's conv2d).
fn placements(
    input: usize,
    kernel: usize,
    stride: usize,
    pads: (usize, usize),
    dilation: usize,
) -> usize {
    let padded = input + pads.0 + pads.1;
    let extent = dilation * (kernel - 1) + 1;
    (0..)
        .step_by(stride)
        .take_while(|start| start + extent <= padded)
        .count()
}

/// Length of a transposed convolution's output: scatter every input position
/// through every kernel tap, then crop `padding` from both ends and add
/// `output_padding` at the end. Negative when nothing is left.
fn scattered_length(
    input: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    output_padding: usize,
    dilation: usize,
) -> i64 {
    let last = (0..input)
        .flat_map(|i| (0..kernel).map(move |j| i * stride + j * dilation))
        .max()
        .unwrap();
    (last + 1) as i64 - 2 * padding as i64 + output_padding as i64
}

#[derive(Debug, Clone)]
struct Case {
    in_channels: usize,
    out_channels: usize,
    kernel: [usize; 2],
    stride: [usize; 2],
    dilation: [usize; 2],
    groups: usize,
    padding: [usize; 2],
    output_padding: [usize; 2],
    input: [usize; 4],
}

fn case() -> impl Strategy<Value = Case> {
    (
        (1usize..=6, 1usize..=6, 0usize..=4),
        (
            prop::array::uniform2(0usize..=4),
            prop::array::uniform2(0usize..=3),
            prop::array::uniform2(0usize..=3),
        ),
        (
            prop::array::uniform2(0usize..=3),
            prop::array::uniform2(0usize..=3),
        ),
        (
            1usize..=2,
            prop::option::weighted(0.9, Just(())),
            1usize..=6,
            prop::array::uniform2(1usize..=8),
        ),
    )
        .prop_map(
            |(
                (i, o, g),
                (kernel, stride, dilation),
                (padding, output_padding),
                (n, right, c, [h, w]),
            )| {
                // Mostly scale the channels by the groups, so that many cases are valid.
                let (in_channels, out_channels) = if g > 0 && right.is_some() {
                    (i * g, o * g)
                } else {
                    (i, o)
                };
                let channels = if right.is_some() { in_channels } else { c };
                Case {
                    in_channels,
                    out_channels,
                    kernel,
                    stride,
                    dilation,
                    groups: g,
                    padding,
                    output_padding,
                    input: [n, channels, h, w],
                }
            },
        )
}

/// Cases every setting of which PyTorch accepts, for the laws below.
fn valid_case() -> impl Strategy<Value = Case> {
    (
        (1usize..=3, 1usize..=3, 1usize..=3, 1usize..=3),
        (
            prop::array::uniform2(1usize..=4),
            prop::array::uniform2(1usize..=3),
            prop::array::uniform2(1usize..=2),
        ),
        (
            prop::array::uniform2(0usize..=2),
            prop::array::uniform2(0usize..=2),
            prop::array::uniform2(0usize..=4),
        ),
    )
        .prop_map(
            |((g, i, o, n), (kernel, stride, dilation), (padding, op, extra))| {
                let output_padding = std::array::from_fn(|k| op[k] % stride[k].max(dilation[k]));
                let size = |k: usize| dilation[k] * (kernel[k] - 1) + 1 + extra[k];
                Case {
                    in_channels: i * g,
                    out_channels: o * g,
                    kernel,
                    stride,
                    dilation,
                    groups: g,
                    padding,
                    output_padding,
                    input: [n, i * g, size(0), size(1)],
                }
            },
        )
}

fn padding_choice() -> impl Strategy<Value = Padding> {
    prop_oneof![
        Just(Padding::Valid),
        Just(Padding::Same),
        prop::array::uniform2(0usize..=3).prop_map(Padding::Explicit),
        (0usize..=3, 0usize..=3, 0usize..=3, 0usize..=3).prop_map(|(top, bottom, left, right)| {
            Padding::Asymmetric {
                top,
                bottom,
                left,
                right,
            }
        }),
    ]
}

/// Settings every convolution shares: PyTorch refuses them at construction.
fn settings_valid(c: &Case) -> bool {
    c.kernel
        .iter()
        .chain(&c.stride)
        .chain(&c.dilation)
        .all(|&v| v > 0)
        && c.groups > 0
        && c.in_channels.is_multiple_of(c.groups)
        && c.out_channels.is_multiple_of(c.groups)
}

fn pads_of(padding: Padding, c: &Case) -> Option<[(usize, usize); 2]> {
    match padding {
        Padding::Valid => Some([(0, 0); 2]),
        Padding::Same if c.stride == [1, 1] => Some([0, 1].map(|i| {
            let total = c.dilation[i] * c.kernel[i].saturating_sub(1);
            (total / 2, total - total / 2)
        })),
        Padding::Same => None,
        Padding::Explicit([h, w]) => Some([(h, h), (w, w)]),
        Padding::Asymmetric {
            top,
            bottom,
            left,
            right,
        } => Some([(top, bottom), (left, right)]),
    }
}

/// PyTorch's answer for a conv2d: the output shape, or `None` for an error.
fn conv2d_oracle(c: &Case, padding: Padding) -> Option<[usize; 4]> {
    if !settings_valid(c) || c.input[1] != c.in_channels {
        return None;
    }
    let pads = pads_of(padding, c)?;
    let out: [usize; 2] = std::array::from_fn(|i| {
        placements(
            c.input[2 + i],
            c.kernel[i],
            c.stride[i],
            pads[i],
            c.dilation[i],
        )
    });
    (out[0] > 0 && out[1] > 0).then_some([c.input[0], c.out_channels, out[0], out[1]])
}

/// PyTorch's answer for a conv_transpose2d.
fn conv_transpose2d_oracle(c: &Case) -> Option<[usize; 4]> {
    if !settings_valid(c) || c.input[1] != c.in_channels {
        return None;
    }
    if (0..2).any(|i| c.output_padding[i] >= c.stride[i] && c.output_padding[i] >= c.dilation[i]) {
        return None;
    }
    let out: [i64; 2] = std::array::from_fn(|i| {
        scattered_length(
            c.input[2 + i],
            c.kernel[i],
            c.stride[i],
            c.padding[i],
            c.output_padding[i],
            c.dilation[i],
        )
    });
    (out[0] > 0 && out[1] > 0).then_some([
        c.input[0],
        c.out_channels,
        out[0] as usize,
        out[1] as usize,
    ])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2500, failure_persistence: None, ..ProptestConfig::default() })]

    /// Shape functions and `try_forward` never panic, refuse exactly what
    /// PyTorch refuses, and produce the shape PyTorch produces.
    #[test]
    fn conv2d_accepts_exactly_what_pytorch_accepts(c in case(), padding in padding_choice()) {
        let expected = conv2d_oracle(&c, padding);
        let config = Conv2dConfig::new(c.in_channels, c.out_channels, c.kernel)
            .with_stride(c.stride)
            .with_dilation(c.dilation)
            .with_groups(c.groups)
            .with_padding(padding);
        if let (true, Some(pads)) = (settings_valid(&c) && c.input[1] == c.in_channels, pads_of(padding, &c)) {
            let shape = conv2d_output_shape([c.input[2], c.input[3]], c.kernel, c.stride, pads, c.dilation);
            prop_assert_eq!(shape.ok(), expected.map(|e| [e[2], e[3]]));
        }
        let got = config
            .try_init(&device())
            .and_then(|conv| conv.try_forward(Tensor::zeros(c.input, &device())))
            .map(|y| y.dims());
        prop_assert_eq!(got.clone().ok(), expected, "{:?} {:?}: {:?}", c, padding, got);
    }

    #[test]
    fn conv_transpose2d_accepts_exactly_what_pytorch_accepts(c in case()) {
        let expected = conv_transpose2d_oracle(&c);
        let config = ConvTranspose2dConfig::new(c.in_channels, c.out_channels, c.kernel)
            .with_stride(c.stride)
            .with_dilation(c.dilation)
            .with_groups(c.groups)
            .with_padding(c.padding)
            .with_output_padding(c.output_padding);
        if settings_valid(&c) && c.input[1] == c.in_channels {
            let shape = conv_transpose2d_output_shape(
                [c.input[2], c.input[3]], c.kernel, c.stride, c.padding, c.output_padding, c.dilation,
            );
            prop_assert_eq!(shape.ok(), expected.map(|e| [e[2], e[3]]));
        }
        let layer = config.try_init(&device());
        let got = layer.as_ref().map_err(Clone::clone)
            .and_then(|conv| conv.try_forward(Tensor::zeros(c.input, &device())))
            .map(|y| y.dims());
        prop_assert_eq!(got.clone().ok(), expected, "{:?}: {:?}", c, got);
        if let Ok(layer) = layer {
            let up = UpConv2d::from(layer).try_forward(Tensor::zeros(c.input, &device())).map(|y| y.dims());
            prop_assert_eq!(up.ok(), expected, "UpConv2d {:?}", c);
        }
    }

    /// A transposed convolution undoes the size change of the convolution it
    /// transposes: for output padding below the stride, convolving its output
    /// gives back the input's size.
    #[test]
    fn transposed_output_convolves_back_to_the_input_size(c in valid_case()) {
        prop_assume!((0..2).all(|i| c.output_padding[i] < c.stride[i]));
        if let Ok([h, w]) = conv_transpose2d_output_shape(
            [c.input[2], c.input[3]], c.kernel, c.stride, c.padding, c.output_padding, c.dilation,
        ) {
            let back = conv2d_output_shape([h, w], c.kernel, c.stride, [(c.padding[0], c.padding[0]), (c.padding[1], c.padding[1])], c.dilation);
            prop_assert_eq!(back, Ok([c.input[2], c.input[3]]));
        }
    }
}

/// Deterministic values in [-1, 1).
fn pseudo_random(len: usize, seed: u64) -> Vec<f32> {
    let mut state = seed ^ 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn max_abs_diff(a: Tensor<4>, b: Tensor<4>) -> f32 {
    (a - b).abs().max().into_scalar()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]

    /// A batch gives what its samples give one by one.
    #[test]
    fn a_batch_equals_its_samples(c in valid_case(), padding in padding_choice(), seed in any::<u64>()) {
        let padding = if c.stride == [1, 1] { padding } else { Padding::Valid };
        prop_assert!(conv2d_oracle(&c, padding).is_some());
        let conv = Conv2dConfig::new(c.in_channels, c.out_channels, c.kernel)
            .with_stride(c.stride).with_dilation(c.dilation).with_groups(c.groups).with_padding(padding)
            .init(&device());
        let [n, ch, h, w] = c.input;
        let x = Tensor::<4>::from_data(TensorData::new(pseudo_random(n * ch * h * w, seed), c.input), &device());
        let batch = conv.forward(x.clone());
        for i in 0..n {
            let one = conv.forward(x.clone().narrow(0, i, 1));
            prop_assert!(max_abs_diff(batch.clone().narrow(0, i, 1), one) < 1e-5);
        }
    }

    /// A grouped convolution is `groups` separate convolutions, each on its
    /// slice of the input channels with its slice of the filters.
    #[test]
    fn a_grouped_conv_is_separate_convs_on_slices(c in valid_case(), padding in padding_choice(), seed in any::<u64>()) {
        let padding = if c.stride == [1, 1] { padding } else { Padding::Valid };
        prop_assume!(c.groups > 1);
        prop_assert!(conv2d_oracle(&c, padding).is_some());
        let g = c.groups;
        let conv = Conv2dConfig::new(c.in_channels, c.out_channels, c.kernel)
            .with_stride(c.stride).with_dilation(c.dilation).with_groups(g).with_padding(padding)
            .init(&device());
        let x = Tensor::<4>::from_data(TensorData::new(pseudo_random(c.input.iter().product(), seed), c.input), &device());
        let grouped = conv.forward(x.clone());
        let (ci, co) = (c.in_channels / g, c.out_channels / g);
        let weight = conv.weight.val();
        let bias = conv.bias.as_ref().unwrap().val();
        for k in 0..g {
            let single = Conv2dConfig::new(ci, co, c.kernel)
                .with_stride(c.stride).with_dilation(c.dilation).with_padding(padding)
                .try_init_from(
                    weight.clone().narrow(0, k * co, co).into_data(),
                    Some(bias.clone().narrow(0, k * co, co).into_data()),
                    &device(),
                )
                .unwrap();
            let part = single.forward(x.clone().slice([0..c.input[0], k * ci..(k + 1) * ci]));
            let slice = grouped.clone().slice([0..c.input[0], k * co..(k + 1) * co]);
            prop_assert!(max_abs_diff(slice, part) < 1e-5);
        }
    }

    /// Zero insertion + convolution equals the transposed convolution.
    #[test]
    fn up_convolution_equals_transposed_convolution(c in valid_case(), seed in any::<u64>()) {
        prop_assume!(conv_transpose2d_oracle(&c).is_some());
        let conv = ConvTranspose2dConfig::new(c.in_channels, c.out_channels, c.kernel)
            .with_stride(c.stride).with_dilation(c.dilation).with_groups(c.groups)
            .with_padding(c.padding).with_output_padding(c.output_padding)
            .init(&device());
        let x = Tensor::<4>::from_data(TensorData::new(pseudo_random(c.input.iter().product(), seed), c.input), &device());
        let expected = conv.forward(x.clone());
        let got = UpConv2d::from(conv).forward(x);
        prop_assert!(max_abs_diff(expected, got) < 1e-5);
    }
}
