#!/usr/bin/env bash
# Runs on the GPU machine from the repository root, after Benchmarks/gpu/prepare-bundle.sh ran here and
# .device-bundle was carried. Prints the device list, checks GPU == CPU byte for byte on large tensors of
# every input type, and runs the throughput benchmark for every backend. Results go to $OUT (or ./gpu-out).
set -uo pipefail
out="${OUT:-$PWD/gpu-out}"
mkdir -p "$out"
bundle="$PWD/.device-bundle"
export LD_LIBRARY_PATH="$bundle/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export OCL_ICD_VENDORS="$bundle/vendors"
ternq="$bundle/ternq"
{
    echo "== nvidia-smi"; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1
    echo "== ternq devices"; "$ternq" devices 2>&1
    for dtype in F32 F16 BF16; do
        for n in 268435456 100000007; do
            echo "== bench --backend all --dtype $dtype --elements $n (includes byte-equality check)"
            timeout 240 "$ternq" bench --backend all --dtype "$dtype" --elements "$n" --runs 5 2>&1
            timeout 240 "$ternq" bench --backend all --dtype "$dtype" --elements "$n" --runs 5 --json > "$out/bench-$dtype-$n.json" 2>&1
        done
    done
} 2>&1 | tee "$out/device-log.txt"
