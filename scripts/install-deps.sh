#!/usr/bin/env bash
# Installs what TernaryQuant needs on Debian/Ubuntu: the OpenCL ICD loader and headers, PoCL (an OpenCL
# implementation on the CPU, so the OpenCL backend runs without a GPU), Mesa rusticl and Oclgrind (more OpenCL
# implementations for the test matrix), clinfo, and Python's venv for the
# interoperability checks. Runs apt-get as root, or through sudo otherwise. Safe to run repeatedly.
set -euo pipefail

packages=(ocl-icd-opencl-dev opencl-headers pocl-opencl-icd clinfo python3 python3-venv python3-pip)
# llama.cpp's tools for the interop tests (scripts/build-llama-cpp.sh): CMake, Ninja and a C++ compiler.
packages+=(cmake ninja-build g++)
# More OpenCL implementations for scripts/test-opencl-matrix.sh: Mesa rusticl (RUSTICL_ENABLE=llvmpipe) and
# the Oclgrind simulator (API and data-race checks).
packages+=(mesa-opencl-icd oclgrind)

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ]; then
        SUDO=""
    elif command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "error: need root or sudo to install: ${missing[*]}" >&2
        exit 1
    fi
    echo "installing: ${missing[*]}" >&2
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v swift >/dev/null 2>&1; then
    echo "error: the Swift toolchain (6.0 or later) is not on PATH; install it from swift.org (swiftly) and retry" >&2
    exit 1
fi
