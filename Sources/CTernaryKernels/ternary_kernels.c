#include "ternary_kernels.h"

#include <string.h>

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#define TQ_HAVE_AVX2_PATH 1
#include <immintrin.h>
#endif

/* Plain float64 additions only; never contract or reassociate. */
#pragma STDC FP_CONTRACT OFF

#define TQ_INLINE static inline __attribute__((always_inline))

/* 32-element steps per block of the AVX-512 one pass (the block's band hits are recorded after it). */
#define TQ_SPECULATE_BLOCK_STEPS 256

enum { TQ_LAYOUT_PACKED = 0, TQ_LAYOUT_INT8 = 1 };

/* ---- FPU mode guard ----
 * Float32 → float64 conversion of a subnormal gives 0 when denormals-are-zero is set (a library loaded next
 * to fast-math code can set it for the whole thread). The abs_sum entry points clear DAZ/FTZ for their own
 * duration and restore the caller's mode; the compiler barriers keep every load and float operation of the
 * guarded call between the two mode switches. */
#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
typedef unsigned int tq_fp_mode;
TQ_INLINE tq_fp_mode fp_mode_enter(void) {
    tq_fp_mode saved = _mm_getcsr();
    if (saved & 0x8040u) _mm_setcsr(saved & ~0x8040u); /* bit 15 FTZ, bit 6 DAZ */
    __asm__ volatile("" ::: "memory");
    return saved;
}
TQ_INLINE void fp_mode_leave(tq_fp_mode saved) {
    __asm__ volatile("" ::: "memory");
    if (saved & 0x8040u) _mm_setcsr(saved);
}
#elif defined(__aarch64__)
typedef uint64_t tq_fp_mode;
TQ_INLINE tq_fp_mode fp_mode_enter(void) {
    uint64_t saved;
    __asm__ volatile("mrs %0, fpcr" : "=r"(saved)::"memory");
    const uint64_t flush = (1ull << 24) | (1ull << 19); /* FZ, FZ16 */
    if (saved & flush) {
        uint64_t cleared = saved & ~flush;
        __asm__ volatile("msr fpcr, %0" ::"r"(cleared) : "memory");
    }
    return saved;
}
TQ_INLINE void fp_mode_leave(tq_fp_mode saved) {
    __asm__ volatile("msr fpcr, %0" ::"r"(saved) : "memory");
}
#else
typedef int tq_fp_mode;
TQ_INLINE tq_fp_mode fp_mode_enter(void) { return 0; }
TQ_INLINE void fp_mode_leave(tq_fp_mode saved) { (void)saved; }
#endif

/* Pins a result: it must be computed before the next statement (the mode restore). */
#define TQ_PIN(x) __asm__ volatile("" : "+m"(x)::"memory")

/* Software prefetch TQ_PREFETCH_DISTANCE bytes ahead of a 32-element step at `at` (one core alone cannot keep enough lines in
 * flight otherwise): one line for 16-bit elements, two for float32 (128 bytes per step). */
/* 4 KiB: on the 2-core Xeon VM, one thread streaming F16/BF16 from memory reached 0.93-0.99 of the read
 * probe with 4 KiB and 0.65-0.80 with 1 KiB (F32: 0.98 and 0.86). */
#ifndef TQ_PREFETCH_DISTANCE
#define TQ_PREFETCH_DISTANCE 4096
#endif
TQ_INLINE void prefetch_step(const unsigned char *at, size_t element_width) {
    __builtin_prefetch(at + TQ_PREFETCH_DISTANCE);
    if (element_width == 4) __builtin_prefetch(at + TQ_PREFETCH_DISTANCE + 64);
}

/* ---- element access ---- */

TQ_INLINE uint32_t load_u32(const unsigned char *p, size_t i) {
    uint32_t v;
    memcpy(&v, p + 4 * i, 4);
    return v;
}

TQ_INLINE uint32_t load_u16(const unsigned char *p, size_t i) {
    uint16_t v;
    memcpy(&v, p + 2 * i, 2);
    return v;
}

TQ_INLINE double magnitude_f32(uint32_t bits) {
    uint32_t m = bits & 0x7FFFFFFFu;
    float f;
    memcpy(&f, &m, 4);
    return (double)f;
}

/* |binary16| → float32 bits. A subnormal half m·2^-24 (m < 2^10) is a normal float32; (float)m is exact and
 * the multiplication by 2^-24 only changes the exponent, so the result is exact (no subnormal float32 is
 * involved, so no FPU mode affects it). */
TQ_INLINE uint32_t half_magnitude_to_float_bits(uint32_t h) {
    uint32_t e = (h >> 10) & 0x1Fu;
    uint32_t m = h & 0x3FFu;
    float scaled = (float)(int32_t)m * 0x1p-24f;
    uint32_t sub;
    memcpy(&sub, &scaled, 4);
    uint32_t normal = ((e + 112u) << 23) | (m << 13);
    uint32_t special = 0x7F800000u | (m << 13);
    return e == 0 ? sub : (e == 31 ? special : normal);
}

/* |x| as float64 for element i of a source of the given kind (0 = f32, 1 = f16, 2 = bf16). */
TQ_INLINE double element_magnitude(const unsigned char *p, size_t i, int kind) {
    if (kind == 0) return magnitude_f32(load_u32(p, i));
    if (kind == 1) return magnitude_f32(half_magnitude_to_float_bits(load_u16(p, i) & 0x7FFFu));
    return magnitude_f32((load_u16(p, i) & 0x7FFFu) << 16);
}

/* ---- shared bodies, instantiated portable and with the AVX2 target ---- */

/* Lanes stored in lane order (the AVX-512 loop passes 32), merged pairwise, then the scalar tail. */
TQ_INLINE double merge_lanes(double *lane, int lanes, const unsigned char *p, size_t i, size_t count, int kind) {
    for (int w = lanes / 2; w >= 1; w /= 2) {
        for (int k = 0; k < w; k++) lane[k] = lane[k] + lane[k + w];
    }
    double tail = 0;
    for (; i < count; i++) tail += element_magnitude(p, i, kind);
    return lane[0] + tail;
}

/* The 16-lane loop of the header's sum tree, for any element kind; returns where the tail starts. */
TQ_INLINE size_t abs_sum_lanes_generic(const unsigned char *p, size_t count, int kind, double *lane) {
    const size_t width = kind == 0 ? 4 : 2;
    size_t i = 0;
    for (; i + TQ_ABS_SUM_LANES <= count; i += TQ_ABS_SUM_LANES) {
        __builtin_prefetch(p + width * i + TQ_PREFETCH_DISTANCE);
        for (int k = 0; k < TQ_ABS_SUM_LANES; k++) lane[k] += element_magnitude(p, i + k, kind);
    }
    return i;
}

/* Trits of count elements of element_width bytes, in either layout: the one scalar trit loop. `limit` is
 * threshold - 1; set = (limit - magnitude) >> 31 is 1 iff magnitude >= threshold. */
TQ_INLINE size_t ternarize_generic(const unsigned char *p, size_t count, uint32_t threshold, int element_width,
                                   int layout, unsigned char *out) {
    const uint32_t limit = threshold - 1u;
    const uint32_t sign_shift = element_width == 4 ? 31u : 15u;
    const uint32_t magnitude_mask = element_width == 4 ? 0x7FFFFFFFu : 0x7FFFu;
    size_t nonzero = 0;
    size_t i = 0;
    for (; i < count; i += 4) {
        size_t n = count - i < 4 ? count - i : 4;
        uint32_t byte = 0;
        for (size_t k = 0; k < n; k++) {
            uint32_t bits = element_width == 4 ? load_u32(p, i + k) : load_u16(p, i + k);
            uint32_t set = (limit - (bits & magnitude_mask)) >> 31;
            uint32_t negative = set & (bits >> sign_shift);
            nonzero += set;
            if (layout == TQ_LAYOUT_PACKED) {
                byte |= (set + negative) << (2 * k);
            } else {
                out[i + k] = (unsigned char)(set | (0u - negative));
            }
        }
        if (layout == TQ_LAYOUT_PACKED) out[i / 4] = (unsigned char)byte;
    }
    return nonzero;
}

/* Merges the lanes, adds the tail, pins the result and restores the caller's FPU mode. */
TQ_INLINE double finish_sum(double *lane, int lanes, const unsigned char *p, size_t i, size_t count, int kind,
                            tq_fp_mode mode) {
    double r = merge_lanes(lane, lanes, p, i, count, kind);
    TQ_PIN(r);
    fp_mode_leave(mode);
    return r;
}

/* The portable sum: the generic 16-lane loop (the compiler vectorizes the lanes). */
TQ_INLINE double abs_sum_portable(const void *source, size_t count, int kind) {
    double lane[TQ_ABS_SUM_LANES] = {0};
    tq_fp_mode mode = fp_mode_enter();
    size_t i = abs_sum_lanes_generic((const unsigned char *)source, count, kind, lane);
    return finish_sum(lane, TQ_ABS_SUM_LANES, (const unsigned char *)source, i, count, kind, mode);
}

/* ---- squared reconstruction errors (the job's MSE), in the header's fixed order ---- */

/* Element i of kind `kind` as float64, sign included (every widening exact). */
TQ_INLINE double element_value(const unsigned char *p, size_t i, int kind) {
    uint32_t bits;
    if (kind == 0) {
        bits = load_u32(p, i);
    } else {
        uint32_t h = load_u16(p, i);
        uint32_t magnitude = kind == 1 ? half_magnitude_to_float_bits(h & 0x7FFFu) : (h & 0x7FFFu) << 16;
        bits = magnitude | ((h & 0x8000u) << 16);
    }
    float f;
    memcpy(&f, &bits, 4);
    return (double)f;
}

/* The trit of a 2-bit code: 01 → +1, 10 → -1, 00 and the invalid 11 → 0. */
#define TQ_CODE_TRIT(c) ((double)((int)((c) & 1) - (int)((c) >> 1)))
#define TQ_TRIT_ROW(b) {TQ_CODE_TRIT((b) & 3), TQ_CODE_TRIT(((b) >> 2) & 3), TQ_CODE_TRIT(((b) >> 4) & 3), TQ_CODE_TRIT(((b) >> 6) & 3)}
#define TQ_TRIT_ROWS4(b) TQ_TRIT_ROW(b), TQ_TRIT_ROW((b) + 1), TQ_TRIT_ROW((b) + 2), TQ_TRIT_ROW((b) + 3)
#define TQ_TRIT_ROWS16(b) TQ_TRIT_ROWS4(b), TQ_TRIT_ROWS4((b) + 4), TQ_TRIT_ROWS4((b) + 8), TQ_TRIT_ROWS4((b) + 12)
#define TQ_TRIT_ROWS64(b) TQ_TRIT_ROWS16(b), TQ_TRIT_ROWS16((b) + 16), TQ_TRIT_ROWS16((b) + 32), TQ_TRIT_ROWS16((b) + 48)
/* The four trits of every packed byte as float64, trit j of byte b in trit_rows[b][j]. */
static const double trit_rows[256][4] __attribute__((aligned(32))) = {
    TQ_TRIT_ROWS64(0), TQ_TRIT_ROWS64(64), TQ_TRIT_ROWS64(128), TQ_TRIT_ROWS64(192)};

/* The non-zero codes of every packed byte as float64 lane masks: code_masks[b][j] is all ones when trit j
 * of byte b is 01 or 10. */
#define TQ_CODE_MASK(c) ((((c) ^ ((c) >> 1)) & 1) ? ~0ull : 0ull)
#define TQ_MASK_ROW(b) {TQ_CODE_MASK((b) & 3), TQ_CODE_MASK(((b) >> 2) & 3), TQ_CODE_MASK(((b) >> 4) & 3), TQ_CODE_MASK(((b) >> 6) & 3)}
#define TQ_MASK_ROWS4(b) TQ_MASK_ROW(b), TQ_MASK_ROW((b) + 1), TQ_MASK_ROW((b) + 2), TQ_MASK_ROW((b) + 3)
#define TQ_MASK_ROWS16(b) TQ_MASK_ROWS4(b), TQ_MASK_ROWS4((b) + 4), TQ_MASK_ROWS4((b) + 8), TQ_MASK_ROWS4((b) + 12)
#define TQ_MASK_ROWS64(b) TQ_MASK_ROWS16(b), TQ_MASK_ROWS16((b) + 16), TQ_MASK_ROWS16((b) + 32), TQ_MASK_ROWS16((b) + 48)
static const uint64_t code_masks[256][4] __attribute__((aligned(32))) = {
    TQ_MASK_ROWS64(0), TQ_MASK_ROWS64(64), TQ_MASK_ROWS64(128), TQ_MASK_ROWS64(192)};

#define TQ_SQUARED_ERROR_LANES 32

/* scale as float64 inside the mode guard (a subnormal scale would widen to 0 under DAZ). */
TQ_INLINE double guarded_scale(float scale) {
    TQ_PIN(scale);
    return (double)scale;
}

/* lane[j] += d·d for the elements k ≡ j (mod 32) of lo ..< hi (hi - lo a multiple of 32), in element order,
 * d = w - t·alpha. Portable version. */
TQ_INLINE void add_squares_generic(double *lane, const unsigned char *p, int kind, const uint8_t *packed, size_t lo,
                                   size_t hi, double alpha) {
    for (size_t k = lo; k < hi; k += TQ_SQUARED_ERROR_LANES) {
        for (size_t j = 0; j < TQ_SQUARED_ERROR_LANES; j++) {
            double d = element_value(p, k + j, kind) - trit_rows[packed[(k + j) >> 2]][(k + j) & 3] * alpha;
            lane[j] += d * d;
        }
    }
}

/* A chunk's sum: its 32 lanes merged pairwise (lane k += lane k + w, w = 16, 8, 4, 2, 1), then the squares
 * of elements k ..< hi (fewer than 32) added in order with r = ±alpha or 0. */
TQ_INLINE double finish_chunk(double *lane, const unsigned char *p, int kind, const uint8_t *packed, size_t k,
                              size_t hi, double alpha) {
    for (int w = TQ_SQUARED_ERROR_LANES / 2; w >= 1; w /= 2) {
        for (int j = 0; j < w; j++) lane[j] = lane[j] + lane[j + w];
    }
    double sum = lane[0];
    for (; k < hi; k++) {
        uint32_t code = (packed[k >> 2] >> (2 * (k & 3))) & 3u;
        double r = code == 1 ? alpha : (code == 2 ? -alpha : 0.0);
        double d = element_value(p, k, kind) - r;
        sum += d * d;
    }
    return sum;
}

/* The end of the chunk that starts at element lo of count. */
TQ_INLINE size_t chunk_end(size_t lo, size_t count) {
    return count - lo < TQ_SQUARED_ERROR_CHUNK ? count : lo + TQ_SQUARED_ERROR_CHUNK;
}

/* The end of the whole 32-element groups of lo ..< hi. */
TQ_INLINE size_t whole_groups_end(size_t lo, size_t hi) { return lo + (hi - lo) / TQ_SQUARED_ERROR_LANES * TQ_SQUARED_ERROR_LANES; }

/* A table's squared_errors entry point over one instruction set's ADD loop (add_squares_*), in the
 * header's order; it dispatches on the element kind so the loops see a constant kind. */
#define TQ_DEFINE_SQUARED_ERRORS(SUFFIX, ATTR, ADD)                                              \
    TQ_INLINE ATTR void squared_errors_##SUFFIX##_kind(const unsigned char *p, int kind, const uint8_t *packed,  \
                                                     size_t count, double alpha, size_t first, size_t chunks, \
                                                     double *partials) {                                    \
        for (size_t c = 0; c < chunks; c++) {                                                               \
            const size_t lo = (first + c) * TQ_SQUARED_ERROR_CHUNK;                                         \
            const size_t hi = chunk_end(lo, count);                                                         \
            double lane[TQ_SQUARED_ERROR_LANES] = {0};                                                      \
            const size_t whole = whole_groups_end(lo, hi);                                                  \
            ADD(lane, p, kind, packed, lo, whole, alpha);                                                \
            partials[c] = finish_chunk(lane, p, kind, packed, whole, hi, alpha);                            \
        }                                                                                                   \
    }                                                                                                       \
    ATTR static void squared_errors_##SUFFIX(const void *source, int kind, const uint8_t *packed, size_t count, \
                                             float scale, size_t first, size_t chunks, double *partials) {  \
        const unsigned char *p = (const unsigned char *)source;                                             \
        tq_fp_mode mode = fp_mode_enter();                                                                  \
        const double alpha = guarded_scale(scale);                                                          \
        if (kind == 0) squared_errors_##SUFFIX##_kind(p, 0, packed, count, alpha, first, chunks, partials); \
        else if (kind == 1) squared_errors_##SUFFIX##_kind(p, 1, packed, count, alpha, first, chunks, partials); \
        else squared_errors_##SUFFIX##_kind(p, 2, packed, count, alpha, first, chunks, partials);           \
        fp_mode_leave(mode);                                                                                \
    }

TQ_DEFINE_SQUARED_ERRORS(portable, , add_squares_generic)

/* ---- the squared error's moments (tq_moments): per chunk the squares in squared_errors' order, and
 * the sum, count and extreme magnitudes of the elements with a non-zero trit ---- */

/* Element i's magnitude as float32 bits (16-bit kinds widened exactly). */
TQ_INLINE uint32_t element_magnitude_bits(const unsigned char *p, size_t i, int kind) {
    if (kind == 0) return load_u32(p, i) & 0x7FFFFFFFu;
    if (kind == 1) return half_magnitude_to_float_bits(load_u16(p, i) & 0x7FFFu);
    return (load_u16(p, i) & 0x7FFFu) << 16;
}

/* Adds the non-zero codes of lo ..< hi to m (magnitudes, nonzero, min_bits, max_bits), one element at a
 * time without branches. */
TQ_INLINE void nonzero_magnitudes_generic(const unsigned char *p, int kind, const uint8_t *packed, size_t lo,
                                          size_t hi, tq_moments *m) {
    double sum[4] = {0, 0, 0, 0}; /* independent chains; the caller proves any order exact */
    uint64_t nonzero = 0;
    uint32_t low = m->min_bits, high = m->max_bits;
    for (size_t k = lo; k < hi; k++) {
        const uint32_t code = (packed[k >> 2] >> (2 * (k & 3))) & 3u;
        const uint32_t set = (code ^ (code >> 1)) & 1u; /* 01 and 10 */
        const uint32_t bits = element_magnitude_bits(p, k, kind);
        const uint32_t kept = bits & (0u - set);
        const uint32_t candidate = bits | (set - 1u); /* all ones for a zero trit */
        float f;
        memcpy(&f, &kept, 4);
        sum[k & 3] += (double)f;
        nonzero += set;
        high = kept > high ? kept : high;
        low = candidate < low ? candidate : low;
    }
    m->magnitudes += (sum[0] + sum[1]) + (sum[2] + sum[3]);
    m->nonzero += nonzero;
    m->min_bits = low;
    m->max_bits = high;
}

/* The moments of lo ..< hi (a multiple of 32 apart) in 32 independent lanes (so the compiler can vectorize
 * across them): squares into squared_errors' lanes at alpha 0, and the non-zero codes' magnitudes, count and
 * extremes into m. `bounded` (a constant): the caller knows the count and a lower bound, so only the
 * magnitude sum and, as max_bits, the largest magnitude of all elements are gathered. Portable version. */
TQ_INLINE void add_moments_generic(double *lane, const unsigned char *p, int kind, const uint8_t *packed, size_t lo,
                                   size_t hi, tq_moments *m, int bounded) {
    double sums[TQ_SQUARED_ERROR_LANES] = {0}, highs[TQ_SQUARED_ERROR_LANES] = {0}, lows[TQ_SQUARED_ERROR_LANES];
    uint64_t counts[TQ_SQUARED_ERROR_LANES] = {0};
    for (size_t j = 0; j < TQ_SQUARED_ERROR_LANES; j++) lows[j] = __builtin_inf();
    for (size_t k = lo; k < hi; k += TQ_SQUARED_ERROR_LANES) {
        for (size_t j = 0; j < TQ_SQUARED_ERROR_LANES; j++) {
            const size_t i = k + j;
            const double x = element_magnitude(p, i, kind);
            const uint64_t mask = code_masks[packed[i >> 2]][i & 3];
            uint64_t bits;
            memcpy(&bits, &x, 8);
            bits &= mask;
            double kept;
            memcpy(&kept, &bits, 8);
            lane[j] += x * x;
            sums[j] += kept;
            if (bounded) {
                highs[j] = x > highs[j] ? x : highs[j];
            } else {
                counts[j] += mask & 1u;
                highs[j] = kept > highs[j] ? kept : highs[j];
                lows[j] = (mask && x < lows[j]) ? x : lows[j];
            }
        }
    }
    double total = 0;
    for (size_t j = 0; j < TQ_SQUARED_ERROR_LANES; j++) {
        total += sums[j];
        m->nonzero += counts[j];
        const float hf = (float)highs[j], lf = (float)lows[j]; /* exact: float32 values (+Inf: none) */
        uint32_t hb, lb;
        memcpy(&hb, &hf, 4);
        memcpy(&lb, &lf, 4);
        if (highs[j] > 0 && hb > m->max_bits) m->max_bits = hb;
        if (lows[j] != __builtin_inf() && lb < m->min_bits) m->min_bits = lb;
    }
    m->magnitudes += total;
}

/* A table's chunk_moments over a MOMENTS loop (add_moments_*) for the whole 32-element groups, then the
 * scalar tail (its squares through finish_chunk at alpha 0, as squared_errors sums them), and the composite
 * speculate_moments of the tables without a fused loop: speculate, then chunk_moments over the chunk while
 * it is in cache. */
#define TQ_DEFINE_CHUNK_MOMENTS(SUFFIX, ATTR, MOMENTS)                                                      \
    TQ_INLINE ATTR void chunk_moments_##SUFFIX##_kind(const unsigned char *p, int kind, const uint8_t *packed,  \
                                                    size_t lo, size_t hi, tq_moments *m, int bounded) {     \
        double lane[TQ_SQUARED_ERROR_LANES] = {0};                                                          \
        const size_t whole = whole_groups_end(lo, hi);                                                      \
        if (bounded) MOMENTS(lane, p, kind, packed, lo, whole, m, 1);                                       \
        else MOMENTS(lane, p, kind, packed, lo, whole, m, 0);                                               \
        m->squares = finish_chunk(lane, p, kind, packed, whole, hi, 0.0);                                   \
        nonzero_magnitudes_generic(p, kind, packed, whole, hi, m);                                          \
    }                                                                                                       \
    ATTR static void chunk_moments_##SUFFIX(const void *source, int kind, const uint8_t *packed, size_t count, \
                                            size_t first, size_t chunks, tq_moments *moments) {             \
        const unsigned char *p = (const unsigned char *)source;                                             \
        tq_fp_mode mode = fp_mode_enter();                                                                  \
        for (size_t c = 0; c < chunks; c++) {                                                               \
            const size_t lo = (first + c) * TQ_SQUARED_ERROR_CHUNK;                                         \
            const size_t hi = chunk_end(lo, count);                                                         \
            tq_moments m = {0, 0, 0, 0xFFFFFFFFu, 0};                                                       \
            if (kind == 0) chunk_moments_##SUFFIX##_kind(p, 0, packed, lo, hi, &m, 0);                      \
            else if (kind == 1) chunk_moments_##SUFFIX##_kind(p, 1, packed, lo, hi, &m, 0);                 \
            else chunk_moments_##SUFFIX##_kind(p, 2, packed, lo, hi, &m, 0);                                \
            TQ_PIN(m);                                                                                      \
            moments[c] = m;                                                                                 \
        }                                                                                                   \
        fp_mode_leave(mode);                                                                                \
    }
#define TQ_DEFINE_SPECULATE_MOMENTS(SUFFIX, ATTR)                                                           \
    ATTR static size_t speculate_moments_##SUFFIX(const void *source, int kind, size_t count, uint32_t threshold, \
                                                  uint8_t *output, uint32_t low, uint32_t high, uint32_t *entries, \
                                                  size_t capacity, double *sum, size_t *band, tq_moments *moments) { \
        const size_t nonzero = speculate_##SUFFIX(source, kind, count, threshold, TQ_LAYOUT_PACKED, output, low, high, \
                                                  entries, capacity, sum, band);                            \
        /* The count is speculate's; every non-zero magnitude is at least the threshold, and max_bits is  \
         * taken over every element (a bound, as the header allows). */                                    \
        const unsigned char *p = (const unsigned char *)source;                                             \
        tq_fp_mode mode = fp_mode_enter();                                                                  \
        tq_moments m = {0, 0, 0, 0xFFFFFFFFu, 0};                                                           \
        const size_t hi = count < TQ_SQUARED_ERROR_CHUNK ? count : TQ_SQUARED_ERROR_CHUNK;                  \
        if (kind == 0) chunk_moments_##SUFFIX##_kind(p, 0, output, 0, hi, &m, 1);                           \
        else if (kind == 1) chunk_moments_##SUFFIX##_kind(p, 1, output, 0, hi, &m, 1);                      \
        else chunk_moments_##SUFFIX##_kind(p, 2, output, 0, hi, &m, 1);                                     \
        TQ_PIN(m);                                                                                          \
        fp_mode_leave(mode);                                                                                \
        m.nonzero = nonzero;                                                                                \
        if (nonzero > 0) {                                                                                  \
            const uint32_t lowest = kind == 0 ? threshold : (kind == 1 ? half_magnitude_to_float_bits(threshold) \
                                                                       : threshold << 16);                  \
            m.min_bits = lowest < m.min_bits ? lowest : m.min_bits;                                         \
        } else {                                                                                            \
            m.min_bits = 0xFFFFFFFFu;                                                                       \
            m.max_bits = 0;                                                                                 \
        }                                                                                                   \
        *moments = m;                                                                                       \
        return nonzero;                                                                                     \
    }

/* ---- the first NaN/±Inf (all-ones exponent) ---- */

TQ_INLINE uint32_t exponent_mask(int kind) { return kind == 0 ? 0x7F800000u : (kind == 1 ? 0x7C00u : 0x7F80u); }

/* The index of the first element in [i, count) whose exponent field is all ones, or count. */
TQ_INLINE size_t first_non_finite_tail(const unsigned char *p, size_t i, size_t count, int kind) {
    const uint32_t mask = exponent_mask(kind);
    for (; i < count; i++) {
        uint32_t bits = kind == 0 ? load_u32(p, i) : load_u16(p, i);
        if ((bits & mask) == mask) return i;
    }
    return count;
}

/* ---- one common magnitude ---- */

TQ_INLINE uint32_t kind_magnitude_mask(int kind) { return kind == 0 ? 0x7FFFFFFFu : 0x7FFFu; }

/* common_magnitude from element i on, given the magnitude found so far (0: none yet). */
TQ_INLINE uint32_t common_magnitude_tail(const unsigned char *p, size_t i, size_t count, int kind, uint32_t found) {
    const uint32_t mask = kind_magnitude_mask(kind);
    for (; i < count; i++) {
        uint32_t m = (kind == 0 ? load_u32(p, i) : load_u16(p, i)) & mask;
        if (m == 0) continue;
        if (found == 0) found = m;
        else if (m != found) return TQ_MIXED_MAGNITUDES;
    }
    return found;
}

static uint32_t common_magnitude_portable(const void *source, size_t count, int kind) {
    const unsigned char *p = (const unsigned char *)source;
    const uint32_t mask = kind_magnitude_mask(kind);
    size_t i = 0;
    uint32_t found = 0;
    /* The first non-zero magnitude, then 32 elements per step: each must be 0 or that magnitude. */
    for (; i < count && found == 0; i++) found = (kind == 0 ? load_u32(p, i) : load_u16(p, i)) & mask;
    for (; i + 32 <= count; i += 32) {
        uint32_t other = 0;
        for (size_t k = 0; k < 32; k++) {
            uint32_t m = (kind == 0 ? load_u32(p, i + k) : load_u16(p, i + k)) & mask;
            other |= (uint32_t)(m != 0 && m != found);
        }
        if (other) return TQ_MIXED_MAGNITUDES;
    }
    return common_magnitude_tail(p, i, count, kind, found);
}

/* ---- the band around a forecast threshold ---- */

/* Records element i of a band scan: its index and raw bits while there is room; counts it in any case. */
TQ_INLINE size_t band_record(uint32_t *entries, size_t capacity, size_t found, size_t i, uint32_t bits) {
    if (found < capacity) {
        entries[2 * found] = (uint32_t)i;
        entries[2 * found + 1] = bits;
    }
    return found + 1;
}

/* band_scan from element i on, `found` elements recorded so far: magnitude m is in the band iff
 * m - low < high - low (unsigned; low <= high, so an empty band records nothing). */
TQ_INLINE size_t band_scan_tail(const unsigned char *p, size_t i, size_t count, int element_width, uint32_t low,
                                uint32_t high, uint32_t *entries, size_t capacity, size_t found) {
    const uint32_t mask = element_width == 4 ? 0x7FFFFFFFu : 0x7FFFu;
    for (; i < count; i++) {
        uint32_t bits = element_width == 4 ? load_u32(p, i) : load_u16(p, i);
        if ((bits & mask) - low < high - low) found = band_record(entries, capacity, found, i, bits);
    }
    return found;
}

static size_t band_scan_portable(const void *source, size_t count, int element_width, uint32_t low, uint32_t high,
                                 uint32_t *entries, size_t capacity) {
    if (high <= low) return 0;
    return band_scan_tail((const unsigned char *)source, 0, count, element_width, low, high, entries, capacity, 0);
}

/* The one pass, portable: the sum, the trit loop and the band scan one after another over the source
 * (the same results as the vector tables' single loop). */
static size_t speculate_portable(const void *source, int kind, size_t count, uint32_t threshold, int layout,
                                 void *output, uint32_t low, uint32_t high, uint32_t *entries, size_t capacity,
                                 double *sum, size_t *band) {
    const int width = kind == 0 ? 4 : 2;
    *sum = abs_sum_portable(source, count, kind);
    size_t nonzero = ternarize_generic((const unsigned char *)source, count, threshold, width, layout, (unsigned char *)output);
    *band = band_scan_portable(source, count, width, low, high, entries, capacity);
    return nonzero;
}

TQ_DEFINE_CHUNK_MOMENTS(portable, , add_moments_generic)
TQ_DEFINE_SPECULATE_MOMENTS(portable, )

static size_t first_non_finite_portable(const void *source, size_t count, int kind) {
    const unsigned char *p = (const unsigned char *)source;
    const uint32_t mask = exponent_mask(kind);
    size_t i = 0;
    for (; i + 32 <= count; i += 32) {
        uint32_t any = 0;
        for (size_t k = 0; k < 32; k++) {
            uint32_t bits = kind == 0 ? load_u32(p, i + k) : load_u16(p, i + k);
            any |= (uint32_t)((bits & mask) == mask);
        }
        if (any) return first_non_finite_tail(p, i, count, kind);
    }
    return first_non_finite_tail(p, i, count, kind);
}

/* A table's seven entry points over one instruction set's sum and trit loops. */
#define TQ_DEFINE_ENTRY_POINTS(SUFFIX, ATTR, SUM, TERNARIZE)                                                \
    ATTR static double abs_sum_f32_##SUFFIX(const void *s, size_t n) { return SUM(s, n, 0); }               \
    ATTR static double abs_sum_f16_##SUFFIX(const void *s, size_t n) { return SUM(s, n, 1); }               \
    ATTR static double abs_sum_bf16_##SUFFIX(const void *s, size_t n) { return SUM(s, n, 2); }              \
    ATTR static size_t pack_f32_##SUFFIX(const void *s, size_t n, uint32_t t, uint8_t *o) {                 \
        return TERNARIZE((const unsigned char *)s, n, t, 4, TQ_LAYOUT_PACKED, o);                           \
    }                                                                                                       \
    ATTR static size_t int8_f32_##SUFFIX(const void *s, size_t n, uint32_t t, int8_t *o) {                  \
        return TERNARIZE((const unsigned char *)s, n, t, 4, TQ_LAYOUT_INT8, (unsigned char *)o);            \
    }                                                                                                       \
    ATTR static size_t pack_h16_##SUFFIX(const void *s, size_t n, uint32_t t, uint8_t *o) {                 \
        return TERNARIZE((const unsigned char *)s, n, t, 2, TQ_LAYOUT_PACKED, o);                           \
    }                                                                                                       \
    ATTR static size_t int8_h16_##SUFFIX(const void *s, size_t n, uint32_t t, int8_t *o) {                  \
        return TERNARIZE((const unsigned char *)s, n, t, 2, TQ_LAYOUT_INT8, (unsigned char *)o);            \
    }

TQ_DEFINE_ENTRY_POINTS(portable, , abs_sum_portable, ternarize_generic)

/* The vector sum loop, written once for every instruction set: LANES float64 lanes in four ACC
 * accumulators; ADD adds a step of 32 elements (or 16 when its last argument is 1) of kind `kind`, each
 * element position into the same lane every step; STORE writes the accumulators out in lane order. Steps
 * of 32, at most one step of 16, then the scalar tail. */
#define TQ_DEFINE_SUM_LOOP(NAME, ATTR, ACC, ZERO, ADD, STORE, LANES)                                        \
    TQ_INLINE ATTR double NAME(const void *source, size_t count, int kind) {                                \
        const unsigned char *p = (const unsigned char *)source;                                             \
        const size_t width = kind == 0 ? 4 : 2;                                                             \
        tq_fp_mode mode = fp_mode_enter();                                                                  \
        ACC acc[4] = {ZERO(), ZERO(), ZERO(), ZERO()};                                                      \
        size_t i = 0;                                                                                       \
        for (; i + 32 <= count; i += 32) {                                                                  \
            prefetch_step(p + width * i, width);                                                            \
            ADD(acc, p + width * i, kind, 0);                                                               \
        }                                                                                                   \
        if (i + 16 <= count) {                                                                              \
            ADD(acc, p + width * i, kind, 1);                                                               \
            i += 16;                                                                                        \
        }                                                                                                   \
        double lane[LANES];                                                                                 \
        STORE(acc, lane);                                                                                   \
        return finish_sum(lane, LANES, p, i, count, kind, mode);                                            \
    }

#ifdef TQ_HAVE_AVX2_PATH
#define TQ_AVX2 __attribute__((target("avx2,f16c,popcnt")))

/* ---- AVX2 sums: 16 elements per step into four float64x4 accumulators (lanes 4q..4q+3 in acc[q]), so
 * each of the 16 lanes adds one element per step, as the header's tree describes. Every widening is exact
 * (vcvtph2ps converts every binary16 value exactly; bfloat16 → float32 is a 16-bit shift), and DAZ is
 * cleared in any case. ---- */

/* 16 magnitudes of element kind `kind` at `at` added into acc. bfloat16 interleaves zero low halves
 * (vpunpck works within 128-bit halves, so acc[1] receives elements 8–11 and acc[2] 4–7: a fixed
 * assignment, which is all the tree needs). */
TQ_INLINE TQ_AVX2 void add_x16_avx2(__m256d acc[4], const unsigned char *at, int kind) {
    const __m128 magnitude_mask = _mm_castsi128_ps(_mm_set1_epi32(0x7FFFFFFF));
    __m128 f[4];
    if (kind == 0) {
        for (int q = 0; q < 4; q++) f[q] = _mm_loadu_ps((const float *)(const void *)(at + 16 * q));
    } else if (kind == 1) {
        for (int q = 0; q < 4; q++) f[q] = _mm_cvtph_ps(_mm_loadl_epi64((const __m128i *)(const void *)(at + 8 * q)));
    } else {
        __m256i h = _mm256_loadu_si256((const __m256i *)(const void *)at);
        __m256 lo = _mm256_castsi256_ps(_mm256_unpacklo_epi16(_mm256_setzero_si256(), h));
        __m256 hi = _mm256_castsi256_ps(_mm256_unpackhi_epi16(_mm256_setzero_si256(), h));
        f[0] = _mm256_castps256_ps128(lo);
        f[1] = _mm256_extractf128_ps(lo, 1);
        f[2] = _mm256_castps256_ps128(hi);
        f[3] = _mm256_extractf128_ps(hi, 1);
    }
    for (int q = 0; q < 4; q++) acc[q] = _mm256_add_pd(acc[q], _mm256_cvtps_pd(_mm_and_ps(f[q], magnitude_mask)));
}

/* 32 elements (or 16 when `sixteen`) of kind `kind` at `at`: two steps of 16 into the same lanes. */
TQ_INLINE TQ_AVX2 void add_x32_avx2(__m256d acc[4], const unsigned char *at, int kind, int sixteen) {
    add_x16_avx2(acc, at, kind);
    if (!sixteen) add_x16_avx2(acc, at + (kind == 0 ? 64 : 32), kind);
}

TQ_INLINE TQ_AVX2 __m256d zero_avx2(void) { return _mm256_setzero_pd(); }
TQ_INLINE TQ_AVX2 void store_lanes_avx2(const __m256d acc[4], double *lane) {
    for (int q = 0; q < 4; q++) _mm256_storeu_pd(lane + 4 * q, acc[q]);
}

TQ_DEFINE_SUM_LOOP(abs_sum_avx2, TQ_AVX2, __m256d, zero_avx2, add_x32_avx2, store_lanes_avx2, TQ_ABS_SUM_LANES)

/* ---- the vector trit loop, written once for every instruction set, element width and layout ----
 * 32 elements per step: DECIDE gives set (magnitude > threshold - 1, a signed compare of non-negative
 * values) and negative (the sign) for the step's elements in element order, COUNT the number of set
 * elements (a popcount added into a size_t, so the total cannot wrap whatever the count), STORE writes them
 * in the layout. The tail (< 32 elements) goes to the scalar loop. */
#define TQ_DEFINE_TRIT_LOOP(NAME, ATTR, MASK, DECIDE, COUNT, STORE)                                         \
    TQ_INLINE ATTR size_t NAME(const unsigned char *p, size_t count, uint32_t threshold, int element_width,  \
                               int layout, unsigned char *out) {                                           \
        size_t nonzero = 0;                                                                                 \
        size_t i = 0;                                                                                       \
        for (; i + 32 <= count; i += 32) {                                                                  \
            const unsigned char *at = p + (size_t)element_width * i;                                        \
            prefetch_step(at, (size_t)element_width);                                                       \
            MASK set, negative;                                                                             \
            DECIDE(at, element_width, threshold, &set, &negative);                                          \
            nonzero += COUNT(set);                                                                          \
            STORE(set, negative, layout, out, i);                                                           \
        }                                                                                                   \
        unsigned char *rest = layout == TQ_LAYOUT_INT8 ? out + i : out + i / 4;                             \
        return nonzero + ternarize_generic(p + (size_t)element_width * i, count - i, threshold, element_width, \
                                           layout, rest);                                                   \
    }

/* AVX2: set and negative as 0x00/0xFF bytes in element order. */
TQ_INLINE TQ_AVX2 void decide32_avx2(const unsigned char *at, int element_width, uint32_t threshold, __m256i *set,
                                     __m256i *negative) {
    if (element_width == 4) {
        const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
        const __m256i magnitude_mask = _mm256_set1_epi32(0x7FFFFFFF);
        const __m256i limit = _mm256_set1_epi32((int)(threshold - 1u));
        __m256i s[4], g[4];
        for (int q = 0; q < 4; q++) {
            __m256i bits = _mm256_loadu_si256((const __m256i *)(const void *)(at + 32 * q));
            s[q] = _mm256_cmpgt_epi32(_mm256_and_si256(bits, magnitude_mask), limit);
            g[q] = _mm256_srai_epi32(bits, 31);
        }
        *set = _mm256_permutevar8x32_epi32(
            _mm256_packs_epi16(_mm256_packs_epi32(s[0], s[1]), _mm256_packs_epi32(s[2], s[3])), order);
        *negative = _mm256_permutevar8x32_epi32(
            _mm256_packs_epi16(_mm256_packs_epi32(g[0], g[1]), _mm256_packs_epi32(g[2], g[3])), order);
    } else {
        const __m256i magnitude_mask = _mm256_set1_epi16(0x7FFF);
        const __m256i limit = _mm256_set1_epi16((short)(threshold - 1u));
        __m256i a = _mm256_loadu_si256((const __m256i *)(const void *)at);
        __m256i b = _mm256_loadu_si256((const __m256i *)(const void *)(at + 32));
        __m256i sa = _mm256_cmpgt_epi16(_mm256_and_si256(a, magnitude_mask), limit);
        __m256i sb = _mm256_cmpgt_epi16(_mm256_and_si256(b, magnitude_mask), limit);
        *set = _mm256_permute4x64_epi64(_mm256_packs_epi16(sa, sb), 0xD8);
        *negative = _mm256_permute4x64_epi64(_mm256_packs_epi16(_mm256_srai_epi16(a, 15), _mm256_srai_epi16(b, 15)), 0xD8);
    }
}

TQ_INLINE TQ_AVX2 size_t count32_avx2(__m256i set) { return (size_t)__builtin_popcount((unsigned)_mm256_movemask_epi8(set)); }

TQ_INLINE TQ_AVX2 void store32_avx2(__m256i set, __m256i negative, int layout, unsigned char *out, size_t i) {
    const __m256i one = _mm256_set1_epi8(1);
    if (layout == TQ_LAYOUT_INT8) {
        /* -1 (0xFF) where negative, +1 where positive, 0 where not set. */
        _mm256_storeu_si256((__m256i *)(void *)(out + i), _mm256_and_si256(set, _mm256_or_si256(negative, one)));
    } else {
        /* code 1 (+1) or 2 (−1) per byte, then 4 codes into one byte: c0 + 4c1 + 16c2 + 64c3. */
        const __m256i pair_weights = _mm256_set1_epi16(0x0401);     /* bytes (1, 4): c0 + 4·c1 */
        const __m256i quad_weights = _mm256_set1_epi32(0x00100001); /* words (1, 16) */
        const __m256i dword_order = _mm256_setr_epi32(0, 4, 0, 0, 0, 0, 0, 0);
        __m256i code = _mm256_and_si256(set, _mm256_sub_epi8(one, negative));
        __m256i quads = _mm256_madd_epi16(_mm256_maddubs_epi16(code, pair_weights), quad_weights);
        __m256i words = _mm256_packus_epi32(quads, quads);
        __m256i bytes = _mm256_packus_epi16(words, words);
        __m256i gathered = _mm256_permutevar8x32_epi32(bytes, dword_order);
        _mm_storel_epi64((__m128i *)(void *)(out + i / 4), _mm256_castsi256_si128(gathered));
    }
}

TQ_DEFINE_TRIT_LOOP(ternarize_avx2, TQ_AVX2, __m256i, decide32_avx2, count32_avx2, store32_avx2)

TQ_DEFINE_ENTRY_POINTS(avx2, TQ_AVX2, abs_sum_avx2, ternarize_avx2)

/* ---- AVX-512 (F, BW, VL, DQ) with BMI2: 32 elements per step ----
 * Sums: four float64x8 accumulators, 32 lanes (element i + k of a step into lane k; bfloat16 again in the
 * fixed order vpunpck gives). 32 lanes halve every lane's additions, so the header's bound (count / 16 +
 * slack) holds with room: a lane adds at most count / 32 + 1 elements (one trailing 16-step), 5 merge
 * levels, then fewer than 16 tail elements. Trits: the compare and the sign give 32-bit masks (bit k =
 * element k), deposited into 2-bit fields with pdep (packed) or expanded into bytes (int8). */
#define TQ_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,bmi2,avx2,f16c,popcnt")))

/* 16 non-negative float32 values → lanes 8h..8h+7 of the pair (acc[2h], acc[2h+1]) for h = half. */
TQ_INLINE TQ_AVX512 void add_magnitudes_f32x16_avx512(__m512d acc[4], int half, __m512 f) {
    __m256 low = _mm512_castps512_ps256(f);
    __m256 high = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(f), 1));
    acc[2 * half] = _mm512_add_pd(acc[2 * half], _mm512_cvtps_pd(low));
    acc[2 * half + 1] = _mm512_add_pd(acc[2 * half + 1], _mm512_cvtps_pd(high));
}

/* 16 float32 values' magnitudes into the same lanes. */
TQ_INLINE TQ_AVX512 void add_f32x16_avx512(__m512d acc[4], int half, __m512 f) {
    add_magnitudes_f32x16_avx512(acc, half, _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(f), _mm512_set1_epi32(0x7FFFFFFF))));
}

/* 32 elements of kind `kind` at `at` (or 16 into the first half when `sixteen`). */
TQ_INLINE TQ_AVX512 void add_x32_avx512(__m512d acc[4], const unsigned char *at, int kind, int sixteen) {
    if (kind == 0) {
        add_f32x16_avx512(acc, 0, _mm512_loadu_ps((const void *)at));
        if (!sixteen) add_f32x16_avx512(acc, 1, _mm512_loadu_ps((const void *)(at + 64)));
    } else if (kind == 1) {
        add_f32x16_avx512(acc, 0, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)at)));
        if (!sixteen) add_f32x16_avx512(acc, 1, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)(at + 32))));
    } else if (sixteen) {
        __m512i h = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(const void *)at));
        add_f32x16_avx512(acc, 0, _mm512_castsi512_ps(_mm512_slli_epi32(h, 16)));
    } else {
        __m512i h = _mm512_loadu_si512((const void *)at);
        add_f32x16_avx512(acc, 0, _mm512_castsi512_ps(_mm512_unpacklo_epi16(_mm512_setzero_si512(), h)));
        add_f32x16_avx512(acc, 1, _mm512_castsi512_ps(_mm512_unpackhi_epi16(_mm512_setzero_si512(), h)));
    }
}

TQ_INLINE TQ_AVX512 __m512d zero_avx512(void) { return _mm512_setzero_pd(); }
TQ_INLINE TQ_AVX512 void store_lanes_avx512(const __m512d acc[4], double *lane) {
    for (int q = 0; q < 4; q++) _mm512_storeu_pd(lane + 8 * q, acc[q]);
}

TQ_DEFINE_SUM_LOOP(abs_sum_avx512, TQ_AVX512, __m512d, zero_avx512, add_x32_avx512, store_lanes_avx512, 32)

/* AVX-512: set and negative as 32-bit masks, bit k = element k. */
TQ_INLINE TQ_AVX512 void decide32_avx512(const unsigned char *at, int element_width, uint32_t threshold, uint32_t *set,
                                         uint32_t *negative) {
    if (element_width == 4) {
        const __m512i magnitude_mask = _mm512_set1_epi32(0x7FFFFFFF);
        const __m512i limit = _mm512_set1_epi32((int)(threshold - 1u));
        __m512i a = _mm512_loadu_si512((const void *)at), b = _mm512_loadu_si512((const void *)(at + 64));
        *set = (uint32_t)_mm512_cmpgt_epi32_mask(_mm512_and_si512(a, magnitude_mask), limit) |
               (uint32_t)_mm512_cmpgt_epi32_mask(_mm512_and_si512(b, magnitude_mask), limit) << 16;
        *negative = (uint32_t)_mm512_movepi32_mask(a) | (uint32_t)_mm512_movepi32_mask(b) << 16;
    } else {
        const __m512i magnitude_mask = _mm512_set1_epi16(0x7FFF);
        const __m512i limit = _mm512_set1_epi16((short)(threshold - 1u));
        __m512i a = _mm512_loadu_si512((const void *)at);
        *set = (uint32_t)_mm512_cmpgt_epi16_mask(_mm512_and_si512(a, magnitude_mask), limit);
        *negative = (uint32_t)_mm512_movepi16_mask(a);
    }
}

TQ_INLINE TQ_AVX512 size_t count32_avx512(uint32_t set) { return (size_t)__builtin_popcount(set); }

TQ_INLINE TQ_AVX512 void store32_avx512(uint32_t set, uint32_t negative, int layout, unsigned char *out, size_t i) {
    if (layout == TQ_LAYOUT_INT8) {
        __m256i signs = _mm256_mask_blend_epi8(negative, _mm256_set1_epi8(1), _mm256_set1_epi8(-1));
        _mm256_storeu_si256((__m256i *)(void *)(out + i), _mm256_maskz_mov_epi8(set, signs));
    } else {
        /* code 01 at bit 2k for +1, 10 for −1. */
        uint64_t fields = _pdep_u64(set & ~negative, 0x5555555555555555ull) | _pdep_u64(set & negative, 0xAAAAAAAAAAAAAAAAull);
        memcpy(out + i / 4, &fields, 8);
    }
}

TQ_DEFINE_TRIT_LOOP(ternarize_avx512, TQ_AVX512, uint32_t, decide32_avx512, count32_avx512, store32_avx512)

TQ_DEFINE_ENTRY_POINTS(avx512, TQ_AVX512, abs_sum_avx512, ternarize_avx512)

/* ---- AVX2 squared errors: lanes 4q..4q+3 (q = 0..7) in eight float64x4 accumulators, one element per
 * lane per 32-element step, as the generic loop adds them. Also used by the AVX-512 table. ---- */

/* Four elements of kind `kind` at element index k, widened exactly to float64. */
TQ_INLINE TQ_AVX2 __m256d load_x4_pd_avx2(const unsigned char *p, size_t k, int kind) {
    if (kind == 0) return _mm256_cvtps_pd(_mm_loadu_ps((const float *)(const void *)(p + 4 * k)));
    __m128i h = _mm_loadl_epi64((const __m128i *)(const void *)(p + 2 * k));
    if (kind == 1) return _mm256_cvtps_pd(_mm_cvtph_ps(h));
    return _mm256_cvtps_pd(_mm_castsi128_ps(_mm_slli_epi32(_mm_cvtepu16_epi32(h), 16)));
}

TQ_INLINE TQ_AVX2 void add_squares_avx2(double *lane, const unsigned char *p, int kind, const uint8_t *packed,
                                        size_t lo, size_t hi, double alpha) {
    const __m256d a = _mm256_set1_pd(alpha);
    const size_t width = kind == 0 ? 4 : 2;
    __m256d acc[8];
    for (int q = 0; q < 8; q++) acc[q] = _mm256_loadu_pd(lane + 4 * q);
    for (size_t k = lo; k < hi; k += TQ_SQUARED_ERROR_LANES) {
        prefetch_step(p + width * k, width);
        for (int q = 0; q < 8; q++) {
            const size_t at = k + 4 * (size_t)q;
            __m256d r = _mm256_mul_pd(_mm256_load_pd(trit_rows[packed[at >> 2]]), a);
            __m256d d = _mm256_sub_pd(load_x4_pd_avx2(p, at, kind), r);
            acc[q] = _mm256_add_pd(acc[q], _mm256_mul_pd(d, d));
        }
    }
    for (int q = 0; q < 8; q++) _mm256_storeu_pd(lane + 4 * q, acc[q]);
}

TQ_DEFINE_SQUARED_ERRORS(avx2, TQ_AVX2, add_squares_avx2)

/* ---- AVX-512 squared errors: lanes 8q..8q+7 (q = 0..3) in four float64x8 accumulators. The trits come
 * from the packed codes as two bit masks (code 01: +1, 10: -1, 00 and 11: 0), and d = w - alpha, w + alpha
 * or w under them: the same bits as w - t·alpha for a finite alpha (0·alpha = 0, w - (-alpha) = w + alpha);
 * a non-finite alpha takes the AVX2 loop, where 0·alpha is NaN as the header's order says. ---- */

/* Eight elements of kind `kind` at element index k, widened exactly to float64. */
TQ_INLINE TQ_AVX512 __m512d load_x8_pd_avx512(const unsigned char *p, size_t k, int kind) {
    if (kind == 0) return _mm512_cvtps_pd(_mm256_loadu_ps((const float *)(const void *)(p + 4 * k)));
    __m128i h = _mm_loadu_si128((const __m128i *)(const void *)(p + 2 * k));
    if (kind == 1) return _mm512_cvtps_pd(_mm256_cvtph_ps(h));
    return _mm512_cvtps_pd(_mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16)));
}

TQ_INLINE TQ_AVX512 void add_squares_avx512(double *lane, const unsigned char *p, int kind, const uint8_t *packed,
                                            size_t lo, size_t hi, double alpha) {
    if (!(alpha - alpha == 0.0)) {
        add_squares_avx2(lane, p, kind, packed, lo, hi, alpha);
        return;
    }
    const __m512d a = _mm512_set1_pd(alpha);
    const size_t width = kind == 0 ? 4 : 2;
    __m512d acc[4];
    for (int q = 0; q < 4; q++) acc[q] = _mm512_loadu_pd(lane + 8 * q);
    for (size_t k = lo; k < hi; k += TQ_SQUARED_ERROR_LANES) {
        prefetch_step(p + width * k, width);
        uint64_t codes;
        memcpy(&codes, packed + k / 4, 8);
        const uint32_t low = (uint32_t)_pext_u64(codes, 0x5555555555555555ull);
        const uint32_t high = (uint32_t)_pext_u64(codes, 0xAAAAAAAAAAAAAAAAull);
        const uint32_t plus = low & ~high, minus = high & ~low;
        for (int q = 0; q < 4; q++) {
            const __m512d w = load_x8_pd_avx512(p, k + 8 * (size_t)q, kind);
            __m512d d = _mm512_mask_sub_pd(w, (__mmask8)(plus >> (8 * q)), w, a);
            d = _mm512_mask_add_pd(d, (__mmask8)(minus >> (8 * q)), d, a);
            acc[q] = _mm512_add_pd(acc[q], _mm512_mul_pd(d, d));
        }
    }
    for (int q = 0; q < 4; q++) _mm512_storeu_pd(lane + 8 * q, acc[q]);
}

TQ_DEFINE_SQUARED_ERRORS(avx512, TQ_AVX512, add_squares_avx512)

/* The first NaN/±Inf, AVX2: 32 elements per step (an all-ones exponent compared per 32- or 16-bit lane). */
TQ_AVX2 static size_t first_non_finite_avx2(const void *source, size_t count, int kind) {
    const unsigned char *p = (const unsigned char *)source;
    size_t i = 0;
    if (kind == 0) {
        const __m256i m = _mm256_set1_epi32((int)0x7F800000);
        for (; i + 32 <= count; i += 32) {
            prefetch_step(p + 4 * i, 4);
            __m256i hit = _mm256_setzero_si256();
            for (int q = 0; q < 4; q++) {
                __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)(p + 4 * i + 32 * (size_t)q));
                hit = _mm256_or_si256(hit, _mm256_cmpeq_epi32(_mm256_and_si256(v, m), m));
            }
            if (!_mm256_testz_si256(hit, hit)) break;
        }
    } else {
        const __m256i m = _mm256_set1_epi16((short)exponent_mask(kind));
        for (; i + 32 <= count; i += 32) {
            prefetch_step(p + 2 * i, 2);
            __m256i a = _mm256_loadu_si256((const __m256i *)(const void *)(p + 2 * i));
            __m256i b = _mm256_loadu_si256((const __m256i *)(const void *)(p + 2 * i + 32));
            __m256i hit = _mm256_or_si256(_mm256_cmpeq_epi16(_mm256_and_si256(a, m), m), _mm256_cmpeq_epi16(_mm256_and_si256(b, m), m));
            if (!_mm256_testz_si256(hit, hit)) break;
        }
    }
    return first_non_finite_tail(p, i, count, kind);
}

/* One common magnitude, AVX2: after the first non-zero magnitude, 32 elements per step, each compared with
 * 0 and with it per 32- or 16-bit lane. */
TQ_AVX2 static uint32_t common_magnitude_avx2(const void *source, size_t count, int kind) {
    const unsigned char *p = (const unsigned char *)source;
    const uint32_t mask = kind_magnitude_mask(kind);
    size_t i = 0;
    uint32_t found = 0;
    for (; i < count && found == 0; i++) found = (kind == 0 ? load_u32(p, i) : load_u16(p, i)) & mask;
    if (kind == 0) {
        const __m256i m = _mm256_set1_epi32((int)mask), a = _mm256_set1_epi32((int)found), zero = _mm256_setzero_si256();
        for (; i + 32 <= count; i += 32) {
            prefetch_step(p + 4 * i, 4);
            __m256i ok = _mm256_set1_epi32(-1);
            for (int q = 0; q < 4; q++) {
                __m256i v = _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(const void *)(p + 4 * i + 32 * (size_t)q)), m);
                ok = _mm256_and_si256(ok, _mm256_or_si256(_mm256_cmpeq_epi32(v, zero), _mm256_cmpeq_epi32(v, a)));
            }
            if (_mm256_movemask_epi8(ok) != -1) return TQ_MIXED_MAGNITUDES;
        }
    } else {
        const __m256i m = _mm256_set1_epi16((short)mask), a = _mm256_set1_epi16((short)found), zero = _mm256_setzero_si256();
        for (; i + 32 <= count; i += 32) {
            prefetch_step(p + 2 * i, 2);
            __m256i v = _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(const void *)(p + 2 * i)), m);
            __m256i w = _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(const void *)(p + 2 * i + 32)), m);
            __m256i ok = _mm256_and_si256(_mm256_or_si256(_mm256_cmpeq_epi16(v, zero), _mm256_cmpeq_epi16(v, a)),
                                          _mm256_or_si256(_mm256_cmpeq_epi16(w, zero), _mm256_cmpeq_epi16(w, a)));
            if (_mm256_movemask_epi8(ok) != -1) return TQ_MIXED_MAGNITUDES;
        }
    }
    return common_magnitude_tail(p, i, count, kind, found);
}

/* ---- the band around a forecast threshold, and the one-pass step (sum, trits at the forecast, band) ----
 * A band step tests 32 elements at `at` (element index i) for low <= magnitude < high as one unsigned
 * compare, m - low < high - low, and records the few that are in it (the forecast keeps the band narrow). */

/* AVX2: m - low <= high - low - 1 as min(x, r) == x; `last` = high - low - 1 (the band is not empty). */
TQ_INLINE TQ_AVX2 size_t band_step_avx2(const unsigned char *at, int element_width, uint32_t low, uint32_t last, size_t i,
                                         uint32_t *entries, size_t capacity, size_t found) {
    uint32_t any;
    if (element_width == 4) {
        const __m256i m = _mm256_set1_epi32(0x7FFFFFFF), l = _mm256_set1_epi32((int)low), r = _mm256_set1_epi32((int)last);
        any = 0;
        for (int q = 0; q < 4; q++) {
            __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)(at + 32 * q));
            __m256i x = _mm256_sub_epi32(_mm256_and_si256(v, m), l);
            any |= (uint32_t)_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_min_epu32(x, r), x))) << (8 * q);
        }
    } else {
        const __m256i m = _mm256_set1_epi16(0x7FFF), l = _mm256_set1_epi16((short)low), r = _mm256_set1_epi16((short)last);
        __m256i a = _mm256_sub_epi16(_mm256_and_si256(_mm256_loadu_si256((const __m256i *)(const void *)at), m), l);
        __m256i b = _mm256_sub_epi16(_mm256_and_si256(_mm256_loadu_si256((const __m256i *)(const void *)(at + 32)), m), l);
        any = (uint32_t)_mm256_movemask_epi8(_mm256_permute4x64_epi64(
            _mm256_packs_epi16(_mm256_cmpeq_epi16(_mm256_min_epu16(a, r), a), _mm256_cmpeq_epi16(_mm256_min_epu16(b, r), b)), 0xD8));
    }
    while (any) {
        size_t k = (size_t)__builtin_ctz(any);
        any &= any - 1;
        found = band_record(entries, capacity, found, i + k, element_width == 4 ? load_u32(at, k) : load_u16(at, k));
    }
    return found;
}

/* AVX-512: an unsigned compare into a bit mask; `range` = high - low. */
TQ_INLINE TQ_AVX512 size_t band_step_avx512(const unsigned char *at, int element_width, uint32_t low, uint32_t range,
                                             size_t i, uint32_t *entries, size_t capacity, size_t found) {
    uint32_t any;
    if (element_width == 4) {
        const __m512i m = _mm512_set1_epi32(0x7FFFFFFF), l = _mm512_set1_epi32((int)low), r = _mm512_set1_epi32((int)range);
        __m512i a = _mm512_sub_epi32(_mm512_and_si512(_mm512_loadu_si512((const void *)at), m), l);
        __m512i b = _mm512_sub_epi32(_mm512_and_si512(_mm512_loadu_si512((const void *)(at + 64)), m), l);
        any = (uint32_t)_mm512_cmplt_epu32_mask(a, r) | (uint32_t)_mm512_cmplt_epu32_mask(b, r) << 16;
    } else {
        const __m512i m = _mm512_set1_epi16(0x7FFF), l = _mm512_set1_epi16((short)low), r = _mm512_set1_epi16((short)range);
        any = (uint32_t)_mm512_cmplt_epu16_mask(_mm512_sub_epi16(_mm512_and_si512(_mm512_loadu_si512((const void *)at), m), l), r);
    }
    while (any) {
        size_t k = (size_t)__builtin_ctz(any);
        any &= any - 1;
        found = band_record(entries, capacity, found, i + k, element_width == 4 ? load_u32(at, k) : load_u16(at, k));
    }
    return found;
}

/* band_scan over one instruction set's step: whole 32-element steps, then the scalar tail. BAND_ARG turns
 * (low, high) into the step's third argument (AVX2: high - low - 1; AVX-512: high - low). */
#define TQ_DEFINE_BAND_SCAN(NAME, ATTR, STEP, BAND_ARG)                                                     \
    ATTR static size_t NAME(const void *source, size_t count, int element_width, uint32_t low, uint32_t high, \
                            uint32_t *entries, size_t capacity) {                                           \
        const unsigned char *p = (const unsigned char *)source;                                             \
        size_t found = 0, i = 0;                                                                            \
        if (high <= low) return 0;                                                                          \
        const uint32_t arg = BAND_ARG(low, high);                                                           \
        for (; i + 32 <= count; i += 32) {                                                                  \
            const unsigned char *at = p + (size_t)element_width * i;                                        \
            prefetch_step(at, (size_t)element_width);                                                       \
            found = STEP(at, element_width, low, arg, i, entries, capacity, found);                         \
        }                                                                                                   \
        return band_scan_tail(p, i, count, element_width, low, high, entries, capacity, found);             \
    }

#define TQ_BAND_LAST(low, high) ((high) - (low) - 1u)
#define TQ_BAND_RANGE(low, high) ((high) - (low))
TQ_DEFINE_BAND_SCAN(band_scan_avx2, TQ_AVX2, band_step_avx2, TQ_BAND_LAST)
TQ_DEFINE_BAND_SCAN(band_scan_avx512, TQ_AVX512, band_step_avx512, TQ_BAND_RANGE)

/* The one pass, written once per vector instruction set: each 32-element step is loaded from memory once
 * and, while in L1, added into the α sum exactly as the table's abs_sum loop adds it (the same steps,
 * lanes and tail, so the same bits), ternarized at `threshold` exactly as its trit loop does, and tested
 * against the band. */
#define TQ_DEFINE_SPECULATE(NAME, ATTR, ACC, ZERO, ADD, STORE_LANES, LANES, MASK, DECIDE, COUNT, STORE, BAND_STEP,  \
                            BAND_ARG)                                                                       \
    TQ_INLINE ATTR size_t NAME##_kind(const unsigned char *p, int kind, size_t count, uint32_t threshold,   \
                                      int layout, unsigned char *out, uint32_t low, uint32_t high,          \
                                      uint32_t *entries, size_t capacity, double *sum, size_t *band) {      \
        const int width = kind == 0 ? 4 : 2;                                                                \
        const int has_band = high > low;                                                                    \
        const uint32_t arg = has_band ? BAND_ARG(low, high) : 0;                                            \
        tq_fp_mode mode = fp_mode_enter();                                                                  \
        ACC acc[4] = {ZERO(), ZERO(), ZERO(), ZERO()};                                                      \
        size_t nonzero = 0, found = 0, i = 0;                                                               \
        for (; i + 32 <= count; i += 32) {                                                                  \
            const unsigned char *at = p + (size_t)width * i;                                                \
            prefetch_step(at, (size_t)width);                                                               \
            ADD(acc, at, kind, 0);                                                                          \
            MASK set, negative;                                                                             \
            DECIDE(at, width, threshold, &set, &negative);                                                  \
            nonzero += COUNT(set);                                                                          \
            STORE(set, negative, layout, out, i);                                                           \
            if (has_band) found = BAND_STEP(at, width, low, arg, i, entries, capacity, found);              \
        }                                                                                                   \
        size_t s = i;                                                                                       \
        if (s + 16 <= count) {                                                                              \
            ADD(acc, p + (size_t)width * s, kind, 1);                                                       \
            s += 16;                                                                                        \
        }                                                                                                   \
        double lane[LANES];                                                                                 \
        STORE_LANES(acc, lane);                                                                             \
        double total = merge_lanes(lane, LANES, p, s, count, kind);                                         \
        TQ_PIN(total);                                                                                      \
        fp_mode_leave(mode);                                                                                \
        *sum = total;                                                                                       \
        unsigned char *rest = layout == TQ_LAYOUT_INT8 ? out + i : out + i / 4;                             \
        nonzero += ternarize_generic(p + (size_t)width * i, count - i, threshold, width, layout, rest);      \
        *band = has_band ? band_scan_tail(p, i, count, width, low, high, entries, capacity, found) : 0;     \
        return nonzero;                                                                                     \
    }                                                                                                       \
    ATTR static size_t NAME(const void *source, int kind, size_t count, uint32_t threshold, int layout,    \
                            void *output, uint32_t low, uint32_t high, uint32_t *entries, size_t capacity, \
                            double *sum, size_t *band) {                                                    \
        const unsigned char *p = (const unsigned char *)source;                                             \
        unsigned char *out = (unsigned char *)output;                                                       \
        if (kind == 0) return NAME##_kind(p, 0, count, threshold, layout, out, low, high, entries, capacity, sum, band); \
        if (kind == 1) return NAME##_kind(p, 1, count, threshold, layout, out, low, high, entries, capacity, sum, band); \
        return NAME##_kind(p, 2, count, threshold, layout, out, low, high, entries, capacity, sum, band);   \
    }

TQ_DEFINE_SPECULATE(speculate_avx2, TQ_AVX2, __m256d, zero_avx2, add_x32_avx2, store_lanes_avx2, TQ_ABS_SUM_LANES,
                    __m256i, decide32_avx2, count32_avx2, store32_avx2, band_step_avx2, TQ_BAND_LAST)

/* add_moments_generic, AVX2: per 32-element step, eight groups of 4 (squares in squared_errors' lanes
 * 4q..4q+3); each packed byte's lane masks from code_masks; the extremes kept as float64 (exact: float32
 * values) and turned into float32 bits at the end. `bounded` as there. */
/* Eight elements of kind `kind` at element index k as float32, exactly. */
TQ_INLINE TQ_AVX2 __m256 load_x8_ps_avx2(const unsigned char *p, size_t k, int kind) {
    if (kind == 0) return _mm256_loadu_ps((const float *)(const void *)(p + 4 * k));
    const __m128i h = _mm_loadu_si128((const __m128i *)(const void *)(p + 2 * k));
    if (kind == 1) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

TQ_INLINE TQ_AVX2 void add_moments_avx2(double *lane, const unsigned char *p, int kind, const uint8_t *packed, size_t lo,
                                        size_t hi, tq_moments *m, int bounded) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256d infinity = _mm256_set1_pd(__builtin_inf());
    __m256d acc[8], sum = _mm256_setzero_pd(), high = _mm256_setzero_pd(), low = infinity;
    __m256i count = _mm256_setzero_si256();
    for (int q = 0; q < 8; q++) acc[q] = _mm256_loadu_pd(lane + 4 * q);
    for (size_t k = lo; k < hi; k += TQ_SQUARED_ERROR_LANES) {
        prefetch_step(p + (kind == 0 ? 4 : 2) * k, kind == 0 ? 4 : 2);
        for (int h = 0; h < 4; h++) {
            const size_t at = k + 8 * (size_t)h;
            const __m256 f = _mm256_andnot_ps(sign, load_x8_ps_avx2(p, at, kind));
            const __m256d x[2] = {_mm256_cvtps_pd(_mm256_castps256_ps128(f)), _mm256_cvtps_pd(_mm256_extractf128_ps(f, 1))};
            for (int j = 0; j < 2; j++) {
                const int q = 2 * h + j;
                const __m256d set = _mm256_load_pd((const double *)(const void *)code_masks[packed[(at >> 2) + (size_t)j]]);
                const __m256d kept = _mm256_and_pd(x[j], set);
                acc[q] = _mm256_add_pd(acc[q], _mm256_mul_pd(x[j], x[j]));
                sum = _mm256_add_pd(sum, kept);
                if (bounded) {
                    high = _mm256_max_pd(high, x[j]);
                } else {
                    high = _mm256_max_pd(high, kept);
                    low = _mm256_min_pd(low, _mm256_blendv_pd(infinity, x[j], set));
                    count = _mm256_sub_epi64(count, _mm256_castpd_si256(set));
                }
            }
        }
    }
    for (int q = 0; q < 8; q++) _mm256_storeu_pd(lane + 4 * q, acc[q]);
    double sums[4], highs[4], lows[4];
    uint64_t counts[4];
    _mm256_storeu_pd(sums, sum);
    _mm256_storeu_pd(highs, high);
    _mm256_storeu_pd(lows, low);
    _mm256_storeu_si256((__m256i *)(void *)counts, count);
    for (int j = 0; j < 4; j++) {
        m->magnitudes += sums[j];
        m->nonzero += counts[j];
        const float hf = (float)highs[j], lf = (float)lows[j]; /* exact; +Inf where the lane had none */
        uint32_t hb, lb;
        memcpy(&hb, &hf, 4);
        memcpy(&lb, &lf, 4);
        if (highs[j] > 0 && hb > m->max_bits) m->max_bits = hb;
        if (lows[j] != __builtin_inf() && lb < m->min_bits) m->min_bits = lb;
    }
}

TQ_DEFINE_CHUNK_MOMENTS(avx2, TQ_AVX2, add_moments_avx2)
TQ_DEFINE_SPECULATE_MOMENTS(avx2, TQ_AVX2)

/* The AVX-512 one-pass step: the 32 elements are loaded once and their magnitudes masked once, then
 * widened into the sum (the lanes of add_x32_avx512, so the same bits), compared with the threshold and
 * tested against the band. Sets the trit masks; returns the band's mask (bit k: element k). */
TQ_INLINE TQ_AVX512 uint32_t speculate_step_avx512(__m512d acc[4], const unsigned char *at, int kind, uint32_t threshold,
                                                   int has_band, uint32_t low, uint32_t range, uint32_t *set,
                                                   uint32_t *negative) {
    uint32_t band;
    if (kind == 0) {
        const __m512i mask = _mm512_set1_epi32(0x7FFFFFFF), limit = _mm512_set1_epi32((int)(threshold - 1u));
        __m512i a = _mm512_loadu_si512((const void *)at), b = _mm512_loadu_si512((const void *)(at + 64));
        __m512i ma = _mm512_and_si512(a, mask), mb = _mm512_and_si512(b, mask);
        add_magnitudes_f32x16_avx512(acc, 0, _mm512_castsi512_ps(ma));
        add_magnitudes_f32x16_avx512(acc, 1, _mm512_castsi512_ps(mb));
        *set = (uint32_t)_mm512_cmpgt_epi32_mask(ma, limit) | (uint32_t)_mm512_cmpgt_epi32_mask(mb, limit) << 16;
        *negative = (uint32_t)_mm512_movepi32_mask(a) | (uint32_t)_mm512_movepi32_mask(b) << 16;
        const __m512i l = _mm512_set1_epi32((int)low), r = _mm512_set1_epi32((int)range);
        band = has_band ? ((uint32_t)_mm512_cmplt_epu32_mask(_mm512_sub_epi32(ma, l), r) |
                           (uint32_t)_mm512_cmplt_epu32_mask(_mm512_sub_epi32(mb, l), r) << 16) : 0;
    } else {
        const __m512i mask = _mm512_set1_epi16(0x7FFF), limit = _mm512_set1_epi16((short)(threshold - 1u));
        __m512i h = _mm512_loadu_si512((const void *)at);
        __m512i m = _mm512_and_si512(h, mask);
        if (kind == 1) {
            add_magnitudes_f32x16_avx512(acc, 0, _mm512_cvtph_ps(_mm512_castsi512_si256(m)));
            add_magnitudes_f32x16_avx512(acc, 1, _mm512_cvtph_ps(_mm512_extracti64x4_epi64(m, 1)));
        } else {
            add_magnitudes_f32x16_avx512(acc, 0, _mm512_castsi512_ps(_mm512_unpacklo_epi16(_mm512_setzero_si512(), m)));
            add_magnitudes_f32x16_avx512(acc, 1, _mm512_castsi512_ps(_mm512_unpackhi_epi16(_mm512_setzero_si512(), m)));
        }
        *set = (uint32_t)_mm512_cmpgt_epi16_mask(m, limit);
        *negative = (uint32_t)_mm512_movepi16_mask(h);
        band = has_band ? (uint32_t)_mm512_cmplt_epu16_mask(_mm512_sub_epi16(m, _mm512_set1_epi16((short)low)),
                                                            _mm512_set1_epi16((short)range)) : 0;
    }
    return band;
}

/* Records a block's listed band hits (steps hit_step[h] after block_start with masks hit_mask[h]) while the
 * block is in cache; returns the new count of entries found. */
TQ_INLINE size_t record_band_hits(uint32_t *entries, size_t capacity, size_t found, const unsigned char *p, int kind,
                                  size_t block_start, const uint32_t *hit_step, const uint32_t *hit_mask, size_t hits) {
    for (size_t h = 0; h < hits; h++) {
        uint32_t m = hit_mask[h];
        const size_t base = block_start + hit_step[h];
        while (m) {
            const size_t k = base + (size_t)__builtin_ctz(m);
            m &= m - 1;
            found = band_record(entries, capacity, found, k, kind == 0 ? load_u32(p, k) : load_u16(p, k));
        }
    }
    return found;
}

/* The α sum after the whole 32-element steps up to i: abs_sum's 16-element step (so the tail stays below
 * 16 elements, within the depth bound), the lanes merged pairwise, then the tail in order. */
TQ_INLINE TQ_AVX512 double finish_sum_avx512(__m512d acc[4], const unsigned char *p, int kind, size_t i, size_t count) {
    const size_t width = kind == 0 ? 4 : 2;
    size_t s = i;
    if (s + 16 <= count) {
        add_x32_avx512(acc, p + width * s, kind, 1);
        s += 16;
    }
    double lane[32];
    store_lanes_avx512(acc, lane);
    return merge_lanes(lane, 32, p, s, count, kind);
}


/* ---- AVX-512 one pass with the moments: speculate's step plus, on the same widened magnitudes, the
 * squares (lanes 8q..8q+7 in element order, as squared_errors adds them), the non-zero magnitudes' sum and
 * their extremes. ---- */

/* The moments of one 32-element step, its magnitudes as float32 in element order (lo: elements 0-15, hi:
 * 16-31), `set` = the non-zero trits. acc is the α sum (any lanes), squares squared_errors' lanes. */
TQ_INLINE TQ_AVX512 void add_step_moments_avx512(__m512d acc[4], __m512d squares[4], __m512d magnitudes[4], __m512i *high,
                                                 __m512i *low, __m512 lo, __m512 hi, uint32_t set) {
    const __m512 halves[2] = {lo, hi};
    for (int h = 0; h < 2; h++) {
        __m512d x[2];
        x[0] = _mm512_cvtps_pd(_mm512_castps512_ps256(halves[h]));
        x[1] = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(halves[h]), 1)));
        for (int j = 0; j < 2; j++) {
            const int q = 2 * h + j;
            acc[q] = _mm512_add_pd(acc[q], x[j]);
            squares[q] = _mm512_add_pd(squares[q], _mm512_mul_pd(x[j], x[j]));
            magnitudes[q] = _mm512_mask_add_pd(magnitudes[q], (__mmask8)(set >> (8 * q)), magnitudes[q], x[j]);
        }
        const __m512i bits = _mm512_castps_si512(halves[h]);
        const __mmask16 mask = (__mmask16)(set >> (16 * h));
        *high = _mm512_mask_max_epu32(*high, mask, *high, bits);
        *low = _mm512_mask_min_epu32(*low, mask, *low, bits);
    }
}

/* One 32-element step: loads, trit masks (as speculate_step_avx512), the band's mask (returned) and the
 * moments. */
TQ_INLINE TQ_AVX512 uint32_t speculate_moments_step_avx512(__m512d acc[4], __m512d squares[4], __m512d magnitudes[4],
                                                           __m512i *high, __m512i *low, const unsigned char *at, int kind,
                                                           uint32_t threshold, int has_band, uint32_t band_low,
                                                           uint32_t range, uint32_t *set, uint32_t *negative) {
    uint32_t band;
    __m512 lo, hi;
    if (kind == 0) {
        const __m512i mask = _mm512_set1_epi32(0x7FFFFFFF), limit = _mm512_set1_epi32((int)(threshold - 1u));
        __m512i a = _mm512_loadu_si512((const void *)at), b = _mm512_loadu_si512((const void *)(at + 64));
        __m512i ma = _mm512_and_si512(a, mask), mb = _mm512_and_si512(b, mask);
        *set = (uint32_t)_mm512_cmpgt_epi32_mask(ma, limit) | (uint32_t)_mm512_cmpgt_epi32_mask(mb, limit) << 16;
        *negative = (uint32_t)_mm512_movepi32_mask(a) | (uint32_t)_mm512_movepi32_mask(b) << 16;
        const __m512i l = _mm512_set1_epi32((int)band_low), r = _mm512_set1_epi32((int)range);
        band = has_band ? ((uint32_t)_mm512_cmplt_epu32_mask(_mm512_sub_epi32(ma, l), r) |
                           (uint32_t)_mm512_cmplt_epu32_mask(_mm512_sub_epi32(mb, l), r) << 16) : 0;
        lo = _mm512_castsi512_ps(ma);
        hi = _mm512_castsi512_ps(mb);
    } else {
        const __m512i mask = _mm512_set1_epi16(0x7FFF), limit = _mm512_set1_epi16((short)(threshold - 1u));
        __m512i h = _mm512_loadu_si512((const void *)at);
        __m512i m = _mm512_and_si512(h, mask);
        *set = (uint32_t)_mm512_cmpgt_epi16_mask(m, limit);
        *negative = (uint32_t)_mm512_movepi16_mask(h);
        band = has_band ? (uint32_t)_mm512_cmplt_epu16_mask(_mm512_sub_epi16(m, _mm512_set1_epi16((short)band_low)),
                                                            _mm512_set1_epi16((short)range)) : 0;
        const __m256i first = _mm512_castsi512_si256(m), second = _mm512_extracti64x4_epi64(m, 1);
        if (kind == 1) {
            lo = _mm512_cvtph_ps(first);
            hi = _mm512_cvtph_ps(second);
        } else {
            lo = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(first), 16));
            hi = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(second), 16));
        }
    }
    add_step_moments_avx512(acc, squares, magnitudes, high, low, lo, hi, *set);
    return band;
}

/* The AVX-512 one pass's steps over count elements: per block of TQ_SPECULATE_BLOCK_STEPS 32-element steps,
 * speculate_step_avx512 (or, with `with_moments`, a constant, speculate_moments_step_avx512) per step and
 * the trits stored; steps whose band mask is not zero are listed without a branch (the list's slot is
 * always written and kept only for a hit) and each block's list is turned into entries while the block is
 * in cache, so the rare, unpredictable hits never mispredict the main loop. Returns the non-zero trits;
 * *end = the first element after the whole steps, *found = the band entries found. */
TQ_INLINE TQ_AVX512 size_t speculate_steps_avx512(const unsigned char *p, int kind, size_t count, uint32_t threshold,
                                                  int layout, unsigned char *out, uint32_t low, uint32_t high,
                                                  uint32_t *entries, size_t capacity, __m512d acc[4], int with_moments,
                                                  __m512d squares[4], __m512d magnitudes[4], __m512i *top,
                                                  __m512i *bottom, size_t *end, size_t *found) {
    const int width = kind == 0 ? 4 : 2;
    const int has_band = high > low;
    const uint32_t range = has_band ? high - low : 0;
    size_t nonzero = 0, recorded = 0, i = 0;
    uint32_t hit_step[TQ_SPECULATE_BLOCK_STEPS], hit_mask[TQ_SPECULATE_BLOCK_STEPS];
    while (i + 32 <= count) {
        size_t hits = 0;
        const size_t block_start = i;
        for (size_t steps = 0; steps < TQ_SPECULATE_BLOCK_STEPS && i + 32 <= count; steps++, i += 32) {
            const unsigned char *at = p + (size_t)width * i;
            prefetch_step(at, (size_t)width);
            uint32_t set, negative;
            const uint32_t in_band =
                with_moments ? speculate_moments_step_avx512(acc, squares, magnitudes, top, bottom, at, kind, threshold,
                                                             has_band, low, range, &set, &negative)
                             : speculate_step_avx512(acc, at, kind, threshold, has_band, low, range, &set, &negative);
            nonzero += count32_avx512(set);
            store32_avx512(set, negative, layout, out, i);
            hit_step[hits] = (uint32_t)(i - block_start);
            hit_mask[hits] = in_band;
            hits += in_band != 0;
        }
        recorded = record_band_hits(entries, capacity, recorded, p, kind, block_start, hit_step, hit_mask, hits);
    }
    *end = i;
    *found = recorded;
    return nonzero;
}

/* The AVX-512 one pass: speculate_steps_avx512, then the abs_sum loop's 16-element step and tail, the scalar
 * trit loop and the band's tail, as TQ_DEFINE_SPECULATE does. */
TQ_INLINE TQ_AVX512 size_t speculate_avx512_kind(const unsigned char *p, int kind, size_t count, uint32_t threshold,
                                                 int layout, unsigned char *out, uint32_t low, uint32_t high,
                                                 uint32_t *entries, size_t capacity, double *sum, size_t *band) {
    const int width = kind == 0 ? 4 : 2;
    tq_fp_mode mode = fp_mode_enter();
    __m512d acc[4] = {_mm512_setzero_pd(), _mm512_setzero_pd(), _mm512_setzero_pd(), _mm512_setzero_pd()};
    size_t i, found;
    size_t nonzero = speculate_steps_avx512(p, kind, count, threshold, layout, out, low, high, entries, capacity, acc, 0,
                                            NULL, NULL, NULL, NULL, &i, &found);
    double total = finish_sum_avx512(acc, p, kind, i, count);
    TQ_PIN(total);
    fp_mode_leave(mode);
    *sum = total;
    unsigned char *rest = layout == TQ_LAYOUT_INT8 ? out + i : out + i / 4;
    nonzero += ternarize_generic(p + (size_t)width * i, count - i, threshold, width, layout, rest);
    *band = high > low ? band_scan_tail(p, i, count, width, low, high, entries, capacity, found) : 0;
    return nonzero;
}

TQ_AVX512 static size_t speculate_avx512(const void *source, int kind, size_t count, uint32_t threshold, int layout,
                                         void *output, uint32_t low, uint32_t high, uint32_t *entries, size_t capacity,
                                         double *sum, size_t *band) {
    const unsigned char *p = (const unsigned char *)source;
    unsigned char *out = (unsigned char *)output;
    if (layout == TQ_LAYOUT_PACKED) {
        if (kind == 0) return speculate_avx512_kind(p, 0, count, threshold, TQ_LAYOUT_PACKED, out, low, high, entries, capacity, sum, band);
        if (kind == 1) return speculate_avx512_kind(p, 1, count, threshold, TQ_LAYOUT_PACKED, out, low, high, entries, capacity, sum, band);
        return speculate_avx512_kind(p, 2, count, threshold, TQ_LAYOUT_PACKED, out, low, high, entries, capacity, sum, band);
    }
    if (kind == 0) return speculate_avx512_kind(p, 0, count, threshold, TQ_LAYOUT_INT8, out, low, high, entries, capacity, sum, band);
    if (kind == 1) return speculate_avx512_kind(p, 1, count, threshold, TQ_LAYOUT_INT8, out, low, high, entries, capacity, sum, band);
    return speculate_avx512_kind(p, 2, count, threshold, TQ_LAYOUT_INT8, out, low, high, entries, capacity, sum, band);
}

TQ_INLINE TQ_AVX512 size_t speculate_moments_avx512_kind(const unsigned char *p, int kind, size_t count, uint32_t threshold,
                                                         unsigned char *out, uint32_t low, uint32_t high, uint32_t *entries,
                                                         size_t capacity, double *sum, size_t *band, tq_moments *moments) {
    const int width = kind == 0 ? 4 : 2;
    const int has_band = high > low;
    tq_fp_mode mode = fp_mode_enter();
    __m512d acc[4], squares[4], magnitudes[4];
    for (int q = 0; q < 4; q++) acc[q] = squares[q] = magnitudes[q] = _mm512_setzero_pd();
    __m512i top = _mm512_setzero_si512(), bottom = _mm512_set1_epi32(-1);
    size_t i, found;
    const size_t nonzero = speculate_steps_avx512(p, kind, count, threshold, TQ_LAYOUT_PACKED, out, low, high, entries,
                                                  capacity, acc, 1, squares, magnitudes, &top, &bottom, &i, &found);
    double total = finish_sum_avx512(acc, p, kind, i, count);
    /* The tail's trits (the scalar loop), before the tail's squares and magnitudes read them. */
    const size_t tail_nonzero = ternarize_generic(p + (size_t)width * i, count - i, threshold, width, TQ_LAYOUT_PACKED, out + i / 4);
    /* Squares: squared_errors' lanes merged pairwise, then the tail as squared_errors adds it at alpha 0. */
    double lane[32];
    store_lanes_avx512(squares, lane);
    const double square_sum = finish_chunk(lane, p, kind, out, i, count, 0.0);
    store_lanes_avx512(magnitudes, lane);
    double magnitude_sum = 0;
    for (int j = 0; j < 32; j++) magnitude_sum += lane[j];
    uint32_t tops[16], bottoms[16];
    _mm512_storeu_si512((void *)tops, top);
    _mm512_storeu_si512((void *)bottoms, bottom);
    tq_moments m = {square_sum, magnitude_sum, nonzero, 0xFFFFFFFFu, 0};
    for (int j = 0; j < 16; j++) {
        m.max_bits = tops[j] > m.max_bits ? tops[j] : m.max_bits;
        m.min_bits = bottoms[j] < m.min_bits ? bottoms[j] : m.min_bits;
    }
    nonzero_magnitudes_generic(p, kind, out, i, count, &m);
    TQ_PIN(total);
    TQ_PIN(m);
    fp_mode_leave(mode);
    *sum = total;
    *moments = m;
    *band = has_band ? band_scan_tail(p, i, count, width, low, high, entries, capacity, found) : 0;
    return nonzero + tail_nonzero;
}

TQ_AVX512 static size_t speculate_moments_avx512(const void *source, int kind, size_t count, uint32_t threshold,
                                                 uint8_t *output, uint32_t low, uint32_t high, uint32_t *entries,
                                                 size_t capacity, double *sum, size_t *band, tq_moments *moments) {
    const unsigned char *p = (const unsigned char *)source;
    if (kind == 0) return speculate_moments_avx512_kind(p, 0, count, threshold, output, low, high, entries, capacity, sum, band, moments);
    if (kind == 1) return speculate_moments_avx512_kind(p, 1, count, threshold, output, low, high, entries, capacity, sum, band, moments);
    return speculate_moments_avx512_kind(p, 2, count, threshold, output, low, high, entries, capacity, sum, band, moments);
}

TQ_DEFINE_CHUNK_MOMENTS(avx512, TQ_AVX512, add_moments_avx2)

/* The AVX2 table also uses F16C and POPCNT, present on every AVX2 processor in practice; the AVX-512 table
 * needs F, BW, VL, DQ and BMI2. Every feature is checked (the compiler runtime also checks that the OS saves
 * the wider registers). */
static int detect_level(void) {
    __builtin_cpu_init();
    if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c") && __builtin_cpu_supports("popcnt"))) return 0;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("bmi2")) return 2;
    return 1;
}
#endif

int tq_best_level(void) {
#ifdef TQ_HAVE_AVX2_PATH
    static int cached = -1; /* benign race: every thread computes the same value */
    int value = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (value < 0) {
        value = detect_level();
        __atomic_store_n(&cached, value, __ATOMIC_RELAXED);
    }
    return value;
#else
    return 0;
#endif
}

static const tq_kernel_table portable_table = {
    abs_sum_f32_portable, abs_sum_f16_portable, abs_sum_bf16_portable, pack_f32_portable,
    int8_f32_portable,    pack_h16_portable,    int8_h16_portable,     squared_errors_portable,
    first_non_finite_portable, common_magnitude_portable, band_scan_portable,
    speculate_portable, chunk_moments_portable, speculate_moments_portable, TQ_LEVEL_PORTABLE,
};

#ifdef TQ_HAVE_AVX2_PATH
static const tq_kernel_table avx2_table = {
    abs_sum_f32_avx2, abs_sum_f16_avx2, abs_sum_bf16_avx2, pack_f32_avx2,
    int8_f32_avx2,    pack_h16_avx2,    int8_h16_avx2,     squared_errors_avx2,
    first_non_finite_avx2, common_magnitude_avx2, band_scan_avx2, speculate_avx2, chunk_moments_avx2,
    speculate_moments_avx2, TQ_LEVEL_AVX2,
};

static const tq_kernel_table avx512_table = {
    abs_sum_f32_avx512, abs_sum_f16_avx512, abs_sum_bf16_avx512, pack_f32_avx512,
    int8_f32_avx512,    pack_h16_avx512,    int8_h16_avx512,     squared_errors_avx512,
    first_non_finite_avx2, common_magnitude_avx2, band_scan_avx512, speculate_avx512,
    chunk_moments_avx512, speculate_moments_avx512, TQ_LEVEL_AVX512,
};
#endif

const tq_kernel_table *tq_kernels(int max_level) {
    int level = tq_best_level() < max_level ? tq_best_level() : max_level;
#ifdef TQ_HAVE_AVX2_PATH
    if (level >= TQ_LEVEL_AVX512) return &avx512_table;
    if (level >= TQ_LEVEL_AVX2) return &avx2_table;
#else
    (void)level;
#endif
    return &portable_table;
}
