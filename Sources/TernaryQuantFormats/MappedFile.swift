import TernaryQuantCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

import CFileGuard

/// Read-only bytes of a whole file or an in-memory buffer, kept alive as long as the object lives.
///
/// Files are memory-mapped with `mmap(PROT_READ, MAP_PRIVATE)`, so reading a checkpoint costs address
/// space, not resident memory: pages are loaded on demand and can be dropped by the kernel again.
///
/// A mapped file that shrinks while mapped (another process truncates it) would kill the process with
/// SIGBUS on the next read past the new end. The mapping is registered with a SIGBUS guard instead: a
/// faulting page reads as zeros and the guard records the fault. Readers call `checkIntact()` after
/// reading (the pipeline does so after each tensor and before publishing its output) and get an error
/// naming the file; bytes read from a storage that failed the check must be discarded.
public final class ByteStorage: @unchecked Sendable {
    /// The bytes (valid for the lifetime of this object; never written).
    public let bytes: UnsafeRawBufferPointer
    /// Path of the file, or a descriptive name for an in-memory buffer.
    public let path: String
    private let mapping: UnsafeMutableRawPointer?
    private let owned: UnsafeMutableRawBufferPointer?
    /// The open file (kept to re-check its size and modification time), or -1.
    private let fd: Int32
    private let openedModification: (seconds: Int, nanoseconds: Int)
    private let guardSlot: Int32

    /// Maps `path` read-only. Throws `FormatError.io` when the file cannot be opened or mapped.
    public init(mapping path: String) throws {
        // O_NONBLOCK: opening a FIFO named like an input must not wait for a writer (it is refused below).
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw FormatError.io(file: path, reason: "cannot open: \(String(cString: strerror(errno)))") }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw FormatError.io(file: path, reason: "cannot stat: \(reason)")
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            throw FormatError.io(file: path, reason: "not a regular file")
        }
        let size = Int(info.st_size)
        self.path = path
        self.owned = nil
        self.openedModification = Self.modification(info)
        if size == 0 {
            close(fd)
            self.fd = -1
            self.mapping = nil
            self.guardSlot = -1
            self.bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            return
        }
        guard let address = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), address != MAP_FAILED else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw FormatError.io(file: path, reason: "cannot map \(size) bytes: \(reason)")
        }
        self.fd = fd
        self.mapping = address
        self.guardSlot = tfg_register(address, size)
        self.bytes = UnsafeRawBufferPointer(start: address, count: size)
    }

    /// Copies `data` into an owned buffer named `name` (used for in-memory models and tests).
    public init(copying data: [UInt8], name: String) {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Swift.max(data.count, 1), alignment: 16)
        data.withUnsafeBytes { source in
            if let base = source.baseAddress, let dest = buffer.baseAddress {
                dest.copyMemory(from: base, byteCount: source.count)
            }
        }
        self.owned = buffer
        self.mapping = nil
        self.fd = -1
        self.guardSlot = -1
        self.openedModification = (0, 0)
        self.path = name
        self.bytes = UnsafeRawBufferPointer(start: buffer.baseAddress, count: data.count)
    }

    /// The mapped file's open descriptor (read-only, owned by this object: valid while it lives), or
    /// `nil` for in-memory buffers and empty files. For kernel copies (`AtomicFile.copy(from:range:)`).
    var fileDescriptor: Int32? { fd >= 0 && mapping != nil ? fd : nil }

    private static func modification(_ info: stat) -> (seconds: Int, nanoseconds: Int) {
        #if canImport(Darwin)
        return (Int(info.st_mtimespec.tv_sec), Int(info.st_mtimespec.tv_nsec))
        #else
        return (Int(info.st_mtim.tv_sec), Int(info.st_mtim.tv_nsec))
        #endif
    }

    /// Throws `FormatError.io` naming the file when the mapped file changed since it was mapped: it is
    /// shorter (a read past its new end was absorbed by the SIGBUS guard, or would have been), or it was
    /// modified (size or modification time differ). Bytes read from this storage since the change are
    /// not the file's: discard them. In-memory buffers always pass.
    public func checkIntact() throws {
        guard fd >= 0 else { return }
        if guardSlot >= 0, tfg_tripped(guardSlot) != 0 {
            throw FormatError.io(file: path, reason: "the file shrank while it was being read (truncated by another process?); its data is incomplete: nothing was written")
        }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            throw FormatError.io(file: path, reason: "cannot stat while reading: \(String(cString: strerror(errno)))")
        }
        if Int(info.st_size) < bytes.count {
            throw FormatError.io(file: path, reason: "the file shrank from \(bytes.count) to \(info.st_size) bytes while it was being read (truncated by another process?): nothing was written")
        }
        if Int(info.st_size) != bytes.count || Self.modification(info) != openedModification {
            throw FormatError.io(file: path, reason: "the file was modified while it was being read (size or modification time changed): nothing was written")
        }
    }

    /// Tells the kernel the mapped pages covering `region` (a sub-range of `bytes`) are no longer needed,
    /// so they stop counting towards resident memory (they are re-read from the file if touched again).
    /// No effect on in-memory buffers.
    public func releasePages(_ region: UnsafeRawBufferPointer) {
        guard let mapping, let start = region.baseAddress, region.count > 0 else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let base = Int(bitPattern: mapping)
        let lo = Swift.max(base, (Int(bitPattern: start) + page - 1) / page * page)
        let hi = Swift.min(base + bytes.count, (Int(bitPattern: start) + region.count) / page * page)
        guard hi > lo, let pointer = UnsafeMutableRawPointer(bitPattern: lo) else { return }
        _ = madvise(pointer, hi - lo, Int32(MADV_DONTNEED))
    }

    deinit {
        if guardSlot >= 0 { tfg_unregister(guardSlot) }
        if let mapping { munmap(mapping, bytes.count) }
        if fd >= 0 { close(fd) }
        owned?.deallocate()
    }
}

/// A bounds-checked little-endian cursor over read-only bytes; every read throws instead of trapping.
struct ByteReader {
    let bytes: UnsafeRawBufferPointer
    let file: String
    var offset: Int

    init(_ bytes: UnsafeRawBufferPointer, file: String, offset: Int = 0) {
        self.bytes = bytes
        self.file = file
        self.offset = offset
    }

    var remaining: Int { bytes.count - offset }

    func truncated(_ what: String, _ need: Int) -> FormatError {
        .malformed(file: file, offset: offset, reason: "file ends while reading \(what) (needs \(need) bytes, \(Swift.max(remaining, 0)) left)")
    }

    mutating func read<T: FixedWidthInteger>(_ type: T.Type, _ what: String) throws -> T {
        let size = MemoryLayout<T>.size
        guard offset >= 0, remaining >= size else { throw truncated(what, size) }
        let v = T(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: T.self))
        offset += size
        return v
    }

    mutating func readBytes(_ count: Int, _ what: String) throws -> UnsafeRawBufferPointer {
        guard count >= 0, offset >= 0, remaining >= count else { throw truncated(what, count) }
        let slice = UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + count)])
        offset += count
        return slice
    }

    /// A length-prefixed (u64) UTF-8 string.
    mutating func readString(_ what: String, maxLength: Int = 1 << 20) throws -> String {
        let start = offset
        let length = try read(UInt64.self, "\(what) length")
        guard length <= UInt64(maxLength) else {
            throw FormatError.malformed(file: file, offset: start, reason: "\(what) length \(length) exceeds the limit \(maxLength)")
        }
        let raw = try readBytes(Int(length), what)
        guard let s = String(validating: raw, as: UTF8.self) else {
            throw FormatError.malformed(file: file, offset: start, reason: "\(what) is not valid UTF-8")
        }
        return s
    }
}

/// An append-only little-endian byte buffer used to build headers.
struct ByteBuilder {
    var bytes: [UInt8] = []

    mutating func append<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    mutating func append(_ data: some Sequence<UInt8>) { bytes.append(contentsOf: data) }

    /// u64 length + UTF-8 bytes.
    mutating func appendString(_ s: String) {
        let utf8 = Array(s.utf8)
        append(UInt64(utf8.count))
        bytes.append(contentsOf: utf8)
    }
}
