#pragma OPENCL FP_CONTRACT OFF
/*
 * Exact widening of F16 and BF16 storage to float32 BIT PATTERNS with integer operations only, shared by
 * absmean.cl and ternarize.cl (the host prepends this file to each before building). No float conversion
 * is involved, so a device's denormal or rounding behaviour cannot change the result.
 * LOAD_*(p, i) reads element i; LOAD4_*(p, v) reads the 4-element vector v.
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

/* Vector form of f16_to_f32_bits (branch-free; OpenCL shifts are taken modulo 32, so the unused
 * subnormal lane for m == 0 is harmless and discarded by the selects). */
inline uint4 f16_to_f32_bits4(uint4 h) {
    const uint4 sign = (h & 0x8000u) << 16;
    const uint4 e = (h >> 10) & 0x1Fu;
    const uint4 m = h & 0x3FFu;
    const uint4 top = (uint4)31u - clz(m);
    const uint4 subnormal = sign | ((top + 103u) << 23) | ((m << ((uint4)23u - top)) & 0x7FFFFFu);
    const uint4 normal = sign | ((e + 112u) << 23) | (m << 13);
    const uint4 special = sign | 0x7F800000u | (m << 13);
    uint4 r = select(subnormal, normal, e != (uint4)0u);
    r = select(r, special, e == (uint4)0x1Fu);
    return select(r, sign, (e == (uint4)0u) & (m == (uint4)0u));
}

#define LOAD_F32(p, i) ((p)[i])
#define LOAD_F16(p, i) f16_to_f32_bits((uint)((p)[i]))
#define LOAD_BF16(p, i) (((uint)((p)[i])) << 16)
#define LOAD4_F32(p, v) vload4((v), (p))
#define LOAD4_F16(p, v) f16_to_f32_bits4(convert_uint4(vload4((v), (p))))
#define LOAD4_BF16(p, v) (convert_uint4(vload4((v), (p))) << 16)
