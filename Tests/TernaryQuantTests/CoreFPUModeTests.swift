#if os(Linux) && arch(x86_64)
import Glibc
import Testing
import TernaryQuant
import TernaryQuantTestSupport

/// Host exactness must not depend on the thread's FPU mode: with flush-to-zero and denormals-are-zero
/// set (MXCSR bits 15 and 6, as fast-math code loaded into the same process sets them), subnormals would
/// vanish from a hardware float→double conversion and from a float division.
@Suite("FPU mode independence (DAZ/FTZ)", .serialized)
struct CoreFPUModeTests {
    static let flushBits: UInt32 = 0x8040

    /// Runs `body` on the calling thread with DAZ and FTZ set, restoring the previous environment after.
    static func withFlushToZero<T>(_ body: () throws -> T) rethrows -> T {
        var saved = fenv_t()
        fegetenv(&saved)
        var flushed = saved
        flushed.__mxcsr |= flushBits
        fesetenv(&flushed)
        defer { fesetenv(&saved) }
        return try body()
    }

    /// float → double conversion executed at run time, under the thread's current MXCSR.
    @_optimize(none) @inline(never)
    static func widenAtRunTime(_ x: Float) -> Double { Double(x) * 1.0 }

    /// The MXCSR of the calling thread.
    static func mxcsr() -> UInt32 {
        var env = fenv_t()
        fegetenv(&env)
        return env.__mxcsr
    }

    @Test("the mode switch is real: subnormals flush in this thread while it is set")
    func modeIsSet() {
        let tiny = Float(bitPattern: 3)
        let (bits, flushedProduct) = Self.withFlushToZero { () -> (UInt32, Bool) in
            // Through an unoptimized call so the compiler cannot fold the conversion at compile time (release
            // builds with testing enabled folded the earlier array-based version).
            return (Self.mxcsr(), Self.widenAtRunTime(tiny) == 0)
        }
        #expect(bits & Self.flushBits == Self.flushBits)
        #expect(flushedProduct, "DAZ should turn a subnormal float into 0 when widened")
        #expect(Self.mxcsr() & Self.flushBits == 0, "the mode is restored")
    }

    @Test("quantization with DAZ/FTZ set equals the reference computed without it",
          arguments: [TestData.Distribution.subnormalOnly, .wideRange, .normal])
    func quantizeUnderFlushToZero(_ distribution: TestData.Distribution) throws {
        for n in [7, 1000, 70_001] {
            let weights = TestData.tensor(distribution, count: n, seed: 5)
            let reference = ReferenceQuantizer.quantize(weights)
            let bf16 = weights.map { UInt16(truncatingIfNeeded: $0.bitPattern >> 16) }
            let bf16Reference = ReferenceQuantizer.quantize(bf16.map { Float(bitPattern: UInt32($0) << 16) })
            for backend in [CPUBackend(threadCount: 1), CPUBackend(), CPUBackend(threadCount: 1, instructionSet: .avx2), CPUBackend(threadCount: 1, instructionSet: .portable)] {
                let quantizer = Quantizer(backend: backend)
                let (q, h) = try Self.withFlushToZero {
                    (try quantizer.quantize(weights, name: "w", shape: [n]),
                     try bf16.withUnsafeBytes {
                         try quantizer.quantize(TensorInput(name: "b", shape: [n], elementType: .bfloat16, bytes: $0))
                     })
                }
                #expect(q.scale.bitPattern == reference.scale.bitPattern, "\(distribution) n=\(n) \(backend.deviceDescription): α \(q.scale) ≠ \(reference.scale)")
                #expect(q.data == ReferenceQuantizer.pack(reference.trits))
                #expect(h.scale.bitPattern == bf16Reference.scale.bitPattern, "BF16 \(distribution) n=\(n): α \(h.scale) ≠ \(bf16Reference.scale)")
                #expect(h.data == ReferenceQuantizer.pack(bf16Reference.trits))
            }
        }
    }

    @Test("TritThreshold and the exact path are the same with DAZ/FTZ set")
    func thresholdUnderFlushToZero() throws {
        let alphas: [Float] = [Float(bitPattern: 1), Float(bitPattern: 3), Float(bitPattern: 0x40_0001), .leastNormalMagnitude, 0.02]
        let expected = try alphas.map { try TritThreshold(scale: $0).magnitudeBits }
        let flushed = try Self.withFlushToZero { try alphas.map { try TritThreshold(scale: $0).magnitudeBits } }
        #expect(flushed == expected)
        let tiny: [Float] = [Float(bitPattern: 2), Float(bitPattern: 5), -Float(bitPattern: 7)]
        let reference = ReferenceQuantizer.quantize(tiny)
        let exact = try Self.withFlushToZero {
            try tiny.withUnsafeBufferPointer { CPUBackend(threadCount: 1).exactAbsMean(try TensorInput(name: "t", shape: [3], floats: $0)) }
        }
        #expect(exact.bitPattern == reference.scale.bitPattern)
    }

    @Test("the MSE of subnormal weights is the same with DAZ/FTZ set (one work item: the calling thread)")
    func meanSquaredErrorUnderFlushToZero() throws {
        let weights = TestData.tensor(.subnormalOnly, count: 1000, seed: 9)
        let q = try Quantizer(backend: CPUBackend(threadCount: 1)).quantize(weights, name: "w", shape: [1000])
        let input = try TensorInput(name: "w", shape: [1000], floats: weights)
        for set in [CPUInstructionSet.automatic] + CPUInstructionSet.lowerAlternatives {
            let plain = try q.data.withUnsafeBytes { try MeanSquaredError.of(input, packed: $0, scale: q.scale, instructionSet: set) }
            let flushed = try Self.withFlushToZero {
                try q.data.withUnsafeBytes { try MeanSquaredError.of(input, packed: $0, scale: q.scale, instructionSet: set) }
            }
            #expect(plain > 0, "subnormal weights have a non-zero error in float64")
            #expect(flushed.bitPattern == plain.bitPattern, "\(set)")
        }
    }
}
#endif
