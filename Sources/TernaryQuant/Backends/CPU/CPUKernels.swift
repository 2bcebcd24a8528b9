import CTernaryKernels

/// Which implementation of the CPU inner loops a `CPUBackend` uses. Every choice gives the same bytes.
public enum CPUInstructionSet: String, Sendable, Hashable, CaseIterable {
    /// AVX2 when the processor has it (checked with cpuid at run time), else portable.
    case automatic
    /// Plain C loops, auto-vectorized for the build's baseline target (SSE2 on x86-64, NEON on arm64).
    case portable

    /// Whether this choice runs the AVX2 loops on this machine.
    public var usesAVX2: Bool { kernels.pointee.is_avx2 != 0 }

    var kernels: UnsafePointer<tq_kernel_table> {
        tq_kernels(self == .automatic ? 1 : 0)
    }
}

/// The CPU backend's per-chunk work, over the C inner loops in `CTernaryKernels`. Callers guarantee ranges
/// are inside the tensor and outputs large enough.
enum CPUKernels {
    /// Float64 accumulator lanes in `abs_sum_f32`.
    static let lanes = Int(TQ_ABS_SUM_LANES)
    /// Additions beyond `elements / lanes` on any path inside one chunk (lane merge, tail).
    static let depthSlack = Int(TQ_ABS_SUM_DEPTH_SLACK)

    /// Float64 sum of |w| over `range`. NaN/Inf inputs make the result non-finite.
    static func absSum(_ input: TensorInput, range: Range<Int>, scratch: UnsafeMutablePointer<UInt32>,
                       kernels: UnsafePointer<tq_kernel_table>) -> Double {
        kernels.pointee.abs_sum_f32(float32Source(input, range: range, scratch: scratch, kernels: kernels), range.count)
    }

    /// Writes the trits of `range` into `output` in `layout` and returns the number of non-zero trits.
    /// `range.lowerBound` is a multiple of 4 (chunks are multiples of 64), so packed bytes never straddle.
    static func ternarize(_ input: TensorInput, range: Range<Int>, threshold: UInt32, layout: TritLayout,
                          output: UnsafeMutableRawPointer, scratch: UnsafeMutablePointer<UInt32>,
                          kernels: UnsafePointer<tq_kernel_table>) -> Int {
        let source = float32Source(input, range: range, scratch: scratch, kernels: kernels)
        switch layout {
        case .packed2Bit:
            let out = output.assumingMemoryBound(to: UInt8.self) + range.lowerBound / 4
            return kernels.pointee.pack_f32(source, range.count, threshold, out)
        case .int8:
            let out = output.assumingMemoryBound(to: Int8.self) + range.lowerBound
            return kernels.pointee.int8_f32(source, range.count, threshold, out)
        }
    }

    /// Float32 bit patterns of `range`: the input itself for F32, else widened exactly into `scratch`.
    private static func float32Source(_ input: TensorInput, range: Range<Int>, scratch: UnsafeMutablePointer<UInt32>,
                                      kernels: UnsafePointer<tq_kernel_table>) -> UnsafeRawPointer {
        guard let base = input.bytes.baseAddress else { return UnsafeRawPointer(scratch) }
        switch input.elementType {
        case .float32:
            return base + range.lowerBound * 4
        case .bfloat16:
            kernels.pointee.widen_bf16(base + range.lowerBound * 2, range.count, scratch)
            return UnsafeRawPointer(scratch)
        case .float16:
            kernels.pointee.widen_f16(base + range.lowerBound * 2, range.count, scratch)
            return UnsafeRawPointer(scratch)
        }
    }
}
