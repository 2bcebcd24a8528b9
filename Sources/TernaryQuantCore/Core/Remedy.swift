/// What the user can do about an error, as data: the library names the action, a front end (the `ternq`
/// CLI, an app) phrases it in its own terms (a flag, a button, an environment variable).
public enum Remedy: Sendable, Hashable, CustomStringConvertible {
    /// Allow the existing output file to be replaced (ternq: `--force`).
    case allowOverwrite
    /// Select the CPU backend instead of OpenCL (ternq: `--backend cpu`, or `TERNQ_DEVICE=cpu`).
    case useCPUBackend
    /// Leave the named tensor out of quantization (ternq: `--exclude '<name>'`).
    case excludeTensor(String)

    /// The remedy in words that name no front end's options.
    public var description: String {
        switch self {
        case .allowOverwrite: return "allow overwriting to replace it"
        case .useCPUBackend: return "select the CPU backend instead"
        case .excludeTensor(let name): return "leave tensor '\(name)' out of quantization"
        }
    }
}

/// An error that can say what the user can do about it.
///
/// `description` is `problem` followed by the remedy in neutral words; a front end prints `problem`
/// followed by its own phrasing of `remedy`.
public protocol RemediableError: Error, CustomStringConvertible {
    /// What went wrong, without the remedy.
    var problem: String { get }
    /// What the user can do, or `nil` when there is nothing specific.
    var remedy: Remedy? { get }
}

extension RemediableError {
    /// `problem`, then `remedy` phrased by `phrase` (default: the remedy's neutral description).
    public func message(phrasingRemedy phrase: (Remedy) -> String = { $0.description }) -> String {
        guard let remedy else { return problem }
        return "\(problem); \(phrase(remedy))"
    }
}
