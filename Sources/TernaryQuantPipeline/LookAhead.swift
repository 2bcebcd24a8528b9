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
