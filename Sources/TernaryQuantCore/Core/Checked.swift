/// Overflow-checked integer helpers used by every parser (parsers never trap on hostile sizes).
package enum Checked {
    package static func mul(_ a: Int, _ b: Int) -> Int? {
        let (r, o) = a.multipliedReportingOverflow(by: b)
        return o ? nil : r
    }

    package static func add(_ a: Int, _ b: Int) -> Int? {
        let (r, o) = a.addingReportingOverflow(b)
        return o ? nil : r
    }

    package static func product(_ shape: [Int]) -> Int? {
        var total = 1
        for d in shape {
            guard d >= 0, let p = mul(total, d) else { return nil }
            total = p
        }
        return total
    }
}
