import Foundation
import Testing
@testable import TernaryQuantPipeline

/// The job's trit-buffer pool: every `take` is exactly the requested number of zero bytes, storage is
/// reused (the point of the pool), the limits hold, and a buffer still referenced elsewhere is never
/// overwritten.
@Suite struct TritBufferPoolTests {
    static func baseAddress(_ buffer: [UInt8]) -> UInt? {
        buffer.withUnsafeBytes { $0.baseAddress.map { UInt(bitPattern: $0) } }
    }

    @Test func takeIsExactlyTheRequestedZeroBytesWhateverWasGivenBack() {
        let pool = TritBufferPool(maximumBuffers: 4)
        for count in [0, 1, 63, 64, 1000, 4097, 70_000, 5, 70_000, 3] {
            var buffer = pool.take(byteCount: count)
            #expect(buffer.count == count)
            #expect(buffer.allSatisfy { $0 == 0 }, "\(count)")
            // Dirty it before giving it back, as a writer's trits would.
            for i in buffer.indices { buffer[i] = UInt8(truncatingIfNeeded: i &* 31 &+ 7) | 1 }
            pool.give(&buffer)
            #expect(buffer.isEmpty)
        }
        #expect(pool.take(byteCount: -5).isEmpty)
    }

    @Test func storageIsReusedForTheNextTensor() throws {
        let pool = TritBufferPool()
        var first = pool.take(byteCount: 100_000)
        first[99_999] = 0xFF
        let address = try #require(Self.baseAddress(first))
        pool.give(&first)
        // Had the pool freed it, this allocation would likely get that storage back.
        let blocker = [UInt8](repeating: 1, count: 100_000)
        defer { withExtendedLifetime(blocker) {} }
        // A smaller and then a larger (within capacity) request reuse the same storage.
        var second = pool.take(byteCount: 60_000)
        #expect(Self.baseAddress(second) == address)
        #expect(second.count == 60_000 && second.allSatisfy { $0 == 0 })
        pool.give(&second)
        let third = pool.take(byteCount: 100_000)
        #expect(Self.baseAddress(third) == address)
        #expect(third.count == 100_000 && third.allSatisfy { $0 == 0 })
        #expect(pool.idleCount == 0)
    }

    @Test func theSmallestBufferThatFitsIsTaken() throws {
        let pool = TritBufferPool(maximumBuffers: 3)
        var small = pool.take(byteCount: 1_000), large = pool.take(byteCount: 50_000), medium = pool.take(byteCount: 10_000)
        let mediumAddress = try #require(Self.baseAddress(medium))
        let largeAddress = try #require(Self.baseAddress(large))
        pool.give(&small)
        pool.give(&large)
        pool.give(&medium)
        #expect(Self.baseAddress(pool.take(byteCount: 5_000)) == mediumAddress)
        #expect(Self.baseAddress(pool.take(byteCount: 20_000)) == largeAddress)
        // Nothing idle is large enough: a new buffer, the small one stays.
        #expect(pool.take(byteCount: 60_000).count == 60_000)
        #expect(pool.idleCount == 1)
    }

    @Test func limitsKeepTheLargestBuffersAndBoundTheIdleBytes() {
        let pool = TritBufferPool(maximumBuffers: 2, maximumIdleBytes: 105_000)
        var buffers = [90_000, 30_000, 20_000, 10_000].map { pool.take(byteCount: $0) }
        for i in buffers.indices { pool.give(&buffers[i]) }
        // Largest first: 90,000 stays; with it 30,000 or 20,000 would exceed 105,000, 10,000 does not.
        #expect(pool.idleCount == 2)
        #expect(pool.take(byteCount: 85_000).count == 85_000 && pool.take(byteCount: 9_000).count == 9_000)
        #expect(pool.idleCount == 0)
        // Giving a larger buffer back to a full pool drops the smallest idle one.
        var more = [1_000, 2_000, 3_000].map { pool.take(byteCount: $0) }
        for i in more.indices { pool.give(&more[i]) }
        #expect(pool.idleCount == 2)
        #expect(pool.take(byteCount: 2_500).count == 2_500 && pool.take(byteCount: 1_500).count == 1_500)
        #expect(pool.take(byteCount: 1).count == 1)
        let none = TritBufferPool(maximumBuffers: 0)
        var one = none.take(byteCount: 10)
        none.give(&one)
        #expect(none.idleCount == 0)
        let tiny = TritBufferPool(maximumIdleBytes: 10)
        var big = tiny.take(byteCount: 1_000)
        tiny.give(&big)
        #expect(tiny.idleCount == 0)
    }

    @Test func aBufferStillReferencedElsewhereIsNeverOverwritten() {
        let pool = TritBufferPool()
        var buffer = pool.take(byteCount: 4_096)
        for i in buffer.indices { buffer[i] = 0xAB }
        let kept = buffer  // e.g. a writer that still holds the trits
        pool.give(&buffer)
        let next = pool.take(byteCount: 4_096)
        #expect(next.allSatisfy { $0 == 0 })
        #expect(kept.count == 4_096 && kept.allSatisfy { $0 == 0xAB })
    }

    @Test func concurrentTakesAndGivesStayConsistent() {
        let pool = TritBufferPool(maximumBuffers: 3)
        let failures = SendableCounter()
        DispatchQueue.concurrentPerform(iterations: 8) { worker in
            for round in 0..<200 {
                let count = 1 + (worker * 7_919 + round * 104_729) % 20_000
                var buffer = pool.take(byteCount: count)
                if buffer.count != count || !buffer.allSatisfy({ $0 == 0 }) { failures.increment() }
                for i in buffer.indices { buffer[i] = UInt8(truncatingIfNeeded: worker + 1) }
                pool.give(&buffer)
            }
        }
        #expect(failures.value == 0)
        #expect(pool.idleCount <= 3)
    }
}

/// A counter Dispatch workers increment.
final class SendableCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func increment() { lock.withLock { count += 1 } }
    var value: Int { lock.withLock { count } }
}
