/// The result of quantizing one weight tensor: API-compatible with `PerLayerQuant` of the Rust crate
/// ternlang-compress 1.5.0, with exact α and typed errors instead of panics or NaN.
public struct PerLayerQuant: Sendable, Hashable {
    /// Ternary weights in row-major order.
    public var trits: [Trit]
    /// Per-layer scale α: the float32 nearest to the exact mean of |W| (1.0 when every weight is ±0).
    public var scale: Float
    /// Logical shape (product = `trits.count`).
    public var shape: [Int]
    /// Layer name used in diagnostics (e.g. "model.layers.0.self_attn.q_proj.weight").
    public var name: String
    /// Fraction of trits that are `.tend` (zero), 0...1.
    public var sparsity: Double

    /// Creates a value from its parts (no validation; use `quantize` to compute one).
    public init(trits: [Trit], scale: Float, shape: [Int], name: String, sparsity: Double) {
        self.trits = trits
        self.scale = scale
        self.shape = shape
        self.name = name
        self.sparsity = sparsity
    }

    /// Quantizes flat row-major `weights` with the absmean rule (CPU backend; every backend gives the same
    /// bytes). Throws `QuantizationError` for an empty tensor, a shape that does not match, negative or
    /// overflowing dimensions, or a NaN/Inf weight (naming its flat index).
    public static func quantize(_ weights: [Float], name: String, shape: [Int]) throws -> PerLayerQuant {
        let quantized = try Quantizer(backend: CPUBackend()).quantize(weights, name: name, shape: shape, layout: .int8)
        return PerLayerQuant(trits: try quantized.trits(), scale: quantized.scale, shape: shape, name: name,
                             sparsity: quantized.sparsity)
    }

    /// Reconstruction α·t as float32 (a zero trit gives +0.0).
    public func reconstruct() -> [Float] {
        trits.map { trit in
            switch trit {
            case .tend: return 0
            case .affirm: return scale
            case .reject: return -scale
            }
        }
    }

    /// Mean of (w − α·t)² over all elements, computed in float64 and returned as float32.
    /// Throws `QuantizationError.lengthMismatch` when `original.count` differs from `trits.count`.
    public func mse(_ original: [Float]) throws -> Float {
        guard original.count == trits.count else {
            throw QuantizationError.lengthMismatch(name: name, expected: trits.count, actual: original.count)
        }
        guard !trits.isEmpty else { return 0 }
        let alpha = Double(scale)
        var sum = 0.0
        for (w, t) in zip(original, trits) {
            let d = Double(w) - alpha * Double(t.rawValue)
            sum += d * d
        }
        return Float(sum / Double(trits.count))
    }
}
