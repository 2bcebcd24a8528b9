#!/usr/bin/env bash
# Builds the llama.cpp tools that the interop tests and benchmarks use (llama-quantize, llama-perplexity,
# llama-completion, llama-gguf-split) from the llama.cpp source that PyPI's llama-cpp-python sdist vendors.
# No internet beyond PyPI is needed. The build is cached: a second run with the same version returns at once;
# an interrupted download, unpack or build is resumed (or redone) by the next run.
#
#   bash scripts/build-llama-cpp.sh          # prints the llama.cpp root; binaries are in <root>/build/bin
#
# Environment:
#   TERNQ_CACHE               cache directory (default: $XDG_CACHE_HOME/ternq or ~/.cache/ternq)
#   LLAMA_CPP_PYTHON_VERSION  sdist version (default 0.3.36, whose sha256 is checked)
#   PYTHON                    the python that runs pip (default: python3)
# The build uses -march=native (GGML_NATIVE, llama.cpp's default, so that llama-quantize is as fast as a
# user's build); the stamp records the host's CPU flags, so a cache restored on another CPU is rebuilt.
set -euo pipefail

version="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
cache="${TERNQ_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ternq}"
python="${PYTHON:-python3}"
declare -A known_sha256=([0.3.36]=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e)
mkdir -p "$cache"
sdist="$cache/llama_cpp_python-$version.tar.gz"
top="$cache/llama_cpp_python-$version"
src="$top/vendor/llama.cpp"
build="$src/build"
stamp="$build/.ternq-built"
targets=(llama-quantize llama-perplexity llama-completion llama-gguf-split)
cpu_flags="$( (grep -m1 -E '^(flags|Features)' /proc/cpuinfo 2>/dev/null || uname -m) | cksum | cut -d' ' -f1)"
want_stamp="${targets[*]} cpu:$cpu_flags"

built() {
    [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want_stamp" ] || return 1
    local t
    for t in "${targets[@]}"; do [ -x "$build/bin/$t" ] || return 1; done
}

if built; then
    echo "$src"
    exit 0
fi

# One build at a time per cache (two test runs started together wait for each other).
exec 9>"$cache/.build-llama-cpp-$version.lock"
if command -v flock >/dev/null 2>&1; then
    flock 9
fi
if built; then
    echo "$src"
    exit 0
fi

if ! command -v cmake >/dev/null 2>&1; then
    echo "error: cmake is not installed (bash scripts/install-deps.sh installs it)" >&2
    exit 1
fi

tmp=""
trap '[ -n "$tmp" ] && rm -rf "$tmp"' EXIT

verify_sdist() {
    local want="${known_sha256[$version]:-}"
    [ -z "$want" ] && return 0
    [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$want" ]
}

if [ -f "$sdist" ] && ! verify_sdist "$sdist"; then
    echo "cached $sdist has the wrong sha256; downloading it again" >&2
    rm -f "$sdist"
fi
if [ ! -f "$sdist" ]; then
    echo "downloading llama-cpp-python==$version (source distribution, ~76 MB) into $cache" >&2
    tmp=$(mktemp -d "$cache/dl.XXXXXX")
    "$python" -m pip download --quiet --no-deps --no-binary llama-cpp-python "llama-cpp-python==$version" -d "$tmp" >&2
    verify_sdist "$tmp/llama_cpp_python-$version.tar.gz" || {
        echo "error: llama-cpp-python-$version sdist: sha256 mismatch" >&2; exit 1; }
    mv "$tmp/llama_cpp_python-$version.tar.gz" "$sdist"
    rm -rf "$tmp"; tmp=""
fi

# Unpack into a temporary directory and rename it into place, so that an interrupted unpack never
# leaves a half tree that looks complete.
if [ ! -f "$top/.ternq-unpacked" ] && [ -d "$top" ] && tar -dzf "$sdist" -C "$cache" >/dev/null 2>&1; then
    touch "$top/.ternq-unpacked"   # unpacked by an earlier version of this script, and complete
fi
if [ ! -f "$top/.ternq-unpacked" ]; then
    rm -rf "$top"
    tmp=$(mktemp -d "$cache/unpack.XXXXXX")
    tar -xzf "$sdist" -C "$tmp"
    [ -f "$tmp/llama_cpp_python-$version/vendor/llama.cpp/CMakeLists.txt" ] || {
        echo "error: $sdist holds no vendor/llama.cpp/CMakeLists.txt" >&2; exit 1; }
    touch "$tmp/llama_cpp_python-$version/.ternq-unpacked"
    mv "$tmp/llama_cpp_python-$version" "$top"
    rm -rf "$tmp"; tmp=""
fi

configure() {
    local generator=()
    # A build directory keeps the generator it was configured with.
    if [ ! -f "$build/CMakeCache.txt" ] && command -v ninja >/dev/null 2>&1; then generator=(-G Ninja); fi
    cmake -S "$src" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
        -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF \
        -DLLAMA_BUILD_EXAMPLES=OFF -DGGML_OPENMP=ON -DBUILD_SHARED_LIBS=OFF >"$build.configure.log" 2>&1
}

echo "building ${targets[*]} from $src (about 4 minutes on 2 cores; cached afterwards)" >&2
rm -f "$stamp"
if ! configure; then
    # A configure interrupted half way (or a moved tree) can leave a cache CMake refuses: start afresh.
    echo "cmake configure failed; retrying in a clean build directory" >&2
    rm -rf "$build"
    configure || { tail -n 40 "$build.configure.log" >&2; exit 1; }
fi
cmake --build "$build" --target "${targets[@]}" -j "$(nproc)" >"$build.build.log" 2>&1 \
    || { tail -n 40 "$build.build.log" >&2; exit 1; }
for t in "${targets[@]}"; do
    [ -x "$build/bin/$t" ] || { echo "error: the build finished without $build/bin/$t" >&2; exit 1; }
done
echo "$want_stamp" >"$stamp"
echo "$src"
