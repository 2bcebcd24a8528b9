#include "ternary_kernels.h"

#include <string.h>

/* Band entries examined per batch of tq_apply_band. */
#define TQ_APPLY_BATCH 256
/* Blocks per batch of tq_speculate_tq2_0 (4096 int8 trits on the stack, in L1). */
#define TQ_SPECULATE_BATCH_BLOCKS 16

/* Helpers of the one-pass quantization (CPUBackend's forecast path): the sample that sets the forecast,
 * the fix-up of the elements between the forecast threshold and the real one, and the same straight into
 * TQ2_0 blocks. Integer logic except the sample's float64 moments, which only choose the forecast (any
 * value gives the same trits). */

void tq_magnitude_moments(const tq_kernel_table *kernels, const void *source, int kind, size_t count, size_t stride,
                          size_t piece, double moments[3]) {
    static const uint8_t zero_trits[TQ_MOMENTS_MAX_PIECE / 4];
    const unsigned char *p = (const unsigned char *)source;
    const size_t width = kind == 0 ? 4 : 2;
    double n = 0, sum = 0, squares = 0;
    if (piece > TQ_MOMENTS_MAX_PIECE) piece = TQ_MOMENTS_MAX_PIECE;
    if (piece < 1) piece = 1;
    if (stride < piece) stride = piece;
    for (size_t start = 0; start < count; start += stride) {
        const size_t length = count - start < piece ? count - start : piece;
        const unsigned char *at = p + width * start;
        /* The pieces are far apart: start loading the piece four strides ahead. */
        if (count - start > 4 * stride) {
            for (size_t b = 0; b < width * piece; b += 64) __builtin_prefetch(at + width * 4 * stride + b);
        }
        double square_sum = 0;
        /* Squares as the squared errors of all-zero trits (d = w). */
        kernels->squared_errors(at, kind, zero_trits, length, 0.0f, 0, 1, &square_sum);
        n += (double)length;
        sum += kind == 0 ? kernels->abs_sum_f32(at, length) : (kind == 1 ? kernels->abs_sum_f16(at, length) : kernels->abs_sum_bf16(at, length));
        squares += square_sum;
        if (count - start <= stride) break;
    }
    moments[0] = n;
    moments[1] = sum;
    moments[2] = squares;
}

ptrdiff_t tq_apply_band(const uint32_t *entries, size_t band_count, int element_width, uint32_t forecast,
                        uint32_t threshold, int layout, uint8_t *output) {
    const uint32_t mask = element_width == 4 ? 0x7FFFFFFFu : 0x7FFFu;
    const uint32_t sign_shift = element_width == 4 ? 31u : 15u;
    /* Only elements between the two thresholds change: low <= m < high. */
    const uint32_t low = forecast < threshold ? forecast : threshold;
    const uint32_t span = (forecast < threshold ? threshold : forecast) - low;
    const ptrdiff_t direction = threshold < forecast ? 1 : -1; /* each change adds (+1) or removes a trit */
    /* Their entries first, without branches; then their trits, each output byte requested a few entries
     * ahead (the bytes are scattered over the chunk's output, so each is a cache miss). */
    uint32_t changed[TQ_APPLY_BATCH];
    ptrdiff_t delta = 0;
    for (size_t j0 = 0; j0 < band_count; j0 += TQ_APPLY_BATCH) {
        const size_t end = band_count - j0 < TQ_APPLY_BATCH ? band_count : j0 + TQ_APPLY_BATCH;
        size_t n = 0;
        for (size_t j = j0; j < end; j++) {
            changed[n] = (uint32_t)j;
            n += ((entries[2 * j + 1] & mask) - low) < span;
        }
        for (size_t c = 0; c < n; c++) {
            if (c + 8 < n) {
                const uint32_t ahead = entries[2 * (size_t)changed[c + 8]];
                __builtin_prefetch(output + (layout == 0 ? ahead >> 2 : ahead), 1);
            }
            const uint32_t i = entries[2 * (size_t)changed[c]], bits = entries[2 * (size_t)changed[c] + 1];
            const uint32_t now = (bits & mask) >= threshold;
            const uint32_t negative = (bits >> sign_shift) & 1u;
            if (layout == 0) {
                const uint32_t shift = 2u * (i & 3u);
                const uint32_t code = now ? 1u + negative : 0u;
                output[i >> 2] = (uint8_t)((output[i >> 2] & ~(3u << shift)) | (code << shift));
            } else {
                output[i] = (uint8_t)(now ? (negative ? 0xFFu : 0x01u) : 0x00u);
            }
        }
        delta += direction * (ptrdiff_t)n;
    }
    return delta;
}

size_t tq_speculate_tq2_0(const tq_kernel_table *kernels, const void *source, int kind, size_t block_count,
                          uint32_t threshold, uint32_t low, uint32_t high, uint32_t *entries, size_t capacity,
                          double *sum, size_t *band, uint8_t *output) {
    const size_t width = kind == 0 ? 4 : 2;
    int8_t trits[TQ_BLOCK_ELEMENTS * TQ_SPECULATE_BATCH_BLOCKS];
    size_t nonzero = 0, found = 0;
    double total = 0;
    for (size_t b = 0; b < block_count; b += TQ_SPECULATE_BATCH_BLOCKS) {
        const size_t n = block_count - b < TQ_SPECULATE_BATCH_BLOCKS ? block_count - b : TQ_SPECULATE_BATCH_BLOCKS;
        const size_t first = TQ_BLOCK_ELEMENTS * b;
        const size_t room = found < capacity ? capacity - found : 0;
        double part = 0;
        size_t recorded = 0;
        nonzero += kernels->speculate((const unsigned char *)source + width * first, kind, n * TQ_BLOCK_ELEMENTS, threshold,
                                      1, trits, low, high, entries + 2 * (found < capacity ? found : capacity), room, &part,
                                      &recorded);
        /* The batch's entries count from the batch; make them count from the call's first element. */
        const size_t written = recorded < room ? recorded : room;
        uint32_t *mine = entries + 2 * (found < capacity ? found : capacity);
        for (size_t j = 0; j < written; j++) mine[2 * j] += (uint32_t)first;
        found += recorded;
        total += part;
        tq_encode_blocks_int8(TQ_GGML_TYPE_TQ2_0, trits, n, 0, output + 66 * b, kernels->level >= TQ_LEVEL_AVX2);
    }
    *sum = total;
    *band = found;
    return nonzero;
}

ptrdiff_t tq_apply_band_tq2_0(const uint32_t *entries, size_t band_count, int element_width, uint32_t forecast,
                              uint32_t threshold, uint8_t *output) {
    const uint32_t mask = element_width == 4 ? 0x7FFFFFFFu : 0x7FFFu;
    const uint32_t sign_shift = element_width == 4 ? 31u : 15u;
    const uint32_t low = forecast < threshold ? forecast : threshold;
    const uint32_t span = (forecast < threshold ? threshold : forecast) - low;
    ptrdiff_t delta = 0;
    for (size_t j = 0; j < band_count; j++) {
        const uint32_t i = entries[2 * j], bits = entries[2 * j + 1];
        if ((bits & mask) - low >= span) continue;
        const uint32_t now = (bits & mask) >= threshold;
        const uint32_t code = now ? (((bits >> sign_shift) & 1u) ? 0u : 2u) : 1u; /* t + 1 */
        const uint32_t k = i % TQ_BLOCK_ELEMENTS;
        uint8_t *byte = output + 66 * (size_t)(i / TQ_BLOCK_ELEMENTS) + 32 * (k / 128) + k % 32;
        const uint32_t shift = 2u * ((k % 128) / 32);
        *byte = (uint8_t)((*byte & ~(3u << shift)) | (code << shift));
        delta += now ? 1 : -1;
    }
    return delta;
}

void tq_set_block_scales(int ggml_type, uint8_t *output, size_t block_count, uint16_t d) {
    const size_t bytes = tq_block_bytes(ggml_type);
    if (bytes == 0) return;
    for (size_t b = 0; b < block_count; b++) {
        output[bytes * b + bytes - 2] = (uint8_t)(d & 0xFFu);
        output[bytes * b + bytes - 1] = (uint8_t)(d >> 8);
    }
}
