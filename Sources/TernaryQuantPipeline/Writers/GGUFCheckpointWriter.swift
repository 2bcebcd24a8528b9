import TernaryQuantFormats
import TernaryQuantCore
import Foundation

/// GGUF v3 output.
///
/// GGUF input: every key/value is carried over with its key, type and value in file order, except the
/// `split.*` keys (the output is one file), the `ternq.*` keys of an earlier run (replaced by this run's)
/// and a non-default `general.alignment` (written as 32, the output's layout); `general.file_type` (37 TQ2_0 / 36 TQ1_0) and
/// `general.quantization_version` (2) are set in place or appended; `ternq.*` provenance is appended.
/// safetensors input: `general.architecture` (config.json), `general.name`, `general.alignment`, then the
/// same quantization keys. Tensors keep their order, names and dimensions.
final class GGUFCheckpointWriter: CheckpointWriter {
    private let sink: any ByteSink
    private let infos: [String: GGUFTensorInfo]
    private let dequantize: Bool
    private let blockType: GGMLType
    private let ggufType: GGUFTernaryType
    let notes: [String]

    static var headerNeedsFacts: Bool { true }

    var reportedGGUFType: GGUFTernaryType? { dequantize ? nil : ggufType }

    /// `general.file_type` values of llama.cpp's `LLAMA_FTYPE_MOSTLY_TQ1_0` / `_TQ2_0`.
    static func fileType(_ type: GGUFTernaryType) -> UInt32 { type == .tq2_0 ? 37 : 36 }

    static func plan(_ tensor: SourceTensor, decision: TensorSelection.Decision, options: QuantizationOptions,
                     known: TernaryFacts?) -> TensorPlan {
        func skip(_ reason: String) -> TensorPlan { TensorPlan(tensor: tensor, action: .skipped, reason: reason, storage: "-") }
        if tensor.shape.count > 4 { return skip("rank \(tensor.shape.count) > 4 cannot be stored in GGUF") }
        if tensor.name.utf8.count > GGUFFormat.maxNameLength {
            return skip("name longer than \(GGUFFormat.maxNameLength) bytes cannot be stored in GGUF")
        }
        if tensor.elementCount == 0 { return skip("empty tensor") }
        // The type a kept tensor gets: its own for GGUF input; F32/F16 for safetensors (BF16 widened to F32).
        let keptType: GGMLType?
        var keptNotes: [String] = []
        switch tensor.dtype {
        case .ggml(let t):
            keptType = t
            if tensor.dtype.elementType == nil { keptNotes.append("\(tensor.dtype.label) passed through byte for byte") }
        case .safetensors(.f32): keptType = .f32
        case .safetensors(.f16): keptType = .f16
        case .safetensors(.bf16):
            keptType = .f32
            keptNotes.append("BF16 widened exactly to F32")
        case .safetensors: keptType = nil
        }
        func label(_ t: GGMLType) -> String { String(describing: t) }
        if decision.quantize, let elementType = tensor.dtype.elementType {
            if options.dequantize {
                let own: GGMLType = elementType == .float32 ? .f32 : (elementType == .float16 ? .f16 : .bf16)
                return TensorPlan(tensor: tensor, action: .quantized, reason: decision.reason, storage: label(own), ggmlType: own)
            }
            let ne0 = tensor.shape.last ?? 1
            let blockEligible = ne0 % TernaryBlocks.blockSize == 0
            if !blockEligible && options.fallback == .keep, let keptType {
                return TensorPlan(tensor: tensor, action: .kept,
                                  reason: "row length \(ne0) is not a multiple of 256 (TQ block size): original values kept (fallback: keep)",
                                  storage: label(keptType), ggmlType: keptType, notes: keptNotes)
            }
            let type: GGMLType
            if let known {
                type = GGUFTernaryStorage.choose(known, blockEligible: blockEligible, blockType: options.ggufType.ggmlType).type
            } else {
                type = blockEligible ? options.ggufType.ggmlType : .f16
            }
            return TensorPlan(tensor: tensor, action: .quantized, reason: decision.reason, storage: label(type), ggmlType: type)
        }
        guard let keptType else { return skip("dtype \(tensor.dtype.label) is not written to GGUF") }
        return TensorPlan(tensor: tensor, action: .kept, reason: decision.reason, storage: label(keptType), ggmlType: keptType, notes: keptNotes)
    }

    static func storedScale(_ plan: TensorPlan, facts: TernaryFacts, options: QuantizationOptions) -> Float {
        if options.dequantize, let type = plan.tensor.dtype.elementType { return ElementConversion.stored(facts.scale, as: type) }
        let ne0 = plan.tensor.shape.last ?? 1
        return GGUFTernaryStorage.choose(facts, blockEligible: ne0 % TernaryBlocks.blockSize == 0, blockType: options.ggufType.ggmlType).storedScale
    }

    static func validate(_ source: any CheckpointSource, options: QuantizationOptions) throws {
        if options.dequantize && source.format != .gguf {
            throw FormatError.unsupported(file: source.path, reason: "dequantized output is written in the input's own format: use a .\(source.format.rawValue) output")
        }
    }

    init(sink: any ByteSink, source: any CheckpointSource, plans: [TensorPlan], options: QuantizationOptions) throws {
        self.sink = sink
        self.dequantize = options.dequantize
        self.blockType = options.ggufType.ggmlType
        self.ggufType = options.ggufType
        let quantizes = !options.dequantize && plans.contains { $0.action == .quantized }
        var metadata: [(String, GGUFValue)] = []
        var notes: [String] = []
        if source.format == .gguf {
            // split.* keys go (one output file); ternq.* provenance of an earlier run is replaced by this run's.
            for (key, value) in source.ggufMetadata where !key.hasPrefix("split.") && !key.hasPrefix("ternq.") {
                if key == "general.alignment", value != .uint32(UInt32(GGUFFormat.alignment)) {
                    // The output is laid out with the default alignment, whatever the input's.
                    metadata.append((key, .uint32(UInt32(GGUFFormat.alignment))))
                    notes.append("general.alignment \(value.summary) of the input is written as \(GGUFFormat.alignment) (the output's layout)")
                    continue
                }
                metadata.append((key, value))
            }
        } else {
            let info = source.modelInfo
            if info.architecture != "unknown" { metadata.append(("general.architecture", .string(info.architecture))) }
            metadata.append(("general.name", .string((source.path as NSString).lastPathComponent)))
            metadata.append(("general.alignment", .uint32(UInt32(GGUFFormat.alignment))))
            notes.append("GGUF tensor names are the checkpoint's names (no llama.cpp renaming)")
        }
        func set(_ key: String, _ value: GGUFValue) {
            if let i = metadata.firstIndex(where: { $0.0 == key }) { metadata[i].1 = value } else { metadata.append((key, value)) }
        }
        if quantizes {
            set("general.quantization_version", .uint32(2))
            set("general.file_type", .uint32(Self.fileType(options.ggufType)))
        }
        metadata.append(("ternq.scheme", .string("ternary-absmean-per-tensor")))
        if source.format == .gguf {
            metadata.append(("ternq.source", .string((source.path as NSString).lastPathComponent)))
            if options.dequantize { metadata.append(("ternq.dequantized", .bool(true))) }
        }
        if options.dequantize {
            notes.append("dequantized: selected tensors hold s·t in their own type (s = α, or the common magnitude of an already-ternary tensor, rounded to the type)")
        }
        self.notes = notes
        var tensors: [(name: String, dimensions: [Int], type: GGMLType, byteCount: Int)] = []
        for p in plans where p.action != .skipped {
            guard let type = p.ggmlType else { continue }
            let dims = p.tensor.ggmlDimensions
            guard let size = type.byteCount(ne0: dims.first ?? 1, count: p.tensor.elementCount) else {
                throw FormatError.invalidTensor(file: source.path, tensor: p.tensor.name, reason: "dimensions \(dims) do not fit ggml type \(type)")
            }
            tensors.append((p.tensor.name, dims, type, size))
        }
        let (header, infos) = GGUFFormat.header(metadata: metadata, tensors: tensors)
        var byName: [String: GGUFTensorInfo] = [:]
        for info in infos { byName[info.name] = info }
        self.infos = byName
        try sink.write(bytes: header)
    }

    private func pad(_ plan: TensorPlan) throws -> Int {
        guard let info = infos[plan.tensor.name] else { return 0 }
        try sink.write(zeros: (GGUFFormat.checkedPadded(info.byteCount, GGUFFormat.alignment) ?? info.byteCount) - info.byteCount)
        return info.byteCount
    }

    func appendQuantized(_ plan: TensorPlan, _ data: inout QuantizedData) throws -> QuantizedAppend {
        let facts = data.facts
        let count = data.input.elementCount
        if dequantize {
            let type = data.input.elementType
            try data.packed.withUnsafeBytes { _ = try ElementConversion.writeTernary(packed: $0, count: count, scale: facts.scale, as: type, to: sink) }
            return QuantizedAppend(outputBytes: try pad(plan), storage: type.rawValue.lowercased(),
                                   storedScale: ElementConversion.stored(facts.scale, as: type), notes: ["dequantized to \(type.rawValue)"])
        }
        let ne0 = plan.tensor.shape.last ?? 1
        let storage = GGUFTernaryStorage.choose(facts, blockEligible: ne0 % TernaryBlocks.blockSize == 0, blockType: blockType)
        guard storage.type == plan.ggmlType else { throw ReplanNeeded(facts: [plan.tensor.name: facts]) }
        switch storage.type {
        case .tq1_0, .tq2_0:
            let d = HalfConversion.float16Bits(facts.scale)
            let blocks = count / TernaryBlocks.blockSize
            var done = 0
            try data.packed.withUnsafeBytes { raw in
                while done < blocks {
                    let n = Swift.min(16384, blocks - done)
                    try sink.write(bytes: TernaryBlocks.encode(storage.type, packed: raw, firstBlock: done, blockCount: n, d: d))
                    done += n
                }
            }
        case .f16:
            try data.packed.withUnsafeBytes { _ = try ElementConversion.writeTernary(packed: $0, count: count, scale: facts.scale, as: .float16, to: sink) }
        default:
            try data.packed.withUnsafeBytes { _ = try ElementConversion.writeTernary(packed: $0, count: count, scale: facts.scale, as: .float32, to: sink) }
        }
        return QuantizedAppend(outputBytes: try pad(plan), storage: String(describing: storage.type), storedScale: storage.storedScale,
                               notes: storage.note.map { [$0] } ?? [])
    }

    func appendKept(_ plan: TensorPlan) throws -> Int {
        let t = plan.tensor
        if case .safetensors(.bf16) = t.dtype, plan.ggmlType == .f32 {
            try ElementConversion.writeWidenedBF16(t.bytes, to: sink)
        } else {
            try sink.copy(from: t.storage, range: t.range)
        }
        return try pad(plan)
    }

    func finish(_ info: ModelInfo) throws {}
}
