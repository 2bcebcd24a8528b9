import TernaryQuantCore
import Foundation

/// Several OpenCL backends (usually one per device) behind one `QuantizationBackend`: each `quantize`
/// call runs whole on an idle member, so concurrent calls (`Quantizer.quantizeLayers`) keep every device
/// busy. Output is identical to a single device's (every member is byte-identical to the CPU backend).
///
/// Thread-safe; a call waits while every member is busy.
public final class OpenCLDeviceGroup: QuantizationBackend, @unchecked Sendable {
    /// The member backends.
    public let members: [OpenCLBackend]
    private let condition = NSCondition()
    private var busy: [Bool]

    /// Groups `members` (at least one; the same device may appear twice, e.g. in tests).
    /// Throws `OpenCLBackendError.noDevice` when `members` is empty.
    public init(members: [OpenCLBackend]) throws(OpenCLBackendError) {
        guard !members.isEmpty else { throw OpenCLBackendError.noDevice(selector: "all", available: []) }
        self.members = members
        busy = Array(repeating: false, count: members.count)
    }

    /// `"opencl"`.
    public var name: String { "opencl" }
    /// The members' descriptions, joined.
    public var deviceDescription: String {
        "\(members.count) OpenCL devices: " + members.map(\.deviceDescription).joined(separator: "; ")
    }
    /// The number of members.
    public var preferredConcurrency: Int { members.count }

    /// Quantizes on the first idle member (waiting if all are busy). Throws what the member throws.
    public func quantize(_ input: TensorInput, layout: TritLayout, into output: UnsafeMutableRawBufferPointer) throws
        -> QuantizationSummary
    {
        let index = acquire()
        defer { release(index) }
        return try members[index].quantize(input, layout: layout, into: output)
    }

    private func acquire() -> Int {
        condition.lock()
        defer { condition.unlock() }
        while true {
            if let index = busy.firstIndex(of: false) {
                busy[index] = true
                return index
            }
            condition.wait()
        }
    }

    private func release(_ index: Int) {
        condition.lock()
        busy[index] = false
        condition.signal()
        condition.unlock()
    }
}
