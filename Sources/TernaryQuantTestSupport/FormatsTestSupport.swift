import Foundation
import TernaryQuant

/// Builds safetensors bytes by hand (header text given verbatim) for reader tests.
package enum SafetensorsBytes {
    package static func make(header: String, data: [UInt8], headerLength: UInt64? = nil) -> [UInt8] {
        let h = Array(header.utf8)
        var out = [UInt8]()
        withUnsafeBytes(of: (headerLength ?? UInt64(h.count)).littleEndian) { out.append(contentsOf: $0) }
        out += h
        out += data
        return out
    }

    package static func open(_ bytes: [UInt8], name: String = "test.safetensors") throws -> SafetensorsFile {
        try SafetensorsFile(storage: ByteStorage(copying: bytes, name: name))
    }

    package static func floats(_ values: [Float]) -> [UInt8] {
        values.withUnsafeBytes { Array($0) }
    }
}

/// A fresh temporary directory for one test.
package func makeTemporaryDirectory() throws -> String {
    let path = NSTemporaryDirectory() + "ternq-test-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// A deterministic tiny checkpoint used for round trips and golden files: F32, F16 and BF16 weights,
/// a sparse layer, a norm, an embedding, an I64 buffer and a scalar.
package enum TinyModel {
    package static func halfBits(_ x: Float) -> UInt16 { HalfFloat.bits(from: x) }

    package static func bytes() throws -> [UInt8] {
        let entries: [SafetensorsWriter.Entry] = [
            .init(name: "model.embed_tokens.weight", dtype: .f16, shape: [4, 256]),
            .init(name: "model.layers.0.self_attn.q_proj.weight", dtype: .f32, shape: [4, 256]),
            .init(name: "model.layers.0.mlp.down_proj.weight", dtype: .bf16, shape: [2, 512]),
            .init(name: "model.layers.0.mlp.sparse.weight", dtype: .f32, shape: [5, 6]),
            .init(name: "model.layers.0.odd.weight", dtype: .f32, shape: [3, 7]),
            .init(name: "model.layers.0.conv.weight", dtype: .f32, shape: [2, 3, 256]),
            .init(name: "model.norm.weight", dtype: .f32, shape: [256]),
            .init(name: "model.position_ids", dtype: .i64, shape: [1, 4]),
            .init(name: "model.temperature", dtype: .f32, shape: []),
        ]
        let sink = MemorySink()
        let w = try SafetensorsWriter(sink: sink, entries: entries, metadata: ["format": "pt"])
        func value(_ i: Int, _ salt: Int) -> Float { Float((i &* 37 &+ salt * 11) % 23 - 11) * 0.0625 }
        var f16: [UInt16] = []
        for i in 0..<1024 { f16.append(halfBits(value(i, 1)).littleEndian) }
        try f16.withUnsafeBytes { try w.write($0) }
        try SafetensorsBytes.floats((0..<1024).map { value($0, 2) }).withUnsafeBytes { try w.write($0) }
        var bf16: [UInt16] = []
        for i in 0..<1024 { bf16.append(UInt16(value(i, 3).bitPattern >> 16).littleEndian) }
        try bf16.withUnsafeBytes { try w.write($0) }
        var sparse = [Float](repeating: 0, count: 30)
        for i in 0..<30 {
            let small: Float = 0.01 * Float(i % 3)
            let big: Float = i % 20 == 3 ? 1.0 : -1.0
            sparse[i] = i % 10 == 3 ? big : small
        }
        try w.write(bytes: SafetensorsBytes.floats(sparse))
        try SafetensorsBytes.floats((0..<21).map { value($0, 5) }).withUnsafeBytes { try w.write($0) }
        try SafetensorsBytes.floats((0..<1536).map { value($0, 6) }).withUnsafeBytes { try w.write($0) }
        try SafetensorsBytes.floats([Float](repeating: 1, count: 256)).withUnsafeBytes { try w.write($0) }
        try [Int64(0), 1, 2, 3].map(\.littleEndian).withUnsafeBytes { try w.write($0) }
        try SafetensorsBytes.floats([0.7]).withUnsafeBytes { try w.write($0) }
        try w.finish()
        return sink.bytes
    }

    package static let config: JSONValue = .object([("model_type", .string("llama")), ("vocab_size", .number("4")),
                                            ("hidden_size", .number("256")), ("num_hidden_layers", .number("1"))])

    package static func checkpoint() throws -> SafetensorsCheckpoint {
        let file = try SafetensorsFile(storage: ByteStorage(copying: try bytes(), name: "tiny.safetensors"))
        return SafetensorsCheckpoint(file: file, config: config)
    }
}
