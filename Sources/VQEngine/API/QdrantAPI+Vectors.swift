// Vectors in Qdrant's JSON: a point's vectors (one unnamed array, or a map of
// named ones), which of them a response carries (`with_vector`), and which one a
// search uses (`using`, or the legacy `{"name", "vector"}` form).

/// `with_vector`: none, all, or some of a collection's vectors.
struct VectorSelector {
    let layout: VectorLayout
    /// The vectors to return; empty: none.
    let refs: [VectorRef]

    var wanted: Bool { !refs.isEmpty }

    static func none(_ layout: VectorLayout) -> VectorSelector { VectorSelector(layout: layout, refs: []) }
    static func all(_ layout: VectorLayout) -> VectorSelector {
        VectorSelector(layout: layout, refs: layout.specs.indices.map { .dense($0) } + layout.sparse.indices.map { .sparse($0) }
                                                + layout.multi.indices.map { .multi($0) })
    }

    /// A point's vectors as Qdrant shows them: an array for the unnamed vector, else
    /// `{name: [...] or {"indices", "values"}}` of the selected vectors it has.
    func json(_ record: PointRecord) -> JSON {
        func array(_ v: [Float]) -> JSON { .array(v.map { .double(Double($0)) }) }
        if !layout.named { return record.vectors.first.flatMap { $0.map(array) } ?? .array([]) }
        return .object(refs.compactMap { ref in
            switch ref {
            case .dense(let k): return k < record.vectors.count ? record.vectors[k].map { (layout[k].name, array($0)) } : nil
            case .sparse(let k): return k < record.sparse.count ? record.sparse[k].map { (layout.sparse[k].name, $0.json) } : nil
            case .multi(let k):
                let dim = layout.multi[k].dim
                return k < record.multi.count ? record.multi[k].map { v in
                    (layout.multi[k].name, .array(stride(from: 0, to: v.count, by: dim).map { array(Array(v[$0..<($0 + dim)])) }))
                } : nil
            }
        })
    }
}

/// What a search looks for: a dense vector, a sparse one, or a multi-vector (flat).
enum QueryVector {
    case dense([Float])
    case sparse(SparseVector)
    case multi([Float])
}

extension QdrantAPI {
    /// `with_vector` (or `with_vectors`): true, false, or a list of vector names.
    func withVector(_ body: JSON, _ layout: VectorLayout) throws -> VectorSelector {
        guard let v = body["with_vector"] ?? body["with_vectors"], v != .null else { return .none(layout) }
        switch v {
        case .bool(let b): return b ? .all(layout) : .none(layout)
        case .array(let names):
            return VectorSelector(layout: layout, refs: try names.enumerated().map { i, n in
                guard let name = n.stringValue else { throw VQError.invalid("with_vector[\(i)] is \(n.typeName); expected a vector name") }
                return try layout.ref(name)
            })
        default: throw VQError.invalid("\"with_vector\" is \(v.typeName); expected true, false or a list of vector names")
        }
    }

    /// A point's vectors from its `vector` member: an array (the unnamed vector) or `{name: array
    /// or {"indices", "values"}}`. Each is checked and dense ones normalised (`VectorCollection.prepare`).
    /// - Parameter partial: an update (vectors it lacks are kept), so only the unnamed one is not required.
    /// - Returns: one entry per vector of the collection, nil where the point lacks it.
    func pointVectors(_ json: JSON?, _ collection: VectorCollection, _ what: String, partial: Bool = false) throws
        -> (dense: [[Float]?], sparse: [SparseVector?], multi: [[Float]?]) {
        let layout = collection.config.vectors
        var out = [[Float]?](repeating: nil, count: layout.count)
        var sparse = [SparseVector?](repeating: nil, count: layout.sparse.count)
        var multi = [[Float]?](repeating: nil, count: layout.multi.count)
        guard let json, json != .null else { throw VQError.invalid("\(what) is missing; expected an array of numbers or {name: array}") }
        switch json {
        case .array:
            let k = try layout.index("")
            var v = try denseVector(json, what)
            try collection.prepare(&v, k)
            out[k] = v
        case .object(let members):
            for (name, value) in members {
                let ref: VectorRef
                do { ref = try layout.ref(name) } catch let e as VQError { throw VQError.invalid("\(what): \(e.message)") }
                if case .multi(let k) = ref {
                    guard multi[k] == nil else { throw VQError.invalid("\(what) names vector \"\(name)\" twice") }
                    var v = try multiVector(value, "\(what).\(name)", dim: layout.multi[k].dim)
                    try collection.prepareMulti(&v, k, normalize: false)  // normalised once, when written
                    multi[k] = v
                    continue
                }
                guard case .dense(let k) = ref else {
                    guard case .sparse(let k) = ref, sparse[k] == nil else { throw VQError.invalid("\(what) names vector \"\(name)\" twice") }
                    if case .array = value { throw VQError.invalid("\(what).\(name) is an array; vector \"\(name)\" is sparse: expected {\"indices\", \"values\"}") }
                    sparse[k] = try SparseVector(json: value, "\(what).\(name)")
                    continue
                }
                guard out[k] == nil else { throw VQError.invalid("\(what) names vector \"\(name)\" twice") }
                var v = try denseVector(value, "\(what).\(name.isEmpty ? "\"\"" : name)")
                try collection.prepare(&v, k)
                out[k] = v
            }
        default:
            throw VQError.invalid("\(what) is \(json.typeName); expected an array of numbers or {name: array}")
        }
        if !layout.named && out[0] == nil { throw VQError.invalid("\(what) lacks the collection's vector") }
        if partial && out.allSatisfy({ $0 == nil }) && sparse.allSatisfy({ $0 == nil }) && multi.allSatisfy({ $0 == nil }) {
            throw VQError.invalid("\(what) names no vector to update")
        }
        return (out, sparse, multi)
    }

    /// A multi-vector: 1 to 4,096 arrays of `dim` numbers, flattened. A single array of `dim`
    /// numbers is taken as a multi-vector of one (in queries).
    func multiVector(_ json: JSON, _ what: String, dim: Int, single: Bool = false) throws -> [Float] {
        if single, let items = json.arrayValue, items.count == dim, items.allSatisfy({ $0.doubleValue != nil }) {
            return items.map { Float($0.doubleValue!) }
        }
        guard let rows = json.arrayValue, !rows.isEmpty, rows.allSatisfy({ $0.arrayValue != nil }) else {
            throw VQError.invalid("\(what) is \(json.typeName); expected a multi-vector: a non-empty array of arrays of \(dim) numbers")
        }
        guard rows.count <= MultiStore.maxVectors else {
            throw VQError.invalid("\(what) has \(rows.count) vectors; expected at most \(MultiStore.maxVectors)")
        }
        var flat: [Float] = []
        flat.reserveCapacity(rows.count * dim)
        for (i, row) in rows.enumerated() {
            let items = row.arrayValue!
            guard items.count == dim else {
                throw VQError.invalid("\(what)[\(i)] has \(items.count) numbers; expected vectors of \(dim) dimensions")
            }
            for (j, e) in items.enumerated() {
                guard let d = e.doubleValue else { throw VQError.invalid("\(what)[\(i)][\(j)] is \(e.typeName); expected a number") }
                flat.append(Float(d))
            }
        }
        return flat
    }

    /// A dense vector: an array of numbers. Sparse (`{"indices", "values"}`) and multi-vectors
    /// (arrays of arrays) are refused by name.
    func denseVector(_ json: JSON?, _ what: String) throws -> [Float] {
        guard let json, json != .null else { throw VQError.invalid("\(what) is missing; expected an array of numbers") }
        if case .object = json, json["indices"] != nil || json["values"] != nil {
            throw VQError.invalid("\(what) is a sparse vector; expected a dense one (an array of numbers) here")
        }
        guard let items = json.arrayValue else { throw VQError.invalid("\(what) is \(json.typeName); expected an array of numbers") }
        if case .array? = items.first {
            throw VQError.invalid("\(what) is a multi-vector (an array of arrays); this vector takes one array of numbers (multi-vectors need multivector_config)")
        }
        return try items.enumerated().map { i, e in
            guard let d = e.doubleValue else { throw VQError.invalid("\(what) element \(i) is \(e.typeName); expected a number") }
            return Float(d)
        }
    }

    /// The dense vector a request searches: `using` ("" or absent: the unnamed one).
    func using(_ body: JSON, _ collection: VectorCollection, key: String = "using") throws -> Int {
        let ref = try usingRef(body, collection, key: key)
        guard case .dense(let k) = ref else {
            let kind: String
            if case .sparse = ref { kind = "sparse" } else { kind = "a multi-vector" }
            throw VQError.invalid("\(key) names vector \"\(collection.config.vectors.namesOf(ref))\", which is \(kind); this search takes a dense one")
        }
        return k
    }

    /// The vector a request searches, dense or sparse: `using` ("" or absent: the unnamed one).
    func usingRef(_ body: JSON, _ collection: VectorCollection, key: String = "using") throws -> VectorRef {
        guard let u = body[key], u != .null else { return try collection.config.vectors.ref("") }
        guard let name = u.stringValue else { throw VQError.invalid("\(key) is \(u.typeName); expected a vector name") }
        return try collection.config.vectors.ref(name)
    }

    /// A query value for vector `ref`: an array for a dense vector, {"indices", "values"} for a sparse one.
    func queryValue(_ json: JSON, _ what: String, _ ref: VectorRef, _ collection: VectorCollection) throws -> QueryVector {
        switch ref {
        case .dense: return .dense(try denseVector(json, what))
        case .multi(let k): return .multi(try multiVector(json, what, dim: collection.config.vectors.multi[k].dim, single: true))
        case .sparse(let k):
            if case .array = json {
                throw VQError.invalid("\(what) is an array; vector \"\(collection.config.vectors.sparse[k].name)\" is sparse: expected {\"indices\", \"values\"}")
            }
            return .sparse(try SparseVector(json: json, what))
        }
    }

    /// The search of `query` on vector `ref`.
    func searchRequest(_ query: QueryVector, _ ref: VectorRef, limit: Int) -> SearchRequest {
        switch (query, ref) {
        case (.dense(let v), .dense(let k)): return SearchRequest(vector: v, limit: limit, using: k)
        case (.sparse(let v), .sparse(let k)):
            var r = SearchRequest(vector: [], limit: limit, using: k)
            r.sparse = v
            return r
        case (.multi(let v), .multi(let k)):
            var r = SearchRequest(vector: [], limit: limit, using: k)
            r.multi = v
            return r
        default: preconditionFailure("a query value matches its vector (queryValue)")
        }
    }

    /// Whether scores by `ref` grow with similarity (sparse: dot products).
    func higherIsBetter(_ collection: VectorCollection, _ ref: VectorRef) -> Bool {
        guard case .dense(let k) = ref else { return true }
        return collection.config.vectors[k].distance.higherIsBetter
    }

    /// The legacy search body's `vector`: an array (the unnamed vector) or `{"name", "vector"}`.
    func namedQuery(_ json: JSON?, _ collection: VectorCollection) throws -> (query: QueryVector, using: VectorRef) {
        if let json, case .object = json, json["name"] != nil {
            try rejectUnknown(json, ["name", "vector"], "vector")
            guard let name = json["name"]?.stringValue else { throw VQError.invalid("vector.name is \(json["name"]!.typeName); expected a vector name") }
            let ref = try collection.config.vectors.ref(name)
            guard let v = json["vector"] else { throw VQError.invalid("vector.vector is missing") }
            return (try queryValue(v, "vector.vector", ref, collection), ref)
        }
        return (.dense(try denseVector(json, "vector")), .dense(try collection.config.vectors.index("")))
    }
}
