#!/usr/bin/env bash
# Interop check of ternq outputs with third-party readers (PyPI: gguf, safetensors, numpy).
# Usage: Tests/interop/run.sh [path/to/ternq]   (default: builds and uses .build/debug/ternq)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
ternq="${1:-${TERNQ:-}}"
if [ -z "$ternq" ]; then
    release="$root/.build/release/ternq"
    if [ -x "$release" ] && [ -z "$(find "$root/Sources" "$root/Package.swift" -newer "$release" -print -quit)" ]; then
        ternq="$release"   # up to date (e.g. just built by scripts/test.sh)
    else
        (cd "$root" && swift build --product ternq >/dev/null)
        ternq="$root/.build/debug/ternq"
    fi
fi
# Python with the third-party readers: $PYTHON if set, else python3 if it has them, else a venv in
# .build/interop-venv with `pip install gguf safetensors numpy` (from PyPI).
python="${PYTHON:-python3}"
if ! "$python" -c "import gguf, safetensors, numpy" 2>/dev/null; then
    venv="$root/.build/interop-venv"
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    "$venv/bin/python" -c "import gguf, safetensors, numpy" 2>/dev/null ||
        "$venv/bin/python" -m pip install --quiet gguf safetensors numpy || {
            echo "interop: cannot install the PyPI packages gguf, safetensors, numpy" >&2; exit 1; }
    python="$venv/bin/python"
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$python" "$root/Tests/interop/make_source.py" "$work/random.safetensors"
for source in "$root/Tests/Fixtures/tiny/tiny.safetensors" "$work/random.safetensors"; do
    name="$(basename "$source" .safetensors)"
    args=(--source "$source")
    for type in tq2_0 tq1_0; do
        "$ternq" quantize "$source" -o "$work/$name.$type.gguf" --gguf-type "$type" --json "$work/$name.$type.json" --quiet
        args+=(--gguf "$work/$name.$type.gguf" --gguf-report "$work/$name.$type.json")
    done
    "$ternq" quantize "$source" -o "$work/$name.ternary.safetensors" --json "$work/$name.st.json" --quiet
    args+=(--safetensors "$work/$name.ternary.safetensors" --st-report "$work/$name.st.json")
    "$python" "$root/Tests/interop/check_outputs.py" "${args[@]}"
done
echo "interop: OK"
