#!/usr/bin/env bash
# Coverage-guided fuzzing (libFuzzer, `swiftc -sanitize=fuzzer,address`) of every ternq parser:
# safetensors header, safetensors index JSON, .tern reader, GGUF reader, JSON parser.
#
#   scripts/fuzz.sh                      # every target, FUZZ_RUNS inputs each (default 2000: CI)
#   FUZZ_RUNS=100000 scripts/fuzz.sh     # by hand
#   scripts/fuzz.sh tern gguf            # some targets
#   FUZZ_SECONDS=20 scripts/fuzz.sh      # a time budget per target instead of a run count
#
# The harness (Fuzz/FuzzFormats.swift) is compiled in one module with the library's format sources (no
# OpenCL or CPU kernels needed). Corpora grow in .build/fuzz/corpus/<target> (seeded from the test
# fixtures and Fuzz/seeds); a crash leaves .build/fuzz/crash-<target>-* and makes the script exit 1.
# Prints one line per target: "fuzz <target>: <N> inputs, no crash".
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/.build/fuzz
RUNS=${FUZZ_RUNS:-2000}
SECONDS_PER_TARGET=${FUZZ_SECONDS:-}
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=(safetensors index tern gguf json)
mkdir -p "$OUT/module"

# The library files the format readers need (the TernaryQuantFormats module needs these files of
# TernaryQuantCore, nothing else; compiled as one module named TernaryQuantCore, so the Formats files'
# `import TernaryQuantCore` is ignored).
SOURCES=(Sources/TernaryQuantFormats/*.swift
         Sources/TernaryQuantCore/Core/{Checked,ElementType,GGMLType,HalfConversion,QuantizationError,Remedy,Trit,TritPacking}.swift)
BIN=$OUT/fuzz-formats
newest=$(ls -t Fuzz/FuzzFormats.swift "${SOURCES[@]}" Sources/CFileGuard/file_guard.c Sources/CFileGuard/include/file_guard.h | head -1)
if [ ! -x "$BIN" ] || [ "$newest" -nt "$BIN" ]; then
    echo "fuzz: building $BIN" >&2
    cat > "$OUT/module/module.modulemap" <<MAP
module CFileGuard {
    header "$ROOT/Sources/CFileGuard/include/file_guard.h"
    export *
}
MAP
    if ! { clang -c -O1 -g -fsanitize=fuzzer-no-link,address -I Sources/CFileGuard/include \
               Sources/CFileGuard/file_guard.c -o "$OUT/file_guard.o" &&
           swiftc -O -g -sanitize=fuzzer,address -parse-as-library -module-name TernaryQuantCore -package-name TernaryQuant -swift-version 6 \
               -I "$OUT/module" Fuzz/FuzzFormats.swift "${SOURCES[@]}" "$OUT/file_guard.o" -o "$BIN"; } \
           >"$OUT/build.log" 2>&1; then
        grep -v "Cannot export local symbol" "$OUT/build.log" >&2
        echo "fuzz: build failed" >&2
        exit 1
    fi
    # The linker's "Cannot export local symbol '__asan_*'" warnings are harmless (gold + ASan).
fi

seed() {  # target → seed files
    case $1 in
        safetensors) ls Tests/Fixtures/tiny/*.safetensors ;;
        index) ls Fuzz/seeds/index/* ;;
        tern) ls Tests/Fixtures/tiny/*.tern ;;
        gguf) ls Tests/Fixtures/tiny/*.gguf ;;
        json) ls Fuzz/seeds/json/* Fuzz/seeds/index/* ;;
    esac
}

status=0
for t in "${TARGETS[@]}"; do
    corpus=$OUT/corpus/$t
    mkdir -p "$corpus"
    for f in $(seed "$t"); do cp -n "$f" "$corpus/" 2>/dev/null || true; done
    limit=(-runs="$RUNS")
    [ -n "$SECONDS_PER_TARGET" ] && limit=(-max_total_time="$SECONDS_PER_TARGET")
    log=$OUT/$t.log
    if TERNQ_FUZZ_TARGET=$t ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 "$BIN" "${limit[@]}" \
        -max_len=65536 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$OUT/crash-$t-" "$corpus" >"$log" 2>&1; then
        done_runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
        echo "fuzz $t: $done_runs inputs, no crash ($(grep -o 'cov: [0-9]*' "$log" | tail -1))"
    else
        echo "fuzz $t: CRASH (see $log and $OUT/crash-$t-*)" >&2
        tail -40 "$log" >&2
        status=1
    fi
done
exit $status
