// Every on-disk name vq uses, in one place, and the data directory's lock.
//
//   vq-data/
//     vq.json                                   format marker {"format":"vq-data","version":1}
//     vq.lock                                   pid and address of the holder (flock'd)
//     collections/NAME/config.json              collection config (checksummed envelope)
//     collections/NAME/shards/N/shard.json      shard manifest: segments, flushed op (checksummed)
//     collections/NAME/shards/N/wal/OP.wal      WAL files, named by their first operation
//     collections/NAME/shards/N/segments/ID/    vectors.f32 rows.bin deleted.bits payload.idx payload.dat
//     snapshots/NAME/NAME-DATE.snapshot         a collection's snapshot (tar; see Engine+Snapshots.swift)
//     snapshots/NAME/NAME-DATE.snapshot.checksum  its SHA-256 (hex)
//     snapshots/full-DATE.snapshot              every collection and the aliases

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Paths inside a data directory.
package struct DataDirectory: Sendable {
    package let root: String

    package static let formatVersion = 1

    package init(_ root: String) {
        var r = root
        while r.count > 1 && r.hasSuffix("/") { r.removeLast() }
        self.root = r
    }

    package var marker: String { root + "/vq.json" }
    package var lockFile: String { root + "/vq.lock" }
    package var collectionsDir: String { root + "/collections" }
    /// Collection aliases of a single peer (a cluster keeps them in its Raft state).
    package var aliases: String { root + "/aliases.json" }
    package var clusterDir: String { root + "/cluster" }
    /// The cluster secret every peer call carries (mode 0600).
    package var clusterSecret: String { clusterDir + "/secret" }
    package func collectionDir(_ name: String) -> String { collectionsDir + "/" + name }
    /// Where `Engine.install` keeps the collection it replaces until the new one is in place.
    package func replacedDir(_ name: String) -> String { collectionsDir + "/" + DataDirectory.replacedPrefix + name }
    static let replacedPrefix = ".replaced-"
    /// Where a collection goes while it is deleted (swept when the directory is opened).
    package func deletingDir(_ name: String) -> String { collectionsDir + "/.deleting-" + name }
    package var snapshotsDir: String { root + "/snapshots" }
    /// A collection's snapshots (full ones sit in `snapshotsDir` itself).
    package func snapshotsDir(of collection: String) -> String { snapshotsDir + "/" + collection }
    package func collectionConfig(_ name: String) -> String { collectionDir(name) + "/config.json" }
    package func shardDir(_ name: String, _ shard: Int) -> String { collectionDir(name) + "/shards/\(shard)" }
    package static func manifest(shardDir: String) -> String { shardDir + "/shard.json" }
    package static func walDir(shardDir: String) -> String { shardDir + "/wal" }
    package static func segmentsDir(shardDir: String) -> String { shardDir + "/segments" }
    package static func segmentDir(shardDir: String, id: UInt64) -> String { segmentsDir(shardDir: shardDir) + "/\(id)" }

    /// WAL file names: the first operation number, zero-padded so names sort by it.
    package static func walFileName(firstOp: UInt64) -> String {
        let digits = String(firstOp)
        return String(repeating: "0", count: max(0, 20 - digits.count)) + digits + ".wal"
    }

    package static func walFirstOp(fileName: String) -> UInt64? {
        guard fileName.hasSuffix(".wal"), fileName.count == 24 else { return nil }
        return UInt64(fileName.dropLast(4))
    }

    package enum SegmentFile: String, CaseIterable, Sendable {
        case vectors = "vectors.f32"
        case rows = "rows.bin"
        case deleted = "deleted.bits"
        case payloadIndex = "payload.idx"
        case payloadData = "payload.dat"
    }

    /// Creates the directory and its format marker if absent; checks the marker's version if present.
    package func prepare() throws {
        try FileIO.makeDirectories(collectionsDir)
        if FileIO.exists(marker) {
            let text = try FileIO.readAll(marker)
            let json: JSON
            do { json = try JSONParser.parse(text) } catch {
                throw VQError(.corrupt, "\(marker) is not valid JSON: \(error)")
            }
            guard json["format"]?.stringValue == "vq-data" else {
                throw VQError(.corrupt, "\(marker) does not mark a vq data directory")
            }
            let version = json["version"]?.intValue ?? -1
            guard version == Int64(DataDirectory.formatVersion) else {
                throw VQError(.corrupt, "\(root) has data format version \(version); this vq reads version \(DataDirectory.formatVersion)",
                              hint: "use the vq release that wrote it")
            }
        } else {
            try FileIO.writeAtomically(marker, Array("{\"format\":\"vq-data\",\"version\":\(DataDirectory.formatVersion)}\n".utf8))
        }
        try finishReplacements()
        // Work a crash cut short that no one will finish: staged collections, deletes half done,
        // snapshot downloads and uploads (each is made again from the start when asked again).
        for entry in FileIO.list(collectionsDir) where DataDirectory.stagingPrefixes.contains(where: entry.hasPrefix) {
            try? FileIO.removeTree(collectionsDir + "/" + entry)
        }
        for entry in FileIO.list(snapshotsDir) where entry.hasPrefix(".download-") || entry.hasPrefix(".upload-") {
            FileIO.remove(snapshotsDir + "/" + entry)
        }
    }

    /// Directories under collections/ that hold work under way (`finishReplacements` handles
    /// `.replaced-`).
    static let stagingPrefixes = [".creating-", ".deleting-", ".recovering-", ".restoring-all"]

    /// Finishes a collection's replacement (`Engine.install`: a snapshot recovered over it) that a
    /// crash cut short. The old collection was moved aside first: when the new one is not in its
    /// place, the old one goes back (the recover was never acknowledged); when it is, the old one
    /// goes. Either way the collection is whole.
    func finishReplacements() throws {
        for entry in FileIO.list(collectionsDir) where entry.hasPrefix(DataDirectory.replacedPrefix) {
            let name = String(entry.dropFirst(DataDirectory.replacedPrefix.count))
            let aside = collectionsDir + "/" + entry
            if FileIO.exists(collectionDir(name)) {
                try FileIO.removeTree(aside)
            } else {
                guard rename(aside, collectionDir(name)) == 0 else {
                    throw VQError(.io, "cannot put collection \"\(name)\" back from \(aside): \(String(cString: strerror(errno)))")
                }
                try FileIO.syncDirectory(collectionsDir)
            }
        }
    }
}

/// The exclusive lock on a data directory, held for the life of the process.
///
/// `flock` dies with its process, so a crash never leaves a stale lock. The
/// file records the holder's pid and, for servers, the address it listens on.
package final class DirectoryLock: @unchecked Sendable {
    private let fd: Int32
    package let path: String

    /// What the lock file says about its holder.
    package struct Holder: Sendable {
        package var pid: Int32?
        package var address: String?
    }

    /// Takes the lock or throws `.busy` naming the holder's pid.
    package init(_ dir: DataDirectory, address: String? = nil) throws {
        path = dir.lockFile
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw ioError("open", path) }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let code = errno
            close(fd)
            if code == EWOULDBLOCK {
                let holder = DirectoryLock.readHolder(dir)
                let who = holder.pid.map { "process \($0)" } ?? "another process"
                let serving = holder.address.map { " (vq serve at \($0))" } ?? ""
                throw VQError(.busy, "data directory \(dir.root) is locked by \(who)\(serving)",
                              hint: holder.address != nil ? "pass --url to talk to that server" : "wait for it to finish, or use another --data-dir")
            }
            throw ioError("lock", path, code)
        }
        self.fd = fd
        var text = "\(getpid())\n"
        if let address { text += address + "\n" }
        _ = ftruncate(fd, 0)
        _ = text.withCString { pwrite(fd, $0, strlen($0), 0) }
    }

    /// Reads the holder's pid and address without taking the lock.
    package static func readHolder(_ dir: DataDirectory) -> Holder {
        guard let bytes = try? FileIO.readAll(dir.lockFile) else { return Holder() }
        let lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n")
        return Holder(pid: lines.first.flatMap { Int32($0) }, address: lines.count > 1 ? String(lines[1]) : nil)
    }

    deinit {
        flock(fd, LOCK_UN)
        close(fd)
    }
}
