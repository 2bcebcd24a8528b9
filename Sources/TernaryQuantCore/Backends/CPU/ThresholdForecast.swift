import CTernaryKernels
import Dispatch

/// A guess of a tensor's trit threshold, made before α is known, with a band of magnitudes around it: what
/// `CPUBackend` needs to quantize in one pass over memory.
///
/// The one pass decides every trit at `threshold` and records the elements whose magnitude bits m lie in
/// `low ..< high`. Once α is known, its real threshold T is compared with the band: when `low ≤ T ≤ high`,
/// an element outside the band has the same trit at T as at `threshold` (m < low ≤ both, or m ≥ high ≥
/// both), so re-deciding the recorded elements gives exactly the trits of a second pass; otherwise the
/// backend makes that second pass. Any forecast therefore gives the same bytes; a good one (a narrow band
/// that holds T) only saves the second read.
///
/// Bits are the kernels' comparison thresholds for the tensor's element type: float32 magnitude bits for
/// F32, the equivalent 16-bit magnitude bits for F16 and BF16 (`TritThreshold.float16MagnitudeBits`,
/// `.bfloat16MagnitudeBits`).
public struct ThresholdForecast: Sendable, Hashable {
    /// The element type whose bits `threshold`, `low` and `high` are.
    public let elementType: ElementType
    /// The threshold the pass decides trits at (≥ 1).
    public let threshold: UInt32
    /// Lowest magnitude bits of the band (inclusive, ≤ `threshold`).
    public let low: UInt32
    /// End of the band (exclusive, ≥ `threshold`).
    public let high: UInt32

    /// A forecast for `type`, or nil unless 1 ≤ low ≤ threshold ≤ high ≤ the type's largest finite magnitude
    /// threshold (0x7F800000 for F32, 0x7FFF for F16/BF16).
    public init?(threshold: UInt32, low: UInt32, high: UInt32, for type: ElementType) {
        let top: UInt32 = type == .float32 ? 0x7F80_0000 : 0x7FFF
        guard 1 <= low, low <= threshold, threshold <= high, high <= top else { return nil }
        (self.elementType, self.threshold, self.low, self.high) = (type, threshold, low, high)
    }

    /// Whether the real threshold `bits` lies in the band, so the recorded elements are all that can differ.
    public func covers(_ bits: UInt32) -> Bool { low <= bits && bits <= high }

    /// Elements per piece of the sample (1 KiB of float32: a piece costs one memory latency, not sixteen).
    static let samplePiece = 256
    /// Pieces the sample aims at: 2^12 pieces (2^20 elements) in a large tensor.
    static let samplePieces = 1 << 12
    /// The sample reads at most one piece in seven, however small the tensor (a smaller sample only
    /// widens the band).
    static let minimumStridePieces = 7
    /// Standard errors of the sample mean on either side of the guess that the band spans, beside a floor
    /// of 2^-12 relative. A band that misses costs a second pass, never a wrong trit.
    static let bandStandardErrors = 5.0

    /// The forecast from a sample of `input`: pieces of 256 elements every 256·k elements (k odd and ≥ 7, so
    /// the pieces visit every column of a matrix whose row length is a power of two), about 2^20 elements
    /// of a large tensor and at most a seventh of a small one, read by `threads` threads with `instructionSet`'s loops. Guess: the threshold of the
    /// sample's mean |w|; band: ±5 standard errors of that mean, plus 2^-12, at most ±25 %. Nil when the
    /// sample is too small or its mean is zero or not finite (the backend then makes two passes).
    public static func sampled(_ input: TensorInput, threads: Int = 2, instructionSet: CPUInstructionSet = .automatic)
        -> ThresholdForecast?
    {
        guard let base = input.bytes.baseAddress else { return nil }
        let count = input.elementCount
        let stride = samplePiece * (Swift.max(minimumStridePieces, count / (samplePiece * samplePieces)) | 1)
        let pieces = count / stride + (count % stride == 0 ? 0 : 1)
        let parts = Swift.max(1, Swift.min(threads, pieces / 64))
        let kernels = SendableKernels(instructionSet.kernels)
        let source = SendableConstRawPointer(base)
        let kind = CPUKernels.kind(of: input.elementType)
        let width = input.elementType.byteWidth
        let box = SendableArrayBox([(Double, Double, Double)](repeating: (0, 0, 0), count: parts))
        DispatchQueue.concurrentPerform(iterations: parts) { part in
            let first = pieces / parts * part + Swift.min(part, pieces % parts)
            let last = pieces / parts * (part + 1) + Swift.min(part + 1, pieces % parts)
            let start = first * stride
            let length = Swift.min(count, last * stride) - start
            var moments = (0.0, 0.0, 0.0)
            withUnsafeMutablePointer(to: &moments) {
                $0.withMemoryRebound(to: Double.self, capacity: 3) { m in
                    tq_magnitude_moments(kernels.table, source.pointer.map { $0 + start * width }, kind, length, stride, samplePiece, m)
                }
            }
            box.set(part, moments)
        }
        let (n, sum, squares) = box.values.reduce((0.0, 0.0, 0.0)) { ($0.0 + $1.0, $0.1 + $1.1, $0.2 + $1.2) }
        guard n >= 1024 else { return nil }
        let mean = sum / n
        guard mean.isFinite, mean > 0, squares.isFinite else { return nil }
        let variance = Swift.max(0, squares / n - mean * mean)
        let margin = Swift.min(0.25, bandStandardErrors * (variance / n).squareRoot() / mean + 0x1p-12)
        func bits(_ scale: Double) -> UInt32? {
            let alpha = Float(scale)
            guard alpha.isFinite, alpha > 0 else { return nil }
            return CPUKernels.threshold(TritThreshold(validScale: alpha), for: input.elementType)
        }
        guard let low = bits(mean * (1 - margin)), let guess = bits(mean), let high = bits(mean * (1 + margin)) else { return nil }
        return ThresholdForecast(threshold: guess, low: low, high: high, for: input.elementType)
    }
}
