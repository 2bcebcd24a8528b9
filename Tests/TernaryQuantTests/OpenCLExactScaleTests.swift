import Foundation
@_spi(Testing) import SwiftOpenCL
import Testing
import TernaryQuant
import TernaryQuantTestSupport
@testable import TernaryQuantCore
@testable import TernaryQuantOpenCL

private typealias Support = OpenCLTestSupport

/// The exact α pass on the device (`exactsum_*`: integer mantissa bins by exponent), as devices without
/// cl_khr_fp64 run it for every tensor (forced here on devices that have fp64), against the CPU backend's
/// bytes and the independent big-integer reference.
@Suite("OpenCL exact α on the device (no fp64): adversarial vectors", .enabled(if: OpenCLTestSupport.available))
struct OpenCLExactScaleTests {
    /// A backend whose every α comes from the exact device pass.
    static func exactBackend(chunkElements: Int = 1 << 18, workGroupSize: Int = 64,
                             pieceElements: Int = OpenCLBackend.defaultPieceElements) throws -> OpenCLBackend {
        let device = try #require(Support.firstDevice)
        let backend = try OpenCLBackend(device: device, chunkElements: chunkElements, workGroupSize: workGroupSize,
                                        absmeanSource: OpenCLBackend.kernelSource(PackageResources.absmean_cl),
                                        ternarizeSource: OpenCLBackend.kernelSource(PackageResources.ternarize_cl),
                                        forceExactScale: true, pieceElements: pieceElements)
        #expect(!backend.usesFloat64Sums)
        return backend
    }

    static let tiny = Float(bitPattern: 1)  // 2^-149

    /// Vectors where the float64 route (sum in double, divide, round to float) is wrong or lands on a tie.
    static let adversarial: [(String, [Float])] = [
        // exact mean 1 + 2^-24 + 2^-151: just above a tie, rounds up; the float64 sum drops the tiny element
        // and ties to even (1.0).
        ("tie broken by a subnormal", [2, 1, 1 + 0x1p-22, tiny]),
        ("tie broken by a subnormal, huge scale", [0x1p101, 0x1p100, 0x1p100 * (1 + 0x1p-22), tiny]),
        ("exact tie, to even (down)", [1, 1, 1, 1 + 0x1p-22]),
        ("exact tie, to even (up)", [1, 1, 1 + 0x1p-21, 1 + 0x1p-22]),
        ("subnormal tie, to even", [Float(bitPattern: 1), Float(bitPattern: 2)]),
        ("subnormal mean, odd", [Float(bitPattern: 3), Float(bitPattern: 0x7FFFFF), -Float(bitPattern: 0x400001)]),
        ("max-float", Array(repeating: .greatestFiniteMagnitude, count: 4099) + [-.greatestFiniteMagnitude]),
        ("max-float and tiny", [.greatestFiniteMagnitude, tiny, -.greatestFiniteMagnitude, .leastNormalMagnitude]),
        ("all zeros (α = 1)", [0, -0, 0, 0, -0]),
        ("smallest normal and largest subnormal", [.leastNormalMagnitude, Float(bitPattern: 0x7FFFFF), -.leastNormalMagnitude]),
    ]

    @Test("adversarial F32 vectors: CPU bytes and the big-integer reference", arguments: [1, 3, 64])
    func adversarialVectors(workGroupSize: Int) throws {
        let backend = try Self.exactBackend(workGroupSize: workGroupSize)
        for (label, vector) in Self.adversarial {
            let problems = try Support.compare(backend, bytes: Support.bytes(of: vector), type: .float32)
            #expect(problems.isEmpty, "\(label): \(problems)")
            let reference = ReferenceQuantizer.quantize(vector)
            let summary = try vector.withUnsafeBufferPointer { buffer in
                var out = [UInt8](repeating: 0, count: vector.count)
                let input = try TensorInput(name: "t", shape: [buffer.count], floats: buffer)
                return try out.withUnsafeMutableBytes { try backend.quantize(input, layout: .int8, into: $0) }
            }
            #expect(summary.scale.bitPattern == reference.scale.bitPattern, "\(label): \(summary.scale) vs \(reference.scale)")
            #expect(summary.zeroCount == reference.zeroCount, "\(label)")
        }
    }

    @Test("the float64 route really is wrong on the first vector (the test is adversarial)")
    func float64RouteIsWrong() {
        let vector: [Float] = [2, 1, 1 + 0x1p-22, Self.tiny]
        let float64 = Float(vector.reduce(0.0) { $0 + Double($1.magnitude) } / Double(vector.count))
        let reference = ReferenceQuantizer.quantize(vector).scale
        #expect(float64 != reference)
        #expect(reference == 1 + 0x1p-23)
    }

    @Test("all-subnormal, full exponent range and half inputs across pieces, chunks and group sizes")
    func bigMixtures() throws {
        var random = Support.Random(state: 41)
        let n = 100_003
        // Random signs and mantissas, no normal value at all.
        let subnormals = (0..<n).map { _ in UInt32(truncatingIfNeeded: random.next()) & 0x807F_FFFF }
        // Every finite exponent (all 32 bins of 8 exponents), including max-float neighbours.
        let anyFinite = (0..<n).map { _ in
            var bits = UInt32(truncatingIfNeeded: random.next())
            if bits & 0x7F80_0000 == 0x7F80_0000 { bits &= 0xFF7F_FFFF }
            return bits
        }
        let halves = (0..<n).map { _ in UInt16(truncatingIfNeeded: random.next()) & 0xBBFF }  // finite F16, subnormals too
        let brains = (0..<n).map { _ in UInt16(truncatingIfNeeded: random.next()) & 0xBF7F }  // finite BF16
        for (chunk, piece, group) in [(1 << 18, 4096, 64), (4096, 1024, 7), (1 << 18, 1 << 22, 1)] {
            let backend = try Self.exactBackend(chunkElements: chunk, workGroupSize: group, pieceElements: piece)
            for (bits, label) in [(subnormals, "subnormal"), (anyFinite, "any finite")] {
                let problems = try Support.compare(backend, bytes: bits.withUnsafeBytes { Array($0) }, type: .float32)
                #expect(problems.isEmpty, "\(label) chunk \(chunk) group \(group): \(problems)")
            }
            for (values, type) in [(halves, ElementType.float16), (brains, .bfloat16)] {
                let problems = try Support.compare(backend, bytes: values.withUnsafeBytes { Array($0) }, type: type)
                #expect(problems.isEmpty, "\(type) chunk \(chunk) group \(group): \(problems)")
            }
        }
        // The independent reference on the all-subnormal tensor (its scale and zero count).
        let floats = subnormals.prefix(20_011).map { Float(bitPattern: $0) }
        let backend = try Self.exactBackend(chunkElements: 4096, workGroupSize: 64, pieceElements: 256)
        let reference = ReferenceQuantizer.quantize(floats)
        let summary = try Quantizer(backend: backend).quantize(floats, name: "s", shape: [floats.count])
        #expect(summary.scale.bitPattern == reference.scale.bitPattern)
    }

    @Test("a tie spread over several pieces and chunks, and a non-finite element, on the exact path")
    func tiesAcrossLaunchesAndNonFinite() throws {
        for (chunk, piece) in [(1 << 18, 256), (1024, 1 << 22)] {
            let backend = try Self.exactBackend(chunkElements: chunk, workGroupSize: 32, pieceElements: piece)
            let last: Float = 1 + 0x1p-22 * 12_288 / 4
            let tie = [Float](repeating: 1, count: 12_287) + [last]
            let problems = try Support.compare(backend, bytes: Support.bytes(of: tie), type: .float32)
            #expect(problems.isEmpty, "\(problems)")
            var weights = [Float](repeating: 0.25, count: 10_003)
            weights[9_000] = .infinity
            weights[7_001] = -.nan
            #expect(throws: QuantizationError.nonFiniteValue(name: "w", index: 7_001, bits: (-Float.nan).bitPattern)) {
                try Quantizer(backend: backend).quantize(weights, name: "w", shape: [weights.count])
            }
        }
    }
}
