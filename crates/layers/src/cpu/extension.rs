//! The Burn side of the CPU kernels: the [`CpuConv`] backend extension, its
//! implementations for flex and ndarray, and its backward node under autodiff.
// `NdArray` is deprecated in Burn 0.22; users were promised it, so it stays.
#![allow(deprecated)]

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::ndarray::NdArrayTensor;
use burn::backend::ops::FloatTensorOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Flex, NdArray, TensorMetadata, backend_extension};
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};
use burn::tensor::{DType, TensorData};

use super::{conv_shape, transposed_shape};

/// A convolution whose forward and backward passes a backend may implement
/// itself. The defaults are Burn's own kernels.
#[backend_extension(Flex, NdArray, Autodiff)]
pub trait CpuConv: Backend {
    /// The convolution of `x` with `weight`, without bias.
    fn cpu_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        Self::conv2d(x, weight, None, options)
    }

    /// The transposed convolution of `x` (`[n, c_in, h, w]`) with `weight`
    /// (`[c_in, c_out / groups, kh, kw]`), without padding or bias: the
    /// adjoint of the convolution `options` describes (stride, dilation,
    /// groups; no padding). Output `[n, c_out, (h - 1) * s + d * (kh - 1) + 1, ..]`.
    fn cpu_conv_transpose2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        Self::conv_transpose2d(x, weight, None, adjoint_options(&options))
    }

    /// The gradient of [`CpuConv::cpu_conv2d`] with respect to `x`.
    fn cpu_conv2d_input_grad(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        Self::conv2d_x_backward(x, weight, output_grad, options)
    }

    /// The gradient of [`CpuConv::cpu_conv2d`] with respect to `weight`.
    fn cpu_conv2d_weight_grad(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        Self::conv2d_weight_backward(x, weight, output_grad, options)
    }
}

/// How a CPU backend lends its `f32` tensors to the kernels and takes results back.
pub(super) trait HostTensors: Backend {
    /// Runs `f` on the values of `tensor`, row-major (without a copy where the
    /// backend's storage already is that).
    fn with_host<R>(tensor: FloatTensor<Self>, f: impl FnOnce(&[f32]) -> R) -> R;

    /// A tensor of `shape` holding `values`, on the device of `like`.
    fn from_host(values: Vec<f32>, shape: &[usize], like: &FloatTensor<Self>) -> FloatTensor<Self>;
}

impl HostTensors for Flex {
    fn with_host<R>(tensor: FloatTensor<Self>, f: impl FnOnce(&[f32]) -> R) -> R {
        let tensor = tensor.to_contiguous();
        match tensor.as_slice::<f32>() {
            Some(values) => f(values),
            None => f(&tensor
                .into_data()
                .try_into_vec::<f32>()
                .expect("an f32 tensor")),
        }
    }

    fn from_host(values: Vec<f32>, shape: &[usize], _: &FloatTensor<Self>) -> FloatTensor<Self> {
        FloatTensor::<Self>::from_data(TensorData::new(values, shape.to_vec()))
    }
}

impl HostTensors for NdArray {
    fn with_host<R>(tensor: FloatTensor<Self>, f: impl FnOnce(&[f32]) -> R) -> R {
        match &tensor {
            NdArrayTensor::F32(storage) => {
                let view = storage.view();
                match view.as_slice() {
                    Some(values) => f(values),
                    None => f(view
                        .as_standard_layout()
                        .as_slice()
                        .expect("a standard-layout array")),
                }
            }
            _ => unreachable!("the kernels run on f32 tensors only"),
        }
    }

    fn from_host(values: Vec<f32>, shape: &[usize], like: &FloatTensor<Self>) -> FloatTensor<Self> {
        Self::float_from_data(TensorData::new(values, shape.to_vec()), &like.device())
    }
}

/// Runs `kernel` on the values of `a` and `b` and hands its result back,
/// shaped `dims`, on the device of `like`.
fn on_host<B: HostTensors>(
    a: FloatTensor<B>,
    b: FloatTensor<B>,
    like: &FloatTensor<B>,
    dims: [usize; 4],
    kernel: impl FnOnce(&[f32], &[f32]) -> Vec<f32>,
) -> FloatTensor<B> {
    let values = B::with_host(a, |a| B::with_host(b, |b| kernel(a, b)));
    B::from_host(values, &dims, like)
}

pub(super) fn is_f32<B: Backend>(a: &FloatTensor<B>, b: &FloatTensor<B>) -> bool {
    a.dtype() == DType::F32 && b.dtype() == DType::F32
}

/// Burn's options for the transposed convolution that is the adjoint of
/// the unpadded convolution `options` describes.
fn adjoint_options(options: &ConvOptions<2>) -> ConvTransposeOptions<2> {
    ConvTransposeOptions::new(
        options.stride,
        [0, 0],
        [0, 0],
        options.dilation,
        options.groups,
    )
}

/// The kernels for a host backend, falling back to Burn's for other dtypes.
fn host_conv2d<B: HostTensors>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    options: ConvOptions<2>,
) -> FloatTensor<B> {
    if !is_f32::<B>(&x, &weight) {
        return B::conv2d(x, weight, None, options);
    }
    let shape = conv_shape(&x.shape(), &weight.shape(), &options);
    on_host::<B>(x.clone(), weight, &x, shape.output_dims(), |x, w| {
        super::forward(&shape, x, w)
    })
}

fn host_input_grad<B: HostTensors>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    output_grad: FloatTensor<B>,
    options: ConvOptions<2>,
) -> FloatTensor<B> {
    if !is_f32::<B>(&x, &weight) {
        return B::conv2d_x_backward(x, weight, output_grad, options);
    }
    let shape = conv_shape(&x.shape(), &weight.shape(), &options);
    on_host::<B>(output_grad, weight, &x, shape.input_dims(), |dy, w| {
        super::input_grad(&shape, dy, w)
    })
}

fn host_weight_grad<B: HostTensors>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    output_grad: FloatTensor<B>,
    options: ConvOptions<2>,
) -> FloatTensor<B> {
    if !is_f32::<B>(&x, &weight) {
        return B::conv2d_weight_backward(x, weight, output_grad, options);
    }
    let shape = conv_shape(&x.shape(), &weight.shape(), &options);
    on_host::<B>(
        x.clone(),
        output_grad,
        &x,
        weight.shape().dims(),
        |x, dy| super::weight_grad(&shape, x, dy),
    )
}

fn host_conv_transpose2d<B: HostTensors>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    options: ConvOptions<2>,
) -> FloatTensor<B> {
    if !is_f32::<B>(&x, &weight) {
        return B::conv_transpose2d(x, weight, None, adjoint_options(&options));
    }
    let shape = transposed_shape(&x.shape(), &weight.shape(), &options);
    on_host::<B>(x.clone(), weight, &x, shape.input_dims(), |x, w| {
        super::input_grad(&shape, x, w)
    })
}

macro_rules! host_cpu_conv {
    ($backend:ty) => {
        impl CpuConv for $backend {
            fn cpu_conv2d(
                x: FloatTensor<Self>,
                weight: FloatTensor<Self>,
                options: ConvOptions<2>,
            ) -> FloatTensor<Self> {
                host_conv2d::<Self>(x, weight, options)
            }

            fn cpu_conv_transpose2d(
                x: FloatTensor<Self>,
                weight: FloatTensor<Self>,
                options: ConvOptions<2>,
            ) -> FloatTensor<Self> {
                host_conv_transpose2d::<Self>(x, weight, options)
            }

            fn cpu_conv2d_input_grad(
                x: FloatTensor<Self>,
                weight: FloatTensor<Self>,
                output_grad: FloatTensor<Self>,
                options: ConvOptions<2>,
            ) -> FloatTensor<Self> {
                host_input_grad::<Self>(x, weight, output_grad, options)
            }

            fn cpu_conv2d_weight_grad(
                x: FloatTensor<Self>,
                weight: FloatTensor<Self>,
                output_grad: FloatTensor<Self>,
                options: ConvOptions<2>,
            ) -> FloatTensor<Self> {
                host_weight_grad::<Self>(x, weight, output_grad, options)
            }
        }
    };
}

host_cpu_conv!(Flex);
host_cpu_conv!(NdArray);

/// Which operation an autodiff node records: both are the same three
/// kernels, with the roles of input and output exchanged.
#[derive(Debug, Clone, Copy)]
enum Recorded {
    /// [`CpuConv::cpu_conv2d`].
    Conv,
    /// [`CpuConv::cpu_conv_transpose2d`], the adjoint of the convolution `C`
    /// its options describe: its input gradient is `C` applied to the output
    /// gradient, its weight gradient `C`'s weight gradient with input and
    /// output exchanged.
    Transposed,
}

impl Recorded {
    fn forward<B: CpuConv>(
        self,
        x: FloatTensor<B>,
        weight: FloatTensor<B>,
        options: ConvOptions<2>,
    ) -> FloatTensor<B> {
        match self {
            Recorded::Conv => B::cpu_conv2d(x, weight, options),
            Recorded::Transposed => B::cpu_conv_transpose2d(x, weight, options),
        }
    }

    /// `(input gradient, weight gradient)`, each computed only when asked for.
    fn backward<B: CpuConv>(
        self,
        x: FloatTensor<B>,
        weight: FloatTensor<B>,
        grad: FloatTensor<B>,
        options: ConvOptions<2>,
        [want_x, want_weight]: [bool; 2],
    ) -> [Option<FloatTensor<B>>; 2] {
        let dx = want_x.then(|| match self {
            Recorded::Conv => {
                B::cpu_conv2d_input_grad(x.clone(), weight.clone(), grad.clone(), options.clone())
            }
            Recorded::Transposed => B::cpu_conv2d(grad.clone(), weight.clone(), options.clone()),
        });
        let dw = want_weight.then(|| match self {
            Recorded::Conv => B::cpu_conv2d_weight_grad(x, weight, grad, options),
            Recorded::Transposed => B::cpu_conv2d_weight_grad(grad, weight, x, options),
        });
        [dx, dw]
    }
}

/// The backward node of a [`Recorded`] operation under autodiff.
#[derive(Debug)]
struct CpuConvBackward(Recorded);

impl<B: Backend + CpuConv> Backward<B, 2> for CpuConvBackward {
    type State = (NodeId, NodeId, ConvOptions<2>);

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_weight] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (x_state, weight_state, options) = ops.state;
        let x = checkpointer.retrieve_node_output::<FloatTensor<B>>(x_state);
        let weight = checkpointer.retrieve_node_output::<FloatTensor<B>>(weight_state);
        let wanted = [node_x.is_some(), node_weight.is_some()];
        let [dx, dw] = self.0.backward::<B>(x, weight, grad, options, wanted);
        for (node, grad) in [(node_x, dx), (node_weight, dw)] {
            if let (Some(node), Some(grad)) = (node, grad) {
                grads.register::<B>(node.id, grad);
            }
        }
    }
}

/// Runs `op` on the inner backend and, when gradients are tracked, records
/// its backward node.
fn record<B: Backend + CpuConv, C: CheckpointStrategy>(
    op: Recorded,
    x: FloatTensor<Autodiff<B, C>>,
    weight: FloatTensor<Autodiff<B, C>>,
    options: ConvOptions<2>,
) -> FloatTensor<Autodiff<B, C>> {
    match CpuConvBackward(op)
        .prepare::<C>([x.node(), weight.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(mut prep) => {
            let x_state = prep.checkpoint(&x);
            let weight_state = prep.checkpoint(&weight);
            let y = op.forward::<B>(x.into_primitive(), weight.into_primitive(), options.clone());
            prep.finish((x_state, weight_state, options), y)
        }
        OpsKind::UnTracked(prep) => {
            prep.finish(op.forward::<B>(x.into_primitive(), weight.into_primitive(), options))
        }
    }
}

impl<B: Backend + CpuConv, C: CheckpointStrategy> CpuConv for Autodiff<B, C> {
    fn cpu_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        record::<B, C>(Recorded::Conv, x, weight, options)
    }

    fn cpu_conv_transpose2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        record::<B, C>(Recorded::Transposed, x, weight, options)
    }
}
