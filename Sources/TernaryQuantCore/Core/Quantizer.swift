import Dispatch

/// Quantizes many tensors with one backend (CPU, one OpenCL device, or several), reusing it across calls.
///
/// Thread-safe. Every entry point validates the shape first and throws `QuantizationError` on bad input;
/// device failures surface as the backend's error type.
public final class Quantizer: Sendable {
    /// The backend doing the work.
    public let backend: any QuantizationBackend

    /// Uses `backend` (default: the native CPU backend with every core).
    public init(backend: any QuantizationBackend = CPUBackend()) {
        self.backend = backend
    }

    /// Quantizes a borrowed tensor into `output` (at least `layout.byteCount(forTrits:)` bytes);
    /// no copy of the input is made.
    public func quantize(_ input: TensorInput, layout: TritLayout = .packed2Bit,
                         into output: UnsafeMutableRawBufferPointer) throws -> QuantizationSummary {
        try backend.quantize(input, layout: layout, into: output)
    }

    /// Quantizes a borrowed tensor and returns its trits in `layout`.
    public func quantize(_ input: TensorInput, layout: TritLayout = .packed2Bit) throws -> QuantizedTensor {
        let byteCount = layout.byteCount(forTrits: input.elementCount)
        var data = [UInt8](repeating: 0, count: byteCount)
        let summary = try data.withUnsafeMutableBytes { try backend.quantize(input, layout: layout, into: $0) }
        return QuantizedTensor(name: input.name, shape: input.shape, summary: summary, layout: layout, data: data)
    }

    /// Quantizes float32 weights (row-major, `shape`'s product elements) without copying them.
    public func quantize(_ weights: UnsafeBufferPointer<Float>, name: String, shape: [Int],
                         layout: TritLayout = .packed2Bit) throws -> QuantizedTensor {
        try quantize(TensorInput(name: name, shape: shape, floats: weights), layout: layout)
    }

    /// Quantizes float32 weights held in an array.
    public func quantize(_ weights: [Float], name: String, shape: [Int],
                         layout: TritLayout = .packed2Bit) throws -> QuantizedTensor {
        try weights.withUnsafeBufferPointer { try quantize($0, name: name, shape: shape, layout: layout) }
    }

    /// Quantizes several tensors, running up to `backend.preferredConcurrency` of them at once (so a
    /// multi-device backend keeps every device busy). Results are in input order; the first error thrown
    /// (in input order) is rethrown after all running work finishes.
    ///
    /// Inputs built outside a pointer's closure must own their bytes (`TensorInput`'s owning
    /// initializers); a borrowed input is only valid inside the closure that made it.
    public func quantizeLayers(_ inputs: [TensorInput], layout: TritLayout = .packed2Bit) throws -> [QuantizedTensor] {
        let concurrency = Swift.max(1, Swift.min(backend.preferredConcurrency, inputs.count))
        if concurrency == 1 {
            return try inputs.map { try quantize($0, layout: layout) }
        }
        let results = SendableArrayBox([Result<QuantizedTensor, any Error>?](repeating: nil, count: inputs.count))
        DispatchQueue.concurrentPerform(iterations: concurrency) { worker in
            var index = worker
            while index < inputs.count {
                let result = Result { try self.quantize(inputs[index], layout: layout) }
                results.set(index, result)
                index += concurrency
            }
        }
        return try results.values.map { entry in
            guard let entry else { throw QuantizationError.emptyTensor(name: "<missing result>") }
            return try entry.get()
        }
    }
}
