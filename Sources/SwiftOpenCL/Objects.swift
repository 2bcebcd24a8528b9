import COpenCL
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Ownership: every class below owns exactly one OpenCL reference to its handle (from the create call)
// and releases it in `deinit`. Children keep their parents alive with strong Swift references (a queue
// holds its context, a kernel its program), so release order is always child before parent.
// OpenCL 1.2 makes every API call thread-safe except `clSetKernelArg` on the same kernel object; the
// classes are therefore `@unchecked Sendable`, except `CLKernel`, which is not `Sendable` at all (like
// Rust's opencl3 `Kernel`): its owner keeps it on one thread or serializes access.

/// Reports a failed release from a `deinit` (which cannot throw) on standard error: the handle leaks, and a
/// failure here usually means a driver problem or a handle released twice.
func logReleaseFailure(_ status: cl_int, _ call: String, _ owner: String) {
    guard status != CL_SUCCESS else { return }
    let line = "SwiftOpenCL: \(owner) deinit: \(CLError(status, call: call))\n"
    let bytes = Array(line.utf8)
    _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }  // stderr, without the shared FILE*
}

/// One kernel argument, as `CLKernel.bind` sets it.
public enum CLKernelArgument {
    /// A device buffer (`__global` or `__constant` pointer parameter).
    case buffer(CLBuffer)
    /// `__local` memory of this many bytes.
    case local(byteCount: Int)
    /// A `uint` parameter.
    case uint32(UInt32)
    /// A `ulong` parameter.
    case uint64(UInt64)
}

/// An OpenCL context over one or more devices of one platform. Releases the context in `deinit`.
public final class CLContext: @unchecked Sendable {
    /// The raw `cl_context` (owned).
    public let handle: cl_context
    /// The devices the context was created for.
    public let devices: [CLDevice]
    /// Tests only: sees every call made through this context and its objects (see `CLCallInterceptor`).
    let interceptor: (any CLCallInterceptor)?

    /// Creates a context for `devices` (all from the same platform). Throws `CLError` (`clCreateContext`).
    public convenience init(devices: [CLDevice]) throws(CLError) {
        try self.init(devices: devices, interceptor: nil)
    }

    /// Creates a context whose calls (and those of every queue, buffer, program and kernel made from it) go
    /// through `interceptor` first: fault injection for tests.
    @_spi(Testing)
    public init(devices: [CLDevice], interceptor: (any CLCallInterceptor)?) throws(CLError) {
        self.interceptor = interceptor
        if let interceptor, case .fail(let status) = interceptor.intercept(CLCall("clCreateContext")) {
            throw CLError(status, call: "clCreateContext")
        }
        guard let first = devices.first else { throw CLError(.invalidValue, call: "clCreateContext") }
        var properties: [cl_context_properties] = [
            cl_context_properties(CL_CONTEXT_PLATFORM), cl_context_properties(Int(bitPattern: UnsafeRawPointer(first.platform.id))), 0,
        ]
        var ids: [cl_device_id?] = devices.map { $0.id }
        var status: cl_int = 0
        let handle = clCreateContext(&properties, cl_uint(ids.count), &ids, nil, nil, &status)
        guard let handle, status == CL_SUCCESS else { throw CLError(status, call: "clCreateContext") }
        self.handle = handle
        self.devices = devices
    }

    /// Creates a context for one device.
    public convenience init(device: CLDevice) throws(CLError) {
        try self.init(devices: [device])
    }

    deinit { logReleaseFailure(clReleaseContext(handle), "clReleaseContext", "CLContext") }
}

/// Flags for `CLBuffer` (`cl_mem_flags`).
public struct CLMemoryFlags: OptionSet, Sendable, Hashable {
    /// The raw bits.
    public let rawValue: cl_mem_flags
    /// Wraps raw bits.
    public init(rawValue: cl_mem_flags) { self.rawValue = rawValue }
    /// Kernels read and write the buffer.
    public static let readWrite = CLMemoryFlags(rawValue: cl_mem_flags(CL_MEM_READ_WRITE))
    /// Kernels only read the buffer.
    public static let readOnly = CLMemoryFlags(rawValue: cl_mem_flags(CL_MEM_READ_ONLY))
    /// Kernels only write the buffer.
    public static let writeOnly = CLMemoryFlags(rawValue: cl_mem_flags(CL_MEM_WRITE_ONLY))
    /// Allocate from host-accessible (often pinned) memory.
    public static let allocHostPointer = CLMemoryFlags(rawValue: cl_mem_flags(CL_MEM_ALLOC_HOST_PTR))
}

/// How the host accesses a mapped buffer (`cl_map_flags`).
public enum CLMapAccess: Sendable, Hashable {
    /// The host reads what the device wrote (`CL_MAP_READ`).
    case read
    /// The host reads the region and may overwrite it (`CL_MAP_READ | CL_MAP_WRITE`).
    case readWrite
    /// The host overwrites the whole mapped region; its old contents need not be copied (`CL_MAP_WRITE_INVALIDATE_REGION`).
    case writeInvalidate

    var flags: cl_map_flags {
        switch self {
        case .read: return cl_map_flags(CL_MAP_READ)
        case .readWrite: return cl_map_flags(CL_MAP_READ) | cl_map_flags(CL_MAP_WRITE)
        case .writeInvalidate: return cl_map_flags(CL_MAP_WRITE_INVALIDATE_REGION)
        }
    }
}

/// A device buffer. Releases the memory object in `deinit`; keeps its context alive.
public final class CLBuffer: @unchecked Sendable {
    /// The raw `cl_mem` (owned).
    public let handle: cl_mem
    /// The owning context.
    public let context: CLContext
    /// Size in bytes.
    public let byteCount: Int

    /// Allocates `byteCount` (> 0) bytes. Throws `CLError` (`clCreateBuffer`), e.g.
    /// `.invalidBufferSize` above the device's max allocation or `.memObjectAllocationFailure`.
    public init(context: CLContext, byteCount: Int, flags: CLMemoryFlags = .readWrite) throws(CLError) {
        guard byteCount > 0 else { throw CLError(.invalidBufferSize, call: "clCreateBuffer") }
        _ = try context.admits("clCreateBuffer", byteCount: byteCount)
        var status: cl_int = 0
        let handle = clCreateBuffer(context.handle, flags.rawValue, byteCount, nil, &status)
        guard let handle, status == CL_SUCCESS else { throw CLError(status, call: "clCreateBuffer") }
        self.handle = handle
        self.context = context
        self.byteCount = byteCount
    }

    deinit { logReleaseFailure(clReleaseMemObject(handle), "clReleaseMemObject", "CLBuffer") }
}

/// A command's completion event. Releases the event in `deinit`.
public final class CLEvent: @unchecked Sendable {
    /// The raw `cl_event` (owned).
    public let handle: cl_event

    /// Takes ownership of a raw event (one reference).
    public init(owning handle: cl_event) { self.handle = handle }

    /// Blocks until the command finished. Throws `CLError` (`clWaitForEvents`) if it failed.
    public func wait() throws(CLError) {
        var list: cl_event? = handle
        try CLError.check(clWaitForEvents(1, &list), "clWaitForEvents")
    }

    /// Blocks until every command in `events` finished (one `clWaitForEvents`). Throws `CLError` if one
    /// failed; then some may still run: wait on each (`wait()`) before releasing memory they use.
    public static func waitAll(_ events: [CLEvent]) throws(CLError) {
        if events.isEmpty { return }
        let list: [cl_event?] = events.map { $0.handle }
        let status = list.withUnsafeBufferPointer { clWaitForEvents(cl_uint($0.count), $0.baseAddress) }
        try CLError.check(status, "clWaitForEvents")
    }

    /// Device time in nanoseconds between the command's start and end. Needs a queue created with
    /// `profiling: true` and a finished command; throws `CLError` (`clGetEventProfilingInfo`) otherwise.
    public func durationNanoseconds() throws(CLError) -> UInt64 {
        var start: cl_ulong = 0
        var end: cl_ulong = 0
        try CLError.check(clGetEventProfilingInfo(handle, cl_profiling_info(CL_PROFILING_COMMAND_START),
                                                  MemoryLayout<cl_ulong>.size, &start, nil), "clGetEventProfilingInfo")
        try CLError.check(clGetEventProfilingInfo(handle, cl_profiling_info(CL_PROFILING_COMMAND_END),
                                                  MemoryLayout<cl_ulong>.size, &end, nil), "clGetEventProfilingInfo")
        return end >= start ? end - start : 0
    }

    deinit { logReleaseFailure(clReleaseEvent(handle), "clReleaseEvent", "CLEvent") }
}

/// A program built from OpenCL C source. Releases the program in `deinit`; keeps its context alive.
public final class CLProgram: @unchecked Sendable {
    /// The raw `cl_program` (owned).
    public let handle: cl_program
    /// The owning context.
    public let context: CLContext

    /// Creates a program from `source` and builds it for the context's devices with `options`
    /// (e.g. `"-cl-std=CL1.2"`). A compile error throws a `CLError` with status `.buildProgramFailure` whose `buildLog`
    /// holds the compiler output; other failures throw `CLError` naming the failing call.
    public init(context: CLContext, source: String, options: String = "") throws(CLError) {
        _ = try context.admits("clCreateProgramWithSource")
        var status: cl_int = 0
        let created: cl_program? = source.withCString { pointer in
            var strings: [UnsafePointer<CChar>?] = [pointer]
            return clCreateProgramWithSource(context.handle, 1, &strings, nil, &status)
        }
        guard let created, status == CL_SUCCESS else { throw CLError(status, call: "clCreateProgramWithSource") }
        self.handle = created
        self.context = context
        var ids: [cl_device_id?] = context.devices.map { $0.id }
        _ = try context.admits("clBuildProgram")
        let built = clBuildProgram(created, cl_uint(ids.count), &ids, options, nil, nil)
        if built != CL_SUCCESS {
            let log = context.devices.map { buildLog(for: $0) }.filter { !$0.isEmpty }.joined(separator: "\n")
            throw CLError(built, call: "clBuildProgram", buildLog: log)
        }
    }

    /// The compiler output for `device` (`CL_PROGRAM_BUILD_LOG`), or `""` when unavailable.
    public func buildLog(for device: CLDevice) -> String {
        let param = cl_program_build_info(CL_PROGRAM_BUILD_LOG)
        let bytes = try? infoBytes("clGetProgramBuildInfo") { clGetProgramBuildInfo(handle, device.id, param, $0, $1, $2) }
        return bytes.map(decodeCString) ?? ""
    }

    deinit { logReleaseFailure(clReleaseProgram(handle), "clReleaseProgram", "CLProgram") }
}

/// A kernel of a built program. Releases the kernel in `deinit`; keeps its program alive.
///
/// Not `Sendable`: `clSetKernelArg` is not thread-safe for one kernel object (an OpenCL rule), so a kernel
/// stays with one owner, which sets arguments and enqueues from one thread at a time (or makes one kernel
/// per thread).
public final class CLKernel {
    /// The raw `cl_kernel` (owned).
    public let handle: cl_kernel
    /// The owning program.
    public let program: CLProgram
    /// The kernel function's name.
    public let name: String

    /// Looks up kernel function `name`. Throws `CLError` (`clCreateKernel`), e.g. `.invalidKernelName`.
    public init(program: CLProgram, name: String) throws(CLError) {
        _ = try program.context.admits("clCreateKernel")
        var status: cl_int = 0
        let handle = clCreateKernel(program.handle, name, &status)
        guard let handle, status == CL_SUCCESS else { throw CLError(status, call: "clCreateKernel(\(name))") }
        self.handle = handle
        self.program = program
        self.name = name
        var arguments: cl_uint = 0
        let queried = clGetKernelInfo(handle, cl_kernel_info(CL_KERNEL_NUM_ARGS), MemoryLayout<cl_uint>.size, &arguments, nil)
        try CLError.check(queried, "clGetKernelInfo(\(name), CL_KERNEL_NUM_ARGS)")
        argumentCount = Int(arguments)
    }

    /// The kernel function's number of parameters (`CL_KERNEL_NUM_ARGS`).
    public let argumentCount: Int

    /// Sets every argument from one description, in parameter order. Throws `CLError` with status
    /// `.invalidKernelArgs` (call `bind(name)`) when `arguments` does not have exactly `argumentCount`
    /// entries (the host's description and the .cl source disagree), else what `clSetKernelArg` returns.
    public func bind(_ arguments: [CLKernelArgument]) throws(CLError) {
        guard arguments.count == argumentCount else {
            throw CLError(.invalidKernelArgs, call: "bind(\(name)): \(arguments.count) arguments for \(argumentCount) parameters")
        }
        for (index, argument) in arguments.enumerated() {
            switch argument {
            case .buffer(let buffer): try setArgument(index, buffer)
            case .local(let byteCount): try setLocalArgument(index, byteCount: byteCount)
            case .uint32(let value): try setArgument(index, value)
            case .uint64(let value): try setArgument(index, value)
            }
        }
    }

    /// Sets argument `index` to a plain value (`cl_uint`, `cl_ulong`, …). Throws `CLError` (`clSetKernelArg`).
    public func setArgument<T: BitwiseCopyable>(_ index: Int, _ value: T) throws(CLError) {
        guard try program.context.admits("clSetKernelArg") else { return }
        var copy = value
        let status = withUnsafeBytes(of: &copy) { clSetKernelArg(handle, cl_uint(index), $0.count, $0.baseAddress) }
        try CLError.check(status, "clSetKernelArg(\(name), \(index))")
    }

    /// Sets argument `index` to a buffer.
    public func setArgument(_ index: Int, _ buffer: CLBuffer) throws(CLError) {
        guard try program.context.admits("clSetKernelArg") else { return }
        var mem: cl_mem? = buffer.handle
        let status = clSetKernelArg(handle, cl_uint(index), MemoryLayout<cl_mem>.size, &mem)
        try CLError.check(status, "clSetKernelArg(\(name), \(index))")
    }

    /// Sets argument `index` to `byteCount` bytes of `__local` memory.
    public func setLocalArgument(_ index: Int, byteCount: Int) throws(CLError) {
        guard try program.context.admits("clSetKernelArg") else { return }
        try CLError.check(clSetKernelArg(handle, cl_uint(index), byteCount, nil), "clSetKernelArg(\(name), \(index))")
    }

    /// The largest work-group size this kernel can run with on `device` (`CL_KERNEL_WORK_GROUP_SIZE`).
    public func maxWorkGroupSize(on device: CLDevice) throws(CLError) -> Int {
        var size = 0
        try CLError.check(clGetKernelWorkGroupInfo(handle, device.id, cl_kernel_work_group_info(CL_KERNEL_WORK_GROUP_SIZE),
                                                   MemoryLayout<Int>.size, &size, nil), "clGetKernelWorkGroupInfo")
        return size
    }

    deinit { logReleaseFailure(clReleaseKernel(handle), "clReleaseKernel", "CLKernel") }
}

/// An in-order command queue on one device. Releases the queue in `deinit`; keeps its context alive.
public final class CLCommandQueue: @unchecked Sendable {
    /// The raw `cl_command_queue` (owned).
    public let handle: cl_command_queue
    /// The owning context.
    public let context: CLContext
    /// The device commands run on.
    public let device: CLDevice

    /// Creates an in-order queue; `profiling` enables `CLEvent.durationNanoseconds()`.
    /// Throws `CLError` (`clCreateCommandQueue`).
    public init(context: CLContext, device: CLDevice, profiling: Bool = false) throws(CLError) {
        _ = try context.admits("clCreateCommandQueue")
        var status: cl_int = 0
        let properties = profiling ? cl_command_queue_properties(CL_QUEUE_PROFILING_ENABLE) : 0
        let handle = clCreateCommandQueue(context.handle, device.id, properties, &status)
        guard let handle, status == CL_SUCCESS else { throw CLError(status, call: "clCreateCommandQueue") }
        self.handle = handle
        self.context = context
        self.device = device
    }

    /// Copies `byteCount` bytes from host memory `source` into `buffer` at `offset` and waits until done.
    /// Throws `CLError` (`clEnqueueWriteBuffer`).
    public func write(_ buffer: CLBuffer, offset: Int = 0, from source: UnsafeRawPointer, byteCount: Int) throws(CLError) {
        try unsafeEnqueueWrite(buffer, offset: offset, from: source, byteCount: byteCount).wait()
    }

    /// Copies `byteCount` bytes of `buffer` at `offset` into host memory `destination` and waits until
    /// done. Throws `CLError` (`clEnqueueReadBuffer`).
    public func read(_ buffer: CLBuffer, offset: Int = 0, into destination: UnsafeMutableRawPointer, byteCount: Int) throws(CLError) {
        try unsafeEnqueueRead(buffer, offset: offset, into: destination, byteCount: byteCount).wait()
    }

    /// Enqueues a non-blocking copy of `byteCount` bytes from host memory `source` into `buffer` at `offset`,
    /// after `events`, and returns at once.
    ///
    /// Unsafe: `source` must stay valid and unchanged until the returned event completes. Wait on that event
    /// (`wait()`, `CLEvent.waitAll`), also on every error path: `finish()` is not enough on every driver (Mesa
    /// rusticl's clFinish does not wait for such transfers). Throws `CLError` (`clEnqueueWriteBuffer`).
    public func unsafeEnqueueWrite(_ buffer: CLBuffer, offset: Int = 0, from source: UnsafeRawPointer, byteCount: Int,
                                   waitingFor events: [CLEvent] = []) throws(CLError) -> CLEvent {
        guard try context.admits("clEnqueueWriteBuffer", byteCount: byteCount) else { return try context.completedEvent() }
        var event: cl_event?
        let status = withWaitList(events) { count, list in
            clEnqueueWriteBuffer(handle, buffer.handle, cl_bool(CL_FALSE), offset, byteCount, source, count, list, &event)
        }
        return try owned(event, status, "clEnqueueWriteBuffer")
    }

    /// Enqueues a non-blocking copy of `byteCount` bytes of `buffer` at `offset` into host memory
    /// `destination`, after `events`, and returns at once.
    ///
    /// Unsafe: `destination` must stay valid, and must not be read, until the returned event completes; wait
    /// on the event itself on every path (see `unsafeEnqueueWrite`). Throws `CLError` (`clEnqueueReadBuffer`).
    public func unsafeEnqueueRead(_ buffer: CLBuffer, offset: Int = 0, into destination: UnsafeMutableRawPointer,
                                  byteCount: Int, waitingFor events: [CLEvent] = []) throws(CLError) -> CLEvent {
        guard try context.admits("clEnqueueReadBuffer", byteCount: byteCount) else { return try context.completedEvent() }
        var event: cl_event?
        let status = withWaitList(events) { count, list in
            clEnqueueReadBuffer(handle, buffer.handle, cl_bool(CL_FALSE), offset, byteCount, destination, count, list, &event)
        }
        return try owned(event, status, "clEnqueueReadBuffer")
    }

    /// Enqueues a non-blocking map of `byteCount` bytes of `buffer` at `offset` for host access, after
    /// `events`, and returns the host pointer with the map's event.
    ///
    /// Unsafe: the pointer is valid only once the event completed (wait on it before touching the memory) and
    /// until `enqueueUnmap`; no command may use the buffer while it is mapped (unmap first, and make the
    /// command wait on the unmap's event). A buffer made with `.allocHostPointer` maps to pinned host memory
    /// on most GPUs. Throws `CLError` (`clEnqueueMapBuffer`); a call an interceptor skips fails with
    /// `.mapFailure` (a map cannot report success without a pointer).
    public func unsafeEnqueueMap(_ buffer: CLBuffer, access: CLMapAccess, offset: Int = 0, byteCount: Int,
                                 waitingFor events: [CLEvent] = []) throws(CLError) -> (pointer: UnsafeMutableRawPointer, event: CLEvent) {
        guard try context.admits("clEnqueueMapBuffer", byteCount: byteCount) else { throw CLError(.mapFailure, call: "clEnqueueMapBuffer") }
        var event: cl_event?
        var status: cl_int = 0
        let pointer = withWaitList(events) { count, list -> UnsafeMutableRawPointer? in
            clEnqueueMapBuffer(handle, buffer.handle, cl_bool(CL_FALSE), access.flags, offset, byteCount, count, list, &event, &status)
        }
        let owned = try owned(event, status, "clEnqueueMapBuffer")
        guard let pointer else { throw CLError(.mapFailure, call: "clEnqueueMapBuffer") }
        return (pointer, owned)
    }

    /// Enqueues the unmap of `pointer` (from `unsafeEnqueueMap` on `buffer`) after `events`. Commands that use
    /// the buffer next must wait on the returned event. Throws `CLError` (`clEnqueueUnmapMemObject`).
    public func enqueueUnmap(_ buffer: CLBuffer, pointer: UnsafeMutableRawPointer,
                             waitingFor events: [CLEvent] = []) throws(CLError) -> CLEvent {
        guard try context.admits("clEnqueueUnmapMemObject") else { return try context.completedEvent() }
        var event: cl_event?
        let status = withWaitList(events) { count, list in
            clEnqueueUnmapMemObject(handle, buffer.handle, pointer, count, list, &event)
        }
        return try owned(event, status, "clEnqueueUnmapMemObject")
    }

    /// Enqueues a device-side copy of `byteCount` bytes from `source` at `sourceOffset` to `destination` at
    /// `destinationOffset`, after `events`. Throws `CLError` (`clEnqueueCopyBuffer`).
    public func enqueueCopy(from source: CLBuffer, sourceOffset: Int = 0, to destination: CLBuffer, destinationOffset: Int = 0,
                            byteCount: Int, waitingFor events: [CLEvent] = []) throws(CLError) -> CLEvent {
        guard try context.admits("clEnqueueCopyBuffer", byteCount: byteCount) else { return try context.completedEvent() }
        var event: cl_event?
        let status = withWaitList(events) { count, list in
            clEnqueueCopyBuffer(handle, source.handle, destination.handle, sourceOffset, destinationOffset, byteCount,
                                count, list, &event)
        }
        return try owned(event, status, "clEnqueueCopyBuffer")
    }

    /// Enqueues a 1-D kernel launch of `globalSize` work-items in groups of `localSize` (nil: the driver
    /// chooses). `globalSize` must be a multiple of `localSize`. Throws `CLError` (`clEnqueueNDRangeKernel`).
    @discardableResult
    public func run(_ kernel: CLKernel, globalSize: Int, localSize: Int?,
                    waitingFor events: [CLEvent] = []) throws(CLError) -> CLEvent {
        guard try context.admits("clEnqueueNDRangeKernel") else { return try context.completedEvent() }
        var event: cl_event?
        var global = globalSize
        var local = localSize ?? 0
        let status = withWaitList(events) { count, list in
            if localSize == nil {
                return clEnqueueNDRangeKernel(handle, kernel.handle, 1, nil, &global, nil, count, list, &event)
            }
            return clEnqueueNDRangeKernel(handle, kernel.handle, 1, nil, &global, &local, count, list, &event)
        }
        return try owned(event, status, "clEnqueueNDRangeKernel(\(kernel.name))")
    }

    /// Submits queued commands to the device without waiting. Throws `CLError` (`clFlush`).
    public func flush() throws(CLError) {
        guard try context.admits("clFlush") else { return }
        try CLError.check(clFlush(handle), "clFlush")
    }

    /// Blocks until every queued command finished. Throws `CLError` (`clFinish`).
    public func finish() throws(CLError) {
        guard try context.admits("clFinish") else { return }
        try CLError.check(clFinish(handle), "clFinish")
    }

    private func withWaitList<R>(_ events: [CLEvent], _ body: (cl_uint, UnsafePointer<cl_event?>?) -> R) -> R {
        if events.isEmpty { return body(0, nil) }
        let list: [cl_event?] = events.map { $0.handle }
        return list.withUnsafeBufferPointer { body(cl_uint($0.count), $0.baseAddress) }
    }

    private func owned(_ event: cl_event?, _ status: cl_int, _ call: String) throws(CLError) -> CLEvent {
        guard status == CL_SUCCESS, let event else { throw CLError(status == CL_SUCCESS ? CLStatus.invalidValue.rawValue : status, call: call) }
        return CLEvent(owning: event)
    }

    deinit { logReleaseFailure(clReleaseCommandQueue(handle), "clReleaseCommandQueue", "CLCommandQueue") }
}
