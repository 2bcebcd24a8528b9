import Dispatch
import TernaryQuantFormats
import TernaryQuantCore
/// Every element-type conversion the pipeline writes, in one place: exact BF16 → F32 widening, float32 →
/// F16/BF16 rounding of a scale, and α·t written as F32, F16 or BF16 elements. All by integer bit logic
/// (round to nearest, ties to even), independent of the FPU mode.
enum ElementConversion {
    /// Elements converted per chunk (bounded staging memory).
    static let chunkElements = 1 << 16

    /// The bfloat16 bit pattern nearest to `value` (ties to even; NaN stays a quiet NaN with its sign).
    static func bfloat16Bits(_ value: Float) -> UInt16 {
        let bits = value.bitPattern
        if bits & 0x7FFF_FFFF > 0x7F80_0000 { return UInt16(bits >> 16) | 0x0040 }
        let rounded = bits &+ 0x7FFF &+ ((bits >> 16) & 1)
        return UInt16(rounded >> 16)
    }

    /// The value `scale` becomes when stored as one element of `type` (exact for F32).
    static func stored(_ scale: Float, as type: ElementType) -> Float {
        switch type {
        case .float32: return scale
        case .float16: return Float(bitPattern: Float32Bits.fromFloat16(HalfConversion.float16Bits(scale)))
        case .bfloat16: return Float(bitPattern: Float32Bits.fromBFloat16(bfloat16Bits(scale)))
        }
    }

    /// Elements per write of the converting writers: `parts` chunks of `chunkElements`, converted on every
    /// core into one staging buffer (at most 4 MiB), then written in order.
    static let parts = 16

    /// Converts `count` elements in blocks of `parts × chunkElements`: `convert(staging, first, n)` fills
    /// `n` elements of `width` bytes for elements `first..<first + n` (chunks of one block in parallel),
    /// then the block is written to `sink`.
    private static func convertInParallel(count: Int, width: Int, to sink: any ByteSink, source: UnsafeRawBufferPointer,
                                          _ convert: @escaping @Sendable (UnsafeMutableRawPointer, UnsafeRawBufferPointer, Int, Int) -> Void) throws {
        let block = parts * chunkElements
        let staging = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: Swift.min(count, block) * width + 1)
        defer { staging.deallocate() }
        let shared = ChunkResults(staging, source)
        var i = 0
        while i < count {
            let n = Swift.min(block, count - i)
            let chunks = (n + chunkElements - 1) / chunkElements
            let first = i
            DispatchQueue.concurrentPerform(iterations: chunks) { c in
                guard let base = shared.buffer.baseAddress else { return }
                let lo = c * chunkElements
                convert(base + lo * width, shared.bytes, first + lo, Swift.min(chunkElements, n - lo))
            }
            try sink.write(UnsafeRawBufferPointer(start: staging.baseAddress, count: n * width))
            i += n
        }
    }

    /// Writes `bytes` (little-endian BF16) as little-endian F32, exactly, in bounded chunks (converted on
    /// every core).
    static func writeWidenedBF16(_ bytes: UnsafeRawBufferPointer, to sink: any ByteSink) throws {
        try convertInParallel(count: bytes.count / 2, width: 4, to: sink, source: bytes) { out, bytes, first, n in
            for k in 0..<n {
                let h = UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: (first &+ k) &* 2, as: UInt16.self))
                out.storeBytes(of: Float32Bits.fromBFloat16(h).littleEndian, toByteOffset: k &* 4, as: UInt32.self)
            }
        }
    }

    /// Writes `count` elements s·t of `type`, where t comes from 2-bit packed trits (00 = 0, 01 = +1,
    /// 10 = −1) and s = `stored(scale, as: type)`; zero trits are +0. Converted on every core in bounded
    /// chunks. Returns the bytes written.
    @discardableResult
    static func writeTernary(packed: UnsafeRawBufferPointer, count: Int, scale: Float, as type: ElementType,
                             to sink: any ByteSink) throws -> Int {
        let plus: UInt32, minus: UInt32
        switch type {
        case .float32:
            plus = scale.bitPattern & 0x7FFF_FFFF
            minus = plus | 0x8000_0000
        case .float16:
            plus = UInt32(HalfConversion.float16Bits(scale) & 0x7FFF)
            minus = plus | 0x8000
        case .bfloat16:
            plus = UInt32(bfloat16Bits(scale) & 0x7FFF)
            minus = plus | 0x8000
        }
        let width = type.byteWidth
        try convertInParallel(count: count, width: width, to: sink, source: packed) { out, packed, first, n in
            for k in 0..<n {
                let e = first &+ k
                let code = (packed[e &>> 2] &>> UInt8(truncatingIfNeeded: 2 &* (e & 3))) & 3
                let bits: UInt32 = code == 1 ? plus : (code == 2 ? minus : 0)
                if width == 4 {
                    out.storeBytes(of: bits.littleEndian, toByteOffset: k &* 4, as: UInt32.self)
                } else {
                    out.storeBytes(of: UInt16(truncatingIfNeeded: bits).littleEndian, toByteOffset: k &* 2, as: UInt16.self)
                }
            }
        }
        return count * width
    }

    /// `scan` of every fixed chunk of 1 Mi elements of `bytes` (read as `type`; a trailing partial element
    /// is ignored) on every core, given the chunk's first element and its element range; the results in
    /// chunk order (a single chunk runs on the calling thread), so answers do not depend on the thread
    /// count.
    static func scanChunks<T>(_ bytes: UnsafeRawBufferPointer, as type: ElementType, initial: T,
                              _ scan: @Sendable (UnsafeRawPointer, Range<Int>) -> T) -> [T] {
        let count = bytes.count / type.byteWidth
        guard let start = bytes.baseAddress, count > 0 else { return [] }
        let chunk = 1 << 20
        let chunks = (count + chunk - 1) / chunk
        var results = [T](repeating: initial, count: chunks)
        results.withUnsafeMutableBufferPointer { buffer in
            guard chunks > 1 else {
                buffer[0] = scan(start, 0..<count)
                return
            }
            let box = ChunkResults(buffer, bytes)
            DispatchQueue.concurrentPerform(iterations: chunks) { c in
                guard let base = box.bytes.baseAddress else { return }
                let lo = c * chunk
                box.buffer[c] = scan(base + lo * type.byteWidth, lo..<Swift.min(count, lo + chunk))
            }
        }
        return results
    }

    /// The index of the first NaN or ±Inf element of `bytes` read as `type`, or `nil` when all are finite.
    /// Scans fixed chunks of 1 Mi elements on every core with the C kernel table's scan (`scanChunks`).
    static func firstNonFinite(_ bytes: UnsafeRawBufferPointer, as type: ElementType) -> Int? {
        let firsts = scanChunks(bytes, as: type, initial: nil as Int?) { base, range in
            CPUInstructionSet.automatic.firstNonFinite(base, count: range.count, as: type).map { range.lowerBound + $0 }
        }
        // Chunks in element order: the first chunk with one holds the first.
        return firsts.lazy.compactMap { $0 }.first
    }
}

/// The scale and facts of one quantized tensor, known once its data has been read.
public struct TernaryFacts: Sendable, Hashable {
    /// α (absmean), or the common magnitude a when the tensor is already ternary.
    public var scale: Float
    /// The absmean α of the tensor.
    public var absmean: Float
    /// Whether every non-zero value has one magnitude (then `scale` is that magnitude).
    public var alreadyTernary: Bool
    /// Fraction of zero trits.
    public var sparsity: Double
}

/// How a quantized tensor is stored in GGUF output, decided from its facts (see docs/FORMATS.md).
public struct GGUFTernaryStorage: Sendable, Hashable {
    /// The ggml type: TQ2_0/TQ1_0, F16 (ternary as F16) or F32 (scale not representable in f16).
    public var type: GGMLType
    /// The scale the stored values carry (f16(s) for TQ/F16, s for F32).
    public var storedScale: Float
    /// The report line, if any.
    public var note: String?

    /// Whether `scale` survives as an f16 scale: 0 exactly, or f16(scale) a normal finite f16 that,
    /// when `exact` (already ternary), equals `scale`.
    public static func halfScaleIsSafe(_ scale: Float, exact: Bool) -> Bool {
        if scale == 0 { return true }
        let h = HalfConversion.float16Bits(scale)
        let exponent = (h >> 10) & 0x1F
        guard exponent != 0, exponent != 0x1F else { return false }
        return !exact || Float(bitPattern: Float32Bits.fromFloat16(h)) == scale
    }

    /// The storage for a tensor with scale `facts.scale`: TQ blocks (`blockType`) when `blockEligible`
    /// (ne0 % 256 == 0) and the scale is safe, F16 holding f16(s)·t when not block-eligible and safe, and
    /// F32 holding s·t when the scale is not safe.
    public static func choose(_ facts: TernaryFacts, blockEligible: Bool, blockType: GGMLType) -> GGUFTernaryStorage {
        let s = facts.scale
        if halfScaleIsSafe(s, exact: facts.alreadyTernary) {
            let half = ElementConversion.stored(s, as: .float16)
            if blockEligible { return GGUFTernaryStorage(type: blockType, storedScale: half, note: nil) }
            return GGUFTernaryStorage(type: .f16, storedScale: half, note: "ternary as F16 (row length not a multiple of 256)")
        }
        let why = facts.alreadyTernary && s != 0 && ElementConversion.stored(s, as: .float16) != s
            ? "the common magnitude \(s) is not exactly an f16" : "f16(scale) of \(s) is 0, infinite or subnormal"
        return GGUFTernaryStorage(type: .f32, storedScale: s, note: "ternary as F32: \(why)")
    }
}

/// Per-chunk results written from `concurrentPerform` (each chunk writes only its own slot of `buffer`),
/// with the read-only bytes the chunks read. Shared by the pipeline's parallel scans.
final class ChunkResults<Element>: @unchecked Sendable {
    let buffer: UnsafeMutableBufferPointer<Element>
    let bytes: UnsafeRawBufferPointer
    init(_ buffer: UnsafeMutableBufferPointer<Element>, _ bytes: UnsafeRawBufferPointer) {
        self.buffer = buffer
        self.bytes = bytes
    }
}
