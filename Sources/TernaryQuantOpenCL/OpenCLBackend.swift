import TernaryQuantCore
import Foundation
@_spi(Testing) import SwiftOpenCL

/// The OpenCL backend on one device: byte-identical to `CPUBackend` (same α bits, trits and zero count).
///
/// - One context and two in-order queues (transfer and compute) per backend; kernels are built once, in
///   `init`, and reused. Device buffers are kept and reused across tensors (grown when needed).
/// - Tensors are processed in chunks of `chunkElements` (clamped to the device's max allocation); chunk
///   boundaries are multiples of 256 elements, so packed bytes never straddle chunks and the result is
///   identical to one-shot processing. Two buffer slots alternate: chunk k+1 is uploaded (transfer queue,
///   non-blocking) while chunk k is processed (compute queue), ordered by events.
/// - α, fast path (devices with `cl_khr_fp64`): the device produces per-work-group partial float64 sums of
///   normal magnitudes (exact per term), exact integer sums of subnormal mantissas and a non-finite flag; the
///   host certifies α with `AbsMeanCertifier` from a rigorous tree-depth bound (the host merges the group
///   partials of every launch, piece or chunk, sequentially, and counts them all).
/// - α, exact path (devices without `cl_khr_fp64`, and any tensor the certifier cannot decide): the device
///   bins the magnitudes' integer mantissas by exponent (`exactsum_*` in Kernels/absmean.cl, 64-bit integer
///   bins, order-free); the host adds the per-group bins exactly (`ExactAbsSum`) and rounds the mean once.
///   The host never makes a pass over the tensor for α.
/// - A tensor that fits one chunk is uploaded once, into one resident buffer, in pieces of at least
///   `pieceElements` (at most `maxPieces` pieces, boundaries at multiples of 256 elements; a tensor up to
///   `pieceElements` is one piece): each piece is a non-blocking write on the transfer queue, and the α
///   kernel for that piece runs on the compute queue waiting only on that piece's upload, so piece k is
///   reduced while piece k+1 crosses the bus. The trit kernel then runs
///   once over the whole resident buffer (no re-upload). Larger tensors stream chunk by chunk through the
///   two slots and are uploaded twice (α pass, trit pass).
///   Devices without `cl_khr_fp64` run the exact pass in place of the float64 one (same pieces, same residency).
/// - Trits: integer comparison with `TritThreshold.magnitudeBits`; no float arithmetic on the device.
///
/// Thread-safe: concurrent `quantize` calls on one backend are serialized by a lock (use
/// `OpenCLDeviceGroup` to spread calls across devices).
public final class OpenCLBackend: QuantizationBackend, @unchecked Sendable {
    /// Default chunk: 2^30 elements, clamped per device (max allocation / 4 bytes, global memory / 16), so
    /// most tensors are one chunk and cross the bus once (in pieces, see `pieceElements`). Buffers are sized to
    /// the tensors actually seen.
    public static let defaultChunkElements = 1 << 30
    /// Default work-group size (capped by what the device and kernels accept).
    public static let defaultWorkGroupSize = 256
    /// Default minimum upload piece of a single-chunk tensor: 4 Mi elements (16 MiB of F32), large enough
    /// that per-command overhead is small next to the transfer; smaller tensors go up in one piece.
    public static let defaultPieceElements = 1 << 22
    /// At most this many pieces per single-chunk tensor (pieces grow beyond `pieceElements` to respect it).
    public static let maxPieces = 16

    /// The device.
    public let device: CLDevice
    /// The device's properties, queried once.
    public let info: CLDeviceInfo
    /// Elements per chunk actually used (a multiple of 256).
    public let chunkElements: Int
    /// Work-group size actually used (≥ 1; any size, not only powers of two).
    public let workGroupSize: Int
    /// Minimum upload piece of a single-chunk tensor actually used (a multiple of 256 elements).
    public let pieceElements: Int
    /// Work-groups per kernel launch at most.
    public let maxGroups: Int
    /// Whether the float64 fast α pass runs (`cl_khr_fp64` present); otherwise every α comes from the exact
    /// integer pass, also on the device.
    public let usesFloat64Sums: Bool

    package let context: CLContext
    package let compute: CLCommandQueue
    package let transfer: CLCommandQueue
    /// The trit downloads' own queue, so a download waiting on its kernel never holds up the next upload.
    package let download: CLCommandQueue
    package let absmeanKernels: [ElementType: CLKernel]
    package let exactKernels: [ElementType: CLKernel]
    package let packedKernels: [ElementType: CLKernel]
    package let int8Kernels: [ElementType: CLKernel]

    package let lock = NSLock()
    private var slots: [Slot] = []
    /// Pinned upload staging: two `CL_MEM_ALLOC_HOST_PTR` buffers of `stagingBytes`, used alternately (lock held).
    private var uploadStaging: [Staging] = []
    private var nextStaging = 0
    /// Bytes per upload staging buffer (a multiple of 4 KiB, at least 4 KiB; at most 4 bytes per chunk element in
    /// use): the largest single upload copy.
    public let stagingBytes: Int
    /// Default upload staging buffer: 32 MiB (two of them per backend, in pinned host memory).
    public static let defaultStagingBytes = 32 << 20
    /// Chunk size in use (lock held): `chunkElements`, halved after each out-of-memory failure.
    private var activeChunkElements: Int
    /// Per-launch tag the kernels echo next to each work-group's result (`tag ^ group`): a read-back that did
    /// not land, or returned an earlier launch's buffer, fails the check (lock held; high bit always set).
    private var launchCounter: UInt32 = 0

    func nextTag() -> UInt32 {
        launchCounter = launchCounter &+ 1
        return 0x8000_0000 | (launchCounter & 0x7FFF_FFFF)
    }

    /// A pinned host buffer (`CL_MEM_ALLOC_HOST_PTR`) for uploads, and the last copy out of it.
    final class Staging {
        let buffer: CLBuffer
        var lastUse: CLEvent?
        init(context: CLContext, byteCount: Int) throws(CLError) {
            buffer = try CLBuffer(context: context, byteCount: byteCount, flags: [.readOnly, .allocHostPointer])
        }
    }

    /// Device buffers for one pipeline slot, with the pinned host buffer its trits are downloaded through.
    package final class Slot {
        package var input: CLBuffer
        var output: CLBuffer
        /// Pinned host copy of `output` (`CL_MEM_ALLOC_HOST_PTR`, `elements` bytes), mapped to read the trits.
        var hostOutput: CLBuffer
        /// The last kernel reading `input` (the next upload into it waits on it).
        var inputReader: CLEvent?
        /// The last download copy out of `output` (the next trit kernel writing it waits on it).
        var outputCopy: CLEvent?
        /// The last unmap of `hostOutput` (the next copy into it waits on it).
        var hostUnmap: CLEvent?
        var sums: CLBuffer
        var subnormals: CLBuffer
        var flags: CLBuffer
        var counts: CLBuffer
        var bins: CLBuffer
        let elements: Int

        /// Allocates the buffers; with `queue`, fills `hostOutput` with `TritReadBack.poison` (blocking).
        init(context: CLContext, elements: Int, groups: Int, queue: CLCommandQueue? = nil) throws(CLError) {
            self.elements = elements
            input = try CLBuffer(context: context, byteCount: elements * 4, flags: .readOnly)
            output = try CLBuffer(context: context, byteCount: elements, flags: .readWrite)
            hostOutput = try CLBuffer(context: context, byteCount: elements, flags: [.readWrite, .allocHostPointer])
            if let queue {
                let (pointer, mapped) = try queue.unsafeEnqueueMap(hostOutput, access: .writeInvalidate, byteCount: elements)
                try mapped.wait()
                pointer.initializeMemory(as: UInt8.self, repeating: TritReadBack.poison, count: elements)
                try queue.enqueueUnmap(hostOutput, pointer: pointer).wait()
            }
            sums = try CLBuffer(context: context, byteCount: groups * 8)
            subnormals = try CLBuffer(context: context, byteCount: groups * 8)
            flags = try CLBuffer(context: context, byteCount: groups * 8)  // (flag, tag ^ group) per group
            counts = try CLBuffer(context: context, byteCount: groups * 8)  // (non-zero count, tag ^ group)
            bins = try CLBuffer(context: context, byteCount: groups * OpenCLBackend.exactBins * 8)
        }

        /// The arguments of an `absmean_*` kernel (Kernels/absmean.cl, in parameter order) over elements
        /// [base, base + count) of this slot's input, with local memory for `local` work-items.
        package func absmeanArguments(count: Int, base: Int, local: Int, tag: UInt32) -> [CLKernelArgument] {
            [.buffer(input), .uint32(UInt32(count)), .buffer(sums), .buffer(subnormals), .buffer(flags),
             .local(byteCount: local * 8), .local(byteCount: local * 8), .local(byteCount: local * 4),
             .uint32(UInt32(base)), .uint32(tag)]
        }

        /// The arguments of an `exactsum_*` kernel (Kernels/absmean.cl, in parameter order) over elements
        /// [base, base + count) of this slot's input, with local memory for `local` work-items.
        package func exactArguments(count: Int, base: Int, local: Int, tag: UInt32) -> [CLKernelArgument] {
            [.buffer(input), .uint32(UInt32(count)), .buffer(bins), .buffer(flags),
             .local(byteCount: local * 8), .local(byteCount: local * 8), .uint32(UInt32(base)), .uint32(tag)]
        }

        /// The arguments of a `ternarize_*` kernel (Kernels/ternarize.cl, in parameter order) over the first
        /// `count` elements of this slot's input.
        package func ternarizeArguments(count: Int, threshold: UInt32, local: Int, tag: UInt32) -> [CLKernelArgument] {
            [.buffer(input), .uint32(UInt32(count)), .uint32(threshold), .buffer(output), .buffer(counts),
             .local(byteCount: local * 4), .uint32(tag)]
        }
    }

    /// Creates a backend on `device`, building the kernels.
    ///
    /// - Parameters:
    ///   - chunkElements: elements per chunk (rounded up to a multiple of 256; clamped to the device's max
    ///     allocation and 2^30). Results do not depend on it.
    ///   - workGroupSize: requested work-group size (capped by the device's and the kernels' limits; any
    ///     size ≥ 1). Results do not depend on it.
    ///   - pieceElements: minimum upload piece of a single-chunk tensor (rounded up to a multiple of 256);
    ///     a tensor is split into at most `maxPieces` pieces. Results do not depend on it.
    ///   - stagingBytes: size of each of the two pinned upload staging buffers (rounded up to 4 KiB); an upload
    ///     is copied through them in parts of at most this size. Results do not depend on it.
    /// - Throws: `OpenCLBackendError.buildFailed` (with the build log) or `.deviceFailure`.
    public convenience init(device: CLDevice, chunkElements: Int = OpenCLBackend.defaultChunkElements,
                            workGroupSize: Int = OpenCLBackend.defaultWorkGroupSize,
                            pieceElements: Int = OpenCLBackend.defaultPieceElements,
                            stagingBytes: Int = OpenCLBackend.defaultStagingBytes) throws(OpenCLBackendError) {
        try self.init(device: device, chunkElements: chunkElements, workGroupSize: workGroupSize,
                      absmeanSource: OpenCLBackend.kernelSource(PackageResources.absmean_cl),
                      ternarizeSource: OpenCLBackend.kernelSource(PackageResources.ternarize_cl),
                      forceExactScale: false, pieceElements: pieceElements, stagingBytes: stagingBytes)
    }

    /// A kernel file's embedded bytes preceded by the shared widening helpers (`Kernels/widen.cl`).
    static func kernelSource(_ kernel: [UInt8]) -> String {
        String(decoding: PackageResources.widen_cl, as: UTF8.self) + "\n" + String(decoding: kernel, as: UTF8.self)
    }

    /// Designated initializer; tests pass broken sources to exercise build failures, and `forceExactScale`
    /// to run the no-fp64 path (every α from the exact device bins) on a device that has fp64.
    /// `interceptor` (tests only) sees every OpenCL call the backend makes, to inject faults.
    init(device: CLDevice, chunkElements: Int, workGroupSize: Int, absmeanSource: String,
         ternarizeSource: String, forceExactScale: Bool,
         pieceElements: Int = OpenCLBackend.defaultPieceElements,
         stagingBytes: Int = OpenCLBackend.defaultStagingBytes,
         interceptor: (any CLCallInterceptor)? = nil) throws(OpenCLBackendError) {
        self.device = device
        self.stagingBytes = (Swift.min(Swift.max(stagingBytes, 1), 1 << 30) + 4095) / 4096 * 4096
        self.pieceElements = (Swift.min(Swift.max(pieceElements, 1), 1 << 30) + 255) / 256 * 256
        let deviceName = device.name
        func wrap<T>(_ body: () throws(CLError) -> T) throws(OpenCLBackendError) -> T {
            do { return try body() } catch { throw OpenCLBackendError.deviceFailure(device: deviceName, error: error) }
        }
        let info = try wrap { () throws(CLError) in try device.info() }
        self.info = info
        let context = try wrap { () throws(CLError) in try CLContext(devices: [device], interceptor: interceptor) }
        self.context = context
        compute = try wrap { () throws(CLError) in try CLCommandQueue(context: context, device: device) }
        transfer = try wrap { () throws(CLError) in try CLCommandQueue(context: context, device: device) }
        download = try wrap { () throws(CLError) in try CLCommandQueue(context: context, device: device) }
        usesFloat64Sums = info.supportsFP64 && !forceExactScale

        let options = "-cl-std=CL1.2"
        func build(_ source: String) throws(OpenCLBackendError) -> CLProgram {
            do {
                return try CLProgram(context: context, source: source, options: options)
            } catch {
                if error.status == .buildProgramFailure || error.buildLog != nil {
                    throw OpenCLBackendError.buildFailed(device: info.name, error: error)
                }
                throw OpenCLBackendError.deviceFailure(device: info.name, error: error)
            }
        }
        let ternarizeProgram = try build(ternarizeSource)
        let absmeanProgram = try build(absmeanSource)  // absmean_* exist only where the compiler has cl_khr_fp64
        let suffixes: [(ElementType, String)] = [(.float32, "f32"), (.float16, "f16"), (.bfloat16, "bf16")]
        var absmean: [ElementType: CLKernel] = [:]
        var exact: [ElementType: CLKernel] = [:]
        var packed: [ElementType: CLKernel] = [:]
        var int8: [ElementType: CLKernel] = [:]
        for (type, suffix) in suffixes {
            if usesFloat64Sums {
                absmean[type] = try wrap { () throws(CLError) in try CLKernel(program: absmeanProgram, name: "absmean_\(suffix)") }
            }
            exact[type] = try wrap { () throws(CLError) in try CLKernel(program: absmeanProgram, name: "exactsum_\(suffix)") }
            packed[type] = try wrap { () throws(CLError) in try CLKernel(program: ternarizeProgram, name: "ternarize_packed_\(suffix)") }
            int8[type] = try wrap { () throws(CLError) in try CLKernel(program: ternarizeProgram, name: "ternarize_int8_\(suffix)") }
        }
        absmeanKernels = absmean
        exactKernels = exact
        packedKernels = packed
        int8Kernels = int8

        // Work-group size: the request, capped by the device limit and every kernel's limit (any size ≥ 1:
        // the kernels' tails and tree reductions handle groups of 1, 2, 3, … items).
        var limit = Swift.max(1, Swift.min(workGroupSize, info.maxWorkGroupSize))
        for kernel in Array(absmean.values) + Array(exact.values) + Array(packed.values) + Array(int8.values) {
            let kernelLimit = try wrap { () throws(CLError) in try kernel.maxWorkGroupSize(on: device) }
            limit = Swift.min(limit, Swift.max(1, kernelLimit))
        }
        self.workGroupSize = limit

        // Chunk: multiple of 256 elements, ≤ max allocation / 4 bytes, ≤ 2^30 (kernels index with uint).
        // Two slots of (4 + 1) bytes per element must also fit comfortably in global memory.
        let maxByAllocation = Int(clamping: info.maxAllocationBytes / 4) / 256 * 256
        let maxByMemory = Int(clamping: info.globalMemoryBytes / 16) / 256 * 256
        let requested = (Swift.max(chunkElements, 1) + 255) / 256 * 256
        self.chunkElements = Swift.max(256, Swift.min(requested, maxByAllocation, maxByMemory, 1 << 30))
        activeChunkElements = self.chunkElements
        self.maxGroups = Swift.max(1, Swift.min(info.computeUnits * 8, 1024))
    }

    /// `"opencl"`.
    public var name: String { "opencl" }
    /// Device name, type and platform.
    public var deviceDescription: String { "\(info.name) (\(info.type), \(device.platform.name))" }
    /// 1: one tensor at a time per device.
    public var preferredConcurrency: Int { 1 }

    /// Quantizes `input` on the device (see the type's documentation). Throws `QuantizationError` for bad
    /// input (non-finite element with its first index, output too small) and `OpenCLBackendError` when the
    /// device fails.
    public func quantize(_ input: TensorInput, layout: TritLayout, into output: UnsafeMutableRawBufferPointer) throws
        -> QuantizationSummary
    {
        let summaries = try quantizeBatch([(input, output)], layout: layout)
        guard let summary = summaries.first else { throw CLError(.invalidValue, call: "quantize") }
        return summary
    }

    /// Quantizes several tensors in order, each into its own output, overlapping the trit download of tensor
    /// k with the upload and α pass of tensor k+1 (the download runs on its own queue, ordered by events).
    /// Results are the same as `quantize` on each tensor; the summaries come back in input order.
    ///
    /// Every input and output must stay valid until this returns. The outputs are written only once each
    /// tensor's read-back checks passed; after an error, outputs of tensors before the failing one hold
    /// their results, the others are unspecified. Throws like `quantize` (the first failure, in order).
    public func quantizeBatch(_ jobs: [(input: TensorInput, output: UnsafeMutableRawBufferPointer)], layout: TritLayout) throws
        -> [QuantizationSummary]
    {
        for job in jobs { try checkOutputCapacity(job.input, layout: layout, output: job.output) }
        lock.lock()
        defer { lock.unlock() }
        while true {
            do {
                return try quantizeBatchLocked(jobs, layout: layout)
            } catch let error as CLError {
                drainQueues()
                // Out of device memory: release the buffers, halve the chunk and retry (same result), down to
                // `minimumChunkElements`; then report the failure.
                if error.isOutOfMemory && activeChunkElements > Self.minimumChunkElements {
                    releaseBuffers()
                    activeChunkElements = Swift.max(Self.minimumChunkElements, activeChunkElements / 2 / 256 * 256)
                    continue
                }
                releaseBuffers()
                throw OpenCLBackendError.deviceFailure(device: info.name, error: error)
            } catch {
                drainQueues()
                releaseBuffers()
                throw error
            }
        }
    }

    /// The smallest chunk the out-of-memory retry shrinks to (64 Ki elements).
    public static let minimumChunkElements = 1 << 16

    /// One attempt with the current chunk size (lock held). Throws `CLError` for device failures.
    private func quantizeBatchLocked(_ jobs: [(input: TensorInput, output: UnsafeMutableRawBufferPointer)], layout: TritLayout) throws
        -> [QuantizationSummary]
    {
        let pending = InFlight()
        defer { pending.drain(queues: [compute, transfer, download]) }  // also on every error path
        var summaries: [QuantizationSummary] = []
        var previous: (trits: PendingTrits, scale: Float, count: Int)?
        for job in jobs {
            let scale: Float
            do {
                scale = try deviceScale(job.input)  // uploads while the previous tensor's trits download
            } catch {
                // The earlier tensor comes first: its output is written (or its own failure is thrown).
                if let previous { _ = try finish(previous.trits, pending: pending) }
                throw error
            }
            if let previous {
                let nonZero = try finish(previous.trits, pending: pending)
                summaries.append(QuantizationSummary(scale: previous.scale, elementCount: previous.count,
                                                     zeroCount: previous.count - nonZero))
            }
            let threshold = TritThreshold(validScale: scale)
            let trits = try enqueueTrits(job.input, threshold: threshold.magnitudeBits, layout: layout, output: job.output,
                                         pending: pending)
            previous = (trits, scale, job.input.elementCount)
        }
        if let previous {
            let nonZero = try finish(previous.trits, pending: pending)
            summaries.append(QuantizationSummary(scale: previous.scale, elementCount: previous.count,
                                                 zeroCount: previous.count - nonZero))
        }
        try pending.waitAll()
        return summaries
    }

    /// α of `input`, from the device (lock held): the certified float64 pass where the device has fp64, else
    /// (or when the certifier cannot decide) the exact integer bins. A single-chunk tensor is resident in
    /// slot 0 afterwards (uploaded once).
    private func deviceScale(_ input: TensorInput) throws -> Float {
        let resident = chunkCount(input.elementCount) == 1
        if usesFloat64Sums {
            let estimate = try deviceAbsSum(input)
            if estimate.flagged, let error = input.firstNonFiniteError() { throw error }
            if case .certified(let value) = AbsMeanCertifier.certify(estimate.estimate, count: input.elementCount) {
                return value
            }
        }
        // No fp64, or too close to a rounding boundary: the exact bins, on the device.
        let exact = try deviceExactSum(input, inputResident: usesFloat64Sums && resident)
        if exact.flagged {
            if let error = input.firstNonFiniteError() { throw error }
            throw corrupt("the exact α pass flagged a NaN/Inf element, but the tensor has none")
        }
        guard let mean = exact.sum.roundedMean(count: input.elementCount) else {
            throw corrupt("the exact α pass has no elements to average")
        }
        return mean
    }

    /// Drops every device and staging buffer (after a failure: a buffer may still be mapped).
    private func releaseBuffers() {
        slots = []
        uploadStaging = []
    }

    // MARK: - Pipeline

    func chunkCount(_ count: Int) -> Int { (count + activeChunkElements - 1) / activeChunkElements }

    func chunkRange(_ chunk: Int, count: Int) -> Range<Int> {
        let start = chunk * activeChunkElements
        return start..<Swift.min(start + activeChunkElements, count)
    }

    /// Upload pieces of a single-chunk tensor of `count` elements: each at least `pieceElements` long, at
    /// most `maxPieces` of them, every boundary a multiple of 256 elements; one piece when `count` is small.
    func pieceRanges(count: Int) -> [Range<Int>] {
        let spread = ((count + Self.maxPieces - 1) / Self.maxPieces + 255) / 256 * 256
        let length = Swift.max(pieceElements, spread)
        return stride(from: 0, to: count, by: length).map { $0..<Swift.min($0 + length, count) }
    }

    /// Work-groups for a launch over `units` 4-element vectors: one vector per work-item, at most `maxGroups`.
    package func groupCount(units: Int) -> Int {
        Swift.max(1, Swift.min(maxGroups, (units + workGroupSize - 1) / workGroupSize))
    }

    /// Finishes every queue (belt and braces after an error; each pass already waited on its own events).
    private func drainQueues() {
        _ = try? transfer.finish()
        _ = try? compute.finish()
        _ = try? download.finish()
    }

    /// Makes sure `slots[0]` (and `slots[1]` when the tensor has several chunks) hold `elements` elements.
    private func ensureSlots(elements: Int, chunks: Int) throws(CLError) {
        let needed = chunks > 1 ? 2 : 1
        if slots.count >= needed, slots.prefix(needed).allSatisfy({ $0.elements >= elements }) { return }
        slots = []  // release old buffers first
        for _ in 0..<needed { slots.append(try Slot(context: context, elements: elements, groups: maxGroups, queue: download)) }
    }

    /// Slot 0 after `ensureKernelSlot` (benchmark use; lock held).
    package var slotForBenchmark: Slot? { slots.first }

    /// `ensureSlots` for the benchmark (lock held).
    package func ensureKernelSlot(elements: Int) throws(CLError) { try ensureSlots(elements: elements, chunks: 1) }

    /// Enqueues the upload of elements `range` of the tensor into `slot` at element `offset`, after `after`,
    /// through the pinned staging buffers: per part of at most `stagingBytes`, map a staging buffer once its
    /// previous copy finished (waiting on the map's event), copy the input into it on the host, unmap, and
    /// copy it into the device buffer on the transfer queue after the unmap. Returns the copies' events (a
    /// kernel reading the range waits on all of them); every event joins `pending` before anything else can
    /// throw.
    private func upload(_ input: TensorInput, range: Range<Int>, into slot: Slot, offset: Int = 0,
                        after: [CLEvent], pending: InFlight) throws(CLError) -> [CLEvent] {
        let width = input.elementType.byteWidth
        guard let base = input.bytes.baseAddress else { throw CLError(.invalidValue, call: "upload") }
        // Staging no larger than a chunk of F32 (so the out-of-memory retry, which halves chunks, shrinks it too).
        let stagingSize = Swift.min(stagingBytes, activeChunkElements * 4)
        if uploadStaging.count != 2 || uploadStaging.contains(where: { $0.buffer.byteCount != stagingSize }) {
            uploadStaging = []  // release old buffers first
            uploadStaging = [try Staging(context: context, byteCount: stagingSize),
                             try Staging(context: context, byteCount: stagingSize)]
        }
        let total = range.count * width
        var copies: [CLEvent] = []
        var done = 0
        while done < total {
            let part = Swift.min(stagingSize, total - done)
            let staging = uploadStaging[nextStaging & 1]
            nextStaging &+= 1
            let (pointer, mapped) = try transfer.unsafeEnqueueMap(staging.buffer, access: .writeInvalidate, byteCount: part,
                                                                  waitingFor: staging.lastUse.map { [$0] } ?? [])
            pending.track(mapped)
            try transfer.flush()
            try mapped.wait()
            pointer.copyMemory(from: base + range.lowerBound * width + done, byteCount: part)
            let unmapped = pending.track(try transfer.enqueueUnmap(staging.buffer, pointer: pointer))
            let copied = pending.track(try transfer.enqueueCopy(from: staging.buffer, to: slot.input,
                                                                destinationOffset: offset * width + done, byteCount: part,
                                                                waitingFor: [unmapped] + after))
            staging.lastUse = copied
            copies.append(copied)
            done += part
        }
        try transfer.flush()
        return copies
    }

    struct DeviceEstimate {
        var estimate: AbsSumEstimate
        var flagged: Bool
    }

    /// The driver returned results that cannot be right (a read-back that never landed, a stale buffer).
    private func corrupt(_ detail: String) -> OpenCLBackendError {
        OpenCLBackendError.inconsistentResult(device: info.name, detail: detail)
    }

    /// Values per work-group of the exact α pass (`EXACT_BINS` in Kernels/absmean.cl): lo_0..lo_7, then
    /// hi_0..hi_7; value k is in units of 2^(shift) · 2^-149 with `exactShift(k)`.
    package static let exactBins = 16

    /// The power of two value `k` of a group's exact bins counts in (lo_b: 32b, hi_b: 32b + 32).
    package static func exactShift(_ k: Int) -> Int { k < 8 ? 32 * k : 32 * (k - 8) + 32 }

    /// One α launch: elements `range` of the tensor, in slot `slot` at element `offset` of its input buffer.
    struct Launch {
        var range: Range<Int>
        var slot: Int
        var offset: Int
    }

    /// The α launches over a tensor of `count` elements: one per upload piece of a single-chunk tensor (all in
    /// slot 0, so the tensor stays resident), else one per chunk through the two slots.
    func launches(count: Int) -> [Launch] {
        let chunks = chunkCount(count)
        return chunks == 1
            ? pieceRanges(count: count).map { Launch(range: $0, slot: 0, offset: $0.lowerBound) }
            : (0..<chunks).map { Launch(range: chunkRange($0, count: count), slot: $0 & 1, offset: 0) }
    }

    /// Runs one α reduction launch per element of `launches`: uploads each launch's elements (unless the
    /// tensor is already resident) and calls `enqueue(index, launch, slot, waits)`, which binds, runs the
    /// kernel after `waits` and enqueues its read-backs, and returns the kernel's event. Pieces of one chunk
    /// fill disjoint parts of slot 0: their uploads wait for nothing, so the transfer queue runs ahead of
    /// the kernels. A chunk waits for its slot's last kernel. Waits on every tracked event before it returns
    /// or throws (the read-backs land in the caller's arrays).
    private func runReduction(_ input: TensorInput, launches: [Launch], inputResident: Bool,
                              _ enqueue: (Int, Launch, Slot, [CLEvent], InFlight) throws -> CLEvent) throws {
        let chunks = chunkCount(input.elementCount)
        try ensureSlots(elements: Swift.min(input.elementCount, activeChunkElements), chunks: chunks)
        let pending = InFlight()
        defer { pending.drain(queues: [compute, transfer]) }  // also on every error path
        var lastKernel: [CLEvent?] = [nil, nil]
        let readerBefore = slots.map(\.inputReader) + [nil, nil]
        for (index, launch) in launches.enumerated() {
            let slot = slots[launch.slot]
            var waits: [CLEvent] = []
            if !inputResident {
                // Pieces wait only for the slot's reader from before this pass (the previous tensor's trit kernel);
                // a chunk for its slot's last kernel in this pass, or that earlier reader.
                let after = (chunks == 1 ? readerBefore[launch.slot] : lastKernel[launch.slot] ?? readerBefore[launch.slot])
                    .map { [$0] } ?? []
                waits = try upload(input, range: launch.range, into: slot, offset: launch.offset, after: after,
                                   pending: pending)
            }
            let ran = pending.track(try enqueue(index, launch, slot, waits, pending))
            lastKernel[launch.slot] = ran
            slot.inputReader = ran
            try compute.flush()
        }
        try pending.waitAll()  // the read events themselves: clFinish does not wait for them everywhere
    }

    /// Device pass 1 (fp64 devices): partial sums for every piece (single chunk) or every chunk, merged on the
    /// host with a rigorous depth bound. A single-chunk tensor stays resident in slot 0 for pass 2.
    ///
    /// Every non-blocking command's event is tracked and waited on before this returns or throws, so no
    /// transfer touches the staging arrays (or the caller's input) after they go away. The staging arrays are
    /// pre-filled with values no kernel writes (NaN sums, out-of-range subnormal sums, tags that never match)
    /// and checked after the wait: a driver whose reads did not land gives an error, never a wrong α.
    private func deviceAbsSum(_ input: TensorInput) throws -> DeviceEstimate {
        guard let kernel = absmeanKernels[input.elementType] else { throw CLError(.invalidKernelName, call: "absmean") }
        let launches = self.launches(count: input.elementCount)
        var sums = [Double](repeating: .nan, count: launches.count * maxGroups)
        var subnormals = [UInt64](repeating: .max, count: launches.count * maxGroups)
        var flags = [UInt32](repeating: 0, count: launches.count * maxGroups * 2)
        var groupsPerLaunch = [Int](repeating: 0, count: launches.count)
        var tags = [UInt32](repeating: 0, count: launches.count)
        var maxPerItem = 0
        let local = workGroupSize
        try sums.withUnsafeMutableBytes { sumsOut in
            try subnormals.withUnsafeMutableBytes { subOut in
                try flags.withUnsafeMutableBytes { flagsOut in
                    guard let sumsBase = sumsOut.baseAddress, let subBase = subOut.baseAddress,
                          let flagsBase = flagsOut.baseAddress else { throw CLError(.invalidValue, call: "absmean") }
                    try runReduction(input, launches: launches, inputResident: false) { index, launch, slot, waits, pending in
                        let range = launch.range
                        let groups = groupCount(units: (range.count + 3) / 4)
                        groupsPerLaunch[index] = groups
                        let items = groups * local
                        // Per lane: one addition per 4-element vector, up to three for the tail (one work-item
                        // takes them all when the launch has a single item), two to combine lanes.
                        let vectors = range.count / 4
                        maxPerItem = Swift.max(maxPerItem, (vectors + items - 1) / items + 5)
                        let tag = nextTag()
                        tags[index] = tag
                        try kernel.bind(slot.absmeanArguments(count: range.count, base: launch.offset, local: local, tag: tag))
                        let ran = try compute.run(kernel, globalSize: items, localSize: local, waitingFor: waits)
                        pending.track(ran)
                        let at = index * maxGroups
                        // In-order queue: these reads finish before the next kernel reuses the partial buffers. They
                        // also wait on the kernel's event explicitly rather than trusting the queue order alone (the
                        // kernel itself waits on the other queue's upload).
                        let afterKernel = [ran]
                        pending.track(try compute.unsafeEnqueueRead(slot.sums, into: sumsBase + at * 8, byteCount: groups * 8,
                                                                    waitingFor: afterKernel))
                        pending.track(try compute.unsafeEnqueueRead(slot.subnormals, into: subBase + at * 8, byteCount: groups * 8,
                                                                    waitingFor: afterKernel))
                        pending.track(try compute.unsafeEnqueueRead(slot.flags, into: flagsBase + at * 8, byteCount: groups * 8,
                                                                    waitingFor: afterKernel))
                        return ran
                    }
                }
            }
        }
        var total = 0.0
        var units: UInt64 = 0
        var overflow = false
        var flagged = false
        var totalGroups = 0
        for launch in 0..<launches.count {
            let range = launches[launch].range
            for g in 0..<groupsPerLaunch[launch] {
                let index = launch * maxGroups + g
                // Checks that cost nothing: each group's tag, a finite non-negative sum, a subnormal sum within
                // what the launch's elements can give, a 0/1 flag.
                guard flags[2 * index + 1] == tags[launch] ^ UInt32(g), flags[2 * index] <= 1 else {
                    throw corrupt("α partials of launch \(launch), group \(g) were not written (tag check failed)")
                }
                guard sums[index].isFinite, sums[index] >= 0, subnormals[index] <= UInt64(range.count) << 23 else {
                    throw corrupt("α partial of launch \(launch), group \(g) is impossible (sum \(sums[index]), subnormal units \(subnormals[index]))")
                }
                total += sums[index]
                let (sum, carried) = units.addingReportingOverflow(subnormals[index])
                units = sum
                overflow = overflow || carried
                flagged = flagged || flags[2 * index] != 0
            }
            totalGroups += groupsPerLaunch[launch]
        }
        // Depth bound: a work-item's lanes (maxPerItem additions, the first onto 0.0, lanes combined; the
        // maximum over all launches), the local tree (ceil(log2) of the group size), and the host's sequential merge
        // of every group partial of every launch (pieces or chunks: `totalGroups` counts them all).
        var treeDepth = 0  // ceil(log2(workGroupSize)): levels of the kernels' tree over any group size
        var partials = workGroupSize
        while partials > 1 { partials = (partials + 1) / 2; treeDepth += 1 }
        let depth = maxPerItem + treeDepth + totalGroups + 2
        // An (unrealistic) overflow of the subnormal sum makes the estimate unusable: force the exact path.
        let floating = overflow ? Double.nan : total
        let estimate = AbsSumEstimate(floatingSum: flagged ? .infinity : floating, subnormalUnits: units, additionDepth: depth)
        return DeviceEstimate(estimate: estimate, flagged: flagged)
    }

    /// The exact α pass: every group's 16 integer bin halves (`exactsum_*`), added exactly on the host, plus the
    /// non-finite flag. Uploads like `deviceAbsSum` unless the tensor is already resident in slot 0 (a
    /// single-chunk tensor after the float64 pass); a single-chunk tensor is resident afterwards.
    ///
    /// Checked like `deviceAbsSum`: bins are pre-filled with `UInt64.max` (no launch of fewer than 2^31
    /// elements can produce a value above `elements · 2^32`), tags must match, flags must be 0 or 1.
    private func deviceExactSum(_ input: TensorInput, inputResident: Bool) throws -> (sum: ExactAbsSum, flagged: Bool) {
        guard let kernel = exactKernels[input.elementType] else { throw CLError(.invalidKernelName, call: "exactsum") }
        let launches = self.launches(count: input.elementCount)
        let perGroup = Self.exactBins
        var bins = [UInt64](repeating: .max, count: launches.count * maxGroups * perGroup)
        var flags = [UInt32](repeating: 0, count: launches.count * maxGroups * 2)
        var groupsPerLaunch = [Int](repeating: 0, count: launches.count)
        var tags = [UInt32](repeating: 0, count: launches.count)
        let local = workGroupSize
        try bins.withUnsafeMutableBytes { binsOut in
            try flags.withUnsafeMutableBytes { flagsOut in
                guard let binsBase = binsOut.baseAddress, let flagsBase = flagsOut.baseAddress else {
                    throw CLError(.invalidValue, call: "exactsum")
                }
                try runReduction(input, launches: launches, inputResident: inputResident) { index, launch, slot, waits, pending in
                    let groups = groupCount(units: (launch.range.count + 3) / 4)
                    groupsPerLaunch[index] = groups
                    let tag = nextTag()
                    tags[index] = tag
                    try kernel.bind(slot.exactArguments(count: launch.range.count, base: launch.offset, local: local, tag: tag))
                    let ran = try compute.run(kernel, globalSize: groups * local, localSize: local, waitingFor: waits)
                    pending.track(ran)
                    let at = index * maxGroups
                    pending.track(try compute.unsafeEnqueueRead(slot.bins, into: binsBase + at * perGroup * 8,
                                                                byteCount: groups * perGroup * 8, waitingFor: [ran]))
                    pending.track(try compute.unsafeEnqueueRead(slot.flags, into: flagsBase + at * 8, byteCount: groups * 8,
                                                                waitingFor: [ran]))
                    return ran
                }
            }
        }
        var sum = ExactAbsSum()
        var flagged = false
        for (launch, entry) in launches.enumerated() {
            let limit = UInt64(entry.range.count) << 32  // each element adds less than 2^32 to one value
            for g in 0..<groupsPerLaunch[launch] {
                let index = launch * maxGroups + g
                guard flags[2 * index + 1] == tags[launch] ^ UInt32(g), flags[2 * index] <= 1 else {
                    throw corrupt("exact α bins of launch \(launch), group \(g) were not written (tag check failed)")
                }
                flagged = flagged || flags[2 * index] != 0
                for k in 0..<perGroup {
                    let bin = bins[index * perGroup + k]
                    guard bin <= limit, sum.add(units: bin, shiftedBy: Self.exactShift(k)) else {
                        throw corrupt("exact α bin \(k) of launch \(launch), group \(g) is impossible (\(bin))")
                    }
                }
            }
        }
        return (sum, flagged)
    }

    /// One chunk's trits on their way back: the download copy into the slot's pinned `hostOutput`, its map,
    /// and the kernel's per-group counts (read into `counts`, which the pass's `InFlight` frees).
    struct PendingChunk {
        var slot: Slot
        var range: Range<Int>
        var groups: Int
        var tag: UInt32
        var mapped: CLEvent
        var pointer: UnsafeMutableRawPointer
        var countsRead: CLEvent
        var counts: UnsafeMutableBufferPointer<UInt32>
    }

    /// A tensor's trit pass after `enqueueTrits`: the chunks still to finish (the last one, or the only one).
    struct PendingTrits {
        var chunks: [PendingChunk]
        var nonZeroSoFar: Int
        var layout: TritLayout
        var output: UnsafeMutableRawBufferPointer
    }

    /// Device pass 2: enqueues the trit kernel of every chunk and each chunk's download (copy into the slot's
    /// pinned `hostOutput` on the download queue, map for reading); finishes every chunk but the last
    /// (`finish`) as soon as the next one is enqueued, and returns the last one still in flight, so the caller
    /// can start the next tensor before waiting for it. A resident single-chunk tensor is not uploaded again.
    private func enqueueTrits(_ input: TensorInput, threshold: UInt32, layout: TritLayout,
                              output: UnsafeMutableRawBufferPointer, pending: InFlight) throws -> PendingTrits {
        let kernels = layout == .packed2Bit ? packedKernels : int8Kernels
        guard let kernel = kernels[input.elementType] else { throw CLError(.invalidKernelName, call: "ternarize") }
        let count = input.elementCount
        let chunks = chunkCount(count)
        let inputResident = chunks == 1
        try ensureSlots(elements: Swift.min(count, activeChunkElements), chunks: chunks)
        let local = workGroupSize
        var result = PendingTrits(chunks: [], nonZeroSoFar: 0, layout: layout, output: output)
        for chunk in 0..<chunks {
            let slot = slots[chunk & 1]
            let range = chunkRange(chunk, count: count)
            let groups = groupCount(units: (range.count + 3) / 4)
            // The kernel overwrites the slot's output and counts: after the previous download copy out of it.
            var waits: [CLEvent] = slot.outputCopy.map { [$0] } ?? []
            if !inputResident {
                waits += try upload(input, range: range, into: slot, after: slot.inputReader.map { [$0] } ?? [], pending: pending)
            }
            let tag = nextTag()
            try kernel.bind(slot.ternarizeArguments(count: range.count, threshold: threshold, local: local, tag: tag))
            let ran = pending.track(try compute.run(kernel, globalSize: groups * local, localSize: local, waitingFor: waits))
            slot.inputReader = ran
            let counts = UnsafeMutableBufferPointer<UInt32>.allocate(capacity: groups * 2)
            counts.initialize(repeating: 0)
            pending.keepUntilDrained(counts)  // freed only after every tracked command finished
            guard let countsBase = counts.baseAddress else { throw CLError(.invalidValue, call: "ternarize") }
            // Explicitly after the kernel, not only by queue order (see deviceAbsSum).
            let countsRead = pending.track(try compute.unsafeEnqueueRead(slot.counts, into: UnsafeMutableRawPointer(countsBase),
                                                                         byteCount: groups * 8, waitingFor: [ran]))
            try compute.flush()
            let bytes = layout.byteCount(forTrits: range.count)
            var copyWaits = [ran]
            if let unmap = slot.hostUnmap { copyWaits.append(unmap) }
            let copied = pending.track(try download.enqueueCopy(from: slot.output, to: slot.hostOutput, byteCount: bytes,
                                                                waitingFor: copyWaits))
            slot.outputCopy = copied
            let mapped = try download.unsafeEnqueueMap(slot.hostOutput, access: .readWrite, byteCount: bytes, waitingFor: [copied])
            pending.track(mapped.event)
            try download.flush()
            let entry = PendingChunk(slot: slot, range: range, groups: groups, tag: tag, mapped: mapped.event,
                                     pointer: mapped.pointer, countsRead: countsRead, counts: counts)
            // Chunk k-1 finishes once chunk k is queued (chunk k+1 reuses its slot).
            if let earlier = result.chunks.popLast() {
                result.nonZeroSoFar += try finish(earlier, layout: layout, output: output, pending: pending)
            }
            result.chunks.append(entry)
        }
        return result
    }

    /// Finishes a tensor's trit pass: waits for each remaining chunk's map and counts, copies the trits from
    /// pinned memory into the caller's output, and checks them. Returns the tensor's non-zero trits.
    private func finish(_ trits: PendingTrits, pending: InFlight) throws -> Int {
        var nonZero = trits.nonZeroSoFar
        for chunk in trits.chunks {
            nonZero += try finish(chunk, layout: trits.layout, output: trits.output, pending: pending)
        }
        return nonZero
    }

    /// Finishes one chunk: waits on its map and counts read (the events themselves: clFinish does not wait for
    /// them everywhere), copies the trits into `output`, poisons the pinned copy (`TritReadBack.poison`, so a
    /// later download that never lands shows as invalid codes) and unmaps it. Then checks what came back: every
    /// group's tag, and the kernel's non-zero count against the non-zero trits actually in `output` (with valid
    /// codes and zero padding), so reads that did not land or stale buffers give
    /// `OpenCLBackendError.inconsistentResult`, never wrong bytes.
    private func finish(_ chunk: PendingChunk, layout: TritLayout, output: UnsafeMutableRawBufferPointer,
                        pending: InFlight) throws -> Int {
        guard let outBase = output.baseAddress else { throw CLError(.invalidValue, call: "ternarize") }
        try chunk.mapped.wait()
        try chunk.countsRead.wait()
        let range = chunk.range
        let start = layout.byteCount(forTrits: range.lowerBound)  // lowerBound is a multiple of 256
        let bytes = layout.byteCount(forTrits: range.count)
        (outBase + start).copyMemory(from: chunk.pointer, byteCount: bytes)
        chunk.pointer.initializeMemory(as: UInt8.self, repeating: TritReadBack.poison, count: bytes)
        chunk.slot.hostUnmap = pending.track(try download.enqueueUnmap(chunk.slot.hostOutput, pointer: chunk.pointer))
        try download.flush()
        var chunkNonZero = 0
        let label = "chunk at element \(range.lowerBound)"
        for g in 0..<chunk.groups {
            guard chunk.counts[2 * g + 1] == chunk.tag ^ UInt32(g) else {
                throw corrupt("trit counts of \(label), group \(g) were not written (tag check failed)")
            }
            chunkNonZero += Int(chunk.counts[2 * g])
        }
        let written = UnsafeRawBufferPointer(rebasing: output[start..<(start + bytes)])
        guard let found = TritReadBack.nonZeroCount(written, layout: layout, trits: range.count) else {
            throw corrupt("trits of \(label) read back hold invalid codes or non-zero padding")
        }
        guard found == chunkNonZero else {
            throw corrupt("trits of \(label) read back hold \(found) non-zero trits, the kernel counted \(chunkNonZero)")
        }
        return chunkNonZero
    }
}

/// The events of one operation's commands, waited on before the memory they use goes away.
final class InFlight {
    private var events: [CLEvent] = []
    /// Host memory the tracked commands write into (deallocated only after the wait).
    private var buffers: [UnsafeMutableBufferPointer<UInt32>] = []

    /// Deallocates `buffer` once every tracked command finished.
    func keepUntilDrained(_ buffer: UnsafeMutableBufferPointer<UInt32>) { buffers.append(buffer) }

    deinit {
        for buffer in buffers { buffer.deallocate() }
    }

    /// Adds `event` and returns it.
    @discardableResult
    func track(_ event: CLEvent) -> CLEvent {
        events.append(event)
        return event
    }

    /// Waits for every tracked command (success path). Throws `CLError` when one failed.
    func waitAll() throws(CLError) {
        try CLEvent.waitAll(events)
        events = []
        for buffer in buffers { buffer.deallocate() }
        buffers = []
    }

    /// Error path: waits on each remaining event (a failed one has stopped) and finishes `queues`, ignoring errors.
    func drain(queues: [CLCommandQueue]) {
        if events.isEmpty { return }
        for event in events { _ = try? event.wait() }
        for queue in queues { _ = try? queue.finish() }
        events = []
        for buffer in buffers { buffer.deallocate() }
        buffers = []
    }
}

/// The consistency check on trits read back from a device.
enum TritReadBack {
    /// A byte that is no valid encoding in either layout (packed code 11 in three places, int8 0x7F): pinned
    /// download buffers hold it wherever no download landed since the last read.
    static let poison: UInt8 = 0x7F

    /// Non-zero trits among the first `trits` of `bytes` in `layout`, or `nil` when a byte is no valid
    /// encoding (packed code 11, an int8 value other than 0, 1, −1) or the padding after `trits` is not zero.
    static func nonZeroCount(_ bytes: UnsafeRawBufferPointer, layout: TritLayout, trits: Int) -> Int? {
        let words = bytes.count / 8
        var nonZero = 0
        var bad: UInt64 = 0
        switch layout {
        case .packed2Bit:
            for w in 0..<words {
                let word = bytes.loadUnaligned(fromByteOffset: w * 8, as: UInt64.self)
                bad |= word & (word >> 1) & 0x5555_5555_5555_5555
                nonZero += ((word | (word >> 1)) & 0x5555_5555_5555_5555).nonzeroBitCount
            }
            for i in (words * 8)..<bytes.count {
                let byte = bytes[i]
                bad |= UInt64(byte & (byte >> 1) & 0x55)
                nonZero += ((byte | (byte >> 1)) & 0x55).nonzeroBitCount
            }
            let used = trits % 4
            if used != 0, let last = bytes.last, last >> (2 * used) != 0 { return nil }
        case .int8:
            // Valid bytes are 0x00, 0x01, 0xFF: the byte equals its sign spread over all bits OR its low bit.
            let low: UInt64 = 0x0101_0101_0101_0101
            for w in 0..<words {
                let word = bytes.loadUnaligned(fromByteOffset: w * 8, as: UInt64.self)
                bad |= word ^ ((((word >> 7) & low) &* 0xFF) | (word & low))
                nonZero += (word & low).nonzeroBitCount
            }
            for i in (words * 8)..<bytes.count {
                let byte = bytes[i]
                if byte != 0 && byte != 1 && byte != 0xFF { bad = 1 }
                nonZero += Int(byte & 1)
            }
        }
        return bad == 0 ? nonZero : nil
    }
}
