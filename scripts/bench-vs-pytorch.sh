#!/usr/bin/env bash
# Runs this project's benchmark and PyTorch's baselines (../shared/bench) in one
# go, on the same machine and thread count, and prints one table: each layer
# forward and forward+backward for our layer, Burn's plain layer and PyTorch,
# then the U-Net training step and inference pass with peak memory.
#
#   scripts/bench-vs-pytorch.sh [--backend flex|ndarray|wgpu] [--threads 2] [--reps 10]
#
# PyTorch is installed into .venv-bench (PyPI) if it is missing there.
# The last line is `unet train step: pytorch/ours = X.XX` (median step times).
set -euo pipefail
cd "$(dirname "$0")/.."

backend=flex threads=2 reps=10
while [ $# -gt 0 ]; do
    case "$1" in
        --backend) backend=$2; shift 2 ;;
        --threads) threads=$2; shift 2 ;;
        --reps) reps=$2; shift 2 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
bench_dir=../shared/bench
[ -d "$bench_dir" ] || { echo "no $bench_dir: the PyTorch baselines live there" >&2; exit 1; }

venv=.venv-bench
if ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
    echo "installing PyTorch into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q torch numpy
fi

# One thread count for everyone: PyTorch takes --threads, Burn's CPU backends
# use rayon and their BLAS.
export RAYON_NUM_THREADS=$threads OMP_NUM_THREADS=$threads MKL_NUM_THREADS=$threads
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

cargo build -q --profile dev --bench bench
bench() { cargo bench -q --profile dev --bench bench -- "$@"; }
# Peak resident memory of a command, printed after its output as {"peak_rss_bytes": N}.
with_peak() {
    python3 -c 'import resource, subprocess, sys, json
subprocess.run(sys.argv[1:], check=True)
print(json.dumps({"peak_rss_bytes": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024}))' "$@"
}

echo "benchmarking our layers and Burn's on $backend ($threads threads)..." >&2
bench conv --backend "$backend" --reps "$reps" > "$out/ours_conv.jsonl"
echo "benchmarking PyTorch's layers..." >&2
"$venv/bin/python" "$bench_dir/torch_conv_bench.py" --threads "$threads" --reps "$reps" > "$out/torch_conv.jsonl"
for mode in train infer; do
    echo "benchmarking the U-Net ($mode)..." >&2
    bench unet --mode "$mode" --backend "$backend" --steps "$reps" > "$out/ours_unet_$mode.json"
    with_peak "$venv/bin/python" "$bench_dir/torch_unet_bench.py" --mode "$mode" --threads "$threads" --steps "$reps" \
        > "$out/torch_unet_$mode.json"
done

python3 - "$out" "$backend" "$threads" <<'EOF'
import json, os, sys
out, backend, threads = sys.argv[1], sys.argv[2], sys.argv[3]
def lines(name):
    with open(os.path.join(out, name)) as f:
        return [json.loads(l) for l in f if l.strip()]
ours = {(d["layer"], d["impl"]): d for d in lines("ours_conv.jsonl")}
torch = {d["layer"]: d for d in lines("torch_conv.jsonl")}
print(f"backend {backend}, {threads} threads; times are medians in ms; ratio = PyTorch time / ours (above 1: we are faster)")
print()
print("| layer | pass | ours | Burn plain | PyTorch | PyTorch/ours | Burn/ours | ours GFLOP/s |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
for layer, t in torch.items():
    o, b = ours[(layer, "ours")], ours[(layer, "burn")]
    for key, name, gf in [("fwd_ms", "fwd", "fwd_gflops"), ("fwd_bwd_ms", "fwd+bwd", "fwd_bwd_gflops")]:
        print(f"| {layer} | {name} | {o[key]:.2f} | {b[key]:.2f} | {t[key]:.2f} | "
              f"{t[key] / o[key]:.2f} | {b[key] / o[key]:.2f} | {o[gf]:.1f} |")
print()
print("| U-Net (base 16, depth 4, batch 4, 1x128x128) | ours ms | PyTorch ms | PyTorch/ours | ours peak RSS MiB | PyTorch peak RSS MiB |")
print("|---|---:|---:|---:|---:|---:|")
ratio = {}
for mode in ["train", "infer"]:
    o = lines(f"ours_unet_{mode}.json")[0]
    t_lines = lines(f"torch_unet_{mode}.json")
    t = t_lines[0]
    t_peak = t_lines[-1]["peak_rss_bytes"]
    ratio[mode] = t["ms_per_step_median"] / o["ms_per_step_median"]
    o_peak = o["peak_rss_bytes"] or 0
    print(f"| {mode} | {o['ms_per_step_median']:.1f} | {t['ms_per_step_median']:.1f} | {ratio[mode]:.2f} | "
          f"{o_peak / 2**20:.0f} | {t_peak / 2**20:.0f} |")
print()
print(f"unet train step: pytorch/ours = {ratio['train']:.2f}")
EOF
