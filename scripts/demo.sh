#!/usr/bin/env bash
# The main job on the built-in demo model: installs dependencies, builds ternq in release mode and
# quantizes a small deterministic transformer-like model, printing the per-layer report.
# Extra arguments go to `ternq quantize` (e.g. --format gguf -o demo.gguf).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
swift build -c release --product ternq >&2
exec .build/release/ternq quantize "$@"
