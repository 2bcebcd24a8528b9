import ArgumentParser

// TEMPORARY (replaced before merge to main by the owner of this command).
struct InfoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "info", abstract: "(under construction)")
    func run() throws { throw ValidationError("'info' is under construction") }
}
