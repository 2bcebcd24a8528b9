import Foundation
@_spi(Testing) import SwiftOpenCL
import TernaryQuant
import TernaryQuantTestSupport
import TernaryQuantBench
@testable import TernaryQuantCore
@testable import TernaryQuantFormats
@testable import TernaryQuantOpenCL
@testable import TernaryQuantPipeline

/// Shared helpers for the OpenCL suites.
enum OpenCLTestSupport {
    /// The device the OpenCL suites run on: the one `TERNQ_DEVICE` names when it is an OpenCL selection
    /// (`opencl:rusticl`, `opencl:oclgrind`, `opencl:1`, …; how scripts/test-opencl-matrix.sh picks each
    /// implementation), else the first device of the first platform; `nil` (with a printed reason) when none.
    static let firstDevice: CLDevice? = {
        let environment = ProcessInfo.processInfo.environment
        if let text = environment[BackendSelection.environmentVariable], !text.isEmpty,
           let selection = try? BackendSelection(parsing: text), case .opencl(let selector) = selection {
            let entries = (try? OpenCLDeviceList.all()) ?? []
            if let entry = OpenCLDeviceList.select(selector, from: entries), let device = entry.device {
                print("OpenCL tests run on \(entry.summary) (TERNQ_DEVICE=\(text))")
                return device
            }
            print("OpenCL tests: TERNQ_DEVICE=\(text) matches no device (\(entries.map(\.summary)))")
            return nil
        }
        do {
            for platform in try CLPlatform.all() {
                if let device = try platform.devices().first { return device }
            }
            print("OpenCL tests skipped: no OpenCL platform/device found (install pocl-opencl-icd)")
        } catch {
            print("OpenCL tests skipped: \(error)")
        }
        return nil
    }()

    /// The selector that picks `firstDevice` in `OpenCLDeviceList.all()` (for tests that go through
    /// `makeBackend`), or `nil` when there is no device.
    static let firstSelector: DeviceSelector? = {
        guard let device = firstDevice else { return nil }
        let entries = (try? OpenCLDeviceList.all()) ?? []
        return entries.first { $0.device == device }.map { DeviceSelector.index($0.index) }
    }()

    /// The OpenCL implementations CI installed and requires (`TERNQ_REQUIRE_OPENCL=pocl,rusticl,oclgrind`):
    /// with the variable set, the OpenCL suites run (and fail) instead of skipping when a device is missing.
    static let required: [String] = {
        let text = ProcessInfo.processInfo.environment["TERNQ_REQUIRE_OPENCL"] ?? ""
        return text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }.filter { !$0.isEmpty }
    }()

    /// What names each implementation in a platform name, platform vendor or device name.
    static func matches(_ implementation: String, _ entry: OpenCLDeviceEntry) -> Bool {
        let haystack = [entry.platformName, entry.info.vendor, entry.info.name].joined(separator: " ").lowercased()
        switch implementation {
        case "pocl": return haystack.contains("portable computing language") || haystack.contains("pocl")
        default: return haystack.contains(implementation)
        }
    }

    /// Whether a PoCL platform is installed (so POCL_DEVICES controls its device list), or required.
    static let hasPoCL: Bool = {
        required.contains("pocl") || ((try? OpenCLDeviceList.all()) ?? []).contains { matches("pocl", $0) }
    }()

    /// Whether OpenCL tests run: a device exists, or CI requires one (then a missing device fails them).
    static var available: Bool { firstDevice != nil || !required.isEmpty }

    /// Deterministic generator: the package's one PRNG (draws in TernaryQuantTestSupport/Random.swift).
    typealias Random = SplitMix64

    /// The largest tensor `compare` sends to the device: `TERNQ_TEST_MAX_ELEMENTS` (the CI matrix sets it
    /// for Oclgrind, a simulator that runs kernels thousands of times slower), else unlimited.
    static let maxElements: Int = Int(ProcessInfo.processInfo.environment["TERNQ_TEST_MAX_ELEMENTS"] ?? "") ?? .max

    /// Quantizes raw bytes with both backends in both layouts and returns whether everything matches
    /// (nothing to report for a tensor above `maxElements`, which is not run).
    static func compare(_ backend: any QuantizationBackend, bytes: [UInt8], type: ElementType,
                        sourceLocation: String = #function) throws -> [String] {
        var problems: [String] = []
        let count = bytes.count / type.byteWidth
        if count > maxElements { return [] }
        try bytes.withUnsafeBytes { raw in
            let input = try TensorInput(name: "t", shape: [count], elementType: type, bytes: raw)
            for layout in TritLayout.allCases {
                // Outputs start as 0xEE so an unwritten byte shows; the library's one comparison decides.
                let mismatches = try BackendComparison.compare(
                    tensor: "\(type) n=\(count) \(layout)", backends: [("cpu", CPUBackend()), ("device", backend)], layout: layout
                ) { candidate in
                    var out = [UInt8](repeating: 0xEE, count: layout.byteCount(forTrits: count))
                    let summary = try out.withUnsafeMutableBytes { try candidate.quantize(input, layout: layout, into: $0) }
                    return BackendComparison.Output(summary: summary, bytes: out)
                }
                problems += mismatches.map { "\($0.tensor): \($0.detail)" }
            }
        }
        return problems
    }

    static func bytes(of floats: [Float]) -> [UInt8] {
        floats.withUnsafeBytes { Array($0) }
    }
}

/// Fault injection through SwiftOpenCL's testing seam: counts every OpenCL call and fails or skips the ones
/// a rule picks (the k-th call, allocations above a size, every call of one function, …).
final class FaultInjector: CLCallInterceptor, @unchecked Sendable {
    private let lock = NSLock()
    private var calls: [CLCall] = []
    private let rule: @Sendable (Int, CLCall) -> CLInterception

    /// `rule(index, call)` decides each call; `index` counts from 0 over the injector's lifetime.
    init(_ rule: @escaping @Sendable (Int, CLCall) -> CLInterception) { self.rule = rule }

    /// Fails call number `k` (0-based) with `status`.
    static func failing(call k: Int, status: Int32) -> FaultInjector {
        FaultInjector { index, _ in index == k ? .fail(status) : .proceed }
    }

    /// Fails every `clCreateBuffer` of more than `bytes` bytes with CL_MEM_OBJECT_ALLOCATION_FAILURE.
    static func allocationLimit(bytes: Int) -> FaultInjector {
        FaultInjector { _, call in
            call.function == "clCreateBuffer" && (call.byteCount ?? 0) > bytes ? .fail(CLStatus.memObjectAllocationFailure.rawValue) : .proceed
        }
    }

    func intercept(_ call: CLCall) -> CLInterception {
        lock.lock()
        let index = calls.count
        calls.append(call)
        lock.unlock()
        return rule(index, call)
    }

    /// Every call seen so far.
    var seen: [CLCall] {
        lock.lock()
        defer { lock.unlock() }
        return calls
    }
}

extension OpenCLBackend {
    /// A backend on `device` with the production kernels whose OpenCL calls go through `injector`.
    static func injected(device: CLDevice, injector: FaultInjector, chunkElements: Int = 1 << 16, workGroupSize: Int = 64,
                         forceExactScale: Bool = false) throws(OpenCLBackendError) -> OpenCLBackend {
        try OpenCLBackend(device: device, chunkElements: chunkElements, workGroupSize: workGroupSize,
                          absmeanSource: OpenCLBackend.kernelSource(PackageResources.absmean_cl),
                          ternarizeSource: OpenCLBackend.kernelSource(PackageResources.ternarize_cl),
                          forceExactScale: forceExactScale, interceptor: injector)
    }
}
