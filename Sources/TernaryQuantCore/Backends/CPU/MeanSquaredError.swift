import CTernaryKernels
import Dispatch

/// The mean squared reconstruction error of packed trits against the tensor they came from, for a scale s
/// (α, or the scale a format stores): the mean over k of (w_k − s·t_k)², computed from three moments so
/// that the trit pass can gather them before s is known.
///
/// With t = +1, −1, or 0 for the codes 00 and 11, (w − s·t)² summed over a tensor is Q − 2s·P + s²·N, where
/// Q = Σ w², P = Σ |w| over the non-zero trits and N their number. The result is defined bit for bit, so it
/// does not depend on the thread count, the instruction set, the backend or whether the moments were
/// gathered in the trit pass (`CPUBackend.quantizePacked(_:into:errorScale:)`) or in a pass of their own:
/// - per chunk of 2^16 elements, Q_c is the float64 sum of w² in a fixed order: 32 lanes (element k in lane
///   k mod 32) summed in element order over the chunk's whole 32-element groups, merged pairwise (lane j
///   += lane j + w for w = 16, 8, 4, 2, 1), the chunk's last (< 32) elements added in order;
/// - P_c is the exact sum of the chunk's non-zero-trit magnitudes rounded once to float64 (float64 additions
///   in any order give it exactly when the chunk's non-zero magnitudes span at most 14 binades; otherwise
///   it is summed exactly with `ExactAbsSum`);
/// - Q and P are the chunk values added in chunk order, N is exact, and the mean is
///   ((Q − (2s)·P) + (s·s)·N) / n in float64, with +0 for a result that rounding took to zero or below.
///
/// The value differs from the exact mean by at most about 2^-40 · Q/n (the rounding of Q's sums), so it is
/// exact to ~13 digits whenever the error is not far below the mean square of the weights. A non-finite
/// weight or scale gives a non-finite result. Runs on the C loops of `CTernaryKernels` (the portable, AVX2 or
/// AVX-512 table; DAZ/FTZ cleared), chunks spread over every core.
public enum MeanSquaredError {
    /// Elements per chunk of the fixed order.
    public static let chunkSize = Int(TQ_SQUARED_ERROR_CHUNK)

    /// Binades the non-zero magnitudes of a chunk may span for float64 additions of them, in any order, to
    /// be exact: below 2^16 values, each a multiple of the smallest one's float32 ulp, stay below 2^53 such
    /// units when the largest is within 2^14 of the smallest's binade.
    static let exactMagnitudeSpan = 13

    /// The MSE of `packed` (2-bit trits, `TritLayout.packed2Bit`) against `input` at `scale`, computed
    /// with `instructionSet`'s loops (every choice gives the same bits). Throws
    /// `QuantizationError.packedDataTooShort` when `packed` holds fewer than ⌈n/4⌉ bytes.
    public static func of(_ input: TensorInput, packed: UnsafeRawBufferPointer, scale: Float,
                          instructionSet: CPUInstructionSet = .automatic) throws -> Double {
        let count = input.elementCount
        guard count > 0 else { return 0 }
        return mean(try moments(input, packed: packed, instructionSet: instructionSet), scale: scale, count: count)
    }

    /// The per-chunk moments of `packed` against `input`, each chunk's magnitude sum exact (see the type's
    /// documentation). Throws `QuantizationError.packedDataTooShort` when `packed` is too short.
    static func moments(_ input: TensorInput, packed: UnsafeRawBufferPointer,
                        instructionSet: CPUInstructionSet = .automatic) throws -> [tq_moments] {
        let count = input.elementCount
        let needed = TritLayout.packed2Bit.byteCount(forTrits: count)
        guard packed.count >= needed, let packedBase = packed.baseAddress, let source = input.bytes.baseAddress else {
            throw QuantizationError.packedDataTooShort(expectedBytes: needed, actualBytes: packed.count)
        }
        let chunks = chunkCount(count)
        var moments = [tq_moments](repeating: tq_moments(), count: chunks)
        let kind = CPUKernels.kind(of: input.elementType)
        let kernels = SendableKernels(instructionSet.kernels)
        let src = SendableConstRawPointer(source)
        let bytes = SendableConstRawPointer(packedBase)
        moments.withUnsafeMutableBufferPointer { buffer in
            guard let base = buffer.baseAddress else { return }
            let out = SendablePointer(base)
            // Work items of four chunks (256 Ki elements).
            let group = 4
            let groups = (chunks + group - 1) / group
            DispatchQueue.concurrentPerform(iterations: groups) { g in
                let first = g * group
                let n = Swift.min(group, chunks - first)
                kernels.table.pointee.chunk_moments(src.pointer, kind, bytes.pointer?.assumingMemoryBound(to: UInt8.self),
                                                    count, first, n, out.pointer + first)
            }
        }
        for c in 0..<chunks where !isExact(moments[c], lowestBits: moments[c].min_bits) {
            moments[c].magnitudes = exactMagnitudes(input, packed: packedBase, chunk: c)
        }
        return moments
    }

    /// Number of chunks of the fixed order for `count` elements (no overflow for any count).
    static func chunkCount(_ count: Int) -> Int {
        count / chunkSize + (count % chunkSize == 0 ? 0 : 1)
    }

    /// Whether a chunk's float64 magnitude sum is exact: every value it added is at least the float32
    /// magnitude `lowestBits` and at most `moments.max_bits` (non-finite magnitudes are left to make the
    /// result non-finite).
    static func isExact(_ moments: tq_moments, lowestBits: UInt32) -> Bool {
        guard moments.nonzero > 0, moments.max_bits < 0x7F80_0000 else { return true }
        let binade = { (bits: UInt32) in Swift.max(1, Int(bits >> 23)) }
        return binade(moments.max_bits) - binade(Swift.min(lowestBits, moments.max_bits)) <= exactMagnitudeSpan
    }

    /// The exact sum of chunk `chunk`'s non-zero-trit magnitudes, rounded once to float64.
    static func exactMagnitudes(_ input: TensorInput, packed: UnsafeRawPointer, chunk: Int) -> Double {
        let lower = chunk * chunkSize
        let upper = Swift.min(input.elementCount, lower + chunkSize)
        let codes = packed.assumingMemoryBound(to: UInt8.self)
        var sum = ExactAbsSum()
        for k in lower..<upper {
            let code = (codes[k >> 2] >> UInt8(2 * (k & 3))) & 3
            if code == 1 || code == 2 { sum.add(bits: input.float32Bits(at: k)) }
        }
        return sum.roundedSum()
    }

    /// The float32 with these bits as float64, exactly, by integer operations only: a float conversion
    /// would read a subnormal as 0 on a thread with denormals-are-zero set.
    static func widened(_ bits: UInt32) -> Double {
        let sign = UInt64(bits >> 31) << 63
        let exponent = Int((bits >> 23) & 0xFF)
        let mantissa = UInt64(bits & 0x7F_FFFF)
        if exponent == 0xFF { return Double(bitPattern: sign | 0x7FF0_0000_0000_0000 | (mantissa << 29)) }
        if exponent == 0 {
            guard mantissa != 0 else { return Double(bitPattern: sign) }
            // m · 2^-149 with the leading bit moved to bit 23: (normalized / 2^23) · 2^(−126 − shift).
            let shift = mantissa.leadingZeroBitCount - 40
            let normalized = mantissa << UInt64(shift)
            return Double(bitPattern: sign | (UInt64(1023 - 126 - shift) << 52) | ((normalized & 0x7F_FFFF) << 29))
        }
        return Double(bitPattern: sign | (UInt64(exponent - 127 + 1023) << 52) | (mantissa << 29))
    }

    /// The mean from per-chunk moments (see the type's documentation).
    static func mean(_ moments: [tq_moments], scale: Float, count: Int) -> Double {
        guard count > 0 else { return 0 }
        var squares = 0.0, magnitudes = 0.0
        var nonzero: UInt64 = 0
        for m in moments {
            squares += m.squares
            magnitudes += m.magnitudes
            nonzero &+= m.nonzero  // ≤ count
        }
        let s = widened(scale.bitPattern)
        let total = (squares - (2 * s) * magnitudes) + (s * s) * Double(nonzero)
        let value = total / Double(count)
        return value <= 0 ? 0 : value  // NaN stays NaN
    }
}
