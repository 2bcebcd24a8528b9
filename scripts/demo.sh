#!/usr/bin/env bash
# The main job on the built-in demo model: installs dependencies, builds ternq in release mode and
# quantizes a small deterministic transformer-like model, printing the per-layer report.
# Without arguments it writes ./ternq-demo.tern (replacing an earlier demo output); extra arguments go to
# `ternq quantize` instead (e.g. -o demo.gguf --force).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
swift build -c release --static-swift-stdlib --product ternq >&2
if [ "$#" -eq 0 ]; then
    set -- -o ternq-demo.tern --force
fi
exec .build/release/ternq quantize "$@"
