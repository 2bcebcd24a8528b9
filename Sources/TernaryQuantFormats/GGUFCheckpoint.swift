import TernaryQuantCore
import Foundation

/// One tensor of a `GGUFCheckpoint`: its description, the file holding it and its bytes (inside `file`'s
/// mapping, which `file` keeps alive).
public struct GGUFCheckpointTensor: @unchecked Sendable {
    // @unchecked: `bytes` points into read-only memory owned by `file` (an immutable, Sendable object).
    /// The tensor's description (offset relative to `file.dataStart`).
    public let info: GGUFTensorInfo
    /// The file (shard) holding the tensor.
    public let file: GGUFFile
    /// The tensor's bytes (`info.byteCount` of them).
    public var bytes: UnsafeRawBufferPointer

    /// Pairs a tensor of `file` with its bytes.
    public init(info: GGUFTensorInfo, file: GGUFFile) {
        self.info = info
        self.file = file
        self.bytes = file.data(for: info)
    }
}

/// A GGUF model: one file, or a split set (`NAME-00001-of-0000N.gguf` … as `llama-gguf-split` writes them)
/// read as one checkpoint.
///
/// A split set is recognised by `split.count` (UINT16) > 1. Each shard must carry `split.no` (UINT16, 0-based)
/// equal to its position and, when present, the same `split.count`; the first shard holds the model's
/// metadata and `split.tensors.count` (INT32), which must equal the number of tensors of all shards; every
/// tensor name appears once across the set. Any shard's path may be given: the others are found by
/// name. A missing or invalid shard is a `FormatError` naming it.
public struct GGUFCheckpoint: Sendable {
    /// Metadata keys of split sets (llama.cpp's LLM_KV_SPLIT_*).
    public static let splitKeys: Set<String> = ["split.no", "split.count", "split.tensors.count"]

    /// Path of the single file, or of the first shard of a split set.
    public let path: String
    /// The files in order (one, or the shards 1…N).
    public let files: [GGUFFile]
    /// The first file's metadata in file order, `split.*` keys included (writers drop them).
    public let metadata: [GGUFMetadataEntry]
    /// Every file's tensors, file by file, each in file order.
    public let tensors: [GGUFCheckpointTensor]

    /// Opens the GGUF file at `path`, and when it belongs to a split set, every shard of the set.
    /// Throws `FormatError`.
    public init(path: String) throws {
        let given = try GGUFFile(path: path)
        let count = try Self.splitNumber(given, "split.count", required: false) ?? 1
        guard count >= 1 else {
            throw FormatError.malformed(file: path, offset: nil, reason: "split.count is 0; a split set has at least 1 file")
        }
        if count == 1 {
            try self.init(orderedFiles: [given], path: path)
            return
        }
        let index = try Self.splitNumber(given, "split.no", required: true) ?? 0
        guard index < count else {
            throw FormatError.malformed(file: path, offset: nil, reason: "split.no \(index) is not below split.count \(count)")
        }
        guard let prefix = Self.splitPrefix(path: path, index: index, count: count) else {
            throw FormatError.unsupported(file: path,
                reason: "this file is shard \(index + 1) of a \(count)-file split model, but its name does not end in \(Self.splitSuffix(index: index, count: count)), so the other shards cannot be found; rename the files as llama-gguf-split writes them")
        }
        var files: [GGUFFile] = []
        for i in 0..<count {
            if i == index { files.append(given); continue }
            let shardPath = Self.splitPath(prefix: prefix, index: i, count: count)
            guard FileManager.default.fileExists(atPath: shardPath) else {
                throw FormatError.io(file: shardPath, reason: "shard \(i + 1) of \(count) of the split model \(path) is missing")
            }
            files.append(try GGUFFile(path: shardPath))
        }
        try self.init(orderedFiles: files, path: files[0].path)
    }

    /// Reads already-opened files as one checkpoint: one file, or the shards of a split set in order.
    /// Throws `FormatError` when the set is inconsistent (see the type's description).
    public init(files: [GGUFFile]) throws {
        guard let first = files.first else {
            throw FormatError.unsupported(file: "(none)", reason: "a GGUF checkpoint needs at least one file")
        }
        try self.init(orderedFiles: files, path: first.path)
    }

    private init(orderedFiles files: [GGUFFile], path: String) throws {
        let first = files[0]
        let declared = try Self.splitNumber(first, "split.count", required: false) ?? 1
        guard declared == files.count else {
            throw FormatError.malformed(file: first.path, offset: nil,
                reason: "split.count is \(declared) but \(files.count) file\(files.count == 1 ? "" : "s") were given")
        }
        var tensors: [GGUFCheckpointTensor] = []
        var owner: [String: String] = [:]
        for (i, f) in files.enumerated() {
            let no = try Self.splitNumber(f, "split.no", required: files.count > 1)
            if let no, no != i {
                throw FormatError.malformed(file: f.path, offset: nil, reason: "split.no is \(no), expected \(i) (shard \(i + 1) of \(files.count))")
            }
            if i > 0, let c = try Self.splitNumber(f, "split.count", required: false), c != files.count {
                throw FormatError.malformed(file: f.path, offset: nil, reason: "split.count is \(c), but the first shard says \(files.count)")
            }
            for t in f.tensors {
                if let other = owner[t.name] {
                    throw FormatError.malformed(file: f.path, offset: nil,
                        reason: "tensor \(JSONText.quote(t.name)) is also in \(other); each tensor name must appear once in a split model")
                }
                owner[t.name] = f.path
                tensors.append(GGUFCheckpointTensor(info: t, file: f))
            }
        }
        for (i, f) in files.enumerated() {
            guard let entry = f.metadata.first(where: { $0.key == "split.tensors.count" }) else {
                if i == 0 && files.count > 1 {
                    throw FormatError.malformed(file: f.path, offset: nil, reason: "split.tensors.count (INT32) is missing from the first shard of a split model")
                }
                continue
            }
            guard case .int32(let n) = entry.value else {
                throw FormatError.malformed(file: f.path, offset: nil, reason: "split.tensors.count must be INT32, not \(GGUFValue.typeName(entry.value.typeCode))")
            }
            guard Int(n) == tensors.count else {
                throw FormatError.malformed(file: f.path, offset: nil,
                    reason: "split.tensors.count is \(n) but the \(files.count) file\(files.count == 1 ? "" : "s") hold \(tensors.count) tensors; a shard is corrupt or from another model")
            }
        }
        self.path = path
        self.files = files
        self.metadata = first.metadata
        self.tensors = tensors
    }

    /// The first file's value for `key`.
    public func value(forKey key: String) -> GGUFValue? { files[0].value(forKey: key) }

    /// A UINT16 split key's value, `nil` when absent and not `required`.
    static func splitNumber(_ f: GGUFFile, _ key: String, required: Bool) throws -> Int? {
        guard let v = f.value(forKey: key) else {
            if required { throw FormatError.malformed(file: f.path, offset: nil, reason: "\(key) (UINT16) is missing from a shard of a split model") }
            return nil
        }
        guard case .uint16(let n) = v else {
            throw FormatError.malformed(file: f.path, offset: nil, reason: "\(key) must be UINT16, not \(GGUFValue.typeName(v.typeCode))")
        }
        return Int(n)
    }

    /// "-0000i-of-0000N.gguf" for 0-based shard `index` (llama.cpp's `llama_split_path` format).
    public static func splitSuffix(index: Int, count: Int) -> String {
        func five(_ n: Int) -> String {
            let s = String(n)
            return String(repeating: "0", count: max(0, 5 - s.count)) + s
        }
        return "-\(five(index + 1))-of-\(five(count)).gguf"
    }

    /// The path of 0-based shard `index` of `count` for `prefix` (`PREFIX-0000i-of-0000N.gguf`).
    public static func splitPath(prefix: String, index: Int, count: Int) -> String {
        prefix + splitSuffix(index: index, count: count)
    }

    /// The prefix of a shard path, or `nil` when `path` does not end in the suffix for `index` of `count`
    /// (or is nothing but the suffix).
    public static func splitPrefix(path: String, index: Int, count: Int) -> String? {
        let suffix = splitSuffix(index: index, count: count)
        guard path.hasSuffix(suffix), path.utf8.count > suffix.utf8.count else { return nil }
        return String(path.dropLast(suffix.count))
    }
}
