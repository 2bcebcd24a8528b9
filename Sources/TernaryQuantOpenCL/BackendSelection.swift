import TernaryQuantCore
import Foundation
import Logging
import SwiftOpenCL

/// Which OpenCL device an explicit OpenCL selection means.
public enum DeviceSelector: Sendable, Hashable, CustomStringConvertible {
    /// The best GPU/accelerator, else the first device.
    case `default`
    /// The device with this index in `OpenCLDeviceList.all()` (the order `ternq devices` prints).
    case index(Int)
    /// The first device whose name, vendor or platform name contains this text (case-insensitive).
    case name(String)

    /// "default", the index, or the name substring.
    public var description: String {
        switch self {
        case .default: return "default"
        case .index(let index): return String(index)
        case .name(let text): return text
        }
    }
}

/// Which backend to quantize with.
///
/// Text syntax (CLI `--device` and the `TERNQ_DEVICE` environment variable): `auto`, `cpu`, `opencl`,
/// `opencl:<index>`, `opencl:<name substring>`, `opencl:all`.
public enum BackendSelection: Sendable, Hashable, CustomStringConvertible {
    /// The best real GPU/accelerator OpenCL device (never a simulator such as Oclgrind), else the native CPU
    /// backend (never PoCL's CPU device);
    /// OpenCL problems fall back to the CPU backend with one warning.
    case automatic
    /// The native CPU backend.
    case cpu
    /// One OpenCL device; failures are errors.
    case opencl(device: DeviceSelector)
    /// Every OpenCL device (an `OpenCLDeviceGroup`); failures are errors.
    case openclAll

    /// The environment variable that overrides the default selection: `TERNQ_DEVICE`.
    public static let environmentVariable = "TERNQ_DEVICE"

    /// Parses the text syntax (case-insensitive keywords; surrounding spaces ignored).
    /// Throws `OpenCLBackendError.invalidSelection` for anything else.
    public init(parsing text: String) throws(OpenCLBackendError) {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let lower = trimmed.lowercased()
        switch lower {
        case "auto", "automatic": self = .automatic
        case "cpu": self = .cpu
        case "opencl", "gpu": self = .opencl(device: .default)
        case "opencl:all", "all": self = .openclAll
        default:
            guard lower.hasPrefix("opencl:") else { throw OpenCLBackendError.invalidSelection(text) }
            let argument = String(trimmed.dropFirst("opencl:".count))
            guard !argument.isEmpty else { throw OpenCLBackendError.invalidSelection(text) }
            if let index = Int(argument) {
                guard index >= 0 else { throw OpenCLBackendError.invalidSelection(text) }
                self = .opencl(device: .index(index))
            } else {
                self = .opencl(device: .name(argument))
            }
        }
    }

    /// The selection to use: `explicit` (e.g. a CLI option) if given, else `TERNQ_DEVICE` from
    /// `environment` if set and non-empty, else `.automatic`. Throws `.invalidSelection` for a bad variable.
    public static func resolve(_ explicit: BackendSelection?,
                               environment: [String: String] = ProcessInfo.processInfo.environment)
        throws(OpenCLBackendError) -> BackendSelection
    {
        if let explicit { return explicit }
        if let text = environment[environmentVariable], !text.trimmingCharacters(in: .whitespaces).isEmpty {
            return try BackendSelection(parsing: text)
        }
        return .automatic
    }

    /// The text syntax of this selection.
    public var description: String {
        switch self {
        case .automatic: return "auto"
        case .cpu: return "cpu"
        case .opencl(.default): return "opencl"
        case .opencl(let selector): return "opencl:\(selector)"
        case .openclAll: return "opencl:all"
        }
    }
}

/// One OpenCL device as `ternq devices` lists it.
public struct OpenCLDeviceEntry: Sendable, Hashable, Codable {
    /// Flat index across all platforms (what `opencl:<index>` selects).
    public var index: Int
    /// Index of the platform.
    public var platformIndex: Int
    /// Platform name.
    public var platformName: String
    /// Platform version string.
    public var platformVersion: String
    /// Device properties.
    public var info: CLDeviceInfo
    /// The device handle (not encoded).
    public var device: CLDevice? { handle }
    private var handle: CLDevice?

    enum CodingKeys: String, CodingKey { case index, platformIndex, platformName, platformVersion, info }

    /// Creates an entry.
    public init(index: Int, platformIndex: Int, platformName: String, platformVersion: String, info: CLDeviceInfo,
                device: CLDevice?) {
        self.index = index
        self.platformIndex = platformIndex
        self.platformName = platformName
        self.platformVersion = platformVersion
        self.info = info
        self.handle = device
    }

    /// Names (lowercase) that mark an OpenCL simulator or debugging tool in a platform name, platform or
    /// device vendor, or device name. Oclgrind reports itself as a GPU, accelerator and CPU at once.
    public static let simulatorNames = ["oclgrind"]

    /// Whether the device is a simulator (see `simulatorNames`): listed and selectable explicitly, never
    /// chosen by automatic selection.
    public var isSimulator: Bool {
        let text = [platformName, info.vendor, info.name].joined(separator: " ").lowercased()
        return Self.simulatorNames.contains { text.contains($0) }
    }

    /// "index: name (type, platform)".
    public var summary: String { "\(index): \(info.name) (\(info.type), \(platformName))" }
}

/// Discovery of OpenCL devices and the automatic choice.
public enum OpenCLDeviceList {
    /// Every device of every platform, in a stable flat order. Throws `OpenCLBackendError.noPlatform`
    /// when no platform exists (no ICD installed, −1001) or the loader fails.
    public static func all() throws(OpenCLBackendError) -> [OpenCLDeviceEntry] {
        let platforms: [CLPlatform]
        do {
            platforms = try CLPlatform.requireAll()
        } catch {
            throw OpenCLBackendError.noPlatform(error)
        }
        var entries: [OpenCLDeviceEntry] = []
        for (platformIndex, platform) in platforms.enumerated() {
            let devices: [CLDevice]
            do { devices = try platform.devices() } catch { continue }  // a broken platform hides only itself
            for device in devices {
                guard let info = try? device.info() else { continue }
                entries.append(OpenCLDeviceEntry(index: entries.count, platformIndex: platformIndex,
                                                 platformName: platform.name, platformVersion: platform.version,
                                                 info: info, device: device))
            }
        }
        return entries
    }

    /// The device `.automatic` uses: the available real GPU/accelerator (no simulator such as Oclgrind, see
    /// `OpenCLDeviceEntry.isSimulator`) with the most global memory (then most compute units, then lowest
    /// index); `nil` when there is none (automatic then uses the CPU backend).
    public static func automaticChoice(_ entries: [OpenCLDeviceEntry]) -> OpenCLDeviceEntry? {
        entries.filter { $0.info.isGPUOrAccelerator && $0.info.available && !$0.isSimulator }.max { a, b in
            (a.info.globalMemoryBytes, a.info.computeUnits, -a.index) < (b.info.globalMemoryBytes, b.info.computeUnits, -b.index)
        }
    }

    /// The device an explicit `opencl` selection means, or `nil` if none matches.
    public static func select(_ selector: DeviceSelector, from entries: [OpenCLDeviceEntry]) -> OpenCLDeviceEntry? {
        switch selector {
        case .default:
            return automaticChoice(entries) ?? entries.first
        case .index(let index):
            return entries.first { $0.index == index }
        case .name(let text):
            let needle = text.lowercased()
            return entries.first {
                $0.info.name.lowercased().contains(needle) || $0.info.vendor.lowercased().contains(needle)
                    || $0.platformName.lowercased().contains(needle)
            }
        }
    }

    /// One line saying what `.automatic` would use on this machine (for `ternq devices`).
    public static func describeAutomaticChoice() -> String {
        do {
            let entries = try all()
            if let choice = automaticChoice(entries) {
                return "automatic: OpenCL device \(choice.summary)"
            }
            return "automatic: native CPU backend (no OpenCL GPU or accelerator found)"
        } catch {
            return "automatic: native CPU backend (OpenCL unavailable: \(error))"
        }
    }
}

/// Options for the OpenCL backends `makeBackend` creates.
public struct OpenCLOptions: Sendable, Hashable {
    /// Elements per chunk (see `OpenCLBackend.init`).
    public var chunkElements: Int
    /// Requested work-group size (see `OpenCLBackend.init`).
    public var workGroupSize: Int

    /// Defaults: `OpenCLBackend.defaultChunkElements`, `OpenCLBackend.defaultWorkGroupSize`.
    public init(chunkElements: Int = OpenCLBackend.defaultChunkElements,
                workGroupSize: Int = OpenCLBackend.defaultWorkGroupSize) {
        self.chunkElements = chunkElements
        self.workGroupSize = workGroupSize
    }
}

/// The logger `makeBackend` uses when none is given (label "TernaryQuant").
public let defaultBackendLogger = Logger(label: "TernaryQuant")

/// Creates the backend for `selection`.
///
/// `.automatic` never throws: when OpenCL is missing (no ICD, no platform −1001, no device), kernels fail to
/// build, or the device later fails (e.g. out of memory), it uses the native CPU backend and logs one
/// warning through `logger`. Explicit OpenCL selections throw `OpenCLBackendError` saying what failed and
/// how to fix it.
public func makeBackend(_ selection: BackendSelection, logger: Logger = defaultBackendLogger,
                        options: OpenCLOptions = OpenCLOptions()) throws -> any QuantizationBackend {
    switch selection {
    case .cpu:
        return CPUBackend()
    case .automatic:
        let entries: [OpenCLDeviceEntry]
        do {
            entries = try OpenCLDeviceList.all()
        } catch {
            logger.warning("OpenCL unavailable, using the CPU backend: \(error)")
            return CPUBackend()
        }
        guard let choice = OpenCLDeviceList.automaticChoice(entries), let device = choice.device else {
            logger.debug("no OpenCL GPU or accelerator found; using the native CPU backend")
            return CPUBackend()
        }
        do {
            let backend = try OpenCLBackend(device: device, chunkElements: options.chunkElements,
                                            workGroupSize: options.workGroupSize)
            return FallbackBackend(primary: backend, logger: logger)
        } catch {
            logger.warning("OpenCL device '\(choice.info.name)' unusable, using the CPU backend: \(error)")
            return CPUBackend()
        }
    case .opencl(let selector):
        let entries = try OpenCLDeviceList.all()
        guard let choice = OpenCLDeviceList.select(selector, from: entries), let device = choice.device else {
            throw OpenCLBackendError.noDevice(selector: selector.description, available: entries.map(\.summary))
        }
        return try OpenCLBackend(device: device, chunkElements: options.chunkElements, workGroupSize: options.workGroupSize)
    case .openclAll:
        let entries = try OpenCLDeviceList.all()
        guard !entries.isEmpty else { throw OpenCLBackendError.noDevice(selector: "all", available: []) }
        var members: [OpenCLBackend] = []
        for entry in entries {
            guard let device = entry.device else { continue }
            members.append(try OpenCLBackend(device: device, chunkElements: options.chunkElements,
                                             workGroupSize: options.workGroupSize))
        }
        return try OpenCLDeviceGroup(members: members)
    }
}

/// The backend `.automatic` returns for a GPU: the OpenCL backend until it fails with a device error
/// (e.g. out of memory), then the CPU backend for that call and every later one, after one warning.
package final class FallbackBackend: QuantizationBackend, @unchecked Sendable {
    package let primary: any QuantizationBackend
    let fallback = CPUBackend()
    let logger: Logger
    private let lock = NSLock()
    private var failed = false

    init(primary: any QuantizationBackend, logger: Logger) {
        self.primary = primary
        self.logger = logger
    }

    private var hasFailed: Bool {
        lock.lock()
        defer { lock.unlock() }
        return failed
    }

    package var name: String { hasFailed ? fallback.name : primary.name }
    package var deviceDescription: String { hasFailed ? fallback.deviceDescription : primary.deviceDescription }
    package var preferredConcurrency: Int { hasFailed ? fallback.preferredConcurrency : primary.preferredConcurrency }

    package func quantize(_ input: TensorInput, layout: TritLayout, into output: UnsafeMutableRawBufferPointer) throws
        -> QuantizationSummary
    {
        if !hasFailed {
            do {
                return try primary.quantize(input, layout: layout, into: output)
            } catch let error as OpenCLBackendError {
                lock.lock()
                let first = !failed
                failed = true
                lock.unlock()
                if first { logger.warning("OpenCL failed, continuing on the CPU backend: \(error)") }
            }
        }
        return try fallback.quantize(input, layout: layout, into: output)
    }
}
