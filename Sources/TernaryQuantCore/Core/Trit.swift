/// One balanced-ternary weight: −1, 0 or +1.
///
/// Names follow the seed crate (ternlang): `reject` = −1, `tend` = 0, `affirm` = +1.
public enum Trit: Int8, Sendable, Hashable, CaseIterable {
    /// −1.
    case reject = -1
    /// 0 (the weight is dropped).
    case tend = 0
    /// +1.
    case affirm = 1

    /// The 2-bit code used by the packed layout: 00 = 0, 01 = +1, 10 = −1.
    @inlinable
    public var packedCode: UInt8 {
        switch self {
        case .tend: return 0b00
        case .affirm: return 0b01
        case .reject: return 0b10
        }
    }

    /// Decodes a 2-bit packed code; `nil` for the invalid code `11` (or any value above 3).
    @inlinable
    public init?(packedCode: UInt8) {
        switch packedCode {
        case 0b00: self = .tend
        case 0b01: self = .affirm
        case 0b10: self = .reject
        default: return nil
        }
    }
}
