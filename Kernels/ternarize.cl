#pragma OPENCL FP_CONTRACT OFF
/*
 * Ternarization against a host-derived integer threshold (OpenCL C 1.2); no float arithmetic at all.
 *
 * t = +1 iff (bits & 0x7fffffff) >= threshold and the sign is clear, -1 iff >= threshold and the sign
 * is set, else 0 (threshold = TritThreshold.magnitudeBits). Each work-item handles whole output
 * groups of 4 elements (one packed byte, or four int8 trits); the tail group stops at `count` and
 * pads with 00. Non-zero trits are counted per work-group (local tree reduction; power-of-two groups).
 * Also holds `copy_words`, the device-bandwidth reference used by the benchmark.
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

/* 1 if the element is a non-zero trit; *code gets the 2-bit packed code (01 = +1, 10 = -1). */
#define CLASSIFY(bits, threshold, set, code)                                                       \
    set = ((bits) & 0x7FFFFFFFu) >= (threshold) ? 1u : 0u;                                         \
    code = set << ((bits) >> 31);

#define REDUCE_AND_STORE(nz, lcount, counts)                                                       \
    const uint lid = (uint)get_local_id(0);                                                        \
    lcount[lid] = nz;                                                                              \
    barrier(CLK_LOCAL_MEM_FENCE);                                                                  \
    for (uint half_size = (uint)get_local_size(0) >> 1; half_size > 0u; half_size >>= 1) {        \
        if (lid < half_size) lcount[lid] += lcount[lid + half_size];                               \
        barrier(CLK_LOCAL_MEM_FENCE);                                                              \
    }                                                                                              \
    if (lid == 0u) counts[get_group_id(0)] = lcount[0];

#define TERNARIZE_KERNELS(SUFFIX, T, LOAD)                                                         \
__kernel void ternarize_packed_##SUFFIX(__global const T* input, const uint count,                 \
                                        const uint threshold, __global uchar* output,              \
                                        __global uint* counts, __local uint* lcount) {             \
    const uint groups4 = (count >> 2) + ((count & 3u) != 0u ? 1u : 0u);                            \
    const uint stride = (uint)get_global_size(0);                                                  \
    uint nz = 0u;                                                                                  \
    for (uint b = (uint)get_global_id(0); b < groups4; b += stride) {                             \
        const uint base = b << 2;                                                                  \
        uint byte = 0u;                                                                            \
        for (uint k = 0u; k < 4u; ++k) {                                                           \
            if (base + k < count) {                                                                \
                uint bits = LOAD(input, base + k);                                                 \
                uint set, code;                                                                    \
                CLASSIFY(bits, threshold, set, code)                                               \
                nz += set;                                                                         \
                byte |= code << (2u * k);                                                          \
            }                                                                                      \
        }                                                                                          \
        output[b] = (uchar)byte;                                                                   \
    }                                                                                              \
    REDUCE_AND_STORE(nz, lcount, counts)                                                           \
}                                                                                                  \
__kernel void ternarize_int8_##SUFFIX(__global const T* input, const uint count,                   \
                                      const uint threshold, __global uchar* output,                \
                                      __global uint* counts, __local uint* lcount) {               \
    const uint groups4 = (count >> 2) + ((count & 3u) != 0u ? 1u : 0u);                            \
    const uint stride = (uint)get_global_size(0);                                                  \
    uint nz = 0u;                                                                                  \
    for (uint b = (uint)get_global_id(0); b < groups4; b += stride) {                             \
        const uint base = b << 2;                                                                  \
        for (uint k = 0u; k < 4u; ++k) {                                                           \
            if (base + k < count) {                                                                \
                uint bits = LOAD(input, base + k);                                                 \
                uint set, code;                                                                    \
                CLASSIFY(bits, threshold, set, code)                                               \
                nz += set;                                                                         \
                output[base + k] = (uchar)(set == 0u ? 0u : ((bits >> 31) != 0u ? 0xFFu : 1u));    \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
    REDUCE_AND_STORE(nz, lcount, counts)                                                           \
}

TERNARIZE_KERNELS(f32, uint, LOAD_F32)
TERNARIZE_KERNELS(f16, ushort, LOAD_F16)
TERNARIZE_KERNELS(bf16, ushort, LOAD_BF16)

/* Bandwidth reference: copies `count` 16-byte words (grid-stride). */
__kernel void copy_words(__global const uint4* input, __global uint4* output, const uint count) {
    const uint stride = (uint)get_global_size(0);
    for (uint i = (uint)get_global_id(0); i < count; i += stride) output[i] = input[i];
}
