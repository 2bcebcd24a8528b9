import TernaryQuantCore
import TernaryQuantFormats
import Dispatch
import Foundation

/// What the look-ahead prepared for one tensor, so the job loop only encodes and writes.
struct PreparedTensor {
    /// A quantized tensor: its trits and facts, and the MSE against `mseScale` (the scale the writer is
    /// predicted to store; the loop recomputes the MSE when the writer stored another).
    struct Quantized {
        var data: QuantizedData
        var mse: Double
        var mseScale: Float
    }
    /// Set for a quantized tensor.
    var quantized: Quantized?
    /// A kept tensor: the index of its first NaN/±Inf element, if any.
    var firstNonFinite: Int?
}

/// The job's look-ahead: one background thread prepares the tensors in plan order — a quantized tensor
/// is quantized, checked for one common magnitude and its MSE computed; a kept tensor is scanned for
/// NaN/±Inf — each with `madvise(WILLNEED)` read-ahead first and its input pages released afterwards, while
/// the job loop encodes and writes the earlier ones. It runs ahead while the prepared-but-unconsumed
/// tensors hold at most `packedBudget` bytes of trits and `inputBudget` bytes of input (always at least
/// one tensor ahead), so memory stays bounded: one tensor's input pages being read, the trits of the
/// tensors ahead, the one being written.
///
/// A tensor whose preparation throws ends the look-ahead: `take` of that tensor rethrows the error.
/// `cancel()` (the loop's `defer`) stops it and waits, so no background work outlives the job.
final class TensorLookAhead: @unchecked Sendable {
    private let condition = NSCondition()
    // Guarded by `condition`:
    private var ready: [Int: Result<PreparedTensor, any Error>] = [:]
    private var readyPacked = 0
    private var readyInput = 0
    private var cancelled = false
    private var running = true

    private let plans: [TensorPlan]
    private let packedBudget: Int
    private let inputBudget: Int

    /// Bytes of packed trits a quantized plan's preparation holds.
    static func packedBytes(_ plan: TensorPlan) -> Int {
        plan.action == .quantized ? TritLayout.packed2Bit.byteCount(forTrits: plan.tensor.elementCount) : 0
    }

    /// Starts preparing every plan that is not skipped, in order, with `prepare`.
    init(plans: [TensorPlan], packedBudget: Int = 32 << 20, inputBudget: Int = 512 << 20,
         prepare: @escaping @Sendable (TensorPlan) throws -> PreparedTensor) {
        self.plans = plans
        self.packedBudget = packedBudget
        self.inputBudget = inputBudget
        let thread = Thread { [self] in self.produce(prepare) }
        thread.qualityOfService = .userInitiated
        thread.start()
    }

    private func produce(_ prepare: (TensorPlan) throws -> PreparedTensor) {
        defer {
            condition.lock()
            running = false
            condition.broadcast()
            condition.unlock()
        }
        for (index, plan) in plans.enumerated() where plan.action != .skipped {
            let packed = Self.packedBytes(plan), input = plan.tensor.byteCount
            condition.lock()
            while !cancelled && !ready.isEmpty && (readyPacked + packed > packedBudget || readyInput + input > inputBudget) {
                condition.wait()
            }
            let stop = cancelled
            condition.unlock()
            if stop { return }
            let result = Result { try prepare(plan) }
            condition.lock()
            ready[index] = result
            readyPacked += packed
            readyInput += input
            condition.broadcast()
            condition.unlock()
            if case .failure = result { return }
        }
    }

    /// The prepared tensor of plan `index` (waits for it), or the error its preparation threw. Call in
    /// plan order, once per non-skipped plan.
    func take(_ index: Int) throws -> PreparedTensor {
        condition.lock()
        while ready[index] == nil && running { condition.wait() }
        let result = ready.removeValue(forKey: index)
        if result != nil, plans.indices.contains(index) {
            readyPacked -= Self.packedBytes(plans[index])
            readyInput -= plans[index].tensor.byteCount
        }
        condition.broadcast()
        condition.unlock()
        guard let result else { throw CancellationError() }
        return try result.get()
    }

    /// Stops preparing further tensors and waits for the one in progress.
    func cancel() {
        condition.lock()
        cancelled = true
        condition.broadcast()
        while running { condition.wait() }
        condition.unlock()
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
