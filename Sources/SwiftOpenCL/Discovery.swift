import COpenCL

/// An OpenCL platform (one installed driver, e.g. PoCL or the NVIDIA driver).
///
/// A platform ID is a process-wide handle owned by the ICD loader; it is never released, so this value
/// type is freely copyable and sendable.
public struct CLPlatform: @unchecked Sendable, Hashable {
    /// The raw `cl_platform_id`.
    public let id: cl_platform_id

    /// Wraps a raw platform ID.
    public init(id: cl_platform_id) { self.id = id }

    /// Every platform the ICD loader knows. Returns `[]` when the loader reports −1001
    /// (`CL_PLATFORM_NOT_FOUND_KHR`) or zero platforms; throws `CLError` for any other failure.
    public static func all() throws(CLError) -> [CLPlatform] {
        var count: cl_uint = 0
        let status = clGetPlatformIDs(0, nil, &count)
        if status == CLStatus.platformNotFoundKHR.rawValue || (status == CL_SUCCESS && count == 0) { return [] }
        try CLError.check(status, "clGetPlatformIDs")
        var ids = [cl_platform_id?](repeating: nil, count: Int(count))
        try CLError.check(clGetPlatformIDs(count, &ids, nil), "clGetPlatformIDs")
        return ids.compactMap { $0.map(CLPlatform.init(id:)) }
    }

    /// Like `all()`, but throws `CLError` with `CLStatus.platformNotFoundKHR` (call `clGetPlatformIDs`) instead of
    /// returning `[]`, so callers can report why OpenCL is unusable.
    public static func requireAll() throws(CLError) -> [CLPlatform] {
        let platforms = try all()
        if platforms.isEmpty { throw CLError(.platformNotFoundKHR, call: "clGetPlatformIDs") }
        return platforms
    }

    /// Platform name (`CL_PLATFORM_NAME`).
    public var name: String { (try? string(CL_PLATFORM_NAME)) ?? "" }
    /// Platform vendor (`CL_PLATFORM_VENDOR`).
    public var vendor: String { (try? string(CL_PLATFORM_VENDOR)) ?? "" }
    /// Platform version string (`CL_PLATFORM_VERSION`, e.g. "OpenCL 3.0 PoCL 3.1").
    public var version: String { (try? string(CL_PLATFORM_VERSION)) ?? "" }

    /// The platform's devices of `type` (default: all). Returns `[]` when it has none.
    public func devices(ofType type: CLDeviceType = .all) throws(CLError) -> [CLDevice] {
        var count: cl_uint = 0
        let status = clGetDeviceIDs(id, type.rawValue, 0, nil, &count)
        if status == CLStatus.deviceNotFound.rawValue || (status == CL_SUCCESS && count == 0) { return [] }
        try CLError.check(status, "clGetDeviceIDs")
        var ids = [cl_device_id?](repeating: nil, count: Int(count))
        try CLError.check(clGetDeviceIDs(id, type.rawValue, count, &ids, nil), "clGetDeviceIDs")
        return ids.compactMap { $0.map { CLDevice(id: $0, platform: self) } }
    }

    private func string(_ param: Int32) throws(CLError) -> String {
        decodeCString(try infoBytes("clGetPlatformInfo") { clGetPlatformInfo(id, cl_platform_info(param), $0, $1, $2) })
    }
}

/// OpenCL device categories (`cl_device_type` bits).
public struct CLDeviceType: OptionSet, Sendable, Hashable, CustomStringConvertible {
    /// The raw `cl_device_type` bits.
    public let rawValue: cl_device_type
    /// Wraps raw bits.
    public init(rawValue: cl_device_type) { self.rawValue = rawValue }
    /// The platform's default device.
    public static let `default` = CLDeviceType(rawValue: cl_device_type(CL_DEVICE_TYPE_DEFAULT))
    /// A host CPU device (e.g. PoCL's pthread device).
    public static let cpu = CLDeviceType(rawValue: cl_device_type(CL_DEVICE_TYPE_CPU))
    /// A GPU.
    public static let gpu = CLDeviceType(rawValue: cl_device_type(CL_DEVICE_TYPE_GPU))
    /// A dedicated accelerator.
    public static let accelerator = CLDeviceType(rawValue: cl_device_type(CL_DEVICE_TYPE_ACCELERATOR))
    /// Every device type (a query mask).
    public static let all = CLDeviceType(rawValue: cl_device_type(CL_DEVICE_TYPE_ALL))

    /// "GPU", "CPU", "accelerator", "default" or "other", by priority.
    public var description: String {
        if contains(.gpu) { return "GPU" }
        if contains(.accelerator) { return "accelerator" }
        if contains(.cpu) { return "CPU" }
        if contains(.default) { return "default" }
        return "other"
    }
}

/// Single-precision floating-point capabilities (`CL_DEVICE_SINGLE_FP_CONFIG` bits).
public struct CLFloatConfig: OptionSet, Sendable, Hashable {
    /// The raw `cl_device_fp_config` bits.
    public let rawValue: cl_device_fp_config
    /// Wraps raw bits.
    public init(rawValue: cl_device_fp_config) { self.rawValue = rawValue }
    /// Denormals are supported (not flushed to zero).
    public static let denorm = CLFloatConfig(rawValue: cl_device_fp_config(CL_FP_DENORM))
    /// Infinity and quiet NaN are supported.
    public static let infNaN = CLFloatConfig(rawValue: cl_device_fp_config(CL_FP_INF_NAN))
    /// Round to nearest even is supported.
    public static let roundToNearest = CLFloatConfig(rawValue: cl_device_fp_config(CL_FP_ROUND_TO_NEAREST))
    /// Fused multiply-add is supported in hardware.
    public static let fma = CLFloatConfig(rawValue: cl_device_fp_config(CL_FP_FMA))
    /// Division and square root are correctly rounded (without it OpenCL allows 2.5 ulp division).
    public static let correctlyRoundedDivideSqrt =
        CLFloatConfig(rawValue: cl_device_fp_config(CL_FP_CORRECTLY_ROUNDED_DIVIDE_SQRT))
}

/// A snapshot of the device properties a user or a backend needs.
public struct CLDeviceInfo: Sendable, Hashable, Codable {
    /// Device name (`CL_DEVICE_NAME`).
    public var name: String
    /// Device vendor (`CL_DEVICE_VENDOR`).
    public var vendor: String
    /// Device category: "GPU", "CPU", "accelerator", …
    public var type: String
    /// Whether the device is a GPU or accelerator (what automatic selection prefers).
    public var isGPUOrAccelerator: Bool
    /// Driver version (`CL_DRIVER_VERSION`).
    public var driverVersion: String
    /// Device OpenCL version (`CL_DEVICE_VERSION`).
    public var version: String
    /// OpenCL C version the compiler accepts (`CL_DEVICE_OPENCL_C_VERSION`, e.g. "OpenCL C 1.2 pocl").
    public var openCLCVersion: String
    /// Global memory in bytes.
    public var globalMemoryBytes: UInt64
    /// Largest single buffer allocation in bytes (`CL_DEVICE_MAX_MEM_ALLOC_SIZE`).
    public var maxAllocationBytes: UInt64
    /// Local (work-group shared) memory in bytes.
    public var localMemoryBytes: UInt64
    /// Parallel compute units.
    public var computeUnits: Int
    /// Largest work-group size.
    public var maxWorkGroupSize: Int
    /// Whether `cl_khr_fp64` (double precision) is available.
    public var supportsFP64: Bool
    /// Whether single-precision denormals are supported (not flushed to zero).
    public var singleDenormals: Bool
    /// Whether single-precision division is correctly rounded.
    public var singleCorrectlyRoundedDivide: Bool
    /// Whether the device is available for use.
    public var available: Bool
    /// Space-separated extension names.
    public var extensions: [String]
}

/// An OpenCL device. A device ID from `clGetDeviceIDs` (a root device) is never released, so this value
/// type is freely copyable and sendable.
public struct CLDevice: @unchecked Sendable, Hashable {
    /// The raw `cl_device_id`.
    public let id: cl_device_id
    /// The platform the device belongs to.
    public let platform: CLPlatform

    /// Wraps a raw device ID of `platform`.
    public init(id: cl_device_id, platform: CLPlatform) {
        self.id = id
        self.platform = platform
    }

    /// Device name, or `""` if the query fails.
    public var name: String { (try? string(CL_DEVICE_NAME)) ?? "" }

    /// Queries every property of `CLDeviceInfo`. Throws `CLError` (call `clGetDeviceInfo`) on failure.
    public func info() throws(CLError) -> CLDeviceInfo {
        let typeBits = CLDeviceType(rawValue: try value(CL_DEVICE_TYPE, as: cl_device_type.self))
        let extensions = try string(CL_DEVICE_EXTENSIONS).split(separator: " ").map(String.init)
        let doubleConfig = (try? value(CL_DEVICE_DOUBLE_FP_CONFIG, as: cl_device_fp_config.self)) ?? 0
        let single = CLFloatConfig(rawValue: try value(CL_DEVICE_SINGLE_FP_CONFIG, as: cl_device_fp_config.self))
        return CLDeviceInfo(
            name: try string(CL_DEVICE_NAME),
            vendor: try string(CL_DEVICE_VENDOR),
            type: typeBits.description,
            isGPUOrAccelerator: typeBits.contains(.gpu) || typeBits.contains(.accelerator),
            driverVersion: try string(CL_DRIVER_VERSION),
            version: try string(CL_DEVICE_VERSION),
            openCLCVersion: try string(CL_DEVICE_OPENCL_C_VERSION),
            globalMemoryBytes: try value(CL_DEVICE_GLOBAL_MEM_SIZE, as: cl_ulong.self),
            maxAllocationBytes: try value(CL_DEVICE_MAX_MEM_ALLOC_SIZE, as: cl_ulong.self),
            localMemoryBytes: try value(CL_DEVICE_LOCAL_MEM_SIZE, as: cl_ulong.self),
            computeUnits: Int(try value(CL_DEVICE_MAX_COMPUTE_UNITS, as: cl_uint.self)),
            maxWorkGroupSize: try value(CL_DEVICE_MAX_WORK_GROUP_SIZE, as: Int.self),
            supportsFP64: extensions.contains("cl_khr_fp64") || doubleConfig != 0,
            singleDenormals: single.contains(.denorm),
            singleCorrectlyRoundedDivide: single.contains(.correctlyRoundedDivideSqrt),
            available: try value(CL_DEVICE_AVAILABLE, as: cl_bool.self) != 0,
            extensions: extensions)
    }

    /// A fixed-size device property (`clGetDeviceInfo`), e.g. `value(CL_DEVICE_MAX_COMPUTE_UNITS, as: cl_uint.self)`.
    public func value<T: BitwiseCopyable>(_ param: Int32, as type: T.Type) throws(CLError) -> T {
        let bytes = try infoBytes("clGetDeviceInfo") { clGetDeviceInfo(id, cl_device_info(param), $0, $1, $2) }
        guard bytes.count == MemoryLayout<T>.size + 1 else { throw CLError(.invalidValue, call: "clGetDeviceInfo") }
        return bytes.withUnsafeBytes { $0.loadUnaligned(as: T.self) }
    }

    /// A string device property (`clGetDeviceInfo`).
    public func string(_ param: Int32) throws(CLError) -> String {
        decodeCString(try infoBytes("clGetDeviceInfo") { clGetDeviceInfo(id, cl_device_info(param), $0, $1, $2) })
    }
}

/// The two-call `clGet*Info` pattern behind every property query: asks `query(0, nil, &size)` for the size, then
/// `query(size, buffer, nil)` for the bytes; returns them with one extra zero byte (a terminator for strings
/// that lack one). Throws `CLError` naming `call` when either call fails.
func infoBytes(_ call: String,
               _ query: (Int, UnsafeMutableRawPointer?, UnsafeMutablePointer<Int>?) -> cl_int) throws(CLError) -> [CChar] {
    var size = 0
    try CLError.check(query(0, nil, &size), call)
    var bytes = [CChar](repeating: 0, count: size + 1)
    try CLError.check(bytes.withUnsafeMutableBytes { query(size, $0.baseAddress, nil) }, call)
    return bytes
}

/// Decodes a NUL-terminated (or full) C character buffer as UTF-8, trimming trailing spaces.
func decodeCString(_ bytes: [CChar]) -> String {
    let end = bytes.firstIndex(of: 0) ?? bytes.count
    let text = String(decoding: bytes[..<end].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    var trimmed = Substring(text)
    while let last = trimmed.last, last == " " || last == "\n" { trimmed = trimmed.dropLast() }
    return String(trimmed)
}
