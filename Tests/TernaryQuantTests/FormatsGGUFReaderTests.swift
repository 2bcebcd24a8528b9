import Foundation
import Testing
import TernaryQuant
import TernaryQuantTestSupport
@testable import TernaryQuantCore
@testable import TernaryQuantFormats
@testable import TernaryQuantOpenCL
@testable import TernaryQuantPipeline

/// Hand-built GGUF bytes (independent of `GGUFFormat.header`), so reader tests do not trust the writer.
struct RawGGUF {
    var bytes: [UInt8] = []
    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func str(_ s: String) { u64(UInt64(s.utf8.count)); bytes += Array(s.utf8) }
    mutating func raw(_ b: [UInt8]) { bytes += b }
    mutating func pad(_ alignment: Int = 32) { while bytes.count % alignment != 0 { bytes.append(0) } }
    /// Magic, version, counts.
    static func start(version: UInt32 = 3, tensors: UInt64, kvs: UInt64) -> RawGGUF {
        var r = RawGGUF()
        r.bytes = Array("GGUF".utf8)
        r.u32(version); r.u64(tensors); r.u64(kvs)
        return r
    }
    /// One tensor info.
    mutating func tensor(_ name: String, _ dims: [UInt64], type: UInt32, offset: UInt64) {
        str(name); u32(UInt32(dims.count)); for d in dims { u64(d) }; u32(type); u64(offset)
    }
    /// A whole file: the KVs (each key, type code and payload bytes given raw) and no tensors.
    static func kvFile(_ kvs: [(String, UInt32, [UInt8])], version: UInt32 = 3) -> RawGGUF {
        var r = start(version: version, tensors: 0, kvs: UInt64(kvs.count))
        for (k, t, payload) in kvs { r.str(k); r.u32(t); r.raw(payload) }
        return r
    }
}

/// Little-endian bytes of a fixed-width integer.
func le<T: FixedWidthInteger>(_ v: T) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }
/// A GGUF string payload.
func gstr(_ s: String) -> [UInt8] { le(UInt64(s.utf8.count)) + Array(s.utf8) }

enum GGUFTestSupport {
    static let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/gguf/ggml-vocab-bert-bge.gguf").path

    /// The llama.cpp source tree built by scripts/build-llama-cpp.sh (TERNQ_LLAMA_CPP overrides), if present.
    static let llamaRoot: String? = {
        let env = ProcessInfo.processInfo.environment
        let cache = env["TERNQ_CACHE"] ?? ((env["XDG_CACHE_HOME"] ?? (NSHomeDirectory() + "/.cache")) + "/ternq")
        let root = env["TERNQ_LLAMA_CPP"] ?? cache + "/llama_cpp_python-0.3.36/vendor/llama.cpp"
        return FileManager.default.fileExists(atPath: root + "/models") ? root : nil
    }()

    static func tool(_ name: String) -> String? {
        guard let root = llamaRoot else { return nil }
        let path = root + "/build/bin/" + name
        return FileManager.default.isExecutableFile(atPath: path) ? path : nil
    }

    static func open(_ bytes: [UInt8], name: String = "t.gguf") throws -> GGUFFile {
        try GGUFFile(storage: ByteStorage(copying: bytes, name: name))
    }

    /// Every KV of `file` re-encodes to exactly the bytes it was read from.
    static func kvsReencodeIdentically(_ file: GGUFFile) -> Bool {
        let bytes = file.storage.bytes
        for (entry, range) in zip(file.metadata, file.metadataRanges) {
            guard GGUFFormat.encode(entry) == Array(bytes[range]) else { return false }
        }
        return true
    }

    /// Writes a GGUF file with `metadata` and tensors given with their bytes (through our writer).
    @discardableResult
    static func write(_ path: String, metadata: [(String, GGUFValue)], tensors: [(String, [Int], GGMLType, [UInt8])]) throws -> [UInt8] {
        let (header, infos) = GGUFFormat.header(metadata: metadata, tensors: tensors.map { ($0.0, $0.1, $0.2, $0.3.count) })
        var out = header
        for (t, info) in zip(tensors, infos) {
            out += [UInt8](repeating: 0, count: info.offset + header.count - out.count)
            out += t.3
        }
        try Data(out).write(to: URL(fileURLWithPath: path))
        return out
    }

    static func run(_ tool: String, _ arguments: [String], in directory: String) throws -> (status: Int32, output: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: tool)
        p.arguments = arguments
        p.currentDirectoryURL = URL(fileURLWithPath: directory)
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        try p.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}

@Suite("Formats: GGUF reader")
struct FormatsGGUFReaderTests {
    typealias S = GGUFTestSupport

    /// Expects `bytes` to be refused with a `FormatError` whose text names the file and contains `needles`.
    func expectRefused(_ bytes: [UInt8], _ needles: String..., sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            let f = try S.open(bytes, name: "bad.gguf")
            Issue.record("accepted (\(f.tensors.count) tensors, \(f.metadata.count) KVs)", sourceLocation: sourceLocation)
        } catch let e as FormatError {
            let text = "\(e)"
            #expect(text.hasPrefix("bad.gguf: "), "\(text)", sourceLocation: sourceLocation)
            for n in needles { #expect(text.contains(n), "\(text) lacks \(n)", sourceLocation: sourceLocation) }
        } catch {
            Issue.record("not a FormatError: \(error)", sourceLocation: sourceLocation)
        }
    }

    /// issue 8 item 1: a dimension of 2^61 − 1 (F32: 2^63 − 4 bytes) overflowed rounding up to the alignment
    /// (SIGILL in `GGUFFormat.padded`; this test crashed the test process before the fix).
    @Test func hugeDimensionIsAnErrorNotATrap() throws {
        var r = RawGGUF.start(tensors: 1, kvs: 0)
        r.tensor("w", [(1 << 61) - 1], type: 0, offset: 0)
        let typeAt = r.bytes.count - 12
        r.pad()
        r.bytes += [UInt8](repeating: 0, count: 64)
        expectRefused(r.bytes, "at byte \(typeAt)", "tensor \"w\"", "overflows")
        #expect(throws: FormatError.self) { try r.bytes.withUnsafeBytes { try GGUFFormat.decode($0, file: "huge.gguf") } }
    }

    /// Scalars of every value type decode to the right case and re-encode to the same bytes.
    @Test func everyScalarTypeDecodesAndReencodes() throws {
        let cases: [(UInt32, [UInt8], GGUFValue)] = [
            (0, [0xFE], .uint8(0xFE)), (1, [0x80], .int8(-128)), (2, le(UInt16(0xBEEF)), .uint16(0xBEEF)),
            (3, le(Int16(-2)), .int16(-2)), (4, le(UInt32(0xDEADBEEF)), .uint32(0xDEADBEEF)), (5, le(Int32.min), .int32(.min)),
            (6, le(Float(-1.5).bitPattern), .float32(-1.5)), (7, [1], .bool(true)), (7, [0], .bool(false)),
            (8, gstr("héllo\u{0}\n"), .string("héllo\u{0}\n")), (8, gstr(""), .string("")),
            (10, le(UInt64.max), .uint64(.max)), (11, le(Int64.min), .int64(.min)), (12, le((0.1 as Double).bitPattern), .float64(0.1)),
        ]
        let raw = RawGGUF.kvFile(cases.enumerated().map { ("k\($0.offset)", $0.element.0, $0.element.1) })
        let f = try S.open(raw.bytes)
        #expect(f.version == 3 && f.tensors.isEmpty && f.alignment == 32)
        #expect(f.metadata.map(\.value) == cases.map(\.2))
        #expect(f.value(forKey: "k4") == .uint32(0xDEADBEEF))
        #expect(f.value(forKey: "absent") == nil)
        #expect(S.kvsReencodeIdentically(f))
        // The header writer reproduces the file (it has no tensors: header + padding).
        let (header, _) = GGUFFormat.header(metadata: f.metadata, tensors: [])
        #expect(Array(header.prefix(raw.bytes.count)) == raw.bytes)
    }

    /// NaN payloads, -0 and signalling NaNs survive decoding and encoding bit for bit.
    @Test func floatBitPatternsSurvive() throws {
        let f32: [UInt32] = [0x7FC0_0001, 0xFF80_0001, 0x8000_0000, 0x0000_0001, 0x7F80_0000]
        let f64: [UInt64] = [0x7FF0_0000_0000_0001, 0xFFF8_0000_0000_00AB, 0x8000_0000_0000_0000]
        var kvs: [(String, UInt32, [UInt8])] = f32.enumerated().map { ("f\($0.offset)", 6, le($0.element)) }
        kvs += f64.enumerated().map { ("d\($0.offset)", 12, le($0.element)) }
        kvs.append(("arr", 9, le(UInt32(6)) + le(UInt64(f32.count)) + f32.flatMap { le($0) }))
        let f = try S.open(RawGGUF.kvFile(kvs).bytes)
        #expect(S.kvsReencodeIdentically(f))
    }

    /// Arrays of every element type, arrays of strings, empty arrays and nested arrays.
    @Test func arraysIncludingNestedOnesDecodeAndReencode() throws {
        let strings = ["a", "", "ünï", "<0x0A>"]
        let inner1 = le(UInt32(4)) + le(UInt64(2)) + le(UInt32(7)) + le(UInt32(8))
        let inner2 = le(UInt32(8)) + le(UInt64(1)) + gstr("x")
        let inner3 = le(UInt32(9)) + le(UInt64(1)) + inner1  // three levels
        let kvs: [(String, UInt32, [UInt8])] = [
            ("u8s", 9, le(UInt32(0)) + le(UInt64(3)) + [1, 2, 3]),
            ("i16s", 9, le(UInt32(3)) + le(UInt64(2)) + le(Int16(-1)) + le(Int16(5))),
            ("bools", 9, le(UInt32(7)) + le(UInt64(2)) + [0, 1]),
            ("strs", 9, le(UInt32(8)) + le(UInt64(UInt64(strings.count))) + strings.flatMap(gstr)),
            ("u64s", 9, le(UInt32(10)) + le(UInt64(1)) + le(UInt64(42))),
            ("empty", 9, le(UInt32(12)) + le(UInt64(0))),
            ("nested", 9, le(UInt32(9)) + le(UInt64(3)) + inner1 + inner2 + inner3),
            ("empty.nested", 9, le(UInt32(9)) + le(UInt64(0))),
        ]
        let f = try S.open(RawGGUF.kvFile(kvs).bytes)
        #expect(f.value(forKey: "strs") == .array(8, strings.map(GGUFValue.string)))
        #expect(f.value(forKey: "bools") == .array(7, [.bool(false), .bool(true)]))
        #expect(f.value(forKey: "nested") == .array(9, [
            .array(4, [.uint32(7), .uint32(8)]), .array(8, [.string("x")]), .array(9, [.array(4, [.uint32(7), .uint32(8)])]),
        ]))
        #expect(f.metadata.allSatisfy { $0.value.isWellFormed })
        #expect(S.kvsReencodeIdentically(f))
        let (header, _) = GGUFFormat.header(metadata: f.metadata, tensors: [])
        #expect(Array(header.prefix(f.storage.bytes.count)) == Array(f.storage.bytes))
        #expect(!GGUFValue.array(4, [.string("x")]).isWellFormed)
    }

    @Test func versionTwoAndAlignmentAreHonoured() throws {
        var r = RawGGUF.start(version: 2, tensors: 2, kvs: 1)
        r.str("general.alignment"); r.u32(4); r.u32(64)
        r.tensor("a", [3], type: 0, offset: 0)
        r.tensor("b", [32, 1], type: 8, offset: 64)
        r.pad(64)
        let dataStart = r.bytes.count
        r.raw([UInt8](repeating: 1, count: 12)); r.pad(64); r.raw([UInt8](repeating: 2, count: 34))
        let f = try S.open(r.bytes)
        #expect(f.version == 2 && f.alignment == 64 && f.dataStart == dataStart)
        #expect(f.tensors.map(\.byteCount) == [12, 34])
        #expect(Array(f.data(for: f.tensors[0])) == [UInt8](repeating: 1, count: 12))
        #expect(Array(f.data(for: f.tensors[1])) == [UInt8](repeating: 2, count: 34))
        // An info that is not in the file gives no bytes rather than a trap.
        var stray = f.tensors[1]
        stray.offset = Int.max - 3
        #expect(f.data(for: stray).isEmpty)
    }

    /// One tensor of every ggml type, sized by its block layout (checked against gguf-py's table when present).
    @Test func everyGGMLTypeIsSizedAndPassedThrough() throws {
        var r = RawGGUF.start(tensors: UInt64(GGMLType.allCases.count), kvs: 0)
        var offset = 0
        var sizes: [Int] = []
        for t in GGMLType.allCases {
            let (elements, bytes) = t.blockLayout
            r.tensor("t\(t.rawValue)", [UInt64(elements * 2), 3], type: t.rawValue, offset: UInt64(offset))
            sizes.append(6 * bytes)
            offset += (6 * bytes + 31) / 32 * 32
        }
        r.pad()
        let dataStart = r.bytes.count
        for (i, s) in sizes.enumerated() { r.pad(); r.raw([UInt8](repeating: UInt8(i), count: s)) }
        let f = try S.open(r.bytes)
        #expect(f.tensors.map(\.byteCount) == sizes)
        #expect(f.dataStart == dataStart)
        for (i, t) in f.tensors.enumerated() { #expect(Array(f.data(for: t)) == [UInt8](repeating: UInt8(i), count: sizes[i])) }
        #expect(GGMLType.q4_k.ggmlName == "q4_K" && GGMLType.mxfp4.ggmlName == "mxfp4")
    }

    /// The block table equals the vendored gguf-py's GGML_QUANT_SIZES, type for type (an independent
    /// transcription of ggml.c's type_traits), when the llama.cpp source is on this machine.
    @Test(.enabled(if: GGUFTestSupport.llamaRoot != nil)) func blockTableMatchesGGUFPy() throws {
        let root = try #require(S.llamaRoot)
        let script = "import sys; sys.path.insert(0, '\(root)/gguf-py'); from gguf.constants import GGML_QUANT_SIZES as q; "
            + "print(' '.join(f'{int(k)}:{v[0]}:{v[1]}' for k, v in sorted(q.items())))"
        let run = try S.run("/usr/bin/env", ["python3", "-c", script], in: NSTemporaryDirectory())
        try #require(run.status == 0, "\(run.output)")
        let ours = GGMLType.allCases.map { "\($0.rawValue):\($0.blockLayout.elements):\($0.blockLayout.bytes)" }.joined(separator: " ")
        #expect(run.output.trimmingCharacters(in: .whitespacesAndNewlines) == ours)
    }

    @Test func zeroSizedScalarAndLongestNameTensorsAreAccepted() throws {
        let name63 = String(repeating: "n", count: 63)
        var r = RawGGUF.start(tensors: 3, kvs: 0)
        r.tensor("empty", [0, 5], type: 2, offset: 0)  // llama.cpp accepts zero-element tensors
        r.tensor("scalar", [], type: 0, offset: 0)
        r.tensor(name63, [2], type: 30, offset: 32)
        r.pad()
        r.raw([1, 2, 3, 4]); r.pad(); r.raw([5, 6, 7, 8])
        let f = try S.open(r.bytes)
        #expect(f.tensors.map(\.byteCount) == [0, 4, 4])
        #expect(f.tensors.map(\.elementCount) == [0, 1, 2])
        #expect(f.tensors[2].name == name63)
    }

    // MARK: every validation error

    @Test func headerErrors() {
        var bad = RawGGUF.start(tensors: 0, kvs: 0).bytes
        bad[0] = 0x47 ^ 0x20
        expectRefused(bad, "bad magic")
        expectRefused(Array("GGU".utf8), "magic")
        expectRefused(RawGGUF.start(version: 1, tensors: 0, kvs: 0).bytes, "version 1")
        expectRefused(RawGGUF.start(version: 4, tensors: 0, kvs: 0).bytes, "version 4")
        expectRefused(RawGGUF.start(version: 0x0300_0000, tensors: 0, kvs: 0).bytes, "big-endian")
        expectRefused(RawGGUF.start(tensors: 1 << 40, kvs: 0).bytes, "at byte 8", "tensor count")
        expectRefused(RawGGUF.start(tensors: 0, kvs: .max).bytes, "at byte 16", "metadata count")
        expectRefused(Array(RawGGUF.start(tensors: 0, kvs: 0).bytes.prefix(20)), "metadata count")
    }

    @Test func metadataErrors() throws {
        expectRefused(RawGGUF.kvFile([("", 4, le(UInt32(1)))]).bytes, "at byte 24", "empty metadata key")
        expectRefused(RawGGUF.kvFile([("a", 4, le(UInt32(1))), ("a", 0, [1])]).bytes, "duplicate metadata key \"a\"")
        expectRefused(RawGGUF.kvFile([("a", 13, [])]).bytes, "unknown value type 13")
        expectRefused(RawGGUF.kvFile([("a", 7, [2])]).bytes, "BOOL byte 2")
        expectRefused(RawGGUF.kvFile([("a", 8, le(UInt64(100)) + [1, 2])]).bytes, "file ends")
        expectRefused(RawGGUF.kvFile([("a", 8, le(UInt64(1 << 31)))]).bytes, "exceeds the limit")
        expectRefused(RawGGUF.kvFile([("a", 8, gstr("x") + [])]).bytes.dropLast().map { $0 }, "file ends")
        expectRefused(RawGGUF.kvFile([("a", 8, le(UInt64(2)) + [0xC3, 0x28])]).bytes, "not valid UTF-8")
        expectRefused(RawGGUF.kvFile([("a", 9, le(UInt32(4)) + le(UInt64(1 << 31)))]).bytes, "exceeds the limit")
        expectRefused(RawGGUF.kvFile([("a", 9, le(UInt32(4)) + le(UInt64(3)) + le(UInt32(1)))]).bytes, "runs past the end")
        expectRefused(RawGGUF.kvFile([("a", 9, le(UInt32(8)) + le(UInt64(1 << 29)))]).bytes, "runs past the end")
        expectRefused(RawGGUF.kvFile([("a", 9, le(UInt32(13)) + le(UInt64(0)))]).bytes, "unknown array element type 13")
        expectRefused(RawGGUF.kvFile([("a", 9, le(UInt32(9)) + le(UInt64(1)) + le(UInt32(7)) + le(UInt64(1)) + [3])]).bytes, "BOOL byte 3")
        // Nesting deeper than the limit (each level: type 9, count 1).
        // k × (element type ARRAY, count 1) then an empty UINT8 array: k + 1 levels of arrays.
        func nested(_ levels: Int) -> [UInt8] {
            (1..<levels).flatMap { _ in le(UInt32(9)) + le(UInt64(1)) } + le(UInt32(0)) + le(UInt64(0))
        }
        expectRefused(RawGGUF.kvFile([("deep", 9, nested(GGUFFormat.maxArrayDepth + 1))]).bytes, "nested more than")
        let ok = try S.open(RawGGUF.kvFile([("deep", 9, nested(GGUFFormat.maxArrayDepth))]).bytes)
        #expect(S.kvsReencodeIdentically(ok))
        expectRefused(RawGGUF.kvFile([("general.alignment", 10, le(UInt64(32)))]).bytes, "must be UINT32, not UINT64")
        expectRefused(RawGGUF.kvFile([("general.alignment", 4, le(UInt32(0)))]).bytes, "not a power of two")
        expectRefused(RawGGUF.kvFile([("general.alignment", 4, le(UInt32(48)))]).bytes, "48 is not a power of two")
    }

    /// A file with one tensor info written by `info` after optional KVs, then padding and `data` bytes.
    func tensorFile(kvs: [(String, UInt32, [UInt8])] = [], data: Int = 64, count: UInt64 = 1, _ info: (inout RawGGUF) -> Void) -> [UInt8] {
        var r = RawGGUF.start(tensors: count, kvs: UInt64(kvs.count))
        for (k, t, p) in kvs { r.str(k); r.u32(t); r.raw(p) }
        info(&r)
        r.pad()
        r.raw([UInt8](repeating: 0, count: data))
        return r.bytes
    }

    @Test func tensorInfoErrors() {
        expectRefused(tensorFile { $0.tensor("", [4], type: 0, offset: 0) }, "at byte 24", "name length 0")
        expectRefused(tensorFile { $0.tensor(String(repeating: "x", count: 64), [4], type: 0, offset: 0) }, "name length 64", "1–63")
        expectRefused(tensorFile { $0.u64(2); $0.raw([0xFF, 0xFE]); $0.u32(1); $0.u64(4); $0.u32(0); $0.u64(0) }, "not valid UTF-8")
        expectRefused(tensorFile(count: 2) { $0.tensor("a", [4], type: 0, offset: 0); $0.tensor("a", [4], type: 0, offset: 32) }, "tensor \"a\": duplicate")
        expectRefused(tensorFile { $0.tensor("a", [1, 1, 1, 1, 1], type: 0, offset: 0) }, "n_dims 5")
        expectRefused(tensorFile { $0.tensor("a", [1 << 63], type: 0, offset: 0) }, "above 2^63")
        expectRefused(tensorFile { $0.tensor("a", [1 << 32, 1 << 31], type: 0, offset: 0) }, "element count", "overflows")
        expectRefused(tensorFile { $0.tensor("a", [1 << 62, 2, 0], type: 0, offset: 0) }, "overflows")  // 0 after the overflow
        for code: UInt32 in [4, 5, 31, 32, 33, 36, 37, 38, 43, .max] {
            expectRefused(tensorFile { $0.tensor("q", [32], type: code, offset: 0) }, "tensor \"q\"", "ggml type code \(code)")
        }
        expectRefused(tensorFile { $0.tensor("a", [33, 2], type: 2, offset: 0) }, "ne0 33", "q4_0 block size 32")
        expectRefused(tensorFile { $0.tensor("a", [256, (1 << 55) - 1], type: 15, offset: 0) }, "size in bytes", "q8_K", "overflows")
        expectRefused(tensorFile { $0.tensor("a", [1 << 61], type: 0, offset: 0) }, "size in bytes", "overflows")
        expectRefused(tensorFile { $0.tensor("a", [4], type: 0, offset: 32) }, "data offset 32 is not 0")
        expectRefused(tensorFile(count: 2) { $0.tensor("a", [4], type: 0, offset: 0); $0.tensor("b", [4], type: 0, offset: 16) },
                      "tensor \"b\"", "data offset 16 is not 32")  // overlapping / unaligned data
        expectRefused(tensorFile(data: 15) { $0.tensor("a", [4], type: 0, offset: 0) }, "at byte 49", "tensor \"a\"", "runs past the end")
        var noData = RawGGUF.start(tensors: 1, kvs: 0)
        noData.tensor("a", [0], type: 0, offset: 0)  // header not padded to the data section
        expectRefused(noData.bytes, "before the data section")
        expectRefused(Array(tensorFile { $0.tensor("a", [4], type: 0, offset: 0) }.prefix(50)), "file ends")
        // Alignment from the metadata applies to the offsets.
        let aligned = tensorFile(kvs: [("general.alignment", 4, le(UInt32(256)))], data: 600, count: 2) {
            $0.tensor("a", [4], type: 0, offset: 0); $0.tensor("b", [4], type: 0, offset: 32)
        }
        expectRefused(aligned, "data offset 32 is not 256")
    }

    @Test func refusalsAreErrorsInTheCLI() throws {
        guard TernqProcess.executable != nil else { return }
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var r = RawGGUF.start(tensors: 1, kvs: 0)
        r.tensor("w", [(1 << 61) - 1], type: 0, offset: 0)
        r.pad()
        try Data(r.bytes).write(to: URL(fileURLWithPath: dir + "/huge.gguf"))
        let run = try TernqProcess.run(["info", "huge.gguf"], environment: [:], directory: dir)
        #expect(run.status == 1, "\(run.stderr)")
        #expect(run.stderr.contains("huge.gguf: at byte 45: tensor \"w\""), "\(run.stderr)")
    }

    // MARK: files written by llama.cpp

    /// A vocab-only GGUF written by llama.cpp (Tests/Fixtures/gguf): every KV re-encodes byte for byte, and
    /// the writer reproduces the whole KV section.
    @Test func llamaCppVocabFixtureReencodesByteIdentically() throws {
        let f = try GGUFFile(path: S.fixture)
        #expect(f.version == 3 && f.tensors.isEmpty)
        #expect(f.metadata.count == 20)
        #expect(f.value(forKey: "general.architecture") == .string("bert"))
        #expect(f.value(forKey: "bert.attention.causal") == .bool(false))
        guard case .array(8, let tokens)? = f.value(forKey: "tokenizer.ggml.tokens") else { Issue.record("no tokens"); return }
        #expect(tokens.count == 30522 && tokens[0] == .string("[PAD]"))
        guard case .array(5, let types)? = f.value(forKey: "tokenizer.ggml.token_type") else { Issue.record("no token types"); return }
        #expect(types.count == 30522)
        #expect(S.kvsReencodeIdentically(f))
        let (header, _) = GGUFFormat.header(metadata: f.metadata, tensors: [])
        let kvEnd = f.metadataRanges.last?.upperBound ?? 0
        #expect(Array(header.prefix(kvEnd)) == Array(f.storage.bytes.prefix(kvEnd)))
        let ckpt = try GGUFCheckpoint(path: S.fixture)
        #expect(ckpt.files.count == 1 && ckpt.metadata == f.metadata && ckpt.tensors.isEmpty)
    }

    /// Every vocab GGUF shipped in the llama.cpp source (when it is on this machine).
    @Test(.enabled(if: GGUFTestSupport.llamaRoot != nil)) func everyLlamaCppVocabFileReencodes() throws {
        let root = try #require(S.llamaRoot) + "/models"
        let names = try FileManager.default.contentsOfDirectory(atPath: root).filter { $0.hasPrefix("ggml-vocab-") && $0.hasSuffix(".gguf") }
        #expect(names.count >= 10)
        for name in names.sorted() {
            let f = try GGUFFile(path: root + "/" + name)
            #expect(S.kvsReencodeIdentically(f), "\(name)")
        }
    }

    /// The set of llama-quantize output types `ternq info` reads (when llama.cpp is built here): a model
    /// written by gguf-py, quantized to Q4_0 / TQ2_0 / TQ1_0, reads back with the right types and sizes.
    @Test(.enabled(if: GGUFTestSupport.tool("llama-quantize") != nil)) func readsLlamaQuantizeOutput() throws {
        let quantize = try #require(S.tool("llama-quantize"))
        let root = try #require(S.llamaRoot)
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let script = """
        import sys, numpy as np
        sys.path.insert(0, "\(root)/gguf-py")
        import gguf
        src = gguf.GGUFReader("\(root)/models/ggml-vocab-llama-spm.gguf")
        w = gguf.GGUFWriter("\(dir)/f32.gguf", "llama")
        w.add_block_count(1); w.add_context_length(64); w.add_embedding_length(256); w.add_feed_forward_length(512)
        w.add_head_count(2); w.add_head_count_kv(2); w.add_layer_norm_rms_eps(1e-5); w.add_rope_dimension_count(128)
        w.add_file_type(0); w.add_vocab_size(32000)
        w.add_tokenizer_model("llama"); w.add_tokenizer_pre("default")
        f = src.fields
        w.add_token_list([bytes(f["tokenizer.ggml.tokens"].parts[i]) for i in f["tokenizer.ggml.tokens"].data])
        w.add_token_scores([float(f["tokenizer.ggml.scores"].parts[i][0]) for i in f["tokenizer.ggml.scores"].data])
        w.add_token_types([int(f["tokenizer.ggml.token_type"].parts[i][0]) for i in f["tokenizer.ggml.token_type"].data])
        rng = np.random.default_rng(1)
        def t(name, *shape): w.add_tensor(name, (rng.standard_normal(shape) * 0.02).astype(np.float32))
        t("token_embd.weight", 32000, 256); t("output_norm.weight", 256); t("output.weight", 32000, 256)
        t("blk.0.attn_norm.weight", 256); t("blk.0.ffn_norm.weight", 256)
        for n in ("attn_q", "attn_k", "attn_v", "attn_output"): t("blk.0." + n + ".weight", 256, 256)
        t("blk.0.ffn_gate.weight", 512, 256); t("blk.0.ffn_up.weight", 512, 256); t("blk.0.ffn_down.weight", 256, 512)
        w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
        """
        try script.write(toFile: dir + "/make.py", atomically: true, encoding: .utf8)
        let made = try S.run("/usr/bin/env", ["python3", "make.py"], in: dir)
        try #require(made.status == 0, "\(made.output)")
        let source = try GGUFCheckpoint(path: dir + "/f32.gguf")
        for (type, expected) in [("Q4_0", GGMLType.q4_0), ("TQ2_0", .tq2_0), ("TQ1_0", .tq1_0)] {
            let q = try S.run(quantize, ["f32.gguf", "\(type).gguf", type], in: dir)
            try #require(q.status == 0, "\(q.output.suffix(2000))")
            let out = try GGUFCheckpoint(path: dir + "/\(type).gguf")
            #expect(out.tensors.map(\.info.name).sorted() == source.tensors.map(\.info.name).sorted())  // llama-quantize reorders
            #expect(out.tensors.contains { $0.info.type == expected }, "\(type)")
            for t in out.tensors {
                #expect(t.bytes.count == t.info.type.byteCount(dimensions: t.info.dimensions))
            }
            #expect(S.kvsReencodeIdentically(out.files[0]))
            if TernqProcess.executable != nil {
                let info = try TernqProcess.run(["info", "\(type).gguf"], environment: [:], directory: dir)
                #expect(info.status == 0, "\(info.stderr)")
                #expect(info.stdout.contains("GGUF v3") && info.stdout.contains(" \(type)"), "\(info.stdout.prefix(3000))")
            }
        }
    }
}

@Suite("Formats: GGUF split models")
struct FormatsGGUFSplitTests {
    typealias S = GGUFTestSupport

    static func tensorBytes(_ seed: Int, _ count: Int) -> [UInt8] { (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ seed) } }

    /// Writes a 3-shard set like llama-gguf-split: metadata in the first, split keys in all.
    static func writeSet(_ dir: String, name: String = "m", count: Int = 3, tensorsCount: Int32? = nil,
                         adjust: (Int, inout [(String, GGUFValue)], inout [(String, [Int], GGMLType, [UInt8])]) -> Void = { _, _, _ in }) throws -> [String] {
        var paths: [String] = []
        let total = count * 2
        for i in 0..<count {
            var kvs: [(String, GGUFValue)] = i == 0 ? [("general.architecture", .string("llama")), ("x.list", .array(8, [.string("a")]))] : []
            kvs += [("split.no", .uint16(UInt16(i))), ("split.count", .uint16(UInt16(count))), ("split.tensors.count", .int32(tensorsCount ?? Int32(total)))]
            var tensors: [(String, [Int], GGMLType, [UInt8])] = [
                ("t\(2 * i)", [4, 2], .f32, tensorBytes(2 * i, 32)), ("t\(2 * i + 1)", [32], .q8_0, tensorBytes(2 * i + 1, 34)),
            ]
            adjust(i, &kvs, &tensors)
            let path = dir + "/" + name + GGUFCheckpoint.splitSuffix(index: i, count: count)
            try S.write(path, metadata: kvs, tensors: tensors)
            paths.append(path)
        }
        return paths
    }

    func expectRefused(_ path: String, _ needles: String..., sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            let c = try GGUFCheckpoint(path: path)
            Issue.record("accepted (\(c.files.count) files)", sourceLocation: sourceLocation)
        } catch let e as FormatError {
            for n in needles { #expect("\(e)".contains(n), "\(e) lacks \(n)", sourceLocation: sourceLocation) }
        } catch {
            Issue.record("not a FormatError: \(error)", sourceLocation: sourceLocation)
        }
    }

    @Test func aSplitSetReadsAsOneCheckpointFromAnyShard() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let paths = try Self.writeSet(dir)
        #expect(paths[1].hasSuffix("/m-00002-of-00003.gguf"))
        for given in paths {
            let c = try GGUFCheckpoint(path: given)
            #expect(c.path == paths[0])
            #expect(c.files.map(\.path) == paths)
            #expect(c.metadata.map(\.key) == ["general.architecture", "x.list", "split.no", "split.count", "split.tensors.count"])
            #expect(c.tensors.map(\.info.name) == (0..<6).map { "t\($0)" })
            for (i, t) in c.tensors.enumerated() {
                #expect(Array(t.bytes) == Self.tensorBytes(i, i % 2 == 0 ? 32 : 34))
                #expect(t.file === c.files[i / 2])
            }
        }
        if TernqProcess.executable != nil {
            let info = try TernqProcess.run(["info", "m-00002-of-00003.gguf"], environment: [:], directory: dir)
            #expect(info.status == 0, "\(info.stderr)")
            #expect(info.stdout.contains("split        3 files") && info.stdout.contains("tensors      6 (3 F32, 3 Q8_0)"), "\(info.stdout)")
        }
        // A single file with split.count 1 is an ordinary checkpoint.
        let single = try Self.writeSet(dir, name: "one", count: 1)
        #expect(try GGUFCheckpoint(path: single[0]).tensors.count == 2)
    }

    @Test func inconsistentSplitSetsAreRefused() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let missing = try Self.writeSet(dir, name: "missing")
        try FileManager.default.removeItem(atPath: missing[2])
        expectRefused(missing[0], "missing-00003-of-00003.gguf", "shard 3 of 3", "is missing")
        let count = try Self.writeSet(dir, name: "count", tensorsCount: 5)
        expectRefused(count[1], "split.tensors.count is 5", "hold 6 tensors")
        let dup = try Self.writeSet(dir, name: "dup") { i, _, t in if i == 2 { t[0].0 = "t1" } }
        expectRefused(dup[0], "tensor \"t1\" is also in", "dup-00001-of-00003.gguf", "once")
        let number = try Self.writeSet(dir, name: "number") { i, kvs, _ in if i == 1 { kvs[0].1 = .uint16(2) } }
        expectRefused(number[0], "number-00002-of-00003.gguf", "split.no is 2, expected 1")
        let type = try Self.writeSet(dir, name: "type") { i, kvs, _ in if i == 0 { kvs[3].1 = .uint32(3) } }
        expectRefused(type[0], "split.count must be UINT16, not UINT32")
        let noNo = try Self.writeSet(dir, name: "nono") { i, kvs, _ in if i == 2 { kvs.remove(at: 0) } }
        expectRefused(noNo[0], "nono-00003-of-00003.gguf", "split.no (UINT16) is missing")
        let noTotal = try Self.writeSet(dir, name: "nototal") { i, kvs, _ in if i == 0 { kvs.removeLast() } }
        expectRefused(noTotal[0], "split.tensors.count (INT32) is missing")
        let otherCount = try Self.writeSet(dir, name: "other") { i, kvs, _ in if i == 1 { kvs[1].1 = .uint16(4) } }
        expectRefused(otherCount[0], "split.count is 4")
        let zero = try Self.writeSet(dir, name: "zero", count: 1) { _, kvs, _ in kvs[3].1 = .uint16(0) }
        expectRefused(zero[0], "split.count is 0")
        let renamed = try Self.writeSet(dir, name: "renamed")
        try FileManager.default.moveItem(atPath: renamed[0], toPath: dir + "/renamed.gguf")
        expectRefused(dir + "/renamed.gguf", "does not end in -00001-of-00003.gguf")
        let bad = try Self.writeSet(dir, name: "bad")
        try Data([0x47, 0x47]).write(to: URL(fileURLWithPath: bad[1]))
        expectRefused(bad[0], "bad-00002-of-00003.gguf")
        #expect(GGUFCheckpoint.splitPrefix(path: "-00001-of-00002.gguf", index: 0, count: 2) == nil)
    }

    /// A split set written by the real llama-gguf-split (when llama.cpp is built here) reads back as the
    /// original file: same KVs (plus split.*), same tensors, same bytes.
    @Test(.enabled(if: GGUFTestSupport.tool("llama-gguf-split") != nil)) func llamaGGUFSplitOutputReadsAsTheOriginal() throws {
        let split = try #require(S.tool("llama-gguf-split"))
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let vocab = try GGUFFile(path: S.fixture)
        var kvs = vocab.metadata.map { ($0.key, $0.value) }
        kvs.append(("x.nested.free", .float64(-0.0)))
        let types: [GGMLType] = [.f32, .q8_0, .tq2_0, .f16, .bf16]
        var tensors: [(String, [Int], GGMLType, [UInt8])] = []
        for (i, type) in types.enumerated() {
            let dims = [type == .tq2_0 ? 256 : 32, i + 1]
            tensors.append(("blk.\(i).w", dims, type, Self.tensorBytes(i, type.byteCount(dimensions: dims) ?? 0)))
        }
        try S.write(dir + "/whole.gguf", metadata: kvs, tensors: tensors)
        let run = try S.run(split, ["--split", "--split-max-tensors", "2", "whole.gguf", "parts"], in: dir)
        try #require(run.status == 0, "\(run.output)")
        let original = try GGUFFile(path: dir + "/whole.gguf")
        for given in ["parts-00001-of-00003.gguf", "parts-00003-of-00003.gguf"] {
            let c = try GGUFCheckpoint(path: dir + "/" + given)
            #expect(c.files.count == 3)
            #expect(c.metadata.filter { !GGUFCheckpoint.splitKeys.contains($0.key) } == original.metadata)
            #expect(c.value(forKey: "split.count") == .uint16(3))
            #expect(c.tensors.map(\.info.name) == original.tensors.map(\.name))
            for (t, o) in zip(c.tensors, original.tensors) {
                // ggml writes n_dims without trailing 1s ([32, 1] becomes [32]).
                func trimmed(_ d: [Int]) -> [Int] { var d = d; while d.count > 1 && d.last == 1 { d.removeLast() }; return d }
                #expect(trimmed(t.info.dimensions) == trimmed(o.dimensions) && t.info.type == o.type)
                #expect(Array(t.bytes) == Array(original.data(for: o)))
            }
            for f in c.files { #expect(S.kvsReencodeIdentically(f)) }
        }
    }
}
