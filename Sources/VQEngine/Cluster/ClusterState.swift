// The cluster's metadata: what Raft agrees on. Every peer applies the same commands in the
// same order, so `apply` must be deterministic and must never fail differently on different
// peers: a command it cannot use is recorded as ignored, not thrown.
//
// Commands are JSON objects with an "op", and a "pid" (a random proposal id, the same each time
// its proposer tries again: a command is applied once per pid):
//   {"op": "add_peer", "id": 7, "uri": "http://127.0.0.1:6334"}   add or re-address a peer (a learner
//                                                                  until the voters include it)
//   {"op": "remove_peer", "id": 7}      drops its replicas (refused while it holds a shard's last
//                                       active one); the id is never taken back
//   {"op": "create_collection", "name": "docs", "config": {...}, "shards": [[peer, peer], ...]}
//   {"op": "update_collection", "name": "docs", "config": {...}}
//   {"op": "delete_collection", "name": "docs"}          (and its aliases)
//   {"op": "aliases", "actions": [{"create_alias": {...}}, ...]}   all or nothing (Aliases.swift)
//   {"op": "set_replica", "name": "docs", "shard": 0, "peer": 7, "state": "Dead"}
//                                       optionally "primary": 3: only while peer 3 is the shard's
//                                       primary (its own marks: a replaced primary's are refused)
//   {"op": "add_replica", "name": "docs", "shard": 0, "peer": 7}      (as Partial, until transferred)
//   {"op": "drop_replica", "name": "docs", "shard": 0, "peer": 7}

/// A collection spread over peers: its config and, per shard, the replicas in placement order
/// (the first active one is the shard's primary).
package struct CollectionMeta: Sendable, Equatable {
    package var config: CollectionConfig
    package var shards: [[Replica]]
}

/// What applying a command means for this peer's local data.
package enum ClusterEffect: Sendable {
    case collectionCreated(String, CollectionConfig)
    case collectionUpdated(String, CollectionConfig)
    case collectionDeleted(String)
    /// The state was replaced by a snapshot (a restart, or a peer that was away while the log
    /// was compacted): local data is brought in line with the whole state.
    case snapshotRestored
}

package struct ClusterState: Sendable, Equatable {
    /// Peers by id: the URI others reach them at.
    package var peers: [PeerID: String] = [:]
    package var collections: [String: CollectionMeta] = [:]
    /// Peers removed from the cluster: they may not come back (a removed peer that hears of
    /// this stops).
    package var removed: Set<PeerID> = []
    /// Collection aliases: alias -> collection.
    package var aliases: [String: String] = [:]
    /// The proposal ids (`"pid"`) of the last commands applied, oldest first: a command proposed
    /// again (its proposer gave up on a leader that then committed it anyway) is applied once.
    package var recentProposals: [UInt64] = []
    /// Proposal ids kept.
    static let proposalsKept = 512

    package init() {}

    /// Spreads `shards` x `replicas` over `peers` round-robin: every peer gets the same number
    /// (give or take one) and no shard has two replicas on one peer.
    /// - Throws: `.invalidInput` when there are fewer peers than replicas.
    package static func placement(shards: Int, replicas: Int, peers: [PeerID]) throws -> [[PeerID]] {
        let sorted = peers.sorted()
        guard replicas <= sorted.count else {
            throw VQError.invalid("replication_factor is \(replicas) but the cluster has \(sorted.count) peer\(sorted.count == 1 ? "" : "s"); "
                                  + "expected at most \(sorted.count)")
        }
        return (0..<shards).map { s in (0..<replicas).map { r in sorted[(s * replicas + r) % sorted.count] } }
    }

    /// Applies one committed command.
    /// - Returns: what it means for local data, if anything.
    /// - Throws: why the command was ignored (the state is unchanged; every peer ignores it alike).
    @discardableResult
    package mutating func apply(_ bytes: [UInt8]) throws -> ClusterEffect? {
        guard let command = try? JSONParser.parse(bytes), let op = command["op"]?.stringValue else {
            throw VQError.invalid("not a command object")
        }
        // Applied already under this proposal id: done, nothing more to do.
        let pid = try Self.optionalID(command, "pid", op)
        if let pid, recentProposals.contains(pid) { return nil }
        let effect = try apply(command, op)
        if let pid {
            recentProposals.append(pid)
            if recentProposals.count > Self.proposalsKept { recentProposals.removeFirst(recentProposals.count - Self.proposalsKept) }
        }
        return effect
    }

    private mutating func apply(_ command: JSON, _ op: String) throws -> ClusterEffect? {
        func name() throws -> String {
            guard let n = command["name"]?.stringValue else { throw VQError.invalid("\(op) needs a name") }
            return n
        }
        switch op {
        case "add_peer":
            guard let id = command["id"]?.uint64Value, id > 0, let uri = command["uri"]?.stringValue else {
                throw VQError.invalid("add_peer needs a positive id and a uri")
            }
            try ClusterState.checkURI(uri)
            guard !removed.contains(id) else { throw VQError.invalid("peer \(id) was removed from the cluster and cannot rejoin") }
            peers[id] = uri
        case "remove_peer":
            guard let id = command["id"]?.uint64Value else { throw VQError.invalid("remove_peer needs id") }
            guard !(peers.count == 1 && peers[id] != nil) else { throw VQError.invalid("peer \(id) is the last peer of the cluster") }
            // Every shard keeps an active replica elsewhere.
            var remaining = collections
            for (n, meta) in collections {
                remaining[n]!.shards = meta.shards.map { $0.filter { $0.peer != id } }
                if let s = remaining[n]!.shards.firstIndex(where: { !$0.contains { $0.state == .active } }) {
                    throw VQError.invalid("peer \(id) holds the only active replica of \(n)/\(s)")
                }
            }
            peers[id] = nil
            removed.insert(id)
            collections = remaining
        case "create_collection":
            let n = try name()
            try Engine.validateName(n)
            guard collections[n] == nil else { throw VQError(.conflict, "collection \(n) exists") }
            guard aliases[n] == nil else { throw VQError(.conflict, "\(n) is an alias") }
            let config = try CollectionConfig(json: command["config"] ?? .null, path: "create_collection \(n)")
            guard let shards = command["shards"]?.arrayValue, shards.count == config.shardNumber else {
                throw VQError.invalid("create_collection \(n) needs one replica list per shard")
            }
            let placed = try shards.map { list -> [Replica] in
                let replicas = try (list.arrayValue ?? []).map { p in
                    // (Not `peers`: a founder's own address may commit after its first create.)
                    guard let peer = p.uint64Value, peer > 0, !removed.contains(peer) else {
                        throw VQError.invalid("placement of \(n) names a peer that is not in the cluster")
                    }
                    return Replica(peer: peer, state: .active)
                }
                guard !replicas.isEmpty, Set(replicas.map(\.peer)).count == replicas.count else {
                    throw VQError.invalid("placement of \(n) gives a shard no replica or two on one peer")
                }
                return replicas
            }
            collections[n] = CollectionMeta(config: config, shards: placed)
            return .collectionCreated(n, config)
        case "update_collection":
            let n = try name()
            guard collections[n] != nil else { throw VQError(.notFound, "collection \(n) does not exist") }
            let config = try CollectionConfig(json: command["config"] ?? .null, path: "update_collection \(n)")
            // What shards and stored vectors depend on never changes in place.
            let old = collections[n]!.config
            guard config.vectors.sameStorage(old.vectors), config.shardNumber == old.shardNumber else {
                throw VQError.invalid("update_collection \(n) changes the vectors' names, sizes or distances, or shard_number")
            }
            collections[n]!.config = config
            return .collectionUpdated(n, config)
        case "delete_collection":
            let n = try name()
            guard collections.removeValue(forKey: n) != nil else { throw VQError(.notFound, "collection \(n) does not exist") }
            aliases = aliases.filter { $0.value != n }
            return .collectionDeleted(n)
        case "aliases":
            let actions = try AliasAction.parse(command)
            aliases = try AliasAction.apply(actions, to: aliases) { collections[$0] != nil }
        case "set_replica":
            let n = try name()
            guard let shard = command["shard"]?.intValue.map(Int.init), let peer = command["peer"]?.uint64Value,
                  let state = command["state"]?.stringValue.flatMap(ReplicaState.init(rawValue:)),
                  let meta = collections[n], meta.shards.indices.contains(shard) else {
                throw VQError.invalid("set_replica names no replica")
            }
            // A primary's mark (a replica that missed its write, or that its copy brought up to
            // date): only while it still is the primary, checked first (before "dropped").
            // One that was replaced without knowing it (cut off, paused) must not take another
            // replica out of service after the fact; its write is then not acknowledged.
            if let primary = try Self.optionalID(command, "primary", op) {
                let current = meta.shards[shard].primary
                guard current == primary else {
                    throw VQError(.conflict, "peer \(primary) is no longer the primary of shard \(shard) of \(n); "
                                  + (current.map { "peer \($0) is" } ?? "it has no active replica"))
                }
            }
            // A replica dropped meanwhile (a move finished): its own kind, so a primary marking it
            // Dead knows there is nothing left to mark.
            guard let at = meta.shards[shard].firstIndex(where: { $0.peer == peer }) else {
                throw VQError(.notFound, "peer \(peer) holds no replica of shard \(shard) of \(n) (dropped)")
            }
            // The last active replica stays: a shard with none could never recover.
            if state != .active, meta.shards[shard][at].state == .active,
               !meta.shards[shard].enumerated().contains(where: { $0.offset != at && $0.element.state == .active }) {
                // 503: the shard has no other copy to serve from; retry once the peer is back.
                throw VQError(.busy, "peer \(peer) holds the last active replica of shard \(shard) of \(n); it stays active")
            }
            collections[n]!.shards[shard][at].state = state
        case "add_replica", "drop_replica":
            let n = try name()
            guard let shard = command["shard"]?.intValue.map(Int.init), let peer = command["peer"]?.uint64Value,
                  let meta = collections[n], meta.shards.indices.contains(shard) else {
                throw VQError.invalid("\(op) names no shard")
            }
            let at = meta.shards[shard].firstIndex { $0.peer == peer }
            if op == "add_replica" {
                guard at == nil else { throw VQError(.conflict, "peer \(peer) already holds shard \(shard) of \(n)") }
                guard peers[peer] != nil else { throw VQError(.notFound, "peer \(peer) is not in the cluster") }
                collections[n]!.shards[shard].append(Replica(peer: peer, state: .partial))
            } else {
                guard let at else { throw VQError(.notFound, "peer \(peer) holds no replica of shard \(shard) of \(n)") }
                let others = meta.shards[shard].enumerated().filter { $0.offset != at && $0.element.state == .active }
                guard !others.isEmpty else { throw VQError.invalid("peer \(peer) holds the only active replica of shard \(shard) of \(n)") }
                collections[n]!.shards[shard].remove(at: at)
            }
        default:
            throw VQError.invalid("unknown op \(op)")
        }
        return nil
    }

    package var json: JSON {
        .object([
            ("peers", .object(peers.keys.sorted().map { (String($0), .string(peers[$0]!)) })),
            ("removed", .array(removed.sorted().map { .uint($0) })),
            ("collections", .object(collections.keys.sorted().map { n in
                let meta = collections[n]!
                return (n, .object([("config", meta.config.json),
                                    ("shards", .array(meta.shards.map { .array($0.map { .object([("peer", .uint($0.peer)), ("state", .string($0.state.rawValue))]) }) }))]))
            })),
            ("aliases", AliasAction.json(aliases)),
            ("proposals", .array(recentProposals.map { .uint($0) })),
        ])
    }

    package init(json: JSON) throws {
        guard case .object(let fields)? = json["peers"] else { throw VQError(.corrupt, "cluster snapshot lacks peers") }
        for (k, v) in fields {
            guard let id = PeerID(k), let uri = v.stringValue else { throw VQError(.corrupt, "cluster snapshot has a bad peer \(k)") }
            peers[id] = uri
        }
        for r in json["removed"]?.arrayValue ?? [] {
            guard let id = r.uint64Value else { throw VQError(.corrupt, "cluster snapshot has a bad removed peer") }
            removed.insert(id)
        }
        // The same rules as `apply`: a snapshot from a peer is input too.
        for (n, meta) in json["collections"]?.objectValue ?? [] {
            guard (try? Engine.validateName(n)) != nil else { throw VQError(.corrupt, "cluster snapshot has a bad collection name") }
            let config = try CollectionConfig(json: meta["config"] ?? .null, path: "cluster snapshot collection \(n)")
            let shards = try (meta["shards"]?.arrayValue ?? []).map { list in
                let replicas = try (list.arrayValue ?? []).map { r -> Replica in
                    guard let peer = r["peer"]?.uint64Value, let state = r["state"]?.stringValue.flatMap(ReplicaState.init(rawValue:)) else {
                        throw VQError(.corrupt, "cluster snapshot has a bad replica in \(n)")
                    }
                    return Replica(peer: peer, state: state)
                }
                guard !replicas.isEmpty, Set(replicas.map(\.peer)).count == replicas.count else {
                    throw VQError(.corrupt, "cluster snapshot gives a shard of \(n) no replica or two on one peer")
                }
                return replicas
            }
            guard shards.count == config.shardNumber else {
                throw VQError(.corrupt, "cluster snapshot gives \(n) \(shards.count) shards; its config says \(config.shardNumber)")
            }
            collections[n] = CollectionMeta(config: config, shards: shards)
        }
        aliases = try AliasAction.map(json["aliases"] ?? .object([]), what: "cluster snapshot")
        // (Absent from snapshots before proposal ids.)
        if let proposals = json["proposals"] {
            guard let list = proposals.arrayValue, list.count <= Self.proposalsKept else {
                throw VQError(.corrupt, "cluster snapshot's proposals are not a list of at most \(Self.proposalsKept) ids")
            }
            recentProposals = try list.map {
                guard let id = $0.uint64Value else { throw VQError(.corrupt, "cluster snapshot has a bad proposal id") }
                return id
            }
        }
        for (alias, target) in aliases where collections[target] == nil || collections[alias] != nil {
            throw VQError(.corrupt, "cluster snapshot has alias \(alias) for a missing collection \(target), or one that shadows a collection")
        }
        for (id, uri) in peers where (try? ClusterState.checkURI(uri)) == nil {
            throw VQError(.corrupt, "cluster snapshot has a bad address for peer \(id)")
        }
    }

    package static func addPeer(_ id: PeerID, uri: String) -> JSON {
        .object([("op", .string("add_peer")), ("id", .uint(id)), ("uri", .string(uri))])
    }

    package static func removePeer(_ id: PeerID) -> JSON {
        .object([("op", .string("remove_peer")), ("id", .uint(id))])
    }

    package static func createCollection(_ name: String, _ config: CollectionConfig, placement: [[PeerID]]) -> JSON {
        .object([("op", .string("create_collection")), ("name", .string(name)), ("config", config.json),
                 ("shards", .array(placement.map { .array($0.map { .uint($0) }) }))])
    }

    package static func updateCollection(_ name: String, _ config: CollectionConfig) -> JSON {
        .object([("op", .string("update_collection")), ("name", .string(name)), ("config", config.json)])
    }

    package static func changeAliases(_ actions: [AliasAction]) -> JSON {
        .object([("op", .string("aliases")), ("actions", .array(actions.map(\.json)))])
    }

    package static func deleteCollection(_ name: String) -> JSON {
        .object([("op", .string("delete_collection")), ("name", .string(name))])
    }

    package static func replica(_ op: String, _ name: String, shard: Int, peer: PeerID) -> JSON {
        .object([("op", .string(op)), ("name", .string(name)), ("shard", .int(Int64(shard))), ("peer", .uint(peer))])
    }

    /// A command's optional peer or proposal id: absent, or an unsigned integer (anything else is
    /// refused, never read as absent).
    static func optionalID(_ command: JSON, _ field: String, _ op: String) throws -> UInt64? {
        guard let value = command[field] else { return nil }
        guard let id = value.uint64Value else { throw VQError.invalid("\(op)'s \"\(field)\" is \(JSONWriter.string(value)); expected an unsigned integer") }
        return id
    }

    /// Checks a peer's address: `http://HOST:PORT`.
    package static func checkURI(_ uri: String) throws {
        let rest = uri.hasPrefix("http://") ? uri.dropFirst(7) : ""
        guard let colon = rest.lastIndex(of: ":"), !rest[..<colon].isEmpty, let port = Int(rest[rest.index(after: colon)...]),
              (1...65_535).contains(port), !rest.contains("/"), uri.utf8.count <= 300 else {
            throw VQError.invalid("peer address \"\(uri.prefix(300))\" is invalid; expected http://HOST:PORT")
        }
    }

    /// Shards where `peer` holds a replica ("collection/shard").
    package func replicas(of peer: PeerID) -> [(collection: String, shard: Int)] {
        collections.keys.sorted().flatMap { n in
            collections[n]!.shards.enumerated().compactMap { s, replicas in replicas.contains { $0.peer == peer } ? (n, s) : nil }
        }
    }

    /// - Parameter primary: set only while this peer is the shard's primary (nil: unconditionally).
    package static func setReplica(_ name: String, shard: Int, peer: PeerID, _ state: ReplicaState, primary: PeerID? = nil) -> JSON {
        .object([("op", .string("set_replica")), ("name", .string(name)), ("shard", .int(Int64(shard))), ("peer", .uint(peer)),
                 ("state", .string(state.rawValue))] + (primary.map { [("primary", JSON.uint($0))] } ?? []))
    }
}
