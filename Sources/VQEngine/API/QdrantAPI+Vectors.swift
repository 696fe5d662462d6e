// Vectors in Qdrant's JSON: a point's vectors (one unnamed array, or a map of
// named ones), which of them a response carries (`with_vector`), and which one a
// search uses (`using`, or the legacy `{"name", "vector"}` form).

/// `with_vector`: none, all, or some of a collection's vectors.
struct VectorSelector {
    let layout: VectorLayout
    /// VectorLayout numbers of the vectors to return; empty: none.
    let stores: [Int]

    var wanted: Bool { !stores.isEmpty }

    static func none(_ layout: VectorLayout) -> VectorSelector { VectorSelector(layout: layout, stores: []) }
    static func all(_ layout: VectorLayout) -> VectorSelector { VectorSelector(layout: layout, stores: Array(layout.specs.indices)) }

    /// A point's vectors as Qdrant shows them: an array for the unnamed vector, else
    /// `{name: [...]}` of the selected vectors it has.
    func json(_ vectors: [[Float]?]) -> JSON {
        func array(_ v: [Float]) -> JSON { .array(v.map { .double(Double($0)) }) }
        if !layout.named { return vectors.first.flatMap { $0.map(array) } ?? .array([]) }
        return .object(stores.compactMap { k in k < vectors.count ? vectors[k].map { (layout[k].name, array($0)) } : nil })
    }
}

extension QdrantAPI {
    /// `with_vector` (or `with_vectors`): true, false, or a list of vector names.
    func withVector(_ body: JSON, _ layout: VectorLayout) throws -> VectorSelector {
        guard let v = body["with_vector"] ?? body["with_vectors"], v != .null else { return .none(layout) }
        switch v {
        case .bool(let b): return b ? .all(layout) : .none(layout)
        case .array(let names):
            return VectorSelector(layout: layout, stores: try names.enumerated().map { i, n in
                guard let name = n.stringValue else { throw VQError.invalid("with_vector[\(i)] is \(n.typeName); expected a vector name") }
                return try layout.index(name)
            })
        default: throw VQError.invalid("\"with_vector\" is \(v.typeName); expected true, false or a list of vector names")
        }
    }

    /// A point's vectors from its `vector` member: an array (the unnamed vector) or `{name: array}`.
    /// Each is checked and normalised (`VectorCollection.prepare`).
    /// - Parameter partial: an update (vectors it lacks are kept), so only the unnamed one is not required.
    /// - Returns: one entry per vector of the collection, nil where the point lacks it.
    func pointVectors(_ json: JSON?, _ collection: VectorCollection, _ what: String, partial: Bool = false) throws -> [[Float]?] {
        let layout = collection.config.vectors
        var out = [[Float]?](repeating: nil, count: layout.count)
        guard let json, json != .null else { throw VQError.invalid("\(what) is missing; expected an array of numbers or {name: array}") }
        switch json {
        case .array:
            let k = try layout.index("")
            var v = try denseVector(json, what)
            try collection.prepare(&v, k)
            out[k] = v
        case .object(let members):
            for (name, value) in members {
                let k: Int
                do { k = try layout.index(name) } catch let e as VQError { throw VQError.invalid("\(what): \(e.message)") }
                guard out[k] == nil else { throw VQError.invalid("\(what) names vector \"\(name)\" twice") }
                var v = try denseVector(value, "\(what).\(name.isEmpty ? "\"\"" : name)")
                try collection.prepare(&v, k)
                out[k] = v
            }
        default:
            throw VQError.invalid("\(what) is \(json.typeName); expected an array of numbers or {name: array}")
        }
        if !layout.named && out[0] == nil { throw VQError.invalid("\(what) lacks the collection's vector") }
        if partial && out.allSatisfy({ $0 == nil }) { throw VQError.invalid("\(what) names no vector to update") }
        return out
    }

    /// A dense vector: an array of numbers. Sparse (`{"indices", "values"}`) and multi-vectors
    /// (arrays of arrays) are refused by name.
    func denseVector(_ json: JSON?, _ what: String) throws -> [Float] {
        guard let json, json != .null else { throw VQError.invalid("\(what) is missing; expected an array of numbers") }
        if case .object = json, json["indices"] != nil || json["values"] != nil {
            throw VQError.invalid("\(what) is a sparse vector; vq stores dense vectors only (sparse_vectors is not supported yet)")
        }
        guard let items = json.arrayValue else { throw VQError.invalid("\(what) is \(json.typeName); expected an array of numbers") }
        if case .array? = items.first { throw VQError.invalid("\(what) is a multi-vector; vq stores one vector per name (multivector_config is not supported yet)") }
        return try items.enumerated().map { i, e in
            guard let d = e.doubleValue else { throw VQError.invalid("\(what) element \(i) is \(e.typeName); expected a number") }
            return Float(d)
        }
    }

    /// The vector a request searches: `using` ("" or absent: the unnamed one).
    func using(_ body: JSON, _ collection: VectorCollection, key: String = "using") throws -> Int {
        guard let u = body[key], u != .null else { return try collection.config.vectors.index("") }
        guard let name = u.stringValue else { throw VQError.invalid("\(key) is \(u.typeName); expected a vector name") }
        return try collection.config.vectors.index(name)
    }

    /// The legacy search body's `vector`: an array (the unnamed vector) or `{"name", "vector"}`.
    func namedQuery(_ json: JSON?, _ collection: VectorCollection) throws -> (vector: [Float], using: Int) {
        if let json, case .object = json, json["name"] != nil {
            try rejectUnknown(json, ["name", "vector"], "vector")
            guard let name = json["name"]?.stringValue else { throw VQError.invalid("vector.name is \(json["name"]!.typeName); expected a vector name") }
            return (try denseVector(json["vector"], "vector.vector"), try collection.config.vectors.index(name))
        }
        return (try denseVector(json, "vector"), try collection.config.vectors.index(""))
    }
}
