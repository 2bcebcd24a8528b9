/// The integer decision threshold equivalent to the seed rule `t = ±1 iff |fl32(w/α)| > 0.5`.
///
/// fl32(x/α) is monotone in x, so there is a smallest positive float32 `T` with fl32(T/α) > 0.5. Then
/// `t = +1 ⇔ w ≥ T` and `t = −1 ⇔ w ≤ −T`. Since non-negative float32 bit patterns order like their values,
/// a backend only compares `bits(w) & 0x7FFFFFFF ≥ bits(T)` and reads the sign bit: no division, no float
/// arithmetic, nothing a device's rounding or denormal mode can change.
///
/// `T` itself is derived with integer arithmetic only: for α > 0, fl32(q) > 0.5 exactly when
/// q > 0.5 + 2^-25 (the midpoint between 0.5 and the next float32 up rounds to the even 0.5), so `T` is the
/// smallest float32 strictly greater than α·(2^24 + 1)·2^-25, an exact product of integers. The host's FPU
/// mode (flush-to-zero, denormals-are-zero) therefore cannot change it.
public struct TritThreshold: Sendable, Hashable {
    /// The scale α this threshold was derived from.
    public let scale: Float
    /// Bit pattern of the smallest positive float32 `T` with fl32(T/α) > 0.5.
    public let magnitudeBits: UInt32

    /// Derives the threshold for a finite α ≥ 0. α = 0 (a non-zero tensor whose mean is at most 2^-150
    /// rounds to 0) gives T = the smallest subnormal, as fl32(x/0) = +Inf for every x > 0.
    /// Throws `QuantizationError.invalidScale` for a negative, NaN or infinite α.
    public init(scale: Float) throws(QuantizationError) {
        guard scale >= 0 && scale.isFinite else { throw .invalidScale(bits: scale.bitPattern) }
        self.init(validScale: scale)
    }

    /// The threshold for an α a backend computed (always finite and ≥ 0; the sign bit is ignored).
    package init(validScale scale: Float) {
        self.scale = scale
        self.magnitudeBits = Self.derive(alphaBits: scale.bitPattern & 0x7FFF_FFFF)
    }

    /// Smallest float32 bit pattern strictly above α·(2^24 + 1)·2^-25, for α's magnitude bits (finite).
    static func derive(alphaBits: UInt32) -> UInt32 {
        guard alphaBits != 0 else { return 1 }
        guard alphaBits < 0x7F80_0000 else { return 0x7F80_0000 }
        let biased = Int(alphaBits >> 23)
        let mantissa = UInt64(alphaBits & 0x7F_FFFF) | (biased == 0 ? 0 : 0x80_0000)
        let alphaExponent = Swift.max(biased, 1) - 150  // α = mantissa · 2^alphaExponent
        // V = product · 2^exponent, product < 2^49.
        let product = mantissa * ((1 << 24) + 1)
        let exponent = alphaExponent - 25
        let top = 63 - product.leadingZeroBitCount  // V ∈ [2^(top+exponent), 2^(top+exponent+1))
        // The float32 grid spacing in V's binade (2^-149 at the bottom of the range).
        let ulpExponent = Swift.max(top + exponent - 23, -149)
        let shift = ulpExponent - exponent  // ≥ top − 23 ≥ 1, since product ≥ 2^24 + 1
        var multiple = (product >> UInt64(shift)) + 1  // T = multiple · 2^ulpExponent > V
        var gridExponent = ulpExponent
        if multiple == 1 << 24 {  // rolled over into the next binade
            multiple = 1 << 23
            gridExponent += 1
        }
        if multiple < 1 << 23 { return UInt32(multiple) }  // subnormal (gridExponent == -149)
        let biasedResult = gridExponent + 150
        guard biasedResult < 255 else { return 0x7F80_0000 }
        return UInt32(biasedResult) << 23 | UInt32(multiple & 0x7F_FFFF)
    }

    /// The equivalent threshold on binary16 magnitudes: the smallest `h` in 0...0x7FFF whose exact float32
    /// widening is at least `magnitudeBits` (binary16 widening is strictly increasing on magnitude bits, so
    /// `h & 0x7FFF ≥ float16MagnitudeBits ⇔ widen(h) & 0x7FFFFFFF ≥ magnitudeBits` for every pattern).
    public var float16MagnitudeBits: UInt16 {
        var low: UInt16 = 0  // widen(0) = 0 < T (T ≥ 1)
        var high: UInt16 = 0x7FFF  // widen(0x7FFF) = 0x7FFFE000 ≥ T (T ≤ 0x7F800000)
        while high - low > 1 {
            let mid = low + (high - low) / 2
            if Float32Bits.fromFloat16(mid) >= magnitudeBits { high = mid } else { low = mid }
        }
        return high
    }

    /// The equivalent threshold on bfloat16 magnitudes: ⌈magnitudeBits / 2^16⌉ (bfloat16 widening is a
    /// 16-bit shift).
    public var bfloat16MagnitudeBits: UInt16 {
        UInt16((UInt64(magnitudeBits) + 0xFFFF) >> 16)
    }

    /// The trit for one float32 bit pattern (finite input assumed).
    @inlinable
    public func trit(forBits bits: UInt32) -> Trit {
        guard bits & 0x7FFF_FFFF >= magnitudeBits else { return .tend }
        return bits >> 31 == 0 ? .affirm : .reject
    }
}
