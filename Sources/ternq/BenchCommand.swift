import ArgumentParser

// TEMPORARY (replaced before merge to main by the owner of this command).
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bench", abstract: "(under construction)")
    func run() throws { throw ValidationError("'bench' is under construction") }
}
