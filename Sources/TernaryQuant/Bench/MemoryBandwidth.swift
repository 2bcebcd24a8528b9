import Dispatch
import Foundation

/// Host memory bandwidth measured on the caller's own buffers, with every core, so a quantizer's
/// throughput can be compared with what the machine can actually move in the same run.
public enum MemoryBandwidth {
    /// Median seconds of `runs` executions of `body` (after one warm-up run).
    public static func medianSeconds(runs: Int, _ body: () throws -> Void) rethrows -> Double {
        try body()
        var samples = [Double]()
        for _ in 0..<Swift.max(1, runs) {
            let start = DispatchTime.now().uptimeNanoseconds
            try body()
            samples.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        samples.sort()
        return samples[samples.count / 2]
    }

    /// Read bandwidth in bytes per second: every thread sums its slice of `buffer` as 32-bit integers.
    public static func readBytesPerSecond(_ buffer: UnsafeRawBufferPointer, threads: Int, runs: Int) -> Double {
        let base = SendableConstRawPointer(buffer.baseAddress)
        let count = buffer.count
        let sink = SendableArrayBox([UInt32](repeating: 0, count: threads))
        let seconds = medianSeconds(runs: runs) {
            parallelSlices(count: count, threads: threads) { worker, range in
                guard let start = base.pointer else { return }
                sink.set(worker, readSum(start + range.lowerBound, count: range.count))
            }
        }
        return Double(count) / seconds
    }

    /// Copy bandwidth in bytes copied per second (each byte is read once and written once): every thread
    /// `memcpy`s its slice of `source` to `destination` (which must be at least as large).
    public static func copyBytesPerSecond(from source: UnsafeRawBufferPointer, to destination: UnsafeMutableRawBufferPointer,
                                          threads: Int, runs: Int) -> Double {
        let count = Swift.min(source.count, destination.count)
        let from = SendableConstRawPointer(source.baseAddress)
        let to = SendableMutableRawPointerOptional(destination.baseAddress)
        let seconds = medianSeconds(runs: runs) {
            parallelSlices(count: count, threads: threads) { _, range in
                guard let s = from.pointer, let d = to.pointer else { return }
                memcpy(d + range.lowerBound, s + range.lowerBound, range.count)
            }
        }
        return Double(count) / seconds
    }

    @inline(never)
    static func readSum(_ start: UnsafeRawPointer, count: Int) -> UInt32 {
        var acc0 = SIMD16<UInt32>()
        var acc1 = SIMD16<UInt32>()
        var i = 0
        while i + 128 <= count {
            acc0 &+= start.loadUnaligned(fromByteOffset: i, as: SIMD16<UInt32>.self)
            acc1 &+= start.loadUnaligned(fromByteOffset: i + 64, as: SIMD16<UInt32>.self)
            i += 128
        }
        var tail: UInt32 = 0
        while i < count {
            tail &+= UInt32(start.load(fromByteOffset: i, as: UInt8.self))
            i += 1
        }
        return (acc0 &+ acc1).wrappedSum() &+ tail
    }

    /// Splits `count` bytes into `threads` 64-byte-aligned slices and runs `body` on each concurrently.
    static func parallelSlices(count: Int, threads: Int, _ body: @Sendable (Int, Range<Int>) -> Void) {
        let workers = Swift.max(1, threads)
        let slice = (count / workers + 63) / 64 * 64
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            let start = Swift.min(worker * slice, count)
            let end = worker == workers - 1 ? count : Swift.min(start + slice, count)
            body(worker, start..<end)
        }
    }
}

struct SendableConstRawPointer: @unchecked Sendable {
    let pointer: UnsafeRawPointer?
    init(_ pointer: UnsafeRawPointer?) { self.pointer = pointer }
}

struct SendableMutableRawPointerOptional: @unchecked Sendable {
    let pointer: UnsafeMutableRawPointer?
    init(_ pointer: UnsafeMutableRawPointer?) { self.pointer = pointer }
}
