import BigInt
import TernaryQuant

/// A slow, obviously-correct absmean quantizer written independently of the library's fast paths:
/// exact big-integer sum of |w|, the nearest float32 found by comparing exact distances of candidates,
/// and trits by plain (correctly rounded) float32 division, as the seed rule states.
package enum ReferenceQuantizer {
    package struct Result: Equatable {
        package var scale: Float
        package var trits: [Int8]
        package var zeroCount: Int
    }

    /// |x| as an exact integer in units of 2^-149.
    package static func units(_ x: Float) -> BigInt {
        let m = x.magnitude
        if m == 0 { return 0 }
        // m = significand · 2^exponent exactly; scale by 2^149 (always an integer for float32).
        let significandBits = BigInt(m.significandBitPattern) + (m.isNormal ? BigInt(1) << 23 : 0)
        let exponent = m.isNormal ? Int(m.exponentBitPattern) - 127 - 23 : -126 - 23
        return significandBits << (exponent + 149)
    }

    /// The float32 nearest to S / (n · 2^149), ties to even, by direct comparison of exact distances.
    package static func nearestFloat(sumUnits s: BigInt, count n: Int) -> Float {
        // Start from a float64 approximation and search a window of neighbours.
        let approx = Float(Double(s) / Double(n) * 0x1p-149)
        var candidates = [approx]
        var down = approx, up = approx
        for _ in 0..<6 {
            down = down.nextDown
            up = up.nextUp
            candidates.append(contentsOf: [down, up])
        }
        let target = s  // compare c·n·2^149 with s
        func distance(_ c: Float) -> BigInt {
            BigInt((units(c) * BigInt(n) - target).magnitude)
        }
        var best = candidates.filter { $0 >= 0 && $0.isFinite }.sorted()
        best.sort { a, b in
            let da = distance(a), db = distance(b)
            if da != db { return da < db }
            return a.bitPattern & 1 == 0 && b.bitPattern & 1 == 1
        }
        return best[0]
    }

    package static func quantize(_ weights: [Float]) -> Result {
        var sum = BigInt(0)
        for w in weights { sum += units(w) }
        let scale: Float = sum == 0 ? 1.0 : nearestFloat(sumUnits: sum, count: weights.count)
        var trits = [Int8]()
        trits.reserveCapacity(weights.count)
        var zeros = 0
        for w in weights {
            let q = w / scale
            let t: Int8 = q > 0.5 ? 1 : (q < -0.5 ? -1 : 0)
            if t == 0 { zeros += 1 }
            trits.append(t)
        }
        return Result(scale: scale, trits: trits, zeroCount: zeros)
    }

    /// Packs int8 trits with the documented layout, independently of `TritPacking`.
    package static func pack(_ trits: [Int8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: (trits.count + 3) / 4)
        for (i, t) in trits.enumerated() {
            let code: UInt8 = t == 1 ? 1 : (t == -1 ? 2 : 0)
            out[i / 4] |= code << UInt8(2 * (i % 4))
        }
        return out
    }
}

/// Slow GGUF ternary block encoders written from the format text (FORMATS-AND-PLATFORM.md / ggml's
/// block_tq2_0 and block_tq1_0), element by element, independently of `TernaryBlocks` and the C encoder.
package enum ReferenceBlocks {
    /// TQ2_0: element k at byte 32·(k/128) + k%32, bits 2·((k%128)/32), code t + 1; then d little-endian.
    package static func tq2_0(_ trits: [Int8], d: UInt16) -> [UInt8] {
        var out = [UInt8]()
        for block in stride(from: 0, to: trits.count, by: 256) {
            var qs = [UInt8](repeating: 0, count: 64)
            for k in 0..<256 {
                let code = UInt8(Int(trits[block + k]) + 1)
                qs[32 * (k / 128) + k % 32] |= code << UInt8(2 * ((k % 128) / 32))
            }
            out += qs + [UInt8(d & 0xFF), UInt8(d >> 8)]
        }
        return out
    }

    /// TQ1_0: base-3 digits t + 1, most significant first, stored as ceil(q·256/243); qs[m] holds elements
    /// m + 32n (m < 32, n < 5), qs[32 + m] holds 160 + m + 16n (m < 16), qh[j] holds 240 + j + 4n (n < 4) with
    /// a fifth digit 0 appended; then d little-endian.
    package static func tq1_0(_ trits: [Int8], d: UInt16) -> [UInt8] {
        func store(_ digits: [Int]) -> UInt8 {
            var q = 0
            for c in digits { q = q * 3 + c }
            // ceil(q · 256 / 243) by exact rational comparison.
            var byte = 0
            while byte * 243 < q * 256 { byte += 1 }
            return UInt8(byte)
        }
        var out = [UInt8]()
        for block in stride(from: 0, to: trits.count, by: 256) {
            let c = (0..<256).map { Int(trits[block + $0]) + 1 }
            var bytes = [UInt8]()
            for m in 0..<32 { bytes.append(store((0..<5).map { c[m + 32 * $0] })) }
            for m in 0..<16 { bytes.append(store((0..<5).map { c[160 + m + 16 * $0] })) }
            for j in 0..<4 { bytes.append(store((0..<4).map { c[240 + j + 4 * $0] } + [0])) }
            out += bytes + [UInt8(d & 0xFF), UInt8(d >> 8)]
        }
        return out
    }

    /// The int8 trits of packed 2-bit data (00 = 0, 01 = +1, 10 = −1, 11 treated as 0).
    package static func unpack(_ packed: [UInt8], count: Int) -> [Int8] {
        (0..<count).map { i in
            let code = (packed[i / 4] >> UInt8(2 * (i % 4))) & 3
            return code == 1 ? 1 : (code == 2 ? -1 : 0)
        }
    }
}
