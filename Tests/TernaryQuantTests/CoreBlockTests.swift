import Testing
@_spi(Testing) import TernaryQuantCore
import TernaryQuant
import TernaryQuantTestSupport
import TernaryQuantBench

/// GGUF ternary blocks: the fast encoder (`TernaryBlocks.encode`, `CPUBackend.quantizeBlocks`) against the
/// slow encoders written from the format text.
@Suite("GGUF TQ1_0/TQ2_0 block encoding")
struct CoreBlockTests {
    static func randomTrits(_ count: Int, seed: UInt64, zeroBias: Bool = false) -> [Int8] {
        var rng = SplitMix64(seed: seed)
        return (0..<count).map { _ in
            let r = rng.next() % (zeroBias ? 7 : 3)
            return r == 0 ? -1 : (r == 1 ? 1 : 0)
        }
    }

    static func reference(_ type: GGMLType, _ trits: [Int8], d: UInt16) -> [UInt8] {
        type == .tq2_0 ? ReferenceBlocks.tq2_0(trits, d: d) : ReferenceBlocks.tq1_0(trits, d: d)
    }

    /// Four blocks whose 256 packed bytes are every byte value once, so each 2-bit field meets every
    /// neighbour, and the reserved code 11 encodes as a zero trit.
    @Test("the packed encoder reads every byte value, and the reserved code 11 as 0", arguments: [GGMLType.tq2_0, .tq1_0])
    func everyPackedByteValue(_ type: GGMLType) {
        for shift in [0, 85, 170] {
            let packed = (0..<256).map { UInt8(truncatingIfNeeded: $0 * 167 + shift) }  // a permutation of 0...255
            let trits = packed.flatMap { byte in
                (0..<4).map { k -> Int8 in
                    let code = (byte >> UInt8(2 * k)) & 3
                    return code == 1 ? 1 : (code == 2 ? -1 : 0)
                }
            }
            let encoded = packed.withUnsafeBytes { TernaryBlocks.encode(type, packed: $0, firstBlock: 0, blockCount: 4, d: 0x2E66) }
            #expect(encoded == Self.reference(type, trits, d: 0x2E66), "\(type) shift \(shift)")
        }
    }

    @Test("TernaryBlocks.encode equals the reference for random trits, every offset", arguments: [GGMLType.tq2_0, .tq1_0])
    func encodeMatchesReference(_ type: GGMLType) throws {
        // 1029 blocks: more than one work item of the threaded encoder, and a partial last one.
        let blocks = 1029
        let trits = Self.randomTrits(blocks * 256, seed: 3)
        let packed = ReferenceQuantizer.pack(trits)
        let all = packed.withUnsafeBytes { TernaryBlocks.encode(type, packed: $0, firstBlock: 0, blockCount: blocks, d: 0x2E66) }
        #expect(all == Self.reference(type, trits, d: 0x2E66))
        for (first, count) in [(0, 1), (5, 3), (1000, 29), (1028, 1)] {
            let part = packed.withUnsafeBytes { TernaryBlocks.encode(type, packed: $0, firstBlock: first, blockCount: count, d: 0x1234) }
            #expect(part == Self.reference(type, Array(trits[(first * 256)..<((first + count) * 256)]), d: 0x1234))
        }
        // Every base-3 digit combination of one TQ1_0 byte appears: all 3^5 patterns in the first 243 bytes' lanes.
        var exhaustive = [Int8](repeating: 0, count: 256 * 243)
        for q in 0..<243 {
            var v = q
            for n in stride(from: 4, through: 0, by: -1) {
                exhaustive[q * 256 + 32 * n] = Int8(v % 3) - 1
                exhaustive[q * 256 + 160 + 16 * n] = Int8(v % 3) - 1
                exhaustive[q * 256 + 240 + 4 * Swift.min(n, 3)] = Int8(v % 3) - 1
                v /= 3
            }
        }
        let exhaustivePacked = ReferenceQuantizer.pack(exhaustive)
        let encoded = exhaustivePacked.withUnsafeBytes { TernaryBlocks.encode(type, packed: $0, firstBlock: 0, blockCount: 243, d: 0x3C00) }
        #expect(encoded == Self.reference(type, exhaustive, d: 0x3C00))
        // The same trits through every set of CPU loops' fused encoder (w = t: α = mean|t| ≤ 1 keeps every
        // trit), so each byte value 0…242 of every base-3 field passes through each encoder.
        let weights = exhaustive.map { Float($0) }
        let d = HalfConversion.float16Bits(ReferenceQuantizer.quantize(weights).scale)
        for instructionSet in CPUInstructionSet.allCases {
            var out = [UInt8](repeating: 0xEE, count: 243 * type.blockLayout.bytes)
            _ = try weights.withUnsafeBytes { raw in
                try out.withUnsafeMutableBytes {
                    try CPUBackend(instructionSet: instructionSet).quantizeBlocks(
                        TensorInput(name: "w", shape: [weights.count], elementType: .float32, bytes: raw), type: type, into: $0)
                }
            }
            #expect(out == Self.reference(type, exhaustive, d: d), "\(type) \(instructionSet)")
        }
    }

    @Test("decode inverts encode")
    func decodeRoundTrip() {
        let trits = Self.randomTrits(256 * 4, seed: 11, zeroBias: true)
        let packed = ReferenceQuantizer.pack(trits)
        for type in [GGMLType.tq2_0, .tq1_0] {
            let encoded = packed.withUnsafeBytes { TernaryBlocks.encode(type, packed: $0, firstBlock: 0, blockCount: 4, d: 0xABCD) }
            let size = type.blockLayout.bytes
            for b in 0..<4 {
                let (t, d) = TernaryBlocks.decode(type, block: Array(encoded[(b * size)..<((b + 1) * size)]))
                #expect(t == trits[(b * 256)..<((b + 1) * 256)].map(Int.init))
                #expect(d == 0xABCD)
            }
        }
    }

    @Test("short, negative and overflowing requests never trap")
    func badRequests() {
        let trits = Self.randomTrits(256, seed: 2)
        let packed = ReferenceQuantizer.pack(trits)
        packed.withUnsafeBytes { raw in
            #expect(TernaryBlocks.encode(.tq2_0, packed: raw, firstBlock: -1, blockCount: 1, d: 0).isEmpty)
            #expect(TernaryBlocks.encode(.tq2_0, packed: raw, firstBlock: 0, blockCount: -5, d: 0).isEmpty)
            #expect(TernaryBlocks.encode(.tq2_0, packed: raw, firstBlock: Int.max / 2, blockCount: Int.max / 2, d: 0).isEmpty)
            #expect(TernaryBlocks.encode(.f32, packed: raw, firstBlock: 0, blockCount: 1, d: 0).isEmpty)
            // Two blocks from one block of data: the missing trits encode as 0.
            let two = TernaryBlocks.encode(.tq2_0, packed: raw, firstBlock: 0, blockCount: 2, d: 7)
            #expect(two == ReferenceBlocks.tq2_0(trits + [Int8](repeating: 0, count: 256), d: 7))
            let beyond = TernaryBlocks.encode(.tq1_0, packed: raw, firstBlock: 3, blockCount: 1, d: 7)
            #expect(beyond == ReferenceBlocks.tq1_0([Int8](repeating: 0, count: 256), d: 7))
        }
    }

    @Test("CPUBackend.quantizeBlocks equals reference trits in reference blocks, every dtype",
          arguments: ElementType.allCases)
    func fusedBlocks(_ type: ElementType) throws {
        let n = 256 * 37
        let weights = TestData.tensor(.normal, count: n, seed: 8)
        let bytes: [UInt8] = weights.flatMap { w -> [UInt8] in
            switch type {
            case .float32: return withUnsafeBytes(of: w.bitPattern.littleEndian, Array.init)
            case .float16: return withUnsafeBytes(of: HalfConversion.float16Bits(w).littleEndian, Array.init)
            case .bfloat16: return withUnsafeBytes(of: UInt16(w.bitPattern >> 16).littleEndian, Array.init)
            }
        }
        let reference = ReferenceQuantizer.quantize(try bytes.withUnsafeBytes { raw in
            let input = try TensorInput(name: "w", shape: [n], elementType: type, bytes: raw)
            return (0..<n).map { Float(bitPattern: input.float32Bits(at: $0)) }
        })
        let d = HalfConversion.float16Bits(reference.scale)
        for backend in [CPUBackend(threadCount: 3, chunkSize: 320), CPUBackend(), CPUBackend(instructionSet: .avx2), CPUBackend(instructionSet: .portable)] {
            for blockType in [GGMLType.tq2_0, .tq1_0] {
                var out = [UInt8](repeating: 0xEE, count: n / 256 * blockType.blockLayout.bytes)
                let summary = try bytes.withUnsafeBytes { raw in
                    try out.withUnsafeMutableBytes {
                        try backend.quantizeBlocks(TensorInput(name: "w", shape: [n], elementType: type, bytes: raw), type: blockType, into: $0)
                    }
                }
                #expect(summary.scale.bitPattern == reference.scale.bitPattern)
                #expect(summary.zeroCount == reference.zeroCount)
                #expect(out == Self.reference(blockType, reference.trits, d: d), "\(type) \(blockType) \(backend.deviceDescription)")
            }
        }
    }

    @Test("quantizeBlocks refuses partial blocks, other types and short outputs")
    func fusedBlockErrors() throws {
        let weights = [Float](repeating: 0.5, count: 300)
        try weights.withUnsafeBufferPointer { w in
            let input = try TensorInput(name: "w", shape: [300], floats: w)
            var out = [UInt8](repeating: 0, count: 1000)
            try out.withUnsafeMutableBytes { raw in
                #expect(throws: QuantizationError.notWholeBlocks(name: "w", elementCount: 300, blockSize: 256)) {
                    try CPUBackend().quantizeBlocks(input, type: .tq2_0, into: raw)
                }
                let whole = try TensorInput(name: "w", shape: [256], floats: UnsafeBufferPointer(rebasing: w[0..<256]))
                #expect(throws: QuantizationError.unsupportedBlockType(rawType: 8)) {
                    try CPUBackend().quantizeBlocks(whole, type: .q8_0, into: raw)
                }
                #expect(throws: QuantizationError.byteCountMismatch(name: "w", expected: 66, actual: 10)) {
                    try CPUBackend().quantizeBlocks(whole, type: .tq2_0, into: UnsafeMutableRawBufferPointer(rebasing: raw[0..<10]))
                }
            }
        }
    }
}
