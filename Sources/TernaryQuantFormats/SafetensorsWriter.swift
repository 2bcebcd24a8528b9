import TernaryQuantCore
/// Writes a safetensors file tensor by tensor: the header is computed from the declared tensors up front,
/// then each tensor's bytes are streamed in declaration order.
public final class SafetensorsWriter {
    /// A tensor to be written.
    public struct Entry: Sendable, Hashable {
        /// Tensor name.
        public var name: String
        /// Element type.
        public var dtype: SafetensorsDType
        /// Shape.
        public var shape: [Int]

        /// Creates an entry.
        public init(name: String, dtype: SafetensorsDType, shape: [Int]) {
            self.name = name
            self.dtype = dtype
            self.shape = shape
        }

        /// Bytes of data (0 on overflow, which `init` rejects).
        public var byteCount: Int { Checked.product(shape).flatMap { dtype.byteCount(elements: $0) } ?? 0 }
    }

    private let sink: any ByteSink
    private let entries: [Entry]
    private var next = 0
    private var remainingInCurrent = 0

    /// The header bytes (length prefix included) for `entries` and `metadata`, padded with spaces so the
    /// data starts at a multiple of 8. Throws on duplicate names or overflowing shapes.
    public static func header(entries: [Entry], metadata: [String: String]) throws -> [UInt8] {
        var json = "{"
        var parts: [String] = []
        if !metadata.isEmpty {
            let items = metadata.keys.sorted().map { "\(JSONText.quote($0)):\(JSONText.quote(metadata[$0] ?? ""))" }
            parts.append("\"__metadata__\":{\(items.joined(separator: ","))}")
        }
        var offset = 0
        var names = Set<String>()
        for e in entries {
            guard e.name != "__metadata__", names.insert(e.name).inserted else {
                throw FormatError.invalidTensor(file: "<safetensors header>", tensor: e.name, reason: "duplicate or reserved tensor name")
            }
            guard let count = Checked.product(e.shape), let size = e.dtype.byteCount(elements: count),
                  let end = Checked.add(offset, size) else {
                throw FormatError.invalidTensor(file: "<safetensors header>", tensor: e.name, reason: "shape \(e.shape) overflows")
            }
            let shape = e.shape.map(String.init).joined(separator: ",")
            parts.append("\(JSONText.quote(e.name)):{\"dtype\":\"\(e.dtype.rawValue)\",\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(end)]}")
            offset = end
        }
        json += parts.joined(separator: ",") + "}"
        var text = Array(json.utf8)
        let padding = (8 - text.count % 8) % 8
        text.append(contentsOf: [UInt8](repeating: 0x20, count: padding))
        var b = ByteBuilder()
        b.append(UInt64(text.count))
        b.append(text)
        return b.bytes
    }

    /// Writes the header for `entries` to `sink`; then call `write` with each tensor's bytes in order.
    public init(sink: any ByteSink, entries: [Entry], metadata: [String: String] = [:]) throws {
        self.sink = sink
        self.entries = entries
        try sink.write(bytes: try Self.header(entries: entries, metadata: metadata))
        remainingInCurrent = entries.first?.byteCount ?? 0
        skipEmpty()
    }

    private func skipEmpty() {
        while next < entries.count && remainingInCurrent == 0 {
            next += 1
            remainingInCurrent = next < entries.count ? entries[next].byteCount : 0
        }
    }

    /// Appends bytes of the current tensor (may be called several times per tensor). Throws if more bytes
    /// are written than the declared tensors hold.
    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        var rest = bytes
        while !rest.isEmpty {
            guard next < entries.count else {
                throw FormatError.unsupported(file: "<safetensors>", reason: "more data than the declared tensors hold")
            }
            let n = Swift.min(rest.count, remainingInCurrent)
            try sink.write(UnsafeRawBufferPointer(rebasing: rest[0..<n]))
            rest = UnsafeRawBufferPointer(rebasing: rest[n...])
            remainingInCurrent -= n
            skipEmpty()
        }
    }

    /// Appends the bytes `range` of `storage` (see `write(_:)`), copied by the sink (in the kernel for an
    /// `AtomicFile`) when they lie within the current tensor.
    public func copy(from storage: ByteStorage, range: Range<Int>) throws {
        guard next < entries.count, range.count <= remainingInCurrent else {
            return try write(UnsafeRawBufferPointer(rebasing: storage.bytes[range]))
        }
        try sink.copy(from: storage, range: range)
        remainingInCurrent -= range.count
        skipEmpty()
    }

    /// Appends the bytes of an array (see `write(_:)`).
    public func write(bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write($0) }
    }

    /// Checks that every declared byte was written.
    public func finish() throws {
        skipEmpty()
        guard next == entries.count else {
            throw FormatError.unsupported(file: "<safetensors>", reason: "tensor '\(entries[next].name)' was not completely written")
        }
    }
}
