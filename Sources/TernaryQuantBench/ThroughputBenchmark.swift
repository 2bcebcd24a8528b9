import TernaryQuantOpenCL
import TernaryQuantFormats
import TernaryQuantCore
import Foundation

/// One backend's measured quantization throughput next to the host memory roofline of the same run.
public struct ThroughputResult: Sendable, Codable, Hashable {
    /// Backend name ("cpu", "opencl").
    public var backend: String
    /// Device description.
    public var device: String
    /// Elements per tensor.
    public var elements: Int
    /// Input element type ("F32", "F16", "BF16").
    public var dtype: String
    /// Output layout ("packed2Bit" or "int8").
    public var layout: String
    /// Median seconds of one quantize call (≥ 5 runs).
    public var seconds: Double
    /// Input bytes / seconds, in 10^9 bytes per second.
    public var gigabytesPerSecond: Double
    /// Input bytes / roofline seconds (see `Roofline`), in 10^9 bytes per second.
    public var rooflineGigabytesPerSecond: Double
    /// `gigabytesPerSecond / rooflineGigabytesPerSecond`.
    public var rooflineRatio: Double
    /// `gigabytesPerSecond` over the one-read bound (`Roofline.readOnceSeconds`): what a quantizer that
    /// reads its input only once, as the CPU backend's one-pass path does, is measured against.
    public var readOnceRatio: Double
    /// Measured host read bandwidth, 10^9 bytes/s.
    public var hostReadGigabytesPerSecond: Double
    /// Measured host copy bandwidth (bytes copied), 10^9 bytes/s.
    public var hostCopyGigabytesPerSecond: Double
    /// Extra device figures (kernel-only and end-to-end ratios) when the backend has a device.
    public var device_metrics: [String: Double]?
    /// Share (0…1) of the machine's processor time the hypervisor took during this measurement (steal,
    /// `ProcessorTimeSample`); `nil` where the system does not report it. Above
    /// `ProcessorTimeSample.noticeableStealFraction` the figures understate the hardware.
    public var cpuStealFraction: Double?

    enum CodingKeys: String, CodingKey {
        case backend, device, elements, dtype, layout, seconds
        case gigabytesPerSecond = "gigabytes_per_second"
        case rooflineGigabytesPerSecond = "roofline_gigabytes_per_second"
        case rooflineRatio = "roofline_ratio"
        case readOnceRatio = "read_once_ratio"
        case hostReadGigabytesPerSecond = "host_read_gigabytes_per_second"
        case hostCopyGigabytesPerSecond = "host_copy_gigabytes_per_second"
        case device_metrics = "device_metrics"
        case cpuStealFraction = "cpu_steal_fraction"
    }
}

/// The memory-traffic lower bound for quantizing an in-memory tensor on the host.
///
/// Quantizing needs one read pass over the input for α and one read + write pass for the trits, so
/// `seconds = inputBytes / read + (inputBytes + outputBytes) / (2 × copy)`, where `read` is the measured read
/// bandwidth and `copy` the measured memcpy rate in bytes copied per second (a copy moves each byte twice).
/// Both are the best runs of their probes (`MemoryBandwidth`), so the roofline is an upper bound on speed.
public struct Roofline: Sendable, Hashable {
    /// Read bandwidth, bytes/s.
    public var readBytesPerSecond: Double
    /// Copy bandwidth, bytes copied per second.
    public var copyBytesPerSecond: Double
    // Made only by measurement (`ThroughputBenchmark.hostRoofline`), through the memberwise initializer.

    /// Lower-bound seconds for a tensor of `inputBytes` producing `outputBytes`.
    public func seconds(inputBytes: Int, outputBytes: Int) -> Double {
        Double(inputBytes) / readBytesPerSecond + Double(inputBytes + outputBytes) / (2 * copyBytesPerSecond)
    }

    /// Lower-bound seconds with a single read of the input: `inputBytes / read + outputBytes / (2 × copy)`
    /// (the output written once). The CPU backend's one-pass path reads the input once, so for it
    /// `seconds(inputBytes:outputBytes:)` is no longer a bound and this one is.
    public func readOnceSeconds(inputBytes: Int, outputBytes: Int) -> Double {
        Double(inputBytes) / readBytesPerSecond + Double(outputBytes) / (2 * copyBytesPerSecond)
    }
}

/// What `ternq bench` produces: trits in a backend layout, or final GGUF ternary blocks (α, then the trits
/// encoded into TQ2_0 / TQ1_0 blocks with α as the f16 block scale).
public enum BenchLayout: String, Sendable, Hashable, CaseIterable {
    /// `TritLayout.packed2Bit`.
    case packed2Bit
    /// `TritLayout.int8`.
    case int8
    /// GGUF TQ2_0 blocks (66 bytes per 256 elements).
    case tq2_0
    /// GGUF TQ1_0 blocks (54 bytes per 256 elements).
    case tq1_0

    /// The trit layout, for the two backend layouts.
    public var tritLayout: TritLayout? {
        switch self {
        case .packed2Bit: return .packed2Bit
        case .int8: return .int8
        case .tq2_0, .tq1_0: return nil
        }
    }

    /// The GGUF block type, for the two block layouts.
    public var blockType: GGMLType? {
        switch self {
        case .tq2_0: return .tq2_0
        case .tq1_0: return .tq1_0
        case .packed2Bit, .int8: return nil
        }
    }

    /// Output bytes for `elements` elements (block layouts: whole blocks only; `nil` otherwise).
    public func outputBytes(elements: Int) -> Int? {
        if let layout = tritLayout { return layout.byteCount(forTrits: elements) }
        guard let type = blockType, elements % TernaryBlocks.blockSize == 0 else { return nil }
        let (bytes, overflow) = (elements / TernaryBlocks.blockSize).multipliedReportingOverflow(by: type.blockLayout.bytes)
        return overflow ? nil : bytes
    }

    /// Produces `input` in this layout into `output` (at least `outputBytes(elements:)` bytes). Block
    /// layouts on the CPU backend run its fused `quantizeBlocks`; on other backends, packed trits and then
    /// `TernaryBlocks.encode`.
    public func quantize(_ input: TensorInput, backend: any QuantizationBackend,
                         into output: UnsafeMutableRawBufferPointer) throws -> QuantizationSummary {
        if let layout = tritLayout { return try backend.quantize(input, layout: layout, into: output) }
        guard let type = blockType else { throw QuantizationError.unsupportedBlockType(rawType: 0) }
        if let cpu = backend as? CPUBackend { return try cpu.quantizeBlocks(input, type: type, into: output) }
        guard input.elementCount % TernaryBlocks.blockSize == 0 else {
            throw QuantizationError.notWholeBlocks(name: input.name, elementCount: input.elementCount,
                                                   blockSize: TernaryBlocks.blockSize)
        }
        var packed = [UInt8](repeating: 0, count: TritLayout.packed2Bit.byteCount(forTrits: input.elementCount))
        let summary = try packed.withUnsafeMutableBytes { try backend.quantize(input, layout: .packed2Bit, into: $0) }
        let blocks = packed.withUnsafeBytes {
            TernaryBlocks.encode(type, packed: $0, firstBlock: 0, blockCount: input.elementCount / TernaryBlocks.blockSize,
                                 d: HalfConversion.float16Bits(summary.scale))
        }
        guard output.count >= blocks.count else {
            throw QuantizationError.byteCountMismatch(name: input.name, expected: blocks.count, actual: output.count)
        }
        blocks.withUnsafeBytes { output.copyMemory(from: $0) }
        return summary
    }
}

/// Generates benchmark tensors and runs the measurement.
public enum ThroughputBenchmark {
    /// A deterministic tensor of `elements` normally distributed weights (σ = 0.02) stored as `dtype`.
    public static func makeTensorBytes(elements: Int, dtype: ElementType, seed: UInt64 = 0x5EED) -> [UInt8] {
        var rng = SplitMix64(seed: seed)
        var bytes = [UInt8](repeating: 0, count: elements * dtype.byteWidth)
        bytes.withUnsafeMutableBytes { raw in
            for i in 0..<elements {
                let value = Float(rng.nextGaussian() * 0.02)
                switch dtype {
                case .float32:
                    raw.storeBytes(of: value.bitPattern, toByteOffset: i * 4, as: UInt32.self)
                case .bfloat16:
                    raw.storeBytes(of: UInt16(truncatingIfNeeded: value.bitPattern >> 16), toByteOffset: i * 2, as: UInt16.self)
                case .float16:
                    raw.storeBytes(of: HalfConversion.float16Bits(value), toByteOffset: i * 2, as: UInt16.self)
                }
            }
        }
        return bytes
    }

    /// Measures `backend` on `input` (median of `runs`), plus host read and copy bandwidth on buffers of
    /// the same size, and returns the comparison. Throws what the backend throws.
    public static func measure(backend: any QuantizationBackend, input: TensorInput, layout: TritLayout,
                               runs: Int, threads: Int) throws -> ThroughputResult {
        try measure(backend: backend, input: input, layout: layout == .int8 ? BenchLayout.int8 : .packed2Bit,
                    runs: runs, threads: threads)
    }

    /// Measures `backend` producing `layout` (GGUF blocks included: α plus the encoding into the final
    /// blocks), as `measure(backend:input:layout:runs:threads:)` does for trit layouts. Throws
    /// `QuantizationError.notWholeBlocks` for a block layout when the element count is not a multiple of 256.
    public static func measure(backend: any QuantizationBackend, input: TensorInput, layout: BenchLayout,
                               runs: Int, threads: Int) throws -> ThroughputResult {
        guard let outputBytes = layout.outputBytes(elements: input.elementCount) else {
            throw QuantizationError.notWholeBlocks(name: input.name, elementCount: input.elementCount,
                                                   blockSize: TernaryBlocks.blockSize)
        }
        var output = [UInt8](repeating: 0, count: outputBytes)
        let before = ProcessorTimeSample.now()
        let seconds = try output.withUnsafeMutableBytes { out in
            try MemoryBandwidth.medianSeconds(runs: runs) { _ = try layout.quantize(input, backend: backend, into: out) }
        }
        let roofline = hostRoofline(input: input, threads: threads, runs: runs)
        let steal = before.flatMap { earlier in ProcessorTimeSample.now()?.stealFraction(since: earlier) }
        let inputBytes = input.bytes.count
        let rooflineSeconds = roofline.seconds(inputBytes: inputBytes, outputBytes: outputBytes)
        let rate = Double(inputBytes) / seconds / 1e9
        let roofRate = Double(inputBytes) / rooflineSeconds / 1e9
        let readOnceRate = Double(inputBytes) / roofline.readOnceSeconds(inputBytes: inputBytes, outputBytes: outputBytes) / 1e9
        return ThroughputResult(
            backend: backend.name, device: backend.deviceDescription, elements: input.elementCount,
            dtype: input.elementType.rawValue, layout: layout.rawValue, seconds: seconds,
            gigabytesPerSecond: rate, rooflineGigabytesPerSecond: roofRate, rooflineRatio: rate / roofRate,
            readOnceRatio: rate / readOnceRate,
            hostReadGigabytesPerSecond: roofline.readBytesPerSecond / 1e9,
            hostCopyGigabytesPerSecond: roofline.copyBytesPerSecond / 1e9, device_metrics: nil, cpuStealFraction: steal)
    }

    /// Host read and copy bandwidth measured on the input buffer and a scratch buffer of the same size.
    public static func hostRoofline(input: TensorInput, threads: Int, runs: Int) -> Roofline {
        let read = MemoryBandwidth.readBytesPerSecond(input.bytes, threads: threads, runs: runs)
        var scratch = [UInt8](repeating: 0, count: input.bytes.count)
        let copy = scratch.withUnsafeMutableBytes {
            MemoryBandwidth.copyBytesPerSecond(from: input.bytes, to: $0, threads: threads, runs: runs)
        }
        return Roofline(readBytesPerSecond: read, copyBytesPerSecond: copy)
    }
}
