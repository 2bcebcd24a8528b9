import TernaryQuantCore
import TernaryQuantFormats
import Dispatch
import Foundation

/// One tensor's quantization running on a background thread: the job's one-tensor look-ahead, so
/// tensor k+1 is quantized while tensor k is encoded and written. The job holds at most one.
final class PendingQuantization: @unchecked Sendable {
    /// Index of the tensor's plan.
    let index: Int
    private let done = DispatchSemaphore(value: 0)
    // Written once by the background thread before `done` is signalled; read only after waiting on it.
    private var result: Result<QuantizedData, any Error>?
    private var waited = false

    /// Starts `work` (the quantization of plan `index`) on a global queue.
    init(index: Int, _ work: @escaping @Sendable () throws -> QuantizedData) {
        self.index = index
        DispatchQueue.global(qos: .userInitiated).async {
            self.result = Result { try work() }
            self.done.signal()
        }
    }

    /// Waits for the background work (any number of calls; call from one thread).
    func wait() {
        if !waited {
            done.wait()
            waited = true
        }
    }

    /// The quantized tensor, or the error its quantization threw.
    func value() throws -> QuantizedData {
        wait()
        guard let result else { throw CancellationError() }
        return try result.get()
    }
}

extension SourceTensor {
    /// Asks the kernel to start reading the tensor's pages now (`madvise(MADV_WILLNEED)`), so a cold
    /// input streams from disk while the previous tensor is processed. A hint: failures are ignored, and
    /// in-memory buffers are unaffected in effect.
    func readAhead() {
        guard let start = bytes.baseAddress, byteCount > 0 else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        guard page > 0 else { return }
        let lo = Int(bitPattern: start) / page * page
        let hi = Int(bitPattern: start) &+ byteCount
        guard hi > lo, let pointer = UnsafeMutableRawPointer(bitPattern: lo) else { return }
        _ = madvise(pointer, hi - lo, Int32(MADV_WILLNEED))
    }
}

/// Starts the write-back of an `AtomicFile`'s data to disk while the job runs, so the disk writes overlap
/// the quantization and the final fsync of `commit()` has little left to flush. `start()` queues one
/// `posix_fadvise(POSIX_FADV_DONTNEED)` on a read-only descriptor of the temporary file on a background
/// queue (Linux starts asynchronous write-back of the dirty pages and drops clean ones); a call while
/// one is in flight is dropped. A hint: failures are ignored; other sinks are unaffected.
final class OutputWriteback: @unchecked Sendable {
    private let fd: Int32
    private let queue = DispatchQueue(label: "ternq.output-writeback", qos: .utility)
    private let lock = NSLock()
    private var busy = false  // guarded by `lock`

    /// Opens the temporary file of `sink` when it is an `AtomicFile`.
    init(_ sink: any ByteSink) {
        if let file = sink as? AtomicFile {
            fd = open(file.temporaryPath, O_RDONLY | O_CLOEXEC)
        } else {
            fd = -1
        }
    }

    /// Queues the write-back of everything written so far (unless one is already queued).
    func start() {
        #if os(Linux)
        guard fd >= 0 else { return }
        let idle = lock.withLock {
            defer { busy = true }
            return !busy
        }
        guard idle else { return }
        queue.async {
            _ = posix_fadvise(self.fd, 0, 0, Int32(POSIX_FADV_DONTNEED))
            self.lock.withLock { self.busy = false }
        }
        #endif
    }

    /// Waits for a queued write-back to be submitted.
    func wait() {
        queue.sync {}
    }

    deinit {
        if fd >= 0 { close(fd) }
    }
}
