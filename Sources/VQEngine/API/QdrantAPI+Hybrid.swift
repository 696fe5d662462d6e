// Qdrant's query API with prefetch: searches whose results feed the query above them.
//
//   {"prefetch": [{"query": [...], "filter": {...}, "limit": 50},
//                 {"query": [...], "limit": 50, "prefetch": {...}}],
//    "query": {"fusion": "rrf"} | {"fusion": "dbsf"} | {"rrf": {"k": 60}} | [...] (rescore),
//    "filter": {...}, "limit": 10, "offset": 0, "score_threshold": 0.5}
//
//   rrf    each point scores the sum over the lists it is in of 1 / (position + k), position
//          from 0, k = 2 unless given (as in Qdrant)
//   dbsf   each list's scores normalised by its mean +- 3 standard deviations into [0, 1],
//          then summed per point
//   vector the prefetched points scored exactly against it (a re-rank)
//
// A query's filter applies to the prefetches below it as well. Nesting is bounded.

import Foundation

extension QdrantAPI {
    /// One ranked list: points with an internal rank (higher is better) and the score to report.
    typealias RankedList = [(id: PointID, rank: Float, score: Float)]

    /// The query API's answer for a body with `prefetch`.
    func hybridQuery(_ collection: VectorCollection, _ body: JSON) throws -> JSON {
        let limit = try int(body, "limit", default: 10), offset = try int(body, "offset", default: 0)
        // Bounded work: at most 64 prefetches in all, their limits summing to at most maxResults.
        var nodes = 0, total = 0
        func count(_ node: JSON) throws {
            let children: [JSON] = node["prefetch"]?.arrayValue ?? (node["prefetch"].map { $0 == .null ? [] : [$0] } ?? [])
            for child in children {
                nodes += 1
                total += try int(child, "limit", default: 10)
                guard nodes <= 64, total <= VectorCollection.maxResults else {
                    throw VQError.invalid("prefetches ask for more than 64 searches or \(VectorCollection.maxResults) points in all")
                }
                try count(child)
            }
        }
        try count(body)
        var list = try evaluate(collection, body, limit: limit + offset, inherited: nil, depth: 0)
        if let threshold = try scoreThreshold(body) {
            let higher = try higherIsBetter(collection, body)
            list = list.filter { QdrantAPI.passes($0.score, threshold, higherIsBetter: higher) }
        }
        let page = Array(list.dropFirst(offset).prefix(limit))
        let selector = try withPayload(body, default: false)
        let wv = try withVector(body, collection.config.vectors)
        let records = Dictionary(try collection.retrieve(page.map(\.id), withVector: wv.wanted, withPayload: selector.wanted).map { ($0.id, $0) },
                                 uniquingKeysWith: { a, _ in a })
        return .object([("points", .array(page.compactMap { e in
            guard let r = records[e.id] else { return nil }
            let hit = ScoredPoint(id: r.id, version: r.version, score: e.score, rank: e.rank, payload: r.payload)
            return scoredJSON(hit, vector: wv.wanted ? wv.json(r) : nil, payload: selector)
        }))])
    }

    /// Whether a node's scores grow with similarity: fused scores do, and so do those of a
    /// vector whose metric is a similarity.
    private func higherIsBetter(_ collection: VectorCollection, _ node: JSON) throws -> Bool {
        try isFusion(node["query"]) || higherIsBetter(collection, try usingRef(node, collection))
    }

    private func isFusion(_ q: JSON?) -> Bool {
        guard let q, case .object = q else { return false }
        return q["fusion"] != nil || q["rrf"] != nil
    }

    private func evaluate(_ collection: VectorCollection, _ node: JSON, limit: Int, inherited: Filter?, depth: Int) throws -> RankedList {
        guard depth <= 8 else { throw VQError.invalid("prefetch nests deeper than 8 levels") }
        guard limit <= VectorCollection.maxResults else { throw VQError.invalid("limit is \(limit); expected at most \(VectorCollection.maxResults)") }
        if depth > 0 {
            try rejectUnknown(node, ["prefetch", "query", "filter", "limit", "params", "score_threshold", "using", "lookup_from"], "prefetch")
            try checkSearchParams(node["params"])
        }
        let list = try evaluateNode(collection, node, limit: limit, inherited: inherited, depth: depth)
        // A prefetch's own score_threshold (the top level applies its own after offset).
        guard depth > 0, let threshold = try scoreThreshold(node) else { return list }
        let higher = try higherIsBetter(collection, node)
        return list.filter { QdrantAPI.passes($0.score, threshold, higherIsBetter: higher) }
    }

    private func evaluateNode(_ collection: VectorCollection, _ node: JSON, limit: Int, inherited: Filter?, depth: Int) throws -> RankedList {
        var filter = try self.filter(node)
        if let inherited { filter = filter.map { .all(must: [inherited, $0], should: [], mustNot: []) } ?? inherited }
        let q = node["query"] ?? .null
        let children: [JSON]
        switch node["prefetch"] {
        case nil, .null?: children = []
        case .array(let list)?: children = list
        case .object?: children = [node["prefetch"]!]
        case let other?: throw VQError.invalid("prefetch is \(other.typeName); expected a query object or a list of them")
        }
        if children.isEmpty {
            guard q != .null else { throw VQError.invalid("a prefetch needs \"query\": a vector, a point id or {\"nearest\": vector}") }
            guard !isFusion(q) else { throw VQError.invalid("fusion needs prefetches to fuse") }
            let using = try usingRef(node, collection)
            let (query, referenced) = try queryVector(collection, node, q, using: using)
            var req = searchRequest(query, using, limit: limit)
            req.filter = QdrantAPI.excluding(referenced, filter)
            try applySearchParams(node["params"], to: &req)
            return try collection.search(req).hits.map { ($0.id, $0.rank, $0.score) }
        }
        let lists = try children.map { child in
            try evaluate(collection, child, limit: try int(child, "limit", default: 10), inherited: filter, depth: depth + 1)
        }
        // A node with prefetches fuses or re-ranks exactly: search params do not apply.
        try refuseMembers(node, ["params"], "a query with prefetch")
        if isFusion(q) {
            try refuseMembers(node, ["using", "lookup_from"], "a fusion query")
            try rejectUnknown(q, ["fusion", "rrf"], "fusion query")
            if let rrf = q["rrf"], rrf != .null { try rejectUnknown(rrf, ["k"], "rrf") }
            let fused: [PointID: Float]
            if q["fusion"]?.stringValue == "dbsf" {
                fused = QdrantAPI.dbsf(lists)
            } else {
                var k = 2
                if let rrf = q["rrf"] { k = try int(rrf, "k", default: 2, min: 1) } else if q["fusion"]?.stringValue != "rrf" {
                    throw VQError.unknownValue("fusion is \(q["fusion"]?.compactText ?? "missing"); expected \"rrf\" or \"dbsf\"")
                }
                fused = QdrantAPI.rrf(lists, k: k)
            }
            return fused.sorted { $0.value > $1.value || ($0.value == $1.value && $0.key < $1.key) }.prefix(limit).map { ($0.key, $0.value, $0.value) }
        }
        guard q != .null else { throw VQError.invalid("a query with prefetch needs \"query\": a vector to re-rank by or {\"fusion\": \"rrf\"|\"dbsf\"}") }
        // Re-rank the prefetched points exactly by the query vector.
        let ref = try usingRef(node, collection)
        var ids = Set<PointID>()
        for l in lists { for e in l { ids.insert(e.id) } }
        let records = try collection.retrieve(Array(ids), withVector: true, withPayload: false)
        let scored: RankedList
        // Points without the re-ranking vector drop out (they have no score by it).
        switch (try queryVector(collection, node, q, using: ref).query, ref) {
        case (.sparse(let raw), .sparse(let k)):
            // The dot product with each point's sparse vector, weighted as a search by it would be.
            let query = collection.config.vectors.sparse[k].idf ? try collection.idfWeighted(raw, store: k) : raw
            scored = records.compactMap { r in
                guard let v = r.sparse[k] else { return nil }
                let score = query.dot(v)
                return score.overlap ? (r.id, score.score, score.score) : nil
            }
        case (.multi(var query), .multi(let k)):
            // MaxSim with each point's multi-vector (late-interaction re-ranking).
            try collection.prepareMulti(&query, k)
            let spec = collection.config.vectors.multi[k]
            let distance = DistanceFunction(spec.distance)
            scored = records.compactMap { r in
                guard let v = r.multi[k] else { return nil }
                let s = query.withUnsafeBufferPointer { a in v.withUnsafeBufferPointer { b in MultiStore.maxSim(a, b, dim: spec.dim, distance) } }
                return (r.id, s, s)
            }
        case (.dense(var query), .dense(let using)):
            try collection.prepare(&query, using)
            let spec = collection.config.vectors[using]
            let distance = DistanceFunction(spec.distance)
            let dim = spec.dim
            scored = records.compactMap { r in
                guard let v = r.vectors[using] else { return nil }
                let d = query.withUnsafeBufferPointer { a in v.withUnsafeBufferPointer { b in distance(a.baseAddress!, b.baseAddress!, dim) } }
                return (r.id, -d, spec.distance.userScore(-d))
            }
        default:
            preconditionFailure("a query value matches its vector (queryValue)")
        }
        return Array(scored.sorted { $0.rank > $1.rank || ($0.rank == $1.rank && $0.id < $1.id) }.prefix(limit))
    }

    /// The vector a node's query names for searching vector `using`: a vector, {"nearest": vector},
    /// or a point id (its stored vector, from the node's `lookup_from` if it has one).
    /// - Returns: the vector, and the point it was looked up from when that is in `collection`
    ///   (left out of the results, as Qdrant does).
    func queryVector(_ collection: VectorCollection, _ node: JSON, _ q: JSON, using: VectorRef) throws -> (query: QueryVector, referenced: PointID?) {
        let source = try lookupSource(collection, node)
        switch q {
        case .array: return (try queryValue(q, "query", using, collection), nil)
        case .object:
            if q["indices"] != nil || q["values"] != nil { return (try queryValue(q, "query", using, collection), nil) }
            guard let nearest = q["nearest"], q.objectValue?.count == 1 else {
                throw VQError.invalid("query \(q.compactText) is not supported here; expected a vector, a point id or {\"nearest\": ...}")
            }
            return try queryVector(collection, node, nearest, using: using)
        case .int, .uint, .string:
            let id = try PointID(json: q)
            switch using {
            case .dense(let k):
                var v = try storedVector(source, id, using: try lookupVector(collection, source, node, using: k))
                if source !== collection { try collection.prepare(&v, k) }
                return (.dense(v), source === collection ? id : nil)
            case .sparse(let k), .multi(let k):
                // A sparse or multi-vector looked up by id: this collection's only.
                let name = collection.config.vectors.namesOf(using)
                guard source === collection else { throw VQError.invalid("lookup_from cannot supply vector \"\(name)\"; use this collection's") }
                guard let p = try collection.retrieve([id], withVector: true, withPayload: false).first else {
                    throw VQError(.notFound, "query: no point with id \(id) in collection \"\(collection.name)\"")
                }
                if case .sparse = using, let v = p.sparse[k] { return (.sparse(v), id) }
                if case .multi = using, let v = p.multi[k] { return (.multi(v), id) }
                throw VQError.invalid("query: point \(id) has no vector \"\(name)\"")
            }
        default: throw VQError.invalid("query is \(q.typeName); expected a vector, a point id or {\"nearest\": ...}")
        }
    }

    /// `filter` with point `id` left out (nil: `filter` as it is).
    static func excluding(_ id: PointID?, _ filter: Filter?) -> Filter? {
        guard let id else { return filter }
        return .all(must: filter.map { [$0] } ?? [], should: [], mustNot: [.hasID([id])])
    }

    /// Reciprocal rank fusion: 1 / (position + k) summed over the lists a point is in.
    static func rrf(_ lists: [RankedList], k: Int) -> [PointID: Float] {
        var out: [PointID: Float] = [:]
        for l in lists { for (i, e) in l.enumerated() { out[e.id, default: 0] += 1 / Float(i + k) } }
        return out
    }

    /// Distribution-based score fusion: each list's ranks normalised by mean +- 3 sigma into [0, 1], summed.
    static func dbsf(_ lists: [RankedList]) -> [PointID: Float] {
        var out: [PointID: Float] = [:]
        for l in lists where !l.isEmpty {
            let n = Float(l.count)
            let mean = l.reduce(0) { $0 + $1.rank } / n
            let sigma = (l.reduce(0) { $0 + ($1.rank - mean) * ($1.rank - mean) } / n).squareRoot()
            for e in l {
                let v = sigma > 0 ? min(1, max(0, (e.rank - (mean - 3 * sigma)) / (6 * sigma))) : 0.5
                out[e.id, default: 0] += v
            }
        }
        return out
    }
}
