import Foundation
import SwiftOpenCL
@testable import TernaryQuant

/// Shared helpers for the OpenCL suites.
enum OpenCLTestSupport {
    /// The first OpenCL device, or `nil` (with a printed reason) when no platform exists.
    static let firstDevice: CLDevice? = {
        do {
            for platform in try CLPlatform.all() {
                if let device = try platform.devices().first { return device }
            }
            print("OpenCL tests skipped: no OpenCL platform/device found (install pocl-opencl-icd)")
        } catch {
            print("OpenCL tests skipped: \(error)")
        }
        return nil
    }()

    /// Whether the only OpenCL platform is PoCL (so POCL_DEVICES controls the device list).
    static let isPoCL: Bool = {
        guard let platforms = try? CLPlatform.all(), platforms.count == 1 else { return false }
        return platforms[0].name.contains("Portable Computing Language")
    }()

    /// Whether OpenCL tests can run.
    static var available: Bool { firstDevice != nil }

    /// Deterministic generator (SplitMix64).
    struct Random {
        var generator: SplitMix64
        init(state: UInt64) { generator = SplitMix64(seed: state) }
        mutating func next() -> UInt64 { generator.next() }
        mutating func uniform() -> Double { Double(next() >> 11) * 0x1p-53 }
        mutating func normal() -> Float {
            let u = Swift.max(uniform(), 1e-300), v = uniform()
            return Float((-2 * log(u)).squareRoot() * cos(2 * .pi * v))
        }
    }

    /// Quantizes raw bytes with both backends in both layouts and returns whether everything matches.
    static func compare(_ backend: any QuantizationBackend, bytes: [UInt8], type: ElementType,
                        sourceLocation: String = #function) throws -> [String] {
        var problems: [String] = []
        let count = bytes.count / type.byteWidth
        try bytes.withUnsafeBytes { raw in
            let input = try TensorInput(name: "t", shape: [count], elementType: type, bytes: raw)
            for layout in TritLayout.allCases {
                var expected = [UInt8](repeating: 0xEE, count: layout.byteCount(forTrits: count))
                var actual = expected
                let a = try expected.withUnsafeMutableBytes { try CPUBackend().quantize(input, layout: layout, into: $0) }
                let b = try actual.withUnsafeMutableBytes { try backend.quantize(input, layout: layout, into: $0) }
                if a.scale.bitPattern != b.scale.bitPattern {
                    problems.append("\(type) n=\(count) \(layout): scale \(a.scale) vs \(b.scale)")
                }
                if a.zeroCount != b.zeroCount {
                    problems.append("\(type) n=\(count) \(layout): zeros \(a.zeroCount) vs \(b.zeroCount)")
                }
                if expected != actual {
                    let first = zip(expected, actual).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? -1
                    problems.append("\(type) n=\(count) \(layout): bytes differ first at \(first)")
                }
            }
        }
        return problems
    }

    static func bytes(of floats: [Float]) -> [UInt8] {
        floats.withUnsafeBytes { Array($0) }
    }
}
