#!/usr/bin/env bash
# Speed of `ternq quantize model.gguf` against `llama-quantize model.gguf out.gguf TQ2_0|TQ1_0` on the same
# F32 GGUF of a llama-shaped model, in one run, warm page cache (issue 7, "Speed"; a benchmark, not a test).
#
# Usage: Benchmarks/llama/bench.sh [path/to/ternq]
# Environment:
#   BENCH_DIR     where the model and outputs go (default .build/llama-bench; the model is reused)
#   N_EMBD N_FF LAYERS HEADS   model shape (default 2048 5632 4 16: ~1.1 GB of F32, every row a multiple of 256)
#   THREADS       llama-quantize threads (default 2); ternq uses every core (2 on the CI machine)
#   REPEATS       timed runs per tool and type, the best is reported (default 2)
#   TYPES         default "tq2_0 tq1_0"
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
ternq="${1:-$root/.build/release/ternq}"
[ -x "$ternq" ] || { echo "error: $ternq not found; run: swift build -c release --product ternq" >&2; exit 1; }
llama="$(bash "$root/scripts/build-llama-cpp.sh" | tail -n 1)"
dir="${BENCH_DIR:-$root/.build/llama-bench}"
n_embd="${N_EMBD:-2048}" n_ff="${N_FF:-5632}" layers="${LAYERS:-4}" heads="${HEADS:-16}"
threads="${THREADS:-2}" repeats="${REPEATS:-2}" types="${TYPES:-tq2_0 tq1_0}"
python="${PYTHON:-python3}"
[ -x "$root/.build/llama-venv/bin/python" ] && python="$root/.build/llama-venv/bin/python"
export PYTHONPATH="$llama/gguf-py${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$dir"
model="$dir/llama-${n_embd}x${layers}-f32.gguf"
if [ ! -f "$model" ]; then
    echo "generating $model" >&2
    "$python" "$root/Tests/llama/make_model.py" --vocab "$llama/models/ggml-vocab-llama-spm.gguf" -o "$model.tmp" \
        --n-embd "$n_embd" --n-ff "$n_ff" --layers "$layers" --heads "$heads" --kv-heads "$heads" --ctx 2048
    mv "$model.tmp" "$model"
fi
bytes=$(stat -c %s "$model")
cat "$model" >/dev/null   # warm the page cache
now() { date +%s.%N; }
best() { # command... -> best wall seconds of $repeats runs
    local b="" t0 t1 s i
    for ((i = 0; i < repeats; i++)); do
        t0=$(now); "$@" >/dev/null 2>"$dir/last.err" || { cat "$dir/last.err" >&2; return 1; }; t1=$(now)
        b=$(awk -v a="$t0" -v z="$t1" -v b="$b" 'BEGIN { s = z - a; if (b == "" || s < b) b = s; printf "%.6f", b }')
    done
    echo "$b"
}
calc() { awk "BEGIN { printf \"%.3f\", $1 }"; }
echo "model: $model ($(calc "$bytes / 1e9") GB F32; n_embd $n_embd, n_ff $n_ff, $layers layers)"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
printf '%-6s %-32s %9s %8s\n' type tool seconds GB/s
for typ in $types; do
    T=$(echo "$typ" | tr a-z A-Z)
    tl=$(best "$llama/build/bin/llama-quantize" "$model" "$dir/llama-$typ.gguf" "$T" "$threads")
    tt=$(best "$ternq" quantize "$model" -o "$dir/ternq-$typ.gguf" --gguf-type "$typ" --backend cpu --quiet --force)
    printf '%-6s %-32s %9.3f %8.3f\n' "$T" "llama-quantize ($threads threads)" "$tl" "$(calc "$bytes / $tl / 1e9")"
    printf '%-6s %-32s %9.3f %8.3f\n' "$T" "ternq quantize --backend cpu" "$tt" "$(calc "$bytes / $tt / 1e9")"
    printf '%-6s ratio llama-quantize / ternq: %.2fx\n' "$T" "$(calc "$tl / $tt")"
done
