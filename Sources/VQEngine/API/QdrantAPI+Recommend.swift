// Qdrant's recommendations: nearest to positive examples and away from negative ones, where an
// example is a point id (its stored vector) or a vector.
//
//   {"positive": [100, [0.1, ...]], "negative": [718], "strategy": "average_vector" | "best_score" | "sum_scores"}
//
//   average_vector  one search with avg(pos) + (avg(pos) - avg(neg)) (avg(pos) without negatives)
//   best_score      each candidate scores sigmoid(best positive) when that beats its best
//                   negative, else -sigmoid(best negative); sigmoid(x) = (x / (1 + |x|) + 1) / 2
//   sum_scores      the positives' scores summed, minus the negatives'
//
// Example points are never returned. The two scoring strategies score candidates found by
// searching near each positive example (every point passing the filter when there is none).

import Foundation

extension QdrantAPI {
    /// Where example and query point ids are looked up: `lookup_from` {"collection": NAME} (an
    /// alias works), else `collection` itself.
    func lookupSource(_ collection: VectorCollection, _ body: JSON) throws -> VectorCollection {
        guard let from = body["lookup_from"], from != .null else { return collection }
        try rejectUnknown(from, ["collection", "vector"], "lookup_from")
        guard let name = from["collection"]?.stringValue else { throw VQError.invalid("lookup_from needs \"collection\": a collection name") }
        return try openCollection(try resolveAlias(name))
    }

    /// The vector of `source` that example ids stand for when `collection`'s vector `using` is
    /// searched: `lookup_from.vector`, else the one of the same name (Qdrant's rule). It must have
    /// the searched vector's size.
    func lookupVector(_ collection: VectorCollection, _ source: VectorCollection, _ body: JSON, using: Int) throws -> Int {
        let given = body["lookup_from"]?["vector"]
        if source === collection && (given == nil || given == .null) { return using }
        if let given, given != .null, given.stringValue == nil { throw VQError.invalid("lookup_from.vector is \(given.typeName); expected a vector name") }
        let name = given?.stringValue ?? collection.config.vectors[using].name
        let k: Int
        do { k = try source.config.vectors.index(name) } catch let e as VQError {
            throw VQError.invalid("lookup_from collection \"\(source.name)\": \(e.message)")
        }
        let (a, b) = (source.config.vectors[k].dim, collection.config.vectors[using].dim)
        guard a == b else {
            throw VQError.invalid("lookup_from collection \"\(source.name)\" has \(a)-dimensional vectors; \"\(collection.name)\" searches \(b)")
        }
        return k
    }

    /// The stored vector `k` of point `id` in `source`.
    /// - Throws: `.notFound` without the point, `.invalidInput` when it lacks the vector.
    func storedVector(_ source: VectorCollection, _ id: PointID, using k: Int, _ what: String = "query") throws -> [Float] {
        guard let p = try source.retrieve([id], withVector: true, withPayload: false).first else {
            throw VQError(.notFound, "\(what): no point with id \(id) in collection \"\(source.name)\"")
        }
        guard let v = p.vectors[k] else {
            throw VQError.invalid("\(what): point \(id) has no vector \"\(source.config.vectors[k].name)\"")
        }
        return v
    }

    /// The scored points of a recommendation `rec` with the search options of `body` (limit,
    /// offset, filter, params, score_threshold, with_payload, with_vector).
    func recommend(_ collection: VectorCollection, _ rec: JSON, body: JSON) throws -> [JSON] {
        try rejectUnknown(rec, ["positive", "negative", "strategy"], "recommend")
        func examples(_ key: String) throws -> [JSON] {
            guard let v = rec[key], v != .null else { return [] }
            guard let list = v.arrayValue else { throw VQError.invalid("recommend.\(key) is \(v.typeName); expected a list of point ids or vectors") }
            return list
        }
        let positive = try examples("positive"), negative = try examples("negative")
        let given = rec["strategy"] ?? .null
        let strategy = given == .null ? "average_vector" : (given.stringValue ?? "")
        guard ["average_vector", "best_score", "sum_scores"].contains(strategy) else {
            throw VQError.unknownValue("recommend.strategy is \(given.compactText); expected average_vector, best_score or sum_scores")
        }
        guard positive.count + negative.count <= 256 else {
            throw VQError.invalid("recommend has \(positive.count + negative.count) examples; expected at most 256")
        }
        var examples = try Examples(self, collection, body)
        let using = examples.using
        let pos = try examples.vectors(positive, "recommend.positive"), neg = try examples.vectors(negative, "recommend.negative")
        let filter = try examples.filter(self.filter(body))
        let dim = collection.config.vectors[using].dim
        func average(_ vs: [[Float]]) -> [Float] {
            var sum = [Float](repeating: 0, count: dim)
            for v in vs { for j in 0..<dim { sum[j] += v[j] } }
            return sum.map { $0 / Float(vs.count) }
        }
        if strategy == "average_vector" {
            guard !pos.isEmpty else { throw VQError.invalid("recommend with average_vector needs at least one positive example") }
            let p = average(pos)
            let q = neg.isEmpty ? p : zip(p, average(neg)).map { 2 * $0 - $1 }
            return try runSearchCounting(collection, query: .dense(q), using: .dense(using), body: body, filter: .some(filter)).points
        }
        guard !pos.isEmpty || !neg.isEmpty else { throw VQError.invalid("recommend needs at least one positive or negative example") }
        // Candidates: near each positive (or, with negatives only, every point passing the filter).
        let limit = try int(body, "limit", default: 10), offset = try int(body, "offset", default: 0)
        guard limit + offset <= VectorCollection.maxResults else {
            throw VQError.invalid("limit + offset is \(limit + offset); expected at most \(VectorCollection.maxResults)")
        }
        let wanted = min(VectorCollection.maxResults, max(64, (limit + offset) * 4))
        let selector = try withPayload(body, default: false)
        let records: [PointRecord]
        if pos.isEmpty {
            let ids = try collection.scroll(filter: filter, offset: nil, limit: VectorCollection.maxResults, withVector: false, withPayload: false).points.map(\.id)
            records = try collection.retrieve(ids, withVector: true, withPayload: selector.wanted)
        } else {
            records = try candidates(collection, near: pos, using: using, filter: filter, wanted: wanted, params: body["params"] ?? .null,
                                     withPayload: selector.wanted)
        }
        let similarity = self.similarity(collection, using)
        let scored: [(record: PointRecord, score: Float)] = records.compactMap { r in
            guard let v = r.vectors[using] else { return nil }
            let ps = pos.map { similarity(v, $0) }, ns = neg.map { similarity(v, $0) }
            if strategy == "sum_scores" { return (r, ps.reduce(0, +) - ns.reduce(0, +)) }
            let bestPos = ps.max() ?? -.infinity, bestNeg = ns.max() ?? -.infinity
            return (r, bestPos > bestNeg ? QdrantAPI.sigmoid(bestPos) : -QdrantAPI.sigmoid(bestNeg))
        }
        return try scoredPage(collection, scored, body: body)
    }

    /// Qdrant's squashing of similarities into (0, 1): (x / (1 + |x|) + 1) / 2.
    static func sigmoid(_ x: Float) -> Float { x.isInfinite ? (x > 0 ? 1 : 0) : 0.5 * (x / (1 + abs(x)) + 1) }

    /// The similarity (higher is closer) of two prepared values of vector `k` under its metric.
    func similarity(_ collection: VectorCollection, _ k: Int) -> ([Float], [Float]) -> Float {
        let distance = DistanceFunction(collection.config.vectors[k].distance)
        let dim = collection.config.vectors[k].dim
        return { a, b in a.withUnsafeBufferPointer { x in b.withUnsafeBufferPointer { y in -distance(x.baseAddress!, y.baseAddress!, dim) } } }
    }

    /// Example points of a recommendation or discovery: ids become their stored vectors (from
    /// `lookup_from` if given; ids of this collection are then left out of the results), vectors
    /// are checked and normalised.
    struct Examples {
        let api: QdrantAPI
        let collection: VectorCollection
        let source: VectorCollection
        /// The searched vector (`using`), and the one of `source` example ids stand for.
        let using: Int
        let sourceVector: Int
        private(set) var ids: [PointID] = []

        init(_ api: QdrantAPI, _ collection: VectorCollection, _ body: JSON) throws {
            self.api = api
            self.collection = collection
            source = try api.lookupSource(collection, body)
            using = try api.using(body, collection)
            sourceVector = try api.lookupVector(collection, source, body, using: using)
        }

        mutating func vectors(_ list: [JSON], _ what: String) throws -> [[Float]] {
            let asked = try list.compactMap { e -> PointID? in e.arrayValue == nil ? try PointID(json: e) : nil }
            if source === collection { ids += asked }
            let stored = Dictionary(try source.retrieve(asked, withVector: true, withPayload: false).map { ($0.id, $0.vectors[sourceVector]) },
                                    uniquingKeysWith: { a, _ in a })
            return try list.enumerated().map { i, e in
                if e.arrayValue != nil {
                    var v = try api.denseVector(e, "\(what)[\(i)]")
                    try collection.prepare(&v, using)
                    return v
                }
                let id = try PointID(json: e)
                guard let found = stored[id] else { throw VQError(.notFound, "\(what)[\(i)]: no point with id \(id) in collection \"\(source.name)\"") }
                guard var v = found else {
                    throw VQError.invalid("\(what)[\(i)]: point \(id) has no vector \"\(source.config.vectors[sourceVector].name)\"")
                }
                // Stored under another vector's metric (lookup_from): prepared as this one's.
                if source !== collection || sourceVector != using { try collection.prepare(&v, using) }
                return v
            }
        }

        /// `filter` with the example points left out.
        func filter(_ filter: Filter?) -> Filter? {
            guard !ids.isEmpty else { return filter }
            return .all(must: filter.map { [$0] } ?? [], should: [], mustNot: [.hasID(Set(ids))])
        }
    }

    /// Points near `vectors` (each searched, `wanted` apiece) passing `filter`: candidates for
    /// a custom score. - Returns: their records with vectors (and payloads if `withPayload`).
    func candidates(_ collection: VectorCollection, near vectors: [[Float]], using: Int, filter: Filter?, wanted: Int, params: JSON,
                    withPayload: Bool) throws -> [PointRecord] {
        var found = Set<PointID>()
        for v in vectors {
            var req = SearchRequest(vector: v, limit: wanted, using: using)
            req.filter = filter
            try applySearchParams(params, to: &req)
            req.hnswEf = max(wanted, req.hnswEf ?? collection.config.efConstruct)
            for h in try collection.search(req).hits { found.insert(h.id) }
        }
        return try collection.retrieve(Array(found), withVector: true, withPayload: withPayload)
    }

    /// The page of `scored` (best first) as Qdrant's scored points.
    func scoredPage(_ collection: VectorCollection, _ scored: [(record: PointRecord, score: Float)], body: JSON) throws -> [JSON] {
        let limit = try int(body, "limit", default: 10), offset = try int(body, "offset", default: 0)
        var list = scored.sorted { $0.score > $1.score || ($0.score == $1.score && $0.record.id < $1.record.id) }
        if let threshold = try scoreThreshold(body) { list = list.filter { Double($0.score) >= threshold } }
        let selector = try withPayload(body, default: false)
        let wv = try withVector(body, collection.config.vectors)
        return list.dropFirst(offset).prefix(limit).map { r, score in
            scoredJSON(ScoredPoint(id: r.id, version: r.version, score: score, rank: score, payload: r.payload),
                       vector: wv.wanted ? wv.json(r) : nil, payload: selector)
        }
    }

    /// `POST /points/recommend`: the legacy form, examples and options in one body.
    func recommendLegacy(_ collection: VectorCollection, _ body: JSON) throws -> JSON {
        try checkSettings(body, "recommend request", allowed: ["positive", "negative", "strategy", "filter", "params", "limit", "offset",
                                                               "with_payload", "with_vector", "with_vectors", "score_threshold", "using",
                                                               "lookup_from"],
                          unsupported: ["shard_key": "vq places points by id; there are no shard keys"])
        try checkSearchParams(body["params"])
        var rec: [(String, JSON)] = []
        for key in ["positive", "negative", "strategy"] { if let v = body[key] { rec.append((key, v)) } }
        return .array(try recommend(collection, .object(rec), body: body))
    }
}
