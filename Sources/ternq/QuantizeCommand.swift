import ArgumentParser
import Foundation
import TernaryQuant

/// `ternq quantize`: quantize a safetensors or GGUF checkpoint (or the built-in demo model) to .tern, GGUF
/// or safetensors, with a per-layer report.
struct QuantizeCommand: TernQCommand {
    static let configuration = CommandConfiguration(
        commandName: "quantize",
        abstract: "Quantize a safetensors or GGUF checkpoint (or the built-in demo model) to ternary weights.",
        discussion: """
        INPUT is a .safetensors file, a directory of shards, a model.safetensors.index.json, or a .gguf file \
        (the first part of a split model reads every part). Without INPUT the built-in demo model (4 \
        synthetic transformer layers, ~13 MB) is used. By default F32/F16/BF16 tensors of rank >= 2 are \
        quantized: safetensors names ending in 'weight' except 'embed', 'norm', 'lm_head'; GGUF \
        'blk.N.*.weight' except norms (token_embd and output are kept); --include/--exclude globs override. \
        GGUF output keeps every input key/value and sets general.file_type to TQ2_0/TQ1_0; tensors whose \
        row length is not a multiple of 256 stay ternary as F16 (--fallback keep: original values). \
        --dequantize writes the ternary network as ordinary weights in the input's format. Output is \
        written atomically and never replaces an input file.
        """)

    @Argument(help: "Checkpoint: .safetensors file, shard directory, index.json, or .gguf (default: demo model).")
    var input: String?

    @Option(name: .shortAndLong, help: "Output file (default: <input stem>.<format> in the current directory).")
    var output: String?

    @Option(help: "Output format (default: from the output extension, else the input's format for GGUF input or --dequantize, else tern).")
    var format: OutputFormat?

    @Option(name: .customLong("gguf-type"), help: "GGUF ternary type.")
    var ggufType: GGUFTernaryType = .tq2_0

    @Option(name: .customLong("csr-threshold"), help: ".tern: store a layer as CSR when its sparsity >= this (0...1).")
    var csrThreshold: Double = TernFormat.defaultCSRThreshold

    @OptionGroup(title: "Backend")
    var backendOptions: BackendOptions

    @Option(help: "GGUF output: a selected tensor whose row length is not a multiple of 256 becomes 'ternary' (F16 holding f16(α)·t) or 'keep' (original values).")
    var fallback: TernaryFallback = .ternary

    @Flag(help: "Write the ternary network as ordinary weights (selected tensors hold α·t in their own dtype), in the input's format.")
    var dequantize = false

    @OptionGroup(title: "Tensor selection")
    var tensors: TensorSelectionOptions

    @Option(help: "Write the JSON report (schema ternq.quantize-report/1) to this file ('-' for stdout).")
    var json: String?

    @Flag(help: "No progress bar and no table (errors only).")
    var quiet = false

    @Flag(help: "Replace an existing output file.")
    var force = false

    @Flag(help: "Publish the output without waiting for it to reach the disk (no fsync): faster for scratch outputs; a crash or power loss soon after can leave it empty or truncated.")
    var noFsync = false

    func validate() throws {
        if case .every = backendOptions.backend {
            throw ValidationError("--backend all compares backends (bench, verify); to quantize on every OpenCL device use --backend opencl:all")
        }
        if !(0...1).contains(csrThreshold) {
            throw ValidationError("--csr-threshold must be between 0 and 1")
        }
    }

    var inputIsGGUF: Bool { input?.lowercased().hasSuffix(".gguf") ?? false }

    func resolvedFormat() -> OutputFormat {
        if let format { return format }
        if let output, let f = OutputFormat.inferred(fromPath: output) { return f }
        if inputIsGGUF { return .gguf }
        if dequantize && input != nil { return .safetensors }
        return .tern
    }

    func defaultOutput(_ format: OutputFormat) -> String {
        guard let input else { return "ternq-demo.\(format.fileExtension)" }
        var stem = (input as NSString).lastPathComponent
        while stem.hasSuffix("/") { stem.removeLast() }
        for suffix in [".safetensors.index.json", ".index.json", ".safetensors", ".gguf", ".GGUF"] where stem.hasSuffix(suffix) {
            stem.removeLast(suffix.count)
        }
        // A split GGUF's first part: model-00001-of-00003 → model.
        if let range = stem.range(of: #"-[0-9]{5}-of-[0-9]{5}$"#, options: .regularExpression) { stem.removeSubrange(range) }
        if stem.isEmpty || stem == "." { stem = "model" }
        if dequantize { return "\(stem).dequantized.\(format.fileExtension)" }
        if format == .safetensors { return "\(stem).ternary.safetensors" }
        if format == .gguf && inputIsGGUF { return "\(stem)-\(ggufType.rawValue).gguf" }
        return "\(stem).\(format.fileExtension)"
    }

    func execute() throws {
        let format = resolvedFormat()
        let outputPath = output ?? defaultOutput(format)
        let backend = try backendOptions.makeSingle()
        let checkpoint: any CheckpointSource = try input.map { try CheckpointSources.open(path: $0) }
            ?? SafetensorsSource(try openCheckpoint(nil))
        let openWarnings = checkpoint.warnings
        for warning in openWarnings { printError("ternq: warning: \(DisplayText.escaped(warning))") }
        let options = QuantizationOptions(
            format: format, ggufType: ggufType, csrThreshold: csrThreshold, selection: tensors.selection,
            overwrite: force, fallback: fallback, dequantize: dequantize, durable: !noFsync)
        let job = CheckpointQuantizer(backend: backend)
        let bar: ProgressBar? = (!quiet && ProgressBar.enabled) ? ProgressBar() : nil
        let report: QuantizationReport
        do {
            report = try job.run(checkpoint, outputPath: outputPath, options: options) { bar?.update($0) }
            bar?.finish()
        } catch {
            bar?.finish()
            throw error
        }
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            let data = try encoder.encode(report)
            if json == "-" {
                FileHandle.standardOutput.write(data + Data("\n".utf8))
            } else {
                let file = try AtomicFile(path: json, overwrite: true)
                try file.write(Array(data) + Array("\n".utf8))
                try file.commit()
            }
        }
        for warning in (report.warnings ?? []).dropFirst(openWarnings.count) {
            printError("ternq: warning: \(DisplayText.escaped(warning))")
        }
        if !quiet && json != "-" { print(ReportPrinter.text(report)) }
    }
}

/// Renders a `QuantizationReport` as the per-layer table and totals.
enum ReportPrinter {
    static func text(_ r: QuantizationReport) -> String {
        let rows: [[String]] = r.layers.map { l in
            [l.name, Human.shape(l.shape), l.dtype, l.action.rawValue,
             l.scale.map { String(format: "%.6g", Double($0)) } ?? "-",
             l.sparsity.map { String(format: "%.4f", $0) } ?? "-",
             l.mse.map { String(format: "%.4g", $0) } ?? "-",
             l.storage, Human.bytes(l.outputBytes)]
        }
        var out = Human.table(["tensor", "shape", "dtype", "action", "scale", "sparsity", "mse", "storage", "bytes"], rows,
                              rightAligned: [4, 5, 6, 8])
        let notQuantized = r.layers.filter { $0.action != .quantized }
        if !notQuantized.isEmpty {
            out += "\n\nnot quantized:"
            for l in notQuantized { out += "\n  \(l.action.rawValue) \(l.name): \(l.reason)" }
        }
        let noted = r.layers.filter { !($0.notes ?? []).isEmpty }
        if !noted.isEmpty {
            out += "\n\nnotes:"
            for l in noted { for n in l.notes ?? [] { out += "\n  \(l.name): \(n)" } }
        }
        let t = r.totals
        out += "\n\n"
        out += "input        \(r.input)\n"
        out += "output       \(r.output) (\(r.format.rawValue)\(r.ggufType.map { ", " + $0.rawValue } ?? ""))\n"
        out += "tensors      \(t.tensorsQuantized) quantized, \(t.tensorsKept) kept, \(t.tensorsSkipped) skipped\n"
        out += "parameters   \(t.parameters) (\(t.quantizedParameters) quantized)\n"
        out += "bytes        \(Human.bytes(t.inputBytes)) in, \(Human.bytes(t.outputBytes)) out, "
        out += String(format: "%.2fx smaller than f16\n", t.compressionVsF16)
        out += String(format: "time         %.3f s, %.2f GB/s of input\n", t.seconds, t.gigabytesPerSecond)
        out += "backend      \(r.backend): \(r.device)"
        for note in r.notes { out += "\nnote         \(note)" }
        return out
    }
}
