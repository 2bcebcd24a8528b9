import TernaryQuantFormats
import TernaryQuantCore
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

    /// Decides for a safetensors tensor (Hugging Face names).
    public func decide(name: String, dtype: SafetensorsDType, shape: [Int]) -> Decision {
        decide(name: name, elementType: dtype.quantizable, dtypeLabel: dtype.rawValue, shape: shape, naming: .huggingFace)
    }

    /// Name parts of `blk.N.<part>.weight` that llama.cpp names keep at full precision by default: norms,
    /// the MoE router, convolution and state-space parameters, positional tables.
    public static let llamaCppKeptParts = ["norm", "ffn_gate_inp", "conv1d", "ssm_a", "ssm_d", "pos_embd", "rel_b"]

    /// The `<part>` of a `blk.N.<part>.weight` name, or `nil` for other names.
    static func llamaCppBlockPart(_ name: String) -> Substring? {
        guard name.hasPrefix("blk."), name.hasSuffix(".weight") else { return nil }
        let middle = name.dropFirst(4).dropLast(7)
        guard let dot = middle.firstIndex(of: "."), dot != middle.startIndex,
              middle[..<dot].allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        let part = middle[middle.index(after: dot)...]
        return part.isEmpty ? nil : part
    }

    /// Decides for a tensor named `name` of element type `elementType` (nil: not F32/F16/BF16, shown as
    /// `dtypeLabel`) and `shape`, with the default rule of `naming`.
    ///
    /// llama.cpp names: every `blk.N.<part>.weight` of rank ≥ 2 (attn_q/k/v/qkv/output, ffn_gate/up/down,
    /// their `_exps`/`_shexp` MoE forms, …) except the parts in `llamaCppKeptParts`; token_embd, output,
    /// norms and biases are kept.
    public func decide(name: String, elementType: ElementType?, dtypeLabel: String, shape: [Int], naming: TensorNaming) -> Decision {
        if let p = exclude.first(where: { Self.matches($0, name) }) {
            return Decision(quantize: false, reason: "excluded by exclude pattern '\(p)'")
        }
        let included = include.first(where: { Self.matches($0, name) })
        guard elementType != nil else {
            return Decision(quantize: false, reason: "dtype \(dtypeLabel) is not quantized (only F32/F16/BF16)")
        }
        guard (Checked.product(shape) ?? 0) > 0 else {
            return Decision(quantize: false, reason: "tensor is empty")
        }
        if let p = included {
            return Decision(quantize: true, reason: "included by include pattern '\(p)'")
        }
        guard shape.count >= 2 else {
            return Decision(quantize: false, reason: "rank \(shape.count) < 2 (biases, scalars)")
        }
        switch naming {
        case .huggingFace:
            guard name.hasSuffix("weight") else {
                return Decision(quantize: false, reason: "name does not end in 'weight'")
            }
            let lower = name.lowercased()
            if let word = Self.defaultKeptSubstrings.first(where: { lower.contains($0) }) {
                return Decision(quantize: false, reason: "'\(word)' tensors are kept at full precision by default")
            }
            return Decision(quantize: true, reason: "linear weight")
        case .llamaCpp:
            guard let part = Self.llamaCppBlockPart(name) else {
                return Decision(quantize: false, reason: "not a blk.N.*.weight tensor (token_embd, output, … are kept at full precision by default)")
            }
            if let word = Self.llamaCppKeptParts.first(where: { part.contains($0) }) {
                return Decision(quantize: false, reason: "'\(word)' tensors are kept at full precision by default")
            }
            return Decision(quantize: true, reason: "linear weight")
        }
    }
}
