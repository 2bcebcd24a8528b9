import CTernaryKernels
import Testing
import TernaryQuant
import TernaryQuantTestSupport
import TernaryQuantBench

/// F16 and BF16 decided on their 16-bit patterns: every pattern, many α, both kernel tables, against the
/// float32 rule on the exact widening and the slow reference.
@Suite("F16/BF16 trits on 16-bit patterns")
struct CoreHalfPrecisionTests {
    static func tables() -> [(String, UnsafePointer<tq_kernel_table>)] { [("portable", tq_kernels(TQ_LEVEL_PORTABLE)), ("avx2", tq_kernels(TQ_LEVEL_AVX2)), ("automatic", tq_kernels(TQ_LEVEL_AVX512))] }

    /// The exact float32 widening of a 16-bit pattern of `type`.
    static func widen(_ type: ElementType, _ h: UInt16) -> UInt32 {
        type == .float16 ? Float32Bits.fromFloat16(h) : Float32Bits.fromBFloat16(h)
    }

    /// α values: +0, float32 subnormals, the F16 subnormal range, ordinary scales, the top of the F16
    /// range, the largest float, and α = 2·x for 16-bit values x (threshold exactly at a pattern boundary).
    static func alphas(_ widen: (UInt16) -> UInt32) -> [Float] {
        var values: [Float] = [0, Float(bitPattern: 1), Float(bitPattern: 3), Float(bitPattern: 0x7F_FFFF),
                               .leastNormalMagnitude, 0x1p-24, 3 * 0x1p-25, 0x1p-14, 1e-5, 0.02, 1, 3, 1000,
                               65504, 131_008, 1e30, .greatestFiniteMagnitude]
        var rng = SplitMix64(seed: 0x16)
        for _ in 0..<12 {
            let h = UInt16(truncatingIfNeeded: rng.next()) & 0x7BFF
            let x = Float(bitPattern: widen(h))
            values += [2 * x, (2 * x).nextUp, (2 * x).nextDown]
        }
        for _ in 0..<8 { values.append(Float(bitPattern: UInt32(truncatingIfNeeded: rng.next()) % 0x7F80_0000)) }
        return values
    }

    static func check(type: ElementType) throws {
        let patterns = (0...UInt16.max).map { $0 }
        let widened = patterns.map { widen(type, $0) }
        for alpha in alphas({ widen(type, $0) }) {
            let threshold = try TritThreshold(scale: alpha)
            let bits16 = UInt32(type == .float16 ? threshold.float16MagnitudeBits : threshold.bfloat16MagnitudeBits)
            // The seed rule by division on the exact widening (finite and infinite patterns; NaN never
            // reaches the trit pass, the α pass rejects it).
            let expected: [Int8] = widened.map { bits in
                let q = Float(bitPattern: bits) / alpha
                return q > 0.5 ? 1 : (q < -0.5 ? -1 : 0)
            }
            for (name, table) in tables() {
                var int8 = [Int8](repeating: 7, count: patterns.count)
                var packed = [UInt8](repeating: 0xFF, count: patterns.count / 4)
                var wideInt8 = [Int8](repeating: 7, count: patterns.count)
                let nonZero = patterns.withUnsafeBytes { src in
                    int8.withUnsafeMutableBufferPointer { table.pointee.int8_h16(src.baseAddress, patterns.count, bits16, $0.baseAddress) }
                }
                let packedNonZero = patterns.withUnsafeBytes { src in
                    packed.withUnsafeMutableBufferPointer { table.pointee.pack_h16(src.baseAddress, patterns.count, bits16, $0.baseAddress) }
                }
                let wideNonZero = widened.withUnsafeBytes { src in
                    wideInt8.withUnsafeMutableBufferPointer {
                        table.pointee.int8_f32(src.baseAddress, widened.count, threshold.magnitudeBits, $0.baseAddress)
                    }
                }
                // Every pattern, NaN included, equals the float32 kernel on its widening.
                #expect(int8 == wideInt8, "\(type) α \(alpha) (\(name)): 16-bit trits differ from the float32 rule")
                #expect(nonZero == wideNonZero && packedNonZero == nonZero)
                #expect(packed == ReferenceQuantizer.pack(int8))
                let mismatch = patterns.indices.first { i in
                    widened[i] & 0x7FFF_FFFF <= 0x7F80_0000 && int8[i] != expected[i]
                }
                #expect(mismatch == nil, "\(type) α \(alpha) bits 0x\(String(alpha.bitPattern, radix: 16)) (\(name)): pattern \(mismatch.map { String(patterns[$0], radix: 16) } ?? "") differs from fl32(w/α)")
            }
        }
    }

    @Test("every binary16 pattern × many α: 16-bit decision = float32 rule = fl32(w/α)")
    func float16AllPatterns() throws { try Self.check(type: .float16) }

    @Test("every bfloat16 pattern × many α: 16-bit decision = float32 rule = fl32(w/α)")
    func bfloat16AllPatterns() throws { try Self.check(type: .bfloat16) }

    /// Finite patterns of `type` with magnitude bits at most `limit`, in a shuffled order.
    static func finitePatterns(_ type: ElementType, limit: UInt16) -> [UInt16] {
        let infinity: UInt16 = type == .float16 ? 0x7C00 : 0x7F80
        var values = (0...UInt16.max).filter { $0 & 0x7FFF < infinity && $0 & 0x7FFF <= limit }
        var rng = SplitMix64(seed: UInt64(limit))
        values.shuffle(using: &rng)
        return values
    }

    @Test("whole tensors of every finite F16/BF16 pattern (and magnitude-limited subsets) match the reference",
          arguments: ElementType.allCases.filter { $0 != .float32 })
    func wholeTensors(_ type: ElementType) throws {
        // Limits move α through the subnormal, small and ordinary ranges.
        let limits: [UInt16] = type == .float16 ? [0x3FF, 0x1400, 0x3C00, 0x7FFF] : [0x7F, 0x0100, 0x3F80, 0x7FFF]
        for limit in limits {
            let patterns = Self.finitePatterns(type, limit: limit)
            let widened = patterns.map { Float(bitPattern: Self.widen(type, $0)) }
            let reference = ReferenceQuantizer.quantize(widened)
            for backend in [CPUBackend(threadCount: 1, chunkSize: 64), CPUBackend(threadCount: 2, chunkSize: 4160),
                            CPUBackend(instructionSet: .avx2), CPUBackend(instructionSet: .portable)] {
                let quantizer = Quantizer(backend: backend)
                for layout in TritLayout.allCases {
                    let q = try patterns.withUnsafeBytes {
                        try quantizer.quantize(TensorInput(name: "h", shape: [patterns.count], elementType: type, bytes: $0), layout: layout)
                    }
                    #expect(q.scale.bitPattern == reference.scale.bitPattern, "\(type) limit 0x\(String(limit, radix: 16)): α \(q.scale) ≠ \(reference.scale)")
                    #expect(q.summary.zeroCount == reference.zeroCount)
                    let expected = layout == .int8 ? reference.trits.map { UInt8(bitPattern: $0) } : ReferenceQuantizer.pack(reference.trits)
                    #expect(q.data == expected, "\(type) limit 0x\(String(limit, radix: 16)) \(layout): trits differ")
                }
            }
        }
    }

    @Test("the integer threshold derivation equals the binary search by float32 division")
    func thresholdDerivation() throws {
        var rng = SplitMix64(seed: 0x7117)
        var alphas: [Float] = [0, Float(bitPattern: 1), Float(bitPattern: 2), Float(bitPattern: 3), Float(bitPattern: 0x7F_FFFF),
                               .leastNormalMagnitude, .leastNormalMagnitude.nextUp, 1, 1.5, 3, 0.02, .greatestFiniteMagnitude,
                               Float.greatestFiniteMagnitude.nextDown]
        for _ in 0..<3000 { alphas.append(Float(bitPattern: UInt32(truncatingIfNeeded: rng.next()) % 0x7F80_0000)) }
        for e in 0..<254 { alphas.append(Float(bitPattern: UInt32(e) << 23 | 0x7F_FFFF)) }
        for alpha in alphas {
            var low: UInt32 = 0, high: UInt32 = 0x7F80_0000
            while high - low > 1 {
                let mid = low + (high - low) / 2
                if Float(bitPattern: mid) / alpha > 0.5 { high = mid } else { low = mid }
            }
            #expect(try TritThreshold(scale: alpha).magnitudeBits == high, "α bits 0x\(String(alpha.bitPattern, radix: 16))")
        }
    }
}
