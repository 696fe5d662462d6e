// Cluster routes: Qdrant's `GET /cluster` and `DELETE /cluster/peer/{id}`, and the
// peer-to-peer `/internal/` routes (Raft messages, forwarded proposals, joins).

import Foundation

extension QdrantAPI {
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
                                   ("is_voter", .bool(s.voters.contains(s.id)))])),
            ("consensus_thread_status", .object([("consensus_thread_status", .string("working")),
                                                 ("last_update", .string(ISO8601DateFormatter().string(from: Date())))])),
            ("message_send_failures", .object([])),
        ])
    }

    /// `DELETE /cluster/peer/{id}`: committed through the leader.
    func removePeer(_ text: String, _ start: UInt64) throws -> HTTPResponse {
        guard let cluster else { throw VQError(.notFound, "this server runs no cluster") }
        guard let id = PeerID(text), id > 0 else { throw VQError.invalid("peer id \"\(text)\" is invalid; expected a positive integer") }
        try cluster.removePeer(id)
        return APIEnvelope.ok(.bool(true), since: start)
    }

    func internalRoute(_ r: HTTPRequest, _ p: [String], _ start: UInt64) throws -> (String, HTTPResponse) {
        guard let cluster else { throw VQError(.notFound, "this server runs no cluster") }
        guard cluster.authorized(r.header(ClusterNode.secretHeader)) else {
            return ("internal.auth", APIEnvelope.error(403, "internal routes need the cluster secret (--cluster-secret)", since: start))
        }
        if r.method == "POST", p.count == 5, p[1] == "shards", let shard = Int(p[3]) {
            return try shardRoute(r, name: p[2], shard: shard, action: p[4], start)
        }
        guard r.method == "POST", p.count == 2 else { throw VQError(.notFound, "no route for \(r.method) \(r.path)") }
        switch p[1] {
        case "raft":
            try cluster.receive(r.body, peerHeader: r.header(ClusterNode.peerHeader))
            return ("internal.raft", .text(200, "ok"))
        case "propose":
            let index = try cluster.proposeHere(r.body)
            return ("internal.propose", APIEnvelope.ok(.object([("index", .uint(index))]), since: start))
        case "voters":
            let index = try cluster.setVotersHere(r.body)
            return ("internal.voters", APIEnvelope.ok(.object([("index", .uint(index))]), since: start))
        case "join":
            let body = try JSONParser.parseRequest(r.body)
            guard let id = body["id"]?.uint64Value, id > 0, let uri = body["uri"]?.stringValue, uri.hasPrefix("http://") else {
                throw VQError.invalid("join needs {\"id\": positive integer, \"uri\": \"http://HOST:PORT\"}")
            }
            try cluster.addPeer(id, uri: uri)
            return ("internal.join", APIEnvelope.ok(.object([("index", .uint(cluster.status.applied))]), since: start))
        default:
            throw VQError(.notFound, "no route for \(r.method) \(r.path)")
        }
    }

    /// `/internal/shards/{collection}/{shard}/{write|apply|search}`: one shard's part of a request.
    func shardRoute(_ r: HTTPRequest, name: String, shard: Int, action: String, _ start: UInt64) throws -> (String, HTTPResponse) {
        guard let router = engine.router as? ClusterRouter else { throw VQError(.notFound, "this server runs no cluster") }
        // The create may still be applying here: wait for it briefly.
        var collection: Collection?
        for _ in 0..<100 where collection == nil {
            collection = try? engine.collection(name)
            if collection == nil { Thread.sleep(forTimeInterval: 0.05) }
        }
        guard let collection else { throw VQError(.notFound, "collection \"\(name)\" does not exist on this peer") }
        guard collection.shards.indices.contains(shard) else { throw VQError.invalid("collection \"\(name)\" has no shard \(shard)") }
        switch action {
        case "write":
            let (operation, wait) = try ClusterRouter.decode(r.body)
            try router.writeAsPrimary(collection, shard: shard, operation, wait: wait, deadline: Date().addingTimeInterval(config.writeTimeout))
            return ("internal.shard.write", .text(200, "ok"))
        case "apply":
            try router.applyAsReplica(collection, shard: shard, r.body)
            return ("internal.shard.apply", .text(200, "ok"))
        case "search":
            let (vector, request) = try ClusterRouter.shardSearch(try JSONParser.parseRequest(r.body))
            guard vector.count == collection.config.dim else { throw VQError.invalid("shard search vector has \(vector.count) dimensions") }
            let result = vector.withUnsafeBufferPointer { collection.shards[shard].search($0, request) }
            var w = JSONWriter()
            w.write(ClusterRouter.hitsJSON(result))
            return ("internal.shard.search", .json(200, w.bytes))
        case "scan":
            let body = try JSONParser.parseRequest(r.body)
            let wv = body["with_vector"]?.boolValue ?? false, wp = body["with_payload"]?.boolValue ?? false
            let records: [PointRecord]
            if let ids = body["ids"]?.arrayValue {
                records = collection.shards[shard].retrieve(try ids.map { try PointID(json: $0) }, withVector: wv, withPayload: wp)
            } else {
                let filter = try body["filter"].flatMap { $0 == .null ? nil : try Filter(json: $0) }
                records = collection.shards[shard].scan(filter: filter, withVector: wv, withPayload: wp)
            }
            var w = JSONWriter()
            w.write(ClusterRouter.recordsJSON(records, withVector: wv))
            return ("internal.shard.scan", .json(200, w.bytes))
        default:
            throw VQError(.notFound, "no route for \(r.method) \(r.path)")
        }
    }
}
