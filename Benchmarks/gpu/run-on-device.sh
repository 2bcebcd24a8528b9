#!/usr/bin/env bash
# OpenCL GPU check for ternq (issue 3), in two steps:
#   Benchmarks/gpu/run-on-device.sh prepare   # here: static release build + ICD loader into .device-bundle/
#   Benchmarks/gpu/run-on-device.sh run       # on the GPU machine (carry .device-bundle): devices, byte
#                                             # equality GPU vs CPU on large tensors, bench --backend all
# Outputs go to $OUT (or ./out) as devices.txt, check.txt, bench.json.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUNDLE=.device-bundle
case "${1:-}" in
prepare)
    swift build -c release --product ternq --static-swift-stdlib
    rm -rf "$BUNDLE" && mkdir -p "$BUNDLE/vendors"
    cp "$(swift build -c release --show-bin-path)/ternq" "$BUNDLE/"
    cp -L "$(ldconfig -p | awk '/libOpenCL.so.1 /{print $NF; exit}')" "$BUNDLE/libOpenCL.so.1"
    # The NVIDIA driver registers its OpenCL library under this name.
    echo libnvidia-opencl.so.1 > "$BUNDLE/vendors/nvidia.icd"
    ls -l "$BUNDLE"
    ;;
run)
    OUTDIR="${OUT:-./out}"; mkdir -p "$OUTDIR"
    export LD_LIBRARY_PATH="$PWD/$BUNDLE${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    export OCL_ICD_VENDORS="$PWD/$BUNDLE/vendors"
    "$BUNDLE/ternq" devices 2>&1 | tee "$OUTDIR/devices.txt"
    for n in 1000003 67108864 268435457; do
        "$BUNDLE/ternq" devices --check opencl --check-elements "$n" 2>&1 | tail -1 | tee -a "$OUTDIR/check.txt"
    done
    for dtype in F32 F16 BF16; do
        "$BUNDLE/ternq" bench --backend all --dtype "$dtype" --elements 268435456 --json 2>&1 | tee -a "$OUTDIR/bench.json"
    done
    ;;
*)
    echo "usage: $0 prepare|run" >&2; exit 2 ;;
esac
