import Foundation
import Testing
import TernaryQuant
import TernaryQuantTestSupport

/// Runs the built `ternq` in a subprocess with a modified environment (the ICD loader and PoCL read
/// their environment once per process, so fallback and multi-device behaviour are tested this way).
/// Reads a pipe to its end on a background thread.
final class DrainedPipe: @unchecked Sendable {
    private var data = Data()
    private let done = DispatchSemaphore(value: 0)

    init(_ pipe: Pipe) {
        let handle = pipe.fileHandleForReading
        DispatchQueue.global().async {
            self.data = handle.readDataToEndOfFile()
            self.done.signal()
        }
    }

    /// Everything the pipe delivered, once its writer closed it.
    func wait() -> Data {
        done.wait()
        return data
    }
}

enum TernqProcess {
    /// The `ternq` executable next to the test bundle, or `nil` (tests skip with a printed reason).
    static let executable: URL? = {
        var directory = URL(fileURLWithPath: CommandLine.arguments.first ?? "").deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = directory.appendingPathComponent("ternq")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
            directory = directory.deletingLastPathComponent()
        }
        print("ternq subprocess tests skipped: built 'ternq' not found next to the test bundle (run 'swift build' first)")
        return nil
    }()

    /// The tiny safetensors checkpoint of Tests/Fixtures, the input of the subprocess suites.
    static let tinySafetensors = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/tiny/tiny.safetensors").path

    struct Output {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Runs `ternq` with `arguments` in `directory` (default: the current one) and the current environment
    /// plus `changes`. stdout and stderr are drained concurrently, so a chatty child cannot block on a full pipe.
    static func run(_ arguments: [String], environment changes: [String: String],
                    directory: String? = nil) throws -> Output {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        var environment = ProcessInfo.processInfo.environment
        for (key, value) in changes { environment[key] = value }
        process.environment = environment
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let errData = DrainedPipe(err)
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Output(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                      stderr: String(decoding: errData.wait(), as: UTF8.self))
    }


    /// Oclgrind's ICD library, from the places Debian/Ubuntu and a source install put it; `nil` if absent.
    static let oclgrindLibrary: String? = [
        "/usr/lib/oclgrind/liboclgrind-rt-icd.so", "/usr/lib/x86_64-linux-gnu/liboclgrind-rt-icd.so",
        "/usr/lib/aarch64-linux-gnu/liboclgrind-rt-icd.so", "/usr/local/lib/liboclgrind-rt-icd.so",
    ].first { FileManager.default.fileExists(atPath: $0) }

    /// A fresh directory holding one ICD file that registers Oclgrind (for OCL_ICD_VENDORS); the caller removes it.
    static func oclgrindVendors() throws -> String? {
        guard let library = oclgrindLibrary else { return nil }
        let directory = try emptyDirectory()
        try Data((library + "\n").utf8).write(to: URL(fileURLWithPath: directory + "/oclgrind.icd"))
        return directory
    }

    /// A fresh empty directory (an OCL_ICD_VENDORS with no platform); the caller removes it.
    static func emptyDirectory() throws -> String {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("ternq-empty-icd-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url.path
    }
}

@Suite("ternq devices in a subprocess: fallback and several devices", .enabled(if: TernqProcess.executable != nil))
struct OpenCLCLITests {
    @Test("no OpenCL platform: automatic falls back to the CPU with one warning")
    func automaticFallsBack() throws {
        let empty = try TernqProcess.emptyDirectory()
        defer { try? FileManager.default.removeItem(atPath: empty) }
        let result = try TernqProcess.run(["devices", "--check", "--backend", "auto"], environment: ["OCL_ICD_VENDORS": empty])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("check: auto -> cpu"))
        #expect(result.stdout.contains("CL_PLATFORM_NOT_FOUND_KHR"))
        let warnings = result.stderr.components(separatedBy: "\n").filter { $0.contains("warning") }
        #expect(warnings.count == 1, "\(result.stderr)")
        #expect(warnings.first?.contains("using the CPU backend") == true)
    }

    @Test("no OpenCL platform: an explicit OpenCL choice fails and says how to fix it")
    func explicitFails() throws {
        let empty = try TernqProcess.emptyDirectory()
        defer { try? FileManager.default.removeItem(atPath: empty) }
        for selection in ["opencl", "opencl:0", "opencl:all"] {
            let result = try TernqProcess.run(["devices", "--check", "--backend", selection], environment: ["OCL_ICD_VENDORS": empty])
            #expect(result.status != 0)
            #expect(result.stderr.contains("install pocl-opencl-icd"), "\(result.stderr)")
        }
    }

    @Test("Oclgrind registered as the only platform: listed, but automatic uses the CPU backend",
          .enabled(if: TernqProcess.oclgrindLibrary != nil || OpenCLTestSupport.required.contains("oclgrind")))
    func automaticSkipsOclgrind() throws {
        let vendors = try #require(try TernqProcess.oclgrindVendors(), "Oclgrind is required but its ICD library is missing")
        defer { try? FileManager.default.removeItem(atPath: vendors) }
        let result = try TernqProcess.run(["devices", "--check", "--backend", "auto"], environment: ["OCL_ICD_VENDORS": vendors])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("Oclgrind"), "\(result.stdout)")
        #expect(result.stdout.contains("check: auto -> cpu"), "\(result.stdout)")
    }

    @Test("a bad --backend selection is a usage error that lists the accepted values")
    func badSelection() throws {
        let result = try TernqProcess.run(["devices", "--check", "--backend", "metal"], environment: [:])
        #expect(result.status == 64)
        #expect(result.stderr.contains("'metal' is invalid for '--backend <backend>'") && result.stderr.contains("'opencl:all'"),
                "\(result.stderr)")
    }

    @Test("POCL_DEVICES='pthread pthread': PoCL lists two devices; opencl:all is byte-identical to the CPU backend",
          .enabled(if: OpenCLTestSupport.hasPoCL))
    func twoPoCLDevices() throws {
        let result = try TernqProcess.run(["devices", "--json", "--check", "--backend", "opencl:all", "--check-elements", "50001"],
                                          environment: ["POCL_DEVICES": "pthread pthread"])
        #expect(result.status == 0, "\(result.stderr)")
        let object = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
        let devices = object?["devices"] as? [[String: Any]] ?? []
        // Other platforms (rusticl, Clover, a GPU driver) may be installed too: count PoCL's devices only.
        let pocl = devices.filter { (($0["platformName"] as? String) ?? "").contains("Portable Computing Language") }
        #expect(pocl.count == 2, "\(devices.map { $0["platformName"] ?? "?" })")
        #expect((object?["check"] as? String)?.contains("check vector OK") == true)
        #expect((object?["check"] as? String)?.contains("OpenCL devices") == true)
        #expect((object?["check"] as? String)?.contains("byte-identical to the CPU backend") == true)
    }
}

@Suite("OpenCL implementations CI requires are present (TERNQ_REQUIRE_OPENCL)",
       .enabled(if: !OpenCLTestSupport.required.isEmpty))
struct OpenCLRequiredImplementationTests {
    @Test("every implementation named in TERNQ_REQUIRE_OPENCL has a device in this process")
    func requiredPresent() throws {
        let entries = try OpenCLDeviceList.all()
        for name in OpenCLTestSupport.required {
            #expect(entries.contains { OpenCLTestSupport.matches(name, $0) },
                    "TERNQ_REQUIRE_OPENCL names \(name), but the devices are \(entries.map(\.summary))")
        }
    }
}
