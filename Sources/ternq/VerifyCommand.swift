import ArgumentParser
import Foundation
import TernaryQuant

/// `ternq verify`: quantize with every available backend (or the CPU backend and the chosen one) and check
/// the outputs are byte-identical.
struct VerifyCommand: TernQCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Quantize with every available backend and confirm byte-identical results.",
        discussion: """
            Compares α bits and packed trits tensor by tensor. --backend all (default) compares every \
            available backend; any other --backend/--device compares that backend with the CPU backend. \
            Exit 0 when identical, 2 on any difference, 1 on error.
            """)

    @Argument(help: "Checkpoint: .safetensors file, shard directory, or index.json (default: demo model).")
    var input: String?

    @OptionGroup(title: "Tensor selection")
    var tensors: TensorSelectionOptions

    @OptionGroup(title: "Backend")
    var backendOptions: BackendOptions

    @Flag(help: "Print only mismatches and errors.")
    var quiet = false

    func execute() throws {
        let checkpoint = try openCheckpoint(input)
        let backends: [(label: String, backend: any QuantizationBackend)]
        switch try backendOptions.choice(default: .every) {
        case .every where backendOptions.device == nil:
            backends = availableBackends()
        case .every:
            backends = [("cpu", CPUBackend()), (try backendOptions.openCLSelectionForAll().description,
                                                try BackendOptions.make(backendOptions.openCLSelectionForAll()))]
        case .one(let selection):
            backends = [("cpu", CPUBackend()), (selection.description, try BackendOptions.make(selection))]
        }
        let result = try BackendComparison.run(checkpoint, selection: tensors.selection, backends: backends)
        // A shard that shrank or changed while compared gave zeros/new bytes: the result means nothing.
        for file in checkpoint.files { try file.storage.checkIntact() }
        if !quiet {
            print("backends     \(backends.map { "\($0.label) (\($0.backend.deviceDescription))" }.joined(separator: ", "))")
            print("compared     \(result.tensorsCompared) tensors, \(result.elementsCompared) elements per backend")
        }
        for m in result.mismatches { print("MISMATCH     \(m)") }
        guard result.mismatches.isEmpty else {
            print("result       \(result.mismatches.count) mismatches")
            throw ExitCode(2)
        }
        if !quiet { print("result       identical (α bits and packed trits) on every backend") }
    }
}
