import COpenCL

/// An OpenCL error: the raw `cl_int` status a call returned, plus the name of the call that failed.
///
/// The type is open (like swift-system's `Errno`): any status, including vendor and extension codes such
/// as −1001 (`CL_PLATFORM_NOT_FOUND_KHR`), is representable. Named statics cover the standard codes.
/// Two errors compare equal when their `code`s are equal; `call` and `buildLog` are context only.
public struct CLError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The raw status code (negative for errors).
    public var code: Int32
    /// The OpenCL function that returned `code` (e.g. `"clCreateBuffer"`), or `""` when unknown.
    public var call: String
    /// The compiler output, for program build failures (`CL_BUILD_PROGRAM_FAILURE`); otherwise `nil`.
    public var buildLog: String?

    /// Wraps a raw status returned by `call`.
    public init(_ code: Int32, call: String = "", buildLog: String? = nil) {
        self.code = code
        self.call = call
        self.buildLog = buildLog
    }

    /// Equality by status code only.
    public static func == (lhs: CLError, rhs: CLError) -> Bool { lhs.code == rhs.code }
    /// Hashes the status code only.
    public func hash(into hasher: inout Hasher) { hasher.combine(code) }

    /// Lets `catch CLError.outOfResources` match any `CLError` with the same code.
    public static func ~= (pattern: CLError, value: any Error) -> Bool {
        (value as? CLError)?.code == pattern.code
    }

    /// The symbolic name of `code` (e.g. `"CL_OUT_OF_RESOURCES"`), or `nil` for an unknown/vendor code.
    public var name: String? { Self.names[code] }

    /// "clCreateBuffer failed: CL_OUT_OF_RESOURCES (-5)", with the build log appended when present.
    public var description: String {
        let what = name.map { "\($0) (\(code))" } ?? "unknown OpenCL status \(code)"
        var text = call.isEmpty ? "OpenCL error \(what)" : "\(call) failed: \(what)"
        if let buildLog, !buildLog.isEmpty { text += "\nbuild log:\n\(buildLog)" }
        return text
    }

    /// Throws `CLError(status, call:)` when `status` is not `CL_SUCCESS`.
    public static func check(_ status: cl_int, _ call: @autoclosure () -> String) throws(CLError) {
        if status != CL_SUCCESS { throw CLError(status, call: call()) }
    }

    // MARK: Named codes

    /// `CL_DEVICE_NOT_FOUND` (−1): no device of the requested type.
    public static let deviceNotFound = CLError(-1)
    /// `CL_DEVICE_NOT_AVAILABLE` (−2).
    public static let deviceNotAvailable = CLError(-2)
    /// `CL_COMPILER_NOT_AVAILABLE` (−3).
    public static let compilerNotAvailable = CLError(-3)
    /// `CL_MEM_OBJECT_ALLOCATION_FAILURE` (−4): device memory could not be allocated.
    public static let memObjectAllocationFailure = CLError(-4)
    /// `CL_OUT_OF_RESOURCES` (−5): the device ran out of resources (often memory).
    public static let outOfResources = CLError(-5)
    /// `CL_OUT_OF_HOST_MEMORY` (−6).
    public static let outOfHostMemory = CLError(-6)
    /// `CL_PROFILING_INFO_NOT_AVAILABLE` (−7).
    public static let profilingInfoNotAvailable = CLError(-7)
    /// `CL_BUILD_PROGRAM_FAILURE` (−11): the kernel source did not compile; see `buildLog`.
    public static let buildProgramFailure = CLError(-11)
    /// `CL_INVALID_VALUE` (−30).
    public static let invalidValue = CLError(-30)
    /// `CL_INVALID_DEVICE` (−33).
    public static let invalidDevice = CLError(-33)
    /// `CL_INVALID_BUILD_OPTIONS` (−43).
    public static let invalidBuildOptions = CLError(-43)
    /// `CL_INVALID_KERNEL_NAME` (−46).
    public static let invalidKernelName = CLError(-46)
    /// `CL_INVALID_ARG_INDEX` (−49).
    public static let invalidArgIndex = CLError(-49)
    /// `CL_INVALID_ARG_SIZE` (−51).
    public static let invalidArgSize = CLError(-51)
    /// `CL_INVALID_WORK_GROUP_SIZE` (−54).
    public static let invalidWorkGroupSize = CLError(-54)
    /// `CL_INVALID_BUFFER_SIZE` (−61).
    public static let invalidBufferSize = CLError(-61)
    /// `CL_PLATFORM_NOT_FOUND_KHR` (−1001): the ICD loader found no platform (no driver installed, or
    /// `OCL_ICD_VENDORS` points at an empty directory).
    public static let platformNotFoundKHR = CLError(-1001)

    /// Whether the code means the device (or host) ran out of memory or resources.
    public var isOutOfMemory: Bool { code == -4 || code == -5 || code == -6 }

    static let names: [Int32: String] = [
        0: "CL_SUCCESS", -1: "CL_DEVICE_NOT_FOUND", -2: "CL_DEVICE_NOT_AVAILABLE",
        -3: "CL_COMPILER_NOT_AVAILABLE", -4: "CL_MEM_OBJECT_ALLOCATION_FAILURE", -5: "CL_OUT_OF_RESOURCES",
        -6: "CL_OUT_OF_HOST_MEMORY", -7: "CL_PROFILING_INFO_NOT_AVAILABLE", -8: "CL_MEM_COPY_OVERLAP",
        -9: "CL_IMAGE_FORMAT_MISMATCH", -10: "CL_IMAGE_FORMAT_NOT_SUPPORTED", -11: "CL_BUILD_PROGRAM_FAILURE",
        -12: "CL_MAP_FAILURE", -13: "CL_MISALIGNED_SUB_BUFFER_OFFSET",
        -14: "CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST", -15: "CL_COMPILE_PROGRAM_FAILURE",
        -16: "CL_LINKER_NOT_AVAILABLE", -17: "CL_LINK_PROGRAM_FAILURE", -18: "CL_DEVICE_PARTITION_FAILED",
        -19: "CL_KERNEL_ARG_INFO_NOT_AVAILABLE", -30: "CL_INVALID_VALUE", -31: "CL_INVALID_DEVICE_TYPE",
        -32: "CL_INVALID_PLATFORM", -33: "CL_INVALID_DEVICE", -34: "CL_INVALID_CONTEXT",
        -35: "CL_INVALID_QUEUE_PROPERTIES", -36: "CL_INVALID_COMMAND_QUEUE", -37: "CL_INVALID_HOST_PTR",
        -38: "CL_INVALID_MEM_OBJECT", -39: "CL_INVALID_IMAGE_FORMAT_DESCRIPTOR", -40: "CL_INVALID_IMAGE_SIZE",
        -41: "CL_INVALID_SAMPLER", -42: "CL_INVALID_BINARY", -43: "CL_INVALID_BUILD_OPTIONS",
        -44: "CL_INVALID_PROGRAM", -45: "CL_INVALID_PROGRAM_EXECUTABLE", -46: "CL_INVALID_KERNEL_NAME",
        -47: "CL_INVALID_KERNEL_DEFINITION", -48: "CL_INVALID_KERNEL", -49: "CL_INVALID_ARG_INDEX",
        -50: "CL_INVALID_ARG_VALUE", -51: "CL_INVALID_ARG_SIZE", -52: "CL_INVALID_KERNEL_ARGS",
        -53: "CL_INVALID_WORK_DIMENSION", -54: "CL_INVALID_WORK_GROUP_SIZE", -55: "CL_INVALID_WORK_ITEM_SIZE",
        -56: "CL_INVALID_GLOBAL_OFFSET", -57: "CL_INVALID_EVENT_WAIT_LIST", -58: "CL_INVALID_EVENT",
        -59: "CL_INVALID_OPERATION", -60: "CL_INVALID_GL_OBJECT", -61: "CL_INVALID_BUFFER_SIZE",
        -62: "CL_INVALID_MIP_LEVEL", -63: "CL_INVALID_GLOBAL_WORK_SIZE", -64: "CL_INVALID_PROPERTY",
        -65: "CL_INVALID_IMAGE_DESCRIPTOR", -66: "CL_INVALID_COMPILER_OPTIONS", -67: "CL_INVALID_LINKER_OPTIONS",
        -68: "CL_INVALID_DEVICE_PARTITION_COUNT", -1001: "CL_PLATFORM_NOT_FOUND_KHR",
    ]
}
