#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Decides which tensors are quantized.
///
/// Default: floating tensors (F32/F16/BF16) of rank ≥ 2 whose names end in `weight`, except names
/// containing `embed`, `norm` or `lm_head`. `exclude` globs win over everything; `include` globs select
/// a tensor whatever its name or rank (it must still be F32/F16/BF16 and non-empty). Globs use `fnmatch`
/// syntax (`*`, `?`, `[...]`), and `*` also matches dots.
public struct TensorSelection: Sendable, Hashable {
    /// Patterns that force quantization.
    public var include: [String]
    /// Patterns that prevent quantization.
    public var exclude: [String]

    /// Creates a selection.
    public init(include: [String] = [], exclude: [String] = []) {
        self.include = include
        self.exclude = exclude
    }

    /// Substrings that keep a tensor unquantized by default.
    public static let defaultKeptSubstrings = ["embed", "norm", "lm_head"]

    /// The decision for one tensor.
    public struct Decision: Sendable, Hashable {
        /// Whether to quantize.
        public var quantize: Bool
        /// Why (for the report).
        public var reason: String
    }

    static func matches(_ pattern: String, _ name: String) -> Bool {
        fnmatch(pattern, name, 0) == 0
    }

    /// Decides for a tensor of `dtype` and `shape` named `name`.
    public func decide(name: String, dtype: SafetensorsDType, shape: [Int]) -> Decision {
        if let p = exclude.first(where: { Self.matches($0, name) }) {
            return Decision(quantize: false, reason: "excluded by --exclude '\(p)'")
        }
        let included = include.first(where: { Self.matches($0, name) })
        guard dtype.quantizable != nil else {
            return Decision(quantize: false, reason: "dtype \(dtype.rawValue) is not quantized (only F32/F16/BF16)")
        }
        guard (Checked.product(shape) ?? 0) > 0 else {
            return Decision(quantize: false, reason: "tensor is empty")
        }
        if let p = included {
            return Decision(quantize: true, reason: "included by --include '\(p)'")
        }
        guard shape.count >= 2 else {
            return Decision(quantize: false, reason: "rank \(shape.count) < 2 (biases, scalars)")
        }
        guard name.hasSuffix("weight") else {
            return Decision(quantize: false, reason: "name does not end in 'weight'")
        }
        let lower = name.lowercased()
        if let word = Self.defaultKeptSubstrings.first(where: { lower.contains($0) }) {
            return Decision(quantize: false, reason: "'\(word)' tensors are kept at full precision by default")
        }
        return Decision(quantize: true, reason: "linear weight")
    }
}
