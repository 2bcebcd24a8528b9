/// An exact, order-independent sum of |w| over float32 values, and the correctly rounded mean.
///
/// A finite float32 magnitude is `m · 2^(e − 150)` with a 24-bit integer `m` and `e = max(biased exponent, 1)`.
/// Mantissas are added into 64-bit bins, one per `e`, so the sum is an exact integer in units of 2^-149
/// whatever the order, chunking or thread count. The big total is rounded once, to nearest with ties to even.
public struct ExactAbsSum: Sendable, Hashable {
    /// Number of 64-bit limbs of the total (units of 2^-149). 2^-149 · 2^384 comfortably exceeds
    /// FLT_MAX · 2^64, so no count of finite elements can overflow it.
    static let limbCount = 6
    /// Bins are folded into `limbs` before they could overflow (2^24 · 2^38 < 2^64).
    static let flushInterval = 1 << 38

    /// Little-endian limbs of the folded total.
    private var limbs: [UInt64]
    /// Pending mantissa sums per biased exponent (index 1...254; index 0 unused).
    private var bins: [UInt64]
    private var pending: Int = 0

    /// An empty sum.
    public init() {
        limbs = Array(repeating: 0, count: Self.limbCount)
        bins = Array(repeating: 0, count: 256)
    }

    /// Adds |x| for a float32 bit pattern. Non-finite patterns must be rejected by the caller (they are
    /// treated as their raw mantissa/exponent, which is meaningless).
    @inlinable
    public mutating func add(bits: UInt32) {
        let magnitude = bits & 0x7FFF_FFFF
        let exponent = Int(magnitude >> 23)
        let mantissa = UInt64(magnitude & 0x7F_FFFF) | (exponent == 0 ? 0 : 0x80_0000)
        addMantissa(mantissa, binnedExponent: Swift.max(exponent, 1))
    }

    /// Adds |x| `count` times for a float32 bit pattern: the sum `count` calls of `add(bits:)` give, in one
    /// 128-bit multiplication (an already-ternary tensor's sum is its magnitude times its non-zero count).
    /// A `count` below 1 adds nothing. Non-finite patterns must be rejected by the caller.
    public mutating func add(bits: UInt32, times count: Int) {
        guard count > 0 else { return }
        let magnitude = bits & 0x7FFF_FFFF
        let exponent = Int(magnitude >> 23)
        let mantissa = UInt64(magnitude & 0x7F_FFFF) | (exponent == 0 ? 0 : 0x80_0000)
        // mantissa · count < 2^87, at 2^(e − 1) units with e ≤ 254: below 2^340, inside the limbs.
        let product = mantissa.multipliedFullWidth(by: UInt64(count))
        Self.addLimbs(&limbs, Self.shifted([product.low, product.high], by: Swift.max(exponent, 1) - 1))
    }

    @usableFromInline
    mutating func addMantissa(_ mantissa: UInt64, binnedExponent: Int) {
        bins[binnedExponent] &+= mantissa
        pending += 1
        if pending >= Self.flushInterval { flush() }
    }

    /// Adds another exact sum (exact; the order of merges does not matter).
    public mutating func merge(_ other: ExactAbsSum) {
        var other = other
        other.flush()
        flush()
        Self.addLimbs(&limbs, other.limbs)
    }

    /// Whether every element added so far was ±0.
    public var isZero: Bool {
        var copy = self
        copy.flush()
        return copy.limbs.allSatisfy { $0 == 0 }
    }

    /// Folds the pending bins into the big total.
    mutating func flush() {
        guard pending > 0 else { return }
        for e in 1...254 where bins[e] != 0 {
            // bins[e] · 2^(e − 1) in units of 2^-149.
            Self.addLimbs(&limbs, Self.shifted([bins[e]], by: e - 1))
            bins[e] = 0
        }
        pending = 0
    }

    // MARK: package helper for device backends (added for TernaryQuantOpenCL's exact device bins)

    /// Adds `units · 2^shift` (in units of 2^-149) exactly: a partial sum a device accumulated in a bin whose
    /// terms are multiples of 2^shift units. Returns `false` and adds nothing when `shift` is outside 0...256
    /// (no float32 magnitude needs more: the largest is below 2^277 units).
    package mutating func add(units: UInt64, shiftedBy shift: Int) -> Bool {
        guard (0...256).contains(shift) else { return false }
        guard units != 0 else { return true }
        Self.addLimbs(&limbs, Self.shifted([units], by: shift))
        return true
    }

    /// The little-endian `words` times 2^shift as `limbCount` limbs (shift ≥ 0; callers keep the value below
    /// 2^384, so no bit is dropped).
    private static func shifted(_ words: [UInt64], by shift: Int) -> [UInt64] {
        var out = Array(repeating: UInt64(0), count: limbCount)
        let limb = shift / 64
        let offset = UInt64(shift % 64)
        for (i, word) in words.enumerated() where word != 0 {
            if limb + i < limbCount { out[limb + i] |= word << offset }
            if offset != 0, limb + i + 1 < limbCount { out[limb + i + 1] |= word >> (64 - offset) }
        }
        return out
    }

    private static func addLimbs(_ a: inout [UInt64], _ b: [UInt64]) {
        var carry: UInt64 = 0
        for i in 0..<limbCount {
            let (s1, o1) = a[i].addingReportingOverflow(b[i])
            let (s2, o2) = s1.addingReportingOverflow(carry)
            a[i] = s2
            carry = (o1 ? 1 : 0) + (o2 ? 1 : 0)
        }
    }

    /// The float32 nearest to (total / count), ties to even; `1.0` when the total is zero (every element ±0),
    /// following the seed crate; `nil` when `count` is not positive.
    public func roundedMean(count: Int) -> Float? {
        guard count > 0 else { return nil }
        var copy = self
        copy.flush()
        let total = copy.limbs
        if total.allSatisfy({ $0 == 0 }) { return 1.0 }
        let n = UInt64(count)

        // q0 = floor(total / n), r0 = total mod n.
        var quotient = Array(repeating: UInt64(0), count: Self.limbCount)
        var remainder: UInt64 = 0
        for i in stride(from: Self.limbCount - 1, through: 0, by: -1) {
            let (q, r) = n.dividingFullWidth((high: remainder, low: total[i]))
            quotient[i] = q
            remainder = r
        }
        let bitLength = Self.bitLength(quotient)
        // The result is mantissa · 2^(shift − 149) with a 24-bit mantissa (or fewer bits when subnormal).
        let shift = Swift.max(bitLength - 24, 0)
        var mantissa = Self.bits(quotient, from: shift, count: 24)
        let roundUp: Bool
        if shift == 0 {
            // Fraction is remainder / n.
            let twice = remainder.multipliedFullWidth(by: 2)
            let twiceRemainder = (twice.high, twice.low)
            if twiceRemainder.0 > 0 || twiceRemainder.1 > n {
                roundUp = true
            } else if twiceRemainder.1 == n {
                roundUp = mantissa & 1 == 1
            } else {
                roundUp = false
            }
        } else {
            let halfBit = Self.bits(quotient, from: shift - 1, count: 1) == 1
            let belowHalf = shift - 1 > 0 && Self.anyBitSet(quotient, below: shift - 1)
            if !halfBit {
                roundUp = false
            } else if belowHalf || remainder > 0 {
                roundUp = true
            } else {
                roundUp = mantissa & 1 == 1
            }
        }
        var scaleShift = shift
        if roundUp {
            mantissa += 1
            if mantissa == 1 << 24 {
                mantissa = 1 << 23
                scaleShift += 1
            }
        }
        if scaleShift == 0 && mantissa < 1 << 23 {
            return Float(bitPattern: UInt32(mantissa))  // subnormal (or the smallest normal boundary)
        }
        let biasedExponent = scaleShift + 1
        if biasedExponent >= 255 { return .greatestFiniteMagnitude }  // unreachable: a mean never exceeds max |w|
        return Float(bitPattern: (UInt32(biasedExponent) << 23) | (UInt32(mantissa) & 0x7F_FFFF))
    }

    /// The float64 nearest to the total, ties to even (exact whenever the total needs at most 53
    /// significant bits; +0 for an empty sum). Finite for any count of finite elements.
    public func roundedSum() -> Double {
        var copy = self
        copy.flush()
        let total = copy.limbs
        let bitLength = Self.bitLength(total)
        guard bitLength > 0 else { return 0 }
        // The result is mantissa · 2^(shift − 149) with a 53-bit mantissa (fewer bits: exact).
        let shift = Swift.max(bitLength - 53, 0)
        var mantissa = Self.bits(total, from: shift, count: 53)
        if shift > 0, Self.bits(total, from: shift - 1, count: 1) == 1 {
            let belowHalf = shift - 1 > 0 && Self.anyBitSet(total, below: shift - 1)
            if belowHalf || mantissa & 1 == 1 { mantissa += 1 }  // 2^53 after a carry is still exact
        }
        // Two exact scalings (a mantissa below 2^54, powers of two inside float64's normal range).
        return Double(mantissa) * Double(sign: .plus, exponent: shift, significand: 1) * 0x1p-149
    }

    private static func bitLength(_ limbs: [UInt64]) -> Int {
        for i in stride(from: limbs.count - 1, through: 0, by: -1) where limbs[i] != 0 {
            return i * 64 + (64 - limbs[i].leadingZeroBitCount)
        }
        return 0
    }

    /// `count` (≤ 64) bits of `limbs` starting at bit `from`.
    private static func bits(_ limbs: [UInt64], from: Int, count: Int) -> UInt64 {
        var result: UInt64 = 0
        for k in 0..<count {
            let bit = from + k
            let limb = bit / 64
            guard limb < limbs.count else { break }
            if (limbs[limb] >> UInt64(bit % 64)) & 1 == 1 { result |= 1 << UInt64(k) }
        }
        return result
    }

    private static func anyBitSet(_ limbs: [UInt64], below bit: Int) -> Bool {
        let fullLimbs = bit / 64
        for i in 0..<Swift.min(fullLimbs, limbs.count) where limbs[i] != 0 { return true }
        let rest = bit % 64
        if rest > 0, fullLimbs < limbs.count {
            return limbs[fullLimbs] & ((1 << UInt64(rest)) - 1) != 0
        }
        return false
    }
}
