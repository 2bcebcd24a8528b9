import Foundation
import Testing
@testable import TernaryQuant

/// Hand-built GGUF bytes (independent of `GGUFFormat.header`), so reader tests do not trust the writer.
struct RawGGUF {
    var bytes: [UInt8] = []
    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func str(_ s: String) { u64(UInt64(s.utf8.count)); bytes += Array(s.utf8) }
    mutating func pad(_ alignment: Int = 32) { while bytes.count % alignment != 0 { bytes.append(0) } }
    /// Magic, version, counts.
    static func start(version: UInt32 = 3, tensors: UInt64, kvs: UInt64) -> RawGGUF {
        var r = RawGGUF()
        r.bytes = Array("GGUF".utf8)
        r.u32(version); r.u64(tensors); r.u64(kvs)
        return r
    }
    /// One tensor info.
    mutating func tensor(_ name: String, _ dims: [UInt64], type: UInt32, offset: UInt64) {
        str(name); u32(UInt32(dims.count)); for d in dims { u64(d) }; u32(type); u64(offset)
    }
}

@Suite("Formats: GGUF reader")
struct FormatsGGUFReaderTests {
    /// issue 8 item 1: a dimension of 2^61 − 1 (F32: 2^63 − 4 bytes) overflowed rounding up to the alignment.
    @Test func hugeDimensionIsAnErrorNotATrap() throws {
        var r = RawGGUF.start(tensors: 1, kvs: 0)
        let infoAt = r.bytes.count
        r.tensor("w", [(1 << 61) - 1], type: 0, offset: 0)
        r.pad()
        r.bytes += [UInt8](repeating: 0, count: 64)
        let bytes = r.bytes
        do {
            _ = try bytes.withUnsafeBytes { try GGUFFormat.decode($0, file: "huge.gguf") }
            Issue.record("accepted")
        } catch let e as FormatError {
            #expect("\(e)".contains("huge.gguf"))
            #expect("\(e)".contains("byte \(infoAt)") || "\(e)".contains("byte "), "\(e)")
        }
    }
}
