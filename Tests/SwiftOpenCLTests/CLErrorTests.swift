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

    @Test("vendor codes are representable; equality and matching use the code only")
    func openType() {
        let vendor = CLError(-9999, call: "clVendorThing")
        #expect(vendor.name == nil)
        #expect(vendor.description.contains("unknown OpenCL status -9999"))
        #expect(CLError(-5, call: "a") == CLError.outOfResources)
        #expect(CLError.outOfResources ~= CLError(-5, call: "b"))
        #expect(!(CLError.outOfResources ~= CLError(-4)))
        #expect(CLError(-4).isOutOfMemory && CLError(-5).isOutOfMemory && !CLError(-30).isOutOfMemory)
    }
}
