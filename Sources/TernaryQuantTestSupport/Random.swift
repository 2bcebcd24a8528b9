import TernaryQuantCore

/// The draws the tests use, on the one PRNG of the package (`SplitMix64`): no second generator.
extension SplitMix64 {
    /// Seeds the generator (the tests' spelling of `init(seed:)`).
    package init(state: UInt64) { self.init(seed: state) }

    /// A uniform integer in 0..<n (0 for n ≤ 0); modulo bias is irrelevant for test data.
    package mutating func below(_ n: Int) -> Int { n <= 0 ? 0 : Int(next() % UInt64(n)) }

    /// A uniform double in [0, 1) (`nextUnit`).
    package mutating func uniform() -> Double { nextUnit() }

    /// A standard normal sample as a Float (`nextGaussian`).
    package mutating func normal() -> Float { Float(nextGaussian()) }
}
