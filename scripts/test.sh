#!/usr/bin/env bash
# The full test suite: installs dependencies, runs every Swift test in release mode (the OpenCL tests run
# on PoCL when no GPU is present), then the interoperability checks with the PyPI readers gguf and
# safetensors.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
# PoCL compiles kernels into a cache; keep it inside the build folder so any user can run the tests.
export POCL_CACHE_DIR="${POCL_CACHE_DIR:-$PWD/.build/pocl-cache}"
mkdir -p "$POCL_CACHE_DIR"
swift build -c release -Xswiftc -enable-testing --build-tests
swift test -c release -Xswiftc -enable-testing --skip-build
# Coverage-guided fuzzing of every parser (libFuzzer; 2,000 inputs each here, FUZZ_RUNS=100000 by hand).
bash scripts/fuzz.sh
if [ -f Tests/interop/run.sh ]; then
    bash Tests/interop/run.sh
fi
# llama.cpp runs what ternq writes (issue 7): builds llama.cpp's tools once (cached in ~/.cache/ternq,
# about 4 minutes on 2 cores), then quantizes a generated llama model and runs it (Tests/llama).
bash Tests/llama/run.sh "$PWD/.build/release/ternq"
