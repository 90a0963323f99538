#!/usr/bin/env bash
# This project on a GPU (wgpu or vulkan) against PyTorch on CUDA on the same
# machine: the U-Net training step and inference (base width 32, depth 4,
# batch 16 of 1x256x256) and the per-layer table, PyTorch in eager float32
# and with automatic mixed precision (f16 with its GradScaler), ours in f32
# and in --precision. Runs alternate, ours then PyTorch's, for --rounds
# rounds; tables give the median over the rounds
# (scripts/gpu_bench_report.py). Called by
# `scripts/bench-vs-pytorch.sh --backend wgpu|vulkan`.
#
#   scripts/bench-gpu-vs-pytorch.sh [--backend wgpu|vulkan] [--precision f16|bf16] [--steps 20] [--rounds 3]
#                                   [--seconds N] [--bench-bin PATH] [--torch-bench-dir DIR] [--keep DIR]
#                                   [--torch-device cuda] [--base 32] [--batch 16] [--size 256]
#   scripts/bench-gpu-vs-pytorch.sh --report DIR
#
# --keep DIR keeps every run's JSON lines in DIR (one file per side and
# table, appended as each run ends), so that a run cut short leaves them;
# --report DIR prints the tables of such a folder.
#
# --seconds N stops the benchmark N seconds after its start: the run under
# way then is stopped (killed 5 s later if it has not ended) and left out,
# but for the layers it finished; no other starts, and the tables give the
# runs that finished (a line under them says where it stopped). A run that
# fails is marked failed and listed with its error; the others go on. The first
# runs on a fresh machine take minutes (CubeCL compiles and autotunes every
# kernel, and keeps both on disk for the later runs).
#
# (`--torch-device cpu` with small shapes checks the script itself on a
# machine without a GPU; its figures mean nothing.)
#
# PyTorch: the first python with `import torch` and a CUDA GPU among
# .venv-bench, $PYTHON and python3; nothing is installed (GPU machines are
# often offline). Our side: --bench-bin (the `bench` binary built elsewhere:
# `cargo bench --profile dev --bench bench --no-run` prints its path;
# scripts/gpu-pack packs it), or built here with cargo. The network and
# layers come from ../shared/bench (--torch-bench-dir where that is
# elsewhere).
set -euo pipefail
start=$(date +%s)
caller=$PWD
cd "$(dirname "$0")/.."
# A path given relative to where the script was called from.
given() { case "$1" in /*) echo "$1" ;; *) echo "$caller/$1" ;; esac; }

backend=wgpu precision=f16 steps=20 rounds=3 bench="" torch_dir=../shared/bench
torch_device=cuda base=32 batch=16 size=256 keep="" seconds=""
while [ $# -gt 0 ]; do
    case "$1" in
        --backend) backend=$2; shift 2 ;;
        --precision) precision=$2; shift 2 ;;
        --steps) steps=$2; shift 2 ;;
        --rounds) rounds=$2; shift 2 ;;
        --bench-bin) bench=$(given "$2"); shift 2 ;;
        --torch-bench-dir) torch_dir=$(given "$2"); shift 2 ;;
        --keep) keep=$(given "$2"); shift 2 ;;
        --seconds) seconds=$2; shift 2 ;;
        --report) exec python3 scripts/gpu_bench_report.py "$(given "$2")" ;;
        --torch-device) torch_device=$2; shift 2 ;;
        --base) base=$2; shift 2 ;;
        --batch) batch=$2; shift 2 ;;
        --size) size=$2; shift 2 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
case "$backend" in wgpu|vulkan) ;; *) echo "--backend $backend: must be wgpu or vulkan" >&2; exit 2 ;; esac
case "$precision" in f16|bf16) ;; *) echo "--precision $precision: must be f16 or bf16" >&2; exit 2 ;; esac
[[ -z $seconds || $seconds =~ ^[0-9]+$ ]] || { echo "--seconds $seconds: must be a whole number" >&2; exit 2; }
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

# The deadline counts from the script's start; a run stopped at it gets
# 5 s to end before it is killed.
deadline=""
[ -z "$seconds" ] || deadline=$(( start + seconds ))
what=""

# Runs a command, stopped at the deadline (status 124) if there is one.
limited() {
    [ -n "$deadline" ] || { "$@"; return; }
    local left=$(( deadline - $(date +%s) )) status=0
    [ "$left" -gt 0 ] || return 124
    timeout -k 5 "$left" "$@" || status=$?
    # Killed after the grace period (137), or failed as it was stopped.
    [ "$status" -eq 0 ] || [ "$(date +%s)" -lt "$deadline" ] || status=124
    return "$status"
}

# Appends the whole lines of the JSON lines file $1, tagged with the round,
# to $out/$2 (a run stopped mid-line leaves a part of one).
keep_lines() {
    head -n "$(wc -l < "$1")" "$1" | tag "$python" "{\"round\": $round}" >> "$out/$2"
}

# Records that the time limit stopped $what in this round.
stopped() {
    echo "  stopped at the time limit (--seconds $seconds)" >&2
    echo '{}' | tag "$python" "{\"round\": $round, \"what\": \"$what\"}" > "$out/stopped.jsonl"
}

# Runs our benchmark (the arguments after $1 and $2) and appends its JSON
# lines, tagged with the round, to $out/$1. A run that fails (a kernel that
# cannot launch on this GPU) appends one line instead, with the fields $2 and
# "error": the first line of its panic message, so that the other runs go on,
# the tables mark it failed and a list below them says why. Its stderr
# (compiling and autotuning progress) still reaches the terminal. Status 124:
# the time limit stopped it; the lines it finished (layers) are kept.
ours() {
    local file=$1 fields=$2 log status=0
    shift 2
    log=$(mktemp)
    limited "$bench" "$@" 2> >(tee "$log" >&2) > "$log.out" || status=$?
    if [ "$status" -eq 0 ] || [ "$status" -eq 124 ]; then
        keep_lines "$log.out" "$file"
    else
        local message
        # The line after "panicked at ...", else its last line.
        message=$(sed -n '/panicked at/{n;p;q}' "$log")
        [ -n "$message" ] || message=$(tail -n 1 "$log")
        [ -n "$message" ] || message="no message (killed?)"
        echo "  failed: $message" >&2
        echo '{}' | tag "$python" "{\"round\": $round, $fields, \"error\": $("$python" -c 'import json, sys; print(json.dumps(sys.argv[1]))' "$message")}" >> "$out/$file"
    fi
    rm -f "$log" "$log.out"
    return $(( status == 124 ? 124 : 0 ))
}

# PyTorch's benchmark (the arguments after $1), its JSON lines tagged and
# appended to $out/$1; status 124 when the time limit stopped it (the
# layers it finished are kept). A failure is recorded in
# $out/failed.jsonl (its stderr reached the terminal) and the runs go on.
theirs() {
    local file=$1 lines status=0
    shift
    lines=$(mktemp)
    limited "$python" scripts/torch_gpu_bench.py "$@" --device "$torch_device" > "$lines" || status=$?
    if [ "$status" -eq 0 ] || [ "$status" -eq 124 ]; then
        keep_lines "$lines" "$file"
    else
        echo "  PyTorch's benchmark failed (status $status)" >&2
        echo '{}' | tag "$python" "{\"round\": $round, \"what\": \"$what\", \"error\": \"exit status $status\"}" >> "$out/failed.jsonl"
    fi
    rm -f "$lines"
    return $(( status == 124 ? 124 : 0 ))
}

# One round: every run once, ours before PyTorch's; status 124 when the time
# limit stopped a run ($what names it).
round() {
    local mode p
    for mode in train infer; do
        for p in f32 "$precision"; do
            what="U-Net $mode, ours $backend $p"
            echo "round $round of $rounds: $what..." >&2
            ours ours_unet.jsonl "\"mode\": \"$mode\", \"precision\": \"$p\"" \
                unet --mode "$mode" --backend "$backend" --precision "$p" "${shape[@]}" || return
        done
        for p in f32 f16; do
            what="U-Net $mode, PyTorch $torch_device $p"
            echo "round $round of $rounds: $what..." >&2
            theirs torch_unet.jsonl unet --mode "$mode" --precision "$p" "${shape[@]}" || return
        done
    done
    what="layers, ours"
    echo "round $round of $rounds: layers..." >&2
    ours ours_conv.jsonl '"impl": "ours"' conv --backend "$backend" --reps "$steps" --impl ours || return
    what="layers, one Burn convolution per group"
    ours per_group_conv.jsonl '"impl": "burn-per-group"' conv --backend "$backend" --reps "$steps" --impl burn-per-group || return
    what="layers, PyTorch"
    theirs torch_conv.jsonl conv --steps "$steps"
}

shape=(--base "$base" --batch "$batch" --size "$size" --steps "$steps")
for round in $(seq 1 "$rounds"); do
    round || { stopped; break; }
done

"$python" scripts/gpu_bench_report.py "$out"
