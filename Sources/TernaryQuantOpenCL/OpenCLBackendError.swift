import TernaryQuantCore
import SwiftOpenCL

/// Why the OpenCL backend could not be set up or failed on a device. Every case says what failed and
/// what to do about it.
public enum OpenCLBackendError: RemediableError, Sendable {
    /// No OpenCL platform is installed or visible (no ICD, `CL_PLATFORM_NOT_FOUND_KHR` −1001, …).
    case noPlatform(CLError?)
    /// No device matches the selection; `available` lists "index: name" of every device found.
    case noDevice(selector: String, available: [String])
    /// The kernels failed to compile on `device`; the error carries the build log.
    case buildFailed(device: String, error: CLError)
    /// An OpenCL call failed while using `device` (the error names the call).
    case deviceFailure(device: String, error: CLError)
    /// A `BackendSelection` string could not be parsed.
    case invalidSelection(String)
    /// The device's results failed a consistency check (a read-back that never landed, a stale buffer,
    /// impossible partial sums): the driver is broken; nothing it returned was used.
    case inconsistentResult(device: String, detail: String)

    /// What failed and how to fix it, in one message (`problem`, then the remedy in neutral words).
    public var description: String { message() }

    /// Every failure but an unparsable selection can be avoided by using the CPU backend.
    public var remedy: Remedy? {
        if case .invalidSelection = self { return nil }
        return .useCPUBackend
    }

    /// What failed and what to try on the OpenCL side, without the CPU-backend remedy.
    public var problem: String {
        switch self {
        case .noPlatform(let error):
            let cause = error.map { " (\($0))" } ?? ""
            return "no OpenCL platform found\(cause): install pocl-opencl-icd (CPU) or a GPU driver that registers an ICD in /etc/OpenCL/vendors, check OCL_ICD_VENDORS"
        case .noDevice(let selector, let available):
            let list = available.isEmpty ? "none" : available.joined(separator: "; ")
            return "no OpenCL device matches '\(selector)' (available: \(list))"
        case .buildFailed(let device, let error):
            return "OpenCL kernels failed to build on '\(device)': \(error)\nupdate the device driver"
        case .deviceFailure(let device, let error):
            let remedy = error.isOutOfMemory
                ? "the device ran out of memory: use a smaller chunk size, close other GPU programs"
                : "check the device driver installation (clinfo)"
            return "OpenCL device '\(device)': \(error); \(remedy)"
        case .inconsistentResult(let device, let detail):
            return "OpenCL device '\(device)' returned inconsistent results (\(detail)); its driver does not keep the OpenCL ordering rules: update or remove the driver"
        case .invalidSelection(let text):
            return "invalid device selection '\(text)': use auto, cpu, opencl, opencl:<index>, opencl:<name substring> or opencl:all"
        }
    }
}
