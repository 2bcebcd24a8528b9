/// Float32 → binary16 rounding (round to nearest, ties to even) with integer bit logic, so it does not
/// depend on `Float16` being available on the platform.
public enum HalfConversion {
    /// The binary16 bit pattern nearest to `value` (ties to even); overflow gives ±Inf, NaN stays NaN.
    public static func float16Bits(_ value: Float) -> UInt16 {
        let bits = value.bitPattern
        let sign = UInt16((bits >> 16) & 0x8000)
        let magnitude = bits & 0x7FFF_FFFF
        if magnitude >= 0x7F80_0000 {  // Inf or NaN
            return sign | 0x7C00 | (magnitude > 0x7F80_0000 ? 0x0200 : 0)
        }
        if magnitude >= 0x4780_0000 {  // ≥ 65536: rounds to Inf
            return sign | 0x7C00
        }
        if magnitude >= 0x3880_0000 {  // normal half range (≥ 2^-14)
            let rebased = magnitude - 0x3800_0000  // exponent bias 127 → 15
            var half = rebased >> 13
            let rest = rebased & 0x1FFF
            if rest > 0x1000 || (rest == 0x1000 && half & 1 == 1) { half += 1 }  // may carry into Inf: correct
            return sign | UInt16(half)
        }
        if magnitude < 0x3300_0000 {  // < 2^-25: rounds to ±0 (2^-25 itself is a tie to even 0)
            return sign
        }
        // Subnormal half: value = m · 2^-24.
        let exponent = Int(magnitude >> 23)
        let mantissa = (magnitude & 0x7F_FFFF) | 0x80_0000
        let shift = UInt32(126 - exponent)  // 14...24 right shift to units of 2^-24
        var half = mantissa >> shift
        let rest = mantissa & ((1 << shift) - 1)
        let halfway: UInt32 = 1 << (shift - 1)
        if rest > halfway || (rest == halfway && half & 1 == 1) { half += 1 }
        return sign | UInt16(half)
    }
}
