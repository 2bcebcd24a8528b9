import CTernaryKernels
import Testing
import TernaryQuantCore
import TernaryQuant
import TernaryQuantTestSupport

/// `CPUBackend`'s one-pass quantization: trits decided at a forecast threshold while α is summed, then the
/// recorded band re-decided at the real threshold (or a second pass where the band misses or overflows).
/// Every forecast, good or deliberately wrong, must give the big-integer reference's α, trits and zero
/// count, on every table, in both layouts, for every element type.
@Suite("One pass with a forecast threshold")
struct OnePassTests {
    static let instructionSets: [CPUInstructionSet] = [.automatic] + CPUInstructionSet.lowerAlternatives

    /// The tensor's values as `type` bytes, and the same values widened to float32 (exactly).
    static func stored(_ values: [Float], as type: ElementType) -> (bytes: [UInt8], widened: [Float]) {
        var bytes = [UInt8]()
        var widened = [Float]()
        bytes.reserveCapacity(values.count * type.byteWidth)
        for v in values {
            switch type {
            case .float32:
                bytes += withUnsafeBytes(of: v.bitPattern.littleEndian, Array.init)
                widened.append(v)
            case .float16:
                let h = HalfConversion.float16Bits(v)
                bytes += withUnsafeBytes(of: h.littleEndian, Array.init)
                widened.append(Float(bitPattern: Float32Bits.fromFloat16(h)))
            case .bfloat16:
                let b = UInt16(truncatingIfNeeded: v.bitPattern >> 16)
                bytes += withUnsafeBytes(of: b.littleEndian, Array.init)
                widened.append(Float(bitPattern: Float32Bits.fromBFloat16(b)))
            }
        }
        return (bytes, widened)
    }

    /// The kernels' threshold bits for α in `type`.
    static func thresholdBits(_ scale: Float, _ type: ElementType) throws -> UInt32 {
        let t = try TritThreshold(scale: scale)
        switch type {
        case .float32: return t.magnitudeBits
        case .float16: return UInt32(t.float16MagnitudeBits)
        case .bfloat16: return UInt32(t.bfloat16MagnitudeBits)
        }
    }

    /// Trits of `layout` output bytes.
    static func trits(_ output: [UInt8], _ layout: TritLayout, count: Int) -> [Int8] {
        layout == .int8 ? output.prefix(count).map { Int8(bitPattern: $0) } : ReferenceBlocks.unpack(output, count: count)
    }

    /// Runs `body` and checks its α, trits and zero count against the reference.
    static func expectReference(_ reference: ReferenceQuantizer.Result, _ layout: TritLayout, count: Int, _ what: String,
                                _ body: (UnsafeMutableRawBufferPointer) throws -> QuantizationSummary) throws {
        var output = [UInt8](repeating: 0xEE, count: layout.byteCount(forTrits: count))
        let summary = try output.withUnsafeMutableBytes { try body($0) }
        #expect(summary.scale.bitPattern == reference.scale.bitPattern, "\(what): α \(summary.scale) ≠ \(reference.scale)")
        #expect(summary.zeroCount == reference.zeroCount, "\(what): zeros \(summary.zeroCount) ≠ \(reference.zeroCount)")
        let got = trits(output, layout, count: count)
        let wrong = zip(got, reference.trits).filter { $0 != $1 }.count
        #expect(wrong == 0, "\(what): \(wrong) trits differ")
    }

    @Test("any forecast gives the reference bytes: exact, narrow, missing, at the band's edges, overflowing",
          arguments: ElementType.allCases)
    func forcedForecasts(_ type: ElementType) throws {
        // Chunks of 64, 4096 and 16384 elements (several of the AVX-512 loop's 8192-element blocks), with a
        // ragged last chunk and a scalar tail.
        let count = 20011
        let (bytes, widened) = Self.stored(TestData.tensor(.normal, count: count, seed: 41), as: type)
        let input = try TensorInput(name: "w", shape: [count], elementType: type, copying: bytes)
        let reference = ReferenceQuantizer.quantize(widened)
        let t = try Self.thresholdBits(reference.scale, type)
        let top: UInt32 = type == .float32 ? 0x7F80_0000 : 0x7FFF
        let cases: [(String, UInt32, UInt32, UInt32)] = [
            ("exact", t, t, t), ("narrow", t, t - 3, t + 3), ("below T", t - 1, t - 9, t - 1), ("above T", t + 1, t + 1, t + 9),
            ("low edge", t + 2, t, t + 5), ("high edge", t - 2, t - 5, t), ("empty band, wrong guess", t + 4, t + 4, t + 4),
            ("everything", t, 1, top), ("far guess, wide band", t / 2, 1, top),
        ]
        for (name, guess, low, high) in cases {
            let forecast = try #require(ThresholdForecast(threshold: guess, low: low, high: high, for: type), "\(name)")
            for set in Self.instructionSets {
                for chunk in [64, 4096, 16384] {
                    let backend = CPUBackend(threadCount: 2, chunkSize: chunk, instructionSet: set)
                    for layout in TritLayout.allCases {
                        try Self.expectReference(reference, layout, count: count, "\(type) \(name) \(set) chunk \(chunk) \(layout)") {
                            try backend.quantize(input, layout: layout, into: $0, forecast: forecast)
                        }
                    }
                }
            }
        }
    }

    @Test("any forecast gives the reference trits and the documented MSE bits, with the band moved between the moments",
          arguments: ElementType.allCases)
    func forcedForecastsMeasured(_ type: ElementType) throws {
        // Four chunks of the MSE order, the last one ragged; outliers in chunk 2 make its magnitudes span
        // more binades than float64 sums exactly, so that chunk takes the exact sum.
        let count = 3 * 65536 + 1237
        var values = TestData.tensor(.normal, count: count, seed: 47)
        for k in [2 * 65536 + 5, 2 * 65536 + 77, 2 * 65536 + 60_000] { values[k] = values[k] < 0 ? -30_000 : 30_000 }
        let (bytes, widened) = Self.stored(values, as: type)
        let input = try TensorInput(name: "w", shape: [count], elementType: type, copying: bytes)
        let reference = ReferenceQuantizer.quantize(widened)
        let referencePacked = ReferenceQuantizer.pack(reference.trits)
        let t = try Self.thresholdBits(reference.scale, type)
        let top: UInt32 = type == .float32 ? 0x7F80_0000 : 0x7FFF
        let cases: [(String, UInt32, UInt32, UInt32)] = [
            ("exact", t, t, t), ("narrow", t + 1, t - 3, t + 3), ("below T", t - 1, t - 9, t - 1),
            ("above T", t + 1, t + 1, t + 9), ("far guess, wide band", t / 2, 1, top), ("empty band, wrong guess", t + 4, t + 4, t + 4),
        ]
        let scales = [reference.scale, 0.75]
        let wide = widened.map(Double.init)
        let tritValues = reference.trits.map(Int.init)
        for scale in scales {
            let expected = PipelineMSETests.reference(wide, tritValues, alpha: Double(scale))
            let separate = try referencePacked.withUnsafeBytes { try MeanSquaredError.of(input, packed: $0, scale: scale) }
            #expect(separate.bitPattern == expected.bitPattern, "\(type) scale \(scale): separate \(separate) ≠ \(expected)")
            for (name, guess, low, high) in cases {
                let forecast = try #require(ThresholdForecast(threshold: guess, low: low, high: high, for: type), "\(name)")
                for set in Self.instructionSets {
                    for threads in set == .automatic ? [1, 2] : [2] {
                        let backend = CPUBackend(threadCount: threads, instructionSet: set)
                        var measured: MeasuredQuantization?
                        try Self.expectReference(reference, .packed2Bit, count: count, "\(type) \(name) \(set) \(threads) threads") { out in
                            let result = try backend.quantizePacked(input, into: out, forecast: forecast) { _ in scale }
                            measured = result
                            return result.summary
                        }
                        let mse = try #require(measured).meanSquaredError
                        #expect(mse.bitPattern == expected.bitPattern, "\(type) \(name) \(set) scale \(scale): \(mse) ≠ \(expected)")
                    }
                }
            }
        }
    }

    @Test("any forecast gives the reference TQ2_0 blocks, and TQ1_0 is unchanged", arguments: ElementType.allCases)
    func forcedForecastsIntoBlocks(_ type: ElementType) throws {
        let count = 256 * 79  // chunks of 256, 4096 and 16384 elements (several 16-block batches), a ragged last one
        let (bytes, widened) = Self.stored(TestData.tensor(.normal, count: count, seed: 43), as: type)
        let input = try TensorInput(name: "w", shape: [count], elementType: type, copying: bytes)
        let reference = ReferenceQuantizer.quantize(widened)
        let d = HalfConversion.float16Bits(reference.scale)
        let expected = [GGMLType.tq2_0: ReferenceBlocks.tq2_0(reference.trits, d: d), .tq1_0: ReferenceBlocks.tq1_0(reference.trits, d: d)]
        let t = try Self.thresholdBits(reference.scale, type)
        let top: UInt32 = type == .float32 ? 0x7F80_0000 : 0x7FFF
        let cases: [(String, UInt32, UInt32, UInt32)] = [
            ("exact", t, t, t), ("narrow", t + 1, t - 3, t + 3), ("below T", t - 1, t - 9, t - 1),
            ("above T", t + 1, t + 1, t + 9), ("everything", t - 1, 1, top),
        ]
        for (name, guess, low, high) in cases {
            let forecast = try #require(ThresholdForecast(threshold: guess, low: low, high: high, for: type))
            for set in Self.instructionSets {
                for chunk in [256, 4096, 16384] {
                    let backend = CPUBackend(threadCount: 2, chunkSize: chunk, instructionSet: set)
                    for blockType in [GGMLType.tq2_0, .tq1_0] {
                        let want = try #require(expected[blockType])
                        var out = [UInt8](repeating: 0xEE, count: want.count)
                        let summary = try out.withUnsafeMutableBytes {
                            try backend.quantizeBlocks(input, type: blockType, into: $0, forecast: forecast)
                        }
                        let what = "\(type) \(name) \(set) chunk \(chunk) \(blockType)"
                        #expect(summary.scale.bitPattern == reference.scale.bitPattern, "\(what): α")
                        #expect(summary.zeroCount == reference.zeroCount, "\(what): zeros")
                        #expect(out == want, "\(what): \(zip(out, want).filter { $0 != $1 }.count) bytes differ")
                    }
                }
            }
        }
    }

    @Test("a forecast made for another element type takes the two-pass path")
    func forecastOfAnotherType() throws {
        let count = 3001
        let (bytes, widened) = Self.stored(TestData.tensor(.normal, count: count, seed: 5), as: .float16)
        let input = try TensorInput(name: "w", shape: [count], elementType: .float16, copying: bytes)
        let reference = ReferenceQuantizer.quantize(widened)
        let t32 = try Self.thresholdBits(reference.scale, .float32)
        let forecast = try #require(ThresholdForecast(threshold: t32, low: t32 - 100, high: t32 + 100, for: .float32))
        try Self.expectReference(reference, .packed2Bit, count: count, "F32 forecast on F16") {
            try CPUBackend(chunkSize: 64).quantize(input, layout: .packed2Bit, into: $0, forecast: forecast)
        }
    }

    @Test("forecasts outside 1 ≤ low ≤ threshold ≤ high ≤ the type's top are refused")
    func invalidForecasts() {
        #expect(ThresholdForecast(threshold: 5, low: 6, high: 9, for: .float32) == nil)
        #expect(ThresholdForecast(threshold: 10, low: 6, high: 9, for: .float32) == nil)
        #expect(ThresholdForecast(threshold: 0, low: 0, high: 9, for: .float32) == nil)
        #expect(ThresholdForecast(threshold: 0x7FFF, low: 1, high: 0x8000, for: .float16) == nil)
        #expect(ThresholdForecast(threshold: 0x7F80_0000, low: 1, high: 0x7F80_0001, for: .float32) == nil)
        #expect(ThresholdForecast(threshold: 0x7FFF, low: 1, high: 0x7FFF, for: .bfloat16) != nil)
    }

    @Test("large tensors take the sampled one-pass path and match the reference for every distribution",
          arguments: ElementType.allCases)
    func sampledPath(_ type: ElementType) throws {
        let count = CPUBackend.forecastMinimumElements + 4096  // whole TQ blocks
        for distribution in TestData.Distribution.allCases {
            let (bytes, widened) = Self.stored(TestData.tensor(distribution, count: count, seed: 17), as: type)
            guard widened.allSatisfy(\.isFinite) else { continue }  // wide-range values overflow the 16-bit types
            let input = try TensorInput(name: "w", shape: [count], elementType: type, copying: bytes)
            let reference = ReferenceQuantizer.quantize(widened)
            if distribution == .normal {
                // The sample's band holds the real threshold, so this tensor was quantized in one pass.
                let forecast = try #require(ThresholdForecast.sampled(input))
                #expect(forecast.covers(try Self.thresholdBits(reference.scale, type)), "\(type): \(forecast)")
            }
            for set in Self.instructionSets {
                try Self.expectReference(reference, .packed2Bit, count: count, "\(type) \(distribution) \(set)") {
                    try CPUBackend(instructionSet: set).quantize(input, layout: .packed2Bit, into: $0)
                }
            }
            try Self.expectReference(reference, .int8, count: count, "\(type) \(distribution) int8") {
                try CPUBackend().quantize(input, layout: .int8, into: $0)
            }
            if count % 256 == 0 {
                let want = ReferenceBlocks.tq2_0(reference.trits, d: HalfConversion.float16Bits(reference.scale))
                var out = [UInt8](repeating: 0xEE, count: want.count)
                _ = try out.withUnsafeMutableBytes { try CPUBackend().quantizeBlocks(input, type: .tq2_0, into: $0) }
                #expect(out == want, "\(type) \(distribution) tq2_0")
            }
        }
    }

    @Test("no forecast for a sample of zeros or of non-finite values")
    func noForecast() throws {
        let count = CPUBackend.forecastMinimumElements
        let zeros = try TensorInput(name: "z", shape: [count], floats: [Float](repeating: 0, count: count))
        #expect(ThresholdForecast.sampled(zeros) == nil)
        var values = TestData.tensor(.normal, count: count, seed: 3)
        values[0] = .nan
        #expect(ThresholdForecast.sampled(try TensorInput(name: "n", shape: [count], floats: values)) == nil)
        #expect(ThresholdForecast.sampled(try TensorInput(name: "s", shape: [100], floats: [Float](repeating: 1, count: 100))) == nil)
    }

    @Test("a NaN outside the sample still stops the one-pass path with the first NaN's index")
    func nonFiniteInOnePass() throws {
        let count = CPUBackend.forecastMinimumElements + 1000
        var values = TestData.tensor(.normal, count: count, seed: 9)
        // Near the end, between the sample's pieces (checked below: the sample sees no NaN).
        let index = count - 3
        values[index] = -.infinity
        values[count - 1] = .nan
        let input = try TensorInput(name: "w", shape: [count], floats: values)
        #expect(ThresholdForecast.sampled(input) != nil)
        var output = [UInt8](repeating: 0, count: TritLayout.packed2Bit.byteCount(forTrits: count))
        #expect(throws: QuantizationError.nonFiniteValue(name: "w", index: index, bits: (-Float.infinity).bitPattern)) {
            try output.withUnsafeMutableBytes { _ = try CPUBackend().quantize(input, layout: .packed2Bit, into: $0) }
        }
    }

    @Test("every table's band scan records the elements of [low, high) in order and counts past capacity",
          arguments: [2, 4])
    func bandScan(_ width: Int) {
        var rng = SplitMix64(seed: UInt64(width))
        let top: UInt32 = width == 4 ? 0x7FFF_FFFF : 0x7FFF
        for count in Array(0...70) + [255, 256, 257, 1000, 4099] {
            // Magnitudes clustered around 1000 so narrow bands catch some; random signs.
            let bits: [UInt32] = (0..<count).map { _ in
                let m = UInt32(990 + rng.below(21)) & top
                return m | (rng.below(2) == 0 ? 0 : (width == 4 ? 0x8000_0000 : 0x8000))
            }
            var bytes = [UInt8]()
            for b in bits { for k in 0..<width { bytes.append(UInt8(truncatingIfNeeded: b >> (8 * UInt32(k)))) } }
            for (low, high) in [(UInt32(1000), UInt32(1001)), (995, 1006), (1000, 1000), (1, top), (1011, 2000)] {
                let expected = bits.enumerated().filter { (low..<Swift.max(low, high)).contains($0.element & top) }
                for capacity in [0, 3, count + 1] {
                    for (name, table) in CoreKernelTableTests.tables {
                        var entries = [UInt32](repeating: 0xDEAD_BEEF, count: 2 * capacity + 2)
                        let found = bytes.withUnsafeBytes { source in
                            entries.withUnsafeMutableBufferPointer {
                                table.pointee.band_scan(source.baseAddress, count, Int32(width), low, high, $0.baseAddress, capacity)
                            }
                        }
                        #expect(found == expected.count, "\(name) width \(width) count \(count) [\(low), \(high))")
                        let kept = Swift.min(capacity, expected.count)
                        for (j, e) in expected.prefix(kept).enumerated() {
                            #expect(entries[2 * j] == UInt32(e.offset) && entries[2 * j + 1] == e.element,
                                    "\(name) width \(width) count \(count) entry \(j)")
                        }
                        #expect(entries[2 * kept] == 0xDEAD_BEEF, "\(name): wrote past capacity \(capacity)")
                    }
                }
            }
        }
    }
}
