#pragma OPENCL FP_CONTRACT OFF
/*
 * Benchmark only (built by the TernaryQuantBench module, never part of the production program):
 * the device-bandwidth references of `ternq bench`'s roofline.
 */

/* Copy reference: copies `count` 16-byte words (grid-stride). */
__kernel void copy_words(__global const uint4* input, __global uint4* output, const uint count) {
    const uint stride = (uint)get_global_size(0);
    for (uint i = (uint)get_global_id(0); i < count; i += stride) output[i] = input[i];
}

/*
 * Read-bandwidth bound, grid-stride: work-item g reads 16-byte words g, g + G, ... (the quantization
 * kernels' own pattern), unrolled by 4 with independent accumulators. The XOR is written only when it hits
 * a magic value, so the loads cannot be removed and almost nothing is written.
 */
__kernel void read_words(__global const uint4* input, const uint count, __global uint* sink) {
    const uint stride = (uint)get_global_size(0);
    uint i = (uint)get_global_id(0);
    uint4 a = (uint4)(0u), b = (uint4)(0u), c = (uint4)(0u), d = (uint4)(0u);
    for (; i + 3u * stride < count; i += 4u * stride) {
        a ^= input[i];
        b ^= input[i + stride];
        c ^= input[i + 2u * stride];
        d ^= input[i + 3u * stride];
    }
    for (; i < count; i += stride) a ^= input[i];
    const uint4 x = (a ^ b) ^ (c ^ d);
    if ((x.x ^ x.y ^ x.z ^ x.w) == 0x9E3779B9u) sink[0] = (uint)get_global_id(0);
}

/*
 * Read-bandwidth bound, blocked: work-item g reads one contiguous run of 64-byte words (what CPU
 * implementations, which run a work-group's items in one thread, stream best).
 */
__kernel void read_blocks(__global const uint16* input, const uint count, __global uint* sink) {
    const uint items = (uint)get_global_size(0);
    const uint per = (count + items - 1u) / items;
    const uint start = (uint)get_global_id(0) * per;
    const uint end = min(start + per, count);
    uint16 a = (uint16)(0u), b = (uint16)(0u);
    uint i = start;
    for (; i + 1u < end; i += 2u) {
        a ^= input[i];
        b ^= input[i + 1u];
    }
    if (i < end) a ^= input[i];
    const uint16 x = a ^ b;
    const uint8 y = x.lo ^ x.hi;
    const uint4 z = y.lo ^ y.hi;
    if ((z.x ^ z.y ^ z.z ^ z.w) == 0x9E3779B9u) sink[0] = (uint)get_global_id(0);
}
