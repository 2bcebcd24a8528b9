#ifndef TERNARYQUANT_BENCH_PROBE_H
#define TERNARYQUANT_BENCH_PROBE_H

#include <stddef.h>
#include <stdint.h>

/* Benchmark support, not used by quantization: the memory-read probe of `ternq bench`'s roofline. */

/* Reads count bytes with eight 64-bit lanes per 64 bytes and software prefetching prefetch_distance bytes
 * ahead, and returns a checksum, so the reads cannot be optimized away. allow_avx2 selects the AVX2 build
 * of the loop when the processor has AVX2. */
uint64_t tq_bench_read_checksum(const void *source, size_t count, int allow_avx2, size_t prefetch_distance);

#endif
