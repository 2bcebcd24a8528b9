import CTernaryKernels
import Dispatch
import Foundation

/// The fast GGUF ternary block encoder behind `TernaryBlocks.encode`: the C loops of `CTernaryKernels`,
/// spread over every core for large requests.
enum BlockEncoder {
    /// Blocks per work item when encoding on several threads (256 Ki elements).
    static let blocksPerTask = 1024

    /// Encodes `blockCount` blocks starting at block `firstBlock` of `packed` (64 bytes of 2-bit trits per
    /// block). Trits beyond the end of `packed` encode as 0; a negative or overflowing request, or a type
    /// other than TQ1_0/TQ2_0, gives an empty array. Never reads outside `packed`.
    static func encode(_ type: GGMLType, packed: UnsafeRawBufferPointer, firstBlock: Int, blockCount: Int,
                       d: UInt16) -> [UInt8] {
        let rawType = Int32(type.rawValue)
        let blockBytes = tq_block_bytes(rawType)
        let packedPerBlock = TernaryBlocks.blockSize / 4
        guard blockBytes > 0, firstBlock >= 0, blockCount > 0 else { return [] }
        let outputBytes = blockCount.multipliedReportingOverflow(by: blockBytes)
        let start = firstBlock.multipliedReportingOverflow(by: packedPerBlock)
        let length = blockCount.multipliedReportingOverflow(by: packedPerBlock)
        guard !outputBytes.overflow, !start.overflow, !length.overflow,
              !start.partialValue.addingReportingOverflow(length.partialValue).overflow
        else { return [] }
        let begin = start.partialValue, needed = length.partialValue
        // A short source is padded with zero trits in a copy, so the C loop reads only valid memory.
        var padded = [UInt8]()
        var source = packed
        if packed.count < begin + needed {
            padded = [UInt8](repeating: 0, count: needed)
            let available = Swift.max(0, packed.count - begin)
            if available > 0, let base = packed.baseAddress {
                padded.withUnsafeMutableBytes { $0.copyMemory(from: UnsafeRawBufferPointer(start: base + begin, count: available)) }
            }
        }
        var out = [UInt8](repeating: 0, count: outputBytes.partialValue)
        padded.withUnsafeBytes { paddedBytes in
            if !padded.isEmpty { source = paddedBytes }
            let offset = padded.isEmpty ? begin : 0
            guard let sourceBase = source.baseAddress else { return }
            let input = SendableConstRawPointer(sourceBase + offset)
            out.withUnsafeMutableBytes { raw in
                guard let outBase = raw.baseAddress else { return }
                let output = SendableRawPointer(outBase)
                let tasks = blockCount / blocksPerTask + (blockCount % blocksPerTask == 0 ? 0 : 1)
                let work: @Sendable (Int) -> Void = { task in
                    guard let from = input.pointer else { return }
                    let first = task * blocksPerTask
                    let n = Swift.min(blocksPerTask, blockCount - first)
                    tq_encode_blocks_packed(rawType, from.assumingMemoryBound(to: UInt8.self) + first * packedPerBlock, n, d,
                                            output.pointer.assumingMemoryBound(to: UInt8.self) + first * blockBytes)
                }
                if tasks == 1 {
                    work(0)
                } else {
                    DispatchQueue.concurrentPerform(iterations: tasks, execute: work)
                }
            }
        }
        return out
    }
}
