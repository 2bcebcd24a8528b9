#!/usr/bin/env bash
# ternq's TQ2_0/TQ1_0 encoder against ggml's own quantizer (what llama-quantize runs), kernel to kernel,
# in one run on the same machine, with the same element count and thread count.
#
#   Benchmarks/ggml/compare.sh [ELEMENTS] [THREADS] [RUNS]
#
# ELEMENTS (default 64 Mi) must be a multiple of 4096 (ggml rows); THREADS defaults to nproc; RUNS (>= 5) to 7;
# ROUNDS (environment, default 3) alternating ggml / ternq rounds per type.
# Needs the llama.cpp build of scripts/build-llama-cpp.sh (libggml-base.a) and a C compiler; builds
# `ternq` in release mode if .build/release/ternq is missing (TERNQ=/path/to/ternq measures another binary). Prints one line per type and the ratio
# ternq GB/s ÷ ggml GB/s (both: float32 input bytes per second, median of RUNS after a warm-up run).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
LLAMA=${LLAMA_CPP_DIR:-/root/.cache/ternq/llama_cpp_python-0.3.36/vendor/llama.cpp}
ELEMENTS=${1:-67108864}
THREADS=${2:-$(nproc)}
RUNS=${3:-7}
LIB="$LLAMA/build/ggml/src/libggml-base.a"
if [ ! -f "$LIB" ]; then
    echo "compare.sh: $LIB not found: run scripts/build-llama-cpp.sh first (or set LLAMA_CPP_DIR)" >&2
    exit 1
fi
OUT="$ROOT/.build/ggml-bench"
mkdir -p "$OUT"
# libggml-base.a's ggml-quants.c uses OpenMP (for the iq tables) and gguf.cpp the C++ runtime.
${CC:-cc} -O2 -Wall -Wextra -I"$LLAMA/ggml/include" "$ROOT/Benchmarks/ggml/ggml_tq_bench.c" "$LIB" \
    -fopenmp -lstdc++ -lm -lpthread -o "$OUT/ggml_tq_bench"
TERNQ=${TERNQ:-"$ROOT/.build/release/ternq"}
if [ ! -x "$TERNQ" ]; then
    (cd "$ROOT" && swift build -c release --product ternq)
fi
ROUNDS=${ROUNDS:-3}
echo "elements $ELEMENTS, threads $THREADS, runs $RUNS (median), $ROUNDS alternating rounds, $(uname -m), $(nproc) cores"
# ggml and ternq alternate ROUNDS times per type, so a slower or faster moment of a shared machine lands on
# both; each round's ratio is printed, then the median ratio.
for TYPE in tq2_0 tq1_0; do
    ROUND_FILE=$(mktemp)
    for _ in $(seq "$ROUNDS"); do
        GGML=$("$OUT/ggml_tq_bench" "$ELEMENTS" "$THREADS" "$RUNS" "$TYPE")
        TQ=$("$TERNQ" bench --backend cpu --layout "$TYPE" --dtype F32 --elements "$ELEMENTS" --threads "$THREADS" \
            --runs "$RUNS" --json | head -n 1)
        printf '%s\t%s\n' "$GGML" "$TQ" >> "$ROUND_FILE"
    done
    python3 - "$TYPE" "$ROUND_FILE" <<'PY'
import json, statistics, sys
kind, path = sys.argv[1], sys.argv[2]
ratios = []
for line in open(path):
    ggml, ternq = (json.loads(part) for part in line.rstrip("\n").split("\t"))
    g, t = ggml["gigabytes_per_second"], ternq["gigabytes_per_second"]
    ratios.append(t / g)
    print(f"{kind}: ggml {g:.3f} GB/s ({ggml['seconds']:.4f} s), ternq {t:.3f} GB/s ({ternq['seconds']:.4f} s, "
          f"roofline ratio {ternq['roofline_ratio']:.3f}), ternq/ggml = {t / g:.1f}x")
print(f"{kind}: median ternq/ggml over {len(ratios)} rounds = {statistics.median(ratios):.1f}x")
PY
    rm -f "$ROUND_FILE"
done
