// The write-ahead log of one shard.
//
// File layout (little-endian), files named by their first operation number:
//
//   header (16 bytes)  | magic "VWAL" u32 | version u32 | first op u64 |
//   record             | body length u32 | crc32c u32 | op u64 | body ... |
//                        crc covers the op number and the body
//
// Appends go to an in-memory buffer under a short lock and get consecutive
// operation numbers. `sync(upTo:)` is group commit: one caller at a time
// writes everything buffered so far and fsyncs it; callers whose operation was
// covered return without a syscall. Files rotate once they pass `fileLimit`;
// files whose operations are all flushed to segments are removed.
//
// Opening validates every record. A damaged or torn record at the very end
// of the last file is truncated with a warning; damage followed by intact
// records, or a gap in operation numbers, is refused: skipping it would lose
// acknowledged writes silently. A missing newest file leaves no gap between the
// files that remain, so each new file's first operation is also recorded in
// `head` (| first op u64 | crc32c u32 |, written once the file is durable): a
// newest file older than `head` says, and names, what went missing. Opening
// anyway (the operations are gone for good) takes `acceptGap`
// (`VQ_ACCEPT_WAL_GAP=1`).

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// One shard's write-ahead log: durable, checksummed, numbered operations.
package final class WAL: Sendable {
    package static let magic: UInt32 = 0x4C41_5756  // "VWAL"
    package static let version: UInt32 = 1
    static let headerSize = 16
    static let recordHeaderSize = 16
    static let maxRecordBytes = 1 << 30

    private struct State {
        var pending = ByteWriter(capacity: 0)
        var pendingFirstOp: UInt64 = 0
        var nextOp: UInt64
        var durableOp: UInt64
        var failed: VQError?
    }

    private struct FileState {
        var fd: Int32
        var path: String
        var size: Int
        var files: [(firstOp: UInt64, name: String)]
        /// The buffer `sync` swaps with the writers' one.
        var spare: [UInt8] = []
        /// A failed write left bytes that could not be cut off: nothing more goes to this file.
        var torn = false
    }

    /// The largest buffer kept for reuse between syncs.
    static let spareLimit = 64 << 20

    package let directory: String
    private let fileLimit: Int
    private let state: Mutex<State>
    private let file: Mutex<FileState>

    /// Opens the log in `directory`, replaying records with op >= `replayFrom` through `apply`.
    ///
    /// - Parameters:
    ///   - nextOpAtLeast: the first operation number to use if the log is empty (flushed op + 1).
    ///   - warn: receives one line per repaired problem (a truncated tail).
    /// - Throws: `.corrupt` for damage that cannot be repaired without losing acknowledged writes.
    package init(directory: String, nextOpAtLeast: UInt64, replayFrom: UInt64, fileLimit: Int = 32 << 20, acceptGap: Bool = false,
                 warn: (String) -> Void, apply: (UInt64, UnsafeRawBufferPointer) throws -> Void) throws {
        self.directory = directory
        self.fileLimit = fileLimit
        try FileIO.makeDirectories(directory)
        var files: [(firstOp: UInt64, name: String)] = []
        for name in FileIO.list(directory) {
            if let op = DataDirectory.walFirstOp(fileName: name) { files.append((op, name)) }
        }
        files.sort { $0.firstOp < $1.firstOp }

        var expected: UInt64? = nil
        var lastSize = 0
        for (index, entry) in files.enumerated() {
            let path = directory + "/" + entry.name
            let isLast = index == files.count - 1
            let bytes = try FileIO.readAll(path)
            let result = try bytes.withUnsafeBytes { (raw) -> (end: Int, next: UInt64) in
                try WAL.scan(raw, path: path, nameOp: entry.firstOp, expected: expected, isLast: isLast,
                             replayFrom: replayFrom, apply: apply)
            }
            if result.end < bytes.count {
                // Only reachable for the last file: scan() throws otherwise.
                warn("WAL \(path): damaged or torn tail at byte \(result.end) removed (\(bytes.count - result.end) bytes); operations before it are intact")
                let fd = open(path, O_WRONLY | O_CLOEXEC)
                guard fd >= 0, ftruncate(fd, off_t(result.end)) == 0 else { throw ioError("truncate", path) }
                try FileIO.sync(fd, path: path)
                close(fd)
            }
            expected = result.next
            lastSize = result.end
        }
        if let first = files.first?.firstOp, first > nextOpAtLeast {
            throw VQError(.corrupt, "WAL in \(directory) starts at operation \(first) but operations from \(nextOpAtLeast) are not in any segment; refusing to open with a gap")
        }
        // The newest file the log made, against the newest one present.
        if let head = WAL.readHead(directory), head > (files.last?.firstOp ?? 0) {
            let from = max(expected ?? nextOpAtLeast, nextOpAtLeast)
            let message = "WAL in \(directory) is missing its newest file (operations from \(head) on): operations from \(from) on are lost"
            guard acceptGap else {
                throw VQError(.corrupt, message + "; refusing to open", hint: "restore the file, or set VQ_ACCEPT_WAL_GAP=1 to open without those operations")
            }
            warn(message + "; opened anyway (VQ_ACCEPT_WAL_GAP=1)")
        }
        var next = expected ?? nextOpAtLeast
        if next < nextOpAtLeast {
            // Every logged operation is already in the segments.
            for entry in files { FileIO.remove(directory + "/" + entry.name) }
            files = []
            next = nextOpAtLeast
        }
        var fs: FileState
        if let last = files.last, lastSize >= WAL.headerSize {
            let path = directory + "/" + last.name
            let fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC)
            guard fd >= 0 else { throw ioError("open", path) }
            fs = FileState(fd: fd, path: path, size: lastSize, files: files)
        } else {
            if let last = files.last {
                // A file whose header never became durable holds nothing.
                FileIO.remove(directory + "/" + last.name)
                files.removeLast()
            }
            fs = try WAL.createFile(directory: directory, firstOp: next, files: files)
        }
        // (A log from before `head` existed gets one now, so later losses are seen.)
        if WAL.readHead(directory) != (fs.files.last?.firstOp ?? 0), let newest = fs.files.last?.firstOp {
            try WAL.writeHead(directory, newest)
        }
        self.file = Mutex(fs)
        self.state = Mutex(State(nextOp: next, durableOp: next - 1))
    }

    private static func headPath(_ directory: String) -> String { directory + "/head" }

    /// The first operation of the newest file the log made, if recorded (nil when absent or damaged).
    private static func readHead(_ directory: String) -> UInt64? {
        guard let bytes = try? FileIO.readAll(headPath(directory)), bytes.count == 12 else { return nil }
        return bytes.withUnsafeBytes { raw in
            let op = UInt64(littleEndian: raw.loadUnaligned(as: UInt64.self))
            let crc = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
            return CRC32C.update(0, UnsafeRawBufferPointer(rebasing: raw[0..<8])) == crc ? op : nil
        }
    }

    private static func writeHead(_ directory: String, _ firstOp: UInt64) throws {
        var w = ByteWriter(capacity: 12)
        w.u64(firstOp)
        w.u32(w.bytes.withUnsafeBytes { CRC32C.update(0, $0) })
        try FileIO.writeAtomically(headPath(directory), w.bytes)
    }

    /// Validates one file's records; returns where the valid part ends and the next expected op.
    private static func scan(_ raw: UnsafeRawBufferPointer, path: String, nameOp: UInt64, expected: UInt64?, isLast: Bool,
                             replayFrom: UInt64, apply: (UInt64, UnsafeRawBufferPointer) throws -> Void) throws -> (end: Int, next: UInt64) {
        guard raw.count >= headerSize else {
            if isLast { return (0, expected ?? nameOp) }
            throw VQError(.corrupt, "WAL \(path) is shorter than its header but is not the newest file")
        }
        let magic = raw.loadUnaligned(fromByteOffset: 0, as: UInt32.self).littleEndian
        let version = raw.loadUnaligned(fromByteOffset: 4, as: UInt32.self).littleEndian
        let first = raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self).littleEndian
        guard magic == WAL.magic else { throw VQError(.corrupt, "WAL \(path) has a bad magic number; it is not a vq WAL file") }
        guard version == WAL.version else { throw VQError(.corrupt, "WAL \(path) has format version \(version); this vq reads version \(WAL.version)") }
        guard first == nameOp else { throw VQError(.corrupt, "WAL \(path) starts at operation \(first) but its name says \(nameOp)") }
        // A gap below the flushed point loses nothing (those operations are in the segments): a
        // shard that adopted a copy's segments restarts its log past them (`restart(after:)`).
        if let expected, first != expected, !(first > expected && first == replayFrom) {
            throw VQError(.corrupt, "WAL \(path) starts at operation \(first); expected \(expected): operations are missing")
        }
        var op = first
        var offset = headerSize
        while offset < raw.count {
            if let length = validRecord(raw, at: offset, op: op) {
                if op >= replayFrom {
                    try apply(op, UnsafeRawBufferPointer(rebasing: raw[(offset + recordHeaderSize)..<(offset + recordHeaderSize + length)]))
                }
                offset += recordHeaderSize + length
                op += 1
                continue
            }
            // Damage at `offset`. A tail is only a tail if nothing valid follows it.
            if !isLast {
                throw VQError(.corrupt, "WAL \(path) is damaged at byte \(offset) (operation \(op)) but newer WAL files follow; refusing to skip acknowledged operations")
            }
            if let later = findRecord(raw, after: offset, ops: [op, op + 1]) {
                throw VQError(.corrupt, "WAL \(path) is damaged at byte \(offset) (operation \(op)) and intact records follow at byte \(later); refusing to skip them",
                              hint: "restore the shard from a replica or backup")
            }
            return (offset, op)
        }
        return (offset, op)
    }

    /// The body length of an intact record for `op` at `offset`, or nil.
    private static func validRecord(_ raw: UnsafeRawBufferPointer, at offset: Int, op: UInt64) -> Int? {
        guard raw.count - offset >= recordHeaderSize else { return nil }
        let length = Int(raw.loadUnaligned(fromByteOffset: offset, as: UInt32.self).littleEndian)
        let crc = raw.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self).littleEndian
        let recordOp = raw.loadUnaligned(fromByteOffset: offset + 8, as: UInt64.self).littleEndian
        guard recordOp == op, length <= maxRecordBytes, raw.count - offset - recordHeaderSize >= length else { return nil }
        let covered = UnsafeRawBufferPointer(rebasing: raw[(offset + 8)..<(offset + recordHeaderSize + length)])
        return CRC32C.update(0, covered) == crc ? length : nil
    }

    private static func findRecord(_ raw: UnsafeRawBufferPointer, after offset: Int, ops: [UInt64]) -> Int? {
        var at = offset + 1
        while at + recordHeaderSize <= raw.count {
            let recordOp = raw.loadUnaligned(fromByteOffset: at + 8, as: UInt64.self).littleEndian
            if ops.contains(recordOp), validRecord(raw, at: at, op: recordOp) != nil { return at }
            at += 1
        }
        return nil
    }

    private static func createFile(directory: String, firstOp: UInt64, files: [(firstOp: UInt64, name: String)]) throws -> FileState {
        let name = DataDirectory.walFileName(firstOp: firstOp)
        let path = directory + "/" + name
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw ioError("create", path) }
        var header = ByteWriter(capacity: headerSize)
        header.u32(magic)
        header.u32(version)
        header.u64(firstOp)
        do {
            try header.bytes.withUnsafeBytes { raw in try FileIO.writeAll(fd, raw, path: path) }
            try FileIO.sync(fd, path: path)
            try FileIO.syncDirectory(directory)
            try writeHead(directory, firstOp)
        } catch {
            // Leave no half-made file behind: replay would take it for damage.
            close(fd)
            FileIO.remove(path)
            throw error
        }
        return FileState(fd: fd, path: path, size: headerSize, files: files + [(firstOp, name)])
    }

    deinit {
        _ = file.withLock { close($0.fd) }
    }

    // MARK: appending

    /// The next operation number that `append` will assign.
    package var nextOp: UInt64 { state.withLock { $0.nextOp } }

    /// The highest operation number known durable.
    package var durableOp: UInt64 { state.withLock { $0.durableOp } }

    /// Buffers one record and returns its operation number. Not durable until `sync(upTo:)`.
    /// - Throws: if an earlier write failed (the log then refuses all writes).
    package func append(_ body: UnsafeRawBufferPointer) throws -> UInt64 {
        try append { $0.bytes.append(contentsOf: body) }
    }

    /// Buffers one record whose body `encode` appends straight into the log's buffer.
    ///
    /// `encode` runs under the log's lock; it should only append bytes.
    /// - Returns: the record's operation number.
    package func append(encodedBy encode: (inout ByteWriter) -> Void) throws -> UInt64 {
        let result: Result<UInt64, VQError> = state.withLock { s in
            if let failed = s.failed { return .failure(failed) }
            let op = s.nextOp
            if s.pending.bytes.isEmpty { s.pendingFirstOp = op }
            s.nextOp += 1
            let start = s.pending.bytes.count
            s.pending.u32(0)  // length, patched below
            s.pending.u32(0)  // crc, patched below
            s.pending.u64(op)
            encode(&s.pending)
            let length = s.pending.bytes.count - start - WAL.recordHeaderSize
            let crc = s.pending.bytes.withUnsafeBytes { CRC32C.update(0, UnsafeRawBufferPointer(rebasing: $0[(start + 8)...])) }
            s.pending.bytes.withUnsafeMutableBytes { raw in
                raw.storeBytes(of: UInt32(length).littleEndian, toByteOffset: start, as: UInt32.self)
                raw.storeBytes(of: crc.littleEndian, toByteOffset: start + 4, as: UInt32.self)
            }
            return .success(op)
        }
        return try result.get()
    }

    /// Makes every operation up to `op` durable (group commit).
    package func sync(upTo op: UInt64) throws {
        if state.withLock({ $0.durableOp >= op }) { return }
        let result: Result<Void, VQError> = file.withLock { f in
            // Whoever held the file lock before us may have covered `op`.
            // Double buffering: the writers' buffer and this one swap, so neither is reallocated.
            var buffer = f.spare
            f.spare = []
            buffer.removeAll(keepingCapacity: true)
            let (firstOp, lastOp, failed): (UInt64, UInt64, VQError?) = state.withLock { s in
                if s.durableOp >= op { return (0, 0, nil) }
                swap(&buffer, &s.pending.bytes)
                return (s.pendingFirstOp, s.nextOp - 1, s.failed)
            }
            defer {
                if buffer.capacity <= WAL.spareLimit {
                    buffer.removeAll(keepingCapacity: true)
                    f.spare = buffer
                }
            }
            if buffer.isEmpty {
                // Nothing new, but an earlier batch failed: it is retried (in `pending`).
                if let failed { return .failure(failed) }
                return .success(())
            }
            if f.torn, let failed {
                // The file could not be cut back after a failure: no more writes to it.
                state.withLock { s in
                    buffer.append(contentsOf: s.pending.bytes)
                    swap(&buffer, &s.pending.bytes)
                    s.pendingFirstOp = firstOp
                }
                return .failure(failed)
            }
            do {
                if f.size >= fileLimit {
                    // A new file that cannot be made now (EMFILE, say) is not fatal: keep appending
                    // to the current one and rotate at the next sync.
                    if let next = try? WAL.createFile(directory: directory, firstOp: firstOp, files: f.files) {
                        close(f.fd)
                        f = next
                    }
                }
                let path = f.path
                let fd = f.fd
                try buffer.withUnsafeBytes { raw in try FileIO.writeAll(fd, raw, path: path) }
                try FileIO.sync(fd, path: path)
                f.size += buffer.count
                state.withLock {
                    $0.durableOp = lastOp
                    $0.failed = nil
                }
                return .success(())
            } catch {
                // Not durable: cut the file back to what is (a failed fsync may have dropped the
                // pages), and keep the batch, in order, ahead of anything newer for the next try.
                // Meanwhile new writes are refused with the reason (a full disk: 507); once a try
                // succeeds (space was freed) the log takes writes again, no restart needed.
                let e = VQError.wrap(error)
                var failure = VQError(e.kind == .insufficientStorage ? .insufficientStorage : .io,
                                      "WAL in \(directory) cannot write: \(e.message); writes resume once it can")
                if ftruncate(f.fd, off_t(f.size)) != 0 {
                    // Torn bytes that cannot be cut off: writing after them would bury the next
                    // records behind damage. Nothing more is written until a restart repairs it.
                    f.torn = true
                    failure = VQError(.io, "WAL in \(directory) cannot write: \(e.message), and its torn end could not be cut off; "
                                      + "restart the server (the log repairs itself on open)")
                }
                state.withLock { s in
                    buffer.append(contentsOf: s.pending.bytes)
                    swap(&buffer, &s.pending.bytes)
                    s.pendingFirstOp = firstOp
                    s.failed = failure
                }
                return .failure(failure)
            }
        }
        try result.get()
    }

    /// Removes WAL files whose operations are all at or below `flushedOp`.
    ///
    /// When every operation is flushed, the open file is replaced by an empty
    /// one too, so a quiet shard keeps no WAL data it does not need.
    package func removeFlushed(upTo flushedOp: UInt64) {
        file.withLock { f in
            while f.files.count > 1, f.files[1].firstOp <= flushedOp + 1 {
                FileIO.remove(directory + "/" + f.files[0].name)
                f.files.removeFirst()
            }
            let idle = state.withLock { $0.pending.bytes.isEmpty && $0.nextOp == flushedOp + 1 && $0.failed == nil }
            guard idle, f.size > WAL.headerSize, let fresh = try? WAL.createFile(directory: directory, firstOp: flushedOp + 1, files: []) else { return }
            close(f.fd)
            for entry in f.files { FileIO.remove(directory + "/" + entry.name) }
            f = fresh
        }
    }

    /// Starts the log again at operation `op + 1`, every operation up to `op` being in the
    /// segments (a manifest saying so is durable): the files go and numbering jumps ahead (a
    /// shard adopting another copy's segments, whose rows carry that copy's numbers). Only while
    /// nothing is pending or failed.
    package func restart(after op: UInt64) throws {
        try file.withLock { f in
            try state.withLock { s in
                guard s.pending.bytes.isEmpty, s.failed == nil, op + 1 >= s.nextOp, s.durableOp + 1 == s.nextOp else {
                    throw VQError(.conflict, "WAL in \(directory) has operations in flight; it cannot restart at \(op + 1)")
                }
                // The new file first (a crash after it leaves a gap below the flushed point,
                // which opening accepts), then the old ones go.
                let fresh = try WAL.createFile(directory: directory, firstOp: op + 1, files: [])
                close(f.fd)
                for entry in f.files where entry.firstOp != op + 1 { FileIO.remove(directory + "/" + entry.name) }
                f = fresh
                s.nextOp = op + 1
                s.durableOp = op
            }
        }
    }

    /// The number of WAL files on disk.
    package var fileCount: Int { file.withLock { $0.files.count } }
}
