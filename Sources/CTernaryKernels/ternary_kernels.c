#include "ternary_kernels.h"

#include <string.h>

/* Plain float64 additions only; never contract or reassociate. */
#pragma STDC FP_CONTRACT OFF

static inline uint32_t load_bits(const unsigned char *p, size_t i) {
    uint32_t v;
    memcpy(&v, p + 4 * i, 4);
    return v;
}

static inline double magnitude(uint32_t bits) {
    uint32_t m = bits & 0x7FFFFFFFu;
    float f;
    memcpy(&f, &m, 4);
    return (double)f;
}

static inline uint16_t load_half(const unsigned char *p, size_t i) {
    uint16_t v;
    memcpy(&v, p + 2 * i, 2);
    return v;
}

/* binary16 → float32 bits. A subnormal half m·2^-24 (m < 2^10) is a normal float32; (float)m is exact and
 * the multiplication by 2^-24 only changes the exponent, so the result is exact on any IEEE host. */
static inline uint32_t half_to_float_bits(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1Fu;
    uint32_t m = h & 0x3FFu;
    float scaled = (float)(int32_t)m * 0x1p-24f;
    uint32_t sub;
    memcpy(&sub, &scaled, 4);
    uint32_t normal = ((e + 112u) << 23) | (m << 13);
    uint32_t special = 0x7F800000u | (m << 13);
    uint32_t r = e == 0 ? sub : (e == 31 ? special : normal);
    return sign | r;
}

/* Shared bodies, instantiated once portable and once with the AVX2 target. */
#define TQ_DEFINE_KERNELS(SUFFIX, ATTR)                                                                     \
    ATTR static double abs_sum_##SUFFIX(const void *source, size_t count) {                               \
        const unsigned char *p = (const unsigned char *)source;                                           \
        double lane[TQ_ABS_SUM_LANES] = {0};                                                              \
        size_t i = 0;                                                                                     \
        for (; i + TQ_ABS_SUM_LANES <= count; i += TQ_ABS_SUM_LANES) {                                     \
            __builtin_prefetch(p + 4 * i + 1024);                                                         \
            for (int k = 0; k < TQ_ABS_SUM_LANES; k++) lane[k] += magnitude(load_bits(p, i + k));          \
        }                                                                                                 \
        for (int width = TQ_ABS_SUM_LANES / 2; width >= 1; width /= 2) {                                  \
            for (int k = 0; k < width; k++) lane[k] = lane[k] + lane[k + width];                          \
        }                                                                                                 \
        double tail = 0;                                                                                  \
        for (; i < count; i++) tail += magnitude(load_bits(p, i));                                        \
        return lane[0] + tail;                                                                            \
    }                                                                                                     \
    ATTR static size_t pack_##SUFFIX(const void *source, size_t count, uint32_t threshold,            \
                                     uint8_t *out) {                                                      \
        const unsigned char *p = (const unsigned char *)source;                                           \
        const uint32_t limit = threshold - 1u;                                                            \
        size_t full = count / 4, nonzero = 0;                                                             \
        for (size_t j = 0; j < full; j++) {                                                               \
            uint32_t byte = 0;                                                                            \
            for (int k = 0; k < 4; k++) {                                                                 \
                uint32_t bits = load_bits(p, 4 * j + k);                                                  \
                uint32_t set = (limit - (bits & 0x7FFFFFFFu)) >> 31;                                      \
                nonzero += set;                                                                           \
                byte |= (set + (set & (bits >> 31))) << (2 * k);                                          \
            }                                                                                             \
            out[j] = (uint8_t)byte;                                                                       \
        }                                                                                                 \
        if (count % 4) {                                                                                  \
            uint32_t byte = 0;                                                                            \
            for (size_t k = 0; k < count % 4; k++) {                                                      \
                uint32_t bits = load_bits(p, 4 * full + k);                                               \
                uint32_t set = (limit - (bits & 0x7FFFFFFFu)) >> 31;                                      \
                nonzero += set;                                                                           \
                byte |= (set + (set & (bits >> 31))) << (2 * k);                                          \
            }                                                                                             \
            out[full] = (uint8_t)byte;                                                                    \
        }                                                                                                 \
        return nonzero;                                                                                   \
    }                                                                                                     \
    ATTR static size_t int8_##SUFFIX(const void *source, size_t count, uint32_t threshold,            \
                                     int8_t *out) {                                                       \
        const unsigned char *p = (const unsigned char *)source;                                           \
        const uint32_t limit = threshold - 1u;                                                            \
        size_t nonzero = 0;                                                                               \
        for (size_t i = 0; i < count; i++) {                                                              \
            uint32_t bits = load_bits(p, i);                                                              \
            uint32_t set = (limit - (bits & 0x7FFFFFFFu)) >> 31;                                          \
            nonzero += set;                                                                               \
            out[i] = (int8_t)(set | (0u - (set & (bits >> 31))));                                         \
        }                                                                                                 \
        return nonzero;                                                                                   \
    }                                                                                                     \
    ATTR static uint64_t read_##SUFFIX(const void *source, size_t count) {                           \
        const unsigned char *p = (const unsigned char *)source;                                           \
        uint64_t lane[8] = {0};                                                                           \
        size_t i = 0;                                                                                     \
        for (; i + 64 <= count; i += 64) {                                                                \
            __builtin_prefetch(p + i + 1024);                                                             \
            for (int k = 0; k < 8; k++) {                                                                 \
                uint64_t v;                                                                               \
                memcpy(&v, p + i + 8 * k, 8);                                                             \
                lane[k] += v;                                                                             \
            }                                                                                             \
        }                                                                                                 \
        uint64_t total = 0;                                                                               \
        for (int k = 0; k < 8; k++) total += lane[k];                                                     \
        for (; i < count; i++) total += p[i];                                                             \
        return total;                                                                                     \
    }                                                                                                     \
    ATTR static void widen_bf16_##SUFFIX(const void *source, size_t count, uint32_t *out) {           \
        const unsigned char *p = (const unsigned char *)source;                                           \
        for (size_t i = 0; i < count; i++) out[i] = (uint32_t)load_half(p, i) << 16;                      \
    }

TQ_DEFINE_KERNELS(portable, )

/* Portable F16 widening (the AVX2 table uses the F16C instruction instead). */
static void widen_f16_portable(const void *source, size_t count, uint32_t *out) {
    const unsigned char *p = (const unsigned char *)source;
    for (size_t i = 0; i < count; i++) out[i] = half_to_float_bits(load_half(p, i));
}

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#define TQ_HAVE_AVX2_PATH 1
TQ_DEFINE_KERNELS(avx2, __attribute__((target("avx2"))))

#include <immintrin.h>

/* Explicit AVX2 trit loops (the auto-vectorized versions above handle the tails): 32 elements per
 * iteration, the same integer rule. Codes are shifted into place per lane and 4 lanes summed into a byte. */
__attribute__((target("avx2"))) static size_t pack_avx2_wide(const void *source, size_t count,
                                                             uint32_t threshold, uint8_t *out) {
    const unsigned char *p = (const unsigned char *)source;
    const __m256i magnitude_mask = _mm256_set1_epi32(0x7FFFFFFF);
    const __m256i limit = _mm256_set1_epi32((int)(threshold - 1u));
    const __m256i shifts = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
    __m256i nonzero = _mm256_setzero_si256();
    size_t i = 0;
    for (; i + 32 <= count; i += 32) {
        /* Software prefetch 1 KiB ahead: one core alone cannot keep enough lines in flight otherwise. */
        _mm_prefetch((const char *)(p + 4 * i + 1024), _MM_HINT_T0);
        _mm_prefetch((const char *)(p + 4 * i + 1088), _MM_HINT_T0);
        __m256i shifted[4];
        for (int q = 0; q < 4; q++) {
            __m256i bits = _mm256_loadu_si256((const __m256i *)(p + 4 * (i + 8 * (size_t)q)));
            __m256i set = _mm256_srli_epi32(_mm256_sub_epi32(limit, _mm256_and_si256(bits, magnitude_mask)), 31);
            __m256i code = _mm256_add_epi32(set, _mm256_and_si256(set, _mm256_srli_epi32(bits, 31)));
            nonzero = _mm256_add_epi32(nonzero, set);
            shifted[q] = _mm256_sllv_epi32(code, shifts);
        }
        /* After two horizontal adds: low half = bytes of elements 0-3 of each vector q, high half = 4-7. */
        __m256i sums = _mm256_hadd_epi32(_mm256_hadd_epi32(shifted[0], shifted[1]),
                                         _mm256_hadd_epi32(shifted[2], shifted[3]));
        __m128i low = _mm256_castsi256_si128(sums), high = _mm256_extracti128_si256(sums, 1);
        __m128i ordered_a = _mm_unpacklo_epi32(low, high), ordered_b = _mm_unpackhi_epi32(low, high);
        __m128i words = _mm_packus_epi32(ordered_a, ordered_b);
        __m128i bytes = _mm_packus_epi16(words, words);
        _mm_storel_epi64((__m128i *)(out + i / 4), bytes);
    }
    __m128i folded = _mm_add_epi32(_mm256_castsi256_si128(nonzero), _mm256_extracti128_si256(nonzero, 1));
    folded = _mm_add_epi32(folded, _mm_shuffle_epi32(folded, 0x4E));
    folded = _mm_add_epi32(folded, _mm_shuffle_epi32(folded, 0xB1));
    size_t total = (size_t)(uint32_t)_mm_cvtsi128_si32(folded);
    return total + pack_avx2(p + 4 * i, count - i, threshold, out + i / 4);
}

__attribute__((target("avx2"))) static size_t int8_avx2_wide(const void *source, size_t count,
                                                             uint32_t threshold, int8_t *out) {
    const unsigned char *p = (const unsigned char *)source;
    const __m256i magnitude_mask = _mm256_set1_epi32(0x7FFFFFFF);
    const __m256i limit = _mm256_set1_epi32((int)(threshold - 1u));
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    __m256i nonzero = _mm256_setzero_si256();
    size_t i = 0;
    for (; i + 32 <= count; i += 32) {
        _mm_prefetch((const char *)(p + 4 * i + 1024), _MM_HINT_T0);
        _mm_prefetch((const char *)(p + 4 * i + 1088), _MM_HINT_T0);
        __m256i trits[4];
        for (int q = 0; q < 4; q++) {
            __m256i bits = _mm256_loadu_si256((const __m256i *)(p + 4 * (i + 8 * (size_t)q)));
            __m256i set = _mm256_srli_epi32(_mm256_sub_epi32(limit, _mm256_and_si256(bits, magnitude_mask)), 31);
            __m256i negative = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_and_si256(set, _mm256_srli_epi32(bits, 31)));
            nonzero = _mm256_add_epi32(nonzero, set);
            trits[q] = _mm256_or_si256(set, negative);  /* -1, 0 or +1 as int32 */
        }
        __m256i halves = _mm256_packs_epi16(_mm256_packs_epi32(trits[0], trits[1]), _mm256_packs_epi32(trits[2], trits[3]));
        _mm256_storeu_si256((__m256i *)(out + i), _mm256_permutevar8x32_epi32(halves, order));
    }
    __m128i folded = _mm_add_epi32(_mm256_castsi256_si128(nonzero), _mm256_extracti128_si256(nonzero, 1));
    folded = _mm_add_epi32(folded, _mm_shuffle_epi32(folded, 0x4E));
    folded = _mm_add_epi32(folded, _mm_shuffle_epi32(folded, 0xB1));
    size_t total = (size_t)(uint32_t)_mm_cvtsi128_si32(folded);
    return total + int8_avx2(p + 4 * i, count - i, threshold, out + i);
}

/* The AVX2 table also uses F16C (half → float conversion), present on every AVX2 processor in practice. */
static int detect_avx2(void) {
    __builtin_cpu_init();
    return (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c")) ? 1 : 0;
}
#endif

int tq_uses_avx2(void) {
#ifdef TQ_HAVE_AVX2_PATH
    static int cached = -1;  /* benign race: every thread computes the same value */
    int value = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (value < 0) {
        value = detect_avx2();
        __atomic_store_n(&cached, value, __ATOMIC_RELAXED);
    }
    return value;
#else
    return 0;
#endif
}

#ifdef TQ_HAVE_AVX2_PATH
/* F16C's vcvtph2ps converts every binary16 value exactly (subnormals included) in hardware. */
__attribute__((target("avx2,f16c"))) static void widen_f16_f16c(const void *source, size_t count, uint32_t *out) {
    const unsigned char *p = (const unsigned char *)source;
    size_t i = 0;
    for (; i + 8 <= count; i += 8) {
        __m256 widened = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(p + 2 * i)));
        _mm256_storeu_si256((__m256i *)(void *)(out + i), _mm256_castps_si256(widened));
    }
    for (; i < count; i++) out[i] = half_to_float_bits(load_half(p, i));
}
#endif

static const tq_kernel_table portable_table = {
    abs_sum_portable, pack_portable, int8_portable, widen_f16_portable, widen_bf16_portable, read_portable, 0,
};

#ifdef TQ_HAVE_AVX2_PATH
static const tq_kernel_table avx2_table = {
    abs_sum_avx2, pack_avx2_wide, int8_avx2_wide, widen_f16_f16c, widen_bf16_avx2, read_avx2, 1,
};
#endif

const tq_kernel_table *tq_kernels(int allow_avx2) {
#ifdef TQ_HAVE_AVX2_PATH
    if (allow_avx2 && tq_uses_avx2()) return &avx2_table;
#else
    (void)allow_avx2;
#endif
    return &portable_table;
}
