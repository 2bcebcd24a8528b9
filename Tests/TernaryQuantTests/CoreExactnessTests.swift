import Testing
import TernaryQuant
import TernaryQuantTestSupport
import TernaryQuantBench

/// The fast CPU path against the independent big-integer reference.
@Suite("Exact absmean semantics")
struct CoreExactnessTests {
    static let backends: [CPUBackend] = [
        CPUBackend(threadCount: 1, chunkSize: 64),
        CPUBackend(threadCount: 2, chunkSize: 4096),
        CPUBackend(threadCount: 3, chunkSize: 192),
        CPUBackend(),
        CPUBackend(threadCount: 2, chunkSize: 320, instructionSet: .avx2),
        CPUBackend(threadCount: 2, chunkSize: 320, instructionSet: .portable),
    ]

    static func check(_ weights: [Float], file: String = #fileID, line: Int = #line) throws {
        let reference = ReferenceQuantizer.quantize(weights)
        let referencePacked = ReferenceQuantizer.pack(reference.trits)
        for backend in backends {
            let quantizer = Quantizer(backend: backend)
            let packed = try quantizer.quantize(weights, name: "t", shape: [weights.count], layout: .packed2Bit)
            let int8 = try quantizer.quantize(weights, name: "t", shape: [weights.count], layout: .int8)
            #expect(packed.scale.bitPattern == reference.scale.bitPattern,
                    "α \(packed.scale) ≠ reference \(reference.scale) (n=\(weights.count), \(backend.deviceDescription), chunk \(backend.chunkSize))")
            #expect(int8.scale.bitPattern == reference.scale.bitPattern)
            #expect(packed.data == referencePacked, "packed bytes differ (n=\(weights.count))")
            #expect(int8.data == reference.trits.map { UInt8(bitPattern: $0) }, "int8 trits differ (n=\(weights.count))")
            #expect(packed.summary.zeroCount == reference.zeroCount)
            #expect(int8.summary.zeroCount == reference.zeroCount)
            // The exact path must agree with the certified path on every input.
            let exact = try weights.withUnsafeBufferPointer {
                backend.exactAbsMean(try TensorInput(name: "t", shape: [weights.count], floats: $0))
            }
            #expect(exact.bitPattern == reference.scale.bitPattern)
        }
    }

    @Test("random tensors of many sizes and distributions match the reference",
          arguments: TestData.Distribution.allCases)
    func randomTensors(_ distribution: TestData.Distribution) throws {
        let sizes = [1, 2, 3, 5, 7, 15, 16, 17, 31, 63, 64, 65, 127, 257, 1000, 4099, 65_537, 100_003]
        for (i, n) in sizes.enumerated() {
            try Self.check(TestData.tensor(distribution, count: n, seed: UInt64(i + 1)))
        }
    }

    @Test("ExactAbsSum.roundedSum: exact up to 53 bits, then nearest with ties to even, carries, subnormals")
    func roundedSumRoundsToNearestEven() {
        func sum(_ bits: [UInt32]) -> Double {
            var s = ExactAbsSum()
            for b in bits { s.add(bits: b) }
            return s.roundedSum()
        }
        let one: UInt32 = 0x3F80_0000  // 1.0
        #expect(sum([]) == 0 && sum([0x8000_0000]).bitPattern == 0)
        #expect(sum([0x0000_0001]) == 0x1p-149)  // the smallest subnormal, exactly
        #expect(sum([one, 0x0000_0001]) == 1)  // far below 1's half-ulp
        #expect(sum([one, 0x2500_0000]) == 1)  // 1 + 2^-53: a tie, to the even 1
        #expect(sum([one, 0x2500_0000, 0x2480_0000]) == 1 + 0x1p-52)  // 1 + 2^-53 + 2^-54: above the tie
        #expect(sum([one, 0x2580_0000, 0x2500_0000]) == 1 + 0x1p-51)  // 1 + 2^-52 + 2^-53: a tie, odd below: up
        // 1 + (1 − 2^-24) + (2^-24 − 2^-48) + 31·2^-53 = 2 − 2^-53: a tie whose rounding carries into the exponent.
        #expect(sum([one, 0x3F7F_FFFF, 0x337F_FFFF, 0x2778_0000]) == 2)
        // The largest finite float32 many times over stays finite and exact when it fits.
        var big = ExactAbsSum()
        big.add(bits: 0x7F7F_FFFF, times: 1 << 20)
        #expect(big.roundedSum() == Double(Float.greatestFiniteMagnitude) * 0x1p20)
    }

    @Test("exact mean on a rounding midpoint rounds to even")
    func midpointTiesToEven() throws {
        // mean(1, 1 + 2^-23) = 1 + 2^-24: halfway between 1 and 1 + 2^-23 → even (1.0).
        try Self.check([1, 1 + 0x1p-23])
        let q = try PerLayerQuant.quantize([1, 1 + 0x1p-23], name: "mid", shape: [2])
        #expect(q.scale == 1)
        // mean(1 + 2^-23, 1 + 2^-22) = 1 + 3·2^-24: halfway between odd 1+2^-23 and even 1+2^-22 → 1+2^-22.
        let q2 = try PerLayerQuant.quantize([1 + 0x1p-23, 1 + 0x1p-22], name: "mid2", shape: [2])
        #expect(q2.scale == 1 + 0x1p-22)
    }

    @Test("a mean just above a midpoint, by far less than a float64 ulp of the sum, rounds up")
    func justAboveMidpoint() throws {
        // Sum = 4 + 2^-22 + 2^-149: the float64 sum rounds the tiny term away (to the exact midpoint
        // 1 + 2^-24 after division); the exact mean is above the midpoint, so α = 1 + 2^-23.
        let weights: [Float] = [1, 1, 2 + 0x1p-22, Float(bitPattern: 1)]
        try Self.check(weights)
        let q = try PerLayerQuant.quantize(weights, name: "above", shape: [4])
        #expect(q.scale == 1 + 0x1p-23)
    }

    @Test("elements exactly at ±0.5α and their float neighbours, α = 3 (not a power of two)")
    func halfAlphaBoundary() throws {
        let up = Float(1.5).nextUp, down = Float(1.5).nextDown  // 1.5 ± 2^-23
        // Σ|w| = 9 (probes) + 18 = 27 over 9 elements: α = 3 exactly.
        let weights: [Float] = [1.5, -1.5, up, -up, down, -down, 6, -6, 6]
        try Self.check(weights)
        let q = try PerLayerQuant.quantize(weights, name: "half", shape: [9])
        #expect(q.scale == 3)
        // 1.5/3 = 0.5 exactly → 0 (strict); (1.5 + 2^-23)/3 rounds to 0.5 + 2^-24 → ±1; 1.5 − 2^-23 → 0.
        #expect(q.trits.map(\.rawValue) == [0, 0, 1, -1, 0, 0, 1, -1, 1])
    }

    @Test("subnormal α, where w > 0.5·α and fl(w/α) > 0.5 disagree")
    func subnormalAlphaRule() throws {
        let u = Float(bitPattern: 1)  // 2^-149
        // α = 3u; 0.5·α rounds to 2u, so "w > 0.5α" says 0 for w = 2u, but fl(2u/3u) = 0.667 > 0.5 says +1.
        let weights: [Float] = [2 * u, -4 * u, 3 * u]
        try Self.check(weights)
        let q = try PerLayerQuant.quantize(weights, name: "tiny", shape: [3])
        #expect(q.scale == 3 * u)
        #expect(!(2 * u > 0.5 * q.scale))
        #expect(q.trits == [.affirm, .reject, .affirm])
    }

    @Test("2^25 copies of 0.02 give α = 0.02 exactly (a sequential float32 sum does not)")
    func manyEqualElements() throws {
        let n = 1 << 25
        let value: Float = 0.02
        let weights = [Float](repeating: value, count: n)
        let q = try Quantizer().quantize(weights, name: "equal", shape: [n])
        #expect(q.scale == value)
        #expect(q.summary.zeroCount == 0)
        var naive: Float = 0
        for w in weights.prefix(n) { naive += w }
        #expect(naive / Float(n) != value, "the seed's float32 summation is inexact here")
    }

    @Test("±0 only gives α = 1 and all-zero trits")
    func signedZeros() throws {
        let weights: [Float] = [0, -0.0, 0, -0.0, -0.0]
        try Self.check(weights)
        let q = try PerLayerQuant.quantize(weights, name: "zeros", shape: [5])
        #expect(q.scale == 1)
        #expect(q.sparsity == 1)
        #expect(q.reconstruct().allSatisfy { $0 == 0 && $0.sign == .plus })
    }

    @Test("extreme magnitudes: largest finite floats and the smallest subnormal")
    func extremes() throws {
        try Self.check([.greatestFiniteMagnitude, -.greatestFiniteMagnitude, .greatestFiniteMagnitude])
        try Self.check([Float(bitPattern: 1)])
        try Self.check([Float(bitPattern: 1), Float(bitPattern: 2), 0])
        try Self.check([.greatestFiniteMagnitude, Float(bitPattern: 1), .leastNormalMagnitude])
        try Self.check([Float](repeating: .leastNormalMagnitude, count: 33) + [Float(bitPattern: 0x7F_FFFF)])
    }

    @Test("a non-zero tensor whose exact mean rounds to 0 gets α = +0 and trits by fl(w/0) = ±Inf")
    func meanRoundsToZero() throws {
        let u = Float(bitPattern: 1)
        let weights: [Float] = [u, 0, -0.0, -u, 0, 0]  // mean = 2u/6 < u/2 → 0
        try Self.check(weights)
        let q = try PerLayerQuant.quantize(weights, name: "tiny", shape: [6])
        #expect(q.scale.bitPattern == 0)
        #expect(q.trits == [.affirm, .tend, .tend, .reject, .tend, .tend])
    }

    @Test("unaligned input bytes give the same result as aligned ones", arguments: ElementType.allCases)
    func unalignedInput(_ type: ElementType) throws {
        let n = 10_007
        let weights = TestData.tensor(.normal, count: n, seed: 21)
        var aligned = [UInt8]()
        for w in weights {
            switch type {
            case .float32: withUnsafeBytes(of: w.bitPattern.littleEndian) { aligned += $0 }
            case .float16: withUnsafeBytes(of: HalfConversion.float16Bits(w).littleEndian) { aligned += $0 }
            case .bfloat16: withUnsafeBytes(of: UInt16(w.bitPattern >> 16).littleEndian) { aligned += $0 }
            }
        }
        let shifted = [0x5A] + aligned
        for instructionSet in CPUInstructionSet.allCases {
            let quantizer = Quantizer(backend: CPUBackend(instructionSet: instructionSet))
            let a = try aligned.withUnsafeBytes {
                try quantizer.quantize(TensorInput(name: "a", shape: [n], elementType: type, bytes: $0))
            }
            let b = try shifted.withUnsafeBytes {
                try quantizer.quantize(TensorInput(name: "a", shape: [n], elementType: type,
                                                   bytes: UnsafeRawBufferPointer(rebasing: $0.dropFirst())))
            }
            #expect(a == b)
        }
    }

    @Test("results do not depend on thread count or chunk size")
    func threadAndChunkIndependence() throws {
        let weights = TestData.tensor(.normal, count: 300_007, seed: 42)
        var outputs = Set<[UInt8]>()
        var scales = Set<UInt32>()
        for threads in [1, 2, 3, 5, 8] {
            for chunk in [64, 128, 1000, 65_536, 1 << 20] {
                let q = try Quantizer(backend: CPUBackend(threadCount: threads, chunkSize: chunk))
                    .quantize(weights, name: "w", shape: [300_007])
                outputs.insert(q.data)
                scales.insert(q.scale.bitPattern)
            }
        }
        #expect(outputs.count == 1)
        #expect(scales.count == 1)
    }

    @Test("F16 and BF16 inputs equal their exact float32 widening")
    func halfPrecisionInputs() throws {
        var rng = SplitMix64(seed: 9)
        let halfBits: [UInt16] = (0..<10_001).map { _ in
            var h = UInt16(truncatingIfNeeded: rng.next())
            if h & 0x7C00 == 0x7C00 { h &= 0xBFFF }  // keep finite
            return h
        }
        let bf16Bits: [UInt16] = (0..<10_001).map { _ in
            var b = UInt16(truncatingIfNeeded: rng.next())
            if b & 0x7F80 == 0x7F80 { b &= 0xBFFF }
            return b
        }
        for (type, bits) in [(ElementType.float16, halfBits), (.bfloat16, bf16Bits)] {
            let widened: [Float] = bits.map {
                type == .float16 ? Float(bitPattern: Float32Bits.fromFloat16($0)) : Float(bitPattern: UInt32($0) << 16)
            }
            let reference = ReferenceQuantizer.quantize(widened)
            let q = try bits.withUnsafeBytes {
                try Quantizer().quantize(TensorInput(name: "h", shape: [bits.count], elementType: type, bytes: $0))
            }
            #expect(q.scale.bitPattern == reference.scale.bitPattern)
            #expect(q.data == ReferenceQuantizer.pack(reference.trits))
        }
    }

    #if !(os(macOS) && arch(x86_64))
    @Test("every finite F16 pattern quantizes like its float32 widening by Swift's Float16",
          arguments: ["all", "subnormal", "small-normal"])
    func float16InputsExhaustive(_ subset: String) throws {
        let patterns = (0...UInt16.max).filter { h in
            let exponent = (h >> 10) & 0x1F
            switch subset {
            case "subnormal": return exponent == 0
            case "small-normal": return exponent > 0 && exponent <= 5
            default: return exponent != 0x1F
            }
        }
        let widened = patterns.map { Float(Float16(bitPattern: $0)) }
        for backend in [CPUBackend(threadCount: 1, chunkSize: 64), CPUBackend(),
                        CPUBackend(instructionSet: .avx2), CPUBackend(instructionSet: .portable)] {
            let quantizer = Quantizer(backend: backend)
            let fromHalf = try patterns.withUnsafeBytes {
                try quantizer.quantize(TensorInput(name: "h", shape: [patterns.count], elementType: .float16, bytes: $0))
            }
            let fromFloat = try quantizer.quantize(widened, name: "h", shape: [widened.count])
            #expect(fromHalf.scale.bitPattern == fromFloat.scale.bitPattern)
            #expect(fromHalf.data == fromFloat.data)
            #expect(fromHalf.summary == fromFloat.summary)
        }
    }

    @Test("F16 widening agrees with Swift's Float16 for all 65536 patterns")
    func float16WideningExhaustive() {
        for h in 0...UInt16.max {
            let expected = Float(Float16(bitPattern: h))
            let got = Float(bitPattern: Float32Bits.fromFloat16(h))
            if expected.isNaN {
                #expect(got.isNaN)
            } else {
                #expect(got.bitPattern == expected.bitPattern, "half 0x\(String(h, radix: 16))")
            }
        }
    }

    @Test("float32 → F16 rounding agrees with Swift's Float16 on many values")
    func float16Rounding() {
        var rng = SplitMix64(seed: 77)
        for _ in 0..<200_000 {
            let f = Float(bitPattern: UInt32(truncatingIfNeeded: rng.next()))
            let expected = Float16(f).bitPattern
            let got = HalfConversion.float16Bits(f)
            if f.isNaN { #expect(got & 0x7C00 == 0x7C00 && got & 0x3FF != 0) } else { #expect(got == expected, "\(f)") }
        }
    }
    #endif
}
