#!/usr/bin/env bash
# Builds what Benchmarks/gpu/run-on-device.sh needs on a GPU machine that has no Swift toolchain:
# a release `ternq` with the Swift runtime linked statically, the OpenCL ICD loader it links against, and an
# ICD file naming the NVIDIA driver's OpenCL library. Everything goes to .device-bundle/ (git-ignored),
# which the device tool carries (`carry: [".device-bundle"]`).
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/install-deps.sh
swift build -c release --static-swift-stdlib --product ternq
rm -rf .device-bundle
mkdir -p .device-bundle/lib .device-bundle/vendors
# Stripped and compressed so the bundle stays well under the device tool's 64 MiB carry limit.
strip -o .device-bundle/ternq .build/release/ternq
gzip -9 .device-bundle/ternq
loader=$(ldd .build/release/ternq | awk '/libOpenCL.so/ {print $3}')
cp -L "$loader" .device-bundle/lib/libOpenCL.so.1
echo "libnvidia-opencl.so.1" > .device-bundle/vendors/nvidia.icd
ldd .build/release/ternq
du -sh .device-bundle
