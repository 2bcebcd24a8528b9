import Foundation
import Testing
import TernaryQuant

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
}
