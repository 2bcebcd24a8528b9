import TernaryQuantFormats
import TernaryQuantCore
/// What the job will do with one tensor, decided before any data is written.
public struct TensorPlan: Sendable {
    /// The input tensor.
    public let tensor: SourceTensor
    /// Quantize, keep or skip.
    public let action: TensorAction
    /// Why.
    public let reason: String
    /// Storage label for the report (final for kept tensors; quantized tensors may refine it).
    public let storage: String
    /// GGUF type the tensor gets in GGUF output (nil for other formats and skipped tensors).
    public let ggmlType: GGMLType?
    /// Report lines known at plan time (e.g. "passed through byte for byte").
    public let notes: [String]

    /// Creates a plan.
    public init(tensor: SourceTensor, action: TensorAction, reason: String, storage: String,
                ggmlType: GGMLType? = nil, notes: [String] = []) {
        self.tensor = tensor
        self.action = action
        self.reason = reason
        self.storage = storage
        self.ggmlType = ggmlType
        self.notes = notes
    }
}

/// A quantized tensor handed to a writer: the input view, its packed 2-bit trits and its facts.
struct QuantizedData {
    /// The input elements (borrowed from the source's mapping).
    let input: TensorInput
    /// 2-bit packed trits, `ceil(n/4)` bytes (00 = 0, 01 = +1, 10 = −1).
    var packed: [UInt8]
    /// α, already-ternary magnitude, sparsity.
    let facts: TernaryFacts
}

/// What a writer stored for a quantized tensor.
struct QuantizedAppend {
    /// Data bytes written (without padding).
    var outputBytes: Int
    /// Storage label for the report.
    var storage: String
    /// The scale the stored values carry (the report's MSE is computed against it).
    var storedScale: Float
    /// Report lines.
    var notes: [String]
}

/// Thrown by a writer whose header (written by `begin`) cannot hold a quantized tensor now that its facts
/// are known (GGUF: an unsafe f16 scale needs F32, not TQ). The job restarts once with every fact known.
struct ReplanNeeded: Error {
    var facts: [String: TernaryFacts]
}

/// One output format: plans each tensor, writes the header from the whole plan, appends tensors in plan
/// order, finishes. One conformer per format; the job loop knows no format.
protocol CheckpointWriter: AnyObject {
    /// Decides what happens to `tensor` given the selection `decision`; `known` holds facts from an
    /// earlier pass (replanning), if any.
    static func plan(_ tensor: SourceTensor, decision: TensorSelection.Decision, options: QuantizationOptions,
                     known: TernaryFacts?) -> TensorPlan
    /// Whether the header depends on facts only known after quantizing (then `write(to:)` resolves them first).
    static var headerNeedsFacts: Bool { get }
    /// Checks the options against the source (e.g. `--dequantize` needs the input's own format).
    static func validate(_ source: any CheckpointSource, options: QuantizationOptions) throws
    /// Bytes the writer allocates for a quantized tensor of `elements` elements beyond its packed trits.
    static func extraWorkingBytes(elements: Int, options: QuantizationOptions) -> Int
    /// The scale `appendQuantized` will store for `plan` with `facts` (the MSE is computed against it
    /// ahead of the write; a writer that stores another scale only costs a recomputation). Default: the
    /// facts' scale.
    static func storedScale(_ plan: TensorPlan, facts: TernaryFacts, options: QuantizationOptions) -> Float

    /// Begins the output: validates the plan and writes the header to `sink`.
    init(sink: any ByteSink, source: any CheckpointSource, plans: [TensorPlan], options: QuantizationOptions) throws
    /// Report notes about the format.
    var notes: [String] { get }
    /// The report's `gguf_type` and `csr_threshold` (nil when they do not apply).
    var reportedGGUFType: GGUFTernaryType? { get }
    var reportedCSRThreshold: Double? { get }
    /// Appends a quantized tensor (plans in order, skipped ones omitted).
    func appendQuantized(_ plan: TensorPlan, _ data: inout QuantizedData) throws -> QuantizedAppend
    /// Appends a kept tensor; returns the data bytes written.
    func appendKept(_ plan: TensorPlan) throws -> Int
    /// Completes the file.
    func finish(_ info: ModelInfo) throws
}

extension CheckpointWriter {
    static var headerNeedsFacts: Bool { false }
    static func extraWorkingBytes(elements: Int, options: QuantizationOptions) -> Int { 0 }
    static func storedScale(_ plan: TensorPlan, facts: TernaryFacts, options: QuantizationOptions) -> Float { facts.scale }
    var reportedGGUFType: GGUFTernaryType? { nil }
    var reportedCSRThreshold: Double? { nil }
}

/// The one place that maps an output format to its writer.
enum CheckpointWriters {
    static func type(for format: OutputFormat) -> any CheckpointWriter.Type {
        switch format {
        case .tern: return TernCheckpointWriter.self
        case .safetensors: return SafetensorsCheckpointWriter.self
        case .gguf: return GGUFCheckpointWriter.self
        }
    }
}
