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
    (cd "$ROOT" && swift build -c release --static-swift-stdlib --product ternq)
fi
ROUNDS=${ROUNDS:-3}
# The machine's processor ticks (user … steal) and the steal share since a reading, from /proc/stat
# (empty where it is missing): a shared VM's hypervisor steal slows both sides and is printed per round.
cpu_ticks() { [ -r /proc/stat ] && awk '/^cpu /{t=0; for (i=2; i<=9; i++) t+=$i; print t, $9; exit}' /proc/stat || true; }
steal_since() {
    [ -n "$1" ] || return 0
    read -r t0 s0 <<< "$1"; read -r t1 s1 <<< "$(cpu_ticks)"
    [ "$t1" -gt "$t0" ] && awk -v s="$((s1 - s0))" -v t="$((t1 - t0))" 'BEGIN{printf "%.4f", s / t}' || true
}
echo "elements $ELEMENTS, threads $THREADS, runs $RUNS (median), $ROUNDS alternating rounds, $(uname -m), $(nproc) cores"
# ggml and ternq alternate ROUNDS times per type, so a slower or faster moment of a shared machine lands on
# both; each round's ratio is printed, then the median ratio.
for TYPE in tq2_0 tq1_0; do
    ROUND_FILE=$(mktemp)
    for _ in $(seq "$ROUNDS"); do
        BEFORE=$(cpu_ticks)
        GGML=$("$OUT/ggml_tq_bench" "$ELEMENTS" "$THREADS" "$RUNS" "$TYPE")
        GGML_STEAL=$(steal_since "$BEFORE")
        TQ=$("$TERNQ" bench --backend cpu --layout "$TYPE" --dtype F32 --elements "$ELEMENTS" --threads "$THREADS" \
            --runs "$RUNS" --json | head -n 1)
        printf '%s\t%s\t%s\n' "$GGML" "$TQ" "$GGML_STEAL" >> "$ROUND_FILE"
    done
    python3 - "$TYPE" "$ROUND_FILE" <<'PY'
import json, statistics, sys
kind, path = sys.argv[1], sys.argv[2]
ratios = []
noisy = 0
for line in open(path):
    ggml_text, ternq_text, ggml_steal = line.rstrip("\n").split("\t")
    ggml, ternq = json.loads(ggml_text), json.loads(ternq_text)
    g, t = ggml["gigabytes_per_second"], ternq["gigabytes_per_second"]
    ratios.append(t / g)
    steals = [float(ggml_steal) if ggml_steal else None, ternq.get("cpu_steal_fraction")]
    noisy += any(s is not None and s > 0.05 for s in steals)
    shown = "/".join("?" if s is None else f"{100 * s:.1f}%" for s in steals)
    print(f"{kind}: ggml {g:.3f} GB/s ({ggml['seconds']:.4f} s), ternq {t:.3f} GB/s ({ternq['seconds']:.4f} s, "
          f"roofline ratio {ternq['roofline_ratio']:.3f}), ternq/ggml = {t / g:.1f}x, cpu steal ggml/ternq {shown}")
print(f"{kind}: median ternq/ggml over {len(ratios)} rounds = {statistics.median(ratios):.1f}x"
      + (f" ({noisy} round(s) with more than 5% cpu steal: not representative)" if noisy else ""))
PY
    rm -f "$ROUND_FILE"
done
