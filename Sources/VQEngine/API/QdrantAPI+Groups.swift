// Qdrant's grouped search: the best points per value of a payload field.
//
//   POST /points/query/groups {"query": [...], "group_by": "doc_id", "group_size": 3, "limit": 5,
//                              "with_lookup": {"collection": "docs", "with_payload": true}}
//   POST /points/search/groups {"vector": [...], ...the same}
//   -> {"groups": [{"id": VALUE, "hits": [ScoredPoint, ...], "lookup": Record?}, ...]}
//
// Groups come in the order of their best hit; a point whose field holds several values is in
// each of their groups; points without a string or integer value there are in none. The
// search widens until `limit` groups are full or the collection is exhausted.

import Foundation

extension QdrantAPI {
    /// Checks a grouped request's members before its query is read: `query` lists the members
    /// naming the query (["vector"] for /search/groups, ["query", "using", "lookup_from"] for /query/groups).
    func checkGroups(_ body: JSON, query: [String]) throws {
        try checkSettings(body, "grouped search", allowed: query + ["group_by", "group_size", "limit", "filter", "params",
                                                                    "score_threshold", "with_payload", "with_vector", "with_vectors", "with_lookup"],
                          unsupported: ["prefetch": "grouped queries take one query vector in vq",
                                        "shard_key": "vq places points by id; there are no shard keys"])
        try checkSearchParams(body["params"])
    }

    /// - Parameter excluding: a point left out (the one a query by id names).
    func groups(_ collection: VectorCollection, query: QueryVector, using: VectorRef, body: JSON, excluding: PointID? = nil) throws -> JSON {
        guard let key = body["group_by"]?.stringValue, !key.isEmpty else { throw VQError.invalid("grouped search needs \"group_by\": a payload key") }
        let groupSize = try int(body, "group_size", default: 3, min: 1)
        let limit = try int(body, "limit", default: 10, min: 1)
        guard groupSize * limit <= VectorCollection.maxResults else {
            throw VQError.invalid("group_size x limit is \(groupSize * limit); expected at most \(VectorCollection.maxResults)")
        }
        let selector = try withPayload(body, default: false)
        let wv = try withVector(body, collection.config.vectors)
        var req = searchRequest(query, using, limit: 0)
        req.withPayload = true
        req.filter = QdrantAPI.excluding(excluding, try filter(body))
        try applySearchParams(body["params"], to: &req)
        let threshold = try scoreThreshold(body)
        var order: [IndexKey] = []
        var hits: [IndexKey: [ScoredPoint]] = [:]
        var fetch = max(64, limit * groupSize * 4)
        while true {
            req.limit = min(fetch, VectorCollection.maxResults)
            var found = try collection.search(req).hits
            if let threshold {
                let higher = higherIsBetter(collection, using)
                found = found.filter { QdrantAPI.passes($0.score, threshold, higherIsBetter: higher) }
            }
            order = []
            hits = [:]
            for h in found {
                let values = Filter.nonNullValues(h.payload, key).compactMap { v -> IndexKey? in
                    switch v {
                    case .string(let s): return .string(s)
                    case .int(let i): return .int(i)
                    case .uint(let u): return u <= UInt64(Int64.max) ? .int(Int64(u)) : nil
                    default: return nil
                    }
                }
                var seen = Set<IndexKey>()
                for value in values where seen.insert(value).inserted {
                    if hits[value] == nil {
                        guard order.count < limit else { continue }
                        order.append(value)
                        hits[value] = []
                    }
                    if hits[value, default: []].count < groupSize { hits[value, default: []].append(h) }
                }
            }
            let full = order.count == limit && order.allSatisfy { hits[$0, default: []].count == groupSize }
            if full || found.count < req.limit || req.limit == VectorCollection.maxResults { break }
            fetch *= 4
        }
        let vectors = try hitVectors(collection, order.flatMap { hits[$0, default: []].map(\.id) }, wv)
        // with_lookup: the point with the group's value as its id, from another collection.
        var lookups: [IndexKey: JSON] = [:]
        if let lookup = body["with_lookup"], lookup != .null {
            if case .object = lookup { try rejectUnknown(lookup, ["collection", "with_payload", "with_vector", "with_vectors"], "with_lookup") }
            let name = lookup.stringValue ?? lookup["collection"]?.stringValue
            guard let name else { throw VQError.invalid("with_lookup needs a collection name or {\"collection\": NAME}") }
            let other = try openCollection(try resolveAlias(name))
            let lp = try PayloadSelector(json: lookup["with_payload"], default: true)
            let lv = try withVector(lookup, other.config.vectors)
            var byID: [PointID: IndexKey] = [:]
            for value in order { if let id = try? PointID(json: value.json) { byID[id] = value } }
            for r in try other.retrieve(Array(byID.keys), withVector: lv.wanted, withPayload: lp.wanted) {
                if let value = byID[r.id] { lookups[value] = recordJSON(r, withVector: lv, withPayload: lp) }
            }
        }
        return .object([("groups", .array(order.map { value in
            var g: [(String, JSON)] = [("id", value.json), ("hits", .array(hits[value, default: []].map { scoredJSON($0, vector: wv.wanted ? vectors[$0.id] : nil, payload: selector) }))]
            if let l = lookups[value] { g.append(("lookup", l)) }
            return .object(g)
        }))])
    }
}
