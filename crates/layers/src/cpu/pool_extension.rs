//! The Burn side of max pooling: the [`CpuPool`] backend extension, its
//! implementations for flex and ndarray, and its backward node under
//! autodiff, which keeps the input and finds each window's maximum again.
// `NdArray` is deprecated in Burn 0.22; users were promised it, so it stays.
#![allow(deprecated)]

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Flex, NdArray, TensorMetadata, backend_extension};

use super::extension::HostTensors;
use super::pool::{self, Windows};

/// Max pooling of `[n, c, h, w]` tensors over windows of `kernel` that do
/// not overlap (stride = kernel, no padding, floor).
#[backend_extension(Flex, NdArray, Autodiff)]
pub trait CpuPool: Backend {
    /// The maximum of each window: `[n, c, h / kh, w / kw]`.
    fn cpu_max_pool2d(x: FloatTensor<Self>, kernel: [usize; 2]) -> FloatTensor<Self>;

    /// The gradient with respect to `x` of [`CpuPool::cpu_max_pool2d`] for
    /// output gradient `grad`.
    fn cpu_max_pool2d_grad(
        x: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        kernel: [usize; 2],
    ) -> FloatTensor<Self>;
}

fn host_max_pool<B: HostTensors>(x: FloatTensor<B>, kernel: [usize; 2]) -> FloatTensor<B> {
    let [n, c, h, w] = x.shape().dims();
    let windows = Windows::of([n, c, h, w], kernel);
    let [oh, ow] = windows.output();
    let values = B::with_host(x.clone(), |x| pool::forward(x, windows));
    B::from_host(values, &[n, c, oh, ow], &x)
}

fn host_max_pool_grad<B: HostTensors>(
    x: FloatTensor<B>,
    grad: FloatTensor<B>,
    kernel: [usize; 2],
) -> FloatTensor<B> {
    let shape = x.shape().dims::<4>();
    let windows = Windows::of(shape, kernel);
    let values = B::with_host(x.clone(), |x| {
        B::with_host(grad, |grad| pool::input_grad(x, grad, windows))
    });
    B::from_host(values, &shape, &x)
}

macro_rules! host_cpu_pool {
    ($backend:ty) => {
        impl CpuPool for $backend {
            fn cpu_max_pool2d(x: FloatTensor<Self>, kernel: [usize; 2]) -> FloatTensor<Self> {
                host_max_pool::<Self>(x, kernel)
            }

            fn cpu_max_pool2d_grad(
                x: FloatTensor<Self>,
                grad: FloatTensor<Self>,
                kernel: [usize; 2],
            ) -> FloatTensor<Self> {
                host_max_pool_grad::<Self>(x, grad, kernel)
            }
        }
    };
}

host_cpu_pool!(Flex);
host_cpu_pool!(NdArray);

/// The backward node of [`CpuPool::cpu_max_pool2d`].
#[derive(Debug)]
struct MaxPoolBackward {
    kernel: [usize; 2],
}

impl<B: Backend + CpuPool> Backward<B, 1> for MaxPoolBackward {
    /// The input.
    type State = NodeId;

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_x] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        if let Some(node) = node_x {
            let x = checkpointer.retrieve_node_output::<FloatTensor<B>>(ops.state);
            grads.register::<B>(node.id, B::cpu_max_pool2d_grad(x, grad, self.kernel));
        }
    }
}

impl<B: Backend + CpuPool, C: CheckpointStrategy> CpuPool for Autodiff<B, C> {
    fn cpu_max_pool2d(x: FloatTensor<Self>, kernel: [usize; 2]) -> FloatTensor<Self> {
        match (MaxPoolBackward { kernel })
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let x_state = prep.checkpoint(&x);
                prep.finish(x_state, B::cpu_max_pool2d(x.into_primitive(), kernel))
            }
            OpsKind::UnTracked(prep) => prep.finish(B::cpu_max_pool2d(x.into_primitive(), kernel)),
        }
    }

    fn cpu_max_pool2d_grad(
        _x: FloatTensor<Self>,
        _grad: FloatTensor<Self>,
        _kernel: [usize; 2],
    ) -> FloatTensor<Self> {
        unreachable!("a gradient kernel runs on the inner backend, inside a backward node")
    }
}
