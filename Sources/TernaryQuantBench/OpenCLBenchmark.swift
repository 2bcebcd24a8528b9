import TernaryQuantOpenCL
import TernaryQuantFormats
import TernaryQuantCore
import Foundation
import SwiftOpenCL

/// Reference bandwidths measured on one device, for roofline ratios in `ternq bench`.
public struct OpenCLBandwidth: Sendable, Hashable, Codable {
    /// Device copy-kernel bandwidth in GB/s (10^9 bytes/s), counting bytes read plus bytes written.
    public var deviceCopyGBps: Double
    /// Device read bandwidth in GB/s: the best of the `read_words` (grid-stride, the quantization kernels'
    /// pattern) and `read_blocks` (contiguous per work-item) probes over several launch sizes, reading the
    /// same number of bytes as the input. The upper bound for kernels that read their input.
    public var deviceReadGBps: Double
    /// Host→device transfer bandwidth in GB/s: the better of a blocking `clEnqueueWriteBuffer` from pinned host
    /// memory (a mapped `CL_MEM_ALLOC_HOST_PTR` buffer) and from pageable memory.
    public var hostToDeviceGBps: Double
    /// Host→device bandwidth from pageable host memory alone, in GB/s.
    public var hostToDevicePageableGBps: Double
}

extension OpenCLBackend {
    /// Measures the device's copy-kernel bandwidth and host→device bandwidth on a buffer of `bytes` bytes
    /// (rounded up to 16; median of `repetitions` runs after one warm-up).
    /// Throws `OpenCLBackendError.deviceFailure` (e.g. out of memory for a too-large `bytes`).
    public func measureBandwidth(bytes: Int, repetitions: Int = 5) throws -> OpenCLBandwidth {
        lock.lock()
        defer { lock.unlock() }
        let words = Swift.max(1, (bytes + 15) / 16)
        let byteCount = words * 16
        do {
            let source = try CLBuffer(context: context, byteCount: byteCount)
            let destination = try CLBuffer(context: context, byteCount: byteCount)
            let host = UnsafeMutableRawPointer.allocate(byteCount: byteCount, alignment: 64)
            defer { host.deallocate() }
            host.initializeMemory(as: UInt8.self, repeating: 0x5A, count: byteCount)
            let runs = Swift.max(1, repetitions)
            // Real bytes first: a never-written buffer can be backed by the zero page on CPU devices, which
            // reads from cache at impossible speeds.
            try transfer.write(source, from: host, byteCount: byteCount)
            try transfer.write(destination, from: host, byteCount: byteCount)
            let copyKernel = try OpenCLBandwidth.copyKernel(context: context)
            let copySeconds = try Self.median(runs: runs) { () throws(CLError) in
                try copyKernel.bind([.buffer(source), .buffer(destination), .uint32(UInt32(clamping: words))])
                let local = workGroupSize
                let groups = Swift.max(1, Swift.min(maxGroups * 8, (words + local - 1) / local))
                try compute.run(copyKernel, globalSize: groups * local, localSize: local)
                try compute.finish()
            }
            let sink = try CLBuffer(context: context, byteCount: 64)
            var readSeconds = Double.infinity
            let (readWords, readBlocks) = try OpenCLBandwidth.readKernels(context: context)
            let local = workGroupSize
            for groups in Set([maxGroups, maxGroups * 4, maxGroups * 16, Swift.max(1, info.computeUnits)]) {
                let items = groups * local
                readSeconds = Swift.min(readSeconds, try Self.median(runs: runs) { () throws(CLError) in
                    try readWords.bind([.buffer(source), .uint32(UInt32(clamping: words)), .buffer(sink)])
                    try compute.run(readWords, globalSize: items, localSize: local)
                    try compute.finish()
                })
                readSeconds = Swift.min(readSeconds, try Self.median(runs: runs) { () throws(CLError) in
                    try readBlocks.bind([.buffer(source), .uint32(UInt32(clamping: byteCount / 64)), .buffer(sink)])
                    try compute.run(readBlocks, globalSize: items, localSize: local)
                    try compute.finish()
                })
            }
            let pageableSeconds = try Self.median(runs: runs) { () throws(CLError) in
                try transfer.write(source, from: host, byteCount: byteCount)
            }
            // Pinned: write from a mapped CL_MEM_ALLOC_HOST_PTR buffer (the driver can DMA straight from it).
            let pinned = try CLBuffer(context: context, byteCount: byteCount, flags: [.readWrite, .allocHostPointer])
            let (pinnedPointer, mapped) = try transfer.unsafeEnqueueMap(pinned, access: .writeInvalidate, byteCount: byteCount)
            try mapped.wait()
            pinnedPointer.initializeMemory(as: UInt8.self, repeating: 0x5A, count: byteCount)
            let pinnedSeconds = try Self.median(runs: runs) { () throws(CLError) in
                try transfer.write(source, from: UnsafeRawPointer(pinnedPointer), byteCount: byteCount)
            }
            try transfer.enqueueUnmap(pinned, pointer: pinnedPointer).wait()
            return OpenCLBandwidth(deviceCopyGBps: 2 * Double(byteCount) / copySeconds / 1e9,
                                   deviceReadGBps: Double(byteCount / 64 * 64) / readSeconds / 1e9,
                                   hostToDeviceGBps: Double(byteCount) / Swift.min(pinnedSeconds, pageableSeconds) / 1e9,
                                   hostToDevicePageableGBps: Double(byteCount) / pageableSeconds / 1e9)
        } catch {
            throw OpenCLBackendError.deviceFailure(device: info.name, error: error)
        }
    }

    /// Median seconds of the two quantization kernels alone (α partials, or the exact bins on a device without
    /// fp64, + ternarize) on `input` already
    /// resident on the device: the kernel-only time, excluding host↔device transfers and host work.
    /// `input` must fit one chunk (`chunkElements`). Throws `OpenCLBackendError` on device failure, or
    /// `QuantizationError` for a non-finite input.
    public func measureKernelSeconds(_ input: TensorInput, layout: TritLayout = .packed2Bit, repetitions: Int = 5) throws -> Double {
        guard input.elementCount <= chunkElements else {
            throw QuantizationError.byteCountMismatch(name: input.name, expected: chunkElements, actual: input.elementCount)
        }
        var output = [UInt8](repeating: 0, count: layout.byteCount(forTrits: input.elementCount))
        let summary = try output.withUnsafeMutableBytes { try quantize(input, layout: layout, into: $0) }
        let threshold = TritThreshold(validScale: summary.scale).magnitudeBits
        lock.lock()
        defer { lock.unlock() }
        do {
            try ensureKernelSlot(elements: input.elementCount)
            guard let slot = slotForBenchmark, let base = input.bytes.baseAddress else { return 0 }
            try transfer.write(slot.input, from: base, byteCount: input.bytes.count)
            let local = workGroupSize
            let absmean = absmeanKernels[input.elementType]
            let exact = exactKernels[input.elementType]  // the α pass of devices without fp64
            let ternarize = (layout == .packed2Bit ? packedKernels : int8Kernels)[input.elementType]
            return try Self.median(runs: Swift.max(1, repetitions)) { () throws(CLError) in
                if let absmean {
                    try absmean.bind(slot.absmeanArguments(count: input.elementCount, base: 0, local: local, tag: 0))
                    try compute.run(absmean, globalSize: groupCount(units: (input.elementCount + 3) / 4) * local, localSize: local)
                } else if let exact {
                    try exact.bind(slot.exactArguments(count: input.elementCount, base: 0, local: local, tag: 0))
                    try compute.run(exact, globalSize: groupCount(units: (input.elementCount + 3) / 4) * local, localSize: local)
                }
                if let ternarize {
                    try ternarize.bind(slot.ternarizeArguments(count: input.elementCount, threshold: threshold, local: local, tag: 0))
                    try compute.run(ternarize, globalSize: groupCount(units: (input.elementCount + 3) / 4) * local,
                                    localSize: local)
                }
                try compute.finish()
            }
        } catch {
            throw OpenCLBackendError.deviceFailure(device: info.name, error: error)
        }
    }

    static func median(runs: Int, _ body: () throws(CLError) -> Void) throws(CLError) -> Double {
        Swift.max(try MemoryBandwidth.medianSeconds(runs: runs, body), 1e-9)
    }
}

extension OpenCLBandwidth {
    /// The bench-only `copy_words` kernel (Kernels/bench_copy.cl), built for `context`'s devices; it is not
    /// part of the production program.
    static func copyKernel(context: CLContext) throws(CLError) -> CLKernel {
        try CLKernel(program: try program(context: context), name: "copy_words")
    }

    /// The bench-only read probes `read_words` and `read_blocks` (Kernels/bench_copy.cl).
    static func readKernels(context: CLContext) throws(CLError) -> (CLKernel, CLKernel) {
        let program = try program(context: context)
        return (try CLKernel(program: program, name: "read_words"), try CLKernel(program: program, name: "read_blocks"))
    }

    static func program(context: CLContext) throws(CLError) -> CLProgram {
        let source = String(decoding: PackageResources.bench_copy_cl, as: UTF8.self)
        return try CLProgram(context: context, source: source, options: "-cl-std=CL1.2")
    }
}
