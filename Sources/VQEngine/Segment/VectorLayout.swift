// The vectors a collection's points carry: one unnamed dense vector (Qdrant's
// `"vectors": {"size": 384, "distance": "Cosine"}`), or a map of named ones
// (`"vectors": {"image": {...}, "text": {...}}`). Their order is fixed at creation
// (sorted by name): vector k of a point lives in store k of every segment.
//
// With named vectors a point may omit any of them (a segment keeps an absence
// bitmap per store); the unnamed vector is always present.

/// One dense vector of a collection.
package struct VectorSpec: Sendable, Equatable {
    /// "" for the unnamed vector.
    package var name: String
    package var dim: Int
    package var distance: Distance
    /// This vector's `hnsw_config.m` and `ef_construct`, where they differ from the collection's.
    package var m: Int?
    package var efConstruct: Int?

    package init(name: String = "", dim: Int, distance: Distance, m: Int? = nil, efConstruct: Int? = nil) {
        self.name = name
        self.dim = dim
        self.distance = distance
        self.m = m
        self.efConstruct = efConstruct
    }

    /// The vector's graph parameters: its own where set, else `collection`'s.
    package func hnsw(_ collection: HNSWParams) -> HNSWParams {
        var p = collection
        if let m { p.m = m }
        if let efConstruct { p.efConstruct = efConstruct }
        return p
    }
}

/// The ordered vectors of a collection.
package struct VectorLayout: Sendable, Equatable {
    package private(set) var specs: [VectorSpec]
    /// Created as a map of named vectors (points may omit any), not one unnamed vector.
    package let named: Bool

    /// One unnamed vector.
    package init(dim: Int, distance: Distance) {
        specs = [VectorSpec(dim: dim, distance: distance)]
        named = false
    }

    /// Named vectors (sorted by name; names must differ).
    package init(named specs: [VectorSpec]) {
        self.specs = specs.sorted { $0.name < $1.name }
        named = true
    }

    package var count: Int { specs.count }
    package subscript(_ k: Int) -> VectorSpec { specs[k] }
    package var dims: [Int] { specs.map(\.dim) }
    /// Floats of one point's vectors, all stores together.
    package var floatsPerPoint: Int { specs.reduce(0) { $0 + $1.dim } }

    /// The store of the vector called `name` ("" or nil: the unnamed one).
    /// - Throws: `.invalidInput` naming the vector and the ones that exist.
    package func index(_ name: String?) throws -> Int {
        let name = name ?? ""
        if let k = specs.firstIndex(where: { $0.name == name }) { return k }
        throw VQError.invalid(name.isEmpty
            ? "this collection has no unnamed vector; name one of \(namesText) (\"using\", or \"vector\": {\"name\": ...})"
            : "vector \"\(name)\" does not exist; this collection has \(namesText)")
    }

    /// The vector names for messages: "the unnamed vector" or "\"a\", \"b\"".
    package var namesText: String {
        named ? specs.map { "\"\($0.name)\"" }.joined(separator: ", ") : "only the unnamed vector"
    }

    /// Whether `other` stores the same vectors (names, sizes, distances; graph settings may differ).
    package func sameStorage(_ other: VectorLayout) -> Bool {
        named == other.named && specs.count == other.specs.count
            && zip(specs, other.specs).allSatisfy { $0.name == $1.name && $0.dim == $1.dim && $0.distance == $1.distance }
    }

    /// Sets the graph overrides of vector `k` (config updates).
    package mutating func setHNSW(_ k: Int, m: Int?, efConstruct: Int?) {
        if let m { specs[k].m = m }
        if let efConstruct { specs[k].efConstruct = efConstruct }
    }

    /// Checks sizes and names.
    /// - Throws: `.invalidInput` naming the vector.
    package func validate() throws {
        guard !specs.isEmpty else { throw VQError.invalid("vectors is empty; expected at least one vector") }
        guard specs.count <= 64 else { throw VQError.invalid("vectors has \(specs.count) named vectors; expected at most 64") }
        var seen = Set<String>()
        for s in specs {
            let what = named ? "vector \"\(s.name)\"" : "vector"
            if named {
                guard !s.name.isEmpty, s.name.utf8.count <= 255 else {
                    throw VQError.invalid("a vector name is \(s.name.isEmpty ? "empty" : "longer than 255 bytes"); expected 1 to 255 bytes")
                }
                guard seen.insert(s.name).inserted else { throw VQError.invalid("vector \"\(s.name)\" is named twice") }
            }
            guard (1...65_536).contains(s.dim) else { throw VQError.invalid("\(what) size is \(s.dim); expected 1 to 65536") }
            if let m = s.m, m != 0 && !(2...512).contains(m) { throw VQError.invalid("\(what) hnsw_config.m is \(m); expected 0 (no index) or 2 to 512") }
            if let ef = s.efConstruct, !(4...10_000).contains(ef) {
                throw VQError.invalid("\(what) hnsw_config.ef_construct is \(ef); expected 4 to 10000")
            }
        }
    }

    /// Qdrant's `params.vectors`: `{"size", "distance"}` or `{name: {"size", "distance"}}`.
    package var json: JSON {
        func one(_ s: VectorSpec) -> JSON {
            var m: [(String, JSON)] = [("size", .int(Int64(s.dim))), ("distance", .string(s.distance.rawValue))]
            if s.m != nil || s.efConstruct != nil {
                var h: [(String, JSON)] = []
                if let v = s.m { h.append(("m", .int(Int64(v)))) }
                if let v = s.efConstruct { h.append(("ef_construct", .int(Int64(v)))) }
                m.append(("hnsw_config", .object(h)))
            }
            return .object(m)
        }
        return named ? .object(specs.map { ($0.name, one($0)) }) : one(specs[0])
    }

    /// Reads `json` (stored configs and the API alike).
    /// - Throws: `.invalidInput` naming what is wrong.
    package init(json: JSON) throws {
        guard case .object(let members) = json else {
            throw VQError.invalid("vectors is \(json.compactText); expected {\"size\": N, \"distance\": \"Cosine\"} or a map of named vectors")
        }
        if json["size"] != nil || json["distance"] != nil {
            let s = try VectorLayout.spec(json, name: "", what: "vectors")
            self.init(dim: s.dim, distance: s.distance)
            specs[0] = s
            return
        }
        guard !members.isEmpty else { throw VQError.invalid("vectors is empty; expected at least one named vector") }
        self.init(named: try members.map { try VectorLayout.spec($0.1, name: $0.0, what: "vectors.\($0.0)") })
        try validate()
    }

    private static func spec(_ json: JSON, name: String, what: String) throws -> VectorSpec {
        guard let size = json["size"]?.intValue else {
            throw VQError.invalid("\(what).size is \(json["size"]?.compactText ?? "missing"); expected a number of dimensions")
        }
        guard let d = json["distance"]?.stringValue, let distance = Distance(rawValue: d) else {
            throw VQError.invalid("\(what).distance is \(json["distance"]?.compactText ?? "missing"); expected Cosine, Dot, Euclid or Manhattan")
        }
        var s = VectorSpec(name: name, dim: Int(size), distance: distance)
        if let h = json["hnsw_config"], h != .null {
            if let m = h["m"], m != .null {
                guard let v = m.intValue else { throw VQError.invalid("\(what).hnsw_config.m is \(m.compactText); expected an integer") }
                s.m = Int(v)
            }
            if let ef = h["ef_construct"], ef != .null {
                guard let v = ef.intValue else { throw VQError.invalid("\(what).hnsw_config.ef_construct is \(ef.compactText); expected an integer") }
                s.efConstruct = Int(v)
            }
        }
        return s
    }
}
