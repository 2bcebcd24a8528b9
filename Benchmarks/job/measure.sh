#!/usr/bin/env bash
# Whole job (`ternq quantize`, release, CPU backend) against `ternq bench` on a warm page cache and against
# the disk's sequential read on a cold one, per output format, medians of $REPS (3) runs, peak RSS.
# Usage: Benchmarks/job/measure.sh [cachedir (default ~/.cache/ternq/job-bench)] [generate.py options]
# Default checkpoint: generate.py --layers 2 (0.94 GB F32, llama-shaped; largest tensor 262 MB), also
# converted to GGUF. Needs python3 + numpy. Prints a Markdown table; the largest hypervisor steal share of
# the processor time (/proc/stat) is given with every row because the machine may be shared.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
work="${1:-$HOME/.cache/ternq/job-bench}"; shift || true
[ $# -gt 0 ] || set -- --layers 2
mkdir -p "$work"
[ -f "$work/model.safetensors" ] || python3 "$root/Benchmarks/checkpoint/generate.py" "$work/model.safetensors" "$@"
[ -f "$work/model.gguf" ] || python3 "$here/to_gguf.py" "$work/model.safetensors" "$work/model.gguf"
[ -n "${TERNQ:-}" ] || (cd "$root" && swift build -c release --static-swift-stdlib --product ternq >/dev/null)
echo "$(date -u +%FT%TZ) $(uname -m), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
python3 "$here/measure.py" "$work"
