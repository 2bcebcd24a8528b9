import ArgumentParser
import Foundation
import TernaryQuant

/// `ternq info`: summarise a .tern, .gguf or .safetensors file.
struct InfoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "info",
        abstract: "Summarise a .tern, .gguf or .safetensors file (validating it).")

    @Argument(help: "File to inspect (.tern, .gguf, .safetensors).")
    var file: String

    @Option(help: "Show at most this many tensors (0 = all).")
    var limit: Int = 0

    func validate() throws {
        guard limit >= 0 else { throw ValidationError("--limit must not be negative (0 shows all tensors)") }
    }

    func run() throws {
        try reportingErrors {
            let storage = try ByteStorage(mapping: file)
            let bytes = storage.bytes
            let text: String
            if bytes.count >= 4 && Array(bytes[0..<4]) == Array("GGUF".utf8) {
                text = try InfoPrinter.gguf(storage)
            } else if file.lowercased().hasSuffix(".tern") {
                text = try InfoPrinter.tern(storage)
            } else {
                text = try InfoPrinter.safetensors(storage, limit: limit)
            }
            try storage.checkIntact()  // the file shrank or changed while read: what was validated is not the file
            print(DisplayText.escapedLines(text))
        }
    }
}

enum InfoPrinter {
    static func tern(_ storage: ByteStorage) throws -> String {
        let m = try TernFormat.decode(storage.bytes, file: storage.path)
        var out = "format       .tern (bincode, format_version \(m.formatVersion))\n"
        out += "source       \(DisplayText.escaped(m.sourceModel))\n"
        out += "model        \(DisplayText.escaped(m.architecture)), vocab \(m.vocabSize), hidden \(m.hiddenSize), \(m.numLayers) layers\n"
        out += "file size    \(Human.bytes(storage.bytes.count))\n"
        var params = 0
        let rows: [[String]] = m.layers.map { l in
            let (r, c) = l.storage.dimensions
            params = params &+ Int(r) &* Int(c)
            let bytes: Int = switch l.storage {
            case .dense(_, _, let p): p.count
            case .sparse(let s): s.values.count + 4 * s.colIdx.count + 8 * s.rowPtr.count
            }
            return [l.name, "\(r)×\(c)", l.originalDType, String(format: "%.6g", Double(l.scale)), String(format: "%.4f", l.sparsity),
                    l.storage.kind, Human.bytes(bytes)]
        }
        out += "layers       \(m.layers.count) (\(params) ternary weights)\n\n"
        out += Human.table(["layer", "rows×cols", "dtype", "scale", "sparsity", "storage", "bytes"], rows, rightAligned: [3, 4, 6])
        return out
    }

    static func gguf(_ storage: ByteStorage) throws -> String {
        let c = try GGUFFormat.decode(storage.bytes, file: storage.path)
        var out = "format       GGUF v\(c.version), alignment \(c.alignment), data at byte \(c.dataStart)\n"
        out += "file size    \(Human.bytes(storage.bytes.count))\n"
        out += "metadata     \(c.metadata.count) keys\n"
        for (k, v) in c.metadata { out += "  \(k) = \(v.summary)\n" }
        let rows: [[String]] = c.tensors.map { t in
            var scale = "-"
            if (t.type == .tq2_0 || t.type == .tq1_0) && t.byteCount >= t.type.blockLayout.bytes {
                let at = c.dataStart + t.offset + t.type.blockLayout.bytes - 2
                let d = UInt16(storage.bytes[at]) | UInt16(storage.bytes[at + 1]) << 8
                scale = String(format: "%.6g", Double(HalfFloat.float(fromBits: d)))
            }
            return [t.name, "[" + t.dimensions.map(String.init).joined(separator: ", ") + "]", "\(t.type)".uppercased(), scale, Human.bytes(t.byteCount)]
        }
        out += "tensors      \(c.tensors.count)\n\n"
        out += Human.table(["tensor", "ggml dims", "type", "d (f16)", "bytes"], rows, rightAligned: [3, 4])
        return out
    }

    static func safetensors(_ storage: ByteStorage, limit: Int) throws -> String {
        let f = try SafetensorsFile(storage: storage)
        var out = "format       safetensors, header \(f.dataStart - 8) bytes\n"
        out += "file size    \(Human.bytes(storage.bytes.count))\n"
        if !f.metadata.isEmpty {
            out += "metadata\n"
            for k in f.metadata.keys.sorted() {
                let v = f.metadata[k] ?? ""
                let shown = DisplayText.escaped(v.count > 120 ? String(v.prefix(117)) + "..." : v)
                out += "  \(DisplayText.escaped(k)) = \(shown)\n"
            }
        }
        let params = f.tensors.reduce(0) { $0 + $1.elementCount }
        out += "tensors      \(f.tensors.count) (\(params) elements)\n\n"
        let shown = limit > 0 ? Array(f.tensors.prefix(limit)) : f.tensors
        let rows = shown.map { [$0.name, $0.dtype.rawValue, Human.shape($0.shape), Human.bytes($0.dataOffsets.count)] }
        out += Human.table(["tensor", "dtype", "shape", "bytes"], rows, rightAligned: [3])
        if shown.count < f.tensors.count { out += "\n… \(f.tensors.count - shown.count) more" }
        return out
    }
}
