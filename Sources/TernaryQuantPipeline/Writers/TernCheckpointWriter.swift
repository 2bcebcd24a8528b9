import TernaryQuantFormats
import TernaryQuantCore
/// `.tern` output: quantized layers only (dense or CSR), scale α (or the common magnitude of an
/// already-ternary tensor) stored exactly as float32.
final class TernCheckpointWriter: CheckpointWriter {
    private let writer: TernWriter
    private let csrThreshold: Double
    let notes = [".tern holds quantized layers only; other tensors are skipped"]

    static func plan(_ tensor: SourceTensor, decision: TensorSelection.Decision, options: QuantizationOptions,
                     known: TernaryFacts?) -> TensorPlan {
        if decision.quantize {
            return TensorPlan(tensor: tensor, action: .quantized, reason: decision.reason, storage: "dense")
        }
        return TensorPlan(tensor: tensor, action: .skipped, reason: "\(decision.reason); .tern holds quantized layers only", storage: "-")
    }

    /// The CSR arrays: 5 bytes per non-zero at the threshold sparsity.
    static func extraWorkingBytes(elements: Int, options: QuantizationOptions) -> Int {
        let csr = Double(elements) * Swift.max(0, 1 - options.csrThreshold) * 5
        return csr >= Double(Int.max / 2) ? Int.max / 2 : Int(csr)
    }

    var reportedCSRThreshold: Double? { csrThreshold }

    static func validate(_ source: any CheckpointSource, options: QuantizationOptions) throws {
        if options.dequantize {
            throw FormatError.unsupported(file: source.path, reason: "dequantized output is written in the input's own format (safetensors or GGUF), not .tern")
        }
    }

    init(sink: any ByteSink, source: any CheckpointSource, plans: [TensorPlan], options: QuantizationOptions) throws {
        csrThreshold = options.csrThreshold
        writer = try TernWriter(sink: sink, sourceModel: source.path, layerCount: plans.filter { $0.action == .quantized }.count)
    }

    func appendQuantized(_ plan: TensorPlan, _ data: inout QuantizedData) throws -> QuantizedAppend {
        let t = plan.tensor
        let storage = try TernFormat.storage(packed: data.packed, shape: t.shape, sparsity: data.facts.sparsity, csrThreshold: csrThreshold)
        let bytes = try writer.append(TernLayer(name: t.name, scale: data.facts.scale, storage: storage,
                                                sparsity: data.facts.sparsity, originalDType: t.dtype.label))
        return QuantizedAppend(outputBytes: bytes, storage: storage.kind, storedScale: data.facts.scale, notes: [])
    }

    func appendKept(_ plan: TensorPlan) throws -> Int { 0 }

    func finish(_ info: ModelInfo) throws { try writer.finish(info) }
}
