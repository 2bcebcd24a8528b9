/// The integer decision threshold equivalent to the seed rule `t = ±1 iff |fl32(w/α)| > 0.5`.
///
/// fl32(x/α) is monotone in x, so there is a smallest positive float32 `T` with fl32(T/α) > 0.5. Then
/// `t = +1 ⇔ w ≥ T` and `t = −1 ⇔ w ≤ −T`. Since non-negative float32 bit patterns order like their values,
/// a backend only compares `bits(w) & 0x7FFFFFFF ≥ bits(T)` and reads the sign bit: no division, no float
/// arithmetic, nothing a device's rounding or denormal mode can change.
public struct TritThreshold: Sendable, Hashable {
    /// The scale α this threshold was derived from.
    public let scale: Float
    /// Bit pattern of the smallest positive float32 `T` with fl32(T/α) > 0.5.
    public let magnitudeBits: UInt32

    /// Derives the threshold for a finite α ≥ 0 by binary search over positive float32 bit patterns
    /// (31 correctly rounded host divisions). α = 0 (a non-zero tensor whose mean is at most 2^-150 rounds
    /// to 0) gives T = the smallest subnormal, as fl32(x/0) = +Inf for every x > 0.
    /// Throws `QuantizationError.invalidScale` for a negative, NaN or infinite α.
    public init(scale: Float) throws(QuantizationError) {
        guard scale >= 0 && scale.isFinite else { throw .invalidScale(bits: scale.bitPattern) }
        self.init(validScale: scale)
    }

    /// The threshold for an α a backend computed (always finite and ≥ 0).
    init(validScale scale: Float) {
        self.scale = scale
        // Invariant: pattern `high` satisfies the rule, `low` does not.
        var low: UInt32 = 0  // +0: 0/α = 0, not > 0.5
        var high: UInt32 = 0x7F80_0000  // +Inf: Inf/α = Inf > 0.5
        while high - low > 1 {
            let mid = low + (high - low) / 2
            if Float(bitPattern: mid) / scale > 0.5 {
                high = mid
            } else {
                low = mid
            }
        }
        self.magnitudeBits = high
    }

    /// The trit for one float32 bit pattern (finite input assumed).
    @inlinable
    public func trit(forBits bits: UInt32) -> Trit {
        guard bits & 0x7FFF_FFFF >= magnitudeBits else { return .tend }
        return bits >> 31 == 0 ? .affirm : .reject
    }
}
