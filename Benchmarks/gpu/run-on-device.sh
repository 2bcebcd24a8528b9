#!/usr/bin/env bash
# Runs on the GPU machine from the repository root, after Benchmarks/gpu/prepare-bundle.sh ran here and
# .device-bundle was carried. Prints the device list, checks GPU == CPU byte for byte on large tensors of
# every input type, runs the throughput benchmark for every backend (kernel GB/s against the device's copy
# bandwidth, end to end against host->device bandwidth: `device_metrics` in the JSON), and a whole quantization
# job on a ~1 GB checkpoint with both backends. Results go to $OUT (or ./gpu-out). About 4-6 minutes.
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
    # The whole job on a ~1 GB llama-shaped F32 checkpoint (generated here: the device's python3 has numpy),
    # GPU and CPU backends, warm page cache; the two GGUF outputs must be byte-identical.
    ckpt=/tmp/ternq-gpu-ckpt/model.safetensors
    if python3 Benchmarks/checkpoint/generate.py "$ckpt" --layers 3 --hidden 2048 --intermediate 5632 --vocab 32000 \
            >/dev/null 2>&1; then
        cat "$ckpt" >/dev/null
        for backend in opencl cpu; do
            echo "== quantize ~1 GB F32 checkpoint -> GGUF TQ2_0, --backend $backend"
            /usr/bin/time -v timeout 120 "$ternq" quantize "$ckpt" -o "/tmp/ternq-gpu-ckpt/out-$backend.gguf" \
                --backend "$backend" --force --quiet --json "$out/job-$backend.json" 2>"$out/job-$backend.time"
            echo "exit status $?"
            grep -E '"gigabytes_per_second"|"seconds"|"input_bytes"' "$out/job-$backend.json"
            grep -E 'Maximum resident|Elapsed' "$out/job-$backend.time"
        done
        cmp /tmp/ternq-gpu-ckpt/out-opencl.gguf /tmp/ternq-gpu-ckpt/out-cpu.gguf && echo "job outputs byte-identical"
    else
        echo "checkpoint generation failed (python3 with numpy needed): job skipped"
    fi
} 2>&1 | tee "$out/device-log.txt"
