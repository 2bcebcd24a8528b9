import Testing
import TernaryQuant
import TernaryQuantTestSupport
import TernaryQuantBench

@Suite("Bad input throws typed errors")
struct CoreErrorTests {
    @Test("empty tensor")
    func empty() {
        #expect(throws: QuantizationError.emptyTensor(name: "e")) {
            try PerLayerQuant.quantize([], name: "e", shape: [0])
        }
        #expect(throws: QuantizationError.emptyTensor(name: "e")) {
            try PerLayerQuant.quantize([], name: "e", shape: [4, 0])
        }
    }

    @Test("shape product differs from the element count")
    func shapeMismatch() {
        #expect(throws: QuantizationError.shapeMismatch(name: "m", shape: [3, 3], elementCount: 8)) {
            try PerLayerQuant.quantize([Float](repeating: 1, count: 8), name: "m", shape: [3, 3])
        }
    }

    @Test("negative dimension")
    func negativeDimension() {
        #expect(throws: QuantizationError.negativeDimension(name: "n", shape: [2, -2], axis: 1)) {
            try PerLayerQuant.quantize([1, 2, 3, 4], name: "n", shape: [2, -2])
        }
    }

    @Test("shape product overflows")
    func overflow() {
        let shape = [Int.max / 2, 3]
        #expect(throws: QuantizationError.shapeOverflow(name: "o", shape: shape)) {
            try PerLayerQuant.quantize([1], name: "o", shape: shape)
        }
    }

    @Test("NaN and ±Inf name the tensor and the first offending index", arguments: [
        (Float.nan, 5), (Float.infinity, 0), (-Float.infinity, 99_999), (Float.signalingNaN, 70_000),
    ])
    func nonFinite(_ bad: Float, _ index: Int) {
        var weights = TestData.tensor(.normal, count: 100_000, seed: 3)
        weights[index] = bad
        if index + 10 < weights.count { weights[index + 10] = .nan }  // a later one must not be reported
        #expect(throws: QuantizationError.nonFiniteValue(name: "layer.7", index: index, bits: bad.bitPattern)) {
            try PerLayerQuant.quantize(weights, name: "layer.7", shape: [100, 1000])
        }
        let message = String(describing: QuantizationError.nonFiniteValue(name: "layer.7", index: index, bits: bad.bitPattern))
        #expect(message.contains("layer.7") && message.contains("element \(index)"))
    }

    @Test("non-finite F16 and BF16 elements are rejected too")
    func nonFiniteHalf() {
        let half: [UInt16] = [0x3C00, 0x3C00, 0x7C00, 0x3C00]  // +Inf at index 2
        #expect(throws: QuantizationError.nonFiniteValue(name: "h", index: 2, bits: 0x7F80_0000)) {
            try half.withUnsafeBytes {
                try Quantizer().quantize(TensorInput(name: "h", shape: [4], elementType: .float16, bytes: $0))
            }
        }
        let bf16: [UInt16] = [0x3F80, 0xFFC1]  // NaN at index 1
        #expect(throws: QuantizationError.nonFiniteValue(name: "b", index: 1, bits: 0xFFC1_0000)) {
            try bf16.withUnsafeBytes {
                try Quantizer().quantize(TensorInput(name: "b", shape: [2], elementType: .bfloat16, bytes: $0))
            }
        }
    }

    @Test("byte count that disagrees with the shape")
    func byteCount() {
        let bytes: [UInt8] = [0, 0, 0]
        #expect(throws: QuantizationError.byteCountMismatch(name: "x", expected: 4, actual: 3)) {
            try bytes.withUnsafeBytes { try TensorInput(name: "x", shape: [1], elementType: .float32, bytes: $0) }
        }
    }

    @Test("output buffer too small")
    func outputTooSmall() throws {
        let weights: [Float] = [1, 2, 3, 4, 5]
        var out = [UInt8](repeating: 0, count: 1)
        #expect(throws: QuantizationError.byteCountMismatch(name: "w", expected: 2, actual: 1)) {
            try weights.withUnsafeBufferPointer { w in
                try out.withUnsafeMutableBytes { o in
                    try Quantizer().quantize(TensorInput(name: "w", shape: [5], floats: w), into: o)
                }
            }
        }
    }

    @Test("mse needs the same number of weights")
    func mseLength() throws {
        let q = try PerLayerQuant.quantize([1, -1, 0.1, 2], name: "m", shape: [2, 2])
        #expect(throws: QuantizationError.lengthMismatch(name: "m", expected: 4, actual: 3)) {
            try q.mse([1, 2, 3])
        }
        // mse = mean((w − α·t)²), α = 1.025: t = [1, -1, 0, 1].
        let alpha = Double(q.scale)
        let expected = ((1 - alpha) * (1 - alpha) + (-1 + alpha) * (-1 + alpha) + 0.1 * 0.1 + (2 - alpha) * (2 - alpha)) / 4
        #expect(try q.mse([1, -1, 0.1, 2]) == Float(Double(Float(0.1)) * Double(Float(0.1)) / 4 + (expected - 0.1 * 0.1 / 4)))
    }

    @Test("invalid scales and counts are refused without trapping")
    func invalidScale() {
        for bad in [Float(-1), .nan, .infinity, -.infinity] {
            #expect(throws: QuantizationError.invalidScale(bits: bad.bitPattern)) { try TritThreshold(scale: bad) }
        }
        #expect(ExactAbsSum().roundedMean(count: 0) == nil)
    }

    @Test("unpacking rejects the reserved code 11 and short data")
    func unpackErrors() {
        #expect(throws: QuantizationError.invalidPackedCode(index: 5)) {
            try TritPacking.unpack([0x00, 0b0000_1100], count: 8)
        }
        #expect(throws: QuantizationError.packedDataTooShort(expectedBytes: 3, actualBytes: 2)) {
            try TritPacking.unpack([0, 0], count: 9)
        }
    }
}

@Suite("Packing and certification units")
struct CoreUnitTests {
    @Test("pack/unpack round trip for every length 0…40")
    func roundTrip() throws {
        var rng = SplitMix64(seed: 5)
        for n in 0...40 {
            let trits = (0..<n).map { _ in Trit.allCases[Int(rng.next() % 3)] }
            let packed = TritPacking.pack(trits)
            #expect(packed.count == (n + 3) / 4)
            #expect(try TritPacking.unpack(packed, count: n) == trits)
            if n % 4 != 0, let last = packed.last {
                #expect(last >> UInt8(2 * (n % 4)) == 0, "padding must be 00")
            }
        }
    }

    @Test("the certifier refuses a sum whose mean is on a rounding midpoint")
    func certifierRefusesMidpoint() {
        // Σ = 2 + 2^-23 over 2 elements: mean 1 + 2^-24, the midpoint between 1 and 1 + 2^-23.
        let estimate = AbsSumEstimate(floatingSum: 2 + 0x1p-23, additionDepth: 1)
        #expect(AbsMeanCertifier.certify(estimate, count: 2) == .needsExactSum)
        let clear = AbsSumEstimate(floatingSum: 2.6, additionDepth: 1000)
        #expect(AbsMeanCertifier.certify(clear, count: 2) == .certified(1.3))
        #expect(AbsMeanCertifier.certify(AbsSumEstimate(floatingSum: .nan, additionDepth: 1), count: 2) == .needsExactSum)
        #expect(AbsMeanCertifier.certify(AbsSumEstimate(floatingSum: 0, additionDepth: 1), count: 7) == .certified(1))
    }

    @Test("exact sum rounding: subnormal means, ties and carries")
    func exactSumRounding() {
        func mean(_ values: [Float]) -> Float {
            var s = ExactAbsSum()
            for v in values { s.add(bits: v.bitPattern) }
            return s.roundedMean(count: values.count) ?? .nan
        }
        let u = Float(bitPattern: 1)
        #expect(mean([u, 2 * u]) == 2 * u)  // 1.5u ties to even 2u
        #expect(mean([u, 0]).bitPattern == 0)  // 0.5u ties to even: +0
        #expect(mean([3 * u, 0]) == 2 * u)  // 1.5u → 2u
        #expect(mean([5 * u, 0]) == 2 * u)  // 2.5u → 2u
        #expect(mean([.greatestFiniteMagnitude, .greatestFiniteMagnitude]) == .greatestFiniteMagnitude)
        // All-ones mantissa rounding up carries into the exponent: mean(2 − 2^-23, 2) = 2 − 2^-24 → 2.
        #expect(mean([Float(2).nextDown, 2]) == 2)
        #expect(mean([0, -0.0]) == 1)
    }
}
