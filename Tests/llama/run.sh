#!/usr/bin/env bash
# llama.cpp interop tests (issue 7): a generated llama-architecture GGUF goes through `ternq quantize`
# to TQ2_0 and TQ1_0; llama.cpp's own tools load and run the results, and llama.cpp's gguf-py checks the
# values against an independent reference. See Tests/llama/test_llama.py for the list of cases.
#
# Usage: Tests/llama/run.sh [path/to/ternq] [-- extra test_llama.py arguments, e.g. --keep --work DIR]
# Default ternq: .build/release/ternq (built with `swift build -c release --product ternq` if stale).
# llama.cpp is built (once, cached) by scripts/build-llama-cpp.sh.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
ternq="${TERNQ:-}"
if [ $# -gt 0 ] && [ "$1" != "--" ]; then ternq="$1"; shift; fi
[ "${1:-}" = "--" ] && shift
if [ -z "$ternq" ]; then
    ternq="$root/.build/release/ternq"
    if [ ! -x "$ternq" ] || [ -n "$(find "$root/Sources" "$root/Package.swift" -newer "$ternq" -print -quit)" ]; then
        echo "llama: building ternq (release)" >&2
        (cd "$root" && swift build -c release --product ternq >/dev/null)
    fi
fi
llama="$(bash "$root/scripts/build-llama-cpp.sh" | tail -n 1)"
# gguf-py from the same llama.cpp tree as the tools (its dependencies: numpy, pyyaml).
python="${PYTHON:-python3}"
if ! PYTHONPATH="$llama/gguf-py" "$python" -c "import numpy, yaml, gguf" 2>/dev/null; then
    venv="$root/.build/llama-venv"
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    PYTHONPATH="$llama/gguf-py" "$venv/bin/python" -c "import numpy, yaml, gguf" 2>/dev/null ||
        "$venv/bin/python" -m pip install --quiet numpy pyyaml || {
            echo "llama: cannot install the PyPI packages numpy, pyyaml" >&2; exit 1; }
    python="$venv/bin/python"
fi
export PYTHONPATH="$llama/gguf-py${PYTHONPATH:+:$PYTHONPATH}"
exec "$python" "$root/Tests/llama/test_llama.py" --ternq "$ternq" --llama-bin "$llama/build/bin" \
    --vocab "$llama/models/ggml-vocab-llama-spm.gguf" "$@"
