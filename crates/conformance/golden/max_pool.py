"""Writes max_pool.json: `torch.nn.functional.max_pool2d(x, k)` (stride = k,
no padding, floor), forward and the gradient of `sum(output * grad_output)`,
in float64 on the CPU. Run with any PyTorch:

    python crates/conformance/golden/max_pool.py > crates/conformance/golden/max_pool.json

Format `pool-golden/1`: `{"format", "generator", "cases": [...]}`, each case
`name`, `kernel_size` (`[kh, kw]`), and the tensors `input`, `grad_output`,
`output`, `grad_input` as `{"shape", "data"}` (row-major). JSON has no NaN or
infinities: those values are the strings "nan", "inf" and "-inf".

What the cases pin down: windows that tie (PyTorch routes the gradient to
the first maximum in row-major order), sizes the kernel does not divide
(the last rows and columns belong to no window and get no gradient), a NaN
in a window (the output is NaN; the gradient goes to the last NaN), windows
of -inf (the gradient goes to the first element).
"""

import json
import math

import torch
import torch.nn.functional as F


def value(v):
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return v


def tensor(t):
    return {"shape": list(t.shape), "data": [value(float(v)) for v in t.flatten().tolist()]}


def rounded(t):
    # Seven significant digits: the decimal values written are exactly the inputs used.
    return torch.tensor([float(f"{v:.7g}") for v in t.flatten().tolist()], dtype=torch.float64).reshape(t.shape)


def case(name, x, kernel, seed):
    g = torch.Generator().manual_seed(seed)
    xr = x.clone().requires_grad_(True)
    y = F.max_pool2d(xr, kernel)
    grad_output = rounded(torch.randn(y.shape, generator=g, dtype=torch.float64))
    (y * grad_output).sum().backward()
    return {
        "name": name,
        "kernel_size": list(kernel),
        "input": tensor(x),
        "grad_output": tensor(grad_output),
        "output": tensor(y.detach()),
        "grad_input": tensor(xr.grad),
    }


def normal(shape, seed):
    g = torch.Generator().manual_seed(seed)
    return rounded(torch.randn(shape, generator=g, dtype=torch.float64))


def ties(shape, seed):
    # Values in {-1, 0, 1}: most windows hold a repeated maximum.
    g = torch.Generator().manual_seed(seed)
    return torch.randint(-1, 2, shape, generator=g).to(torch.float64)


def special():
    x = normal([1, 2, 4, 6], 7)
    nan, inf = float("nan"), float("inf")
    x[0, 0, 0, 0] = nan  # one NaN in a window
    x[0, 0, 0, 2] = nan  # two NaNs in one window
    x[0, 0, 1, 3] = nan
    x[0, 0, 2:4, 0:2] = -inf  # a window of -inf
    x[0, 0, 2, 3] = inf  # +inf beats the rest
    x[0, 1, 0:2, 0:2] = 5.0  # a window of four equal values
    x[0, 1, 2, 4] = -inf  # -inf beside finite values
    return x


cases = [
    case("unet_2x2", normal([2, 3, 8, 10], 1), (2, 2), 11),
    case("floor_odd_size", normal([1, 2, 7, 9], 2), (2, 2), 12),
    case("ties", ties([2, 2, 6, 8], 3), (2, 2), 13),
    case("kernel_3x2", normal([2, 2, 9, 8], 4), (3, 2), 14),
    case("ties_kernel_3x3_floor", ties([1, 3, 10, 11], 5), (3, 3), 15),
    case("whole_image", normal([2, 4, 3, 3], 6), (3, 3), 16),
    case("nan_and_infinities", special(), (2, 2), 17),
]
print(json.dumps({"format": "pool-golden/1", "generator": f"PyTorch {torch.__version__}", "cases": cases}))
