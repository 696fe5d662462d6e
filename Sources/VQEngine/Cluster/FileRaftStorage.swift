// Raft's durable state in a directory:
//
//   state      term and vote (u64, u64 voted-for + 1, crc32c), replaced atomically
//   snapshot   the compacted prefix (RaftCodec form + crc32c), replaced atomically
//   log        entries after the snapshot: records [u32 length][u32 crc32c][entry]
//
// Appends at the end are written and fsynced in place; anything else (truncating a suffix,
// compacting after a snapshot) rewrites the log atomically. Metadata logs are small and
// change rarely, so the rewrite costs nothing that matters. A torn last record (a crash
// mid-append, never acknowledged) is dropped on open; damage before it is refused.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

package final class FileRaftStorage: RaftStorage {
    private let dir: String
    package private(set) var hardState = RaftHardState()
    package private(set) var snapshot: RaftSnapshot?
    package private(set) var entries: [RaftEntry] = []
    private var logFD: Int32 = -1

    private var statePath: String { dir + "/state" }
    private var snapshotPath: String { dir + "/snapshot" }
    private var logPath: String { dir + "/log" }

    /// Opens (creating when absent) the state in `dir`.
    /// - Throws: `.corrupt` when a file fails its checksum, `.io` on I/O errors.
    package init(dir: String, warn: (String) -> Void) throws {
        self.dir = dir
        try FileIO.makeDirectories(dir)
        if FileIO.exists(statePath) {
            let bytes = try Self.checked(try FileIO.readAll(statePath), statePath)
            try bytes.withUnsafeBytes { raw in
                var r = ByteReader(raw)
                let term = try r.u64(), vote = try r.u64()
                hardState = RaftHardState(term: term, votedFor: vote == 0 ? nil : vote - 1)
            }
        } else {
            try saveHardState(RaftHardState())
        }
        if FileIO.exists(snapshotPath) {
            let bytes = try Self.checked(try FileIO.readAll(snapshotPath), snapshotPath)
            snapshot = try bytes.withUnsafeBytes { raw in
                var r = ByteReader(raw)
                return try RaftCodec.readSnapshot(&r)
            }
        }
        if FileIO.exists(logPath) {
            let bytes = try FileIO.readAll(logPath)
            var offset = 0
            var expected = (snapshot?.index ?? 0) + 1
            while offset < bytes.count {
                let entry: RaftEntry? = bytes.withUnsafeBytes { raw in
                    guard offset + 8 <= raw.count else { return nil }
                    let length = Int(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt32.self)))
                    let crc = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self))
                    guard offset + 8 + length <= raw.count else { return nil }
                    let body = UnsafeRawBufferPointer(rebasing: raw[(offset + 8)..<(offset + 8 + length)])
                    guard CRC32C.update(0, body) == crc else { return nil }
                    var r = ByteReader(body)
                    guard let e = try? RaftCodec.readEntry(&r) else { return nil }
                    offset += 8 + length
                    return e
                }
                guard let entry else {
                    // Torn or damaged: acceptable only as the very last record.
                    if Self.isTail(bytes, from: offset) {
                        warn("raft log \(logPath): dropped a torn record at byte \(offset) (a crash mid-append)")
                        break
                    }
                    throw VQError(.corrupt, "raft log \(logPath) is damaged at byte \(offset), before intact records")
                }
                if entry.index < expected { continue }  // covered by the snapshot (crash between files)
                guard entry.index == expected else {
                    throw VQError(.corrupt, "raft log \(logPath) jumps from index \(expected - 1) to \(entry.index)")
                }
                entries.append(entry)
                expected += 1
            }
        }
        try rewriteLog()
    }

    deinit { if logFD >= 0 { close(logFD) } }

    /// Whether a bad record at `offset` is the last thing in the file (its claimed length
    /// runs to or past the end, or nothing record-shaped follows).
    private static func isTail(_ bytes: [UInt8], from offset: Int) -> Bool {
        guard offset + 8 <= bytes.count else { return true }
        let length = bytes.withUnsafeBytes { Int(UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: UInt32.self))) }
        return offset + 8 + length >= bytes.count
    }

    private static func checked(_ bytes: [UInt8], _ path: String) throws -> [UInt8] {
        guard bytes.count >= 4 else { throw VQError(.corrupt, "\(path) is truncated") }
        let body = Array(bytes[0..<(bytes.count - 4)])
        let crc = bytes.withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: bytes.count - 4, as: UInt32.self)) }
        guard CRC32C.checksum(body) == crc else { throw VQError(.corrupt, "\(path) fails its checksum") }
        return body
    }

    private static func sealed(_ w: ByteWriter) -> [UInt8] {
        var w = w
        w.u32(CRC32C.checksum(w.bytes))
        return w.bytes
    }

    package func saveHardState(_ state: RaftHardState) throws {
        var w = ByteWriter()
        w.u64(state.term)
        w.u64(state.votedFor.map { $0 + 1 } ?? 0)
        try FileIO.writeAtomically(statePath, Self.sealed(w))
        hardState = state
    }

    private static func record(_ e: RaftEntry) -> [UInt8] {
        var body = ByteWriter()
        RaftCodec.write(e, &body)
        var w = ByteWriter(capacity: body.bytes.count + 8)
        w.u32(UInt32(body.bytes.count))
        w.u32(CRC32C.checksum(body.bytes))
        w.bytes += body.bytes
        return w.bytes
    }

    package func replaceEntries(from index: UInt64, with new: [RaftEntry]) throws {
        let first = (snapshot?.index ?? 0) + 1
        guard index >= first, index <= first + UInt64(entries.count) else {
            throw VQError(.internal, "raft storage: replacing from \(index) would leave a gap (log is \(first)...\(first + UInt64(entries.count) - 1))")
        }
        let keep = Int(index - first)
        if keep == entries.count {
            // A plain append: write in place and fsync.
            guard !new.isEmpty else { return }
            let bytes = new.flatMap(Self.record)
            do {
                try bytes.withUnsafeBytes { try FileIO.writeAll(logFD, $0, path: logPath) }
                try FileIO.sync(logFD, path: logPath)
            } catch {
                // A partial record must not sit before the next append: rewrite what is known.
                try? rewriteLog()
                throw error
            }
            entries += new
        } else {
            entries.removeLast(entries.count - keep)
            entries += new
            try rewriteLog()
        }
    }

    package func saveSnapshot(_ s: RaftSnapshot) throws {
        var w = ByteWriter()
        RaftCodec.write(s, &w)
        try FileIO.writeAtomically(snapshotPath, Self.sealed(w))
        snapshot = s
        entries.removeAll { $0.index <= s.index }
        try rewriteLog()
    }

    private func rewriteLog() throws {
        try FileIO.writeAtomically(logPath, entries.flatMap(Self.record))
        if logFD >= 0 { close(logFD) }
        logFD = FileIO.openFD(logPath, O_WRONLY | O_APPEND | O_CLOEXEC)
        guard logFD >= 0 else { throw ioError("open", logPath) }
    }
}
