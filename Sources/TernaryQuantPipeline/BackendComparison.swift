import TernaryQuantFormats
import TernaryQuantCore
/// The one comparison of backends: quantizes the same tensors with several backends and compares the
/// results byte for byte (α bits, output bytes, zero count). `ternq verify` (a checkpoint), `ternq bench`
/// (its benchmark tensor in every bench layout), `ternq devices --check-elements` (random tensors) and the
/// tests all go through `differences(_:_:layout:)`.
public enum BackendComparison {
    /// One backend's result for one tensor: the summary and every output byte.
    public struct Output: Sendable, Hashable {
        /// α and zero count.
        public var summary: QuantizationSummary
        /// The output buffer, all of it.
        public var bytes: [UInt8]

        /// Creates an output.
        public init(summary: QuantizationSummary, bytes: [UInt8]) {
            self.summary = summary
            self.bytes = bytes
        }
    }

    /// What differs between `output` and `reference` (α bits first, then bytes, then zero count), or `nil`
    /// when they are identical. With `layout` `.packed2Bit` a byte difference also names its trits.
    public static func differences(_ output: Output, _ reference: Output, layout: TritLayout? = nil) -> String? {
        let (a, b) = (output.summary, reference.summary)
        if a.scale.bitPattern != b.scale.bitPattern {
            return "scale bits \(CheckpointQuantizer.hex(a.scale.bitPattern)) vs \(CheckpointQuantizer.hex(b.scale.bitPattern))"
        }
        if output.bytes != reference.bytes {
            guard output.bytes.count == reference.bytes.count else {
                return "\(output.bytes.count) output bytes vs \(reference.bytes.count)"
            }
            let pairs = zip(output.bytes, reference.bytes)
            let index = pairs.enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? 0
            let count = pairs.filter { $0 != $1 }.count
            let trits = layout == .packed2Bit ? " (trits \(index * 4)…\(index * 4 + 3))" : ""
            let noun = layout == .packed2Bit ? "packed bytes" : "output bytes"
            return "\(count) \(noun) differ, first at byte \(index)\(trits)"
        }
        if a.zeroCount != b.zeroCount { return "zero count \(a.zeroCount) vs \(b.zeroCount)" }
        return nil
    }

    /// Quantizes tensor `tensor` with every backend through `quantize` (the first backend is the
    /// reference) and returns each disagreement. Errors of the reference are rethrown; errors of the
    /// others count as mismatches.
    public static func compare(tensor: String, backends: [(label: String, backend: any QuantizationBackend)],
                               layout: TritLayout? = nil,
                               quantize: (any QuantizationBackend) throws -> Output) throws -> [Mismatch] {
        guard let first = backends.first else { return [] }
        let reference = try quantize(first.backend)
        var mismatches = [Mismatch]()
        for other in backends.dropFirst() {
            do {
                if let detail = differences(try quantize(other.backend), reference, layout: layout) {
                    mismatches.append(Mismatch(tensor: tensor, reference: first.label, backend: other.label, detail: detail))
                }
            } catch {
                mismatches.append(Mismatch(tensor: tensor, reference: first.label, backend: other.label, detail: "failed: \(error)"))
            }
        }
        return mismatches
    }

    /// Quantizes every input with every backend in `layout` through `Quantizer.quantizeLayers` (so a
    /// device group runs several inputs at once) and returns each disagreement with the first backend.
    /// Throws what any backend throws. Inputs must own their bytes or outlive the call.
    public static func compare(_ inputs: [TensorInput], backends: [(label: String, backend: any QuantizationBackend)],
                               layout: TritLayout = .packed2Bit) throws -> [Mismatch] {
        guard let first = backends.first else { return [] }
        let reference = try Quantizer(backend: first.backend).quantizeLayers(inputs, layout: layout)
        var mismatches = [Mismatch]()
        for other in backends.dropFirst() {
            let results = try Quantizer(backend: other.backend).quantizeLayers(inputs, layout: layout)
            for (q, r) in zip(results, reference) {
                if let detail = differences(Output(summary: q.summary, bytes: q.data), Output(summary: r.summary, bytes: r.data), layout: layout) {
                    mismatches.append(Mismatch(tensor: q.name, reference: first.label, backend: other.label, detail: detail))
                }
            }
        }
        return mismatches
    }

    /// One tensor on which two backends disagree (or one failed).
    public struct Mismatch: Sendable, Hashable, CustomStringConvertible {
        /// Tensor name.
        public var tensor: String
        /// The reference backend's label.
        public var reference: String
        /// The disagreeing backend's label.
        public var backend: String
        /// What differs.
        public var detail: String

        public var description: String { "\(tensor): \(backend) differs from \(reference): \(detail)" }
    }

    /// The outcome of a comparison.
    public struct Result: Sendable, Hashable {
        /// Tensors compared.
        public var tensorsCompared: Int
        /// Elements compared per backend.
        public var elementsCompared: Int
        /// Backend labels in order (the first is the reference).
        public var backends: [String]
        /// Every disagreement.
        public var mismatches: [Mismatch]
    }

    /// Compares `backends` (label, backend) on every tensor `selection` quantizes. Errors thrown by the
    /// reference backend (e.g. a NaN weight) are rethrown; errors of the others count as mismatches.
    public static func run(_ checkpoint: SafetensorsCheckpoint, selection: TensorSelection,
                           backends: [(label: String, backend: any QuantizationBackend)],
                           progress: ((Int, Int, String) -> Void)? = nil) throws -> Result {
        var result = Result(tensorsCompared: 0, elementsCompared: 0, backends: backends.map(\.label), mismatches: [])
        guard !backends.isEmpty else { return result }
        let selected = checkpoint.tensors.filter {
            selection.decide(name: $0.info.name, dtype: $0.info.dtype, shape: $0.info.shape).quantize
        }
        for (n, t) in selected.enumerated() {
            guard let type = t.info.dtype.quantizable else { continue }
            let input: TensorInput
            do {
                input = try TensorInput(name: t.info.name, shape: t.info.shape, elementType: type, bytes: t.bytes,
                                        keepingAlive: t.file.storage)
            } catch {
                throw JobError(file: t.file.storage.path, underlying: error)
            }
            do {
                result.mismatches += try compare(tensor: input.name, backends: backends, layout: .packed2Bit) { backend in
                    let q = try Quantizer(backend: backend).quantize(input)
                    return Output(summary: q.summary, bytes: q.data)
                }
            } catch {
                throw JobError(file: t.file.storage.path, underlying: error)
            }
            result.tensorsCompared += 1
            result.elementsCompared += input.elementCount
            progress?(n + 1, selected.count, input.name)
        }
        return result
    }
}
