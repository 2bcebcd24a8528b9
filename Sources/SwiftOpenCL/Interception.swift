import COpenCL

/// One OpenCL call as a `CLCallInterceptor` sees it, before it is made.
@_spi(Testing)
public struct CLCall: Sendable, Hashable, CustomStringConvertible {
    /// The C function, e.g. `"clEnqueueReadBuffer"`.
    public var function: String
    /// Bytes the call allocates or transfers (`clCreateBuffer`, `clEnqueue{Read,Write}Buffer`), else `nil`.
    public var byteCount: Int?

    /// Describes a call.
    public init(_ function: String, byteCount: Int? = nil) {
        self.function = function
        self.byteCount = byteCount
    }

    /// The function name, with the byte count when there is one.
    public var description: String { byteCount.map { "\(function)(\($0) bytes)" } ?? function }
}

/// What an interceptor decides for one call.
@_spi(Testing)
public enum CLInterception: Sendable, Hashable {
    /// Make the real call.
    case proceed
    /// Do not make the call; it fails with this status (what a driver returns, e.g. `CL_OUT_OF_RESOURCES`).
    case fail(Int32)
    /// Do not make the call but report success, as a broken driver does (an enqueue returns an event that is
    /// already complete, a wait or finish returns at once): simulates reads that never land.
    case skip
}

/// Fault injection for tests: sees every call a `CLContext` and the objects made from it issue (queues,
/// buffers, programs, kernels, transfers, launches, waits) and may fail or skip it. Only reachable through
/// `@_spi(Testing)` initializers; release code passes none (one `nil` check per call).
@_spi(Testing)
public protocol CLCallInterceptor: AnyObject, Sendable {
    /// Decides what happens to `call`.
    func intercept(_ call: CLCall) -> CLInterception
}

extension CLContext {
    /// Asks the interceptor (if any) about `call`: `true` to make the real call, `false` to skip it;
    /// throws `CLError(status, call:)` for an injected failure.
    func admits(_ function: @autoclosure () -> String, byteCount: Int? = nil) throws(CLError) -> Bool {
        guard let interceptor else { return true }
        let name = function()
        switch interceptor.intercept(CLCall(name, byteCount: byteCount)) {
        case .proceed: return true
        case .skip: return false
        case .fail(let status): throw CLError(status, call: name)
        }
    }

    /// An event that is already complete (what a skipped enqueue returns). Throws `CLError` (`clCreateUserEvent`).
    func completedEvent() throws(CLError) -> CLEvent {
        var status: cl_int = 0
        guard let event = clCreateUserEvent(handle, &status), status == CL_SUCCESS else {
            throw CLError(status == CL_SUCCESS ? CLStatus.invalidValue.rawValue : status, call: "clCreateUserEvent")
        }
        let owned = CLEvent(owning: event)
        try CLError.check(clSetUserEventStatus(event, CL_COMPLETE), "clSetUserEventStatus")
        return owned
    }
}
