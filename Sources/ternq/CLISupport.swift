import ArgumentParser
import Foundation
import Logging
import TernaryQuant
import TernaryQuantBench

/// The one version string of `ternq` (`ternq --version`).
enum TernQVersion {
    static let current = "0.9.0"
}

// MARK: - Option values (validation, help and shell completion from ArgumentParser)

/// An option value spelled as one of the raw values of a string enum, in any letter case.
protocol CaseInsensitiveArgument: ExpressibleByArgument, RawRepresentable<String>, CaseIterable {}

extension CaseInsensitiveArgument {
    /// The case whose raw value equals `argument`, ignoring case.
    public init?(argument: String) {
        guard let match = Self.allCases.first(where: { $0.rawValue.lowercased() == argument.lowercased() }) else { return nil }
        self = match
    }
}

extension OutputFormat: CaseInsensitiveArgument {}
extension GGUFTernaryType: CaseInsensitiveArgument {}
extension TernaryFallback: CaseInsensitiveArgument {}
extension ElementType: CaseInsensitiveArgument {}
extension BenchLayout: CaseInsensitiveArgument {}
extension CPUInstructionSet: CaseInsensitiveArgument {}

/// A `--backend` value: one backend selection (`auto`, `cpu`, `opencl`, `opencl:<index|name|all>`,
/// the `BackendSelection` syntax), or `all`: every backend, for the commands that compare backends
/// (`bench`, `verify`).
enum BackendChoice: ExpressibleByArgument, Hashable, CustomStringConvertible {
    case one(BackendSelection)
    case every

    public init?(argument: String) {
        if argument.trimmingCharacters(in: .whitespaces).lowercased() == "all" {
            self = .every
        } else if let selection = try? BackendSelection(parsing: argument) {
            self = .one(selection)
        } else {
            return nil
        }
    }

    static var allValueStrings: [String] { ["auto", "cpu", "opencl", "opencl:all", "all"] }

    var defaultValueDescription: String { description }

    var description: String {
        switch self {
        case .one(let selection): return selection.description
        case .every: return "all"
        }
    }
}

// MARK: - Option groups shared by the commands

/// `--include` / `--exclude`: which tensors are quantized (quantize, verify).
struct TensorSelectionOptions: ParsableArguments {
    @Option(parsing: .singleValue, help: "Glob of tensor names to quantize (repeatable).")
    var include: [String] = []

    @Option(parsing: .singleValue, help: "Glob of tensor names never to quantize (repeatable).")
    var exclude: [String] = []

    /// The library's selection for these options.
    var selection: TensorSelection { TensorSelection(include: include, exclude: exclude) }
}

/// `--backend` / `--device`: the one place the CLI turns them into backends, through the library's
/// `BackendSelection` + `makeBackend` factory (quantize, verify, bench, devices).
struct BackendOptions: ParsableArguments {
    @Option(help: ArgumentHelp(
        "Backend: auto (OpenCL GPU if any, else CPU; honours TERNQ_DEVICE), cpu, opencl, opencl:<index|name|all>; bench and verify also take all (every backend). Default: auto; bench: cpu; verify: all.",
        valueName: "backend"))
    var backend: BackendChoice?

    @Option(help: "OpenCL device for --backend auto/opencl/all: an index, a name substring, or 'all' (see 'ternq devices').")
    var device: String?

    func validate() throws {
        guard let device else { return }
        guard !device.trimmingCharacters(in: .whitespaces).isEmpty else { throw ValidationError("--device must not be empty") }
        switch backend {
        case .one(.cpu):
            throw ValidationError("--device '\(device)' does not apply to the CPU backend")
        case .one(.opencl(.default)), .one(.automatic), .every, nil:
            guard (try? deviceSelection(device)) != nil else {
                throw ValidationError("--device '\(device)' is not a device: use an index, a name substring or 'all'")
            }
        case .some(let choice):
            throw ValidationError("--device cannot be combined with --backend \(choice); use --backend opencl --device \(device)")
        }
    }

    /// `--device` as an OpenCL selection (`opencl:<device>`).
    private func deviceSelection(_ device: String) throws -> BackendSelection {
        try BackendSelection(parsing: device.lowercased().hasPrefix("opencl") ? device : "opencl:\(device)")
    }

    /// The choice, with `--device` folded in; `fallback` when `--backend` was not given.
    func choice(default fallback: BackendChoice) throws -> BackendChoice {
        let chosen = backend ?? fallback
        guard let device else { return chosen }
        if case .every = chosen { return .every }
        return .one(try deviceSelection(device))
    }

    /// The OpenCL selection `--backend all` uses: `--device`'s, else the default device.
    func openCLSelectionForAll() throws -> BackendSelection {
        try device.map(deviceSelection) ?? .opencl(device: .default)
    }

    /// One backend (quantize, devices): `--backend all` is refused, it names several.
    func makeSingle(default fallback: BackendChoice = .one(.automatic), cpuThreads: Int? = nil) throws -> any QuantizationBackend {
        switch try choice(default: fallback) {
        case .every:
            throw ValidationError("--backend all compares backends (bench, verify); to use every OpenCL device use --backend opencl:all")
        case .one(let selection):
            return try Self.make(selection, cpuThreads: cpuThreads)
        }
    }

    /// Builds `selection` (`.automatic` honours TERNQ_DEVICE); `cpuThreads` sizes a CPU backend.
    static func make(_ selection: BackendSelection, cpuThreads: Int? = nil) throws -> any QuantizationBackend {
        let resolved = selection == .automatic ? try BackendSelection.resolve(nil) : selection
        if resolved == .cpu, let cpuThreads { return CPUBackend(threadCount: cpuThreads) }
        return try TernaryQuant.makeBackend(resolved, logger: Logger(label: "ternq"))
    }
}

/// Every backend `ternq verify` compares: the CPU backend, a single-threaded CPU backend with a different
/// chunk size (a different summation tree and work split, which must give the same bytes), each lower
/// set of CPU loops this machine can run (AVX2 and portable on an AVX-512 machine), every OpenCL
/// device on its own, and all OpenCL devices together when there are several. Devices that cannot be
/// used are reported on stderr and left out.
func availableBackends() -> [(label: String, backend: any QuantizationBackend)] {
    var list: [(label: String, backend: any QuantizationBackend)] = [
        ("cpu", CPUBackend()), ("cpu-1thread-4Ki", CPUBackend(threadCount: 1, chunkSize: 4096)),
    ]
    for lower in CPUInstructionSet.lowerAlternatives {
        list.append(("cpu-\(lower.rawValue)", CPUBackend(instructionSet: lower)))
    }
    let logger = Logger(label: "ternq")
    guard let entries = try? OpenCLDeviceList.all() else { return list }
    for entry in entries {
        do {
            list.append(("opencl:\(entry.index)", try TernaryQuant.makeBackend(.opencl(device: .index(entry.index)), logger: logger)))
        } catch {
            printError("ternq: note: OpenCL device \(entry.summary) left out: \(cliMessage(error))")
        }
    }
    if entries.count > 1, let group = try? TernaryQuant.makeBackend(.openclAll, logger: logger) {
        list.append(("opencl:all", group))
    }
    return list
}

// MARK: - The one error path

/// A failure reported as one line on stderr (exit status 1).
struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Writes `message` to stderr.
func printError(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}

/// A library remedy in `ternq`'s own terms (its options and environment variable).
func cliPhrase(_ remedy: Remedy) -> String {
    switch remedy {
    case .allowOverwrite: return "pass --force to replace it"
    case .useCPUBackend: return "select the CPU backend instead (--backend cpu, or TERNQ_DEVICE=cpu)"
    case .excludeTensor(let name): return "exclude it with --exclude '\(name)'"
    }
}

/// `error` as one line: a `RemediableError`'s problem with its remedy phrased by `cliPhrase`, escaped.
func cliMessage(_ error: any Error) -> String {
    let text = (error as? any RemediableError)?.message(phrasingRemedy: cliPhrase) ?? String(describing: error)
    return DisplayText.escaped(text.replacingOccurrences(of: "\n", with: " "))
}

/// A `ternq` subcommand: `execute()` runs inside the one error path (`reportingErrors`).
protocol TernQCommand: ParsableCommand {
    /// The command's work; any error becomes one `ternq: error: …` line and exit status 1, a
    /// `ValidationError` a usage error (exit status 64), an `ExitCode` that status.
    func execute() throws
}

extension TernQCommand {
    func run() throws { try reportingErrors(execute) }
}

/// Runs `body`, turning any error into one `ternq: error: …` line on stderr and exit status 1
/// (`ExitCode` and `ValidationError`, the usage errors with status 64, pass through to ArgumentParser).
func reportingErrors(_ body: () throws -> Void) throws {
    AtomicFile.installSignalCleanup()
    do {
        try body()
    } catch let error as ExitCode {
        throw error
    } catch let error as ValidationError {
        throw error
    } catch {
        printError("ternq: error: \(cliMessage(error))")
        throw ExitCode.failure
    }
}

/// Opens `path` as a safetensors checkpoint, or the built-in demo model when `path` is nil.
func openCheckpoint(_ path: String?) throws -> SafetensorsCheckpoint {
    guard let path else { return try DemoModel.checkpoint() }
    let checkpoint = try SafetensorsCheckpoint(path: path)
    for warning in checkpoint.warnings { printError("ternq: warning: \(DisplayText.escaped(warning))") }
    return checkpoint
}

/// Throws a usage error (exit status 64) unless `elements` elements of `bytesPerElement` bytes, held
/// `copies` times, are positive and fit in this machine's physical memory (checked arithmetic: a count
/// near Int.max is refused, never trapped on).
func validateElementCount(_ elements: Int, bytesPerElement: Int, copies: Int, option: String) throws {
    guard elements > 0 else { throw ValidationError("\(option) must be positive") }
    let memory = ProcessInfo.processInfo.physicalMemory
    let (perCopy, o1) = elements.multipliedReportingOverflow(by: bytesPerElement)
    let (total, o2) = perCopy.multipliedReportingOverflow(by: copies)
    guard !o1, !o2, UInt64(total) <= memory else {
        let need = o1 || o2 ? "more than \(Int.max) bytes" : "about \(Human.bytes(total))"
        throw ValidationError("\(option) \(elements) needs \(need) of buffers, more than this machine's \(Human.bytes(Int(clamping: memory))) of memory")
    }
}

/// Human formatting helpers.
enum Human {
    static func bytes(_ n: Int) -> String {
        let v = Double(n)
        if v >= 1e9 { return String(format: "%.2f GB", v / 1e9) }
        if v >= 1e6 { return String(format: "%.2f MB", v / 1e6) }
        if v >= 1e3 { return String(format: "%.1f kB", v / 1e3) }
        return "\(n) B"
    }

    static func shape(_ s: [Int]) -> String { "[" + s.map(String.init).joined(separator: ", ") + "]" }

    static func seconds(_ s: Double) -> String {
        if s < 60 { return String(format: "%.1fs", s) }
        return String(format: "%dm%02ds", Int(s) / 60, Int(s) % 60)
    }

    /// Left-aligned columns separated by two spaces.
    /// Cells are escaped (`DisplayText.escaped`): names from files cannot break the table or the terminal.
    static func table(_ header: [String], _ rows: [[String]], rightAligned: Set<Int> = []) -> String {
        let rows = rows.map { $0.map(DisplayText.escaped) }
        var widths = header.map(\.count)
        for r in rows { for (i, c) in r.enumerated() where i < widths.count { widths[i] = max(widths[i], c.count) } }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { i, c in
                let pad = String(repeating: " ", count: max(0, widths[i] - c.count))
                return rightAligned.contains(i) ? pad + c : c + pad
            }.joined(separator: "  ").trimmingCharacters(in: .whitespaces)
        }
        return ([line(header), line(widths.map { String(repeating: "-", count: $0) })] + rows.map(line)).joined(separator: "\n")
    }
}

/// A one-line progress bar on stderr (only used when stderr is a terminal).
final class ProgressBar {
    private var lastDraw = 0.0
    static var enabled: Bool { isatty(2) == 1 }

    func update(_ p: JobProgress) {
        guard p.elapsed - lastDraw >= 0.1 || p.tensorsDone == p.tensorCount else { return }
        lastDraw = p.elapsed
        let fraction = p.totalBytes > 0 ? Double(p.bytesDone) / Double(p.totalBytes) : 1
        let width = 24
        let filled = Int(fraction * Double(width))
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        let rate = p.elapsed > 0 ? Double(p.bytesDone) / p.elapsed : 0
        let eta = rate > 0 ? Double(p.totalBytes - p.bytesDone) / rate : 0
        let line = "\r[\(bar)] \(p.tensorsDone)/\(p.tensorCount) tensors  \(Human.bytes(p.bytesDone))/\(Human.bytes(p.totalBytes))  \(Human.bytes(Int(rate)))/s  ETA \(Human.seconds(eta))\u{1B}[K"
        FileHandle.standardError.write(Data(line.utf8))
    }

    func finish() {
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
    }
}
