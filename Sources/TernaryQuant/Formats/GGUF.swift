/// IEEE binary16 conversion by integer bit logic (no `Float16`, which x86 Linux may lack).
public enum HalfFloat {
    /// The binary16 bit pattern nearest to `value` (round to nearest, ties to even; overflow → ±Inf,
    /// NaN → quiet NaN keeping the sign).
    public static func bits(from value: Float) -> UInt16 {
        HalfConversion.float16Bits(value)
    }

    /// The float32 value of a binary16 bit pattern (exact).
    public static func float(fromBits h: UInt16) -> Float {
        Float(bitPattern: Float32Bits.fromFloat16(h))
    }
}

/// ggml tensor types written or recognised by `ternq`.
public enum GGMLType: UInt32, Sendable, Hashable, CaseIterable, Codable {
    case f32 = 0, f16 = 1, q4_0 = 2, q4_1 = 3, q5_0 = 6, q5_1 = 7, q8_0 = 8, q8_1 = 9
    case q2_k = 10, q3_k = 11, q4_k = 12, q5_k = 13, q6_k = 14, q8_k = 15
    case iq2_xxs = 16, iq2_xs = 17, iq3_xxs = 18, iq1_s = 19, iq4_nl = 20, iq3_s = 21, iq2_s = 22, iq4_xs = 23
    case i8 = 24, i16 = 25, i32 = 26, i64 = 27, f64 = 28, iq1_m = 29, bf16 = 30
    case tq1_0 = 34, tq2_0 = 35

    /// (elements per block, bytes per block).
    public var blockLayout: (elements: Int, bytes: Int) {
        switch self {
        case .f32: return (1, 4)
        case .f16, .bf16: return (1, 2)
        case .q4_0: return (32, 18)
        case .q4_1: return (32, 20)
        case .q5_0: return (32, 22)
        case .q5_1: return (32, 24)
        case .q8_0: return (32, 34)
        case .q8_1: return (32, 36)
        case .q2_k: return (256, 84)
        case .q3_k: return (256, 110)
        case .q4_k: return (256, 144)
        case .q5_k: return (256, 176)
        case .q6_k: return (256, 210)
        case .q8_k: return (256, 292)
        case .iq2_xxs: return (256, 66)
        case .iq2_xs: return (256, 74)
        case .iq3_xxs: return (256, 98)
        case .iq1_s: return (256, 50)
        case .iq4_nl: return (32, 18)
        case .iq3_s: return (256, 110)
        case .iq2_s: return (256, 82)
        case .iq4_xs: return (256, 136)
        case .i8: return (1, 1)
        case .i16: return (1, 2)
        case .i32: return (1, 4)
        case .i64, .f64: return (1, 8)
        case .iq1_m: return (256, 56)
        case .tq1_0: return (256, 54)
        case .tq2_0: return (256, 66)
        }
    }

    /// Bytes for a tensor whose innermost dimension is `ne0` and total element count `count`, or `nil`
    /// when `ne0` is not a multiple of the block size or the size overflows.
    public func byteCount(ne0: Int, count: Int) -> Int? {
        let (elements, bytes) = blockLayout
        guard ne0 % elements == 0, count % elements == 0 else { return nil }
        return Checked.mul(count / elements, bytes)
    }
}

/// Encoders for the ternary ggml block formats, fed from the core 2-bit packed trits.
public enum TernaryBlocks {
    /// Elements per block (QK_K).
    public static let blockSize = 256

    /// Encodes `blockCount` blocks starting at block `firstBlock` of `packed` (2-bit trits) in `type`
    /// (`.tq2_0` or `.tq1_0`) with the f16 scale bits `d`. `packed` should hold every trit of those blocks;
    /// missing trits encode as 0, and a negative request or another type gives `[]` (never a trap).
    /// Runs the C encoder of the CPU backend, on every core for large requests.
    public static func encode(_ type: GGMLType, packed: UnsafeRawBufferPointer, firstBlock: Int, blockCount: Int, d: UInt16) -> [UInt8] {
        BlockEncoder.encode(type, packed: packed, firstBlock: firstBlock, blockCount: blockCount, d: d)
    }

    /// Decodes one block's trits (for tests and `info`); `bytes` must be one block of `type`.
    public static func decode(_ type: GGMLType, block bytes: [UInt8]) -> (trits: [Int], d: UInt16) {
        var t = [Int](repeating: 0, count: blockSize)
        if type == .tq2_0 {
            for k in 0..<blockSize {
                t[k] = Int((bytes[32 * (k / 128) + k % 32] >> UInt8(2 * ((k % 128) / 32))) & 3) - 1
            }
            return (t, UInt16(bytes[64]) | UInt16(bytes[65]) << 8)
        }
        func digit(_ byte: UInt8, _ n: Int) -> Int {
            var p = 1
            for _ in 0..<n { p *= 3 }
            return ((Int(byte) * p) % 256 * 3) >> 8
        }
        for m in 0..<32 { for n in 0..<5 { t[m + 32 * n] = digit(bytes[m], n) - 1 } }
        for m in 0..<16 { for n in 0..<5 { t[160 + m + 16 * n] = digit(bytes[32 + m], n) - 1 } }
        for j in 0..<4 { for m in 0..<4 { t[240 + j + 4 * m] = digit(bytes[48 + j], m) - 1 } }
        return (t, UInt16(bytes[52]) | UInt16(bytes[53]) << 8)
    }
}

/// A GGUF metadata value.
public enum GGUFValue: Sendable, Hashable {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16), uint32(UInt32), int32(Int32)
    case float32(Float), bool(Bool), string(String), uint64(UInt64), int64(Int64), float64(Double)
    /// An array of one element type (type code, values); nested arrays are not allowed.
    case array(UInt32, [GGUFValue])

    /// The GGUF value type code.
    public var typeCode: UInt32 {
        switch self {
        case .uint8: return 0
        case .int8: return 1
        case .uint16: return 2
        case .int16: return 3
        case .uint32: return 4
        case .int32: return 5
        case .float32: return 6
        case .bool: return 7
        case .string: return 8
        case .array: return 9
        case .uint64: return 10
        case .int64: return 11
        case .float64: return 12
        }
    }

    /// A short human rendering (arrays abbreviated).
    public var summary: String {
        switch self {
        case .uint8(let v): return "\(v)"
        case .int8(let v): return "\(v)"
        case .uint16(let v): return "\(v)"
        case .int16(let v): return "\(v)"
        case .uint32(let v): return "\(v)"
        case .int32(let v): return "\(v)"
        case .float32(let v): return "\(v)"
        case .bool(let v): return "\(v)"
        case .string(let s): return JSONText.quote(s)
        case .uint64(let v): return "\(v)"
        case .int64(let v): return "\(v)"
        case .float64(let v): return "\(v)"
        case .array(_, let items): return "[\(items.prefix(4).map(\.summary).joined(separator: ", "))\(items.count > 4 ? ", … (\(items.count))" : "")]"
        }
    }

    func encode(into b: inout ByteBuilder, withType: Bool) {
        if withType { b.append(typeCode) }
        switch self {
        case .uint8(let v): b.append(v)
        case .int8(let v): b.append(v)
        case .uint16(let v): b.append(v)
        case .int16(let v): b.append(v)
        case .uint32(let v): b.append(v)
        case .int32(let v): b.append(v)
        case .float32(let v): b.append(v.bitPattern)
        case .bool(let v): b.append(UInt8(v ? 1 : 0))
        case .string(let s): b.appendString(s)
        case .uint64(let v): b.append(v)
        case .int64(let v): b.append(v)
        case .float64(let v): b.append(v.bitPattern)
        case .array(let type, let items):
            b.append(type)
            b.append(UInt64(items.count))
            for item in items { item.encode(into: &b, withType: false) }
        }
    }
}

/// One tensor of a GGUF file.
public struct GGUFTensorInfo: Sendable, Hashable {
    /// Tensor name (< 64 bytes).
    public var name: String
    /// Dimensions in ggml order (innermost first).
    public var dimensions: [Int]
    /// Element type.
    public var type: GGMLType
    /// Offset in the data section.
    public var offset: Int
    /// Data size in bytes.
    public var byteCount: Int

    /// Creates a tensor description.
    public init(name: String, dimensions: [Int], type: GGMLType, offset: Int, byteCount: Int) {
        self.name = name
        self.dimensions = dimensions
        self.type = type
        self.offset = offset
        self.byteCount = byteCount
    }
}

/// GGUF v3 layout: a header writer and a validating reader.
public enum GGUFFormat {
    /// Default (and written) alignment.
    public static let alignment = 32
    /// Longest tensor name llama.cpp accepts (GGML_MAX_NAME − 1).
    public static let maxNameLength = 63

    static func padded(_ n: Int, _ alignment: Int) -> Int { (n + alignment - 1) / alignment * alignment }

    /// The header bytes (magic through the padding before the data section) for `metadata` and tensors
    /// of the given names, ggml dimensions, types and sizes. Offsets are the running sum of sizes, each
    /// padded to the alignment; returns the header and the infos with offsets filled in.
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

    /// Parses and validates a GGUF file the way llama.cpp's loader does (magic, version, KV types, no
    /// duplicate keys or names, n_dims ≤ 4, known types, block-aligned ne0, offsets equal to the running
    /// padded sum, data within the file). Throws `FormatError` with the byte offset.
    public static func decode(_ bytes: UnsafeRawBufferPointer, file: String) throws -> Contents {
        var r = ByteReader(bytes, file: file)
        let magic = try r.readBytes(4, "magic")
        guard Array(magic) == Array("GGUF".utf8) else {
            throw FormatError.malformed(file: file, offset: 0, reason: "not a GGUF file (bad magic)")
        }
        let version = try r.read(UInt32.self, "version")
        guard version == 2 || version == 3 else {
            throw FormatError.malformed(file: file, offset: 4, reason: "unsupported GGUF version \(version)")
        }
        let tensorCount = try r.read(UInt64.self, "tensor count")
        let kvCount = try r.read(UInt64.self, "metadata count")
        guard tensorCount <= UInt64(r.remaining / 24), kvCount <= UInt64(r.remaining / 13) else {
            throw FormatError.malformed(file: file, offset: 8, reason: "tensor count \(tensorCount) or metadata count \(kvCount) is larger than the file could hold")
        }
        var metadata: [(String, GGUFValue)] = []
        var keys = Set<String>()
        for _ in 0..<Int(kvCount) {
            let at = r.offset
            let key = try r.readString("metadata key", maxLength: 65536)
            guard !key.isEmpty, keys.insert(key).inserted else {
                throw FormatError.malformed(file: file, offset: at, reason: "empty or duplicate metadata key '\(key)'")
            }
            let type = try r.read(UInt32.self, "value type of '\(key)'")
            metadata.append((key, try readValue(&r, type: type, key: key, allowArray: true)))
        }
        var alignment = Self.alignment
        if let a = metadata.first(where: { $0.0 == "general.alignment" })?.1 {
            guard case .uint32(let v) = a, v > 0, v & (v - 1) == 0 else {
                throw FormatError.malformed(file: file, offset: nil, reason: "general.alignment must be a UINT32 power of two")
            }
            alignment = Int(v)
        }
        var tensors: [GGUFTensorInfo] = []
        var names = Set<String>()
        var expectedOffset = 0
        for _ in 0..<Int(tensorCount) {
            let at = r.offset
            let name = try r.readString("tensor name", maxLength: 65536)
            func bad(_ reason: String) -> FormatError { .invalidTensor(file: file, tensor: name, reason: "\(reason) (tensor info at byte \(at))") }
            guard name.utf8.count <= maxNameLength else { throw bad("name is \(name.utf8.count) bytes; the limit is \(maxNameLength)") }
            guard names.insert(name).inserted else { throw bad("duplicate tensor name") }
            let nDims = try r.read(UInt32.self, "n_dims")
            guard nDims <= 4 else { throw bad("n_dims \(nDims) exceeds 4") }
            var dims: [Int] = []
            for _ in 0..<nDims {
                let d = try r.read(UInt64.self, "dimension")
                guard d <= UInt64(Int64.max) else { throw bad("dimension \(d) out of range") }
                dims.append(Int(d))
            }
            let rawType = try r.read(UInt32.self, "type")
            guard let type = GGMLType(rawValue: rawType) else { throw bad("unknown ggml type \(rawType)") }
            let offset = try r.read(UInt64.self, "offset")
            guard let count = Checked.product(dims) else { throw bad("element count overflows") }
            guard let size = type.byteCount(ne0: dims.first ?? 1, count: count) else {
                throw bad("ne0 \(dims.first ?? 1) is not a multiple of the \(type) block size \(type.blockLayout.elements)")
            }
            guard offset == UInt64(expectedOffset) else {
                throw bad("offset \(offset) differs from the expected running padded offset \(expectedOffset)")
            }
            tensors.append(GGUFTensorInfo(name: name, dimensions: dims, type: type, offset: expectedOffset, byteCount: size))
            guard let next = Checked.add(expectedOffset, padded(size, alignment)) else { throw bad("offsets overflow") }
            expectedOffset = next
        }
        let dataStart = padded(r.offset, alignment)
        for t in tensors {
            guard let end = Checked.add(dataStart, t.offset + t.byteCount), end <= bytes.count else {
                throw FormatError.invalidTensor(file: file, tensor: t.name, reason: "data [\(t.offset), +\(t.byteCount)) runs past the end of the file")
            }
        }
        return Contents(version: version, metadata: metadata, tensors: tensors, alignment: alignment, dataStart: dataStart)
    }

    private static func readValue(_ r: inout ByteReader, type: UInt32, key: String, allowArray: Bool) throws -> GGUFValue {
        switch type {
        case 0: return .uint8(try r.read(UInt8.self, key))
        case 1: return .int8(try r.read(Int8.self, key))
        case 2: return .uint16(try r.read(UInt16.self, key))
        case 3: return .int16(try r.read(Int16.self, key))
        case 4: return .uint32(try r.read(UInt32.self, key))
        case 5: return .int32(try r.read(Int32.self, key))
        case 6: return .float32(Float(bitPattern: try r.read(UInt32.self, key)))
        case 7:
            let at = r.offset
            let v = try r.read(UInt8.self, key)
            guard v <= 1 else { throw FormatError.malformed(file: r.file, offset: at, reason: "'\(key)': bool value \(v)") }
            return .bool(v == 1)
        case 8: return .string(try r.readString("value of '\(key)'", maxLength: 1 << 30))
        case 9 where allowArray:
            let elementType = try r.read(UInt32.self, "array type of '\(key)'")
            let at = r.offset
            let n = try r.read(UInt64.self, "array length of '\(key)'")
            guard elementType != 9, n <= UInt64(r.remaining) else {
                throw FormatError.malformed(file: r.file, offset: at, reason: "'\(key)': nested array or length \(n) past the end of the file")
            }
            var items: [GGUFValue] = []
            for _ in 0..<Int(n) { items.append(try readValue(&r, type: elementType, key: key, allowArray: false)) }
            return .array(elementType, items)
        case 10: return .uint64(try r.read(UInt64.self, key))
        case 11: return .int64(try r.read(Int64.self, key))
        case 12: return .float64(Double(bitPattern: try r.read(UInt64.self, key)))
        default:
            throw FormatError.malformed(file: r.file, offset: r.offset - 4, reason: "'\(key)': unknown value type \(type)")
        }
    }
}
