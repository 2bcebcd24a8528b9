import ArgumentParser

// TEMPORARY (replaced before merge to main by the owner of this command).
struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "verify", abstract: "(under construction)")
    func run() throws { throw ValidationError("'verify' is under construction") }
}
