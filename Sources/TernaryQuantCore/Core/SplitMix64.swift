import Foundation

/// A small, fast, deterministic PRNG (SplitMix64) with a Box–Muller Gaussian, for demo, benchmark and test data:
/// the one PRNG of the package (package access: not in the public API).
package struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64
    private var spare: Double?

    /// Seeds the generator; the same seed always gives the same sequence on every platform.
    package init(seed: UInt64) { state = seed }

    /// Next 64 random bits.
    package mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A uniform double in [0, 1) with 53 random bits.
    package mutating func nextUnit() -> Double { Double(next() >> 11) * 0x1p-53 }

    /// A standard normal sample (Box–Muller; the second value is cached).
    package mutating func nextGaussian() -> Double {
        if let s = spare { spare = nil; return s }
        var u1 = nextUnit()
        while u1 <= 0 { u1 = nextUnit() }
        let u2 = nextUnit()
        let r = (-2 * Foundation.log(u1)).squareRoot()
        spare = r * Foundation.sin(2 * Double.pi * u2)
        return r * Foundation.cos(2 * Double.pi * u2)
    }
}
