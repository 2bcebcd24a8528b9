import TernaryQuantOpenCL
import TernaryQuantFormats
import TernaryQuantCore
import CBenchProbe
import Dispatch
import Foundation

/// Host memory bandwidth measured on the caller's own buffers, with every core, so a quantizer's
/// throughput can be compared with what the machine can actually move in the same run.
public enum MemoryBandwidth {
    /// Median seconds of `runs` executions of `body` (after one warm-up run): the one median timer of the
    /// benchmarks. Rethrows `body`'s error (typed).
    public static func medianSeconds<E: Error>(runs: Int, _ body: () throws(E) -> Void) throws(E) -> Double {
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

    /// Fastest of `runs` executions of `body` (after one warm-up run), in seconds: a bandwidth probe's best
    /// run is the closest to what the hardware can do, which keeps the roofline an upper bound.
    public static func bestSeconds(runs: Int, _ body: () throws -> Void) rethrows -> Double {
        try body()
        var best = Double.infinity
        for _ in 0..<Swift.max(1, runs) {
            let start = DispatchTime.now().uptimeNanoseconds
            try body()
            best = Swift.min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        return best
    }

    /// Software prefetch distances (bytes ahead) the read probe tries: the quantizer's own (4 KiB) and a
    /// shorter one, so the probe's best is an upper bound whichever suits the machine.
    static let prefetchDistances = [1024, 4096]

    /// Read bandwidth in bytes per second: every thread sums its part of `buffer` as 64-bit integers with
    /// software prefetching; the best of both thread splits, both prefetch distances and `runs` runs.
    public static func readBytesPerSecond(_ buffer: UnsafeRawBufferPointer, threads: Int, runs: Int) -> Double {
        let base = SendableConstRawPointer(buffer.baseAddress)
        let count = buffer.count
        let sink = SendableArrayBox([UInt64](repeating: 0, count: threads))
        var best = Double.infinity
        for split in Split.allCases {
            for distance in prefetchDistances {
                best = Swift.min(best, bestSeconds(runs: runs) {
                    parallelSlices(count: count, threads: threads, split: split) { worker, range in
                        guard let start = base.pointer else { return }
                        sink.add(worker, tq_bench_read_checksum(start + range.lowerBound, range.count, 1, distance))
                    }
                })
            }
        }
        return Double(count) / best
    }

    /// Copy bandwidth in bytes copied per second (each byte is read once and written once): every thread
    /// `memcpy`s its part of `source` to `destination` (which must be at least as large); the best of both
    /// thread splits and of `runs` runs.
    public static func copyBytesPerSecond(from source: UnsafeRawBufferPointer, to destination: UnsafeMutableRawBufferPointer,
                                          threads: Int, runs: Int) -> Double {
        let count = Swift.min(source.count, destination.count)
        let from = SendableConstRawPointer(source.baseAddress)
        let to = SendableMutableRawPointerOptional(destination.baseAddress)
        var best = Double.infinity
        for split in Split.allCases {
            best = Swift.min(best, bestSeconds(runs: runs) {
                parallelSlices(count: count, threads: threads, split: split) { _, range in
                    guard let s = from.pointer, let d = to.pointer else { return }
                    memcpy(d + range.lowerBound, s + range.lowerBound, range.count)
                }
            })
        }
        return Double(count) / best
    }

    /// Bytes per work item of the interleaved pattern: 256 KiB, the CPU backend's default chunk of float32
    /// elements, handed out round-robin to the workers exactly as the backend does.
    static let sliceBytes = CPUBackend.defaultChunkSize * 4

    /// How the probe splits a buffer between threads.
    enum Split: CaseIterable {
        /// One contiguous part per thread.
        case contiguous
        /// `sliceBytes` pieces, piece k on worker k mod threads (the CPU backend's pattern).
        case interleaved
    }

    /// Runs `body(worker, byteRange)` over `count` bytes split between `threads` workers.
    static func parallelSlices(count: Int, threads: Int, split: Split, _ body: @Sendable (Int, Range<Int>) -> Void) {
        let workers = Swift.max(1, threads)
        switch split {
        case .contiguous:
            let slice = (count / workers + 63) / 64 * 64
            DispatchQueue.concurrentPerform(iterations: workers) { worker in
                let start = Swift.min(worker * slice, count)
                let end = worker == workers - 1 ? count : Swift.min(start + slice, count)
                body(worker, start..<end)
            }
        case .interleaved:
            let pieces = (count + sliceBytes - 1) / sliceBytes
            DispatchQueue.concurrentPerform(iterations: workers) { worker in
                var piece = worker
                while piece < pieces {
                    let start = piece * sliceBytes
                    body(worker, start..<Swift.min(start + sliceBytes, count))
                    piece += workers
                }
            }
        }
    }
}
