import Foundation
import Testing
import TernaryQuant
import TernaryQuantTestSupport
@testable import TernaryQuantCore
@testable import TernaryQuantFormats
@testable import TernaryQuantOpenCL
@testable import TernaryQuantPipeline

/// End-to-end tests of the built `ternq` binary (found next to the test bundle in the build products).
@Suite("CLI: ternq end to end", .serialized)
struct CLITests {
    typealias Run = TernqProcess.Output

    static var binary: String? { TernqProcess.executable?.path }

    static let tiny = TernqProcess.tinySafetensors

    func ternq(_ arguments: [String], in directory: String, environment: [String: String] = [:]) throws -> Run {
        _ = try #require(Self.binary, "ternq binary not found next to the test bundle; run `swift build` first")
        return try TernqProcess.run(arguments, environment: environment, directory: directory)
    }


    func files(_ dir: String) throws -> [String] { try FileManager.default.contentsOfDirectory(atPath: dir).sorted() }

    @Test func demoRunWritesTernAndTableAndRefusesToOverwrite() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let first = try ternq(["quantize"], in: dir)
        #expect(first.status == 0, "\(first.stderr)")
        #expect(first.stdout.contains("model.layers.3.mlp.down_proj.weight"))
        #expect(first.stdout.contains("smaller than f16"))
        #expect(first.stderr.isEmpty)  // stderr is not a TTY: no progress bar
        #expect(try files(dir) == ["ternq-demo.tern"])
        let model = try TernFormat.read(path: dir + "/ternq-demo.tern")
        #expect(model.layers.count == 28 && model.architecture == "ternq-demo")
        let again = try ternq(["quantize"], in: dir)
        #expect(again.status == 1)
        #expect(again.stderr.split(separator: "\n").count == 1 && again.stderr.contains("--force"))
        #expect(try ternq(["quantize", "--force", "--quiet"], in: dir).status == 0)
    }

    /// `--no-fsync` changes when the bytes reach the disk, never which bytes: the same output in every
    /// format, published atomically (no temporary left), refusing to overwrite like the default.
    @Test(arguments: ["out.tern", "out.gguf", "out.safetensors"])
    func noFsyncWritesTheSameBytes(output: String) throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let synced = try ternq(["quantize", Self.tiny, "-o", "synced-" + output, "--quiet"], in: dir)
        #expect(synced.status == 0, "\(synced.stderr)")
        let fast = try ternq(["quantize", Self.tiny, "-o", output, "--quiet", "--no-fsync"], in: dir)
        #expect(fast.status == 0, "\(fast.stderr)")
        #expect(FileManager.default.contents(atPath: dir + "/" + output) == FileManager.default.contents(atPath: dir + "/synced-" + output))
        #expect(try files(dir) == ["synced-" + output, output].sorted())
        let again = try ternq(["quantize", Self.tiny, "-o", output, "--quiet", "--no-fsync"], in: dir)
        #expect(again.status == 1 && again.stderr.contains("--force"))
    }

    @Test(arguments: [
        (["--format", "gguf"], "out.gguf", "GGUF v3"),
        (["--gguf-type", "tq1_0"], "out.gguf", "TQ1_0"),
        ([], "out.ternary.safetensors", "ternq.scheme"),
        (["--csr-threshold", "0.5"], "out.tern", "sparse"),
    ])
    func eachFormatWritesAFileInfoCanRead(options: [String], output: String, infoNeedle: String) throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let run = try ternq(["quantize", Self.tiny, "-o", output, "--quiet"] + options, in: dir)
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout.isEmpty)
        let info = try ternq(["info", output], in: dir)
        #expect(info.status == 0, "\(info.stderr)")
        #expect(info.stdout.contains(infoNeedle), "\(info.stdout)")
    }

    @Test func jsonReportFollowsTheSchema() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let run = try ternq(["quantize", Self.tiny, "-o", "t.gguf", "--json", "r.json", "--quiet"], in: dir)
        #expect(run.status == 0, "\(run.stderr)")
        let data = try #require(FileManager.default.contents(atPath: dir + "/r.json"))
        let json = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(json["schema"] as? String == "ternq.quantize-report/1")
        for key in ["input", "output", "format", "gguf_type", "backend", "device", "model", "layers", "totals", "notes"] {
            #expect(json[key] != nil, "missing \(key)")
        }
        let totals = try #require(json["totals"] as? [String: Any])
        for key in ["parameters", "quantized_parameters", "tensors_quantized", "tensors_kept", "tensors_skipped", "input_bytes",
                    "output_bytes", "f16_bytes", "compression_vs_f16", "seconds", "gigabytes_per_second"] {
            #expect(totals[key] != nil, "missing totals.\(key)")
        }
        #expect(totals["output_bytes"] as? Int == (try FileManager.default.attributesOfItem(atPath: dir + "/t.gguf")[.size] as? Int))
        let layers = try #require(json["layers"] as? [[String: Any]])
        #expect(layers.count == 9)
        let q = try #require(layers.first { $0["name"] as? String == "model.layers.0.self_attn.q_proj.weight" })
        for key in ["shape", "dtype", "action", "reason", "scale", "scale_bits", "sparsity", "mse", "storage", "input_bytes", "output_bytes"] {
            #expect(q[key] != nil, "missing layers[].\(key)")
        }
        #expect(q["action"] as? String == "quantized" && q["storage"] as? String == "tq2_0")
        let stdoutJSON = try ternq(["quantize", Self.tiny, "-o", "t2.tern", "--json", "-"], in: dir)
        #expect(stdoutJSON.status == 0)
        #expect((try? JSONSerialization.jsonObject(with: Data(stdoutJSON.stdout.utf8))) != nil)
    }

    // failedWriteLeavesNothingAndKeepsExistingOutput and interruptedRunLeavesNoTemporaryFile moved to
    // HardeningCLITests (issue 8.16: no environment hooks in ternq; a file-size limit and SIGSTOP instead).
    // The overwrite-the-input check they also made:
    @Test func refusesToOverwriteTheInput() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let input = try ternq(["quantize", Self.tiny, "-o", Self.tiny, "--force", "--format", "safetensors"], in: dir)
        #expect(input.status == 1 && input.stderr.contains("overwrite the input"))
    }

    @Test func nanWeightFailsWithTensorAndIndex() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var values = [Float](repeating: 0.25, count: 512)
        values[300] = -.infinity
        values[301] = .nan
        let sink = MemorySink()
        let w = try SafetensorsWriter(sink: sink, entries: [.init(name: "blk.0.ffn.weight", dtype: .f32, shape: [2, 256])])
        try w.write(bytes: SafetensorsBytes.floats(values))
        try Data(sink.bytes).write(to: URL(fileURLWithPath: dir + "/nan.safetensors"))
        let run = try ternq(["quantize", "nan.safetensors", "-o", "nan.gguf"], in: dir)
        #expect(run.status == 1)
        let lines = run.stderr.split(separator: "\n")
        #expect(lines.count == 1)
        #expect(run.stderr.contains("nan.safetensors") && run.stderr.contains("blk.0.ffn.weight") && run.stderr.contains("element 300"), "\(run.stderr)")
        #expect(try files(dir) == ["nan.safetensors"])
    }

    @Test(arguments: ["tern", "gguf", "safetensors"])
    func openCLOutputIsByteIdenticalToCPU(format: String) throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let cpu = try ternq(["quantize", Self.tiny, "-o", "cpu.\(format)", "--backend", "cpu", "--quiet"], in: dir)
        #expect(cpu.status == 0, "\(cpu.stderr)")
        let gpu = try ternq(["quantize", Self.tiny, "-o", "opencl.\(format)", "--backend", "opencl", "--quiet"], in: dir)
        guard gpu.status == 0 else {
            // No usable OpenCL device here: the failure must be one clear line.
            #expect(gpu.status == 1 && gpu.stderr.split(separator: "\n").count == 1, "\(gpu.stderr)")
            return
        }
        let a = FileManager.default.contents(atPath: dir + "/cpu.\(format)")
        let b = FileManager.default.contents(atPath: dir + "/opencl.\(format)")
        #expect(a != nil && a == b)
    }

    @Test func infoSurvivesMutatedFiles() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let fixtures = URL(fileURLWithPath: Self.tiny).deletingLastPathComponent()
        var rng = FormatsFuzzTests.Rng(state: 99)
        for name in ["tiny.tern", "tiny.tq2_0.gguf", "tiny.tq1_0.gguf", "tiny.ternary.safetensors"] {
            let seed = Array(try #require(FileManager.default.contents(atPath: fixtures.appendingPathComponent(name).path)))
            for i in 0..<25 {
                let mutated = FormatsFuzzTests.mutate(seed, &rng, headerEnd: seed.count)
                let file = "m\(i)." + (name.hasSuffix(".tern") ? "tern" : name.hasSuffix(".gguf") ? "gguf" : "safetensors")
                try Data(mutated).write(to: URL(fileURLWithPath: dir + "/" + file))
                let run = try ternq(["info", file], in: dir)
                #expect(run.status == 0 || (run.status == 1 && run.stderr.split(separator: "\n").count == 1),
                        "\(name) mutation \(i): status \(run.status) \(run.stderr)")
            }
        }
    }

    @Test func exitCodesAndErrorLines() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let missing = try ternq(["quantize", "nope.safetensors"], in: dir)
        #expect(missing.status == 1 && missing.stderr.hasPrefix("ternq: error: nope.safetensors"))
        #expect(try ternq(["quantize", "--format", "onnx"], in: dir).status == 64)
        #expect(try ternq(["quantize", Self.tiny, "--backend", "tpu"], in: dir).status == 64)
        try Data([1, 2, 3, 4, 5, 6, 7, 8, 9]).write(to: URL(fileURLWithPath: dir + "/junk.safetensors"))
        let junk = try ternq(["info", "junk.safetensors"], in: dir)
        #expect(junk.status == 1 && junk.stderr.contains("junk.safetensors"))
        let verify = try ternq(["verify", Self.tiny], in: dir)
        #expect(verify.status == 0, "\(verify.stderr)")
        #expect(verify.stdout.contains("identical"))
        let info = try ternq(["info", Self.tiny], in: dir)
        #expect(info.status == 0 && info.stdout.contains("model.layers.0.mlp.down_proj.weight"))
    }

    @Test func ggufInputToGGUFAndDequantize() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let m = PipelineGGUFJobTests.model()
        try Data(GGUFTestFile.make(PipelineGGUFJobTests.metadata, m.tensors)).write(to: URL(fileURLWithPath: dir + "/model.gguf"))
        let run = try ternq(["quantize", "model.gguf", "--json", "r.json"], in: dir)
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout.contains("already ternary") && run.stdout.contains("ternary as F16") && run.stdout.contains("Q8_0 passed through"), "\(run.stdout)")
        #expect(try files(dir) == ["model-tq2_0.gguf", "model.gguf", "r.json"])
        let json = try #require(FileManager.default.contents(atPath: dir + "/r.json"))
        let report = try JSONDecoder().decode(QuantizationReport.self, from: json)
        #expect(report.inputFormat == .gguf && report.format == .gguf && report.ggufType == .tq2_0)
        let info = try ternq(["info", "model-tq2_0.gguf"], in: dir)
        #expect(info.status == 0 && info.stdout.contains("TQ2_0"), "\(info.stdout)")
        let tq1 = try ternq(["quantize", "model.gguf", "--gguf-type", "tq1_0", "--quiet"], in: dir)
        #expect(tq1.status == 0 && tq1.stdout.isEmpty, "\(tq1.stderr)")
        let deq = try ternq(["quantize", "model.gguf", "--dequantize", "--quiet"], in: dir)
        #expect(deq.status == 0, "\(deq.stderr)")
        let deqST = try ternq(["quantize", Self.tiny, "--dequantize", "--quiet"], in: dir)
        #expect(deqST.status == 0, "\(deqST.stderr)")
        #expect(try files(dir) == ["model-tq1_0.gguf", "model-tq2_0.gguf", "model.dequantized.gguf", "model.gguf", "r.json",
                                   "tiny.dequantized.safetensors"])
        // The input is never the output, with --force too.
        let same = try ternq(["quantize", "model.gguf", "-o", "model.gguf", "--force"], in: dir)
        #expect(same.status == 1 && same.stderr.contains("input file"), "\(same.stderr)")
        #expect(try ternq(["quantize", "model.gguf", "--fallback", "f8"], in: dir).status == 64)
    }

    @Test func openCLGGUFInputIsByteIdenticalToCPU() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let m = PipelineGGUFJobTests.model()
        try Data(GGUFTestFile.make(PipelineGGUFJobTests.metadata, m.tensors)).write(to: URL(fileURLWithPath: dir + "/m.gguf"))
        let cpu = try ternq(["quantize", "m.gguf", "-o", "cpu.gguf", "--backend", "cpu", "--quiet"], in: dir)
        #expect(cpu.status == 0, "\(cpu.stderr)")
        let gpu = try ternq(["quantize", "m.gguf", "-o", "opencl.gguf", "--backend", "opencl", "--quiet"], in: dir)
        guard gpu.status == 0 else {
            #expect(gpu.status == 1 && gpu.stderr.split(separator: "\n").count == 1, "\(gpu.stderr)")
            return
        }
        let a = FileManager.default.contents(atPath: dir + "/cpu.gguf")
        #expect(a != nil && a == FileManager.default.contents(atPath: dir + "/opencl.gguf"))
    }

    @Test func badGGUFInputLeavesNoOutput() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let good = GGUFTestFile.make(PipelineGGUFJobTests.metadata, PipelineGGUFJobTests.model().tensors)
        try Data(good.prefix(good.count - 100)).write(to: URL(fileURLWithPath: dir + "/bad.gguf"))
        let run = try ternq(["quantize", "bad.gguf", "-o", "out.gguf"], in: dir)
        #expect(run.status == 1 && run.stderr.split(separator: "\n").count == 1 && run.stderr.contains("bad.gguf"), "\(run.stderr)")
        #expect(try files(dir) == ["bad.gguf"])
    }
}
