import Dispatch
import Foundation

/// Options of a checkpoint quantization job.
public struct QuantizationOptions: Sendable, Hashable {
    /// Output format.
    public var format: OutputFormat
    /// Ternary type for GGUF output.
    public var ggufType: GGUFTernaryType
    /// `.tern` layers with sparsity ≥ this are stored as CSR.
    public var csrThreshold: Double
    /// Which tensors to quantize.
    public var selection: TensorSelection
    /// Replace an existing output file.
    public var overwrite: Bool

    /// Creates options (defaults: TQ2_0, CSR threshold 0.75, default selection, no overwrite).
    public init(format: OutputFormat, ggufType: GGUFTernaryType = .tq2_0, csrThreshold: Double = TernFormat.defaultCSRThreshold,
                selection: TensorSelection = TensorSelection(), overwrite: Bool = false) {
        self.format = format
        self.ggufType = ggufType
        self.csrThreshold = csrThreshold
        self.selection = selection
        self.overwrite = overwrite
    }
}

/// A failure of a job, with the file it concerns: `"<file>: <reason>"` in one line.
public struct JobError: Error, Sendable, CustomStringConvertible {
    /// The file being read or written.
    public var file: String
    /// The underlying error.
    public var underlying: any Error

    /// Creates an error.
    public init(file: String, underlying: any Error) {
        self.file = file
        self.underlying = underlying
    }

    public var description: String {
        if let format = underlying as? FormatError { return format.description }
        return "\(file): \(underlying)"
    }
}

/// What the job will do with one tensor, decided before any data is written.
public struct TensorPlan: Sendable {
    /// The input tensor.
    public let tensor: CheckpointTensor
    /// Quantize, keep or skip.
    public let action: TensorAction
    /// Why.
    public let reason: String
    /// Storage label for the report (the .tern dense/sparse choice is made after quantizing).
    public let storage: String
    /// GGUF type for kept/quantized tensors in GGUF output.
    let ggmlType: GGMLType?
}

/// Quantizes a safetensors checkpoint into `.tern`, GGUF or safetensors, tensor by tensor.
///
/// Memory: the input is memory-mapped; per tensor the job holds the packed trits (n/4 bytes) and, for
/// `.tern` CSR layers, the CSR arrays, so peak memory follows the largest tensor, not the model.
public final class CheckpointQuantizer: Sendable {
    /// The quantizer (and its backend).
    public let quantizer: Quantizer

    /// Uses `backend` for every tensor.
    public init(backend: any QuantizationBackend) {
        self.quantizer = Quantizer(backend: backend)
    }

    /// Decides, for every tensor, what the job will do in `options.format`.
    public func plan(_ checkpoint: SafetensorsCheckpoint, options: QuantizationOptions) -> [TensorPlan] {
        checkpoint.tensors.map { t in
            let info = t.info
            let decision = options.selection.decide(name: info.name, dtype: info.dtype, shape: info.shape)
            switch options.format {
            case .tern:
                if decision.quantize {
                    return TensorPlan(tensor: t, action: .quantized, reason: decision.reason, storage: "dense", ggmlType: nil)
                }
                return TensorPlan(tensor: t, action: .skipped, reason: "\(decision.reason); .tern holds quantized layers only", storage: "-", ggmlType: nil)
            case .safetensors:
                if decision.quantize {
                    return TensorPlan(tensor: t, action: .quantized, reason: decision.reason, storage: "u8-2bit", ggmlType: nil)
                }
                return TensorPlan(tensor: t, action: .kept, reason: decision.reason, storage: "copy", ggmlType: nil)
            case .gguf:
                let floatType: GGMLType? = switch info.dtype {
                case .f32, .bf16: .f32
                case .f16: .f16
                default: nil
                }
                if info.shape.count > 4 {
                    return TensorPlan(tensor: t, action: .skipped, reason: "rank \(info.shape.count) > 4 cannot be stored in GGUF", storage: "-", ggmlType: nil)
                }
                if info.name.utf8.count > GGUFFormat.maxNameLength {
                    return TensorPlan(tensor: t, action: .skipped, reason: "name longer than \(GGUFFormat.maxNameLength) bytes cannot be stored in GGUF", storage: "-", ggmlType: nil)
                }
                if info.elementCount == 0 {
                    return TensorPlan(tensor: t, action: .skipped, reason: "empty tensor", storage: "-", ggmlType: nil)
                }
                let ne0 = info.shape.last ?? 1
                if decision.quantize {
                    if ne0 % TernaryBlocks.blockSize == 0 {
                        let type = options.ggufType.ggmlType
                        return TensorPlan(tensor: t, action: .quantized, reason: decision.reason, storage: options.ggufType.rawValue, ggmlType: type)
                    }
                    if let floatType {
                        return TensorPlan(tensor: t, action: .kept, reason: "row length \(ne0) is not a multiple of 256 (TQ block size): kept as \(floatType == .f16 ? "F16" : "F32")", storage: floatType == .f16 ? "f16" : "f32", ggmlType: floatType)
                    }
                }
                if let floatType {
                    return TensorPlan(tensor: t, action: .kept, reason: decision.reason, storage: floatType == .f16 ? "f16" : "f32", ggmlType: floatType)
                }
                return TensorPlan(tensor: t, action: .skipped, reason: "dtype \(info.dtype.rawValue) is not written to GGUF", storage: "-", ggmlType: nil)
            }
        }
    }

    /// Quantizes `checkpoint` into the file at `outputPath` atomically (temporary file, fsync, rename).
    /// Refuses to overwrite an input file, and an existing output unless `options.overwrite`. On any error
    /// nothing is left at `outputPath` (an existing file stays untouched). Throws `JobError`.
    public func run(_ checkpoint: SafetensorsCheckpoint, outputPath: String, options: QuantizationOptions,
                    progress: ((JobProgress) -> Void)? = nil) throws -> QuantizationReport {
        for file in checkpoint.files where Self.sameFile(file.storage.path, outputPath) {
            throw JobError(file: outputPath, underlying: FormatError.unsupported(file: outputPath, reason: "output would overwrite the input checkpoint"))
        }
        let output: AtomicFile
        do {
            output = try AtomicFile(path: outputPath, overwrite: options.overwrite)
        } catch {
            throw JobError(file: outputPath, underlying: error)
        }
        do {
            var report = try write(checkpoint, to: output, outputName: outputPath, options: options, progress: progress)
            try output.commit()
            report.totals.outputBytes = output.bytesWritten
            report.totals.compressionVsF16 = output.bytesWritten > 0 ? Double(report.totals.f16Bytes) / Double(output.bytesWritten) : 0
            return report
        } catch {
            output.abort()
            if error is JobError { throw error }
            throw JobError(file: outputPath, underlying: error)
        }
    }

    static func sameFile(_ a: String, _ b: String) -> Bool {
        var sa = stat(), sb = stat()
        guard stat(a, &sa) == 0, stat(b, &sb) == 0 else { return false }
        return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino
    }

    /// Streams the output to `sink` (an `AtomicFile` or a `MemorySink`) and returns the report.
    /// `outputName` is used in the report and errors.
    public func write(_ checkpoint: SafetensorsCheckpoint, to sink: any ByteSink, outputName: String,
                      options: QuantizationOptions, progress: ((JobProgress) -> Void)? = nil) throws -> QuantizationReport {
        let start = DispatchTime.now().uptimeNanoseconds
        let plans = plan(checkpoint, options: options)
        let info = checkpoint.modelInfo
        let totalBytes = checkpoint.tensors.reduce(0) { $0 + $1.info.dataOffsets.count }
        var layers: [LayerReport] = []
        var written = 0
        var notes: [String] = []
        var bytesDone = 0

        // Format-specific header.
        var ternWriter: TernWriter?
        var safetensorsWriter: SafetensorsWriter?
        var ggufInfos: [GGUFTensorInfo] = []
        switch options.format {
        case .tern:
            notes.append(".tern holds quantized layers only; other tensors are skipped")
            ternWriter = try TernWriter(sink: sink, sourceModel: checkpoint.path, layerCount: plans.filter { $0.action == .quantized }.count)
        case .safetensors:
            var entries: [SafetensorsWriter.Entry] = []
            var quantizedShapes: [String] = []
            let names = Set(checkpoint.tensors.map(\.info.name))
            for p in plans {
                let i = p.tensor.info
                switch p.action {
                case .quantized:
                    guard !names.contains(i.name + ".scale") else {
                        throw FormatError.invalidTensor(file: checkpoint.path, tensor: i.name, reason: "the checkpoint already has '\(i.name).scale', which the safetensors output needs for α")
                    }
                    entries.append(.init(name: i.name, dtype: .u8, shape: Self.packedShape(i.shape)))
                    entries.append(.init(name: i.name + ".scale", dtype: .f32, shape: []))
                    quantizedShapes.append("\(JSONText.quote(i.name)):{\"shape\":[\(i.shape.map(String.init).joined(separator: ","))],\"dtype\":\"\(i.dtype.rawValue)\"}")
                case .kept:
                    entries.append(.init(name: i.name, dtype: i.dtype, shape: i.shape))
                case .skipped:
                    break
                }
            }
            let metadata = [
                "format": "ternq",
                "ternq.scheme": "ternary-absmean-per-tensor",
                "ternq.packing": "u8, 4 trits per byte along the last dimension, trit j of a row at bits 2*(j%4) of byte j/4, 00=0 01=+1 10=-1, rows padded with 00; value = scale * trit",
                "ternq.quantized": "{\(quantizedShapes.joined(separator: ","))}",
            ]
            safetensorsWriter = try SafetensorsWriter(sink: sink, entries: entries, metadata: metadata)
        case .gguf:
            var metadata: [(String, GGUFValue)] = []
            if info.architecture != "unknown" { metadata.append(("general.architecture", .string(info.architecture))) }
            metadata.append(("general.name", .string((checkpoint.path as NSString).lastPathComponent)))
            metadata.append(("general.alignment", .uint32(UInt32(GGUFFormat.alignment))))
            if plans.contains(where: { $0.action == .quantized }) {
                metadata.append(("general.quantization_version", .uint32(2)))
            }
            metadata.append(("ternq.scheme", .string("ternary-absmean-per-tensor")))
            let tensors: [(name: String, dimensions: [Int], type: GGMLType, byteCount: Int)] = plans.compactMap { p in
                guard p.action != .skipped, let type = p.ggmlType else { return nil }
                let i = p.tensor.info
                let dims = i.shape.isEmpty ? [1] : Array(i.shape.reversed())
                return (i.name, dims, type, type.byteCount(ne0: dims[0], count: i.elementCount) ?? 0)
            }
            let (header, infos) = GGUFFormat.header(metadata: metadata, tensors: tensors)
            ggufInfos = infos
            try sink.write(bytes: header)
            written += header.count
            notes.append("GGUF tensor names are the checkpoint's names (no llama.cpp renaming)")
        }

        var ggufIndex = 0
        for (index, p) in plans.enumerated() {
            let t = p.tensor
            let i = t.info
            var row = LayerReport(name: i.name, shape: i.shape, dtype: i.dtype.rawValue, action: p.action, reason: p.reason,
                                  scale: nil, scaleBits: nil, sparsity: nil, mse: nil, storage: p.storage,
                                  inputBytes: i.dataOffsets.count, outputBytes: 0)
            do {
                switch p.action {
                case .skipped:
                    row.inputBytes = 0
                case .quantized:
                    guard let elementType = i.dtype.quantizable else { break }
                    let input = try TensorInput(name: i.name, shape: i.shape, elementType: elementType, bytes: t.bytes)
                    var packed = [UInt8](repeating: 0, count: TritLayout.packed2Bit.byteCount(forTrits: input.elementCount))
                    let summary = try packed.withUnsafeMutableBytes { try quantizer.quantize(input, layout: .packed2Bit, into: $0) }
                    row.scale = summary.scale
                    row.scaleBits = Self.hex(summary.scale.bitPattern)
                    row.sparsity = summary.sparsity
                    row.mse = packed.withUnsafeBytes { Self.meanSquaredError(input, packed: $0, scale: summary.scale) }
                    switch options.format {
                    case .tern:
                        let storage = try TernFormat.storage(packed: packed, shape: i.shape, sparsity: summary.sparsity, csrThreshold: options.csrThreshold)
                        packed = []
                        row.storage = storage.kind
                        row.outputBytes = try ternWriter?.append(TernLayer(name: i.name, scale: summary.scale, storage: storage,
                                                                          sparsity: summary.sparsity, originalDType: i.dtype.rawValue)) ?? 0
                    case .safetensors:
                        let rowBytes = try Self.writePackedRows(packed, shape: i.shape, to: safetensorsWriter)
                        try withUnsafeBytes(of: summary.scale.bitPattern.littleEndian) { try safetensorsWriter?.write($0) }
                        row.outputBytes = rowBytes + 4
                    case .gguf:
                        let type = options.ggufType.ggmlType
                        let d = HalfFloat.bits(from: summary.scale)
                        let blocks = input.elementCount / TernaryBlocks.blockSize
                        var done = 0
                        try packed.withUnsafeBytes { raw in
                            while done < blocks {
                                let n = Swift.min(4096, blocks - done)
                                try sink.write(bytes: TernaryBlocks.encode(type, packed: raw, firstBlock: done, blockCount: n, d: d))
                                done += n
                            }
                        }
                        row.outputBytes = try Self.padGGUF(ggufInfos, &ggufIndex, sink)
                    }
                case .kept:
                    switch options.format {
                    case .safetensors:
                        try safetensorsWriter?.write(t.bytes)
                        row.outputBytes = i.dataOffsets.count
                    case .gguf:
                        if i.dtype == .bf16 {
                            try Self.writeWidenedBF16(t.bytes, to: sink)
                        } else {
                            try sink.write(t.bytes)
                        }
                        row.outputBytes = try Self.padGGUF(ggufInfos, &ggufIndex, sink)
                    case .tern:
                        break
                    }
                }
            } catch {
                if error is FormatError { throw error }
                throw JobError(file: checkpoint.path == t.file.storage.path ? checkpoint.path : t.file.storage.path, underlying: error)
            }
            try t.file.storage.checkIntact()  // hardening (issue 8.4): the shard shrank or changed while read → error, no output
            t.file.storage.releasePages(t.bytes)
            bytesDone += i.dataOffsets.count
            layers.append(row)
            let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            progress?(JobProgress(tensorsDone: index + 1, tensorCount: plans.count, bytesDone: bytesDone, totalBytes: totalBytes,
                                  elapsed: elapsed, currentTensor: i.name))
        }
        try ternWriter?.finish(info)
        try safetensorsWriter?.finish()

        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let present = layers.filter { $0.action != .skipped }
        let f16Bytes = present.reduce(0) { $0 + 2 * (Checked.product($1.shape) ?? 0) }
        let outputBytes = (sink as? MemorySink)?.bytes.count ?? (sink as? AtomicFile)?.bytesWritten ?? 0
        let totals = ReportTotals(
            parameters: checkpoint.tensors.reduce(0) { $0 + $1.info.elementCount },
            quantizedParameters: layers.filter { $0.action == .quantized }.reduce(0) { $0 + (Checked.product($1.shape) ?? 0) },
            tensorsQuantized: layers.filter { $0.action == .quantized }.count,
            tensorsKept: layers.filter { $0.action == .kept }.count,
            tensorsSkipped: layers.filter { $0.action == .skipped }.count,
            inputBytes: totalBytes, outputBytes: outputBytes, f16Bytes: f16Bytes,
            compressionVsF16: outputBytes > 0 ? Double(f16Bytes) / Double(outputBytes) : 0,
            seconds: seconds, gigabytesPerSecond: seconds > 0 ? Double(totalBytes) / seconds / 1e9 : 0)
        return QuantizationReport(input: checkpoint.path, output: outputName, format: options.format,
                                  ggufType: options.format == .gguf ? options.ggufType : nil,
                                  csrThreshold: options.format == .tern ? options.csrThreshold : nil,
                                  backend: quantizer.backend.name, device: quantizer.backend.deviceDescription,
                                  model: info, layers: layers, totals: totals, notes: notes)
    }

    static func hex(_ bits: UInt32) -> String {
        let s = String(bits, radix: 16)
        return String(repeating: "0", count: 8 - s.count) + s
    }

    /// Shape of the U8 tensor holding 2-bit trits packed along the last dimension.
    public static func packedShape(_ shape: [Int]) -> [Int] {
        guard let last = shape.last else { return [1] }
        return Array(shape.dropLast()) + [(last + 3) / 4]
    }

    /// Writes flat packed trits re-packed so that each row (last dimension) starts on a byte boundary.
    static func writePackedRows(_ packed: [UInt8], shape: [Int], to writer: SafetensorsWriter?) throws -> Int {
        guard let writer else { return 0 }
        let cols = shape.last ?? 1
        let count = Checked.product(shape) ?? 0
        if cols % 4 == 0 || count == cols {
            try packed.withUnsafeBytes { try writer.write($0) }
            return packed.count
        }
        let rows = count / Swift.max(cols, 1)
        let rowBytes = (cols + 3) / 4
        var buffer = [UInt8](repeating: 0, count: rowBytes)
        var total = 0
        for r in 0..<rows {
            for j in 0..<rowBytes { buffer[j] = 0 }
            for c in 0..<cols {
                let k = r * cols + c
                let code = (packed[k >> 2] >> UInt8(2 * (k & 3))) & 3
                buffer[c >> 2] |= code << UInt8(2 * (c & 3))
            }
            try buffer.withUnsafeBytes { try writer.write($0) }
            total += rowBytes
        }
        return total
    }

    static func writeWidenedBF16(_ bytes: UnsafeRawBufferPointer, to sink: any ByteSink) throws {
        let count = bytes.count / 2
        let chunkElements = 1 << 16
        let chunk = UnsafeMutableBufferPointer<UInt32>.allocate(capacity: chunkElements)
        defer { chunk.deallocate() }
        var i = 0
        while i < count {
            let n = Swift.min(chunkElements, count - i)
            for k in 0..<n {
                let h = bytes.loadUnaligned(fromByteOffset: (i &+ k) &* 2, as: UInt16.self)
                chunk[k] = (UInt32(UInt16(littleEndian: h)) &<< 16).littleEndian
            }
            try sink.write(UnsafeRawBufferPointer(start: chunk.baseAddress, count: 4 * n))
            i += n
        }
    }

    /// Pads the current GGUF tensor to the alignment and returns its data size.
    static func padGGUF(_ infos: [GGUFTensorInfo], _ index: inout Int, _ sink: any ByteSink) throws -> Int {
        guard index < infos.count else { return 0 }
        let size = infos[index].byteCount
        try sink.write(zeros: GGUFFormat.padded(size, GGUFFormat.alignment) - size)
        index += 1
        return size
    }

    /// The four trits of each packed byte as float64 lanes (invalid code 11 → 0).
    static let tritLanes: [SIMD4<Double>] = (0..<256).map { byte in
        var lanes = SIMD4<Double>(repeating: 0)
        for s in 0..<4 {
            let c = (byte >> (2 * s)) & 3
            lanes[s] = c == 1 ? 1 : (c == 2 ? -1 : 0)
        }
        return lanes
    }

    /// Mean of (w − α·t)² in float64 over the tensor, streaming (no float copy), chunked across cores
    /// with a fixed chunking so the result does not depend on the thread count.
    public static func meanSquaredError(_ input: TensorInput, packed: UnsafeRawBufferPointer, scale: Float) -> Double {
        let count = input.elementCount
        let chunk = 1 << 16
        let chunks = (count + chunk - 1) / chunk
        let partials = UnsafeMutableBufferPointer<Double>.allocate(capacity: Swift.max(chunks, 1))
        defer { partials.deallocate() }
        let out = PartialsBox(partials, packed)
        let alpha = Double(scale)
        let tritTable = Self.tritLanes
        DispatchQueue.concurrentPerform(iterations: chunks) { c in
            let lo = c * chunk  // a multiple of 4: whole packed bytes
            let hi = Swift.min(count, lo + chunk)
            let bytes = input.bytes
            let packed = out.packed
            @inline(__always) func widened(_ k: Int) -> Float {
                switch input.elementType {
                case .float32: return bytes.loadUnaligned(fromByteOffset: k &* 4, as: Float.self)
                case .float16: return Float(bitPattern: Float32Bits.fromFloat16(bytes.loadUnaligned(fromByteOffset: k &* 2, as: UInt16.self)))
                case .bfloat16: return Float(bitPattern: UInt32(bytes.loadUnaligned(fromByteOffset: k &* 2, as: UInt16.self)) &<< 16)
                }
            }
            var acc = SIMD4<Double>(repeating: 0)
            var k = lo
            // Four elements (one packed byte) at a time: d = w − α·t in float64.
            if input.elementType == .float32 {
                while k + 4 <= hi {
                    let w = SIMD4<Double>(bytes.loadUnaligned(fromByteOffset: k &* 4, as: SIMD4<Float>.self))
                    let d = w - tritTable[Int(packed[k &>> 2])] * alpha
                    acc += d * d
                    k += 4
                }
            } else {
                while k + 4 <= hi {
                    let w = SIMD4<Double>(Double(widened(k)), Double(widened(k + 1)), Double(widened(k + 2)), Double(widened(k + 3)))
                    let d = w - tritTable[Int(packed[k &>> 2])] * alpha
                    acc += d * d
                    k += 4
                }
            }
            var sum = (acc[0] + acc[1]) + (acc[2] + acc[3])
            while k < hi {
                let code = (packed[k &>> 2] &>> UInt8(truncatingIfNeeded: 2 &* (k & 3))) & 3
                let r = code == 1 ? alpha : (code == 2 ? -alpha : 0)
                let d = Double(widened(k)) - r
                sum += d * d
                k += 1
            }
            out.buffer[c] = sum
        }
        var total = 0.0
        for c in 0..<chunks { total += partials[c] }
        return count > 0 ? total / Double(count) : 0
    }
}

private final class PartialsBox: @unchecked Sendable {
    let buffer: UnsafeMutableBufferPointer<Double>
    let packed: UnsafeRawBufferPointer
    init(_ buffer: UnsafeMutableBufferPointer<Double>, _ packed: UnsafeRawBufferPointer) {
        self.buffer = buffer
        self.packed = packed
    }
}
