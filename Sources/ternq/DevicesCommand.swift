import ArgumentParser

// TEMPORARY (replaced before merge to main by the owner of this command).
struct DevicesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "devices", abstract: "(under construction)")
    func run() throws { throw ValidationError("'devices' is under construction") }
}
