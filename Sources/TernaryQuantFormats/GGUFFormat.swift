import TernaryQuantCore
/// GGUF v3 layout: limits, the header writer and `decode`, a buffer-level view of `GGUFFile`'s parser.
public enum GGUFFormat {
    /// Default (and written) alignment.
    public static let alignment = 32
    /// Longest tensor name llama.cpp accepts (GGML_MAX_NAME − 1).
    public static let maxNameLength = 63
    /// Longest string (key or value) the reader accepts, in bytes (llama.cpp's GGUF_MAX_STRING_LENGTH).
    public static let maxStringLength = 1 << 30
    /// Most elements in one array (llama.cpp's GGUF_MAX_ARRAY_ELEMENTS).
    public static let maxArrayElements = 1 << 30
    /// Most levels of arrays the reader accepts in one value (1: an array of scalars or strings; 2: an
    /// array of arrays; …). llama.cpp accepts 1.
    public static let maxArrayDepth = 8

    /// `n` rounded up to a multiple of `alignment` (writer side: sizes the writer produced itself).
    static func padded(_ n: Int, _ alignment: Int) -> Int { (n + alignment - 1) / alignment * alignment }

    /// `n` rounded up to a multiple of `alignment` (a power of two), or `nil` when `n` is negative, the
    /// alignment is not a positive power of two, or the result does not fit in an `Int`.
    public static func checkedPadded(_ n: Int, _ alignment: Int) -> Int? {
        guard n >= 0, alignment > 0, alignment & (alignment - 1) == 0, let sum = Checked.add(n, alignment - 1) else { return nil }
        return sum & ~(alignment - 1)
    }

    /// The bytes of one metadata entry as GGUF stores it (key, type code, value).
    public static func encode(_ entry: GGUFMetadataEntry) -> [UInt8] {
        var b = ByteBuilder()
        b.appendString(entry.key)
        entry.value.encode(into: &b, withType: true)
        return b.bytes
    }

    /// The header bytes (magic through the padding before the data section) for `metadata` and tensors
    /// of the given names, ggml dimensions, types and sizes. Offsets are the running sum of sizes, each
    /// padded to the alignment; returns the header and the infos with offsets filled in. Every value must
    /// be `isWellFormed` (arrays hold elements of their declared type); nested arrays are written as read.
    public static func header(metadata: [(String, GGUFValue)], tensors: [(name: String, dimensions: [Int], type: GGMLType, byteCount: Int)]) -> (bytes: [UInt8], infos: [GGUFTensorInfo]) {
        var b = ByteBuilder()
        b.append(Array("GGUF".utf8))
        b.append(UInt32(3))
        b.append(UInt64(tensors.count))
        b.append(UInt64(metadata.count))
        for (key, value) in metadata {
            b.appendString(key)
            value.encode(into: &b, withType: true)
        }
        var offset = 0
        var infos: [GGUFTensorInfo] = []
        for t in tensors {
            b.appendString(t.name)
            b.append(UInt32(t.dimensions.count))
            for d in t.dimensions { b.append(UInt64(d)) }
            b.append(t.type.rawValue)
            b.append(UInt64(offset))
            infos.append(GGUFTensorInfo(name: t.name, dimensions: t.dimensions, type: t.type, offset: offset, byteCount: t.byteCount))
            offset += padded(t.byteCount, alignment)
        }
        b.append([UInt8](repeating: 0, count: padded(b.bytes.count, alignment) - b.bytes.count))
        return (b.bytes, infos)
    }

    /// The header for metadata given as entries (see `header(metadata:tensors:)`).
    public static func header(metadata: [GGUFMetadataEntry], tensors: [(name: String, dimensions: [Int], type: GGMLType, byteCount: Int)]) -> (bytes: [UInt8], infos: [GGUFTensorInfo]) {
        header(metadata: metadata.map { ($0.key, $0.value) }, tensors: tensors)
    }

    /// A parsed GGUF file: version, metadata, tensors and where the data section starts.
    public struct Contents: Sendable {
        /// Format version (2 or 3).
        public var version: UInt32
        /// Metadata in file order.
        public var metadata: [(String, GGUFValue)]
        /// Tensors in file order.
        public var tensors: [GGUFTensorInfo]
        /// Alignment in effect.
        public var alignment: Int
        /// Byte offset of the data section.
        public var dataStart: Int

        /// Metadata value for `key`.
        public func value(_ key: String) -> GGUFValue? { metadata.first { $0.0 == key }?.1 }
    }

    /// Parses and validates GGUF bytes exactly as `GGUFFile` does (see there for the rules), without
    /// keeping them. Throws `FormatError` naming `file` and the byte offset.
    public static func decode(_ bytes: UnsafeRawBufferPointer, file: String) throws -> Contents {
        let p = try GGUFParser.parse(bytes, file: file)
        return Contents(version: p.version, metadata: p.metadata.map { ($0.key, $0.value) }, tensors: p.tensors,
                        alignment: p.alignment, dataStart: p.dataStart)
    }
}
