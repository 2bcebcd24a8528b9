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
    /// (`.tq2_0` or `.tq1_0`) with the f16 scale bits `d`. `packed` must hold every trit of those blocks.
    public static func encode(_ type: GGMLType, packed: UnsafeRawBufferPointer, firstBlock: Int, blockCount: Int, d: UInt16) -> [UInt8] {
        let blockBytes = type.blockLayout.bytes
        var out = [UInt8](repeating: 0, count: blockCount * blockBytes)
        // remapped[k/4] holds codes t + 1 (00 → 01, 01 → 10, 10 → 00) in the packed bit positions.
        var remapped = [UInt8](repeating: 0, count: blockSize / 4)
        var codes = [UInt8](repeating: 0, count: blockSize)
        let lut = codeRemap
        out.withUnsafeMutableBufferPointer { out in
            codes.withUnsafeMutableBufferPointer { codes in
                remapped.withUnsafeMutableBufferPointer { remapped in
                    for b in 0..<blockCount {
                        let source = (firstBlock + b) * (blockSize / 4)
                        for j in 0..<(blockSize / 4) { remapped[j] = lut[Int(packed[source + j])] }
                        let o = b * blockBytes
                        if type == .tq2_0 {
                            // Output byte 32h + j holds elements k, k+32, k+64, k+96 (k = 128h + j), which share
                            // the bit position 2·(j mod 4) in packed bytes k/4, k/4 + 8, + 16, + 24.
                            for half in 0..<2 {
                                for j in 0..<32 {
                                    let a = (128 * half + j) >> 2
                                    let shift = UInt8(2 * (j & 3))
                                    let c0 = (remapped[a] >> shift) & 3, c1 = (remapped[a + 8] >> shift) & 3
                                    let c2 = (remapped[a + 16] >> shift) & 3, c3 = (remapped[a + 24] >> shift) & 3
                                    out[o + 32 * half + j] = c0 | c1 << 2 | c2 << 4 | c3 << 6
                                }
                            }
                            out[o + 64] = UInt8(d & 0xFF)
                            out[o + 65] = UInt8(d >> 8)
                        } else {
                            for k in 0..<blockSize { codes[k] = (remapped[k >> 2] >> UInt8(2 * (k & 3))) & 3 }
                            // Base-3 digits most significant first, stored as ceil(q·256/243).
                            for m in 0..<32 {
                                var q = 0
                                for n in 0..<5 { q = q * 3 + Int(codes[m + 32 * n]) }
                                out[o + m] = UInt8((q * 256 + 242) / 243)
                            }
                            for m in 0..<16 {
                                var q = 0
                                for n in 0..<5 { q = q * 3 + Int(codes[160 + m + 16 * n]) }
                                out[o + 32 + m] = UInt8((q * 256 + 242) / 243)
                            }
                            // qh: four trits each, with a fifth code 0 appended (q × 3).
                            for j in 0..<4 {
                                var q = 0
                                for m in 0..<4 { q = q * 3 + Int(codes[240 + j + 4 * m]) }
                                out[o + 48 + j] = UInt8((q * 3 * 256 + 242) / 243)
                            }
                            out[o + 52] = UInt8(d & 0xFF)
                            out[o + 53] = UInt8(d >> 8)
                        }
                    }
                }
            }
        }
        return out
    }

    /// For each packed byte (four 2-bit trit codes 00 = 0, 01 = +1, 10 = −1), the same byte with every
    /// field replaced by t + 1 (00 → 01, 01 → 10, 10 → 00; the invalid 11 → 01, i.e. 0).
    static let codeRemap: [UInt8] = (0..<256).map { byte in
        var r: UInt8 = 0
        for s in 0..<4 {
            let c = (UInt8(byte) >> UInt8(2 * s)) & 3
            let code: UInt8 = c == 1 ? 2 : (c == 2 ? 0 : 1)
            r |= code << UInt8(2 * s)
        }
        return r
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
