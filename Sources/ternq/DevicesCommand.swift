import ArgumentParser
import Foundation
import Logging
import SwiftOpenCL
import TernaryQuant
import TernaryQuantBench

/// `ternq devices`: lists OpenCL platforms and devices and says what `--device auto` would use.
struct DevicesCommand: TernQCommand {
    static let configuration = CommandConfiguration(
        commandName: "devices",
        abstract: "List OpenCL platforms and devices, and the device automatic selection picks.",
        discussion: """
            Device selection syntax (for --backend and the TERNQ_DEVICE environment variable): auto, cpu, \
            opencl, opencl:<index>, opencl:<name substring>, opencl:all. --check creates the backend \
            --backend/--device select (default: auto) and quantizes a test vector with it; a backend that \
            cannot be created or gives wrong bytes is an error (exit 1).
            """)

    @Flag(name: .long, help: "Print one JSON object instead of a table.")
    var json = false

    @Flag(name: .long, help: "Create the backend --backend/--device select and quantize a small test tensor with it (fails with the reason if it cannot be used).")
    var check = false

    @OptionGroup(title: "Backend (with --check)")
    var backendOptions: BackendOptions

    @Option(name: .long, help: "With --check: also compare the backend with the CPU backend byte for byte on random F32, F16 and BF16 tensors of this many elements.")
    var checkElements: Int = 0

    func validate() throws {
        guard checkElements >= 0 else { throw ValidationError("--check-elements must not be negative") }
        if checkElements > 0 { try validateElementCount(checkElements, bytesPerElement: 4, copies: 4, option: "--check-elements") }
        if !check && (backendOptions.backend != nil || backendOptions.device != nil || checkElements > 0) {
            throw ValidationError("--backend, --device and --check-elements apply with --check")
        }
        if case .every = backendOptions.backend {
            throw ValidationError("--backend all names several backends; --check checks one (use opencl:all for every OpenCL device)")
        }
    }

    func execute() throws {
        var entries: [OpenCLDeviceEntry] = []
        var problem: String?
        do {
            entries = try OpenCLDeviceList.all()
        } catch {
            problem = error.description
        }
        let automatic = OpenCLDeviceList.describeAutomaticChoice()
        var checked: String?
        if check, case .one(let selection) = try backendOptions.choice(default: .one(.automatic)) {
            let backend = try BackendOptions.make(selection)
            let weights = (-8...7).map(Float.init)
            let result = try Quantizer(backend: backend).quantize(weights, name: "check", shape: [16])
            guard result.data == [0xAA, 0x0A, 0x40, 0x55] else {
                throw CLIError("backend \(backend.name) gave wrong trits on the check vector")
            }
            checked = "\(selection) -> \(backend.name): \(backend.deviceDescription) (check vector OK)"
            if checkElements > 0 {
                let problems = try OpenCLBenchSupport.crossCheck(backend, elements: checkElements)
                guard problems.isEmpty else {
                    throw CLIError("backend \(backend.name) differs from the CPU backend: \(problems.joined(separator: "; "))")
                }
                checked? += "; byte-identical to the CPU backend on \(checkElements) elements (F32, F16, BF16)"
            }
        }
        if json {
            try printJSON(entries: entries, problem: problem, automatic: automatic, checked: checked)
        } else {
            printTable(entries: entries, problem: problem, automatic: automatic, checked: checked)
        }
    }

    private struct Report: Encodable {
        var devices: [OpenCLDeviceEntry]
        var error: String?
        var automatic: String
        var check: String?
    }

    private func printJSON(entries: [OpenCLDeviceEntry], problem: String?, automatic: String, checked: String?) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try encoder.encode(Report(devices: entries, error: problem, automatic: automatic, check: checked))
        print(String(decoding: data, as: UTF8.self))
    }

    private func printTable(entries: [OpenCLDeviceEntry], problem: String?, automatic: String, checked: String?) {
        if let problem { print(problem) }
        if entries.isEmpty && problem == nil { print("no OpenCL devices found") }
        var lastPlatform = -1
        for entry in entries {
            if entry.platformIndex != lastPlatform {
                print("platform \(entry.platformIndex): \(entry.platformName) (\(entry.platformVersion))")
                lastPlatform = entry.platformIndex
            }
            let info = entry.info
            print("  [\(entry.index)] \(info.name) — \(info.type), \(info.vendor)")
            print("      driver \(info.driverVersion); \(info.version); \(info.openCLCVersion)")
            print("      global memory \(mib(info.globalMemoryBytes)) MiB, max allocation \(mib(info.maxAllocationBytes)) MiB, \(info.computeUnits) compute units, max work-group \(info.maxWorkGroupSize)")
            print("      fp64 \(yesNo(info.supportsFP64)), fp32 denormals \(yesNo(info.singleDenormals)), correctly rounded fp32 divide \(yesNo(info.singleCorrectlyRoundedDivide)), available \(yesNo(info.available))")
        }
        print(automatic)
        if let checked { print("check: \(checked)") }
    }

    private func mib(_ bytes: UInt64) -> UInt64 { bytes >> 20 }
    private func yesNo(_ value: Bool) -> String { value ? "yes" : "no" }
}
