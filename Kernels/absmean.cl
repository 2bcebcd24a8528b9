#pragma OPENCL FP_CONTRACT OFF
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
/*
 * Partial sums of |w| for the exact absmean scale (OpenCL C 1.2).
 *
 * Every element is widened to a float32 bit pattern with integer operations only (F16, BF16), then:
 *   - a normal magnitude m = 1.f * 2^(e-127) is turned into the double with the same value by building
 *     its bits: ((e + 896) << 52) | (f << 29) -- exact, no float conversion, immune to denormal modes;
 *   - a subnormal magnitude f * 2^-149 adds f to an exact 64-bit integer sum (units of 2^-149);
 *   - NaN/Inf (magnitude bits >= 0x7f800000) sets a flag; the host then finds the first such index.
 * Each work-item sums count/global_size elements sequentially in double, then a power-of-two local
 * tree reduction yields one partial per work-group. Double addition is correctly rounded on every
 * fp64 device, so the host can bound the error by the depth of this tree (see OpenCLBackend).
 */

inline uint f16_to_f32_bits(uint h) {
    uint sign = (h & 0x8000u) << 16;
    uint e = (h >> 10) & 0x1Fu;
    uint m = h & 0x3FFu;
    if (e == 0x1Fu) return sign | 0x7F800000u | (m << 13);
    if (e != 0u) return sign | ((e + 112u) << 23) | (m << 13);
    if (m == 0u) return sign;
    uint top = 31u - clz(m);
    return sign | ((top + 103u) << 23) | ((m << (23u - top)) & 0x7FFFFFu);
}

#define LOAD_F32(p, i) ((p)[i])
#define LOAD_F16(p, i) f16_to_f32_bits((uint)((p)[i]))
#define LOAD_BF16(p, i) (((uint)((p)[i])) << 16)

#define ABSMEAN_KERNEL(NAME, T, LOAD)                                                              \
__kernel void NAME(__global const T* input, const uint count,                                      \
                   __global double* sums, __global ulong* subnormals, __global uint* flags,        \
                   __local double* lsum, __local ulong* lsub, __local uint* lflag) {               \
    const uint lid = (uint)get_local_id(0);                                                        \
    const uint stride = (uint)get_global_size(0);                                                  \
    double s = 0.0;                                                                                \
    ulong sub = 0;                                                                                 \
    uint bad = 0u;                                                                                 \
    for (uint i = (uint)get_global_id(0); i < count; i += stride) {                               \
        uint mag = LOAD(input, i) & 0x7FFFFFFFu;                                                   \
        uint e = mag >> 23;                                                                        \
        uint f = mag & 0x7FFFFFu;                                                                  \
        if (e == 0u) {                                                                             \
            sub += (ulong)f;                                                                       \
        } else if (e == 255u) {                                                                    \
            bad = 1u;                                                                              \
        } else {                                                                                   \
            s += as_double(((ulong)(e + 896u) << 52) | ((ulong)f << 29));                          \
        }                                                                                          \
    }                                                                                              \
    lsum[lid] = s;                                                                                 \
    lsub[lid] = sub;                                                                               \
    lflag[lid] = bad;                                                                              \
    barrier(CLK_LOCAL_MEM_FENCE);                                                                  \
    for (uint half_size = (uint)get_local_size(0) >> 1; half_size > 0u; half_size >>= 1) {        \
        if (lid < half_size) {                                                                     \
            lsum[lid] += lsum[lid + half_size];                                                    \
            lsub[lid] += lsub[lid + half_size];                                                    \
            lflag[lid] |= lflag[lid + half_size];                                                  \
        }                                                                                          \
        barrier(CLK_LOCAL_MEM_FENCE);                                                              \
    }                                                                                              \
    if (lid == 0u) {                                                                               \
        const uint g = (uint)get_group_id(0);                                                      \
        sums[g] = lsum[0];                                                                         \
        subnormals[g] = lsub[0];                                                                   \
        flags[g] = lflag[0];                                                                       \
    }                                                                                              \
}

ABSMEAN_KERNEL(absmean_f32, uint, LOAD_F32)
ABSMEAN_KERNEL(absmean_f16, ushort, LOAD_F16)
ABSMEAN_KERNEL(absmean_bf16, ushort, LOAD_BF16)
