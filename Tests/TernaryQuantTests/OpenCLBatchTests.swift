import Foundation
import Testing
import TernaryQuant
import TernaryQuantTestSupport
@testable import TernaryQuantCore
@testable import TernaryQuantOpenCL

private typealias Support = OpenCLTestSupport

/// `OpenCLBackend.quantizeBatch`: tensor k's trit download overlapping tensor k+1's upload (three queues,
/// events, pinned staging), against the CPU backend tensor by tensor.
@Suite("OpenCL batches: download of one tensor overlapping the next upload", .enabled(if: OpenCLTestSupport.available))
struct OpenCLBatchTests {
    /// Tensors of mixed types and sizes (single-chunk, several pieces, several chunks, tails of 0–3).
    static func tensors(seed: UInt64) -> [(bytes: [UInt8], type: ElementType)] {
        var random = Support.Random(state: seed)
        var result: [(bytes: [UInt8], type: ElementType)] = []
        for (n, type) in [(10_007, ElementType.float32), (1, .float32), (70_001, .float16), (200_003, .float32),
                          (4097, .bfloat16), (131_074, .float32), (3, .float16)] {
            switch type {
            case .float32:
                result.append((Support.bytes(of: (0..<n).map { _ in random.normal() * 0.05 }), type))
            case .float16:
                result.append(((0..<n).map { _ in UInt16(truncatingIfNeeded: random.next()) & 0xBBFF }.withUnsafeBytes { Array($0) }, type))
            case .bfloat16:
                result.append(((0..<n).map { _ in UInt16(truncatingIfNeeded: random.next()) & 0xBF7F }.withUnsafeBytes { Array($0) }, type))
            }
        }
        // A tie (the exact α pass) in the middle of the batch.
        result.insert((Support.bytes(of: [2, 1, 1 + 0x1p-22, Float(bitPattern: 1)]), .float32), at: 3)
        return result
    }

    @Test("a batch equals the CPU backend tensor by tensor (pieces, chunks, staging parts, exact path)",
          arguments: [(1 << 18, 1024, 4096, false), (65_536, 256, 8192, true), (OpenCLBackend.defaultChunkElements, 1 << 22, 1 << 20, false)])
    func batchEqualsCPU(chunk: Int, piece: Int, staging: Int, exact: Bool) throws {
        let device = try #require(Support.firstDevice)
        let backend = try OpenCLBackend(device: device, chunkElements: chunk, workGroupSize: 64,
                                        absmeanSource: OpenCLBackend.kernelSource(PackageResources.absmean_cl),
                                        ternarizeSource: OpenCLBackend.kernelSource(PackageResources.ternarize_cl),
                                        forceExactScale: exact, pieceElements: piece, stagingBytes: staging)
        let tensors = Self.tensors(seed: UInt64(chunk))
        for layout in TritLayout.allCases {
            var outputs = tensors.map { [UInt8](repeating: 0xEE, count: layout.byteCount(forTrits: $0.bytes.count / $0.type.byteWidth)) }
            var expected: [(QuantizationSummary, [UInt8])] = []
            for (bytes, type) in tensors {
                let count = bytes.count / type.byteWidth
                try bytes.withUnsafeBytes { raw in
                    let input = try TensorInput(name: "t", shape: [count], elementType: type, bytes: raw)
                    var out = [UInt8](repeating: 0, count: layout.byteCount(forTrits: count))
                    let summary = try out.withUnsafeMutableBytes { try CPUBackend().quantize(input, layout: layout, into: $0) }
                    expected.append((summary, out))
                }
            }
            let inputs = try tensors.map { try TensorInput(name: "t", shape: [$0.bytes.count / $0.type.byteWidth],
                                                           elementType: $0.type, copying: $0.bytes) }
            let summaries = try Self.withOutputs(&outputs) { pointers in
                try backend.quantizeBatch(Array(zip(inputs, pointers)).map { (input: $0.0, output: $0.1) }, layout: layout)
            }
            #expect(summaries.count == tensors.count)
            for (k, (summary, bytes)) in expected.enumerated() where k < summaries.count {
                #expect(summaries[k] == summary, "tensor \(k) \(layout)")
                #expect(outputs[k] == bytes, "tensor \(k) \(layout)")
            }
        }
    }

    @Test("an error in the middle of a batch: earlier outputs are right, the error is the tensor's own")
    func errorInTheMiddle() throws {
        let device = try #require(Support.firstDevice)
        let backend = try OpenCLBackend(device: device, chunkElements: 1 << 18)
        let good = (0..<5000).map { Float($0 % 7) - 3 }
        var bad = good
        bad[1234] = .nan
        let inputs = try [good, bad, good].map { try TensorInput(name: "w", shape: [$0.count], floats: $0) }
        var outputs = inputs.map { [UInt8](repeating: 0, count: TritLayout.packed2Bit.byteCount(forTrits: $0.elementCount)) }
        #expect(throws: QuantizationError.nonFiniteValue(name: "w", index: 1234, bits: Float.nan.bitPattern)) {
            _ = try Self.withOutputs(&outputs) { pointers in
                try backend.quantizeBatch(Array(zip(inputs, pointers)).map { (input: $0.0, output: $0.1) }, layout: .packed2Bit)
            }
        }
        let expected = try Quantizer(backend: CPUBackend()).quantize(good, name: "w", shape: [good.count])
        #expect(outputs[0] == expected.data)
        // The backend is usable afterwards.
        #expect(try Quantizer(backend: backend).quantize(good, name: "w", shape: [good.count]) == expected)
    }

    /// Calls `body` with a mutable pointer into each of `outputs` (nested, so every pointer stays valid).
    static func withOutputs<R>(_ outputs: inout [[UInt8]], _ body: ([UnsafeMutableRawBufferPointer]) throws -> R) throws -> R {
        func nest(_ index: Int, _ pointers: [UnsafeMutableRawBufferPointer], _ outputs: inout [[UInt8]]) throws -> R {
            if index == outputs.count { return try body(pointers) }
            var current = outputs[index]
            defer { outputs[index] = current }
            return try current.withUnsafeMutableBytes { try nest(index + 1, pointers + [$0], &outputs) }
        }
        return try nest(0, [], &outputs)
    }
}
