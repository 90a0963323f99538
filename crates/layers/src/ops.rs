//! Small tensor operations the layers are built from. They are written with
//! Burn's tensor API, so every backend and autodiff get them for free.

use burn::module::Param;
use burn::tensor::Tensor;
use burn::tensor::ops::PadMode;

/// Adds (`> 0`) or removes (`< 0`) rows and columns of an
/// `[batch, channels, height, width]` tensor: `pads = [(top, bottom), (left, right)]`.
/// Added values are zero.
///
/// The caller guarantees that the removed part is smaller than the tensor.
pub(crate) fn pad_or_crop(x: Tensor<4>, pads: [(i64, i64); 2]) -> Tensor<4> {
    let dims = x.dims();
    let crop: [(usize, usize); 2] = pads.map(|(b, e)| {
        (
            b.min(0).unsigned_abs() as usize,
            e.min(0).unsigned_abs() as usize,
        )
    });
    let x = if crop == [(0, 0); 2] {
        x
    } else {
        let ranges: [std::ops::Range<usize>; 2] =
            std::array::from_fn(|i| crop[i].0..dims[2 + i] - crop[i].1);
        x.slice([0..dims[0], 0..dims[1], ranges[0].clone(), ranges[1].clone()])
    };
    let grow: [(usize, usize); 2] = pads.map(|(b, e)| (b.max(0) as usize, e.max(0) as usize));
    if grow == [(0, 0); 2] {
        x
    } else {
        x.pad(grow, PadMode::Constant(0.0))
    }
}

/// Spreads an `[batch, channels, height, width]` tensor by `stride`, putting
/// `stride - 1` zeros between neighbouring values: the result has
/// `(height - 1) * stride[0] + 1` rows and `(width - 1) * stride[1] + 1` columns.
pub(crate) fn insert_zeros(x: Tensor<4>, stride: [usize; 2]) -> Tensor<4> {
    if stride == [1, 1] {
        return x;
    }
    let [n, c, h, w] = x.dims();
    let [sh, sw] = stride;
    x.reshape([n, c, h, 1, w, 1])
        .pad(
            [(0, 0), (0, sh - 1), (0, 0), (0, sw - 1)],
            PadMode::Constant(0.0),
        )
        .reshape([n, c, h * sh, w * sw])
        .slice([0..n, 0..c, 0..(h - 1) * sh + 1, 0..(w - 1) * sw + 1])
}

/// Adds a per-channel bias `[channels]`, if there is one, to
/// `[batch, channels, height, width]`. Every layer adds its bias here, after
/// whichever engine computed the product ([`crate::dispatch`]), so the bias
/// gradient is the plain broadcast rule's on every backend.
pub(crate) fn add_bias(x: Tensor<4>, bias: Option<&Param<Tensor<1>>>) -> Tensor<4> {
    match bias {
        Some(bias) => {
            let [channels] = bias.dims();
            // In the input's type (a half-precision one in mixed precision);
            // the gradient comes back through the cast in the bias's own.
            let bias = bias.val().cast(x.dtype());
            x + bias.reshape([1, channels, 1, 1])
        }
        None => x,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    fn tensor(values: &[f32], shape: [usize; 4]) -> Tensor<4> {
        Tensor::from_data(TensorData::new(values.to_vec(), shape), &Device::flex())
    }

    fn values(x: Tensor<4>) -> Vec<f32> {
        x.into_data().try_to_vec().unwrap()
    }

    #[test]
    fn zeros_go_between_values() {
        let x = tensor(&[1.0, 2.0, 3.0, 4.0], [1, 1, 2, 2]);
        let y = insert_zeros(x, [2, 3]);
        assert_eq!(y.dims(), [1, 1, 3, 4]);
        #[rustfmt::skip]
        let expected = [
            1.0, 0.0, 0.0, 2.0,
            0.0, 0.0, 0.0, 0.0,
            3.0, 0.0, 0.0, 4.0,
        ];
        assert_eq!(values(y), expected);
    }

    #[test]
    fn pad_and_crop_in_one_call() {
        let x = tensor(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [1, 1, 2, 3]);
        let y = pad_or_crop(x, [(-1, 1), (1, -2)]);
        assert_eq!(y.dims(), [1, 1, 2, 2]);
        assert_eq!(values(y), [0.0, 4.0, 0.0, 0.0]);
    }
}
