/// A device that computes α and trits for one tensor. Every backend produces byte-identical results:
/// the same α bits, the same trits, the same zero count (the contract in docs/SEMANTICS.md).
///
/// Implementations are thread-safe: `quantize` may be called concurrently (a multi-device backend uses
/// that to spread tensors across devices).
public protocol QuantizationBackend: Sendable {
    /// Short backend name: `"cpu"` or `"opencl"`.
    var name: String { get }
    /// Human-readable description of the device(s), for reports.
    var deviceDescription: String { get }
    /// How many `quantize` calls the backend can usefully run at once (1 for the CPU backend, which
    /// already uses every core; the device count for a multi-device backend).
    var preferredConcurrency: Int { get }

    /// Quantizes `input`, writing `layout.byteCount(forTrits: input.elementCount)` bytes to the start of
    /// `output`. Throws `QuantizationError` for bad input (non-finite element, output too small) and a
    /// backend-specific error when the device fails.
    func quantize(_ input: TensorInput, layout: TritLayout, into output: UnsafeMutableRawBufferPointer) throws
        -> QuantizationSummary

    /// `quantize` into packed 2-bit trits plus the mean squared error of the result at the scale
    /// `errorScale(α)` (`MeanSquaredError.of`, the same bits). The default quantizes, then measures in a
    /// second host pass; the CPU backend sums the error inside its trit pass. Throws what `quantize` throws.
    func quantizePacked(_ input: TensorInput, into output: UnsafeMutableRawBufferPointer,
                        errorScale: (Float) -> Float) throws -> MeasuredQuantization
}

/// A quantization with the reconstruction error of its trits, from `quantizePacked(_:into:errorScale:)`.
public struct MeasuredQuantization: Sendable, Hashable {
    /// α, element count and zero count.
    public var summary: QuantizationSummary
    /// The scale the error was measured at: `errorScale(α)`.
    public var errorScale: Float
    /// Mean of (w − errorScale·t)² in float64 (the order `MeanSquaredError` documents).
    public var meanSquaredError: Double

    /// Creates a result.
    public init(summary: QuantizationSummary, errorScale: Float, meanSquaredError: Double) {
        (self.summary, self.errorScale, self.meanSquaredError) = (summary, errorScale, meanSquaredError)
    }
}

extension QuantizationBackend {
    public func quantizePacked(_ input: TensorInput, into output: UnsafeMutableRawBufferPointer,
                               errorScale: (Float) -> Float) throws -> MeasuredQuantization {
        let summary = try quantize(input, layout: .packed2Bit, into: output)
        let scale = errorScale(summary.scale)
        let mse = try MeanSquaredError.of(input, packed: UnsafeRawBufferPointer(output), scale: scale)
        return MeasuredQuantization(summary: summary, errorScale: scale, meanSquaredError: mse)
    }

    /// Validates that `output` can hold the trits of `input` in `layout`.
    public func checkOutputCapacity(_ input: TensorInput, layout: TritLayout, output: UnsafeMutableRawBufferPointer) throws {
        let needed = layout.byteCount(forTrits: input.elementCount)
        guard output.count >= needed else {
            throw QuantizationError.byteCountMismatch(name: input.name, expected: needed, actual: output.count)
        }
    }
}
