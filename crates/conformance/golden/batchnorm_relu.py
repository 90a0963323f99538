"""Writes batchnorm_relu.json: `relu(BatchNorm2d(x))` in PyTorch, float64.

The `bn-golden/1` format of `shared/golden/BATCHNORM.md` with one more key
per case, `"activation": "relu"`: `output` is `relu(bn(x))` and the gradients
are those of `sum(output * grad_output)`. Run with any PyTorch:

    python crates/conformance/golden/batchnorm_relu.py > crates/conformance/golden/batchnorm_relu.json
"""

import json

import torch


def tensor(t):
    return {"shape": list(t.shape), "data": [float(v) for v in t.flatten().tolist()]}


def rounded(t):
    # Seven significant digits: the decimal values written are exactly the inputs used.
    return torch.tensor([float(f"{v:.7g}") for v in t.flatten().tolist()], dtype=torch.float64).reshape(t.shape)


def case(name, mode, shape, affine, momentum=0.1, eps=1e-5, seed=0):
    g = torch.Generator().manual_seed(seed)
    n, c, h, w = shape
    x = rounded(torch.randn(shape, generator=g, dtype=torch.float64) * 1.5 + 0.3)
    grad_output = rounded(torch.randn(shape, generator=g, dtype=torch.float64))
    bn = torch.nn.BatchNorm2d(c, eps=eps, momentum=momentum, affine=affine).double()
    with torch.no_grad():
        if affine:
            bn.weight.copy_(rounded(torch.rand(c, generator=g, dtype=torch.float64) * 1.5 + 0.25))
            bn.bias.copy_(rounded(torch.randn(c, generator=g, dtype=torch.float64) * 0.5))
        bn.running_mean.copy_(rounded(torch.randn(c, generator=g, dtype=torch.float64) * 0.2))
        bn.running_var.copy_(rounded(torch.rand(c, generator=g, dtype=torch.float64) + 0.5))
    running_mean, running_var = bn.running_mean.clone(), bn.running_var.clone()
    bn.train(mode == "train")
    xr = x.clone().requires_grad_(True)
    y = torch.relu(bn(xr))
    (y * grad_output).sum().backward()
    return {
        "name": name,
        "mode": mode,
        "activation": "relu",
        "config": {"num_features": c, "eps": eps, "momentum": momentum, "affine": affine},
        "input": tensor(x),
        "weight": tensor(bn.weight.detach()) if affine else None,
        "bias": tensor(bn.bias.detach()) if affine else None,
        "running_mean": tensor(running_mean),
        "running_var": tensor(running_var),
        "grad_output": tensor(grad_output),
        "output": tensor(y.detach()),
        "running_mean_after": tensor(bn.running_mean),
        "running_var_after": tensor(bn.running_var),
        "grad_input": tensor(xr.grad),
        "grad_weight": tensor(bn.weight.grad) if affine else None,
        "grad_bias": tensor(bn.bias.grad) if affine else None,
    }


cases = [
    case("relu_train", "train", [2, 16, 9, 11], affine=True, seed=1),
    case("relu_train_batch1_odd_plane", "train", [1, 5, 7, 3], affine=True, seed=2),
    case("relu_no_affine_train", "train", [3, 4, 6, 6], affine=False, seed=3),
    case("relu_eval", "eval", [2, 6, 5, 9], affine=True, seed=4),
]
print(json.dumps({"format": "bn-golden/1", "generator": f"PyTorch {torch.__version__}", "cases": cases}))
