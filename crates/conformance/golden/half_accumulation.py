"""Reference for a half-precision weight gradient summed over many pixels
(`half_accumulation.json`): a sum of 4608 products per value, past the 2048
at which a half-precision accumulator stops adding ones. Inputs come from a
formula the Rust test computes too, so the file holds only the result.

    x[i]  = sin(0.1 * i)            i: flat index of the input [2, 8, 48, 48]
    gy[i] = cos(0.07 * i)           i: flat index of the output gradient [2, 8, 48, 48]
    conv2d(x, w, padding=1), w: [8, 8, 3, 3], no bias; grad_weight of sum(y * gy)

grad_weight does not depend on w. The reference is float64; PyTorch's own
error in f16 (autocast's way: x rounded to f16, weight cast, the output
gradient rounded) is stored beside it as the yardstick.

    python half_accumulation.py > half_accumulation.json
"""
import json

import torch
import torch.nn.functional as F

SHAPE = [2, 8, 48, 48]


def formula(scale, fn, dtype):
    i = torch.arange(2 * 8 * 48 * 48, dtype=torch.float64)
    return fn(scale * i).reshape(SHAPE).to(dtype)


def grad_weight(dtype):
    x = formula(0.1, torch.sin, dtype)
    gy = formula(0.07, torch.cos, torch.float64)
    w = torch.zeros(8, 8, 3, 3, dtype=torch.float32 if dtype != torch.float64 else dtype, requires_grad=True)
    y = F.conv2d(x, w.to(dtype), padding=1)
    (y.double() * gy).sum().backward()
    return w.grad.double()


reference = grad_weight(torch.float64)
f16 = grad_weight(torch.float16)
needed = float(((f16 - reference).abs() / (1 + reference.abs())).max())
print(json.dumps({
    "format": "half-accumulation/1",
    "generator": f"PyTorch {torch.__version__}",
    "input_shape": SHAPE,
    "weight_shape": [8, 8, 3, 3],
    "padding": 1,
    "grad_weight": {"shape": [8, 8, 3, 3], "data": reference.flatten().tolist()},
    "pytorch_f16_needed_tolerance": needed,
}))
