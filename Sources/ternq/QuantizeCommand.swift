import ArgumentParser

// TEMPORARY (replaced before merge to main by the owner of this command).
struct QuantizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "quantize", abstract: "(under construction)")
    func run() throws { throw ValidationError("'quantize' is under construction") }
}
