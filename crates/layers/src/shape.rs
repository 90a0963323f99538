//! Shape arithmetic of convolution and transposed convolution.
//!
//! The one-dimensional functions give `None` where PyTorch has no output; the
//! two-dimensional ones validate their arguments and return a [`ConvError`]
//! that names the values. All arithmetic is checked: no input makes these
//! functions panic or wrap around.

use crate::error::ConvError;

/// The extent of a dilated kernel: `dilation * (kernel - 1) + 1`.
///
/// `None` for a zero kernel or dilation, or on overflow.
///
/// ```
/// assert_eq!(layers::shape::dilated_kernel_size(3, 2), Some(5));
/// ```
pub fn dilated_kernel_size(kernel: usize, dilation: usize) -> Option<usize> {
    if kernel == 0 || dilation == 0 {
        return None;
    }
    dilation.checked_mul(kernel - 1)?.checked_add(1)
}

/// Output size of a convolution along one dimension:
///
/// `out = floor((in + pad_begin + pad_end - dilation * (kernel - 1) - 1) / stride) + 1`
///
/// `None` when the padded input is smaller than the dilated kernel (no output
/// position), when the input is empty, or when kernel, stride or dilation is zero.
///
/// ```
/// use layers::shape::conv_output_size;
/// assert_eq!(conv_output_size(7, 3, 2, (1, 1), 1), Some(4));
/// assert_eq!(conv_output_size(3, 5, 1, (0, 0), 1), None);
/// ```
pub fn conv_output_size(
    input: usize,
    kernel: usize,
    stride: usize,
    padding: (usize, usize),
    dilation: usize,
) -> Option<usize> {
    if input == 0 || stride == 0 {
        return None;
    }
    let extent = dilated_kernel_size(kernel, dilation)?;
    let padded = input.checked_add(padding.0)?.checked_add(padding.1)?;
    let room = padded.checked_sub(extent)?;
    Some(room / stride + 1)
}

/// Output size of a transposed convolution along one dimension, as PyTorch computes it:
///
/// `out = (in - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1`
///
/// `None` when that is below 1, when the input is empty, or when kernel,
/// stride or dilation is zero. Validity of `output_padding` itself is checked
/// by [`check_output_padding`].
///
/// ```
/// use layers::shape::conv_transpose_output_size;
/// // kernel 3, stride 2, padding 1, output padding 1 doubles the size.
/// assert_eq!(conv_transpose_output_size(5, 3, 2, 1, 1, 1), Some(10));
/// // kernel 1, padding 1 on a 1x1 input: 1 - 2 = -1 rows.
/// assert_eq!(conv_transpose_output_size(1, 1, 1, 1, 0, 1), None);
/// ```
pub fn conv_transpose_output_size(
    input: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    output_padding: usize,
    dilation: usize,
) -> Option<usize> {
    let size = conv_transpose_output_size_signed(
        input,
        kernel,
        stride,
        padding,
        output_padding,
        dilation,
    )?;
    usize::try_from(size).ok().filter(|&s| s >= 1)
}

/// The same formula as [`conv_transpose_output_size`], without the check that the
/// result is positive (for error messages). `None` only for invalid arguments or overflow.
fn conv_transpose_output_size_signed(
    input: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    output_padding: usize,
    dilation: usize,
) -> Option<i128> {
    if input == 0 || stride == 0 {
        return None;
    }
    let extent = dilated_kernel_size(kernel, dilation)? as i128;
    let spread = (input as i128 - 1).checked_mul(stride as i128)?;
    spread
        .checked_sub(2 * padding as i128)?
        .checked_add(extent)?
        .checked_add(output_padding as i128)
}

/// The `(begin, end)` padding that `Padding::Same` uses, PyTorch's rule: the
/// total `dilation * (kernel - 1)` is split in half, the odd row or column
/// going at the end (bottom or right). With stride 1 the output then has the
/// input's size.
///
/// ```
/// use layers::shape::same_padding;
/// assert_eq!(same_padding(3, 1), (1, 1));
/// assert_eq!(same_padding(4, 1), (1, 2));
/// assert_eq!(same_padding(2, 3), (1, 2));
/// ```
pub fn same_padding(kernel: usize, dilation: usize) -> (usize, usize) {
    let total = dilation.saturating_mul(kernel.saturating_sub(1));
    let begin = total / 2;
    (begin, total - begin)
}

/// PyTorch's rule for a transposed convolution's `output_padding`: in each
/// dimension it must be smaller than the stride or smaller than the dilation.
///
/// ```
/// use layers::shape::check_output_padding;
/// assert!(check_output_padding([1, 1], [2, 2], [1, 1]).is_ok());
/// assert!(check_output_padding([1, 0], [1, 1], [2, 1]).is_ok()); // below the dilation
/// assert!(check_output_padding([2, 2], [2, 2], [1, 1]).is_err());
/// ```
pub fn check_output_padding(
    output_padding: [usize; 2],
    stride: [usize; 2],
    dilation: [usize; 2],
) -> Result<(), ConvError> {
    let fits = (0..2).all(|i| output_padding[i] < stride[i] || output_padding[i] < dilation[i]);
    if fits {
        Ok(())
    } else {
        Err(ConvError::OutputPaddingTooLarge {
            output_padding,
            stride,
            dilation,
        })
    }
}

/// Checks that kernel size, stride and dilation are positive in both dimensions.
pub fn check_positive(
    kernel_size: [usize; 2],
    stride: [usize; 2],
    dilation: [usize; 2],
) -> Result<(), ConvError> {
    for (what, value) in [
        ("kernel_size", kernel_size),
        ("stride", stride),
        ("dilation", dilation),
    ] {
        if value.contains(&0) {
            return Err(ConvError::ZeroParameter { what, value });
        }
    }
    Ok(())
}

/// Spatial output size `[height, width]` of a 2D convolution, with
/// `padding = [(top, bottom), (left, right)]`; per dimension the formula of
/// [`conv_output_size`].
///
/// ```
/// use layers::shape::conv2d_output_shape;
/// let out = conv2d_output_shape([8, 9], [3, 3], [2, 2], [(1, 1), (1, 1)], [1, 1]).unwrap();
/// assert_eq!(out, [4, 5]);
/// ```
pub fn conv2d_output_shape(
    input: [usize; 2],
    kernel_size: [usize; 2],
    stride: [usize; 2],
    padding: [(usize, usize); 2],
    dilation: [usize; 2],
) -> Result<[usize; 2], ConvError> {
    check_positive(kernel_size, stride, dilation)?;
    let out: [Option<usize>; 2] = std::array::from_fn(|i| {
        conv_output_size(input[i], kernel_size[i], stride[i], padding[i], dilation[i])
    });
    match out {
        [Some(h), Some(w)] => Ok([h, w]),
        _ => Err(ConvError::InputTooSmall {
            input,
            padded: std::array::from_fn(|i| {
                input[i]
                    .saturating_add(padding[i].0)
                    .saturating_add(padding[i].1)
            }),
            kernel: std::array::from_fn(|i| {
                dilated_kernel_size(kernel_size[i], dilation[i]).unwrap_or(usize::MAX)
            }),
        }),
    }
}

/// Spatial output size `[height, width]` of a 2D transposed convolution; per
/// dimension the formula of [`conv_transpose_output_size`]. Also checks the
/// output padding with [`check_output_padding`].
///
/// ```
/// use layers::shape::conv_transpose2d_output_shape;
/// // The U-Net upsampler: kernel 2, stride 2 doubles height and width.
/// let out = conv_transpose2d_output_shape([16, 24], [2, 2], [2, 2], [0, 0], [0, 0], [1, 1]);
/// assert_eq!(out.unwrap(), [32, 48]);
/// ```
pub fn conv_transpose2d_output_shape(
    input: [usize; 2],
    kernel_size: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    output_padding: [usize; 2],
    dilation: [usize; 2],
) -> Result<[usize; 2], ConvError> {
    check_positive(kernel_size, stride, dilation)?;
    check_output_padding(output_padding, stride, dilation)?;
    let signed: [Option<i128>; 2] = std::array::from_fn(|i| {
        conv_transpose_output_size_signed(
            input[i],
            kernel_size[i],
            stride[i],
            padding[i],
            output_padding[i],
            dilation[i],
        )
    });
    let positive = |s: Option<i128>| s.and_then(|s| usize::try_from(s).ok().filter(|&s| s >= 1));
    match signed.map(positive) {
        [Some(h), Some(w)] => Ok([h, w]),
        _ => Err(ConvError::OutputTooSmall {
            input,
            output: signed.map(|s| s.map_or(i64::MIN, |s| i64::try_from(s).unwrap_or(i64::MAX))),
        }),
    }
}

/// The sizes a transposed convolution can produce from `input`, one per output
/// padding `0..stride`: PyTorch accepts an `output_size` in this range and
/// derives the output padding from it.
///
/// ```
/// use layers::shape::conv_transpose2d_output_size_range;
/// // kernel 3, stride 2, padding 1 maps 5 rows to 9 or 10.
/// let (min, max) =
///     conv_transpose2d_output_size_range([5, 5], [3, 3], [2, 2], [1, 1], [1, 1]).unwrap();
/// assert_eq!((min, max), ([9, 9], [10, 10]));
/// ```
pub fn conv_transpose2d_output_size_range(
    input: [usize; 2],
    kernel_size: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    dilation: [usize; 2],
) -> Result<([usize; 2], [usize; 2]), ConvError> {
    let min = conv_transpose2d_output_shape(input, kernel_size, stride, padding, [0, 0], dilation)?;
    let max: [usize; 2] = std::array::from_fn(|i| min[i].saturating_add(stride[i] - 1));
    Ok((min, max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conv_size_follows_the_formula() {
        // floor((10 + 2 - 2*(3-1) - 1) / 3) + 1 = floor(7/3) + 1 = 3
        assert_eq!(conv_output_size(10, 3, 3, (1, 1), 2), Some(3));
        assert_eq!(conv_output_size(5, 5, 1, (0, 0), 1), Some(1));
        assert_eq!(conv_output_size(4, 5, 1, (0, 0), 1), None);
        assert_eq!(conv_output_size(4, 3, 0, (0, 0), 1), None);
        assert_eq!(conv_output_size(usize::MAX, 3, 1, (1, 1), 1), None);
    }

    #[test]
    fn transposed_size_follows_the_formula() {
        // (4 - 1)*2 - 2*1 + 1*(4 - 1) + 0 + 1 = 8
        assert_eq!(conv_transpose_output_size(4, 4, 2, 1, 0, 1), Some(8));
        // seed 003: kernel [1,1,3], input length 2, stride 4, padding 1, output_padding 3 -> 8
        assert_eq!(conv_transpose_output_size(2, 3, 4, 1, 3, 1), Some(8));
        assert_eq!(conv_transpose_output_size(1, 1, 1, 1, 0, 1), None);
    }

    #[test]
    fn errors_name_the_values() {
        let err = conv2d_output_shape([3, 3], [5, 5], [1, 1], [(0, 0); 2], [1, 1]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "input size [3, 3] padded to [3, 3] is smaller than the dilated kernel [5, 5]"
        );
        let err = conv_transpose2d_output_shape([1, 1], [1, 1], [1, 1], [1, 1], [0, 0], [1, 1])
            .unwrap_err();
        assert_eq!(
            err,
            ConvError::OutputTooSmall {
                input: [1, 1],
                output: [-1, -1]
            }
        );
        let err = conv2d_output_shape([3, 3], [3, 3], [0, 1], [(0, 0); 2], [1, 1]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "stride must be positive in every dimension, got [0, 1]"
        );
    }
}
