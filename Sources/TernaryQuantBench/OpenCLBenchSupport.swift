import TernaryQuantPipeline
import TernaryQuantOpenCL
import TernaryQuantFormats
import TernaryQuantCore
import Foundation
import SwiftOpenCL

/// Helpers for `ternq bench`: OpenCL backends by name and device-side figures (kernel-only and
/// end-to-end ratios against bandwidths measured in the same run).
public enum OpenCLBenchSupport {
    /// The OpenCL backend for `--backend opencl` (the default device, see `DeviceSelector.default`).
    /// Throws `OpenCLBackendError` when OpenCL is unusable.
    public static func defaultBackend(chunkElements: Int = OpenCLBackend.defaultChunkElements) throws -> any QuantizationBackend {
        try makeBackend(.opencl(device: .default), options: OpenCLOptions(chunkElements: chunkElements))
    }

    /// The single-device OpenCL backend inside `backend` (itself, the first member of a device group, or
    /// the device behind `.automatic`'s fallback wrapper), or `nil` for a CPU backend.
    public static func openCLBackend(in backend: any QuantizationBackend) -> OpenCLBackend? {
        if let single = backend as? OpenCLBackend { return single }
        if let group = backend as? OpenCLDeviceGroup { return group.members.first }
        if let wrapper = backend as? FallbackBackend { return openCLBackend(in: wrapper.primary) }
        return nil
    }

    /// Device figures for an OpenCL backend (`nil` for any other backend), all measured now on `input`:
    /// - `device_copy_gbps`, `device_read_gbps`, `host_to_device_gbps` (pinned or pageable, the better),
    ///   `host_to_device_pageable_gbps`: `OpenCLBackend.measureBandwidth` on `input`'s size;
    /// - `kernel_seconds`, `kernel_gbps` (bytes the two kernels must move: 2 × input + output, per second),
    ///   `kernel_ratio` = kernel_gbps / device_read_gbps (the read probe is the bound: the kernels mostly read),
    ///   `kernel_copy_ratio` = kernel_gbps / device_copy_gbps (only when `input` fits one chunk);
    /// - `end_to_end_seconds`, `end_to_end_gbps` (input bytes per second from host memory),
    ///   `end_to_end_ratio` = end_to_end_gbps / host_to_device_gbps.
    /// Throws what the backend throws.
    public static func deviceMetrics(for backend: any QuantizationBackend, input: TensorInput, layout: TritLayout,
                                     runs: Int) throws -> [String: Double]? {
        guard let device = openCLBackend(in: backend) else { return nil }
        let inputBytes = Double(input.bytes.count)
        let outputBytes = Double(layout.byteCount(forTrits: input.elementCount))
        let bandwidth = try device.measureBandwidth(bytes: input.bytes.count, repetitions: runs)
        var metrics: [String: Double] = [
            "device_copy_gbps": bandwidth.deviceCopyGBps,
            "device_read_gbps": bandwidth.deviceReadGBps,
            "host_to_device_gbps": bandwidth.hostToDeviceGBps,
            "host_to_device_pageable_gbps": bandwidth.hostToDevicePageableGBps,
        ]
        if input.elementCount <= device.chunkElements {
            let seconds = try device.measureKernelSeconds(input, layout: layout, repetitions: runs)
            let gbps = (2 * inputBytes + outputBytes) / seconds / 1e9
            metrics["kernel_seconds"] = seconds
            metrics["kernel_gbps"] = gbps
            metrics["kernel_ratio"] = gbps / bandwidth.deviceReadGBps
            metrics["kernel_copy_ratio"] = gbps / bandwidth.deviceCopyGBps
        }
        var output = [UInt8](repeating: 0, count: Int(outputBytes))
        let endToEnd = try output.withUnsafeMutableBytes { out in
            try MemoryBandwidth.medianSeconds(runs: runs) { _ = try device.quantize(input, layout: layout, into: out) }
        }
        let endToEndGBps = inputBytes / endToEnd / 1e9
        metrics["end_to_end_seconds"] = endToEnd
        metrics["end_to_end_gbps"] = endToEndGBps
        metrics["end_to_end_ratio"] = endToEndGBps / bandwidth.hostToDeviceGBps
        return metrics
    }
}

extension OpenCLBenchSupport {
    /// Quantizes pseudo-random tensors of `elements` elements (normal weights with a few subnormals and
    /// threshold-adjacent values; F32, F16 and BF16; packed layout) with `backend` and with the CPU backend,
    /// and returns one line per difference (α bits, zero count or bytes); `[]` means byte-identical.
    /// Throws what either backend throws.
    public static func crossCheck(_ backend: any QuantizationBackend, elements: Int, seed: UInt64 = 1) throws -> [String] {
        guard elements > 0 else { return [] }
        var rng = SplitMix64(seed: seed)
        var tensors: [(ElementType, [UInt8])] = []
        for type in ElementType.allCases {
            var bytes = [UInt8](repeating: 0, count: elements * type.byteWidth)
            bytes.withUnsafeMutableBytes { raw in
                for i in 0..<elements {
                    // Sum of uniforms ≈ normal; occasional subnormal or tiny value.
                    let r = rng.next()
                    var value = (Float(r & 0xFFFF) + Float((r >> 16) & 0xFFFF) - 65_535) / 65_536 * 0.05
                    if r >> 60 == 0 { value = Float(bitPattern: UInt32(truncatingIfNeeded: r >> 32) & 0x807F_FFFF) }
                    let bits = value.bitPattern
                    switch type {
                    case .float32: raw.storeBytes(of: bits, toByteOffset: i * 4, as: UInt32.self)
                    case .bfloat16: raw.storeBytes(of: UInt16(truncatingIfNeeded: bits >> 16), toByteOffset: i * 2, as: UInt16.self)
                    case .float16: raw.storeBytes(of: HalfConversion.float16Bits(value), toByteOffset: i * 2, as: UInt16.self)
                    }
                }
            }
            tensors.append((type, bytes))
        }
        // Owning inputs through `BackendComparison.compare`, which uses `quantizeLayers`: a device group
        // runs them on several devices at once.
        let inputs = try tensors.map { type, bytes in
            try TensorInput(name: "check-\(type.rawValue)", shape: [elements], elementType: type, copying: bytes)
        }
        let problems = try BackendComparison.compare(inputs, backends: [("cpu", CPUBackend()), (backend.name, backend)])
            .map { "\($0.tensor): \($0.detail)" }
        return problems
    }
}
