import Foundation
import Testing
import TernaryQuant
import TernaryQuantTestSupport
@testable import TernaryQuantCore
@testable import TernaryQuantFormats
@testable import TernaryQuantOpenCL
@testable import TernaryQuantPipeline

/// Builds small GGUF files for the pipeline tests (header by `GGUFFormat.header`, data padded to 32).
enum GGUFTestFile {
    struct Tensor {
        var name: String
        var dimensions: [Int]
        var type: GGMLType
        var bytes: [UInt8]
    }

    static func make(_ metadata: [(String, GGUFValue)], _ tensors: [Tensor]) -> [UInt8] {
        let (header, _) = GGUFFormat.header(metadata: metadata, tensors: tensors.map { ($0.name, $0.dimensions, $0.type, $0.bytes.count) })
        var out = header
        for t in tensors {
            out += t.bytes
            out += [UInt8](repeating: 0, count: (32 - t.bytes.count % 32) % 32)
        }
        return out
    }

    static func f32(_ values: [Float]) -> [UInt8] { SafetensorsBytes.floats(values) }
    static func f16(_ values: [Float]) -> [UInt8] {
        values.flatMap { v -> [UInt8] in let h = HalfFloat.bits(from: v); return [UInt8(h & 0xFF), UInt8(h >> 8)] }
    }
    static func bf16(_ values: [Float]) -> [UInt8] {
        values.flatMap { v -> [UInt8] in let b = UInt16(v.bitPattern >> 16); return [UInt8(b & 0xFF), UInt8(b >> 8)] }
    }

    /// Exact float32 values of F32/F16/BF16 bytes.
    static func floats(_ bytes: [UInt8], _ type: GGMLType) -> [Float] {
        switch type {
        case .f32: return stride(from: 0, to: bytes.count, by: 4).map { i in
            Float(bitPattern: UInt32(bytes[i]) | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2]) << 16 | UInt32(bytes[i + 3]) << 24) }
        case .f16: return stride(from: 0, to: bytes.count, by: 2).map { i in HalfFloat.float(fromBits: UInt16(bytes[i]) | UInt16(bytes[i + 1]) << 8) }
        case .bf16: return stride(from: 0, to: bytes.count, by: 2).map { i in Float(bitPattern: (UInt32(bytes[i]) | UInt32(bytes[i + 1]) << 8) << 16) }
        default: return []
        }
    }

    /// Deterministic pseudo-random weights of magnitude about `scale`.
    static func weights(_ count: Int, seed: Int, scale: Float = 0.02) -> [Float] {
        (0..<count).map { i in Float((i &* 7919 &+ seed &* 104_729) % 2001 - 1000) / 1000 * scale }
    }

    /// The values a tensor of the output decodes to (TQ blocks via `TernaryBlocks.decode`).
    static func decode(_ bytes: [UInt8], _ info: GGUFTensorInfo) -> [Float] {
        switch info.type {
        case .tq1_0, .tq2_0:
            let blockBytes = info.type.blockLayout.bytes
            var out: [Float] = []
            for b in 0..<(bytes.count / blockBytes) {
                let (t, d) = TernaryBlocks.decode(info.type, block: Array(bytes[(b * blockBytes)..<((b + 1) * blockBytes)]))
                let scale = HalfFloat.float(fromBits: d)
                out += t.map { Float($0) * scale }
            }
            return out
        default:
            return floats(bytes, info.type)
        }
    }
}

@Suite("Pipeline: GGUF rules")
struct PipelineGGUFRuleTests {
    @Test func defaultSelectionByLlamaCppNames() {
        let s = TensorSelection()
        func q(_ name: String, _ shape: [Int] = [8, 256], _ type: ElementType? = .float32) -> Bool {
            s.decide(name: name, elementType: type, dtypeLabel: "F32", shape: shape, naming: .llamaCpp).quantize
        }
        for name in ["blk.0.attn_q.weight", "blk.0.attn_k.weight", "blk.0.attn_v.weight", "blk.3.attn_qkv.weight",
                     "blk.0.attn_output.weight", "blk.0.ffn_gate.weight", "blk.0.ffn_up.weight", "blk.11.ffn_down.weight",
                     "blk.0.ffn_gate_shexp.weight", "blk.0.ffn_down_shexp.weight"] {
            #expect(q(name), "\(name)")
        }
        #expect(q("blk.0.ffn_up_exps.weight", [4, 8, 256]))
        for name in ["token_embd.weight", "output.weight", "output_norm.weight", "blk.0.attn_norm.weight",
                     "blk.0.ffn_norm.weight", "blk.0.ffn_gate_inp.weight", "blk.0.attn_q_norm.weight", "blk.x.attn_q.weight",
                     "blk.0.attn_q.bias", "blk..weight", "model.layers.0.self_attn.q_proj.weight"] {
            #expect(!q(name), "\(name)")
        }
        #expect(!q("blk.0.attn_q.weight", [256]))
        #expect(!q("blk.0.attn_q.weight", [8, 256], nil))
        let custom = TensorSelection(include: ["output.weight"], exclude: ["blk.0.*"])
        #expect(custom.decide(name: "output.weight", elementType: .float16, dtypeLabel: "F16", shape: [8, 256], naming: .llamaCpp).quantize)
        #expect(!custom.decide(name: "blk.0.attn_q.weight", elementType: .float16, dtypeLabel: "F16", shape: [8, 256], naming: .llamaCpp).quantize)
    }

    @Test func safeHalfScaleRule() {
        func facts(_ s: Float, exact: Bool = false) -> TernaryFacts { TernaryFacts(scale: s, absmean: s, alreadyTernary: exact, sparsity: 0) }
        let tq = GGUFTernaryStorage.choose(facts(0.0158985), blockEligible: true, blockType: .tq2_0)
        #expect(tq.type == .tq2_0 && tq.storedScale == HalfFloat.float(fromBits: HalfFloat.bits(from: 0.0158985)) && tq.note == nil)
        #expect(GGUFTernaryStorage.choose(facts(0.02), blockEligible: false, blockType: .tq1_0).type == .f16)
        for unsafe: Float in [1e-8, 3e-5, 65520, 1e6] {  // f16 zero, subnormal, infinite
            let s = GGUFTernaryStorage.choose(facts(unsafe), blockEligible: true, blockType: .tq2_0)
            #expect(s.type == .f32 && s.storedScale == unsafe && s.note?.contains("F32") == true, "\(unsafe)")
            #expect(GGUFTernaryStorage.choose(facts(unsafe), blockEligible: false, blockType: .tq2_0).type == .f32)
        }
        #expect(GGUFTernaryStorage.choose(facts(65504), blockEligible: true, blockType: .tq2_0).type == .tq2_0)
        #expect(GGUFTernaryStorage.choose(facts(6.103515625e-05), blockEligible: true, blockType: .tq2_0).type == .tq2_0)  // 2^-14
        // Already ternary: lossless only when the magnitude is exactly an f16.
        #expect(GGUFTernaryStorage.choose(facts(0.25, exact: true), blockEligible: true, blockType: .tq2_0).type == .tq2_0)
        #expect(GGUFTernaryStorage.choose(facts(0.1, exact: true), blockEligible: true, blockType: .tq2_0).type == .f32)
        #expect(GGUFTernaryStorage.choose(facts(0.1, exact: true), blockEligible: false, blockType: .tq2_0).type == .f32)
        #expect(GGUFTernaryStorage.choose(facts(0.1), blockEligible: true, blockType: .tq2_0).type == .tq2_0)
    }

    @Test func commonMagnitudeDetection() throws {
        func bytes(_ v: [Float], _ t: ElementType) -> [UInt8] {
            t == .float32 ? GGUFTestFile.f32(v) : (t == .float16 ? GGUFTestFile.f16(v) : GGUFTestFile.bf16(v))
        }
        func magnitude(_ v: [Float], _ t: ElementType) throws -> Float? {
            let input = try TensorInput(name: "w", shape: [v.count], elementType: t, copying: bytes(v, t))
            var packed = [UInt8](repeating: 0, count: TritLayout.packed2Bit.byteCount(forTrits: v.count))
            return try packed.withUnsafeMutableBytes { try CPUBackend().quantizeIfAlreadyTernary(input, into: $0) }?.magnitude
        }
        for t in ElementType.allCases {
            #expect(try magnitude([0.5, -0.5, 0, -0.0, 0.5], t) == 0.5)
            #expect(try magnitude([0.5, -0.25, 0], t) == nil)
            #expect(try magnitude([0, 0, 0], t) == nil)
            #expect(try magnitude([.infinity, -.infinity], t) == nil)
            #expect(bytes([1, .nan], t).withUnsafeBytes { ElementConversion.firstNonFinite($0, as: t) } == 1)
            #expect(bytes([1, 65504, -2], t).withUnsafeBytes { ElementConversion.firstNonFinite($0, as: t) } == nil)
        }
        // BF16 rounding of a scale: ties to even.
        #expect(ElementConversion.bfloat16Bits(Float(bitPattern: 0x3F80_8000)) == 0x3F80)
        #expect(ElementConversion.bfloat16Bits(Float(bitPattern: 0x3F81_8000)) == 0x3F82)
        #expect(ElementConversion.bfloat16Bits(Float(bitPattern: 0x3F80_8001)) == 0x3F81)
    }
}

@Suite("Pipeline: GGUF input and output", .serialized)
struct PipelineGGUFJobTests {
    let job = CheckpointQuantizer(backend: CPUBackend())

    static let metadata: [(String, GGUFValue)] = [
        ("general.architecture", .string("llama")),
        ("general.name", .string("tiny")),
        ("general.file_type", .uint32(1)),
        ("llama.block_count", .uint32(1)),
        ("llama.embedding_length", .uint32(256)),
        ("llama.attention.layer_norm_rms_epsilon", .float32(1e-5)),
        ("tokenizer.ggml.tokens", .array(8, [.string("a"), .string("b"), .string("c"), .string("d")])),
        ("tokenizer.ggml.add_bos_token", .bool(true)),
        ("x.signed", .int64(-3)),
    ]

    struct Model {
        var tensors: [GGUFTestFile.Tensor]
        var values: [String: [Float]]
    }

    /// A one-block llama-named model: F32/F16/BF16 weights, one row length of 96 (not a multiple of 256),
    /// an already-ternary F16 tensor, a tiny-scale tensor (f16(α) subnormal), a norm and a Q8_0 tensor.
    static func model() -> Model {
        var tensors: [GGUFTestFile.Tensor] = []
        var values: [String: [Float]] = [:]
        func add(_ name: String, _ dims: [Int], _ type: GGMLType, _ v: [Float]) {
            let bytes = type == .f32 ? GGUFTestFile.f32(v) : (type == .f16 ? GGUFTestFile.f16(v) : GGUFTestFile.bf16(v))
            values[name] = GGUFTestFile.floats(bytes, type)
            tensors.append(.init(name: name, dimensions: dims, type: type, bytes: bytes))
        }
        add("token_embd.weight", [256, 4], .f32, GGUFTestFile.weights(1024, seed: 1))
        add("blk.0.attn_norm.weight", [256], .f32, [Float](repeating: 1, count: 256))
        add("blk.0.attn_q.weight", [256, 4], .f32, GGUFTestFile.weights(1024, seed: 2))
        add("blk.0.attn_k.weight", [256, 2], .f16, (0..<512).map { i in i % 3 == 0 ? 0 : (i % 5 < 2 ? -0.125 : 0.125) })
        add("blk.0.attn_v.weight", [256, 2], .f32, GGUFTestFile.weights(512, seed: 3, scale: 2e-6))
        add("blk.0.ffn_up.weight", [256, 3], .bf16, GGUFTestFile.weights(768, seed: 4))
        add("blk.0.ffn_down.weight", [96, 4], .f16, GGUFTestFile.weights(384, seed: 5))
        var q8 = [UInt8](repeating: 0, count: 34 * 16)
        for i in 0..<q8.count { q8[i] = UInt8(truncatingIfNeeded: i &* 31) }
        tensors.append(.init(name: "blk.0.ffn_gate.weight", dimensions: [256, 2], type: .q8_0, bytes: q8))
        add("output.weight", [256, 4], .f16, GGUFTestFile.weights(1024, seed: 6))
        return Model(tensors: tensors, values: values)
    }

    func write(_ bytes: [UInt8], _ path: String) throws { try Data(bytes).write(to: URL(fileURLWithPath: path)) }

    func contents(_ path: String) throws -> (GGUFFormat.Contents, [UInt8]) {
        let bytes = try #require(FileManager.default.contents(atPath: path))
        let c = try Array(bytes).withUnsafeBytes { try GGUFFormat.decode($0, file: path) }
        return (c, Array(bytes))
    }

    func data(_ c: GGUFFormat.Contents, _ bytes: [UInt8], _ name: String) throws -> (GGUFTensorInfo, [UInt8]) {
        let info = try #require(c.tensors.first { $0.name == name }, "\(name)")
        return (info, Array(bytes[(c.dataStart + info.offset)..<(c.dataStart + info.offset + info.byteCount)]))
    }

    @Test(arguments: [GGUFTernaryType.tq2_0, .tq1_0])
    func ggufToGGUF(type: GGUFTernaryType) throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let m = Self.model()
        try write(GGUFTestFile.make(Self.metadata, m.tensors), dir + "/in.gguf")
        let report = try job.run(try CheckpointSources.open(path: dir + "/in.gguf"), outputPath: dir + "/out.gguf",
                                 options: QuantizationOptions(format: .gguf, ggufType: type))
        let (c, bytes) = try contents(dir + "/out.gguf")
        // Every input KV with the same key, type and value, in order; file_type replaced in place.
        var expected = Self.metadata
        expected[2].1 = .uint32(type == .tq2_0 ? 37 : 36)
        #expect(Array(c.metadata.prefix(expected.count)).map { "\($0.0)=\($0.1)" } == expected.map { "\($0.0)=\($0.1)" })
        #expect(c.metadata.dropFirst(expected.count).map(\.0) == ["general.quantization_version", "ternq.scheme", "ternq.source"])
        #expect(c.value("general.quantization_version") == .uint32(2))
        #expect(c.tensors.map(\.name) == m.tensors.map(\.name))
        #expect(c.tensors.map(\.dimensions) == m.tensors.map(\.dimensions))
        let types = Dictionary(uniqueKeysWithValues: c.tensors.map { ($0.name, $0.type) })
        #expect(types["blk.0.attn_q.weight"] == type.ggmlType)
        #expect(types["blk.0.ffn_up.weight"] == type.ggmlType)
        #expect(types["blk.0.attn_k.weight"] == type.ggmlType)
        #expect(types["blk.0.ffn_down.weight"] == .f16)
        #expect(types["blk.0.attn_v.weight"] == .f32)
        #expect(types["token_embd.weight"] == .f32 && types["output.weight"] == .f16 && types["blk.0.ffn_gate.weight"] == .q8_0)
        let rows = Dictionary(uniqueKeysWithValues: report.layers.map { ($0.name, $0) })
        for t in m.tensors {
            let (info, out) = try data(c, bytes, t.name)
            let row = try #require(rows[t.name])
            guard row.action == .quantized else {
                #expect(out == t.bytes, "\(t.name) must pass through byte for byte")
                continue
            }
            let w = try #require(m.values[t.name])
            let ref = ReferenceQuantizer.quantize(w)
            let decoded = GGUFTestFile.decode(out, info)
            let common = Set(w.filter { $0 != 0 }.map(\.magnitude))
            let scale: Float = common.count == 1 ? common.first ?? 0 : ref.scale
            #expect(row.scale == scale, "\(t.name)")
            let stored: Float = info.type == .f32 ? scale : HalfFloat.float(fromBits: HalfFloat.bits(from: scale))
            #expect(decoded == ref.trits.map { Float($0) * stored }, "\(t.name): values must be exactly s·t")
            // MSE against the stored values.
            let mse = zip(w, decoded).reduce(0.0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) } / Double(w.count)
            #expect(abs((row.mse ?? -1) - mse) <= 1e-12 * max(1, mse), "\(t.name)")
        }
        #expect(rows["blk.0.attn_k.weight"]?.notes?.contains { $0.hasPrefix("already ternary") } == true)
        #expect(rows["blk.0.attn_k.weight"]?.mse == 0)
        #expect(rows["blk.0.ffn_down.weight"]?.notes?.contains { $0.contains("ternary as F16") } == true)
        #expect(rows["blk.0.attn_v.weight"]?.notes?.contains { $0.contains("ternary as F32") } == true)
        #expect(rows["blk.0.ffn_gate.weight"]?.notes?.contains { $0.contains("Q8_0 passed through") } == true)
        #expect(report.inputFormat == .gguf)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).sorted() == ["in.gguf", "out.gguf"])
        // The in-memory path (facts gathered first) writes the same bytes.
        let sink = MemorySink()
        _ = try job.write(try CheckpointSources.open(path: dir + "/in.gguf"), to: sink, outputName: "m.gguf",
                          options: QuantizationOptions(format: .gguf, ggufType: type))
        #expect(sink.bytes == bytes)
    }

    @Test func fallbackKeepKeepsOriginalValues() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let m = Self.model()
        try write(GGUFTestFile.make(Self.metadata, m.tensors), dir + "/in.gguf")
        let sink = MemorySink()
        let report = try job.write(try CheckpointSources.open(path: dir + "/in.gguf"), to: sink, outputName: "o.gguf",
                                   options: QuantizationOptions(format: .gguf, fallback: .keep))
        let c = try sink.bytes.withUnsafeBytes { try GGUFFormat.decode($0, file: "o.gguf") }
        let (info, out) = try data(c, sink.bytes, "blk.0.ffn_down.weight")
        #expect(info.type == .f16 && out == m.tensors.first { $0.name == "blk.0.ffn_down.weight" }?.bytes)
        #expect(report.layers.first { $0.name == "blk.0.ffn_down.weight" }?.action == .kept)
    }

    @Test func splitInputBecomesOneFile() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let m = Self.model()
        let first = Array(m.tensors.prefix(4)), second = Array(m.tensors.dropFirst(4))
        let split: [(String, GGUFValue)] = [("split.no", .uint16(0)), ("split.count", .uint16(2)), ("split.tensors.count", .int32(Int32(m.tensors.count)))]
        try write(GGUFTestFile.make(Self.metadata + split, first), dir + "/m-00001-of-00002.gguf")
        try write(GGUFTestFile.make([("split.no", .uint16(1)), ("split.count", .uint16(2))], second), dir + "/m-00002-of-00002.gguf")
        let source = try CheckpointSources.open(path: dir + "/m-00001-of-00002.gguf")
        #expect(source.inputFiles.count == 2)
        // Neither part may be the output, with --force too.
        for part in ["m-00001-of-00002.gguf", "m-00002-of-00002.gguf"] {
            #expect(throws: JobError.self) { try job.run(source, outputPath: dir + "/" + part, options: QuantizationOptions(format: .gguf, overwrite: true)) }
        }
        _ = try job.run(source, outputPath: dir + "/one.gguf", options: QuantizationOptions(format: .gguf))
        let (c, _) = try contents(dir + "/one.gguf")
        #expect(!c.metadata.contains { $0.0.hasPrefix("split.") })
        #expect(c.tensors.map(\.name) == m.tensors.map(\.name))
        #expect(c.value("general.file_type") == .uint32(37))
    }

    @Test func dequantizeGGUF() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let m = Self.model()
        try write(GGUFTestFile.make(Self.metadata, m.tensors), dir + "/in.gguf")
        let source = try CheckpointSources.open(path: dir + "/in.gguf")
        #expect(throws: JobError.self) { try job.run(source, outputPath: dir + "/x.safetensors", options: QuantizationOptions(format: .safetensors, dequantize: true)) }
        let report = try job.run(source, outputPath: dir + "/d.gguf", options: QuantizationOptions(format: .gguf, dequantize: true))
        let (c, bytes) = try contents(dir + "/d.gguf")
        #expect(Array(c.metadata.prefix(Self.metadata.count)).map { "\($0.0)=\($0.1)" } == Self.metadata.map { "\($0.0)=\($0.1)" })
        #expect(c.value("ternq.dequantized") == .bool(true))
        #expect(c.tensors.map(\.type) == m.tensors.map(\.type))
        for t in m.tensors {
            let (info, out) = try data(c, bytes, t.name)
            let row = try #require(report.layers.first { $0.name == t.name })
            guard row.action == .quantized else {
                #expect(out == t.bytes)
                continue
            }
            let w = try #require(m.values[t.name])
            let ref = ReferenceQuantizer.quantize(w)
            let common = Set(w.filter { $0 != 0 }.map(\.magnitude))
            let scale: Float = common.count == 1 ? common.first ?? 0 : ref.scale
            let stored: Float = switch info.type {
            case .f16: HalfFloat.float(fromBits: HalfFloat.bits(from: scale))
            case .bf16: Float(bitPattern: UInt32(ElementConversion.bfloat16Bits(scale)) << 16)
            default: scale
            }
            #expect(GGUFTestFile.floats(out, info.type) == ref.trits.map { Float($0) * stored }, "\(t.name)")
        }
        // Already ternary in its own dtype: the dequantized tensor is the input, bit for bit but for -0.
        let (_, k) = try data(c, bytes, "blk.0.attn_k.weight")
        #expect(GGUFTestFile.floats(k, .f16) == m.values["blk.0.attn_k.weight"])
    }

    /// Our own dequantized export is already ternary: quantizing it again stores exactly its values.
    @Test func dequantizedExportRequantizesLosslessly() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try write(GGUFTestFile.make(Self.metadata, Self.model().tensors), dir + "/in.gguf")
        _ = try job.run(try CheckpointSources.open(path: dir + "/in.gguf"), outputPath: dir + "/d.gguf", options: QuantizationOptions(format: .gguf, dequantize: true))
        let report = try job.run(try CheckpointSources.open(path: dir + "/d.gguf"), outputPath: dir + "/q.gguf", options: QuantizationOptions(format: .gguf))
        let (d, dBytes) = try contents(dir + "/d.gguf")
        let (q, qBytes) = try contents(dir + "/q.gguf")
        for row in report.layers where row.action == .quantized {
            let (dInfo, dData) = try data(d, dBytes, row.name)
            let (qInfo, qData) = try data(q, qBytes, row.name)
            #expect(row.notes?.first?.hasPrefix("already ternary") == true && row.mse == 0, "\(row.name)")
            #expect(GGUFTestFile.decode(qData, qInfo) == GGUFTestFile.floats(dData, dInfo.type).map { $0 == 0 ? 0 : $0 }, "\(row.name)")
        }
    }

    @Test func dequantizeSafetensors() throws {
        let ckpt = try TinyModel.checkpoint()
        let sink = MemorySink()
        let report = try job.write(ckpt, to: sink, outputName: "d.safetensors", options: QuantizationOptions(format: .safetensors, dequantize: true))
        let f = try SafetensorsBytes.open(sink.bytes)
        #expect(f.tensors.map(\.name).sorted() == ckpt.tensors.map(\.info.name).sorted())
        #expect(f.metadata["format"] == "pt" && f.metadata["ternq.dequantized"]?.contains("model.layers.0.odd.weight") == true)
        for t in ckpt.tensors {
            let out = try #require(f.info(named: t.info.name))
            #expect(out.dtype == t.info.dtype && out.shape == t.info.shape)
            let row = try #require(report.layers.first { $0.name == t.info.name })
            guard row.action == .quantized else {
                #expect(Array(f.data(for: out)) == Array(t.bytes))
                continue
            }
            let type: GGMLType = t.info.dtype == .f32 ? .f32 : (t.info.dtype == .f16 ? .f16 : .bf16)
            let w = GGUFTestFile.floats(Array(t.bytes), type)
            let ref = ReferenceQuantizer.quantize(w)
            let stored: Float = type == .f32 ? ref.scale : (type == .f16 ? HalfFloat.float(fromBits: HalfFloat.bits(from: ref.scale))
                                                                          : Float(bitPattern: UInt32(ElementConversion.bfloat16Bits(ref.scale)) << 16))
            #expect(GGUFTestFile.floats(Array(f.data(for: out)), type) == ref.trits.map { Float($0) * stored }, "\(t.info.name)")
        }
    }

    @Test func safetensorsAlreadyTernaryKeepsItsMagnitude() throws {
        let values: [Float] = (0..<512).map { i in i % 4 == 0 ? 0 : (i % 3 == 0 ? -0.5 : 0.5) }
        let sink = MemorySink()
        let w = try SafetensorsWriter(sink: sink, entries: [.init(name: "a.weight", dtype: .bf16, shape: [2, 256])])
        try w.write(bytes: GGUFTestFile.bf16(values))
        let ckpt = SafetensorsCheckpoint(file: try SafetensorsFile(storage: ByteStorage(copying: sink.bytes, name: "t.safetensors")))
        for format in [OutputFormat.tern, .safetensors, .gguf] {
            let report = try job.write(ckpt, to: MemorySink(), outputName: "o", options: QuantizationOptions(format: format))
            let row = try #require(report.layers.first)
            #expect(row.scale == 0.5 && row.mse == 0 && row.absmean == ReferenceQuantizer.quantize(values).scale, "\(format)")
            #expect(row.notes?.first?.hasPrefix("already ternary") == true)
        }
    }

    @Test func ggufToSafetensorsAndTern() throws {
        let m = Self.model()
        let bytes = GGUFTestFile.make(Self.metadata, m.tensors)
        let source = GGUFSource(try GGUFCheckpoint(path: try {
            let dir = try makeTemporaryDirectory()
            try write(bytes, dir + "/in.gguf")
            return dir + "/in.gguf"
        }()))
        defer { try? FileManager.default.removeItem(atPath: (source.path as NSString).deletingLastPathComponent) }
        let sink = MemorySink()
        let report = try job.write(source, to: sink, outputName: "o.safetensors", options: QuantizationOptions(format: .safetensors))
        let f = try SafetensorsBytes.open(sink.bytes)
        #expect(f.info(named: "blk.0.ffn_gate.weight") == nil)
        #expect(report.layers.first { $0.name == "blk.0.ffn_gate.weight" }?.action == .skipped)
        #expect(f.info(named: "blk.0.attn_q.weight")?.shape == [4, 64] && f.info(named: "blk.0.attn_q.weight.scale") != nil)
        let embed = try #require(f.info(named: "token_embd.weight"))
        #expect(embed.shape == [4, 256] && embed.dtype == .f32 && Array(f.data(for: embed)) == m.tensors[0].bytes)
        let tern = MemorySink()
        _ = try job.write(source, to: tern, outputName: "o.tern", options: QuantizationOptions(format: .tern))
        let model = try tern.bytes.withUnsafeBytes { try TernFormat.decode($0, file: "o.tern") }
        #expect(model.layers.map(\.name) == ["blk.0.attn_q.weight", "blk.0.attn_k.weight", "blk.0.attn_v.weight", "blk.0.ffn_up.weight", "blk.0.ffn_down.weight"])
        #expect(model.architecture == "llama" && model.hiddenSize == 256 && model.numLayers == 1 && model.vocabSize == 4)
        #expect(model.layers.first { $0.name == "blk.0.attn_k.weight" }?.scale == 0.125)
    }

    @Test func otherAlignmentIsWrittenAs32() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let w = GGUFTestFile.weights(512, seed: 9)
        let tensor = GGUFTestFile.Tensor(name: "blk.0.attn_q.weight", dimensions: [256, 2], type: .f32, bytes: GGUFTestFile.f32(w))
        var (header, _) = GGUFFormat.header(metadata: [("general.alignment", .uint32(64))], tensors: [(tensor.name, tensor.dimensions, .f32, 2048)])
        header += [UInt8](repeating: 0, count: (64 - header.count % 64) % 64)
        try write(header + tensor.bytes, dir + "/a64.gguf")
        let report = try job.run(try CheckpointSources.open(path: dir + "/a64.gguf"), outputPath: dir + "/o.gguf", options: QuantizationOptions(format: .gguf))
        let (c, bytes) = try contents(dir + "/o.gguf")
        #expect(c.value("general.alignment") == .uint32(32) && c.alignment == 32)
        #expect(report.notes.contains { $0.contains("general.alignment 64") })
        let (info, out) = try data(c, bytes, tensor.name)
        let ref = ReferenceQuantizer.quantize(w)
        #expect(GGUFTestFile.decode(out, info) == ref.trits.map { Float($0) * HalfFloat.float(fromBits: HalfFloat.bits(from: ref.scale)) })
    }

    /// The KVs of a file llama.cpp's converter wrote (Tests/Fixtures/gguf), with tensors added, survive
    /// byte for byte (re-encoded entry by entry) except the documented quantization keys.
    @Test func llamaCppKVsSurviveByteForByte() throws {
        let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/gguf/ggml-vocab-bert-bge.gguf").path
        let vocab = try GGUFFile(path: fixture)
        #expect(vocab.metadata.count > 10)
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let m = Self.model()
        try write(GGUFTestFile.make(vocab.metadata.map { ($0.key, $0.value) }, m.tensors), dir + "/in.gguf")
        _ = try job.run(try CheckpointSources.open(path: dir + "/in.gguf"), outputPath: dir + "/out.gguf", options: QuantizationOptions(format: .gguf))
        let out = try GGUFFile(path: dir + "/out.gguf")
        let changed: Set<String> = ["general.file_type", "general.quantization_version", "ternq.scheme", "ternq.source"]
        let kept = out.metadata.filter { !changed.contains($0.key) }
        #expect(kept.map(\.key) == vocab.metadata.filter { !changed.contains($0.key) }.map(\.key))
        #expect(kept.map(GGUFFormat.encode) == vocab.metadata.filter { !changed.contains($0.key) }.map(GGUFFormat.encode))
        #expect(out.value(forKey: "general.file_type") == .uint32(37))
    }

    @Test func scalarTensorKeepsZeroDimensions() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let tensors: [GGUFTestFile.Tensor] = [.init(name: "blk.0.scale", dimensions: [], type: .f32, bytes: GGUFTestFile.f32([0.5])),
                                              .init(name: "blk.0.attn_q.weight", dimensions: [256, 1], type: .f32, bytes: GGUFTestFile.f32(GGUFTestFile.weights(256, seed: 3)))]
        try write(GGUFTestFile.make(Self.metadata, tensors), dir + "/s.gguf")
        for include in [[], ["blk.0.scale"]] {
            _ = try job.run(try CheckpointSources.open(path: dir + "/s.gguf"), outputPath: dir + "/o.gguf",
                            options: QuantizationOptions(format: .gguf, selection: TensorSelection(include: include), overwrite: true))
            let (c, bytes) = try contents(dir + "/o.gguf")
            let (info, out) = try data(c, bytes, "blk.0.scale")
            #expect(info.dimensions == [] && info.type == (include.isEmpty ? .f32 : .f16))
            #expect(GGUFTestFile.decode(out, info) == [0.5])
        }
    }

    @Test func badGGUFInputLeavesNoOutput() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let good = GGUFTestFile.make(Self.metadata, Self.model().tensors)
        for (name, bytes) in [("truncated.gguf", Array(good.prefix(good.count - 40))), ("magic.gguf", [UInt8](repeating: 0x47, count: 64))] {
            try write(bytes, dir + "/" + name)
            #expect(throws: FormatError.self) { _ = try CheckpointSources.open(path: dir + "/" + name) }
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).sorted() == ["magic.gguf", "truncated.gguf"])
    }
}

@Suite("Pipeline: data safety", .serialized)
struct PipelineSafetyTests {
    let job = CheckpointQuantizer(backend: CPUBackend())

    @Test func hugeSparseTensorIsRefusedBeforeAllocating() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // One 1 TiB F32 tensor in a sparse file: header only, then a hole.
        let rows = 1 << 20, cols = 1 << 18
        let bytes = rows * cols * 4
        let header = "{\"big.weight\":{\"dtype\":\"F32\",\"shape\":[\(rows),\(cols)],\"data_offsets\":[0,\(bytes)]}}"
        let path = dir + "/big.safetensors"
        try Data(SafetensorsBytes.make(header: header, data: [])).write(to: URL(fileURLWithPath: path))
        #expect(truncate(path, off_t(8 + header.utf8.count + bytes)) == 0)
        let source = try CheckpointSources.open(path: path)
        for format in [OutputFormat.gguf, .tern] {
            do {
                _ = try job.run(source, outputPath: dir + "/out." + format.rawValue, options: QuantizationOptions(format: format))
                Issue.record("a 1 TiB tensor was accepted")
            } catch {
                let text = String(describing: error)
                #expect(text.contains("big.weight") && text.contains("physical memory") && !text.contains("--"), "\(text)")
                #expect((error as? any RemediableError)?.remedy == .excludeTensor("big.weight"))
            }
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["big.safetensors"])
    }

    @Test func everyInputFileIsProtected() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let sink = MemorySink()
        let w = try SafetensorsWriter(sink: sink, entries: [.init(name: "a.weight", dtype: .f32, shape: [2, 4])])
        try w.write(bytes: SafetensorsBytes.floats([1, 2, 3, 4, -1, -2, -3, -4]))
        try Data(sink.bytes).write(to: URL(fileURLWithPath: dir + "/s1.safetensors"))
        let index = "{\"weight_map\":{\"a.weight\":\"s1.safetensors\"}}"
        try Data(index.utf8).write(to: URL(fileURLWithPath: dir + "/model.safetensors.index.json"))
        try Data("{\"model_type\":\"llama\"}".utf8).write(to: URL(fileURLWithPath: dir + "/config.json"))
        for opened in [dir, dir + "/model.safetensors.index.json"] {
            let source = try CheckpointSources.open(path: opened)
            for target in ["model.safetensors.index.json", "s1.safetensors", "config.json"] {
                do {
                    _ = try job.run(source, outputPath: dir + "/" + target, options: QuantizationOptions(format: .safetensors, overwrite: true))
                    Issue.record("\(target) was overwritten")
                } catch {
                    #expect(String(describing: error).contains("input file"), "\(error)")
                }
            }
        }
        #expect(try String(contentsOfFile: dir + "/model.safetensors.index.json", encoding: .utf8) == index)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).sorted() == ["config.json", "model.safetensors.index.json", "s1.safetensors"])
    }

    @Test func nonFiniteKeptTensorIsReported() throws {
        let sink = MemorySink()
        let w = try SafetensorsWriter(sink: sink, entries: [.init(name: "model.norm.weight", dtype: .f32, shape: [4]),
                                                            .init(name: "model.embed_tokens.weight", dtype: .f16, shape: [2, 2])])
        try w.write(bytes: SafetensorsBytes.floats([1, 1, .infinity, 1]))
        try w.write(bytes: GGUFTestFile.f16([1, .nan, 0, 0]))
        let ckpt = SafetensorsCheckpoint(file: try SafetensorsFile(storage: ByteStorage(copying: sink.bytes, name: "n.safetensors")))
        let report = try job.write(ckpt, to: MemorySink(), outputName: "o.safetensors", options: QuantizationOptions(format: .safetensors))
        let warnings = report.warnings ?? []
        #expect(warnings.count == 2)
        #expect(warnings.first?.contains("model.norm.weight") == true && warnings.first?.contains("element 2") == true)
        #expect(warnings.last?.contains("model.embed_tokens.weight") == true && warnings.last?.contains("element 1") == true)
        #expect(report.notes.contains { $0.contains("model.norm.weight") })
        #expect(report.layers.allSatisfy { $0.notes?.contains { $0.hasPrefix("warning:") } == true })
    }
}
