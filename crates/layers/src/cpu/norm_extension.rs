//! The Burn side of the batch-norm passes: the [`CpuNorm`] backend
//! extension, its implementations for flex and ndarray, and its backward
//! nodes under autodiff. Batch norm is composed of two of its operations
//! (per-channel statistics, a per-channel affine map) and a few `[channels]`
//! tensor operations, so autodiff differentiates it exactly, with two
//! passes over the activations forward and three backward.
// `NdArray` is deprecated in Burn 0.22; users were promised it, so it stays.
#![allow(deprecated)]

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Flex, NdArray, TensorMetadata, backend_extension};
use burn::tensor::{Shape, Slice};

use super::extension::HostTensors;
use super::norm;

/// Per-channel operations of batch norm on `[n, c, h, w]` tensors.
#[backend_extension(Flex, NdArray, Autodiff)]
pub trait CpuNorm: Backend {
    /// Each channel's mean and biased variance: `[2, c]`.
    fn cpu_channel_stats(x: FloatTensor<Self>) -> FloatTensor<Self>;

    /// The gradient with respect to `x` of [`CpuNorm::cpu_channel_stats`].
    fn cpu_channel_stats_grad(
        x: FloatTensor<Self>,
        stats: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self>;

    /// `x * scale[c] + shift[c]`, with `scale` and `shift` of shape `[c]`,
    /// then ReLU if `relu`.
    fn cpu_channel_affine(
        x: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        shift: FloatTensor<Self>,
        relu: bool,
    ) -> FloatTensor<Self>;

    /// The gradients of [`CpuNorm::cpu_channel_affine`] for output gradient
    /// `dy`: that of `x`, and `[2, c]`, those of `scale` and `shift`.
    fn cpu_channel_affine_grads(
        dy: FloatTensor<Self>,
        x: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        shift: FloatTensor<Self>,
        relu: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);
}

/// The planes of a `[n, c, h, w]` tensor.
fn planes<B: Backend>(x: &FloatTensor<B>) -> norm::Planes {
    norm::Planes::of(x.shape().dims())
}

fn host_stats<B: HostTensors>(x: FloatTensor<B>) -> FloatTensor<B> {
    let p = planes::<B>(&x);
    let values = B::with_host(x.clone(), |values| norm::channel_stats(values, p));
    B::from_host(values, &[2, p.channels], &x)
}

fn host_stats_grad<B: HostTensors>(
    x: FloatTensor<B>,
    stats: FloatTensor<B>,
    grad: FloatTensor<B>,
) -> FloatTensor<B> {
    let p = planes::<B>(&x);
    let shape = x.shape().dims::<4>();
    let values = B::with_host(x.clone(), |values| {
        B::with_host(stats, |stats| {
            B::with_host(grad, |grad| {
                norm::channel_stats_grad(values, stats, grad, p)
            })
        })
    });
    B::from_host(values, &shape, &x)
}

fn host_affine<B: HostTensors>(
    x: FloatTensor<B>,
    scale: FloatTensor<B>,
    shift: FloatTensor<B>,
    relu: bool,
) -> FloatTensor<B> {
    let p = planes::<B>(&x);
    let shape = x.shape().dims::<4>();
    let values = B::with_host(x.clone(), |values| {
        B::with_host(scale, |scale| {
            B::with_host(shift, |shift| {
                norm::Affine { scale, shift, relu }.apply(values, p)
            })
        })
    });
    B::from_host(values, &shape, &x)
}

fn host_affine_grads<B: HostTensors>(
    dy: FloatTensor<B>,
    x: FloatTensor<B>,
    scale: FloatTensor<B>,
    shift: FloatTensor<B>,
    relu: bool,
) -> (FloatTensor<B>, FloatTensor<B>) {
    let p = planes::<B>(&x);
    let shape = x.shape().dims::<4>();
    let (dx, sums) = B::with_host(dy, |dy| {
        B::with_host(x.clone(), |values| {
            B::with_host(scale, |scale| {
                B::with_host(shift, |shift| {
                    norm::Affine { scale, shift, relu }.grads(dy, values, p)
                })
            })
        })
    });
    (
        B::from_host(dx, &shape, &x),
        B::from_host(sums, &[2, p.channels], &x),
    )
}

macro_rules! host_cpu_norm {
    ($backend:ty) => {
        impl CpuNorm for $backend {
            fn cpu_channel_stats(x: FloatTensor<Self>) -> FloatTensor<Self> {
                host_stats::<Self>(x)
            }

            fn cpu_channel_stats_grad(
                x: FloatTensor<Self>,
                stats: FloatTensor<Self>,
                grad: FloatTensor<Self>,
            ) -> FloatTensor<Self> {
                host_stats_grad::<Self>(x, stats, grad)
            }

            fn cpu_channel_affine(
                x: FloatTensor<Self>,
                scale: FloatTensor<Self>,
                shift: FloatTensor<Self>,
                relu: bool,
            ) -> FloatTensor<Self> {
                host_affine::<Self>(x, scale, shift, relu)
            }

            fn cpu_channel_affine_grads(
                dy: FloatTensor<Self>,
                x: FloatTensor<Self>,
                scale: FloatTensor<Self>,
                shift: FloatTensor<Self>,
                relu: bool,
            ) -> (FloatTensor<Self>, FloatTensor<Self>) {
                host_affine_grads::<Self>(dy, x, scale, shift, relu)
            }
        }
    };
}

host_cpu_norm!(Flex);
host_cpu_norm!(NdArray);

/// The backward node of [`CpuNorm::cpu_channel_stats`].
#[derive(Debug)]
struct StatsBackward;

impl<B: Backend + CpuNorm> Backward<B, 1> for StatsBackward {
    /// The input, and the statistics computed.
    type State = (NodeId, FloatTensor<B>);

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_x] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (x_state, stats) = ops.state;
        if let Some(node) = node_x {
            let x = checkpointer.retrieve_node_output::<FloatTensor<B>>(x_state);
            grads.register::<B>(node.id, B::cpu_channel_stats_grad(x, stats, grad));
        }
    }
}

/// The backward node of [`CpuNorm::cpu_channel_affine`]: with `g` the output
/// gradient (masked by ReLU's, if `relu`), `dx = g * scale`,
/// `dscale = sum(g * x)`, `dshift = sum(g)`, per channel, in one pass.
#[derive(Debug)]
struct AffineBackward {
    relu: bool,
}

impl<B: Backend + CpuNorm> Backward<B, 3> for AffineBackward {
    /// The input, the scale and the shift.
    type State = (NodeId, NodeId, NodeId);

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_scale, node_shift] = ops.parents;
        let dy = grads.consume::<B>(&ops.node);
        let (x_state, scale_state, shift_state) = ops.state;
        let x = checkpointer.retrieve_node_output::<FloatTensor<B>>(x_state);
        let scale = checkpointer.retrieve_node_output::<FloatTensor<B>>(scale_state);
        let shift = checkpointer.retrieve_node_output::<FloatTensor<B>>(shift_state);
        let channels = scale.shape().dims::<1>()[0];
        let (dx, sums) = B::cpu_channel_affine_grads(dy, x, scale, shift, self.relu);
        let row = |i: usize| {
            let part = B::float_slice(
                sums.clone(),
                &[Slice::from(i..i + 1), Slice::from(0..channels)],
            );
            B::float_reshape(part, Shape::new([channels]))
        };
        if let Some(node) = node_scale {
            grads.register::<B>(node.id, row(0));
        }
        if let Some(node) = node_shift {
            grads.register::<B>(node.id, row(1));
        }
        if let Some(node) = node_x {
            grads.register::<B>(node.id, dx);
        }
    }
}

impl<B: Backend + CpuNorm, C: CheckpointStrategy> CpuNorm for Autodiff<B, C> {
    fn cpu_channel_stats(x: FloatTensor<Self>) -> FloatTensor<Self> {
        match StatsBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let x_state = prep.checkpoint(&x);
                let stats = B::cpu_channel_stats(x.into_primitive());
                prep.finish((x_state, stats.clone()), stats)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::cpu_channel_stats(x.into_primitive())),
        }
    }

    fn cpu_channel_stats_grad(
        _x: FloatTensor<Self>,
        _stats: FloatTensor<Self>,
        _grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        unreachable!("a gradient kernel runs on the inner backend, inside a backward node")
    }

    fn cpu_channel_affine(
        x: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        shift: FloatTensor<Self>,
        relu: bool,
    ) -> FloatTensor<Self> {
        match (AffineBackward { relu })
            .prepare::<C>([x.node(), scale.node(), shift.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let state = (
                    prep.checkpoint(&x),
                    prep.checkpoint(&scale),
                    prep.checkpoint(&shift),
                );
                let y = B::cpu_channel_affine(
                    x.into_primitive(),
                    scale.into_primitive(),
                    shift.into_primitive(),
                    relu,
                );
                prep.finish(state, y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::cpu_channel_affine(
                x.into_primitive(),
                scale.into_primitive(),
                shift.into_primitive(),
                relu,
            )),
        }
    }

    fn cpu_channel_affine_grads(
        _dy: FloatTensor<Self>,
        _x: FloatTensor<Self>,
        _scale: FloatTensor<Self>,
        _shift: FloatTensor<Self>,
        _relu: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        unreachable!("a gradient kernel runs on the inner backend, inside a backward node")
    }
}
