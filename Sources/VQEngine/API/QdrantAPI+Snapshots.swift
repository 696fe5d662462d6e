// Qdrant's snapshot routes: a collection's (create, list, download, delete, recover from a
// location, recover from an upload) and the full storage's (create, list, download, delete).
// The files and their checks are Engine+Snapshots.swift's; this file is HTTP and the cluster.

import Foundation

extension QdrantAPI {
    /// Paths whose bodies may be file uploads (larger than other bodies: see HTTPLimits).
    package static let uploadPathSuffixes = ["/snapshots/upload"]

    /// `POST /collections/{name}/snapshots` and `POST /snapshots` (`name` nil): with
    /// `wait=false`, 202 at once and the snapshot is made in the background, as Qdrant answers.
    func createSnapshot(_ name: String?, _ r: HTTPRequest, _ start: UInt64) throws -> HTTPResponse {
        let make: @Sendable () throws -> SnapshotDescription = { [engine, cluster] in
            if let name { return try engine.createSnapshot(of: name) }
            return try engine.createFullSnapshot(aliases: try cluster?.aliases ?? engine.aliases())
        }
        if let name { _ = try openCollection(name) }
        guard try writeOptions(r).0 == .applied || r.query["wait"] == nil else {
            DispatchQueue.global(qos: .utility).async {
                do { _ = try make() } catch {
                    FileHandle.standardError.write(Data("vq: error: snapshot of \(name.map { "collection \($0)" } ?? "the storage") failed: \(error)\n".utf8))
                }
            }
            var w = JSONWriter(capacity: 64)
            w.raw("{\"result\":null,\"status\":\"accepted\",\"time\":")
            w.writeDouble(APIEnvelope.elapsed(start))
            w.raw("}")
            return .json(202, w.bytes)
        }
        return APIEnvelope.ok(try make().json, since: start)
    }

    /// `GET .../snapshots/{snapshot}`: the file, streamed from disk as the client reads it.
    func downloadSnapshot(_ name: String?, _ snapshot: String) throws -> HTTPResponse {
        let path = try engine.snapshotPath(of: name, snapshot)
        var response = HTTPResponse(status: 200, headers: [("Content-Type", "application/octet-stream"),
                                                           ("Content-Disposition", "attachment; filename=\"\(snapshot)\"")])
        response.file = try FileBody(path: path)
        return response
    }

    /// `PUT /collections/{name}/snapshots/recover`: {"location": "file:///..." or "http://...",
    /// "checksum", "priority", "api_key"}.
    func recoverSnapshot(_ name: String, _ body: JSON, _ start: UInt64) throws -> HTTPResponse {
        try checkSettings(body, "recover request", allowed: ["location", "priority", "checksum", "api_key"])
        guard let location = body["location"]?.stringValue else {
            throw VQError.invalid("recover request needs \"location\": a file:// URL under the server's snapshots directory or an http:// URL")
        }
        try checkPriority(body["priority"]?.stringValue)
        let checksum = try checksumValue(body["checksum"])
        if location.hasPrefix("file://") {
            guard body["api_key"].map({ $0 == .null }) ?? true else {
                throw VQError.invalid("recover request has \"api_key\", which applies to an http:// location only")
            }
            let path = String(location.dropFirst("file://".count))
            try recover(name, file: try localSnapshotFile(path), checksum: checksum, what: "snapshot \(location)")
        } else if location.hasPrefix("http://") {
            let file = engine.directory.snapshotsDir + "/.download-\(name)-\(UUID().uuidString)"
            defer { FileIO.remove(file) }
            let key = body["api_key"]?.stringValue
            try download(location, to: file, apiKey: key)
            try recover(name, file: file, checksum: checksum, what: "snapshot \(location)")
        } else {
            throw VQError.invalid("location \"\(location)\" is not supported; expected file:///PATH (under the server's snapshots directory) or http://HOST:PORT/PATH",
                                  hint: "vq does not speak https: download the file and upload it (POST /collections/\(name)/snapshots/upload)")
        }
        return APIEnvelope.ok(.bool(true), since: start)
    }

    /// `POST /collections/{name}/snapshots/upload`: a multipart/form-data body whose `snapshot`
    /// part is the file.
    func uploadSnapshot(_ name: String, _ r: HTTPRequest, _ start: UInt64) throws -> HTTPResponse {
        try checkPriority(r.query["priority"])
        let checksum = try checksumValue(r.query["checksum"].map { .string($0) })
        guard let boundary = Multipart.boundary(contentType: r.header("content-type")) else {
            throw VQError.invalid("upload is \(r.header("content-type") ?? "without a Content-Type"); expected multipart/form-data with a \"snapshot\" file part")
        }
        let parts: [FormPart]
        do { parts = try Multipart.parts(r.body, boundary: boundary) } catch {
            throw VQError.invalid("upload is not valid multipart/form-data: \(error)")
        }
        // One part, the file: any other would be ignored, so it is refused by name.
        guard parts.count == 1, let part = parts.first, part.name == "snapshot" else {
            throw VQError.invalid("upload has parts [\(parts.map(\.name).joined(separator: ", "))]; expected exactly one, named \"snapshot\"")
        }
        try FileIO.makeDirectories(engine.directory.snapshotsDir)
        let file = engine.directory.snapshotsDir + "/.upload-\(name)-\(UUID().uuidString)"
        defer { FileIO.remove(file) }
        // A scratch file the defer removes: written once from the body, no copy, no rename.
        let fd = FileIO.openFD(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw ioError("create", file) }
        defer { close(fd) }
        try r.body.withUnsafeBytes { try FileIO.writeAll(fd, UnsafeRawBufferPointer(rebasing: $0[part.range]), path: file) }
        try recover(name, file: file, checksum: checksum, what: "uploaded snapshot \(part.filename ?? "")")
        return APIEnvelope.ok(.bool(true), since: start)
    }

    /// Recovers `name` from a local snapshot file: directly on a data directory no cluster
    /// manages; through consensus on a peer, where the collection is deleted (if present) and
    /// created again with the snapshot's config, this peer adopting the unpacked files as the
    /// only replica of every shard. In a larger cluster the other replicas (the snapshot's
    /// `replication_factor`, at most the voters) are then added and copied from this peer's
    /// shards as segment files, one at a time, before the answer.
    private func recover(_ name: String, file: String, checksum: String?, what: String) throws {
        try Engine.validateName(name)
        guard let cluster else { return try engine.recoverSnapshot(file, as: name, checksum: checksum) }
        let s = cluster.status
        guard s.voters.contains(s.id) else {
            throw VQError(.busy, "this peer does not vote in the cluster yet; recover the snapshot through a peer that does")
        }
        guard cluster.aliases[name] == nil else { throw VQError(.conflict, "\"\(name)\" is an alias; recover the snapshot under the collection's name") }
        // One recovery or rebalance at a time here: replicas added below must not be moved meanwhile.
        try Rebalancer.exclusively("recovering \"\(name)\"") {
            let (dir, snapshotConfig) = try engine.unpackSnapshot(file, as: name, checksum: checksum, what: what)
            // The cluster's create (below) adopts the unpacked files; until it commits, they go on failure.
            engine.stage(name, dir)
            var created = false
            defer { if !created { engine.unstage(name) } }
            let mover = Rebalancer(node: cluster, engine: engine)
            let others = mover.placeablePeers.filter { $0 != s.id }
            var config = snapshotConfig
            // As many replicas as the snapshot's collection had, as far as the peers allow. Writes
            // need only this peer's replica until the others are copied (then the snapshot's
            // write_consistency_factor returns).
            config.replicationFactor = min(max(1, snapshotConfig.replicationFactor), others.count + 1)
            config.writeConsistencyFactor = 1
            if cluster.collectionMeta(name) != nil {
                try cluster.propose(ClusterState.deleteCollection(name))
            } else if engine.hasCollection(name) {
                // Made here before the cluster knew it (embedded): replaced all the same.
                try engine.deleteCollection(name)
            }
            let placement = Array(repeating: [s.id], count: config.shardNumber)
            try cluster.propose(ClusterState.createCollection(name, config, placement: placement))
            // Committed: the files stay staged for the create's effect however late it comes.
            created = true
            let deadline = Date().addingTimeInterval(120)
            while !(engine.hasCollection(name) && !engine.isStaged(name)) && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
            guard engine.hasCollection(name), !engine.isStaged(name) else {
                throw VQError(.io, "collection \"\(name)\" was created but not yet made from the snapshot on this peer (see its log)")
            }
            // The other replicas, spread over the other peers: all added first (each target's
            // recovery loop then copies its replica even if this peer stops), then copied from
            // here as segment files, every failure reported.
            var targets: [(shard: Int, peer: PeerID)] = []
            for shard in 0..<config.shardNumber {
                for r in 0..<(config.replicationFactor - 1) {
                    targets.append((shard, others[(shard * (config.replicationFactor - 1) + r) % others.count]))
                }
            }
            var failures: [String] = []
            for t in targets {
                do { try cluster.propose(ClusterState.replica("add_replica", name, shard: t.shard, peer: t.peer)) } catch {
                    failures.append("adding shard \(t.shard) to peer \(t.peer): \(VQError.wrap(error).message)")
                }
            }
            for t in targets where failures.isEmpty {
                do { try engine.collection(name).replicaSets[t.shard].catchUp(to: t.peer, after: nil, method: .files) } catch {
                    failures.append("copying shard \(t.shard) to peer \(t.peer): \(VQError.wrap(error).message)")
                }
            }
            guard failures.isEmpty else {
                throw VQError(.io, "collection \"\(name)\" was recovered on peer \(s.id), but its other replicas are not all copied yet "
                                  + "(each peer's recovery goes on trying): \(failures.joined(separator: "; "))",
                              hint: "watch GET /collections/\(name)/cluster; write_consistency_factor stays 1 until they are Active")
            }
            if snapshotConfig.writeConsistencyFactor > 1 {
                var restored = config
                restored.writeConsistencyFactor = min(snapshotConfig.writeConsistencyFactor, config.replicationFactor)
                try cluster.propose(ClusterState.updateCollection(name, restored))
            }
        }
    }

    /// Qdrant's `priority`: which data wins where the snapshot and the replicas differ. A
    /// recover here replaces the collection with the snapshot, which is what "snapshot" asks.
    private func checkPriority(_ value: String?) throws {
        guard let value else { return }
        guard value == "snapshot" else {
            throw VQError.invalid("priority \"\(value)\" is not supported; vq recovers with priority \"snapshot\" (the snapshot replaces the collection)")
        }
    }

    private func checksumValue(_ value: JSON?) throws -> String? {
        guard let value, value != .null else { return nil }
        guard let s = value.stringValue, s.utf8.count == 64, s.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x66) }) else {
            throw VQError.invalid("checksum is \(value); expected the snapshot's SHA-256 as 64 hex digits")
        }
        return s.lowercased()
    }

    /// A file:// path, allowed only inside this server's snapshots directory (an API key must
    /// not open any file the server can read).
    private func localSnapshotFile(_ path: String) throws -> String {
        let root = engine.directory.snapshotsDir
        guard let real = realpath(path, nil) else { throw VQError(.notFound, "snapshot file \(path) does not exist on the server") }
        defer { free(real) }
        let resolved = String(cString: real)
        let base = realpath(root, nil).map { p in defer { free(p) }; return String(cString: p) } ?? root
        guard resolved.hasPrefix(base + "/") else {
            throw VQError.invalid("snapshot file \(path) is outside the server's snapshots directory \(base)",
                                  hint: "copy it there first, or upload it (POST .../snapshots/upload)")
        }
        return resolved
    }

    private func download(_ url: String, to file: String, apiKey: String?) throws {
        let rest = url.dropFirst("http://".count)
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        let client = try HTTPClient(url: "http://" + rest[..<slash], timeout: 300)
        let path = slash == rest.endIndex ? "/" : String(rest[slash...])
        let dir = engine.directory.snapshotsDir
        try FileIO.makeDirectories(dir)
        // Written to the file as it arrives (no size limit but the disk's).
        let (status, message) = try client.download(path, headers: apiKey.map { [("api-key", $0)] } ?? [], to: file) { length in
            // The file and the collection unpacked from it, beside what this server's own writes need.
            // (The length is the remote server's word: compared without arithmetic that could overflow.)
            guard let (free, total) = FileIO.space(dir) else { return }
            let reserve = FileIO.reserve(total: total)
            guard free >= reserve, length <= (free - reserve) / 2 else {
                throw VQError(.insufficientStorage, "the snapshot at \(url) is \(length) bytes; downloading and unpacking it needs twice that "
                              + "on this server's disk beside the \(reserve) it keeps for its own writes, and \(free) are free")
            }
        }
        guard status == 200 else {
            let detail = message.isEmpty ? "" : ": " + String(message.prefix(200))
            throw VQError.invalid("downloading \(url) answered HTTP \(status); expected 200 and the snapshot\(detail)")
        }
    }
}
