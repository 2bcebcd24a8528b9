import TernaryQuantCore
/// A GGUF file (version 2 or 3, little-endian), memory-mapped and fully validated when it is opened.
///
/// Validation follows llama.cpp's `gguf_init_from_file` (ggml/src/gguf.cpp) and its model loader, with every
/// size computed in overflow-checked arithmetic: magic; version 2 or 3; key-value count and tensor count
/// that fit in the file; keys non-empty and unique; strings and arrays at most 2^30 bytes / elements and
/// inside the file; BOOL values 0 or 1; `general.alignment`, when present, a UINT32 power of two (default
/// 32); tensor names 1–63 bytes and unique; at most 4 dimensions, each in 0…2^63−1, with an element count
/// that fits in Int64; a known ggml type code; ne0 a multiple of the type's block size; offsets equal to the
/// running sum of the previous tensors' sizes each rounded up to the alignment (so tensor data never
/// overlaps); every tensor's bytes inside the file. Unlike llama.cpp, arrays of arrays are accepted (up to
/// `GGUFFormat.maxArrayDepth` levels), as the GGUF specification allows them.
///
/// Every failure is a `FormatError` naming the file and the byte offset (and the tensor, for tensor infos).
public final class GGUFFile: Sendable {
    /// The file's bytes (kept mapped as long as this object lives).
    public let storage: ByteStorage
    /// Format version (2 or 3; their little-endian layouts are identical).
    public let version: UInt32
    /// Metadata in file order.
    public let metadata: [GGUFMetadataEntry]
    /// Byte range in the file of each metadata entry (key through value), parallel to `metadata`.
    public let metadataRanges: [Range<Int>]
    /// Tensors in file order.
    public let tensors: [GGUFTensorInfo]
    /// Alignment of the data section and of every tensor in it (a power of two).
    public let alignment: Int
    /// Byte offset of the data section in the file (tensor offsets are relative to it). For a file without
    /// tensors, the end of the header (llama.cpp does not require the padding there).
    public let dataStart: Int
    private let keyIndex: [String: Int]

    /// Maps and validates the file at `path`. Throws `FormatError`.
    public convenience init(path: String) throws {
        try self.init(storage: ByteStorage(mapping: path))
    }

    /// Validates `storage` as a GGUF file. Throws `FormatError` naming `storage.path` and the byte offset.
    public init(storage: ByteStorage) throws {
        let p = try GGUFParser.parse(storage.bytes, file: storage.path)
        self.storage = storage
        self.version = p.version
        self.metadata = p.metadata
        self.metadataRanges = p.ranges
        self.tensors = p.tensors
        self.alignment = p.alignment
        self.dataStart = p.dataStart
        var index: [String: Int] = [:]
        for (i, e) in p.metadata.enumerated() { index[e.key] = i }
        self.keyIndex = index
    }

    /// The path (or in-memory name) of the file.
    public var path: String { storage.path }

    /// The value of metadata `key`, or `nil` when the file has no such key.
    public func value(forKey key: String) -> GGUFValue? {
        keyIndex[key].map { metadata[$0].value }
    }

    /// The bytes of `tensor` (one of `tensors`; already validated to lie inside the file). For an info that
    /// does not describe a range inside this file, an empty buffer.
    public func data(for tensor: GGUFTensorInfo) -> UnsafeRawBufferPointer {
        let bytes = storage.bytes
        guard tensor.offset >= 0, tensor.byteCount >= 0, let start = Checked.add(dataStart, tensor.offset),
              let end = Checked.add(start, tensor.byteCount), end <= bytes.count else {
            return UnsafeRawBufferPointer(start: nil, count: 0)
        }
        return UnsafeRawBufferPointer(rebasing: bytes[start..<end])
    }
}

/// The validating GGUF parser shared by `GGUFFile` and `GGUFFormat.decode`.
struct GGUFParser {
    struct Parsed {
        var version: UInt32
        var metadata: [GGUFMetadataEntry]
        var ranges: [Range<Int>]
        var tensors: [GGUFTensorInfo]
        var alignment: Int
        var dataStart: Int
    }

    var r: ByteReader
    var file: String { r.file }

    func fail(_ offset: Int, _ reason: String) -> FormatError {
        .malformed(file: file, offset: offset, reason: reason)
    }

    /// Smallest encoded size of one value of GGUF type `code` (used to bound counts before allocating).
    static func minimumSize(_ code: UInt32) -> Int? {
        switch code {
        case 0, 1, 7: return 1
        case 2, 3: return 2
        case 4, 5, 6: return 4
        case 10, 11, 12: return 8
        case 8: return 8  // u64 length
        case 9: return 12  // u32 type + u64 count
        default: return nil
        }
    }

    static func parse(_ bytes: UnsafeRawBufferPointer, file: String) throws -> Parsed {
        var p = GGUFParser(r: ByteReader(bytes, file: file))
        return try p.parse()
    }

    mutating func parse() throws -> Parsed {
        let magic = try r.readBytes(4, "magic")
        guard Array(magic) == Array("GGUF".utf8) else { throw fail(0, "not a GGUF file (bad magic)") }
        let version = try r.read(UInt32.self, "version")
        guard version == 2 || version == 3 else {
            let hint = version & 0xFFFF == 0 && version != 0 ? " (a big-endian file? only little-endian GGUF is supported)"
                : version == 1 ? " (GGUF v1 is no longer supported, as in llama.cpp)" : ""
            throw fail(4, "unsupported GGUF version \(version)\(hint)")
        }
        let tensorCount = try r.read(UInt64.self, "tensor count")
        let kvCount = try r.read(UInt64.self, "metadata count")
        // Each tensor info takes ≥ 24 bytes (name length, n_dims, type, offset), each KV ≥ 13.
        guard tensorCount <= UInt64(r.remaining / 24) else {
            throw fail(8, "tensor count \(tensorCount) is larger than the rest of the file could describe")
        }
        guard kvCount <= UInt64(r.remaining / 13) else {
            throw fail(16, "metadata count \(kvCount) is larger than the rest of the file could hold")
        }

        var metadata: [GGUFMetadataEntry] = []
        var ranges: [Range<Int>] = []
        metadata.reserveCapacity(Int(kvCount))
        var keys = Set<String>()
        var alignment = GGUFFormat.alignment
        for _ in 0..<Int(kvCount) {
            let at = r.offset
            let key = try readString("metadata key")
            guard !key.isEmpty else { throw fail(at, "empty metadata key") }
            guard keys.insert(key).inserted else { throw fail(at, "duplicate metadata key \(JSONText.quote(key))") }
            let typeAt = r.offset
            let type = try r.read(UInt32.self, "value type of \(JSONText.quote(key))")
            let value = try readValue(type: type, typeAt: typeAt, what: "value of \(JSONText.quote(key))", depth: 0)
            if key == "general.alignment" {
                guard case .uint32(let v) = value else {
                    throw fail(typeAt, "general.alignment must be UINT32, not \(GGUFValue.typeName(type))")
                }
                guard v != 0, v & (v - 1) == 0 else { throw fail(typeAt + 4, "general.alignment \(v) is not a power of two") }
                alignment = Int(v)
            }
            metadata.append(GGUFMetadataEntry(key: key, value: value))
            ranges.append(at..<r.offset)
        }

        var tensors: [GGUFTensorInfo] = []
        tensors.reserveCapacity(Int(tensorCount))
        var names = Set<String>()
        var offsetFields: [Int] = []  // where each tensor's offset field is, for data-range errors
        offsetFields.reserveCapacity(Int(tensorCount))
        var expectedOffset = 0
        for index in 0..<Int(tensorCount) {
            let at = r.offset
            let nameLength = try r.read(UInt64.self, "name length of tensor \(index)")
            guard nameLength >= 1, nameLength <= UInt64(GGUFFormat.maxNameLength) else {
                throw fail(at, "tensor \(index): name length \(nameLength); llama.cpp accepts 1–\(GGUFFormat.maxNameLength) bytes")
            }
            let raw = try r.readBytes(Int(nameLength), "name of tensor \(index)")
            guard let name = String(validating: raw, as: UTF8.self) else { throw fail(at, "tensor \(index): name is not valid UTF-8") }
            let label = "tensor \(JSONText.quote(name))"
            guard names.insert(name).inserted else { throw fail(at, "\(label): duplicate tensor name") }
            let nDimsAt = r.offset
            let nDims = try r.read(UInt32.self, "n_dims of \(label)")
            guard nDims <= 4 else { throw fail(nDimsAt, "\(label): n_dims \(nDims) exceeds 4 (GGML_MAX_DIMS)") }
            var dims: [Int] = []
            var count = 1
            for j in 0..<Int(nDims) {
                let dimAt = r.offset
                let d = try r.read(UInt64.self, "dimension \(j) of \(label)")
                guard d <= UInt64(Int64.max) else { throw fail(dimAt, "\(label): dimension \(j) is \(d), above 2^63 − 1") }
                dims.append(Int(d))
                guard let c = Checked.mul(count, Int(d)) else {
                    throw fail(dimAt, "\(label): element count of dimensions \(dims) overflows 2^63 − 1")
                }
                count = c
            }
            let typeAt = r.offset
            let rawType = try r.read(UInt32.self, "type of \(label)")
            guard let type = GGMLType(rawValue: rawType) else {
                throw fail(typeAt, "\(label): unknown or removed ggml type code \(rawType)")
            }
            let ne0 = dims.first ?? 1
            let block = type.blockLayout
            guard ne0 % block.elements == 0 else {
                throw fail(typeAt, "\(label): ne0 \(ne0) is not a multiple of the \(type.ggmlName) block size \(block.elements)")
            }
            guard let size = type.byteCount(ne0: ne0, count: count), let paddedSize = GGUFFormat.checkedPadded(size, alignment) else {
                throw fail(typeAt, "\(label): size in bytes of \(count) \(type.ggmlName) elements overflows")
            }
            let offsetAt = r.offset
            let offset = try r.read(UInt64.self, "offset of \(label)")
            guard offset == UInt64(expectedOffset) else {
                throw fail(offsetAt, "\(label): data offset \(offset) is not \(expectedOffset), the end of the previous tensor rounded up to the alignment \(alignment)")
            }
            tensors.append(GGUFTensorInfo(name: name, dimensions: dims, type: type, offset: expectedOffset, byteCount: size))
            offsetFields.append(offsetAt)
            guard let next = Checked.add(expectedOffset, paddedSize) else {
                throw fail(offsetAt, "\(label): the data section size overflows")
            }
            expectedOffset = next
        }

        var dataStart = r.offset
        if !tensors.isEmpty {
            guard let padded = GGUFFormat.checkedPadded(r.offset, alignment), padded <= r.bytes.count else {
                throw fail(r.offset, "file ends before the data section (header end \(r.offset) rounded up to the alignment \(alignment))")
            }
            dataStart = padded
        }
        for (t, at) in zip(tensors, offsetFields) {
            // dataStart ≤ file size and offset + byteCount ≤ the checked running sum, so these cannot overflow,
            // but they are checked anyway.
            guard let start = Checked.add(dataStart, t.offset), let end = Checked.add(start, t.byteCount), end <= r.bytes.count else {
                throw fail(at, "tensor \(JSONText.quote(t.name)): data at bytes \(dataStart) + \(t.offset), \(t.byteCount) bytes long, runs past the end of the file (\(r.bytes.count) bytes); the file is truncated")
            }
        }
        return Parsed(version: version, metadata: metadata, ranges: ranges, tensors: tensors, alignment: alignment, dataStart: dataStart)
    }

    /// A length-prefixed UTF-8 string of at most `GGUFFormat.maxStringLength` bytes (`what` names it in errors).
    mutating func readString(_ what: String) throws -> String {
        let at = r.offset
        let length = try r.read(UInt64.self, what)
        guard length <= UInt64(GGUFFormat.maxStringLength) else {
            throw fail(at, "\(what): string length \(length) exceeds the limit \(GGUFFormat.maxStringLength)")
        }
        let raw = try r.readBytes(Int(length), what)
        guard let s = String(validating: raw, as: UTF8.self) else { throw fail(at, "\(what): string is not valid UTF-8") }
        return s
    }

    /// One value of GGUF type `type` (`typeAt`: where its type code is; `what`: its name in errors, built
    /// once per KV because arrays of strings call this for each of up to 2^30 elements).
    mutating func readValue(type: UInt32, typeAt: Int, what: String, depth: Int) throws -> GGUFValue {
        switch type {
        case 0: return .uint8(try r.read(UInt8.self, what))
        case 1: return .int8(try r.read(Int8.self, what))
        case 2: return .uint16(try r.read(UInt16.self, what))
        case 3: return .int16(try r.read(Int16.self, what))
        case 4: return .uint32(try r.read(UInt32.self, what))
        case 5: return .int32(try r.read(Int32.self, what))
        case 6: return .float32(Float(bitPattern: try r.read(UInt32.self, what)))
        case 7:
            let at = r.offset
            let v = try r.read(UInt8.self, what)
            guard v <= 1 else { throw fail(at, "\(what): BOOL byte \(v) is neither 0 nor 1") }
            return .bool(v == 1)
        case 8: return .string(try readString(what))
        case 9:
            guard depth < GGUFFormat.maxArrayDepth else {
                throw fail(typeAt, "\(what): arrays nested more than \(GGUFFormat.maxArrayDepth) deep")
            }
            let elementAt = r.offset
            let elementType = try r.read(UInt32.self, what)
            guard let minimum = Self.minimumSize(elementType) else {
                throw fail(elementAt, "\(what): unknown array element type \(elementType)")
            }
            let countAt = r.offset
            let n = try r.read(UInt64.self, what)
            guard n <= UInt64(GGUFFormat.maxArrayElements) else {
                throw fail(countAt, "\(what): array length \(n) exceeds the limit \(GGUFFormat.maxArrayElements)")
            }
            guard let need = Checked.mul(Int(n), minimum), need <= r.remaining else {
                throw fail(countAt, "\(what): array of \(n) \(GGUFValue.typeName(elementType)) runs past the end of the file")
            }
            var items: [GGUFValue] = []
            items.reserveCapacity(Int(n))
            for _ in 0..<Int(n) {
                items.append(try readValue(type: elementType, typeAt: elementAt, what: what, depth: depth + 1))
            }
            return .array(elementType, items)
        case 10: return .uint64(try r.read(UInt64.self, what))
        case 11: return .int64(try r.read(Int64.self, what))
        case 12: return .float64(Double(bitPattern: try r.read(UInt64.self, what)))
        default:
            throw fail(typeAt, "\(what): unknown value type \(type)")
        }
    }
}
