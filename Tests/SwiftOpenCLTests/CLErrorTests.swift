import Testing
@testable import SwiftOpenCL

@Suite("CLError naming and description")
struct CLErrorTests {
    @Test("description names the code and the failing call")
    func description() {
        let error = CLError(-5, call: "clCreateBuffer")
        #expect(error.name == "CL_OUT_OF_RESOURCES")
        #expect(error.description == "clCreateBuffer failed: CL_OUT_OF_RESOURCES (-5)")
        #expect(CLError(-1001, call: "clGetPlatformIDs").description.contains("CL_PLATFORM_NOT_FOUND_KHR (-1001)"))
        #expect(CLError(-11, call: "clBuildProgram", buildLog: "line 1: oops").description.contains("line 1: oops"))
    }

    @Test("vendor codes are representable; errors compare status, call and log; patterns match the status")
    func openType() {
        let vendor = CLError(-9999, call: "clVendorThing")
        #expect(vendor.name == nil && vendor.status.rawValue == -9999)
        #expect(vendor.description.contains("unknown OpenCL status -9999"))
        // Two failures of different calls are different errors (they compared equal before).
        #expect(CLError(.outOfResources, call: "clCreateBuffer") != CLError(.outOfResources, call: "clEnqueueReadBuffer"))
        #expect(CLError(-5, call: "a") == CLError(.outOfResources, call: "a"))
        #expect(CLError(.buildProgramFailure, call: "b", buildLog: "x") != CLError(.buildProgramFailure, call: "b", buildLog: "y"))
        #expect(CLStatus.outOfResources ~= CLError(-5, call: "b"))
        #expect(!(CLStatus.outOfResources ~= CLError(-4)))
        #expect(CLError(-4).isOutOfMemory && CLError(-5).isOutOfMemory && !CLError(-30).isOutOfMemory)
        do {
            throw CLError(.memObjectAllocationFailure, call: "clCreateBuffer")
        } catch CLStatus.memObjectAllocationFailure {
        } catch {
            Issue.record("a CLStatus pattern did not match \(error)")
        }
    }

    @Test("every named status has a distinct C name")
    func names() {
        let values = CLStatus.names
        #expect(Set(values.values).count == values.count)
        #expect(values.values.allSatisfy { $0.hasPrefix("CL_") })
    }
}
