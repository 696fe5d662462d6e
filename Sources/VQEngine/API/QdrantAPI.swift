// The Qdrant-compatible REST API over an Engine.
//
//   QdrantAPI.swift        routing, auth, the handlers
//   QdrantAPI+Models.swift request bodies -> engine requests, engine results -> JSON
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
    package var advertisedURL = ""

    package init() {}
}

/// Routes requests to the engine.
package final class QdrantAPI: @unchecked Sendable {
    package static let version = "1.17.1"
    let engine: Engine
    let config: APIConfig
    let metrics = Metrics()
    /// This peer's cluster membership (set by `vq serve` before it serves; nil in embedded tests).
    package var cluster: ClusterNode?

    package init(engine: Engine, config: APIConfig) {
        self.engine = engine
        self.config = config
    }

    /// Whether `request` is a read that may run on an event-loop thread (never blocks on disk or queues).
    package func isInline(_ r: HTTPRequest) -> Bool {
        // A distributed collection's reads that wait on other peers never run on an event loop
        // (when every shard has an active replica here, they are local).
        if let cluster, r.path.hasPrefix("/collections/") {
            let name = r.path.dropFirst(13).prefix { $0 != "/" }
            if let meta = cluster.collectionMeta(String(name)),
               !meta.shards.allSatisfy({ $0.contains { $0.peer == cluster.id && $0.state == .active } }) { return false }
        }
        if r.method == "GET" { return !(r.path.hasSuffix("/metrics")) && !r.path.hasPrefix("/internal/") }
        guard r.method == "POST" else { return false }
        return r.path.hasSuffix("/points/query") || r.path.hasSuffix("/points/search") || r.path.hasSuffix("/query/batch")
            || r.path.hasSuffix("/search/batch") || r.path.hasSuffix("/points/count")
    }

    /// Handles one request (called on a worker thread, or an event loop for `isInline` ones).
    package func handle(_ request: HTTPRequest) -> HTTPResponse {
        let start = DispatchTime.now().uptimeNanoseconds
        let parts = request.path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        var route = "other"
        let response: HTTPResponse
        do {
            (route, response) = try dispatch(request, parts, start)
        } catch let e as VQError {
            response = APIEnvelope.error(e, since: start)
        } catch let e as JSONParseError {
            response = APIEnvelope.error(400, "request body is not valid JSON: \(e)", since: start)
        } catch {
            response = APIEnvelope.error(500, "\(error)", since: start)
        }
        metrics.record(route: route, status: response.status, seconds: APIEnvelope.elapsed(start))
        return response
    }

    private func authorize(_ request: HTTPRequest, write: Bool) throws {
        guard config.apiKey != nil || config.readOnlyApiKey != nil else { return }
        var presented = request.header("api-key")
        if presented == nil, let auth = request.header("authorization"), auth.lowercased().hasPrefix("bearer ") {
            presented = String(auth.dropFirst(7)).trimmingCharactersSpaceTab()
        }
        guard let presented else { throw VQError(.invalidInput, "missing API key") }
        if let key = config.apiKey, constantTimeEqual(presented, key) { return }
        if let key = config.readOnlyApiKey, constantTimeEqual(presented, key) {
            if write { throw APIForbidden() }
            return
        }
        throw APIUnauthorized()
    }

    private func dispatch(_ r: HTTPRequest, _ p: [String], _ start: UInt64) throws -> (String, HTTPResponse) {
        let m = r.method
        // Health and version: no key needed.
        switch (m, p.count) {
        case ("GET", 0):
            var w = JSONWriter()
            w.write(.object([("title", .string("vq - vector search engine (Qdrant-compatible API)")), ("version", .string(QdrantAPI.version))]))
            return ("root", .json(200, w.bytes))
        default: break
        }
        if m == "GET", p.count == 1, ["healthz", "livez", "readyz"].contains(p[0]) {
            return (p[0], .text(200, "\(p[0]) check passed"))
        }
        // Peer-to-peer routes: the cluster secret opens them, user API keys never do.
        if p.first == "internal" { return try internalRoute(r, p, start) }
        let isRead = m == "GET" || (m == "POST" && (p.last == "search" || p.last == "query" || p.last == "scroll" || p.last == "count"
            || p.last == "batch" && p.count >= 5 || (p.count == 3 && p[2] == "points")))
        do {
            try authorize(r, write: !isRead)
        } catch is APIUnauthorized {
            return ("auth", APIEnvelope.error(401, "invalid API key", since: start))
        } catch is APIForbidden {
            return ("auth", APIEnvelope.error(403, "the read-only API key cannot write", since: start))
        } catch let e as VQError {
            return ("auth", APIEnvelope.error(401, e.message, since: start))
        }
        if m == "GET" && p == ["metrics"] { return ("metrics", .text(200, metrics.render(engine: engine), contentType: "text/plain; version=0.0.4")) }
        if m == "GET" && p == ["cluster"] { return ("cluster", APIEnvelope.ok(clusterInfo(), since: start)) }
        if m == "DELETE" && p.count == 3 && p[0] == "cluster" && p[1] == "peer" { return ("cluster.remove_peer", try removePeer(p[2], r, start)) }
        guard p.first == "collections" else {
            throw VQError(.notFound, "no route for \(m) \(r.path)")
        }
        if p.count == 1 {
            guard m == "GET" else { throw methodNotAllowed(r) }
            let list: [JSON] = engine.collectionNames().map { .object([("name", .string($0))]) }
            return ("collections.list", APIEnvelope.ok(.object([("collections", .array(list))]), since: start))
        }
        let name = p[1]
        if p.count == 2 {
            switch m {
            case "PUT": return ("collections.create", try createCollection(name, r, start))
            case "GET": return ("collections.get", APIEnvelope.ok(try collectionInfo(name), since: start))
            case "PATCH": return ("collections.update", try updateCollection(name, r, start))
            case "DELETE":
                if let cluster, cluster.collectionMeta(name) != nil {
                    try cluster.propose(ClusterState.deleteCollection(name))
                } else {
                    try engine.deleteCollection(name)
                }
                return ("collections.delete", APIEnvelope.ok(.bool(true), since: start))
            default: throw methodNotAllowed(r)
            }
        }
        if p.count == 3 && p[2] == "exists" && m == "GET" {
            let exists = (try? Engine.validateName(name)) != nil && engine.collectionNames().contains(name)
            return ("collections.exists", APIEnvelope.ok(.object([("exists", .bool(exists))]), since: start))
        }
        if p.count == 3 && p[2] == "info" && m == "GET" {
            // vq's extension: what `vq info` prints, so remote and embedded print the same.
            let collection = try openCollection(name)
            return ("collections.info", APIEnvelope.ok(collection.infoJSON(status: try status(of: collection)), since: start))
        }
        if p.count == 3 && p[2] == "optimize" && m == "POST" {
            // vq's extension (Qdrant has no such call): seal, index, merge, vacuum now; answers when done.
            let collection = try openCollection(name)
            _ = try collection.settle()
            let report = try collection.optimize()
            return ("collections.optimize", APIEnvelope.ok(.object([
                ("segments_before", .int(Int64(report.segmentsBefore))), ("segments_after", .int(Int64(report.segmentsAfter))),
                ("points_indexed", .int(Int64(report.pointsIndexed))), ("seconds", .double((report.seconds * 1000).rounded() / 1000)),
            ]), since: start))
        }
        if p.count == 3 && p[2] == "cluster" && m == "POST" {
            return ("collections.cluster.update", try updateCollectionCluster(name, r, start))
        }
        if p.count == 3 && p[2] == "cluster" && m == "GET" {
            return ("collections.cluster", APIEnvelope.ok(try collectionCluster(name), since: start))
        }
        guard p.count >= 3, p[2] == "points" else { throw VQError(.notFound, "no route for \(m) \(r.path)") }
        let collection = try openCollection(name)
        let rest = Array(p.dropFirst(3))
        let body: JSON = r.body.isEmpty ? .object([]) : try JSONParser.parseRequest(r.body)
        switch (m, rest) {
        case ("PUT", []): return ("points.upsert", try upsert(collection, r, body, start))
        case ("POST", []): return ("points.get", APIEnvelope.ok(try getPoints(collection, body), since: start))
        case ("GET", let x) where x.count == 1:
            let id = try parsePathID(x[0])
            guard let point = try collection.retrieve([id], withVector: true, withPayload: true).first else {
                throw VQError(.notFound, "point \(id) does not exist in collection \"\(name)\"")
            }
            return ("points.get", APIEnvelope.ok(recordJSON(point, withVector: true, withPayload: true), since: start))
        case ("POST", ["delete"]): return ("points.delete", try deletePoints(collection, r, body, start))
        case ("POST", ["payload"]): return ("points.payload", try setPayload(collection, r, body, overwrite: false, start))
        case ("PUT", ["payload"]): return ("points.payload", try setPayload(collection, r, body, overwrite: true, start))
        case ("POST", ["payload", "delete"]): return ("points.payload", try deletePayload(collection, r, body, start))
        case ("POST", ["payload", "clear"]): return ("points.payload", try clearPayload(collection, r, body, start))
        case ("POST", ["scroll"]): return ("points.scroll", APIEnvelope.ok(try scroll(collection, body), since: start))
        case ("POST", ["count"]): return ("points.count", APIEnvelope.ok(try count(collection, body), since: start))
        case ("POST", ["search"]): return ("points.search", APIEnvelope.ok(try search(collection, body), since: start))
        case ("POST", ["search", "batch"]):
            let searches = try requireArray(body, "searches")
            return ("points.search", APIEnvelope.ok(.array(try searches.map { try search(collection, $0) }), since: start))
        case ("POST", ["query"]): return ("points.query", APIEnvelope.ok(try query(collection, body), since: start))
        case ("POST", ["query", "batch"]):
            let searches = try requireArray(body, "searches")
            return ("points.query", APIEnvelope.ok(.array(try searches.map { try query(collection, $0) }), since: start))
        default:
            throw VQError(.notFound, "no route for \(m) \(r.path)")
        }
    }

    private func methodNotAllowed(_ r: HTTPRequest) -> VQError {
        VQError(.invalidInput, "method \(r.method) is not allowed on \(r.path)")
    }
}

struct APIUnauthorized: Error {}
struct APIForbidden: Error {}

/// Compares without an early exit, so timing does not reveal how much of a key matched.
func constantTimeEqual(_ a: String, _ b: String) -> Bool {
    let x = Array(a.utf8), y = Array(b.utf8)
    var diff = UInt8(x.count == y.count ? 0 : 1)
    for i in 0..<max(x.count, y.count) {
        diff |= (i < x.count ? x[i] : 0) ^ (i < y.count ? y[i] : 0)
    }
    return diff == 0
}
