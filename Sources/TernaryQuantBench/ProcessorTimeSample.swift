import Foundation

/// The machine's processor time as Linux accounts it (the aggregate `cpu` line of `/proc/stat`), so a
/// benchmark can say how much of its run the hypervisor gave to other virtual machines ("steal").
///
/// On a shared VM, steal slows every figure at once (on the 2-core CI VM 25 % steal halved every GB/s);
/// a measurement that reports it can be told apart from a regression.
public struct ProcessorTimeSample: Sendable, Hashable {
    /// Ticks (USER_HZ) in every state — user, nice, system, idle, iowait, irq, softirq, steal — summed
    /// over all processors. Guest time is already counted in user and nice, so it is not added again.
    public var totalTicks: UInt64
    /// Ticks in which the hypervisor ran something else while this machine had work to run.
    public var stealTicks: UInt64

    /// A sample of `totalTicks` and `stealTicks` (steal ≤ total).
    public init(totalTicks: UInt64, stealTicks: UInt64) {
        self.totalTicks = totalTicks
        self.stealTicks = Swift.min(stealTicks, totalTicks)
    }

    /// The current sample, or `nil` where `/proc/stat` is missing or not in the expected form (not Linux,
    /// a sandbox that hides it).
    public static func now() -> ProcessorTimeSample? {
        guard let text = try? String(contentsOfFile: "/proc/stat", encoding: .utf8) else { return nil }
        return parse(procStat: text)
    }

    /// Parses the first `cpu ` line of `/proc/stat` text: at least the eight fields user … steal, each a
    /// non-negative integer. Returns `nil` when the line is missing, short, non-numeric or overflows.
    public static func parse(procStat text: String) -> ProcessorTimeSample? {
        guard let line = text.split(separator: "\n", omittingEmptySubsequences: true).first(where: { $0.hasPrefix("cpu ") }) else {
            return nil
        }
        let fields = line.split(separator: " ", omittingEmptySubsequences: true).dropFirst()
        guard fields.count >= 8 else { return nil }
        var values = [UInt64]()
        for field in fields.prefix(8) {
            guard let value = UInt64(field) else { return nil }
            values.append(value)
        }
        var total: UInt64 = 0
        for value in values {
            let sum = total.addingReportingOverflow(value)
            guard !sum.overflow else { return nil }
            total = sum.partialValue
        }
        return ProcessorTimeSample(totalTicks: total, stealTicks: values[7])
    }

    /// The share (0…1) of all processor time between `earlier` and this sample that was stolen, or `nil`
    /// when no tick passed or the counters went backwards.
    public func stealFraction(since earlier: ProcessorTimeSample) -> Double? {
        guard totalTicks > earlier.totalTicks, stealTicks >= earlier.stealTicks else { return nil }
        return Double(stealTicks - earlier.stealTicks) / Double(totalTicks - earlier.totalTicks)
    }

    /// Steal above this share of processor time makes a measurement unrepresentative of the hardware.
    public static let noticeableStealFraction = 0.05
}
