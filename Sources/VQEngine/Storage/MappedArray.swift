// A growable array of plain values kept in one contiguous, file-backed mapping.
//
//   reserved address range (PROT_NONE until used, never moves)
//   +----------------------------+----------------------+-------------------+
//   | file pages, MAP_PRIVATE    | anonymous pages, RW  | reserved PROT_NONE|
//   | (rows flushed earlier)     | (rows appended since)|                   |
//   +----------------------------+----------------------+-------------------+
//   0                     fileCount*stride        count*stride       capacity*stride
//
// Opening maps the file: nothing is read or rebuilt. Appends and overwrites go
// to memory; `flush()` writes what changed to the file (pwrite) and fsyncs.
//
// Overwrites of elements the last manifest already covers (tombstones, payload
// slots, overwritten rows) are undoable: before writing them, `flush` saves the
// file's current bytes of those chunks to NAME.undo, tagged with the flush's
// sequence number, and fsyncs it. If the process dies before the manifest of
// that flush is durable, the next open puts the old bytes back, so the segment
// is exactly as the manifest describes and the WAL replay starts from a state
// it knows. Once the manifest is durable, `dropUndo()` removes the file.
//
//   NAME.undo: | magic "VUND" u32 | flush seq u64 | entries: (offset u64, length u32, bytes)* | crc32c u32 |
// Because the range is reserved up front, the base pointer never moves, so
// readers may hold it while the owner appends (the owner serialises writers).

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A file-backed, memory-mapped array of `Element`, growable up to `capacity`.
///
/// Not internally synchronised: one writer at a time (the shard's applier),
/// readers concurrently with the writer only for elements below a count they
/// read under the shard's lock.
package final class MappedArray<Element: BitwiseCopyable>: @unchecked Sendable {
    package let path: String
    package let capacity: Int
    package let base: UnsafeMutablePointer<Element>
    package private(set) var count: Int
    private let fd: Int32
    private let reservedBytes: Int
    private var accessibleBytes: Int
    private var fileCount: Int
    private var dirtyChunks = Set<Int>()
    private static var chunkBytes: Int { 1 << 16 }
    private static var stride: Int { MemoryLayout<Element>.stride }

    /// Opens (or creates) the file and maps its first `count` elements.
    /// - Parameters:
    ///   - count: how many elements of the file are valid (from the manifest); later bytes are dropped.
    ///   - capacity: the most elements this array may ever hold.
    ///   - committedFlush: the manifest's flush sequence number; an undo file from a later flush is applied.
    /// - Throws: `.corrupt` when the file is shorter than `count` elements; `.io` on system errors.
    package init(path: String, count: Int, capacity: Int, committedFlush: UInt64 = 0) throws {
        precondition(count <= capacity)
        self.path = path
        self.capacity = capacity
        let stride = Self.stride
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw ioError("open", path) }
        do { try MappedArray.applyUndo(fd: fd, path: path, committedFlush: committedFlush) } catch {
            close(fd)
            throw error
        }
        var st = stat()
        guard fstat(fd, &st) == 0 else { close(fd); throw ioError("stat", path) }
        let fileBytes = count * stride
        if Int(st.st_size) < fileBytes {
            close(fd)
            throw VQError(.corrupt, "\(path) holds \(st.st_size) bytes; expected at least \(fileBytes) for \(count) entries")
        }
        if Int(st.st_size) > fileBytes {
            // Bytes of a flush that never reached the manifest: the WAL will redo them.
            _ = ftruncate(fd, off_t(fileBytes))
        }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let reserved = max(page, (capacity * stride + page - 1) / page * page)
        #if os(Linux)
        let flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE
        #else
        let flags = MAP_PRIVATE | MAP_ANON
        #endif
        let region = mmap(nil, reserved, PROT_NONE, flags, -1, 0)
        guard let region, region != MAP_FAILED else { close(fd); throw ioError("reserve memory for", path) }
        #if os(Linux)
        // Appended rows live in anonymous memory: huge pages make its page faults far rarer.
        if reserved >= 4 << 20 { _ = madvise(region, reserved, MADV_HUGEPAGE) }
        #endif
        var accessible = 0
        if fileBytes > 0 {
            accessible = (fileBytes + page - 1) / page * page
            let mapped = mmap(region, accessible, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, fd, 0)
            guard mapped == region else {
                munmap(region, reserved)
                close(fd)
                throw ioError("mmap", path)
            }
        }
        self.fd = fd
        self.reservedBytes = reserved
        self.accessibleBytes = accessible
        self.base = region.bindMemory(to: Element.self, capacity: capacity)
        self.count = count
        self.fileCount = count
    }

    deinit {
        munmap(UnsafeMutableRawPointer(base), reservedBytes)
        close(fd)
    }

    /// Makes room for `newCount` elements (anonymous pages past the file's).
    private func ensureAccessible(_ newCount: Int) throws {
        guard newCount <= capacity else {
            throw VQError(.internal, "\(path) is full: \(capacity) entries")
        }
        let need = newCount * Self.stride
        guard need > accessibleBytes else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        var grow = max(need - accessibleBytes, max(accessibleBytes / 2, 2 << 20))
        grow = (grow + page - 1) / page * page
        grow = min(grow, reservedBytes - accessibleBytes)
        let start = UnsafeMutableRawPointer(base) + accessibleBytes
        // The reservation is anonymous memory: opening it up keeps one mapping (and its huge-page advice).
        guard mprotect(start, grow, PROT_READ | PROT_WRITE) == 0 else { throw ioError("grow mapping of", path) }
        accessibleBytes += grow
    }

    /// Appends `values`.
    package func append(contentsOf values: UnsafeBufferPointer<Element>) throws {
        guard values.count > 0 else { return }
        try ensureAccessible(count + values.count)
        (base + count).update(from: values.baseAddress!, count: values.count)
        count += values.count
    }

    package func append(_ value: Element) throws {
        try ensureAccessible(count + 1)
        base[count] = value
        count += 1
    }

    /// Marks elements `range` (already below `count`) as changed, so `flush` writes them.
    package func markDirty(_ range: Range<Int>) {
        guard range.lowerBound < fileCount else { return }
        let first = range.lowerBound * Self.stride / Self.chunkBytes
        let last = (min(range.upperBound, fileCount) * Self.stride - 1) / Self.chunkBytes
        for c in first...last { dirtyChunks.insert(c) }
    }

    package subscript(i: Int) -> Element {
        get { base[i] }
        set {
            base[i] = newValue
            if i < fileCount { markDirty(i..<(i + 1)) }
        }
    }

    package var buffer: UnsafeBufferPointer<Element> { UnsafeBufferPointer(start: base, count: count) }

    /// Whether `flush` has anything to write.
    package var isDirty: Bool { count != fileCount || !dirtyChunks.isEmpty }

    private var undoPath: String { path + ".undo" }
    private static var undoMagic: UInt32 { 0x444E_5556 }  // "VUND"

    /// Puts back the bytes an uncommitted flush overwrote (see the header), then removes the undo file.
    private static func applyUndo(fd: Int32, path: String, committedFlush: UInt64) throws {
        let undo = path + ".undo"
        guard FileIO.exists(undo) else { return }
        defer { FileIO.remove(undo) }
        // A torn undo file was never followed by overwrites (they start after it is durable).
        guard let (seq, entries) = try readUndo(undo), seq > committedFlush else { return }  // committed: its overwrites stand
        for (offset, bytes) in entries {
            try bytes.withUnsafeBytes { try FileIO.pwriteAll(fd, $0, at: offset, path: path) }
        }
        try FileIO.sync(fd, path: path)
    }

    /// An intact undo file's flush sequence and (offset, old bytes) entries; nil when absent,
    /// torn or damaged. - Throws: when it exists but cannot be read.
    private static func readUndo(_ undo: String) throws -> (sequence: UInt64, entries: [(offset: Int, bytes: [UInt8])])? {
        guard FileIO.exists(undo) else { return nil }
        let bytes = try FileIO.readAll(undo)
        guard bytes.count >= 16 else { return nil }
        return bytes.withUnsafeBytes { raw in
            guard raw.loadUnaligned(as: UInt32.self) == undoMagic,
                  CRC32C.update(0, UnsafeRawBufferPointer(rebasing: raw[0..<(raw.count - 4)])) == raw.loadUnaligned(fromByteOffset: raw.count - 4, as: UInt32.self)
            else { return nil }
            var out: [(Int, [UInt8])] = []
            var at = 12
            while at + 12 <= raw.count - 4 {
                let offset = Int(raw.loadUnaligned(fromByteOffset: at, as: UInt64.self))
                let length = Int(raw.loadUnaligned(fromByteOffset: at + 8, as: UInt32.self))
                at += 12
                guard at + length <= raw.count - 4 else { break }
                out.append((offset, Array(raw[at..<(at + length)])))
                at += length
            }
            return (raw.loadUnaligned(fromByteOffset: 4, as: UInt64.self), out)
        }
    }

    /// Removes the undo file of the last flush, once the manifest that covers it is durable.
    package func dropUndo() {
        FileIO.remove(undoPath)
    }

    /// Writes changed and appended elements to the file and fsyncs it.
    /// - Parameter sequence: the flush's number, recorded in the undo file of overwritten chunks.
    package func flush(sequence: UInt64 = 0) throws {
        guard isDirty else { return }
        let raw = UnsafeRawPointer(base)
        let fileBytes = fileCount * Self.stride
        let overwritten = dirtyChunks.sorted().compactMap { c -> Range<Int>? in
            let start = c * Self.chunkBytes
            let end = min(start + Self.chunkBytes, fileBytes)
            return start < end ? start..<end : nil
        }
        if !overwritten.isEmpty {
            // A retry of the same flush (the first attempt failed, a full disk) keeps the old
            // bytes its undo file already saved: the file may hold new ones there by now.
            let saved = try Self.readUndo(undoPath).flatMap { $0.sequence == sequence ? $0.entries : nil } ?? []
            var undo = ByteWriter(capacity: 16 + overwritten.reduce(0) { $0 + $1.count + 12 })
            undo.u32(Self.undoMagic)
            undo.u64(sequence)
            for (offset, bytes) in saved {
                undo.u64(UInt64(offset))
                undo.u32(UInt32(bytes.count))
                undo.bytes += bytes
            }
            let kept = Set(saved.map(\.offset))
            for r in overwritten where !kept.contains(r.lowerBound) {
                undo.u64(UInt64(r.lowerBound))
                undo.u32(UInt32(r.count))
                var old = [UInt8](repeating: 0, count: r.count)
                var done = 0
                while done < r.count {
                    let n = old.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, r.count - done, off_t(r.lowerBound + done)) }
                    if n < 0 && errno == EINTR { continue }
                    guard n > 0 else { throw ioError("read", path) }
                    done += n
                }
                undo.bytes += old
            }
            undo.u32(CRC32C.checksum(undo.bytes))
            try FileIO.writeAtomically(undoPath, undo.bytes)
        }
        for c in dirtyChunks.sorted() {
            let start = c * Self.chunkBytes
            let end = min(start + Self.chunkBytes, fileBytes)
            if start < end {
                try FileIO.pwriteAll(fd, UnsafeRawBufferPointer(start: raw + start, count: end - start), at: start, path: path)
            }
        }
        let newBytes = count * Self.stride
        if newBytes > fileBytes {
            try FileIO.pwriteAll(fd, UnsafeRawBufferPointer(start: raw + fileBytes, count: newBytes - fileBytes), at: fileBytes, path: path)
        }
        try FileIO.sync(fd, path: path)
        dirtyChunks.removeAll()
        fileCount = count
    }
}
