import TernaryQuantFormats
import TernaryQuantCore
/// A small deterministic synthetic transformer-like checkpoint, used when `ternq quantize` gets no input.
///
/// Four decoder layers (q/k/v/o, gate/up/down projections, two norms each), token embeddings, a final
/// norm, an output head and an I64 `position_ids` buffer; hidden size 256, MLP 512, vocabulary 1024
/// (≈ 3.4 M parameters, ≈ 13 MB of F32). Weights are approximately normal (σ = 0.02; the mean of four
/// uniforms from a seeded SplitMix64, using only exact IEEE arithmetic so every platform gets the
/// same bytes).
public enum DemoModel {
    /// Hidden size.
    public static let hiddenSize = 256
    /// MLP size.
    public static let intermediateSize = 512
    /// Vocabulary size.
    public static let vocabSize = 1024
    /// Decoder layers.
    public static let layerCount = 4

    /// The tensors (name, shape) in file order.
    public static var tensorShapes: [(String, [Int])] {
        let h = hiddenSize, m = intermediateSize
        var list: [(String, [Int])] = [("model.embed_tokens.weight", [vocabSize, h])]
        for i in 0..<layerCount {
            let p = "model.layers.\(i)."
            list += [
                (p + "input_layernorm.weight", [h]),
                (p + "self_attn.q_proj.weight", [h, h]),
                (p + "self_attn.k_proj.weight", [h, h]),
                (p + "self_attn.v_proj.weight", [h, h]),
                (p + "self_attn.o_proj.weight", [h, h]),
                (p + "post_attention_layernorm.weight", [h]),
                (p + "mlp.gate_proj.weight", [m, h]),
                (p + "mlp.up_proj.weight", [m, h]),
                (p + "mlp.down_proj.weight", [h, m]),
            ]
        }
        list += [("model.norm.weight", [h]), ("lm_head.weight", [vocabSize, h])]
        return list
    }

    /// The `config.json` equivalent.
    public static var config: JSONValue {
        .object([
            ("model_type", .string("ternq-demo")),
            ("vocab_size", .number(String(vocabSize))),
            ("hidden_size", .number(String(hiddenSize))),
            ("num_hidden_layers", .number(String(layerCount))),
        ])
    }

    /// The model as safetensors bytes.
    public static func safetensorsBytes(seed: UInt64 = 0x7E4A_5EED) throws -> [UInt8] {
        var entries = tensorShapes.map { SafetensorsWriter.Entry(name: $0.0, dtype: .f32, shape: $0.1) }
        entries.append(.init(name: "model.position_ids", dtype: .i64, shape: [1, 128]))
        let sink = MemorySink()
        let writer = try SafetensorsWriter(sink: sink, entries: entries, metadata: ["format": "pt", "source": "ternq demo model"])
        var rng = SplitMix64(seed: seed)
        for (name, shape) in tensorShapes {
            let count = shape.reduce(1, *)
            var values = [Float](repeating: 0, count: count)
            let isNorm = name.contains("norm")
            for i in 0..<count {
                // Mean of 4 uniforms in [0,1): variance 1/48; scaled to σ = 0.02.
                var s: Float = 0
                for _ in 0..<4 { s += Float(rng.next() >> 40) * 0x1p-24 }
                let g = (s - 2) * 0.5 * 6.928203 * 0.02  // (mean − 0.5)·√48·σ
                values[i] = isNorm ? 1 + g : g
            }
            try values.withUnsafeBytes { try writer.write($0) }
        }
        let positions = (0..<128).map { Int64($0).littleEndian }
        try positions.withUnsafeBytes { try writer.write($0) }
        try writer.finish()
        return sink.bytes
    }

    /// The demo model as an in-memory checkpoint named `<demo>`.
    public static func checkpoint() throws -> SafetensorsCheckpoint {
        let storage = ByteStorage(copying: try safetensorsBytes(), name: "<demo model>")
        return SafetensorsCheckpoint(file: try SafetensorsFile(storage: storage), config: config)
    }
}
