import ArgumentParser
import Foundation
import TernaryQuant
import TernaryQuantBench

/// `ternq bench`: quantization throughput per backend against the machine's own measured memory roofline.
struct BenchCommand: TernQCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure quantization throughput against the memory roofline measured in the same run.",
        discussion: """
            The roofline is one read pass (for alpha) plus one read+write pass (for the trits) at the host's \
            read and copy bandwidth, measured on buffers of the same size right after the backend runs; \
            the 1-read ratio compares with a single read of the input instead (the bound of the CPU \
            backend's one-pass path, which reads a tensor of 2^18 elements or more only once). \
            --backend all measures the CPU backend and the OpenCL one (--device picks it) and checks that \
            their outputs are byte-identical.
            """
    )

    @Option(help: "Elements per tensor.")
    var elements: Int = 64 * 1024 * 1024

    @OptionGroup(title: "Backend")
    var backendOptions: BackendOptions

    @Option(help: "Input element type.")
    var dtype: ElementType = .float32

    @Option(help: "Output layout: packed2Bit, int8, or tq2_0 / tq1_0 (alpha plus the final GGUF blocks; elements a multiple of 256).")
    var layout: BenchLayout = .packed2Bit

    @Option(help: "Timed runs per measurement (median reported, at least 5).")
    var runs: Int = 7

    @Option(help: "CPU threads (default: all active processors).")
    var threads: Int?

    @Option(name: .customLong("cpu-loops"),
            help: "CPU backend inner loops: automatic (the best this processor runs: AVX-512, AVX2 or portable), avx2, portable.")
    var cpuLoops: CPUInstructionSet = .automatic

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
        guard layout.outputBytes(elements: elements) != nil else {
            throw ValidationError("--layout \(layout.rawValue) needs --elements to be a multiple of \(TernaryBlocks.blockSize)")
        }
    }

    /// The backends `--backend`/`--device` name (default cpu); `all`: the CPU backend and one OpenCL backend.
    func backends(threads: Int) throws -> [any QuantizationBackend] {
        switch try backendOptions.choice(default: .one(.cpu)) {
        case .every:
            return [CPUBackend(threadCount: threads, instructionSet: cpuLoops), try BackendOptions.make(backendOptions.openCLSelectionForAll())]
        case .one(.cpu):
            return [CPUBackend(threadCount: threads, instructionSet: cpuLoops)]
        case .one(let selection):
            return [try BackendOptions.make(selection, cpuThreads: threads)]
        }
    }

    func execute() throws {
        let tritLayout = layout.tritLayout ?? .packed2Bit
        let threadCount = threads ?? ProcessInfo.processInfo.activeProcessorCount
        let backends = try backends(threads: threadCount)
        let bytes = ThroughputBenchmark.makeTensorBytes(elements: elements, dtype: dtype)
        // A borrowed input (no second copy of a large tensor): it lives only inside this closure.
        let (results, mismatches) = try bytes.withUnsafeBytes { raw in
            let input = try TensorInput(name: "bench", shape: [elements], elementType: dtype, bytes: raw)
            var results = [ThroughputResult]()
            for candidate in backends {
                if !json { printError("measuring \(candidate.name)…") }
                var result = try ThroughputBenchmark.measure(backend: candidate, input: input, layout: layout,
                                                             runs: runs, threads: threadCount)
                result.device_metrics = try OpenCLBenchSupport.deviceMetrics(for: candidate, input: input,
                                                                              layout: tritLayout, runs: runs)
                if let warning = Self.stealWarning(result) { printError(warning) }
                results.append(result)
            }
            let mismatches = try BackendComparison.compare(tensor: "bench", backends: backends.map { ($0.name, $0) },
                                                           layout: layout.tritLayout) { backend in
                var out = [UInt8](repeating: 0, count: layout.outputBytes(elements: input.elementCount) ?? 0)
                let summary = try out.withUnsafeMutableBytes { try layout.quantize(input, backend: backend, into: $0) }
                return BackendComparison.Output(summary: summary, bytes: out)
            }
            return (results, mismatches)
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            for r in results {
                print(String(decoding: try encoder.encode(r), as: UTF8.self))
            }
        } else {
            print(Self.table(results))
            if backends.count > 1 && mismatches.isEmpty {
                print("outputs byte-identical across \(backends.map(\.name).joined(separator: ", ")) (alpha bits, trits, zero count)")
            }
        }
        guard mismatches.isEmpty else {
            throw CLIError("outputs differ: \(mismatches.map(\.description).joined(separator: "; "))")
        }
    }

    /// The warning for a measurement during which the hypervisor took a noticeable share of the processor
    /// time (`ProcessorTimeSample.noticeableStealFraction`), or `nil`.
    static func stealWarning(_ r: ThroughputResult) -> String? {
        guard let steal = r.cpuStealFraction, steal > ProcessorTimeSample.noticeableStealFraction else { return nil }
        return "ternq: warning: the hypervisor took \(String(format: "%.1f", 100 * steal)) % of this machine's processor time during the \(r.backend) measurement (steal in /proc/stat); its figures understate the hardware: measure again when the machine is quiet"
    }

    /// The results table, then one line per backend on its device and host bandwidth (and CPU steal).
    static func table(_ results: [ThroughputResult]) -> String {
        let rows = results.map { r in
            [r.backend, String(r.elements), r.dtype, r.layout, String(format: "%.4f", r.seconds),
             String(format: "%.2f", r.gigabytesPerSecond), String(format: "%.2f", r.rooflineGigabytesPerSecond),
             String(format: "%.3f", r.rooflineRatio), String(format: "%.3f", r.readOnceRatio)]
        }
        var lines = [Human.table(["backend", "elements", "dtype", "layout", "median s", "GB/s", "roofline GB/s", "ratio",
                                  "1-read ratio"], rows, rightAligned: [1, 4, 5, 6, 7, 8])]
        for r in results {
            let steal = r.cpuStealFraction.map { String(format: "; cpu steal %.1f %%", 100 * $0) } ?? ""
            lines.append("\(r.backend): \(r.device); host read \(String(format: "%.2f", r.hostReadGigabytesPerSecond)) GB/s, host copy \(String(format: "%.2f", r.hostCopyGigabytesPerSecond)) GB/s\(steal)")
            for (k, v) in (r.device_metrics ?? [:]).sorted(by: { $0.key < $1.key }) {
                lines.append("  \(k): \(String(format: "%.3f", v))")
            }
        }
        return lines.joined(separator: "\n")
    }
}
