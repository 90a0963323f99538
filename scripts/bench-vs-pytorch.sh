#!/usr/bin/env bash
# This project against PyTorch on the same machine, thread count and shapes:
# each layer forward and forward+backward (ours, Burn's plain layer, PyTorch),
# and the U-Net training step (128x128 batch 4, 256x256 batch 8, 512x512
# batch 2) and inference with peak memory. Runs alternate, ours then
# PyTorch's, for --rounds rounds, so that both see the same machine state;
# the tables give the median over the rounds and the range.
#
#   scripts/bench-vs-pytorch.sh [--backend flex|ndarray] [--threads 2] [--reps 10] [--rounds 3]
#   scripts/bench-vs-pytorch.sh --backend wgpu|vulkan [--precision f16|bf16] ...
#
# With a GPU backend, the comparison is with PyTorch on CUDA:
# scripts/bench-gpu-vs-pytorch.sh, which takes the remaining options.
#
# PyTorch: the first python with `import torch` working among .venv-bench,
# $PYTHON and python3 (nothing is installed then); otherwise it is installed
# from PyPI into .venv-bench.
set -euo pipefail

# From the caller's folder, which the GPU script's relative paths are read from.
for arg in "$@"; do
    case "$arg" in wgpu|vulkan) exec "$(dirname "$0")/bench-gpu-vs-pytorch.sh" "$@" ;; esac
done
cd "$(dirname "$0")/.."
backend=flex threads=2 reps=10 rounds=3
while [ $# -gt 0 ]; do
    case "$1" in
        --backend) backend=$2; shift 2 ;;
        --threads) threads=$2; shift 2 ;;
        --reps) reps=$2; shift 2 ;;
        --rounds) rounds=$2; shift 2 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
bench_dir=../shared/bench
[ -d "$bench_dir" ] || { echo "no $bench_dir: the PyTorch baselines live there" >&2; exit 1; }

source scripts/bench-common.sh
python=$(find_python "import torch")
if [ -z "$python" ]; then
    echo "installing PyTorch into .venv-bench" >&2
    python3 -m venv .venv-bench
    .venv-bench/bin/pip install -q torch numpy
    python=.venv-bench/bin/python
fi

# One thread count for everyone: PyTorch takes --threads, Burn's CPU
# backends use rayon.
export RAYON_NUM_THREADS=$threads OMP_NUM_THREADS=$threads MKL_NUM_THREADS=$threads
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

bench=$(bench_binary "$python")
# Peak resident memory of a command, printed after its output as {"peak_rss_bytes": N}.
with_peak() {
    "$python" -c 'import resource, subprocess, sys, json
subprocess.run(sys.argv[1:], check=True)
print(json.dumps({"peak_rss_bytes": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024}))' "$@"
}

configs="128:4:train 128:4:infer 256:8:train 512:2:train"
for round in $(seq 1 "$rounds"); do
    echo "round $round of $rounds: layers ($backend, $threads threads)..." >&2
    "$bench" conv --backend "$backend" --reps "$reps" | tag "$python" "{\"round\": $round}" >> "$out/ours_conv.jsonl"
    "$python" "$bench_dir/torch_conv_bench.py" --threads "$threads" --reps "$reps" | tag "$python" "{\"round\": $round}" >> "$out/torch_conv.jsonl"
    for config in $configs; do
        IFS=: read -r size batch mode <<< "$config"
        echo "round $round of $rounds: U-Net $mode ${size}x${size} batch $batch..." >&2
        "$bench" unet --mode "$mode" --backend "$backend" --steps "$reps" --size "$size" --batch "$batch" \
            | tag "$python" "{\"round\": $round, \"config\": \"$config\"}" >> "$out/ours_unet.jsonl"
        with_peak "$python" "$bench_dir/torch_unet_bench.py" --mode "$mode" --threads "$threads" \
            --steps "$reps" --size "$size" --batch "$batch" \
            | "$python" -c 'import json, sys
lines = [json.loads(l) for l in sys.stdin if l.strip()]
d = lines[0]; d.update(lines[-1]); print(json.dumps(d))' \
            | tag "$python" "{\"round\": $round, \"config\": \"$config\"}" >> "$out/torch_unet.jsonl"
    done
done
echo "measuring PyTorch's SGEMM (the roof)..." >&2
"$python" - "$threads" > "$out/sgemm.json" <<'EOF'
import json, statistics, sys, time, torch
torch.set_num_threads(int(sys.argv[1]))
n = 2048
a, b = torch.randn(n, n), torch.randn(n, n)
for _ in range(3):
    a @ b
times = []
for _ in range(7):
    t = time.perf_counter(); a @ b; times.append(time.perf_counter() - t)
print(json.dumps({"gflops": 2 * n ** 3 / statistics.median(times) / 1e9}))
EOF

"$python" - "$out" "$backend" "$threads" "$rounds" <<'EOF'
import json, os, statistics, sys
out, backend, threads, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
def lines(name):
    with open(os.path.join(out, name)) as f:
        return [json.loads(l) for l in f if l.strip()]
def spread(values, fmt="{:.2f}"):
    values = sorted(values)
    return f"{fmt.format(statistics.median(values))} ({fmt.format(values[0])}-{fmt.format(values[-1])})"
ours, torch = lines("ours_conv.jsonl"), lines("torch_conv.jsonl")
roof = json.load(open(os.path.join(out, "sgemm.json")))["gflops"]
print(f"backend {backend}, {threads} threads, {rounds} interleaved rounds; times in ms, median (range) over the rounds;")
print(f"ratio = PyTorch time / ours per round (above 1: we are faster); PyTorch SGEMM 2048^3: {roof:.0f} GFLOP/s")
print()
print("| layer | pass | ours | Burn plain | PyTorch | PyTorch/ours | ours GFLOP/s |")
print("|---|---|---:|---:|---:|---:|---:|")
for layer in dict.fromkeys(d["layer"] for d in torch):
    for key, name, gf in [("fwd_ms", "fwd", "fwd_gflops"), ("fwd_bwd_ms", "fwd+bwd", "fwd_bwd_gflops")]:
        o = [d for d in ours if d["layer"] == layer and d["impl"] == "ours"]
        b = [d for d in ours if d["layer"] == layer and d["impl"] == "burn"]
        t = [d for d in torch if d["layer"] == layer]
        ratios = [tt[key] / oo[key] for oo, tt in zip(sorted(o, key=lambda d: d["round"]), sorted(t, key=lambda d: d["round"]))]
        print(f"| {layer} | {name} | {spread([d[key] for d in o])} | {spread([d[key] for d in b])} | "
              f"{spread([d[key] for d in t])} | {spread(ratios)} | {statistics.median(d[gf] for d in o):.0f} |")
print()
print("| U-Net (base 16, depth 4) | ours ms | PyTorch ms | PyTorch/ours | ours GFLOP/s (of the roof) | ours peak MiB | PyTorch peak MiB |")
print("|---|---:|---:|---:|---:|---:|---:|")
ou, tu = lines("ours_unet.jsonl"), lines("torch_unet.jsonl")
headline = None
for config in dict.fromkeys(d["config"] for d in ou):
    size, batch, mode = config.split(":")
    o = sorted([d for d in ou if d["config"] == config], key=lambda d: d["round"])
    t = sorted([d for d in tu if d["config"] == config], key=lambda d: d["round"])
    ratios = [tt["ms_per_step_median"] / oo["ms_per_step_median"] for oo, tt in zip(o, t)]
    gflops = statistics.median(d["gflops"] for d in o)
    o_peak = max(d["peak_rss_bytes"] or 0 for d in o) / 2**20
    t_peak = max(d["peak_rss_bytes"] for d in t) / 2**20
    print(f"| {mode} {size}x{size} batch {batch} | {spread([d['ms_per_step_median'] for d in o], '{:.1f}')} | "
          f"{spread([d['ms_per_step_median'] for d in t], '{:.1f}')} | {spread(ratios)} | "
          f"{gflops:.0f} ({100 * gflops / roof:.0f}%) | {o_peak:.0f} | {t_peak:.0f} |")
    if config == "128:4:train":
        headline = statistics.median(ratios)
print()
print(f"unet train step: pytorch/ours = {headline:.2f} (median of {rounds} interleaved rounds)")
EOF
