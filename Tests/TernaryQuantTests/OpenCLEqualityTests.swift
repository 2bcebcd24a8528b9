import Foundation
@_spi(Testing) import SwiftOpenCL
import Testing
import TernaryQuant
import TernaryQuantTestSupport
import TernaryQuantBench
@testable import TernaryQuantCore
@testable import TernaryQuantFormats
@testable import TernaryQuantOpenCL
@testable import TernaryQuantPipeline

private typealias Support = OpenCLTestSupport

@Suite("OpenCL backend equals the CPU backend byte for byte", .enabled(if: OpenCLTestSupport.available))
struct OpenCLEqualityTests {
    /// Shared backend (small chunk so bigger tensors also cross chunk boundaries).
    static let backend: OpenCLBackend? = Support.firstDevice.flatMap {
        try? OpenCLBackend(device: $0, chunkElements: 1 << 18)
    }

    private func check(_ backend: any QuantizationBackend, _ floats: [Float]) throws {
        let problems = try Support.compare(backend, bytes: Support.bytes(of: floats), type: .float32)
        #expect(problems.isEmpty, "\(problems)")
    }

    @Test("random normal F32 tensors: 1, primes, non-multiples of any work-group size, up to ~1M")
    func randomSizes() throws {
        let backend = try #require(Self.backend)
        var random = Support.Random(state: 1)
        for n in [1, 2, 3, 4, 5, 7, 31, 255, 257, 1021, 4099, 65_537, 262_145, 1_000_003] {
            try check(backend, (0..<n).map { _ in random.normal() * 0.02 })
        }
    }

    @Test("exact mean on a float32 rounding midpoint (exact host path) and near it")
    func midpoints() throws {
        let backend = try #require(Self.backend)
        let tiny = Float(bitPattern: 1)  // 2^-149
        let vectors: [[Float]] = [
            [1, 1, 1, 1 + 0x1p-22],  // mean 1 + 2^-24: tie, rounds to even (1.0)
            [1, 1, 1, 1 + 0x1p-22 + 0x1p-23],
            [1, 1, 2 + 0x1p-22, tiny],
            [1, 1, 2 + 0x1p-22],
            [-1, 1, -1, -(1 + 0x1p-22)],
            [3, 3, 3, 3 + 0x1p-21, 0],
            Array(repeating: 0.02, count: 1 << 16) + [0.02 + 0x1p-30],
        ]
        for vector in vectors { try check(backend, vector) }
    }

    @Test("elements at ±T, ±nextDown(T), ±nextUp(T) (the 0.5·α decision boundary)")
    func thresholdNeighbours() throws {
        let backend = try #require(Self.backend)
        var random = Support.Random(state: 7)
        var weights = (0..<5000).map { _ in random.normal() }
        for _ in 0..<4 {  // iterate: inserting neighbours moves α slightly
            let alpha = try CPUBackend().absMean(TensorInput(name: "t", shape: [weights.count], floats: weights))
            let t = try TritThreshold(scale: alpha).magnitudeBits
            let patterns: [UInt32] = [t, t - 1, t + 1, t | 0x8000_0000, (t - 1) | 0x8000_0000, (t + 1) | 0x8000_0000]
            for (k, bits) in patterns.enumerated() {
                for copy in 0..<10 { weights[k * 10 + copy] = Float(bitPattern: bits) }
            }
        }
        try check(backend, weights)
    }

    @Test("subnormals only, ±0 only, mixed subnormal and normal, wide dynamic range")
    func specialMagnitudes() throws {
        let backend = try #require(Self.backend)
        var random = Support.Random(state: 3)
        let subnormals = (0..<3001).map { _ in
            Float(bitPattern: UInt32(random.next() % 0x7F_FFFF + 1) | UInt32(random.next() & 1) << 31)
        }
        try check(backend, subnormals)
        try check(backend, [Float(bitPattern: 1)])
        try check(backend, (0..<777).map { i in i % 2 == 0 ? 0.0 : -0.0 })
        try check(backend, [-0.0])
        try check(backend, subnormals + [1e-38, 2e-38] + subnormals)
        let wide = (0..<20_011).map { _ -> Float in
            let exponent = random.uniform() * 60 - 30
            let sign: Float = random.next() & 1 == 0 ? 1 : -1
            return sign * Float(pow(10.0, exponent))
        }
        try check(backend, wide)
        try check(backend, [Float.greatestFiniteMagnitude, Float.greatestFiniteMagnitude, -Float.greatestFiniteMagnitude])
        try check(backend, [Float.greatestFiniteMagnitude] + Array(repeating: Float.leastNonzeroMagnitude, count: 99))
    }

    @Test("F16 and BF16 inputs (random finite bit patterns, subnormal halves included)")
    func halfInputs() throws {
        let backend = try #require(Self.backend)
        var random = Support.Random(state: 11)
        for n in [1, 3, 4097, 100_003] {
            var f16: [UInt16] = []
            var bf16: [UInt16] = []
            while f16.count < n {
                let bits = UInt16(truncatingIfNeeded: random.next())
                if bits & 0x7C00 != 0x7C00 { f16.append(bits) }
            }
            while bf16.count < n {
                let bits = UInt16(truncatingIfNeeded: random.next())
                if bits & 0x7F80 != 0x7F80 { bf16.append(bits) }
            }
            // Half subnormals only.
            let subnormalHalves = (0..<n).map { _ in UInt16(truncatingIfNeeded: random.next()) & 0x83FF }
            for (values, type) in [(f16, ElementType.float16), (bf16, .bfloat16), (subnormalHalves, .float16)] {
                let bytes = values.withUnsafeBytes { Array($0) }
                let problems = try Support.compare(backend, bytes: bytes, type: type)
                #expect(problems.isEmpty, "\(problems)")
            }
        }
    }

    @Test("results do not depend on work-group size or chunk size", arguments: [1, 8, 64, 256])
    func workGroupAndChunkSizes(workGroupSize: Int) throws {
        let device = try #require(Support.firstDevice)
        var random = Support.Random(state: UInt64(workGroupSize))
        let weights = (0..<100_003).map { _ in random.normal() }
        let halves = (0..<50_001).map { _ in UInt16(truncatingIfNeeded: random.next()) & 0xBBFF }
        for chunk in [256, 1000, 65_536] {
            let backend = try OpenCLBackend(device: device, chunkElements: chunk, workGroupSize: workGroupSize)
            #expect(backend.chunkElements % 256 == 0)
            #expect(backend.workGroupSize >= 1 && backend.workGroupSize <= workGroupSize)
            try check(backend, weights)
            let problems = try Support.compare(backend, bytes: halves.withUnsafeBytes { Array($0) }, type: .float16)
            #expect(problems.isEmpty, "\(problems)")
        }
    }

    @Test("single-chunk tensors uploaded in several pieces (α per piece overlapping the next upload) match",
          arguments: [256, 1000, 4096])
    func uploadPieces(pieceElements: Int) throws {
        let device = try #require(Support.firstDevice)
        let backend = try OpenCLBackend(device: device, workGroupSize: 64, pieceElements: pieceElements)
        #expect(backend.pieceElements % 256 == 0 && backend.pieceElements >= pieceElements)
        var random = Support.Random(state: UInt64(pieceElements))
        var sawSeveral = false
        for n in [1, 255, 256, 257, 1021, 4099, 8192, 65_537, 100_003, 262_147] {
            #expect(backend.chunkCount(n) == 1)
            let pieces = backend.pieceRanges(count: n)
            #expect(pieces.first?.lowerBound == 0 && pieces.last?.upperBound == n)
            #expect(pieces.count <= OpenCLBackend.maxPieces)
            #expect(zip(pieces, pieces.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound && $1.lowerBound % 256 == 0 })
            #expect(n > backend.pieceElements || pieces.count == 1)
            sawSeveral = sawSeveral || pieces.count > 1
            try check(backend, (0..<n).map { _ in random.normal() * 0.02 })
            let f16 = (0..<n).map { _ in UInt16(truncatingIfNeeded: random.next()) & 0xBBFF }  // finite, subnormals too
            let bf16 = (0..<n).map { _ in UInt16(truncatingIfNeeded: random.next()) & 0xBF7F }
            for (values, type) in [(f16, ElementType.float16), (bf16, .bfloat16)] {
                let problems = try Support.compare(backend, bytes: values.withUnsafeBytes { Array($0) }, type: type)
                #expect(problems.isEmpty, "\(problems)")
            }
        }
        #expect(sawSeveral)
        // A non-finite element in a later piece: first index found on the host, as on the CPU backend.
        var weights = [Float](repeating: 0.25, count: 100_003)
        weights[99_000] = .infinity
        weights[70_001] = -.nan
        #expect(throws: QuantizationError.nonFiniteValue(name: "w", index: 70_001, bits: (-Float.nan).bitPattern)) {
            try Quantizer(backend: backend).quantize(weights, name: "w", shape: [weights.count])
        }
        // A rounding midpoint spread over several pieces (exact host path).
        try check(backend, Array(repeating: 1, count: 12_287) + [1 + 0x1p-22 * 12_288 / 4])
    }

    @Test("exact device α path (what devices without cl_khr_fp64 use) matches")
    func exactScalePath() throws {
        let device = try #require(Support.firstDevice)
        let backend = try OpenCLBackend(device: device, chunkElements: 4096, workGroupSize: 64,
                                        absmeanSource: OpenCLBackend.kernelSource(PackageResources.absmean_cl),
                                        ternarizeSource: OpenCLBackend.kernelSource(PackageResources.ternarize_cl),
                                        forceExactScale: true)
        #expect(!backend.usesFloat64Sums && backend.absmeanKernels.isEmpty)
        var random = Support.Random(state: 5)
        try check(backend, (0..<10_007).map { _ in random.normal() })
        try check(backend, [1, 1, 1, 1 + 0x1p-22])
    }

    @Test("NaN/Inf throw nonFiniteValue with the first index, like the CPU backend")
    func nonFinite() throws {
        let backend = try #require(Self.backend)
        for (n, positions, value) in [(10, [0], Float.nan), (7, [6], -Float.nan), (4099, [4098, 4097], Float.infinity), (1000, [999], Float.infinity), (600_000, [300_000, 400_000], -Float.infinity),
                                      (600_000, [500_000, 3], Float.nan)] {
            var weights = [Float](repeating: 0.5, count: n)
            for p in positions { weights[p] = value }
            let cpuError = #expect(throws: QuantizationError.self) {
                try Quantizer(backend: CPUBackend()).quantize(weights, name: "w", shape: [n])
            }
            let deviceError = #expect(throws: QuantizationError.self) {
                try Quantizer(backend: backend).quantize(weights, name: "w", shape: [n])
            }
            #expect(cpuError == deviceError)
            #expect(deviceError == .nonFiniteValue(name: "w", index: positions.min() ?? 0, bits: value.bitPattern))
        }
        // F16 infinity.
        let halves: [UInt16] = [0x3C00, 0x3C00, 0x7C00, 0xFC00]
        try halves.withUnsafeBytes { raw in
            let input = try TensorInput(name: "h", shape: [4], elementType: .float16, bytes: raw)
            var out = [UInt8](repeating: 0, count: 4)
            #expect(throws: QuantizationError.nonFiniteValue(name: "h", index: 2, bits: 0x7F80_0000)) {
                try out.withUnsafeMutableBytes { _ = try backend.quantize(input, layout: .int8, into: $0) }
            }
        }
    }

    @Test("backend is reused across tensors of different sizes and concurrent callers")
    func reuseAndConcurrency() throws {
        let backend = try #require(Self.backend)
        var random = Support.Random(state: 13)
        let tensors = [70_000, 3, 600_001, 17, 262_144].map { n in (0..<n).map { _ in random.normal() } }
        let inputsStorage = tensors
        let quantizer = Quantizer(backend: backend)
        let expected = try tensors.map { try Quantizer(backend: CPUBackend()).quantize($0, name: "x", shape: [$0.count]) }
        let results = SendableBox<[QuantizedTensor?]>(Array(repeating: nil, count: tensors.count))
        DispatchQueue.concurrentPerform(iterations: tensors.count) { i in
            let r = try? quantizer.quantize(inputsStorage[i], name: "x", shape: [inputsStorage[i].count])
            results.set(i, r)
        }
        for (i, result) in results.value.enumerated() { #expect(result == expected[i]) }
    }

    @Test("device group over the same device twice equals the CPU backend (quantizeLayers)")
    func deviceGroup() throws {
        let device = try #require(Support.firstDevice)
        let group = try OpenCLDeviceGroup(members: [
            try OpenCLBackend(device: device, chunkElements: 1 << 16, workGroupSize: 64),
            try OpenCLBackend(device: device, chunkElements: 1 << 12, workGroupSize: 256),
        ])
        #expect(group.preferredConcurrency == 2)
        var random = Support.Random(state: 17)
        let arrays = (0..<8).map { k in (0..<(1000 * k + 333)).map { _ in random.normal() } }
        // Owning inputs: each holds its own copy of the weights (no pointer leaves a closure).
        let inputs = try arrays.map { a in try TensorInput(name: "l", shape: [a.count], floats: a) }
        let actual = try Quantizer(backend: group).quantizeLayers(inputs)
        let expected = try Quantizer(backend: CPUBackend()).quantizeLayers(inputs)
        #expect(actual == expected)
    }

    @Test("out of device memory: the chunk is halved and the result is unchanged; below the minimum it is an error")
    func outOfMemoryRetry() throws {
        let device = try #require(Support.firstDevice)
        // Allocations above 400 kB fail (a 100k-element F32 slot): the backend halves its chunk until it fits.
        let backend = try OpenCLBackend.injected(device: device, injector: .allocationLimit(bytes: 400_000), chunkElements: 1 << 20)
        var random = Support.Random(state: 21)
        try check(backend, (0..<300_007).map { _ in random.normal() })
        let starved = try OpenCLBackend.injected(device: device, injector: .allocationLimit(bytes: 4000), chunkElements: 1 << 20)
        let weights = (0..<300_007).map { _ in random.normal() }
        do {
            _ = try Quantizer(backend: starved).quantize(weights, name: "w", shape: [weights.count])
            Issue.record("expected an out-of-memory error")
        } catch let error as OpenCLBackendError {
            guard case .deviceFailure(_, let clError) = error else {
                Issue.record("unexpected \(error)")
                return
            }
            #expect(clError.isOutOfMemory)
            #expect(error.description.contains("out of memory"))
        }
    }

    @Test("a broken kernel source surfaces the build log")
    func brokenKernel() throws {
        let device = try #require(Support.firstDevice)
        do {
            _ = try OpenCLBackend(device: device, chunkElements: 4096, workGroupSize: 64,
                                  absmeanSource: OpenCLBackend.kernelSource(PackageResources.absmean_cl),
                                  ternarizeSource: "__kernel void ternarize_packed_f32(__global float* x) { this is not C; }",
                                  forceExactScale: false)
            Issue.record("expected a build failure")
        } catch {
            guard case .buildFailed(_, let clError) = error else {
                Issue.record("unexpected error \(error)")
                return
            }
            #expect(clError.status == .buildProgramFailure)
            #expect((clError.buildLog ?? "").contains("error"))
            #expect(error.description.contains("build log"))
        }
    }

    @Test("bandwidth probe and kernel-only timing return positive figures")
    func bandwidth() throws {
        let backend = try #require(Self.backend)
        let figures = try backend.measureBandwidth(bytes: 1 << 20, repetitions: 2)
        #expect(figures.deviceCopyGBps > 0 && figures.deviceCopyGBps.isFinite)
        #expect(figures.hostToDeviceGBps > 0 && figures.hostToDeviceGBps.isFinite)
        #expect(figures.deviceReadGBps > 0 && figures.deviceReadGBps.isFinite)
        #expect(figures.hostToDevicePageableGBps > 0 && figures.hostToDeviceGBps >= figures.hostToDevicePageableGBps)
        let weights = (0..<100_000).map { Float($0 % 7) - 3 }
        let seconds = try weights.withUnsafeBufferPointer { buffer in
            try backend.measureKernelSeconds(try TensorInput(name: "k", shape: [buffer.count], floats: buffer), repetitions: 2)
        }
        #expect(seconds > 0)
    }

    @Test("bench support: cross-check against the CPU backend and device metrics")
    func benchSupport() throws {
        let backend = try #require(Self.backend)
        #expect(try OpenCLBenchSupport.crossCheck(backend, elements: 100_003, seed: 9).isEmpty)
        let weights = (0..<65_536).map { Float($0 % 13) - 6 }
        let metrics = try weights.withUnsafeBufferPointer { buffer in
            try OpenCLBenchSupport.deviceMetrics(for: backend, input: try TensorInput(name: "m", shape: [buffer.count], floats: buffer),
                                                 layout: .packed2Bit, runs: 1)
        }
        for key in ["device_copy_gbps", "device_read_gbps", "host_to_device_gbps", "kernel_ratio", "kernel_copy_ratio", "end_to_end_ratio"] {
            #expect((metrics?[key] ?? 0) > 0, "\(key)")
        }
        let cpuMetrics = try weights.withUnsafeBufferPointer { buffer in
            try OpenCLBenchSupport.deviceMetrics(for: CPUBackend(), input: try TensorInput(name: "c", shape: [buffer.count], floats: buffer),
                                                 layout: .int8, runs: 1)
        }
        #expect(cpuMetrics == nil)
    }
}

/// A lock-protected value written from concurrent test workers.
final class SendableBox<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: T
    init(_ value: T) { stored = value }
    var value: T { lock.lock(); defer { lock.unlock() }; return stored }
    func set<E>(_ index: Int, _ element: E) where T == [E] {
        lock.lock(); stored[index] = element; lock.unlock()
    }
}
