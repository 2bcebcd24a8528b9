import Foundation
import Testing
import TernaryQuant
import TernaryQuantTestSupport
@testable import TernaryQuantCore
@testable import TernaryQuantFormats
@testable import TernaryQuantOpenCL
@testable import TernaryQuantPipeline

@Suite("Pipeline: selection and demo model")
struct PipelineSelectionTests {
    @Test func defaultRuleAndOverrides() {
        let s = TensorSelection()
        #expect(s.decide(name: "model.layers.0.self_attn.q_proj.weight", dtype: .bf16, shape: [4, 4]).quantize)
        #expect(!s.decide(name: "model.embed_tokens.weight", dtype: .f32, shape: [4, 4]).quantize)
        #expect(!s.decide(name: "model.layers.0.input_layernorm.weight", dtype: .f32, shape: [4, 4]).quantize)
        #expect(!s.decide(name: "lm_head.weight", dtype: .f32, shape: [4, 4]).quantize)
        #expect(!s.decide(name: "x.bias", dtype: .f32, shape: [4, 4]).quantize)
        #expect(!s.decide(name: "x.weight", dtype: .f32, shape: [4]).quantize)
        #expect(!s.decide(name: "x.weight", dtype: .i64, shape: [4, 4]).quantize)
        #expect(!s.decide(name: "x.weight", dtype: .f32, shape: [0, 4]).quantize)
        let custom = TensorSelection(include: ["lm_head.*", "*.bias"], exclude: ["*.q_proj.*"])
        #expect(custom.decide(name: "lm_head.weight", dtype: .f32, shape: [4, 4]).quantize)
        #expect(custom.decide(name: "a.bias", dtype: .f16, shape: [4]).quantize)
        #expect(!custom.decide(name: "a.q_proj.weight", dtype: .f32, shape: [4, 4]).quantize)
        #expect(custom.decide(name: "a.q_proj.weight", dtype: .f32, shape: [4, 4]).reason.contains("exclude pattern"))
        #expect(!custom.decide(name: "lm_head.weight", dtype: .u8, shape: [4, 4]).quantize)
    }

    @Test func demoModelIsDeterministicAndValid() throws {
        let a = try DemoModel.safetensorsBytes()
        #expect(a == (try DemoModel.safetensorsBytes()))
        let c = try DemoModel.checkpoint()
        #expect(c.tensors.count == DemoModel.tensorShapes.count + 1)
        #expect(c.modelInfo.architecture == "ternq-demo")
        #expect(a.count > 10_000_000 && a.count < 16_000_000)
    }
}

@Suite("Pipeline: quantization job")
struct PipelineJobTests {
    let job = CheckpointQuantizer(backend: CPUBackend())

    func reference(_ t: CheckpointTensor) throws -> QuantizedTensor {
        let input = try TensorInput(name: t.info.name, shape: t.info.shape, elementType: try #require(t.info.dtype.quantizable), bytes: t.bytes)
        return try Quantizer().quantize(input)
    }

    @Test func openingWarningsReachTheReport() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        _ = try writeCheckpoint(in: dir, count: 1, rows: 1)
        try Data(#"{"model_type": 7}"#.utf8).write(to: URL(fileURLWithPath: dir + "/config.json"))
        let source = try CheckpointSources.open(path: dir + "/model.safetensors")
        #expect(source.warnings.count == 1 && source.warnings[0].contains("config.json"))
        let report = try job.write(source, to: MemorySink(), outputName: "t.tern", options: QuantizationOptions(format: .tern))
        #expect(report.warnings == source.warnings)
        #expect(report.notes.contains("warning: " + source.warnings[0]))
    }

    @Test func ternOutputRoundTrips() throws {
        let ckpt = try TinyModel.checkpoint()
        let sink = MemorySink()
        let report = try job.write(ckpt, to: sink, outputName: "t.tern", options: QuantizationOptions(format: .tern))
        let model = try sink.bytes.withUnsafeBytes { try TernFormat.decode($0, file: "t.tern") }
        #expect(model.architecture == "llama" && model.vocabSize == 4 && model.hiddenSize == 256 && model.numLayers == 1)
        #expect(model.sourceModel == "tiny.safetensors")
        let quantized = report.layers.filter { $0.action == .quantized }
        #expect(model.layers.map(\.name) == quantized.map(\.name))
        #expect(quantized.map(\.name) == ["model.layers.0.self_attn.q_proj.weight", "model.layers.0.mlp.down_proj.weight",
                                          "model.layers.0.mlp.sparse.weight", "model.layers.0.odd.weight", "model.layers.0.conv.weight"])
        for layer in model.layers {
            let t = try #require(ckpt.tensors.first { $0.info.name == layer.name })
            let q = try reference(t)
            #expect(layer.scale.bitPattern == q.scale.bitPattern)
            #expect(layer.sparsity == q.sparsity)
            #expect(layer.originalDType == t.info.dtype.rawValue)
            let (rows, cols) = TernFormat.rowsCols(t.info.shape)
            #expect(layer.storage.dimensions == (UInt64(rows), UInt64(cols)))
            switch layer.storage {
            case .dense(_, _, let packed):
                #expect(q.sparsity < 0.75)
                #expect(packed == q.data)
            case .sparse(let s):
                #expect(q.sparsity >= 0.75)
                var dense = [Trit](repeating: .tend, count: rows * cols)
                for r in 0..<rows {
                    for k in Int(s.rowPtr[r])..<Int(s.rowPtr[r + 1]) { dense[r * cols + Int(s.colIdx[k])] = s.values[k] > 0 ? .affirm : .reject }
                }
                #expect(TritPacking.pack(dense) == q.data)
            }
        }
        #expect(model.layers.contains { $0.storage.kind == "sparse" })
        #expect(report.totals.tensorsSkipped == 4)
        #expect(report.totals.outputBytes == sink.bytes.count)
    }

    @Test(arguments: [GGUFTernaryType.tq2_0, .tq1_0])
    func ggufOutputRoundTrips(type: GGUFTernaryType) throws {
        let ckpt = try TinyModel.checkpoint()
        let sink = MemorySink()
        let report = try job.write(ckpt, to: sink, outputName: "t.gguf", options: QuantizationOptions(format: .gguf, ggufType: type))
        let c = try sink.bytes.withUnsafeBytes { try GGUFFormat.decode($0, file: "t.gguf") }
        #expect(c.value("general.architecture") == .string("llama"))
        #expect(c.value("general.quantization_version") == .uint32(2))
        #expect(c.value("general.alignment") == .uint32(32))
        let byName = Dictionary(uniqueKeysWithValues: c.tensors.map { ($0.name, $0) })
        #expect(byName["model.position_ids"] == nil)
        #expect(c.value("general.file_type") == .uint32(type == .tq2_0 ? 37 : 36))
        // Row lengths 7 and 6 are no multiple of 256: the tensors stay ternary as F16 holding f16(α)·t.
        #expect(byName["model.layers.0.odd.weight"]?.type == .f16)
        #expect(byName["model.layers.0.sparse.weight"] == nil)
        #expect(byName["model.layers.0.mlp.sparse.weight"]?.type == .f16)
        #expect(byName["model.temperature"]?.dimensions == [1])
        #expect(byName["model.embed_tokens.weight"]?.type == .f16)
        #expect(byName["model.layers.0.conv.weight"]?.dimensions == [256, 3, 2])
        for row in report.layers where row.action == .quantized {
            let info = try #require(byName[row.name])
            #expect(info.dimensions == row.shape.reversed())
            let q = try reference(try #require(ckpt.tensors.first { $0.info.name == row.name }))
            let trits = try q.trits().map { Int($0.rawValue) }
            let d = HalfFloat.bits(from: q.scale)
            #expect((row.storedScale ?? row.scale) == HalfFloat.float(fromBits: d))
            if (row.shape.last ?? 1) % 256 != 0 {
                #expect(info.type == .f16)
                #expect(row.notes?.contains { $0.contains("ternary as F16") } == true)
                for k in 0..<q.elementCount {
                    let at = c.dataStart + info.offset + 2 * k
                    let h = UInt16(sink.bytes[at]) | UInt16(sink.bytes[at + 1]) << 8
                    let expected: UInt16 = trits[k] == 0 ? 0 : (trits[k] > 0 ? d : d | 0x8000)
                    #expect(h == expected)
                }
                continue
            }
            #expect(info.type == type.ggmlType)
            let blockBytes = info.type.blockLayout.bytes
            for b in 0..<(q.elementCount / 256) {
                let start = c.dataStart + info.offset + b * blockBytes
                let (t, blockD) = TernaryBlocks.decode(info.type, block: Array(sink.bytes[start..<(start + blockBytes)]))
                #expect(blockD == d)
                #expect(t == Array(trits[(b * 256)..<((b + 1) * 256)]))
            }
        }
        // BF16 kept tensors would be widened exactly; F16 embeddings copied byte for byte.
        let embed = try #require(byName["model.embed_tokens.weight"])
        let source = try #require(ckpt.tensors.first { $0.info.name == "model.embed_tokens.weight" })
        #expect(Array(sink.bytes[(c.dataStart + embed.offset)..<(c.dataStart + embed.offset + embed.byteCount)]) == Array(source.bytes))
    }

    @Test func safetensorsOutputRoundTrips() throws {
        let ckpt = try TinyModel.checkpoint()
        let sink = MemorySink()
        let report = try job.write(ckpt, to: sink, outputName: "t.safetensors", options: QuantizationOptions(format: .safetensors))
        let f = try SafetensorsBytes.open(sink.bytes)
        #expect(f.metadata["ternq.scheme"] == "ternary-absmean-per-tensor")
        #expect(f.metadata["ternq.quantized"]?.contains("\"model.layers.0.odd.weight\":{\"shape\":[3,7],\"dtype\":\"F32\"}") == true)
        for row in report.layers {
            let source = try #require(ckpt.tensors.first { $0.info.name == row.name })
            let out = try #require(f.info(named: row.name))
            if row.action == .kept {
                #expect(out.dtype == source.info.dtype && out.shape == source.info.shape)
                #expect(Array(f.data(for: out)) == Array(source.bytes))
                continue
            }
            let q = try reference(source)
            #expect(out.dtype == .u8)
            #expect(out.shape == CheckpointQuantizer.packedShape(source.info.shape))
            let scale = try #require(f.info(named: row.name + ".scale"))
            #expect(scale.dtype == .f32 && scale.shape == [])
            #expect(f.data(for: scale).loadUnaligned(as: UInt32.self) == q.scale.bitPattern)
            let cols = source.info.shape.last ?? 1
            let rowBytes = (cols + 3) / 4
            let data = Array(f.data(for: out))
            let trits = try q.trits()
            for k in 0..<q.elementCount {
                let r = k / cols, c = k % cols
                let code = (data[r * rowBytes + c / 4] >> UInt8(2 * (c % 4))) & 3
                #expect(Trit(packedCode: code) == trits[k])
            }
        }
    }

    @Test func mseMatchesTheSeedDefinition() throws {
        let weights: [Float] = (0..<1000).map { Float(($0 * 7919) % 201 - 100) / 37 }
        let seed = try PerLayerQuant.quantize(weights, name: "w", shape: [10, 100])
        let q = try Quantizer().quantize(weights, name: "w", shape: [10, 100])
        let mse = try weights.withUnsafeBufferPointer { buffer in
            let input = try TensorInput(name: "w", shape: [10, 100], floats: buffer)
            return try q.data.withUnsafeBytes { try CheckpointQuantizer.meanSquaredError(input, packed: $0, scale: q.scale) }
        }
        #expect(Float(mse) == (try seed.mse(weights)))
    }

    @Test func nanWeightNamesTensorAndIndexAndLeavesNoOutput() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var values = [Float](repeating: 0.5, count: 16)
        values[13] = .nan
        let sink = MemorySink()
        let w = try SafetensorsWriter(sink: sink, entries: [.init(name: "bad.weight", dtype: .f32, shape: [4, 4])])
        try w.write(bytes: SafetensorsBytes.floats(values))
        let input = dir + "/in.safetensors"
        try Data(sink.bytes).write(to: URL(fileURLWithPath: input))
        let ckpt = try SafetensorsCheckpoint(path: input)
        do {
            _ = try job.run(ckpt, outputPath: dir + "/out.tern", options: QuantizationOptions(format: .tern))
            Issue.record("NaN accepted")
        } catch {
            let text = String(describing: error)
            #expect(text.contains("bad.weight") && text.contains("element 13") && text.contains("NaN") && text.contains("in.safetensors"), "\(text)")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["in.safetensors"])
        #expect(throws: JobError.self) { try job.run(ckpt, outputPath: input, options: QuantizationOptions(format: .tern, overwrite: true)) }
    }
}

/// Byte-exact golden files for the tiny model in every format (Tests/Fixtures/tiny). Regenerate with
/// `TERNQ_REGENERATE_FIXTURES=1 swift test --filter Golden` after an intended format change.
@Suite("Pipeline: golden files")
struct PipelineGoldenTests {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/tiny")
    static let regenerate = ProcessInfo.processInfo.environment["TERNQ_REGENERATE_FIXTURES"] == "1"

    static let cases: [(String, QuantizationOptions)] = [
        ("tiny.tern", QuantizationOptions(format: .tern)),
        ("tiny.tq2_0.gguf", QuantizationOptions(format: .gguf, ggufType: .tq2_0)),
        ("tiny.tq1_0.gguf", QuantizationOptions(format: .gguf, ggufType: .tq1_0)),
        ("tiny.ternary.safetensors", QuantizationOptions(format: .safetensors)),
    ]

    func compare(_ name: String, _ bytes: [UInt8]) throws {
        let url = Self.directory.appendingPathComponent(name)
        if Self.regenerate {
            try FileManager.default.createDirectory(at: Self.directory, withIntermediateDirectories: true)
            try Data(bytes).write(to: url)
        }
        let golden = try #require(FileManager.default.contents(atPath: url.path), "missing fixture \(url.path)")
        #expect(Array(golden) == bytes, "\(name) differs from the golden file")
    }

    @Test func sourceModel() throws {
        try compare("tiny.safetensors", try TinyModel.bytes())
    }

    @Test(arguments: 0..<4)
    func output(index: Int) throws {
        let (name, options) = Self.cases[index]
        let sink = MemorySink()
        _ = try CheckpointQuantizer(backend: CPUBackend()).write(try TinyModel.checkpoint(), to: sink, outputName: name, options: options)
        try compare(name, sink.bytes)
    }
}

@Suite("Pipeline: NaN/Inf scan of kept tensors")
struct PipelineNonFiniteScanTests {
    /// Obviously-correct reference: the first element whose exponent bits are all ones.
    static func reference(_ bits: [UInt32]) -> Int? { bits.firstIndex { $0 & 0x7F80_0000 == 0x7F80_0000 } }
    static func reference(_ bits: [UInt16], mask: UInt16) -> Int? { bits.firstIndex { $0 & mask == mask } }

    /// Sizes past the 1 Mi-element chunk (several chunks, a partial last chunk and a partial lane group),
    /// with NaN/Inf placed at chunk, lane-group and array boundaries; the first one found must be the first.
    @Test("the parallel, vectorised scan finds the first NaN or infinity like a plain loop")
    func matchesReference() {
        let count = (2 << 20) + 37
        let placements: [[Int]] = [[], [count - 1], [0], [(1 << 20) + 17, 3 << 19], [(1 << 20) - 1, 1 << 20], [15, 16, 31], [(2 << 20) + 36]]
        for positions in placements {
            var f32 = [UInt32](repeating: Float(0.5).bitPattern, count: count)
            var f16 = [UInt16](repeating: 0x3800, count: count)
            var bf16 = [UInt16](repeating: 0x3F00, count: count)
            for (i, k) in positions.enumerated() {
                f32[k] = i % 2 == 0 ? 0x7FC0_0000 : 0xFF80_0000  // NaN, −Inf
                f16[k] = i % 2 == 0 ? 0x7E00 : 0xFC00
                bf16[k] = i % 2 == 0 ? 0x7FC0 : 0xFF80
            }
            #expect(f32.withUnsafeBytes { ElementConversion.firstNonFinite($0, as: .float32) } == Self.reference(f32), "\(positions)")
            #expect(f16.withUnsafeBytes { ElementConversion.firstNonFinite($0, as: .float16) } == Self.reference(f16, mask: 0x7C00), "\(positions)")
            #expect(bf16.withUnsafeBytes { ElementConversion.firstNonFinite($0, as: .bfloat16) } == Self.reference(bf16, mask: 0x7F80), "\(positions)")
        }
    }

    /// Every table's scan (AVX-512 machines run the AVX2 and portable ones too) on every length up to 70
    /// with one non-finite value at every position, from a misaligned address, plus the finite extremes
    /// (largest finite, exponent one below all-ones) that must not count.
    @Test func everyTableEveryPositionMisaligned() throws {
        for set in [CPUInstructionSet.automatic] + CPUInstructionSet.lowerAlternatives {
            for type in [ElementType.float32, .float16, .bfloat16] {
                let width = type.byteWidth
                let finite: UInt32 = type == .float32 ? 0xFF7F_FFFF : (type == .float16 ? 0xFBFF : 0xFF7F)
                let bad: UInt32 = type == .float32 ? 0x7F80_0001 : (type == .float16 ? 0x7C01 : 0x7F81)
                for count in 0..<70 {
                    for position in [-1] + Array(0..<count) {
                        var raw = [UInt8](repeating: 0, count: 1 + count * width)
                        for k in 0..<count {
                            let v = k == position ? bad : finite
                            for b in 0..<width { raw[1 + k * width + b] = UInt8(truncatingIfNeeded: v >> UInt32(8 * b)) }
                        }
                        let found = raw.withUnsafeBytes { set.firstNonFinite($0.baseAddress! + 1, count: count, as: type) }
                        #expect(found == (position < 0 ? nil : position), "\(set) \(type) n=\(count) at \(position)")
                    }
                }
            }
        }
    }
}

@Suite("Pipeline: already-ternary detection (one common magnitude)")
struct PipelineCommonMagnitudeTests {
    /// Obviously-correct reference: the set of non-zero magnitude bits has exactly one member.
    static func reference(_ bits: [UInt32], mask: UInt32) -> UInt32? {
        let magnitudes = Set(bits.map { $0 & mask }.filter { $0 != 0 })
        return magnitudes.count == 1 ? magnitudes.first : (magnitudes.isEmpty ? 0 : nil)
    }

    static func raw(_ values: [UInt32], width: Int, offset: Int) -> [UInt8] {
        var raw = [UInt8](repeating: 0xA5, count: offset + values.count * width)
        for (k, v) in values.enumerated() {
            for b in 0..<width { raw[offset + k * width + b] = UInt8(truncatingIfNeeded: v >> UInt32(8 * b)) }
        }
        return raw
    }

    /// Every table (AVX-512 machines run the AVX2 and portable ones too), every length up to 70, from a
    /// misaligned address: all ±0, one magnitude with both signs and zeros, and a second magnitude (one
    /// bit apart, either sign) at every position.
    @Test func everyTableEveryPositionMisaligned() throws {
        for set in [CPUInstructionSet.automatic] + CPUInstructionSet.lowerAlternatives {
            for type in [ElementType.float32, .float16, .bfloat16] {
                let width = type.byteWidth
                let mask: UInt32 = type == .float32 ? 0x7FFF_FFFF : 0x7FFF
                let sign: UInt32 = type == .float32 ? 0x8000_0000 : 0x8000
                let a: UInt32 = type == .float32 ? 0x3C80_0000 : (type == .float16 ? 0x2400 : 0x3C80)
                for count in 0..<70 {
                    // k % 3: +a, −a, ±0.
                    let base = (0..<count).map { k -> UInt32 in k % 3 == 0 ? a : (k % 3 == 1 ? a | sign : (k % 2 == 0 ? 0 : sign)) }
                    var cases: [[UInt32]] = [base, base.map { $0 & sign }]
                    for position in 0..<count {
                        var other = base
                        other[position] = (a ^ 1) | (position % 2 == 0 ? 0 : sign)
                        cases.append(other)
                    }
                    for values in cases {
                        for offset in [0, 1] {
                            let bytes = Self.raw(values, width: width, offset: offset)
                            let found = bytes.withUnsafeBytes { set.commonMagnitude($0.baseAddress! + offset, count: count, as: type) }
                            #expect(found == Self.reference(values, mask: mask), "\(set) \(type) n=\(count) offset \(offset)")
                        }
                    }
                }
            }
        }
    }
}
