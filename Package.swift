// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "TernaryQuant",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "TernaryQuant", targets: ["TernaryQuant"]),
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
        // CPU backend inner loops (portable C plus AVX2 versions chosen at run time).
        .target(
            name: "CTernaryKernels",
            path: "Sources/CTernaryKernels"
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
        // Core math, backends and model formats.
        .target(
            name: "TernaryQuant",
            dependencies: [
                "SwiftOpenCL",
                "CTernaryKernels",
                "CFileGuard",
                .product(name: "Logging", package: "swift-log"),
            ],
            resources: [
                .embedInCode("../../Kernels/widen.cl"),
                .embedInCode("../../Kernels/absmean.cl"),
                .embedInCode("../../Kernels/ternarize.cl"),
            ]
        ),
        // The `ternq` command-line tool (thin over the library).
        .executableTarget(
            name: "ternq",
            dependencies: [
                "TernaryQuant",
                "SwiftOpenCL",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "TernaryQuantTests",
            dependencies: [
                "TernaryQuant",
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
