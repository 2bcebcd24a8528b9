/// Floating-point storage types the quantizer reads directly.
///
/// F16 and BF16 are widened to float32 exactly (integer bit manipulation, no float arithmetic), so a
/// half-precision checkpoint quantizes to the same result as its exact float32 widening.
public enum ElementType: String, Sendable, Hashable, CaseIterable, Codable {
    /// IEEE 754 binary32, little-endian.
    case float32 = "F32"
    /// IEEE 754 binary16, little-endian.
    case float16 = "F16"
    /// bfloat16 (the upper 16 bits of a binary32), little-endian.
    case bfloat16 = "BF16"

    /// Size of one element in bytes.
    @inlinable
    public var byteWidth: Int {
        switch self {
        case .float32: return 4
        case .float16, .bfloat16: return 2
        }
    }
}

/// Exact widening of storage bit patterns to float32 bit patterns.
public enum Float32Bits {
    /// The float32 bit pattern of an IEEE binary16 value (exact, including subnormals, ±Inf and NaN).
    @inlinable
    public static func fromFloat16(_ h: UInt16) -> UInt32 {
        let sign = UInt32(h & 0x8000) << 16
        let exponent = UInt32(h >> 10) & 0x1F
        let mantissa = UInt32(h & 0x3FF)
        if exponent == 0x1F {
            return sign | 0x7F80_0000 | (mantissa << 13)
        }
        if exponent != 0 {
            return sign | ((exponent + 112) << 23) | (mantissa << 13)
        }
        if mantissa == 0 {
            return sign
        }
        // Subnormal half: mantissa · 2^-24 is a normal float32.
        let top = UInt32(31 - mantissa.leadingZeroBitCount)  // 0...9
        let fraction = (mantissa << (23 - top)) & 0x7F_FFFF
        return sign | ((top + 103) << 23) | fraction
    }

    /// The float32 bit pattern of a bfloat16 value (exact: bfloat16 is the top half of a float32).
    @inlinable
    public static func fromBFloat16(_ b: UInt16) -> UInt32 {
        UInt32(b) << 16
    }
}
