//! A layer-by-layer summary: output shapes, parameters and FLOPs.

use std::fmt;

use burn::module::Module;
use layers::{Conv2d, ConvGeometry};

use crate::blocks::{ConvBlock, UnitConv, Upsampler};
use crate::config::{Norm, UNetPadding};
use crate::error::UNetError;
use crate::model::UNet;

/// One row of a [`Summary`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerSummary {
    /// Parameter path of the layer (`downs.1.conv.units.0`), or a description.
    pub name: String,
    /// What the layer does.
    pub kind: String,
    /// Output shape `[batch, channels, height, width]`.
    pub output: [usize; 4],
    /// The normalisation the output goes through (`Norm::None` where none).
    pub norm: Norm,
    /// Parameters (trainable and running statistics excluded).
    pub params: usize,
    /// Floating-point operations of the forward pass (a multiply-add is two).
    pub flops: u64,
}

/// What [`summary`] returns; `Display` prints it as a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// The input shape summarised.
    pub input: [usize; 4],
    /// The layers in execution order.
    pub layers: Vec<LayerSummary>,
}

impl Summary {
    /// Total parameters.
    pub fn total_params(&self) -> usize {
        self.layers
            .iter()
            .fold(0, |n, l| n.saturating_add(l.params))
    }

    /// Total forward FLOPs.
    pub fn total_flops(&self) -> u64 {
        self.layers.iter().fold(0, |n, l| n.saturating_add(l.flops))
    }

    /// The output shape of the whole network.
    pub fn output(&self) -> [usize; 4] {
        self.layers.last().map_or(self.input, |l| l.output)
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name_width = self
            .layers
            .iter()
            .map(|l| l.name.len())
            .max()
            .unwrap_or(4)
            .max(5);
        let kind_width = self
            .layers
            .iter()
            .map(|l| l.kind.len())
            .max()
            .unwrap_or(4)
            .max(4);
        let rule = "-".repeat(name_width + kind_width + 52);
        writeln!(
            f,
            "{:<name_width$}  {:<kind_width$}  {:>22}  {:>10}  {:>12}",
            "layer", "kind", "output shape", "params", "MFLOPs"
        )?;
        writeln!(f, "{rule}")?;
        for layer in &self.layers {
            writeln!(
                f,
                "{:<name_width$}  {:<kind_width$}  {:>22}  {:>10}  {:>12.1}",
                layer.name,
                layer.kind,
                format!("{:?}", layer.output),
                layer.params,
                layer.flops as f64 / 1e6
            )?;
        }
        writeln!(f, "{rule}")?;
        writeln!(
            f,
            "input {:?} -> output {:?}: {} parameters, {:.1} MFLOPs",
            self.input,
            self.output(),
            self.total_params(),
            self.total_flops() as f64 / 1e6
        )
    }
}

/// FLOPs of a convolution producing `output` (saturating: the sizes a
/// summary is asked about can be any a user types).
fn conv_flops(geometry: &ConvGeometry, output: [usize; 4]) -> u64 {
    output
        .iter()
        .fold(2u64, |n, &d| n.saturating_mul(d as u64))
        .saturating_mul(geometry.macs_per_output() as u64)
}

fn dense(conv: &Conv2d, input: [usize; 4]) -> Result<([usize; 4], u64), UNetError> {
    let output = conv.output_shape(input)?;
    Ok((output, conv_flops(conv.geometry(), output)))
}

fn block_rows(
    prefix: &str,
    block: &ConvBlock,
    mut shape: [usize; 4],
    rows: &mut Vec<LayerSummary>,
) -> Result<[usize; 4], UNetError> {
    for (i, unit) in block.units.iter().enumerate() {
        let (output, flops, kind) = match &unit.conv {
            UnitConv::Dense(conv) => {
                let (output, flops) = dense(conv, shape)?;
                let g = conv.geometry();
                let [kh, kw] = g.kernel_size();
                let mut kind = format!("conv {kh}x{kw}");
                if g.dilation() != [1, 1] {
                    kind += &format!(" d{}", g.dilation()[0]);
                }
                if g.groups() > 1 {
                    kind += &format!(" g{}", g.groups());
                }
                (output, flops, kind)
            }
            UnitConv::Separable(conv) => {
                let (mid, dw) = dense(&conv.depthwise, shape)?;
                let (output, pw) = dense(&conv.pointwise, mid)?;
                let d = conv.depthwise.geometry().dilation()[0];
                let kind = if d == 1 {
                    "dw 3x3 + pw 1x1".to_string()
                } else {
                    format!("dw 3x3 d{d} + pw 1x1")
                };
                (output, dw + pw, kind)
            }
        };
        let (norm, norm_name) = match &unit.norm {
            Some(crate::blocks::NormLayer::Batch(_)) => (Norm::Batch, " + BN"),
            Some(crate::blocks::NormLayer::Group(g)) => (
                Norm::Group {
                    groups: g.num_groups,
                },
                " + GN",
            ),
            None => (Norm::None, ""),
        };
        rows.push(LayerSummary {
            name: format!("{prefix}.units.{i}"),
            kind: format!("{kind}{norm_name} + ReLU"),
            output,
            norm,
            params: unit.num_params()
                - match &unit.norm {
                    // Burn counts running statistics as parameters; PyTorch does not.
                    Some(crate::blocks::NormLayer::Batch(bn)) => 2 * bn.gamma.dims()[0],
                    _ => 0,
                },
            flops,
        });
        shape = output;
    }
    Ok(shape)
}

/// Summarises `model` for an input of shape `input`
/// (`[batch, in_channels, height, width]`). In `Same` mode the rows show the
/// shapes after padding to a multiple of `2^depth`, and a last row the crop.
///
/// ```
/// use burn::tensor::Device;
/// use unet::{UNetConfig, summary};
/// let model = UNetConfig::new(3, 3).with_base_width(8).with_depth(3).init(&Device::flex());
/// let table = summary(&model, [1, 3, 32, 48]).unwrap();
/// assert_eq!(table.total_params(), 121_195); // as PyTorch counts the reference
/// assert_eq!(table.output(), [1, 3, 32, 48]);
/// ```
pub fn summary(model: &UNet, input: [usize; 4]) -> Result<Summary, UNetError> {
    let final_shape = model.output_shape(input)?;
    let config = model.config();
    let mut rows = Vec::new();
    let mut shape = input;
    if config.padding == UNetPadding::Same {
        let multiple = 1 << config.depth;
        shape[2] = input[2].div_ceil(multiple) * multiple;
        shape[3] = input[3].div_ceil(multiple) * multiple;
        if shape != input {
            rows.push(LayerSummary {
                name: "pad".into(),
                kind: format!("zero pad to a multiple of {multiple}"),
                output: shape,
                norm: Norm::None,
                params: 0,
                flops: 0,
            });
        }
    }
    shape = block_rows("inc", &model.inc, shape, &mut rows)?;
    let mut skips = vec![shape];
    for (i, down) in model.downs.iter().enumerate() {
        let pooled = [shape[0], shape[1], shape[2] / 2, shape[3] / 2];
        rows.push(LayerSummary {
            name: format!("downs.{i}.pool"),
            kind: "max pool 2x2".into(),
            output: pooled,
            norm: Norm::None,
            params: 0,
            flops: 0,
        });
        shape = block_rows(&format!("downs.{i}.conv"), &down.conv, pooled, &mut rows)?;
        skips.push(shape);
    }
    skips.pop();
    for (i, up) in model.ups.iter().enumerate() {
        let (output, flops, kind) = match &up.up {
            Upsampler::Transposed(conv) => {
                let output = conv.output_shape(shape)?;
                let g = conv.geometry();
                let [kh, kw] = g.kernel_size();
                let [s, _] = g.stride();
                // Each input value is scattered through the whole kernel.
                (
                    output,
                    conv_flops(g, [shape[0], g.out_channels(), shape[2], shape[3]]),
                    format!("transposed conv {kh}x{kw} s{s}"),
                )
            }
            Upsampler::UpConv(conv) => {
                let output = conv.output_shape(shape)?;
                (
                    output,
                    conv_flops(conv.geometry(), output),
                    "zero insertion + conv 2x2".into(),
                )
            }
            Upsampler::Resize(conv) => {
                let resized = [shape[0], shape[1], 2 * shape[2], 2 * shape[3]];
                let (output, flops) = dense(conv, resized)?;
                (output, flops, "bilinear x2 + conv 3x3".into())
            }
        };
        rows.push(LayerSummary {
            name: format!("ups.{i}.up"),
            kind,
            output,
            norm: Norm::None,
            params: up.up.num_params(),
            flops,
        });
        let skip = skips.pop().expect("one skip per level");
        let joined = [output[0], skip[1] + output[1], output[2], output[3]];
        rows.push(LayerSummary {
            name: format!("ups.{i}.concat"),
            kind: if skip[2..] == output[2..] {
                "concat skip".into()
            } else {
                "crop + concat skip".into()
            },
            output: joined,
            norm: Norm::None,
            params: 0,
            flops: 0,
        });
        shape = block_rows(&format!("ups.{i}.conv"), &up.conv, joined, &mut rows)?;
    }
    let (output, flops) = dense(&model.outc, shape)?;
    rows.push(LayerSummary {
        name: "outc".into(),
        kind: "conv 1x1".into(),
        output,
        norm: Norm::None,
        params: model.outc.num_params(),
        flops,
    });
    if output != final_shape {
        rows.push(LayerSummary {
            name: "crop".into(),
            kind: "crop to the input size".into(),
            output: final_shape,
            norm: Norm::None,
            params: 0,
            flops: 0,
        });
    }
    Ok(Summary {
        input,
        layers: rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::UNetConfig;
    use burn::tensor::Device;

    #[test]
    fn counts_saturate_instead_of_overflowing() {
        let model = UNetConfig::new(1, 2)
            .with_base_width(16)
            .with_depth(2)
            .init(&Device::flex());
        // A batch no machine holds: the shapes are fine, the FLOPs past u64.
        let table = summary(&model, [1 << 40, 1, 64, 64]).unwrap();
        assert_eq!(table.total_flops(), u64::MAX);
        assert_eq!(table.output(), [1 << 40, 2, 64, 64]);
    }
}
