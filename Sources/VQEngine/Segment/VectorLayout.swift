// The vectors a collection's points carry: one unnamed dense vector (Qdrant's
// `"vectors": {"size": 384, "distance": "Cosine"}`), or a map of named ones
// (`"vectors": {"image": {...}, "text": {...}}`). Their order is fixed at creation
// (sorted by name): vector k of a point lives in store k of every segment.
//
// With named vectors a point may omit any of them (a segment keeps an absence
// bitmap per store); the unnamed vector is always present. Sparse vectors
// (`sparse_vectors`) and multi-vectors (`multivector_config: {"comparator": "max_sim"}`)
// are lists of their own, each sorted by name.

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

/// One sparse vector of a collection (`sparse_vectors`): indices and values, scored by dot product.
package struct SparseSpec: Sendable, Equatable {
    package var name: String
    /// `modifier: idf`: query weights are scaled by each index's inverse document frequency.
    package var idf: Bool

    package init(name: String, idf: Bool = false) {
        self.name = name
        self.idf = idf
    }
}

/// A vector of a collection, as a request names it.
package enum VectorRef: Sendable, Equatable {
    case dense(Int)
    case sparse(Int)
    /// A multi-vector (several vectors of one size per point, scored by MaxSim).
    case multi(Int)
}

/// The ordered vectors of a collection.
package struct VectorLayout: Sendable, Equatable {
    package private(set) var specs: [VectorSpec]
    /// Sparse vectors, sorted by name (store k of every segment's sparse stores).
    package private(set) var sparse: [SparseSpec] = []
    /// Multi-vectors (their specs' `dim` and `distance` apply to each vector of a point).
    package private(set) var multi: [VectorSpec] = []
    /// Created as a map of named vectors (points may omit any), not one unnamed vector.
    package let named: Bool

    /// One unnamed vector.
    package init(dim: Int, distance: Distance) {
        specs = [VectorSpec(dim: dim, distance: distance)]
        named = false
    }

    /// Named vectors (sorted by name; names must differ), dense and sparse.
    package init(named specs: [VectorSpec], sparse: [SparseSpec] = [], multi: [VectorSpec] = []) {
        self.specs = specs.sorted { $0.name < $1.name }
        self.sparse = sparse.sorted { $0.name < $1.name }
        self.multi = multi.sorted { $0.name < $1.name }
        named = true
    }

    /// The vector called `name` ("" or nil: the unnamed one), dense or sparse.
    /// - Throws: `.invalidInput` naming the vector and the ones that exist.
    package func ref(_ name: String?) throws -> VectorRef {
        if let k = sparse.firstIndex(where: { $0.name == (name ?? "") }) { return .sparse(k) }
        if let k = multi.firstIndex(where: { $0.name == (name ?? "") }) { return .multi(k) }
        return .dense(try index(name))
    }

    package var count: Int { specs.count }
    package subscript(_ k: Int) -> VectorSpec { specs[k] }
    package var dims: [Int] { specs.map(\.dim) }
    /// Floats of one point's vectors, all stores together; a sparse vector counts as 64 (for
    /// segment sizes in kilobytes of vector data).
    package var floatsPerPoint: Int { max(1, specs.reduce(0) { $0 + $1.dim } + 64 * sparse.count + multi.reduce(0) { $0 + 16 * $1.dim }) }

    /// The store of the dense vector called `name` ("" or nil: the unnamed one).
    /// - Throws: `.invalidInput` naming the vector and the ones that exist.
    package func index(_ name: String?) throws -> Int {
        let name = name ?? ""
        if let k = specs.firstIndex(where: { $0.name == name }) { return k }
        if sparse.contains(where: { $0.name == name }) {
            throw VQError.invalid("vector \"\(name)\" is sparse; expected a dense vector here")
        }
        if multi.contains(where: { $0.name == name }) {
            throw VQError.invalid("vector \"\(name)\" is a multi-vector; expected a single dense vector here")
        }
        throw VQError.invalid(name.isEmpty
            ? "this collection has no unnamed vector; name one of \(namesText) (\"using\", or \"vector\": {\"name\": ...})"
            : "vector \"\(name)\" does not exist; this collection has \(namesText)")
    }

    /// The vector names for messages: "the unnamed vector" or "\"a\", \"b\"".
    /// The name of vector `ref`.
    package func namesOf(_ ref: VectorRef) -> String {
        switch ref {
        case .dense(let k): return specs[k].name
        case .sparse(let k): return sparse[k].name
        case .multi(let k): return multi[k].name
        }
    }

    package var namesText: String {
        named ? (specs.map(\.name) + sparse.map(\.name) + multi.map(\.name)).sorted().map { "\"\($0)\"" }.joined(separator: ", ")
              : "only the unnamed vector"
    }

    /// Whether `other` stores the same vectors (names, sizes, distances; graph settings may differ).
    package func sameStorage(_ other: VectorLayout) -> Bool {
        named == other.named && specs.count == other.specs.count && sparse == other.sparse && multi.count == other.multi.count
            && zip(multi, other.multi).allSatisfy { $0.name == $1.name && $0.dim == $1.dim && $0.distance == $1.distance }
            && zip(specs, other.specs).allSatisfy { $0.name == $1.name && $0.dim == $1.dim && $0.distance == $1.distance }
    }

    /// Checks sizes and names.
    /// - Throws: `.invalidInput` naming the vector.
    package func validate() throws {
        guard !specs.isEmpty || !sparse.isEmpty || !multi.isEmpty else { throw VQError.invalid("vectors is empty; expected at least one vector") }
        guard specs.count <= 64, sparse.count <= 64 else {
            throw VQError.invalid("the collection has \(specs.count) dense and \(sparse.count) sparse vectors; expected at most 64 of each")
        }
        var seen = Set<String>()
        guard multi.count <= 64 else { throw VQError.invalid("the collection has \(multi.count) multi-vectors; expected at most 64") }
        for m in multi {
            guard (1...65_536).contains(m.dim) else { throw VQError.invalid("vector \"\(m.name)\" size is \(m.dim); expected 1 to 65536") }
            guard m.distance == .cosine || m.distance == .dot else {
                throw VQError.invalid("vector \"\(m.name)\": max_sim multi-vectors take Cosine or Dot in vq, not \(m.distance.rawValue)")
            }
            guard !m.name.isEmpty, seen.insert(m.name).inserted else { throw VQError.invalid("vector \"\(m.name)\" is named twice or empty") }
        }
        for s in sparse {
            guard !s.name.isEmpty, s.name.utf8.count <= 255 else {
                throw VQError.invalid("a sparse vector name is \(s.name.isEmpty ? "empty" : "longer than 255 bytes"); expected 1 to 255 bytes")
            }
            guard seen.insert(s.name).inserted else { throw VQError.invalid("vector \"\(s.name)\" is named twice") }
        }
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
        func multi(_ s: VectorSpec) -> JSON {
            guard case .object(let m) = one(s) else { return one(s) }
            return .object(m + [("multivector_config", .object([("comparator", .string("max_sim"))]))])
        }
        return named ? .object((specs.map { ($0.name, one($0)) } + self.multi.map { ($0.name, multi($0)) }).sorted { $0.0 < $1.0 }) : one(specs[0])
    }

    /// Qdrant's `params.sparse_vectors`: `{name: {"modifier": "idf"}}`; nil without sparse vectors.
    package var sparseJSON: JSON? {
        sparse.isEmpty ? nil : .object(sparse.map { ($0.name, .object($0.idf ? [("modifier", .string("idf"))] : [])) })
    }

    /// Reads `json` (stored configs and the API alike), with `sparse` (`sparse_vectors`) if given.
    /// - Throws: `.invalidInput` naming what is wrong.
    package init(json: JSON, sparse sparseJSON: JSON? = nil) throws {
        var sparse: [SparseSpec] = []
        if let sparseJSON, sparseJSON != .null {
            guard case .object(let members) = sparseJSON else { throw VQError.invalid("sparse_vectors is \(sparseJSON.typeName); expected {name: {...}}") }
            for (name, params) in members {
                var spec = SparseSpec(name: name)
                switch params["modifier"] {
                case nil, .null?, .string("none")?: break
                case .string("idf")?: spec.idf = true
                case let other?: throw VQError.unknownValue("sparse_vectors.\(name).modifier is \(other.compactText); expected \"none\" or \"idf\"")
                }
                sparse.append(spec)
            }
        }
        guard case .object(let members) = json else {
            throw VQError.invalid("vectors is \(json.compactText); expected {\"size\": N, \"distance\": \"Cosine\"} or a map of named vectors")
        }
        // Unnamed params have a numeric size (a vector may be called "size").
        if json["size"]?.intValue != nil || json["distance"]?.stringValue != nil {
            guard sparse.isEmpty else { throw VQError.invalid("sparse_vectors needs named dense vectors (or none): \"vectors\": {name: {...}}") }
            if let m = json["multivector_config"], m != .null {
                throw VQError.invalid("an unnamed multi-vector is not supported: name it, \"vectors\": {\"NAME\": {..., \"multivector_config\": ...}}")
            }
            let s = try VectorLayout.spec(json, name: "", what: "vectors")
            self.init(dim: s.dim, distance: s.distance)
            specs[0] = s
            return
        }
        guard !members.isEmpty || !sparse.isEmpty else { throw VQError.invalid("vectors is empty; expected at least one named vector") }
        var dense: [VectorSpec] = [], multi: [VectorSpec] = []
        for (name, params) in members {
            let spec = try VectorLayout.spec(params, name: name, what: "vectors.\(name)")
            guard let m = params["multivector_config"], m != .null else {
                dense.append(spec)
                continue
            }
            switch m["comparator"] {
            case .string("max_sim")?: multi.append(spec)
            case let other: throw VQError.unknownValue("vectors.\(name).multivector_config.comparator is \(other?.compactText ?? "missing"); expected \"max_sim\"")
            }
        }
        self.init(named: dense, sparse: sparse, multi: multi)
        try validate()
    }

    private static func spec(_ json: JSON, name: String, what: String) throws -> VectorSpec {
        guard let size = json["size"]?.intValue else {
            throw VQError.invalid("\(what).size is \(json["size"]?.compactText ?? "missing"); expected a number of dimensions")
        }
        guard let d = json["distance"]?.stringValue, let distance = Distance(rawValue: d) else {
            let message = "\(what).distance is \(json["distance"]?.compactText ?? "missing"); expected Cosine, Dot, Euclid or Manhattan"
            throw json["distance"] == nil ? VQError.invalid(message) : VQError.unknownValue(message)
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
