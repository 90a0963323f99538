# Shared by the benchmark scripts (sourced, not run).

# The first python among .venv-bench, $PYTHON and python3 for which
# `python -c "$1"` succeeds; empty if none.
find_python() {
    local candidate
    for candidate in .venv-bench/bin/python "${PYTHON:-}" python3; do
        if [ -n "$candidate" ] && "$candidate" -c "$1" 2>/dev/null; then
            echo "$candidate"
            return
        fi
    done
}

# The path of the executable that cargo built for the target named $2,
# read from cargo's JSON messages (`--message-format=json`) on stdin; $1 is
# a python.
cargo_executable() {
    "$1" -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("target", {}).get("name") == sys.argv[1] and m.get("executable"):
        print(m["executable"])' "$2" | tail -n 1
}

# Builds the `bench` benchmark (dev profile: the test build's optimised
# dependencies) and prints its path; $1 is a python to read cargo's JSON.
bench_binary() {
    cargo bench -q --profile dev --bench bench --no-run --message-format=json 2>/dev/null \
        | cargo_executable "$1" bench
}

# Adds the JSON object $2 to every JSON line on stdin ($1: a python).
tag() {
    "$1" -c 'import json, sys
extra = json.loads(sys.argv[1])
for line in sys.stdin:
    if line.strip():
        d = json.loads(line); d.update(extra); print(json.dumps(d))' "$2"
}
