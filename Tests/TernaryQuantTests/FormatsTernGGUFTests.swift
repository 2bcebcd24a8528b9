import Foundation
import Testing
import TernaryQuant
import TernaryQuantTestSupport
@testable import TernaryQuantCore
@testable import TernaryQuantFormats
@testable import TernaryQuantOpenCL
@testable import TernaryQuantPipeline

@Suite("Formats: .tern")
struct FormatsTernTests {
    static func sampleModel() throws -> TernModel {
        let dense = TernLayer(name: "l0.weight", scale: 0.25, storage: .dense(rows: 2, cols: 3, packed: [0x46, 0x09]),
                              sparsity: 1.0 / 3.0, originalDType: "BF16")
        let sparseStorage = try TernFormat.storage(packed: TritPacking.pack([.tend, .affirm, .tend, .tend, .reject, .tend, .tend, .tend]),
                                                   shape: [2, 4], sparsity: 0.75, csrThreshold: 0.75)
        let sparse = TernLayer(name: "l1.wéight", scale: 3.5, storage: sparseStorage, sparsity: 0.75, originalDType: "F32")
        return TernModel(sourceModel: "/models/x", layers: [dense, sparse], architecture: "llama", vocabSize: 32000,
                         hiddenSize: 4096, numLayers: 32)
    }

    @Test func bincodeLayoutIsByteExact() throws {
        let bytes = TernFormat.encode(TernModel(sourceModel: "m", layers: [
            TernLayer(name: "w", scale: 1, storage: .dense(rows: 1, cols: 2, packed: [0x09]), sparsity: 0, originalDType: "F32"),
        ], architecture: "a", vocabSize: 1, hiddenSize: 2, numLayers: 3))
        var e: [UInt8] = []
        func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { e += $0 } }
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { e += $0 } }
        u64(1); e += Array("m".utf8); u32(1); u64(1)
        u64(1); e += Array("w".utf8); u32(Float(1).bitPattern); u32(0); u64(1); u64(2); u64(1); e += [0x09]
        u64(0); u64(3); e += Array("F32".utf8)
        u64(1); e += Array("a".utf8); u64(1); u64(2); u64(3)
        #expect(bytes == e)
    }

    @Test func roundTripChecksEveryField() throws {
        let model = try Self.sampleModel()
        guard case .sparse(let s) = model.layers[1].storage else { Issue.record("expected CSR"); return }
        #expect(s.values == [1, -1])
        #expect(s.colIdx == [1, 0])
        #expect(s.rowPtr == [0, 1, 2])
        #expect(s.nnz == 2)
        let bytes = TernFormat.encode(model)
        let back = try bytes.withUnsafeBytes { try TernFormat.decode($0, file: "x.tern") }
        #expect(back == model)
        #expect(back.sourceModel == "/models/x" && back.formatVersion == 1 && back.architecture == "llama")
        #expect(back.vocabSize == 32000 && back.hiddenSize == 4096 && back.numLayers == 32)
        #expect(back.layers.map(\.name) == ["l0.weight", "l1.wéight"])
        #expect(back.layers.map(\.scale) == [0.25, 3.5])
        #expect(back.layers.map(\.originalDType) == ["BF16", "F32"])
        #expect(back.layers[0].storage == .dense(rows: 2, cols: 3, packed: [0x46, 0x09]))
        #expect(back.layers[1].storage == model.layers[1].storage)
    }

    @Test func rowsColsRuleAndThreshold() throws {
        #expect(TernFormat.rowsCols([]) == (1, 1))
        #expect(TernFormat.rowsCols([7]) == (1, 7))
        #expect(TernFormat.rowsCols([3, 5]) == (3, 5))
        #expect(TernFormat.rowsCols([2, 3, 4]) == (2, 12))
        let packed = TritPacking.pack([.affirm, .tend, .tend, .tend])
        #expect(try TernFormat.storage(packed: packed, shape: [4], sparsity: 0.75, csrThreshold: 0.76).kind == "dense")
        #expect(try TernFormat.storage(packed: packed, shape: [4], sparsity: 0.75, csrThreshold: 0.75).kind == "sparse")
    }

    @Test func rejectsInconsistentFiles() throws {
        let good = TernFormat.encode(try Self.sampleModel())
        for cut in [0, 5, 20, good.count - 1] {
            #expect(throws: FormatError.self) { try Array(good.prefix(cut)).withUnsafeBytes { try TernFormat.decode($0, file: "t") } }
        }
        #expect(throws: FormatError.self) { try (good + [0]).withUnsafeBytes { try TernFormat.decode($0, file: "t") } }
        let badDense = TernFormat.encode(TernModel(sourceModel: "", layers: [
            TernLayer(name: "w", scale: 1, storage: .dense(rows: 3, cols: 3, packed: [0]), sparsity: 0, originalDType: "F32")],
            architecture: "", vocabSize: 0, hiddenSize: 0, numLayers: 0))
        #expect(throws: FormatError.self) { try badDense.withUnsafeBytes { try TernFormat.decode($0, file: "t") } }
        let badCSR = TernFormat.encode(TernModel(sourceModel: "", layers: [
            TernLayer(name: "w", scale: 1, storage: .sparse(TernSparseIndex(rows: 1, cols: 2, values: [2], colIdx: [0], rowPtr: [0, 1], nnz: 1, sparsity: 0.5)),
                      sparsity: 0.5, originalDType: "F32")], architecture: "", vocabSize: 0, hiddenSize: 0, numLayers: 0))
        #expect(throws: FormatError.self) { try badCSR.withUnsafeBytes { try TernFormat.decode($0, file: "t") } }
    }
}

@Suite("Formats: GGUF")
struct FormatsGGUFTests {
    @Test func halfConversionRoundsToNearestEven() {
        #expect(HalfFloat.bits(from: 1.0) == 0x3C00)
        #expect(HalfFloat.bits(from: -2.0) == 0xC000)
        #expect(HalfFloat.bits(from: 65504) == 0x7BFF)
        #expect(HalfFloat.bits(from: 65520) == 0x7C00)  // rounds up to Inf
        #expect(HalfFloat.bits(from: 65519.99) == 0x7BFF)
        #expect(HalfFloat.bits(from: 1 + 0x1p-11) == 0x3C00)  // tie to even
        #expect(HalfFloat.bits(from: 1 + 3 * 0x1p-11) == 0x3C02)  // tie to even (up)
        #expect(HalfFloat.bits(from: 0x1p-24) == 0x0001)
        #expect(HalfFloat.bits(from: 0x1p-25) == 0x0000)  // tie to even (zero)
        #expect(HalfFloat.bits(from: 0x1.8p-25) == 0x0001)
        #expect(HalfFloat.bits(from: 0x1.ffcp-15) == 0x0400)  // rounds up to the smallest normal
        #expect(HalfFloat.bits(from: .infinity) == 0x7C00)
        #expect(HalfFloat.bits(from: .nan) & 0x7E00 == 0x7E00)
        #if arch(x86_64) || arch(arm64)
        // Exhaustive over a stride of float32 patterns against the hardware/stdlib conversion.
        var pattern: UInt32 = 0
        var mismatches = 0
        while pattern < 0x7F80_0000 {
            let x = Float(bitPattern: pattern)
            if HalfFloat.bits(from: x) != Float16(x).bitPattern { mismatches += 1 }
            if HalfFloat.bits(from: -x) != Float16(-x).bitPattern { mismatches += 1 }
            pattern &+= 997
        }
        #expect(mismatches == 0)
        #endif
    }

    @Test(arguments: [GGMLType.tq2_0, .tq1_0])
    func ternaryBlocksRoundTrip(type: GGMLType) {
        var state: UInt64 = 12345
        var trits: [Trit] = []
        for _ in 0..<(3 * 256) {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            trits.append([Trit.reject, .tend, .affirm][Int(state >> 33) % 3])
        }
        let packed = TritPacking.pack(trits)
        let encoded = packed.withUnsafeBytes { TernaryBlocks.encode(type, packed: $0, firstBlock: 0, blockCount: 3, d: 0x2C00) }
        #expect(encoded.count == 3 * type.blockLayout.bytes)
        for b in 0..<3 {
            let block = Array(encoded[(b * type.blockLayout.bytes)..<((b + 1) * type.blockLayout.bytes)])
            let (t, d) = TernaryBlocks.decode(type, block: block)
            #expect(d == 0x2C00)
            #expect(t == trits[(b * 256)..<((b + 1) * 256)].map { Int($0.rawValue) })
        }
    }

    @Test func tq2BlockLayoutMatchesSpec() {
        // Element k sits in byte 32*(k/128) + k%32 at shift 2*((k%128)/32), code t+1.
        var trits = [Trit](repeating: .reject, count: 256)
        trits[0] = .affirm; trits[32] = .tend; trits[200] = .affirm
        let packed = TritPacking.pack(trits)
        let block = packed.withUnsafeBytes { TernaryBlocks.encode(.tq2_0, packed: $0, firstBlock: 0, blockCount: 1, d: 0x1234) }
        #expect(block[0] == 0b0000_0110)  // k=0 code 2 at shift 0, k=32 code 1 at shift 2
        #expect(block[32 + 200 % 32] == UInt8(2) << 4)  // k=200: byte 32+8, shift 2*((200-128)/32) = 4
        #expect(block[64] == 0x34 && block[65] == 0x12)
    }

    @Test func headerRoundTripsThroughTheReader() throws {
        let (header, infos) = GGUFFormat.header(
            metadata: [("general.architecture", .string("llama")), ("general.alignment", .uint32(32)),
                       ("x.list", .array(4, [.uint32(1), .uint32(2)])), ("x.f", .float64(0.5))],
            tensors: [("a", [256, 2], .tq2_0, 132), ("b", [3], .f32, 12), ("c", [256], .tq1_0, 54)])
        #expect(header.count % 32 == 0)
        #expect(infos.map(\.offset) == [0, 160, 192])
        let file = header + [UInt8](repeating: 0, count: 192 + 54)
        let c = try file.withUnsafeBytes { try GGUFFormat.decode($0, file: "x.gguf") }
        #expect(c.version == 3)
        #expect(c.tensors == infos)
        #expect(c.value("x.list") == .array(4, [.uint32(1), .uint32(2)]))
        #expect(c.dataStart == header.count)
        #expect(throws: FormatError.self) { try Array(file.dropLast()).withUnsafeBytes { try GGUFFormat.decode($0, file: "x.gguf") } }
    }
}

@Suite("Formats: atomic files")
struct FormatsAtomicFileTests {
    @Test func commitReplacesOnlyAtTheEndAndFailureLeavesNothing() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/out.bin"
        let f = try AtomicFile(path: path)
        try f.write([1, 2, 3])
        #expect(!FileManager.default.fileExists(atPath: path))
        try f.commit()
        #expect(FileManager.default.contents(atPath: path) == Data([1, 2, 3]))
        #expect(throws: FormatError.self) { try AtomicFile(path: path) }

        // A write failure (injected by the test-only FailingSink around the file) then abort: nothing new.
        let g = try AtomicFile(path: path, overwrite: true)
        let failing = FailingSink(g, failAfterBytes: 4)
        try failing.write(bytes: [9, 9])
        #expect(throws: FormatError.self) { try failing.write(bytes: [9, 9, 9]) }
        g.abort()
        #expect(FileManager.default.contents(atPath: path) == Data([1, 2, 3]))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["out.bin"])

        do {
            let h = try AtomicFile(path: dir + "/dropped.bin")
            try h.write([1])
        }  // deinit without commit
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["out.bin"])
        #expect(throws: FormatError.self) { try AtomicFile(path: dir + "/no/such/dir/x") }
    }
}
