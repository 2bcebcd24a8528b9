import ArgumentParser
import Foundation
import TernaryQuant
import TernaryQuantBench

/// `ternq bench`: quantization throughput per backend against the machine's own measured memory roofline.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure quantization throughput against the memory roofline measured in the same run.",
        discussion: """
            The roofline is one read pass (for alpha) plus one read+write pass (for the trits) at the host's \
            read and copy bandwidth, measured on buffers of the same size right after the backend runs.
            """
    )

    @Option(help: "Elements per tensor.")
    var elements: Int = 64 * 1024 * 1024

    @Option(help: "Backend to measure: cpu, opencl or all.")
    var backend: String = "cpu"

    @Option(help: "Input element type: F32, F16 or BF16.")
    var dtype: String = "F32"

    @Option(help: "Output layout: packed2Bit, int8, or tq2_0 / tq1_0 (alpha plus the final GGUF blocks; elements a multiple of 256).")
    var layout: String = "packed2Bit"

    @Option(help: "Timed runs per measurement (median reported, at least 5).")
    var runs: Int = 7

    @Option(help: "CPU threads (default: all active processors).")
    var threads: Int?

    @Flag(help: "Print one JSON object per backend instead of a table.")
    var json = false

    func validate() throws {
        // Input (≤ 4 bytes/element) + int8 output + roofline buffers of the same size: 4 copies of 4 bytes.
        try validateElementCount(elements, bytesPerElement: 4, copies: 4, option: "--elements")
        if let threads {
            guard threads > 0 else { throw ValidationError("--threads must be positive (got \(threads))") }
            guard threads <= 4096 else { throw ValidationError("--threads must be at most 4096 (got \(threads))") }
        }
        guard runs >= 5 else { throw ValidationError("--runs must be at least 5") }
        guard ElementType(rawValue: dtype.uppercased()) != nil else { throw ValidationError("--dtype must be F32, F16 or BF16") }
        guard let benchLayout = BenchLayout(rawValue: layout) else {
            throw ValidationError("--layout must be packed2Bit, int8, tq2_0 or tq1_0")
        }
        guard benchLayout.outputBytes(elements: elements) != nil else {
            throw ValidationError("--layout \(layout) needs --elements to be a multiple of \(TernaryBlocks.blockSize)")
        }
    }

    func run() throws {
        let elementType = ElementType(rawValue: dtype.uppercased()) ?? .float32
        let benchLayout = BenchLayout(rawValue: layout) ?? .packed2Bit
        let tritLayout = benchLayout.tritLayout ?? .packed2Bit
        let threadCount = threads ?? ProcessInfo.processInfo.activeProcessorCount
        let backends = try BenchBackends.make(backend, threads: threadCount)
        let bytes = ThroughputBenchmark.makeTensorBytes(elements: elements, dtype: elementType)
        var results = [ThroughputResult]()
        var mismatches = [String]()
        try bytes.withUnsafeBytes { raw in
            let input = try TensorInput(name: "bench", shape: [elements], elementType: elementType, bytes: raw)
            for candidate in backends {
                if !json { FileHandle.standardError.write(Data("measuring \(candidate.name)…\n".utf8)) }
                var result = try ThroughputBenchmark.measure(backend: candidate, input: input, layout: benchLayout,
                                                             runs: runs, threads: threadCount)
                result.device_metrics = try BenchBackends.deviceMetrics(for: candidate, input: input, layout: tritLayout,
                                                                         runs: runs)
                results.append(result)
            }
            mismatches = try Self.compareOutputs(backends, input: input, layout: benchLayout)
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            for r in results {
                print(String(decoding: try encoder.encode(r), as: UTF8.self))
            }
        } else {
            printTable(results)
            if backends.count > 1 && mismatches.isEmpty {
                print("outputs byte-identical across \(backends.map(\.name).joined(separator: ", ")) (alpha bits, trits, zero count)")
            }
        }
        if !mismatches.isEmpty {
            for m in mismatches { FileHandle.standardError.write(Data("error: \(m)\n".utf8)) }
            throw ExitCode.failure
        }
    }

    /// Quantizes once with every backend and describes each difference from the first backend's output.
    static func compareOutputs(_ backends: [any QuantizationBackend], input: TensorInput,
                               layout: BenchLayout) throws -> [String] {
        guard let first = backends.first, backends.count > 1 else { return [] }
        let quantize = { (backend: any QuantizationBackend) throws -> (QuantizationSummary, [UInt8]) in
            var out = [UInt8](repeating: 0, count: layout.outputBytes(elements: input.elementCount) ?? 0)
            let summary = try out.withUnsafeMutableBytes { try layout.quantize(input, backend: backend, into: $0) }
            return (summary, out)
        }
        let (expectedSummary, expectedBytes) = try quantize(first)
        var problems = [String]()
        for backend in backends.dropFirst() {
            let (summary, bytes) = try quantize(backend)
            if summary.scale.bitPattern != expectedSummary.scale.bitPattern || summary.zeroCount != expectedSummary.zeroCount {
                problems.append("\(backend.name) gives alpha \(summary.scale) / \(summary.zeroCount) zeros, \(first.name) gives \(expectedSummary.scale) / \(expectedSummary.zeroCount)")
            }
            if let index = bytes.indices.first(where: { bytes[$0] != expectedBytes[$0] }) {
                problems.append("\(backend.name) output differs from \(first.name) first at byte \(index)")
            }
        }
        return problems
    }

    private func printTable(_ results: [ThroughputResult]) {
        let header = ["backend", "elements", "dtype", "layout", "median s", "GB/s", "roofline GB/s", "ratio"]
        var rows = [header]
        for r in results {
            rows.append([r.backend, String(r.elements), r.dtype, r.layout, String(format: "%.4f", r.seconds),
                         String(format: "%.2f", r.gigabytesPerSecond), String(format: "%.2f", r.rooflineGigabytesPerSecond),
                         String(format: "%.3f", r.rooflineRatio)])
        }
        let widths = (0..<header.count).map { c in rows.map { $0[c].count }.max() ?? 0 }
        for row in rows {
            print(row.enumerated().map { $1.padding(toLength: widths[$0], withPad: " ", startingAt: 0) }.joined(separator: "  "))
        }
        for r in results {
            print("\(r.backend): \(r.device); host read \(String(format: "%.2f", r.hostReadGigabytesPerSecond)) GB/s, host copy \(String(format: "%.2f", r.hostCopyGigabytesPerSecond)) GB/s")
            for (k, v) in (r.device_metrics ?? [:]).sorted(by: { $0.key < $1.key }) {
                print("  \(k): \(String(format: "%.3f", v))")
            }
        }
    }
}

/// Backend construction for `ternq bench`.
enum BenchBackends {
    static func make(_ name: String, threads: Int) throws -> [any QuantizationBackend] {
        switch name.lowercased() {
        case "cpu": return [CPUBackend(threadCount: threads)]
        case "opencl": return [try OpenCLBenchSupport.defaultBackend()]
        case "all": return [CPUBackend(threadCount: threads), try OpenCLBenchSupport.defaultBackend()]
        default: throw ValidationError("unknown --backend '\(name)': use cpu, opencl or all")
        }
    }

    static func deviceMetrics(for backend: any QuantizationBackend, input: TensorInput, layout: TritLayout,
                              runs: Int) throws -> [String: Double]? {
        try OpenCLBenchSupport.deviceMetrics(for: backend, input: input, layout: layout, runs: runs)
    }
}
