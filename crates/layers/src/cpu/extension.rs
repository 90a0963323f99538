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
        let options = ConvTransposeOptions::new(
            options.stride,
            [0, 0],
            [0, 0],
            options.dilation,
            options.groups,
        );
        Self::conv_transpose2d(x, weight, None, options)
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
trait HostTensors: Backend {
    /// Runs `f` on the values of `tensor`, row-major (without a copy where the
    /// backend's storage already is that).
    fn with_host<R>(tensor: FloatTensor<Self>, f: impl FnOnce(&[f32]) -> R) -> R;

    fn from_host(
        values: Vec<f32>,
        shape: [usize; 4],
        like: &FloatTensor<Self>,
    ) -> FloatTensor<Self>;
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

    fn from_host(values: Vec<f32>, shape: [usize; 4], _: &FloatTensor<Self>) -> FloatTensor<Self> {
        FloatTensor::<Self>::from_data(TensorData::new(values, shape))
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

    fn from_host(
        values: Vec<f32>,
        shape: [usize; 4],
        like: &FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        Self::float_from_data(TensorData::new(values, shape), &like.device())
    }
}

/// Runs `f` on the values of two tensors.
fn with_host2<B: HostTensors, R>(
    a: FloatTensor<B>,
    b: FloatTensor<B>,
    f: impl FnOnce(&[f32], &[f32]) -> R,
) -> R {
    B::with_host(a, |a| B::with_host(b, |b| f(a, b)))
}

fn is_f32<B: Backend>(a: &FloatTensor<B>, b: &FloatTensor<B>) -> bool {
    a.dtype() == DType::F32 && b.dtype() == DType::F32
}

/// The three kernels for a host backend, falling back to Burn's for other dtypes.
fn host_conv2d<B: HostTensors>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    options: ConvOptions<2>,
) -> FloatTensor<B> {
    if !is_f32::<B>(&x, &weight) {
        return B::conv2d(x, weight, None, options);
    }
    let shape = conv_shape(&x.shape(), &weight.shape(), &options);
    let y = with_host2::<B, _>(x.clone(), weight, |x, w| super::forward(&shape, x, w));
    let dims = [
        shape.batch,
        shape.out_channels,
        shape.output[0],
        shape.output[1],
    ];
    B::from_host(y, dims, &x)
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
    let dx = with_host2::<B, _>(output_grad, weight, |dy, w| {
        super::input_grad(&shape, dy, w)
    });
    let dims = [
        shape.batch,
        shape.in_channels,
        shape.input[0],
        shape.input[1],
    ];
    B::from_host(dx, dims, &x)
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
    let dw = with_host2::<B, _>(x.clone(), output_grad, |x, dy| {
        super::weight_grad(&shape, x, dy)
    });
    B::from_host(dw, weight.shape().dims(), &x)
}

fn host_conv_transpose2d<B: HostTensors>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    options: ConvOptions<2>,
) -> FloatTensor<B> {
    if !is_f32::<B>(&x, &weight) {
        return B::conv_transpose2d(
            x,
            weight,
            None,
            ConvTransposeOptions::new(
                options.stride,
                [0, 0],
                [0, 0],
                options.dilation,
                options.groups,
            ),
        );
    }
    let shape = transposed_shape(&x.shape(), &weight.shape(), &options);
    let y = with_host2::<B, _>(x.clone(), weight, |x, w| super::input_grad(&shape, x, w));
    let dims = [
        shape.batch,
        shape.in_channels,
        shape.input[0],
        shape.input[1],
    ];
    B::from_host(y, dims, &x)
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

/// The backward node of [`CpuConv::cpu_conv2d`] under autodiff.
#[derive(Debug)]
struct CpuConvBackward;

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
        if let Some(node) = node_x {
            let dx =
                B::cpu_conv2d_input_grad(x.clone(), weight.clone(), grad.clone(), options.clone());
            grads.register::<B>(node.id, dx);
        }
        if let Some(node) = node_weight {
            let dw = B::cpu_conv2d_weight_grad(x, weight, grad, options);
            grads.register::<B>(node.id, dw);
        }
    }
}

/// The backward node of [`CpuConv::cpu_conv_transpose2d`] under autodiff:
/// with `C` the convolution it is the adjoint of, the input gradient is `C`
/// applied to the output gradient, and the weight gradient is `C`'s weight
/// gradient with the roles of input and output exchanged.
#[derive(Debug)]
struct CpuConvTransposeBackward;

impl<B: Backend + CpuConv> Backward<B, 2> for CpuConvTransposeBackward {
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
        if let Some(node) = node_x {
            let dx = B::cpu_conv2d(grad.clone(), weight.clone(), options.clone());
            grads.register::<B>(node.id, dx);
        }
        if let Some(node) = node_weight {
            let dw = B::cpu_conv2d_weight_grad(grad, weight, x, options);
            grads.register::<B>(node.id, dw);
        }
    }
}

impl<B: Backend + CpuConv, C: CheckpointStrategy> CpuConv for Autodiff<B, C> {
    fn cpu_conv_transpose2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        match CpuConvTransposeBackward
            .prepare::<C>([x.node(), weight.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let x_state = prep.checkpoint(&x);
                let weight_state = prep.checkpoint(&weight);
                let y = B::cpu_conv_transpose2d(
                    x.into_primitive(),
                    weight.into_primitive(),
                    options.clone(),
                );
                prep.finish((x_state, weight_state, options), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::cpu_conv_transpose2d(
                x.into_primitive(),
                weight.into_primitive(),
                options,
            )),
        }
    }

    fn cpu_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        match CpuConvBackward
            .prepare::<C>([x.node(), weight.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let x_state = prep.checkpoint(&x);
                let weight_state = prep.checkpoint(&weight);
                let y = B::cpu_conv2d(x.into_primitive(), weight.into_primitive(), options.clone());
                prep.finish((x_state, weight_state, options), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::cpu_conv2d(
                x.into_primitive(),
                weight.into_primitive(),
                options,
            )),
        }
    }
}
