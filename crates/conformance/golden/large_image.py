"""Reference for a half-precision convolution whose patches (the input
repeated once per kernel tap) pass the 128 MiB a GPU may bind at once
(`large_image.json`): a 3x3 convolution of 32 channels at 512x512, whose
patches take 151 MB in f16. Inputs come from formulas the Rust test
computes too, so the file holds only results:

    x[i]  = sin(0.1 * i)            i: flat index of the input [1, 32, 512, 512]
    w[i]  = 0.1 * cos(0.3 * i)      i: flat index of the weight [4, 32, 3, 3]
    gy[i] = cos(0.07 * i)           i: flat index of the output gradient [1, 4, 512, 512]
    y = conv2d(x, w, padding=1), no bias; gradients of sum(y * gy)

Stored, in float64: the output summed over each row of each channel
([4, 512]), the input gradient summed over each row of all channels
([512]), and the weight gradient, also computed from the inputs rounded to
f16 (a sum of 262144 products: rounding the inputs alone moves it by more
than the f32 accumulation does, so this one tells the accumulation apart). A band of rows computed in the wrong
place changes the row sums. PyTorch's own error in f16 (autocast's way: x
and gy rounded to f16, the weight cast) on each is stored beside it as the
yardstick, as the largest |f16 - reference| / (1 + scale) with scale the
row's sum of absolute reference values (for the weight gradient, the
reference value's own magnitude).

    python large_image.py > large_image.json
"""
import json

import torch
import torch.nn.functional as F

X = [1, 32, 512, 512]
W = [4, 32, 3, 3]
Y = [1, 4, 512, 512]


def formula(shape, scale, fn, factor=1.0):
    n = 1
    for d in shape:
        n *= d
    i = torch.arange(n, dtype=torch.float64)
    return (factor * fn(scale * i)).reshape(shape)


def run(dtype, rounded=False):
    """In `dtype`; with `rounded`, from the inputs rounded to f16 first."""
    def value(t):
        return t.half().to(dtype) if rounded else t.to(dtype)
    x = value(formula(X, 0.1, torch.sin)).requires_grad_()
    w32 = formula(W, 0.3, torch.cos, 0.1).to(torch.float32 if dtype != torch.float64 else dtype)
    w = (w32.half().to(w32.dtype) if rounded else w32).requires_grad_()
    gy = value(formula(Y, 0.07, torch.cos))
    y = F.conv2d(x, w.to(dtype), padding=1)
    y.backward(gy)
    y = y.detach().double()
    gx = x.grad.double()
    return {
        "output_row_sums": y.sum(dim=3)[0],
        "output_row_scale": y.abs().sum(dim=3)[0],
        "input_grad_row_sums": gx.sum(dim=(1, 3))[0],
        "input_grad_row_scale": gx.abs().sum(dim=(1, 3))[0],
        "grad_weight": w.grad.double(),
    }


def needed(got, ref, scale):
    return float(((got - ref).abs() / (1 + scale)).max().detach())


reference = run(torch.float64)
rounded = run(torch.float64, rounded=True)
f16 = run(torch.float16)
tensor = lambda t: {"shape": list(t.shape), "data": t.flatten().tolist()}
print(json.dumps({
    "format": "large-image/1",
    "generator": f"PyTorch {torch.__version__}",
    "input_shape": X,
    "weight_shape": W,
    "padding": 1,
    "output_row_sums": tensor(reference["output_row_sums"]),
    "output_row_scale": tensor(reference["output_row_scale"]),
    "input_grad_row_sums": tensor(reference["input_grad_row_sums"]),
    "input_grad_row_scale": tensor(reference["input_grad_row_scale"]),
    "grad_weight": tensor(reference["grad_weight"]),
    "grad_weight_of_f16_inputs": tensor(rounded["grad_weight"]),
    "pytorch_f16_needed_tolerance": {
        "output_row_sums": needed(f16["output_row_sums"], reference["output_row_sums"], reference["output_row_scale"]),
        "input_grad_row_sums": needed(f16["input_grad_row_sums"], reference["input_grad_row_sums"], reference["input_grad_row_scale"]),
        "grad_weight": needed(f16["grad_weight"], reference["grad_weight"], reference["grad_weight"].abs()),
        "grad_weight_of_f16_inputs": needed(f16["grad_weight"], rounded["grad_weight"], rounded["grad_weight"].abs()),
    },
}))
