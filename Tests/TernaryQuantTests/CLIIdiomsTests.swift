import Foundation
import Testing
import TernaryQuant
import TernaryQuantTestSupport
@testable import TernaryQuantCore
@testable import TernaryQuantFormats
@testable import TernaryQuantPipeline

/// The CLI's ArgumentParser idioms (issue 9 item 4): --version, exit statuses, enum option validation,
/// the shared backend/device options (bench --device), and remedies phrased in the CLI's terms.
@Suite("CLI: ArgumentParser idioms, exit statuses, remedies", .serialized, .enabled(if: TernqProcess.executable != nil))
struct CLIIdiomsTests {
    static let tiny = TernqProcess.tinySafetensors

    func ternq(_ arguments: [String], in directory: String? = nil, environment: [String: String] = [:]) throws -> TernqProcess.Output {
        try TernqProcess.run(arguments, environment: environment, directory: directory)
    }

    /// One `ternq: error: …` line and nothing else on stderr.
    func isOneErrorLine(_ run: TernqProcess.Output) -> Bool {
        let lines = run.stderr.split(separator: "\n")
        return lines.count == 1 && lines[0].hasPrefix("ternq: error: ")
    }

    @Test("--version prints one version line, on the root command and on a subcommand")
    func version() throws {
        let root = try ternq(["--version"])
        #expect(root.status == 0 && root.stderr.isEmpty, "\(root.stderr)")
        let line = root.stdout.trimmingCharacters(in: .newlines)
        #expect(line.range(of: #"^[0-9]+\.[0-9]+\.[0-9]+$"#, options: .regularExpression) != nil, "\(root.stdout)")
        let sub = try ternq(["quantize", "--version"])
        #expect(sub.status == 0 && sub.stdout == root.stdout)
    }

    @Test("enum options: invalid values are usage errors (64) naming the option and every accepted value")
    func enumValidation() throws {
        let cases: [([String], String, [String])] = [
            (["quantize", "--format", "onnx"], "--format <format>", ["'tern'", "'gguf'", "'safetensors'"]),
            (["quantize", "--gguf-type", "tq3_0"], "--gguf-type <gguf-type>", ["'tq2_0'", "'tq1_0'"]),
            (["quantize", "--fallback", "f8"], "--fallback <fallback>", ["'ternary'", "'keep'"]),
            (["quantize", "--backend", "tpu"], "--backend <backend>", ["'auto'", "'cpu'", "'opencl'", "'opencl:all'", "'all'"]),
            (["bench", "--dtype", "F64"], "--dtype <dtype>", ["'F32'", "'F16'", "'BF16'"]),
            (["bench", "--layout", "q4_0"], "--layout <layout>", ["'packed2Bit'", "'int8'", "'tq2_0'", "'tq1_0'"]),
        ]
        for (arguments, option, values) in cases {
            let run = try ternq(arguments)
            let value = arguments[arguments.count - 1]
            #expect(run.status == 64, "\(arguments): \(run.status)")
            #expect(run.stderr.contains("'\(value)' is invalid for '\(option)'"), "\(run.stderr)")
            for v in values { #expect(run.stderr.contains(v), "\(arguments): \(v) missing in \(run.stderr)") }
        }
        // Help lists the values (completion uses the same list).
        let help = try ternq(["quantize", "--help"])
        let words = help.stdout.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        #expect(help.status == 0 && words.contains("(values: tern, gguf, safetensors)"), "\(help.stdout)")
        #expect(words.contains("(values: tq2_0, tq1_0; default: tq2_0)"), "\(help.stdout)")
    }

    @Test("enum options are case-insensitive, as before")
    func caseInsensitive() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let run = try ternq(["quantize", Self.tiny, "--format", "GGUF", "--gguf-type", "TQ1_0", "--backend", "CPU", "-o", "x.gguf", "--quiet"], in: dir)
        #expect(run.status == 0, "\(run.stderr)")
        let info = try ternq(["info", "x.gguf"], in: dir)
        #expect(info.stdout.contains("TQ1_0"), "\(info.stdout)")
    }

    @Test("exit statuses: 0 success, 1 one error line, 64 usage errors; remedies phrased as ternq options")
    func exitStatuses() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(try ternq(["quantize", Self.tiny, "--backend", "cpu", "-o", "a.tern", "--quiet"], in: dir).status == 0)
        // The library says "allow overwriting"; the CLI says which flag does it.
        let again = try ternq(["quantize", Self.tiny, "--backend", "cpu", "-o", "a.tern", "--quiet"], in: dir)
        #expect(again.status == 1 && isOneErrorLine(again), "\(again.stderr)")
        #expect(again.stderr.contains("a.tern: output already exists; pass --force to replace it"), "\(again.stderr)")
        // Usage errors: option values and combinations checked before anything runs.
        for arguments in [["quantize", "--backend", "cpu", "--device", "0"], ["quantize", "--backend", "all"],
                          ["quantize", "--csr-threshold", "2"], ["devices", "--backend", "cpu"],
                          ["devices", "--check", "--backend", "all"], ["bench", "--runs", "2"], ["frobnicate"]] {
            let run = try ternq(arguments, in: dir)
            #expect(run.status == 64, "\(arguments): \(run.status) \(run.stderr)")
            #expect(run.stderr.contains("Usage:") || run.stderr.contains("USAGE:"), "\(arguments): \(run.stderr)")
        }
        // An input error: one line, status 1.
        let missing = try ternq(["verify", "nope.safetensors"], in: dir)
        #expect(missing.status == 1 && isOneErrorLine(missing), "\(missing.stderr)")
        let info = try ternq(["info", "nope.tern"], in: dir)
        #expect(info.status == 1 && isOneErrorLine(info), "\(info.stderr)")
    }

    @Test("devices --check that fails is an error (1, one line with the CPU remedy), not a usage error")
    func devicesCheckFailure() throws {
        let empty = try TernqProcess.emptyDirectory()
        defer { try? FileManager.default.removeItem(atPath: empty) }
        let run = try ternq(["devices", "--check", "--backend", "opencl"], environment: ["OCL_ICD_VENDORS": empty])
        #expect(run.status == 1, "\(run.status) \(run.stderr)")
        #expect(isOneErrorLine(run), "\(run.stderr)")
        #expect(run.stderr.contains("select the CPU backend instead (--backend cpu, or TERNQ_DEVICE=cpu)"), "\(run.stderr)")
    }

    @Test("bench takes --device from the shared backend options: refused for the CPU, honoured for OpenCL")
    func benchDevice() throws {
        let cpu = try ternq(["bench", "--backend", "cpu", "--device", "0", "--elements", "4096", "--runs", "5"])
        #expect(cpu.status == 64 && cpu.stderr.contains("does not apply to the CPU backend"), "\(cpu.stderr)")
        // A device that does not exist: the error names it (before, bench had no --device and used device 0).
        let missing = try ternq(["bench", "--backend", "opencl", "--device", "99", "--elements", "4096", "--runs", "5"])
        #expect(missing.status == 1 && isOneErrorLine(missing), "\(missing.stderr)")
        #expect(missing.stderr.contains("'99'") || missing.stderr.contains("OpenCL platform"), "\(missing.stderr)")
    }

    @Test("bench --backend all --device 0 on PoCL: both backends measured, outputs byte-identical",
          .enabled(if: OpenCLTestSupport.hasPoCL))
    func benchAllWithDevice() throws {
        let run = try ternq(["bench", "--backend", "all", "--device", "0", "--elements", "4096", "--runs", "5"],
                            environment: ["POCL_DEVICES": "pthread"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout.contains("outputs byte-identical across"), "\(run.stdout)")
        let table = run.stdout.split(separator: "\n")
        #expect(table.first?.hasPrefix("backend") == true && table.dropFirst().first?.hasPrefix("-------") == true, "\(run.stdout)")
    }
}

/// Library errors carry a `Remedy`; their own descriptions name no CLI option (issue 9 item 3).
@Suite("Pipeline: remedies, owning tensor inputs, the one backend comparison")
struct PipelineRemedyTests {
    @Test("an existing output: FormatError.refused with .allowOverwrite, no CLI flag in the description")
    func outputExists() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/out.bin"
        try Data([1]).write(to: URL(fileURLWithPath: path))
        do {
            _ = try AtomicFile(path: path, overwrite: false)
            Issue.record("an existing output was accepted")
        } catch let error as FormatError {
            #expect(error.remedy == .allowOverwrite)
            #expect(error.problem == "\(path): output already exists")
            #expect(error.description == "\(path): output already exists; allow overwriting to replace it")
            #expect(!error.description.contains("--"))
            #expect(error.message { _ in "pass --force" } == "\(path): output already exists; pass --force")
            // Wrapped in a JobError, the remedy and problem come through.
            let job = JobError(file: path, underlying: error)
            #expect(job.remedy == .allowOverwrite && job.problem == error.problem)
        }
    }

    @Test("OpenCL setup errors: remedy .useCPUBackend, no CLI wording in any library description")
    func openCLErrors() {
        let errors: [OpenCLBackendError] = [
            .noPlatform(nil), .noDevice(selector: "7", available: ["0: x"]),
            .inconsistentResult(device: "d", detail: "stale"),
        ]
        for error in errors {
            #expect(error.remedy == .useCPUBackend)
            #expect(error.description.hasSuffix("; select the CPU backend instead"), "\(error)")
            #expect(!error.description.contains("--") && !error.description.contains("TERNQ_DEVICE") && !error.description.contains("ternq"))
        }
        #expect(OpenCLBackendError.invalidSelection("metal").remedy == nil)
        // Tensor selection reasons name the pattern, not the flag.
        let decision = TensorSelection(include: [], exclude: ["*.q_proj.*"]).decide(name: "a.q_proj.weight", dtype: .f32, shape: [4, 4])
        #expect(decision.reason == "excluded by exclude pattern '*.q_proj.*'")
    }

    /// Inputs made in a helper whose arrays are gone when the inputs are used (the case that was undefined
    /// behaviour with borrowed pointers).
    static func ownedInputs() throws -> (inputs: [TensorInput], arrays: [[Float]]) {
        var arrays = [[Float]]()
        var inputs = [TensorInput]()
        for k in 0..<6 {
            let a = (0..<(97 * k + 61)).map { i in Float((i * 7919 + k) % 23) - 11 }
            inputs.append(try TensorInput(name: "l\(k)", shape: [a.count], floats: a))
            arrays.append(a)
        }
        return (inputs, arrays)
    }

    @Test("owning inputs outlive their source arrays and give the same bytes as borrowed ones")
    func owningInputs() throws {
        var (inputs, arrays) = try Self.ownedInputs()
        let expected = try arrays.map { try Quantizer(backend: CPUBackend()).quantize($0, name: "x", shape: [$0.count]) }
        // Overwrite and drop the source arrays: owning inputs hold their own copies.
        for i in arrays.indices { arrays[i] = [Float](repeating: 1e9, count: arrays[i].count) }
        arrays = []
        let layers = try Quantizer(backend: CPUBackend(threadCount: 2)).quantizeLayers(inputs)
        #expect(layers.map(\.data) == expected.map(\.data))
        #expect(layers.map(\.scale.bitPattern) == expected.map(\.scale.bitPattern))
        #expect(inputs.allSatisfy { $0.owner != nil })
        // Copying bytes, and a caller-supplied owner.
        let bytes: [UInt8] = [0, 0, 0x80, 0x3F, 0, 0, 0x80, 0xBF]  // 1.0, -1.0
        let reference = try Quantizer().quantize([1, -1], name: "r", shape: [2]).data
        let copied = try TensorInput(name: "b", shape: [2], elementType: .float32, copying: bytes)
        #expect(try Quantizer().quantize(copied).data == reference)
        let storage = ByteStorage(copying: bytes, name: "mem")
        let viewed = try TensorInput(name: "m", shape: [2], elementType: .float32, bytes: storage.bytes, keepingAlive: storage)
        #expect(viewed.owner === storage)
        #expect(try Quantizer().quantize(viewed).data == reference)
        #expect(throws: QuantizationError.byteCountMismatch(name: "c", expected: 12, actual: 8)) {
            try TensorInput(name: "c", shape: [3], elementType: .float32, copying: bytes)
        }
        inputs = []
    }

    @Test("BackendComparison.differences: nil when identical, else α bits, then the first differing byte, then zeros")
    func differences() {
        let base = BackendComparison.Output(summary: QuantizationSummary(scale: 1, elementCount: 8, zeroCount: 2), bytes: [1, 2, 3])
        #expect(BackendComparison.differences(base, base) == nil)
        var scale = base
        scale.summary.scale = Float(bitPattern: 0x3F80_0001)
        #expect(BackendComparison.differences(scale, base)?.hasPrefix("scale bits") == true)
        var bytes = base
        bytes.bytes[2] = 9
        #expect(BackendComparison.differences(bytes, base, layout: .packed2Bit) == "1 packed bytes differ, first at byte 2 (trits 8…11)")
        #expect(BackendComparison.differences(bytes, base) == "1 output bytes differ, first at byte 2")
        var zeros = base
        zeros.summary.zeroCount = 3
        #expect(BackendComparison.differences(zeros, base) == "zero count 3 vs 2")
    }
}
