#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Testing
import TernaryQuant
import TernaryQuantTestSupport
@testable import TernaryQuantCore
@testable import TernaryQuantFormats
@testable import TernaryQuantOpenCL
@testable import TernaryQuantPipeline

/// End-to-end hardening tests of the built `ternq`: usage errors, real write failures (a file-size
/// limit), interruption, concurrent runs, inputs truncated mid-run, hostile names and bad configs.
/// Races are made deterministic by stopping the child (SIGSTOP) as soon as its temporary output exists.
@Suite("Hardening: ternq end to end", .serialized, .enabled(if: TernqProcess.executable != nil))
struct HardeningCLITests {
    static let tiny = TernqProcess.tinySafetensors

    func ternq(_ arguments: [String], in directory: String) throws -> TernqProcess.Output {
        try TernqProcess.run(arguments, environment: [:], directory: directory)
    }

    func files(_ dir: String) throws -> [String] { try FileManager.default.contentsOfDirectory(atPath: dir).sorted() }

    func temporaries(_ dir: String) throws -> [String] { try files(dir).filter { AtomicFile.temporaryFileOwner($0) != nil } }

    /// A `ternq` child with drained pipes.
    final class Child {
        let process = Process()
        private var out: DrainedPipe?
        private var err: DrainedPipe?

        init(_ arguments: [String], directory: String, shellPrefix: String? = nil) throws {
            let binary = try #require(TernqProcess.executable).path
            if let shellPrefix {
                process.executableURL = URL(fileURLWithPath: "/bin/sh")
                process.arguments = ["-c", shellPrefix + "; exec \"$0\" \"$@\"", binary] + arguments
            } else {
                process.executableURL = URL(fileURLWithPath: binary)
                process.arguments = arguments
            }
            process.currentDirectoryURL = URL(fileURLWithPath: directory)
            let o = Pipe(), e = Pipe()
            process.standardOutput = o
            process.standardError = e
            try process.run()
            out = DrainedPipe(o)
            err = DrainedPipe(e)
        }

        var pid: pid_t { process.processIdentifier }

        /// Waits for exit; returns (status or signal, stdout, stderr).
        func finish() -> (status: Int32, signaled: Bool, stdout: String, stderr: String) {
            let o = out?.wait() ?? Data(), e = err?.wait() ?? Data()
            process.waitUntilExit()
            return (process.terminationStatus, process.terminationReason == .uncaughtSignal,
                    String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
        }
    }

    /// Starts `ternq arguments` in `dir` and stops it (SIGSTOP) as soon as a temporary output file appears
    /// there, before it can publish. Fails the test if the child published (or exited) first.
    func startStoppedWhileWriting(_ arguments: [String], in dir: String, output: String) throws -> Child {
        let child = try Child(arguments, directory: dir)
        var polls = 0
        while try temporaries(dir).isEmpty && child.process.isRunning && polls < 100_000 {
            usleep(200)
            polls += 1
        }
        kill(child.pid, SIGSTOP)
        try #require(child.process.isRunning, "ternq exited before it could be stopped: \(child.finish().stderr)")
        try #require(!FileManager.default.fileExists(atPath: dir + "/" + output), "ternq published before it was stopped (input too small?)")
        try #require(!(try temporaries(dir)).isEmpty)
        return child
    }

    /// A checkpoint large enough that `ternq` is still writing when stopped: one 2 MiB F32 tensor of
    /// data, then three all-zero tensors held as a hole of a sparse file (cheap to create), 2 MiB each for
    /// a debug build and 64 MiB each for a release build (20–50× faster).
    func bigInput(_ dir: String) throws -> String {
        #if DEBUG
        let zeroRows = 2048
        #else
        let zeroRows = 65536
        #endif
        var entries = [SafetensorsWriter.Entry(name: "blk.0.weight", dtype: .f32, shape: [2048, 256])]
        for i in 1...3 { entries.append(.init(name: "blk.\(i).weight", dtype: .f32, shape: [zeroRows, 256])) }
        let header = try SafetensorsWriter.header(entries: entries, metadata: [:])
        var values = [Float](repeating: 0, count: 2048 * 256)
        for i in 0..<values.count { values[i] = Float(i % 29 - 14) * 0.125 + 0.0625 }
        let path = dir + "/big.safetensors"
        try Data(header + SafetensorsBytes.floats(values)).write(to: URL(fileURLWithPath: path))
        #expect(truncate(path, off_t(header.count + 4 * 256 * (2048 + 3 * zeroRows))) == 0)
        return path
    }

    @Test(arguments: [
        (["bench", "--threads", "0"], "--threads"),
        (["bench", "--threads=-3"], "--threads"),
        (["bench", "--elements", "9223372036854775807"], "--elements"),
        (["bench", "--elements", "4611686018427387904"], "--elements"),
        (["bench", "--elements", "0"], "--elements"),
        (["devices", "--check", "--backend", "cpu", "--check-elements", "9223372036854775807"], "--check-elements"),
        (["info", "--limit=-1", "x.safetensors"], "--limit"),
    ])
    func absurdOptionsAreUsageErrors(arguments: [String], option: String) throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let run = try ternq(arguments, in: dir)
        #expect(run.status == 64, "\(arguments): status \(run.status) \(run.stderr)")
        #expect(run.stderr.contains(option), "\(run.stderr)")
    }

    @Test func realWriteFailureLeavesNothingAndKeepsExistingOutput() throws {
        // A file-size limit (RLIMIT_FSIZE, SIGXFSZ ignored) makes write(2) fail with EFBIG in the real
        // binary, as a full disk or quota would: no test hook in ternq.
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let limited = "trap '' XFSZ; ulimit -f 1"
        for format in ["tern", "gguf", "safetensors"] {
            let run = try Child(["quantize", Self.tiny, "-o", "out.\(format)"], directory: dir, shellPrefix: limited).finish()
            #expect(run.status == 1, "\(format): \(run.stderr)")
            #expect(run.stderr.contains("write failed") && run.stderr.contains("out.\(format)"), "\(run.stderr)")
            #expect(run.stderr.split(separator: "\n").count == 1)
            let left = try files(dir)
            #expect(left.isEmpty, "\(format): \(left)")
        }
        try Data("keep me".utf8).write(to: URL(fileURLWithPath: dir + "/out.gguf"))
        let run = try Child(["quantize", Self.tiny, "-o", "out.gguf", "--force"], directory: dir, shellPrefix: limited).finish()
        #expect(run.status == 1)
        #expect(try files(dir) == ["out.gguf"])
        #expect(FileManager.default.contents(atPath: dir + "/out.gguf") == Data("keep me".utf8))
    }

    @Test func interruptedRunLeavesNoTemporaryFile() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let input = try bigInput(dir)
        let child = try startStoppedWhileWriting(["quantize", input, "-o", "out.gguf", "--quiet"], in: dir, output: "out.gguf")
        kill(child.pid, SIGTERM)
        kill(child.pid, SIGCONT)
        let result = child.finish()
        #expect(result.signaled && result.status == SIGTERM, "\(result)")
        #expect(try files(dir) == ["big.safetensors"])
    }

    @Test func runAfterSIGKILLRemovesTheStaleTemporary() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let input = try bigInput(dir)
        let child = try startStoppedWhileWriting(["quantize", input, "-o", "out.tern", "--quiet"], in: dir, output: "out.tern")
        kill(child.pid, SIGKILL)
        _ = child.finish()
        let stale = try temporaries(dir)
        #expect(stale.count == 1)  // SIGKILL cannot be handled: the temporary stays
        let next = try ternq(["quantize", Self.tiny, "-o", "other.tern", "--quiet"], in: dir)
        #expect(next.status == 0, "\(next.stderr)")
        #expect(try files(dir) == ["big.safetensors", "other.tern"])
    }

    @Test func concurrentRunsWithoutForceDoNotReplaceEachOther() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let input = try bigInput(dir)
        let first = try startStoppedWhileWriting(["quantize", input, "-o", "out.tern", "--quiet"], in: dir, output: "out.tern")
        let second = try ternq(["quantize", Self.tiny, "-o", "out.tern", "--quiet"], in: dir)
        #expect(second.status == 0, "\(second.stderr)")
        let published = FileManager.default.contents(atPath: dir + "/out.tern")
        kill(first.pid, SIGCONT)
        let result = first.finish()
        #expect(result.status == 1 && !result.signaled, "\(result)")
        #expect(result.stderr.contains("already exists") && result.stderr.contains("out.tern"), "\(result.stderr)")
        #expect(FileManager.default.contents(atPath: dir + "/out.tern") == published)
        #expect(try files(dir) == ["big.safetensors", "out.tern"])
    }

    @Test(arguments: ["tern", "gguf", "safetensors"])
    func inputTruncatedWhileRunningIsAnErrorNamingIt(format: String) throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let input = try bigInput(dir)
        let output = "out.\(format)"
        let child = try startStoppedWhileWriting(["quantize", input, "-o", output, "--quiet", "--backend", "cpu"], in: dir, output: output)
        #expect(truncate(input, 4096) == 0)
        kill(child.pid, SIGCONT)
        let result = child.finish()
        #expect(!result.signaled, "killed by signal \(result.status) (SIGBUS is 7)")
        #expect(result.status == 1, "\(result)")
        #expect(result.stderr.contains(input) && (result.stderr.contains("shrank") || result.stderr.contains("modified")), "\(result.stderr)")
        #expect(try files(dir) == ["big.safetensors"])
    }

    @Test func infoRejectsDenseCode11AndPadding() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for (name, packed) in [("code11.tern", [UInt8(0b0000_0011)]), ("padding.tern", [0b0100_0001])] {
            let bytes = HardeningTernTests.denseModel(rows: 1, cols: 3, packed: packed)
            try Data(bytes).write(to: URL(fileURLWithPath: dir + "/" + name))
            let run = try ternq(["info", name], in: dir)
            #expect(run.status == 1 && run.stderr.contains(name) && run.stderr.split(separator: "\n").count == 1, "\(run)")
        }
    }

    @Test func hostileNamesAreEscapedInInfoAndErrors() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let evil = "w\u{1B}[2J\u{0}\u{7}\n.weight"
        let sink = MemorySink()
        let w = try SafetensorsWriter(sink: sink, entries: [.init(name: evil, dtype: .f32, shape: [1, 4])], metadata: ["k\u{1B}": "v\u{0}\r"])
        try w.write(bytes: SafetensorsBytes.floats([1, -1, 0.5, 2]))
        try Data(sink.bytes).write(to: URL(fileURLWithPath: dir + "/evil.safetensors"))
        func clean(_ s: String) -> Bool { !s.unicodeScalars.contains { ($0.value < 0x20 && $0 != "\n") || $0.value == 0x7F } }
        let info = try ternq(["info", "evil.safetensors"], in: dir)
        #expect(info.status == 0, "\(info.stderr)")
        #expect(clean(info.stdout) && info.stdout.contains("w\\u{1b}[2J\\u{0}\\u{7}\\u{a}.weight") && info.stdout.contains("k\\u{1b} = v\\u{0}\\u{d}"), "\(info.stdout.debugDescription)")
        let tern = TernFormat.encode(TernModel(sourceModel: "src\u{1B}", layers: [
            TernLayer(name: evil, scale: 1, storage: .dense(rows: 1, cols: 1, packed: [3]), sparsity: 0, originalDType: "F32")],
            architecture: "a\u{0}", vocabSize: 0, hiddenSize: 0, numLayers: 0))
        try Data(tern).write(to: URL(fileURLWithPath: dir + "/evil.tern"))
        let bad = try ternq(["info", "evil.tern"], in: dir)
        #expect(bad.status == 1 && clean(bad.stderr) && bad.stderr.split(separator: "\n").count == 1, "\(bad.stderr.debugDescription)")
        #expect(bad.stderr.contains("w\\u{1b}[2J\\u{0}\\u{7}\\u{a}.weight"))
    }

    @Test func malformedConfigIsAWarningNamingTheFile() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let model = dir + "/model"
        try FileManager.default.createDirectory(atPath: model, withIntermediateDirectories: true)
        _ = try writeCheckpoint(in: model, count: 1, rows: 1)
        try Data(#"{"model_type": "llama",, }"#.utf8).write(to: URL(fileURLWithPath: model + "/config.json"))
        let run = try ternq(["quantize", "model", "-o", "out.tern", "--quiet"], in: dir)
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stderr.hasPrefix("ternq: warning: ") && run.stderr.contains("model/config.json") && run.stderr.contains("not valid JSON"), "\(run.stderr)")
    }
}
