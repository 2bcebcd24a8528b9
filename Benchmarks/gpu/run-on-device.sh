#!/usr/bin/env bash
# Runs on the GPU machine from the repository root, after Benchmarks/gpu/prepare-bundle.sh ran here and
# .device-bundle was carried. One script, under 10 minutes on a GPU machine even when every step hits its timeout
# (6 benches x 70 s, verify 30 s, 2 jobs x 50 s, checkpoint generation; about 3-5 minutes expected):
#   1. the device list (nvidia-smi, ternq devices);
#   2. GPU == CPU byte for byte on F32, F16 and BF16 tensors of 256 Mi and 100,000,007 elements
#      (`ternq bench --backend all` compares every backend's alpha bits, trits and zero count; exit 1 if not);
#   3. per run: kernel GB/s against the device read bound (read probe over the same bytes) and the device copy
#      kernel, end to end against host->device bandwidth (pinned and pageable), one summary line each;
#   4. a whole quantization job on a ~1 GB llama-shaped F32 checkpoint, GPU and CPU backends, byte-identical.
# Results go to $OUT (or ./gpu-out); the summary is also in $OUT/device-log.txt.
#
# Dry run anywhere (e.g. with PoCL as the "device"), without the bundle:
#   TERNQ_BIN=.build/release/ternq GPU_DEVICE=pthread GPU_ELEMENTS=16777216 GPU_ODD_ELEMENTS=10000019 \
#   GPU_CKPT_ARGS="--layers 1 --hidden 1024 --intermediate 2816 --vocab 8000" bash Benchmarks/gpu/run-on-device.sh
set -uo pipefail
out="${OUT:-$PWD/gpu-out}"
mkdir -p "$out"
start=$SECONDS
bundle="$PWD/.device-bundle"
if [ -n "${TERNQ_BIN:-}" ]; then
    ternq="$TERNQ_BIN"  # dry run: a local build and the system's OpenCL drivers
else
    export LD_LIBRARY_PATH="$bundle/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    export OCL_ICD_VENDORS="$bundle/vendors"
    ternq=/tmp/ternq
    gunzip -c "$bundle/ternq.gz" > "$ternq" && chmod +x "$ternq"
fi
large="${GPU_ELEMENTS:-268435456}"
odd="${GPU_ODD_ELEMENTS:-100000007}"
device_args=()
if [ -n "${GPU_DEVICE:-}" ]; then device_args=(--device "$GPU_DEVICE"); fi
ckpt_args="${GPU_CKPT_ARGS:---layers 3 --hidden 2048 --intermediate 5632 --vocab 32000}"

# summarize FILE: one line per backend from bench --json output (python3 only, no numpy).
summarize() {
    python3 - "$1" <<'EOF'
import json, sys
for line in open(sys.argv[1]):
    line = line.strip()
    if not line.startswith("{"):
        continue
    r = json.loads(line)
    m = r.get("device_metrics") or {}
    head = f"  {r['backend']:6} {r['dtype']:4} n={r['elements']}: {r['gigabytes_per_second']:.2f} GB/s"
    if not m:
        print(f"{head} (host roofline ratio {r['roofline_ratio']:.2f})")
        continue
    print(f"{head}; kernel {m.get('kernel_gbps', float('nan')):.1f} GB/s = {m.get('kernel_ratio', float('nan')):.2f} of device read "
          f"{m['device_read_gbps']:.1f} GB/s ({m.get('kernel_copy_ratio', float('nan')):.2f} of copy {m['device_copy_gbps']:.1f}); "
          f"end to end {m['end_to_end_gbps']:.2f} GB/s = {m['end_to_end_ratio']:.2f} of host->device "
          f"{m['host_to_device_gbps']:.1f} GB/s (pageable {m['host_to_device_pageable_gbps']:.1f})")
EOF
}

# job_summary FILE: the whole job's input bytes, seconds and GB/s from quantize --json.
job_summary() {
    python3 - "$1" <<'EOF'
import json, sys
t = json.load(open(sys.argv[1]))["totals"]
print("  job: %.3f GB in %.3f s = %.2f GB/s" % (t["input_bytes"] / 1e9, t["seconds"], t["gigabytes_per_second"]))
EOF
}

{
    echo "== nvidia-smi"; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1
    echo "== ternq devices"; "$ternq" devices 2>&1
    # One run per configuration: JSON to a file, exit status printed (non-zero = outputs differ or failure).
    for config in "F32 $large" "F16 $large" "BF16 $large" "F32 $odd" "F16 $odd" "BF16 $odd"; do
        set -- $config
        echo "== bench --backend all --dtype $1 --elements $2 (also checks GPU == CPU byte for byte)"
        timeout 70 "$ternq" bench --backend all "${device_args[@]}" --dtype "$1" --elements "$2" --runs 5 --json \
            > "$out/bench-$1-$2.json"
        status=$?
        echo "exit status $status ($([ $status -eq 0 ] && echo 'GPU == CPU bytes' || echo 'MISMATCH OR FAILURE'))"
        summarize "$out/bench-$1-$2.json"
    done
    echo "== ternq verify (demo model, every backend)"; timeout 30 "$ternq" verify 2>&1
    # The whole job on a ~1 GB llama-shaped F32 checkpoint (generated here: the device's python3 has numpy),
    # GPU and CPU backends, warm page cache; the two GGUF outputs must be byte-identical.
    ckpt=/tmp/ternq-gpu-ckpt/model.safetensors
    mkdir -p /tmp/ternq-gpu-ckpt
    # shellcheck disable=SC2086
    if python3 Benchmarks/checkpoint/generate.py "$ckpt" $ckpt_args >/dev/null 2>"$out/generate.err"; then
        echo "== checkpoint $(du -h "$ckpt" | cut -f1)"
        cat "$ckpt" >/dev/null
        for backend in opencl cpu; do
            args=(--backend "$backend")
            if [ "$backend" = opencl ]; then args+=("${device_args[@]}"); fi
            echo "== quantize checkpoint -> GGUF TQ2_0, ${args[*]}"
            /usr/bin/time -v timeout 50 "$ternq" quantize "$ckpt" -o "/tmp/ternq-gpu-ckpt/out-$backend.gguf" \
                "${args[@]}" --force --quiet --json "$out/job-$backend.json" 2>"$out/job-$backend.time"
            echo "exit status $?"
            job_summary "$out/job-$backend.json"
            grep -E 'Maximum resident|Elapsed' "$out/job-$backend.time"
        done
        cmp /tmp/ternq-gpu-ckpt/out-opencl.gguf /tmp/ternq-gpu-ckpt/out-cpu.gguf && echo "job outputs byte-identical"
    else
        echo "checkpoint generation failed (python3 with numpy needed): job skipped"; tail -3 "$out/generate.err"
    fi
    echo "== total $((SECONDS - start)) s"
} 2>&1 | tee "$out/device-log.txt"
