/// How a backend stores trits in its output buffer.
public enum TritLayout: String, Sendable, Hashable, CaseIterable, Codable {
    /// One signed byte per trit: −1 (0xFF), 0 or +1.
    case int8
    /// Four trits per byte, trit i at bits 2·(i mod 4) of byte ⌊i/4⌋; codes 00 = 0, 01 = +1, 10 = −1;
    /// the last byte is padded with 00. This is the seed `.tern` Dense layout.
    case packed2Bit

    /// Bytes needed for `count` trits (throws nothing; `count` must be non-negative).
    @inlinable
    public func byteCount(forTrits count: Int) -> Int {
        switch self {
        case .int8: return count
        case .packed2Bit: return count / 4 + (count % 4 == 0 ? 0 : 1)
        }
    }
}

/// Conversions between `[Trit]` and the 2-bit packed layout (`TritLayout.packed2Bit`).
public enum TritPacking {
    /// Packs trits 4 per byte (see `TritLayout.packed2Bit`).
    public static func pack(_ trits: [Trit]) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: TritLayout.packed2Bit.byteCount(forTrits: trits.count))
        for (i, t) in trits.enumerated() {
            bytes[i >> 2] |= t.packedCode << UInt8(2 * (i & 3))
        }
        return bytes
    }

    /// Unpacks `count` trits; throws `QuantizationError.invalidPackedCode` on the reserved code 11 and
    /// `.packedDataTooShort` when `bytes` holds fewer than ⌈count/4⌉ bytes.
    public static func unpack<Bytes: RandomAccessCollection>(_ bytes: Bytes, count: Int) throws -> [Trit]
    where Bytes.Element == UInt8, Bytes.Index == Int {
        let needed = TritLayout.packed2Bit.byteCount(forTrits: count)
        guard count >= 0, bytes.count >= needed else {
            throw QuantizationError.packedDataTooShort(expectedBytes: needed, actualBytes: bytes.count)
        }
        var trits = [Trit]()
        trits.reserveCapacity(count)
        let start = bytes.startIndex
        for i in 0..<count {
            let code = (bytes[start + (i >> 2)] >> UInt8(2 * (i & 3))) & 0b11
            guard let trit = Trit(packedCode: code) else { throw QuantizationError.invalidPackedCode(index: i) }
            trits.append(trit)
        }
        return trits
    }

    /// Converts int8 trit bytes (0xFF, 0, 1) to packed bytes; throws `.invalidPackedCode` on other values.
    public static func pack(int8Trits: [UInt8]) throws -> [UInt8] {
        var trits = [Trit]()
        trits.reserveCapacity(int8Trits.count)
        for (i, byte) in int8Trits.enumerated() {
            guard let trit = Trit(rawValue: Int8(bitPattern: byte)) else {
                throw QuantizationError.invalidPackedCode(index: i)
            }
            trits.append(trit)
        }
        return pack(trits)
    }
}
