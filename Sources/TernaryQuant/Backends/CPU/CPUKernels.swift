/// The CPU backend's inner loops over one chunk. Kept free of allocation and bounds checks; callers
/// guarantee ranges are inside the tensor and outputs large enough.
enum CPUKernels {
    /// Float64 accumulator lanes per chunk (2 × SIMD8).
    static let lanes = 16
    /// Additions beyond `elements / lanes` on any path inside one chunk: lane merge (≤ 1 + 7),
    /// scalar tail (≤ 15) and its merge (1), rounded up.
    static let depthSlack = 32

    /// Float64 sum of |w| over `range`. NaN/Inf inputs make the result non-finite.
    @inline(__always)
    static func absSum(_ input: TensorInput, range: Range<Int>, scratch: UnsafeMutablePointer<UInt32>) -> Double {
        switch input.elementType {
        case .float32:
            return absSumFloat32(input.bytes.baseAddress! + range.lowerBound * 4, count: range.count)
        case .float16, .bfloat16:
            widen(input, range: range, into: scratch)
            return absSumFloat32(UnsafeRawPointer(scratch), count: range.count)
        }
    }

    static func widen(_ input: TensorInput, range: Range<Int>, into scratch: UnsafeMutablePointer<UInt32>) {
        let base = input.bytes.baseAddress! + range.lowerBound * 2
        let n = range.count
        if input.elementType == .bfloat16 {
            for i in 0..<n {
                scratch[i] = UInt32(base.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)) << 16
            }
        } else {
            for i in 0..<n {
                scratch[i] = Float32Bits.fromFloat16(base.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self))
            }
        }
    }

    @inline(__always)
    static func absSumFloat32(_ base: UnsafeRawPointer, count: Int) -> Double {
        let mask = SIMD8<UInt32>(repeating: 0x7FFF_FFFF)
        var acc0 = SIMD8<Double>()
        var acc1 = SIMD8<Double>()
        var i = 0
        while i + 16 <= count {
            let a = base.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<UInt32>.self) & mask
            let b = base.loadUnaligned(fromByteOffset: i * 4 + 32, as: SIMD8<UInt32>.self) & mask
            acc0 += SIMD8<Double>(unsafeBitCast(a, to: SIMD8<Float>.self))
            acc1 += SIMD8<Double>(unsafeBitCast(b, to: SIMD8<Float>.self))
            i += 16
        }
        var tail = 0.0
        while i < count {
            let bits = base.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self) & 0x7FFF_FFFF
            tail += Double(Float(bitPattern: bits))
            i += 1
        }
        return (acc0 + acc1).sum() + tail
    }

    /// Writes the trits of `range` into `output` in `layout` and returns the number of non-zero trits.
    /// `range.lowerBound` is a multiple of 4 (chunks are multiples of 64), so packed bytes never straddle.
    @inline(__always)
    static func ternarize(_ input: TensorInput, range: Range<Int>, threshold: UInt32, layout: TritLayout,
                          output: UnsafeMutableRawPointer, scratch: UnsafeMutablePointer<UInt32>) -> Int {
        let source: UnsafeRawPointer
        switch input.elementType {
        case .float32:
            source = input.bytes.baseAddress! + range.lowerBound * 4
        case .float16, .bfloat16:
            widen(input, range: range, into: scratch)
            source = UnsafeRawPointer(scratch)
        }
        switch layout {
        case .packed2Bit:
            return packFloat32(source, count: range.count, threshold: threshold,
                               output: output.assumingMemoryBound(to: UInt8.self) + range.lowerBound / 4)
        case .int8:
            return int8Float32(source, count: range.count, threshold: threshold,
                               output: output.assumingMemoryBound(to: UInt8.self) + range.lowerBound)
        }
    }

    @inline(__always)
    static func packFloat32(_ source: UnsafeRawPointer, count: Int, threshold: UInt32,
                            output: UnsafeMutablePointer<UInt8>) -> Int {
        let mask = SIMD16<UInt32>(repeating: 0x7FFF_FFFF)
        let limit = SIMD16<UInt32>(repeating: threshold)
        let zero = SIMD16<UInt32>()
        let one = SIMD16<UInt32>(repeating: 1)
        var nonZero = SIMD16<UInt32>()
        var i = 0
        while i + 16 <= count {
            let bits = source.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<UInt32>.self)
            let isSet = zero.replacing(with: one, where: (bits & mask) .>= limit)
            nonZero &+= isSet
            // code = 01 for +1, 10 for −1, 00 for 0; one code per byte lane, then 4 lanes → 1 byte.
            let codes = SIMD16<UInt8>(truncatingIfNeeded: isSet &<< (bits &>> 31))
            let words = unsafeBitCast(codes, to: SIMD4<UInt32>.self)
            let packed = (words | (words &>> 6) | (words &>> 12) | (words &>> 18)) & 0xFF
            let bytes = SIMD4<UInt8>(truncatingIfNeeded: packed)
            UnsafeMutableRawPointer(output + i / 4).storeBytes(of: bytes, as: SIMD4<UInt8>.self)
            i += 16
        }
        var count32 = Int(nonZero.wrappedSum())
        var byte: UInt8 = 0
        while i < count {
            let bits = source.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self)
            if bits & 0x7FFF_FFFF >= threshold {
                count32 += 1
                byte |= UInt8(1 << (bits >> 31)) << UInt8(2 * (i & 3))
            }
            if i & 3 == 3 {
                output[i / 4] = byte
                byte = 0
            }
            i += 1
        }
        if count & 3 != 0 { output[count / 4] = byte }
        return count32
    }

    @inline(__always)
    static func int8Float32(_ source: UnsafeRawPointer, count: Int, threshold: UInt32,
                            output: UnsafeMutablePointer<UInt8>) -> Int {
        let mask = SIMD16<UInt32>(repeating: 0x7FFF_FFFF)
        let limit = SIMD16<UInt32>(repeating: threshold)
        let zero = SIMD16<UInt32>()
        let one = SIMD16<UInt32>(repeating: 1)
        var nonZero = SIMD16<UInt32>()
        var i = 0
        while i + 16 <= count {
            let bits = source.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<UInt32>.self)
            let isSet = zero.replacing(with: one, where: (bits & mask) .>= limit)
            nonZero &+= isSet
            // −1 → 0xFFFFFFFF (all ones), +1 → 1, 0 → 0; truncated to a byte.
            let negative = zero &- (isSet & (bits &>> 31))
            let trits = SIMD16<UInt8>(truncatingIfNeeded: negative | isSet)
            UnsafeMutableRawPointer(output + i).storeBytes(of: trits, as: SIMD16<UInt8>.self)
            i += 16
        }
        var count32 = Int(nonZero.wrappedSum())
        while i < count {
            let bits = source.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self)
            if bits & 0x7FFF_FFFF >= threshold {
                count32 += 1
                output[i] = bits >> 31 == 0 ? 1 : 0xFF
            } else {
                output[i] = 0
            }
            i += 1
        }
        return count32
    }
}
