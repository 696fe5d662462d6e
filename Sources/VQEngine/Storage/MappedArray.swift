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
//
// Every file carries block checksums: the CRC-32C of each 64 KiB chunk as last flushed, in
// NAME.sum0 and NAME.sum1, written in turn (the slot a flush writes never holds the sums the
// last committed manifest relies on, so a crash mid-write costs nothing). Opening takes the
// newest slot whose flush the manifest covers and whose length matches. They are checked
//   - lazily, per chunk, before a flush replaces a chunk's bytes (damage is never laundered
//     into fresh checksums), and
//   - in full by `verify()`, which the shard's scrub after open and `vq check` call.
//
//   NAME.sumN: | magic "VSUM" u32 | flush seq u64 | file bytes u64 | chunk bytes u32 | count u32 |
//              crc32c of each chunk u32 * count | crc32c of the above u32 |
// Because the range is reserved up front, the base pointer never moves, so
// readers may hold it while the owner appends (the owner serialises writers).

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

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

    // Block checksums (see the header). Guarded by `fileLock`, which `flush` holds throughout
    // and `verify` per chunk: a check never sees a chunk written but not yet summed.
    private let fileLock = NSLock()
    /// The CRC-32C of each chunk of the file's first `fileCount` elements; nil when unknown (no
    /// usable sums file: a directory from before them), until the next flush sums every chunk.
    private var sums: [UInt32]?
    /// The sums as they were before the first flush under `sumsSequence`: what an undo file's
    /// saved bytes are checked against when that flush is tried again.
    private var sumsBeforeSequence: [UInt32]?
    /// The slot (0 or 1) holding `sums`, and the flush sequence it was written under.
    private var sumsSlot = 1
    private var sumsSequence = UInt64.max
    /// Counts flushes (guarded by `fileLock`): `verify` reads a chunk without the lock and trusts
    /// the read only if no flush began meanwhile.
    private var flushCount: UInt64 = 0
    /// Tests: runs in `verify` between reading a chunk's sum and reading its bytes (where a flush
    /// may slip in).
    var verifyHookForTesting: (() -> Void)?

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
        // The sums of the state the manifest describes: the newest slot it covers, of this length.
        var best: (slot: Int, sequence: UInt64, sums: [UInt32])?
        for slot in 0..<2 {
            guard let (seq, bytes, sums) = MappedArray.readSums(sumsPath(slot)) else { continue }
            // Sums of a flush the manifest never committed: its sequence number will be used again.
            if seq > committedFlush { FileIO.remove(sumsPath(slot)); continue }
            guard bytes == fileBytes else { continue }
            if best == nil || seq > best!.sequence { best = (slot, seq, sums) }
        }
        if let best {
            sums = best.sums
            sumsSlot = best.slot
            sumsSequence = best.sequence
        }
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

    /// Appends `n` copies of `value`.
    package func append(repeating value: Element, count n: Int) throws {
        guard n > 0 else { return }
        try ensureAccessible(count + n)
        (base + count).update(repeating: value, count: n)
        count += n
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

    private func sumsPath(_ slot: Int) -> String { path + ".sum\(slot)" }
    private static var sumsMagic: UInt32 { 0x4D55_5356 }  // "VSUM"

    /// A sums file's flush sequence, file length and chunk checksums; nil when absent, torn or
    /// for another chunk size.
    private static func readSums(_ path: String) -> (sequence: UInt64, bytes: Int, sums: [UInt32])? {
        guard FileIO.exists(path), let raw = try? FileIO.readAll(path), raw.count >= 28 else { return nil }
        return raw.withUnsafeBytes { r -> (UInt64, Int, [UInt32])? in
            let n = Int(r.loadUnaligned(fromByteOffset: 24, as: UInt32.self))
            guard r.loadUnaligned(as: UInt32.self) == sumsMagic, r.count == 32 + 4 * n,
                  Int(r.loadUnaligned(fromByteOffset: 20, as: UInt32.self)) == chunkBytes,
                  CRC32C.update(0, UnsafeRawBufferPointer(rebasing: r[0..<(r.count - 4)])) == r.loadUnaligned(fromByteOffset: r.count - 4, as: UInt32.self)
            else { return nil }
            let bytes = r.loadUnaligned(fromByteOffset: 12, as: UInt64.self)
            guard bytes <= UInt64(Int.max), n == (Int(bytes) + chunkBytes - 1) / chunkBytes else { return nil }
            return (r.loadUnaligned(fromByteOffset: 4, as: UInt64.self), Int(bytes),
                    (0..<n).map { r.loadUnaligned(fromByteOffset: 28 + 4 * $0, as: UInt32.self) })
        }
    }

    /// Writes `newSums` into the slot that does not hold the committed ones (the same slot again
    /// when this flush sequence already wrote one: a retry), in place and durably.
    private func writeSums(_ newSums: [UInt32], bytes: Int, sequence: UInt64) throws {
        let slot = sequence == sumsSequence ? sumsSlot : 1 - sumsSlot
        var w = ByteWriter(capacity: 32 + 4 * newSums.count)
        w.u32(Self.sumsMagic)
        w.u64(sequence)
        w.u64(UInt64(bytes))
        w.u32(UInt32(Self.chunkBytes))
        w.u32(UInt32(newSums.count))
        for c in newSums { w.u32(c) }
        w.u32(CRC32C.checksum(w.bytes))
        let file = sumsPath(slot)
        let created = !FileIO.exists(file)
        let sfd = open(file, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
        guard sfd >= 0 else { throw ioError("create", file) }
        defer { close(sfd) }
        try w.bytes.withUnsafeBytes { try FileIO.pwriteAll(sfd, $0, at: 0, path: file) }
        guard ftruncate(sfd, off_t(w.bytes.count)) == 0 else { throw ioError("truncate", file) }
        try FileIO.sync(sfd, path: file)
        if created { try FileIO.syncDirectory(FileIO.directoryOf(file)) }
        if sequence != sumsSequence { sumsBeforeSequence = sums }
        sumsSlot = slot
        sumsSequence = sequence
    }

    /// Reads `range` of the file (not the mapping: the file is what the checksums describe).
    private func readFile(_ range: Range<Int>) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: range.count)
        let done = try out.withUnsafeMutableBytes { try FileIO.readFull(fd, into: $0, at: range.lowerBound, path: path) }
        guard done == range.count else { throw VQError(.corrupt, "\(path) ends at byte \(range.lowerBound + done); expected \(range.upperBound)") }
        return out
    }

    private func damage(_ range: Range<Int>) -> String {
        "\(path) is damaged (checksum mismatch in bytes \(range.lowerBound)..<\(range.upperBound))"
    }

    /// Checks the whole file against its block checksums, one chunk at a time. Chunks are read
    /// without the lock (a flush never waits for the scrub); a chunk read while a flush ran is
    /// read again.
    /// - Returns: the first damage found, naming the file and bytes; nil when every chunk matches
    ///   or there are no checksums yet. A file shorter than its sums is damage; other read errors
    ///   (EIO) are not reported as damage here (the reads and writes that meet them fail).
    package func verify() -> String? {
        var c = 0
        var retries = 0
        while true {
            let next: (epoch: UInt64, expected: UInt32, range: Range<Int>)? = fileLock.withLock {
                guard let sums, c < sums.count else { return nil }
                return (flushCount, sums[c], (c * Self.chunkBytes)..<min((c + 1) * Self.chunkBytes, fileCount * Self.stride))
            }
            guard let (epoch, expected, range) = next else { return nil }
            verifyHookForTesting?()
            let crc: UInt32
            do {
                crc = try readFile(range).withUnsafeBytes { CRC32C.update(0, $0) }
            } catch let e as VQError where e.kind == .corrupt {
                return e.message
            } catch {
                c += 1
                continue
            }
            if fileLock.withLock({ flushCount }) != epoch {
                retries += 1
                if retries < 100 { continue }
                // Flushes keep overlapping: check this chunk with them held off.
                let problem: String? = fileLock.withLock {
                    guard let sums, c < sums.count else { return nil }
                    let r = (c * Self.chunkBytes)..<min((c + 1) * Self.chunkBytes, fileCount * Self.stride)
                    guard let bytes = try? readFile(r) else { return nil }
                    return bytes.withUnsafeBytes({ CRC32C.update(0, $0) }) == sums[c] ? nil : damage(r)
                }
                if let problem { return problem }
            } else if crc != expected {
                return damage(range)
            }
            retries = 0
            c += 1
        }
    }

    /// Removes the undo file of the last flush, once the manifest that covers it is durable.
    package func dropUndo() {
        FileIO.remove(undoPath)
    }

    /// Writes changed and appended elements to the file, fsyncs it, and records the chunks' new
    /// checksums.
    /// - Parameter sequence: the flush's number, recorded in the undo file of overwritten chunks
    ///   and in the sums file.
    /// - Throws: `.corrupt` naming the file when bytes about to be replaced do not match their
    ///   checksum (nothing is written then); `.io` or `.insufficientStorage` on system errors (the
    ///   same flush may be tried again).
    package func flush(sequence: UInt64 = 0) throws {
        guard isDirty else { return }
        fileLock.lock()
        defer { fileLock.unlock() }
        let raw = UnsafeRawPointer(base)
        let chunk = Self.chunkBytes
        let fileBytes = fileCount * Self.stride
        let newBytes = count * Self.stride
        let dirty = dirtyChunks.sorted()
        let overwritten = dirty.compactMap { c -> Range<Int>? in
            let start = c * chunk
            let end = min(start + chunk, fileBytes)
            return start < end ? start..<end : nil
        }
        // A retry of the same flush (the first attempt failed, a full disk) keeps the old bytes
        // its undo file already saved: the file may hold new ones there by now.
        let saved = overwritten.isEmpty ? [] : (try Self.readUndo(undoPath).flatMap { $0.sequence == sequence ? $0.entries : nil } ?? [])
        let savedAt = Dictionary(saved.map { ($0.offset, $0.bytes) }, uniquingKeysWith: { first, _ in first })
        var old: [(offset: Int, bytes: [UInt8])] = []
        for r in overwritten where savedAt[r.lowerBound] == nil { old.append((r.lowerBound, try readFile(r))) }
        flushCount += 1
        // What the file holds now, to put back if this flush fails midway: the sums still
        // describe it, and a retry starts from it (`old`, plus saved chunks as they are now).
        var before = old
        for r in overwritten where savedAt[r.lowerBound] != nil { before.append((r.lowerBound, try readFile(r))) }
        // The bytes this flush replaces must be what was summed: damage found now is reported,
        // not summed afresh. The partial last chunk counts (appends extend it).
        if let sums {
            let before = sequence == sumsSequence ? sumsBeforeSequence : sums
            for (offset, bytes) in saved where offset % chunk == 0 && offset / chunk < (before?.count ?? 0) {
                if CRC32C.checksum(bytes) != before![offset / chunk] { throw VQError(.corrupt, damage(offset..<(offset + bytes.count))) }
            }
            for (offset, bytes) in old where CRC32C.checksum(bytes) != sums[offset / chunk] {
                throw VQError(.corrupt, damage(offset..<(offset + bytes.count)))
            }
            let tail = fileBytes / chunk * chunk
            if newBytes > fileBytes && tail < fileBytes && !dirtyChunks.contains(tail / chunk),
               CRC32C.checksum(try readFile(tail..<fileBytes)) != sums[tail / chunk] {
                throw VQError(.corrupt, damage(tail..<fileBytes))
            }
        }
        if !overwritten.isEmpty {
            var undo = ByteWriter(capacity: 16 + overwritten.reduce(0) { $0 + $1.count + 12 })
            undo.u32(Self.undoMagic)
            undo.u64(sequence)
            for (offset, bytes) in saved + old {
                undo.u64(UInt64(offset))
                undo.u32(UInt32(bytes.count))
                undo.bytes += bytes
            }
            undo.u32(CRC32C.checksum(undo.bytes))
            try FileIO.writeAtomically(undoPath, undo.bytes)
        }
        // The new sums: every chunk when they were unknown, else the overwritten ones and those
        // from the old end on.
        let chunks = (newBytes + chunk - 1) / chunk
        var newSums = sums ?? []
        var changed = Set(sums == nil ? Array(0..<chunks) : dirty.filter { $0 * chunk < fileBytes })
        if sums != nil { changed.formUnion((fileBytes / chunk)..<chunks) }
        newSums += [UInt32](repeating: 0, count: max(0, chunks - newSums.count))
        for c in changed {
            let start = c * chunk
            newSums[c] = CRC32C.update(0, UnsafeRawBufferPointer(start: raw + start, count: min(start + chunk, newBytes) - start))
        }
        do {
            for r in overwritten {
                try FileIO.pwriteAll(fd, UnsafeRawBufferPointer(start: raw + r.lowerBound, count: r.count), at: r.lowerBound, path: path)
            }
            if newBytes > fileBytes {
                try FileIO.pwriteAll(fd, UnsafeRawBufferPointer(start: raw + fileBytes, count: newBytes - fileBytes), at: fileBytes, path: path)
            }
            try FileIO.sync(fd, path: path)
            try writeSums(newSums, bytes: newBytes, sequence: sequence)
        } catch {
            // Put the file back as the sums describe it (in place: no new space needed), so a
            // check meanwhile finds no damage; the retry writes it all again.
            var restored = true
            for (offset, bytes) in before {
                do { try bytes.withUnsafeBytes { try FileIO.pwriteAll(fd, $0, at: offset, path: path) } } catch { restored = false }
            }
            if ftruncate(fd, off_t(fileBytes)) != 0 { restored = false }
            if (try? FileIO.sync(fd, path: path)) == nil { restored = false }
            // Not put back: the sums no longer describe the file; the next flush sums it afresh.
            if !restored { sums = nil }
            throw error
        }
        sums = newSums
        dirtyChunks.removeAll()
        fileCount = count
    }
}
