#pragma OPENCL FP_CONTRACT OFF
/*
 * Sums of |w| for the exact absmean scale (OpenCL C 1.2): exact integer bins on every device (exactsum_*),
 * and fast float64 partial sums where the device has cl_khr_fp64 (absmean_*, compiled only then).
 */

/* f16_to_f32_bits, LOAD_* and LOAD4_* come from widen.cl, prepended by the host. */

/*
 * exactsum_*: the exact sum of |w| in units of 2^-149, with 32- and 64-bit integer operations only (no
 * floating point, no atomics, no denormal behaviour involved: everything works on the bit patterns).
 * A finite magnitude is m * 2^d units with a 24-bit integer m (implicit bit for normals) and
 * d = max(biased exponent, 1) - 1 in 0..253. Its term v = m << (d & 31) (< 2^55) belongs to bin
 * b = d >> 5 (8 bins of 32 exponents each) and is added as two halves: lo_b += v & 0xffffffff (units of
 * 2^(32b)) and hi_b += v >> 32 (units of 2^(32b + 32)). The bins live in two ulong8 vectors and every
 * element adds to all eight lanes through a mask (no indexing by data, so CPU and GPU compilers keep them
 * in registers). A half is below 2^32, so a 64-bit lane takes 2^32 terms before it could overflow; a
 * launch has fewer than 2^32 elements, so no per-item, per-group or per-launch lane can overflow. Integer
 * addition is associative, so the bins do not depend on the work-item count, group size or reduction
 * order. Per work-group: 16 values (lo_0..lo_7, hi_0..hi_7; a group OR of the used-bin mask skips bins
 * nobody used, written as 0), the non-finite flag (magnitude bits >= 0x7f800000, not added) and
 * `tag ^ group`. The host adds every group's values exactly (ExactAbsSum) and rounds the mean once.
 */
#define EXACT_BINS 16u

/* Both α kernels: the piece [base, base + count) of the buffer, this item's ids, the grid stride and the
 * number of whole 4-element vectors. */
#define PIECE_INDICES(T)                                                                           \
    __global const T* input = whole + base;                                                        \
    const uint lid = (uint)get_local_id(0);                                                        \
    const uint gid = (uint)get_global_id(0);                                                       \
    const uint stride = (uint)get_global_size(0);                                                  \
    const uint vectors = count >> 2;

#define EXACT_ADD(lo, hi, used, bad, bits)                                                         \
    {                                                                                              \
        const uint mag_ = (bits) & 0x7FFFFFFFu;                                                    \
        const uint e_ = mag_ >> 23;                                                                \
        const uint d_ = max(e_, 1u) - 1u;                                                          \
        const uint m_ = (mag_ & 0x7FFFFFu) | (e_ != 0u ? 0x800000u : 0u);                          \
        const ulong v_ = e_ != 255u ? ((ulong)m_ << (d_ & 31u)) : (ulong)0;                        \
        const ulong8 lane_ = as_ulong8((ulong8)(d_ >> 5) == (ulong8)(0, 1, 2, 3, 4, 5, 6, 7));     \
        lo += lane_ & (ulong8)(v_ & 0xFFFFFFFFul);                                                 \
        hi += lane_ & (ulong8)(v_ >> 32);                                                          \
        used |= e_ != 255u ? (1u << (d_ >> 5)) : 0u;                                               \
        bad |= e_ != 255u ? 0u : 1u;                                                               \
    }

#define EXACTSUM_KERNEL(NAME, T, LOAD, LOAD4)                                                      \
__kernel void NAME(__global const T* whole, const uint count,                                      \
                   __global ulong* bins, __global uint* flags,                                     \
                   __local ulong* lbin, __local uint* lmask, const uint base, const uint tag) {    \
    PIECE_INDICES(T)                                                                               \
    const uint local_size = (uint)get_local_size(0);                                               \
    ulong8 lo = (ulong8)(0);                                                                       \
    ulong8 hi = (ulong8)(0);                                                                       \
    uint used = 0u;                                                                                \
    uint bad = 0u;                                                                                 \
    for (uint v = gid; v < vectors; v += stride) {                                                 \
        const uint4 bits = LOAD4(input, v);                                                        \
        EXACT_ADD(lo, hi, used, bad, bits.x)                                                       \
        EXACT_ADD(lo, hi, used, bad, bits.y)                                                       \
        EXACT_ADD(lo, hi, used, bad, bits.z)                                                       \
        EXACT_ADD(lo, hi, used, bad, bits.w)                                                       \
    }                                                                                              \
    for (uint tail = (vectors << 2) + gid; tail < count; tail += stride) {                         \
        const uint bits = LOAD(input, tail);                                                       \
        EXACT_ADD(lo, hi, used, bad, bits)                                                         \
    }                                                                                              \
    ulong acc[EXACT_BINS];                                                                         \
    vstore8(lo, 0, acc);                                                                           \
    vstore8(hi, 1, acc);                                                                           \
    /* Group OR of (used bins, non-finite flag): lmask[0..local) and lmask[local..2 local). */      \
    lmask[lid] = used;                                                                             \
    lmask[local_size + lid] = bad;                                                                 \
    barrier(CLK_LOCAL_MEM_FENCE);                                                                  \
    for (uint n = local_size; n > 1u;) {                                                           \
        const uint half_size = (n + 1u) >> 1;                                                      \
        if (lid < n - half_size) {                                                                 \
            lmask[lid] |= lmask[lid + half_size];                                                  \
            lmask[local_size + lid] |= lmask[local_size + lid + half_size];                        \
        }                                                                                          \
        barrier(CLK_LOCAL_MEM_FENCE);                                                              \
        n = half_size;                                                                             \
    }                                                                                              \
    const uint mask = lmask[0];  /* the same for every work-item: the loop below is uniform */     \
    const uint g = (uint)get_group_id(0);                                                          \
    for (uint k = 0u; k < EXACT_BINS; ++k) {                                                       \
        ulong total = 0;                                                                           \
        if (((mask >> (k & 7u)) & 1u) != 0u) {                                                     \
            barrier(CLK_LOCAL_MEM_FENCE);  /* lbin is free again (previous bin's result was read) */ \
            lbin[lid] = acc[k];                                                                    \
            barrier(CLK_LOCAL_MEM_FENCE);                                                          \
            for (uint n = local_size; n > 1u;) {                                                   \
                const uint half_size = (n + 1u) >> 1;                                              \
                if (lid < n - half_size) lbin[lid] += lbin[lid + half_size];                       \
                barrier(CLK_LOCAL_MEM_FENCE);                                                      \
                n = half_size;                                                                     \
            }                                                                                      \
            total = lbin[0];                                                                       \
        }                                                                                          \
        if (lid == 0u) bins[g * EXACT_BINS + k] = total;                                           \
    }                                                                                              \
    if (lid == 0u) {                                                                               \
        flags[2u * g] = lmask[local_size];                                                         \
        flags[2u * g + 1u] = tag ^ g;  /* lets the host see that this launch's results arrived */ \
    }                                                                                              \
}

EXACTSUM_KERNEL(exactsum_f32, uint, LOAD_F32, LOAD4_F32)
EXACTSUM_KERNEL(exactsum_f16, ushort, LOAD_F16, LOAD4_F16)
EXACTSUM_KERNEL(exactsum_bf16, ushort, LOAD_BF16, LOAD4_BF16)

#ifdef cl_khr_fp64
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
/*
 * absmean_*: partial float64 sums of |w| for the certified fast path.
 *
 * Every element is widened to a float32 bit pattern with integer operations only (F16, BF16), then:
 *   - a normal magnitude m = 1.f * 2^(e-127) is turned into the double with the same value by building
 *     its bits: ((e + 896) << 52) | (f << 29) -- exact, no float conversion, immune to denormal modes;
 *   - a subnormal magnitude f * 2^-149 adds f to an exact 64-bit integer sum (units of 2^-149);
 *   - NaN/Inf (magnitude bits >= 0x7f800000) sets a flag; the host then finds the first such index.
 * Work-item g reads 4-element vectors g, g + G, g + 2G, ... (G = global size) into four independent
 * double lanes (one addition per vector per lane; lanes that are not normal add an exact 0.0), the
 * count % 4 tail elements are read grid-stride too (tail element t by work-item t mod G, into lane x: at
 * most 3 more additions, also when G < 3, e.g. work-groups of 1 or 2 items), the lanes are combined
 * (2 additions), and a local tree reduction for any group size (ceil(log2(local size)) levels) yields one
 * partial per work-group. Double addition is correctly rounded on every fp64 device, so the host bounds
 * the error by this depth: ceil((count/4) / G) + 3 + 2 + ceil(log2(local size)) (see
 * OpenCLBackend.deviceAbsSum).
 * `base` (elements, a multiple of 256) selects the piece [base, base + count) of the buffer: the host
 * reduces a resident tensor piece by piece while the next piece is still uploading. Each group also
 * writes `tag ^ group` (tag: a per-launch value from the host) after its flag, so the host can tell a
 * read-back that never landed, or an earlier launch's stale buffer, from a real result.
 */

#define ABSMEAN_KERNEL(NAME, T, LOAD, LOAD4)                                                       \
__kernel void NAME(__global const T* whole, const uint count,                                      \
                   __global double* sums, __global ulong* subnormals, __global uint* flags,        \
                   __local double* lsum, __local ulong* lsub, __local uint* lflag,                 \
                   const uint base, const uint tag) {                                              \
    PIECE_INDICES(T)                                                                               \
    double4 acc = (double4)(0.0);                                                                  \
    ulong4 sub = (ulong4)(0);                                                                      \
    int4 bad = (int4)(0);                                                                          \
    for (uint v = gid; v < vectors; v += stride) {                                                 \
        const uint4 mag = LOAD4(input, v) & 0x7FFFFFFFu;                                           \
        const uint4 e = mag >> 23;                                                                 \
        const uint4 f = mag & 0x7FFFFFu;                                                           \
        const double4 value = as_double4((convert_ulong4(e + 896u) << 52) | (convert_ulong4(f) << 29)); \
        acc += select((double4)(0.0), value, convert_long4(e - 1u < (uint4)254u));                 \
        sub += convert_ulong4(f) & as_ulong4(convert_long4(e == (uint4)0u));                       \
        bad |= (e == (uint4)255u);                                                                 \
    }                                                                                              \
    for (uint tail = (vectors << 2) + gid; tail < count; tail += stride) {                         \
        const uint mag = LOAD(input, tail) & 0x7FFFFFFFu;                                          \
        const uint e = mag >> 23;                                                                  \
        const uint f = mag & 0x7FFFFFu;                                                            \
        const double value = as_double(((ulong)(e + 896u) << 52) | ((ulong)f << 29));              \
        acc.x += (e - 1u < 254u) ? value : 0.0;                                                    \
        sub.x += (e == 0u) ? (ulong)f : (ulong)0;                                                  \
        bad.x |= (e == 255u) ? 1 : 0;                                                              \
    }                                                                                              \
    lsum[lid] = (acc.x + acc.y) + (acc.z + acc.w);                                                 \
    lsub[lid] = (sub.x + sub.y) + (sub.z + sub.w);                                                 \
    lflag[lid] = any(bad != (int4)(0)) ? 1u : 0u;                                                  \
    barrier(CLK_LOCAL_MEM_FENCE);                                                                  \
    /* Tree over any group size: n partials fold onto the first ceil(n/2) until one is left. */     \
    for (uint n = (uint)get_local_size(0); n > 1u;) {                                              \
        const uint half_size = (n + 1u) >> 1;                                                      \
        if (lid < n - half_size) {                                                                 \
            lsum[lid] += lsum[lid + half_size];                                                    \
            lsub[lid] += lsub[lid + half_size];                                                    \
            lflag[lid] |= lflag[lid + half_size];                                                  \
        }                                                                                          \
        barrier(CLK_LOCAL_MEM_FENCE);                                                              \
        n = half_size;                                                                             \
    }                                                                                              \
    if (lid == 0u) {                                                                               \
        const uint g = (uint)get_group_id(0);                                                      \
        sums[g] = lsum[0];                                                                         \
        subnormals[g] = lsub[0];                                                                   \
        flags[2u * g] = lflag[0];                                                                  \
        flags[2u * g + 1u] = tag ^ g;  /* lets the host see that this launch's results arrived */ \
    }                                                                                              \
}

ABSMEAN_KERNEL(absmean_f32, uint, LOAD_F32, LOAD4_F32)
ABSMEAN_KERNEL(absmean_f16, ushort, LOAD_F16, LOAD4_F16)
ABSMEAN_KERNEL(absmean_bf16, ushort, LOAD_BF16, LOAD4_BF16)
#endif /* cl_khr_fp64 */
