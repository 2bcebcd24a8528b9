import BigInt
import CTernaryKernels
import Foundation
import Testing
import TernaryQuant
import TernaryQuantTestSupport
@testable import TernaryQuantCore
@testable import TernaryQuantFormats
@testable import TernaryQuantPipeline

/// The first differing byte offset (or the shorter length), nil when equal: a failure names an offset
/// instead of printing megabytes.
func firstDifference(_ a: [UInt8]?, _ b: [UInt8]) -> Int? {
    guard let a else { return -1 }
    if let k = (0..<min(a.count, b.count)).first(where: { a[$0] != b[$0] }) { return k }
    return a.count == b.count ? nil : min(a.count, b.count)
}

/// The job's kernel copies of kept tensors (`AtomicFile.copy(from:range:)`, `sendfile` on Linux) and the
/// output's early write-back give the same bytes as writing from memory; a copy from an input that shrank
/// is an error naming it.
@Suite("Pipeline: kernel copy of kept tensors and early write-back")
struct PipelineKernelCopyTests {
    /// Deterministic bytes that differ at every offset (a shifted copy never matches).
    static func pattern(_ count: Int, salt: UInt64) -> [UInt8] {
        var rng = SplitMix64(seed: salt)
        return (0..<count).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
    }

    @Test func copiedRangesEqualTheWrittenBytes() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Larger than the write-back chunk and the 1 MiB buffer, at unaligned offsets on both sides.
        let source = Self.pattern(AtomicFile.writebackChunk + 3 * (1 << 20) + 4097, salt: 1)
        try Data(source).write(to: URL(fileURLWithPath: dir + "/in.bin"))
        let storage = try ByteStorage(mapping: dir + "/in.bin")
        let big = 13..<(source.count - 7), small = 5..<1000
        let file = try AtomicFile(path: dir + "/out.bin")
        try file.write([1, 2, 3])
        try file.copy(from: storage, range: big)
        try file.copy(from: storage, range: small)
        try file.write([4])
        try file.copy(from: storage, range: 0..<source.count)
        #expect(file.bytesWritten == 3 + big.count + small.count + 1 + source.count)
        try file.commit()
        let expected = [1, 2, 3] + source[big] + source[small] + [4] + source
        #expect(firstDifference(FileManager.default.contents(atPath: dir + "/out.bin").map([UInt8].init), expected) == nil)
        // The in-memory sink copies the same bytes.
        let memory = MemorySink()
        try memory.copy(from: storage, range: big)
        #expect(firstDifference(memory.bytes, Array(source[big])) == nil)
    }

    @Test func copyFromAnInputThatShrankNamesItAndLeavesNothing() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let source = Self.pattern(4 << 20, salt: 2)
        try Data(source).write(to: URL(fileURLWithPath: dir + "/in.bin"))
        let storage = try ByteStorage(mapping: dir + "/in.bin")
        #expect(truncate(dir + "/in.bin", off_t(1 << 20)) == 0)
        let file = try AtomicFile(path: dir + "/out.bin")
        #expect {
            try file.copy(from: storage, range: 100..<source.count)
        } throws: { error in
            String(describing: error).contains(dir + "/in.bin") && String(describing: error).contains("shrank")
        }
        file.abort()
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["in.bin"])
    }

    /// A checkpoint on disk whose kept tensors (embedding, head: 2 MiB each, over the 1 MiB threshold
    /// for kernel copies) sit at unaligned offsets between quantized ones.
    func writeModel(_ dir: String) throws -> String {
        let shapes: [(String, [Int])] = [("model.embed_tokens.weight", [1024, 512]), ("model.layers.0.mlp.up_proj.weight", [512, 256]),
                                         ("model.norm.weight", [3]), ("model.layers.0.mlp.down_proj.weight", [256, 512]),
                                         ("lm_head.weight", [1024, 512])]
        let entries = shapes.map { SafetensorsWriter.Entry(name: $0.0, dtype: .f32, shape: $0.1) }
        let sink = MemorySink()
        let writer = try SafetensorsWriter(sink: sink, entries: entries, metadata: ["note": "x"])
        var rng = SplitMix64(seed: 3)
        for (_, shape) in shapes {
            let values = (0..<shape.reduce(1, *)).map { _ in Float(Int(rng.next() % 2001) - 1000) * 1e-4 }
            try writer.write(bytes: SafetensorsBytes.floats(values))
        }
        try writer.finish()
        let path = dir + "/model.safetensors"
        try Data(sink.bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    @Test(arguments: [OutputFormat.gguf, .safetensors])
    func jobFilesEqualTheInMemoryOutput(format: OutputFormat) throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = try writeModel(dir)
        let job = CheckpointQuantizer(backend: CPUBackend())
        let options = QuantizationOptions(format: format)
        let output = dir + "/out." + format.rawValue
        let report = try job.run(try CheckpointSources.open(path: path), outputPath: output, options: options)
        let memory = MemorySink()
        let inMemory = try job.write(try CheckpointSources.open(path: path), to: memory, outputName: output, options: options)
        #expect(report.layers.filter { $0.action == .kept }.count == 3)
        #expect(firstDifference(FileManager.default.contents(atPath: output).map([UInt8].init), memory.bytes) == nil)
        #expect(report.layers.map(\.mse) == inMemory.layers.map(\.mse))
    }
}

/// The job's look-ahead (`TensorLookAhead`): tensors in plan order, bounded run-ahead, errors at their tensor.
@Suite("Pipeline: look-ahead")
struct PipelineLookAheadTests {
    /// Consumer progress, shared with the look-ahead's thread.
    final class Progress: @unchecked Sendable {
        let lock = NSLock()
        var taken = -1
        var violations: [String] = []
        var prepared: [Int] = []
    }

    func plans(_ count: Int) throws -> [TensorPlan] {
        let storage = ByteStorage(copying: [UInt8](repeating: 0, count: 4096 * count), name: "mem")
        return (0..<count).map { i in
            let t = SourceTensor(name: "t\(i)", dtype: .safetensors(.f32), shape: [1024], storage: storage, range: (4096 * i)..<(4096 * (i + 1)))
            let action: TensorAction = i % 5 == 4 ? .skipped : (i % 3 == 2 ? .kept : .quantized)
            return TensorPlan(tensor: t, action: action, reason: "test", storage: "-")
        }
    }

    @Test func preparesInOrderAndStaysWithinItsBudget() throws {
        let plans = try plans(40)
        let progress = Progress()
        // A budget of one quantized tensor's trits (256 bytes) and three tensors' input: at most one
        // prepared tensor waits unconsumed while the next is prepared. `taken` = the tensor being taken
        // (it may already be consumed), so tensors after it are certainly unconsumed.
        let lookAhead = TensorLookAhead(plans: plans, packedBudget: 256, inputBudget: 3 * 4096) { plan in
            let index = Int(plan.tensor.name.dropFirst()) ?? -1
            progress.lock.withLock {
                let consumed = progress.taken
                let waiting = plans.indices.filter { $0 < index && $0 > consumed && plans[$0].action != .skipped }
                // Unconsumed, already prepared tensors while this one starts: within the budget, or just one.
                let packed = waiting.reduce(0) { $0 + TensorLookAhead.packedBytes(plans[$1]) }
                if waiting.count > 1 && (packed + TensorLookAhead.packedBytes(plan) > 256 || 4096 * (waiting.count + 1) > 3 * 4096) {
                    progress.violations.append("t\(index) started with \(waiting) unconsumed")
                }
                progress.prepared.append(index)
            }
            return PreparedTensor(quantized: nil, firstNonFinite: index)
        }
        defer { lookAhead.cancel() }
        for (i, p) in plans.enumerated() {
            progress.lock.withLock { progress.taken = i }
            if p.action != .skipped {
                #expect(try lookAhead.take(i).firstNonFinite == i)
            }
        }
        lookAhead.cancel()
        #expect(progress.violations.isEmpty, "\(progress.violations)")
        #expect(progress.prepared == plans.indices.filter { plans[$0].action != .skipped })
    }

    struct Boom: Error {}

    @Test func anErrorReachesItsTensorAndStopsTheLookAhead() throws {
        let plans = try plans(12)
        let progress = Progress()
        let lookAhead = TensorLookAhead(plans: plans) { plan in
            let index = Int(plan.tensor.name.dropFirst()) ?? -1
            progress.lock.withLock { progress.prepared.append(index) }
            if index == 6 { throw Boom() }
            return PreparedTensor(quantized: nil, firstNonFinite: index)
        }
        defer { lookAhead.cancel() }
        for i in [0, 1, 2, 3, 5] {
            #expect(try lookAhead.take(i).firstNonFinite == i)
        }
        #expect(throws: Boom.self) { try lookAhead.take(6) }
        lookAhead.cancel()
        #expect(progress.prepared == [0, 1, 2, 3, 5, 6])
    }
}

/// The report's MSE: the same bits as a slow reference of the documented definition (per chunk of 2^16:
/// Σw² in 32 lanes by element index mod 32 merged pairwise plus the chunk's tail, and the exact sum of the
/// non-zero trits' magnitudes rounded once; then ((Q − 2s·P) + s²·N) / n), from the separate pass and from
/// the trit pass, in every instruction set.
@Suite("Pipeline: MSE order")
struct PipelineMSETests {
    /// The float64 nearest to `units` · 2^-149 (ties to even), by integer rounding of the big sum.
    static func nearestDouble(units: BigInt) -> Double {
        let bits = units.bitWidth
        guard units > 0 else { return 0 }
        let shift = max(bits - 53, 0)
        var mantissa = units >> shift
        if shift > 0 {
            let rest = units - (mantissa << shift)
            let half = BigInt(1) << (shift - 1)
            if rest > half || (rest == half && mantissa % 2 == 1) { mantissa += 1 }
        }
        return Double(UInt64(mantissa)) * pow(2.0, Double(shift - 149))
    }

    static func reference(_ w: [Double], _ t: [Int], alpha: Double) -> Double {
        var squares = 0.0, magnitudes = 0.0
        var nonzero = 0
        var lo = 0
        while lo < w.count {
            let hi = min(w.count, lo + 65536)
            var lanes = [Double](repeating: 0, count: 32)
            var k = lo
            while k + 32 <= hi {
                for j in 0..<32 { lanes[j] += w[k + j] * w[k + j] }
                k += 32
            }
            var width = 16
            while width >= 1 {
                for j in 0..<width { lanes[j] += lanes[j + width] }
                width /= 2
            }
            var sum = lanes[0]
            for i in k..<hi { sum += w[i] * w[i] }
            squares += sum
            var exact = BigInt(0)
            for i in lo..<hi where t[i] != 0 {
                exact += ReferenceQuantizer.units(Float(w[i]))
                nonzero += 1
            }
            magnitudes += nearestDouble(units: exact)
            lo = hi
        }
        guard !w.isEmpty else { return 0 }
        let value = ((squares - (2 * alpha) * magnitudes) + (alpha * alpha) * Double(nonzero)) / Double(w.count)
        return value <= 0 ? 0 : value
    }

    /// n = 2^18 (one group of four chunks, exact division by n) with chunk 0 dominant, so a changed
    /// rounding of chunk 0's sum shows in the result; then two groups, a partial one and a tail.
    @Test(arguments: [(ElementType.float32, 4 * 65536), (.float16, 4 * 65536), (.bfloat16, 4 * 65536),
                      (.float32, 9 * 65536 + 13), (.float16, 9 * 65536 + 13), (.bfloat16, 9 * 65536 + 13),
                      (.float32, 1), (.float16, 3), (.bfloat16, 7), (.float32, 65536 + 2), (.float16, 5 * 65536)])
    func sameBitsAsTheReferenceOrder(type: ElementType, n: Int) throws {
        var rng = SplitMix64(seed: 11)
        var raw: [UInt8] = []
        var widened: [Double] = []
        // Lanes of very different magnitudes, so that another grouping of the sums rounds differently.
        let laneScale: [Double] = [0.02, 3e-5, 40, 1e-3, 0.5, 7e-4, 3]
        for k in 0..<n {
            let x = Float(rng.nextGaussian() * laneScale[k % 7] * (k < 65536 || n % 65536 != 0 ? 1 : 1e-4))
            switch type {
            case .float32:
                withUnsafeBytes(of: x.bitPattern.littleEndian) { raw.append(contentsOf: $0) }
                widened.append(Double(x))
            case .float16:
                let h = HalfConversion.float16Bits(x)
                withUnsafeBytes(of: h.littleEndian) { raw.append(contentsOf: $0) }
                widened.append(Double(Float(bitPattern: Float32Bits.fromFloat16(h))))
            case .bfloat16:
                let b = UInt16(x.bitPattern >> 16)
                withUnsafeBytes(of: b.littleEndian) { raw.append(contentsOf: $0) }
                widened.append(Double(Float(bitPattern: UInt32(b) << 16)))
            }
        }
        let input = try TensorInput(name: "w", shape: [n], elementType: type, copying: raw)
        let q = try Quantizer(backend: CPUBackend()).quantize(input)
        let trits = try TritPacking.unpack(q.data, count: n).map(\.rawValue).map(Int.init)
        for scale in [q.scale, ElementConversion.stored(q.scale, as: .float16), 0.75] {
            let expected = Self.reference(widened, trits, alpha: Double(scale)).bitPattern
            let mse = try q.data.withUnsafeBytes { try CheckpointQuantizer.meanSquaredError(input, packed: $0, scale: scale) }
            #expect(mse.bitPattern == expected, "\(type) scale \(scale)")
            for set in CPUInstructionSet.lowerAlternatives {
                let lower = try q.data.withUnsafeBytes { try MeanSquaredError.of(input, packed: $0, scale: scale, instructionSet: set) }
                #expect(lower.bitPattern == expected, "\(type) scale \(scale) \(set)")
            }
            // Summed inside the trit pass: the same trits and the same bits, for any work split.
            for set in [CPUInstructionSet.automatic] + CPUInstructionSet.lowerAlternatives {
                for backend in [CPUBackend(threadCount: 1, instructionSet: set), CPUBackend(chunkSize: 3 * 65536 + 64, instructionSet: set)] {
                    var packed = [UInt8](repeating: 0xFF, count: q.data.count)
                    let fused = try packed.withUnsafeMutableBytes { try backend.quantizePacked(input, into: $0) { _ in scale } }
                    #expect(packed == q.data, "\(type) \(backend.deviceDescription)")
                    #expect(fused.summary == q.summary)
                    #expect(fused.errorScale == scale)
                    #expect(fused.meanSquaredError.bitPattern == expected, "\(type) scale \(scale) fused \(backend.deviceDescription) chunk \(backend.chunkSize)")
                }
            }
        }
    }

    /// Non-zero magnitudes spanning more binades than float64 adds exactly (2^40 next to values near 1): each
    /// chunk's magnitude sum is the exact one rounded once, not a float64 sum in some order, on every table,
    /// and the MSE follows the reference.
    @Test func magnitudesAcrossManyBinadesAreSummedExactly() throws {
        let n = 65536 + 100
        var values: [Float] = (0..<n).map { 1 + Float($0 % 1000) * 0x1p-23 }
        values[0] = 0x1p40
        values[65536 + 3] = 0x1p40
        let input = try TensorInput(name: "w", shape: [n], floats: values)
        let trits = (0..<n).map { $0 % 7 == 3 ? 0 : 1 }
        var packed = [UInt8](repeating: 0, count: (n + 3) / 4)
        for k in 0..<n where trits[k] != 0 { packed[k / 4] |= 1 << UInt8(2 * (k % 4)) }
        var exact = [BigInt(0), BigInt(0)]
        for k in 0..<n where trits[k] != 0 { exact[k / 65536] += ReferenceQuantizer.units(values[k]) }
        let expectedSums = exact.map { Self.nearestDouble(units: $0) }
        let expected = Self.reference(values.map(Double.init), trits, alpha: 1.5).bitPattern
        for set in [CPUInstructionSet.automatic] + CPUInstructionSet.lowerAlternatives {
            // The table's own float64 sum of chunk 0 is not exact (the data defeats it) ...
            var raw = tq_moments()
            try values.withUnsafeBytes { source in
                try packed.withUnsafeBytes { codes in
                    let base = try #require(codes.baseAddress).assumingMemoryBound(to: UInt8.self)
                    set.kernels.pointee.chunk_moments(source.baseAddress, 0, base, n, 0, 1, &raw)
                }
            }
            #expect(raw.magnitudes != expectedSums[0], "\(set): the data must defeat a float64 sum")
            // ... but the moments and the MSE use the exact sums.
            let moments = try packed.withUnsafeBytes { try MeanSquaredError.moments(input, packed: $0, instructionSet: set) }
            #expect(moments.map(\.magnitudes) == expectedSums, "\(set)")
            let mse = try packed.withUnsafeBytes { try MeanSquaredError.of(input, packed: $0, scale: 1.5, instructionSet: set) }
            #expect(mse.bitPattern == expected, "\(set)")
        }
    }

    /// The reserved code 11 counts as t = 0 in every loop (in the lanes and in the tail), like 00.
    @Test func reservedCodeCountsAsZero() throws {
        let n = 65536 + 6
        let values: [Float] = (0..<n).map { Float(($0 * 7919) % 401 - 200) / 97 }
        let input = try TensorInput(name: "w", shape: [n], floats: values)
        var packed = [UInt8](repeating: 0, count: (n + 3) / 4)
        for k in 0..<n where k % 3 == 0 { packed[k / 4] |= 3 << UInt8(2 * (k % 4)) }
        let expected = Self.reference(values.map(Double.init), [Int](repeating: 0, count: n), alpha: 0.5).bitPattern
        for set in [CPUInstructionSet.automatic] + CPUInstructionSet.lowerAlternatives {
            let mse = try packed.withUnsafeBytes { try MeanSquaredError.of(input, packed: $0, scale: 0.5, instructionSet: set) }
            #expect(mse.bitPattern == expected, "\(set)")
        }
    }

    /// An already-ternary tensor stored at its own magnitude skips the moments (the job reports +0, its
    /// exact MSE): `MeanSquaredError.of` gives +0 or a value within its documented bound (2^-40 · mean(w²)),
    /// with ±0 elements, both signs, a subnormal magnitude and the largest finite one, in every element
    /// type, for the .tern/safetensors scale and for GGUF's (f16-exact magnitudes keep their scale; others
    /// are stored as F32 at the same scale).
    @Test(arguments: [ElementType.float32, .float16, .bfloat16])
    func alreadyTernaryErrorIsPositiveZero(type: ElementType) throws {
        let magnitudes: [UInt32] = type == .float32 ? [0x3D40_0000, 0x0000_0003, 0x7F7F_FFFF, 0x3DCC_CCCD]
            : (type == .float16 ? [0x2A00, 0x0003, 0x7BFF] : [0x3D40, 0x0003, 0x7F7F])
        let sign: UInt32 = type == .float32 ? 0x8000_0000 : 0x8000
        let n = 2 * 65536 + 29
        for magnitude in magnitudes {
            var raw: [UInt8] = []
            for k in 0..<n {
                let v: UInt32 = k % 5 == 0 ? 0 : (k % 5 == 1 ? sign : (k % 2 == 0 ? magnitude : magnitude | sign))
                for b in 0..<type.byteWidth { raw.append(UInt8(truncatingIfNeeded: v >> UInt32(8 * b))) }
            }
            let storage = ByteStorage(copying: raw, name: "mem")
            let dtype: SourceDType = .safetensors(type == .float32 ? .f32 : (type == .float16 ? .f16 : .bf16))
            let tensor = SourceTensor(name: "w", dtype: dtype, shape: [n], storage: storage, range: 0..<raw.count)
            let job = CheckpointQuantizer(backend: CPUBackend())
            for format in [OutputFormat.tern, .gguf] {
                let plan = TensorPlan(tensor: tensor, action: .quantized, reason: "test", storage: "-")
                let prepared = try job.prepare(plan, storedScale: { CheckpointWriters.type(for: format).storedScale(plan, facts: $0, options: QuantizationOptions(format: format)) },
                                               source: SafetensorsSource(try TinyModel.checkpoint()), buffers: TritBufferPool())
                let q = try #require(prepared.quantized)
                #expect(q.data.facts.alreadyTernary, "\(type) \(magnitude)")
                let reference = try q.data.packed.withUnsafeBytes { try MeanSquaredError.of(q.data.input, packed: $0, scale: q.mseScale) }
                let a = Double(q.mseScale)
                let meanSquare = a * a * Double(n - n / 5 * 2) / Double(n)  // 3 of every 5 elements are ±a
                #expect(q.mse.bitPattern == 0, "\(type) \(magnitude) \(format): \(q.mse)")
                #expect(reference >= 0 && reference <= 0x1p-40 * meanSquare, "\(type) \(magnitude) \(format): \(reference)")
            }
        }
    }

    @Test func shortPackedDataIsAnError() throws {
        let input = try TensorInput(name: "w", shape: [9], floats: [Float](repeating: 1, count: 9))
        let packed = [UInt8](repeating: 0, count: 2)
        #expect(throws: QuantizationError.packedDataTooShort(expectedBytes: 3, actualBytes: 2)) {
            _ = try packed.withUnsafeBytes { try MeanSquaredError.of(input, packed: $0, scale: 1) }
        }
    }
}

/// The `.tern` writer's check of packed trits (eight bytes at a time) against a trit-by-trit reference.
@Suite("Pipeline: .tern packed-code check")
struct PipelineTernCodeCheckTests {
    static func reference(_ packed: [UInt8], count: Int) -> Int? {
        for k in 0..<count where (packed[k / 4] >> UInt8(2 * (k % 4))) & 3 == 3 { return k }
        if count % 4 != 0, packed[count / 4] >> UInt8(2 * (count % 4)) != 0 { return count }
        return nil
    }

    @Test func firstInvalidCodeMatchesTheReference() {
        var rng = SplitMix64(seed: 5)
        for round in 0..<3000 {
            let count = Int(rng.next() % 300)
            let bytes = (count + 3) / 4
            // Valid codes 00, 01, 10 only, padding 00.
            var packed = (0..<bytes).map { _ in UInt8(0) }
            for k in 0..<count { packed[k / 4] |= UInt8(rng.next() % 3) << UInt8(2 * (k % 4)) }
            switch round % 3 {
            case 0 where count > 0:  // one or two reserved codes
                for _ in 0..<(1 + Int(rng.next() % 2)) {
                    let k = Int(rng.next() % UInt64(count))
                    packed[k / 4] |= 3 << UInt8(2 * (k % 4))
                }
            case 1 where count % 4 != 0:  // a padding bit
                packed[count / 4] |= 1 << UInt8(2 * (count % 4) + Int(rng.next() % UInt64(8 - 2 * (count % 4))))
            default:
                break
            }
            let got = packed.withUnsafeBytes { TernFormat.firstInvalidCode($0, count: count) }
            #expect(got == Self.reference(packed, count: count), "round \(round): count \(count)")
        }
    }
}

/// The converting writers (F16/F32/BF16 fallback values s·t, BF16 → F32 widening), converted on every core
/// in blocks, against element-by-element references, over more than two blocks with a ragged end.
@Suite("Pipeline: parallel element conversion")
struct PipelineConversionTests {
    static let count = 2 * ElementConversion.parts * ElementConversion.chunkElements + 77


    @Test(arguments: [ElementType.float32, .float16, .bfloat16])
    func ternaryValuesMatchTheReference(type: ElementType) throws {
        var rng = SplitMix64(seed: 9)
        var packed = [UInt8](repeating: 0, count: (Self.count + 3) / 4)
        var trits: [UInt8] = []
        for k in 0..<Self.count {
            let code = UInt8(rng.next() % 3)
            trits.append(code)
            packed[k / 4] |= code << UInt8(2 * (k % 4))
        }
        let scale: Float = 0.0123
        let sink = MemorySink()
        let written = try packed.withUnsafeBytes { try ElementConversion.writeTernary(packed: $0, count: Self.count, scale: scale, as: type, to: sink) }
        var expected: [UInt8] = []
        let s = ElementConversion.stored(scale, as: type)
        for code in trits {
            let v: Float = code == 1 ? s : (code == 2 ? -s : 0)
            switch type {
            case .float32: withUnsafeBytes(of: v.bitPattern.littleEndian) { expected.append(contentsOf: $0) }
            case .float16: withUnsafeBytes(of: HalfConversion.float16Bits(v).littleEndian) { expected.append(contentsOf: $0) }
            case .bfloat16: withUnsafeBytes(of: UInt16(v.bitPattern >> 16).littleEndian) { expected.append(contentsOf: $0) }
            }
        }
        #expect(written == expected.count)
        #expect(firstDifference(sink.bytes, expected) == nil)
    }

    @Test func bf16WideningMatchesTheReference() throws {
        var rng = SplitMix64(seed: 10)
        let halves = (0..<Self.count).map { _ in UInt16(truncatingIfNeeded: rng.next()) }
        var raw: [UInt8] = []
        var expected: [UInt8] = []
        for h in halves {
            withUnsafeBytes(of: h.littleEndian) { raw.append(contentsOf: $0) }
            withUnsafeBytes(of: (UInt32(h) << 16).littleEndian) { expected.append(contentsOf: $0) }
        }
        let sink = MemorySink()
        try raw.withUnsafeBytes { try ElementConversion.writeWidenedBF16($0, to: sink) }
        #expect(firstDifference(sink.bytes, expected) == nil)
    }
}
