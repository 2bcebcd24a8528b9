import TernaryQuantFormats
import TernaryQuantCore
/// The input formats a checkpoint source can be read from.
public enum InputFormat: String, Sendable, Hashable, CaseIterable, Codable {
    /// safetensors (one file, a shard directory or an index).
    case safetensors
    /// GGUF (one file or a `-00001-of-0000N.gguf` split).
    case gguf
}

/// The tensor naming convention of a checkpoint, which picks the default selection rule.
public enum TensorNaming: String, Sendable, Hashable {
    /// Hugging Face names (`model.layers.0.self_attn.q_proj.weight`).
    case huggingFace
    /// llama.cpp names (`blk.0.attn_q.weight`).
    case llamaCpp
}

/// The element type of an input tensor, as its file declares it.
public enum SourceDType: Sendable, Hashable {
    /// A safetensors dtype.
    case safetensors(SafetensorsDType)
    /// A ggml type.
    case ggml(GGMLType)

    /// The name shown in reports: `"F32"`, `"BF16"`, `"Q8_0"`, `"I64"`, …
    public var label: String {
        switch self {
        case .safetensors(let d): return d.rawValue
        case .ggml(let t): return String(describing: t).uppercased()
        }
    }

    /// The quantizer's element type for F32/F16/BF16 (either format), else `nil`.
    public var elementType: ElementType? {
        switch self {
        case .safetensors(let d): return d.quantizable
        case .ggml(.f32): return .float32
        case .ggml(.f16): return .float16
        case .ggml(.bf16): return .bfloat16
        case .ggml: return nil
        }
    }

    /// The same type in safetensors terms, when there is one.
    public var safetensorsDType: SafetensorsDType? {
        switch self {
        case .safetensors(let d): return d
        case .ggml(let t):
            switch t {
            case .f32: return .f32
            case .f16: return .f16
            case .bf16: return .bf16
            case .i8: return .i8
            case .i16: return .i16
            case .i32: return .i32
            case .i64: return .i64
            case .f64: return .f64
            default: return nil
            }
        }
    }
}

/// One tensor of a checkpoint source: name, type, shape and where its bytes live.
public struct SourceTensor: Sendable {
    /// Tensor name as stored in the file.
    public let name: String
    /// Element type.
    public let dtype: SourceDType
    /// Shape, row-major (outermost first); `[]` is a scalar. For GGUF input this is the ggml dimensions reversed.
    public let shape: [Int]
    /// The mapped file (or in-memory buffer) that owns the bytes.
    public let storage: ByteStorage
    /// Byte range of the data inside `storage.bytes`.
    public let range: Range<Int>
    private let dimensions: [Int]?

    /// Creates a tensor; `range` must lie inside `storage.bytes` (the sources guarantee it). `dimensions`
    /// are the ggml dimensions when the file declares them (GGUF), kept as they are in GGUF output.
    public init(name: String, dtype: SourceDType, shape: [Int], storage: ByteStorage, range: Range<Int>, dimensions: [Int]? = nil) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.storage = storage
        self.range = range
        self.dimensions = dimensions
    }

    /// The path of the file that holds the data (for errors).
    public var file: String { storage.path }
    /// Element count (0 on overflow, which the readers reject).
    public var elementCount: Int { Checked.product(shape) ?? 0 }
    /// Bytes of data.
    public var byteCount: Int { range.count }
    /// The raw bytes (valid while `storage` lives).
    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: storage.bytes[range]) }
    /// The ggml dimensions (innermost first): the file's for GGUF input, else the shape reversed (a
    /// scalar → `[1]`).
    public var ggmlDimensions: [Int] { dimensions ?? (shape.isEmpty ? [1] : Array(shape.reversed())) }
}

/// A checkpoint the job reads: its tensors in file order, model facts, metadata and page release.
/// One conformer per input format (`SafetensorsSource`, `GGUFSource`); the job loop sees only this.
public protocol CheckpointSource: Sendable {
    /// The path the checkpoint was opened from.
    var path: String { get }
    /// The input format.
    var format: InputFormat { get }
    /// Every file the checkpoint was read from (shards, index, config), which the output must not replace.
    var inputFiles: [String] { get }
    /// Every tensor, in file order (shard by shard).
    var tensors: [SourceTensor] { get }
    /// Model facts (architecture, vocabulary, width, layers).
    var modelInfo: ModelInfo { get }
    /// The naming convention (picks the default selection rule).
    var naming: TensorNaming { get }
    /// GGUF key/values in file order, split keys included (`[]` for other formats).
    var ggufMetadata: [(key: String, value: GGUFValue)] { get }
    /// safetensors `__metadata__` merged over the shards (`[:]` for other formats).
    var safetensorsMetadata: [String: String] { get }
    /// Problems found while opening that did not stop it (a malformed `config.json`, say), each naming the
    /// file; the job carries them into the report's warnings.
    var warnings: [String] { get }
}

extension CheckpointSource {
    /// Tells the kernel the pages of `tensor` are no longer needed (a mapped file's pages stop counting as
    /// resident; no effect on in-memory buffers).
    public func releasePages(_ tensor: SourceTensor) {
        tensor.storage.releasePages(tensor.bytes)
    }

    /// Total bytes of tensor data.
    public var totalBytes: Int { tensors.reduce(0) { $0 &+ $1.byteCount } }
}

/// Opens checkpoints of any supported input format.
public enum CheckpointSources {
    /// Opens `path` as GGUF when it ends in `.gguf` (any case), else as safetensors. Throws `FormatError`.
    public static func open(path: String) throws -> any CheckpointSource {
        if path.lowercased().hasSuffix(".gguf") {
            return try GGUFSource(GGUFCheckpoint(path: path))
        }
        return try SafetensorsSource(SafetensorsCheckpoint(path: path))
    }
}
