import TernaryQuantFormats
import TernaryQuantCore
import Foundation

/// A GGUF checkpoint (one file, or every part of a `-00001-of-0000N.gguf` split) as a `CheckpointSource`.
public struct GGUFSource: CheckpointSource {
    /// The wrapped checkpoint.
    public let checkpoint: GGUFCheckpoint
    public let tensors: [SourceTensor]
    public let ggufMetadata: [(key: String, value: GGUFValue)]

    /// Wraps an opened checkpoint.
    public init(_ checkpoint: GGUFCheckpoint) {
        self.checkpoint = checkpoint
        self.tensors = checkpoint.tensors.map { t in
            // The reader validated dataStart + offset + byteCount to lie inside the file.
            let start = t.file.dataStart &+ t.info.offset
            return SourceTensor(name: t.info.name, dtype: .ggml(t.info.type), shape: Array(t.info.dimensions.reversed()),
                                storage: t.file.storage, range: start..<(start &+ t.info.byteCount), dimensions: t.info.dimensions)
        }
        self.ggufMetadata = checkpoint.metadata.map { (key: $0.key, value: $0.value) }
    }

    public var path: String { checkpoint.path }
    public var format: InputFormat { .gguf }
    public var inputFiles: [String] { checkpoint.files.map(\.storage.path) }
    public var naming: TensorNaming { .llamaCpp }
    public var warnings: [String] { [] }
    public var safetensorsMetadata: [String: String] { [:] }

    /// `general.architecture` and its `<arch>.embedding_length` / `.block_count`; the vocabulary size from
    /// `tokenizer.ggml.tokens` ("unknown"/0 when absent).
    public var modelInfo: ModelInfo {
        func value(_ key: String) -> GGUFValue? { ggufMetadata.first { $0.key == key }?.value }
        func integer(_ key: String) -> UInt64 {
            switch value(key) {
            case .uint8(let v)?: return UInt64(v)
            case .uint16(let v)?: return UInt64(v)
            case .uint32(let v)?: return UInt64(v)
            case .uint64(let v)?: return v
            case .int32(let v)? where v >= 0: return UInt64(v)
            case .int64(let v)? where v >= 0: return UInt64(v)
            default: return 0
            }
        }
        guard case .string(let arch)? = value("general.architecture") else {
            return ModelInfo(architecture: "unknown", vocabSize: 0, hiddenSize: 0, numLayers: 0)
        }
        var vocab: UInt64 = 0
        if case .array(_, let items)? = value("tokenizer.ggml.tokens") { vocab = UInt64(items.count) }
        return ModelInfo(architecture: arch, vocabSize: vocab, hiddenSize: integer("\(arch).embedding_length"),
                         numLayers: integer("\(arch).block_count"))
    }
}
