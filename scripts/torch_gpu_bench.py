#!/usr/bin/env python3
"""PyTorch on a CUDA GPU: the U-Net training step and inference, and the
layers of the CPU baselines, in float32 (eager) or with automatic mixed
precision. The baseline `scripts/bench-vs-pytorch.sh --backend wgpu`
sets this project against.

The network and the layers are those of ../shared/bench (imported from there,
so that both sides run the same shapes). Times are medians over --steps
steps after --warmup, each step synchronised; memory is
torch.cuda.max_memory_reserved (the caching allocator's peak). One JSON line
per measurement.

    torch_gpu_bench.py unet --mode train|infer --precision f32|f16|bf16 --base 32 --batch 16 --size 256
    torch_gpu_bench.py conv --precision f32|f16|bf16
    torch_gpu_bench.py unet ... --device cpu   (a dry run where there is no GPU)
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

BENCH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "bench")
sys.path.insert(0, os.environ.get("TORCH_BENCH_DIR", BENCH))
from torch_conv_bench import LAYERS, fwd_flops  # noqa: E402
from torch_unet_bench import UNet  # noqa: E402

HALF = {"f16": torch.float16, "bf16": torch.bfloat16}


def timed(step, device, warmup, steps):
    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times


def autocast(device, precision):
    """PyTorch's automatic mixed precision, or nothing for f32."""
    return torch.autocast(device.type, dtype=HALF.get(precision, torch.float16), enabled=precision in HALF)


def unet(args, device):
    torch.manual_seed(0)
    model = UNet(1, 2, args.base).to(device)
    x = torch.randn(args.batch, 1, args.size, args.size, device=device)
    target = torch.randint(0, 2, (args.batch, args.size, args.size), device=device)
    if args.mode == "train":
        model.train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-8)
        # GradScaler for f16 only, as PyTorch's AMP recipe has it.
        scaler = torch.amp.GradScaler(device.type, enabled=args.precision == "f16")

        def step():
            opt.zero_grad(set_to_none=True)
            with autocast(device, args.precision):
                loss = F.cross_entropy(model(x).float(), target)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            return loss.item()
    else:
        model.eval()

        def step():
            with torch.inference_mode(), autocast(device, args.precision):
                return float(model(x)[0, 0, 0, 0])

    times = timed(step, device, args.warmup, args.steps)
    median = statistics.median(times)
    print(json.dumps({
        "mode": args.mode, "precision": args.precision, "device": device_name(device),
        "images_per_s": round(args.batch / median, 3),
        "ms_per_step_median": round(median * 1e3, 3),
        "ms_per_step_min": round(min(times) * 1e3, 3),
        "ms_per_step_max": round(max(times) * 1e3, 3),
        "device_reserved_bytes": peak_memory(device),
        "batch": args.batch, "size": args.size, "base": args.base, "steps": args.steps,
        "torch": torch.__version__,
    }), flush=True)


def conv(args, device):
    torch.manual_seed(0)
    for name, make, shape in LAYERS:
        m = make().to(device)
        x = torch.randn(*shape, device=device, requires_grad=True)
        with torch.no_grad(), autocast(device, args.precision):
            y0 = m(x)
        gy = torch.randn_like(y0)
        flops = fwd_flops(m, x, y0)

        def fwd():
            with torch.no_grad(), autocast(device, args.precision):
                m(x)

        def fwd_bwd():
            x.grad = None
            m.zero_grad(set_to_none=True)
            with autocast(device, args.precision):
                y = m(x)
            y.backward(gy)

        t_f = statistics.median(timed(fwd, device, args.warmup, args.steps))
        t_fb = statistics.median(timed(fwd_bwd, device, args.warmup, args.steps))
        print(json.dumps({
            "layer": name, "precision": args.precision, "device": device_name(device),
            "fwd_ms": round(t_f * 1e3, 4), "fwd_gflops": round(flops / t_f / 1e9, 1),
            "fwd_bwd_ms": round(t_fb * 1e3, 4), "fwd_bwd_gflops": round(3 * flops / t_fb / 1e9, 1),
        }), flush=True)


def device_name(device):
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def peak_memory(device):
    return torch.cuda.max_memory_reserved(device) if device.type == "cuda" else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["unet", "conv"])
    ap.add_argument("--mode", choices=["train", "infer"], default="train")
    ap.add_argument("--precision", choices=["f32", "f16", "bf16"], default="f32")
    ap.add_argument("--base", type=int, default=32)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--device", default="cuda")
    args = ap.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("torch_gpu_bench: this PyTorch sees no CUDA GPU (--device cpu for a dry run)")
    # Eager float32 as PyTorch users get it by default (TF32 off for convolutions
    # is not the default: cuDNN may use TF32; say which).
    print(json.dumps({"cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
                      "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32}), file=sys.stderr)
    {"unet": unet, "conv": conv}[args.what](args, device)


if __name__ == "__main__":
    main()
