#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Testing
import TernaryQuant
import TernaryQuantTestSupport
@testable import TernaryQuantCore
@testable import TernaryQuantFormats
@testable import TernaryQuantOpenCL
@testable import TernaryQuantPipeline

/// A `ByteSink` that passes bytes on to `base` until `failAfterBytes` would be exceeded, then throws a
/// write error (the fault-injection seam for tests; release code has no hook).
final class FailingSink: ByteSink {
    let base: any ByteSink
    let limit: Int
    private(set) var passed = 0

    init(_ base: any ByteSink, failAfterBytes: Int) {
        self.base = base
        self.limit = failAfterBytes
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard passed + bytes.count <= limit else {
            throw FormatError.io(file: "<failing sink>", reason: "injected write failure after \(limit) bytes")
        }
        passed += bytes.count
        try base.write(bytes)
    }
}

/// The pid of a process that has exited and been reaped (so `kill(pid, 0)` gives ESRCH).
func deadProcessID() throws -> pid_t {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/bin/sh")
    p.arguments = ["-c", "exit 0"]
    try p.run()
    p.waitUntilExit()
    return p.processIdentifier
}

/// Writes a safetensors file of `count` F32 tensors `blk.<i>.weight` of shape [rows, 256] with
/// deterministic, non-zero, finite values; returns its path.
func writeCheckpoint(in dir: String, name: String = "model.safetensors", count: Int, rows: Int) throws -> String {
    let entries = (0..<count).map { SafetensorsWriter.Entry(name: "blk.\($0).weight", dtype: .f32, shape: [rows, 256]) }
    let sink = MemorySink()
    let w = try SafetensorsWriter(sink: sink, entries: entries)
    for t in 0..<count {
        var values = [Float](repeating: 0, count: rows * 256)
        for i in 0..<values.count {
            let k: Int = (i &* 7919 &+ t &* 31) % 29 - 14
            values[i] = Float(k) * 0.125 + 0.0625
        }
        try w.write(bytes: SafetensorsBytes.floats(values))
    }
    try w.finish()
    let path = dir + "/" + name
    try Data(sink.bytes).write(to: URL(fileURLWithPath: path))
    return path
}

@Suite("Hardening: atomic publish, stale temporaries, fault seam")
struct HardeningAtomicFileTests {
    func names(_ dir: String) throws -> [String] { try FileManager.default.contentsOfDirectory(atPath: dir).sorted() }

    @Test func secondWriterWithoutForceFailsAndKeepsTheFirstOutput() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/out.bin"
        // Both start while the output does not exist yet (two concurrent runs).
        let a = try AtomicFile(path: path)
        let b = try AtomicFile(path: path)
        try a.write([1, 1, 1])
        try b.write([2, 2])
        try a.commit()
        #expect(throws: FormatError.self) { try b.commit() }
        do {
            try b.commit()
        } catch let error as FormatError {
            #expect(error.description.contains("already exists") && error.description.contains("out.bin"))
        }
        #expect(FileManager.default.contents(atPath: path) == Data([1, 1, 1]))
        #expect(try names(dir) == ["out.bin"])
        // With overwrite the second one replaces the first, as --force asks.
        let c = try AtomicFile(path: path, overwrite: true)
        try c.write([3])
        try c.commit()
        #expect(FileManager.default.contents(atPath: path) == Data([3]))
        #expect(try names(dir) == ["out.bin"])
    }

    @Test func temporaryNameParsing() {
        #expect(AtomicFile.temporaryFileOwner(".out.gguf.tmp-1234-abc09z") == 1234)
        #expect(AtomicFile.temporaryFileOwner(".a.tmp-b.tmp-77-x") == 77)
        for name in ["out.gguf.tmp-1234-abc", ".tmp-1-a", ".out.tmp-12a-abc", ".out.tmp-12-", ".out.tmp--abc",
                     ".out.tmp-12-ABC", ".out.tmp-12-a-b", ".out.tmp-0-a", ".out.tmp-99999999999-a", ".out.gguf"] {
            #expect(AtomicFile.temporaryFileOwner(name) == nil, "\(name)")
        }
    }

    @Test func staleTemporariesOfDeadProcessesAreRemovedOthersKept() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let dead = try deadProcessID()
        #expect(kill(dead, 0) != 0 && errno == ESRCH)
        let live = Process()
        live.executableURL = URL(fileURLWithPath: "/bin/sleep")
        live.arguments = ["30"]
        try live.run()
        defer { kill(live.processIdentifier, SIGKILL); live.waitUntilExit() }
        let stale = ".model.tern.tmp-\(dead)-k3j4"
        let staleOther = ".other.gguf.tmp-\(dead)-zz"
        let alive = ".model.tern.tmp-\(live.processIdentifier)-k3j4"
        let mine = ".model.tern.tmp-\(getpid())-aaaa"
        let unrelated = ["model.tern", ".model.tern.tmp-\(dead)-UPPER", "notes.tmp-\(dead)-abc"]
        for n in [stale, staleOther, alive, mine] + unrelated {
            try Data([7]).write(to: URL(fileURLWithPath: dir + "/" + n))
        }
        try FileManager.default.createDirectory(atPath: dir + "/.dir.tmp-\(dead)-abc", withIntermediateDirectories: false)
        let f = try AtomicFile(path: dir + "/new.bin")
        let left = try names(dir)
        #expect(!left.contains(stale) && !left.contains(staleOther))
        for n in [alive, mine, ".dir.tmp-\(dead)-abc"] + unrelated { #expect(left.contains(n), "\(n) must stay") }
        #expect(left.contains((f.temporaryPath as NSString).lastPathComponent))
        f.abort()
    }

    @Test func injectedWriteFailureInThePipelineLeavesNothing() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let checkpoint = try TinyModel.checkpoint()
        for format in [OutputFormat.tern, .gguf, .safetensors] {
            let path = dir + "/out.\(format.rawValue)"
            try Data("keep me".utf8).write(to: URL(fileURLWithPath: path))
            let file = try AtomicFile(path: path, overwrite: true)
            let sink = FailingSink(file, failAfterBytes: 1000)
            #expect(throws: (any Error).self) {
                _ = try CheckpointQuantizer(backend: CPUBackend()).write(checkpoint, to: sink, outputName: path,
                                                                        options: QuantizationOptions(format: format, overwrite: true))
            }
            file.abort()
            #expect(FileManager.default.contents(atPath: path) == Data("keep me".utf8))
            #expect(try names(dir) == [(path as NSString).lastPathComponent])
            try FileManager.default.removeItem(atPath: path)
        }
    }

    @Test func atomicFileHasNoEnvironmentHook() throws {
        // The old hooks made every AtomicFile in a process with TERNQ_TEST_* set fail or hang.
        let source = try String(contentsOfFile: URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Sources/TernaryQuantFormats/AtomicFile.swift").path, encoding: .utf8)
        #expect(!source.contains("environment"))
        #expect(!source.contains("TERNQ_TEST"))
    }
}

@Suite("Hardening: input that changes while mapped")
struct HardeningTruncationTests {
    @Test func checkIntactNamesTheFileAfterTruncationAndReadsDoNotCrash() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/shrinking.bin"
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        try Data([UInt8](repeating: 0x5A, count: 4 * page)).write(to: URL(fileURLWithPath: path))
        let storage = try ByteStorage(mapping: path)
        try storage.checkIntact()
        #expect(truncate(path, off_t(page)) == 0)
        #expect(throws: FormatError.self) { try storage.checkIntact() }
        // Reading past the new end would raise SIGBUS: the guard turns it into zeros plus a recorded fault.
        let tail = storage.bytes[3 * page + 5]
        #expect(tail == 0)
        #expect(storage.bytes[5] == 0x5A)
        do {
            try storage.checkIntact()
            Issue.record("expected an error")
        } catch let error as FormatError {
            #expect(error.description.contains(path) && error.description.contains("shrank"), "\(error)")
        }
    }

    @Test func modifiedInputIsReported() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/changing.bin"
        try Data([1, 2, 3, 4]).write(to: URL(fileURLWithPath: path))
        let storage = try ByteStorage(mapping: path)
        var times = [timespec(tv_sec: 1_000_000, tv_nsec: 0), timespec(tv_sec: 1_000_000, tv_nsec: 0)]
        #expect(utimensat(AT_FDCWD, path, &times, 0) == 0)
        #expect(throws: FormatError.self) { try storage.checkIntact() }
    }

    @Test(arguments: [OutputFormat.tern, .gguf, .safetensors])
    func inputTruncatedBetweenTensorsFailsNamingItAndLeavesNothing(format: OutputFormat) throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let input = try writeCheckpoint(in: dir, count: 4, rows: 64)  // 4 × 64 KiB tensors
        let checkpoint = try SafetensorsCheckpoint(path: input)
        let output = dir + "/out.\(format.rawValue)"
        let job = CheckpointQuantizer(backend: CPUBackend())
        var truncated = false
        do {
            _ = try job.run(checkpoint, outputPath: output, options: QuantizationOptions(format: format)) { progress in
                // The seam: after the first tensor another "process" cuts the file inside the first tensor.
                if progress.tensorsDone == 1 && !truncated {
                    truncated = true
                    _ = truncate(input, 4096)
                }
            }
            Issue.record("\(format): the run succeeded on a truncated input")
        } catch {
            let text = String(describing: error)
            #expect(text.contains(input) && text.contains("shrank"), "\(text)")
        }
        #expect(truncated)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["model.safetensors"])
    }
}

@Suite("Hardening: .tern validation and storage arguments")
struct HardeningTernTests {
    static func denseModel(rows: UInt64, cols: UInt64, packed: [UInt8]) -> [UInt8] {
        TernFormat.encode(TernModel(sourceModel: "s", layers: [
            TernLayer(name: "w", scale: 1, storage: .dense(rows: rows, cols: cols, packed: packed), sparsity: 0, originalDType: "F32"),
        ], architecture: "a", vocabSize: 0, hiddenSize: 0, numLayers: 0))
    }

    func decode(_ bytes: [UInt8]) throws -> TernModel { try bytes.withUnsafeBytes { try TernFormat.decode($0, file: "x.tern") } }

    @Test func denseCode11AndNonZeroPaddingAreRejected() throws {
        // 1 × 6 trits: two bytes, the second has 2 trits + 4 padding bits.
        #expect(try decode(Self.denseModel(rows: 1, cols: 6, packed: [0b1001_0110, 0b0000_0110])).layers.count == 1)
        for (packed, needle) in [([UInt8(0b1111_0110), 0b0000_0110], "trit 2 has the reserved code 11"),
                                 ([0b1001_0110, 0b0000_0111], "trit 4 has the reserved code 11"),
                                 ([0b1001_0110, 0b0001_0110], "padding"),
                                 ([0b1001_0110, 0b1100_0110], "padding")] {
            do {
                _ = try decode(Self.denseModel(rows: 1, cols: 6, packed: packed))
                Issue.record("accepted \(packed)")
            } catch let error as FormatError {
                #expect(error.description.contains(needle) && error.description.contains("layer 'w'"), "\(error)")
            }
        }
        // Exactly 4k trits: no padding, code 11 in the last slot.
        #expect(throws: FormatError.self) { try decode(Self.denseModel(rows: 2, cols: 2, packed: [0b1100_0000])) }
        #expect(try decode(Self.denseModel(rows: 2, cols: 2, packed: [0b1000_0000])).layers.count == 1)
    }

    @Test func firstInvalidCodeMatchesAReferenceOnEveryByteAndLength() {
        for count in 1...8 {
            let bytes = (count + 3) / 4
            for value in 0..<(1 << (8 * min(bytes, 2))) where bytes <= 2 {
                let packed = (0..<bytes).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }
                // Reference: trit by trit, then the padding.
                var expected: Int? = nil
                for k in 0..<count where expected == nil && (packed[k / 4] >> UInt8(2 * (k % 4))) & 3 == 3 { expected = k }
                if expected == nil {
                    for k in count..<(4 * bytes) where (packed[k / 4] >> UInt8(2 * (k % 4))) & 3 != 0 { expected = count; break }
                }
                #expect(TernFormat.firstInvalidCode(packed, count: count) == expected, "count \(count) bytes \(packed)")
            }
        }
    }

    @Test func storageRefusesAbsurdArgumentsWithoutTrapping() throws {
        let bad: [([UInt8], [Int], Double)] = [
            ([0], [-1, 4], 0.9), ([0], [Int.max, 3], 0.9), ([0], [Int.max, 0], 0.9), ([0], [Int.max / 2, 2, 2], 0.1),
            ([], [0, 5], 0.9), ([0], [9], 0.9), ([0, 0], [4], 0.9), ([0], [3, 1 << 62], 1.0),
        ]
        for (packed, shape, sparsity) in bad {
            #expect(throws: (any Error).self, "\(shape)") {
                _ = try TernFormat.storage(packed: packed, shape: shape, sparsity: sparsity, csrThreshold: 0.5, name: "w")
            }
        }
        // Absurd sparsity values with valid data pick a storage and never trap.
        for sparsity in [Double.nan, -.infinity, .infinity, -5, 7, .greatestFiniteMagnitude] {
            let s = try TernFormat.storage(packed: [0b0010_0001], shape: [2, 2], sparsity: sparsity, csrThreshold: 0.5)
            #expect(s.dimensions == (2, 2))
        }
        #expect(throws: QuantizationError.invalidPackedCode(index: 1)) {
            try TernFormat.storage(packed: [0b0000_1100], shape: [4], sparsity: 0, csrThreshold: 0.5)
        }
    }
}

@Suite("Hardening: file-derived text is escaped")
struct HardeningEscapeTests {
    @Test func escapingIsCompleteAndIdempotent() {
        let hostile = "a\u{0}b\u{1B}[31mc\nd\re\u{7F}f\u{85}g\u{202E}h\\u{0}"
        let once = DisplayText.escaped(hostile)
        #expect(once == "a\\u{0}b\\u{1b}[31mc\\u{a}d\\u{d}e\\u{7f}f\\u{85}g\\u{202e}h\\u{0}")
        #expect(DisplayText.escaped(once) == once)
        #expect(!once.unicodeScalars.contains { DisplayText.needsEscape($0) })
        #expect(DisplayText.escaped("plain ünïcode ✓") == "plain ünïcode ✓")
        #expect(DisplayText.escapedLines("x\u{0}\ny") == "x\\u{0}\ny")
    }

    @Test func safetensorsErrorsEscapeNamesAndValues() throws {
        let name = "evil\u{0}\u{1B}]0;pwned\u{7}"
        let header = "{\"\(name.unicodeScalars.map { $0.value < 0x20 ? String(format: "\\u%04x", $0.value) : String($0) }.joined())\":{\"dtype\":\"X\\u001bY\",\"shape\":[1],\"data_offsets\":[0,4]}}"
        let bytes = SafetensorsBytes.make(header: header, data: [0, 0, 0, 0])
        do {
            _ = try SafetensorsBytes.open(bytes, name: "m\u{1B}.safetensors")
            Issue.record("accepted")
        } catch let error as FormatError {
            let text = error.description
            #expect(!text.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F }, "\(text.debugDescription)")
            #expect(text.contains("evil\\u{0}\\u{1b}]0;pwned\\u{7}") && text.contains("X\\u{1b}Y") && text.contains("m\\u{1b}.safetensors"), "\(text)")
        }
    }

    @Test func ternErrorsEscapeLayerNames() {
        let bytes = TernFormat.encode(TernModel(sourceModel: "s", layers: [
            TernLayer(name: "l\u{0}\u{1B}", scale: 1, storage: .dense(rows: 1, cols: 1, packed: [3]), sparsity: 0, originalDType: "F32"),
        ], architecture: "a", vocabSize: 0, hiddenSize: 0, numLayers: 0))
        do {
            _ = try bytes.withUnsafeBytes { try TernFormat.decode($0, file: "x.tern") }
            Issue.record("accepted")
        } catch {
            #expect(String(describing: error).contains("layer 'l\\u{0}\\u{1b}'"), "\(error)")
        }
    }
}

@Suite("Hardening: config.json problems are warnings")
struct HardeningConfigTests {
    func checkpoint(config: [UInt8]?) throws -> (SafetensorsCheckpoint, String) {
        let dir = try makeTemporaryDirectory()
        _ = try writeCheckpoint(in: dir, count: 1, rows: 1)
        if let config { try Data(config).write(to: URL(fileURLWithPath: dir + "/config.json")) }
        return (try SafetensorsCheckpoint(path: dir), dir)
    }

    @Test func validOrMissingConfigGivesNoWarning() throws {
        let (a, d1) = try checkpoint(config: nil)
        defer { try? FileManager.default.removeItem(atPath: d1) }
        #expect(a.warnings.isEmpty && a.modelInfo.architecture == "unknown")
        let (b, d2) = try checkpoint(config: Array(#"{"model_type":"llama","vocab_size":32000}"#.utf8))
        defer { try? FileManager.default.removeItem(atPath: d2) }
        #expect(b.warnings.isEmpty && b.modelInfo.architecture == "llama" && b.modelInfo.vocabSize == 32000)
    }

    @Test(arguments: [
        (#"{"model_type": "llama", "vocab_size": 32000,}"#, "not valid JSON"),
        ("[1, 2]", "not a JSON object"),
        (#"{"model_type": 7, "vocab_size": 32000}"#, "'model_type' is not a string"),
        (#"{"model_type": "llama", "vocab_size": -1}"#, "'vocab_size' is not a non-negative integer"),
        ("", "not valid JSON"),
    ])
    func malformedConfigWarnsNamingFileAndProblem(text: String, needle: String) throws {
        let (c, dir) = try checkpoint(config: Array(text.utf8))
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(c.warnings.count == 1, "\(c.warnings)")
        let w = c.warnings.first ?? ""
        #expect(w.contains(dir + "/config.json") && w.contains(needle), "\(w)")
    }

    @Test func configThatIsAFIFOIsAWarningNotAHang() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        _ = try writeCheckpoint(in: dir, count: 1, rows: 1)
        #expect(mkfifo(dir + "/config.json", 0o644) == 0)
        let c = try SafetensorsCheckpoint(path: dir)
        #expect(c.warnings.count == 1 && (c.warnings.first ?? "").contains("not a regular file"), "\(c.warnings)")
    }
}
