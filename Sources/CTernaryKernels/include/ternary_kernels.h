#ifndef TERNARYQUANT_CPU_KERNELS_H
#define TERNARYQUANT_CPU_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* Inner loops of the CPU backend over float32 / binary16 / bfloat16 bit patterns (little-endian, any
 * alignment). Every function has a portable version and, on x86-64, an AVX2 and an AVX-512 version chosen
 * at run time.
 * Results are exact integer logic except the abs_sum functions, whose summation tree is described below.
 * The abs_sum functions clear the flush-to-zero and denormals-are-zero modes (MXCSR on x86-64, FPCR on
 * arm64) for their own duration and restore the caller's mode, so the thread's FPU mode never changes
 * a result. */

/* Number of float64 accumulator lanes in the abs_sum functions (at least; the AVX-512 table uses 32). Each
 * lane adds at most count / TQ_ABS_SUM_LANES elements sequentially (count / 32 + 1 with 32 lanes); lanes are
 * then added pairwise (4 or 5 levels) and the scalar tail (< 16 elements, summed sequentially) is added
 * last, so no element passes through more than count / TQ_ABS_SUM_LANES + TQ_ABS_SUM_DEPTH_SLACK float64
 * additions in any table. */
#define TQ_ABS_SUM_LANES 16
#define TQ_ABS_SUM_DEPTH_SLACK 24

/* Elements per chunk of the squared_errors functions (a multiple of their 32 lanes). */
#define TQ_SQUARED_ERROR_CHUNK 65536

/* One chunk's moments of the squared error (see MeanSquaredError): squares = the float64 sum of x² in
 * squared_errors' order (its result at alpha 0); magnitudes = the float64 sum of |x| over the elements
 * whose trit is non-zero (codes 01 and 10), added in an unspecified order (the caller proves it exact, or
 * sums exactly instead); nonzero = their number; min_bits / max_bits = the smallest / largest of their
 * magnitudes as float32 bits (x widened exactly), 0xFFFFFFFF / 0 when there is none. */
typedef struct tq_moments {
    double squares;
    double magnitudes;
    uint64_t nonzero;
    uint32_t min_bits;
    uint32_t max_bits;
} tq_moments;

/* The inner loops; one table per implementation. All sources are little-endian, any alignment.
 *
 * Trit rule for float32 bits: a trit is non-zero iff (bits & 0x7FFFFFFF) >= threshold (1 <= threshold
 * <= 0x7F800000); its sign is bit 31. For 16-bit patterns (binary16 or bfloat16): non-zero iff
 * (bits & 0x7FFF) >= threshold (1 <= threshold <= 0x7FFF), sign bit 15; the caller derives the 16-bit
 * threshold from the float32 one (both widenings are monotone on magnitudes). */
typedef struct tq_kernel_table {
    /* Float64 sum of |x| over count float32 / binary16 / bfloat16 values (each widened exactly). NaN or
     * Inf inputs make the result non-finite. */
    double (*abs_sum_f32)(const void *source, size_t count);
    double (*abs_sum_f16)(const void *source, size_t count);
    double (*abs_sum_bf16)(const void *source, size_t count);
    /* Packs count trits (4 per byte, trit i at bits 2*(i%4), 00 = 0, 01 = +1, 10 = -1; last byte padded
     * with 00). Returns the number of non-zero trits. */
    size_t (*pack_f32)(const void *source, size_t count, uint32_t threshold, uint8_t *output);
    /* Writes count int8 trits (-1, 0, +1) with the same rule; returns the number of non-zero trits. */
    size_t (*int8_f32)(const void *source, size_t count, uint32_t threshold, int8_t *output);
    /* The same two for 16-bit patterns (binary16 or bfloat16). */
    size_t (*pack_h16)(const void *source, size_t count, uint32_t threshold, uint8_t *output);
    size_t (*int8_h16)(const void *source, size_t count, uint32_t threshold, int8_t *output);
    /* Squared reconstruction errors of packed trits (the layout of pack_f32) against their source of
     * element kind `kind` (0 float32, 1 binary16, 2 bfloat16), count elements in all, per chunk of
     * TQ_SQUARED_ERROR_CHUNK elements: partials[c] receives the float64 sum for chunk first + c, for c <
     * chunks (chunk k covers elements k·CHUNK ..< min(count, (k+1)·CHUNK); callers pass only chunks that
     * exist). Fixed order, the same bits in every table: alpha widened to float64, r = t·alpha (t = +1,
     * -1, or 0 for codes 00 and 11), d = w - r in float64; lane j (j = 0..31) sums d·d in element order
     * over the chunk's elements k ≡ j (mod 32) among its whole 32-element groups; the lanes are merged
     * pairwise (lane j += lane j + w for w = 16, 8, 4, 2, 1) and the chunk's remaining (< 32) elements'
     * d·d added in order (r = ±alpha or 0). DAZ/FTZ are cleared for the call. */
    void (*squared_errors)(const void *source, int kind, const uint8_t *packed, size_t count, float alpha,
                           size_t first, size_t chunks, double *partials);
    /* The index of the first of count elements of kind `kind` (0 float32, 1 binary16, 2 bfloat16) whose
     * exponent field is all ones (NaN or ±Inf), or count when there is none. Integer logic only. */
    size_t (*first_non_finite)(const void *source, size_t count, int kind);
    /* The magnitude bits (bits & 0x7FFFFFFF for float32, bits & 0x7FFF for the 16-bit kinds) that every
     * non-zero-magnitude element among count elements of kind `kind` has, 0 when every element is ±0, or
     * TQ_MIXED_MAGNITUDES at the first element with a second magnitude (the scan stops there). Integer
     * logic only; NaN and ±Inf are magnitudes like any other. */
    uint32_t (*common_magnitude)(const void *source, size_t count, int kind);
    /* The elements of a band of magnitudes: every element i of count (element_width 4: float32 bits,
     * magnitude bits & 0x7FFFFFFF; 2: 16-bit patterns, bits & 0x7FFF) with low <= magnitude < high, in
     * element order. The first `capacity` of them are written as pairs entries[2j] = i, entries[2j + 1] =
     * the element's bits; returns how many there are (more than capacity when the band overflows). count
     * must be below 2^32. Integer logic only. */
    size_t (*band_scan)(const void *source, size_t count, int element_width, uint32_t low, uint32_t high,
                        uint32_t *entries, size_t capacity);
    /* One pass over count elements of kind `kind` for the one-pass quantization: *sum = abs_sum of them
     * (the same bits as the table's abs_sum entry point), their trits at `threshold` in `layout` (0 packed,
     * 1 int8; as pack_* / int8_*) into output, and band_scan(low, high) into entries (*band = its count).
     * Returns the number of non-zero trits. DAZ/FTZ are cleared for the sum. */
    size_t (*speculate)(const void *source, int kind, size_t count, uint32_t threshold, int layout, void *output,
                        uint32_t low, uint32_t high, uint32_t *entries, size_t capacity, double *sum, size_t *band);
    /* The moments (tq_moments) of packed trits against their source of kind `kind`, count elements in
     * all, per chunk of TQ_SQUARED_ERROR_CHUNK as squared_errors: moments[c] for chunk first + c, c <
     * chunks (chunks that exist). DAZ/FTZ are cleared for the call. */
    void (*chunk_moments)(const void *source, int kind, const uint8_t *packed, size_t count, size_t first,
                          size_t chunks, tq_moments *moments);
    /* speculate into packed trits (layout 0) over one chunk of the squared-error order (count <=
     * TQ_SQUARED_ERROR_CHUNK elements from a chunk boundary), and in the same pass the chunk's moments at the
     * trits written (the same squares, magnitudes and nonzero as chunk_moments over them; min_bits and
     * max_bits may be looser bounds: at most the smallest and at least the largest non-zero magnitude, e.g.
     * the threshold and the largest magnitude of all). *sum is a float64 sum of |x| whose tree
     * has depth at most count / TQ_ABS_SUM_LANES + TQ_ABS_SUM_DEPTH_SLACK (not necessarily abs_sum's bits).
     * Returns the number of non-zero trits. */
    size_t (*speculate_moments)(const void *source, int kind, size_t count, uint32_t threshold, uint8_t *output,
                                uint32_t low, uint32_t high, uint32_t *entries, size_t capacity, double *sum,
                                size_t *band, tq_moments *moments);
    /* The table's instruction-set level: TQ_LEVEL_PORTABLE, TQ_LEVEL_AVX2 or TQ_LEVEL_AVX512. */
    int level;
} tq_kernel_table;

/* common_magnitude's answer when two non-zero magnitudes differ. */
#define TQ_MIXED_MAGNITUDES 0xFFFFFFFFu

/* Instruction-set levels of the tables. */
#define TQ_LEVEL_PORTABLE 0
#define TQ_LEVEL_AVX2 1   /* AVX2, F16C, POPCNT */
#define TQ_LEVEL_AVX512 2 /* AVX-512 F, BW, VL, DQ and BMI2, besides the AVX2 set */

/* The table of the highest level that is at most max_level and that the processor supports. */
const tq_kernel_table *tq_kernels(int max_level);

/* The highest level the processor supports (TQ_LEVEL_PORTABLE on non-x86-64 builds). */
int tq_best_level(void);

/* ---- one-pass quantization with a forecast threshold (forecast.c) ---- */

/* Estimates for choosing a forecast: over the pieces of `piece` elements (at most TQ_MOMENTS_MAX_PIECE)
 * that start every `stride` elements (stride >= piece) of count elements of kind `kind` (0 float32, 1
 * binary16, 2 bfloat16), moments[0] = the number of elements read, moments[1] = the float64 sum of their
 * magnitudes and moments[2] = the sum of their squares, with the table's abs_sum and squared_errors loops.
 * A NaN/Inf element makes the sums non-finite. */
#define TQ_MOMENTS_MAX_PIECE 1024
void tq_magnitude_moments(const tq_kernel_table *kernels, const void *source, int kind, size_t count, size_t stride,
                          size_t piece, double moments[3]);

/* Re-decides the `band_count` band elements recorded by band_scan (entries: index, bits; indices relative
 * to `output`'s first trit) at `threshold`, where they were decided at `forecast`, and rewrites their trits
 * in `layout` (0: packed, 4 per byte; 1: int8). Returns (trits now non-zero) - (trits non-zero before) as
 * a signed count. element_width as in band_scan. */
ptrdiff_t tq_apply_band(const uint32_t *entries, size_t band_count, int element_width, uint32_t forecast,
                        uint32_t threshold, int layout, uint8_t *output);

/* The one pass straight into TQ2_0 blocks: block_count blocks of kind `kind` through the table's speculate
 * loop (int8 trits at `threshold`, 16 blocks at a time), encoded with a zero scale (tq_set_block_scales
 * writes d once α is known). Band entries as speculate's, indices counted from `source`'s first element;
 * *band = their number (more than capacity when it overflowed), *sum = the float64 sum of |x| (batch sums
 * added in order: a summation tree of depth at most 4096 / TQ_ABS_SUM_LANES + TQ_ABS_SUM_DEPTH_SLACK +
 * block_count / 16 + 1). Returns the number of non-zero trits. */
size_t tq_speculate_tq2_0(const tq_kernel_table *kernels, const void *source, int kind, size_t block_count,
                          uint32_t threshold, uint32_t low, uint32_t high, uint32_t *entries, size_t capacity,
                          double *sum, size_t *band, uint8_t *output);

/* tq_apply_band for TQ2_0 blocks at `output` (block k at output + 66·k; entry indices count from its first
 * element): rewrites the 2-bit codes of the entries between the two thresholds. */
ptrdiff_t tq_apply_band_tq2_0(const uint32_t *entries, size_t band_count, int element_width, uint32_t forecast,
                              uint32_t threshold, uint8_t *output);

/* Writes the binary16 scale bits d into block_count blocks of ggml_type at output (its last two bytes). */
void tq_set_block_scales(int ggml_type, uint8_t *output, size_t block_count, uint16_t d);

/* Encodes block_count ggml_type blocks from int8 trits (-1, 0, +1) with scale bits d; `vector` != 0 uses
 * the AVX2 encoders (the same bytes; only where the processor has AVX2). */
void tq_encode_blocks_int8(int ggml_type, const int8_t *trits, size_t block_count, uint16_t d, uint8_t *output,
                           int vector);

/* ---- GGUF ternary blocks (ggml TQ1_0 / TQ2_0, 256 elements per block) ---- */

#define TQ_BLOCK_ELEMENTS 256
/* ggml type ids. */
#define TQ_GGML_TYPE_TQ1_0 34
#define TQ_GGML_TYPE_TQ2_0 35

/* Bytes per block of a ggml type: 54 for TQ1_0, 66 for TQ2_0, 0 for any other value. */
size_t tq_block_bytes(int ggml_type);

/* Encodes block_count blocks of ggml_type from packed 2-bit trits (64 bytes per block, the layout of
 * pack_f32; the invalid code 11 encodes as 0) with the binary16 scale bits d. Does nothing for an unknown
 * type. */
void tq_encode_blocks_packed(int ggml_type, const uint8_t *packed, size_t block_count, uint16_t d,
                             uint8_t *output);

/* Ternarizes block_count * 256 elements with the table's int8 loop (element_width 4: float32 bits and a
 * float32 threshold; 2: 16-bit patterns and a 16-bit threshold) and writes the ggml_type blocks with the
 * binary16 scale bits d. Returns the number of non-zero trits (0 and no output for an unknown type or
 * width). */
size_t tq_quantize_blocks(const tq_kernel_table *kernels, const void *source, size_t block_count,
                          int element_width, uint32_t threshold, int ggml_type, uint16_t d, uint8_t *output);

#endif
