/// What a backend reports for one quantized tensor (the trits themselves went to the caller's buffer).
public struct QuantizationSummary: Sendable, Hashable {
    /// α: the float32 nearest to the exact mean of |w| (1.0 if every element is ±0; +0 if the mean ≤ 2^-150).
    public var scale: Float
    /// Number of elements.
    public var elementCount: Int
    /// Number of zero trits (`.tend`).
    public var zeroCount: Int

    /// Creates a summary.
    public init(scale: Float, elementCount: Int, zeroCount: Int) {
        self.scale = scale
        self.elementCount = elementCount
        self.zeroCount = zeroCount
    }

    /// Fraction of zero trits, 0...1.
    public var sparsity: Double { elementCount == 0 ? 0 : Double(zeroCount) / Double(elementCount) }
}

/// One quantized tensor with its trits stored in a `TritLayout`.
public struct QuantizedTensor: Sendable, Hashable {
    /// Tensor name.
    public var name: String
    /// Logical shape (row-major).
    public var shape: [Int]
    /// α, zero count and element count.
    public var summary: QuantizationSummary
    /// Layout of `data`.
    public var layout: TritLayout
    /// Trits in `layout` (`layout.byteCount(forTrits: elementCount)` bytes).
    public var data: [UInt8]

    /// Creates a quantized tensor from its parts.
    public init(name: String, shape: [Int], summary: QuantizationSummary, layout: TritLayout, data: [UInt8]) {
        self.name = name
        self.shape = shape
        self.summary = summary
        self.layout = layout
        self.data = data
    }

    /// α.
    public var scale: Float { summary.scale }
    /// Number of elements.
    public var elementCount: Int { summary.elementCount }
    /// Fraction of zero trits.
    public var sparsity: Double { summary.sparsity }

    /// The trits in row-major order. Throws `QuantizationError` if `data` is corrupt.
    public func trits() throws -> [Trit] {
        switch layout {
        case .packed2Bit:
            return try TritPacking.unpack(data, count: elementCount)
        case .int8:
            var result = [Trit]()
            result.reserveCapacity(elementCount)
            for (i, byte) in data.prefix(elementCount).enumerated() {
                guard let t = Trit(rawValue: Int8(bitPattern: byte)) else {
                    throw QuantizationError.invalidPackedCode(index: i)
                }
                result.append(t)
            }
            return result
        }
    }

    /// The trits in the 2-bit packed layout (converted if stored as int8).
    public func packedBytes() throws -> [UInt8] {
        switch layout {
        case .packed2Bit: return data
        case .int8: return try TritPacking.pack(int8Trits: Array(data.prefix(elementCount)))
        }
    }
}
