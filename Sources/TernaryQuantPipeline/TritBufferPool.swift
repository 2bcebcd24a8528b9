import Foundation

/// Packed-trit buffers reused from one tensor to the next within a job, so the hot path does not allocate
/// (and fault in, and have the kernel zero) fresh pages for every tensor: a job's look-ahead takes a
/// buffer per quantized tensor, and the job loop gives it back once the writer has stored it.
///
/// `take(byteCount:)` always returns exactly `byteCount` zero bytes, whichever buffer it reuses. At most
/// `maximumBuffers` idle buffers of at most `maximumIdleBytes` bytes in all are kept; a buffer given back
/// beyond that is freed. A buffer still referenced elsewhere when it is reused is copied on write by
/// Swift's value semantics, never shared. Thread-safe.
final class TritBufferPool: @unchecked Sendable {
    /// Idle buffers kept at most.
    let maximumBuffers: Int
    /// Capacity of the idle buffers kept at most, in bytes.
    let maximumIdleBytes: Int

    private let lock = NSLock()
    private var idle: [[UInt8]] = []  // guarded by `lock`

    /// A pool keeping at most `maximumBuffers` idle buffers (≥ 0) holding at most `maximumIdleBytes` bytes.
    init(maximumBuffers: Int = 4, maximumIdleBytes: Int = 32 << 20) {
        self.maximumBuffers = Swift.max(0, maximumBuffers)
        self.maximumIdleBytes = Swift.max(0, maximumIdleBytes)
    }

    /// `byteCount` (≥ 0) zero bytes: the idle buffer of least capacity that holds them, resized and
    /// cleared, else a new one.
    func take(byteCount: Int) -> [UInt8] {
        let count = Swift.max(0, byteCount)
        // Bound straight from the pool's removal, so the buffer has one reference and is resized in place.
        guard var buffer = lock.withLock({ () -> [UInt8]? in
            var best: Int? = nil
            for (i, candidate) in idle.enumerated() where candidate.capacity >= count {
                if let b = best, idle[b].capacity <= candidate.capacity { continue }
                best = i
            }
            return best.map { idle.remove(at: $0) }
        }) else {
            return [UInt8](repeating: 0, count: count)
        }
        if buffer.count > count {
            buffer.removeLast(buffer.count - count)
        } else if buffer.count < count {
            buffer.append(contentsOf: repeatElement(0, count: count - buffer.count))
        }
        buffer.withUnsafeMutableBytes { bytes in
            if let base = bytes.baseAddress { memset(base, 0, bytes.count) }
        }
        return buffer
    }

    /// Keeps `buffer`'s storage for a later `take` (leaving `buffer` empty), or frees it when the pool is
    /// full: the smallest idle buffers give way to larger ones.
    func give(_ buffer: inout [UInt8]) {
        var returned: [UInt8] = []
        swap(&returned, &buffer)
        guard returned.capacity > 0 else { return }
        var dropped: [[UInt8]] = []  // freed after the lock is released
        lock.withLock {
            idle.append(returned)
            idle.sort { $0.capacity > $1.capacity }
            var kept: [[UInt8]] = []
            var bytes = 0
            for candidate in idle {
                if kept.count < maximumBuffers && bytes + candidate.capacity <= maximumIdleBytes {
                    bytes += candidate.capacity
                    kept.append(candidate)
                } else {
                    dropped.append(candidate)
                }
            }
            idle = kept
        }
        dropped.removeAll()
    }

    /// Number of idle buffers (for tests).
    var idleCount: Int { lock.withLock { idle.count } }
}
