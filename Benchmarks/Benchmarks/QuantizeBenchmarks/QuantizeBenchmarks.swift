import Benchmark
import TernaryQuant
import TernaryQuantBench

/// Throughput and allocations per quantize call for a few tensor sizes, both output layouts and the
/// three input types. Input bytes are prepared once outside the measured region.
let benchmarks: @Sendable () -> Void = {
    let sizes = [4096, 1 << 20, 1 << 24]
    let quantizer = Quantizer(backend: CPUBackend())

    for size in sizes {
        for dtype in [ElementType.float32, .bfloat16] {
            let bytes = ThroughputBenchmark.makeTensorBytes(elements: size, dtype: dtype)
            for layout in [TritLayout.packed2Bit, .int8] {
                let configuration = Benchmark.Configuration(
                    metrics: [.wallClock, .throughput, .mallocCountTotal, .peakMemoryResident],
                    scalingFactor: .one,
                    maxDuration: .seconds(2),
                    maxIterations: size >= 1 << 24 ? 20 : 1000
                )
                Benchmark("quantize \(dtype.rawValue) \(size) → \(layout.rawValue)", configuration: configuration) { benchmark in
                    var output = [UInt8](repeating: 0, count: layout.byteCount(forTrits: size))
                    try bytes.withUnsafeBytes { raw in
                        let input = try TensorInput(name: "w", shape: [size], elementType: dtype, bytes: raw)
                        try output.withUnsafeMutableBytes { out in
                            benchmark.startMeasurement()
                            for _ in benchmark.scaledIterations {
                                blackHole(try quantizer.quantize(input, layout: layout, into: out))
                            }
                            benchmark.stopMeasurement()
                        }
                    }
                }
            }
        }
    }

    // The seed-compatible API: allocates [Trit] and copies, for comparison with the buffer API above.
    let small = (0..<(1 << 20)).map { Float(($0 % 97) - 48) * 0.001 }
    Benchmark("PerLayerQuant.quantize 1Mi", configuration: .init(metrics: [.wallClock, .mallocCountTotal])) { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(try PerLayerQuant.quantize(small, name: "w", shape: [1024, 1024]))
        }
    }
}
