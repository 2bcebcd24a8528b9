import Testing
@_spi(Testing) import TernaryQuantCore
import TernaryQuant
import TernaryQuantTestSupport

@Suite("CPU backend construction and fast path")
struct CPUBackendTests {
    @Test("initializers clamp any thread count and chunk size instead of trapping")
    func hugeInitializerValues() throws {
        let weights = TestData.tensor(.normal, count: 5000, seed: 4)
        let expected = try Quantizer(backend: CPUBackend(threadCount: 1)).quantize(weights, name: "w", shape: [5000])
        for chunk in [Int.max, Int.max - 62, Int.min, -1, 0, 1, 63, 1 << 62] {
            for threads in [Int.max, Int.min, 0, -3, 1, nil] {
                let backend = CPUBackend(threadCount: threads, chunkSize: chunk)
                #expect(backend.threadCount >= 1)
                #expect(backend.chunkSize >= 64 && backend.chunkSize % 64 == 0 && backend.chunkSize <= CPUBackend.maximumChunkSize)
                // Thread counts above the chunk count only matter for scheduling; the bytes never change.
                if threads == nil || threads == 1 || threads == 0 || threads == -3 {
                    let q = try Quantizer(backend: backend).quantize(weights, name: "w", shape: [5000])
                    #expect(q == expected)
                }
            }
        }
        #expect(CPUBackend(chunkSize: Int.max).chunkSize == CPUBackend.maximumChunkSize)
        #expect(CPUBackend(chunkSize: 65).chunkSize == 128)
    }

    @Test("a huge thread count quantizes like one thread")
    func hugeThreadCount() throws {
        let weights = TestData.tensor(.mixedSigns, count: 3000, seed: 6)
        let a = try Quantizer(backend: CPUBackend(threadCount: Int.max, chunkSize: 64)).quantize(weights, name: "w", shape: [3000])
        let b = try Quantizer(backend: CPUBackend(threadCount: 1, chunkSize: 64)).quantize(weights, name: "w", shape: [3000])
        #expect(a == b)
    }

    /// A certifier that always asked for the exact sum would pass every equality test; this one fails then.
    @Test("ordinary data certifies on the fast float64 path", arguments: ElementType.allCases)
    func ordinaryDataCertifies(_ type: ElementType) throws {
        var certified = 0, total = 0
        for seed in 1...40 {
            let n = 4096 + Int(seed) * 997
            let weights = TestData.tensor(.normal, count: n, seed: UInt64(seed))
            let bytes: [UInt8] = weights.flatMap { w -> [UInt8] in
                switch type {
                case .float32: return withUnsafeBytes(of: w.bitPattern.littleEndian, Array.init)
                case .float16: return withUnsafeBytes(of: HalfConversion.float16Bits(w).littleEndian, Array.init)
                case .bfloat16: return withUnsafeBytes(of: UInt16(w.bitPattern >> 16).littleEndian, Array.init)
                }
            }
            try bytes.withUnsafeBytes { raw in
                let input = try TensorInput(name: "w", shape: [n], elementType: type, bytes: raw)
                for backend in [CPUBackend(threadCount: 2, chunkSize: 1024), CPUBackend(instructionSet: .avx2), CPUBackend(instructionSet: .portable)] {
                    total += 1
                    let estimate = backend.absSumEstimate(input)
                    if case .certified(let alpha) = AbsMeanCertifier.certify(estimate, count: n) {
                        certified += 1
                        #expect(alpha.bitPattern == backend.exactAbsMean(input).bitPattern)
                    }
                }
            }
        }
        // The exact path is for means within ~2^-40 relative of a float32 rounding boundary: essentially never.
        #expect(certified >= total - 1, "\(certified) of \(total) certified on the fast path")
    }
}
