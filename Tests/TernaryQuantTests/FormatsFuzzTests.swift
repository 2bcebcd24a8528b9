import Foundation
import Testing
import TernaryQuant
import TernaryQuantTestSupport
import TernaryQuantBench
@testable import TernaryQuantCore
@testable import TernaryQuantFormats
@testable import TernaryQuantOpenCL
@testable import TernaryQuantPipeline

/// Mutation fuzzing of every reader: truncations, byte flips, inserted/deleted runs and header edits
/// must all end in a clean thrown error or a valid parse, never a crash or hang.
/// Iterations per corpus: `TERNQ_FUZZ_ITERATIONS` (default 1500; CI keeps the default, a few seconds).
@Suite("Formats: fuzzing")
struct FormatsFuzzTests {
    static let iterations = Int(ProcessInfo.processInfo.environment["TERNQ_FUZZ_ITERATIONS"] ?? "") ?? 1500

    /// The project's deterministic generator (`below` is in TernaryQuantTestSupport/Random.swift).
    typealias Rng = SplitMix64

    static func mutate(_ seed: [UInt8], _ rng: inout Rng, headerEnd: Int) -> [UInt8] {
        var b = seed
        let focus = max(1, min(headerEnd, b.count))
        for _ in 0..<(1 + rng.below(4)) {
            switch rng.below(7) {
            case 0: b = Array(b.prefix(rng.below(b.count + 1)))
            case 1 where !b.isEmpty: b[rng.below(min(focus, b.count))] ^= UInt8(1 << rng.below(8))
            case 2 where !b.isEmpty: b[rng.below(min(focus, b.count))] = UInt8(truncatingIfNeeded: rng.next())
            case 3:
                let at = rng.below(min(focus, b.count) + 1)
                b.insert(contentsOf: (0..<(1 + rng.below(8))).map { _ in UInt8(truncatingIfNeeded: rng.next()) }, at: at)
            case 4 where b.count > 1:
                let at = rng.below(min(focus, b.count))
                b.removeSubrange(at..<min(b.count, at + 1 + rng.below(8)))
            case 5 where b.count >= 8:
                // Interesting integers in a random aligned 8-byte slot.
                let values: [UInt64] = [0, 1, 0xFF, 0x7FFF_FFFF_FFFF_FFFF, UInt64.max, 100_000_001, UInt64(b.count), 1 << 62]
                let at = rng.below(b.count / 8) * 8
                withUnsafeBytes(of: values[rng.below(values.count)].littleEndian) { for i in 0..<8 { b[at + i] = $0[i] } }
            case 6 where !b.isEmpty:
                // Swap an ASCII digit or structural character for another in the JSON header region.
                let alphabet = Array("0123456789{}[]\",:-e.".utf8)
                b[rng.below(min(focus, b.count))] = alphabet[rng.below(alphabet.count)]
            default: break
            }
        }
        return b
    }

    static func run(seed: [UInt8], headerEnd: Int, salt: UInt64, _ parse: ([UInt8]) throws -> Void) -> (ok: Int, rejected: Int) {
        var rng = Rng(state: salt)
        var ok = 0, rejected = 0
        for _ in 0..<iterations {
            let input = mutate(seed, &rng, headerEnd: headerEnd)
            do { try parse(input); ok += 1 } catch { rejected += 1 }
        }
        return (ok, rejected)
    }

    @Test func safetensorsReaderSurvivesMutations() throws {
        let seed = try TinyModel.bytes()
        let headerEnd = 8 + Int(seed.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        let result = Self.run(seed: seed, headerEnd: headerEnd, salt: 1) { bytes in
            let f = try SafetensorsBytes.open(bytes)
            for t in f.tensors { _ = f.data(for: t).count }  // every range must be in bounds
        }
        #expect(result.rejected > Self.iterations / 2)
    }

    @Test func ternReaderSurvivesMutations() throws {
        let seed = TernFormat.encode(try FormatsTernTests.sampleModel())
        let result = Self.run(seed: seed, headerEnd: seed.count, salt: 2) { bytes in
            _ = try bytes.withUnsafeBytes { try TernFormat.decode($0, file: "fuzz.tern") }
        }
        #expect(result.rejected > 0)
    }

    /// Checks everything a valid parse promises: tensors sized by their type, in order, inside the file and
    /// not overlapping; every KV re-encoding to the bytes it came from.
    static func checkGGUF(_ bytes: [UInt8]) throws {
        let f = try GGUFFile(storage: ByteStorage(copying: bytes, name: "fuzz.gguf"))
        var end = 0
        for t in f.tensors {
            #expect(t.byteCount == t.type.byteCount(dimensions: t.dimensions))
            #expect(t.offset >= end && t.offset % f.alignment == 0)
            #expect(f.data(for: t).count == t.byteCount)
            #expect(f.dataStart + t.offset + t.byteCount <= bytes.count)
            end = t.offset + t.byteCount
        }
        #expect(GGUFTestSupport.kvsReencodeIdentically(f))
    }

    @Test func ggufReaderSurvivesMutations() throws {
        let sink = MemorySink()
        _ = try CheckpointQuantizer(backend: CPUBackend()).write(try TinyModel.checkpoint(), to: sink, outputName: "fuzz.gguf",
                                                                  options: QuantizationOptions(format: .gguf))
        let seed = sink.bytes
        let headerEnd = try GGUFFile(storage: ByteStorage(copying: seed, name: "seed")).dataStart
        let result = Self.run(seed: seed, headerEnd: headerEnd, salt: 3) { try Self.checkGGUF($0) }
        #expect(result.rejected > 0 && result.ok > 0)
    }

    /// A seed with every KV type, string and nested arrays, a non-default alignment and tensors of several
    /// block sizes, so mutations reach every branch of the reader.
    @Test func ggufReaderSurvivesMutationsOfEveryKVType() throws {
        let metadata: [(String, GGUFValue)] = [
            ("general.alignment", .uint32(64)), ("a.u8", .uint8(7)), ("a.i8", .int8(-7)), ("a.u16", .uint16(300)),
            ("a.i16", .int16(-300)), ("a.u32", .uint32(70000)), ("a.i32", .int32(-70000)), ("a.f32", .float32(0.5)),
            ("a.bool", .bool(true)), ("a.str", .string("héllo")), ("a.u64", .uint64(1 << 40)), ("a.i64", .int64(-1)),
            ("a.f64", .float64(2.5)), ("a.strs", .array(8, [.string("x"), .string(""), .string("yz")])),
            ("a.ints", .array(5, [.int32(1), .int32(-2)])), ("a.nested", .array(9, [.array(0, [.uint8(1)]), .array(8, [.string("q")])])),
        ]
        let tensors: [(String, [Int], GGMLType, Int)] = [("f", [3, 2], .f32, 24), ("q", [32], .q8_0, 34), ("t", [256], .tq2_0, 66), ("h", [5], .f16, 10)]
        // Built by hand (the writer always aligns to 32), with offsets and padding for an alignment of 64.
        var r = RawGGUF.start(tensors: UInt64(tensors.count), kvs: UInt64(metadata.count))
        for (k, v) in metadata { r.raw(GGUFFormat.encode(GGUFMetadataEntry(key: k, value: v))) }
        var offset = 0
        for t in tensors {
            r.tensor(t.0, t.1.map(UInt64.init), type: t.2.rawValue, offset: UInt64(offset))
            offset += (t.3 + 63) / 64 * 64
        }
        r.pad(64)
        for (i, t) in tensors.enumerated() { r.pad(64); r.raw((0..<t.3).map { UInt8(truncatingIfNeeded: $0 &+ i) }) }
        let seed = r.bytes
        try Self.checkGGUF(seed)
        let headerEnd = try GGUFFile(storage: ByteStorage(copying: seed, name: "seed")).dataStart
        let result = Self.run(seed: seed, headerEnd: headerEnd, salt: 5) { try Self.checkGGUF($0) }
        #expect(result.rejected > 0 && result.ok > 0)
    }

    @Test func jsonParserSurvivesMutations() {
        let seed = Array(#"{"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},"__metadata__":{"k":"v\u00e9"},"b":[true,false,null,-1.5e-3]}"#.utf8)
        _ = Self.run(seed: seed, headerEnd: seed.count, salt: 4) { bytes in _ = try StrictJSONParser.parse(bytes) }
    }
}
