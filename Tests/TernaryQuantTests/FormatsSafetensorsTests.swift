import Foundation
import Testing
import TernaryQuant
import TernaryQuantTestSupport
@testable import TernaryQuantCore
@testable import TernaryQuantFormats
@testable import TernaryQuantOpenCL
@testable import TernaryQuantPipeline

@Suite("Formats: strict JSON")
struct FormatsJSONTests {
    @Test func parsesNestedValuesAndKeepsOrder() throws {
        let v = try StrictJSONParser.parse(Array(#"{"b": [1, -2.5e3, true, null], "a": {"x": "\u00e9\n"}}"#.utf8))
        guard case .object(let pairs) = v else { Issue.record("not an object"); return }
        #expect(pairs.map(\.0) == ["b", "a"])
        #expect(v["a"]?["x"]?.stringValue == "é\n")
        #expect(v["b"] == .array([.number("1"), .number("-2.5e3"), .bool(true), .null]))
    }

    @Test func rejectsDuplicateKeysAndGarbage() {
        for text in [#"{"a":1,"a":2}"#, #"{"a":1,}"#, #"{"a":01}"#, #"{"a":"\ud800"}"#, "[1] x", "{", #"{"a":"#,
                     String(repeating: "[", count: 200) + String(repeating: "]", count: 200)] {
            #expect(throws: JSONParseError.self, "\(text)") { try StrictJSONParser.parse(Array(text.utf8)) }
        }
    }
}

@Suite("Formats: safetensors reader")
struct FormatsSafetensorsReaderTests {
    let twoTensors = #"{"__metadata__":{"format":"pt"},"b":{"dtype":"F32","shape":[2],"data_offsets":[3,11]},"a":{"dtype":"U8","shape":[3],"data_offsets":[0,3]}}"#

    @Test func readsUnalignedTensorsInOffsetOrder() throws {
        let data: [UInt8] = [1, 2, 3] + SafetensorsBytes.floats([1.5, -2])
        let f = try SafetensorsBytes.open(SafetensorsBytes.make(header: twoTensors, data: data))
        #expect(f.tensors.map(\.name) == ["a", "b"])
        #expect(f.metadata == ["format": "pt"])
        let b = try #require(f.info(named: "b"))
        let raw = f.data(for: b)
        #expect(raw.loadUnaligned(fromByteOffset: 4, as: Float.self) == -2)
        let input = try TensorInput(name: "b", shape: b.shape, elementType: .float32, bytes: raw)
        let q = try Quantizer().quantize(input)
        #expect(q.scale == 1.75)
    }

    @Test func acceptsEmptyTensorsScalarsAndPadding() throws {
        let header = #"{"e":{"dtype":"F32","shape":[0,4],"data_offsets":[0,0]},"s":{"dtype":"F16","shape":[],"data_offsets":[0,2]}}   "#
        let f = try SafetensorsBytes.open(SafetensorsBytes.make(header: header, data: [0, 0x3C]))
        #expect(f.tensors.count == 2)
        #expect(f.info(named: "s")?.elementCount == 1)
    }

    @Test(arguments: [
        (#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}"#, 16, "duplicate"),
        (#"{"a":{"dtype":"F31","shape":[2],"data_offsets":[0,8]}}"#, 8, "unknown dtype"),
        (#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, 8, "needs 12 bytes"),
        (#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, 8, "hole"),
        (#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, 8, "overlaps"),
        (#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, 9, "holds 9 bytes"),
        (#"{"a":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,8]}}"#, 8, "overflows"),
        (#"{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,8]}}"#, 8, "non-negative"),
        (#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}"#, 8, "before begin"),
        (#"{"__metadata__":{"k":1}}"#, 0, "not a string"),
        (#"[1,2]"#, 0, "start with '{'"),
        (#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}} x"#, 8, "unexpected data"),
    ])
    func rejects(header: String, dataLength: Int, expected: String) {
        let bytes = SafetensorsBytes.make(header: header, data: [UInt8](repeating: 0, count: dataLength))
        do {
            _ = try SafetensorsBytes.open(bytes)
            Issue.record("accepted \(header)")
        } catch {
            #expect(String(describing: error).contains(expected), "\(error)")
            #expect(String(describing: error).contains("test.safetensors"))
        }
    }

    @Test func rejectsBadLengthPrefixes() {
        #expect(throws: FormatError.self) { try SafetensorsBytes.open([1, 2, 3]) }
        #expect(throws: FormatError.self) { try SafetensorsBytes.open(SafetensorsBytes.make(header: "{}", data: [], headerLength: 100_000_001)) }
        #expect(throws: FormatError.self) { try SafetensorsBytes.open(SafetensorsBytes.make(header: "{}", data: [], headerLength: 3)) }
        #expect(throws: FormatError.self) { try SafetensorsBytes.open(SafetensorsBytes.make(header: "{\u{FF}}", data: [])) }
        var invalidUTF8 = SafetensorsBytes.make(header: #"{"a":1}"#, data: [])
        invalidUTF8[10] = 0xC3
        #expect(throws: FormatError.self) { try SafetensorsBytes.open(invalidUTF8) }
    }

    @Test func writerRoundTripsAndPadsHeader() throws {
        let sink = MemorySink()
        let w = try SafetensorsWriter(sink: sink, entries: [.init(name: "x", dtype: .bf16, shape: [3]), .init(name: "e", dtype: .f32, shape: [0]),
                                                            .init(name: "y\"q", dtype: .i64, shape: [1])], metadata: ["k": "v\"w"])
        try w.write(bytes: [1, 2, 3, 4, 5])
        try w.write(bytes: [6, 7, 0, 0, 0, 0, 0, 0, 9])
        #expect(throws: FormatError.self) { try w.write(bytes: [1]) }
        try w.finish()
        let headerLength = sink.bytes.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
        #expect((8 + headerLength) % 8 == 0)
        let f = try SafetensorsBytes.open(sink.bytes)
        #expect(f.metadata == ["k": "v\"w"])
        #expect(f.tensors.map(\.name) == ["x", "e", "y\"q"])
        #expect(Array(f.data(for: f.tensors[2])) == [7, 0, 0, 0, 0, 0, 0, 9])
    }

    @Test func opensShardedCheckpointsByDirectoryAndIndex() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func shard(_ name: String, _ tensor: String) throws {
            let sink = MemorySink()
            let w = try SafetensorsWriter(sink: sink, entries: [.init(name: tensor, dtype: .f32, shape: [2, 2])])
            try w.write(bytes: SafetensorsBytes.floats([1, 2, 3, 4]))
            try Data(sink.bytes).write(to: URL(fileURLWithPath: dir + "/" + name))
        }
        try shard("model-00001-of-00002.safetensors", "a.weight")
        try shard("model-00002-of-00002.safetensors", "b.weight")
        try Data(#"{"model_type":"llama","hidden_size":2}"#.utf8).write(to: URL(fileURLWithPath: dir + "/config.json"))
        let byDirectory = try SafetensorsCheckpoint(path: dir)
        #expect(byDirectory.tensors.map(\.info.name) == ["a.weight", "b.weight"])
        #expect(byDirectory.modelInfo.architecture == "llama")
        #expect(byDirectory.modelInfo.hiddenSize == 2)
        let index = #"{"metadata":{},"weight_map":{"a.weight":"model-00001-of-00002.safetensors","b.weight":"model-00002-of-00002.safetensors"}}"#
        try Data(index.utf8).write(to: URL(fileURLWithPath: dir + "/model.safetensors.index.json"))
        let byIndex = try SafetensorsCheckpoint(path: dir + "/model.safetensors.index.json")
        #expect(byIndex.tensors.count == 2)
        let bad = #"{"weight_map":{"c.weight":"model-00001-of-00002.safetensors"}}"#
        try Data(bad.utf8).write(to: URL(fileURLWithPath: dir + "/model.safetensors.index.json"))
        #expect(throws: FormatError.self) { try SafetensorsCheckpoint(path: dir) }
        #expect(throws: FormatError.self) { try SafetensorsCheckpoint(path: dir + "/missing.safetensors") }
    }
}
