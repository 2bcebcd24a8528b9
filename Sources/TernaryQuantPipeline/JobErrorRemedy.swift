import TernaryQuantCore
import TernaryQuantFormats

extension JobError: RemediableError {
    /// The underlying error's problem, with the file in front unless the underlying error names it.
    public var problem: String {
        if let format = underlying as? FormatError { return format.problem }
        if let remediable = underlying as? any RemediableError { return "\(file): \(remediable.problem)" }
        return description
    }

    /// The underlying error's remedy, if it has one.
    public var remedy: Remedy? { (underlying as? any RemediableError)?.remedy }
}
