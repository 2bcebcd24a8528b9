import TernaryQuantCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import CFileGuard

/// An output file written atomically: bytes go to a hidden temporary file in the destination directory,
/// which is fsynced and published at `path` only by `commit()`. Until then the destination is untouched;
/// `abort()` (or deinit without commit) removes the temporary file, so no partial output remains.
///
/// Without `overwrite` the output is published without replacing anything (`renameat2(RENAME_NOREPLACE)`,
/// else `link(2)`): when another process created `path` meanwhile, `commit()` throws and that file stays.
/// The temporary file is named `.<name>.tmp-<pid>-<random>`; creating an `AtomicFile` removes such files
/// in the same directory whose process no longer exists (left behind by a SIGKILL).
///
/// Writes are buffered (1 MiB). On Linux the write-back of every 8 MiB handed to the kernel is started at
/// once on a background queue (`posix_fadvise(POSIX_FADV_DONTNEED)` on that range: asynchronous
/// write-back, clean pages dropped), so the disk writes overlap the job and `commit()`'s `fdatasync` has
/// little left. `copy(from:range:)` copies a range of a mapped input file in the kernel (`sendfile`).
/// With `durable: false` (`ternq quantize --no-fsync`) the write-back hints and both fsyncs are skipped:
/// the file is still published atomically and complete for every reader on this machine, but a crash or
/// power loss before the kernel writes it back can leave it empty or truncated under its final name.
/// Not thread-safe: one writer at a time.
public final class AtomicFile {
    /// Destination path.
    public let path: String
    /// Temporary path (in the destination's directory, so the final rename is atomic).
    public let temporaryPath: String
    /// Bytes written so far.
    public private(set) var bytesWritten: Int = 0
    /// Whether `commit()` may replace an existing `path`.
    public let overwrite: Bool
    /// Whether `commit()` makes the data durable (fdatasync, directory fsync) before and after publishing.
    public let durable: Bool
    private var fd: Int32
    private var buffer: [UInt8] = []
    private let bufferLimit = 1 << 20
    private var finished = false
    /// Bytes handed to the kernel (`bytesWritten` minus what is still buffered).
    private var kernelOffset = 0
    /// Start of the range whose write-back has not been started yet.
    private var writebackOffset = 0
    /// Write-back is started per this many bytes handed to the kernel.
    static let writebackChunk = 8 << 20
    private let writeback = DispatchQueue(label: "ternq.atomic-file.writeback", qos: .utility)

    /// Creates the temporary file for `path` (after removing stale temporaries of dead processes in its
    /// directory). Throws `FormatError.refused` (remedy `.allowOverwrite`) when `path` exists and `overwrite` is false, or `.io`
    /// when the directory is not writable. `durable: false` skips the write-back hints and the fsyncs
    /// (see the type's documentation).
    public init(path: String, overwrite: Bool = false, durable: Bool = true) throws {
        self.path = path
        self.overwrite = overwrite
        self.durable = durable
        if !overwrite, FileManager.default.fileExists(atPath: path) {
            throw FormatError.refused(file: path, reason: "output already exists", remedy: .allowOverwrite)
        }
        let directory = (path as NSString).deletingLastPathComponent
        let base = (path as NSString).lastPathComponent
        Self.removeStaleTemporaryFiles(inDirectory: directory)
        let suffix = String(UInt64.random(in: 0...UInt64.max), radix: 36)
        let temporary = (directory.isEmpty ? "" : directory + "/") + ".\(base).tmp-\(getpid())-\(suffix)"
        self.temporaryPath = temporary
        // Registered before it exists: a signal between creating and registering would leave it behind.
        TemporaryFileRegistry.shared.insert(temporary)
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            let reason = String(cString: strerror(errno))
            TemporaryFileRegistry.shared.remove(temporary)
            throw FormatError.io(file: path, reason: "cannot create a temporary file in '\(directory.isEmpty ? "." : directory)': \(reason)")
        }
        self.fd = fd
        buffer.reserveCapacity(bufferLimit)
    }

    deinit {
        if !finished { abort() }
    }

    /// Appends bytes.
    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard !finished else { throw FormatError.io(file: path, reason: "write after commit/abort") }
        bytesWritten += bytes.count
        if buffer.count + bytes.count > bufferLimit { try flush() }
        if bytes.count >= bufferLimit {
            try writeAll(bytes)
        } else {
            buffer.append(contentsOf: bytes)
        }
    }

    /// Appends bytes from an array.
    public func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write($0) }
    }

    /// Appends `count` zero bytes.
    public func writeZeros(_ count: Int) throws {
        guard count > 0 else { return }
        try write([UInt8](repeating: 0, count: count))
    }

    private func flush() throws {
        guard !buffer.isEmpty else { return }
        try buffer.withUnsafeBytes { try writeAll($0) }
        buffer.removeAll(keepingCapacity: true)
    }

    private func writeAll(_ bytes: UnsafeRawBufferPointer) throws {
        guard let base = bytes.baseAddress else { return }
        var done = 0
        while done < bytes.count {
            let n = systemWrite(fd, base + done, bytes.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                throw FormatError.io(file: path, reason: "write failed: \(String(cString: strerror(errno)))")
            }
            done += n
        }
        kernelOffset += bytes.count
        startWriteback(force: false)
    }

    /// Starts the asynchronous write-back of what was handed to the kernel since the last start, once
    /// that is `writebackChunk` bytes (or any amount with `force`). A hint: failures are ignored (the
    /// final `fdatasync` reports real write errors).
    private func startWriteback(force: Bool) {
        #if os(Linux)
        guard durable else { return }
        guard kernelOffset - writebackOffset >= Self.writebackChunk || (force && kernelOffset > writebackOffset) else { return }
        // Whole pages only (the partial last page is still being written), except at the end.
        let end = force ? kernelOffset : kernelOffset / 4096 * 4096
        let (fd, offset, length) = (self.fd, writebackOffset, end - writebackOffset)
        writebackOffset = end
        writeback.async { _ = posix_fadvise(fd, off_t(offset), off_t(length), Int32(POSIX_FADV_DONTNEED)) }
        #endif
    }

    /// Appends the bytes `range` of `storage` (the same bytes as `write(storage.bytes[range])`). For a
    /// mapped file on Linux the kernel copies them from the file (`sendfile`: no page faults on the
    /// mapping, no user-space copy); otherwise they are written from memory. Throws `FormatError.io`
    /// naming the input when the input file ends before the range does (it shrank while being read), or
    /// naming the output when writing fails. `range` must lie inside `storage.bytes`.
    public func copy(from storage: ByteStorage, range: Range<Int>) throws {
        guard !finished else { throw FormatError.io(file: path, reason: "write after commit/abort") }
        #if os(Linux)
        guard let input = storage.fileDescriptor, range.count >= bufferLimit else {
            return try write(UnsafeRawBufferPointer(rebasing: storage.bytes[range]))
        }
        try flush()
        var offset = off_t(range.lowerBound)
        var left = range.count
        while left > 0 {
            // Pieces of `writebackChunk`, so the disk writes start while the rest is copied.
            let n = sendfile(fd, input, &offset, Swift.min(left, Self.writebackChunk))
            if n < 0 {
                if errno == EINTR { continue }
                let error = errno
                // The kernel cannot copy between these files (EINVAL, ENOSYS, ...): write from the mapping.
                if left == range.count && (error == EINVAL || error == ENOSYS || error == EOPNOTSUPP) {
                    return try write(UnsafeRawBufferPointer(rebasing: storage.bytes[range]))
                }
                throw FormatError.io(file: path, reason: "write failed (copying from '\(storage.path)'): \(String(cString: strerror(error)))")
            }
            if n == 0 {
                throw FormatError.io(file: storage.path, reason: "the file ends at byte \(offset), before the tensor data it held (\(range.upperBound)) (it shrank while it was being read; truncated by another process?): nothing was written")
            }
            left -= n
            bytesWritten += n
            kernelOffset += n
            startWriteback(force: false)
        }
        #else
        try write(UnsafeRawBufferPointer(rebasing: storage.bytes[range]))
        #endif
    }

    /// Flushes and fsyncs the temporary file, publishes it at `path` (replacing an existing file only
    /// when `overwrite`), then fsyncs the directory. Throws `FormatError.unsupported` when `path` appeared
    /// meanwhile and `overwrite` is false (that file is left untouched), `.io` on a system error; the
    /// temporary file is removed in every failure case.
    public func commit() throws {
        guard !finished else { return }
        do {
            try flush()
            startWriteback(force: true)
            writeback.sync {}
            // fdatasync: the data and the metadata needed to read it back (size, block map); the rest
            // (times) need not be durable before the rename.
            #if os(Linux)
            let synced = !durable || fdatasync(fd) == 0
            #else
            let synced = !durable || fsync(fd) == 0
            #endif
            guard synced else {
                throw FormatError.io(file: path, reason: "fsync failed: \(String(cString: strerror(errno)))")
            }
        } catch {
            abort()
            throw error
        }
        close(fd)
        fd = -1
        defer { TemporaryFileRegistry.shared.remove(temporaryPath) }
        finished = true
        if overwrite {
            guard rename(temporaryPath, path) == 0 else {
                let reason = String(cString: strerror(errno))
                unlink(temporaryPath)
                throw FormatError.io(file: path, reason: "cannot rename the temporary file into place: \(reason)")
            }
        } else {
            try publishWithoutReplacing()
        }
        guard durable else { return }
        let directory = (path as NSString).deletingLastPathComponent
        let dfd = open(directory.isEmpty ? "." : directory, O_RDONLY | O_CLOEXEC)
        if dfd >= 0 { _ = fsync(dfd); close(dfd) }
    }

    private func publishWithoutReplacing() throws {
        let exists = FormatError.refused(file: path, reason: "output already exists (created while this run was writing; another run to the same output?); it was left untouched", remedy: .allowOverwrite)
        if tfg_rename_noreplace(temporaryPath, path) == 0 { return }
        let renameError = errno
        if renameError == EEXIST {
            unlink(temporaryPath)
            throw exists
        }
        // The file system or kernel cannot rename without replacing: a hard link never replaces either.
        if link(temporaryPath, path) == 0 {
            unlink(temporaryPath)
            return
        }
        let linkError = errno
        unlink(temporaryPath)
        if linkError == EEXIST { throw exists }
        throw FormatError.refused(file: path, reason: "cannot publish the output without replacing an existing file (rename: \(String(cString: strerror(renameError))); link: \(String(cString: strerror(linkError)))); allowing overwrites uses a plain rename", remedy: .allowOverwrite)
    }

    /// Discards everything written: closes and removes the temporary file. The destination is untouched.
    public func abort() {
        guard !finished else { return }
        finished = true
        writeback.sync {}  // no queued write-back may touch the descriptor after it is closed
        if fd >= 0 { close(fd); fd = -1 }
        unlink(temporaryPath)
        TemporaryFileRegistry.shared.remove(temporaryPath)
    }

    /// Removes every temporary file of an uncommitted `AtomicFile` in this process. Call it from a
    /// signal handler (SIGINT/SIGTERM) before exiting, so an interrupted run leaves no partial output.
    public static func removeAllTemporaryFiles() {
        TemporaryFileRegistry.shared.removeAll()
    }

    /// The process id in an `AtomicFile` temporary file name (`.<name>.tmp-<pid>-<base36>`), or `nil`
    /// when `name` is not one.
    public static func temporaryFileOwner(_ name: String) -> pid_t? {
        guard name.hasPrefix("."), let marker = name.range(of: ".tmp-", options: .backwards),
              marker.lowerBound > name.index(after: name.startIndex) else { return nil }
        let rest = name[marker.upperBound...]
        let parts = rest.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, parts[0].count <= 10, parts[0].allSatisfy({ $0 >= "0" && $0 <= "9" }),
              !parts[1].isEmpty, parts[1].count <= 13,
              parts[1].allSatisfy({ ($0 >= "0" && $0 <= "9") || ($0 >= "a" && $0 <= "z") }),
              let pid = Int32(parts[0]), pid > 0 else { return nil }
        return pid
    }

    /// Removes the temporary files of `AtomicFile`s in `directory` ("" = current) whose process is gone
    /// (`kill(pid, 0)` fails with ESRCH): leftovers of runs killed with SIGKILL. Files of live processes
    /// (including this one), non-regular files and files of other users are never touched. Returns the
    /// names removed.
    @discardableResult
    public static func removeStaleTemporaryFiles(inDirectory directory: String) -> [String] {
        let dir = directory.isEmpty ? "." : directory
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir) else { return [] }
        var removed: [String] = []
        for name in names {
            guard let pid = temporaryFileOwner(name), pid != getpid() else { continue }
            guard kill(pid, 0) != 0, errno == ESRCH else { continue }
            let full = dir + "/" + name
            var info = stat()
            guard lstat(full, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG, info.st_uid == getuid() else { continue }
            if unlink(full) == 0 { removed.append(name) }
        }
        return removed
    }
}

/// Temporary paths of live, uncommitted atomic files (for cleanup on interruption). Paths are kept as C
/// strings in a fixed table so a signal handler can unlink them with async-signal-safe calls only.
final class TemporaryFileRegistry: @unchecked Sendable {
    static let shared = TemporaryFileRegistry()
    static let capacity = 64
    private let lock = NSLock()
    fileprivate let slots: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>

    private init() {
        slots = .allocate(capacity: Self.capacity)
        slots.initialize(repeating: nil, count: Self.capacity)
        signalCleanupSlots = slots
    }

    func insert(_ path: String) {
        lock.lock(); defer { lock.unlock() }
        for i in 0..<Self.capacity where slots[i] == nil {
            slots[i] = strdup(path)
            return
        }
    }

    func remove(_ path: String) {
        lock.lock(); defer { lock.unlock() }
        for i in 0..<Self.capacity {
            if let p = slots[i], String(cString: p) == path {
                slots[i] = nil
                free(p)
            }
        }
    }

    func removeAll() {
        lock.lock(); defer { lock.unlock() }
        for i in 0..<Self.capacity {
            if let p = slots[i] {
                unlink(p)
                slots[i] = nil
                free(p)
            }
        }
    }
}

/// The registry's table, readable from a signal handler.
nonisolated(unsafe) private var signalCleanupSlots: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?

extension AtomicFile {
    /// Installs SIGINT/SIGTERM/SIGHUP handlers that unlink the temporary files of unfinished outputs and
    /// then re-raise the signal with its default action (so the exit status still says "killed by SIGINT").
    /// An existing output is never touched: it is only ever replaced by the final rename.
    public static func installSignalCleanup() {
        _ = TemporaryFileRegistry.shared
        // A parent may start us with these signals blocked (some spawners pass on their mask): unblock them
        // on this thread so they are delivered and the handler runs.
        var set = sigset_t()
        sigemptyset(&set)
        for sig in [SIGINT, SIGTERM, SIGHUP] { sigaddset(&set, sig) }
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
        for sig in [SIGINT, SIGTERM, SIGHUP] {
            let previous = signal(sig) { received in
                if let slots = signalCleanupSlots {
                    for i in 0..<64 {  // TemporaryFileRegistry.capacity (a literal: no lazy init in a handler)
                        if let p = slots[i] { unlink(p) }
                    }
                }
                signal(received, SIG_DFL)
                raise(received)
            }
            // Keep signals the parent chose to ignore (nohup, background jobs) ignored.
            if let previous, unsafeBitCast(previous, to: Int.self) == 1 { signal(sig, previous) }
        }
    }
}

#if canImport(Glibc)
private let systemWrite = Glibc.write
#else
private let systemWrite = Darwin.write
#endif

/// A destination for streamed bytes: an `AtomicFile` or an in-memory buffer.
public protocol ByteSink: AnyObject {
    /// Appends bytes.
    func write(_ bytes: UnsafeRawBufferPointer) throws
    /// Appends the bytes `range` of `storage` (default: `write` from memory; `AtomicFile` copies from the
    /// file in the kernel). `range` must lie inside `storage.bytes`.
    func copy(from storage: ByteStorage, range: Range<Int>) throws
}

extension ByteSink {
    public func copy(from storage: ByteStorage, range: Range<Int>) throws {
        try write(UnsafeRawBufferPointer(rebasing: storage.bytes[range]))
    }

    /// Appends the bytes of an array.
    public func write(bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write($0) }
    }

    /// Appends `count` zero bytes.
    public func write(zeros count: Int) throws {
        guard count > 0 else { return }
        try write(bytes: [UInt8](repeating: 0, count: count))
    }
}

extension AtomicFile: ByteSink {}

/// An in-memory `ByteSink` (tests, the demo model, `verify`).
public final class MemorySink: ByteSink {
    /// Everything written so far.
    public private(set) var bytes: [UInt8] = []

    /// Creates an empty sink.
    public init() {}

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        self.bytes.append(contentsOf: bytes)
    }
}
