import TernaryQuantCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// Element types a safetensors file may declare (the reference crate's list, including recent ones).
public enum SafetensorsDType: String, Sendable, Hashable, CaseIterable, Codable {
    case bool = "BOOL", u8 = "U8", i8 = "I8", i16 = "I16", u16 = "U16", f16 = "F16", bf16 = "BF16"
    case i32 = "I32", u32 = "U32", f32 = "F32", f64 = "F64", i64 = "I64", u64 = "U64", c64 = "C64"
    case f8e5m2 = "F8_E5M2", f8e4m3 = "F8_E4M3", f8e8m0 = "F8_E8M0"
    case f8e4m3fnuz = "F8_E4M3FNUZ", f8e5m2fnuz = "F8_E5M2FNUZ"
    case f4 = "F4", f6e2m3 = "F6_E2M3", f6e3m2 = "F6_E3M2"

    /// Size of one element in bits.
    public var bitWidth: Int {
        switch self {
        case .bool, .u8, .i8, .f8e5m2, .f8e4m3, .f8e8m0, .f8e4m3fnuz, .f8e5m2fnuz: return 8
        case .i16, .u16, .f16, .bf16: return 16
        case .i32, .u32, .f32: return 32
        case .f64, .i64, .u64, .c64: return 64
        case .f4: return 4
        case .f6e2m3, .f6e3m2: return 6
        }
    }

    /// The quantizer's element type for F32/F16/BF16, else `nil`.
    public var quantizable: ElementType? {
        switch self {
        case .f32: return .float32
        case .f16: return .float16
        case .bf16: return .bfloat16
        default: return nil
        }
    }

    /// Whether the type is a floating-point type of any width.
    public var isFloatingPoint: Bool {
        switch self {
        case .f16, .bf16, .f32, .f64, .f8e5m2, .f8e4m3, .f8e8m0, .f8e4m3fnuz, .f8e5m2fnuz, .f4, .f6e2m3, .f6e3m2: return true
        default: return false
        }
    }

    /// Bytes taken by `elements` elements, or `nil` on overflow or a partial byte.
    public func byteCount(elements: Int) -> Int? {
        guard let bits = Checked.mul(elements, bitWidth), bits % 8 == 0 else { return nil }
        return bits / 8
    }
}

/// One tensor described by a safetensors header.
public struct SafetensorsTensorInfo: Sendable, Hashable {
    /// Tensor name.
    public var name: String
    /// Element type.
    public var dtype: SafetensorsDType
    /// Shape (row-major); `[]` is a scalar.
    public var shape: [Int]
    /// Byte range of the data relative to the start of the data buffer.
    public var dataOffsets: Range<Int>

    /// Creates a description.
    public init(name: String, dtype: SafetensorsDType, shape: [Int], dataOffsets: Range<Int>) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.dataOffsets = dataOffsets
    }

    /// Number of elements (validated not to overflow when read from a file).
    public var elementCount: Int { Checked.product(shape) ?? 0 }
}

/// A validated, memory-mapped safetensors file.
///
/// Validation follows the reference reader: 8-byte little-endian header length N ≤ 100,000,000,
/// 8 + N ≤ file size, the header is UTF-8 JSON starting with `{` and is an object; `__metadata__` (optional)
/// maps strings to strings; tensor names are unique; dtypes are known; shape × dtype size = END − BEGIN
/// without overflow; sorted by offset the tensors tile the data buffer with no hole or overlap; and the
/// last END equals the data buffer's length. Data may be unaligned.
public final class SafetensorsFile: Sendable {
    /// Largest header the reference reader accepts.
    public static let maxHeaderLength = 100_000_000

    /// The file's bytes (kept mapped while this object lives).
    public let storage: ByteStorage
    /// Tensors in data-offset order.
    public let tensors: [SafetensorsTensorInfo]
    /// The `__metadata__` map (empty when absent).
    public let metadata: [String: String]
    /// Byte offset of the data buffer in the file (8 + N).
    public let dataStart: Int
    private let index: [String: Int]

    /// Maps and validates the file at `path`.
    public convenience init(path: String) throws {
        try self.init(storage: ByteStorage(mapping: path))
    }

    /// Validates bytes already in memory (or mapped). Throws `FormatError` naming the file, the byte offset
    /// or the tensor, and the rule that was broken.
    public init(storage: ByteStorage) throws {
        self.storage = storage
        let file = storage.path
        let bytes = storage.bytes
        guard bytes.count >= 8 else {
            throw FormatError.malformed(file: file, offset: 0, reason: "file is \(bytes.count) bytes: too short for the 8-byte safetensors header length")
        }
        let n = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
        guard n <= UInt64(Self.maxHeaderLength) else {
            throw FormatError.malformed(file: file, offset: 0, reason: "header length \(n) exceeds the 100,000,000-byte limit (not a safetensors file?)")
        }
        let headerLength = Int(n)
        guard 8 + headerLength <= bytes.count else {
            throw FormatError.malformed(file: file, offset: 0, reason: "header length \(headerLength) runs past the end of the \(bytes.count)-byte file")
        }
        let header = UnsafeRawBufferPointer(rebasing: bytes[8..<(8 + headerLength)])
        guard String(validating: header, as: UTF8.self) != nil else {
            throw FormatError.malformed(file: file, offset: 8, reason: "header is not valid UTF-8")
        }
        guard headerLength > 0, header[0] == UInt8(ascii: "{") else {
            throw FormatError.malformed(file: file, offset: 8, reason: "header does not start with '{'")
        }
        let json: JSONValue
        do throws(JSONParseError) {
            json = try StrictJSONParser.parse(header)
        } catch {
            throw FormatError.malformed(file: file, offset: 8 + error.offset, reason: "header \(error.reason)")
        }
        guard case .object(let entries) = json else {
            throw FormatError.malformed(file: file, offset: 8, reason: "header is not a JSON object")
        }
        var metadata: [String: String] = [:]
        var infos: [SafetensorsTensorInfo] = []
        for (name, value) in entries {
            if name == "__metadata__" {
                guard case .object(let pairs) = value else {
                    throw FormatError.malformed(file: file, offset: 8, reason: "__metadata__ is not an object of strings")
                }
                for (k, v) in pairs {
                    guard let s = v.stringValue else {
                        throw FormatError.malformed(file: file, offset: 8, reason: "__metadata__ value for '\(k)' is not a string")
                    }
                    metadata[k] = s
                }
                continue
            }
            infos.append(try Self.parseInfo(name: name, value: value, file: file))
        }
        let dataLength = bytes.count - 8 - headerLength
        // Sort by (begin, end) and require exact tiling of the data buffer.
        infos.sort { ($0.dataOffsets.lowerBound, $0.dataOffsets.upperBound) < ($1.dataOffsets.lowerBound, $1.dataOffsets.upperBound) }
        var end = 0
        for info in infos {
            guard info.dataOffsets.lowerBound == end else {
                let kind = info.dataOffsets.lowerBound > end ? "leaves a hole" : "overlaps the previous tensor"
                throw FormatError.invalidTensor(file: file, tensor: info.name,
                    reason: "data_offsets [\(info.dataOffsets.lowerBound), \(info.dataOffsets.upperBound)] \(kind) (expected to start at \(end))")
            }
            end = info.dataOffsets.upperBound
        }
        guard end == dataLength else {
            throw FormatError.malformed(file: file, offset: 8 + headerLength,
                reason: "tensors cover \(end) bytes of data but the file holds \(dataLength) bytes after the header")
        }
        self.tensors = infos
        self.metadata = metadata
        self.dataStart = 8 + headerLength
        var index: [String: Int] = [:]
        for (i, info) in infos.enumerated() { index[info.name] = i }
        self.index = index
    }

    private static func parseInfo(name: String, value: JSONValue, file: String) throws -> SafetensorsTensorInfo {
        func bad(_ reason: String) -> FormatError { .invalidTensor(file: file, tensor: name, reason: reason) }
        guard case .object = value else { throw bad("entry is not a JSON object") }
        guard let dtypeText = value["dtype"]?.stringValue else { throw bad("missing or non-string 'dtype'") }
        guard let dtype = SafetensorsDType(rawValue: dtypeText) else { throw bad("unknown dtype '\(dtypeText)'") }
        guard case .array(let shapeValues)? = value["shape"] else { throw bad("missing or non-array 'shape'") }
        var shape: [Int] = []
        for v in shapeValues {
            guard let d = v.uint64Value, d <= UInt64(Int.max) else { throw bad("shape \(shapeValues.count)-d has a dimension that is not a non-negative integer") }
            shape.append(Int(d))
        }
        guard case .array(let offsets)? = value["data_offsets"], offsets.count == 2,
              let b = offsets[0].uint64Value, let e = offsets[1].uint64Value,
              b <= UInt64(Int.max), e <= UInt64(Int.max)
        else { throw bad("'data_offsets' must be two non-negative integers") }
        guard e >= b else { throw bad("data_offsets end \(e) is before begin \(b)") }
        guard let count = Checked.product(shape), let size = dtype.byteCount(elements: count) else {
            throw bad("shape \(shape) × \(dtype.rawValue) overflows")
        }
        guard size == Int(e - b) else {
            throw bad("shape \(shape) of \(dtype.rawValue) needs \(size) bytes but data_offsets span \(e - b)")
        }
        return SafetensorsTensorInfo(name: name, dtype: dtype, shape: shape, dataOffsets: Int(b)..<Int(e))
    }

    /// The description of tensor `name`, if present.
    public func info(named name: String) -> SafetensorsTensorInfo? {
        index[name].map { tensors[$0] }
    }

    /// The raw bytes of `info` (valid while this object lives).
    public func data(for info: SafetensorsTensorInfo) -> UnsafeRawBufferPointer {
        let start = dataStart + info.dataOffsets.lowerBound
        let end = dataStart + info.dataOffsets.upperBound
        return UnsafeRawBufferPointer(rebasing: storage.bytes[start..<end])
    }
}

/// One tensor of a (possibly sharded) checkpoint: its description and the file that holds it.
public struct CheckpointTensor: Sendable {
    /// Description (offsets relative to `file`'s data buffer).
    public let info: SafetensorsTensorInfo
    /// The shard that holds the data.
    public let file: SafetensorsFile

    /// The raw bytes (valid while `file` lives).
    public var bytes: UnsafeRawBufferPointer { file.data(for: info) }
}

/// A safetensors checkpoint: one file, a directory of shards, or a `model.safetensors.index.json`.
public struct SafetensorsCheckpoint: Sendable {
    /// Every tensor, shard by shard in data order.
    public let tensors: [CheckpointTensor]
    /// The shards in the order they were opened.
    public let files: [SafetensorsFile]
    /// `config.json` next to the checkpoint, if present and valid.
    public let config: JSONValue?
    /// Problems found while opening that do not stop the job (a `config.json` that is not valid JSON,
    /// not an object, unreadable, or with a field of the wrong type), each one line naming the file and
    /// the problem (escaped). Callers surface them (the CLI prints them as `ternq: warning:` lines).
    public let warnings: [String]
    /// The path the checkpoint was opened from.
    public let path: String

    /// Opens a file, a directory (its index file if present, else every `*.safetensors` in name order),
    /// or an index file. Throws `FormatError`.
    public init(path: String) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw FormatError.io(file: path, reason: "no such file or directory")
        }
        let directory: String
        var shardPaths: [String]
        var weightMap: [(String, String)] = []
        if isDirectory.boolValue {
            directory = path
            let indexPath = (path as NSString).appendingPathComponent("model.safetensors.index.json")
            if FileManager.default.fileExists(atPath: indexPath) {
                (shardPaths, weightMap) = try Self.readIndex(indexPath, directory: directory)
            } else {
                let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
                shardPaths = names.filter { $0.hasSuffix(".safetensors") }.sorted()
                    .map { (path as NSString).appendingPathComponent($0) }
                guard !shardPaths.isEmpty else {
                    throw FormatError.io(file: path, reason: "directory holds no .safetensors file and no model.safetensors.index.json")
                }
            }
        } else if path.hasSuffix(".index.json") {
            directory = (path as NSString).deletingLastPathComponent
            (shardPaths, weightMap) = try Self.readIndex(path, directory: directory)
        } else {
            directory = (path as NSString).deletingLastPathComponent
            shardPaths = [path]
        }
        var files: [SafetensorsFile] = []
        var tensors: [CheckpointTensor] = []
        var owner: [String: String] = [:]
        for shard in shardPaths {
            let file = try SafetensorsFile(path: shard)
            files.append(file)
            for info in file.tensors {
                if let previous = owner[info.name] {
                    throw FormatError.invalidTensor(file: shard, tensor: info.name, reason: "also present in \(previous)")
                }
                owner[info.name] = shard
                tensors.append(CheckpointTensor(info: info, file: file))
            }
        }
        for (name, shardName) in weightMap {
            let expected = (directory as NSString).appendingPathComponent(shardName)
            guard owner[name] == expected else {
                throw FormatError.invalidTensor(file: expected, tensor: name, reason: "listed in the index's weight_map but not found in that shard")
            }
        }
        self.files = files
        self.tensors = tensors
        self.path = path
        let configPath = (directory.isEmpty ? "config.json" : (directory as NSString).appendingPathComponent("config.json"))
        (self.config, self.warnings) = Self.readConfig(configPath)
    }

    /// Largest `config.json` read (real ones are a few kB).
    public static let maxConfigLength = 16 << 20

    /// Reads `config.json` at `path`: `(nil, [])` when there is none, `(nil, [warning])` when it cannot
    /// be used, else the JSON and a warning per model field of the wrong type.
    static func readConfig(_ path: String) -> (JSONValue?, [String]) {
        var info = stat()
        guard lstat(path, &info) == 0 || errno != ENOENT else { return (nil, []) }
        let ignored = "model facts are \"unknown\"/0"
        let storage: ByteStorage
        do {
            storage = try ByteStorage(mapping: path)
        } catch {
            return (nil, ["\(error); \(ignored)"])
        }
        guard storage.bytes.count <= maxConfigLength else {
            return (nil, [FormatError.unsupported(file: path, reason: "\(storage.bytes.count) bytes is larger than the \(maxConfigLength)-byte limit for a config; \(ignored)").description])
        }
        let json: JSONValue
        do throws(JSONParseError) {
            json = try StrictJSONParser.parse(storage.bytes)
        } catch {
            return (nil, [FormatError.malformed(file: path, offset: error.offset, reason: "not valid JSON (\(error.reason)); \(ignored)").description])
        }
        guard case .object = json else {
            return (nil, [FormatError.malformed(file: path, offset: 0, reason: "not a JSON object; \(ignored)").description])
        }
        var warnings: [String] = []
        if let v = json["model_type"], v.stringValue == nil {
            warnings.append(FormatError.malformed(file: path, offset: nil, reason: "'model_type' is not a string; architecture is \"unknown\"").description)
        }
        for key in ["vocab_size", "hidden_size", "num_hidden_layers"] {
            if let v = json[key], v.uint64Value == nil {
                warnings.append(FormatError.malformed(file: path, offset: nil, reason: "'\(key)' is not a non-negative integer; it is reported as 0").description)
            }
        }
        return (json, warnings)
    }

    /// A checkpoint made of one in-memory file (used by the demo model and tests).
    public init(file: SafetensorsFile, config: JSONValue? = nil) {
        self.files = [file]
        self.tensors = file.tensors.map { CheckpointTensor(info: $0, file: file) }
        self.config = config
        self.warnings = []
        self.path = file.storage.path
    }

    private static func readIndex(_ indexPath: String, directory: String) throws -> ([String], [(String, String)]) {
        // Mapped, not read with FileManager: a FIFO or device named like the index is refused, not read
        // forever.
        let data = try ByteStorage(mapping: indexPath)
        return try parseIndex(data.bytes, indexPath: indexPath, directory: directory)
    }

    /// Parses index JSON bytes: the shard paths (sorted, joined to `directory`) and the weight_map pairs.
    /// Throws `FormatError` naming `indexPath` (also the fuzzing entry point).
    static func parseIndex(_ bytes: UnsafeRawBufferPointer, indexPath: String, directory: String) throws -> ([String], [(String, String)]) {
        let json: JSONValue
        do throws(JSONParseError) {
            json = try StrictJSONParser.parse(bytes)
        } catch {
            throw FormatError.malformed(file: indexPath, offset: error.offset, reason: error.reason)
        }
        guard case .object(let map)? = json["weight_map"] else {
            throw FormatError.malformed(file: indexPath, offset: nil, reason: "missing 'weight_map' object")
        }
        var shards: [String] = []
        var seen = Set<String>()
        var pairs: [(String, String)] = []
        for (name, value) in map {
            guard let shard = value.stringValue, !shard.isEmpty, !shard.hasPrefix("/"),
                  !shard.split(separator: "/").contains("..") else {
                throw FormatError.malformed(file: indexPath, offset: nil, reason: "weight_map entry '\(name)' is not a relative file name")
            }
            pairs.append((name, shard))
            if seen.insert(shard).inserted { shards.append(shard) }
        }
        return (shards.sorted().map { (directory as NSString).appendingPathComponent($0) }, pairs)
    }

    /// `model_type`, `vocab_size`, `hidden_size`, `num_hidden_layers` from `config.json`.
    public var modelInfo: ModelInfo {
        ModelInfo(architecture: config?["model_type"]?.stringValue ?? "unknown",
                  vocabSize: config?["vocab_size"]?.uint64Value ?? 0,
                  hiddenSize: config?["hidden_size"]?.uint64Value ?? 0,
                  numLayers: config?["num_hidden_layers"]?.uint64Value ?? 0)
    }
}

/// Model-level facts from `config.json` ("unknown"/0 when absent).
public struct ModelInfo: Sendable, Hashable, Codable {
    /// `model_type` (e.g. "llama"), or "unknown".
    public var architecture: String
    /// `vocab_size`, or 0.
    public var vocabSize: UInt64
    /// `hidden_size`, or 0.
    public var hiddenSize: UInt64
    /// `num_hidden_layers`, or 0.
    public var numLayers: UInt64

    enum CodingKeys: String, CodingKey {
        case architecture, vocabSize = "vocab_size", hiddenSize = "hidden_size", numLayers = "num_layers"
    }

    /// Creates model facts.
    public init(architecture: String, vocabSize: UInt64, hiddenSize: UInt64, numLayers: UInt64) {
        self.architecture = architecture
        self.vocabSize = vocabSize
        self.hiddenSize = hiddenSize
        self.numLayers = numLayers
    }
}
