import ArgumentParser
import Foundation
import TernaryQuant

/// `ternq verify`: quantize with every available backend and check the outputs are byte-identical.
struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Quantize with every available backend and confirm byte-identical results.",
        discussion: "Compares α bits and packed trits tensor by tensor. Exit 0 when identical, 2 on any difference, 1 on error.")

    @Argument(help: "Checkpoint: .safetensors file, shard directory, or index.json (default: demo model).")
    var input: String?

    @Option(parsing: .singleValue, help: "Glob of tensor names to quantize (repeatable).")
    var include: [String] = []

    @Option(parsing: .singleValue, help: "Glob of tensor names never to quantize (repeatable).")
    var exclude: [String] = []

    @Flag(help: "Print only mismatches and errors.")
    var quiet = false

    func run() throws {
        var mismatched = false
        try reportingErrors {
            let checkpoint = try openCheckpoint(input)
            let backends = availableBackends()
            let result = try BackendComparison.run(checkpoint, selection: TensorSelection(include: include, exclude: exclude), backends: backends)
            // A shard that shrank or changed while compared gave zeros/new bytes: the result means nothing.
            for file in checkpoint.files { try file.storage.checkIntact() }
            if !quiet {
                print("backends     \(backends.map { "\($0.label) (\($0.backend.deviceDescription))" }.joined(separator: ", "))")
                print("compared     \(result.tensorsCompared) tensors, \(result.elementsCompared) elements per backend")
            }
            for m in result.mismatches { print("MISMATCH     \(m)") }
            if result.mismatches.isEmpty {
                if !quiet { print("result       identical (α bits and packed trits) on every backend") }
            } else {
                print("result       \(result.mismatches.count) mismatches")
                mismatched = true
            }
        }
        if mismatched { throw ExitCode(2) }
    }
}
