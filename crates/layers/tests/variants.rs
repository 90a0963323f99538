//! The named variants do what their names promise, checked against
//! independent computations (not against the layers' own output).

use burn::tensor::{Tensor, TensorData};
use layers::{
    Conv2dConfig, ConvTranspose2dConfig, DepthwiseSeparableConv2dConfig, Padding,
    SpatiallySeparableConv2dConfig,
};

fn device() -> burn::tensor::Device {
    burn::tensor::Device::flex()
}

/// Deterministic values in [-1, 1).
fn pseudo_random(len: usize, seed: u64) -> Vec<f32> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn tensor(values: Vec<f32>, shape: [usize; 4]) -> Tensor<4> {
    Tensor::from_data(TensorData::new(values, shape), &device())
}

fn values<const D: usize>(x: Tensor<D>) -> Vec<f32> {
    x.into_data().try_to_vec().unwrap()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Bilinear interpolation with `align_corners = false` (PyTorch's
/// `F.interpolate(mode="bilinear")`), computed directly, at output position
/// `(oy, ox)`; `None` where it would clamp at the border.
fn bilinear_at(
    image: &[f32],
    h: usize,
    w: usize,
    factor: usize,
    oy: usize,
    ox: usize,
) -> Option<f32> {
    let src = |o: usize| (o as f64 + 0.5) / factor as f64 - 0.5;
    let (sy, sx) = (src(oy), src(ox));
    if sy < 0.0 || sx < 0.0 || sy > (h - 1) as f64 || sx > (w - 1) as f64 {
        return None;
    }
    let (y0, x0) = (sy.floor() as usize, sx.floor() as usize);
    let (y1, x1) = ((y0 + 1).min(h - 1), (x0 + 1).min(w - 1));
    let (fy, fx) = (sy - y0 as f64, sx - x0 as f64);
    let at = |y: usize, x: usize| image[y * w + x] as f64;
    let top = at(y0, x0) * (1.0 - fx) + at(y0, x1) * fx;
    let bottom = at(y1, x0) * (1.0 - fx) + at(y1, x1) * fx;
    Some((top * (1.0 - fy) + bottom * fy) as f32)
}

#[test]
fn bilinear_initialiser_reproduces_bilinear_upsampling_inside() {
    let (channels, h, w) = (2, 5, 6);
    for factor in [2, 3, 4] {
        let up = ConvTranspose2dConfig::bilinear_upsampling(channels, factor)
            .try_init(&device())
            .unwrap();
        let image = pseudo_random(channels * h * w, factor as u64);
        let y = up.forward(tensor(image.clone(), [1, channels, h, w]));
        assert_eq!(
            y.dims(),
            [1, channels, h * factor, w * factor],
            "factor {factor}"
        );
        let y = values(y);
        let (oh, ow) = (h * factor, w * factor);
        let mut checked = 0;
        for c in 0..channels {
            let plane = &image[c * h * w..(c + 1) * h * w];
            for oy in 0..oh {
                for ox in 0..ow {
                    if let Some(expected) = bilinear_at(plane, h, w, factor, oy, ox) {
                        let got = y[(c * oh + oy) * ow + ox];
                        assert!(
                            (got - expected).abs() < 1e-5,
                            "factor {factor} c{c} ({oy},{ox}): {got} vs {expected}"
                        );
                        checked += 1;
                    }
                }
            }
        }
        // The interior is most of the image.
        assert!(
            checked > channels * oh * ow / 2,
            "factor {factor}: only {checked} checked"
        );
    }
}

#[test]
fn spatially_separable_equals_the_outer_product_kernel() {
    let (kh, kw) = (3, 5);
    let column = pseudo_random(kh, 1);
    let row = pseudo_random(kw, 2);
    let pair = SpatiallySeparableConv2dConfig::new(1, 1, [kh, kw])
        .with_padding(Padding::Explicit([1, 2]))
        .with_bias(false)
        .try_init(&device())
        .unwrap();
    let pair = layers::SpatiallySeparableConv2d {
        vertical: pair
            .vertical
            .clone()
            .load_weight(column.clone(), [1, 1, kh, 1]),
        horizontal: pair
            .horizontal
            .clone()
            .load_weight(row.clone(), [1, 1, 1, kw]),
    };
    let outer: Vec<f32> = column
        .iter()
        .flat_map(|a| row.iter().map(move |b| a * b))
        .collect();
    let full = Conv2dConfig::new(1, 1, [kh, kw])
        .with_padding(Padding::Explicit([1, 2]))
        .with_bias(false)
        .try_init_from(TensorData::new(outer, [1, 1, kh, kw]), None, &device())
        .unwrap();
    let x = tensor(pseudo_random(2 * 9 * 11, 3), [2, 1, 9, 11]);
    let (a, b) = (values(pair.forward(x.clone())), values(full.forward(x)));
    assert!(max_abs_diff(&a, &b) < 1e-5);
}

trait LoadWeight {
    fn load_weight(self, values: Vec<f32>, shape: [usize; 4]) -> Self;
}

impl LoadWeight for layers::Conv2d {
    fn load_weight(mut self, values: Vec<f32>, shape: [usize; 4]) -> Self {
        self.weight = burn::module::Param::from_data(TensorData::new(values, shape), &device());
        self
    }
}

#[test]
fn depthwise_separable_is_depthwise_then_pointwise_by_hand() {
    let (c, m, out, h, w) = (3, 2, 4, 6, 5);
    let conv = DepthwiseSeparableConv2dConfig::new(c, out, [3, 3])
        .with_depth_multiplier(m)
        .try_init(&device())
        .unwrap();
    let x_values = pseudo_random(c * h * w, 7);
    let y = values(conv.forward(tensor(x_values.clone(), [1, c, h, w])));
    let dw = values(conv.depthwise.weight.val()); // [c*m, 1, 3, 3]
    let dw_bias = values(conv.depthwise.bias.as_ref().unwrap().val());
    let pw = values(conv.pointwise.weight.val()); // [out, c*m, 1, 1]
    let pw_bias = values(conv.pointwise.bias.as_ref().unwrap().val());
    // Depthwise by hand: filter k reads input channel k / m, zero padding 1.
    let mut mid = vec![0f32; c * m * h * w];
    for k in 0..c * m {
        for y0 in 0..h {
            for x0 in 0..w {
                let mut acc = dw_bias[k];
                for dy in 0..3 {
                    for dx in 0..3 {
                        let (yy, xx) =
                            (y0 as isize + dy as isize - 1, x0 as isize + dx as isize - 1);
                        if yy >= 0 && xx >= 0 && (yy as usize) < h && (xx as usize) < w {
                            acc += dw[k * 9 + dy * 3 + dx]
                                * x_values[((k / m) * h + yy as usize) * w + xx as usize];
                        }
                    }
                }
                mid[(k * h + y0) * w + x0] = acc;
            }
        }
    }
    let mut expected = vec![0f32; out * h * w];
    for o in 0..out {
        for p in 0..h * w {
            expected[o * h * w + p] = pw_bias[o]
                + (0..c * m)
                    .map(|k| pw[o * c * m + k] * mid[k * h * w + p])
                    .sum::<f32>();
        }
    }
    assert!(max_abs_diff(&y, &expected) < 1e-5);
}
