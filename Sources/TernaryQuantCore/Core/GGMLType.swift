/// Every tensor type of ggml's `enum ggml_type` that a GGUF file may hold (llama.cpp's ggml.h; the codes it
/// marks as removed — 4, 5, 31–33, 36–38 — are not types and are refused by the reader, as llama.cpp does).
///
/// Only F32, F16 and BF16 are read as numbers by `ternq`; every other type is sized from its block layout
/// (ggml.c `type_traits`) so its bytes can be passed through unchanged.
public enum GGMLType: UInt32, Sendable, Hashable, CaseIterable, Codable {
    case f32 = 0, f16 = 1, q4_0 = 2, q4_1 = 3, q5_0 = 6, q5_1 = 7, q8_0 = 8, q8_1 = 9
    case q2_k = 10, q3_k = 11, q4_k = 12, q5_k = 13, q6_k = 14, q8_k = 15
    case iq2_xxs = 16, iq2_xs = 17, iq3_xxs = 18, iq1_s = 19, iq4_nl = 20, iq3_s = 21, iq2_s = 22, iq4_xs = 23
    case i8 = 24, i16 = 25, i32 = 26, i64 = 27, f64 = 28, iq1_m = 29, bf16 = 30
    case tq1_0 = 34, tq2_0 = 35
    case mxfp4 = 39, nvfp4 = 40, q1_0 = 41, q2_0 = 42

    /// (elements per block, bytes per block), as ggml.c's `type_traits` `blck_size` / `type_size`.
    public var blockLayout: (elements: Int, bytes: Int) {
        switch self {
        case .f32: return (1, 4)
        case .f16, .bf16: return (1, 2)
        case .q4_0: return (32, 18)
        case .q4_1: return (32, 20)
        case .q5_0: return (32, 22)
        case .q5_1: return (32, 24)
        case .q8_0: return (32, 34)
        case .q8_1: return (32, 36)
        case .q2_k: return (256, 84)
        case .q3_k: return (256, 110)
        case .q4_k: return (256, 144)
        case .q5_k: return (256, 176)
        case .q6_k: return (256, 210)
        case .q8_k: return (256, 292)
        case .iq2_xxs: return (256, 66)
        case .iq2_xs: return (256, 74)
        case .iq3_xxs: return (256, 98)
        case .iq1_s: return (256, 50)
        case .iq4_nl: return (32, 18)
        case .iq3_s: return (256, 110)
        case .iq2_s: return (256, 82)
        case .iq4_xs: return (256, 136)
        case .i8: return (1, 1)
        case .i16: return (1, 2)
        case .i32: return (1, 4)
        case .i64, .f64: return (1, 8)
        case .iq1_m: return (256, 56)
        case .tq1_0: return (256, 54)
        case .tq2_0: return (256, 66)
        case .mxfp4: return (32, 17)
        case .nvfp4: return (64, 36)
        case .q1_0: return (128, 18)
        case .q2_0: return (64, 18)
        }
    }

    /// llama.cpp's name for the type (`ggml_type_name`: "f32", "q4_K", "tq2_0", …): the case name, with
    /// the K-quants' suffix in capitals.
    public var ggmlName: String {
        let name = "\(self)"
        return name.hasSuffix("_k") ? name.dropLast() + "K" : name
    }

    /// Bytes for a tensor whose innermost dimension is `ne0` and total element count `count`, or `nil`
    /// when `ne0` or `count` is not a multiple of the block size, either is negative, or the size overflows.
    public func byteCount(ne0: Int, count: Int) -> Int? {
        let (elements, bytes) = blockLayout
        guard ne0 >= 0, count >= 0, ne0 % elements == 0, count % elements == 0 else { return nil }
        return Checked.mul(count / elements, bytes)
    }

    /// Bytes for a tensor of `dimensions` (ggml order, innermost first; `[]` is a scalar), or `nil` when a
    /// dimension is negative, ne0 is not a multiple of the block size, or the element count or size overflows.
    public func byteCount(dimensions: [Int]) -> Int? {
        guard let count = Checked.product(dimensions) else { return nil }
        return byteCount(ne0: dimensions.first ?? 1, count: count)
    }
}
