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

    /// `x * scale[c] + shift[c]`, with `scale` and `shift` of shape `[c]`.
    fn cpu_channel_affine(
        x: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        shift: FloatTensor<Self>,
    ) -> FloatTensor<Self>;

    /// `[2, c]`: per channel `sum(dy * x)` and `sum(dy)`.
    fn cpu_channel_sums(dy: FloatTensor<Self>, x: FloatTensor<Self>) -> FloatTensor<Self>;
}

/// `[n, c, h * w]` of a `[n, c, h, w]` tensor.
fn dims<B: Backend>(x: &FloatTensor<B>) -> norm::Dims {
    let [n, c, h, w] = x.shape().dims();
    [n, c, h * w]
}

fn host_stats<B: HostTensors>(x: FloatTensor<B>) -> FloatTensor<B> {
    let d = dims::<B>(&x);
    let values = B::with_host(x.clone(), |values| norm::channel_stats(values, d));
    B::from_host(values, &[2, d[1]], &x)
}

fn host_stats_grad<B: HostTensors>(
    x: FloatTensor<B>,
    stats: FloatTensor<B>,
    grad: FloatTensor<B>,
) -> FloatTensor<B> {
    let d = dims::<B>(&x);
    let shape = x.shape().dims::<4>();
    let values = B::with_host(x.clone(), |values| {
        B::with_host(stats, |stats| {
            B::with_host(grad, |grad| {
                norm::channel_stats_grad(values, stats, grad, d)
            })
        })
    });
    B::from_host(values, &shape, &x)
}

fn host_affine<B: HostTensors>(
    x: FloatTensor<B>,
    scale: FloatTensor<B>,
    shift: FloatTensor<B>,
) -> FloatTensor<B> {
    let d = dims::<B>(&x);
    let shape = x.shape().dims::<4>();
    let values = B::with_host(x.clone(), |values| {
        B::with_host(scale, |scale| {
            B::with_host(shift, |shift| norm::channel_affine(values, scale, shift, d))
        })
    });
    B::from_host(values, &shape, &x)
}

fn host_sums<B: HostTensors>(dy: FloatTensor<B>, x: FloatTensor<B>) -> FloatTensor<B> {
    let d = dims::<B>(&x);
    let values = B::with_host(dy, |dy| {
        B::with_host(x.clone(), |x| norm::channel_sums(dy, x, d))
    });
    B::from_host(values, &[2, d[1]], &x)
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
            ) -> FloatTensor<Self> {
                host_affine::<Self>(x, scale, shift)
            }

            fn cpu_channel_sums(dy: FloatTensor<Self>, x: FloatTensor<Self>) -> FloatTensor<Self> {
                host_sums::<Self>(dy, x)
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

/// The backward node of [`CpuNorm::cpu_channel_affine`]: `dx = dy * scale`,
/// `dscale = sum(dy * x)`, `dshift = sum(dy)`, per channel.
#[derive(Debug)]
struct AffineBackward;

impl<B: Backend + CpuNorm> Backward<B, 3> for AffineBackward {
    /// The input and the scale.
    type State = (NodeId, NodeId);

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_scale, node_shift] = ops.parents;
        let dy = grads.consume::<B>(&ops.node);
        let (x_state, scale_state) = ops.state;
        let x = checkpointer.retrieve_node_output::<FloatTensor<B>>(x_state);
        let scale = checkpointer.retrieve_node_output::<FloatTensor<B>>(scale_state);
        if node_scale.is_some() || node_shift.is_some() {
            let sums = B::cpu_channel_sums(dy.clone(), x.clone());
            let channels = scale.shape().dims::<1>()[0];
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
        }
        if let Some(node) = node_x {
            let zeros = B::float_zeros(scale.shape(), &scale.device(), scale.dtype().into());
            grads.register::<B>(node.id, B::cpu_channel_affine(dy, scale, zeros));
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
    ) -> FloatTensor<Self> {
        match AffineBackward
            .prepare::<C>([x.node(), scale.node(), shift.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let x_state = prep.checkpoint(&x);
                let scale_state = prep.checkpoint(&scale);
                let y = B::cpu_channel_affine(
                    x.into_primitive(),
                    scale.into_primitive(),
                    shift.into_primitive(),
                );
                prep.finish((x_state, scale_state), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::cpu_channel_affine(
                x.into_primitive(),
                scale.into_primitive(),
                shift.into_primitive(),
            )),
        }
    }

    fn cpu_channel_sums(_dy: FloatTensor<Self>, _x: FloatTensor<Self>) -> FloatTensor<Self> {
        unreachable!("a gradient kernel runs on the inner backend, inside a backward node")
    }
}
