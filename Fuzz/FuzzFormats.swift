// libFuzzer harness for every ternq parser, compiled by scripts/fuzz.sh together with the library's format
// sources (same module, so internal entry points are reachable). One binary; the parser is chosen by
// TERNQ_FUZZ_TARGET (read once at start-up; this is a test tool, not library code):
//   safetensors  SafetensorsFile(storage:)          header + tiling validation of a whole file
//   index        SafetensorsCheckpoint.parseIndex   model.safetensors.index.json
//   tern         TernFormat.decode                  .tern (bincode) reader
//   gguf         fuzzGGUF below                     GGUF reader
//   json         StrictJSONParser.parse             the JSON parser (plus config.json field access)
// Any input must end in a value or a thrown error: a trap, an overflow, an out-of-range index, a leak
// reported by the sanitizer or a hang (libFuzzer -timeout) is a finding.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The GGUF entry point: the mapped reader (`GGUFFile`), including every tensor's data range.
func fuzzGGUF(_ storage: ByteStorage) throws {
    let file = try GGUFFile(storage: storage)
    for tensor in file.tensors { _ = file.data(for: tensor).count }
}

enum FuzzTarget: String {
    case safetensors, index, tern, gguf, json
}

nonisolated(unsafe) private var target: FuzzTarget = .json

@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>) -> CInt {
    guard let raw = getenv("TERNQ_FUZZ_TARGET"), let t = FuzzTarget(rawValue: String(cString: raw)) else {
        let message = "set TERNQ_FUZZ_TARGET to safetensors, index, tern, gguf or json\n"
        _ = message.withCString { write(2, $0, strlen($0)) }
        exit(2)
    }
    target = t
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = size > 0 && data != nil ? Array(UnsafeBufferPointer(start: data, count: size)) : []
    let storage = ByteStorage(copying: bytes, name: "fuzz.input")
    do {
        switch target {
        case .safetensors:
            let file = try SafetensorsFile(storage: storage)
            for info in file.tensors { _ = file.data(for: info).count; _ = info.elementCount }
        case .index:
            _ = try SafetensorsCheckpoint.parseIndex(storage.bytes, indexPath: "fuzz.index.json", directory: "d")
        case .tern:
            let model = try TernFormat.decode(storage.bytes, file: "fuzz.tern")
            // What `info` does with a model that passed validation.
            var total = 0
            for layer in model.layers {
                let (r, c) = layer.storage.dimensions
                total = total &+ Int(r) &* Int(c)
                _ = DisplayText.escaped(layer.name)
            }
            _ = total
        case .gguf:
            try fuzzGGUF(storage)
        case .json:
            let value = try StrictJSONParser.parse(storage.bytes)
            _ = (value["model_type"]?.stringValue, value["vocab_size"]?.uint64Value)
            _ = JSONText.quote(value["a"]?.stringValue ?? "")
        }
    } catch {
        _ = String(describing: error)  // descriptions must not trap either
    }
    return 0
}
