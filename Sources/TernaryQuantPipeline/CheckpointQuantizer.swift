import TernaryQuantFormats
import TernaryQuantCore
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
    /// Replace an existing output file (never an input file).
    public var overwrite: Bool
    /// GGUF output: what a selected tensor whose row length is not a multiple of 256 becomes.
    public var fallback: TernaryFallback
    /// Write the ternary network as ordinary weights (selected tensors hold s·t in their own dtype) in the
    /// input's format instead of packed trits.
    public var dequantize: Bool
    /// fsync the output before publishing it (default). `false` skips the write-back hints and fsyncs:
    /// faster for scratch outputs, but a crash soon after can leave the output empty or truncated.
    public var durable: Bool

    /// Creates options (defaults: TQ2_0, CSR threshold 0.75, default selection, no overwrite, ternary
    /// fallback, no dequantization, durable output).
    public init(format: OutputFormat, ggufType: GGUFTernaryType = .tq2_0, csrThreshold: Double = TernFormat.defaultCSRThreshold,
                selection: TensorSelection = TensorSelection(), overwrite: Bool = false,
                fallback: TernaryFallback = .ternary, dequantize: Bool = false, durable: Bool = true) {
        self.format = format
        self.ggufType = ggufType
        self.csrThreshold = csrThreshold
        self.selection = selection
        self.overwrite = overwrite
        self.fallback = fallback
        self.dequantize = dequantize
        self.durable = durable
    }
}

/// What a selected GGUF tensor that TQ blocks cannot hold (row length not a multiple of 256) becomes.
public enum TernaryFallback: String, Sendable, Hashable, CaseIterable, Codable {
    /// F16 holding f16(α)·t: the network stays ternary (default).
    case ternary
    /// The tensor's original values.
    case keep
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

/// Quantizes a checkpoint (any `CheckpointSource`) into `.tern`, GGUF or safetensors, tensor by tensor.
///
/// Memory: the input is memory-mapped; per tensor the job holds the packed trits (n/4 bytes) and, for
/// `.tern` CSR layers, the CSR arrays, so peak memory follows the largest tensor, not the model. A tensor
/// whose working memory exceeds the machine's physical memory is refused before anything is allocated.
public final class CheckpointQuantizer: Sendable {
    /// The quantizer (and its backend).
    public let quantizer: Quantizer
    /// Recognises and packs already-ternary tensors in one pass: `backend` itself when it is the CPU
    /// backend, else a CPU backend on every core (such a tensor needs no arithmetic a device would do).
    let alreadyTernary: CPUBackend

    /// Uses `backend` for every tensor, except that already-ternary tensors (every non-zero value ±a, a
    /// BitNet export) are packed on the CPU in the pass that recognises them, with the same bytes.
    public init(backend: any QuantizationBackend) {
        self.quantizer = Quantizer(backend: backend)
        self.alreadyTernary = backend as? CPUBackend ?? CPUBackend()
    }

    /// Decides, for every tensor, what the job will do in `options.format`.
    public func plan(_ source: any CheckpointSource, options: QuantizationOptions) -> [TensorPlan] {
        plan(source, options: options, known: [:])
    }

    func plan(_ source: any CheckpointSource, options: QuantizationOptions, known: [String: TernaryFacts]) -> [TensorPlan] {
        let writer = CheckpointWriters.type(for: options.format)
        return source.tensors.map { t in
            let decision = options.selection.decide(name: t.name, elementType: t.dtype.elementType, dtypeLabel: t.dtype.label,
                                                    shape: t.shape, naming: source.naming)
            return writer.plan(t, decision: decision, options: options, known: known[t.name])
        }
    }

    /// Quantizes `source` into the file at `outputPath` atomically (temporary file, fsync unless
    /// `options.durable` is false, rename).
    /// Refuses to overwrite any input file (shards, index, config; with `overwrite` too), and an existing
    /// output unless `options.overwrite`. On any error nothing is left at `outputPath` (an existing file
    /// stays untouched). Throws `JobError`.
    public func run(_ source: any CheckpointSource, outputPath: String, options: QuantizationOptions,
                    progress: ((JobProgress) -> Void)? = nil) throws -> QuantizationReport {
        for file in source.inputFiles where Self.sameFile(file, outputPath) {
            throw JobError(file: outputPath, underlying: FormatError.unsupported(file: outputPath, reason: "output would overwrite the input file \(file)"))
        }
        var known: [String: TernaryFacts] = [:]
        // At most two attempts: the first assumes every GGUF scale fits an f16; when one does not, every
        // fact is gathered and the second attempt's header holds the right types.
        for attempt in 0..<2 {
            let output: AtomicFile
            do {
                output = try AtomicFile(path: outputPath, overwrite: options.overwrite, durable: options.durable)
            } catch {
                throw JobError(file: outputPath, underlying: error)
            }
            do {
                var report = try perform(source, to: output, outputName: outputPath, options: options, known: known, progress: progress)
                try output.commit()
                report.totals.outputBytes = output.bytesWritten
                report.totals.compressionVsF16 = output.bytesWritten > 0 ? Double(report.totals.f16Bytes) / Double(output.bytesWritten) : 0
                return report
            } catch let replan as ReplanNeeded where attempt == 0 {
                output.abort()
                known = replan.facts
            } catch {
                output.abort()
                if error is JobError { throw error }
                throw JobError(file: outputPath, underlying: error)
            }
        }
        throw JobError(file: outputPath, underlying: FormatError.unsupported(file: outputPath, reason: "internal error: the GGUF plan changed twice"))
    }

    /// `run` for a safetensors checkpoint.
    public func run(_ checkpoint: SafetensorsCheckpoint, outputPath: String, options: QuantizationOptions,
                    progress: ((JobProgress) -> Void)? = nil) throws -> QuantizationReport {
        try run(SafetensorsSource(checkpoint), outputPath: outputPath, options: options, progress: progress)
    }

    static func sameFile(_ a: String, _ b: String) -> Bool {
        var sa = stat(), sb = stat()
        guard stat(a, &sa) == 0, stat(b, &sb) == 0 else { return false }
        return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino
    }

    /// Streams the output to `sink` (an `AtomicFile` or a `MemorySink`) and returns the report.
    /// `outputName` is used in the report and errors. For GGUF output the tensors' facts are gathered
    /// first (the header's types depend on them), so the input is read twice.
    public func write(_ source: any CheckpointSource, to sink: any ByteSink, outputName: String,
                      options: QuantizationOptions, progress: ((JobProgress) -> Void)? = nil) throws -> QuantizationReport {
        var known: [String: TernaryFacts] = [:]
        if CheckpointWriters.type(for: options.format).headerNeedsFacts && !options.dequantize {
            for p in plan(source, options: options) where p.action == .quantized {
                known[p.tensor.name] = try facts(of: p.tensor).facts
            }
        }
        do {
            return try perform(source, to: sink, outputName: outputName, options: options, known: known, progress: progress)
        } catch is ReplanNeeded {
            throw JobError(file: outputName, underlying: FormatError.unsupported(file: outputName, reason: "internal error: the GGUF plan changed with every fact known"))
        }
    }

    /// `write` for a safetensors checkpoint.
    public func write(_ checkpoint: SafetensorsCheckpoint, to sink: any ByteSink, outputName: String,
                      options: QuantizationOptions, progress: ((JobProgress) -> Void)? = nil) throws -> QuantizationReport {
        try write(SafetensorsSource(checkpoint), to: sink, outputName: outputName, options: options, progress: progress)
    }

    /// Physical memory of this machine in bytes (`Int.max` when unknown).
    static var physicalMemory: Int {
        let pages = sysconf(Int32(_SC_PHYS_PAGES)), size = sysconf(Int32(_SC_PAGESIZE))
        guard pages > 0, size > 0 else { return Int.max }
        return Checked.mul(pages, size) ?? Int.max
    }

    /// Working memory the job allocates for a quantized tensor: the packed trits plus what the writer
    /// allocates (the CSR arrays for `.tern`).
    static func workingBytes(_ tensor: SourceTensor, writer: any CheckpointWriter.Type, options: QuantizationOptions) -> Int {
        let packed = tensor.elementCount / 4 + 1
        return Checked.add(packed, writer.extraWorkingBytes(elements: tensor.elementCount, options: options)) ?? Int.max
    }

    /// Quantizes one tensor: its packed trits and facts (α, already-ternary magnitude, sparsity).
    func facts(of tensor: SourceTensor) throws -> QuantizedData {
        try measuredFacts(of: tensor, errorScale: nil, buffers: nil).data
    }

    /// `facts(of:)`, and with `errorScale` the MSE at `errorScale(facts)`, summed in the trit pass (for an
    /// ordinary tensor `errorScale` gets provisional facts: α as scale, not already ternary, sparsity 0).
    /// Returns the MSE and the scale it was measured at (nil without `errorScale`). The trits' buffer comes
    /// from `buffers` when given (a job's pool), else it is allocated.
    func measuredFacts(of tensor: SourceTensor, errorScale: ((TernaryFacts) -> Float)?,
                       buffers: TritBufferPool?) throws -> (data: QuantizedData, mse: (value: Double, scale: Float)?) {
        guard let elementType = tensor.dtype.elementType else {
            throw FormatError.invalidTensor(file: tensor.file, tensor: tensor.name, reason: "type \(tensor.dtype.label) cannot be quantized")
        }
        let input = try TensorInput(name: tensor.name, shape: tensor.shape, elementType: elementType, bytes: tensor.bytes)
        let packedBytes = TritLayout.packed2Bit.byteCount(forTrits: input.elementCount)
        var packed = buffers?.take(byteCount: packedBytes) ?? [UInt8](repeating: 0, count: packedBytes)
        // Every non-zero value of one magnitude a (a BitNet export): the trits are sign(w), α comes from the
        // non-zero count, and the scale is a. One pass; anything else is rewritten by the backend below.
        if let ternary = try packed.withUnsafeMutableBytes({ try alreadyTernary.quantizeIfAlreadyTernary(input, into: $0) }) {
            let a = ternary.magnitude
            let facts = TernaryFacts(scale: a, absmean: ternary.summary.scale, alreadyTernary: true, sparsity: ternary.summary.sparsity)
            var mse: (value: Double, scale: Float)?
            if let errorScale {
                let scale = errorScale(facts)
                if scale.bitPattern == a.bitPattern {
                    // Stored at its own magnitude a, the tensor is reproduced exactly (every w − t·a is ±0),
                    // so its MSE is exactly +0; MeanSquaredError.of's formula would give +0 or a value within
                    // its rounding bound (the tests compare the two).
                    mse = (0, a)
                } else {
                    mse = (try packed.withUnsafeBytes { try MeanSquaredError.of(input, packed: $0, scale: scale) }, scale)
                }
            }
            return (QuantizedData(input: input, packed: packed, facts: facts), mse)
        }
        let summary: QuantizationSummary
        var mse: (value: Double, scale: Float)?
        if let errorScale {
            let measured = try packed.withUnsafeMutableBytes { buffer in
                try quantizer.backend.quantizePacked(input, into: buffer) { alpha in
                    errorScale(TernaryFacts(scale: alpha, absmean: alpha, alreadyTernary: false, sparsity: 0))
                }
            }
            summary = measured.summary
            mse = (measured.meanSquaredError, measured.errorScale)
        } else {
            summary = try packed.withUnsafeMutableBytes { try quantizer.quantize(input, layout: .packed2Bit, into: $0) }
        }
        let facts = TernaryFacts(scale: summary.scale, absmean: summary.scale, alreadyTernary: false, sparsity: summary.sparsity)
        return (QuantizedData(input: input, packed: packed, facts: facts), mse)
    }

    /// The look-ahead's work for one tensor (on its thread): read-ahead, then for a quantized tensor its
    /// trits, facts and MSE against `storedScale(facts)` (summed in the trit pass; measured again only when
    /// the final facts change the stored scale, which the known scale and already-ternary flag never do
    /// in today's writers), for a kept one its first NaN/±Inf; then
    /// its input pages are released (the writers need only the trits; kept tensors are copied from the file).
    /// A quantized tensor's trits go into a buffer from `buffers`.
    func prepare(_ plan: TensorPlan, storedScale: (TernaryFacts) -> Float, source: any CheckpointSource,
                 buffers: TritBufferPool) throws -> PreparedTensor {
        let t = plan.tensor
        t.readAhead()
        defer { source.releasePages(t) }
        switch plan.action {
        case .quantized:
            let (data, measured) = try withoutActuallyEscaping(storedScale) { try measuredFacts(of: t, errorScale: $0, buffers: buffers) }
            let scale = storedScale(data.facts)
            let mse: Double
            if let measured, measured.scale.bitPattern == scale.bitPattern {
                mse = measured.value
            } else {
                mse = try data.packed.withUnsafeBytes { try Self.meanSquaredError(data.input, packed: $0, scale: scale) }
            }
            return PreparedTensor(quantized: .init(data: data, mse: mse, mseScale: scale), firstNonFinite: nil)
        case .kept:
            return PreparedTensor(quantized: nil, firstNonFinite: t.dtype.elementType.flatMap { ElementConversion.firstNonFinite(t.bytes, as: $0) })
        case .skipped:
            return PreparedTensor(quantized: nil, firstNonFinite: nil)
        }
    }

    /// The job loop: plan, begin the writer, append each tensor, finish. Knows no format.
    func perform(_ source: any CheckpointSource, to sink: any ByteSink, outputName: String, options: QuantizationOptions,
                 known: [String: TernaryFacts], progress: ((JobProgress) -> Void)?) throws -> QuantizationReport {
        let start = DispatchTime.now().uptimeNanoseconds
        let writerType = CheckpointWriters.type(for: options.format)
        try writerType.validate(source, options: options)
        let plans = plan(source, options: options, known: known)
        let memory = Self.physicalMemory
        for p in plans where p.action == .quantized {
            let need = Self.workingBytes(p.tensor, writer: writerType, options: options)
            guard need <= memory else {
                throw JobError(file: p.tensor.file, underlying: FormatError.refused(file: p.tensor.file,
                    reason: "tensor '\(p.tensor.name)': quantizing it needs \(need) bytes of working memory (\(p.tensor.byteCount) bytes of data), more than this machine's \(memory) bytes of physical memory; run on a machine with more memory", remedy: .excludeTensor(p.tensor.name)))
            }
        }
        let info = source.modelInfo
        let totalBytes = source.totalBytes
        let writer = try writerType.init(sink: sink, source: source, plans: plans, options: options)
        var layers: [LayerReport] = []
        var warnings = source.warnings
        var bytesDone = 0
        var discovered = known

        // Look-ahead: a background thread prepares the tensors ahead (quantize + MSE, or the NaN scan of a
        // kept tensor) while this loop encodes and writes (see `TensorLookAhead`).
        let format = options.format
        // Trit buffers go round between the look-ahead and this loop instead of being allocated per tensor.
        let buffers = TritBufferPool()
        let lookAhead = TensorLookAhead(plans: plans) { plan in
            try self.prepare(plan, storedScale: { CheckpointWriters.type(for: format).storedScale(plan, facts: $0, options: options) },
                             source: source, buffers: buffers)
        }
        defer {
            // No background work outlives the job, whatever it throws.
            lookAhead.cancel()
        }

        for (index, p) in plans.enumerated() {
            let t = p.tensor
            var row = LayerReport(name: t.name, shape: t.shape, dtype: t.dtype.label, action: p.action, reason: p.reason,
                                  scale: nil, scaleBits: nil, sparsity: nil, mse: nil, storage: p.storage,
                                  inputBytes: t.byteCount, outputBytes: 0)
            var notes = p.notes
            // Before reading a tensor's bytes: the place for a per-tensor check that the mapping still
            // covers them (issue 8.4, a shrinking input file).
            do {
                switch p.action {
                case .skipped:
                    row.inputBytes = 0
                case .quantized:
                    guard var prepared = try lookAhead.take(index).quantized else {
                        throw FormatError.unsupported(file: t.file, reason: "internal error: tensor '\(t.name)' was not quantized")
                    }
                    discovered[t.name] = prepared.data.facts
                    let stored: QuantizedAppend
                    do {
                        stored = try writer.appendQuantized(p, &prepared.data)
                    } catch let replan as ReplanNeeded {
                        // Gather every remaining fact, then let the caller start again with a correct header.
                        discovered.merge(replan.facts) { a, _ in a }
                        for later in (index + 1)..<plans.count where plans[later].action != .skipped {
                            let facts = try lookAhead.take(later).quantized?.data.facts
                            if let facts, discovered[plans[later].tensor.name] == nil { discovered[plans[later].tensor.name] = facts }
                        }
                        throw ReplanNeeded(facts: discovered)
                    }
                    let data = prepared.data
                    let f = data.facts
                    row.scale = f.scale
                    row.scaleBits = Self.hex(f.scale.bitPattern)
                    row.sparsity = f.sparsity
                    row.storage = stored.storage
                    row.outputBytes = stored.outputBytes
                    if stored.storedScale.bitPattern != f.scale.bitPattern {
                        row.storedScale = stored.storedScale
                        row.storedScaleBits = Self.hex(stored.storedScale.bitPattern)
                    }
                    if f.alreadyTernary {
                        row.absmean = f.absmean
                        notes.append("already ternary: every non-zero value has magnitude \(f.scale), encoded with that scale")
                    }
                    notes += stored.notes
                    if stored.storedScale.bitPattern == prepared.mseScale.bitPattern {
                        row.mse = prepared.mse
                    } else {
                        row.mse = try data.packed.withUnsafeBytes { try Self.meanSquaredError(data.input, packed: $0, scale: stored.storedScale) }
                    }
                    buffers.give(&prepared.data.packed)
                case .kept:
                    if let k = try lookAhead.take(index).firstNonFinite {
                        let warning = "kept tensor '\(t.name)' holds a NaN or infinite value (element \(k)); it is written unchanged"
                        notes.append("warning: " + warning)
                        warnings.append(warning)
                    }
                    row.outputBytes = try writer.appendKept(p)
                }
            } catch {
                if error is FormatError || error is ReplanNeeded || error is JobError { throw error }
                throw JobError(file: t.file, underlying: error)
            }
            // The file shrank or changed while it was read (issue 8.4): an error naming it, no output.
            try t.storage.checkIntact()
            source.releasePages(t)
            row.notes = notes.isEmpty ? nil : notes
            bytesDone += t.byteCount
            layers.append(row)
            let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            progress?(JobProgress(tensorsDone: index + 1, tensorCount: plans.count, bytesDone: bytesDone, totalBytes: totalBytes,
                                  elapsed: elapsed, currentTensor: t.name))
        }
        try writer.finish(info)

        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let present = layers.filter { $0.action != .skipped }
        let f16Bytes = present.reduce(0) { $0 + 2 * (Checked.product($1.shape) ?? 0) }
        let outputBytes = (sink as? MemorySink)?.bytes.count ?? (sink as? AtomicFile)?.bytesWritten ?? 0
        let totals = ReportTotals(
            parameters: source.tensors.reduce(0) { $0 + $1.elementCount },
            quantizedParameters: layers.filter { $0.action == .quantized }.reduce(0) { $0 + (Checked.product($1.shape) ?? 0) },
            tensorsQuantized: layers.filter { $0.action == .quantized }.count,
            tensorsKept: layers.filter { $0.action == .kept }.count,
            tensorsSkipped: layers.filter { $0.action == .skipped }.count,
            inputBytes: totalBytes, outputBytes: outputBytes, f16Bytes: f16Bytes,
            compressionVsF16: outputBytes > 0 ? Double(f16Bytes) / Double(outputBytes) : 0,
            seconds: seconds, gigabytesPerSecond: seconds > 0 ? Double(totalBytes) / seconds / 1e9 : 0)
        var report = QuantizationReport(input: source.path, output: outputName, format: options.format,
                                        ggufType: writer.reportedGGUFType, csrThreshold: writer.reportedCSRThreshold,
                                        backend: quantizer.backend.name, device: quantizer.backend.deviceDescription,
                                        model: info, layers: layers, totals: totals, notes: writer.notes + warnings.map { "warning: " + $0 })
        report.inputFormat = source.format
        report.dequantize = options.dequantize ? true : nil
        report.warnings = warnings
        return report
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

    /// Mean of (w − s·t)² in float64 over the tensor at scale `scale` (see `MeanSquaredError` for the
    /// fixed summation order: the bits do not depend on the thread count or the instruction set).
    /// Throws `QuantizationError.packedDataTooShort` when `packed` holds fewer than ⌈n/4⌉ bytes.
    public static func meanSquaredError(_ input: TensorInput, packed: UnsafeRawBufferPointer, scale: Float) throws -> Double {
        try MeanSquaredError.of(input, packed: packed, scale: scale)
    }
}
