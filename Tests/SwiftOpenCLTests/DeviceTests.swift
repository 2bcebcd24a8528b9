import Testing
import SwiftOpenCL

private let firstDevice: CLDevice? = {
    let device = (try? CLPlatform.all())?.lazy.compactMap { try? $0.devices().first }.first
    if device == nil { print("SwiftOpenCL device tests skipped: no OpenCL platform/device (install pocl-opencl-icd)") }
    return device
}()

@Suite("SwiftOpenCL on a real device", .enabled(if: firstDevice != nil))
struct DeviceTests {
    @Test("platform and device info queries")
    func infoQueries() throws {
        let device = try #require(firstDevice)
        #expect(!device.platform.name.isEmpty)
        #expect(device.platform.version.hasPrefix("OpenCL"))
        let info = try device.info()
        #expect(!info.name.isEmpty)
        #expect(info.name == device.name)
        #expect(info.computeUnits > 0)
        #expect(info.globalMemoryBytes > 0)
        #expect(info.maxAllocationBytes > 0 && info.maxAllocationBytes <= info.globalMemoryBytes)
        #expect(info.maxWorkGroupSize > 0)
        #expect(info.openCLCVersion.hasPrefix("OpenCL C"))
        if info.extensions.contains("cl_khr_fp64") { #expect(info.supportsFP64) }
    }

    @Test("buffer round trip through the device (blocking and non-blocking)")
    func bufferRoundTrip() throws {
        let device = try #require(firstDevice)
        let context = try CLContext(device: device)
        let queue = try CLCommandQueue(context: context, device: device)
        let source: [UInt8] = (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 37) }
        let buffer = try CLBuffer(context: context, byteCount: source.count)
        #expect(buffer.byteCount == 1000)
        try source.withUnsafeBytes { raw in
            guard let base = raw.baseAddress else { return }
            try queue.write(buffer, from: base, byteCount: raw.count)
        }
        var back = [UInt8](repeating: 0, count: 1000)
        try back.withUnsafeMutableBytes { raw in
            guard let base = raw.baseAddress else { return }
            let event = try queue.unsafeEnqueueRead(buffer, into: base, byteCount: raw.count)
            try event.wait()
        }
        #expect(back == source)
        var partial = [UInt8](repeating: 0, count: 10)
        try partial.withUnsafeMutableBytes { raw in
            guard let base = raw.baseAddress else { return }
            try queue.read(buffer, offset: 500, into: base, byteCount: 10)
        }
        #expect(partial == Array(source[500..<510]))
    }

    @Test("a kernel runs and writes its result")
    func kernelRuns() throws {
        let device = try #require(firstDevice)
        let context = try CLContext(device: device)
        let queue = try CLCommandQueue(context: context, device: device, profiling: true)
        let program = try CLProgram(context: context, source: """
            __kernel void fill(__global uint* out, const uint value) { out[get_global_id(0)] = value + get_global_id(0); }
            """)
        let kernel = try CLKernel(program: program, name: "fill")
        #expect(try kernel.maxWorkGroupSize(on: device) > 0)
        let buffer = try CLBuffer(context: context, byteCount: 64 * 4)
        #expect(kernel.argumentCount == 2)
        #expect { try kernel.bind([.buffer(buffer)]) } throws: {
            ($0 as? CLError).map { $0.status == .invalidKernelArgs && $0.call.contains("1 arguments for 2 parameters") } ?? false
        }
        try kernel.bind([.buffer(buffer), .uint32(100)])
        let event = try queue.run(kernel, globalSize: 64, localSize: nil)
        try queue.finish()
        _ = try event.durationNanoseconds()
        var out = [UInt32](repeating: 0, count: 64)
        try out.withUnsafeMutableBytes { raw in
            guard let base = raw.baseAddress else { return }
            try queue.read(buffer, into: base, byteCount: raw.count)
        }
        #expect(out == (0..<64).map { UInt32(100 + $0) })
    }

    @Test("a broken program's error carries the build log; a wrong kernel name is named")
    func buildFailure() throws {
        let device = try #require(firstDevice)
        let context = try CLContext(device: device)
        #expect {
            _ = try CLProgram(context: context, source: "__kernel void k(__global int* x) { x[0] = undeclared_name; }")
        } throws: { error in
            guard let error = error as? CLError else { return false }
            return error.status == .buildProgramFailure && error.call == "clBuildProgram"
                && (error.buildLog ?? "").contains("undeclared_name") && error.description.contains("build log")
        }
        let program = try CLProgram(context: context, source: "__kernel void k(__global int* x) { x[0] = 1; }")
        #expect { _ = try CLKernel(program: program, name: "nope") } throws: {
            ($0 as? CLError).map { $0.status == .invalidKernelName && $0.call == "clCreateKernel(nope)" } ?? false
        }
        #expect { _ = try CLBuffer(context: context, byteCount: 0) } throws: { ($0 as? CLError)?.status == .invalidBufferSize }
    }
}
