import ArgumentParser
import Foundation
import Logging
import TernaryQuant

/// The one place the CLI turns `--backend`/`--device` into a backend, through the library's
/// `BackendSelection` + `makeBackend` factory.
///
/// `--backend auto` (default; honours `TERNQ_DEVICE`), `cpu`, `opencl`, or any selection text
/// (`opencl:1`, `opencl:all`, `opencl:<name>`). `--device` refines `opencl`/`auto`: an index, a name
/// substring, or `all`.
func makeBackend(named name: String, device: String?) throws -> any QuantizationBackend {
    let lower = name.lowercased()
    let selection: BackendSelection
    if let device, !device.isEmpty {
        switch lower {
        case "cpu":
            throw CLIError("--device '\(device)' does not apply to the CPU backend")
        case "auto", "opencl", "gpu":
            selection = try BackendSelection(parsing: device.lowercased().hasPrefix("opencl") ? device : "opencl:\(device)")
        default:
            throw CLIError("--device cannot be combined with --backend \(name); use --backend opencl --device \(device)")
        }
    } else if lower == "auto" {
        selection = try BackendSelection.resolve(nil)
    } else {
        selection = try BackendSelection(parsing: name)
    }
    return try TernaryQuant.makeBackend(selection, logger: Logger(label: "ternq"))
}

/// Every backend `ternq verify` compares: the CPU backend, a single-threaded CPU backend with a different
/// chunk size (a different summation tree and work split, which must give the same bytes), the portable
/// CPU loops when the default ones are AVX2, every OpenCL
/// device on its own, and all OpenCL devices together when there are several. Devices that cannot be
/// used are reported on stderr and left out.
func availableBackends() -> [(label: String, backend: any QuantizationBackend)] {
    var list: [(label: String, backend: any QuantizationBackend)] = [
        ("cpu", CPUBackend()), ("cpu-1thread-4Ki", CPUBackend(threadCount: 1, chunkSize: 4096)),
    ]
    if CPUInstructionSet.automatic.usesAVX2 {
        list.append(("cpu-portable", CPUBackend(instructionSet: .portable)))
    }
    let logger = Logger(label: "ternq")
    guard let entries = try? OpenCLDeviceList.all() else { return list }
    for entry in entries {
        do {
            list.append(("opencl:\(entry.index)", try TernaryQuant.makeBackend(.opencl(device: .index(entry.index)), logger: logger)))
        } catch {
            printError("ternq: note: OpenCL device \(entry.summary) left out: \(error)")
        }
    }
    if entries.count > 1, let group = try? TernaryQuant.makeBackend(.openclAll, logger: logger) {
        list.append(("opencl:all", group))
    }
    return list
}

/// A failure reported as one line on stderr.
struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Writes `message` to stderr.
func printError(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}

/// Runs `body`, turning any error into one `ternq: error: …` line on stderr and exit status 1.
func reportingErrors(_ body: () throws -> Void) throws {
    AtomicFile.installSignalCleanup()
    do {
        try body()
    } catch let error as ExitCode {
        throw error
    } catch let error as ValidationError {
        throw error
    } catch {
        let text = DisplayText.escaped(String(describing: error).replacingOccurrences(of: "\n", with: " "))
        printError("ternq: error: \(text)")
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
