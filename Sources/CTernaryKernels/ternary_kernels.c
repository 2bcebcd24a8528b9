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
    ATTR static double abs_sum_##SUFFIX(const unsigned char *p, size_t count) {                            \
        double lane[TQ_ABS_SUM_LANES] = {0};                                                              \
        size_t i = 0;                                                                                     \
        for (; i + TQ_ABS_SUM_LANES <= count; i += TQ_ABS_SUM_LANES) {                                     \
            for (int k = 0; k < TQ_ABS_SUM_LANES; k++) lane[k] += magnitude(load_bits(p, i + k));          \
        }                                                                                                 \
        for (int width = TQ_ABS_SUM_LANES / 2; width >= 1; width /= 2) {                                  \
            for (int k = 0; k < width; k++) lane[k] = lane[k] + lane[k + width];                          \
        }                                                                                                 \
        double tail = 0;                                                                                  \
        for (; i < count; i++) tail += magnitude(load_bits(p, i));                                        \
        return lane[0] + tail;                                                                            \
    }                                                                                                     \
    ATTR static size_t pack_##SUFFIX(const unsigned char *p, size_t count, uint32_t threshold,            \
                                     uint8_t *out) {                                                      \
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
    ATTR static size_t int8_##SUFFIX(const unsigned char *p, size_t count, uint32_t threshold,            \
                                     int8_t *out) {                                                       \
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
    ATTR static void widen_f16_##SUFFIX(const unsigned char *p, size_t count, uint32_t *out) {            \
        for (size_t i = 0; i < count; i++) out[i] = half_to_float_bits(load_half(p, i));                  \
    }                                                                                                     \
    ATTR static void widen_bf16_##SUFFIX(const unsigned char *p, size_t count, uint32_t *out) {           \
        for (size_t i = 0; i < count; i++) out[i] = (uint32_t)load_half(p, i) << 16;                      \
    }

TQ_DEFINE_KERNELS(portable, )

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#define TQ_HAVE_AVX2_PATH 1
TQ_DEFINE_KERNELS(avx2, __attribute__((target("avx2"))))

static int detect_avx2(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") ? 1 : 0;
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

double tq_abs_sum_f32(const void *source, size_t count) {
#ifdef TQ_HAVE_AVX2_PATH
    if (tq_uses_avx2()) return abs_sum_avx2((const unsigned char *)source, count);
#endif
    return abs_sum_portable((const unsigned char *)source, count);
}

size_t tq_pack_f32(const void *source, size_t count, uint32_t threshold, uint8_t *output) {
#ifdef TQ_HAVE_AVX2_PATH
    if (tq_uses_avx2()) return pack_avx2((const unsigned char *)source, count, threshold, output);
#endif
    return pack_portable((const unsigned char *)source, count, threshold, output);
}

size_t tq_int8_f32(const void *source, size_t count, uint32_t threshold, int8_t *output) {
#ifdef TQ_HAVE_AVX2_PATH
    if (tq_uses_avx2()) return int8_avx2((const unsigned char *)source, count, threshold, output);
#endif
    return int8_portable((const unsigned char *)source, count, threshold, output);
}

void tq_widen_f16(const void *source, size_t count, uint32_t *output) {
#ifdef TQ_HAVE_AVX2_PATH
    if (tq_uses_avx2()) { widen_f16_avx2((const unsigned char *)source, count, output); return; }
#endif
    widen_f16_portable((const unsigned char *)source, count, output);
}

void tq_widen_bf16(const void *source, size_t count, uint32_t *output) {
#ifdef TQ_HAVE_AVX2_PATH
    if (tq_uses_avx2()) { widen_bf16_avx2((const unsigned char *)source, count, output); return; }
#endif
    widen_bf16_portable((const unsigned char *)source, count, output);
}
