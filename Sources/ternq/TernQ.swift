import ArgumentParser

/// `ternq`: ternary (absmean, BitNet b1.58) quantization of neural-network weights on CPU or OpenCL.
@main
struct TernQ: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ternq",
        abstract: "Quantize neural-network weights to ternary {-1, 0, +1} with one scale per layer.",
        discussion: """
            Results are byte-identical on every backend (CPU, OpenCL GPU, PoCL). Exit status: 0 success, \
            1 error (one 'ternq: error: …' line on stderr), 2 'verify' found a difference, 64 usage error.
            """,
        version: TernQVersion.current,
        subcommands: [QuantizeCommand.self, InfoCommand.self, VerifyCommand.self, BenchCommand.self, DevicesCommand.self],
        defaultSubcommand: nil
    )
}
