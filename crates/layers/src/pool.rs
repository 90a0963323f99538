//! Max pooling, PyTorch's `torch.nn.functional.max_pool2d(x, kernel_size)`:
//! windows side by side (the stride is the window), no padding, floor mode.

use burn::tensor::Tensor;

use crate::ConvError;
use crate::dispatch;

/// The maximum of each `kernel_size` window of `x`, windows side by side
/// (stride = `kernel_size`, no padding): PyTorch's
/// `F.max_pool2d(x, kernel_size)`, forward and backward. Rows and columns
/// past the last whole window are dropped (floor mode) and get no gradient.
///
/// The maximum is PyTorch's: ties send the gradient to the first maximum in
/// row-major order; a window holding a NaN gives NaN (and sends its
/// gradient to its last NaN). On flex and ndarray this runs the crate's own
/// kernels, which keep no index tensor for the backward pass; elsewhere
/// Burn's `max_pool2d`.
///
/// # Shapes
/// - `x`: `[batch, channels, height, width]`
/// - output: `[batch, channels, height / kh, width / kw]`
///
/// # Errors
/// [`ConvError::ZeroParameter`] for a zero in `kernel_size`,
/// [`ConvError::EmptyInput`] for an input without elements, and
/// [`ConvError::WindowTooLarge`] when no whole window fits.
///
/// ```
/// use burn::tensor::{Device, Tensor};
///
/// let device = Device::flex();
/// let x = Tensor::<4>::from_floats([[[[1.0, 5.0, 2.0], [3.0, 4.0, 9.0]]]], &device);
/// let y = layers::max_pool2d(x, [2, 2])?;
/// assert_eq!(y.into_data().to_vec::<f32>().unwrap(), vec![5.0]);
///
/// let too_small = Tensor::<4>::zeros([1, 1, 1, 4], &device);
/// assert!(layers::max_pool2d(too_small, [2, 2]).is_err());
/// # Ok::<(), layers::ConvError>(())
/// ```
pub fn max_pool2d(x: Tensor<4>, kernel_size: [usize; 2]) -> Result<Tensor<4>, ConvError> {
    if kernel_size.contains(&0) {
        return Err(ConvError::ZeroParameter {
            what: "kernel_size",
            value: kernel_size,
        });
    }
    let shape = x.dims();
    if shape.contains(&0) {
        return Err(ConvError::EmptyInput { shape });
    }
    let input = [shape[2], shape[3]];
    if input[0] < kernel_size[0] || input[1] < kernel_size[1] {
        return Err(ConvError::WindowTooLarge {
            input,
            kernel: kernel_size,
        });
    }
    Ok(dispatch::max_pool2d(x, kernel_size))
}

#[cfg(test)]
mod tests {
    use burn::tensor::Device;

    use super::*;

    #[test]
    fn impossible_windows_are_refused_naming_the_values() {
        let device = Device::flex();
        let x = Tensor::<4>::zeros([1, 2, 3, 5], &device);
        let err = max_pool2d(x.clone(), [0, 2]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "kernel_size must be positive in every dimension, got [0, 2]"
        );
        let err = max_pool2d(x, [4, 2]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "pooling window [4, 2] is larger than the input [3, 5]: no whole window fits"
        );
        let empty = Tensor::<4>::zeros([0, 2, 3, 5], &device);
        assert!(matches!(
            max_pool2d(empty, [2, 2]),
            Err(ConvError::EmptyInput { .. })
        ));
    }
}
