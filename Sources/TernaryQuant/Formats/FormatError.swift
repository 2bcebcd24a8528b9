/// Why a model file could not be read or written. Every case names the file, and where it applies the
/// tensor and byte offset, so a single line tells the user what is wrong and where.
public enum FormatError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The file could not be opened, mapped, read or written (`reason` is the system message).
    case io(file: String, reason: String)
    /// The file is structurally invalid at `offset` (bytes from the start of the file, when known).
    case malformed(file: String, offset: Int?, reason: String)
    /// One tensor's description or data is invalid.
    case invalidTensor(file: String, tensor: String, reason: String)
    /// The request cannot be honoured (bad option, unsupported combination, refused overwrite).
    case unsupported(file: String, reason: String)

    public var description: String {
        switch self {
        case .io(let file, let reason):
            return "\(file): \(reason)"
        case .malformed(let file, let offset, let reason):
            if let offset { return "\(file): at byte \(offset): \(reason)" }
            return "\(file): \(reason)"
        case .invalidTensor(let file, let tensor, let reason):
            return "\(file): tensor '\(tensor)': \(reason)"
        case .unsupported(let file, let reason):
            return "\(file): \(reason)"
        }
    }
}

/// Overflow-checked integer helpers used by every parser (parsers never trap on hostile sizes).
enum Checked {
    static func mul(_ a: Int, _ b: Int) -> Int? {
        let (r, o) = a.multipliedReportingOverflow(by: b)
        return o ? nil : r
    }

    static func add(_ a: Int, _ b: Int) -> Int? {
        let (r, o) = a.addingReportingOverflow(b)
        return o ? nil : r
    }

    static func product(_ shape: [Int]) -> Int? {
        var total = 1
        for d in shape {
            guard d >= 0, let p = mul(total, d) else { return nil }
            total = p
        }
        return total
    }
}
