//! The error type shared by every function of the module, and the checked
//! size arithmetic used to validate buffer lengths.

use thiserror::Error;

/// Everything that can go wrong with user-given sizes, buffers and parameters.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum InstanceError {
    /// A buffer does not hold `channels * height * width` elements.
    #[error("{what}: buffer has {actual} elements, expected {expected}")]
    LengthMismatch {
        /// Which argument is wrong.
        what: &'static str,
        /// The length implied by the given shape.
        expected: usize,
        /// The length of the buffer that was passed.
        actual: usize,
    },
    /// The product of the given dimensions does not fit in `usize`.
    #[error("shape {dims:?} overflows usize")]
    SizeOverflow {
        /// The dimensions whose product overflowed.
        dims: Vec<usize>,
    },
    /// A configuration value or threshold is outside its valid range.
    #[error("invalid parameter `{name}`: {reason}")]
    InvalidParameter {
        /// The parameter's name.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// More objects than a `u32` label can number.
    #[error("{count} objects do not fit in u32 labels")]
    TooManyLabels {
        /// How many objects there were.
        count: usize,
    },
}

/// Convenience alias used throughout the module.
pub type Result<T> = std::result::Result<T, InstanceError>;

/// Product of `dims` with overflow checking.
pub(crate) fn checked_len(dims: &[usize]) -> Result<usize> {
    dims.iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| InstanceError::SizeOverflow {
            dims: dims.to_vec(),
        })
}

/// Checks that a buffer of length `actual` has the shape `dims` and returns
/// the expected length.
pub(crate) fn expect_len(what: &'static str, actual: usize, dims: &[usize]) -> Result<usize> {
    let expected = checked_len(dims)?;
    if actual == expected {
        Ok(expected)
    } else {
        Err(InstanceError::LengthMismatch {
            what,
            expected,
            actual,
        })
    }
}

/// Builds an [`InstanceError::InvalidParameter`].
pub(crate) fn invalid(name: &'static str, reason: impl Into<String>) -> InstanceError {
    InstanceError::InvalidParameter {
        name,
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflow_is_an_error() {
        assert!(matches!(
            checked_len(&[usize::MAX, 2]),
            Err(InstanceError::SizeOverflow { .. })
        ));
        assert_eq!(checked_len(&[3, 4, 5]), Ok(60));
        assert_eq!(checked_len(&[]), Ok(1));
    }

    #[test]
    fn length_mismatch_is_reported() {
        assert_eq!(
            expect_len("x", 11, &[3, 4]),
            Err(InstanceError::LengthMismatch {
                what: "x",
                expected: 12,
                actual: 11
            })
        );
        assert_eq!(expect_len("x", 12, &[3, 4]), Ok(12));
    }
}
