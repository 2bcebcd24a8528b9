#ifndef TERNARYQUANT_CPU_KERNELS_H
#define TERNARYQUANT_CPU_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* Inner loops of the CPU backend over float32 bit patterns (little-endian, any alignment).
 * Every function has a portable version and, on x86-64, an AVX2 version chosen at run time.
 * Results are exact integer logic except tq_abs_sum_f32, whose summation tree is described below. */

/* Number of float64 accumulator lanes in tq_abs_sum_f32. Each lane adds count / TQ_ABS_SUM_LANES
 * elements sequentially; lanes are then added pairwise (4 levels) and the scalar tail (< 16 elements,
 * summed sequentially) is added last, so no element passes through more than
 * count / TQ_ABS_SUM_LANES + TQ_ABS_SUM_DEPTH_SLACK float64 additions. */
#define TQ_ABS_SUM_LANES 16
#define TQ_ABS_SUM_DEPTH_SLACK 24

/* The inner loops; one table per implementation. All sources are little-endian, any alignment. */
typedef struct tq_kernel_table {
    /* Float64 sum of |x| over count float32 values. NaN or Inf inputs make the result non-finite. */
    double (*abs_sum_f32)(const void *source, size_t count);
    /* Packs count trits (4 per byte, trit i at bits 2*(i%4), 00 = 0, 01 = +1, 10 = -1; last byte padded
     * with 00). A trit is non-zero iff (bits & 0x7FFFFFFF) >= threshold (1 <= threshold < 2^31); its sign
     * is the sign bit. Returns the number of non-zero trits. */
    size_t (*pack_f32)(const void *source, size_t count, uint32_t threshold, uint8_t *output);
    /* Writes count int8 trits (-1, 0, +1) with the same rule; returns the number of non-zero trits. */
    size_t (*int8_f32)(const void *source, size_t count, uint32_t threshold, int8_t *output);
    /* Exact widening of binary16 / bfloat16 values to float32 bit patterns. */
    void (*widen_f16)(const void *source, size_t count, uint32_t *output);
    void (*widen_bf16)(const void *source, size_t count, uint32_t *output);
    /* Reads count bytes with the same prefetching and vector width as the loops above and returns a
     * checksum: the memory-bandwidth probe of the benchmark roofline. */
    uint64_t (*read_checksum)(const void *source, size_t count);
    /* 1 for the AVX2 table, 0 for the portable one. */
    int is_avx2;
} tq_kernel_table;

/* The AVX2 table when allow_avx2 is non-zero and the processor has AVX2, else the portable table. */
const tq_kernel_table *tq_kernels(int allow_avx2);

/* 1 when the processor supports the AVX2 table, else 0. */
int tq_uses_avx2(void);

#endif
