//! The worked examples of the articles the layers were specified from
//! (`../shared/seeds/`), checked on every backend. They were checked against
//! PyTorch 2.15; the snippets that reproduce them are beside each test.

use burn::tensor::{Tensor, TensorData};
use layers::{ConvTranspose2dConfig, UpConv2d};
use unet_train::BackendKind;

fn values(x: Tensor<4>) -> Vec<f32> {
    x.into_data().try_to_vec().unwrap()
}

/// Seed 002:
/// ```python
/// conv = nn.ConvTranspose2d(1, 1, 2, bias=False)
/// conv.weight.data = torch.tensor([[[[1., 0.], [0., 1.]]]])
/// conv(torch.tensor([[[[2., 2.], [0., 2.]]]]))  # [[2, 2, 0], [0, 4, 2], [0, 0, 2]]
/// ```
#[test]
fn transposed_2x2_example() {
    for backend in BackendKind::ALL {
        let device = backend.device();
        let conv = ConvTranspose2dConfig::new(1, 1, [2, 2])
            .with_bias(false)
            .try_init_from(
                TensorData::new(vec![1.0f32, 0.0, 0.0, 1.0], [1, 1, 2, 2]),
                None,
                &device,
            )
            .unwrap();
        let x = Tensor::<4>::from_data(
            TensorData::new(vec![2.0f32, 2.0, 0.0, 2.0], [1, 1, 2, 2]),
            &device,
        );
        let expected = [2.0, 2.0, 0.0, 0.0, 4.0, 2.0, 0.0, 0.0, 2.0];
        assert_eq!(values(conv.forward(x.clone())), expected, "{backend}");
        assert_eq!(
            values(UpConv2d::from(conv).forward(x)),
            expected,
            "{backend} (UpConv2d)"
        );
    }
}

/// Seed 003, `ConvTranspose1d` with kernel `[1, 1, 3]` as a `1 x 3` 2-D kernel:
/// ```python
/// conv = nn.ConvTranspose1d(1, 1, 3, stride=s, padding=p, output_padding=op, bias=False)
/// conv.weight.data = torch.tensor([[[1., 1., 3.]]])
/// conv(torch.tensor([[x]]))
/// ```
#[test]
fn transposed_1d_series() {
    /// (input, stride, padding, output_padding, expected)
    type Step = (&'static [f32], usize, usize, usize, &'static [f32]);
    let series: [Step; 7] = [
        (&[1.0], 1, 0, 0, &[1.0, 1.0, 3.0]),
        (&[1.0, 1.0], 1, 0, 0, &[1.0, 2.0, 4.0, 3.0]),
        (&[1.0, 1.0], 4, 0, 0, &[1.0, 1.0, 3.0, 0.0, 1.0, 1.0, 3.0]),
        (&[1.0, 1.0], 4, 1, 0, &[1.0, 3.0, 0.0, 1.0, 1.0]),
        (&[1.0, 1.0], 4, 1, 1, &[1.0, 3.0, 0.0, 1.0, 1.0, 3.0]),
        (
            &[1.0, 1.0],
            4,
            1,
            3,
            &[1.0, 3.0, 0.0, 1.0, 1.0, 3.0, 0.0, 0.0],
        ),
        // Zero insertion: [1, 0, 0, 0, 1] at stride 1 is [1, 1] at stride 4.
        (
            &[1.0, 0.0, 0.0, 0.0, 1.0],
            1,
            0,
            0,
            &[1.0, 1.0, 3.0, 0.0, 1.0, 1.0, 3.0],
        ),
    ];
    for backend in BackendKind::ALL {
        let device = backend.device();
        for &(input, stride, padding, output_padding, expected) in &series {
            let conv = ConvTranspose2dConfig::new(1, 1, [1, 3])
                .with_stride([1, stride])
                .with_padding([0, padding])
                .with_output_padding([0, output_padding])
                .with_bias(false)
                .try_init_from(
                    TensorData::new(vec![1.0f32, 1.0, 3.0], [1, 1, 1, 3]),
                    None,
                    &device,
                )
                .unwrap();
            let x = Tensor::<4>::from_data(
                TensorData::new(input.to_vec(), [1, 1, 1, input.len()]),
                &device,
            );
            let case = format!("{backend}: {input:?} s{stride} p{padding} op{output_padding}");
            assert_eq!(values(conv.forward(x.clone())), expected, "{case}");
            assert_eq!(
                values(UpConv2d::from(conv).forward(x)),
                expected,
                "{case} (UpConv2d)"
            );
        }
    }
}
