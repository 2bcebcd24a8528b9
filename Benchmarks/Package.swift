// swift-tools-version: 6.1
// Benchmarks live in their own package so the root build and CI never compile them.
// Run: cd Benchmarks && swift package benchmark
import PackageDescription

let package = Package(
    name: "TernaryQuantBenchmarks",
    platforms: [.macOS(.v13)],
    dependencies: [
        .package(name: "TernaryQuant", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.0", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "QuantizeBenchmarks",
            dependencies: [
                .product(name: "TernaryQuant", package: "TernaryQuant"),
                .product(name: "TernaryQuantBench", package: "TernaryQuant"),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/QuantizeBenchmarks",
            plugins: [
                .plugin(name: "BenchmarkPlugin", package: "benchmark"),
            ]
        ),
    ]
)
