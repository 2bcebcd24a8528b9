import TernaryQuantFormats
import TernaryQuantCore
/// Quantizes the selected tensors of a checkpoint with several backends and compares the results byte
/// for byte (α bits, packed trits, zero count). Used by `ternq verify`.
public enum BackendComparison {
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
        guard let first = backends.first else { return result }
        let selected = checkpoint.tensors.filter {
            selection.decide(name: $0.info.name, dtype: $0.info.dtype, shape: $0.info.shape).quantize
        }
        for (n, t) in selected.enumerated() {
            guard let type = t.info.dtype.quantizable else { continue }
            let input: TensorInput
            do {
                input = try TensorInput(name: t.info.name, shape: t.info.shape, elementType: type, bytes: t.bytes)
            } catch {
                throw JobError(file: t.file.storage.path, underlying: error)
            }
            let reference: QuantizedTensor
            do {
                reference = try Quantizer(backend: first.backend).quantize(input)
            } catch {
                throw JobError(file: t.file.storage.path, underlying: error)
            }
            for other in backends.dropFirst() {
                do {
                    let q = try Quantizer(backend: other.backend).quantize(input)
                    if q.scale.bitPattern != reference.scale.bitPattern {
                        result.mismatches.append(Mismatch(tensor: input.name, reference: first.label, backend: other.label,
                            detail: "scale bits \(CheckpointQuantizer.hex(q.scale.bitPattern)) vs \(CheckpointQuantizer.hex(reference.scale.bitPattern))"))
                    } else if q.data != reference.data {
                        let index = zip(q.data, reference.data).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? 0
                        let count = zip(q.data, reference.data).filter { $0 != $1 }.count
                        result.mismatches.append(Mismatch(tensor: input.name, reference: first.label, backend: other.label,
                            detail: "\(count) packed bytes differ, first at byte \(index) (trits \(index * 4)…\(index * 4 + 3))"))
                    } else if q.summary.zeroCount != reference.summary.zeroCount {
                        result.mismatches.append(Mismatch(tensor: input.name, reference: first.label, backend: other.label,
                            detail: "zero count \(q.summary.zeroCount) vs \(reference.summary.zeroCount)"))
                    }
                } catch {
                    result.mismatches.append(Mismatch(tensor: input.name, reference: first.label, backend: other.label, detail: "failed: \(error)"))
                }
            }
            result.tensorsCompared += 1
            result.elementsCompared += input.elementCount
            progress?(n + 1, selected.count, input.name)
        }
        return result
    }
}
