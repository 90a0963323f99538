#!/usr/bin/env bash
# This project on a GPU (wgpu or vulkan) against PyTorch on CUDA on the same
# machine: the U-Net training step and inference (base width 32, depth 4,
# batch 16 of 1x256x256) and the per-layer table, PyTorch in eager float32
# and with automatic mixed precision (f16 with its GradScaler), ours in f32
# and in --precision. Runs alternate, ours then PyTorch's, for --rounds
# rounds; tables give the median over the rounds. Called by
# `scripts/bench-vs-pytorch.sh --backend wgpu|vulkan`.
#
#   scripts/bench-gpu-vs-pytorch.sh [--backend wgpu|vulkan] [--precision f16|bf16] [--steps 20] [--rounds 3]
#                                   [--bench-bin PATH] [--torch-bench-dir DIR] [--keep DIR]
#                                   [--torch-device cuda] [--base 32] [--batch 16] [--size 256]
#
# --keep DIR keeps every run's JSON lines in DIR (one file per side and
# table, appended as each run ends), so that a run cut short leaves them.
#
# (`--torch-device cpu` with small shapes checks the script itself on a
# machine without a GPU; its figures mean nothing.)
#
# PyTorch: the first python with `import torch` and a CUDA GPU among
# .venv-bench, $PYTHON and python3; nothing is installed (GPU machines are
# often offline). Our side: --bench-bin (the `bench` binary built elsewhere:
# `cargo bench --profile dev --bench bench --no-run` prints its path), or
# built here with cargo. The network and layers come from ../shared/bench
# (--torch-bench-dir where that is elsewhere).
set -euo pipefail
cd "$(dirname "$0")/.."

backend=wgpu precision=f16 steps=20 rounds=3 bench="" torch_dir=../shared/bench
torch_device=cuda base=32 batch=16 size=256 keep=""
while [ $# -gt 0 ]; do
    case "$1" in
        --backend) backend=$2; shift 2 ;;
        --precision) precision=$2; shift 2 ;;
        --steps) steps=$2; shift 2 ;;
        --rounds) rounds=$2; shift 2 ;;
        --bench-bin) bench=$2; shift 2 ;;
        --torch-bench-dir) torch_dir=$2; shift 2 ;;
        --keep) keep=$2; shift 2 ;;
        --torch-device) torch_device=$2; shift 2 ;;
        --base) base=$2; shift 2 ;;
        --batch) batch=$2; shift 2 ;;
        --size) size=$2; shift 2 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
case "$backend" in wgpu|vulkan) ;; *) echo "--backend $backend: must be wgpu or vulkan" >&2; exit 2 ;; esac
case "$precision" in f16|bf16) ;; *) echo "--precision $precision: must be f16 or bf16" >&2; exit 2 ;; esac
[ -f "$torch_dir/torch_unet_bench.py" ] || { echo "no $torch_dir/torch_unet_bench.py: give --torch-bench-dir" >&2; exit 1; }
export TORCH_BENCH_DIR=$torch_dir

source scripts/bench-common.sh
python=$(find_python "import torch; assert '$torch_device' == 'cpu' or torch.cuda.is_available()")
[ -n "$python" ] || { echo "no python here has PyTorch with a CUDA GPU: the GPU comparison needs one" >&2; exit 1; }

[ -n "$bench" ] || bench=$(bench_binary "$python")
[ -x "$bench" ] || { echo "no bench binary ($bench)" >&2; exit 1; }

if [ -n "$keep" ]; then
    out=$keep
    mkdir -p "$out"
    [ -z "$(ls -A "$out")" ] || { echo "--keep $out: must be a new or empty folder" >&2; exit 2; }
else
    out=$(mktemp -d)
    trap 'rm -rf "$out"' EXIT
fi

# Runs our benchmark (the arguments after $1 and $2) and appends its JSON
# lines, tagged with the round, to $out/$1. A run that fails (a kernel that
# cannot launch on this GPU) appends one line instead, with the fields $2 and
# "error": the first line of its panic message, so that the other runs go on,
# the tables mark it failed and a list below them says why. Its stderr
# (compiling and autotuning progress) still reaches the terminal.
ours() {
    local file=$1 fields=$2 log
    shift 2
    log=$(mktemp)
    if ! "$bench" "$@" 2> >(tee "$log" >&2) | tag "$python" "{\"round\": $round}" >> "$out/$file"; then
        local message
        # The line after "panicked at ...", else its last line.
        message=$(sed -n '/panicked at/{n;p;q}' "$log")
        [ -n "$message" ] || message=$(tail -n 1 "$log")
        [ -n "$message" ] || message="no message (killed?)"
        echo "  failed: $message" >&2
        echo '{}' | tag "$python" "{\"round\": $round, $fields, \"error\": $("$python" -c 'import json, sys; print(json.dumps(sys.argv[1]))' "$message")}" >> "$out/$file"
    fi
    rm -f "$log"
}

shape=(--base "$base" --batch "$batch" --size "$size" --steps "$steps")
for round in $(seq 1 "$rounds"); do
    for mode in train infer; do
        for p in f32 "$precision"; do
            echo "round $round of $rounds: U-Net $mode, ours $backend $p..." >&2
            ours ours_unet.jsonl "\"mode\": \"$mode\", \"precision\": \"$p\"" \
                unet --mode "$mode" --backend "$backend" --precision "$p" "${shape[@]}"
        done
        for p in f32 f16; do
            echo "round $round of $rounds: U-Net $mode, PyTorch $torch_device $p..." >&2
            "$python" scripts/torch_gpu_bench.py unet --mode "$mode" --precision "$p" "${shape[@]}" --device "$torch_device" \
                | tag "$python" "{\"round\": $round}" >> "$out/torch_unet.jsonl"
        done
    done
    echo "round $round of $rounds: layers..." >&2
    ours ours_conv.jsonl '"impl": "ours"' conv --backend "$backend" --reps "$steps" --impl ours
    ours per_group_conv.jsonl '"impl": "burn-per-group"' conv --backend "$backend" --reps "$steps" --impl burn-per-group
    "$python" scripts/torch_gpu_bench.py conv --steps "$steps" --device "$torch_device" | tag "$python" "{\"round\": $round}" >> "$out/torch_conv.jsonl"
done

"$python" - "$out" "$backend" "$precision" "$rounds" "$base" "$batch" "$size" <<'EOF'
import json, os, statistics, sys
out, backend, precision, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
base, batch, size = sys.argv[5:8]
def lines(name):
    with open(os.path.join(out, name)) as f:
        return [json.loads(l) for l in f if l.strip()]
ou, tu = lines("ours_unet.jsonl"), lines("torch_unet.jsonl")
gpu = tu[0]["device"]
print(f"{gpu}; ours: {backend}; PyTorch {tu[0]['torch']}; U-Net base {base}, depth 4, batch {batch} of 1x{size}x{size};")
print(f"median over {rounds} interleaved rounds of the median of each run's steps; ratio = PyTorch time / ours (above 1: we are faster)")
print()
print("| U-Net | ours img/s | PyTorch f32 img/s | PyTorch AMP f16 img/s | vs f32 | vs AMP | ours GPU MiB | PyTorch f32 / AMP MiB |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
med = lambda rows, key: statistics.median(r[key] for r in rows)
mib = lambda rows: max((r["device_reserved_bytes"] or 0) for r in rows) / 2**20
oc, pg = lines("ours_conv.jsonl"), lines("per_group_conv.jsonl")
failures = [r for r in ou + oc + pg if "error" in r]
for mode in ["train", "infer"]:
    t32 = [r for r in tu if r["mode"] == mode and r["precision"] == "f32"]
    t16 = [r for r in tu if r["mode"] == mode and r["precision"] == "f16"]
    for p in ["f32", precision]:
        o = [r for r in ou if r["mode"] == mode and r["precision"] == p and "error" not in r]
        if not o:
            print(f"| {mode} ours {p} | failed | {med(t32, 'images_per_s'):.1f} | {med(t16, 'images_per_s'):.1f} "
                  f"| | | | {mib(t32):.0f} / {mib(t16):.0f} |")
            continue
        ms = med(o, "ms_per_step_median")
        print(f"| {mode} ours {p} | {med(o, 'images_per_s'):.1f} | {med(t32, 'images_per_s'):.1f} | "
              f"{med(t16, 'images_per_s'):.1f} | {med(t32, 'ms_per_step_median') / ms:.2f} | "
              f"{med(t16, 'ms_per_step_median') / ms:.2f} | {mib(o):.0f} | {mib(t32):.0f} / {mib(t16):.0f} |")
print()
def layer_table(columns, layers, left, right, ratio):
    print(f"| {columns} |")
    print("|---|---|---:|---:|---:|")
    for layer in layers:
        for key, name in [("fwd_ms", "fwd"), ("fwd_bwd_ms", "fwd+bwd")]:
            a = [r for r in left if r.get("layer") == layer]
            b = [r for r in right if r.get("layer") == layer]
            if not a or not b:
                print(f"| {layer} | {name} | {'failed' if not a else ''} | {'failed' if not b else ''} | |")
                continue
            a, b = med(a, key), med(b, key)
            print(f"| {layer} | {name} | {a:.3f} | {b:.3f} | {ratio(a, b):.2f} |")
tc = lines("torch_conv.jsonl")
layer_table("layer (f32) | pass | ours ms | PyTorch ms | PyTorch/ours",
            dict.fromkeys(r["layer"] for r in tc), oc, tc, lambda o, t: t / o)
print()
# Grouped layers run Burn's grouped kernels; this is the alternative the
# layers would take if it won on GPUs (docs/performance.md, GPU section).
layer_table("grouped layer (f32) | pass | ours ms | one Burn conv per group ms | ours/per-group",
            dict.fromkeys(r["layer"] for r in pg if "layer" in r), oc, pg, lambda o, g: o / g)
if failures:
    print()
    print("Runs of ours that failed:")
    for r in failures:
        what = f"U-Net {r['mode']} {r['precision']}" if "mode" in r else f"layers ({r['impl']})"
        print(f"- round {r['round']}, {what}: {r['error']}")
EOF
