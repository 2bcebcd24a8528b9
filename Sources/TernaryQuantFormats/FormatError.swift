import TernaryQuantCore
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
    /// The request was refused, and `remedy` says what the user can do (an output that already exists,
    /// a tensor too large for this machine).
    case refused(file: String, reason: String, remedy: Remedy)

    /// One line; every control character (and bidirectional override) coming from a file is escaped
    /// (`DisplayText.escaped`), so a hostile name cannot forge output.
    public var description: String {
        switch self {
        case .io(let file, let reason):
            return DisplayText.escaped("\(file): \(reason)")
        case .malformed(let file, let offset, let reason):
            if let offset { return DisplayText.escaped("\(file): at byte \(offset): \(reason)") }
            return DisplayText.escaped("\(file): \(reason)")
        case .invalidTensor(let file, let tensor, let reason):
            return DisplayText.escaped("\(file): tensor '\(tensor)': \(reason)")
        case .unsupported(let file, let reason):
            return DisplayText.escaped("\(file): \(reason)")
        case .refused:
            return message()
        }
    }
}

extension FormatError: RemediableError {
    /// The description without the remedy (escaped like `description`).
    public var problem: String {
        if case .refused(let file, let reason, _) = self { return DisplayText.escaped("\(file): \(reason)") }
        return description
    }

    /// `.refused`'s remedy; `nil` for every other case.
    public var remedy: Remedy? {
        if case .refused(_, _, let remedy) = self { return remedy }
        return nil
    }
}

/// Text from files made safe for one terminal line: the one helper every error, warning and report
/// line passes file-derived strings (names, paths, keys, values) through.
public enum DisplayText {
    /// `text` with every C0/C1 control character (NUL, ESC, CR, LF, TAB, DEL, U+0080–U+009F) and every
    /// bidirectional control (U+061C, U+200E/F, U+202A–U+202E, U+2066–U+2069) replaced by `\u{XX}`
    /// (hex of the scalar). Everything else is kept, including `\` itself, so escaping is idempotent
    /// (escaping twice gives the same text as once).
    public static func escaped(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: needsEscape) else { return text }
        var out = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            if needsEscape(scalar) {
                out.append(contentsOf: "\\u{\(String(scalar.value, radix: 16))}".unicodeScalars)
            } else {
                out.append(scalar)
            }
        }
        return String(out)
    }

    /// `escaped` applied line by line: the line breaks of `text` itself are kept (for multi-line reports
    /// whose fields were escaped already or cannot contain line breaks).
    public static func escapedLines(_ text: String) -> String {
        text.split(separator: "\n", omittingEmptySubsequences: false).map { escaped(String($0)) }.joined(separator: "\n")
    }

    static func needsEscape(_ s: Unicode.Scalar) -> Bool {
        switch s.value {
        case 0x00...0x1F, 0x7F...0x9F, 0x061C, 0x200E, 0x200F, 0x202A...0x202E, 0x2066...0x2069: return true
        default: return false
        }
    }
}
