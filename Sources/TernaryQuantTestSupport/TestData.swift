import TernaryQuant
import TernaryQuantBench

/// Deterministic test tensors of the distributions the core issue names.
package enum TestData {
    package enum Distribution: String, CaseIterable, CustomStringConvertible {
        case normal, wideRange, subnormalOnly, integerValued, mixedSigns, sparseSpikes
        package var description: String { rawValue }
    }

    package static func tensor(_ distribution: Distribution, count: Int, seed: UInt64) -> [Float] {
        var rng = SplitMix64(seed: seed &* 0x9E37_79B9 &+ UInt64(count))
        return (0..<count).map { _ in value(distribution, &rng) }
    }

    package static func value(_ distribution: Distribution, _ rng: inout SplitMix64) -> Float {
        let sign: Float = rng.next() & 1 == 0 ? 1 : -1
        switch distribution {
        case .normal:
            return Float(rng.nextGaussian() * 0.02)
        case .wideRange:
            // Magnitudes log-uniform in 1e-30 … 1e30.
            let exponent = -30 + 60 * rng.nextUnit()
            return sign * Float(pow10(exponent))
        case .subnormalOnly:
            return sign * Float(bitPattern: UInt32(1 + rng.next() % 0x7F_FFFF))
        case .integerValued:
            return Float(Int(rng.next() % 201) - 100)
        case .mixedSigns:
            return sign * Float(rng.nextUnit() * 3)
        case .sparseSpikes:
            return rng.next() % 50 == 0 ? sign * Float(rng.nextUnit() * 1000) : 0
        }
    }

    private static func pow10(_ x: Double) -> Double {
        var result = 1.0
        var e = x
        while e >= 1 { result *= 10; e -= 1 }
        while e <= -1 { result /= 10; e += 1 }
        // remaining fractional part via exp2(log2(10)·e) approximated with a short series is unnecessary:
        // a multiplicative jitter is enough for a spread of magnitudes.
        return result * (1 + e * 1.302585)
    }
}
