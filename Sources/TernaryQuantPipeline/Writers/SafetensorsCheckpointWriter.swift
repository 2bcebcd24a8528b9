import TernaryQuantFormats
import TernaryQuantCore
/// safetensors output. Quantized tensors become U8 2-bit rows plus an F32 `.scale` scalar; with
/// `--dequantize` they keep name, dtype and shape and hold s·t (s = the scale rounded to the dtype).
/// Other tensors are copied byte for byte (GGUF input: F32/F16/BF16/integer types; block types skipped).
final class SafetensorsCheckpointWriter: CheckpointWriter {
    private let writer: SafetensorsWriter
    private let dequantize: Bool
    let notes: [String]

    static func plan(_ tensor: SourceTensor, decision: TensorSelection.Decision, options: QuantizationOptions,
                     known: TernaryFacts?) -> TensorPlan {
        if decision.quantize {
            return TensorPlan(tensor: tensor, action: .quantized, reason: decision.reason,
                              storage: options.dequantize ? tensor.dtype.label.lowercased() : "u8-2bit")
        }
        guard tensor.dtype.safetensorsDType != nil else {
            return TensorPlan(tensor: tensor, action: .skipped, reason: "\(decision.reason); type \(tensor.dtype.label) cannot be stored in safetensors", storage: "-")
        }
        return TensorPlan(tensor: tensor, action: .kept, reason: decision.reason, storage: "copy")
    }

    static func storedScale(_ plan: TensorPlan, facts: TernaryFacts, options: QuantizationOptions) -> Float {
        if options.dequantize, let type = plan.tensor.dtype.elementType { return ElementConversion.stored(facts.scale, as: type) }
        return facts.scale
    }

    static func validate(_ source: any CheckpointSource, options: QuantizationOptions) throws {
        if options.dequantize && source.format != .safetensors {
            throw FormatError.unsupported(file: source.path, reason: "dequantized output is written in the input's own format: use a .\(source.format.rawValue) output")
        }
    }

    init(sink: any ByteSink, source: any CheckpointSource, plans: [TensorPlan], options: QuantizationOptions) throws {
        dequantize = options.dequantize
        var entries: [SafetensorsWriter.Entry] = []
        var quantizedShapes: [String] = []
        var quantizedNames: [String] = []
        let names = Set(source.tensors.map(\.name))
        for p in plans {
            let t = p.tensor
            guard let dtype = t.dtype.safetensorsDType else { continue }
            switch p.action {
            case .quantized where options.dequantize:
                entries.append(.init(name: t.name, dtype: dtype, shape: t.shape))
                quantizedNames.append(JSONText.quote(t.name))
            case .quantized:
                guard !names.contains(t.name + ".scale") else {
                    throw FormatError.invalidTensor(file: source.path, tensor: t.name, reason: "the checkpoint already has '\(t.name).scale', which the safetensors output needs for α")
                }
                entries.append(.init(name: t.name, dtype: .u8, shape: CheckpointQuantizer.packedShape(t.shape)))
                entries.append(.init(name: t.name + ".scale", dtype: .f32, shape: []))
                quantizedShapes.append("\(JSONText.quote(t.name)):{\"shape\":[\(t.shape.map(String.init).joined(separator: ","))],\"dtype\":\"\(dtype.rawValue)\"}")
            case .kept:
                entries.append(.init(name: t.name, dtype: dtype, shape: t.shape))
            case .skipped:
                break
            }
        }
        let metadata: [String: String]
        if options.dequantize {
            var m = source.safetensorsMetadata
            m["ternq.scheme"] = "ternary-absmean-per-tensor"
            m["ternq.dequantized"] = "[\(quantizedNames.joined(separator: ","))]"
            metadata = m
            notes = ["dequantized: selected tensors hold s·t in their own dtype (s = α, or the common magnitude of an already-ternary tensor, rounded to the dtype)"]
        } else {
            metadata = [
                "format": "ternq",
                "ternq.scheme": "ternary-absmean-per-tensor",
                "ternq.packing": "u8, 4 trits per byte along the last dimension, trit j of a row at bits 2*(j%4) of byte j/4, 00=0 01=+1 10=-1, rows padded with 00; value = scale * trit",
                "ternq.quantized": "{\(quantizedShapes.joined(separator: ","))}",
            ]
            notes = []
        }
        writer = try SafetensorsWriter(sink: sink, entries: entries, metadata: metadata)
    }

    func appendQuantized(_ plan: TensorPlan, _ data: inout QuantizedData) throws -> QuantizedAppend {
        let scale = data.facts.scale
        if dequantize {
            let type = data.input.elementType
            let bytes = try data.packed.withUnsafeBytes {
                try ElementConversion.writeTernary(packed: $0, count: data.input.elementCount, scale: scale, as: type, to: SinkAdapter(writer))
            }
            return QuantizedAppend(outputBytes: bytes, storage: type.rawValue.lowercased(), storedScale: ElementConversion.stored(scale, as: type), notes: ["dequantized to \(type.rawValue)"])
        }
        let rowBytes = try Self.writePackedRows(data.packed, shape: plan.tensor.shape, to: writer)
        try withUnsafeBytes(of: scale.bitPattern.littleEndian) { try writer.write($0) }
        return QuantizedAppend(outputBytes: rowBytes + 4, storage: "u8-2bit", storedScale: scale, notes: [])
    }

    func appendKept(_ plan: TensorPlan) throws -> Int {
        try writer.copy(from: plan.tensor.storage, range: plan.tensor.range)
        return plan.tensor.byteCount
    }

    func finish(_ info: ModelInfo) throws { try writer.finish() }

    /// Writes flat packed trits re-packed so that each row (last dimension) starts on a byte boundary.
    static func writePackedRows(_ packed: [UInt8], shape: [Int], to writer: SafetensorsWriter) throws -> Int {
        let cols = shape.last ?? 1
        let count = Checked.product(shape) ?? 0
        if cols % 4 == 0 || count == cols {
            try packed.withUnsafeBytes { try writer.write($0) }
            return packed.count
        }
        let rows = count / Swift.max(cols, 1)
        let rowBytes = (cols + 3) / 4
        var buffer = [UInt8](repeating: 0, count: rowBytes)
        var total = 0
        for r in 0..<rows {
            for j in 0..<rowBytes { buffer[j] = 0 }
            for c in 0..<cols {
                let k = r * cols + c
                let code = (packed[k >> 2] >> UInt8(2 * (k & 3))) & 3
                buffer[c >> 2] |= code << UInt8(2 * (c & 3))
            }
            try buffer.withUnsafeBytes { try writer.write($0) }
            total += rowBytes
        }
        return total
    }
}

/// Presents a `SafetensorsWriter` (which checks every declared byte) as a `ByteSink`.
final class SinkAdapter: ByteSink {
    private let writer: SafetensorsWriter
    init(_ writer: SafetensorsWriter) { self.writer = writer }
    func write(_ bytes: UnsafeRawBufferPointer) throws { try writer.write(bytes) }
    func copy(from storage: ByteStorage, range: Range<Int>) throws { try writer.copy(from: storage, range: range) }
}
