// Payload filters, as Qdrant has them: must / should / must_not over conditions.
//
//   {"must": [{"key": "city", "match": {"value": "Paris"}},
//             {"key": "price", "range": {"gte": 10, "lt": 20}}],
//    "should": [{"key": "tag", "match": {"any": ["a", "b"]}}],
//    "must_not": [{"has_id": [1, 2]}, {"is_empty": {"key": "notes"}}]}
//
// Keys are dotted paths into the payload ("a.b"); an array along the path
// matches when any element does, as in Qdrant. Filters are checked per row
// during a scan; unknown condition shapes are refused when parsed.

/// A parsed filter.
package indirect enum Filter: Sendable {
    case all(must: [Filter], should: [Filter], mustNot: [Filter])
    case match(key: String, value: JSON)
    case matchAny(key: String, values: [JSON])
    case matchExcept(key: String, values: [JSON])
    case range(key: String, gt: Double?, gte: Double?, lt: Double?, lte: Double?)
    case hasID(Set<PointID>)
    case isEmpty(key: String)
    case isNull(key: String)

    /// Parses Qdrant's filter JSON.
    /// - Throws: `.invalidInput` naming the part that is not a known condition.
    package init(json: JSON) throws {
        guard case .object(let members) = json else { throw VQError.invalid("filter is \(json.typeName); expected an object") }
        var must: [Filter] = [], should: [Filter] = [], mustNot: [Filter] = []
        for (key, value) in members {
            let list: [JSON]
            switch value {
            case .null: continue
            case .array(let a): list = a
            case .object: list = [value]
            default: throw VQError.invalid("filter.\(key) is \(value.typeName); expected a condition or a list of conditions")
            }
            let parsed = try list.map { try Filter.condition($0) }
            switch key {
            case "must": must = parsed
            case "should": should = parsed
            case "must_not": mustNot = parsed
            case "min_should": throw VQError.invalid("filter.min_should is not supported; use should")
            default: throw VQError.invalid("unknown filter clause \"\(key)\"; expected must, should or must_not")
            }
        }
        self = .all(must: must, should: should, mustNot: mustNot)
    }

    private static func condition(_ json: JSON) throws -> Filter {
        guard case .object = json else { throw VQError.invalid("filter condition is \(json.typeName); expected an object") }
        if json["must"] != nil || json["should"] != nil || json["must_not"] != nil { return try Filter(json: json) }
        if let ids = json["has_id"] {
            guard case .array(let list) = ids else { throw VQError.invalid("has_id is \(ids.typeName); expected a list of point ids") }
            return .hasID(Set(try list.map { try PointID(json: $0) }))
        }
        if let e = json["is_empty"] {
            guard let key = e["key"]?.stringValue else { throw VQError.invalid("is_empty needs {\"key\": \"...\"}") }
            return .isEmpty(key: key)
        }
        if let e = json["is_null"] {
            guard let key = e["key"]?.stringValue else { throw VQError.invalid("is_null needs {\"key\": \"...\"}") }
            return .isNull(key: key)
        }
        guard let key = json["key"]?.stringValue else {
            throw VQError.invalid("filter condition \(json.compactText) is not supported; expected key with match or range, has_id, is_empty, is_null, or a nested filter")
        }
        if let m = json["match"] {
            if let v = m["value"] {
                switch v {
                case .string, .int, .uint, .bool: return .match(key: key, value: v)
                default: throw VQError.invalid("match.value for \"\(key)\" is \(v.typeName); expected a string, integer or boolean")
                }
            }
            if let any = m["any"]?.arrayValue { return .matchAny(key: key, values: any) }
            if let except = m["except"]?.arrayValue { return .matchExcept(key: key, values: except) }
            throw VQError.invalid("match for \"\(key)\" needs value, any or except")
        }
        if let r = json["range"] {
            func bound(_ name: String) throws -> Double? {
                guard let v = r[name], v != .null else { return nil }
                guard let d = v.doubleValue else { throw VQError.invalid("range.\(name) for \"\(key)\" is \(v.typeName); expected a number") }
                return d
            }
            let f = Filter.range(key: key, gt: try bound("gt"), gte: try bound("gte"), lt: try bound("lt"), lte: try bound("lte"))
            return f
        }
        throw VQError.invalid("filter condition on \"\(key)\" needs match or range")
    }

    /// Values at a dotted path; arrays along the way are flattened.
    static func values(_ payload: JSON?, _ key: String) -> [JSON] {
        guard let payload else { return [] }
        var current: [JSON] = [payload]
        for part in key.split(separator: ".") {
            var next: [JSON] = []
            let name = part.hasSuffix("[]") ? String(part.dropLast(2)) : String(part)
            for v in current {
                if let child = v[name] {
                    if case .array(let items) = child { next.append(contentsOf: items) } else { next.append(child) }
                }
            }
            current = next
        }
        return current
    }

    private static func equal(_ a: JSON, _ b: JSON) -> Bool {
        switch (a, b) {
        case (.int(let x), .uint(let y)), (.uint(let y), .int(let x)): return x >= 0 && UInt64(x) == y
        default: return a == b
        }
    }

    /// Whether a point with `id` and `payload` passes.
    package func matches(id: PointID, payload: JSON?) -> Bool {
        switch self {
        case .all(let must, let should, let mustNot):
            for f in must where !f.matches(id: id, payload: payload) { return false }
            for f in mustNot where f.matches(id: id, payload: payload) { return false }
            if !should.isEmpty && !should.contains(where: { $0.matches(id: id, payload: payload) }) { return false }
            return true
        case .match(let key, let value):
            return Filter.values(payload, key).contains { Filter.equal($0, value) }
        case .matchAny(let key, let values):
            return Filter.values(payload, key).contains { v in values.contains { Filter.equal(v, $0) } }
        case .matchExcept(let key, let values):
            let found = Filter.values(payload, key)
            return !found.isEmpty && found.allSatisfy { v in !values.contains { Filter.equal(v, $0) } }
        case .range(let key, let gt, let gte, let lt, let lte):
            return Filter.values(payload, key).contains { v in
                guard let d = v.doubleValue else { return false }
                if let gt, !(d > gt) { return false }
                if let gte, !(d >= gte) { return false }
                if let lt, !(d < lt) { return false }
                if let lte, !(d <= lte) { return false }
                return true
            }
        case .hasID(let ids):
            return ids.contains(id)
        case .isEmpty(let key):
            let found = Filter.values(payload, key)
            return found.isEmpty || found.allSatisfy { $0 == .null }
        case .isNull(let key):
            guard let payload else { return false }
            var current: JSON? = payload
            for part in key.split(separator: ".") { current = current?[String(part)] }
            return current == .null
        }
    }
}

extension Filter {
    /// Qdrant's JSON for this filter (what `init(json:)` reads back), for sending to a peer.
    package var json: JSON {
        func numbers(_ pairs: [(String, Double?)]) -> JSON {
            .object(pairs.compactMap { k, v in v.map { (k, .double($0)) } })
        }
        switch self {
        case let .all(must, should, mustNot):
            return .object([("must", .array(must.map(\.json))), ("should", .array(should.map(\.json))),
                            ("must_not", .array(mustNot.map(\.json)))])
        case let .match(key, value): return .object([("key", .string(key)), ("match", .object([("value", value)]))])
        case let .matchAny(key, values): return .object([("key", .string(key)), ("match", .object([("any", .array(values))]))])
        case let .matchExcept(key, values): return .object([("key", .string(key)), ("match", .object([("except", .array(values))]))])
        case let .range(key, gt, gte, lt, lte):
            return .object([("key", .string(key)), ("range", numbers([("gt", gt), ("gte", gte), ("lt", lt), ("lte", lte)]))])
        case let .hasID(ids): return .object([("has_id", .array(ids.sorted().map(\.json)))])
        case let .isEmpty(key): return .object([("is_empty", .object([("key", .string(key))]))])
        case let .isNull(key): return .object([("is_null", .object([("key", .string(key))]))])
        }
    }
}
