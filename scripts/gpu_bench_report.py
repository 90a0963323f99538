#!/usr/bin/env python3
"""The tables of the GPU benchmark (scripts/bench-gpu-vs-pytorch.sh) from
the JSON lines its runs left in a folder: the U-Net against PyTorch in f32
and with automatic mixed precision, each layer against PyTorch, and the
grouped layers against one Burn convolution per group. Medians over the
rounds that finished; a run that is missing (the time limit came first) or
failed is marked so, never left out silently.

    gpu_bench_report.py DIR
"""
import json
import os
import statistics
import sys


def lines(out, name):
    path = os.path.join(out, name)
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def median(rows, key):
    return statistics.median(r[key] for r in rows)


def mib(rows):
    return max((r["device_reserved_bytes"] or 0) for r in rows) / 2**20


def unet_table(ours, torch):
    print("| U-Net | rounds | ours img/s | PyTorch f32 img/s | PyTorch AMP f16 img/s | vs f32 | vs AMP "
          "| ours GPU MiB | PyTorch f32 / AMP MiB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    precisions = dict.fromkeys(["f32"] + [r["precision"] for r in ours])
    for mode in ["train", "infer"]:
        t32 = [r for r in torch if r["mode"] == mode and r["precision"] == "f32"]
        t16 = [r for r in torch if r["mode"] == mode and r["precision"] == "f16"]
        theirs = [f"{median(t, 'images_per_s'):.1f}" if t else "not run" for t in (t32, t16)]
        memory = " / ".join(f"{mib(t):.0f}" if t else "-" for t in (t32, t16))
        for p in precisions:
            o = [r for r in ours if r["mode"] == mode and r["precision"] == p and "error" not in r]
            if not o:
                state = "failed" if any(r["mode"] == mode and r["precision"] == p for r in ours) else "not run"
                print(f"| {mode} ours {p} | 0 | {state} | {theirs[0]} | {theirs[1]} | | | | {memory} |")
                continue
            ms = median(o, "ms_per_step_median")
            ratios = [f"{median(t, 'ms_per_step_median') / ms:.3f}" if t else "" for t in (t32, t16)]
            print(f"| {mode} ours {p} | {len(o)} | {median(o, 'images_per_s'):.1f} | {theirs[0]} | {theirs[1]} "
                  f"| {ratios[0]} | {ratios[1]} | {mib(o):.0f} | {memory} |")


def layer_table(columns, left, right, ratio):
    """The layers of either side, each side's rows and whether a run of
    that side failed (an error line instead of layers)."""
    layers = dict.fromkeys(r["layer"] for r in right + left if "layer" in r)
    if not layers:
        print(f"{columns.split(' | ')[0]}: no run finished a layer")
        return
    print(f"| {columns} |")
    print("|---|---|---:|---:|---:|")
    missing = [("failed" if any("error" in r for r in rows) else "not run") for rows in (left, right)]
    for layer in layers:
        a = [r for r in left if r.get("layer") == layer]
        b = [r for r in right if r.get("layer") == layer]
        for key, name in [("fwd_ms", "fwd"), ("fwd_bwd_ms", "fwd+bwd")]:
            if not a or not b:
                print(f"| {layer} | {name} | {'' if a else missing[0]} | {'' if b else missing[1]} | |")
                continue
            x, y = median(a, key), median(b, key)
            print(f"| {layer} | {name} | {x:.3f} | {y:.3f} | {ratio(x, y):.2f} |")


def main():
    out = sys.argv[1]
    if not os.path.isdir(out):
        sys.exit(f"{out}: no such folder")
    ours, torch = lines(out, "ours_unet.jsonl"), lines(out, "torch_unet.jsonl")
    oc, pg, tc = lines(out, "ours_conv.jsonl"), lines(out, "per_group_conv.jsonl"), lines(out, "torch_conv.jsonl")
    gpu = next((r["device"] for r in torch + tc if "device" in r), "GPU not named (no PyTorch run finished)")
    backend = next((r["backend"] for r in ours + oc if "backend" in r), "not named (no run of ours finished)")
    versions = sorted({r["torch"] for r in torch if "torch" in r})
    shape = next((r for r in ours + torch if "base" in r), None)
    network = (f"U-Net base {shape['base']}, depth 4, batch {shape['batch']} of 1x{shape['size']}x{shape['size']}"
               if shape else "no U-Net run finished")
    print(f"{gpu}; ours: {backend}; PyTorch {', '.join(versions) or 'not run'}; {network}")
    print("median over the rounds of the median of each run's steps; "
          "ratio = PyTorch time / ours (above 1: we are faster)")
    print()
    if [r for r in ours + torch if "mode" in r]:
        unet_table([r for r in ours if "mode" in r], torch)
        print()
    layer_table("layer (f32) | pass | ours ms | PyTorch ms | PyTorch/ours", oc, tc, lambda o, t: t / o)
    print()
    # Grouped layers run Burn's grouped kernels; this is the alternative the
    # layers would take if it won on GPUs (docs/performance.md, GPU section).
    grouped = {r["layer"] for r in pg if "layer" in r}
    layer_table("grouped layer (f32) | pass | ours ms | one Burn conv per group ms | ours/per-group",
                [r for r in oc if r.get("layer") in grouped or "error" in r], pg, lambda o, g: o / g)
    failures = [r for r in ours + oc + pg if "error" in r]
    theirs = lines(out, "failed.jsonl")
    if failures or theirs:
        print()
        print("Runs that failed:")
        for r in failures:
            what = f"U-Net {r['mode']} {r['precision']}" if "mode" in r else f"layers ({r['impl']})"
            print(f"- round {r['round']}, ours, {what}: {r['error']}")
        for r in theirs:
            print(f"- round {r['round']}, {r['what']}: {r['error']}")
    cut = lines(out, "stopped.jsonl")
    if cut:
        print()
        print(f"Stopped at the time limit (--seconds) during round {cut[0]['round']}, {cut[0]['what']}; "
              "later runs not started.")


if __name__ == "__main__":
    main()
