import Foundation
@testable import SwiftOpenCL
import Testing
import TernaryQuant
import TernaryQuantTestSupport

@Suite("Backend selection parsing and environment override")
struct OpenCLSelectionTests {
    @Test("text syntax")
    func parsing() throws {
        #expect(try BackendSelection(parsing: "auto") == .automatic)
        #expect(try BackendSelection(parsing: " CPU ") == .cpu)
        #expect(try BackendSelection(parsing: "opencl") == .opencl(device: .default))
        #expect(try BackendSelection(parsing: "opencl:1") == .opencl(device: .index(1)))
        #expect(try BackendSelection(parsing: "opencl:NVIDIA") == .opencl(device: .name("NVIDIA")))
        #expect(try BackendSelection(parsing: "opencl:all") == .openclAll)
        for bad in ["", "gpu:0", "opencl:", "opencl:-1", "metal"] {
            #expect(throws: OpenCLBackendError.self) { try BackendSelection(parsing: bad) }
        }
        for selection in [BackendSelection.automatic, .cpu, .opencl(device: .default), .opencl(device: .index(2)),
                          .opencl(device: .name("pthread")), .openclAll] {
            #expect(try BackendSelection(parsing: selection.description) == selection)
        }
    }

    @Test("explicit choice beats TERNQ_DEVICE, which beats automatic")
    func environment() throws {
        #expect(try BackendSelection.resolve(nil, environment: [:]) == .automatic)
        #expect(try BackendSelection.resolve(nil, environment: ["TERNQ_DEVICE": "opencl:1"]) == .opencl(device: .index(1)))
        #expect(try BackendSelection.resolve(.cpu, environment: ["TERNQ_DEVICE": "opencl:1"]) == .cpu)
        #expect(throws: OpenCLBackendError.self) { try BackendSelection.resolve(nil, environment: ["TERNQ_DEVICE": "bogus"]) }
    }

    @Test("factory: cpu is the CPU backend; automatic never picks a CPU OpenCL device")
    func factory() throws {
        let logger = defaultBackendLogger
        #expect(try makeBackend(.cpu, logger: logger).name == "cpu")
        let automatic = try makeBackend(.automatic, logger: logger)
        let entries = (try? OpenCLDeviceList.all()) ?? []
        if OpenCLDeviceList.automaticChoice(entries) == nil {
            #expect(automatic.name == "cpu")
        }
        #expect(!OpenCLDeviceList.describeAutomaticChoice().isEmpty)
        if !entries.isEmpty {
            #expect(try makeBackend(.opencl(device: .index(0)), logger: logger).name == "opencl")
            #expect(throws: OpenCLBackendError.self) { try makeBackend(.opencl(device: .index(99)), logger: logger) }
            #expect(throws: OpenCLBackendError.self) { try makeBackend(.opencl(device: .name("no-such-device-xyz")), logger: logger) }
        }
    }

    private static func entry(_ index: Int, platform: String, name: String, vendor: String, gpu: Bool,
                              memory: UInt64) -> OpenCLDeviceEntry {
        let info = CLDeviceInfo(name: name, vendor: vendor, type: gpu ? "GPU" : "CPU", isGPUOrAccelerator: gpu,
                                driverVersion: "1", version: "OpenCL 1.2", openCLCVersion: "OpenCL C 1.2",
                                globalMemoryBytes: memory, maxAllocationBytes: memory / 4, localMemoryBytes: 65_536,
                                computeUnits: 8, maxWorkGroupSize: 1024, supportsFP64: true, singleDenormals: true,
                                singleCorrectlyRoundedDivide: true, available: true, extensions: [])
        return OpenCLDeviceEntry(index: index, platformIndex: index, platformName: platform, platformVersion: "OpenCL 1.2",
                                 info: info, device: nil)
    }

    @Test("automatic never picks a simulator (Oclgrind reports itself as a GPU), even with the most memory")
    func automaticSkipsSimulators() {
        let oclgrind = Self.entry(0, platform: "Oclgrind", name: "Oclgrind Simulator", vendor: "Oclgrind", gpu: true, memory: 1 << 40)
        let pocl = Self.entry(1, platform: "Portable Computing Language", name: "pthread", vendor: "AuthenticAMD", gpu: false, memory: 1 << 34)
        let gpu = Self.entry(2, platform: "NVIDIA CUDA", name: "NVIDIA H200", vendor: "NVIDIA Corporation", gpu: true, memory: 1 << 37)
        #expect(oclgrind.isSimulator && !pocl.isSimulator && !gpu.isSimulator)
        #expect(OpenCLDeviceList.automaticChoice([oclgrind, pocl]) == nil)
        #expect(OpenCLDeviceList.automaticChoice([oclgrind, pocl, gpu])?.index == 2)
        // Recognised by any of the three names.
        #expect(Self.entry(3, platform: "x", name: "y", vendor: "OCLGRIND", gpu: true, memory: 1).isSimulator)
        #expect(Self.entry(3, platform: "x", name: "oclgrind device", vendor: "z", gpu: true, memory: 1).isSimulator)
        // An explicit selection may still name it.
        #expect(OpenCLDeviceList.select(.name("oclgrind"), from: [pocl, oclgrind])?.index == 0)
    }
}
