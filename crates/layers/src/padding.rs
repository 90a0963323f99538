//! Zero padding of a convolution's input.

use burn::config::Config;

use crate::error::ConvError;
use crate::shape::same_padding;

/// How many zero rows and columns a [`Conv2d`](crate::Conv2d) adds around its input.
///
/// Mirrors PyTorch's `padding` argument: `"valid"`, `"same"`, or explicit
/// numbers; [`Padding::Asymmetric`] adds what `F.pad` followed by a convolution
/// would give.
#[derive(Config, Debug, PartialEq, Eq, Copy)]
pub enum Padding {
    /// No padding (PyTorch's `padding="valid"` or `padding=0`).
    Valid,
    /// Pad so that the output has the input's size (PyTorch's `padding="same"`;
    /// stride 1 only). The total `dilation * (kernel - 1)` is split in half and
    /// an odd row or column goes at the end: see [`same_padding`].
    Same,
    /// `[height, width]`: that many rows at the top and at the bottom, and that
    /// many columns at the left and at the right (PyTorch's `padding=(ph, pw)`).
    Explicit([usize; 2]),
    /// A different amount on each side.
    Asymmetric {
        /// Rows added above.
        top: usize,
        /// Rows added below.
        bottom: usize,
        /// Columns added on the left.
        left: usize,
        /// Columns added on the right.
        right: usize,
    },
}

impl Padding {
    /// The same amount on every side.
    pub fn uniform(amount: usize) -> Self {
        Self::Explicit([amount, amount])
    }

    /// The padding as `[(top, bottom), (left, right)]` for a kernel of
    /// `kernel_size` with `dilation` and `stride`.
    ///
    /// Fails only for [`Padding::Same`] with a stride other than 1.
    ///
    /// ```
    /// use layers::Padding;
    /// let pads = Padding::Same.resolve([4, 3], [1, 1], [1, 2]).unwrap();
    /// assert_eq!(pads, [(1, 2), (2, 2)]);
    /// ```
    pub fn resolve(
        &self,
        kernel_size: [usize; 2],
        stride: [usize; 2],
        dilation: [usize; 2],
    ) -> Result<[(usize, usize); 2], ConvError> {
        Ok(match *self {
            Self::Valid => [(0, 0); 2],
            Self::Same => {
                if stride != [1, 1] {
                    return Err(ConvError::SameWithStride { stride });
                }
                [
                    same_padding(kernel_size[0], dilation[0]),
                    same_padding(kernel_size[1], dilation[1]),
                ]
            }
            Self::Explicit([h, w]) => [(h, h), (w, w)],
            Self::Asymmetric {
                top,
                bottom,
                left,
                right,
            } => [(top, bottom), (left, right)],
        })
    }

    /// The part of this padding that applies to the height only (for a `k x 1`
    /// kernel) and the part that applies to the width only (for a `1 x k` kernel).
    pub(crate) fn split_axes(self) -> (Self, Self) {
        match self {
            Self::Valid | Self::Same => (self, self),
            Self::Explicit([h, w]) => (Self::Explicit([h, 0]), Self::Explicit([0, w])),
            Self::Asymmetric {
                top,
                bottom,
                left,
                right,
            } => (
                Self::Asymmetric {
                    top,
                    bottom,
                    left: 0,
                    right: 0,
                },
                Self::Asymmetric {
                    top: 0,
                    bottom: 0,
                    left,
                    right,
                },
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_puts_the_odd_row_at_the_end() {
        assert_eq!(
            Padding::Same.resolve([2, 5], [1, 1], [1, 1]).unwrap(),
            [(0, 1), (2, 2)]
        );
        assert_eq!(
            Padding::Same.resolve([3, 3], [1, 1], [3, 2]).unwrap(),
            [(3, 3), (2, 2)]
        );
    }

    #[test]
    fn same_refuses_strides() {
        assert_eq!(
            Padding::Same.resolve([3, 3], [2, 1], [1, 1]),
            Err(ConvError::SameWithStride { stride: [2, 1] })
        );
    }

    #[test]
    fn config_round_trips_through_json() {
        let padding = Padding::Asymmetric {
            top: 1,
            bottom: 2,
            left: 3,
            right: 4,
        };
        let json = serde_json::to_string(&padding).unwrap();
        assert_eq!(serde_json::from_str::<Padding>(&json).unwrap(), padding);
    }
}
