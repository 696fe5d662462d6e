// Snapshots: a collection (or every collection) copied into one file, and recovered from one.
//
//   snapshots/NAME/NAME-YYYY-MM-DD-HH-MM-SS.snapshot            a collection's snapshot (tar, see Tar.swift)
//   snapshots/NAME/NAME-YYYY-MM-DD-HH-MM-SS.snapshot.checksum   its SHA-256 in hex, as Qdrant writes it
//   snapshots/full-YYYY-MM-DD-HH-MM-SS.snapshot                 every collection, and the aliases
//
// A collection snapshot holds:
//   snapshot.json              {"format":"vq-snapshot","version":1,"kind":"collection","collection":NAME,"shards":[...]}
//   config.json                the collection's config, checksummed as in the data directory
//   shards/S/shard.json        shard S's manifest: the segments and the last operation they hold
//   shards/S/segments/ID/...   the files of those segments (with their block checksums)
// A full one holds snapshot.json (kind "full": the collections in order, the aliases) and each
// collection's files as above under collections/I/.
//
// Consistency: each shard is flushed and held still while its files are copied
// (`LocalShard.withFlushedFiles`), so its part is the state at one operation; writes go on being
// logged and queued meanwhile, and searches go on. No WAL is copied: the manifest covers every
// operation in the files. (Shards of one collection are copied one after another, as Qdrant
// does; a write's shard is fixed by its id, so no operation spans two.)
//
// Recovering unpacks into collections/.recovering-NAME (checking every tar header and path),
// opens each shard and verifies every block checksum, and only then puts the directory in place
// with a rename: a damaged or foreign file never replaces a collection.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// What Qdrant's snapshot listing says of a snapshot.
package struct SnapshotDescription: Sendable, Equatable {
    package var name: String
    /// UTC, as Qdrant writes it: 2026-11-29T21:50:09.
    package var creationTime: String
    package var size: Int
    /// SHA-256, hex (nil when its .checksum file is missing).
    package var checksum: String?

    package var json: JSON {
        .object([("name", .string(name)), ("creation_time", .string(creationTime)), ("size", .int(Int64(size))),
                 ("checksum", checksum.map { .string($0) } ?? .null)])
    }
}

extension Engine {
    static let snapshotSuffix = ".snapshot"

    // MARK: creating

    /// Snapshots collection `name` into `snapshots/NAME/`.
    /// - Throws: `.notFound`; `.conflict` when this peer holds no active replica of any of its shards.
    package func createSnapshot(of name: String) throws -> SnapshotDescription {
        let collection = try self.collection(name)
        let dir = directory.snapshotsDir(of: name)
        try FileIO.makeDirectories(dir)
        let writer = try Engine.freshSnapshot(dir, stem: name)
        try writeCollection(collection, to: writer, prefix: "")
        return try finish(writer)
    }

    /// Snapshots every collection, and the aliases, into one file in `snapshots/`.
    package func createFullSnapshot(aliases: [String: String]) throws -> SnapshotDescription {
        try FileIO.makeDirectories(directory.snapshotsDir)
        let names = collectionNames()
        let writer = try Engine.freshSnapshot(directory.snapshotsDir, stem: "full")
        let meta: JSON = .object([
            ("format", .string("vq-snapshot")), ("version", .int(1)), ("kind", .string("full")),
            ("collections", .array(names.map { .string($0) })),
            ("aliases", .object(aliases.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) })),
        ])
        try writer.addFile("snapshot.json", contents: JSONWriter.bytes(meta))
        for (i, name) in names.enumerated() {
            try writeCollection(try collection(name), to: writer, prefix: "collections/\(i)/")
        }
        return try finish(writer)
    }

    private func finish(_ writer: TarWriter) throws -> SnapshotDescription {
        let (_, sha) = try writer.finish()
        try FileIO.writeAtomically(writer.path + ".checksum", Array(sha.utf8))
        return try Engine.describe(writer.path)
    }

    /// A writer of `DIR/STEM-YYYY-MM-DD-HH-MM-SS.snapshot`, named `-2`, `-3`... when that second
    /// is taken (by a snapshot, or one being written at the same time).
    private static func freshSnapshot(_ dir: String, stem: String) throws -> TarWriter {
        let stamp = utc(time(nil), dateTime: "-", time: "-")
        var path = "\(dir)/\(stem)-\(stamp)\(snapshotSuffix)"
        var n = 2
        while true {
            do { return try TarWriter(path: path) } catch let e as VQError where e.kind == .conflict && n < 10_000 {
                path = "\(dir)/\(stem)-\(stamp)-\(n)\(snapshotSuffix)"
                n += 1
            }
        }
    }

    /// Adds a collection's snapshot files under `prefix`: the shards with an active replica here.
    private func writeCollection(_ collection: VectorCollection, to writer: TarWriter, prefix: String) throws {
        let shards = collection.replicaSets.filter(\.activeHere).map(\.id)
        guard !shards.isEmpty else {
            throw VQError(.conflict, "this peer holds no active replica of collection \"\(collection.name)\"",
                          hint: "take the snapshot on a peer that does (GET /collections/\(collection.name)/cluster lists them)")
        }
        let meta: JSON = .object([
            ("format", .string("vq-snapshot")), ("version", .int(1)), ("kind", .string("collection")),
            ("collection", .string(collection.name)), ("shards", .array(shards.map { .int(Int64($0)) })),
        ])
        try writer.addFile(prefix + "snapshot.json", contents: JSONWriter.bytes(meta))
        try writer.addFile(prefix + "config.json", contents: ChecksummedJSON.encode(collection.config.json))
        for s in shards {
            try collection.shards[s].withFlushedFiles { manifest, segmentDirs in
                try writer.addFile(prefix + "shards/\(s)/shard.json", contents: ChecksummedJSON.encode(manifest))
                for dir in segmentDirs {
                    let id = dir.split(separator: "/").last.map(String.init) ?? dir
                    // Undo files belong to a flush in progress (none while the shard is held) and
                    // temporary files to a write in progress: neither is part of the state.
                    for file in FileIO.list(dir) where !file.hasSuffix(".undo") && !file.hasSuffix(".tmp") {
                        try writer.addFile(prefix + "shards/\(s)/segments/\(id)/\(file)", from: dir + "/" + file)
                    }
                }
            }
        }
    }

    // MARK: listing

    /// The snapshots of collection `name` (nil: the full snapshots), oldest first.
    package func listSnapshots(of name: String?) throws -> [SnapshotDescription] {
        let dir = try snapshotDirectory(name)
        // By modification time to the nanosecond (names within one second end -2, -3, ..., which
        // sort before the plain name).
        func modified(_ file: String) -> (Int, Int) {
            var st = stat()
            return stat(dir + "/" + file, &st) == 0 ? (Int(st.st_mtim.tv_sec), Int(st.st_mtim.tv_nsec)) : (0, 0)
        }
        let files = FileIO.list(dir).filter { $0.hasSuffix(Engine.snapshotSuffix) && !$0.hasPrefix(".") }
        let dated: [(time: (Int, Int), file: String)] = files.map { (modified($0), $0) }
        let ordered = dated.sorted { a, b in a.time != b.time ? a.time < b.time : a.file < b.file }
        return try ordered.map { try Engine.describe(dir + "/" + $0.file) }
    }

    /// The path of snapshot `snapshot` of collection `name` (nil: a full snapshot).
    /// - Throws: `.notFound` naming it; `.invalidInput` for a name that is not a snapshot's.
    package func snapshotPath(of name: String?, _ snapshot: String) throws -> String {
        let dir = try snapshotDirectory(name)
        guard snapshot.hasSuffix(Engine.snapshotSuffix), !snapshot.hasPrefix("."), !snapshot.contains("/") else {
            throw VQError.invalid("\"\(snapshot)\" is not a snapshot name; expected NAME\(Engine.snapshotSuffix) as the listing gives it")
        }
        let path = dir + "/" + snapshot
        guard FileIO.exists(path) else {
            let what = name.map { "collection \"\($0)\"" } ?? "the full snapshots"
            throw VQError(.notFound, "snapshot \"\(snapshot)\" does not exist among \(what)")
        }
        return path
    }

    /// Deletes a snapshot and its checksum file.
    package func deleteSnapshot(of name: String?, _ snapshot: String) throws {
        let path = try snapshotPath(of: name, snapshot)
        FileIO.remove(path + ".checksum")
        guard unlink(path) == 0 else { throw ioError("remove", path) }
    }

    private func snapshotDirectory(_ name: String?) throws -> String {
        guard let name else { return directory.snapshotsDir }
        try Engine.validateName(name)
        guard hasCollection(name) else { throw VQError(.notFound, "collection \"\(name)\" does not exist in \(directory.root)") }
        return directory.snapshotsDir(of: name)
    }

    /// `t` in UTC as YYYY-MM-DD, `dateTime`, then HH, MM and SS separated by `time`.
    private static func utc(_ t: time_t, dateTime: String, time: String) -> String {
        var t = t
        var parts = tm()
        gmtime_r(&t, &parts)
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))\(dateTime)"
            + [parts.tm_hour, parts.tm_min, parts.tm_sec].map(two).joined(separator: time)
    }

    /// Refuses `file` unless its SHA-256 is `checksum` (when one is given).
    private static func verify(_ file: String, checksum: String?, what: String) throws {
        guard let checksum else { return }
        let actual = try SHA256.hex(file: file)
        guard actual == checksum.lowercased() else {
            throw VQError.invalid("\(what) has SHA-256 \(actual); the checksum given was \(checksum)")
        }
    }

    private static func describe(_ path: String) throws -> SnapshotDescription {
        var st = stat()
        guard stat(path, &st) == 0 else { throw ioError("stat", path) }
        let created = utc(st.st_mtim.tv_sec, dateTime: "T", time: ":")
        let sum = (try? FileIO.readAll(path + ".checksum")).map { String(decoding: $0, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) }
        return SnapshotDescription(name: String(path.split(separator: "/").last ?? ""), creationTime: created, size: Int(st.st_size),
                                   checksum: sum)
    }

    // MARK: recovering

    /// Unpacks a collection snapshot next to the collections and checks it whole.
    /// - Parameters:
    ///   - file: the snapshot (from outside: every byte is checked).
    ///   - name: the collection it will become.
    ///   - checksum: the SHA-256 it must have, when the caller knows it.
    /// - Returns: the unpacked directory (config.json and shards/, as a collection's) and its config.
    /// - Throws: `.invalidInput` naming what is wrong with the file.
    package func unpackSnapshot(_ file: String, as name: String, checksum: String?, what: String) throws -> (dir: String, config: CollectionConfig) {
        try Engine.validateName(name)
        try Engine.verify(file, checksum: checksum, what: what)
        let staging = directory.collectionsDir + "/.recovering-" + name
        try FileIO.removeTree(staging)
        do {
            _ = try TarReader.extract(file, into: staging, what: what)
            let (kind, _) = try Engine.readMeta(staging, what: what)
            guard kind == "collection" else {
                throw VQError.invalid("\(what) is a full snapshot; expected a collection's (restore a full one with vq snapshot restore --full)")
            }
            let config = try checkUnpacked(staging, what: what)
            return (staging, config)
        } catch {
            try? FileIO.removeTree(staging)
            throw error
        }
    }

    /// Recovers collection `name` from a snapshot file, replacing any collection of that name
    /// (a data directory no cluster manages: embedded, or `vq serve` tests without a cluster).
    package func recoverSnapshot(_ file: String, as name: String, checksum: String?) throws {
        let (dir, _) = try unpackSnapshot(file, as: name, checksum: checksum, what: "snapshot \(file)")
        do { try install(name, from: dir) } catch {
            try? FileIO.removeTree(dir)
            throw error
        }
    }

    /// Restores every collection of a full snapshot (replacing those of the same names) and its aliases.
    /// - Returns: the collections restored.
    package func restoreFullSnapshot(_ file: String, checksum: String?) throws -> [String] {
        let what = "snapshot \(file)"
        try Engine.verify(file, checksum: checksum, what: what)
        let staging = directory.collectionsDir + "/.restoring-all"  // ".recovering-NAME" is per collection
        try FileIO.removeTree(staging)
        defer { try? FileIO.removeTree(staging) }
        _ = try TarReader.extract(file, into: staging, what: what)
        let (kind, meta) = try Engine.readMeta(staging, what: what)
        guard kind == "full" else {
            throw VQError.invalid("\(what) is a collection's snapshot; expected a full one (restore it with vq snapshot restore NAME FILE)")
        }
        guard let names = meta["collections"]?.arrayValue?.map({ $0.stringValue ?? "" }) else {
            throw VQError.invalid("\(what): snapshot.json lacks \"collections\"")
        }
        for name in names { try Engine.validateName(name) }
        guard Set(names).count == names.count else { throw VQError.invalid("\(what) names a collection twice") }
        var aliases: [AliasAction] = []
        for (alias, target) in meta["aliases"]?.objectValue ?? [] {
            guard let target = target.stringValue, names.contains(target) else {
                throw VQError.invalid("\(what): alias \"\(alias)\" names no collection of the snapshot")
            }
            aliases.append(.create(alias: alias, collection: target))
        }
        // Names that would clash with the aliases here, or aliases with collections, are refused
        // before anything changes.
        let here = try self.aliases()
        if let clash = names.first(where: { here[$0] != nil }) {
            throw VQError(.conflict, "\(what) holds collection \"\(clash)\", which is an alias in \(directory.root)",
                          hint: "delete the alias first")
        }
        for case let .create(alias, _) in aliases where hasCollection(alias) || names.contains(alias) {
            throw VQError(.conflict, "\(what) has alias \"\(alias)\", which is a collection's name")
        }
        // Every collection is checked before any replaces what is here.
        for i in names.indices {
            let dir = staging + "/collections/\(i)"
            let (sub, _) = try Engine.readMeta(dir, what: "\(what), collection \(names[i])")
            guard sub == "collection" else { throw VQError.invalid("\(what): collections/\(i) is not a collection's snapshot") }
            _ = try checkUnpacked(dir, what: "\(what), collection \(names[i])")
        }
        for (i, name) in names.enumerated() { try install(name, from: staging + "/collections/\(i)") }
        if !aliases.isEmpty { try changeAliases(aliases) }
        return names
    }

    /// snapshot.json's kind and contents, checked and removed (it is no part of a collection).
    private static func readMeta(_ dir: String, what: String) throws -> (kind: String, meta: JSON) {
        let path = dir + "/snapshot.json"
        guard FileIO.exists(path) else { throw VQError.invalid("\(what) has no snapshot.json; expected a vq snapshot") }
        let meta: JSON
        do { meta = try JSONParser.parse(try FileIO.readAll(path)) } catch {
            throw VQError.invalid("\(what): snapshot.json is not valid JSON: \(error)")
        }
        guard meta["format"]?.stringValue == "vq-snapshot", let kind = meta["kind"]?.stringValue else {
            throw VQError.invalid("\(what): snapshot.json does not mark a vq snapshot")
        }
        guard meta["version"]?.intValue == 1 else {
            throw VQError.invalid("\(what) has snapshot format version \(meta["version"].map { "\($0)" } ?? "none"); this vq reads version 1")
        }
        FileIO.remove(path)
        return (kind, meta)
    }

    /// Checks an unpacked collection: its config, that it holds every shard and nothing else, and
    /// every shard's manifest and block checksums (each shard is opened, verified and closed).
    private func checkUnpacked(_ dir: String, what: String) throws -> CollectionConfig {
        let config: CollectionConfig
        do {
            let path = dir + "/config.json"
            guard FileIO.exists(path) else { throw VQError.invalid("\(what) has no config.json") }
            config = try CollectionConfig(json: try ChecksummedJSON.read(path), path: "config.json")
            try config.validate()
        } catch let e as VQError where e.kind != .io {
            throw VQError.invalid("\(what): \(e.message)")
        }
        let top = Set(FileIO.list(dir))
        guard top.isSubset(of: ["config.json", "shards"]) else {
            throw VQError.invalid("\(what) holds \(top.subtracting(["config.json", "shards"]).sorted().joined(separator: ", ")); expected config.json and shards/")
        }
        let shards = FileIO.list(dir + "/shards")
        let expected = (0..<config.shardNumber).map(String.init)
        guard shards.sorted() == expected.sorted() else {
            throw VQError.invalid("\(what) holds shards [\(shards.joined(separator: ", "))] of \(config.shardNumber); a recover needs every shard",
                                  hint: "take the snapshot on a peer that holds an active replica of every shard")
        }
        var options = config.shardOptions
        options.backgroundOptimizer = false
        for s in expected {
            let shardDir = dir + "/shards/" + s
            guard FileIO.exists(DataDirectory.manifest(shardDir: shardDir)) else { throw VQError.invalid("\(what): shard \(s) has no shard.json") }
            var problems: [String] = []
            do {
                let shard = try LocalShard(directory: shardDir, options: options) { problems.append($0) }
                problems += shard.check()
                try shard.close()
            } catch let e as VQError where e.kind != .io {
                problems.append(e.message)
            }
            if !problems.isEmpty {
                let staged = dir + "/"
                throw VQError.invalid("\(what): shard \(s) is damaged: \(problems.map { $0.replacingOccurrences(of: staged, with: "") }.joined(separator: "; "))")
            }
        }
        return config
    }
}
