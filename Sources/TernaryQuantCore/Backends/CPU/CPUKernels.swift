import CTernaryKernels

/// Which implementation of the CPU inner loops a `CPUBackend` uses. Every choice gives the same bytes; a
/// choice the processor cannot run falls back to the next lower one.
public enum CPUInstructionSet: String, Sendable, Hashable, CaseIterable {
    /// The best the processor has, checked with cpuid at run time: AVX-512 (F, BW, VL, DQ with BMI2), else
    /// AVX2 (with F16C), else portable.
    case automatic
    /// AVX2 when the processor has it, else portable (covers the AVX2 loops on AVX-512 machines).
    case avx2
    /// Plain C loops, auto-vectorized for the build's baseline target (SSE2 on x86-64, NEON on arm64).
    case portable

    /// The loops this choice runs on this machine: "AVX-512", "AVX2" or "portable SIMD".
    public var activeName: String {
        switch kernels.pointee.level {
        case TQ_LEVEL_AVX512: return "AVX-512"
        case TQ_LEVEL_AVX2: return "AVX2"
        default: return "portable SIMD"
        }
    }

    /// The distinct implementations below `.automatic` that this machine can run (for cross-checks:
    /// `[.avx2, .portable]` on an AVX-512 machine, `[.portable]` on an AVX2 one, `[]` otherwise).
    public static var lowerAlternatives: [CPUInstructionSet] {
        let best = CPUInstructionSet.automatic.kernels.pointee.level
        return [CPUInstructionSet.avx2, .portable].filter { $0.kernels.pointee.level < best &&
            ($0 == .portable || $0.kernels.pointee.level > TQ_LEVEL_PORTABLE) }
    }

    /// The index of the first NaN or ±Inf among `count` elements of `type` at `source` (little-endian, any
    /// alignment), or nil; the table's vector scan (integer compares of the exponent field).
    package func firstNonFinite(_ source: UnsafeRawPointer, count: Int, as type: ElementType) -> Int? {
        let index = kernels.pointee.first_non_finite(source, count, CPUKernels.kind(of: type))
        return index < count ? index : nil
    }

    /// The magnitude bits every non-zero element among `count` elements of `type` at `source` shares
    /// (`bits & 0x7FFFFFFF` for float32, `bits & 0x7FFF` for the 16-bit types): `.some(0)` when all are ±0,
    /// `nil` as soon as a second magnitude appears. The table's vector scan (integer compares).
    package func commonMagnitude(_ source: UnsafeRawPointer, count: Int, as type: ElementType) -> UInt32? {
        let bits = kernels.pointee.common_magnitude(source, count, CPUKernels.kind(of: type))
        return bits == TQ_MIXED_MAGNITUDES ? nil : bits
    }

    var kernels: UnsafePointer<tq_kernel_table> {
        switch self {
        case .automatic: return tq_kernels(TQ_LEVEL_AVX512)
        case .avx2: return tq_kernels(TQ_LEVEL_AVX2)
        case .portable: return tq_kernels(TQ_LEVEL_PORTABLE)
        }
    }
}

/// The CPU backend's per-chunk work, over the C inner loops in `CTernaryKernels`. Callers guarantee ranges
/// are inside the tensor and outputs large enough. F16 and BF16 are read as they are stored: the α sum
/// widens exactly inside the loop and the trits compare 16-bit magnitudes with the equivalent 16-bit
/// threshold, so no widened copy is ever written.
enum CPUKernels {
    /// Float64 accumulator lanes in the `abs_sum` loops.
    static let lanes = Int(TQ_ABS_SUM_LANES)
    /// Additions beyond `elements / lanes` on any path inside one chunk (lane merge, tail).
    static let depthSlack = Int(TQ_ABS_SUM_DEPTH_SLACK)

    /// The element kind code of the C loops that take one: 0 float32, 1 binary16, 2 bfloat16.
    static func kind(of type: ElementType) -> Int32 {
        switch type {
        case .float32: return 0
        case .float16: return 1
        case .bfloat16: return 2
        }
    }

    /// Float64 sum of |w| over `range`. NaN/Inf inputs make the result non-finite.
    static func absSum(_ input: TensorInput, range: Range<Int>, kernels: UnsafePointer<tq_kernel_table>) -> Double {
        guard let base = input.bytes.baseAddress else { return 0 }
        let source = base + range.lowerBound * input.elementType.byteWidth
        switch input.elementType {
        case .float32: return kernels.pointee.abs_sum_f32(source, range.count)
        case .float16: return kernels.pointee.abs_sum_f16(source, range.count)
        case .bfloat16: return kernels.pointee.abs_sum_bf16(source, range.count)
        }
    }

    /// The comparison threshold for `input`'s element type: float32 magnitude bits, or the equivalent
    /// 16-bit magnitude bits for F16/BF16.
    static func threshold(_ threshold: TritThreshold, for type: ElementType) -> UInt32 {
        switch type {
        case .float32: return threshold.magnitudeBits
        case .float16: return UInt32(threshold.float16MagnitudeBits)
        case .bfloat16: return UInt32(threshold.bfloat16MagnitudeBits)
        }
    }

    /// Writes the trits of `range` into `output` in `layout` and returns the number of non-zero trits.
    /// `threshold` comes from `threshold(_:for:)`. `range.lowerBound` is a multiple of 4 (chunks are
    /// multiples of 64), so packed bytes never straddle.
    static func ternarize(_ input: TensorInput, range: Range<Int>, threshold: UInt32, layout: TritLayout,
                          output: UnsafeMutableRawPointer, kernels: UnsafePointer<tq_kernel_table>) -> Int {
        guard let base = input.bytes.baseAddress else { return 0 }
        let source = base + range.lowerBound * input.elementType.byteWidth
        let wide = input.elementType == .float32
        switch layout {
        case .packed2Bit:
            let out = output.assumingMemoryBound(to: UInt8.self) + range.lowerBound / 4
            return wide ? kernels.pointee.pack_f32(source, range.count, threshold, out)
                : kernels.pointee.pack_h16(source, range.count, threshold, out)
        case .int8:
            let out = output.assumingMemoryBound(to: Int8.self) + range.lowerBound
            return wide ? kernels.pointee.int8_f32(source, range.count, threshold, out)
                : kernels.pointee.int8_h16(source, range.count, threshold, out)
        }
    }

    /// Writes the GGUF blocks (`TernaryBlocks.blockSize` elements each) of the elements in `range` (whose
    /// bounds are multiples of the block size) into `output` (the whole tensor's blocks) and returns the
    /// number of non-zero trits.
    static func quantizeBlocks(_ input: TensorInput, range: Range<Int>, threshold: UInt32, type: Int32, d: UInt16,
                               output: UnsafeMutableRawPointer, kernels: UnsafePointer<tq_kernel_table>) -> Int {
        guard let base = input.bytes.baseAddress else { return 0 }
        let width = input.elementType.byteWidth
        let source = base + range.lowerBound * width
        let blockSize = Int(TQ_BLOCK_ELEMENTS)
        let out = output.assumingMemoryBound(to: UInt8.self) + (range.lowerBound / blockSize) * tq_block_bytes(type)
        return tq_quantize_blocks(kernels, source, range.count / blockSize, Int32(width), threshold, type, d, out)
    }
}
