import Testing
import TernaryQuantCore
import TernaryQuant
import TernaryQuantTestSupport

/// `CPUBackend.quantizeIfAlreadyTernary`: a tensor whose non-zero values share one magnitude (a BitNet
/// export) packed in one pass, with α from the non-zero count. Checked against `quantize` and against the
/// big-integer reference, on every table, for every element type.
@Suite("Already-ternary tensors in one pass")
struct AlreadyTernaryTests {
    /// Raw little-endian bytes of `bits` at `width` bytes each.
    static func raw(_ bits: [UInt32], _ type: ElementType) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(bits.count * type.byteWidth)
        for b in bits {
            for k in 0..<type.byteWidth { out.append(UInt8(truncatingIfNeeded: b >> (8 * UInt32(k)))) }
        }
        return out
    }

    /// The value of a bit pattern of `type`, widened to float32.
    static func value(_ bits: UInt32, _ type: ElementType) -> Float {
        switch type {
        case .float32: return Float(bitPattern: bits)
        case .float16: return Float(bitPattern: Float32Bits.fromFloat16(UInt16(truncatingIfNeeded: bits)))
        case .bfloat16: return Float(bitPattern: Float32Bits.fromBFloat16(UInt16(truncatingIfNeeded: bits)))
        }
    }

    static func sign(_ type: ElementType) -> UInt32 { type == .float32 ? 0x8000_0000 : 0x8000 }

    /// Magnitudes of each type: the smallest subnormal, the smallest normal, an ordinary BitNet scale,
    /// one that is not a binary16 value (float32), and the largest finite.
    static func magnitudes(_ type: ElementType) -> [UInt32] {
        switch type {
        case .float32: return [0x0000_0001, 0x0080_0000, 0x3D40_0000, 0x3DCC_CCCD, 0x7F7F_FFFF]
        case .float16: return [0x0001, 0x0400, 0x2A00, 0x7BFF]
        case .bfloat16: return [0x0001, 0x0080, 0x3D40, 0x7F7F]
        }
    }

    /// ±a or ±0 per element: zeros with probability `zeroShare`, either sign of each.
    static func ternary(_ a: UInt32, _ type: ElementType, count: Int, zeroShare: Double, rng: inout SplitMix64) -> [UInt32] {
        (0..<count).map { _ in
            let s = rng.below(2) == 0 ? 0 : sign(type)
            return (rng.uniform() < zeroShare ? 0 : a) | s
        }
    }

    static func input(_ bits: [UInt32], _ type: ElementType) throws -> TensorInput {
        try TensorInput(name: "w", shape: [bits.count], elementType: type, copying: raw(bits, type))
    }

    /// The one-pass result, or nil; the packed bytes alongside.
    static func onePass(_ backend: CPUBackend, _ input: TensorInput) throws -> (summary: QuantizationSummary, magnitude: Float, packed: [UInt8])? {
        var packed = [UInt8](repeating: 0xEE, count: TritLayout.packed2Bit.byteCount(forTrits: input.elementCount))
        guard let r = try packed.withUnsafeMutableBytes({ try backend.quantizeIfAlreadyTernary(input, into: $0) }) else { return nil }
        return (r.summary, r.magnitude, packed)
    }

    @Test("a repeated magnitude sums like repeated additions, for counts up to 2^62")
    func exactSumOfRepeats() {
        var rng = SplitMix64(seed: 71)
        for _ in 0..<60 {
            var bits = UInt32(truncatingIfNeeded: rng.next()) & 0x7FFF_FFFF
            if bits >= 0x7F80_0000 { bits &= 0x007F_FFFF }  // finite only
            if rng.below(2) == 0 { bits |= 0x8000_0000 }     // the sign is ignored
            let times = rng.below(300)
            var repeated = ExactAbsSum(), multiplied = ExactAbsSum()
            for _ in 0..<times { repeated.add(bits: bits) }
            multiplied.add(bits: bits, times: times)
            for n in [1, 3, 7, times + 1, 1000] {
                #expect(repeated.roundedMean(count: n)?.bitPattern == multiplied.roundedMean(count: n)?.bitPattern, "\(bits) × \(times) / \(n)")
            }
        }
        var nothing = ExactAbsSum()
        nothing.add(bits: Float(1).bitPattern, times: -5)
        #expect(nothing.isZero)
        // k copies of a over k elements is a; over 2k it is a/2 (exact for these normal magnitudes).
        for a: Float in [0.046875, 0.1, 3.0e38, 1.2e-38 * 4] {
            for k in [(1 << 38) - 1, 1 << 38, (1 << 38) + 1, 3 << 38 + 7, 1 << 61, Int.max / 2] {
                var s = ExactAbsSum()
                s.add(bits: a.bitPattern, times: k)
                #expect(s.roundedMean(count: k) == a, "\(a) × \(k)")
                #expect(s.roundedMean(count: 2 * k) == a / 2, "\(a) × \(k) / 2k")
                var split = ExactAbsSum()
                split.add(bits: a.bitPattern, times: k - 5)
                split.add(bits: a.bitPattern, times: 5)
                #expect(split.roundedMean(count: k + 3)?.bitPattern == s.roundedMean(count: k + 3)?.bitPattern)
            }
        }
    }

    @Test("the same trits, α bits and zero count as quantize and the reference, on every table")
    func matchesQuantizeAndReference() throws {
        var rng = SplitMix64(seed: 2026)
        for set in [CPUInstructionSet.automatic] + CPUInstructionSet.lowerAlternatives {
            for chunk in [64, CPUBackend.defaultChunkSize] {
                let backend = CPUBackend(threadCount: 2, chunkSize: chunk, instructionSet: set)
                for type in ElementType.allCases {
                    for a in Self.magnitudes(type) {
                        for count in [1, 2, 3, 31, 32, 33, 64, 65, 127, 200, 1000, 4097] {
                            for zeroShare in [0.0, 0.4, 0.97] {
                                var bits = Self.ternary(a, type, count: count, zeroShare: zeroShare, rng: &rng)
                                if count > 130 { for k in 64..<128 { bits[k] &= Self.sign(type) } }  // a chunk of ±0 only
                                if !bits.contains(where: { $0 & ~Self.sign(type) != 0 }) { bits[count - 1] |= a }
                                let label = "\(set) chunk \(chunk) \(type) a=\(a) n=\(count) zeros \(zeroShare)"
                                let input = try Self.input(bits, type)
                                let one = try #require(try Self.onePass(backend, input), "\(label)")
                                var expected = [UInt8](repeating: 0, count: one.packed.count)
                                let summary = try expected.withUnsafeMutableBytes { try backend.quantize(input, layout: .packed2Bit, into: $0) }
                                #expect(one.packed == expected, "\(label)")
                                #expect(one.summary.scale.bitPattern == summary.scale.bitPattern, "\(label)")
                                #expect(one.summary.zeroCount == summary.zeroCount && one.summary.elementCount == count, "\(label)")
                                #expect(one.magnitude.bitPattern == Self.value(a, type).bitPattern, "\(label)")
                                if chunk == 64 && set == .automatic {
                                    let reference = ReferenceQuantizer.quantize(bits.map { Self.value($0, type) })
                                    #expect(one.summary.scale.bitPattern == reference.scale.bitPattern, "\(label)")
                                    #expect(one.packed == ReferenceQuantizer.pack(reference.trits), "\(label)")
                                    #expect(one.summary.zeroCount == reference.zeroCount, "\(label)")
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    @Test("nil for two magnitudes anywhere, all ±0, or a NaN/±Inf magnitude; a short output throws")
    func notAlreadyTernary() throws {
        let a = Float(0.046875).bitPattern
        let count = 64 * 40 + 37
        var base = [UInt32](repeating: 0, count: count)
        for k in stride(from: 0, to: count, by: 3) { base[k] = k % 2 == 0 ? a : a | 0x8000_0000 }
        for set in [CPUInstructionSet.automatic] + CPUInstructionSet.lowerAlternatives {
            for chunk in [64, CPUBackend.defaultChunkSize] {
                let backend = CPUBackend(threadCount: 2, chunkSize: chunk, instructionSet: set)
                func check(_ bits: [UInt32], _ type: ElementType, _ label: String) throws {
                    #expect(try Self.onePass(backend, try Self.input(bits, type)) == nil, "\(set) chunk \(chunk): \(label)")
                }
                #expect(try Self.onePass(backend, try Self.input(base, .float32)) != nil)
                for k in [0, 1, 63, 64, 65, 64 * 20 + 31, count - 37, count - 1] {
                    var v = base
                    v[k] = (k % 2 == 0 ? a + 1 : a - 1) | (v[k] & 0x8000_0000)
                    try check(v, .float32, "second magnitude at \(k)")
                }
                var perChunk = base
                for k in (64 * 20)..<count where perChunk[k] != 0 { perChunk[k] = perChunk[k] & 0x8000_0000 | (a + 1) }
                try check(perChunk, .float32, "one magnitude per chunk, two in all")
                try check([UInt32](repeating: 0x8000_0000, count: count), .float32, "all ±0")
                try check(base.map { $0 == 0 ? 0 : ($0 & 0x8000_0000) | 0x7F80_0000 }, .float32, "every non-zero ±Inf")
                try check(base.map { $0 == 0 ? 0 : 0x7FC0_0000 }, .float32, "every non-zero NaN")
                var oneNaN = base
                oneNaN[100] = 0x7FC0_0000
                try check(oneNaN, .float32, "one NaN")
                try check([0x7C00, 0, 0xFC00], .float16, "binary16 ±Inf")
                try check([0x7F80, 0x8000, 0x7F80], .bfloat16, "bfloat16 Inf")
                try check([0x2600, 0x2601], .float16, "two binary16 magnitudes")
            }
        }
        let input = try Self.input(base, .float32)
        var short = [UInt8](repeating: 0, count: TritLayout.packed2Bit.byteCount(forTrits: count) - 1)
        #expect(throws: QuantizationError.self) {
            _ = try short.withUnsafeMutableBytes { try CPUBackend().quantizeIfAlreadyTernary(input, into: $0) }
        }
    }
}
