import Testing
import TernaryQuant
import TernaryQuantTestSupport

@Suite("Seed conformance")
struct SeedConformanceTests {
    @Test("w = −8…7, shape [4,4] gives α = 4, sparsity 0.3125 and packed aa 0a 40 55")
    func seedVector() throws {
        let weights = (-8...7).map(Float.init)
        let q = try PerLayerQuant.quantize(weights, name: "seed", shape: [4, 4])
        #expect(q.scale.bitPattern == Float(4.0).bitPattern)
        #expect(q.sparsity == 0.3125)
        #expect(q.trits.filter { $0 == .reject }.count == 6)
        #expect(q.trits.filter { $0 == .tend }.count == 5)
        #expect(q.trits.filter { $0 == .affirm }.count == 5)
        #expect(TritPacking.pack(q.trits) == [0xAA, 0x0A, 0x40, 0x55])
        let packed = try Quantizer().quantize(weights, name: "seed", shape: [4, 4])
        #expect(packed.data == [0xAA, 0x0A, 0x40, 0x55])
    }
}
