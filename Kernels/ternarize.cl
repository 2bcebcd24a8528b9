#pragma OPENCL FP_CONTRACT OFF
/*
 * Ternarization against a host-derived integer threshold (OpenCL C 1.2); no float arithmetic at all.
 *
 * t = +1 iff (bits & 0x7fffffff) >= threshold and the sign is clear, -1 iff >= threshold and the sign
 * is set, else 0 (threshold = TritThreshold.magnitudeBits). Each work-item handles whole groups of 4
 * elements (one packed byte, or four int8 trits) with one vector load; the last, partial group stops at
 * `count` and pads with 00. Non-zero trits are counted per work-group, followed by `tag ^ group` (a
 * per-launch host value: proof for the host that the counts it read back are this launch's) (local tree reduction;
 * any group size).
 */

/* f16_to_f32_bits, LOAD_* and LOAD4_* come from widen.cl, prepended by the host. */

/* Per lane: 1 if the trit is non-zero, and its 2-bit code (01 = +1, 10 = -1). */
#define CLASSIFY4(bits, threshold, set, code)                                                      \
    const uint4 set = select((uint4)0u, (uint4)1u, (bits & 0x7FFFFFFFu) >= (uint4)(threshold));    \
    const uint4 code = set << (bits >> 31);

#define REDUCE_AND_STORE(nz, lcount, counts)                                                       \
    const uint lid = (uint)get_local_id(0);                                                        \
    lcount[lid] = nz;                                                                              \
    barrier(CLK_LOCAL_MEM_FENCE);                                                                  \
    for (uint n = (uint)get_local_size(0); n > 1u;) {                                              \
        const uint half_size = (n + 1u) >> 1;                                                      \
        if (lid < n - half_size) lcount[lid] += lcount[lid + half_size];                           \
        barrier(CLK_LOCAL_MEM_FENCE);                                                              \
        n = half_size;                                                                             \
    }                                                                                              \
    if (lid == 0u) {                                                                               \
        const uint g = (uint)get_group_id(0);                                                      \
        counts[2u * g] = lcount[0];                                                                \
        counts[2u * g + 1u] = tag ^ g;  /* lets the host see that this launch's counts arrived */  \
    }

/* The partial last group (count % 4 != 0) as a vector padded with zero bits (zero trits). */
#define LOAD_TAIL(LOAD, input, base, count, bits)                                                  \
    uint4 bits = (uint4)(0u);                                                                      \
    bits.x = LOAD(input, base);                                                                    \
    if (base + 1u < count) bits.y = LOAD(input, base + 1u);                                        \
    if (base + 2u < count) bits.z = LOAD(input, base + 2u);

/* The two layouts differ only in how a group of 4 trits is stored. Packed: one byte, trit i in bits 2i..2i+1
 * (codes 01 = +1, 10 = -1). Int8: four bytes 0x01 / 0xFF / 0x00. The tail stores only the lanes in `keep`
 * (packed: the byte's unused lanes are 00 because their code is masked to 0). */
#define PACK4(code) (uchar)(code.x | (code.y << 2) | (code.z << 4) | (code.w << 6))
#define INT8_OF(set, code) select(set, (uint4)0xFFu, code == (uint4)2u)
#define STORE_PACKED(output, v, set, code) output[v] = PACK4(code);
#define STORE_INT8(output, v, set, code) vstore4(convert_uchar4(INT8_OF(set, code)), v, output);
#define TAIL_PACKED(output, vectors, base, keep, set, code) output[vectors] = PACK4(code);
#define TAIL_INT8(output, vectors, base, keep, set, code)                                          \
    {                                                                                              \
        const uint4 trits = INT8_OF(set, code);                                                    \
        output[base] = (uchar)trits.x;                                                             \
        if (keep.y != 0u) output[base + 1u] = (uchar)trits.y;                                      \
        if (keep.z != 0u) output[base + 2u] = (uchar)trits.z;                                      \
    }

/* One ternarize kernel: the shared loop over 4-element vectors, the partial last group by work-item 0, and
 * the per-group non-zero count; STORE / STORE_TAIL pick the layout. */
#define TERNARIZE_KERNEL(NAME, T, LOAD, LOAD4, STORE, STORE_TAIL)                                   \
__kernel void NAME(__global const T* input, const uint count, const uint threshold,               \
                   __global uchar* output, __global uint* counts, __local uint* lcount,            \
                   const uint tag) {                                                               \
    const uint vectors = count >> 2;                                                               \
    const uint stride = (uint)get_global_size(0);                                                  \
    const uint gid = (uint)get_global_id(0);                                                       \
    uint4 nz4 = (uint4)(0u);                                                                       \
    for (uint v = gid; v < vectors; v += stride) {                                                 \
        const uint4 bits = LOAD4(input, v);                                                        \
        CLASSIFY4(bits, threshold, set, code)                                                      \
        nz4 += set;                                                                                \
        STORE(output, v, set, code)                                                                \
    }                                                                                              \
    if (gid == 0u && (count & 3u) != 0u) {                                                         \
        const uint base = vectors << 2;                                                            \
        LOAD_TAIL(LOAD, input, base, count, bits)                                                  \
        CLASSIFY4(bits, threshold, lane_set, lane_code)                                            \
        const uint4 keep = (uint4)(1u, base + 1u < count, base + 2u < count, 0u);                  \
        const uint4 set = lane_set * keep;                                                         \
        const uint4 code = lane_code * keep;                                                       \
        nz4 += set;                                                                                \
        STORE_TAIL(output, vectors, base, keep, set, code)                                         \
    }                                                                                              \
    const uint nz = (nz4.x + nz4.y) + (nz4.z + nz4.w);                                             \
    REDUCE_AND_STORE(nz, lcount, counts)                                                           \
}

#define TERNARIZE_KERNELS(SUFFIX, T, LOAD, LOAD4)                                                  \
    TERNARIZE_KERNEL(ternarize_packed_##SUFFIX, T, LOAD, LOAD4, STORE_PACKED, TAIL_PACKED)         \
    TERNARIZE_KERNEL(ternarize_int8_##SUFFIX, T, LOAD, LOAD4, STORE_INT8, TAIL_INT8)

TERNARIZE_KERNELS(f32, uint, LOAD_F32, LOAD4_F32)
TERNARIZE_KERNELS(f16, ushort, LOAD_F16, LOAD4_F16)
TERNARIZE_KERNELS(bf16, ushort, LOAD_BF16, LOAD4_BF16)
