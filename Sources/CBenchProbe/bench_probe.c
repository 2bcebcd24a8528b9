#include "bench_probe.h"

#include <string.h>

/* Eight 64-bit lanes per 64 bytes, software prefetch `distance` bytes ahead. */
#define TQ_DEFINE_READ(SUFFIX, ATTR)                                                                        \
    ATTR static uint64_t read_##SUFFIX(const void *source, size_t count, size_t distance) {                \
        const unsigned char *p = (const unsigned char *)source;                                             \
        uint64_t lane[8] = {0};                                                                             \
        size_t i = 0;                                                                                       \
        for (; i + 64 <= count; i += 64) {                                                                  \
            __builtin_prefetch(p + i + distance);                                                           \
            for (int k = 0; k < 8; k++) {                                                                   \
                uint64_t v;                                                                                 \
                memcpy(&v, p + i + 8 * k, 8);                                                               \
                lane[k] += v;                                                                               \
            }                                                                                               \
        }                                                                                                   \
        uint64_t total = 0;                                                                                 \
        for (int k = 0; k < 8; k++) total += lane[k];                                                       \
        for (; i < count; i++) total += p[i];                                                               \
        return total;                                                                                       \
    }

TQ_DEFINE_READ(portable, )

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
TQ_DEFINE_READ(avx2, __attribute__((target("avx2"))))

static int has_avx2(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") ? 1 : 0;
}
#endif

uint64_t tq_bench_read_checksum(const void *source, size_t count, int allow_avx2, size_t prefetch_distance) {
#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
    if (allow_avx2 && has_avx2()) return read_avx2(source, count, prefetch_distance);
#else
    (void)allow_avx2;
#endif
    return read_portable(source, count, prefetch_distance);
}
