import TernaryQuantFormats
import TernaryQuantCore
import Foundation

/// A safetensors checkpoint (file, shard directory or index) as a `CheckpointSource`.
public struct SafetensorsSource: CheckpointSource {
    /// The wrapped checkpoint.
    public let checkpoint: SafetensorsCheckpoint
    public let tensors: [SourceTensor]
    public let inputFiles: [String]

    /// Wraps an opened checkpoint.
    public init(_ checkpoint: SafetensorsCheckpoint) {
        self.checkpoint = checkpoint
        self.tensors = checkpoint.tensors.map { t in
            let start = t.file.dataStart + t.info.dataOffsets.lowerBound
            return SourceTensor(name: t.info.name, dtype: .safetensors(t.info.dtype), shape: t.info.shape,
                                storage: t.file.storage, range: start..<(start + t.info.dataOffsets.count))
        }
        var files = checkpoint.files.map(\.storage.path)
        let path = checkpoint.path
        var isDirectory: ObjCBool = false
        // An in-memory checkpoint (demo model, tests) names no file and reads no index or config.json.
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
            let directory = isDirectory.boolValue ? path : (path as NSString).deletingLastPathComponent
            if isDirectory.boolValue {
                files.append((path as NSString).appendingPathComponent("model.safetensors.index.json"))
            } else if path.hasSuffix(".index.json") {
                files.append(path)
            }
            files.append(directory.isEmpty ? "config.json" : (directory as NSString).appendingPathComponent("config.json"))
        }
        self.inputFiles = files.filter { FileManager.default.fileExists(atPath: $0) }
    }

    public var path: String { checkpoint.path }
    public var format: InputFormat { .safetensors }
    public var modelInfo: ModelInfo { checkpoint.modelInfo }
    public var naming: TensorNaming { .huggingFace }
    public var warnings: [String] { checkpoint.warnings }
    public var ggufMetadata: [(key: String, value: GGUFValue)] { [] }
    public var safetensorsMetadata: [String: String] {
        var merged: [String: String] = [:]
        for file in checkpoint.files { merged.merge(file.metadata) { first, _ in first } }
        return merged
    }
}
