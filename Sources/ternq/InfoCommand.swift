import ArgumentParser
import Foundation
import TernaryQuant

/// `ternq info`: summarise a .tern, .gguf or .safetensors file.
struct InfoCommand: TernQCommand {
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

    func execute() throws {
        let storage = try ByteStorage(mapping: file)
        let bytes = storage.bytes
        let text: String
        if bytes.count >= 4 && Array(bytes[0..<4]) == Array("GGUF".utf8) {
            text = try InfoPrinter.gguf(path: file, limit: limit)
        } else if file.lowercased().hasSuffix(".tern") {
            text = try InfoPrinter.tern(storage)
        } else {
            text = try InfoPrinter.safetensors(storage, limit: limit)
        }
        try storage.checkIntact()  // the file shrank or changed while read: what was validated is not the file
        print(DisplayText.escapedLines(text))
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

    /// A GGUF file, or a whole split set when `path` is one of its shards (memory-mapped, validated).
    static func gguf(path: String, limit: Int) throws -> String {
        let ckpt = try GGUFCheckpoint(path: path)
        let first = ckpt.files[0]
        var out = "format       GGUF v\(first.version), alignment \(first.alignment), data at byte \(first.dataStart)\n"
        if ckpt.files.count > 1 {
            out += "split        \(ckpt.files.count) files: \(ckpt.files.map(\.path).joined(separator: ", "))\n"
        }
        let size = ckpt.files.reduce(0) { $0 &+ $1.storage.bytes.count }
        out += "file size    \(Human.bytes(size))\n"
        out += "metadata     \(ckpt.metadata.count) keys\n"
        for e in ckpt.metadata { out += "  \(e.key) = \(e.value.summary)\n" }
        var byType: [GGMLType: Int] = [:]
        for t in ckpt.tensors { byType[t.info.type, default: 0] += 1 }
        let types = byType.sorted { $0.key.rawValue < $1.key.rawValue }.map { "\($0.value) \($0.key.ggmlName.uppercased())" }
        out += "tensors      \(ckpt.tensors.count)\(types.isEmpty ? "" : " (" + types.joined(separator: ", ") + ")")\n\n"
        let shown = limit > 0 ? Array(ckpt.tensors.prefix(limit)) : ckpt.tensors
        let rows: [[String]] = shown.map { t in
            var scale = "-"
            let block = t.info.type.blockLayout.bytes
            if (t.info.type == .tq2_0 || t.info.type == .tq1_0) && t.bytes.count >= block {
                let d = UInt16(t.bytes[block - 2]) | UInt16(t.bytes[block - 1]) << 8
                scale = String(format: "%.6g", Double(Float(bitPattern: Float32Bits.fromFloat16(d))))
            }
            var row = [t.info.name, "[" + t.info.dimensions.map(String.init).joined(separator: ", ") + "]",
                       t.info.type.ggmlName.uppercased(), scale, Human.bytes(t.info.byteCount)]
            if ckpt.files.count > 1 { row.append("\((ckpt.files.firstIndex { $0 === t.file } ?? 0) + 1)") }
            return row
        }
        var headers = ["tensor", "ggml dims", "type", "d (f16)", "bytes"]
        if ckpt.files.count > 1 { headers.append("file") }
        out += Human.table(headers, rows, rightAligned: [3, 4])
        if shown.count < ckpt.tensors.count { out += "\n… \(ckpt.tensors.count - shown.count) more" }
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
