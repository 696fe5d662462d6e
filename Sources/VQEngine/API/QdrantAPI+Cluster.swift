// Cluster routes: Qdrant's `GET /cluster` and `DELETE /cluster/peer/{id}`, and the handlers of
// the peer-to-peer `/internal/` routes (Raft messages, forwarded proposals, joins, shard calls);
// Routes.swift maps paths to them.

import Foundation

extension QdrantAPI {
    /// The collection an alias names, or `name` itself when it is no alias. A peer that knows
    /// neither catches up with the leader first (the alias may be new).
    func resolveAlias(_ name: String) throws -> String {
        if let cluster {
            if let target = cluster.aliases[name] { return target }
            if cluster.collectionMeta(name) == nil && !engine.hasCollection(name) && cluster.catchUp(timeout: catchUpTimeout) {
                return cluster.aliases[name] ?? name
            }
            return name
        }
        // A damaged aliases.json must not take every collection route down: names resolve to
        // themselves until it is repaired (changing aliases reports the damage).
        return (try? engine.aliases())?[name] ?? name
    }

    /// How long a request may wait to catch up with the leader's metadata: 5 s, or what is left
    /// of a read's deadline.
    var catchUpTimeout: Double { ReadDeadline.current.map { max(0.001, min(5, $0.remaining)) } ?? 5 }

    /// `POST /collections/aliases`: create, delete and rename aliases, all or nothing.
    func changeAliases(_ body: JSON, _ r: HTTPRequest, _ start: UInt64) throws -> HTTPResponse {
        let actions = try AliasAction.parse(body)
        if let cluster {
            // Checked here first, so a bad batch is a 400/404 with its reason, not a silent no-op;
            // a collection this peer does not know yet is looked for again once it has caught up.
            do {
                _ = try AliasAction.apply(actions, to: cluster.aliases) { cluster.collectionMeta($0) != nil }
            } catch let e as VQError where e.kind == .notFound && cluster.catchUp() {
                _ = try AliasAction.apply(actions, to: cluster.aliases) { cluster.collectionMeta($0) != nil }
            }
            try cluster.propose(ClusterState.changeAliases(actions), timeout: try commitTimeout(r))
        } else {
            try engine.changeAliases(actions)
        }
        return APIEnvelope.ok(.bool(true), since: start)
    }

    /// `GET /aliases` (collection nil) and `GET /collections/NAME/aliases`: {"aliases": [{"alias_name", "collection_name"}]}.
    func aliasList(of collection: String?) throws -> JSON {
        let map = try cluster.map { $0.aliases } ?? engine.aliases()
        let list = map.filter { collection == nil || $0.value == collection }.sorted { $0.key < $1.key }
        return .object([("aliases", .array(list.map { .object([("alias_name", .string($0.key)), ("collection_name", .string($0.value))]) }))])
    }

    /// The collection `name`; in a cluster, a name this peer does not know yet is looked up again
    /// once it has caught up with the leader's metadata (a collection just created through
    /// another peer).
    func openCollection(_ name: String) throws -> VectorCollection {
        do {
            return try engine.collection(name)
        } catch let e as VQError where e.kind == .notFound {
            guard let cluster, cluster.catchUp(timeout: catchUpTimeout) else { throw e }
            return try engine.collection(name)
        }
    }

    /// `GET /cluster`, in Qdrant's shape.
    func clusterInfo() -> JSON {
        guard let cluster else {
            return .object([("status", .string("disabled"))])
        }
        let s = cluster.status
        let role: String = switch s.role {
        case .leader: "Leader"
        case .candidate: "Candidate"
        case .follower: "Follower"
        }
        var peers = s.peers
        if peers[s.id] == nil { peers[s.id] = cluster.options.uri }
        return .object([
            ("status", .string("enabled")), ("peer_id", .uint(s.id)),
            ("peers", .object(peers.keys.sorted().map { (String($0), .object([("uri", .string(peers[$0]!))])) })),
            ("raft_info", .object([("term", .uint(s.term)), ("commit", .uint(s.commit)), ("pending_operations", .uint(s.commit - min(s.commit, s.applied))),
                                   ("leader", s.leader.map { .uint($0) } ?? .null), ("role", .string(role)),
                                   ("is_voter", .bool(s.voters.contains(s.id))),
                                   // vq's additions: who votes, who only learns, and whether a majority answers.
                                   ("voters", .array(s.voters.sorted().map { .uint($0) })),
                                   ("learners", .array(peers.keys.filter { !s.voters.contains($0) }.sorted().map { .uint($0) })),
                                   ("quorum", .uint(UInt64(s.voters.count / 2 + 1))), ("has_quorum", .bool(s.hasQuorum))])),
            ("consensus_thread_status", .object([("consensus_thread_status", .string("working")),
                                                 ("last_update", .string(ISO8601DateFormatter().string(from: Date())))])),
            ("message_send_failures", .object([])),
        ])
    }

    /// `DELETE /cluster/peer/{id}[?force=true]`: committed through the leader. A peer holding
    /// replicas is refused unless `force`, which first moves each of its replicas to a peer that
    /// has none of that shard (copied from the shard's primary) or, where no such peer exists,
    /// drops it (never a shard's last active replica).
    func removePeer(_ text: String, _ r: HTTPRequest, _ start: UInt64) throws -> HTTPResponse {
        guard let cluster else { throw VQError(.notFound, "this server runs no cluster") }
        guard let id = PeerID(text), id > 0 else { throw VQError.invalid("peer id \"\(text)\" is invalid; expected a positive integer") }
        let force: Bool
        switch r.query["force"]?.lowercased() {
        case nil, "false": force = false
        case "true", "": force = true
        case let other?: throw VQError.invalid("force is \"\(other)\"; expected true or false")
        }
        if force {
            for (name, shard) in cluster.metadata.replicas(of: id) {
                try moveOff(id, name, shard, cluster: cluster, timeout: try commitTimeout(r))
            }
        }
        try cluster.removePeer(id, timeout: try commitTimeout(r, fallback: 20))
        return APIEnvelope.ok(.bool(true), since: start)
    }

    /// Takes `peer`'s replica of `shard` away: to the voter with the fewest replicas that holds
    /// none of this shard (copied from the primary), else dropped when another replica is active.
    private func moveOff(_ peer: PeerID, _ name: String, _ shard: Int, cluster: ClusterNode, timeout: Double) throws {
        let state = cluster.metadata
        guard let shards = state.collections[name]?.shards, shards.indices.contains(shard) else { return }
        let replicas = shards[shard]
        let load = state.collections.values.flatMap { $0.shards.flatMap { $0.map(\.peer) } }.reduce(into: [PeerID: Int]()) { $0[$1, default: 0] += 1 }
        let target = cluster.status.voters.filter { p in p != peer && !replicas.contains { $0.peer == p } }
            .min { (load[$0] ?? 0, $0) < (load[$1] ?? 0, $1) }
        let othersActive = replicas.contains { $0.peer != peer && $0.state == .active }
        let what = "\(name)/\(shard)"
        if othersActive {
            // Another replica can serve and be copied from: drop this one first, so nothing waits on it.
            try cluster.propose(ClusterState.replica("drop_replica", name, shard: shard, peer: peer), timeout: timeout)
            if let target {
                try cluster.propose(ClusterState.replica("add_replica", name, shard: shard, peer: target), timeout: timeout)
                try engine.collection(name).replicaSets[shard].catchUp(to: target, after: nil)
            }
        } else {
            guard let target else {
                throw VQError.invalid("peer \(peer) holds the only active replica of \(what) and no other peer can take it")
            }
            try cluster.propose(ClusterState.replica("add_replica", name, shard: shard, peer: target), timeout: timeout)
            do {
                try engine.collection(name).replicaSets[shard].catchUp(to: target, after: nil)
            } catch {
                throw VQError(.io, "peer \(peer) holds the only active replica of \(what) and it could not be copied to peer \(target): \(error)")
            }
            try cluster.propose(ClusterState.replica("drop_replica", name, shard: shard, peer: peer), timeout: timeout)
        }
        cluster.logEvent("replica moved off a removed peer", [("collection", .string(name)), ("shard", .int(Int64(shard))),
                                                               ("from", .uint(peer)), ("to", target.map { .uint($0) } ?? .null)])
    }

    /// `POST /collections/{name}/cluster`: Qdrant's `move_shard`, `replicate_shard` and
    /// `drop_replica` operations. Answers once the change is done: a new replica is copied from
    /// the shard's primary and active; a moved shard's old replica is dropped after that. A
    /// `method` of `snapshot` copies segment files, `stream_records` every point (default: the
    /// server's `--shard-transfer`); Qdrant's other methods and fields are refused by name.
    /// Moves and copies, checked here, are carried out by the Raft leader (forwarded there,
    /// `POST /internal/collections/{name}/cluster`), one at a time with its rebalances.
    func updateCollectionCluster(_ name: String, _ r: HTTPRequest, _ start: UInt64, forwarded: Bool = false) throws -> HTTPResponse {
        guard let cluster else { throw VQError(.notFound, "this server runs no cluster") }
        guard let meta = cluster.collectionMeta(name) else { throw VQError(.notFound, "collection \"\(name)\" is not distributed") }
        let body = try JSONParser.parseRequest(r.body)
        func shardOf(_ op: JSON, _ what: String) throws -> Int {
            guard let s = op["shard_id"]?.intValue.map(Int.init), meta.shards.indices.contains(s) else {
                throw VQError.invalid("\(what).shard_id is missing or not a shard of \"\(name)\" (0 to \(meta.shards.count - 1))")
            }
            return s
        }
        func peer(_ op: JSON, _ key: String, _ what: String) throws -> PeerID {
            guard let p = op[key]?.uint64Value, cluster.status.peers[p] != nil else {
                throw VQError.invalid("\(what).\(key) is missing or not a peer of the cluster (see GET /cluster)")
            }
            return p
        }
        /// The operation's fields, each known (Qdrant's others are refused by name, not ignored).
        func check(_ op: JSON, _ what: String, _ allowed: [String]) throws {
            guard case .object(let fields) = op else { throw VQError.invalid("\(what) is not an object") }
            if let unknown = fields.map(\.0).first(where: { !allowed.contains($0) }) {
                throw VQError.invalid("\(what).\(unknown) is not supported; expected \(allowed.joined(separator: ", "))")
            }
        }
        /// Qdrant's transfer `method`: snapshot (segment files) or stream_records (every point).
        func method(_ op: JSON, _ what: String) throws -> TransferMethod? {
            guard let m = op["method"], m != .null else { return nil }
            if let text = m.stringValue, ["wal_delta", "resharding_stream_records"].contains(text) {
                throw VQError.invalid("\(what).method \(text) is not implemented; use snapshot (segment files) or stream_records")
            }
            guard let text = m.stringValue, let method = TransferMethod(rawValue: text) else {
                throw VQError.unknownValue("\(what).method is \(m.compactText); expected snapshot (segment files) or stream_records "
                                           + "(wal_delta and resharding_stream_records are not implemented)")
            }
            return method
        }
        let timeout = try commitTimeout(r)
        let mover = Rebalancer(node: cluster, engine: engine, commitTimeout: timeout)
        let leaderPath = "/internal/collections/\(percentEncode(name))/cluster"
        let leaderQuery = r.query["timeout"].map { ["timeout=" + percentEncode($0)] } ?? []
        guard case .object(let ops) = body, ops.count == 1 else {
            throw VQError.invalid("expected exactly one of move_shard, replicate_shard or drop_replica")
        }
        if let op = body["replicate_shard"] {
            try check(op, "replicate_shard", ["shard_id", "to_peer_id", "from_peer_id", "method"])
            let shard = try shardOf(op, "replicate_shard")
            // The copy comes from the shard's primary; a named source must be an Active replica
            // (which holds the same points), so naming one changes nothing but is checked.
            if let f = op["from_peer_id"], f != .null {
                let from = try peer(op, "from_peer_id", "replicate_shard")
                guard meta.shards[shard].contains(Replica(peer: from, state: .active)) else {
                    throw VQError.invalid("replicate_shard.from_peer_id \(from) holds no Active replica of shard \(shard)")
                }
            }
            let to = try peer(op, "to_peer_id", "replicate_shard"), how = try method(op, "replicate_shard")
            if try onLeader(cluster, "replicate_shard", path: leaderPath, query: leaderQuery, body: r.body, forwarded: forwarded) != nil {
                return APIEnvelope.ok(.bool(true), since: start)
            }
            // Not while a rebalance or recovery here moves replicas of its own.
            try Rebalancer.exclusively("replicate_shard") { try mover.replicate(name, shard, to: to, method: how) }
        } else if let op = body["move_shard"] {
            try check(op, "move_shard", ["shard_id", "to_peer_id", "from_peer_id", "method"])
            let shard = try shardOf(op, "move_shard")
            let from = try peer(op, "from_peer_id", "move_shard"), to = try peer(op, "to_peer_id", "move_shard")
            guard meta.shards[shard].contains(where: { $0.peer == from }) else {
                throw VQError.invalid("move_shard.from_peer_id \(from) holds no replica of shard \(shard)")
            }
            let how = try method(op, "move_shard")
            if try onLeader(cluster, "move_shard", path: leaderPath, query: leaderQuery, body: r.body, forwarded: forwarded) != nil {
                return APIEnvelope.ok(.bool(true), since: start)
            }
            try Rebalancer.exclusively("move_shard") { try mover.move(Rebalance.Move(collection: name, shard: shard, from: from, to: to), method: how) }
        } else if let op = body["drop_replica"] {
            try check(op, "drop_replica", ["shard_id", "peer_id"])
            let shard = try shardOf(op, "drop_replica")
            try cluster.propose(ClusterState.replica("drop_replica", name, shard: shard, peer: try peer(op, "peer_id", "drop_replica")), timeout: timeout)
        } else {
            throw VQError.invalid("expected one of move_shard, replicate_shard or drop_replica")
        }
        return APIEnvelope.ok(.bool(true), since: start)
    }

    /// Runs on the Raft leader what must run there (shard moves and copies, rebalances), so one
    /// peer moves replicas at a time: nil when this peer leads; else the leader's `result`, asked
    /// of it at the peer route `path`. A request forwarded here that finds this peer no longer
    /// leading is refused (503), not run beside the new leader's moves.
    private func onLeader(_ cluster: ClusterNode, _ what: String, path: String, query: [String] = [], body: [UInt8]? = nil,
                          forwarded: Bool) throws -> JSON? {
        let status = cluster.status
        if status.role == .leader { return nil }
        guard !forwarded else { throw VQError(.busy, "this peer no longer leads the cluster; retry \(what)") }
        guard let leader = status.leader, let uri = cluster.address(of: leader) else {
            throw VQError(.busy, "no Raft leader is known to run \(what); retry shortly")
        }
        let answer = try HTTPClient(url: uri, timeout: 3600)
            .send("POST", path + (query.isEmpty ? "" : "?" + query.joined(separator: "&")), body: body, headers: cluster.internalHeaders)
        guard answer.status == 200, let result = (try? JSONParser.parse(answer.body))?["result"] else {
            let e = VQError(status: answer.status == 200 ? 502 : answer.status, body: answer.body, from: "leader \(leader)")
            // The caller's input and the cluster's state come back as they are; the leader's
            // refusal of this peer (its secret, a route it lacks) is no fault of the caller's.
            if [401, 403, 404, 405].contains(answer.status) { throw VQError(.io, "the leader (peer \(leader)) could not run \(what): \(e.message)") }
            throw e
        }
        return result
    }

    /// `POST /collections/{name}/cluster/repair[?shard=N]` (vq's extension): anti-entropy now, on
    /// every shard (or one): each shard's primary compares its replicas with its copy and repairs
    /// what differs (`ReplicaSet.reconcile`). Answers with each shard's report once done.
    func repairCollection(_ name: String, _ r: HTTPRequest, _ start: UInt64) throws -> HTTPResponse {
        guard let cluster else { throw VQError(.notFound, "this server runs no cluster; repair compares the replicas of a distributed collection") }
        guard let meta = cluster.collectionMeta(name) else { throw VQError(.notFound, "collection \"\(name)\" is not distributed") }
        let collection = try openCollection(name)
        var shards = Array(meta.shards.indices)
        if let text = r.query["shard"] {
            guard let s = Int(text), meta.shards.indices.contains(s) else {
                throw VQError.invalid("shard is \"\(text)\"; expected a shard of \"\(name)\" (0 to \(meta.shards.count - 1))")
            }
            shards = [s]
        }
        guard shards.allSatisfy(collection.replicaSets.indices.contains) else {
            throw VQError(.busy, "collection \"\(name)\" is being re-created here; retry shortly")
        }
        // One shard's failure is its entry's error, not the loss of the other shards' reports.
        let reports: [JSON] = shards.map { s in
            do { return try collection.replicaSets[s].repair() } catch {
                return .object([("shard_id", .int(Int64(s))), ("error", .string(VQError.wrap(error).message)), ("replicas", .array([]))])
            }
        }
        return APIEnvelope.ok(.object([("shards", .array(reports))]), since: start)
    }

    /// `POST /cluster/rebalance[?collection=NAME][&dry_run=true]` (vq's extension): moves replicas
    /// until every voting peer holds an even share of each collection's (`Rebalance.plan`), one
    /// shard transfer at a time while serving. Answers with the moves once done (planned only,
    /// with dry_run). Runs on the Raft leader (forwarded there, `POST /internal/rebalance`), so
    /// one peer plans and moves at a time, as `--auto-rebalance` does.
    func rebalance(_ r: HTTPRequest, _ start: UInt64, forwarded: Bool = false) throws -> HTTPResponse {
        guard let cluster else { throw VQError(.notFound, "this server runs no cluster; rebalancing moves replicas between peers") }
        var dryRun = false
        switch r.query["dry_run"]?.lowercased() {
        case nil, "false": break
        case "true": dryRun = true
        case let other?: throw VQError.invalid("dry_run is \"\(other)\"; expected true or false")
        }
        var query: [String] = []
        if let c = r.query["collection"] { query.append("collection=" + percentEncode(c)) }
        if dryRun { query.append("dry_run=true") }
        if let result = try onLeader(cluster, "the rebalance", path: "/internal/rebalance", query: query, forwarded: forwarded) {
            return APIEnvelope.ok(result, since: start)
        }
        let (moves, done) = try Rebalancer(node: cluster, engine: engine).run(only: r.query["collection"], dryRun: dryRun)
        return APIEnvelope.ok(.object([("moves", .array(moves.map(\.json))), ("done", .int(Int64(done))), ("dry_run", .bool(dryRun))]),
                              since: start)
    }

    /// This peer's cluster membership. - Throws: `.notFound` on a server without one.
    func node() throws -> ClusterNode {
        guard let cluster else { throw VQError(.notFound, "this server runs no cluster") }
        return cluster
    }

    /// `POST /internal/raft`: a batch of Raft messages; 410 to a peer that was removed.
    func peerRaft(_ c: RouteCall) throws -> HTTPResponse {
        let cluster = try node()
        if let from = c.peer, cluster.wasRemoved(from) {
            throw VQError(.gone, "peer \(from) was removed from the cluster")
        }
        try cluster.receive(c.request.body, peerHeader: c.request.header(ClusterNode.peerHeader))
        return .text(200, "ok")
    }

    /// `POST /internal/join` `{"id", "uri"}`: adds the peer (a learner until it has caught up).
    func peerJoin(_ c: RouteCall) throws -> HTTPResponse {
        let cluster = try node()
        let body = try c.body()
        guard let id = body["id"]?.uint64Value, id > 0, let uri = body["uri"]?.stringValue else {
            throw VQError.invalid("join needs {\"id\": positive integer, \"uri\": \"http://HOST:PORT\"}")
        }
        try ClusterState.checkURI(uri)
        try cluster.addPeer(id, uri: uri)
        return APIEnvelope.ok(.object([("index", .uint(cluster.status.applied))]), since: c.start)
    }

    /// `.../write[?timeout=S]`: a write forwarded to this peer as the shard's primary; it waits
    /// on a full update queue for what is left of the caller's timeout (else `--write-timeout`).
    func shardWrite(_ collection: VectorCollection, _ shard: Int, _ c: RouteCall) throws -> HTTPResponse {
        let config = collection.config
        let (operation, bytes, wait, _, _) = try ShardWire.decodeOperation(c.request.body, vectors: config.vectors)
        let timeout = try timeoutParameter(c.request) ?? self.config.writeTimeout
        try collection.replicaSets[shard].writeAsPrimary(operation, encoded: bytes, wait: wait, deadline: Date().addingTimeInterval(timeout),
                                                          config: config)
        return .text(200, "ok")
    }

    /// `.../apply`: an operation the primary ordered, on a replica.
    func shardApply(_ collection: VectorCollection, _ shard: Int, _ c: RouteCall) throws -> HTTPResponse {
        // The caller names itself (`x-vq-peer: ID URI`): only the shard's primary may order.
        try collection.replicaSets[shard].applyAsReplica(c.request.body, vectors: collection.config.vectors, from: try c.sender())
        return .text(200, "ok")
    }

    /// A damaged copy answers an error (the caller reads another replica) instead of bad bytes.
    private func readable(_ collection: VectorCollection, _ shard: Int) throws -> LocalShard {
        let local = collection.shards[shard]
        try local.checkIntact()
        return local
    }

    /// `.../transfer`: on the primary, bring a replica up to date.
    func shardTransfer(_ collection: VectorCollection, _ shard: Int, _ c: RouteCall) throws -> HTTPResponse {
        let (to, after, method) = try ShardWire.decodeTransfer(c.request.body)
        try collection.replicaSets[shard].transfer(to: to, after: after, method: method)
        return .text(200, "ok")
    }

    func shardReceive(_ collection: VectorCollection, _ shard: Int, _ c: RouteCall) throws -> HTTPResponse {
        let vectors = collection.config.vectors
        let from = try c.sender()
        try collection.replicaSets[shard].receive(try ShardWire.decodeReceive(c.request.body, vectors: vectors), vectors: vectors, from: from)
        return .text(200, "ok")
    }

    func shardSparseStats(_ collection: VectorCollection, _ shard: Int, _ c: RouteCall) throws -> HTTPResponse {
        let (store, terms) = try ShardWire.decodeSparseStats(c.request.body, sparse: collection.config.vectors.sparse.count)
        return .binary(ShardWire.encodeSparseCounts(try readable(collection, shard).sparseStats(store: store, terms: terms)))
    }
}
