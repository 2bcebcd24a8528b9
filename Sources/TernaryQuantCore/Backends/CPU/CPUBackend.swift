import CTernaryKernels
import Dispatch
import Foundation

/// The native CPU backend: all cores (Dispatch) and SIMD, one or two memory passes per tensor.
///
/// `quantize` reads a tensor of `forecastMinimumElements` or more once: it decides the trits at a
/// `ThresholdForecast` while it sums |w|, and afterwards re-decides only the elements recorded in the
/// forecast's band (or ternarizes again where the band missed); `quantizeBlocks` does the same for TQ2_0.
/// Otherwise, and for `quantizePacked` and TQ1_0 blocks: pass 1 sums |w| in float64 SIMD lanes per chunk and certifies α with
/// `AbsMeanCertifier` (falling back to `ExactAbsSum` when the mean sits next to a rounding boundary); pass 2
/// compares bit patterns against `TritThreshold`. Both paths give the same bytes. F16/BF16 are read in
/// place (no widened copy). Extra memory per call: O(chunks) per-chunk results, plus for the one pass the
/// band's entries (virtual room for 1/32 of the elements at 8 bytes each; only the pages the recorded
/// entries fill are touched, about 2 bytes per 100 elements on ordinary weights). Results do not depend on
/// the threads' FPU modes (flush-to-zero / denormals-are-zero): the C sums clear them for their own
/// duration and every other step is integer arithmetic.
public struct CPUBackend: QuantizationBackend {
    /// Worker threads used per tensor (≥ 1).
    public let threadCount: Int
    /// Elements per work item (a positive multiple of 64, at most `maximumChunkSize`).
    public let chunkSize: Int
    /// Implementation of the inner loops (results are identical either way).
    public let instructionSet: CPUInstructionSet

    /// Default elements per work item: 64 Ki (256 KiB of float32, cache-friendly).
    public static let defaultChunkSize = 1 << 16
    /// Largest chunk size an initializer keeps (2^40 elements); larger requests are clamped to it.
    public static let maximumChunkSize = 1 << 40

    /// Creates a CPU backend. `threadCount` defaults to the active processor count (values below 1 mean 1);
    /// `chunkSize` is clamped to 64...`maximumChunkSize` and rounded up to a multiple of 64 (so packed
    /// bytes never straddle chunks); `instructionSet` pins the inner loops (tests use
    /// `.avx2` and `.portable` to cover the lower loops on AVX-512 machines). Never traps, whatever the values.
    public init(threadCount: Int? = nil, chunkSize: Int = CPUBackend.defaultChunkSize,
                instructionSet: CPUInstructionSet = .automatic) {
        self.threadCount = Swift.max(1, threadCount ?? ProcessInfo.processInfo.activeProcessorCount)
        let clamped = Swift.min(Swift.max(chunkSize, 64), Self.maximumChunkSize)  // no overflow below
        self.chunkSize = (clamped + 63) / 64 * 64
        self.instructionSet = instructionSet
    }

    public var name: String { "cpu" }
    public var deviceDescription: String { "CPU (\(threadCount) thread\(threadCount == 1 ? "" : "s"), \(instructionSet.activeName))" }
    public var preferredConcurrency: Int { 1 }

    public func quantize(_ input: TensorInput, layout: TritLayout, into output: UnsafeMutableRawBufferPointer) throws
        -> QuantizationSummary
    {
        try checkOutputCapacity(input, layout: layout, output: output)
        if let forecast = forecast(for: input) {
            return try quantizeInOnePass(input, layout: layout, into: output, forecast: forecast)
        }
        return try quantizeInTwoPasses(input, layout: layout, into: output)
    }

    /// Pass 1 for α, pass 2 for the trits (the path of tensors below `forecastMinimumElements`).
    private func quantizeInTwoPasses(_ input: TensorInput, layout: TritLayout, into output: UnsafeMutableRawBufferPointer) throws
        -> QuantizationSummary
    {
        let scale = try absMean(input)
        let threshold = TritThreshold(validScale: scale)
        let zeros = ternarize(input, threshold: threshold, layout: layout, output: output)
        return QuantizationSummary(scale: scale, elementCount: input.elementCount, zeroCount: zeros)
    }

    /// `quantize` into packed trits with the mean squared error at `errorScale(α)` (`MeanSquaredError`'s
    /// definition and bits, whatever the thread count). A tensor of `forecastMinimumElements` or more is read
    /// once: its trits are decided at a sampled forecast while α and the error's moments (Σw², the non-zero
    /// magnitudes' sum and count) are gathered per chunk, and the band's elements then move between the
    /// moments as their trits change. A smaller one takes α, the trits and the moments in three passes (it
    /// stays in cache). Throws what `quantize` throws.
    public func quantizePacked(_ input: TensorInput, into output: UnsafeMutableRawBufferPointer,
                               errorScale: (Float) -> Float) throws -> MeasuredQuantization {
        if let forecast = forecast(for: input) {
            return try quantizePacked(input, into: output, forecast: forecast, errorScale: errorScale)
        }
        try checkOutputCapacity(input, layout: .packed2Bit, output: output)
        return try quantizeMeasuredInPasses(input, into: output, errorScale: errorScale)
    }

    /// `quantizePacked(_:into:errorScale:)` with a caller-chosen forecast (tests pass deliberately wrong
    /// ones): the same trits, α, zero count and error bits for every forecast. A forecast for another
    /// element type takes the passes of a small tensor. Throws what `quantize` throws.
    public func quantizePacked(_ input: TensorInput, into output: UnsafeMutableRawBufferPointer,
                               forecast: ThresholdForecast, errorScale: (Float) -> Float) throws -> MeasuredQuantization {
        try checkOutputCapacity(input, layout: .packed2Bit, output: output)
        if let measured = try quantizeMeasuredInOnePass(input, into: output, forecast: forecast, errorScale: errorScale) {
            return measured
        }
        return try quantizeMeasuredInPasses(input, into: output, errorScale: errorScale)
    }

    /// α, then the trits, then `MeanSquaredError.of`.
    private func quantizeMeasuredInPasses(_ input: TensorInput, into output: UnsafeMutableRawBufferPointer,
                                          errorScale: (Float) -> Float) throws -> MeasuredQuantization {
        let summary = try quantizeInTwoPasses(input, layout: .packed2Bit, into: output)
        let scale = errorScale(summary.scale)
        let mse = try MeanSquaredError.of(input, packed: UnsafeRawBufferPointer(output), scale: scale, instructionSet: instructionSet)
        return MeasuredQuantization(summary: summary, errorScale: scale, meanSquaredError: mse)
    }

    /// The one pass with the error's moments, per chunk of `MeanSquaredError.chunkSize`; nil where the one
    /// pass does not apply (see `quantizeInOnePass(_:writing:chunkSize:into:forecast:moments:)`).
    private func quantizeMeasuredInOnePass(_ input: TensorInput, into output: UnsafeMutableRawBufferPointer,
                                           forecast: ThresholdForecast,
                                           errorScale: (Float) -> Float) throws -> MeasuredQuantization? {
        let chunks = MeanSquaredError.chunkCount(input.elementCount)
        var moments = [tq_moments](repeating: tq_moments(), count: Swift.max(chunks, 1))
        let summary = try moments.withUnsafeMutableBufferPointer { buffer -> QuantizationSummary? in
            guard let base = buffer.baseAddress else { return nil }
            return try quantizeInOnePass(input, writing: .measured, chunkSize: MeanSquaredError.chunkSize, into: output,
                                         forecast: forecast, moments: base)
        }
        guard let summary, let packed = output.baseAddress else { return nil }
        // Every value the chunk sums ever held lies in [min(lowest trit, band), max(largest, band)].
        let low = Self.float32MagnitudeBits(forecast.low, of: input.elementType)
        let high = Self.float32MagnitudeBits(forecast.high, of: input.elementType)
        for c in 0..<chunks {
            var bound = moments[c]
            bound.max_bits = Swift.max(bound.max_bits, high)
            if !MeanSquaredError.isExact(bound, lowestBits: Swift.min(bound.min_bits, low)) {
                moments[c].magnitudes = MeanSquaredError.exactMagnitudes(input, packed: UnsafeRawPointer(packed), chunk: c)
            }
        }
        let scale = errorScale(summary.scale)
        return MeasuredQuantization(summary: summary, errorScale: scale,
                                    meanSquaredError: MeanSquaredError.mean(moments, scale: scale, count: input.elementCount))
    }

    /// A kernel-width magnitude threshold (float32 bits, or 16-bit bits for F16/BF16) as float32 magnitude
    /// bits (both widenings are monotone).
    static func float32MagnitudeBits(_ bits: UInt32, of type: ElementType) -> UInt32 {
        switch type {
        case .float32: return bits & 0x7FFF_FFFF
        case .float16: return Float32Bits.fromFloat16(UInt16(truncatingIfNeeded: bits & 0x7FFF))
        case .bfloat16: return Float32Bits.fromBFloat16(UInt16(truncatingIfNeeded: bits & 0x7FFF))
        }
    }

    /// Moves the band elements whose trit changed from `forecast` to `threshold` between a chunk's moments:
    /// their magnitude (widened exactly) and count. `entries` as the kernels record them.
    static func moveBand(_ entries: UnsafePointer<UInt32>, count: Int, type: ElementType, forecast: UInt32,
                         threshold: UInt32, into moments: inout tq_moments) {
        let mask: UInt32 = type == .float32 ? 0x7FFF_FFFF : 0x7FFF
        for j in 0..<count {
            let magnitude = entries[2 * j + 1] & mask
            let before = magnitude >= forecast, after = magnitude >= threshold
            guard before != after else { continue }
            let bits = float32MagnitudeBits(magnitude, of: type)
            let value = MeanSquaredError.widened(bits)
            if after {
                moments.magnitudes += value
                moments.nonzero &+= 1
                moments.min_bits = Swift.min(moments.min_bits, bits)
            } else {
                moments.magnitudes -= value
                moments.nonzero &-= 1
            }
        }
    }

    /// Quantizes `input` straight into GGUF ternary blocks of `type` (`.tq2_0` or `.tq1_0`, α as the
    /// blocks' f16 scale `d`, rounded to nearest even), writing `elementCount / 256 × block bytes` bytes to
    /// the start of `output`: the bytes `TernaryBlocks.encode` gives for this tensor's packed trits. TQ2_0
    /// of `forecastMinimumElements` or more: one pass over the input with a sampled forecast; otherwise one
    /// pass after the α pass. Throws `QuantizationError.notWholeBlocks` when the element count is not a
    /// multiple of 256, `.unsupportedBlockType` for another type, `.byteCountMismatch` when `output` is too
    /// small, and what `quantize` throws for bad input.
    public func quantizeBlocks(_ input: TensorInput, type: GGMLType, into output: UnsafeMutableRawBufferPointer) throws
        -> QuantizationSummary
    {
        try quantizeBlocks(input, type: type, into: output, forecast: type == .tq2_0 ? forecast(for: input) : nil)
    }

    /// `quantizeBlocks(_:type:into:)` with a caller-chosen forecast: TQ2_0 blocks are written in one pass
    /// over memory (the trits at the forecast, the recorded band elements' codes rewritten and every block's
    /// scale set once α is known), as `quantize(_:layout:into:forecast:)` does for trits, with the same bytes
    /// as the two-pass path for every forecast. TQ1_0, a nil forecast, one for another element type, or
    /// chunks above 2^32 elements take the two-pass path. Throws what `quantizeBlocks(_:type:into:)` throws.
    public func quantizeBlocks(_ input: TensorInput, type: GGMLType, into output: UnsafeMutableRawBufferPointer,
                               forecast: ThresholdForecast?) throws -> QuantizationSummary {
        let blockBytes = tq_block_bytes(Int32(type.rawValue))
        guard type == .tq1_0 || type == .tq2_0, blockBytes > 0 else {
            throw QuantizationError.unsupportedBlockType(rawType: type.rawValue)
        }
        let blockSize = TernaryBlocks.blockSize
        guard input.elementCount % blockSize == 0 else {
            throw QuantizationError.notWholeBlocks(name: input.name, elementCount: input.elementCount, blockSize: blockSize)
        }
        let needed = (input.elementCount / blockSize).multipliedReportingOverflow(by: blockBytes)
        guard !needed.overflow, output.count >= needed.partialValue, let outputBase = output.baseAddress else {
            throw QuantizationError.byteCountMismatch(name: input.name, expected: needed.partialValue, actual: output.count)
        }
        // Work items of whole blocks: the chunk size rounded up to a multiple of 256.
        let blockChunk = (chunkSize + blockSize - 1) / blockSize * blockSize
        if type == .tq2_0, let forecast,
           let summary = try quantizeInOnePass(input, writing: .tq2_0, chunkSize: blockChunk, into: output, forecast: forecast) {
            return summary
        }
        let scale = try absMean(input)
        let threshold = CPUKernels.threshold(TritThreshold(validScale: scale), for: input.elementType)
        let d = HalfConversion.float16Bits(scale)
        let out = SendableRawPointer(outputBase)
        let kernels = SendableKernels(instructionSet.kernels)
        let rawType = Int32(type.rawValue)
        let nonZero = perChunkResults(count: input.elementCount, chunkSize: blockChunk, initial: 0) { range in
            CPUKernels.quantizeBlocks(input, range: range, threshold: threshold, type: rawType, d: d,
                                      output: out.pointer, kernels: kernels.table)
        }
        return QuantizationSummary(scale: scale, elementCount: input.elementCount,
                                   zeroCount: input.elementCount - nonZero.reduce(0, +))
    }

    // MARK: - one pass with a forecast threshold

    /// Tensors from this many elements on take the one-pass path in `quantize` (2^18; a smaller tensor
    /// stays in cache for its second pass anyway).
    public static let forecastMinimumElements = 1 << 18

    /// The sampled forecast for `input` when the one-pass path applies (large enough, chunks of at most
    /// 2^32 elements so the band's indices fit the kernels' 32 bits).
    func forecast(for input: TensorInput) -> ThresholdForecast? {
        guard input.elementCount >= Self.forecastMinimumElements, chunkSize <= 1 << 32 else { return nil }
        return ThresholdForecast.sampled(input, threads: threadCount, instructionSet: instructionSet)
    }

    /// Band entries recorded per chunk of `chunkSize` elements (each an index and the element's bits): 1/32
    /// of the chunk, at least 4.
    static func bandCapacity(chunkSize: Int) -> Int { Swift.max(4, chunkSize / 32) }

    /// `quantize` in one pass over memory, deciding trits at `forecast.threshold` while α is summed: per
    /// chunk, one loop gives the α sum, the trits at the forecast and the band's elements. Then α is
    /// certified exactly as `absMean` does (the same chunk sums), and if its threshold lies in the band
    /// only the recorded elements are re-decided; a chunk whose band overflowed
    /// `bandCapacity(chunkSize:)`, or every chunk when the band misses, is ternarized again. The same
    /// trits, α bits and zero count as the two-pass path for every forecast (tests pass deliberately wrong
    /// ones); a forecast made for another element type, or chunks above 2^32 elements, take the two-pass
    /// path. Throws what `quantize` throws.
    public func quantize(_ input: TensorInput, layout: TritLayout, into output: UnsafeMutableRawBufferPointer,
                         forecast: ThresholdForecast) throws -> QuantizationSummary {
        try checkOutputCapacity(input, layout: layout, output: output)
        return try quantizeInOnePass(input, layout: layout, into: output, forecast: forecast)
    }

    /// What the one pass writes.
    private enum OnePassOutput {
        /// Trits in a backend layout.
        case trits(TritLayout)
        /// GGUF TQ2_0 blocks (the scale d written once α is known).
        case tq2_0
        /// Packed trits and the error's moments per chunk (chunks of `MeanSquaredError.chunkSize`).
        case measured
    }

    private func quantizeInOnePass(_ input: TensorInput, layout: TritLayout, into output: UnsafeMutableRawBufferPointer,
                                   forecast: ThresholdForecast) throws -> QuantizationSummary {
        guard let summary = try quantizeInOnePass(input, writing: .trits(layout), chunkSize: chunkSize, into: output,
                                                  forecast: forecast) else {
            return try quantizeInTwoPasses(input, layout: layout, into: output)
        }
        return summary
    }

    /// The one pass (see `quantize(_:layout:into:forecast:)`) over chunks of `size` elements (a multiple of
    /// 256 for blocks), writing `what` into `output` (checked by the caller); nil where it does not apply
    /// (a forecast for another element type, chunks above 2^32 elements, sizes that overflow), so the caller
    /// makes two passes.
    private func quantizeInOnePass(_ input: TensorInput, writing what: OnePassOutput, chunkSize size: Int,
                                   into output: UnsafeMutableRawBufferPointer, forecast: ThresholdForecast,
                                   moments: UnsafeMutablePointer<tq_moments>? = nil) throws -> QuantizationSummary? {
        let count = input.elementCount
        guard forecast.elementType == input.elementType, let outputBase = output.baseAddress,
              let source = input.bytes.baseAddress, size <= 1 << 32 else { return nil }
        if case .measured = what {
            guard size == MeanSquaredError.chunkSize, moments != nil else { return nil }
        }
        let chunkMoments = moments.map { SendablePointer($0) }
        let width = input.elementType.byteWidth
        let capacity = Self.bandCapacity(chunkSize: size)
        let chunks = chunkCount(count, chunkSize: size)
        let workers = Swift.min(threadCount, chunks)
        // Each worker appends its chunks' band entries to a region of its own, so only the pages the
        // entries fill are ever touched (the regions are sized for every chunk overflowing).
        let chunksPerWorker = (chunks + workers - 1) / workers
        let region = chunksPerWorker.multipliedReportingOverflow(by: capacity * 2)
        let entryCount = region.partialValue.multipliedReportingOverflow(by: workers)
        guard !region.overflow, !entryCount.overflow else { return nil }
        let entries = UnsafeMutablePointer<UInt32>.allocate(capacity: Swift.max(1, entryCount.partialValue))
        defer { entries.deallocate() }
        var firstPass = [(sum: Double, nonZero: Int, band: Int, entries: Int)](repeating: (0, 0, 0, 0), count: chunks)
        let band = SendablePointer(entries)
        let out = SendableRawPointer(outputBase)
        let src = SendableConstRawPointer(source)
        let kernels = SendableKernels(instructionSet.kernels)
        let kind = CPUKernels.kind(of: input.elementType)
        let blockSize = TernaryBlocks.blockSize
        let blockBytes = tq_block_bytes(Int32(GGMLType.tq2_0.rawValue))
        firstPass.withUnsafeMutableBufferPointer { results in
            guard let resultBase = results.baseAddress else { return }
            let record = SendablePointer(resultBase)
            DispatchQueue.concurrentPerform(iterations: workers) { worker in
                var next = worker * region.partialValue
                var chunk = worker
                while chunk < chunks {
                    let range = chunkRange(chunk, count: count, chunkSize: size)
                    let at = src.pointer.map { $0 + range.lowerBound * width }
                    var sum = 0.0
                    var recorded = 0
                    let nonZero: Int
                    switch what {
                    case .trits(let layout):
                        let first = layout == .packed2Bit ? range.lowerBound / 4 : range.lowerBound
                        nonZero = kernels.table.pointee.speculate(at, kind, range.count, forecast.threshold,
                                                                  layout == .packed2Bit ? 0 : 1, out.pointer + first,
                                                                  forecast.low, forecast.high, band.pointer + next, capacity,
                                                                  &sum, &recorded)
                    case .tq2_0:
                        let blocks = out.pointer.assumingMemoryBound(to: UInt8.self) + range.lowerBound / blockSize * blockBytes
                        nonZero = tq_speculate_tq2_0(kernels.table, at, kind, range.count / blockSize, forecast.threshold,
                                                     forecast.low, forecast.high, band.pointer + next, capacity, &sum,
                                                     &recorded, blocks)
                    case .measured:
                        nonZero = kernels.table.pointee.speculate_moments(
                            at, kind, range.count, forecast.threshold,
                            out.pointer.assumingMemoryBound(to: UInt8.self) + range.lowerBound / 4, forecast.low, forecast.high,
                            band.pointer + next, capacity, &sum, &recorded, chunkMoments.map { $0.pointer + chunk })
                    }
                    record.pointer[chunk] = (sum, nonZero, recorded, next)
                    next += 2 * Swift.min(recorded, capacity)
                    chunk += workers
                }
            }
        }
        let results = firstPass
        // α from the chunk sums, certified as absMean certifies its own (any valid depth bound gives the
        // same α: a certified α is the correctly rounded mean, like the exact path's).
        var total = 0.0
        for chunk in results { total += chunk.sum }
        let treeDepth: Int
        switch what {
        case .trits, .measured: treeDepth = Swift.min(size, count) / CPUKernels.lanes + CPUKernels.depthSlack
        case .tq2_0: treeDepth = 4096 / CPUKernels.lanes + CPUKernels.depthSlack + size / 4096 + 1
        }
        let estimate = AbsSumEstimate(floatingSum: total, additionDepth: treeDepth + chunks)
        if estimate.hasNonFinite, let error = input.firstNonFiniteError() {
            throw error
        }
        let scale: Float
        switch AbsMeanCertifier.certify(estimate, count: count) {
        case .certified(let certified): scale = certified
        case .needsExactSum: scale = exactAbsMean(input)
        }
        let threshold = CPUKernels.threshold(TritThreshold(validScale: scale), for: input.elementType)
        let covered = forecast.covers(threshold)
        let d = HalfConversion.float16Bits(scale)
        let rawType = Int32(GGMLType.tq2_0.rawValue)
        // Per chunk: again from the source where the band missed or overflowed, else the recorded elements
        // between the two thresholds (and, for blocks, the scale).
        let nonZero: [Int]
        let unchanged: Bool
        switch what {
        case .trits, .measured: unchanged = threshold == forecast.threshold
        case .tq2_0: unchanged = false  // the blocks' scale is still to be written
        }
        let type = input.elementType
        if unchanged {
            nonZero = results.map(\.nonZero)
        } else {
            nonZero = perChunkResults(count: count, chunkSize: size, initial: 0) { range in
                let chunk = results[range.lowerBound / size]
                let again = !covered || chunk.band > capacity
                switch what {
                case .trits(let layout):
                    if again {
                        return CPUKernels.ternarize(input, range: range, threshold: threshold, layout: layout,
                                                    output: out.pointer, kernels: kernels.table)
                    }
                    let first = layout == .packed2Bit ? range.lowerBound / 4 : range.lowerBound
                    return chunk.nonZero + tq_apply_band(band.pointer + chunk.entries, chunk.band, Int32(width),
                                                         forecast.threshold, threshold, layout == .packed2Bit ? 0 : 1,
                                                         out.pointer.assumingMemoryBound(to: UInt8.self) + first)
                case .tq2_0:
                    if again {
                        return CPUKernels.quantizeBlocks(input, range: range, threshold: threshold, type: rawType, d: d,
                                                         output: out.pointer, kernels: kernels.table)
                    }
                    let blocks = out.pointer.assumingMemoryBound(to: UInt8.self) + range.lowerBound / blockSize * blockBytes
                    let delta = tq_apply_band_tq2_0(band.pointer + chunk.entries, chunk.band, Int32(width), forecast.threshold,
                                                    threshold, blocks)
                    tq_set_block_scales(rawType, blocks, range.count / blockSize, d)
                    return chunk.nonZero + delta
                case .measured:
                    let packed = out.pointer.assumingMemoryBound(to: UInt8.self)
                    guard let measured = chunkMoments?.pointer else { return 0 }  // never: checked above
                    let index = range.lowerBound / size
                    if again {
                        let nonZero = CPUKernels.ternarize(input, range: range, threshold: threshold, layout: .packed2Bit,
                                                           output: out.pointer, kernels: kernels.table)
                        kernels.table.pointee.chunk_moments(src.pointer, kind, packed, count, index, 1, measured + index)
                        return nonZero
                    }
                    let delta = tq_apply_band(band.pointer + chunk.entries, chunk.band, Int32(width), forecast.threshold,
                                              threshold, 0, packed + range.lowerBound / 4)
                    Self.moveBand(band.pointer + chunk.entries, count: chunk.band, type: type, forecast: forecast.threshold,
                                  threshold: threshold, into: &measured[index])
                    return chunk.nonZero + delta
                }
            }
        }
        return QuantizationSummary(scale: scale, elementCount: count, zeroCount: count - nonZero.reduce(0, +))
    }

    // MARK: - already-ternary tensors

    /// Quantizes `input` into packed 2-bit trits in one pass when it is already ternary: every element ±0
    /// or ±a for one finite a > 0, as a BitNet b1.58 export stores its linear weights. Such a tensor needs
    /// no α pass: α = mean(|w|) ≤ a, so every non-zero element has |w| = a > α/2 and its trit is its sign;
    /// and α is a · (non-zero count) / count, rounded once to nearest even from the exact integer sum.
    /// Each work item scans its chunk for one magnitude (the kernel table's vector scan, which stops at
    /// a second one, so ordinary weights cost a few elements per chunk) and packs the chunk while it is in
    /// cache.
    ///
    /// Returns the same trits, α bits and zero count as `quantize`, and a widened exactly to float32; `nil`
    /// when `input` is not already ternary (two magnitudes, every element ±0, or a NaN/±Inf magnitude),
    /// leaving `output`'s first bytes unspecified. Throws `QuantizationError.byteCountMismatch` when
    /// `output` is too small.
    public func quantizeIfAlreadyTernary(_ input: TensorInput, into output: UnsafeMutableRawBufferPointer) throws
        -> (summary: QuantizationSummary, magnitude: Float)?
    {
        try checkOutputCapacity(input, layout: .packed2Bit, output: output)
        guard let outputBase = output.baseAddress else { return nil }  // never: a tensor has ≥ 1 element
        let count = input.elementCount
        let type = input.elementType
        let out = SendableRawPointer(outputBase)
        let kernels = SendableKernels(instructionSet.kernels)
        let exponentMask: UInt32 = type == .float32 ? 0x7F80_0000 : (type == .float16 ? 0x7C00 : 0x7F80)
        // Per chunk: its magnitude bits (0: every element ±0) and non-zero trits; nil for two magnitudes
        // or a NaN/±Inf one (the chunk is then left unpacked).
        let chunks = perChunkResults(count: count, chunkSize: chunkSize, initial: nil as (magnitude: UInt32, nonZero: Int)?) { range in
            guard let base = input.bytes.baseAddress,
                  let magnitude = instructionSet.commonMagnitude(base + range.lowerBound * type.byteWidth, count: range.count, as: type),
                  magnitude & exponentMask != exponentMask else { return nil }
            // Threshold a: a trit is non-zero iff its magnitude is a (any threshold ≥ 1 zeroes ±0).
            let nonZero = CPUKernels.ternarize(input, range: range, threshold: Swift.max(magnitude, 1), layout: .packed2Bit,
                                               output: out.pointer, kernels: kernels.table)
            return (magnitude, nonZero)
        }
        var magnitude: UInt32 = 0
        var nonZero = 0
        for chunk in chunks {
            guard let chunk, chunk.magnitude == 0 || magnitude == 0 || chunk.magnitude == magnitude else { return nil }
            if chunk.magnitude != 0 { magnitude = chunk.magnitude }
            nonZero += chunk.nonZero
        }
        guard magnitude != 0 else { return nil }
        let bits: UInt32
        switch type {
        case .float32: bits = magnitude
        case .float16: bits = Float32Bits.fromFloat16(UInt16(truncatingIfNeeded: magnitude))
        case .bfloat16: bits = Float32Bits.fromBFloat16(UInt16(truncatingIfNeeded: magnitude))
        }
        var sum = ExactAbsSum()
        sum.add(bits: bits, times: nonZero)
        let scale = sum.roundedMean(count: count) ?? 1.0  // count > 0: TensorInput rejects empty tensors
        return (QuantizationSummary(scale: scale, elementCount: count, zeroCount: count - nonZero), Float(bitPattern: bits))
    }

    // MARK: - α

    /// α for `input`: certified fast float64 sum, or the exact binned sum near a rounding boundary.
    /// Throws `QuantizationError.nonFiniteValue` naming the first NaN/Inf element.
    public func absMean(_ input: TensorInput) throws -> Float {
        let count = input.elementCount
        let estimate = absSumEstimate(input)
        if estimate.hasNonFinite, let error = input.firstNonFiniteError() {
            throw error
        }
        switch AbsMeanCertifier.certify(estimate, count: count) {
        case .certified(let scale):
            return scale
        case .needsExactSum:
            return exactAbsMean(input)
        }
    }

    /// The fast pass of `absMean`: the float64 sum of |w| over every chunk (chunk partials added in chunk
    /// order) with its summation-tree depth, as `AbsMeanCertifier` takes it. Non-finite input gives a
    /// non-finite sum. Exposed for tests that check ordinary data certifies on this fast path.
    @_spi(Testing)
    public func absSumEstimate(_ input: TensorInput) -> AbsSumEstimate {
        let count = input.elementCount
        let kernels = SendableKernels(instructionSet.kernels)
        let partials = perChunkResults(count: count, chunkSize: chunkSize, initial: 0.0) { range in
            CPUKernels.absSum(input, range: range, kernels: kernels.table)
        }
        var total = 0.0
        for p in partials { total += p }
        let perChunkDepth = Swift.min(chunkSize, count) / CPUKernels.lanes + CPUKernels.depthSlack
        return AbsSumEstimate(floatingSum: total, additionDepth: perChunkDepth + partials.count)
    }

    /// α by exact integer accumulation (slow path; also used by other backends' host fallback).
    /// Input must be finite.
    public func exactAbsMean(_ input: TensorInput) -> Float {
        let count = input.elementCount
        let workers = Swift.min(threadCount, chunkCount(count))
        let box = SendableArrayBox([ExactAbsSum](repeating: ExactAbsSum(), count: workers))
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            var sum = ExactAbsSum()
            var chunk = worker
            while chunk < chunkCount(count) {
                for i in chunkRange(chunk, count: count) { sum.add(bits: input.float32Bits(at: i)) }
                chunk += workers
            }
            box.set(worker, sum)
        }
        var total = ExactAbsSum()
        for s in box.values { total.merge(s) }
        return total.roundedMean(count: count) ?? 1.0  // count > 0: TensorInput rejects empty tensors
    }

    // MARK: - trits

    private func ternarize(_ input: TensorInput, threshold: TritThreshold, layout: TritLayout,
                           output: UnsafeMutableRawBufferPointer) -> Int {
        let count = input.elementCount
        guard let outputBase = output.baseAddress else { return count }
        let out = SendableRawPointer(outputBase)
        let kernels = SendableKernels(instructionSet.kernels)
        let bits = CPUKernels.threshold(threshold, for: input.elementType)
        let nonZero = perChunkResults(count: count, chunkSize: chunkSize, initial: 0) { range in
            CPUKernels.ternarize(input, range: range, threshold: bits, layout: layout, output: out.pointer,
                                 kernels: kernels.table)
        }
        return count - nonZero.reduce(0, +)
    }

    // MARK: - scheduling

    /// Number of chunks of `count` elements (no overflow for any count).
    func chunkCount(_ count: Int, chunkSize: Int? = nil) -> Int {
        let size = chunkSize ?? self.chunkSize
        return count / size + (count % size == 0 ? 0 : 1)
    }

    /// Element range of `chunk` (no overflow for any count).
    func chunkRange(_ chunk: Int, count: Int, chunkSize: Int? = nil) -> Range<Int> {
        let size = chunkSize ?? self.chunkSize
        let start = chunk * size  // ≤ count: chunk < chunkCount(count)
        return start..<(start + Swift.min(size, count - start))
    }

    /// Runs `body` for every chunk of `chunkSize` elements, spread over `threadCount` workers (chunk k on
    /// worker k mod workers), and returns the per-chunk results in chunk order.
    func perChunkResults<T>(count: Int, chunkSize: Int, initial: T, _ body: @Sendable (Range<Int>) -> T) -> [T] {
        let chunks = chunkCount(count, chunkSize: chunkSize)
        var results = [T](repeating: initial, count: chunks)
        let workers = Swift.min(threadCount, chunks)
        results.withUnsafeMutableBufferPointer { buffer in
            guard let base = buffer.baseAddress else { return }
            let out = SendablePointer(base)
            withoutActuallyEscaping(body) { body in
                let work: @Sendable (Int) -> Void = { worker in
                    var chunk = worker
                    while chunk < chunks {
                        out.pointer[chunk] = body(chunkRange(chunk, count: count, chunkSize: chunkSize))
                        chunk += workers
                    }
                }
                if workers == 1 {
                    work(0)
                } else {
                    DispatchQueue.concurrentPerform(iterations: workers, execute: work)
                }
            }
        }
        return results
    }
}

/// A pointer handed to Dispatch workers that write disjoint elements.
struct SendablePointer<T>: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<T>
    init(_ pointer: UnsafeMutablePointer<T>) { self.pointer = pointer }
}

/// The immutable C kernel table, shared by Dispatch workers.
struct SendableKernels: @unchecked Sendable {
    let table: UnsafePointer<tq_kernel_table>
    init(_ table: UnsafePointer<tq_kernel_table>) { self.table = table }
}

/// A raw pointer handed to Dispatch workers that write disjoint bytes.
struct SendableRawPointer: @unchecked Sendable {
    let pointer: UnsafeMutableRawPointer
    init(_ pointer: UnsafeMutableRawPointer) { self.pointer = pointer }
}

/// A read-only raw pointer handed to Dispatch workers (also used by the bench module's memory probes).
package struct SendableConstRawPointer: @unchecked Sendable {
    package let pointer: UnsafeRawPointer?
    package init(_ pointer: UnsafeRawPointer?) { self.pointer = pointer }
}

/// An optional writable raw pointer handed to Dispatch workers (the bench module's copy probe).
package struct SendableMutableRawPointerOptional: @unchecked Sendable {
    package let pointer: UnsafeMutableRawPointer?
    package init(_ pointer: UnsafeMutableRawPointer?) { self.pointer = pointer }
}

/// Per-worker results written from Dispatch workers (each index written by exactly one worker).
package final class SendableArrayBox<T>: @unchecked Sendable {
    package private(set) var values: [T]
    private let lock = NSLock()
    package init(_ values: [T]) { self.values = values }
    package func set(_ index: Int, _ value: T) {
        lock.lock()
        values[index] = value
        lock.unlock()
    }

    package func add(_ index: Int, _ value: T) where T: FixedWidthInteger {
        lock.lock()
        values[index] &+= value
        lock.unlock()
    }
}
