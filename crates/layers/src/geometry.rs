//! What convolution and transposed convolution share: channels, kernel,
//! stride, dilation and groups, validated in one place.

use crate::error::ConvError;

/// The settings common to every convolution layer of this crate, validated.
///
/// A value of this type has passed [`ConvGeometry::new`]: every size is
/// positive and `groups` divides both channel counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeometry {
    in_channels: usize,
    out_channels: usize,
    kernel_size: [usize; 2],
    stride: [usize; 2],
    dilation: [usize; 2],
    groups: usize,
}

impl ConvGeometry {
    /// Validates the settings (PyTorch's rules, plus positive channel counts).
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel_size: [usize; 2],
        stride: [usize; 2],
        dilation: [usize; 2],
        groups: usize,
    ) -> Result<Self, ConvError> {
        crate::shape::check_positive(kernel_size, stride, dilation)?;
        if groups == 0 {
            return Err(ConvError::ZeroGroups);
        }
        for (which, channels) in [("in_channels", in_channels), ("out_channels", out_channels)] {
            if channels == 0 {
                return Err(ConvError::ZeroChannels { which });
            }
            if channels % groups != 0 {
                return Err(ConvError::ChannelsNotDivisible {
                    which,
                    channels,
                    groups,
                });
            }
        }
        Ok(Self {
            in_channels,
            out_channels,
            kernel_size,
            stride,
            dilation,
            groups,
        })
    }

    /// Input channels.
    pub fn in_channels(&self) -> usize {
        self.in_channels
    }

    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.out_channels
    }

    /// Kernel size `[height, width]`.
    pub fn kernel_size(&self) -> [usize; 2] {
        self.kernel_size
    }

    /// Stride `[height, width]`.
    pub fn stride(&self) -> [usize; 2] {
        self.stride
    }

    /// Dilation `[height, width]`.
    pub fn dilation(&self) -> [usize; 2] {
        self.dilation
    }

    /// Number of groups.
    pub fn groups(&self) -> usize {
        self.groups
    }

    /// Number of multiply-adds per output element: `in_channels / groups * kh * kw`.
    pub fn macs_per_output(&self) -> usize {
        self.in_channels / self.groups * self.kernel_size[0] * self.kernel_size[1]
    }

    /// Checks an input of shape `[batch, channels, height, width]` against the
    /// layer and returns its spatial size `[height, width]`.
    pub fn check_input(&self, shape: [usize; 4]) -> Result<[usize; 2], ConvError> {
        if shape[1] != self.in_channels {
            return Err(ConvError::InputChannels {
                expected: self.in_channels,
                got: shape[1],
                shape,
            });
        }
        if shape.contains(&0) {
            return Err(ConvError::EmptyInput { shape });
        }
        Ok([shape[2], shape[3]])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_must_divide_both_channel_counts() {
        let err = ConvGeometry::new(5, 4, [3, 3], [1, 1], [1, 1], 2).unwrap_err();
        assert_eq!(
            err.to_string(),
            "in_channels (5) must be divisible by groups (2)"
        );
        let err = ConvGeometry::new(8, 6, [3, 3], [1, 1], [1, 1], 4).unwrap_err();
        assert_eq!(
            err.to_string(),
            "out_channels (6) must be divisible by groups (4)"
        );
        assert!(ConvGeometry::new(8, 4, [3, 3], [1, 1], [1, 1], 4).is_ok());
    }

    #[test]
    fn input_channels_are_checked_first() {
        let geometry = ConvGeometry::new(3, 2, [3, 3], [1, 1], [1, 1], 1).unwrap();
        assert_eq!(
            geometry.check_input([1, 4, 6, 6]).unwrap_err().to_string(),
            "expected an input with 3 channels, got 4 (input shape [1, 4, 6, 6])"
        );
        assert_eq!(geometry.check_input([2, 3, 5, 7]), Ok([5, 7]));
    }
}
