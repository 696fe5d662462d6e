// The Qdrant-compatible REST API over an Engine.
//
//   Routes.swift           the one route table: paths, access, event-loop placement, handlers
//   QdrantAPI.swift        dispatch, auth, small handlers
//   QdrantAPI+Models.swift request bodies -> engine requests, engine results -> JSON
//   QdrantAPI+Cluster.swift cluster routes and the peer (/internal/) handlers
//   APIError.swift         error kinds -> status codes, envelopes
//   Metrics.swift          Prometheus text
//
// Shapes follow Qdrant's OpenAPI spec; where Qdrant is lenient we are strict
// and say what was expected.

import Foundation

/// Server-side API settings.
package struct APIConfig: Sendable {
    package var apiKey: String?
    package var readOnlyApiKey: String?
    /// Seconds a write may wait on a full update queue before 429.
    package var writeTimeout: Double = 5
    /// Applied to new collections that do not say (the server-wide default).
    package var preventUnoptimized = false
    package var updateQueueSize = 1_000_000
    package var updateQueueBytes = 1 << 30
    package var advertisedURL = ""

    package init() {}
}

/// Routes requests to the engine.
package final class QdrantAPI: @unchecked Sendable {
    package static let version = "1.17.1"
    let engine: Engine
    let config: APIConfig
    let metrics: Metrics
    /// This peer's cluster membership and shard placement (nil in embedded tests).
    let cluster: ClusterNode?
    let router: ClusterRouter?

    package init(engine: Engine, config: APIConfig, cluster: ClusterNode? = nil, router: ClusterRouter? = nil) {
        self.engine = engine
        self.config = config
        self.cluster = cluster
        self.router = router
        metrics = Metrics(routes: QdrantAPI.routes.names)
    }

    /// How to answer `request` (the route is looked up once): on an event-loop thread when it is
    /// a read that never blocks on disk, queues or other peers (its route says so, and a
    /// distributed collection's shards all have an active replica here), else on a worker.
    package func work(for request: HTTPRequest) -> HTTPWork {
        let lookup = QdrantAPI.routes.lookup(request.method, QdrantAPI.segments(request.path))
        var inline = false
        if case .found(let route, let params) = lookup, route.inline {
            inline = true
            // A read that may ask other peers (a shard without an active replica here, or
            // read_fan_out_factor racing replicas) goes to a worker.
            // So does one asking several replicas (a read consistency above 1).
            if let cluster, route.pattern.first == "collections", let name = params.first, let meta = cluster.collectionMeta(name),
               meta.config.readFanOutFactor > 0 || !meta.shards.allSatisfy({ $0.contains { $0.peer == cluster.id && $0.state == .active } })
                || (request.query["consistency"].map { (try? ReadConsistency(parsing: $0)) != .factor(1) } ?? false) {
                inline = false
            }
        }
        return HTTPWork(inline: inline) { [self] in respond(request, lookup) }
    }


    static func segments(_ path: String) -> [Substring] {
        path.split(separator: "/", omittingEmptySubsequences: true)
    }

    /// Handles one request in this process: a file body comes back read into `body`.
    package func handle(_ request: HTTPRequest) -> HTTPResponse {
        var response = respond(request, QdrantAPI.routes.lookup(request.method, QdrantAPI.segments(request.path)))
        if let file = response.file {
            response.file = nil
            do { response.body = try file.readAll() } catch {
                return APIEnvelope.error(VQError.wrap(error), since: DispatchTime.now().uptimeNanoseconds)
            }
        }
        return response
    }

    private func respond(_ request: HTTPRequest, _ lookup: RouteTable.Lookup) -> HTTPResponse {
        let start = DispatchTime.now().uptimeNanoseconds
        var name = "other"
        var response: HTTPResponse
        do {
            switch lookup {
            case .none:
                throw VQError(.notFound, "no route for \(request.method) \(request.path)")
            case .wrongMethod(let allowed):
                response = APIEnvelope.error(VQError(.methodNotAllowed, "method \(request.method) is not allowed on \(request.path); "
                                                     + "expected \(allowed.joined(separator: ", "))"), since: start)
                response.headers.append(("Allow", allowed.joined(separator: ", ")))
            case .found(let route, var params):
                name = route.name
                try authorize(request, route.access)
                // A read's deadline counts from here: finding its collection (a catch-up with the
                // leader for a name this peer does not know yet) is part of the read.
                let deadline = route.access == .read ? try timeoutParameter(request).map(ReadDeadline.init(seconds:)) : nil
                let run = { [self] in
                    // An alias stands for its collection wherever Qdrant takes one: every collection
                    // route but create, delete and the alias list itself.
                    if route.resolvesAlias, let first = params.first { params[0] = try resolveAlias(first) }
                    let consistency = try checkQuery(request, route, collection: route.resolvesAlias ? params.first : nil)
                    let call = RouteCall(request: request, params: params, start: start)
                    // Bound only when asked for (1, the default, needs no binding on the hot path).
                    return consistency == .factor(1) ? try route.handler(self, call)
                        : try ReadConsistency.$current.withValue(consistency) { try route.handler(self, call) }
                }
                response = deadline == nil ? try run() : try ReadDeadline.$current.withValue(deadline) { try run() }
            }
        } catch let e as VQError {
            response = APIEnvelope.error(e, since: start)
        } catch let e as JSONParseError {
            response = APIEnvelope.error(400, "request body is not valid JSON: \(e)", since: start)
        } catch {
            response = APIEnvelope.error(500, "\(error)", since: start)
        }
        metrics.record(route: name, status: response.status, seconds: APIEnvelope.elapsed(start))
        return response
    }

    /// Query parameters: Qdrant's that vq honours, each value checked; anything else is refused
    /// by name (400), never ignored.
    /// - `wait`, `timeout` (writes of points; `wait` also on payload index changes): their values
    ///   checked here once.
    /// - `timeout` on metadata changes (collections created, updated or deleted, aliases, shard
    ///   moves, peers removed): how long the change may take to commit through Raft
    ///   (`commitTimeout`), as Qdrant's "wait for operation commit".
    /// - Other routes neither wait for anything nor stop early, so there these are refused.
    /// - `ordering` (writes of points and index changes): weak, medium or strong. vq orders every write of a shard through
    ///   its primary replica, which is what strong asks; weak and medium get that too.
    /// - `timeout` (reads of points): the seconds by which the read answers; waits for other
    ///   peers' replicas end then (503), and peer calls are cut to what is left (`ReadDeadline`).
    /// - `consistency` (reads): a number (at most the collection's replication_factor), majority,
    ///   quorum or all; see ReplicaSet+Consistency.swift. A collection with one replica per shard
    ///   (any embedded or single-peer one) meets each with its one copy.
    /// - Returns: the read consistency asked for (1 when none is).
    func checkQuery(_ r: HTTPRequest, _ route: Route, collection: String?) throws -> ReadConsistency {
        guard !r.query.isEmpty, route.access != .peer else { return .factor(1) }
        var allowed: [String] = []
        // Writes of points take all three; a payload index change waits (and is ordered) like
        // one but has no timeout; metadata changes bound their commit by a timeout; other writes
        // (optimize, repair, ...) run to the end and take none of them.
        if route.access == .write && route.name.hasPrefix("points.") { allowed += ["wait", "timeout", "ordering"] }
        if route.access == .write && route.name.hasPrefix("collections.index.") { allowed += ["wait", "ordering"] }
        if Self.commitRoutes.contains(route.name) { allowed.append("timeout") }
        // Reads of points only (a collection's info, cluster view or aliases read no replica's
        // points): how many replicas answer, and by when (`ReadDeadline`).
        if route.access == .read && collection != nil && (route.name.hasPrefix("points.") || route.name == "collections.facet") {
            allowed += ["consistency", "timeout"]
        }
        if route.name == "cluster.remove_peer" { allowed.append("force") }
        // Snapshot routes: `wait` only (no ordering, timeout or consistency means anything there);
        // create honours wait=false (202, made in the background), the others run to the end.
        let snapshots = route.name.hasPrefix("collections.snapshots.") || route.name.hasPrefix("snapshots.")
        if snapshots {
            allowed = route.access == .write ? ["wait"] : []
            if route.name == "collections.snapshots.upload" { allowed += ["priority", "checksum"] }
        }
        // vq's repair runs to the end and takes one shard at most.
        if route.name == "collections.cluster.repair" { allowed = ["shard"] }
        if route.name == "cluster.rebalance" { allowed = ["collection", "dry_run"] }
        for key in r.query.keys.sorted() where !allowed.contains(key) {
            throw VQError.invalid("query parameter \"\(key)\" is not supported on \(r.method) \(r.path); expected \(allowed.joined(separator: ", "))")
        }
        if r.query["wait"] != nil || r.query["timeout"] != nil {
            let (wait, _) = try writeOptions(r)
            if snapshots && wait != .applied && !route.name.hasSuffix(".create") {
                throw VQError.invalid("wait=\(r.query["wait"] ?? "") is not supported on \(r.method) \(r.path); it runs to the end (wait=true)")
            }
        }
        if let o = r.query["ordering"], !["weak", "medium", "strong"].contains(o.lowercased()) {
            throw VQError.unknownValue("ordering is \"\(o)\"; expected weak, medium or strong")
        }
        guard let c = r.query["consistency"] else { return .factor(1) }
        let consistency = try ReadConsistency(parsing: c)
        // A number of replicas the collection does not have is the caller's mistake, not a
        // passing state of the cluster (fewer active than placed answers 503 when read).
        // (A collection that is not distributed meets every consistency with its one copy.)
        if case .factor(let n) = consistency, n > 1, let collection, let meta = cluster?.collectionMeta(collection) {
            let factor = meta.config.replicationFactor
            guard n <= factor else {
                throw VQError.invalid("consistency \(n) asks more replicas than collection \"\(collection)\" has per shard "
                                      + "(replication_factor \(factor)); expected at most \(factor), majority, quorum or all")
            }
        }
        return consistency
    }

    /// Routes that change the cluster's metadata and take Qdrant's `timeout` for its commit.
    static let commitRoutes: Set<String> = ["collections.create", "collections.update", "collections.delete",
                                            "collections.aliases.update", "collections.cluster.update", "cluster.remove_peer"]

    /// Checks the credential a route needs.
    /// - Throws: `.unauthorized` without a valid key, `.forbidden` for a key that may not do this
    ///   (the read-only key writing; anything but the cluster secret on a peer route).
    private func authorize(_ request: HTTPRequest, _ access: RouteAccess) throws {
        switch access {
        case .open:
            return
        case .peer:
            // The cluster secret opens these; user API keys never do.
            guard let cluster else { throw VQError(.notFound, "this server runs no cluster") }
            guard cluster.authorized(request.header(ClusterNode.secretHeader)) else {
                throw VQError(.forbidden, "internal routes need the cluster secret (--cluster-secret)")
            }
        case .read, .write:
            guard config.apiKey != nil || config.readOnlyApiKey != nil else { return }
            var presented = request.header("api-key")
            if presented == nil, let auth = request.header("authorization"), auth.lowercased().hasPrefix("bearer ") {
                presented = String(auth.dropFirst(7)).trimmingCharactersSpaceTab()
            }
            guard let presented else { throw VQError(.unauthorized, "missing API key") }
            if let key = config.apiKey, constantTimeEqual(presented, key) { return }
            if let key = config.readOnlyApiKey, constantTimeEqual(presented, key) {
                if access == .write { throw VQError(.forbidden, "the read-only API key cannot write") }
                return
            }
            throw VQError(.unauthorized, "invalid API key")
        }
    }

    /// `GET /readyz`: 503 naming the shard while one cannot write (a full disk), else 200.
    func readiness() -> HTTPResponse {
        for (name, collection) in engine.openCollections() {
            for (s, shard) in collection.shards.enumerated() {
                if let problem = shard.writeProblem { return .text(503, "not ready: collection \(name) shard \(s) cannot write: \(problem)") }
            }
        }
        return .text(200, "all shards are ready")
    }

    /// `DELETE /collections/{name}` (through Raft for a distributed collection): `true` when it was deleted, `false` when there was none (as
    /// Qdrant answers: clients and test fixtures delete before every create).
    func deleteCollection(_ name: String, _ r: HTTPRequest, _ start: UInt64) throws -> HTTPResponse {
        try Engine.validateName(name)
        // A peer behind the leader may not know the collection yet: ask after catching up.
        if let cluster, cluster.collectionMeta(name) != nil || (cluster.catchUp() && cluster.collectionMeta(name) != nil) {
            try cluster.propose(ClusterState.deleteCollection(name), timeout: try commitTimeout(r))
        } else {
            do { try engine.deleteCollection(name) } catch let e as VQError where e.kind == .notFound {
                return APIEnvelope.ok(.bool(false), since: start)
            }
        }
        return APIEnvelope.ok(.bool(true), since: start)
    }

    /// `POST /collections/{name}/optimize` (vq's): seal, index, merge, vacuum now.
    func optimize(_ name: String, _ start: UInt64) throws -> HTTPResponse {
        let collection = try openCollection(name)
        _ = try collection.settle()
        let report = try collection.optimize()
        return APIEnvelope.ok(.object([
            ("segments_before", .int(Int64(report.segmentsBefore))), ("segments_after", .int(Int64(report.segmentsAfter))),
            ("points_indexed", .int(Int64(report.pointsIndexed))), ("seconds", .double((report.seconds * 1000).rounded() / 1000)),
        ]), since: start)
    }

    /// `GET /collections/{name}/points/{id}`.
    func getPoint(_ collection: VectorCollection, _ text: String, _ start: UInt64) throws -> HTTPResponse {
        let id = try parsePathID(text)
        guard let point = try collection.retrieve([id], withVector: true, withPayload: true).first else {
            throw VQError(.notFound, "point \(id) does not exist in collection \"\(collection.name)\"")
        }
        return APIEnvelope.ok(recordJSON(point, withVector: .all(collection.config.vectors), withPayload: .all), since: start)
    }
}

/// Compares without an early exit, so timing does not reveal how much of a key matched.
func constantTimeEqual(_ a: String, _ b: String) -> Bool {
    let x = Array(a.utf8), y = Array(b.utf8)
    var diff = UInt8(x.count == y.count ? 0 : 1)
    for i in 0..<max(x.count, y.count) {
        diff |= (i < x.count ? x[i] : 0) ^ (i < y.count ? y[i] : 0)
    }
    return diff == 0
}
