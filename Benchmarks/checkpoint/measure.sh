#!/usr/bin/env bash
# Peak RSS (/usr/bin/time -v) and GB/s of ternq (release, CPU) vs the numpy baseline on a generated
# checkpoint (warm page cache). Usage: measure.sh [workdir] [generate.py options...]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
work="${1:-/tmp/ternq-checkpoint}"; shift || true
mkdir -p "$work"
[ -f "$work/model.safetensors" ] || python3 "$here/generate.py" "$work/model.safetensors" "$@"
(cd "$root" && swift build -c release --static-swift-stdlib --product ternq >/dev/null)
cat "$work/model.safetensors" > /dev/null   # warm the page cache
for format in safetensors tern gguf; do
    /usr/bin/time -v "$root/.build/release/ternq" quantize "$work/model.safetensors" -o "$work/out.$format" \
        --format "$format" --force --json "$work/report.$format.json" --quiet 2> "$work/time.$format.txt"
    python3 -c "import json,sys; t=json.load(open('$work/report.$format.json'))['totals']; print('ternq $format: %.3f GB in %.2f s = %.3f GB/s' % (t['input_bytes']/1e9, t['seconds'], t['gigabytes_per_second']))"
    grep -E "Maximum resident|Elapsed" "$work/time.$format.txt"
done
/usr/bin/time -v python3 "$here/numpy_quantize.py" "$work/model.safetensors" "$work/numpy.safetensors" 2> "$work/time.numpy.txt"
grep -E "Maximum resident|Elapsed" "$work/time.numpy.txt"
