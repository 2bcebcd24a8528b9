#include "ternary_kernels.h"

#include <string.h>

/* GGUF ternary blocks (ggml TQ1_0 / TQ2_0) from int8 trits, with 64-bit SWAR on eight bytes at a time.
 * The layouts (docs/FORMATS.md, ggml's block_tq1_0 / block_tq2_0):
 *   TQ2_0 (66 bytes): element k at byte 32·(k/128) + k%32, bits 2·((k%128)/32), code t + 1; then f16 d.
 *   TQ1_0 (54 bytes): five codes t + 1 per byte in base 3, most significant first, q stored as
 *   ceil(q·256/243): qs[m] = elements m + 32n (m < 32), qs[32 + m] = 160 + m + 16n (m < 16),
 *   qh[j] = 240 + j + 4n (four codes, then × 3); then f16 d. */

#define TQ_LOW2 0x0303030303030303ull
#define TQ_ONES 0x0101010101010101ull

size_t tq_block_bytes(int ggml_type) {
    if (ggml_type == TQ_GGML_TYPE_TQ2_0) return 66;
    if (ggml_type == TQ_GGML_TYPE_TQ1_0) return 54;
    return 0;
}

/* Eight codes t + 1 ∈ {0, 1, 2} from eight int8 trits: -1 → 3 → 0, 0 → 1, +1 → 2 (no carry leaves a byte). */
static inline uint64_t codes8(const int8_t *trits) {
    uint64_t v;
    memcpy(&v, trits, 8);
    return ((v & TQ_LOW2) + TQ_ONES) & TQ_LOW2;
}

/* q ∈ [0, 242] per byte → ceil(q·256/243) per byte. */
static inline void store_base3(uint64_t q, unsigned char *out, int n) {
    for (int k = 0; k < n; k++) {
        uint32_t v = (uint32_t)(q >> (8 * k)) & 0xFFu;
        out[k] = (unsigned char)((v * 256u + 242u) / 243u);
    }
}

/* Base-3 digits of `count` code vectors (byte-wise q = 3q + c; q stays below 243, so no byte overflows). */
static inline uint64_t base3(const int8_t *trits, size_t stride, int count) {
    uint64_t q = 0;
    for (int n = 0; n < count; n++) q = q + (q << 1) + codes8(trits + stride * (size_t)n);
    return q;
}

static void encode_block_tq2_0(const int8_t *t, uint16_t d, unsigned char *out) {
    for (int h = 0; h < 2; h++) {
        for (int j = 0; j < 32; j += 8) {
            const int8_t *base = t + 128 * h + j;
            uint64_t b = codes8(base) | codes8(base + 32) << 2 | codes8(base + 64) << 4 | codes8(base + 96) << 6;
            memcpy(out + 32 * h + j, &b, 8);
        }
    }
    out[64] = (unsigned char)(d & 0xFFu);
    out[65] = (unsigned char)(d >> 8);
}

static void encode_block_tq1_0(const int8_t *t, uint16_t d, unsigned char *out) {
    for (int m = 0; m < 32; m += 8) store_base3(base3(t + m, 32, 5), out + m, 8);
    for (int m = 0; m < 16; m += 8) store_base3(base3(t + 160 + m, 16, 5), out + 32 + m, 8);
    /* qh: codes 240 + j + 4n for j < 4: four bytes of each of the four code vectors at 240 + 4n. */
    uint64_t q = 0;
    for (int n = 0; n < 4; n++) {
        uint32_t w;
        memcpy(&w, t + 240 + 4 * n, 4);
        uint64_t c = (((uint64_t)w & TQ_LOW2) + TQ_ONES) & TQ_LOW2 & 0xFFFFFFFFull;
        q = q + (q << 1) + c;
    }
    store_base3(q + (q << 1), out + 48, 4);
    out[52] = (unsigned char)(d & 0xFFu);
    out[53] = (unsigned char)(d >> 8);
}

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#define TQ_BLOCKS_HAVE_AVX2 1
#include <immintrin.h>
#define TQ_BLOCKS_AVX2 __attribute__((target("avx2")))

/* ---- the same two encodings on 32 (or 16) trits at a time ---- */

/* Codes t + 1 of 32 / 16 int8 trits. */
static inline TQ_BLOCKS_AVX2 __m256i codes32(const int8_t *t) {
    return _mm256_add_epi8(_mm256_loadu_si256((const __m256i *)(const void *)t), _mm256_set1_epi8(1));
}
static inline TQ_BLOCKS_AVX2 __m128i codes16(const int8_t *t) {
    return _mm_add_epi8(_mm_loadu_si128((const __m128i *)(const void *)t), _mm_set1_epi8(1));
}

/* Byte-wise q = 3q + c (q stays below 243, so no byte overflows). */
static inline TQ_BLOCKS_AVX2 __m256i times3_plus32(__m256i q, __m256i c) { return _mm256_add_epi8(_mm256_add_epi8(q, _mm256_add_epi8(q, q)), c); }
static inline TQ_BLOCKS_AVX2 __m128i times3_plus16(__m128i q, __m128i c) { return _mm_add_epi8(_mm_add_epi8(q, _mm_add_epi8(q, q)), c); }

/* ceil(q·256/243) per byte for q ∈ [0, 242]: q·256 + 242 in 16-bit lanes (q in the high byte), then
 * ⌊y / 243⌋ = ⌊⌊y · 8631 / 2^16⌋ / 2^5⌋, exact for all 243 such y (the block tests encode every q in
 * every base-3 field). The in-lane unpack and pack restore the byte order. */
static inline TQ_BLOCKS_AVX2 __m256i scale_base3_32(__m256i q) {
    const __m256i zero = _mm256_setzero_si256(), bias = _mm256_set1_epi16(242), m = _mm256_set1_epi16((short)8631);
    __m256i lo = _mm256_srli_epi16(_mm256_mulhi_epu16(_mm256_add_epi16(_mm256_unpacklo_epi8(zero, q), bias), m), 5);
    __m256i hi = _mm256_srli_epi16(_mm256_mulhi_epu16(_mm256_add_epi16(_mm256_unpackhi_epi8(zero, q), bias), m), 5);
    return _mm256_packus_epi16(lo, hi);
}
static inline TQ_BLOCKS_AVX2 __m128i scale_base3_16(__m128i q) {
    const __m128i zero = _mm_setzero_si128(), bias = _mm_set1_epi16(242), m = _mm_set1_epi16((short)8631);
    __m128i lo = _mm_srli_epi16(_mm_mulhi_epu16(_mm_add_epi16(_mm_unpacklo_epi8(zero, q), bias), m), 5);
    __m128i hi = _mm_srli_epi16(_mm_mulhi_epu16(_mm_add_epi16(_mm_unpackhi_epi8(zero, q), bias), m), 5);
    return _mm_packus_epi16(lo, hi);
}

static TQ_BLOCKS_AVX2 void encode_block_tq2_0_avx2(const int8_t *t, uint16_t d, unsigned char *out) {
    for (int h = 0; h < 2; h++) {
        const int8_t *base = t + 128 * h;
        /* Codes are at most 2, so 16-bit shifts by 2, 4, 6 never carry into the next byte. */
        __m256i b = codes32(base);
        b = _mm256_or_si256(b, _mm256_slli_epi16(codes32(base + 32), 2));
        b = _mm256_or_si256(b, _mm256_slli_epi16(codes32(base + 64), 4));
        b = _mm256_or_si256(b, _mm256_slli_epi16(codes32(base + 96), 6));
        _mm256_storeu_si256((__m256i *)(void *)(out + 32 * h), b);
    }
    out[64] = (unsigned char)(d & 0xFFu);
    out[65] = (unsigned char)(d >> 8);
}

static TQ_BLOCKS_AVX2 void encode_block_tq1_0_avx2(const int8_t *t, uint16_t d, unsigned char *out) {
    __m256i q32 = _mm256_setzero_si256();
    for (int n = 0; n < 5; n++) q32 = times3_plus32(q32, codes32(t + 32 * n));
    _mm256_storeu_si256((__m256i *)(void *)out, scale_base3_32(q32));
    __m128i q16 = _mm_setzero_si128();
    for (int n = 0; n < 5; n++) q16 = times3_plus16(q16, codes16(t + 160 + 16 * n));
    _mm_storeu_si128((__m128i *)(void *)(out + 32), scale_base3_16(q16));
    /* qh: bytes 4n..4n+3 of the last 16 trits are digit n of qh[0..3]; a fifth digit 0 (× 3). */
    __m128i c = codes16(t + 240);
    __m128i qh = times3_plus16(_mm_setzero_si128(), c);
    qh = times3_plus16(qh, _mm_srli_si128(c, 4));
    qh = times3_plus16(qh, _mm_srli_si128(c, 8));
    qh = times3_plus16(qh, _mm_srli_si128(c, 12));
    qh = times3_plus16(qh, _mm_setzero_si128());
    uint32_t four = (uint32_t)_mm_cvtsi128_si32(scale_base3_16(qh));
    memcpy(out + 48, &four, 4);
    out[52] = (unsigned char)(d & 0xFFu);
    out[53] = (unsigned char)(d >> 8);
}
#endif

/* Encodes block_count blocks from int8 trits; `vector` selects the AVX2 encoders (same bytes). */
void tq_encode_blocks_int8(int ggml_type, const int8_t *trits, size_t block_count, uint16_t d, unsigned char *out,
                               int vector) {
    void (*encode)(const int8_t *, uint16_t, unsigned char *) =
        ggml_type == TQ_GGML_TYPE_TQ2_0 ? encode_block_tq2_0 : encode_block_tq1_0;
#ifdef TQ_BLOCKS_HAVE_AVX2
    if (vector) encode = ggml_type == TQ_GGML_TYPE_TQ2_0 ? encode_block_tq2_0_avx2 : encode_block_tq1_0_avx2;
#else
    (void)vector;
#endif
    size_t bytes = tq_block_bytes(ggml_type);
    for (size_t b = 0; b < block_count; b++) encode(trits + TQ_BLOCK_ELEMENTS * b, d, out + bytes * b);
}

/* Four int8 trits from one packed byte, byte k holding field k: 00 → 0, 01 → +1, 10 → -1, 11 → 0. A table of
 * all 256 bytes, built by the preprocessor (one load instead of a dozen operations per byte). */
#define TQ_FIELD_TRIT(c) ((c) == 1 ? 0x01u : ((c) == 2 ? 0xFFu : 0x00u))
#define TQ_UNPACK1(b) (TQ_FIELD_TRIT((b) & 3) | TQ_FIELD_TRIT(((b) >> 2) & 3) << 8 | TQ_FIELD_TRIT(((b) >> 4) & 3) << 16 | \
                       TQ_FIELD_TRIT(((b) >> 6) & 3) << 24)
#define TQ_UNPACK4(b) TQ_UNPACK1(b), TQ_UNPACK1((b) + 1), TQ_UNPACK1((b) + 2), TQ_UNPACK1((b) + 3)
#define TQ_UNPACK16(b) TQ_UNPACK4(b), TQ_UNPACK4((b) + 4), TQ_UNPACK4((b) + 8), TQ_UNPACK4((b) + 12)
#define TQ_UNPACK64(b) TQ_UNPACK16(b), TQ_UNPACK16((b) + 16), TQ_UNPACK16((b) + 32), TQ_UNPACK16((b) + 48)
static const uint32_t unpacked_bytes[256] = {TQ_UNPACK64(0), TQ_UNPACK64(64), TQ_UNPACK64(128), TQ_UNPACK64(192)};

void tq_encode_blocks_packed(int ggml_type, const uint8_t *packed, size_t block_count, uint16_t d, uint8_t *output) {
    if (tq_block_bytes(ggml_type) == 0) return;
    int8_t trits[TQ_BLOCK_ELEMENTS];
    for (size_t b = 0; b < block_count; b++) {
        const uint8_t *source = packed + (TQ_BLOCK_ELEMENTS / 4) * b;
        for (int j = 0; j < TQ_BLOCK_ELEMENTS / 4; j++) {
            memcpy(trits + 4 * j, &unpacked_bytes[source[j]], 4);
        }
        tq_encode_blocks_int8(ggml_type, trits, 1, d, output + tq_block_bytes(ggml_type) * b, tq_best_level() >= TQ_LEVEL_AVX2);
    }
}

/* Blocks per int8 pass: 16 blocks (4 KiB of trits, in L1) amortize the call into the trit loop. */
#define TQ_BLOCKS_PER_PASS 16

size_t tq_quantize_blocks(const tq_kernel_table *kernels, const void *source, size_t block_count, int element_width,
                          uint32_t threshold, int ggml_type, uint16_t d, uint8_t *output) {
    size_t bytes = tq_block_bytes(ggml_type);
    if (bytes == 0 || (element_width != 2 && element_width != 4)) return 0;
    int8_t trits[TQ_BLOCKS_PER_PASS * TQ_BLOCK_ELEMENTS];
    const unsigned char *p = (const unsigned char *)source;
    size_t nonzero = 0;
    for (size_t b = 0; b < block_count; b += TQ_BLOCKS_PER_PASS) {
        size_t n = block_count - b < TQ_BLOCKS_PER_PASS ? block_count - b : TQ_BLOCKS_PER_PASS;
        const void *at = p + (size_t)element_width * TQ_BLOCK_ELEMENTS * b;
        if (element_width == 4) {
            nonzero += kernels->int8_f32(at, n * TQ_BLOCK_ELEMENTS, threshold, trits);
        } else {
            nonzero += kernels->int8_h16(at, n * TQ_BLOCK_ELEMENTS, threshold, trits);
        }
        tq_encode_blocks_int8(ggml_type, trits, n, d, output + bytes * b, kernels->level >= TQ_LEVEL_AVX2);
    }
    return nonzero;
}
