import CTernaryKernels
import Dispatch
import Foundation

/// The native CPU backend: all cores (Dispatch) and SIMD, two memory passes per tensor.
///
/// Pass 1 sums |w| in float64 SIMD lanes per chunk and certifies α with `AbsMeanCertifier`
/// (falling back to `ExactAbsSum` when the mean sits next to a rounding boundary); pass 2 compares bit
/// patterns against `TritThreshold`. Extra memory per call is O(threads × chunk) for F16/BF16 widening and
/// O(chunks) small per-chunk results; never a full-size float buffer.
public struct CPUBackend: QuantizationBackend {
    /// Worker threads used per tensor (≥ 1).
    public let threadCount: Int
    /// Elements per work item (a positive multiple of 64).
    public let chunkSize: Int
    /// Implementation of the inner loops (results are identical either way).
    public let instructionSet: CPUInstructionSet

    /// Default elements per work item: 64 Ki (256 KiB of float32, cache-friendly).
    public static let defaultChunkSize = 1 << 16

    /// Creates a CPU backend. `threadCount` defaults to the active processor count; `chunkSize` is rounded
    /// up to a multiple of 64 and clamped to at least 64; `instructionSet` pins the inner loops (tests use
    /// `.portable` to cover the non-AVX2 code on AVX2 machines).
    public init(threadCount: Int? = nil, chunkSize: Int = CPUBackend.defaultChunkSize,
                instructionSet: CPUInstructionSet = .automatic) {
        self.threadCount = Swift.max(1, threadCount ?? ProcessInfo.processInfo.activeProcessorCount)
        self.chunkSize = Swift.max(64, (chunkSize + 63) / 64 * 64)
        self.instructionSet = instructionSet
    }

    public var name: String { "cpu" }
    public var deviceDescription: String { "CPU (\(threadCount) thread\(threadCount == 1 ? "" : "s"), \(instructionSet.usesAVX2 ? "AVX2" : "portable SIMD"))" }
    public var preferredConcurrency: Int { 1 }

    public func quantize(_ input: TensorInput, layout: TritLayout, into output: UnsafeMutableRawBufferPointer) throws
        -> QuantizationSummary
    {
        try checkOutputCapacity(input, layout: layout, output: output)
        let scale = try absMean(input)
        let threshold = TritThreshold(validScale: scale)
        let zeros = ternarize(input, threshold: threshold, layout: layout, output: output)
        return QuantizationSummary(scale: scale, elementCount: input.elementCount, zeroCount: zeros)
    }

    // MARK: - α

    /// α for `input`: certified fast float64 sum, or the exact binned sum near a rounding boundary.
    /// Throws `QuantizationError.nonFiniteValue` naming the first NaN/Inf element.
    public func absMean(_ input: TensorInput) throws -> Float {
        let count = input.elementCount
        let chunks = chunkCount(count)
        var partials = [Double](repeating: 0, count: chunks)
        let kernels = SendableKernels(instructionSet.kernels)
        partials.withUnsafeMutableBufferPointer { buffer in
            guard let base = buffer.baseAddress else { return }
            let out = SendablePointer(base)
            forEachChunk(count: count) { chunk, range, scratch in
                out.pointer[chunk] = CPUKernels.absSum(input, range: range, scratch: scratch, kernels: kernels.table)
            }
        }
        var total = 0.0
        for p in partials { total += p }
        let perChunkDepth = Swift.min(chunkSize, count) / CPUKernels.lanes + CPUKernels.depthSlack
        let estimate = AbsSumEstimate(floatingSum: total, additionDepth: perChunkDepth + chunks)
        if estimate.hasNonFinite, let error = input.firstNonFiniteError() {
            throw error
        }
        switch AbsMeanCertifier.certify(estimate, count: count) {
        case .certified(let scale):
            return scale
        case .needsExactSum:
            return exactAbsMean(input)
        }
    }

    /// α by exact integer accumulation (slow path; also used by other backends' host fallback).
    /// Input must be finite.
    public func exactAbsMean(_ input: TensorInput) -> Float {
        let count = input.elementCount
        let workers = Swift.min(threadCount, chunkCount(count))
        var sums = [ExactAbsSum](repeating: ExactAbsSum(), count: workers)
        let box = SendableArrayBox(sums)
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            var sum = ExactAbsSum()
            var chunk = worker
            while chunk < chunkCount(count) {
                let range = chunkRange(chunk, count: count)
                for i in range { sum.add(bits: input.float32Bits(at: i)) }
                chunk += workers
            }
            box.set(worker, sum)
        }
        sums = box.values
        var total = ExactAbsSum()
        for s in sums { total.merge(s) }
        return total.roundedMean(count: count) ?? 1.0  // count > 0: TensorInput rejects empty tensors
    }

    // MARK: - trits

    private func ternarize(_ input: TensorInput, threshold: TritThreshold, layout: TritLayout,
                           output: UnsafeMutableRawBufferPointer) -> Int {
        let count = input.elementCount
        var nonZero = [Int](repeating: 0, count: chunkCount(count))
        guard let outputBase = output.baseAddress else { return count }
        let out = SendableRawPointer(outputBase)
        let kernels = SendableKernels(instructionSet.kernels)
        nonZero.withUnsafeMutableBufferPointer { buffer in
            guard let base = buffer.baseAddress else { return }
            let counts = SendablePointer(base)
            forEachChunk(count: count) { chunk, range, scratch in
                counts.pointer[chunk] = CPUKernels.ternarize(input, range: range, threshold: threshold.magnitudeBits,
                                                             layout: layout, output: out.pointer, scratch: scratch,
                                                             kernels: kernels.table)
            }
        }
        return count - nonZero.reduce(0, +)
    }

    // MARK: - scheduling

    func chunkCount(_ count: Int) -> Int { (count + chunkSize - 1) / chunkSize }

    func chunkRange(_ chunk: Int, count: Int) -> Range<Int> {
        let start = chunk * chunkSize
        return start..<Swift.min(start + chunkSize, count)
    }

    /// Runs `body` for every chunk, spread over `threadCount` workers; each worker owns one scratch buffer
    /// of `chunkSize` UInt32 (used to widen F16/BF16).
    func forEachChunk(count: Int, _ body: @Sendable (Int, Range<Int>, UnsafeMutablePointer<UInt32>) -> Void) {
        let chunks = chunkCount(count)
        let workers = Swift.min(threadCount, chunks)
        let chunkSize = self.chunkSize
        withoutActuallyEscaping(body) { body in
            let work: @Sendable (Int) -> Void = { worker in
                let scratch = UnsafeMutablePointer<UInt32>.allocate(capacity: chunkSize)
                defer { scratch.deallocate() }
                var chunk = worker
                while chunk < chunks {
                    let start = chunk * chunkSize
                    body(chunk, start..<Swift.min(start + chunkSize, count), scratch)
                    chunk += workers
                }
            }
            if workers == 1 {
                work(0)
            } else {
                DispatchQueue.concurrentPerform(iterations: workers, execute: work)
            }
        }
    }
}

/// A pointer handed to Dispatch workers that write disjoint elements.
struct SendablePointer<T>: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<T>
    init(_ pointer: UnsafeMutablePointer<T>) { self.pointer = pointer }
}

/// The immutable C kernel table, shared by Dispatch workers.
struct SendableKernels: @unchecked Sendable {
    let table: UnsafePointer<tq_kernel_table>
    init(_ table: UnsafePointer<tq_kernel_table>) { self.table = table }
}

/// A raw pointer handed to Dispatch workers that write disjoint bytes.
struct SendableRawPointer: @unchecked Sendable {
    let pointer: UnsafeMutableRawPointer
    init(_ pointer: UnsafeMutableRawPointer) { self.pointer = pointer }
}

/// Per-worker results written from Dispatch workers (each index written by exactly one worker).
final class SendableArrayBox<T>: @unchecked Sendable {
    private(set) var values: [T]
    private let lock = NSLock()
    init(_ values: [T]) { self.values = values }
    func set(_ index: Int, _ value: T) {
        lock.lock()
        values[index] = value
        lock.unlock()
    }

    func add(_ index: Int, _ value: T) where T: FixedWidthInteger {
        lock.lock()
        values[index] &+= value
        lock.unlock()
    }
}
