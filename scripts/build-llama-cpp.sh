#!/usr/bin/env bash
# Builds the llama.cpp tools that the interop tests and benchmarks use (llama-quantize, llama-perplexity,
# llama-completion, the ggml library) from the llama.cpp source that PyPI's llama-cpp-python sdist vendors.
# No internet beyond PyPI is needed. The build is cached: a second run with the same version returns at once.
#
#   bash scripts/build-llama-cpp.sh          # prints the directory holding bin/ and the source tree
#
# Environment:
#   TERNQ_CACHE            cache directory (default: $XDG_CACHE_HOME/ternq or ~/.cache/ternq)
#   LLAMA_CPP_PYTHON_VERSION  sdist version (default 0.3.36)
#   PYTHON                 the python that runs pip (default: python3)
# Output (stdout, last line): the llama.cpp root; binaries are in <root>/build/bin.
set -euo pipefail

version="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
cache="${TERNQ_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ternq}"
python="${PYTHON:-python3}"
mkdir -p "$cache"
sdist="$cache/llama_cpp_python-$version.tar.gz"
src="$cache/llama_cpp_python-$version/vendor/llama.cpp"
build="$src/build"
stamp="$build/.ternq-built"
targets=(llama-quantize llama-perplexity llama-completion llama-gguf-split)

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "${targets[*]}" ]; then
    for t in "${targets[@]}"; do [ -x "$build/bin/$t" ] || { rm -f "$stamp"; break; }; done
fi
if [ -f "$stamp" ]; then
    echo "$src"
    exit 0
fi

if ! command -v cmake >/dev/null 2>&1; then
    echo "error: cmake is not installed (bash scripts/install-deps.sh installs it)" >&2
    exit 1
fi

if [ ! -f "$sdist" ]; then
    echo "downloading llama-cpp-python==$version (source distribution, ~76 MB) into $cache" >&2
    tmp=$(mktemp -d "$cache/dl.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    "$python" -m pip download --quiet --no-deps --no-binary llama-cpp-python "llama-cpp-python==$version" -d "$tmp" >&2
    mv "$tmp/llama_cpp_python-$version.tar.gz" "$sdist"
fi
if [ ! -f "$src/CMakeLists.txt" ]; then
    tar -xzf "$sdist" -C "$cache"
fi

echo "building ${targets[*]} from $src (about 4 minutes on 2 cores; cached afterwards)" >&2
generator=()
command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)
cmake -S "$src" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
    -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF \
    -DLLAMA_BUILD_EXAMPLES=OFF -DGGML_OPENMP=ON -DBUILD_SHARED_LIBS=OFF >"$build.configure.log" 2>&1 \
    || { tail -n 40 "$build.configure.log" >&2; exit 1; }
cmake --build "$build" --target "${targets[@]}" -j "$(nproc)" >"$build.build.log" 2>&1 \
    || { tail -n 40 "$build.build.log" >&2; exit 1; }
echo "${targets[*]}" >"$stamp"
echo "$src"
