#pragma OPENCL FP_CONTRACT OFF
/*
 * Benchmark only (built by the TernaryQuantBench module, never part of the production program):
 * the device-bandwidth reference of `ternq bench`'s roofline.
 */

/* Bandwidth reference: copies `count` 16-byte words (grid-stride). */
__kernel void copy_words(__global const uint4* input, __global uint4* output, const uint count) {
    const uint stride = (uint)get_global_size(0);
    for (uint i = (uint)get_global_id(0); i < count; i += stride) output[i] = input[i];
}
