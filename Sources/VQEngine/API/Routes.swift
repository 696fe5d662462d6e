// The one table of routes: method, path pattern, metrics name, who may call it, whether it may
// run on an event loop, and its handler. Dispatch, the read/write split that API keys follow,
// the peer routes the cluster secret opens, event-loop placement and the metrics' route names
// all come from here; a path that exists under other methods answers 405 with `Allow`.
//
//   pattern segments: "collections" (literal) or "{name}" (a parameter, in order in `params`)

import Foundation

/// Who may call a route.
enum RouteAccess: Sendable {
    /// Anyone (health checks, the root).
    case open
    /// Either API key (read-only or full).
    case read
    /// The full API key only.
    case write
    /// Peers: the cluster secret only; API keys never open these.
    case peer
}

/// One request matched to its route.
struct RouteCall {
    let request: HTTPRequest
    /// The `{...}` segments of the pattern, in order.
    let params: [String]
    let start: UInt64

    /// The request body as JSON (`{}` when empty).
    func body() throws -> JSON { request.body.isEmpty ? .object([]) : try JSONParser.parseRequest(request.body) }

    /// The peer a peer call names itself as (`x-vq-peer: ID URI`), when it does.
    var peer: PeerID? { request.header(ClusterNode.peerHeader).flatMap { PeerID($0.prefix { $0 != " " }) } }

    /// The sender, where the receiver checks who sends (an ordered operation, a copy): every
    /// peer names itself, so a call that does not is refused rather than let through unchecked.
    func sender() throws -> PeerID {
        guard let peer else {
            throw VQError.invalid("a peer call to \(request.path) must name its sender in an x-vq-peer header (ID URI)")
        }
        return peer
    }
}

struct Route: Sendable {
    let method: String
    let pattern: [String]
    /// Each segment's literal, nil for a parameter (precomputed for matching).
    private let literals: [String?]
    let name: String
    let access: RouteAccess
    /// Short and never blocking (reads): may run on the event loop rather than a worker.
    let inline: Bool
    /// Whether the first parameter names a collection that may be given by an alias.
    var resolvesAlias: Bool {
        access != .peer && pattern.count >= 2 && pattern[0] == "collections" && pattern[1] == "{name}"
            && !["collections.create", "collections.delete", "collections.snapshots.recover", "collections.snapshots.upload"].contains(name)
    }
    let handler: @Sendable (QdrantAPI, RouteCall) throws -> HTTPResponse

    init(_ method: String, _ path: String, _ name: String, _ access: RouteAccess, inline: Bool = false,
         _ handler: @escaping @Sendable (QdrantAPI, RouteCall) throws -> HTTPResponse) {
        self.method = method
        self.pattern = path.split(separator: "/").map(String.init)
        self.literals = pattern.map { $0.hasPrefix("{") ? nil : $0 }
        self.name = name
        self.access = access
        self.inline = inline
        self.handler = handler
    }

    /// The parameters when `path` fits the pattern, else nil.
    func match(_ path: [Substring]) -> [String]? {
        guard path.count == literals.count else { return nil }
        for i in 0..<path.count {
            if let literal = literals[i], !literal.utf8.elementsEqual(path[i].utf8) { return nil }
        }
        var params: [String] = []
        for i in 0..<path.count where literals[i] == nil { params.append(String(path[i])) }
        return params
    }
}

/// The routes, grouped by segment count for a short scan.
struct RouteTable: Sendable {
    private let bySize: [Int: [Route]]
    /// Every route's name (the metrics' labels).
    let names: [String]

    init(_ routes: [Route]) {
        bySize = Dictionary(grouping: routes) { $0.pattern.count }
        names = routes.map(\.name)
    }

    enum Lookup: Sendable {
        case found(Route, [String])
        /// The path exists with these other methods.
        case wrongMethod([String])
        case none
    }

    func lookup(_ method: String, _ path: [Substring]) -> Lookup {
        var allowed: [String] = []
        for route in bySize[path.count] ?? [] {
            guard let params = route.match(path) else { continue }
            if route.method == method { return .found(route, params) }
            allowed.append(route.method)
        }
        return allowed.isEmpty ? .none : .wrongMethod(allowed)
    }
}

extension QdrantAPI {
    /// Every route the server answers.
    static let routes = RouteTable([
        Route("GET", "", "root", .open, inline: true) { _, c in
            var w = JSONWriter()
            // `version` is the Qdrant API version whose features vq implements (clients check it).
            w.write(.object([("title", .string("vq - vector search engine (Qdrant-compatible API)")), ("version", .string(QdrantAPI.version)),
                             ("commit", .null)]))
            return .json(200, w.bytes)
        },
        Route("GET", "healthz", "healthz", .open, inline: true) { _, _ in .text(200, "healthz check passed") },
        // Qdrant's bodies: probes and scripts match on them.
        Route("GET", "livez", "livez", .open, inline: true) { _, _ in .text(200, "healthz check passed") },
        Route("GET", "readyz", "readyz", .open, inline: true) { api, _ in api.readiness() },
        Route("GET", "metrics", "metrics", .read) { api, _ in
            .text(200, api.metrics.render(engine: api.engine, router: api.router), contentType: "text/plain; version=0.0.4")
        },
        Route("GET", "cluster", "cluster", .read, inline: true) { api, c in APIEnvelope.ok(api.clusterInfo(), since: c.start) },
        Route("DELETE", "cluster/peer/{id}", "cluster.remove_peer", .write) { api, c in try api.removePeer(c.params[0], c.request, c.start) },
        // vq's extension: even out replicas over the peers (`vq cluster rebalance`).
        Route("POST", "cluster/rebalance", "cluster.rebalance", .write) { api, c in try api.rebalance(c.request, c.start) },

        Route("GET", "collections", "collections.list", .read, inline: true) { api, c in
            let list: [JSON] = api.engine.collectionNames().map { .object([("name", .string($0))]) }
            return APIEnvelope.ok(.object([("collections", .array(list))]), since: c.start)
        },
        Route("PUT", "collections/{name}", "collections.create", .write) { api, c in try api.createCollection(c.params[0], c.request, c.start) },
        Route("POST", "collections/aliases", "collections.aliases.update", .write) { api, c in try api.changeAliases(try c.body(), c.request, c.start) },
        Route("GET", "aliases", "aliases.list", .read, inline: true) { api, c in APIEnvelope.ok(try api.aliasList(of: nil), since: c.start) },
        Route("GET", "collections/{name}/aliases", "collections.aliases", .read, inline: true) { api, c in
            APIEnvelope.ok(try api.aliasList(of: c.params[0]), since: c.start)
        },
        Route("GET", "collections/{name}", "collections.get", .read, inline: true) { api, c in
            APIEnvelope.ok(try api.collectionInfo(c.params[0]), since: c.start)
        },
        Route("PATCH", "collections/{name}", "collections.update", .write) { api, c in try api.updateCollection(c.params[0], c.request, c.start) },
        Route("DELETE", "collections/{name}", "collections.delete", .write) { api, c in try api.deleteCollection(c.params[0], c.request, c.start) },
        Route("GET", "collections/{name}/exists", "collections.exists", .read, inline: true) { api, c in
            let name = c.params[0]
            let exists = (try? Engine.validateName(name)) != nil && api.engine.hasCollection(name)
            return APIEnvelope.ok(.object([("exists", .bool(exists))]), since: c.start)
        },
        // vq's extension: what `vq info` prints, so remote and embedded print the same.
        Route("GET", "collections/{name}/info", "collections.info", .read, inline: true) { api, c in
            let collection = try api.openCollection(c.params[0])
            return APIEnvelope.ok(collection.infoJSON(status: try api.status(of: collection)), since: c.start)
        },
        Route("PUT", "collections/{name}/index", "collections.index.create", .write) { api, c in
            try api.createPayloadIndex(c.params[0], c.request, try c.body(), c.start)
        },
        Route("POST", "collections/{name}/facet", "collections.facet", .read) { api, c in
            APIEnvelope.ok(try api.facet(try api.openCollection(c.params[0]), try c.body()), since: c.start)
        },
        Route("DELETE", "collections/{name}/index/{field}", "collections.index.delete", .write) { api, c in
            try api.changePayloadIndex(c.params[0], field: c.params[1], schema: nil, c.request, c.start)
        },
        // vq's extension (Qdrant has no such call): seal, index, merge, vacuum now; answers when done.
        Route("POST", "collections/{name}/optimize", "collections.optimize", .write) { api, c in try api.optimize(c.params[0], c.start) },
        // vq's extension: verify every segment file's checksums now (`vq check --url`).
        Route("POST", "collections/{name}/check", "collections.check", .write) { api, c in
            let problems = try api.openCollection(c.params[0]).shards.flatMap { $0.check() }
            return APIEnvelope.ok(.object([("problems", .array(problems.map { .string($0) }))]), since: c.start)
        },
        Route("POST", "collections/{name}/cluster", "collections.cluster.update", .write) { api, c in
            try api.updateCollectionCluster(c.params[0], c.request, c.start)
        },
        // vq's extension: anti-entropy now; compares every replica with its shard's primary and
        // repairs the difference (`vq cluster repair`).
        Route("POST", "collections/{name}/cluster/repair", "collections.cluster.repair", .write) { api, c in
            try api.repairCollection(c.params[0], c.request, c.start)
        },
        Route("GET", "collections/{name}/cluster", "collections.cluster", .read, inline: true) { api, c in
            APIEnvelope.ok(try api.collectionCluster(c.params[0]), since: c.start)
        },

        // Snapshots (Qdrant's): a collection's, and the whole storage's.
        Route("GET", "collections/{name}/snapshots", "collections.snapshots.list", .read) { api, c in
            APIEnvelope.ok(.array(try api.engine.listSnapshots(of: c.params[0]).map(\.json)), since: c.start)
        },
        Route("POST", "collections/{name}/snapshots", "collections.snapshots.create", .write) { api, c in
            try api.createSnapshot(c.params[0], c.request, c.start)
        },
        Route("GET", "collections/{name}/snapshots/{snapshot}", "collections.snapshots.download", .read) { api, c in
            try api.downloadSnapshot(c.params[0], c.params[1])
        },
        Route("DELETE", "collections/{name}/snapshots/{snapshot}", "collections.snapshots.delete", .write) { api, c in
            try api.engine.deleteSnapshot(of: c.params[0], c.params[1])
            return APIEnvelope.ok(.bool(true), since: c.start)
        },
        Route("PUT", "collections/{name}/snapshots/recover", "collections.snapshots.recover", .write) { api, c in
            try api.recoverSnapshot(c.params[0], try c.body(), c.start)
        },
        Route("POST", "collections/{name}/snapshots/upload", "collections.snapshots.upload", .write) { api, c in
            try api.uploadSnapshot(c.params[0], c.request, c.start)
        },
        Route("GET", "snapshots", "snapshots.list", .read) { api, c in
            APIEnvelope.ok(.array(try api.engine.listSnapshots(of: nil).map(\.json)), since: c.start)
        },
        Route("POST", "snapshots", "snapshots.create", .write) { api, c in try api.createSnapshot(nil, c.request, c.start) },
        Route("GET", "snapshots/{snapshot}", "snapshots.download", .read) { api, c in try api.downloadSnapshot(nil, c.params[0]) },
        Route("DELETE", "snapshots/{snapshot}", "snapshots.delete", .write) { api, c in
            try api.engine.deleteSnapshot(of: nil, c.params[0])
            return APIEnvelope.ok(.bool(true), since: c.start)
        },

        points("PUT", "", "points.upsert", .write) { api, col, c in try api.upsert(col, c.request, try c.body(), c.start) },
        points("POST", "", "points.get", .read) { api, col, c in APIEnvelope.ok(try api.getPoints(col, try c.body()), since: c.start) },
        points("GET", "/{id}", "points.get", .read, inline: true) { api, col, c in try api.getPoint(col, c.params[1], c.start) },
        points("POST", "/delete", "points.delete", .write) { api, col, c in try api.deletePoints(col, c.request, try c.body(), c.start) },
        points("POST", "/payload", "points.payload", .write) { api, col, c in
            try api.setPayload(col, c.request, try c.body(), overwrite: false, c.start)
        },
        points("PUT", "/payload", "points.payload", .write) { api, col, c in
            try api.setPayload(col, c.request, try c.body(), overwrite: true, c.start)
        },
        points("POST", "/payload/delete", "points.payload", .write) { api, col, c in try api.deletePayload(col, c.request, try c.body(), c.start) },
        points("POST", "/payload/clear", "points.payload", .write) { api, col, c in try api.clearPayload(col, c.request, try c.body(), c.start) },
        points("PUT", "/vectors", "points.vectors", .write) { api, col, c in try api.updateVectors(col, c) },
        points("POST", "/vectors", "points.vectors", .write) { api, col, c in try api.updateVectors(col, c) },
        points("POST", "/vectors/delete", "points.vectors", .write) { api, col, c in
            let (wait, deadline) = try api.writeOptions(c.request)
            return api.updateResult(try api.deleteVectorsTicket(col, try c.body(), wait, deadline), wait, c.start)
        },
        points("POST", "/batch", "points.batch", .write) { api, col, c in try api.batchUpdate(col, c.request, try c.body(), c.start) },
        points("POST", "/scroll", "points.scroll", .read) { api, col, c in APIEnvelope.ok(try api.scroll(col, try c.body()), since: c.start) },
        points("POST", "/count", "points.count", .read, inline: true) { api, col, c in APIEnvelope.ok(try api.count(col, try c.body()), since: c.start) },
        points("POST", "/search", "points.search", .read, inline: true) { api, col, c in
            APIEnvelope.ok(try api.search(col, try c.body()), since: c.start)
        },
        points("POST", "/search/batch", "points.search", .read, inline: true) { api, col, c in
            let searches = try api.requireArray(try c.body(), "searches")
            return APIEnvelope.ok(.array(try searches.map { try api.search(col, $0) }), since: c.start)
        },
        points("POST", "/search/groups", "points.search", .read) { api, col, c in
            let body = try c.body()
            try api.checkGroups(body, query: ["vector"])
            let (query, using) = try api.namedQuery(body["vector"], col)
            return APIEnvelope.ok(try api.groups(col, query: query, using: using, body: body), since: c.start)
        },
        points("POST", "/query/groups", "points.query", .read) { api, col, c in
            let body = try c.body()
            try api.checkGroups(body, query: ["query", "using", "lookup_from"])
            guard let q = body["query"], q != .null else { throw VQError.invalid("grouped query needs \"query\": a vector") }
            let using = try api.usingRef(body, col)
            let (v, referenced) = try api.queryVector(col, body, q, using: using)
            return APIEnvelope.ok(try api.groups(col, query: v, using: using, body: body, excluding: referenced), since: c.start)
        },
        points("POST", "/discover", "points.discover", .read) { api, col, c in
            APIEnvelope.ok(try api.discoverLegacy(col, try c.body()), since: c.start)
        },
        points("POST", "/discover/batch", "points.discover", .read) { api, col, c in
            let searches = try api.requireArray(try c.body(), "searches")
            return APIEnvelope.ok(.array(try searches.map { try api.discoverLegacy(col, $0) }), since: c.start)
        },
        points("POST", "/recommend", "points.recommend", .read) { api, col, c in
            APIEnvelope.ok(try api.recommendLegacy(col, try c.body()), since: c.start)
        },
        points("POST", "/recommend/batch", "points.recommend", .read) { api, col, c in
            let searches = try api.requireArray(try c.body(), "searches")
            return APIEnvelope.ok(.array(try searches.map { try api.recommendLegacy(col, $0) }), since: c.start)
        },
        points("POST", "/query", "points.query", .read, inline: true) { api, col, c in
            APIEnvelope.ok(try api.query(col, try c.body()), since: c.start)
        },
        points("POST", "/query/batch", "points.query", .read, inline: true) { api, col, c in
            let searches = try api.requireArray(try c.body(), "searches")
            return APIEnvelope.ok(.array(try searches.map { try api.query(col, $0) }), since: c.start)
        },

        // Peers. Every one needs the cluster secret (checked in dispatch).
        Route("POST", "internal/raft", "internal.raft", .peer) { api, c in try api.peerRaft(c) },
        Route("POST", "internal/propose", "internal.propose", .peer) { api, c in
            let index = try api.node().proposeHere(c.request.body)
            return APIEnvelope.ok(.object([("index", .uint(index))]), since: c.start)
        },
        Route("POST", "internal/voters", "internal.voters", .peer) { api, c in
            let index = try api.node().setVotersHere(c.request.body)
            return APIEnvelope.ok(.object([("index", .uint(index))]), since: c.start)
        },
        // The leader's commit index, for a peer catching up before it answers.
        Route("POST", "internal/commit", "internal.commit", .peer) { api, c in
            APIEnvelope.ok(.object([("index", .uint(try api.node().status.commit))]), since: c.start)
        },
        // Whether this peer is there at all (a write forwarded to it is slow: is it working or gone?);
        // answered on the event loop, touching nothing.
        Route("POST", "internal/ping", "internal.ping", .peer, inline: true) { _, c in APIEnvelope.ok(.bool(true), since: c.start) },
        Route("POST", "internal/join", "internal.join", .peer) { api, c in try api.peerJoin(c) },
        Route("POST", "internal/rebalance", "internal.rebalance", .peer) { api, c in try api.rebalance(c.request, c.start, forwarded: true) },
        // A move or copy asked of another peer, carried out here (the leader).
        Route("POST", "internal/collections/{name}/cluster", "internal.collection_cluster", .peer) { api, c in
            try api.updateCollectionCluster(c.params[0], c.request, c.start, forwarded: true)
        },
        shard("write", "internal.shard.write") { api, col, s, c in try api.shardWrite(col, s, c) },
        shard("apply", "internal.shard.apply") { api, col, s, c in try api.shardApply(col, s, c) },
        shard("apply-batch", "internal.shard.apply_batch") { _, col, s, c in
            try col.replicaSets[s].applyBatchAsReplica(c.request.body, vectors: col.config.vectors, from: try c.sender())
            return .text(200, "ok")
        },
        shard("search", "internal.shard.search") { _, col, s, c in .binary(try col.replicaSets[s].answer(.search, c.request.body, vectors: col.config.vectors)) },
        shard("sparse-stats", "internal.shard.sparse_stats") { api, col, s, c in try api.shardSparseStats(col, s, c) },
        shard("transfer", "internal.shard.transfer") { api, col, s, c in try api.shardTransfer(col, s, c) },
        shard("receive", "internal.shard.receive", copy: true) { api, col, s, c in try api.shardReceive(col, s, c) },
        shard("count", "internal.shard.count") { _, col, s, c in .binary(try col.replicaSets[s].answer(.count, c.request.body, vectors: col.config.vectors)) },
        shard("at-position", "internal.shard.at_position") { _, col, s, c in
            .binary(try col.replicaSets[s].answerAtPosition(c.request.body, vectors: col.config.vectors))
        },
        shard("position", "internal.shard.position") { _, col, s, _ in .binary(ShardWire.encodePosition(try col.replicaSets[s].readablePosition())) },
        shard("scan", "internal.shard.scan") { _, col, s, c in .binary(try col.replicaSets[s].answer(.scan, c.request.body, vectors: col.config.vectors)) },
        shard("receive-files", "internal.shard.receive_files", copy: true) { _, col, s, c in
            try col.replicaSets[s].receiveFiles(c.request.body, from: try c.sender())
            return .text(200, "ok")
        },
        shard("digest", "internal.shard.digest") { _, col, s, c in .binary(try col.replicaSets[s].digestAnswer(c.request.body)) },
        shard("reconcile", "internal.shard.reconcile") { _, col, s, _ in
            .binary(JSONWriter.bytes(try col.replicaSets[s].reconcile()))
        },
    ])

    /// A route under `/collections/{name}/points`: the handler gets the open collection.
    private static func points(_ method: String, _ suffix: String, _ name: String, _ access: RouteAccess, inline: Bool = false,
                               _ handler: @escaping @Sendable (QdrantAPI, VectorCollection, RouteCall) throws -> HTTPResponse) -> Route {
        Route(method, "collections/{name}/points" + suffix, name, access, inline: inline) { api, c in
            try handler(api, try api.openCollection(c.params[0]), c)
        }
    }

    /// `POST /internal/shards/{collection}/{shard}/ACTION`: one shard's part of a request. The
    /// caller's metadata index (header) is waited for first, so peers agree on placement.
    /// - Parameter copy: a shard copy, refused unless this peer's metadata reaches the caller's.
    private static func shard(_ action: String, _ name: String, copy: Bool = false,
                              _ handler: @escaping @Sendable (QdrantAPI, VectorCollection, Int, RouteCall) throws -> HTTPResponse) -> Route {
        Route("POST", "internal/shards/{name}/{shard}/" + action, name, .peer) { api, c in
            let cluster = try api.node()
            // Placement as the caller saw it or newer. A copy must not meet an older placement
            // here (it could be cleared as a dropped replica): without it, no answer. Other calls
            // go on after the wait (a slow effect must not make a healthy replica look failed).
            if let seen = c.request.header(ClusterNode.appliedHeader).flatMap(UInt64.init), !cluster.waitApplied(seen), copy {
                throw VQError(.busy, "this peer has not applied the cluster metadata up to \(seen) yet; retry shortly")
            }
            let collection = try api.openCollection(c.params[0])
            guard let shard = Int(c.params[1]), collection.shards.indices.contains(shard) else {
                throw VQError.invalid("collection \"\(c.params[0])\" has no shard \(c.params[1])")
            }
            return try handler(api, collection, shard, c)
        }
    }
}
