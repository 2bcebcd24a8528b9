// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "TernaryQuant",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "TernaryQuant", targets: ["TernaryQuant"]),
        .library(name: "TernaryQuantCore", targets: ["TernaryQuantCore"]),
        .library(name: "TernaryQuantFormats", targets: ["TernaryQuantFormats"]),
        .library(name: "TernaryQuantOpenCL", targets: ["TernaryQuantOpenCL"]),
        .library(name: "TernaryQuantPipeline", targets: ["TernaryQuantPipeline"]),
        // Benchmark support (for `ternq bench` and the Benchmarks/ package); not part of `TernaryQuant`.
        .library(name: "TernaryQuantBench", targets: ["TernaryQuantBench"]),
        .library(name: "SwiftOpenCL", targets: ["SwiftOpenCL"]),
        .executable(name: "ternq", targets: ["ternq"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/attaswift/BigInt", from: "6.0.0"),
    ],
    targets: [
        // System library: module map + shim header only.
        .systemLibrary(
            name: "COpenCL",
            path: "Sources/COpenCL",
            pkgConfig: "OpenCL",
            providers: [
                .apt(["ocl-icd-opencl-dev", "opencl-headers"]),
                .brew(["opencl-headers", "ocl-icd"]),
            ]
        ),
        // CPU backend inner loops (portable C plus AVX2 and AVX-512 versions chosen at run time).
        .target(
            name: "CTernaryKernels",
            path: "Sources/CTernaryKernels"
        ),
        // The memory-read probe of `ternq bench` (benchmark only; not linked by the library product).
        .target(
            name: "CBenchProbe",
            path: "Sources/CBenchProbe"
        ),
        // SIGBUS guard for read-only file mappings and a no-replace rename (hardening; tiny C).
        .target(
            name: "CFileGuard",
            path: "Sources/CFileGuard"
        ),
        // Thin, safe Swift wrapper over the OpenCL C API.
        .target(
            name: "SwiftOpenCL",
            dependencies: ["COpenCL"]
        ),
        // Quantization semantics (absmean, thresholds, trit packing, GGUF ternary blocks) and the CPU backend.
        .target(
            name: "TernaryQuantCore",
            dependencies: ["CTernaryKernels"]
        ),
        // Checkpoint formats (safetensors, GGUF, .tern), atomic output files, mapped inputs. No OpenCL.
        .target(
            name: "TernaryQuantFormats",
            dependencies: ["TernaryQuantCore", "CFileGuard"]
        ),
        // The OpenCL backend (device groups, selection and CPU fallback) and its kernels.
        .target(
            name: "TernaryQuantOpenCL",
            dependencies: [
                "TernaryQuantCore",
                "SwiftOpenCL",
                .product(name: "Logging", package: "swift-log"),
            ],
            resources: [
                .embedInCode("../../Kernels/widen.cl"),
                .embedInCode("../../Kernels/absmean.cl"),
                .embedInCode("../../Kernels/ternarize.cl"),
            ]
        ),
        // The checkpoint job: tensor selection, sources, writers, reports, the demo model.
        .target(
            name: "TernaryQuantPipeline",
            dependencies: ["TernaryQuantCore", "TernaryQuantFormats"]
        ),
        // Umbrella: re-exports the four modules above so `import TernaryQuant` keeps working.
        .target(
            name: "TernaryQuant",
            dependencies: ["TernaryQuantCore", "TernaryQuantFormats", "TernaryQuantOpenCL", "TernaryQuantPipeline"]
        ),
        // Benchmark support for `ternq bench` (throughput, rooflines, device bandwidth); not in the library product.
        .target(
            name: "TernaryQuantBench",
            dependencies: ["TernaryQuantCore", "TernaryQuantFormats", "TernaryQuantOpenCL", "TernaryQuantPipeline", "SwiftOpenCL", "CBenchProbe"],
            resources: [.embedInCode("../../Kernels/bench_copy.cl")]
        ),
        // Test helpers shared by the test targets (reference quantizer, test data, tiny model); no product.
        .target(
            name: "TernaryQuantTestSupport",
            dependencies: ["TernaryQuant", "TernaryQuantBench", .product(name: "BigInt", package: "BigInt")]
        ),
        // The `ternq` command-line tool (thin over the library).
        .executableTarget(
            name: "ternq",
            dependencies: [
                "TernaryQuant",
                "TernaryQuantBench",
                "SwiftOpenCL",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "TernaryQuantTests",
            dependencies: [
                "TernaryQuant",
                "TernaryQuantBench",
                "TernaryQuantTestSupport",
                "SwiftOpenCL",
                .product(name: "BigInt", package: "BigInt"),
            ]
        ),
        .testTarget(
            name: "SwiftOpenCLTests",
            dependencies: ["SwiftOpenCL"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
