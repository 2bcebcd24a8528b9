#!/usr/bin/env bash
# Speed of `ternq quantize model.gguf` against `llama-quantize model.gguf out.gguf TQ2_0|TQ1_0` on the same
# F32 GGUF of a llama-shaped model, in one run, warm page cache (issue 7, "Speed"; a benchmark, not a test).
#
# Usage: Benchmarks/llama/bench.sh [path/to/ternq]
# Environment:
#   BENCH_DIR     where the model and outputs go (default .build/llama-bench; the model is reused)
#   N_EMBD N_FF LAYERS HEADS   model shape (default 2048 5632 4 16: ~1.1 GB of F32, every row a multiple of 256)
#   THREADS       llama-quantize threads (default 2); ternq uses every core (2 on the CI machine)
#   REPEATS       timed runs per tool and type, the best is reported (default 3)
#   TYPES         default "tq2_0 tq1_0"
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
ternq="${1:-$root/.build/release/ternq}"
[ -x "$ternq" ] || { echo "error: $ternq not found; run: swift build -c release --static-swift-stdlib --product ternq" >&2; exit 1; }
llama="$(bash "$root/scripts/build-llama-cpp.sh" | tail -n 1)"
dir="${BENCH_DIR:-$root/.build/llama-bench}"
n_embd="${N_EMBD:-2048}" n_ff="${N_FF:-5632}" layers="${LAYERS:-4}" heads="${HEADS:-16}"
threads="${THREADS:-2}" repeats="${REPEATS:-3}" types="${TYPES:-tq2_0 tq1_0}"
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
# best COMMAND...: runs it $repeats times; prints "<best wall s> <best user+sys CPU s>" (CPU time is the
# steadier figure on a shared machine).
best() {
    local i w c bw="" bc=""
    for ((i = 0; i < repeats; i++)); do
        { TIMEFORMAT='%R %U %S'; time "$@" >/dev/null 2>"$dir/last.err"; } 2>"$dir/time.txt" \
            || { cat "$dir/last.err" >&2; return 1; }
        read -r w c < <(awk '{ printf "%s %.3f\n", $1, $2 + $3 }' "$dir/time.txt")
        bw=$(awk -v a="$w" -v b="$bw" 'BEGIN { if (b == "" || a < b) b = a; print b }')
        bc=$(awk -v a="$c" -v b="$bc" 'BEGIN { if (b == "" || a < b) b = a; print b }')
    done
    echo "$bw $bc"
}
calc() { awk "BEGIN { printf \"%.3f\", $1 }"; }
echo "model: $model ($(calc "$bytes / 1e9") GB F32; n_embd $n_embd, n_ff $n_ff, $layers layers)"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-6s %-44s %8s %8s %8s\n' type tool "wall s" "GB/s" "CPU s"
row() { printf '%-6s %-44s %8.3f %8.3f %8.3f\n' "$1" "$2" "$3" "$(calc "$bytes / $3 / 1e9")" "$4"; }
for typ in $types; do
    T=$(echo "$typ" | tr a-z A-Z)
    # llama-quantize by default also turns token_embd into Q6_K; with --token-embedding-type f32 it does the
    # same work as ternq (block weights ternary, everything else copied).
    r=$(best "$llama/build/bin/llama-quantize" "$model" "$dir/llama-$typ.gguf" "$T" "$threads")
    read -r dw dc <<<"$r"
    r=$(best "$llama/build/bin/llama-quantize" --token-embedding-type f32 "$model" "$dir/llama-$typ.gguf" "$T" "$threads")
    read -r lw lc <<<"$r"
    r=$(best "$ternq" quantize "$model" -o "$dir/ternq-$typ.gguf" --gguf-type "$typ" --backend cpu --quiet --force)
    read -r tw tc <<<"$r"
    row "$T" "llama-quantize ($threads threads, default)" "$dw" "$dc"
    row "$T" "llama-quantize ($threads threads, token_embd f32)" "$lw" "$lc"
    row "$T" "ternq quantize --backend cpu" "$tw" "$tc"
    printf '%-6s llama-quantize / ternq, wall: %.2fx default, %.2fx same work; CPU: %.2fx, %.2fx\n' "$T" \
        "$(calc "$dw / $tw")" "$(calc "$lw / $tw")" "$(calc "$dc / $tc")" "$(calc "$lc / $tc")"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
