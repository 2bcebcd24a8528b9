/// Why a tensor could not be quantized. Every case names the tensor (when there is one) and what the
/// caller can do about it; the library never traps on bad input.
public enum QuantizationError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The tensor has no elements; there is no mean to take.
    case emptyTensor(name: String)
    /// A dimension of `shape` is negative.
    case negativeDimension(name: String, shape: [Int], axis: Int)
    /// The product of `shape` does not fit in `Int`.
    case shapeOverflow(name: String, shape: [Int])
    /// The product of `shape` differs from the number of elements supplied.
    case shapeMismatch(name: String, shape: [Int], elementCount: Int)
    /// A byte buffer's length is not `elementCount × element size` (or an output buffer is too small).
    case byteCountMismatch(name: String, expected: Int, actual: Int)
    /// Element `index` (flat, row-major) is NaN or ±Inf; `bits` is its float32 bit pattern.
    case nonFiniteValue(name: String, index: Int, bits: UInt32)
    /// `mse` was given a weight array whose length differs from the quantized tensor's.
    case lengthMismatch(name: String, expected: Int, actual: Int)
    /// Packed data holds the reserved code `11` at trit `index`.
    case invalidPackedCode(index: Int)
    /// A scale passed to `TritThreshold` is negative, NaN or infinite (`bits` is its bit pattern).
    case invalidScale(bits: UInt32)
    /// Packed data is too short for `count` trits.
    case packedDataTooShort(expectedBytes: Int, actualBytes: Int)
    /// GGUF ternary blocks were asked for a tensor whose element count is not a multiple of the block size.
    case notWholeBlocks(name: String, elementCount: Int, blockSize: Int)
    /// GGUF ternary blocks were asked for a ggml type that is not TQ1_0 or TQ2_0 (`rawType` is its id).
    case unsupportedBlockType(rawType: UInt32)

    public var description: String {
        switch self {
        case .emptyTensor(let name):
            return "tensor '\(name)' has no elements: a scale cannot be computed for an empty tensor; skip it or keep it unquantized"
        case .negativeDimension(let name, let shape, let axis):
            return "tensor '\(name)': shape \(shape) has a negative dimension at axis \(axis)"
        case .shapeOverflow(let name, let shape):
            return "tensor '\(name)': the element count of shape \(shape) overflows a 64-bit integer"
        case .shapeMismatch(let name, let shape, let count):
            return "tensor '\(name)': shape \(shape) describes \(Self.product(shape)) elements but \(count) were supplied; pass the tensor's real shape"
        case .byteCountMismatch(let name, let expected, let actual):
            return "tensor '\(name)': expected \(expected) bytes but the buffer has \(actual)"
        case .nonFiniteValue(let name, let index, let bits):
            let kind = (bits & 0x7FFF_FFFF) == 0x7F80_0000 ? ((bits >> 31) == 1 ? "-Inf" : "+Inf") : "NaN"
            return "tensor '\(name)': element \(index) is \(kind) (bits 0x\(String(bits, radix: 16))); the checkpoint is corrupt or was saved after a diverged step — fix or exclude this tensor"
        case .lengthMismatch(let name, let expected, let actual):
            return "tensor '\(name)': expected \(expected) original weights, got \(actual)"
        case .invalidPackedCode(let index):
            return "packed trit \(index) holds the reserved code 0b11; the data is corrupt"
        case .invalidScale(let bits):
            return "scale \(Float(bitPattern: bits)) (bits 0x\(String(bits, radix: 16))) is not a finite value ≥ 0"
        case .packedDataTooShort(let expected, let actual):
            return "packed trit data needs \(expected) bytes but has \(actual)"
        case .notWholeBlocks(let name, let count, let blockSize):
            return "tensor '\(name)': \(count) elements are not a whole number of \(blockSize)-element blocks; keep it unquantized or use another output layout"
        case .unsupportedBlockType(let rawType):
            return "ggml type \(rawType) is not a ternary block type; use TQ1_0 (34) or TQ2_0 (35)"
        }
    }

    private static func product(_ shape: [Int]) -> String {
        var total = 1
        for d in shape {
            let (p, o) = total.multipliedReportingOverflow(by: d)
            if o { return "overflowing" }
            total = p
        }
        return String(total)
    }
}
