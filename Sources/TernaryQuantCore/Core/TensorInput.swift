/// A read-only view of one tensor's raw little-endian elements, as a backend consumes it.
///
/// Two kinds of input:
/// - owning: `init(name:shape:elementType:copying:)`, `init(name:shape:floats:)` with an array, or
///   `init(name:shape:elementType:bytes:keepingAlive:)` with the object that holds the bytes (a
///   memory-mapped file). The input keeps its bytes alive: it may be stored, put in an array for
///   `Quantizer.quantizeLayers`, and sent to other threads.
/// - borrowing: `init(name:shape:elementType:bytes:)` and `init(name:shape:floats:)` with a buffer
///   pointer. The caller keeps the bytes alive, and the input must not outlive the closure that
///   gave the pointer (`withUnsafeBytes`, `withUnsafeBufferPointer`): returning it from that closure is
///   undefined behaviour. Use an owning input whenever the input leaves the closure.
///
/// Data may be unaligned. Construction validates the shape against the byte count, so every backend
/// receives a consistent tensor.
public struct TensorInput: @unchecked Sendable {
    /// Tensor name used in reports and error messages.
    public let name: String
    /// Logical shape (row-major). `[]` is a scalar.
    public let shape: [Int]
    /// Storage type of `bytes`.
    public let elementType: ElementType
    /// The raw elements (`elementCount × elementType.byteWidth` bytes).
    public let bytes: UnsafeRawBufferPointer
    /// Number of elements (the product of `shape`).
    public let elementCount: Int
    /// What keeps `bytes` alive: the input's own copy, the caller's owner, or `nil` for a borrowed view.
    public let owner: (any AnyObject & Sendable)?

    /// Borrows raw bytes (see the type's note on lifetime). Throws `QuantizationError` when the shape is
    /// invalid, empty, or disagrees with the byte count.
    public init(name: String, shape: [Int], elementType: ElementType, bytes: UnsafeRawBufferPointer) throws {
        try self.init(name: name, shape: shape, elementType: elementType, bytes: bytes, owner: nil)
    }

    /// Views `bytes`, which `owner` keeps alive and unchanged (e.g. the memory-mapped file they lie in);
    /// the input holds `owner` so the bytes live as long as the input. Throws like
    /// `init(name:shape:elementType:bytes:)`.
    public init(name: String, shape: [Int], elementType: ElementType, bytes: UnsafeRawBufferPointer,
                keepingAlive owner: any AnyObject & Sendable) throws {
        try self.init(name: name, shape: shape, elementType: elementType, bytes: bytes, owner: .some(owner))
    }

    /// Copies `bytes` into storage the input owns. Throws like `init(name:shape:elementType:bytes:)`.
    public init(name: String, shape: [Int], elementType: ElementType, copying bytes: [UInt8]) throws {
        let storage = TensorStorage(copying: bytes)
        try self.init(name: name, shape: shape, elementType: elementType, bytes: storage.bytes, owner: storage)
    }

    /// Copies float32 `weights` into storage the input owns. Throws like `init(name:shape:floats:)` with
    /// a buffer.
    public init(name: String, shape: [Int], floats weights: [Float]) throws {
        let count = try TensorShape.elementCount(of: shape, name: name)
        guard count == weights.count else {
            throw QuantizationError.shapeMismatch(name: name, shape: shape, elementCount: weights.count)
        }
        let storage = weights.withUnsafeBytes { TensorStorage(copying: $0) }
        try self.init(name: name, shape: shape, elementType: .float32, bytes: storage.bytes, owner: storage)
    }

    private init(name: String, shape: [Int], elementType: ElementType, bytes: UnsafeRawBufferPointer,
                 owner: (any AnyObject & Sendable)?) throws {
        let count = try TensorShape.elementCount(of: shape, name: name)
        let expected = count.multipliedReportingOverflow(by: elementType.byteWidth)
        guard !expected.overflow else { throw QuantizationError.shapeOverflow(name: name, shape: shape) }
        guard expected.partialValue == bytes.count else {
            throw QuantizationError.byteCountMismatch(name: name, expected: expected.partialValue, actual: bytes.count)
        }
        guard count > 0 else { throw QuantizationError.emptyTensor(name: name) }
        self.name = name
        self.shape = shape
        self.elementType = elementType
        self.bytes = bytes
        self.elementCount = count
        self.owner = owner
    }

    /// Borrows float32 weights (see the type's note on lifetime). Throws like `init(name:shape:elementType:bytes:)`, reporting a shape whose
    /// product differs from `weights.count` as `.shapeMismatch`.
    public init(name: String, shape: [Int], floats weights: UnsafeBufferPointer<Float>) throws {
        let count = try TensorShape.elementCount(of: shape, name: name)
        guard count == weights.count else {
            throw QuantizationError.shapeMismatch(name: name, shape: shape, elementCount: weights.count)
        }
        try self.init(name: name, shape: shape, elementType: .float32, bytes: UnsafeRawBufferPointer(weights))
    }

    /// The float32 bit pattern of element `index` (exact widening for F16/BF16). `index` must be in range.
    @inlinable
    public func float32Bits(at index: Int) -> UInt32 {
        switch elementType {
        case .float32:
            return bytes.loadUnaligned(fromByteOffset: index &* 4, as: UInt32.self)
        case .float16:
            return Float32Bits.fromFloat16(bytes.loadUnaligned(fromByteOffset: index &* 2, as: UInt16.self))
        case .bfloat16:
            return Float32Bits.fromBFloat16(bytes.loadUnaligned(fromByteOffset: index &* 2, as: UInt16.self))
        }
    }

    /// The first NaN or ±Inf element as a `QuantizationError.nonFiniteValue`, or `nil` if all are finite.
    public func firstNonFiniteError() -> QuantizationError? {
        for i in 0..<elementCount {
            let bits = float32Bits(at: i)
            if bits & 0x7FFF_FFFF >= 0x7F80_0000 {
                return .nonFiniteValue(name: name, index: i, bits: bits)
            }
        }
        return nil
    }
}

/// Shape validation shared by every entry point.
public enum TensorShape {
    /// The product of `shape`, or a `QuantizationError` for a negative dimension or overflow.
    /// A zero dimension gives 0 (callers that need elements reject it as `.emptyTensor`).
    public static func elementCount(of shape: [Int], name: String) throws -> Int {
        var total = 1
        for (axis, dimension) in shape.enumerated() {
            guard dimension >= 0 else {
                throw QuantizationError.negativeDimension(name: name, shape: shape, axis: axis)
            }
            let (product, overflow) = total.multipliedReportingOverflow(by: dimension)
            guard !overflow else { throw QuantizationError.shapeOverflow(name: name, shape: shape) }
            total = product
        }
        return total
    }
}

/// Bytes an owning `TensorInput` holds: allocated once, written once at creation, freed with the last input.
final class TensorStorage: @unchecked Sendable {
    /// The bytes (read-only after `init`).
    let bytes: UnsafeRawBufferPointer

    init(copying source: some Collection<UInt8>) {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: source.count, alignment: 16)
        buffer.copyBytes(from: source)
        bytes = UnsafeRawBufferPointer(buffer)
    }

    init(copying source: UnsafeRawBufferPointer) {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: source.count, alignment: 16)
        buffer.copyMemory(from: source)
        bytes = UnsafeRawBufferPointer(buffer)
    }

    deinit { bytes.deallocate() }
}
