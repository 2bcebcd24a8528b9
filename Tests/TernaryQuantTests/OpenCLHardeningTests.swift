import Foundation
@_spi(Testing) import SwiftOpenCL
import Testing
import TernaryQuant
import TernaryQuantTestSupport
@testable import TernaryQuantCore
@testable import TernaryQuantFormats
@testable import TernaryQuantOpenCL
@testable import TernaryQuantPipeline

private typealias Support = OpenCLTestSupport

@Suite("OpenCL hardening: small work-groups, driver checks, error paths", .enabled(if: OpenCLTestSupport.available))
struct OpenCLHardeningTests {
    /// Tensors of 4·v + tail elements: too few vectors for every work-item, one per item, and more
    /// (at most ~20k elements, so a large device maximum stays quick in debug builds).
    private static func sizes(workGroupSize: Int, maxGroups: Int) -> [Int] {
        let items = workGroupSize * maxGroups
        var sizes: [Int] = []
        for vectors in [0, 1, 2, 5, items, items + 1, 3 * items + 2] where vectors <= 5000 {
            for tail in 0...3 where 4 * vectors + tail > 0 { sizes.append(4 * vectors + tail) }
        }
        return Array(Set(sizes)).sorted()
    }

    private static func compareAll(_ backend: OpenCLBackend, sizes: [Int], seed: UInt64) throws -> [String] {
        var random = Support.Random(state: seed)
        var problems: [String] = []
        for n in sizes {
            // Distinct magnitudes, so α depends on every element (a skipped tail element changes it).
            let floats = (0..<n).map { i in Float(i % 7 + 1) * 0.125 * (random.next() & 1 == 0 ? 1 : -1) }
            problems += try Support.compare(backend, bytes: Support.bytes(of: floats), type: .float32)
            let halves = floats.map { HalfConversion.float16Bits($0) }
            problems += try Support.compare(backend, bytes: halves.withUnsafeBytes { Array($0) }, type: .float16)
            let brains = floats.map { UInt16(truncatingIfNeeded: $0.bitPattern >> 16) }
            problems += try Support.compare(backend, bytes: brains.withUnsafeBytes { Array($0) }, type: .bfloat16)
        }
        return problems
    }

    @Test("every work-group size 1…8 and the device maximum, with tails of 0–3 (OpenCLOptions(workGroupSize:))")
    func everyWorkGroupSize() throws {
        let selector = try #require(Support.firstSelector)
        let device = try #require(Support.firstDevice)
        let deviceMax = try device.info().maxWorkGroupSize
        for requested in Array(1...8) + [deviceMax] {
            let made = try makeBackend(.opencl(device: selector), options: OpenCLOptions(chunkElements: 1 << 16, workGroupSize: requested))
            let backend = try #require(made as? OpenCLBackend)
            // The backend uses the size asked for (not rounded to a power of two), within the kernels' limit.
            #expect(backend.workGroupSize <= requested && backend.workGroupSize >= 1)
            if requested <= 8 { #expect(backend.workGroupSize == Swift.min(requested, deviceMax), "requested \(requested)") }
            let problems = try Self.compareAll(backend, sizes: Self.sizes(workGroupSize: backend.workGroupSize, maxGroups: backend.maxGroups),
                                               seed: UInt64(requested))
            #expect(problems.isEmpty, "work-group size \(backend.workGroupSize): \(problems.prefix(6))")
        }
    }

    @Test("every production kernel's argument description matches its CL_KERNEL_NUM_ARGS")
    func argumentDescriptions() throws {
        let device = try #require(Support.firstDevice)
        let backend = try OpenCLBackend(device: device, chunkElements: 4096, workGroupSize: 16)
        let slot = try OpenCLBackend.Slot(context: backend.context, elements: 256, groups: 1)
        for kernel in backend.absmeanKernels.values {
            #expect(kernel.argumentCount == slot.absmeanArguments(count: 1, base: 0, local: 16, tag: 0).count, "\(kernel.name)")
        }
        for kernel in backend.exactKernels.values {
            #expect(kernel.argumentCount == slot.exactArguments(count: 1, base: 0, local: 16, tag: 0).count, "\(kernel.name)")
        }
        #expect(backend.exactKernels.count == 3)
        for kernel in Array(backend.packedKernels.values) + Array(backend.int8Kernels.values) {
            #expect(kernel.argumentCount == slot.ternarizeArguments(count: 1, threshold: 1, local: 16, tag: 0).count, "\(kernel.name)")
        }
        #expect(backend.packedKernels.count == 3 && backend.int8Kernels.count == 3)
    }

    @Test("the device's own work-group limit (POCL_MAX_WORK_GROUP_SIZE in the CI matrix), default options")
    func deviceLimitedWorkGroup() throws {
        let selector = try #require(Support.firstSelector)
        let backend = try #require(try makeBackend(.opencl(device: selector)) as? OpenCLBackend)
        let deviceMax = backend.info.maxWorkGroupSize
        if deviceMax <= OpenCLBackend.defaultWorkGroupSize { #expect(backend.workGroupSize <= deviceMax) }
        let problems = try Self.compareAll(backend, sizes: Self.sizes(workGroupSize: backend.workGroupSize, maxGroups: backend.maxGroups),
                                           seed: 99)
        #expect(problems.isEmpty, "work-group size \(backend.workGroupSize): \(problems.prefix(6))")
    }
}

@Suite("OpenCL error paths: a driver whose reads never land, and a failure at every OpenCL call",
       .enabled(if: OpenCLTestSupport.available))
struct OpenCLFaultTests {
    private static func weights(_ n: Int, seed: UInt64) -> [Float] {
        var random = Support.Random(state: seed)
        return (0..<n).map { _ in random.normal() }
    }

    @Test("reads that report success but never land (Mesa rusticl's failure) give an error, never wrong bytes",
          arguments: ["sums", "subnormals", "flags", "bins", "exactFlags", "trits", "staleTrits", "counts"])
    func droppedReads(which: String) throws {
        let device = try #require(Support.firstDevice)
        // The exact α pass runs for "bins"/"exactFlags" (forced) and on devices without fp64 (always).
        let hasFP64 = try device.info().supportsFP64
        let exactPath = ["bins", "exactFlags"].contains(which) || !hasFP64
        if exactPath && ["sums", "subnormals", "flags"].contains(which) { return }  // no float64 pass on this device
        // Reads are enqueued per launch in this order: α (sums, subnormals, flags; or bins, flags on the exact
        // path), then the trit counts; the trits come back through a device copy into pinned memory (the
        // tensor's first copy is its upload, the second its download).
        let reads = exactPath ? ["bins", "exactFlags", "counts"] : ["sums", "subnormals", "flags", "counts"]
        // "staleTrits": a first tensor succeeds, then the second tensor's download never lands (its pinned buffer
        // still holds the first tensor's trits unless the backend poisoned it after reading).
        let (function, position) = which == "trits" ? ("clEnqueueCopyBuffer", 1)
            : which == "staleTrits" ? ("clEnqueueCopyBuffer", 3)
            : ("clEnqueueReadBuffer", try #require(reads.firstIndex(of: which)))
        let seen = SendableBox<[Int]>([0])
        let injector = FaultInjector { _, call in
            guard call.function == function else { return .proceed }
            let k = seen.value[0]
            seen.set(0, k + 1)
            return k == position ? .skip : .proceed
        }
        let backend = try OpenCLBackend.injected(device: device, injector: injector, forceExactScale: exactPath)
        let weights = Self.weights(10_007, seed: 3)
        // The output starts as a plausible earlier result (zeros): it must not come back as the answer.
        var output = [UInt8](repeating: 0, count: TritLayout.packed2Bit.byteCount(forTrits: weights.count))
        if which == "staleTrits" {
            let first = Self.weights(10_007, seed: 9)
            #expect(try Quantizer(backend: backend).quantize(first, name: "a", shape: [first.count])
                    == Quantizer(backend: CPUBackend()).quantize(first, name: "a", shape: [first.count]))
        }
        do {
            try weights.withUnsafeBufferPointer { buffer in
                let input = try TensorInput(name: "w", shape: [buffer.count], floats: buffer)
                _ = try output.withUnsafeMutableBytes { try backend.quantize(input, layout: .packed2Bit, into: $0) }
            }
            Issue.record("a dropped \(which) read went unnoticed")
        } catch let error as OpenCLBackendError {
            guard case .inconsistentResult = error else { Issue.record("unexpected \(error)"); return }
            #expect(error.remedy == .useCPUBackend && error.description.contains("CPU backend") && !error.description.contains("--"))
        }
    }

    @Test("automatic selection on a driver whose reads never land: CPU bytes, one warning")
    func fallbackOnInconsistentDriver() throws {
        let device = try #require(Support.firstDevice)
        let injector = FaultInjector { _, call in call.function == "clEnqueueReadBuffer" ? .skip : .proceed }
        let backend = try OpenCLBackend.injected(device: device, injector: injector)
        let fallback = FallbackBackend(primary: backend, logger: defaultBackendLogger)
        let weights = Self.weights(5000, seed: 4)
        let expected = try Quantizer(backend: CPUBackend()).quantize(weights, name: "w", shape: [weights.count])
        let actual = try Quantizer(backend: fallback).quantize(weights, name: "w", shape: [weights.count])
        #expect(actual == expected)
        #expect(fallback.name == "cpu")
    }

    /// Quantizes `weights` (several chunks, so reads are pending when later calls fail) into a fresh heap
    /// buffer that is freed as soon as the call returns: with a missing wait, a late device write lands in
    /// freed memory (caught by the address sanitizer) or, here, in the pattern written right after.
    private static func attempt(_ backend: OpenCLBackend, _ weights: [Float], layout: TritLayout) throws -> [UInt8] {
        let byteCount = layout.byteCount(forTrits: weights.count)
        let output = UnsafeMutableRawBufferPointer.allocate(byteCount: byteCount, alignment: 16)
        defer { output.deallocate() }
        output.initializeMemory(as: UInt8.self, repeating: 0xEE)
        do {
            try weights.withUnsafeBufferPointer { buffer in
                let input = try TensorInput(name: "w", shape: [buffer.count], floats: buffer)
                _ = try backend.quantize(input, layout: layout, into: output)
            }
            return Array(output)
        } catch {
            output.initializeMemory(as: UInt8.self, repeating: 0x5A)
            _ = try? backend.compute.finish()
            _ = try? backend.transfer.finish()
            #expect(output.allSatisfy { $0 == 0x5A }, "the device wrote into the output after quantize returned")
            throw error
        }
    }

    @Test("failing the k-th OpenCL call, for every k: a typed error or the right bytes, nothing written late",
          arguments: [CLStatus.outOfResources.rawValue, CLStatus.deviceNotAvailable.rawValue])
    func everyCallFails(status: Int32) throws {
        let device = try #require(Support.firstDevice)
        let weights = Self.weights(3 * 256 + 5, seed: 8)
        let expected = try weights.withUnsafeBufferPointer { buffer in
            var out = [UInt8](repeating: 0, count: TritLayout.packed2Bit.byteCount(forTrits: buffer.count))
            _ = try out.withUnsafeMutableBytes {
                try CPUBackend().quantize(try TensorInput(name: "w", shape: [buffer.count], floats: buffer), layout: .packed2Bit, into: $0)
            }
            return out
        }
        // Count the calls of one whole run (backend creation + two tensors), then fail each one in turn.
        let counter = FaultInjector { _, _ in .proceed }
        let probe = try OpenCLBackend.injected(device: device, injector: counter, chunkElements: 256, workGroupSize: 8)
        let setupCalls = counter.seen.count
        #expect(try Self.attempt(probe, weights, layout: .packed2Bit) == expected)
        #expect(try Self.attempt(probe, weights, layout: .packed2Bit) == expected)
        let total = counter.seen.count
        #expect(total > 40, "\(counter.seen)")
        var failures = 0
        // Setup failures are the same for every status: one status covers them (each costs a program build).
        let first = status == CLStatus.outOfResources.rawValue ? setupCalls : 0
        for k in first..<total {
            let injector = FaultInjector.failing(call: k, status: status)
            let backend: OpenCLBackend
            do {
                backend = try OpenCLBackend.injected(device: device, injector: injector, chunkElements: 256, workGroupSize: 8)
            } catch {
                failures += 1
                continue  // a typed OpenCLBackendError from setup
            }
            for _ in 0..<2 {
                do {
                    let bytes = try Self.attempt(backend, weights, layout: .packed2Bit)
                    #expect(bytes == expected, "k=\(k) (\(injector.seen[Swift.min(k, injector.seen.count - 1)])): wrong bytes")
                } catch is OpenCLBackendError {
                    failures += 1
                } catch {
                    Issue.record("k=\(k): untyped error \(error)")
                }
            }
        }
        #expect(failures >= (total - first) / 2, "injected failures mostly surface as errors (\(failures) of \(total - first))")
    }
}
