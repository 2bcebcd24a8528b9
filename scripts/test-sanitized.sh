#!/usr/bin/env bash
# The whole Swift test suite under AddressSanitizer (Swift and the C kernels both instrumented), in its
# own build folder so it never mixes with the CI build. Not part of CI (about 5 minutes more on 2 cores);
# run it by hand after changes to unsafe-pointer code, the C kernels or the tests' buffer handling.
# Leak checking is off: the Swift runtime and the OpenCL ICDs keep allocations until exit.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD="${SANITIZE_BUILD_PATH:-.build/asan}"
export POCL_CACHE_DIR="${POCL_CACHE_DIR:-$PWD/.build/pocl-cache}"
mkdir -p "$POCL_CACHE_DIR"
# The linker's "Cannot export local symbol '__asan_*'" warnings are harmless (gold + ASan).
swift build -c release -Xswiftc -enable-testing --sanitize=address --build-tests --build-path "$BUILD"
ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1}" \
    swift test -c release -Xswiftc -enable-testing --sanitize=address --build-path "$BUILD" --skip-build "$@"
