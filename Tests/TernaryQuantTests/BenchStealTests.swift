import Foundation
import Testing
import TernaryQuantCore
import TernaryQuantBench

/// `ProcessorTimeSample`: the hypervisor-steal share `ternq bench` reports next to its figures.
@Suite("Bench: CPU steal from /proc/stat")
struct BenchStealTests {
    static let stat = """
        cpu  4705 150 1120 16250 520 0 33 87 12 0
        cpu0 2401 75 560 8125 260 0 20 40 6 0
        cpu1 2304 75 560 8125 260 0 13 47 6 0
        intr 114930548 113199788 3 0 5 263 0 4
        """

    @Test("the aggregate cpu line: eight fields summed (guest not counted twice), steal is the eighth")
    func parsesTheAggregateLine() throws {
        let sample = try #require(ProcessorTimeSample.parse(procStat: Self.stat))
        #expect(sample.totalTicks == 4705 + 150 + 1120 + 16250 + 520 + 0 + 33 + 87)
        #expect(sample.stealTicks == 87)
        // Kernels before 2.6.33 end the line at steal: still eight fields.
        #expect(ProcessorTimeSample.parse(procStat: "cpu 1 2 3 4 5 6 7 8\n") == ProcessorTimeSample(totalTicks: 36, stealTicks: 8))
    }

    @Test("malformed text is nil, never a trap", arguments: [
        "", "intr 1 2 3\n", "cpu0 1 2 3 4 5 6 7 8\n", "cpu 1 2 3 4 5 6 7\n", "cpu 1 2 3 4 5 6 7 x\n",
        "cpu 1 2 3 4 5 6 -7 8\n", "cpu 18446744073709551615 1 0 0 0 0 0 0\n", "cpu 99999999999999999999 0 0 0 0 0 0 0\n",
    ])
    func malformedIsNil(text: String) {
        #expect(ProcessorTimeSample.parse(procStat: text) == nil)
    }

    @Test("the steal share between two samples; nil when no tick passed or the counters went back")
    func stealFraction() {
        let a = ProcessorTimeSample(totalTicks: 1000, stealTicks: 10)
        #expect(ProcessorTimeSample(totalTicks: 1200, stealTicks: 60).stealFraction(since: a) == 0.25)
        #expect(ProcessorTimeSample(totalTicks: 1200, stealTicks: 10).stealFraction(since: a) == 0)
        #expect(a.stealFraction(since: a) == nil)
        #expect(ProcessorTimeSample(totalTicks: 900, stealTicks: 20).stealFraction(since: a) == nil)
        #expect(ProcessorTimeSample(totalTicks: 1200, stealTicks: 5).stealFraction(since: a) == nil)
        // Steal never exceeds the total it is part of.
        #expect(ProcessorTimeSample(totalTicks: 5, stealTicks: 9).stealTicks == 5)
    }

    #if os(Linux)
    @Test("on Linux a measurement carries its steal share, in 0…1, as cpu_steal_fraction in the JSON")
    func measurementReportsSteal() throws {
        #expect(ProcessorTimeSample.now() != nil)
        // 16 MiB: the probes take well over the 5 ms a tick of two processors' time lasts (USER_HZ 100).
        let bytes = ThroughputBenchmark.makeTensorBytes(elements: 1 << 22, dtype: .float32)
        let input = try TensorInput(name: "bench", shape: [1 << 22], elementType: .float32, copying: bytes)
        let result = try ThroughputBenchmark.measure(backend: CPUBackend(), input: input, layout: BenchLayout.packed2Bit,
                                                     runs: 5, threads: 2)
        let steal = try #require(result.cpuStealFraction)
        #expect(steal >= 0 && steal <= 1)
        let json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(result)) as? [String: Any]
        // Foundation's JSON text round trip of a double may differ in the last bit.
        let written = try #require(json?["cpu_steal_fraction"] as? Double)
        #expect(abs(written - steal) < 1e-12)
    }
    #endif
}
