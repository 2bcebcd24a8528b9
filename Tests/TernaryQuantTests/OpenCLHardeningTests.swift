import Foundation
import SwiftOpenCL
import Testing
@testable import TernaryQuant

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
