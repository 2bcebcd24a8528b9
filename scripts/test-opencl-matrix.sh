#!/usr/bin/env bash
# The OpenCL equality suites on every OpenCL implementation CI installs, reusing the test build that
# scripts/test.sh made (no rebuild): PoCL's pthread and basic devices, PoCL with work-groups of 1 to 8
# items (POCL_MAX_WORK_GROUP_SIZE), Mesa rusticl on llvmpipe (no fp64, denormals flushed: the profile of
# many consumer GPUs) and Oclgrind (API and data-race checks, small tensors), registered through an ICD
# file in a temporary directory. Each run sets TERNQ_REQUIRE_OPENCL, so a missing implementation fails
# instead of skipping, and TERNQ_DEVICE, which the tests use to pick the device.
#
#   bash scripts/test-opencl-matrix.sh            # after: swift build -c release -Xswiftc -enable-testing --build-tests
#   SWIFT_TEST_FLAGS="" bash scripts/test-opencl-matrix.sh   # reuse a debug test build instead
#   OPENCL_MATRIX="pocl-pthread rusticl" bash scripts/test-opencl-matrix.sh   # a subset, or pthread too
set -euo pipefail
cd "$(dirname "$0")/.."
export POCL_CACHE_DIR="${POCL_CACHE_DIR:-$PWD/.build/pocl-cache}"
mkdir -p "$POCL_CACHE_DIR"
read -r -a flags <<< "${SWIFT_TEST_FLAGS--c release -Xswiftc -enable-testing}"
# pocl-pthread is what the main `swift test` run of scripts/test.sh already uses (PoCL's default device, with
# TERNQ_REQUIRE_OPENCL=pocl), so it is not repeated by default.
matrix="${OPENCL_MATRIX:-pocl-basic pocl-wg rusticl oclgrind}"

equality='OpenCLEqualityTests|OpenCLExactScaleTests|OpenCLBatchTests|OpenCLHardeningTests|OpenCLRequiredImplementationTests'
faults='OpenCLFaultTests'
small='OpenCLEqualityTests/(randomSizes|midpoints|thresholdNeighbours|specialMagnitudes|halfInputs|exactScalePath|nonFinite)|OpenCLExactScaleTests/(adversarialVectors|float64RouteIsWrong)|OpenCLHardeningTests/everyWorkGroupSize|OpenCLRequiredImplementationTests'

logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT
failed=()

# run NAME FILTER VAR=VALUE...: one swift test run with the given environment; output kept in $logs/NAME.
# With serial=1 set, tests run one at a time.
run() {
    local name="$1" filter="$2"
    shift 2
    local start=$SECONDS
    if env "$@" swift test "${flags[@]}" --skip-build ${serial:+--no-parallel} --filter "$filter" > "$logs/$name" 2>&1; then
        echo "opencl-matrix: $name passed ($((SECONDS - start)) s)"
    else
        echo "opencl-matrix: $name FAILED ($((SECONDS - start)) s); last lines:" >&2
        grep -v 'failed to suspend thread' "$logs/$name" | tail -40 >&2
        failed+=("$name")
    fi
}

total=$SECONDS
for config in $matrix; do
    case "$config" in
    pocl-pthread)
        run pocl-pthread "$equality" POCL_DEVICES=pthread TERNQ_DEVICE=opencl:pthread TERNQ_REQUIRE_OPENCL=pocl ;;
    pocl-basic)
        # Serial: PoCL's basic device once aborted in pocl_release_dlhandle_cache (an assertion inside PoCL)
        # with many backends created and released from parallel tests.
        serial=1 run pocl-basic "$equality" POCL_DEVICES=basic TERNQ_DEVICE=opencl:basic TERNQ_REQUIRE_OPENCL=pocl ;;
    pocl-wg)
        for size in 1 2 3 4 5 6 7 8; do
            run "pocl-wg-$size" 'OpenCLHardeningTests/deviceLimitedWorkGroup|OpenCLEqualityTests/(randomSizes|halfInputs)|OpenCLExactScaleTests/adversarialVectors' \
                POCL_DEVICES=pthread POCL_MAX_WORK_GROUP_SIZE=$size TERNQ_DEVICE=opencl:pthread TERNQ_REQUIRE_OPENCL=pocl
        done ;;
    rusticl)
        run rusticl "$equality|$faults" RUSTICL_ENABLE=llvmpipe TERNQ_DEVICE=opencl:rusticl TERNQ_REQUIRE_OPENCL=rusticl ;;
    oclgrind)
        library=""
        for candidate in /usr/lib/oclgrind/liboclgrind-rt-icd.so /usr/lib/x86_64-linux-gnu/liboclgrind-rt-icd.so \
                         /usr/lib/aarch64-linux-gnu/liboclgrind-rt-icd.so /usr/local/lib/liboclgrind-rt-icd.so; do
            if [ -f "$candidate" ]; then library="$candidate"; break; fi
        done
        if [ -z "$library" ]; then
            echo "opencl-matrix: oclgrind FAILED: liboclgrind-rt-icd.so not found (install oclgrind)" >&2
            failed+=(oclgrind)
            continue
        fi
        vendors="$logs/vendors"
        mkdir -p "$vendors"
        echo "$library" > "$vendors/oclgrind.icd"
        # Serial: Oclgrind's runtime is not safe with several contexts used from concurrent threads (parallel
        # tests gave stale read-backs there, caught by the result checks; every other driver passes in parallel).
        serial=1 run oclgrind "$small" OCL_ICD_VENDORS="$vendors" OCLGRIND_CHECK_API=1 OCLGRIND_DATA_RACES=1 OCLGRIND_BUILD_OPTIONS=-O0 \
            TERNQ_TEST_MAX_ELEMENTS=4096 TERNQ_DEVICE=opencl:oclgrind TERNQ_REQUIRE_OPENCL=oclgrind
        # Oclgrind reports API misuse, invalid accesses and data races on stderr without failing the kernel.
        if grep -m 20 -E -i 'data race|invalid (read|write)|uninitialized|runtime error detected|out-of-bounds|Oclgrind - ' \
                "$logs/oclgrind" >&2; then
            echo "opencl-matrix: oclgrind FAILED: Oclgrind reported the problems above" >&2
            failed+=(oclgrind-checks)
        fi ;;
    *)
        echo "opencl-matrix: unknown configuration '$config'" >&2
        failed+=("$config") ;;
    esac
done

echo "opencl-matrix: total $((SECONDS - total)) s"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "opencl-matrix: failed: ${failed[*]}" >&2
    exit 1
fi
