"""PyTorch's own half-precision error on the convolution reference cases: the
yardstick for the layers' `f16` and `bf16` conformance (docs/precision.md).

Runs every valid case of a `conv-golden/1` file as automatic mixed precision
runs a convolution: input and output gradient rounded to the half type, the
float32 weight and bias cast to it (their gradients come back in float32),
on the CPU. For each half type and tensor it prints the largest error
against the float64 reference in the runner's terms, the smallest `t` with
`|got - ref| <= t + t * |ref|` for every element.

    python half_precision.py ../../../../shared/golden/conv_public.json
"""

import json
import sys

import torch
import torch.nn.functional as F


def tensor(t, dtype=torch.float64):
    return torch.tensor(t["data"], dtype=dtype).reshape(t["shape"])


def needed(got, ref):
    """The smallest t with |got - ref| <= t * (1 + |ref|) everywhere."""
    err = (got.detach().double() - ref).abs() / (1 + ref.abs())
    return float(err.max())


def run(case, dtype):
    c = case["config"]
    x = tensor(case["input"]).to(dtype).requires_grad_()
    w = tensor(case["weight"], torch.float32).requires_grad_()
    b = tensor(case["bias"], torch.float32).requires_grad_() if case["bias"] else None
    args = dict(stride=c["stride"], padding=c["padding"], dilation=c["dilation"], groups=c["groups"])
    bias = b.to(dtype) if b is not None else None
    if case["op"] == "conv2d":
        y = F.conv2d(x, w.to(dtype), bias, **args)
    else:
        y = F.conv_transpose2d(x, w.to(dtype), bias, output_padding=c["output_padding"], **args)
    (y.float() * tensor(case["grad_output"], torch.float32)).sum().backward()
    out = {"output": needed(y, tensor(case["output"])),
           "grad_input": needed(x.grad, tensor(case["grad_input"])),
           "grad_weight": needed(w.grad, tensor(case["grad_weight"]))}
    if b is not None:
        out["grad_bias"] = needed(b.grad, tensor(case["grad_bias"]))
    return out


def main(path):
    cases = [c for c in json.load(open(path))["cases"] if "expect_error" not in c or c["expect_error"] is None]
    print(f"PyTorch {torch.__version__}, CPU, {len(cases)} cases of {path}")
    for name, dtype in [("f16", torch.float16), ("bf16", torch.bfloat16)]:
        worst = {}
        for case in cases:
            for key, t in run(case, dtype).items():
                if t > worst.get(key, (0.0, ""))[0]:
                    worst[key] = (t, case["name"])
        for key, (t, case) in worst.items():
            print(f"{name} {key:12s} t = {t:.2e}  ({case})")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "conv_public.json")
