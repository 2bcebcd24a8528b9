import Foundation
import Testing
@testable import TernaryQuant

/// Mutation fuzzing of every reader: truncations, byte flips, inserted/deleted runs and header edits
/// must all end in a clean thrown error or a valid parse, never a crash or hang.
/// Iterations per corpus: `TERNQ_FUZZ_ITERATIONS` (default 1500; CI keeps the default, a few seconds).
@Suite("Formats: fuzzing")
struct FormatsFuzzTests {
    static let iterations = Int(ProcessInfo.processInfo.environment["TERNQ_FUZZ_ITERATIONS"] ?? "") ?? 1500

    /// The project's deterministic generator with a bounded draw.
    struct Rng {
        var generator: SplitMix64
        init(state: UInt64) { generator = SplitMix64(seed: state) }
        mutating func next() -> UInt64 { generator.next() }
        mutating func below(_ n: Int) -> Int { n <= 0 ? 0 : Int(next() % UInt64(n)) }
    }

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

    @Test func ggufReaderSurvivesMutations() throws {
        let sink = MemorySink()
        _ = try CheckpointQuantizer(backend: CPUBackend()).write(try TinyModel.checkpoint(), to: sink, outputName: "fuzz.gguf",
                                                                  options: QuantizationOptions(format: .gguf))
        let seed = sink.bytes
        let headerEnd = try seed.withUnsafeBytes { try GGUFFormat.decode($0, file: "seed").dataStart }
        let result = Self.run(seed: seed, headerEnd: headerEnd, salt: 3) { bytes in
            let c = try bytes.withUnsafeBytes { try GGUFFormat.decode($0, file: "fuzz.gguf") }
            for t in c.tensors { #expect(c.dataStart + t.offset + t.byteCount <= bytes.count) }
        }
        #expect(result.rejected > 0)
    }

    @Test func jsonParserSurvivesMutations() {
        let seed = Array(#"{"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},"__metadata__":{"k":"v\u00e9"},"b":[true,false,null,-1.5e-3]}"#.utf8)
        _ = Self.run(seed: seed, headerEnd: seed.count, salt: 4) { bytes in _ = try StrictJSONParser.parse(bytes) }
    }
}
