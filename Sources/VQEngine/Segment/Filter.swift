// Payload filters, as Qdrant has them: must / should / must_not / min_should over conditions.
//
//   {"must": [{"key": "city", "match": {"value": "Paris"}},
//             {"key": "price", "range": {"gte": 10, "lt": 20}},
//             {"key": "created", "range": {"gt": "2024-01-01T00:00:00Z"}}],
//    "should": [{"key": "tag", "match": {"any": ["a", "b"]}}],
//    "min_should": {"conditions": [...], "min_count": 2},
//    "must_not": [{"has_id": [1, 2]}, {"is_empty": {"key": "notes"}}]}
//
// Conditions: match (value, any, except, text, phrase), range (numbers, or datetimes as
// RFC 3339 strings), values_count, geo_radius, geo_bounding_box, geo_polygon, nested (arrays
// of objects, the inner filter per element), has_id, is_empty, is_null, and nested filters.
//
// Keys are paths into the payload: "a.b", "a[].b" (every element), "a[2].b" (one element); an
// array along the path matches when any element does, as in Qdrant. A segment answers indexed
// conditions from its FieldIndexes (Segment+Filter.swift); the rest are checked per row here.
// Unknown condition shapes are refused when parsed.

import Foundation

/// A point on the globe, degrees.
package struct GeoPoint: Sendable, Equatable {
    package var lat: Double
    package var lon: Double

    /// Parses Qdrant's `{"lon": ..., "lat": ...}`; nil when not a valid point.
    package init?(json: JSON) {
        guard let lat = json["lat"]?.doubleValue, let lon = json["lon"]?.doubleValue,
              (-90...90).contains(lat), (-180...180).contains(lon) else { return nil }
        self.lat = lat
        self.lon = lon
    }

    package init(lat: Double, lon: Double) {
        self.lat = lat
        self.lon = lon
    }

    var json: JSON { .object([("lon", .double(lon)), ("lat", .double(lat))]) }

    /// Great-circle distance in meters (haversine, mean earth radius).
    func meters(to o: GeoPoint) -> Double {
        let r = 6_371_008.8
        let p1 = lat * .pi / 180, p2 = o.lat * .pi / 180
        let dp = (o.lat - lat) * .pi / 180, dl = (o.lon - lon) * .pi / 180
        let a = sin(dp / 2) * sin(dp / 2) + cos(p1) * cos(p2) * sin(dl / 2) * sin(dl / 2)
        return 2 * r * asin(min(1, a.squareRoot()))
    }
}

/// A geo condition's shape.
package enum GeoShape: Sendable, Equatable {
    case radius(center: GeoPoint, meters: Double)
    case box(topLeft: GeoPoint, bottomRight: GeoPoint)
    case polygon(exterior: [GeoPoint], interiors: [[GeoPoint]])

    func contains(_ p: GeoPoint) -> Bool {
        switch self {
        case let .radius(center, meters):
            return center.meters(to: p) <= meters
        case let .box(tl, br):
            guard p.lat <= tl.lat && p.lat >= br.lat else { return false }
            // A box may cross the antimeridian (left edge east of the right one).
            return tl.lon <= br.lon ? (p.lon >= tl.lon && p.lon <= br.lon) : (p.lon >= tl.lon || p.lon <= br.lon)
        case let .polygon(exterior, interiors):
            return GeoShape.inside(p, exterior) && !interiors.contains { GeoShape.inside(p, $0) }
        }
    }

    /// Ray casting over a closed ring (the last point may repeat the first).
    private static func inside(_ p: GeoPoint, _ ring: [GeoPoint]) -> Bool {
        var inside = false
        var j = ring.count - 1
        for i in 0..<ring.count {
            let a = ring[i], b = ring[j]
            if (a.lat > p.lat) != (b.lat > p.lat),
               p.lon < (b.lon - a.lon) * (p.lat - a.lat) / (b.lat - a.lat) + a.lon {
                inside.toggle()
            }
            j = i
        }
        return inside
    }
}

/// Bounds of a range condition; datetimes are compared as seconds since 1970.
package struct RangeBounds: Sendable, Equatable {
    package var gt: Double?
    package var gte: Double?
    package var lt: Double?
    package var lte: Double?

    @inline(__always) func contains(_ d: Double) -> Bool {
        if let gt, !(d > gt) { return false }
        if let gte, !(d >= gte) { return false }
        if let lt, !(d < lt) { return false }
        if let lte, !(d <= lte) { return false }
        return true
    }
}

/// A parsed filter.
package indirect enum Filter: Sendable {
    /// `minShould`: at least `count` of `conditions` (Qdrant's min_should).
    case all(must: [Filter], should: [Filter], mustNot: [Filter], minShould: (conditions: [Filter], count: Int)? = nil)
    case match(key: String, value: JSON)
    case matchAny(key: String, values: [JSON])
    case matchExcept(key: String, values: [JSON])
    /// Full-text: every token of `text` (with a text index), else a substring.
    case matchText(key: String, text: String)
    /// The tokens of `text` in a row, in order (with a text index), else a substring.
    case matchPhrase(key: String, text: String)
    /// Numbers in range; with `datetime`, RFC 3339 strings compared as instants.
    case range(key: String, RangeBounds, datetime: Bool)
    case valuesCount(key: String, RangeBounds)
    case geo(key: String, GeoShape)
    /// Some element of the array of objects at `key` passes `filter` (evaluated on that element).
    case nested(key: String, filter: Filter)
    case hasID(Set<PointID>)
    case isEmpty(key: String)
    case isNull(key: String)

    /// Parses Qdrant's filter JSON.
    /// - Throws: `.invalidInput` naming the part that is not a known condition.
    package init(json: JSON) throws {
        try self.init(json: json, depth: 0)
    }

    /// Nesting deeper than this is refused (a request must not exhaust the stack).
    static let maxDepth = 32

    private init(json: JSON, depth: Int) throws {
        guard depth <= Filter.maxDepth else { throw VQError.invalid("filter nests deeper than \(Filter.maxDepth) levels") }
        guard case .object(let members) = json else { throw VQError.invalid("filter is \(json.typeName); expected an object") }
        var must: [Filter] = [], should: [Filter] = [], mustNot: [Filter] = []
        var minShould: ([Filter], Int)?
        for (key, value) in members {
            if key == "min_should" {
                if value == .null { continue }
                guard let list = value["conditions"]?.arrayValue, let n = value["min_count"]?.intValue, n >= 0 else {
                    throw VQError.invalid("filter.min_should needs {\"conditions\": [...], \"min_count\": N}")
                }
                minShould = (try list.map { try Filter.condition($0, depth: depth + 1) }, Int(n))
                continue
            }
            let list: [JSON]
            switch value {
            case .null: continue
            case .array(let a): list = a
            case .object: list = [value]
            default: throw VQError.invalid("filter.\(key) is \(value.typeName); expected a condition or a list of conditions")
            }
            let parsed = try list.map { try Filter.condition($0, depth: depth + 1) }
            switch key {
            case "must": must = parsed
            case "should": should = parsed
            case "must_not": mustNot = parsed
            default: throw VQError.invalid("unknown filter clause \"\(key)\"; expected must, should, must_not or min_should")
            }
        }
        self = .all(must: must, should: should, mustNot: mustNot, minShould: minShould)
    }

    private static func condition(_ json: JSON, depth: Int) throws -> Filter {
        guard case .object(let members) = json else { throw VQError.invalid("filter condition is \(json.typeName); expected an object") }
        if members.isEmpty || json["must"] != nil || json["should"] != nil || json["must_not"] != nil || json["min_should"] != nil {
            return try Filter(json: json, depth: depth)
        }
        // has_id, is_empty, is_null and nested stand alone in their object.
        for kind in ["has_id", "is_empty", "is_null", "nested"] where json[kind] != nil && members.count > 1 {
            let other = members.first { $0.0 != kind }!.0
            throw VQError.invalid("filter condition has \(kind) and \"\(other)\"; \(kind) stands alone in its object (combine conditions with must)")
        }
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
        if let n = json["nested"] {
            guard let key = n["key"]?.stringValue, let inner = n["filter"] else {
                throw VQError.invalid("nested needs {\"key\": \"...\", \"filter\": {...}}")
            }
            let f = try Filter(json: inner, depth: depth + 1)
            if f.mentionsID { throw VQError.invalid("has_id is not allowed inside nested (it names points, not array elements)") }
            return .nested(key: key, filter: f)
        }
        if json["has_vector"] != nil { throw VQError.invalid("has_vector is not supported: vq collections have one unnamed vector, which every point has") }
        // One kind of condition per object, and nothing vq does not know.
        let kinds = ["match", "range", "values_count", "geo_radius", "geo_bounding_box", "geo_polygon"]
        if let unknown = members.first(where: { $0.0 != "key" && !kinds.contains($0.0) }) {
            throw VQError.invalid("filter condition has \"\(unknown.0)\", which vq does not support; expected key with one of " + kinds.joined(separator: ", "))
        }
        let present = members.map(\.0).filter { kinds.contains($0) }
        if present.count > 1 { throw VQError.invalid("filter condition has both \(present[0]) and \(present[1]); use one per condition (combine them with must)") }
        guard let key = json["key"]?.stringValue else {
            throw VQError.invalid("filter condition \(json.compactText) is not supported; expected key with match, range, values_count or geo_*, has_id, is_empty, is_null, nested, or a nested filter")
        }
        if let m = json["match"] {
            guard case .object(let forms) = m, forms.count == 1, let form = forms.first?.0,
                  ["value", "any", "except", "text", "phrase"].contains(form) else {
                throw VQError.invalid("match for \"\(key)\" is \(m.compactText); expected exactly one of value, any, except, text or phrase")
            }
            if let v = m["value"] {
                switch v {
                case .string, .int, .uint, .bool: return .match(key: key, value: v)
                default: throw VQError.invalid("match.value for \"\(key)\" is \(v.typeName); expected a string, integer or boolean")
                }
            }
            if let any = m["any"]?.arrayValue { return .matchAny(key: key, values: any) }
            if let except = m["except"]?.arrayValue { return .matchExcept(key: key, values: except) }
            if let text = m["text"]?.stringValue { return .matchText(key: key, text: text) }
            if let text = m["phrase"]?.stringValue { return .matchPhrase(key: key, text: text) }
            throw VQError.invalid("match for \"\(key)\" needs value, any, except, text or phrase")
        }
        if let r = json["range"] {
            guard case .object(let members) = r else { throw VQError.invalid("range for \"\(key)\" is \(r.typeName); expected an object") }
            let datetime = members.contains { if case .string = $0.1 { return true } else { return false } }
            var b = RangeBounds()
            for (name, v) in members where v != .null {
                let d: Double?
                if datetime {
                    guard let s = v.stringValue, let t = Datetime.parse(s) else {
                        throw VQError.invalid("range.\(name) for \"\(key)\" is \(v.compactText); expected an RFC 3339 datetime like \"2024-01-31T12:00:00Z\"")
                    }
                    d = t
                } else {
                    guard let n = v.doubleValue else { throw VQError.invalid("range.\(name) for \"\(key)\" is \(v.typeName); expected a number") }
                    d = n
                }
                switch name {
                case "gt": b.gt = d
                case "gte": b.gte = d
                case "lt": b.lt = d
                case "lte": b.lte = d
                default: throw VQError.invalid("range for \"\(key)\" has \"\(name)\"; expected gt, gte, lt or lte")
                }
            }
            return .range(key: key, b, datetime: datetime)
        }
        if let r = json["values_count"] {
            guard case .object(let members) = r, members.allSatisfy({ ["gt", "gte", "lt", "lte"].contains($0.0) }) else {
                throw VQError.invalid("values_count for \"\(key)\" is \(r.compactText); expected an object of gt, gte, lt, lte")
            }
            var b = RangeBounds()
            for name in ["gt", "gte", "lt", "lte"] {
                guard let v = r[name], v != .null else { continue }
                guard let n = v.intValue, n >= 0 else { throw VQError.invalid("values_count.\(name) for \"\(key)\" is \(v.compactText); expected a non-negative integer") }
                switch name {
                case "gt": b.gt = Double(n)
                case "gte": b.gte = Double(n)
                case "lt": b.lt = Double(n)
                default: b.lte = Double(n)
                }
            }
            return .valuesCount(key: key, b)
        }
        func point(_ j: JSON?, _ what: String) throws -> GeoPoint {
            guard let j, let p = GeoPoint(json: j) else {
                throw VQError.invalid("\(what) for \"\(key)\" is not a point; expected {\"lon\": -180..180, \"lat\": -90..90}")
            }
            return p
        }
        if let g = json["geo_radius"] {
            guard let r = g["radius"]?.doubleValue, r >= 0 else { throw VQError.invalid("geo_radius.radius for \"\(key)\" must be a non-negative number of meters") }
            return .geo(key: key, .radius(center: try point(g["center"], "geo_radius.center"), meters: r))
        }
        if let g = json["geo_bounding_box"] {
            return .geo(key: key, .box(topLeft: try point(g["top_left"], "geo_bounding_box.top_left"),
                                       bottomRight: try point(g["bottom_right"], "geo_bounding_box.bottom_right")))
        }
        if let g = json["geo_polygon"] {
            func ring(_ j: JSON?, _ what: String) throws -> [GeoPoint] {
                guard let pts = j?["points"]?.arrayValue, pts.count >= 4 else {
                    throw VQError.invalid("\(what) for \"\(key)\" needs {\"points\": [...]} with at least 4 points (a closed ring)")
                }
                let ring = try pts.map { try point($0, what) }
                guard ring.first == ring.last else { throw VQError.invalid("\(what) for \"\(key)\" is not closed: its last point must equal its first") }
                return ring
            }
            let interiors = try (g["interiors"]?.arrayValue ?? []).map { try ring($0, "geo_polygon.interiors") }
            return .geo(key: key, .polygon(exterior: try ring(g["exterior"], "geo_polygon.exterior"), interiors: interiors))
        }
        throw VQError.invalid("filter condition on \"\(key)\" needs match, range, values_count, geo_radius, geo_bounding_box or geo_polygon")
    }

    /// Whether a has_id condition appears anywhere inside.
    var mentionsID: Bool {
        switch self {
        case .hasID: return true
        case let .all(must, should, mustNot, minShould):
            return (must + should + mustNot + (minShould?.conditions ?? [])).contains { $0.mentionsID }
        case let .nested(_, f): return f.mentionsID
        default: return false
        }
    }

    /// The parts of a key path: names, with `[]` (every element) or `[N]` (one element) after them.
    private static func path(_ key: String) -> [(name: String, index: Int?)] {
        key.split(separator: ".").map { part in
            guard part.hasSuffix("]"), let open = part.lastIndex(of: "[") else { return (String(part), nil) }
            let inside = part[part.index(after: open)..<part.index(before: part.endIndex)]
            return (String(part[..<open]), inside.isEmpty ? nil : Int(inside).map { $0 } ?? -1)
        }
    }

    /// Values at a key path; arrays along the way are flattened.
    static func values(_ payload: JSON?, _ key: String) -> [JSON] {
        guard let payload else { return [] }
        var current: [JSON] = [payload]
        for (name, index) in path(key) {
            var next: [JSON] = []
            for v in current {
                guard let child = name.isEmpty ? v : v[name] else { continue }
                if case .array(let items) = child {
                    if let index {
                        if index >= 0 && index < items.count { next.append(items[index]) }
                    } else {
                        next.append(contentsOf: items)
                    }
                } else if index == nil {
                    next.append(child)
                }
            }
            current = next
        }
        return current
    }

    /// The non-null values at a key path, and how many there are (Qdrant's values_count).
    static func nonNullValues(_ payload: JSON?, _ key: String) -> [JSON] {
        values(payload, key).filter { $0 != .null }
    }

    static func equal(_ a: JSON, _ b: JSON) -> Bool {
        switch (a, b) {
        case (.int(let x), .uint(let y)), (.uint(let y), .int(let x)): return x >= 0 && UInt64(x) == y
        default: return a == b
        }
    }

    /// Whether a point with `id` and `payload` passes.
    package func matches(id: PointID, payload: JSON?) -> Bool {
        switch self {
        case let .all(must, should, mustNot, minShould):
            for f in must where !f.matches(id: id, payload: payload) { return false }
            for f in mustNot where f.matches(id: id, payload: payload) { return false }
            if !should.isEmpty && !should.contains(where: { $0.matches(id: id, payload: payload) }) { return false }
            if let (conditions, n) = minShould, conditions.lazy.filter({ $0.matches(id: id, payload: payload) }).count < n { return false }
            return true
        case .match(let key, let value):
            return Filter.values(payload, key).contains { Filter.equal($0, value) }
        case .matchAny(let key, let values):
            return Filter.values(payload, key).contains { v in values.contains { Filter.equal(v, $0) } }
        case .matchExcept(let key, let values):
            let found = Filter.nonNullValues(payload, key)
            return !found.isEmpty && found.allSatisfy { v in !values.contains { Filter.equal(v, $0) } }
        case .matchText(let key, let text), .matchPhrase(let key, let text):
            return Filter.values(payload, key).contains { $0.stringValue?.contains(text) == true }
        case .range(let key, let bounds, let datetime):
            return Filter.values(payload, key).contains { v in
                guard let d = datetime ? v.stringValue.flatMap(Datetime.parse) : v.doubleValue else { return false }
                return bounds.contains(d)
            }
        case .valuesCount(let key, let bounds):
            return bounds.contains(Double(Filter.nonNullValues(payload, key).count))
        case .geo(let key, let shape):
            return Filter.values(payload, key).contains { GeoPoint(json: $0).map(shape.contains) ?? false }
        case .nested(let key, let filter):
            return Filter.values(payload, key).contains { element in
                guard case .object = element else { return false }
                return filter.matches(id: id, payload: element)
            }
        case .hasID(let ids):
            return ids.contains(id)
        case .isEmpty(let key):
            return Filter.nonNullValues(payload, key).isEmpty
        case .isNull(let key):
            return Filter.values(payload, key).contains(.null)
        }
    }
}

extension Filter {
    /// Qdrant's JSON for this filter (what `init(json:)` reads back), for sending to a peer.
    package var json: JSON {
        func bounds(_ b: RangeBounds, datetime: Bool = false) -> JSON {
            func v(_ d: Double) -> JSON { datetime ? .string(Datetime.format(d)) : .double(d) }
            return .object([("gt", b.gt), ("gte", b.gte), ("lt", b.lt), ("lte", b.lte)].compactMap { k, d in d.map { (k, v($0)) } })
        }
        func keyed(_ key: String, _ name: String, _ value: JSON) -> JSON { .object([("key", .string(key)), (name, value)]) }
        switch self {
        case let .all(must, should, mustNot, minShould):
            var m: [(String, JSON)] = [("must", .array(must.map(\.json))), ("should", .array(should.map(\.json))),
                                       ("must_not", .array(mustNot.map(\.json)))]
            if let (conditions, n) = minShould {
                m.append(("min_should", .object([("conditions", .array(conditions.map(\.json))), ("min_count", .int(Int64(n)))])))
            }
            return .object(m)
        case let .match(key, value): return keyed(key, "match", .object([("value", value)]))
        case let .matchAny(key, values): return keyed(key, "match", .object([("any", .array(values))]))
        case let .matchExcept(key, values): return keyed(key, "match", .object([("except", .array(values))]))
        case let .matchText(key, text): return keyed(key, "match", .object([("text", .string(text))]))
        case let .matchPhrase(key, text): return keyed(key, "match", .object([("phrase", .string(text))]))
        case let .range(key, b, datetime): return keyed(key, "range", bounds(b, datetime: datetime))
        case let .valuesCount(key, b): return keyed(key, "values_count", bounds(b))
        case let .geo(key, .radius(center, meters)):
            return keyed(key, "geo_radius", .object([("center", center.json), ("radius", .double(meters))]))
        case let .geo(key, .box(tl, br)):
            return keyed(key, "geo_bounding_box", .object([("top_left", tl.json), ("bottom_right", br.json)]))
        case let .geo(key, .polygon(exterior, interiors)):
            func ring(_ r: [GeoPoint]) -> JSON { .object([("points", .array(r.map(\.json)))]) }
            return keyed(key, "geo_polygon", .object([("exterior", ring(exterior)), ("interiors", .array(interiors.map(ring)))]))
        case let .nested(key, filter): return .object([("nested", .object([("key", .string(key)), ("filter", filter.json)]))])
        case let .hasID(ids): return .object([("has_id", .array(ids.sorted().map(\.json)))])
        case let .isEmpty(key): return .object([("is_empty", .object([("key", .string(key))]))])
        case let .isNull(key): return .object([("is_null", .object([("key", .string(key))]))])
        }
    }
}

/// RFC 3339 datetimes as seconds since 1970 (what datetime indexes and ranges compare).
package enum Datetime {
    /// Parses "2024-01-31", "2024-01-31T12:00:00", "2024-01-31 12:00:00.5+01:00", "...Z".
    /// A datetime without an offset is UTC, as in Qdrant.
    package static func parse(_ s: String) -> Double? {
        let b = Array(s.utf8)
        var i = 0
        func digits(_ n: Int) -> Int? {
            guard i + n <= b.count else { return nil }
            var v = 0
            for k in 0..<n {
                let c = b[i + k]
                guard c >= 48 && c <= 57 else { return nil }
                v = v * 10 + Int(c - 48)
            }
            i += n
            return v
        }
        func expect(_ c: UInt8) -> Bool {
            guard i < b.count, b[i] == c else { return false }
            i += 1
            return true
        }
        guard let year = digits(4), expect(45), let month = digits(2), expect(45), let day = digits(2),
              (1...12).contains(month), (1...31).contains(day) else { return nil }
        var seconds = 0.0
        var offset = 0
        if i < b.count {
            guard b[i] == 84 || b[i] == 116 || b[i] == 32 else { return nil }  // T, t or space
            i += 1
            guard let h = digits(2), expect(58), let m = digits(2), h < 24, m < 60 else { return nil }
            seconds = Double(h * 3600 + m * 60)
            if expect(58) {
                guard let sec = digits(2), sec < 61 else { return nil }
                seconds += Double(sec)
                if expect(46) {
                    var scale = 0.1, any = false
                    while i < b.count, b[i] >= 48 && b[i] <= 57 {
                        seconds += Double(b[i] - 48) * scale
                        scale /= 10
                        i += 1
                        any = true
                    }
                    if !any { return nil }
                }
            }
            if i < b.count {
                if b[i] == 90 || b[i] == 122 {  // Z
                    i += 1
                } else if b[i] == 43 || b[i] == 45 {  // + or -
                    let sign = b[i] == 45 ? -1 : 1
                    i += 1
                    guard let oh = digits(2) else { return nil }
                    _ = expect(58)
                    guard let om = digits(2), oh < 24, om < 60 else { return nil }
                    offset = sign * (oh * 3600 + om * 60)
                } else {
                    return nil
                }
            }
        }
        guard i == b.count else { return nil }
        // Days since 1970-01-01 (civil calendar, proleptic Gregorian).
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146_097 + doe - 719_468
        return Double(days * 86_400) + seconds - Double(offset)
    }

    /// Seconds since 1970 as RFC 3339 UTC ("2024-01-31T12:00:00Z", fractions when present).
    package static func format(_ t: Double) -> String {
        let whole = t.rounded(.down)
        var days = Int(whole) / 86_400
        var secs = Int(whole) % 86_400
        if secs < 0 { secs += 86_400; days -= 1 }
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yoe + era * 400 + (month <= 2 ? 1 : 0)
        func two(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
        var out = "\(year)-\(two(month))-\(two(day))T\(two(secs / 3600)):\(two(secs / 60 % 60)):\(two(secs % 60))"
        let frac = t - whole
        if frac > 0 { out += String(String(format: "%.6f", frac).dropFirst()) }
        return out + "Z"
    }
}
