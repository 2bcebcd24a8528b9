#ifndef TERNARYQUANT_CPU_BENCH_H
#define TERNARYQUANT_CPU_BENCH_H

#include <stddef.h>
#include <stdint.h>

/* Benchmark support, not used by quantization: the memory-read probe of `ternq bench`'s roofline. */

/* Reads count bytes with the vector width and software prefetching of the trit loops and returns a
 * checksum (so the reads cannot be optimized away). allow_avx2 selects the AVX2 build of the loop when
 * the processor has it. */
uint64_t tq_bench_read_checksum(const void *source, size_t count, int allow_avx2);

#endif
