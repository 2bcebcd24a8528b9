import Foundation
import SwiftOpenCL
import Testing
@testable import TernaryQuant

@Suite("OpenCL backend equals the CPU backend byte for byte", .enabled(if: OpenCLTestSupport.available))
struct OpenCLEqualityTests {
    static let backend: OpenCLBackend? = OpenCLTestSupport.firstDevice.flatMap {
        try? OpenCLBackend(device: $0, chunkElements: 1 << 20)
    }

    @Test("random normal F32 tensors of many sizes")
    func randomSizes() throws {
        let backend = try #require(Self.backend)
        var random = OpenCLTestSupport.Random(state: 1)
        for n in [1, 2, 3, 4, 5, 7, 31, 255, 257, 1021, 4099, 65_537, 300_007] {
            let weights = (0..<n).map { _ in random.normal() * 0.02 }
            let problems = try OpenCLTestSupport.compare(backend, bytes: OpenCLTestSupport.bytes(of: weights), type: .float32)
            #expect(problems.isEmpty, "\(problems)")
        }
    }
}
