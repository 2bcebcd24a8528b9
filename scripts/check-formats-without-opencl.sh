#!/usr/bin/env bash
# Checks that the TernaryQuantFormats product reads a safetensors file without linking OpenCL (issue 9
# item 1): builds a tiny executable that depends on that product alone (a throwaway package in
# .build/formats-probe) and fails if `ldd` lists libOpenCL, or if the probe cannot read the fixture.
#
#   scripts/check-formats-without-opencl.sh     # prints "formats without OpenCL: ok (<n> tensors)"
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PROBE=$ROOT/.build/formats-probe
mkdir -p "$PROBE/Sources/FormatsProbe"
cat > "$PROBE/Package.swift" <<SWIFT
// swift-tools-version: 6.0
import PackageDescription
let package = Package(
    name: "FormatsProbe",
    dependencies: [.package(name: "TernaryQuant", path: "$ROOT")],
    targets: [
        .executableTarget(name: "FormatsProbe",
                          dependencies: [.product(name: "TernaryQuantFormats", package: "TernaryQuant")]),
    ]
)
SWIFT
cat > "$PROBE/Sources/FormatsProbe/main.swift" <<'SWIFT'
import Foundation
import TernaryQuantFormats

let path = CommandLine.arguments[1]
do {
    let file = try SafetensorsFile(path: path)
    print(file.tensors.count)
} catch {
    print("error: \(error)")
    exit(1)
}
SWIFT
if ! swift build --package-path "$PROBE" >"$PROBE/build.log" 2>&1; then
    cat "$PROBE/build.log" >&2
    echo "formats without OpenCL: probe build failed" >&2
    exit 1
fi
BIN=$(swift build --package-path "$PROBE" --show-bin-path)/FormatsProbe
count=$("$BIN" Tests/Fixtures/tiny/tiny.safetensors)
if ldd "$BIN" | grep -i opencl; then
    echo "formats without OpenCL: FAILED (the probe links libOpenCL)" >&2
    exit 1
fi
echo "formats without OpenCL: ok ($count tensors)"
