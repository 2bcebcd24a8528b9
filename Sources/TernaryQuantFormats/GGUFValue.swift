import TernaryQuantCore
/// A GGUF metadata value (one of the 13 GGUF value types).
///
/// Floats keep their exact bit patterns (NaN payloads included), so a value read from a file encodes back
/// to the same bytes.
public enum GGUFValue: Sendable, Hashable {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16), uint32(UInt32), int32(Int32)
    case float32(Float), bool(Bool), string(String), uint64(UInt64), int64(Int64), float64(Double)
    /// An array: the element type code and the elements, each of that type. Arrays of arrays are allowed
    /// (the GGUF spec permits them; each inner array carries its own element type), although llama.cpp's
    /// loader refuses them.
    case array(UInt32, [GGUFValue])

    /// The GGUF value type code (0 UINT8 … 12 FLOAT64; 9 is ARRAY).
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

    /// The spec's name of a value type code ("UINT8", …, "FLOAT64"), or "type N" for an unknown code.
    public static func typeName(_ code: UInt32) -> String {
        let names = ["UINT8", "INT8", "UINT16", "INT16", "UINT32", "INT32", "FLOAT32", "BOOL", "STRING", "ARRAY",
                     "UINT64", "INT64", "FLOAT64"]
        return code < UInt32(names.count) ? names[Int(code)] : "type \(code)"
    }

    /// The value as a string (`.string` only).
    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    /// The value of any integer case as an `Int`, or `nil` for other cases (or a UINT64 above `Int.max`).
    public var integerValue: Int? {
        switch self {
        case .uint8(let v): return Int(v)
        case .int8(let v): return Int(v)
        case .uint16(let v): return Int(v)
        case .int16(let v): return Int(v)
        case .uint32(let v): return Int(v)
        case .int32(let v): return Int(v)
        case .uint64(let v): return v <= UInt64(Int.max) ? Int(v) : nil
        case .int64(let v): return Int(v)
        default: return nil
        }
    }

    /// Whether the value can be encoded faithfully: every element of every array has the array's declared
    /// element type (the reader only produces such values; `GGUFFormat.header` assumes it).
    public var isWellFormed: Bool {
        guard case .array(let type, let items) = self else { return true }
        return items.allSatisfy { $0.typeCode == type && $0.isWellFormed }
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
        case .string(let s): return JSONText.quote(s.count > 120 ? String(s.prefix(117)) + "..." : s)
        case .uint64(let v): return "\(v)"
        case .int64(let v): return "\(v)"
        case .float64(let v): return "\(v)"
        case .array(let type, let items):
            let shown = items.prefix(4).map(\.summary).joined(separator: ", ")
            return "\(Self.typeName(type))[\(shown)\(items.count > 4 ? ", … (\(items.count))" : "")]"
        }
    }

    /// Appends the value (with its type code first when `withType`), little-endian, as GGUF stores it.
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

/// One metadata key-value pair of a GGUF file.
public struct GGUFMetadataEntry: Sendable, Hashable {
    /// The key (non-empty UTF-8, unique in its file).
    public var key: String
    /// The value.
    public var value: GGUFValue

    /// Creates an entry.
    public init(key: String, value: GGUFValue) {
        self.key = key
        self.value = value
    }
}

/// One tensor of a GGUF file.
public struct GGUFTensorInfo: Sendable, Hashable {
    /// Tensor name (1–63 bytes of UTF-8).
    public var name: String
    /// Dimensions in ggml order (innermost first, ne0 … ne3); `[]` is a scalar.
    public var dimensions: [Int]
    /// Element type.
    public var type: GGMLType
    /// Offset of the tensor's bytes from the start of the data section.
    public var offset: Int
    /// Data size in bytes (without the alignment padding that follows it).
    public var byteCount: Int

    /// Creates a tensor description.
    public init(name: String, dimensions: [Int], type: GGMLType, offset: Int, byteCount: Int) {
        self.name = name
        self.dimensions = dimensions
        self.type = type
        self.offset = offset
        self.byteCount = byteCount
    }

    /// Number of elements (the product of the dimensions; 1 for a scalar). A reader-produced info never
    /// overflows; for a hand-made one an overflowing product gives 0.
    public var elementCount: Int { Checked.product(dimensions) ?? 0 }

    /// Dimensions outermost first (the safetensors / PyTorch order).
    public var shape: [Int] { dimensions.reversed() }
}
