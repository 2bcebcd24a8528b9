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
ternq=/tmp/ternq
gunzip -c "$bundle/ternq.gz" > "$ternq" && chmod +x "$ternq"
{
    echo "== nvidia-smi"; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1
    echo "== ternq devices"; "$ternq" devices 2>&1
    # One run per configuration: JSON to a file, exit status printed (non-zero = outputs differ or failure).
    for config in "F32 268435456" "F16 268435456" "BF16 268435456" "F32 100000007"; do
        set -- $config
        echo "== bench --backend all --dtype $1 --elements $2 (also checks GPU == CPU byte for byte)"
        timeout 180 "$ternq" bench --backend all --dtype "$1" --elements "$2" --runs 5 --json \
            > "$out/bench-$1-$2.json"
        echo "exit status $?"
        cat "$out/bench-$1-$2.json"
    done
    echo "== ternq verify (demo model, every backend)"; timeout 60 "$ternq" verify 2>&1
} 2>&1 | tee "$out/device-log.txt"
