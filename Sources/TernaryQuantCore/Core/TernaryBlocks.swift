/// binary16 conversion for GGUF scales: the one implementation is `HalfConversion` (float32 → binary16) and
/// `Float32Bits.fromFloat16` (binary16 → float32); `HalfFloat` is kept as a name for source compatibility.
public typealias HalfFloat = HalfConversion

extension HalfConversion {
    /// The binary16 bit pattern nearest to `value` (same as `float16Bits`).
    public static func bits(from value: Float) -> UInt16 { float16Bits(value) }

    /// The float32 value of a binary16 bit pattern (exact; `Float32Bits.fromFloat16`).
    public static func float(fromBits h: UInt16) -> Float { Float(bitPattern: Float32Bits.fromFloat16(h)) }
}

/// Encoders for the ternary ggml block formats, fed from the core 2-bit packed trits.
public enum TernaryBlocks {
    /// Elements per block (QK_K).
    public static let blockSize = 256

    /// Encodes `blockCount` blocks starting at block `firstBlock` of `packed` (2-bit trits) in `type`
    /// (`.tq2_0` or `.tq1_0`) with the f16 scale bits `d`. `packed` should hold every trit of those blocks;
    /// missing trits encode as 0, and a negative request or another type gives `[]` (never a trap).
    /// Runs the C encoder of the CPU backend, on every core for large requests.
    public static func encode(_ type: GGMLType, packed: UnsafeRawBufferPointer, firstBlock: Int, blockCount: Int, d: UInt16) -> [UInt8] {
        BlockEncoder.encode(type, packed: packed, firstBlock: firstBlock, blockCount: blockCount, d: d)
    }

    /// Decodes one block's trits (for tests and `info`); `bytes` must be one block of `type`.
    public static func decode(_ type: GGMLType, block bytes: [UInt8]) -> (trits: [Int], d: UInt16) {
        var t = [Int](repeating: 0, count: blockSize)
        if type == .tq2_0 {
            for k in 0..<blockSize {
                t[k] = Int((bytes[32 * (k / 128) + k % 32] >> UInt8(2 * ((k % 128) / 32))) & 3) - 1
            }
            return (t, UInt16(bytes[64]) | UInt16(bytes[65]) << 8)
        }
        func digit(_ byte: UInt8, _ n: Int) -> Int {
            var p = 1
            for _ in 0..<n { p *= 3 }
            return ((Int(byte) * p) % 256 * 3) >> 8
        }
        for m in 0..<32 { for n in 0..<5 { t[m + 32 * n] = digit(bytes[m], n) - 1 } }
        for m in 0..<16 { for n in 0..<5 { t[160 + m + 16 * n] = digit(bytes[32 + m], n) - 1 } }
        for j in 0..<4 { for m in 0..<4 { t[240 + j + 4 * m] = digit(bytes[48 + j], m) - 1 } }
        return (t, UInt16(bytes[52]) | UInt16(bytes[53]) << 8)
    }
}
