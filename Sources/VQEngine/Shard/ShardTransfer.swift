// Shard transfer by segment files: a whole-shard copy to a replica (recovery, a new replica, a
// move) sends the primary's flushed segment files as they are, HNSW graphs included, instead of
// re-sending every point for the replica to write and index again.
//
//   primary   flushes its copy and pins its files at a replication position, under the shard's
//             lock (`LocalShard.pinFiles`: the files stay open and unchanged; flushes wait, and
//             writes go on in memory and the WAL), then, without the lock, sends
//             begin -> every segment file in chunks of `chunkBytes` -> finish (the manifest, the
//             file list with sizes, and the replication position the copy is at); the
//             operations ordered meanwhile follow (`ReplicaSet.transfer`)
//   replica   stages the files in SHARD.incoming, checks the list (every file, its size, nothing
//             else), opens the staged shard and verifies every block checksum, then adopts the
//             segments (`LocalShard.adopt`: one manifest commits them) and takes the position
//
// A chunk is written at its offset, so a chunk sent again (a retry after a lost answer) changes
// nothing; each is retried up to three times. Every byte is from the network: paths are checked
// (segments/DIGITS/NAME, NAME of [A-Za-z0-9._-], no dot first, no undo or temporary file),
// offsets bounded and without holes, the sender must be the primary, an Active copy is never
// replaced, and the staged shard is verified before anything of the live one changes. A chunk
// that would leave the disk below a reserve (1%, at least 64 MiB: what this peer's own WALs and
// flushes need) stops the copy with 507 and removes what was staged (a record copy's batch too,
// before it changes anything).
//
// Wire form (ShardWire conventions):
//   files  | kind u8 (0 begin, 1 chunk, 2 finish) | transfer u64 |
//          | chunk:  path blob | offset u64 | bytes blob |
//          | finish: manifest blob (checksummed JSON) | seq u64 | epoch u64 | count u32 |
//          |         count x (path blob | size u64) |

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Synchronization

extension ShardWire {
    package enum FilesMessage: Equatable {
        case begin(transfer: UInt64)
        case chunk(transfer: UInt64, path: String, offset: Int, bytes: [UInt8])
        case finish(transfer: UInt64, manifest: [UInt8], seq: UInt64, epoch: UInt64, files: [FileEntry])
    }

    package struct FileEntry: Equatable, Sendable {
        package var path: String
        package var size: Int
        package init(path: String, size: Int) {
            self.path = path
            self.size = size
        }
    }

    /// Largest file a transfer may stage (1 TiB).
    static let maxFileBytes = 1 << 40

    package static func encodeFiles(_ m: FilesMessage) -> [UInt8] {
        var w = ByteWriter(capacity: 64)
        switch m {
        case .begin(let t):
            w.u8(0); w.u64(t)
        case .chunk(let t, let path, let offset, let bytes):
            w.bytes.reserveCapacity(bytes.count + 64)
            w.u8(1); w.u64(t); w.blob(Array(path.utf8)); w.u64(UInt64(offset)); w.blob(bytes)
        case .finish(let t, let manifest, let seq, let epoch, let files):
            w.u8(2); w.u64(t); w.blob(manifest); w.u64(seq); w.u64(epoch)
            w.u32(UInt32(files.count))
            for f in files { w.blob(Array(f.path.utf8)); w.u64(UInt64(f.size)) }
        }
        return w.bytes
    }

    package static func decodeFiles(_ bytes: [UInt8]) throws -> FilesMessage {
        try decode(bytes, "shard transfer message") { r in
            let kind = try r.u8()
            let t = try r.u64()
            switch kind {
            case 0:
                return .begin(transfer: t)
            case 1:
                let path = try segmentFilePath(try r.blob())
                let offset = try r.u64()
                let data = try r.blob()
                guard offset <= UInt64(maxFileBytes - data.count) else { throw VQError(.corrupt, "chunk at \(offset) of \(path) is past 1 TiB") }
                return .chunk(transfer: t, path: path, offset: Int(offset), bytes: data)
            case 2:
                let manifest = try r.blob()
                let seq = try r.u64(), epoch = try r.u64()
                // Becomes this replica's position (the next operation is seq + 1): bounded as adopt bounds the manifest's.
                guard seq < ShardWire.maxSeq else { throw VQError(.corrupt, "position \(seq) is out of range") }
                let n = try r.count(of: 12, "files")
                var files: [FileEntry] = []
                var seen = Set<String>()
                for _ in 0..<n {
                    let path = try segmentFilePath(try r.blob())
                    let size = try r.u64()
                    guard size <= UInt64(maxFileBytes) else { throw VQError(.corrupt, "\(path) claims \(size) bytes") }
                    guard seen.insert(path).inserted else { throw VQError(.corrupt, "\(path) is listed twice") }
                    files.append(FileEntry(path: path, size: Int(size)))
                }
                return .finish(transfer: t, manifest: manifest, seq: seq, epoch: epoch, files: files)
            default:
                throw VQError(.corrupt, "unknown shard transfer message kind \(kind)")
            }
        }
    }

    /// `segments/DIGITS/NAME`: the only paths a transfer writes (under the staging directory).
    static func segmentFilePath(_ raw: [UInt8]) throws -> String {
        let path = String(decoding: raw, as: UTF8.self)
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        let nameOK = { (s: Substring) in
            !s.isEmpty && s.count <= 128 && s.first != "."
                && s.utf8.allSatisfy { c in (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x2E || c == 0x5F || c == 0x2D }
        }
        guard raw.count <= 256, parts.count == 3, parts[0] == "segments", !parts[1].isEmpty, parts[1].count <= 18,
              parts[1].utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), nameOK(parts[2]),
              !parts[2].hasSuffix(".undo"), !parts[2].hasSuffix(".tmp") else {
            throw VQError(.corrupt, "\"\(path.prefix(80))\" is not a segment file path (segments/ID/NAME)")
        }
        return path
    }
}

extension ReplicaSet {
    /// A copy must not fill the disk this peer's WALs and flushes need: `bytes` more that would
    /// leave less than the reserve free (1% of the disk, at least 64 MiB) are refused with 507.
    func checkDiskReserve(adding bytes: Int, at path: String) throws {
        guard let (free, total) = FileIO.space(path) else { return }
        let set = diskReserve.load(ordering: .relaxed)
        let reserve = set >= 0 ? set : FileIO.reserve(total: total)
        if free - bytes < reserve {
            throw VQError(.insufficientStorage, "a copy of \(what) would leave \(max(0, free - bytes)) bytes free on this peer's disk; "
                          + "it keeps at least \(reserve) (1% of the disk, at least 64 MiB) for its own writes")
        }
    }

    /// Bytes per chunk of a segment-file transfer.
    static let chunkBytes = 8 << 20

    /// On the primary: sends `pinned` (this copy's segment files, held as they were at
    /// `position`) to `destination` (see the file comment). Writes go on meanwhile.
    /// - Returns: bytes sent.
    func sendFiles(_ pinned: PinnedFiles, to destination: RemoteShard, position: (seq: UInt64, epoch: UInt64)) throws -> Int {
        let transfer = UInt64.random(in: 1...UInt64.max)
        func send(_ m: ShardWire.FilesMessage, timeout: Double? = nil) throws {
            let body = ShardWire.encodeFiles(m)
            var attempt = 0
            while true {
                // A closing shard lets its pin go soon (its last flush waits for it).
                if local.withProgress({ $0.closing }) { throw VQError(.cancelled, "the shard is closing; the copy to a replica stopped") }
                do { return try destination.receiveFiles(body, timeout: timeout) } catch let e as VQError where e.kind == .unreachable && attempt < 3 {
                    attempt += 1
                }
            }
        }
        try send(.begin(transfer: transfer))
        var total = 0
        var buffer = [UInt8](repeating: 0, count: Self.chunkBytes)
        for file in pinned.files {
            var offset = 0
            // Chunks up to the size it had when pinned (an empty file still sends one, so it is made there).
            repeat {
                let want = min(Self.chunkBytes, file.size - offset)
                let n = try buffer.withUnsafeMutableBytes { try FileIO.readFull(file.fd, into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<want]), at: offset, path: file.name) }
                guard n == want else { throw VQError(.io, "\(local.directory)/\(file.name) ended at \(offset + n) bytes while held at \(file.size)") }
                try send(.chunk(transfer: transfer, path: file.name, offset: offset, bytes: Array(buffer[0..<n])))
                offset += n
            } while offset < file.size
            total += offset
        }
        // Every byte is sent: flushes may go on while the replica verifies and adopts them.
        pinned.release()
        // Verifying every block can take a while on a large shard.
        try send(.finish(transfer: transfer, manifest: ChecksummedJSON.encode(pinned.manifest), seq: position.seq, epoch: position.epoch,
                         files: pinned.files.map { ShardWire.FileEntry(path: $0.name, size: $0.size) }), timeout: 600)
        return total
    }

    /// On the receiving replica: one message of a segment-file transfer, from `from` (the
    /// `x-vq-peer` header), which must be the shard's primary as this peer's metadata says; an
    /// Active copy is never overwritten. Messages are taken one at a time (the shard's lock).
    package func receiveFiles(_ body: [UInt8], from: PeerID) throws {
        guard let placement else { throw VQError(.notFound, "this server runs no cluster") }
        let message = try ShardWire.decodeFiles(body)
        try checkCopy(from: from, placement)
        let staging = local.directory + ".incoming"
        let transferFile = staging + "/transfer"
        func current() -> UInt64? {
            guard let b = try? FileIO.readAll(transferFile), b.count == 8 else { return nil }
            return b.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        }
        let replication = placement.replication(collection, id)
        replication.lock.lock()
        defer { replication.lock.unlock() }
        switch message {
        case .begin(let t):
            // Until the finish, this copy matches no one's history: a transfer cut off is redone whole.
            replication.reset(to: 0, epoch: 0)
            try FileIO.removeTree(staging)
            try FileIO.makeDirectories(staging + "/segments")
            var w = ByteWriter(capacity: 8)
            w.u64(t)
            try FileIO.writeAtomically(transferFile, w.bytes)
        case .chunk(let t, let path, let offset, let bytes):
            guard current() == t else { throw VQError(.conflict, "no transfer \(t) is under way to \(what)") }
            // Past the reserve the copy stops, and its staged files go at once.
            do { try checkDiskReserve(adding: bytes.count, at: staging) } catch {
                try? FileIO.removeTree(staging)
                throw error
            }
            let full = staging + "/" + path
            try FileIO.makeDirectories(FileIO.directoryOf(full))
            // Written where the file ends, or again over what was written (a resent chunk): no holes.
            let size = FileIO.fileSize(full) ?? 0
            guard offset <= size else { throw VQError.invalid("chunk of \(path) at \(offset) leaves a hole after byte \(size)") }
            let fd = FileIO.openFD(full, O_WRONLY | O_CREAT | O_CLOEXEC)
            guard fd >= 0 else { throw VQError(.io, "cannot open \(full): \(String(cString: strerror(errno)))") }
            defer { close(fd) }
            try bytes.withUnsafeBytes { try FileIO.pwriteAll(fd, $0, at: offset, path: full) }
        case .finish(let t, let manifestBytes, let seq, let epoch, let files):
            // A finish sent again after it completed (its answer was lost) is done.
            if lastTransfer.withLock({ $0 }) == t { return }
            guard current() == t else { throw VQError(.conflict, "no transfer \(t) is under way to \(what)") }
            do {
                try finishFiles(staging, manifestBytes, files)
            } catch {
                try? FileIO.removeTree(staging)
                throw error
            }
            try? FileIO.removeTree(staging)
            replication.reset(to: seq, epoch: epoch)
            lastTransfer.withLock { $0 = t }
        }
    }

    /// A copy to this replica (by files or records) comes only from the shard's primary as this
    /// peer's metadata says, and never replaces an Active copy.
    func checkCopy(from: PeerID, _ placement: any ReplicaPlacement) throws {
        guard let replicas = placement.replicas(collection, id) else { throw VQError(.notFound, "collection \"\(collection)\" is not distributed") }
        // Only from the primary: a shard with no active replica has none, and takes no copy.
        guard let primary = replicas.primary else {
            throw VQError(.busy, "\(what) has no active replica here, so no primary may copy to it; retry once the metadata has one")
        }
        guard primary == from else {
            throw VQError(.notPrimary, "peer \(from) is not the primary of \(what); peer \(primary) is, as this replica's metadata says")
        }
        guard replicas.first(where: { $0.peer == placement.localPeer })?.state != .active else {
            throw VQError(.conflict, "this peer's replica of \(what) is Active; a copy does not replace it")
        }
    }

    /// Checks the staged files against the list, makes them durable, and has the local shard
    /// adopt them (which verifies every block before anything of the live copy changes).
    private func finishFiles(_ staging: String, _ manifestBytes: [UInt8], _ files: [ShardWire.FileEntry]) throws {
        func bad(_ why: String) -> VQError { VQError.invalid("segment-file transfer to \(what): \(why)") }
        var present: [String: Int] = [:]
        for seg in FileIO.list(staging + "/segments") {
            for name in FileIO.list(staging + "/segments/" + seg) {
                present["segments/\(seg)/\(name)"] = FileIO.fileSize(staging + "/segments/" + seg + "/" + name) ?? -1
            }
        }
        let listed = Dictionary(files.map { ($0.path, $0.size) }, uniquingKeysWith: { a, _ in a })
        guard present == listed else {
            let missing = listed.keys.filter { present[$0] != listed[$0] }.sorted()
            let extra = present.keys.filter { listed[$0] == nil }.sorted()
            throw bad("staged files differ from the list (missing or wrong size: \(missing.prefix(3)), not listed: \(extra.prefix(3)))")
        }
        let manifestPath = DataDirectory.manifest(shardDir: staging)
        try FileIO.writeAtomically(manifestPath, manifestBytes)
        let manifest: JSON
        do { manifest = try ChecksummedJSON.read(manifestPath) } catch let e as VQError { throw bad("the manifest is unreadable: \(e.message)") }
        let named = (manifest["segments"]?.arrayValue ?? []).compactMap { $0["id"]?.intValue.map { String($0) } }
        let staged = Set(FileIO.list(staging + "/segments"))
        guard named.count == Set(named).count, Set(named) == staged else {
            throw bad("the manifest names segments \(named.sorted()) but \(staged.sorted()) were sent")
        }
        // Durable before a manifest of this shard names them (the adopt's commit).
        for path in present.keys {
            let fd = FileIO.openFD(staging + "/" + path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw ioError("open", staging + "/" + path) }
            defer { close(fd) }
            try FileIO.sync(fd, path: staging + "/" + path)
        }
        for seg in staged { try FileIO.syncDirectory(staging + "/segments/" + seg) }
        _ = try local.adopt(staging)
    }
}

extension RemoteShard {
    /// One message of a segment-file transfer to this replica.
    package func receiveFiles(_ body: [UInt8], timeout: Double? = nil) throws {
        _ = try call("receive-files", body, timeout: timeout)
    }
}

/// A shard's flushed segment files held for a copy (`LocalShard.pinFiles`): open, with their
/// sizes then and the manifest they make up. Until `release`, nothing of them changes.
package final class PinnedFiles: @unchecked Sendable {
    package struct File {
        /// segments/ID/NAME, as a transfer names it.
        package var name: String
        package var fd: Int32
        package var size: Int
    }

    package let manifest: JSON
    package let points: Int
    package let files: [File]
    private let onRelease: () -> Void
    private let released = Mutex(false)

    init(manifest: JSON, points: Int, files: [File], onRelease: @escaping () -> Void) {
        self.manifest = manifest
        self.points = points
        self.files = files
        self.onRelease = onRelease
    }

    /// Opens every file (all or none).
    static func open(_ paths: [(name: String, path: String)]) throws -> [File] {
        var files: [File] = []
        for (name, path) in paths {
            let fd = FileIO.openFD(path, O_RDONLY | O_CLOEXEC)
            var st = stat()
            guard fd >= 0, fstat(fd, &st) == 0 else {
                let e = ioError("open", path)
                if fd >= 0 { close(fd) }
                for f in files { close(f.fd) }
                throw e
            }
            files.append(File(name: name, fd: fd, size: Int(st.st_size)))
        }
        return files
    }

    /// Closes the files and lets flushes go on. Later calls do nothing.
    package func release() {
        guard released.withLock({ let was = $0; $0 = true; return !was }) else { return }
        for f in files { close(f.fd) }
        onRelease()
    }

    deinit { release() }
}
