import TernaryQuantCore
/// CSR storage of a sparse ternary layer (seed `SparseIndex`).
public struct TernSparseIndex: Sendable, Hashable {
    /// Rows of the 2-D view.
    public var rows: UInt64
    /// Columns of the 2-D view.
    public var cols: UInt64
    /// Non-zero trits, ±1, row by row.
    public var values: [Int8]
    /// Column of each value (ascending within a row).
    public var colIdx: [UInt32]
    /// Start of each row in `values` (rows + 1 entries, last = nnz).
    public var rowPtr: [UInt64]
    /// Number of non-zero trits.
    public var nnz: UInt64
    /// Fraction of zero trits.
    public var sparsity: Double

    /// Creates an index from its parts (no validation).
    public init(rows: UInt64, cols: UInt64, values: [Int8], colIdx: [UInt32], rowPtr: [UInt64], nnz: UInt64, sparsity: Double) {
        self.rows = rows
        self.cols = cols
        self.values = values
        self.colIdx = colIdx
        self.rowPtr = rowPtr
        self.nnz = nnz
        self.sparsity = sparsity
    }
}

/// How a `.tern` layer stores its trits (seed `LayerStorage`; bincode variant tags 0 and 1).
public enum TernLayerStorage: Sendable, Hashable {
    /// Tag 0: 2-bit packed trits of all rows × cols elements (`TritLayout.packed2Bit`).
    case dense(rows: UInt64, cols: UInt64, packed: [UInt8])
    /// Tag 1: CSR of the non-zero trits.
    case sparse(TernSparseIndex)

    /// Short name for reports: "dense" or "sparse".
    public var kind: String {
        switch self {
        case .dense: return "dense"
        case .sparse: return "sparse"
        }
    }

    /// (rows, cols) of the 2-D view.
    public var dimensions: (rows: UInt64, cols: UInt64) {
        switch self {
        case .dense(let r, let c, _): return (r, c)
        case .sparse(let s): return (s.rows, s.cols)
        }
    }
}

/// One quantized layer of a `.tern` model (seed `TernLayer`).
public struct TernLayer: Sendable, Hashable {
    /// Tensor name.
    public var name: String
    /// α.
    public var scale: Float
    /// Trit storage.
    public var storage: TernLayerStorage
    /// Fraction of zero trits.
    public var sparsity: Double
    /// The checkpoint dtype ("F32", "F16", "BF16").
    public var originalDType: String

    /// Creates a layer.
    public init(name: String, scale: Float, storage: TernLayerStorage, sparsity: Double, originalDType: String) {
        self.name = name
        self.scale = scale
        self.storage = storage
        self.sparsity = sparsity
        self.originalDType = originalDType
    }
}

/// A `.tern` model (seed `TernModel`, ternlang-compress 1.5.0), serialised with bincode 1.x defaults:
/// little-endian, u64 lengths and `usize`, u32 enum tags, no magic, padding or checksum.
public struct TernModel: Sendable, Hashable {
    /// Where the weights came from (path or model id).
    public var sourceModel: String
    /// Always 1.
    public var formatVersion: UInt32
    /// Quantized layers.
    public var layers: [TernLayer]
    /// `model_type` from config.json, or "unknown".
    public var architecture: String
    /// `vocab_size`, or 0.
    public var vocabSize: UInt64
    /// `hidden_size`, or 0.
    public var hiddenSize: UInt64
    /// `num_hidden_layers`, or 0.
    public var numLayers: UInt64

    /// Creates a model.
    public init(sourceModel: String, formatVersion: UInt32 = 1, layers: [TernLayer], architecture: String,
                vocabSize: UInt64, hiddenSize: UInt64, numLayers: UInt64) {
        self.sourceModel = sourceModel
        self.formatVersion = formatVersion
        self.layers = layers
        self.architecture = architecture
        self.vocabSize = vocabSize
        self.hiddenSize = hiddenSize
        self.numLayers = numLayers
    }
}

/// `.tern` serialisation: a streaming writer and a validating reader.
public enum TernFormat {
    /// Default sparsity at or above which a layer is stored as CSR.
    public static let defaultCSRThreshold = 0.75

    /// The seed's 2-D view of a shape: rank 0 → (1, 1), rank 1 → (1, n), rank 2 → (s0, s1),
    /// rank ≥ 3 → (s0, product of the rest).
    public static func rowsCols(_ shape: [Int]) -> (rows: Int, cols: Int) {
        switch shape.count {
        case 0: return (1, 1)
        case 1: return (1, shape[0])
        default: return (shape[0], Checked.product(Array(shape.dropFirst())) ?? 0)
        }
    }

    /// Builds a layer's storage from packed trits: CSR when `sparsity >= csrThreshold` (and the column
    /// count fits u32), else Dense. `packed` must hold exactly ⌈elements/4⌉ bytes of valid codes for
    /// `shape`. Throws `QuantizationError` (naming `name`) on a negative dimension, an element count that
    /// overflows or is 0, a packed length that does not match the shape, or a corrupt packed code; never traps
    /// or allocates more than the packed data implies, whatever the arguments.
    public static func storage(packed: [UInt8], shape: [Int], sparsity: Double, csrThreshold: Double,
                               name: String = "<layer>") throws -> TernLayerStorage {
        if let axis = shape.firstIndex(where: { $0 < 0 }) {
            throw QuantizationError.negativeDimension(name: name, shape: shape, axis: axis)
        }
        guard let elements = Checked.product(shape) else { throw QuantizationError.shapeOverflow(name: name, shape: shape) }
        guard elements > 0 else { throw QuantizationError.emptyTensor(name: name) }
        let (rows, cols) = rowsCols(shape)
        let expectedBytes = elements / 4 + (elements % 4 == 0 ? 0 : 1)
        guard packed.count == expectedBytes else {
            if packed.count < expectedBytes { throw QuantizationError.packedDataTooShort(expectedBytes: expectedBytes, actualBytes: packed.count) }
            throw QuantizationError.byteCountMismatch(name: name, expected: expectedBytes, actual: packed.count)
        }
        if sparsity >= csrThreshold, cols <= Int(UInt32.max) {
            var values: [Int8] = []
            var colIdx: [UInt32] = []
            var rowPtr: [UInt64] = [0]
            rowPtr.reserveCapacity(rows + 1)  // rows ≤ elements ≤ 4 · packed.count (or cols = 0)
            let nonZero = 1 - sparsity
            let estimate = nonZero.isFinite && nonZero > 0 ? Swift.min(Double(elements), nonZero * Double(elements)) : 0
            let expectedNonZero = Int(estimate) + 1
            values.reserveCapacity(expectedNonZero)
            colIdx.reserveCapacity(expectedNonZero)
            var index = 0
            for _ in 0..<rows {
                for c in 0..<cols {
                    let code = (packed[index >> 2] >> UInt8(2 * (index & 3))) & 3
                    switch code {
                    case 0: break
                    case 1: values.append(1); colIdx.append(UInt32(c))
                    case 2: values.append(-1); colIdx.append(UInt32(c))
                    default: throw QuantizationError.invalidPackedCode(index: index)
                    }
                    index += 1
                }
                rowPtr.append(UInt64(values.count))
            }
            return .sparse(TernSparseIndex(rows: UInt64(rows), cols: UInt64(cols), values: values, colIdx: colIdx,
                                           rowPtr: rowPtr, nnz: UInt64(values.count), sparsity: sparsity))
        }
        if let index = firstInvalidCode(packed, count: elements) { throw QuantizationError.invalidPackedCode(index: index) }
        return .dense(rows: UInt64(rows), cols: UInt64(cols), packed: packed)
    }

    /// The index of the first trit with the reserved code 11 in `count` packed trits, `count` (one past
    /// the trits) when the padding bits of the last byte are not 00, or `nil` when the data is valid.
    /// `packed` must hold ⌈count/4⌉ bytes.
    static func firstInvalidCode(_ packed: UnsafeRawBufferPointer, count: Int) -> Int? {
        let full = count / 4
        let end = Swift.min(full, packed.count)
        // Eight bytes at a time: a code 11 anywhere sets a bit of v & (v >> 1) at an even position; first
        // 32 bytes per step (one branch for four words), then single words up to the last whole one.
        var start = 0
        func pairs(_ offset: Int) -> UInt64 {
            let v = UInt64(littleEndian: packed.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
            return v & (v >> 1)
        }
        while start + 32 <= end {
            if (pairs(start) | pairs(start + 8) | pairs(start + 16) | pairs(start + 24)) & 0x5555_5555_5555_5555 != 0 { break }
            start += 32
        }
        while start + 8 <= end, pairs(start) & 0x5555_5555_5555_5555 == 0 { start += 8 }
        for i in start..<end {
            let b = packed[i]
            if (b & (b >> 1)) & 0x55 != 0 {
                for s in 0..<4 where (b >> UInt8(2 * s)) & 3 == 3 { return 4 * i + s }
            }
        }
        let tail = count % 4
        guard tail > 0, full < packed.count else { return nil }
        let b = packed[full]
        for s in 0..<tail where (b >> UInt8(2 * s)) & 3 == 3 { return 4 * full + s }
        if b >> UInt8(2 * tail) != 0 { return count }
        return nil
    }

    static func firstInvalidCode(_ packed: [UInt8], count: Int) -> Int? {
        packed.withUnsafeBytes { firstInvalidCode($0, count: count) }
    }

    /// The bincode bytes of one layer.
    public static func encode(_ layer: TernLayer) -> [UInt8] {
        let parts = encodedParts(layer)
        return parts.head + (parts.body ?? []) + parts.tail
    }

    /// One layer's bytes as `head + body + tail`: for a dense layer `body` is its packed trits (so a
    /// writer can write them from where they are, without a copy), for a sparse one nil (all in `head`).
    static func encodedParts(_ layer: TernLayer) -> (head: [UInt8], body: [UInt8]?, tail: [UInt8]) {
        var b = ByteBuilder()
        b.appendString(layer.name)
        b.append(layer.scale.bitPattern)
        switch layer.storage {
        case .dense(let rows, let cols, let packed):
            b.append(UInt32(0))
            b.append(rows)
            b.append(cols)
            b.append(UInt64(packed.count))
            var tail = ByteBuilder()
            tail.append(layer.sparsity.bitPattern)
            tail.appendString(layer.originalDType)
            return (b.bytes, packed, tail.bytes)
        case .sparse(let s):
            b.append(UInt32(1))
            b.append(s.rows)
            b.append(s.cols)
            b.append(UInt64(s.values.count))
            b.append(s.values.map { UInt8(bitPattern: $0) })
            b.append(UInt64(s.colIdx.count))
            for c in s.colIdx { b.append(c) }
            b.append(UInt64(s.rowPtr.count))
            for r in s.rowPtr { b.append(r) }
            b.append(s.nnz)
            b.append(s.sparsity.bitPattern)
        }
        b.append(layer.sparsity.bitPattern)
        b.appendString(layer.originalDType)
        return (b.bytes, nil, [])
    }

    /// The bincode bytes of a whole model.
    public static func encode(_ model: TernModel) -> [UInt8] {
        var b = ByteBuilder()
        b.append(prefix(sourceModel: model.sourceModel, formatVersion: model.formatVersion, layerCount: model.layers.count))
        for layer in model.layers { b.append(encode(layer)) }
        b.append(suffix(architecture: model.architecture, vocabSize: model.vocabSize, hiddenSize: model.hiddenSize, numLayers: model.numLayers))
        return b.bytes
    }

    static func prefix(sourceModel: String, formatVersion: UInt32, layerCount: Int) -> [UInt8] {
        var b = ByteBuilder()
        b.appendString(sourceModel)
        b.append(formatVersion)
        b.append(UInt64(layerCount))
        return b.bytes
    }

    static func suffix(architecture: String, vocabSize: UInt64, hiddenSize: UInt64, numLayers: UInt64) -> [UInt8] {
        var b = ByteBuilder()
        b.appendString(architecture)
        b.append(vocabSize)
        b.append(hiddenSize)
        b.append(numLayers)
        return b.bytes
    }

    /// Decodes and validates a `.tern` file's bytes. Lengths are checked against the bytes left before any
    /// allocation, storage is checked for consistency (packed length, CSR shape, ±1 values, ascending
    /// columns), and trailing bytes are rejected. Throws `FormatError` with the byte offset.
    public static func decode(_ bytes: UnsafeRawBufferPointer, file: String) throws -> TernModel {
        var r = ByteReader(bytes, file: file)
        let source = try r.readString("source_model")
        let version = try r.read(UInt32.self, "format_version")
        let layerCount = try r.read(UInt64.self, "layer count")
        // Each layer takes at least 8 + 4 + 4 + 16 + 8 + 8 + 8 bytes.
        guard layerCount <= UInt64(r.remaining / 56 + 1) else {
            throw FormatError.malformed(file: file, offset: r.offset - 8, reason: "layer count \(layerCount) is larger than the file could hold")
        }
        var layers: [TernLayer] = []
        for _ in 0..<Int(layerCount) {
            layers.append(try decodeLayer(&r))
        }
        let architecture = try r.readString("architecture")
        let vocab = try r.read(UInt64.self, "vocab_size")
        let hidden = try r.read(UInt64.self, "hidden_size")
        let numLayers = try r.read(UInt64.self, "num_layers")
        guard r.remaining == 0 else {
            throw FormatError.malformed(file: file, offset: r.offset, reason: "\(r.remaining) unexpected bytes after the model")
        }
        return TernModel(sourceModel: source, formatVersion: version, layers: layers, architecture: architecture,
                         vocabSize: vocab, hiddenSize: hidden, numLayers: numLayers)
    }

    private static func count(_ r: inout ByteReader, _ what: String, elementSize: Int) throws -> Int {
        let at = r.offset
        let n = try r.read(UInt64.self, "\(what) length")
        guard n <= UInt64(r.remaining / elementSize) else {
            throw FormatError.malformed(file: r.file, offset: at, reason: "\(what) length \(n) runs past the end of the file")
        }
        return Int(n)
    }

    private static func decodeLayer(_ r: inout ByteReader) throws -> TernLayer {
        let name = try r.readString("layer name")
        func bad(_ at: Int, _ reason: String) -> FormatError {
            .malformed(file: r.file, offset: at, reason: "layer '\(name)': \(reason)")
        }
        let scale = Float(bitPattern: try r.read(UInt32.self, "scale"))
        let tagOffset = r.offset
        let tag = try r.read(UInt32.self, "storage tag")
        let storage: TernLayerStorage
        switch tag {
        case 0:
            let rows = try r.read(UInt64.self, "rows")
            let cols = try r.read(UInt64.self, "cols")
            let at = r.offset
            let n = try count(&r, "packed", elementSize: 1)
            let raw = try r.readBytes(n, "packed")
            let (elements, o) = rows.multipliedReportingOverflow(by: cols)
            guard !o, elements / 4 + (elements % 4 == 0 ? 0 : 1) == UInt64(n) else {
                throw bad(at, "dense storage of \(rows)×\(cols) needs ⌈\(rows)·\(cols)/4⌉ bytes but holds \(n)")
            }
            // n fits in Int and elements ≤ 4·n, so `elements` fits too.
            if let bad_ = firstInvalidCode(raw, count: Int(elements)) {
                if bad_ == Int(elements) {
                    throw bad(at + 8 + n - 1, "dense padding bits after trit \(elements) are not 00")
                }
                throw bad(at + 8 + bad_ / 4, "dense trit \(bad_) has the reserved code 11")
            }
            let packed = Array(raw)
            storage = .dense(rows: rows, cols: cols, packed: packed)
        case 1:
            let rows = try r.read(UInt64.self, "rows")
            let cols = try r.read(UInt64.self, "cols")
            let valuesAt = r.offset
            let nValues = try count(&r, "values", elementSize: 1)
            let rawValues = try r.readBytes(nValues, "values")
            let values = rawValues.map { Int8(bitPattern: $0) }
            guard values.allSatisfy({ $0 == 1 || $0 == -1 }) else { throw bad(valuesAt, "CSR values must be ±1") }
            let nCols = try count(&r, "col_idx", elementSize: 4)
            var colIdx: [UInt32] = []
            colIdx.reserveCapacity(nCols)
            for _ in 0..<nCols { colIdx.append(try r.read(UInt32.self, "col_idx")) }
            let rowPtrAt = r.offset
            let nRows = try count(&r, "row_ptr", elementSize: 8)
            var rowPtr: [UInt64] = []
            rowPtr.reserveCapacity(nRows)
            for _ in 0..<nRows { rowPtr.append(try r.read(UInt64.self, "row_ptr")) }
            let nnz = try r.read(UInt64.self, "nnz")
            let sparsity = Double(bitPattern: try r.read(UInt64.self, "sparsity"))
            guard nCols == nValues, UInt64(nValues) == nnz else { throw bad(valuesAt, "CSR values/col_idx/nnz disagree (\(nValues)/\(nCols)/\(nnz))") }
            guard rows < UInt64.max, UInt64(nRows) == rows + 1, rowPtr.first == 0, rowPtr.last == nnz else {
                throw bad(rowPtrAt, "CSR row_ptr must have rows+1 entries from 0 to nnz")
            }
            for i in 0..<Int(rows) {
                let lo = rowPtr[i], hi = rowPtr[i + 1]
                guard lo <= hi, hi <= nnz else { throw bad(rowPtrAt, "CSR row_ptr is not non-decreasing at row \(i)") }
                var previous: UInt32? = nil
                for k in Int(lo)..<Int(hi) {
                    let c = colIdx[k]
                    guard UInt64(c) < cols, previous.map({ c > $0 }) ?? true else {
                        throw bad(rowPtrAt, "CSR columns of row \(i) are out of range or not ascending")
                    }
                    previous = c
                }
            }
            storage = .sparse(TernSparseIndex(rows: rows, cols: cols, values: values, colIdx: colIdx, rowPtr: rowPtr, nnz: nnz, sparsity: sparsity))
        default:
            throw bad(tagOffset, "unknown storage tag \(tag) (expected 0 Dense or 1 Sparse)")
        }
        let (rows, cols) = storage.dimensions
        guard rows <= UInt64(Int.max), cols <= UInt64(Int.max), !Int(rows).multipliedReportingOverflow(by: Int(cols)).overflow else {
            throw bad(tagOffset, "rows × cols (\(rows) × \(cols)) overflows a 64-bit element count")
        }
        let sparsity = Double(bitPattern: try r.read(UInt64.self, "sparsity"))
        let dtype = try r.readString("original_dtype")
        return TernLayer(name: name, scale: scale, storage: storage, sparsity: sparsity, originalDType: dtype)
    }

    /// Reads and validates a `.tern` file.
    public static func read(path: String) throws -> TernModel {
        let storage = try ByteStorage(mapping: path)
        return try decode(storage.bytes, file: path)
    }
}

/// Writes a `.tern` file layer by layer (the layer count must be known up front).
public final class TernWriter {
    private let sink: any ByteSink
    private let expected: Int
    private var written = 0

    /// Writes the model prefix (source, format version 1, layer count) to `sink`.
    public init(sink: any ByteSink, sourceModel: String, layerCount: Int) throws {
        self.sink = sink
        self.expected = layerCount
        try sink.write(bytes: TernFormat.prefix(sourceModel: sourceModel, formatVersion: 1, layerCount: layerCount))
    }

    /// Appends one layer; returns the bytes written.
    @discardableResult
    public func append(_ layer: TernLayer) throws -> Int {
        let parts = TernFormat.encodedParts(layer)
        try sink.write(bytes: parts.head)
        if let body = parts.body { try sink.write(bytes: body) }
        try sink.write(bytes: parts.tail)
        written += 1
        return parts.head.count + (parts.body?.count ?? 0) + parts.tail.count
    }

    /// Writes the model suffix. Throws if fewer or more layers were appended than announced.
    public func finish(_ info: ModelInfo) throws {
        guard written == expected else {
            throw FormatError.unsupported(file: "<.tern>", reason: "announced \(expected) layers but wrote \(written)")
        }
        try sink.write(bytes: TernFormat.suffix(architecture: info.architecture, vocabSize: info.vocabSize,
                                                hiddenSize: info.hiddenSize, numLayers: info.numLayers))
    }
}
