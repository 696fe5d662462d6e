// Qdrant's discovery and context search: a target and pairs of (positive, negative) examples
// that split the space into zones.
//
//   {"discover": {"target": ID | VECTOR, "context": [{"positive": ..., "negative": ...}, ...]}}
//       score = sigmoid(similarity to the target) + the sum over pairs of +1 when the point is at
//       least as similar to the pair's positive as to its negative, else -1 (zones first, then
//       closeness to the target)
//   {"context": [{"positive": ..., "negative": ...}, ...]}
//       score = the sum over pairs of min(similarity to positive - similarity to negative, 0):
//       0 inside every positive zone, lower the further outside
//
// Candidates are found near the target (discover) or near each positive (context) and scored
// exactly; example ids are left out, as in recommendations. Legacy route: /points/discover.

import Foundation

extension QdrantAPI {
    /// The context pairs of a discover or context query, as vectors.
    private func pairs(_ json: JSON?, _ examples: inout Examples, _ what: String) throws -> [(positive: [Float], negative: [Float])] {
        let list: [JSON]
        switch json {
        case .array(let l)?: list = l
        case .object?: list = [json!]
        case nil, .null?: list = []
        case let other?: throw VQError.invalid("\(what) is \(other.typeName); expected a list of {\"positive\", \"negative\"} pairs")
        }
        guard list.count <= 128 else { throw VQError.invalid("\(what) has \(list.count) pairs; expected at most 128") }
        return try list.enumerated().map { i, pair in
            try rejectUnknown(pair, ["positive", "negative"], "\(what)[\(i)]")
            guard let p = pair["positive"], let n = pair["negative"] else { throw VQError.invalid("\(what)[\(i)] needs \"positive\" and \"negative\"") }
            let v = try examples.vectors([p, n], "\(what)[\(i)]")
            return (v[0], v[1])
        }
    }

    /// `{"discover": {...}}` in the query API (and the legacy route's body mapped onto it).
    func discover(_ collection: VectorCollection, _ q: JSON, body: JSON) throws -> [JSON] {
        try rejectUnknown(q, ["target", "context"], "discover")
        guard let targetJSON = q["target"], targetJSON != .null else { throw VQError.invalid("discover needs \"target\": a point id or a vector") }
        var examples = try Examples(self, collection, body)
        let target = try examples.vectors([targetJSON], "discover.target")[0]
        let context = try pairs(q["context"], &examples, "discover.context")
        let filter = try examples.filter(self.filter(body))
        let limit = try int(body, "limit", default: 10), offset = try int(body, "offset", default: 0)
        guard limit + offset <= VectorCollection.maxResults else {
            throw VQError.invalid("limit + offset is \(limit + offset); expected at most \(VectorCollection.maxResults)")
        }
        let wanted = min(VectorCollection.maxResults, max(64, (limit + offset) * 8))
        let using = examples.using
        let records = try candidates(collection, near: [target], using: using, filter: filter, wanted: wanted, params: body["params"] ?? .null,
                                     withPayload: try withPayload(body, default: false).wanted)
        let similarity = self.similarity(collection, using)
        let scored = records.compactMap { r -> (record: PointRecord, score: Float)? in
            guard let v = r.vectors[using] else { return nil }
            let zones = context.reduce(0) { $0 + (similarity(v, $1.positive) >= similarity(v, $1.negative) ? 1 : -1) }
            return (r, Float(zones) + QdrantAPI.sigmoid(similarity(v, target)))
        }
        return try scoredPage(collection, scored, body: body)
    }

    /// `{"context": [...]}` in the query API.
    func contextSearch(_ collection: VectorCollection, _ pairsJSON: JSON, body: JSON) throws -> [JSON] {
        var examples = try Examples(self, collection, body)
        let context = try pairs(pairsJSON, &examples, "context")
        guard !context.isEmpty else { throw VQError.invalid("context needs at least one {\"positive\", \"negative\"} pair") }
        let filter = try examples.filter(self.filter(body))
        let limit = try int(body, "limit", default: 10), offset = try int(body, "offset", default: 0)
        guard limit + offset <= VectorCollection.maxResults else {
            throw VQError.invalid("limit + offset is \(limit + offset); expected at most \(VectorCollection.maxResults)")
        }
        let wanted = min(VectorCollection.maxResults, max(64, (limit + offset) * 4))
        let using = examples.using
        let records = try candidates(collection, near: context.map(\.positive), using: using, filter: filter, wanted: wanted,
                                     params: body["params"] ?? .null, withPayload: try withPayload(body, default: false).wanted)
        let similarity = self.similarity(collection, using)
        let scored = records.compactMap { r -> (record: PointRecord, score: Float)? in
            guard let v = r.vectors[using] else { return nil }
            return (r, context.reduce(0) { $0 + min(similarity(v, $1.positive) - similarity(v, $1.negative), 0) })
        }
        return try scoredPage(collection, scored, body: body)
    }

    /// `POST /points/discover`: the legacy form.
    func discoverLegacy(_ collection: VectorCollection, _ body: JSON) throws -> JSON {
        try checkSettings(body, "discover request", allowed: ["target", "context", "filter", "params", "limit", "offset", "with_payload",
                                                              "with_vector", "with_vectors", "using", "lookup_from"],
                          unsupported: ["shard_key": "vq places points by id; there are no shard keys"])
        try checkSearchParams(body["params"])
        var q: [(String, JSON)] = []
        for key in ["target", "context"] { if let v = body[key] { q.append((key, v)) } }
        return .array(try discover(collection, .object(q), body: body))
    }
}
