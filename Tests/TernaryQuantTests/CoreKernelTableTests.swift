import CTernaryKernels
import Testing
import TernaryQuant
import TernaryQuantTestSupport

/// The C kernel tables (portable, AVX2, AVX-512 — each as far as this processor runs it) at every length
/// and alignment their main loops, 16-element steps and scalar tails split differently.
@Suite("CPU kernel tables at every length")
struct CoreKernelTableTests {
    static var tables: [(String, UnsafePointer<tq_kernel_table>)] {[
        ("portable", tq_kernels(TQ_LEVEL_PORTABLE)), ("avx2", tq_kernels(TQ_LEVEL_AVX2)), ("avx512", tq_kernels(TQ_LEVEL_AVX512))
    ]}
    static let lengths = Array(0...140) + [255, 256, 257, 1000, 1023, 1024, 1025, 4099]

    /// Values m·2^-12 with m < 2^10 (exact in every element type, every partial sum exact in float64), one
    /// per element, as bytes of `type` starting `offset` bytes into the buffer, and their exact sum.
    static func exactlySummable(_ type: ElementType, count: Int, offset: Int, seed: UInt64) -> (bytes: [UInt8], sum: Double) {
        var rng = SplitMix64(seed: seed)
        var bytes = [UInt8](repeating: 0xA5, count: offset)
        var sum = 0.0
        for _ in 0..<count {
            let m = Int(rng.next() % (type == .bfloat16 ? 256 : 1024))
            let value = Float(m) * 0x1p-12 * (rng.next() & 1 == 0 ? 1 : -1)
            sum += Double(abs(value))
            switch type {
            case .float32: bytes += withUnsafeBytes(of: value.bitPattern.littleEndian, Array.init)
            case .float16: bytes += withUnsafeBytes(of: HalfConversion.float16Bits(value).littleEndian, Array.init)
            case .bfloat16: bytes += withUnsafeBytes(of: UInt16(value.bitPattern >> 16).littleEndian, Array.init)
            }
        }
        return (bytes, sum)
    }

    static func absSum(_ table: UnsafePointer<tq_kernel_table>, _ type: ElementType, _ source: UnsafeRawPointer?, _ count: Int) -> Double {
        switch type {
        case .float32: return table.pointee.abs_sum_f32(source, count)
        case .float16: return table.pointee.abs_sum_f16(source, count)
        case .bfloat16: return table.pointee.abs_sum_bf16(source, count)
        }
    }

    @Test("every table's abs_sum equals the exact sum, at every length and misalignment", arguments: ElementType.allCases)
    func exactSums(_ type: ElementType) {
        for count in Self.lengths {
            for offset in [0, 2, 4] {
                let (bytes, exact) = Self.exactlySummable(type, count: count, offset: offset, seed: UInt64(count * 8 + offset))
                for (name, table) in Self.tables {
                    let sum = bytes.withUnsafeBytes { Self.absSum(table, type, $0.baseAddress.map { $0 + offset }, count) }
                    #expect(sum == exact, "\(type) \(name) count \(count) offset \(offset): \(sum) ≠ \(exact)")
                }
            }
        }
    }

    @Test("a NaN or Inf at any position makes every table's sum non-finite", arguments: ElementType.allCases)
    func nonFiniteAnywhere(_ type: ElementType) {
        let nan: [UInt8] = type == .float32 ? [0x01, 0x00, 0xC0, 0x7F] : (type == .float16 ? [0x01, 0x7E] : [0x81, 0x7F])
        let infinity: [UInt8] = type == .float32 ? [0x00, 0x00, 0x80, 0xFF] : (type == .float16 ? [0x00, 0xFC] : [0x80, 0xFF])
        let width = type.byteWidth
        for count in [1, 15, 16, 17, 31, 32, 33, 47, 48, 63, 64, 65, 97] {
            for position in Set([0, count / 2, count - 1]) {
                for special in [nan, infinity] {
                    var (bytes, _) = Self.exactlySummable(type, count: count, offset: 0, seed: 9)
                    bytes.replaceSubrange(width * position..<width * (position + 1), with: special)
                    for (name, table) in Self.tables {
                        let sum = bytes.withUnsafeBytes { Self.absSum(table, type, $0.baseAddress, count) }
                        #expect(!sum.isFinite, "\(type) \(name) count \(count) special at \(position): sum \(sum)")
                    }
                }
            }
        }
    }

    @Test("every table's trit loops equal the portable one at every length; nothing is written past the output")
    func tritLoops() {
        var rng = SplitMix64(seed: 0x7AB1E)
        for width in [2, 4] {
            for count in Self.lengths {
                let source = (0..<(count * width + 3)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
                // Thresholds: a tiny one, one inside the random patterns' range, the largest finite one.
                let thresholds: [UInt32] = width == 4 ? [1, 0x4000_0000, 0x7F80_0000] : [1, 0x4000, 0x7C00]
                for threshold in thresholds {
                    for offset in [0, 1, 3] {
                        var expected: (packed: [UInt8], int8: [Int8], nonZero: [Int])?
                        for (name, table) in Self.tables {
                            let packedBytes = (count + 3) / 4
                            var packed = [UInt8](repeating: 0xEE, count: packedBytes + 16)
                            var int8 = [Int8](repeating: 0x55, count: count + 16)
                            let counts = source.withUnsafeBytes { raw -> [Int] in
                                let at = raw.baseAddress.map { $0 + offset }
                                let p = packed.withUnsafeMutableBufferPointer {
                                    width == 4 ? table.pointee.pack_f32(at, count, threshold, $0.baseAddress)
                                               : table.pointee.pack_h16(at, count, threshold, $0.baseAddress)
                                }
                                let i = int8.withUnsafeMutableBufferPointer {
                                    width == 4 ? table.pointee.int8_f32(at, count, threshold, $0.baseAddress)
                                               : table.pointee.int8_h16(at, count, threshold, $0.baseAddress)
                                }
                                return [p, i]
                            }
                            #expect(packed[packedBytes...].allSatisfy { $0 == 0xEE }, "\(name) width \(width) count \(count): packed overrun")
                            #expect(int8[count...].allSatisfy { $0 == 0x55 }, "\(name) width \(width) count \(count): int8 overrun")
                            if let expected {
                                #expect(packed == expected.packed && int8 == expected.int8 && counts == expected.nonZero,
                                        "\(name) width \(width) count \(count) threshold \(threshold) offset \(offset) differs from portable")
                            } else {
                                expected = (packed, int8, counts)
                                #expect(counts[0] == counts[1] && counts[0] == int8[..<count].filter { $0 != 0 }.count)
                                #expect(Array(packed[..<packedBytes]) == ReferenceQuantizer.pack(Array(int8[..<count])))
                            }
                        }
                    }
                }
            }
        }
    }
}
