import CTernaryKernels
import Dispatch

/// The mean squared reconstruction error of packed trits against the tensor they came from:
/// mean over k of (w_k − s·t_k)² in float64, for any scale s (α, or the scale a format stores).
///
/// The summation order is fixed, so the bits do not depend on the thread count, the instruction set or
/// whether the error is summed in the trit pass (`CPUBackend.quantizePacked(_:into:errorScale:)`) or in a
/// pass of its own: chunks of 2^16 elements; in each, 32 lanes (element k in lane k mod 32) summed in
/// element order over the chunk's whole 32-element groups, merged pairwise (lane j += lane j + w for
/// w = 16, 8, 4, 2, 1), the chunk's last (< 32) elements added in order; then the chunks in order, and
/// the total divided by the element count. With r = t·s (t = +1, −1, or 0 for the codes 00 and 11) and
/// d = w − r in float64, each element adds d·d. Runs on the C loops of `CTernaryKernels` (the portable,
/// AVX2 or AVX-512 table; DAZ/FTZ cleared), chunks spread over every core.
public enum MeanSquaredError {
    /// Elements per chunk of the fixed order.
    public static let chunkSize = Int(TQ_SQUARED_ERROR_CHUNK)

    /// The MSE of `packed` (2-bit trits, `TritLayout.packed2Bit`) against `input` at `scale`, computed
    /// with `instructionSet`'s loops (every choice gives the same bits). A non-finite weight or scale
    /// gives a non-finite result. Throws `QuantizationError.packedDataTooShort` when `packed` holds fewer
    /// than ⌈n/4⌉ bytes.
    public static func of(_ input: TensorInput, packed: UnsafeRawBufferPointer, scale: Float,
                          instructionSet: CPUInstructionSet = .automatic) throws -> Double {
        let count = input.elementCount
        let needed = TritLayout.packed2Bit.byteCount(forTrits: count)
        guard packed.count >= needed, let packedBase = packed.baseAddress, let source = input.bytes.baseAddress else {
            throw QuantizationError.packedDataTooShort(expectedBytes: needed, actualBytes: packed.count)
        }
        let chunks = chunkCount(count)
        guard chunks > 0 else { return 0 }
        let partials = UnsafeMutablePointer<Double>.allocate(capacity: chunks)
        defer { partials.deallocate() }
        let kind = CPUKernels.kind(of: input.elementType)
        let kernels = SendableKernels(instructionSet.kernels)
        let src = SendableConstRawPointer(source)
        let bytes = SendableConstRawPointer(packedBase)
        let out = SendablePointer(partials)
        // Work items of four chunks (256 Ki elements).
        let group = 4
        let groups = (chunks + group - 1) / group
        DispatchQueue.concurrentPerform(iterations: groups) { g in
            let first = g * group
            let n = Swift.min(group, chunks - first)
            kernels.table.pointee.squared_errors(src.pointer, kind, bytes.pointer?.assumingMemoryBound(to: UInt8.self),
                                                 count, scale, first, n, out.pointer + first)
        }
        return mean(ofChunkSums: partials, chunks: chunks, count: count)
    }

    /// Number of chunks of the fixed order for `count` elements (no overflow for any count).
    static func chunkCount(_ count: Int) -> Int {
        count / chunkSize + (count % chunkSize == 0 ? 0 : 1)
    }

    /// The mean from per-chunk sums (added in chunk order, divided by `count`).
    static func mean(ofChunkSums partials: UnsafePointer<Double>, chunks: Int, count: Int) -> Double {
        var total = 0.0
        for c in 0..<chunks { total += partials[c] }
        return count > 0 ? total / Double(count) : 0
    }
}
