/// A fast, approximate sum of |w| with a rigorous error bound, as backends produce it.
///
/// `floatingSum` is a float64 sum of exactly-converted magnitudes computed by a summation tree in which no
/// element passes through more than `additionDepth` float64 additions (each correctly rounded, as IEEE 754
/// and OpenCL require for `double` addition). `subnormalUnits` is an exact integer sum, in units of 2^-149,
/// of the elements a backend chose to count exactly (float32 subnormals on OpenCL devices); it may be zero.
public struct AbsSumEstimate: Sendable, Hashable {
    /// Float64 sum of the magnitudes not counted in `subnormalUnits`. NaN or ±Inf means a non-finite input.
    public var floatingSum: Double
    /// Exact sum of the remaining magnitudes in units of 2^-149.
    public var subnormalUnits: UInt64
    /// Upper bound on the number of float64 additions on any leaf-to-root path of the summation tree.
    public var additionDepth: Int

    /// Creates an estimate; see the type's documentation for the meaning of each part.
    public init(floatingSum: Double, subnormalUnits: UInt64 = 0, additionDepth: Int) {
        self.floatingSum = floatingSum
        self.subnormalUnits = subnormalUnits
        self.additionDepth = additionDepth
    }

    /// Whether the floating sum shows a NaN or infinite element.
    public var hasNonFinite: Bool { !floatingSum.isFinite }
}

/// Turns an `AbsSumEstimate` into α when its error bound proves which float32 the exact mean rounds to.
public enum AbsMeanCertifier {
    /// Outcome of certification.
    public enum Outcome: Sendable, Hashable {
        /// The correctly rounded mean (or 1.0 for an all-zero tensor), proven by the error bound.
        case certified(Float)
        /// The exact mean lies too close to a float32 rounding boundary (or the bound is too loose):
        /// compute `ExactAbsSum` instead.
        case needsExactSum
    }

    /// Certifies α = fl32(Σ|w| / count) from an estimate, or asks for the exact path.
    ///
    /// The bound: for non-negative terms, a sum computed by any tree whose paths have at most `h` additions
    /// has relative error at most γ_h = h·u/(1 − h·u), u = 2^-53. Two more roundings come from folding in
    /// `subnormalUnits` and one from the division by `count`. The interval [mean·(1−2ε), mean·(1+2ε)] thus
    /// contains the exact mean; if both ends round to the same float32, so does the exact mean
    /// (rounding is monotone).
    public static func certify(_ estimate: AbsSumEstimate, count: Int) -> Outcome {
        guard count > 0, estimate.floatingSum.isFinite, estimate.floatingSum >= 0 else { return .needsExactSum }
        if estimate.floatingSum == 0 && estimate.subnormalUnits == 0 {
            // A float64 sum of non-negative float32 values is zero only if every value is ±0.
            return .certified(1.0)
        }
        let depth = Double(estimate.additionDepth) + 4
        let unit = 0x1p-53
        guard depth * unit < 0x1p-30, count < (1 << 53) else { return .needsExactSum }
        let epsilon = depth * unit / (1 - depth * unit)
        let sum = estimate.floatingSum + Double(estimate.subnormalUnits) * 0x1p-149
        let mean = sum / Double(count)
        let low = mean * (1 - 2 * epsilon)
        let high = mean * (1 + 2 * epsilon)
        let lowFloat = Float(low)
        let highFloat = Float(high)
        // A mean that rounds to 0 (at most 2^-150) is left to the exact path, which decides the tie.
        if lowFloat == highFloat && lowFloat > 0 && lowFloat.isFinite {
            return .certified(lowFloat)
        }
        return .needsExactSum
    }
}
