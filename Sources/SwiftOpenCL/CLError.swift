import COpenCL

/// An OpenCL status code (`cl_int`): open like swift-system's `Errno`, so any value, including vendor and
/// extension codes, is representable. The named values come from the C `CL_*` constants of the headers.
public struct CLStatus: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    /// The raw status (0 for success, negative for errors).
    public var rawValue: Int32

    /// Wraps a raw status.
    public init(rawValue: Int32) { self.rawValue = rawValue }

    /// `CL_SUCCESS`.
    public static let success = CLStatus(rawValue: CL_SUCCESS)
    /// `CL_DEVICE_NOT_FOUND`: no device of the requested type.
    public static let deviceNotFound = CLStatus(rawValue: CL_DEVICE_NOT_FOUND)
    /// `CL_DEVICE_NOT_AVAILABLE`.
    public static let deviceNotAvailable = CLStatus(rawValue: CL_DEVICE_NOT_AVAILABLE)
    /// `CL_COMPILER_NOT_AVAILABLE`.
    public static let compilerNotAvailable = CLStatus(rawValue: CL_COMPILER_NOT_AVAILABLE)
    /// `CL_MEM_OBJECT_ALLOCATION_FAILURE`: device memory could not be allocated.
    public static let memObjectAllocationFailure = CLStatus(rawValue: CL_MEM_OBJECT_ALLOCATION_FAILURE)
    /// `CL_OUT_OF_RESOURCES`: the device ran out of resources (often memory).
    public static let outOfResources = CLStatus(rawValue: CL_OUT_OF_RESOURCES)
    /// `CL_OUT_OF_HOST_MEMORY`.
    public static let outOfHostMemory = CLStatus(rawValue: CL_OUT_OF_HOST_MEMORY)
    /// `CL_PROFILING_INFO_NOT_AVAILABLE`.
    public static let profilingInfoNotAvailable = CLStatus(rawValue: CL_PROFILING_INFO_NOT_AVAILABLE)
    /// `CL_MEM_COPY_OVERLAP`.
    public static let memCopyOverlap = CLStatus(rawValue: CL_MEM_COPY_OVERLAP)
    /// `CL_BUILD_PROGRAM_FAILURE`: the kernel source did not compile (the `CLError` carries the build log).
    public static let buildProgramFailure = CLStatus(rawValue: CL_BUILD_PROGRAM_FAILURE)
    /// `CL_MAP_FAILURE`.
    public static let mapFailure = CLStatus(rawValue: CL_MAP_FAILURE)
    /// `CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST`: a command waited for failed.
    public static let execStatusErrorForEventsInWaitList = CLStatus(rawValue: CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST)
    /// `CL_COMPILE_PROGRAM_FAILURE`.
    public static let compileProgramFailure = CLStatus(rawValue: CL_COMPILE_PROGRAM_FAILURE)
    /// `CL_LINK_PROGRAM_FAILURE`.
    public static let linkProgramFailure = CLStatus(rawValue: CL_LINK_PROGRAM_FAILURE)
    /// `CL_INVALID_VALUE`.
    public static let invalidValue = CLStatus(rawValue: CL_INVALID_VALUE)
    /// `CL_INVALID_DEVICE_TYPE`.
    public static let invalidDeviceType = CLStatus(rawValue: CL_INVALID_DEVICE_TYPE)
    /// `CL_INVALID_PLATFORM`.
    public static let invalidPlatform = CLStatus(rawValue: CL_INVALID_PLATFORM)
    /// `CL_INVALID_DEVICE`.
    public static let invalidDevice = CLStatus(rawValue: CL_INVALID_DEVICE)
    /// `CL_INVALID_CONTEXT`.
    public static let invalidContext = CLStatus(rawValue: CL_INVALID_CONTEXT)
    /// `CL_INVALID_COMMAND_QUEUE`.
    public static let invalidCommandQueue = CLStatus(rawValue: CL_INVALID_COMMAND_QUEUE)
    /// `CL_INVALID_HOST_PTR`.
    public static let invalidHostPtr = CLStatus(rawValue: CL_INVALID_HOST_PTR)
    /// `CL_INVALID_MEM_OBJECT`.
    public static let invalidMemObject = CLStatus(rawValue: CL_INVALID_MEM_OBJECT)
    /// `CL_INVALID_BINARY`.
    public static let invalidBinary = CLStatus(rawValue: CL_INVALID_BINARY)
    /// `CL_INVALID_BUILD_OPTIONS`.
    public static let invalidBuildOptions = CLStatus(rawValue: CL_INVALID_BUILD_OPTIONS)
    /// `CL_INVALID_PROGRAM`.
    public static let invalidProgram = CLStatus(rawValue: CL_INVALID_PROGRAM)
    /// `CL_INVALID_PROGRAM_EXECUTABLE`.
    public static let invalidProgramExecutable = CLStatus(rawValue: CL_INVALID_PROGRAM_EXECUTABLE)
    /// `CL_INVALID_KERNEL_NAME`.
    public static let invalidKernelName = CLStatus(rawValue: CL_INVALID_KERNEL_NAME)
    /// `CL_INVALID_KERNEL_DEFINITION`.
    public static let invalidKernelDefinition = CLStatus(rawValue: CL_INVALID_KERNEL_DEFINITION)
    /// `CL_INVALID_KERNEL`.
    public static let invalidKernel = CLStatus(rawValue: CL_INVALID_KERNEL)
    /// `CL_INVALID_ARG_INDEX`.
    public static let invalidArgIndex = CLStatus(rawValue: CL_INVALID_ARG_INDEX)
    /// `CL_INVALID_ARG_VALUE`.
    public static let invalidArgValue = CLStatus(rawValue: CL_INVALID_ARG_VALUE)
    /// `CL_INVALID_ARG_SIZE`.
    public static let invalidArgSize = CLStatus(rawValue: CL_INVALID_ARG_SIZE)
    /// `CL_INVALID_KERNEL_ARGS`: a kernel was launched with an argument not set.
    public static let invalidKernelArgs = CLStatus(rawValue: CL_INVALID_KERNEL_ARGS)
    /// `CL_INVALID_WORK_DIMENSION`.
    public static let invalidWorkDimension = CLStatus(rawValue: CL_INVALID_WORK_DIMENSION)
    /// `CL_INVALID_WORK_GROUP_SIZE`.
    public static let invalidWorkGroupSize = CLStatus(rawValue: CL_INVALID_WORK_GROUP_SIZE)
    /// `CL_INVALID_WORK_ITEM_SIZE`.
    public static let invalidWorkItemSize = CLStatus(rawValue: CL_INVALID_WORK_ITEM_SIZE)
    /// `CL_INVALID_GLOBAL_OFFSET`.
    public static let invalidGlobalOffset = CLStatus(rawValue: CL_INVALID_GLOBAL_OFFSET)
    /// `CL_INVALID_EVENT_WAIT_LIST`.
    public static let invalidEventWaitList = CLStatus(rawValue: CL_INVALID_EVENT_WAIT_LIST)
    /// `CL_INVALID_EVENT`.
    public static let invalidEvent = CLStatus(rawValue: CL_INVALID_EVENT)
    /// `CL_INVALID_OPERATION`.
    public static let invalidOperation = CLStatus(rawValue: CL_INVALID_OPERATION)
    /// `CL_INVALID_BUFFER_SIZE`.
    public static let invalidBufferSize = CLStatus(rawValue: CL_INVALID_BUFFER_SIZE)
    /// `CL_INVALID_GLOBAL_WORK_SIZE`.
    public static let invalidGlobalWorkSize = CLStatus(rawValue: CL_INVALID_GLOBAL_WORK_SIZE)
    /// `CL_INVALID_PROPERTY`.
    public static let invalidProperty = CLStatus(rawValue: CL_INVALID_PROPERTY)
    /// `CL_PLATFORM_NOT_FOUND_KHR` (cl_khr_icd): the ICD loader found no platform (no driver installed, or
    /// `OCL_ICD_VENDORS` points at an empty directory).
    public static let platformNotFoundKHR = CLStatus(rawValue: CL_PLATFORM_NOT_FOUND_KHR)

    /// Every named value with its C name, for `name`.
    static let names: [Int32: String] = {
        let table: [(CLStatus, String)] = [
            (.success, "CL_SUCCESS"), (.deviceNotFound, "CL_DEVICE_NOT_FOUND"),
            (.deviceNotAvailable, "CL_DEVICE_NOT_AVAILABLE"), (.compilerNotAvailable, "CL_COMPILER_NOT_AVAILABLE"),
            (.memObjectAllocationFailure, "CL_MEM_OBJECT_ALLOCATION_FAILURE"), (.outOfResources, "CL_OUT_OF_RESOURCES"),
            (.outOfHostMemory, "CL_OUT_OF_HOST_MEMORY"), (.profilingInfoNotAvailable, "CL_PROFILING_INFO_NOT_AVAILABLE"),
            (.memCopyOverlap, "CL_MEM_COPY_OVERLAP"), (.buildProgramFailure, "CL_BUILD_PROGRAM_FAILURE"),
            (.mapFailure, "CL_MAP_FAILURE"),
            (.execStatusErrorForEventsInWaitList, "CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST"),
            (.compileProgramFailure, "CL_COMPILE_PROGRAM_FAILURE"), (.linkProgramFailure, "CL_LINK_PROGRAM_FAILURE"),
            (.invalidValue, "CL_INVALID_VALUE"), (.invalidDeviceType, "CL_INVALID_DEVICE_TYPE"),
            (.invalidPlatform, "CL_INVALID_PLATFORM"), (.invalidDevice, "CL_INVALID_DEVICE"),
            (.invalidContext, "CL_INVALID_CONTEXT"), (.invalidCommandQueue, "CL_INVALID_COMMAND_QUEUE"),
            (.invalidHostPtr, "CL_INVALID_HOST_PTR"), (.invalidMemObject, "CL_INVALID_MEM_OBJECT"),
            (.invalidBinary, "CL_INVALID_BINARY"), (.invalidBuildOptions, "CL_INVALID_BUILD_OPTIONS"),
            (.invalidProgram, "CL_INVALID_PROGRAM"), (.invalidProgramExecutable, "CL_INVALID_PROGRAM_EXECUTABLE"),
            (.invalidKernelName, "CL_INVALID_KERNEL_NAME"), (.invalidKernelDefinition, "CL_INVALID_KERNEL_DEFINITION"),
            (.invalidKernel, "CL_INVALID_KERNEL"), (.invalidArgIndex, "CL_INVALID_ARG_INDEX"),
            (.invalidArgValue, "CL_INVALID_ARG_VALUE"), (.invalidArgSize, "CL_INVALID_ARG_SIZE"),
            (.invalidKernelArgs, "CL_INVALID_KERNEL_ARGS"), (.invalidWorkDimension, "CL_INVALID_WORK_DIMENSION"),
            (.invalidWorkGroupSize, "CL_INVALID_WORK_GROUP_SIZE"), (.invalidWorkItemSize, "CL_INVALID_WORK_ITEM_SIZE"),
            (.invalidGlobalOffset, "CL_INVALID_GLOBAL_OFFSET"), (.invalidEventWaitList, "CL_INVALID_EVENT_WAIT_LIST"),
            (.invalidEvent, "CL_INVALID_EVENT"), (.invalidOperation, "CL_INVALID_OPERATION"),
            (.invalidBufferSize, "CL_INVALID_BUFFER_SIZE"), (.invalidGlobalWorkSize, "CL_INVALID_GLOBAL_WORK_SIZE"),
            (.invalidProperty, "CL_INVALID_PROPERTY"), (.platformNotFoundKHR, "CL_PLATFORM_NOT_FOUND_KHR"),
        ]
        return Dictionary(table.map { ($0.0.rawValue, $0.1) }, uniquingKeysWith: { first, _ in first })
    }()

    /// The C name (e.g. `"CL_OUT_OF_RESOURCES"`), or `nil` for a value without a name here (vendor codes).
    public var name: String? { Self.names[rawValue] }

    /// Whether the status means the device (or host) ran out of memory or resources.
    public var isOutOfMemory: Bool { self == .memObjectAllocationFailure || self == .outOfResources || self == .outOfHostMemory }

    /// "CL_OUT_OF_RESOURCES (-5)", or "unknown OpenCL status -9999".
    public var description: String { name.map { "\($0) (\(rawValue))" } ?? "unknown OpenCL status \(rawValue)" }
}

/// A failed OpenCL call: its status, the call that returned it and, for program builds, the compiler output.
///
/// Equality compares all three (two failures of different calls differ); match a status with
/// `catch let error as CLError where error.status == .outOfResources` or `catch CLStatus.outOfResources`.
public struct CLError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The status the call returned.
    public var status: CLStatus
    /// The OpenCL function that returned `status` (e.g. `"clCreateBuffer"`), or `""` when unknown.
    public var call: String
    /// The compiler output, for program build failures (`CL_BUILD_PROGRAM_FAILURE`); otherwise `nil`.
    public var buildLog: String?

    /// A failure of `call` with `status`.
    public init(_ status: CLStatus, call: String = "", buildLog: String? = nil) {
        self.status = status
        self.call = call
        self.buildLog = buildLog
    }

    /// A failure of `call` with the raw status `code`.
    public init(_ code: Int32, call: String = "", buildLog: String? = nil) {
        self.init(CLStatus(rawValue: code), call: call, buildLog: buildLog)
    }

    /// The raw status code (`status.rawValue`).
    public var code: Int32 { status.rawValue }
    /// The status's C name, or `nil` for an unknown/vendor code.
    public var name: String? { status.name }
    /// Whether the status means the device (or host) ran out of memory or resources.
    public var isOutOfMemory: Bool { status.isOutOfMemory }

    /// "clCreateBuffer failed: CL_OUT_OF_RESOURCES (-5)", with the build log appended when present.
    public var description: String {
        var text = call.isEmpty ? "OpenCL error \(status)" : "\(call) failed: \(status)"
        if let buildLog, !buildLog.isEmpty { text += "\nbuild log:\n\(buildLog)" }
        return text
    }

    /// Throws `CLError(status, call:)` when `status` is not `CL_SUCCESS`.
    public static func check(_ status: cl_int, _ call: @autoclosure () -> String) throws(CLError) {
        if status != CL_SUCCESS { throw CLError(status, call: call()) }
    }
}

extension CLStatus {
    /// Lets `catch CLStatus.outOfResources` match any `CLError` with this status.
    public static func ~= (pattern: CLStatus, value: any Error) -> Bool {
        (value as? CLError)?.status == pattern
    }
}
