import TernaryQuantFormats
import TernaryQuantCore
/// Output file formats `ternq quantize` writes.
public enum OutputFormat: String, Sendable, Hashable, CaseIterable, Codable {
    /// The seed crate's bincode `.tern` layout (quantized layers only).
    case tern
    /// GGUF v3 with TQ2_0/TQ1_0 ternary tensors.
    case gguf
    /// safetensors with U8 2-bit packed trits plus a `.scale` scalar per quantized tensor.
    case safetensors

    /// The format implied by a path's extension, if any.
    public static func inferred(fromPath path: String) -> OutputFormat? {
        let lower = path.lowercased()
        if lower.hasSuffix(".tern") { return .tern }
        if lower.hasSuffix(".gguf") { return .gguf }
        if lower.hasSuffix(".safetensors") { return .safetensors }
        return nil
    }

    /// The usual file extension.
    public var fileExtension: String { rawValue }
}

/// The ggml type used for quantized tensors in GGUF output.
public enum GGUFTernaryType: String, Sendable, Hashable, CaseIterable, Codable {
    /// 2.0625 bits per weight, 66-byte blocks (default).
    case tq2_0
    /// 1.6875 bits per weight, 54-byte base-3 blocks.
    case tq1_0

    /// The ggml type.
    public var ggmlType: GGMLType { self == .tq2_0 ? .tq2_0 : .tq1_0 }
}

/// What happened to one input tensor.
public enum TensorAction: String, Sendable, Hashable, Codable {
    /// Quantized to ternary.
    case quantized
    /// Written without quantization (copied, or converted to F32/F16 for GGUF).
    case kept
    /// Not written to the output.
    case skipped
}

/// One row of the per-layer report.
public struct LayerReport: Sendable, Hashable, Codable {
    /// Tensor name.
    public var name: String
    /// Shape in the checkpoint (row-major).
    public var shape: [Int]
    /// Checkpoint dtype.
    public var dtype: String
    /// What was done.
    public var action: TensorAction
    /// Why.
    public var reason: String
    /// α (quantized tensors).
    public var scale: Float?
    /// α's float32 bit pattern as 8 hex digits (quantized tensors).
    public var scaleBits: String?
    /// Fraction of zero trits (quantized tensors).
    public var sparsity: Double?
    /// Mean of (w − s·t)² in float64 against the values actually stored (s = the stored scale).
    public var mse: Double?
    /// How it is stored: "dense", "sparse", "tq2_0", "tq1_0", "u8-2bit", "f32", "f16", "copy", or "-".
    public var storage: String
    /// Bytes read from the checkpoint.
    public var inputBytes: Int
    /// Bytes written for it (data only; 0 when skipped).
    public var outputBytes: Int
    /// The scale the stored values carry when it differs from `scale` (f16(α) in TQ/F16, α rounded to
    /// the dtype with `--dequantize`).
    public var storedScale: Float? = nil
    /// `storedScale`'s float32 bit pattern, 8 hex digits.
    public var storedScaleBits: String? = nil
    /// The absmean α of an already-ternary tensor (whose `scale` is its common magnitude).
    public var absmean: Float? = nil
    /// Report lines: "already ternary", "ternary as F16", "passed through byte for byte", warnings.
    public var notes: [String]? = nil

    enum CodingKeys: String, CodingKey {
        case name, shape, dtype, action, reason, scale, scaleBits = "scale_bits", sparsity, mse, storage
        case inputBytes = "input_bytes", outputBytes = "output_bytes"
        case storedScale = "stored_scale", storedScaleBits = "stored_scale_bits", absmean, notes
    }
}

/// Totals of a quantization run.
public struct ReportTotals: Sendable, Hashable, Codable {
    /// Elements of every tensor in the checkpoint.
    public var parameters: Int
    /// Elements quantized.
    public var quantizedParameters: Int
    /// Count of tensors quantized / kept / skipped.
    public var tensorsQuantized: Int, tensorsKept: Int, tensorsSkipped: Int
    /// Bytes of tensor data in the checkpoint.
    public var inputBytes: Int
    /// Size of the output file.
    public var outputBytes: Int
    /// 2 × (elements of the tensors present in the output).
    public var f16Bytes: Int
    /// f16Bytes / outputBytes.
    public var compressionVsF16: Double
    /// Wall-clock seconds of the run (reading, quantizing, writing, fsync).
    public var seconds: Double
    /// inputBytes / seconds / 1e9.
    public var gigabytesPerSecond: Double

    enum CodingKeys: String, CodingKey {
        case parameters, quantizedParameters = "quantized_parameters", tensorsQuantized = "tensors_quantized"
        case tensorsKept = "tensors_kept", tensorsSkipped = "tensors_skipped", inputBytes = "input_bytes"
        case outputBytes = "output_bytes", f16Bytes = "f16_bytes", compressionVsF16 = "compression_vs_f16"
        case seconds, gigabytesPerSecond = "gigabytes_per_second"
    }
}

/// The machine-readable report of `ternq quantize` (schema in docs/REPORT-SCHEMA.md).
public struct QuantizationReport: Sendable, Hashable, Codable {
    /// Schema identifier: "ternq.quantize-report/1".
    public var schema: String = "ternq.quantize-report/1"
    /// Input path (or "<demo model>").
    public var input: String
    /// Output path.
    public var output: String
    /// Output format.
    public var format: OutputFormat
    /// GGUF ternary type (GGUF output only).
    public var ggufType: GGUFTernaryType?
    /// CSR threshold (.tern output only).
    public var csrThreshold: Double?
    /// Backend name.
    public var backend: String
    /// Device description.
    public var device: String
    /// Model facts from config.json.
    public var model: ModelInfo
    /// One entry per input tensor, in checkpoint order.
    public var layers: [LayerReport]
    /// Totals.
    public var totals: ReportTotals
    /// Format notes (e.g. ".tern holds quantized layers only") and warnings.
    public var notes: [String]
    /// Input format.
    public var inputFormat: InputFormat? = nil
    /// `true` for `--dequantize` runs (absent otherwise).
    public var dequantize: Bool? = nil
    /// Warnings about the data (NaN/Inf in a kept tensor), each naming the tensor.
    public var warnings: [String]? = nil

    enum CodingKeys: String, CodingKey {
        case schema, input, output, format, ggufType = "gguf_type", csrThreshold = "csr_threshold", backend, device
        case model, layers, totals, notes, inputFormat = "input_format", dequantize, warnings
    }
}

/// Progress of a running job, reported after each tensor.
public struct JobProgress: Sendable, Hashable {
    /// Tensors finished.
    public var tensorsDone: Int
    /// Tensors in the checkpoint.
    public var tensorCount: Int
    /// Input bytes finished.
    public var bytesDone: Int
    /// Input bytes in total.
    public var totalBytes: Int
    /// Seconds since the start.
    public var elapsed: Double
    /// The tensor just finished.
    public var currentTensor: String
}
