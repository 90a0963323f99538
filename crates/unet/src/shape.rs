//! Which input sizes a U-Net accepts, and the output size it gives.

use crate::config::{UNetConfig, UNetPadding};
use crate::error::UNetError;

/// Pixels `Valid` 3x3 convolutions of `dilations` remove from a size
/// (`None` if the sum overflows).
fn valid_shrink(dilations: &[usize]) -> Option<usize> {
    dilations
        .iter()
        .try_fold(0usize, |sum, d| sum.checked_add(d.checked_mul(2)?))
}

/// The output size along one dimension for an input of `input` pixels, or
/// `None` when the input cannot pass the network.
///
/// `Same`: every positive size passes and the output has the input's size.
/// `Valid` (the paper's unpadded network): each standard block removes 4
/// pixels, the bottleneck `2 * sum(dilations)`; every max-pooling needs an even
/// size (so that the decoder meets its skip features centred), and every size
/// along the way must stay positive. With depth 4 and standard blocks, 572
/// gives 388, as in the paper.
///
/// ```
/// use unet::{UNetConfig, UNetPadding, valid_output_size};
/// let paper = UNetConfig::new(1, 2).with_padding(UNetPadding::Valid);
/// assert_eq!(valid_output_size(&paper, 572), Some(388));
/// assert_eq!(valid_output_size(&paper, 571), None);
/// ```
pub fn valid_output_size(config: &UNetConfig, input: usize) -> Option<usize> {
    if input == 0 {
        return None;
    }
    if config.padding == UNetPadding::Same {
        return Some(input);
    }
    let block = valid_shrink(&[1, 1])?;
    let mut encoder = vec![input.checked_sub(block).filter(|&s| s > 0)?];
    for level in 1..=config.depth {
        let above = *encoder.last()?;
        if above % 2 != 0 {
            return None;
        }
        let shrink = if level == config.depth {
            valid_shrink(&config.bottleneck_dilations)?
        } else {
            block
        };
        encoder.push((above / 2).checked_sub(shrink).filter(|&s| s > 0)?);
    }
    let mut size = encoder.pop()?;
    for skip in encoder.into_iter().rev() {
        size = size.checked_mul(2).filter(|&up| up <= skip)?;
        size = size.checked_sub(block).filter(|&s| s > 0)?;
    }
    Some(size)
}

/// Sizes of [`nearest_valid_input_sizes`] as words: `556 or 572`, `188
/// (none below)`, `556 (none above)`, `none`.
pub fn nearest_sizes_text([below, above]: [Option<usize>; 2]) -> String {
    match (below, above) {
        (Some(below), Some(above)) if below == above => below.to_string(),
        (Some(below), Some(above)) => format!("{below} or {above}"),
        (None, Some(above)) => format!("{above} (none below)"),
        (Some(below), None) => format!("{below} (none above)"),
        (None, None) => "none".into(),
    }
}

/// The nearest sizes at or below and above `input` that pass a `Valid`
/// network (`[below, above]`; `None` where there is none within 4096 pixels).
pub fn nearest_valid_input_sizes(config: &UNetConfig, input: usize) -> [Option<usize>; 2] {
    const SEARCH: usize = 4096;
    let below = (1..=input)
        .rev()
        .take(SEARCH)
        .find(|&s| valid_output_size(config, s).is_some());
    let above = (input.saturating_add(1)..)
        .take(SEARCH)
        .find(|&s| valid_output_size(config, s).is_some());
    [below, above]
}

/// The output's `[height, width]` for an input of `[height, width]`, or an
/// error naming the nearest valid sizes.
pub fn output_size(config: &UNetConfig, input: [usize; 2]) -> Result<[usize; 2], UNetError> {
    match input.map(|s| valid_output_size(config, s)) {
        [Some(h), Some(w)] => Ok([h, w]),
        _ => Err(UNetError::InvalidInputSize {
            size: input,
            depth: config.depth,
            height: nearest_valid_input_sizes(config, input[0]),
            width: nearest_valid_input_sizes(config, input[1]),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_papers_sizes() {
        let paper = UNetConfig::new(1, 2).with_padding(UNetPadding::Valid);
        // Ronneberger et al. 2015, figure 1: 572 -> 388.
        assert_eq!(valid_output_size(&paper, 572), Some(388));
        assert_eq!(
            nearest_valid_input_sizes(&paper, 570),
            [Some(556), Some(572)]
        );
        let err = output_size(&paper, [570, 572]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "input size [570, 572] cannot pass a valid-padding U-Net of depth 4; \
             nearest valid sizes: height 556 or 572, width 572 or 588"
        );
    }

    #[test]
    fn same_keeps_every_size() {
        let config = UNetConfig::new(3, 3).with_depth(3);
        assert_eq!(output_size(&config, [33, 7]).unwrap(), [33, 7]);
    }
}
