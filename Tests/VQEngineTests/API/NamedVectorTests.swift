import Foundation
import Testing
@testable import VQEngine

/// Named vectors: a collection of two, points that lack one, searched, updated, deleted,
/// indexed and reopened, each answer checked against brute force computed here.
@Suite struct NamedVectorTests {
    let t = QdrantAPITests()

    /// Point i: "image" (2-d, Dot) always, "text" (3-d, Cosine) for even i.
    static func image(_ i: Int) -> [Float] { [Float(i % 17) / 17 - 0.5, Float(i % 5) / 5 - 0.4] }
    static func text(_ i: Int) -> [Float] { [Float(i % 7) - 3, Float(i % 11) - 5, Float(i % 13) / 3 + 0.5] }

    static func normalized(_ v: [Float]) -> [Float] {
        let n = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
        return v.map { $0 / n }
    }

    static func dot(_ a: [Float], _ b: [Float]) -> Float { zip(a, b).reduce(0) { $0 + $1.0 * $1.1 } }

    func ids(_ api: QdrantAPI, _ path: String, _ body: String) -> [Int64] {
        let r = t.call(api, "POST", "/collections/c/points/" + path, body).1?["result"]
        return ((r?["points"] ?? r)?.arrayValue ?? []).compactMap { $0["id"]?.intValue }
    }

    /// The brute-force top `k` ids for `query` over the points that have the vector.
    static func truth(_ query: [Float], text: Bool, among: [Int], k: Int) -> [Int64] {
        let q = text ? normalized(query) : query
        let scored = among.compactMap { i -> (Int, Float)? in
            if text { return i % 2 == 0 ? (i, dot(q, normalized(Self.text(i)))) : nil }
            return (i, dot(q, image(i)))
        }
        return scored.sorted { $0.1 > $1.1 || ($0.1 == $1.1 && $0.0 < $1.0) }.prefix(k).map { Int64($0.0) }
    }

    @Test("named vectors: points may lack one; each is searched, returned, updated and deleted on its own, through indexing and a reopen")
    func namedVectors() throws {
        let tmp = TempDir()
        var engine: Engine! = try Engine(path: tmp.path, warn: { _ in })
        var api: QdrantAPI! = QdrantAPI(engine: engine, config: APIConfig())
        let create = #"{"vectors":{"text":{"size":3,"distance":"Cosine","hnsw_config":{"m":0}},"image":{"size":2,"distance":"Dot"}},"#
            + #""hnsw_config":{"full_scan_threshold":0}}"#
        #expect(t.call(api, "PUT", "/collections/c", create).0 == 200)
        let info = t.call(api, "GET", "/collections/c").1?["result"]?["config"]?["params"]?["vectors"]
        #expect(info == JSONParser.parseOrNull(#"{"image":{"size":2,"distance":"Dot"},"text":{"size":3,"distance":"Cosine","hnsw_config":{"m":0}}}"#),
                "\(info?.compactText ?? "")")
        // Points 0..<150 in the points form, 150..<300 in the batch form.
        func vectorJSON(_ i: Int) -> String {
            let image = "\"image\":\(NamedVectorTests.image(i))"
            return i % 2 == 0 ? "{\(image),\"text\":\(NamedVectorTests.text(i))}" : "{\(image)}"
        }
        let points = (0..<150).map { #"{"id":\#($0),"vector":\#(vectorJSON($0)),"payload":{"i":\#($0)}}"# }.joined(separator: ",")
        #expect(t.call(api, "PUT", "/collections/c/points", "{\"points\":[\(points)]}", query: ["wait": "true"]).0 == 200)
        let batchIDs = Array(150..<300)
        let texts = batchIDs.map { $0 % 2 == 0 ? "\(NamedVectorTests.text($0))" : "null" }.joined(separator: ",")
        let batch = #"{"batch":{"ids":\#(batchIDs),"vectors":{"image":\#(batchIDs.map(NamedVectorTests.image)),"text":[\#(texts)]}}}"#
        let (s, e, _) = t.call(api, "PUT", "/collections/c/points", batch, query: ["wait": "true"])
        #expect(s == 200, "\(e?.compactText ?? "")")
        let all = Array(0..<300)

        func checkSearches(_ when: String) {
            for q in [[Float(0.3), -0.2], [-1, 0.5]] {
                let want = NamedVectorTests.truth(q, text: false, among: all, k: 10)
                #expect(ids(api, "query", #"{"query":\#(q),"using":"image","limit":10,"params":{"hnsw_ef":300}}"#) == want, "\(when)")
                #expect(ids(api, "search", #"{"vector":{"name":"image","vector":\#(q)},"limit":10,"params":{"hnsw_ef":300}}"#) == want, "\(when)")
            }
            for q in [[Float(1), 2, 3], [-3, 0, 1]] {
                let got = ids(api, "query", #"{"query":\#(q),"using":"text","limit":10}"#)
                #expect(got == NamedVectorTests.truth(q, text: true, among: all, k: 10), "\(when)")
                #expect(got.allSatisfy { $0 % 2 == 0 }, "points without text are never hits (\(when))")
            }
            // A filter and a vector some points lack: only points with both.
            let filtered = ids(api, "query", #"{"query":[1,2,3],"using":"text","limit":5,"filter":{"must":[{"key":"i","range":{"lt":40}}]}}"#)
            #expect(filtered == NamedVectorTests.truth([1, 2, 3], text: true, among: Array(0..<40), k: 5), "\(when)")
        }
        checkSearches("appendable")
        // Vectors come back by name; a point shows the ones it has.
        let (_, got, _) = t.call(api, "POST", "/collections/c/points", #"{"ids":[1,2],"with_vector":["text"],"with_payload":false}"#)
        let records = got?["result"]?.arrayValue ?? []
        #expect(records.first?["vector"] == .object([]))
        let text2 = records.last?["vector"]?["text"]?.arrayValue?.compactMap { $0.doubleValue.map(Float.init) } ?? []
        #expect(zip(text2, NamedVectorTests.normalized(NamedVectorTests.text(2))).allSatisfy { abs($0 - $1) < 1e-6 }, "stored normalised for cosine")
        #expect(records.last?["vector"]?["image"] == nil, "only the vectors asked for")

        // Index: "image" gets a graph, "text" (m 0) none; answers stay exact.
        _ = try engine.collection("c").optimize()
        #expect(try engine.collection("c").shards[0].status.segments.contains { $0.indexed })
        // Qdrant counts indexed vectors, not points: 300 "image" in a graph, "text" (m 0) in none.
        let info2 = t.call(api, "GET", "/collections/c").1?["result"]
        #expect(info2?["indexed_vectors_count"] == .int(300) && info2?["update_queue"]?["length"] == .int(0), "\(info2?.compactText ?? "")")
        checkSearches("indexed")

        // Update one vector of a point: the other and the payload stay.
        #expect(t.call(api, "PUT", "/collections/c/points/vectors", #"{"points":[{"id":1,"vector":{"text":[1,-1,0]}}]}"#, query: ["wait": "true"]).0 == 200)
        // Delete one: the point stays, without it.
        #expect(t.call(api, "POST", "/collections/c/points/vectors/delete", #"{"points":[2],"vector":["text"]}"#, query: ["wait": "true"]).0 == 200)
        func point(_ id: Int) -> JSON? {
            t.call(api, "GET", "/collections/c/points/\(id)").1?["result"]
        }
        func checkChanged(_ when: String) {
            let text1 = point(1)?["vector"]?["text"]?.arrayValue?.compactMap(\.doubleValue) ?? []
            #expect(text1.count == 3 && abs(text1[0] - 0.5.squareRoot()) < 1e-6 && abs(text1[1] + 0.5.squareRoot()) < 1e-6, "\(when)")
            #expect(point(1)?["vector"]?["image"]?.arrayValue?.count == 2 && point(1)?["payload"]?["i"] == .int(1), "\(when)")
            #expect(point(2)?["vector"]?["text"] == nil && point(2)?["vector"]?["image"]?.arrayValue?.count == 2, "\(when)")
            #expect(point(2)?["payload"]?["i"] == .int(2), "\(when)")
            #expect(ids(api, "query", #"{"query":[1,-1,0],"using":"text","limit":1}"#) == [1], "\(when)")
            let near2 = ids(api, "query", #"{"query":\#(NamedVectorTests.text(2)),"using":"text","limit":300}"#)
            #expect(!near2.contains(2) && near2.contains(1), "\(when)")
        }
        checkChanged("applied")
        // A point id as the query: its stored vector of `using`, the point itself left out (as in
        // Qdrant); one that lacks the vector is a 400.
        let byID = ids(api, "query", #"{"query":4,"using":"text","limit":5}"#)
        #expect(byID == Array(NamedVectorTests.truth(NamedVectorTests.text(4), text: true, among: all.filter { $0 != 4 && $0 != 2 }, k: 5)), "\(byID)")
        #expect(ids(api, "query", #"{"query":{"nearest":4},"using":"text","limit":5}"#) == byID)
        let (lacks, err, _) = t.call(api, "POST", "/collections/c/points/query", #"{"query":2,"using":"text"}"#)
        #expect(lacks == 400 && err?["status"]?["error"]?.stringValue?.contains("no vector \"text\"") == true, "\(err?.compactText ?? "")")
        // Recommend by "text": only points that have it, the example left out.
        let rec = ids(api, "query", #"{"query":{"recommend":{"positive":[4]}},"using":"text","limit":20}"#)
        #expect(rec.count == 20 && rec.allSatisfy { $0 % 2 == 0 || $0 == 1 } && !rec.contains(4))

        // Mistakes name what was wrong.
        for (method, path, body, fragment) in [
            ("PUT", "points", #"{"points":[{"id":1,"vector":[1,2]}]}"#, "no unnamed vector"),
            ("PUT", "points", #"{"points":[{"id":1,"vector":{"audio":[1,2]}}]}"#, "vector \"audio\" does not exist"),
            ("PUT", "points", #"{"points":[{"id":1,"vector":{"text":[1,2]}}]}"#, "vector \"text\" has 2 dimensions"),
            ("PUT", "points", #"{"points":[{"id":1,"vector":{"text":{"indices":[1],"values":[1]}}}]}"#, "sparse"),
            ("POST", "points/query", #"{"query":[1,2],"using":"audio"}"#, "vector \"audio\" does not exist"),
            ("POST", "points/query", #"{"query":[1,2]}"#, "no unnamed vector"),
            ("POST", "points/vectors/delete", #"{"points":[1],"vector":["audio"]}"#, "audio"),
        ] {
            // ?wait is a write's (a search refuses it).
            let (status, err, _) = t.call(api, method, "/collections/c/" + path, body, query: method == "PUT" || path.hasPrefix("points/vectors") ? ["wait": "true"] : [:])
            #expect(status == 400 && err?["status"]?["error"]?.stringValue?.contains(fragment) == true, "\(body): \(err?.compactText ?? "")")
        }
        // Reopened: the vectors, what points lack, and the graphs are all read back.
        try engine.close()
        (engine, api) = (nil, nil)   // the directory lock goes with the last reference
        engine = try Engine(path: tmp.path, warn: { _ in })
        api = QdrantAPI(engine: engine, config: APIConfig())
        checkChanged("reopened")
        #expect(ids(api, "query", #"{"query":[0.3,-0.2],"using":"image","limit":10}"#) == NamedVectorTests.truth([0.3, -0.2], text: false, among: all, k: 10))
        try engine.close()
    }

    @Test("a collection of one unnamed vector takes {\"\": vector} too, and refuses to delete it")
    func unnamedByName() throws {
        let tmp = TempDir()
        let engine = try Engine(path: tmp.path, warn: { _ in })
        let api = QdrantAPI(engine: engine, config: APIConfig())
        #expect(t.call(api, "PUT", "/collections/c", #"{"vectors":{"size":2,"distance":"Dot"}}"#).0 == 200)
        #expect(t.call(api, "PUT", "/collections/c/points", #"{"points":[{"id":1,"vector":{"":[1,0]}},{"id":2,"vector":[0,1]}]}"#, query: ["wait": "true"]).0 == 200)
        #expect(ids(api, "query", #"{"query":[1,0],"using":"","limit":1}"#) == [1])
        #expect(t.call(api, "POST", "/collections/c/points", #"{"ids":[1],"with_vector":true}"#).1?["result"]?.arrayValue?.first?["vector"]
                == JSONParser.parseOrNull("[1,0]"))
        let (status, err, _) = t.call(api, "POST", "/collections/c/points/vectors/delete", #"{"points":[1],"vector":[""]}"#)
        #expect(status == 400 && err?["status"]?["error"]?.stringValue?.contains("delete the point") == true)
        try engine.close()
    }
}

@Suite struct NamedVectorStorageTests {
    @Test("a graph over rows some of which are skipped never returns them and finds the others (node 0 skipped too)")
    func skippedRows() throws {
        var rng = SplitMix64(seed: 14)
        let n = 3000, dim = 16
        let vectors = (0..<n * dim).map { _ in rng.float() }
        var skip = [UInt64](repeating: 0, count: (n + 63) / 64)
        for i in 0..<n where i % 3 == 0 { skip[i >> 6] |= 1 << UInt64(i & 63) }
        let graph = try #require(vectors.withUnsafeBufferPointer { v in
            skip.withUnsafeBufferPointer { s in
                HNSWBuilder.build(vectors: v.baseAddress!, count: n, dim: dim, distance: .euclid, params: HNSWParams(m: 12, efConstruct: 80, threads: 1),
                                  skip: s.baseAddress!)
            }
        })
        var found = 0
        for _ in 0..<50 {
            let q = rng.vector(dim)
            let hits = q.withUnsafeBufferPointer { qp in
                vectors.withUnsafeBufferPointer { v in
                    skip.withUnsafeBufferPointer { s in
                        graph.search(qp.baseAddress!, vectors: v.baseAddress!, dim: dim, distance: DistanceFunction(.euclid), k: 10, ef: 64,
                                     deleted: s.baseAddress!)
                    }
                }
            }
            #expect(hits.allSatisfy { $0.node % 3 != 0 })
            let truth = (0..<n).filter { $0 % 3 != 0 }.map { i -> (Int, Float) in
                (i, (0..<dim).reduce(Float(0)) { $0 + (q[$1] - vectors[i * dim + $1]) * (q[$1] - vectors[i * dim + $1]) })
            }.sorted { $0.1 < $1.1 }.prefix(10).map(\.0)
            found += Set(truth).intersection(hits.map { Int($0.node) }).count
        }
        #expect(Double(found) / 500 >= 0.95, "recall@10 \(Double(found) / 500)")
    }

    @Test("named upserts, vector updates and deletions round-trip through the WAL encoding; validation checks presence and vector numbers")
    func operations() throws {
        var batch = PointBatch(dims: [2, 3])
        [Float(1), 2].withUnsafeBufferPointer { a in
            [Float(3), 4, 5].withUnsafeBufferPointer { b in
                batch.append(id: .number(1), vectors: [a, b], payload: Array(#"{"x":1}"#.utf8))
                batch.append(id: .number(2), vectors: [nil, b], payload: nil)
                batch.append(id: .number(3), vectors: [a, nil], payload: nil)
            }
        }
        #expect(batch.present == [[true, false, true], [true, true, false]])
        for op in [VQEngine.Operation.upsert(batch), .deleteVectors(ids: [.number(7)], vectors: [1])] {
            let bytes = op.encode()
            #expect(bytes.count == op.encodedSize)
            let back = try bytes.withUnsafeBytes { try VQEngine.Operation.decode($0) }
            #expect(back.encode() == bytes)
            try back.validate(dims: [2, 3], optional: true)
        }
        if case .upsert(let b) = try batch.encodeUpsert() {
            #expect(b.vectorsOf(1) == [nil, [3, 4, 5]] && b.vectorsOf(2) == [[1, 2], nil] && b.payloads[0] == Array(#"{"x":1}"#.utf8))
        }
        // With a sparse vector: kinds 10 and 11, each point's present or not.
        var withSparse = PointBatch(dims: [2], sparse: 1)
        let sparseOne = try SparseVector(indices: [9, 2], values: [0.5, 1])
        [Float(1), 2].withUnsafeBufferPointer { a in
            withSparse.append(id: .number(1), vectors: [a], sparse: [sparseOne], payload: nil)
            withSparse.append(id: .number(2), vectors: [a], sparse: [nil], payload: nil)
        }
        for op in [VQEngine.Operation.upsert(withSparse), .updateVectors(withSparse)] {
            let bytes = op.encode()
            #expect(bytes.count == op.encodedSize)
            let back = try bytes.withUnsafeBytes { try VQEngine.Operation.decode($0) }
            #expect(back.encode() == bytes)
            try back.validate(dims: [2], sparse: 1, optional: true)
            #expect(throws: VQError.self) { try back.validate(dims: [2], sparse: 0, optional: true) }
            if case .upsert(let b) = back { #expect(b.sparse[0][0]?.indices == [2, 9] && b.sparse[0][0]?.values == [1, 0.5] && b.sparse[0][1] == nil) }
        }
        // With a multi-vector: kinds 12 and 13.
        var withMulti = PointBatch(dims: [], sparse: 0, multiDims: [2])
        withMulti.append(id: .number(1), vectors: [], multi: [[1, 2, 3, 4]], payload: nil)
        withMulti.append(id: .number(2), vectors: [], multi: [nil], payload: nil)
        for op in [VQEngine.Operation.upsert(withMulti), .updateVectors(withMulti)] {
            let bytes = op.encode()
            #expect(bytes.count == op.encodedSize)
            let back = try bytes.withUnsafeBytes { try VQEngine.Operation.decode($0) }
            #expect(back.encode() == bytes)
            try back.validate(dims: [], multiDims: [2], optional: true)
            #expect(throws: VQError.self) { try back.validate(dims: [], multiDims: [3], optional: true) }
        }
        #expect(throws: VQError.self) { try VQEngine.Operation.upsert(batch).validate(dims: [2, 3], optional: false) }
        #expect(throws: VQError.self) { try VQEngine.Operation.upsert(batch).validate(dims: [2, 4], optional: true) }
        #expect(throws: VQError.self) { try VQEngine.Operation.deleteVectors(ids: [.number(1)], vectors: [2]).validate(dims: [2, 3], optional: true) }
        #expect(throws: VQError.self) { try VQEngine.Operation.deleteVectors(ids: [.number(1)], vectors: [0]).validate(dims: [2], optional: false) }
    }
}

extension PointBatch {
    /// This batch as an upsert, through its WAL encoding.
    func encodeUpsert() throws -> VQEngine.Operation {
        try VQEngine.Operation.upsert(self).encode().withUnsafeBytes { try VQEngine.Operation.decode($0) }
    }
}

/// Sparse vectors: stored, searched exactly (appendable scan and sealed postings), IDF-weighted,
/// fused with a dense search, updated, deleted and reopened; every answer checked by brute force here.
@Suite struct SparseVectorTests {
    let t = QdrantAPITests()

    /// Point i's "text" (odd i lack it): indices from a small vocabulary, values from i.
    static func text(_ i: Int) -> (indices: [UInt32], values: [Float])? {
        guard i % 2 == 0 else { return nil }
        let n = 1 + i % 5
        let indices = (0..<n).map { UInt32((i * 7 + $0 * 13) % 40) }
        return (indices, (0..<n).map { Float((i * 31 + $0 * 17) % 97 + 1) / 50 })
    }

    static func json(_ v: (indices: [UInt32], values: [Float])) -> String { #"{"indices":\#(v.indices),"values":\#(v.values)}"# }

    /// Ids by score (dot over shared indices, only points sharing one), best first, then by id.
    static func truth(_ q: [UInt32: Float], among: [Int], stored: (Int) -> (indices: [UInt32], values: [Float])?, k: Int) -> [(Int64, Float)] {
        let scored = among.compactMap { i -> (Int64, Float)? in
            guard let v = stored(i) else { return nil }
            var s: Float = 0, overlap = false
            for (j, index) in v.indices.enumerated() { if let w = q[index] { s += w * v.values[j]; overlap = true } }
            return overlap ? (Int64(i), s) : nil
        }
        return Array(scored.sorted { $0.1 > $1.1 || ($0.1 == $1.1 && $0.0 < $1.0) }.prefix(k))
    }

    func hits(_ api: QdrantAPI, _ body: String) -> [(Int64, Float)] { queryHits(t, api, body) }
    func same(_ a: [(Int64, Float)], _ b: [(Int64, Float)]) -> Bool { sameHits(a, b) }

    @Test("sparse vectors: exact dot-product search before and after sealing, with filters and IDF; hybrid RRF; update, delete, reopen")
    func sparse() throws {
        let tmp = TempDir()
        var engine: Engine! = try Engine(path: tmp.path, warn: { _ in })
        var api: QdrantAPI! = QdrantAPI(engine: engine, config: APIConfig())
        let create = #"{"vectors":{"dense":{"size":2,"distance":"Dot"}},"sparse_vectors":{"text":{},"bm":{"modifier":"idf","index":{"on_disk":true}}}}"#
        #expect(t.call(api, "PUT", "/collections/c", create).0 == 200)
        let params = t.call(api, "GET", "/collections/c").1?["result"]?["config"]?["params"]
        #expect(params?["sparse_vectors"] == JSONParser.parseOrNull(#"{"bm":{"modifier":"idf"},"text":{}}"#), "\(params?.compactText ?? "")")
        let all = Array(0..<300)
        func point(_ i: Int) -> String {
            var v = #""dense":[\#(Float(i % 10) / 10),1]"#
            if let s = SparseVectorTests.text(i) { v += #","text":\#(SparseVectorTests.json(s)),"bm":\#(SparseVectorTests.json(s))"# }
            return #"{"id":\#(i),"vector":{\#(v)},"payload":{"i":\#(i)}}"#
        }
        #expect(t.call(api, "PUT", "/collections/c/points", "{\"points\":[\(all.map(point).joined(separator: ","))]}", query: ["wait": "true"]).0 == 200)

        let q: [UInt32: Float] = [7: 1.5, 20: 0.5, 33: 2]
        let qJSON = #"{"indices":[7,20,33],"values":[1.5,0.5,2]}"#
        func idfQuery(_ among: [Int], _ stored: (Int) -> (indices: [UInt32], values: [Float])?) -> [UInt32: Float] {
            let having = among.filter { stored($0) != nil }
            return q.mapValues { $0 } .reduce(into: [:]) { out, e in
                let df = having.filter { stored($0)!.indices.contains(e.key) }.count
                out[e.key] = e.value * SparseVector.idf(n: having.count, df: df)
            }
        }
        func check(_ when: String, stored: (Int) -> (indices: [UInt32], values: [Float])?) {
            let want = SparseVectorTests.truth(q, among: all, stored: stored, k: 10)
            #expect(want.count == 10 && Set(want.map(\.1)).count == 10, "a known answer with distinct scores")
            #expect(same(hits(api, #"{"query":\#(qJSON),"using":"text","limit":10}"#), want), "\(when)")
            #expect(same(hits(api, #"{"query":{"nearest":\#(qJSON)},"using":"text","limit":10}"#), want), "\(when)")
            let filtered = SparseVectorTests.truth(q, among: Array(0..<100), stored: stored, k: 5)
            #expect(same(hits(api, #"{"query":\#(qJSON),"using":"text","limit":5,"filter":{"must":[{"key":"i","range":{"lt":100}}]}}"#), filtered), "\(when)")
            let idf = SparseVectorTests.truth(idfQuery(all, stored), among: all, stored: stored, k: 10)
            #expect(same(hits(api, #"{"query":\#(qJSON),"using":"bm","limit":10}"#), idf), "\(when): idf")
            // Re-ranked by the IDF vector: its weights, over the candidates the prefetch found.
            let candidates = hits(api, #"{"query":\#(qJSON),"using":"text","limit":50}"#).map { Int($0.0) }
            let rerank = SparseVectorTests.truth(idfQuery(all, stored), among: candidates, stored: stored, k: 5)
            #expect(same(hits(api, #"{"prefetch":{"query":\#(qJSON),"using":"text","limit":50},"query":\#(qJSON),"using":"bm","limit":5}"#), rerank),
                    "\(when): re-rank")
            // Legacy search with a named sparse vector.
            let legacy = t.call(api, "POST", "/collections/c/points/search", #"{"vector":{"name":"text","vector":\#(qJSON)},"limit":3}"#).1?["result"]?.arrayValue
            #expect(legacy?.compactMap { $0["id"]?.intValue } == want.prefix(3).map(\.0), "\(when)")
            // Hybrid: RRF (k 2) over a dense and a sparse prefetch, as computed here from each list.
            let dense = hits(api, #"{"query":[1,0.5],"using":"dense","limit":20}"#).map(\.0)
            let sparse = hits(api, #"{"query":\#(qJSON),"using":"text","limit":20}"#).map(\.0)
            var fused: [Int64: Float] = [:]
            for list in [dense, sparse] { for (r, id) in list.enumerated() { fused[id, default: 0] += 1 / Float(r + 2) } }
            let wantFused = fused.sorted { $0.value > $1.value || ($0.value == $1.value && $0.key < $1.key) }.prefix(10).map(\.key)
            let body = #"{"prefetch":[{"query":[1,0.5],"using":"dense","limit":20},{"query":\#(qJSON),"using":"text","limit":20}],"query":{"fusion":"rrf"},"limit":10}"#
            #expect(wantFused.count == 10)
            #expect(hits(api, body).map(\.0) == wantFused, "\(when): rrf")
        }
        check("appendable", stored: SparseVectorTests.text)
        _ = try engine.collection("c").optimize()
        // 300 dense vectors in a graph, 150 of each sparse vector in sealed postings.
        #expect(t.call(api, "GET", "/collections/c").1?["result"]?["indexed_vectors_count"] == .int(600))
        check("sealed", stored: SparseVectorTests.text)
        // Returned by name, sorted by index.
        let got = t.call(api, "POST", "/collections/c/points", #"{"ids":[2],"with_vector":["text"],"with_payload":false}"#).1?["result"]?.arrayValue?.first
        let two = SparseVectorTests.text(2)!
        let order = two.indices.indices.sorted { two.indices[$0] < two.indices[$1] }
        #expect(got?["vector"]?["text"]?["indices"] == .array(order.map { .int(Int64(two.indices[$0])) }), "\(got?.compactText ?? "")")

        // Update one point's sparse vector (its dense one stays), give another one, delete a third's.
        let update = #"{"points":[{"id":1,"vector":{"text":{"indices":[7],"values":[9]}}},{"id":4,"vector":{"text":{"indices":[33],"values":[0.1]}}}]}"#
        #expect(t.call(api, "PUT", "/collections/c/points/vectors", update, query: ["wait": "true"]).0 == 200)
        #expect(t.call(api, "POST", "/collections/c/points/vectors/delete", #"{"points":[6],"vector":["text"]}"#, query: ["wait": "true"]).0 == 200)
        func changed(_ i: Int) -> (indices: [UInt32], values: [Float])? {
            switch i {
            case 1: return ([7], [9])
            case 4: return ([33], [0.1])
            case 6: return nil
            default: return SparseVectorTests.text(i)
            }
        }
        let want = SparseVectorTests.truth(q, among: all, stored: changed, k: 10)
        #expect(same(hits(api, #"{"query":\#(qJSON),"using":"text","limit":10}"#), want))
        #expect(t.call(api, "GET", "/collections/c/points/1").1?["result"]?["vector"]?["dense"]?.arrayValue?.count == 2)

        for (body, fragment) in [
            (#"{"query":{"indices":[1,1],"values":[1,2]},"using":"text"}"#, "appears twice"),
            (#"{"query":{"indices":[1,2],"values":[1]},"using":"text"}"#, "2 indices and 1 values"),
            (#"{"query":[1,2],"using":"text"}"#, "is sparse"),
            (#"{"query":{"indices":[1],"values":[1]},"using":"dense"}"#, "sparse vector"),
            (#"{"query":{"recommend":{"positive":[2]}},"using":"text"}"#, "sparse"),
        ] {
            let (status, err, _) = t.call(api, "POST", "/collections/c/points/query", body)
            #expect(status == 400 && err?["status"]?["error"]?.stringValue?.contains(fragment) == true, "\(body): \(err?.compactText ?? "")")
        }
        let (bad, err, _) = t.call(api, "PUT", "/collections/c/points", #"{"points":[{"id":1,"vector":{"text":[1,2]}}]}"#)
        #expect(bad == 400 && err?["status"]?["error"]?.stringValue?.contains("sparse") == true)

        try engine.close()
        (engine, api) = (nil, nil)
        engine = try Engine(path: tmp.path, warn: { _ in })
        api = QdrantAPI(engine: engine, config: APIConfig())
        #expect(same(hits(api, #"{"query":\#(qJSON),"using":"text","limit":10}"#), want), "reopened")
        try engine.close()
    }

    @Test("a collection of sparse vectors only")
    func sparseOnly() throws {
        let tmp = TempDir()
        let engine = try Engine(path: tmp.path, warn: { _ in })
        let api = QdrantAPI(engine: engine, config: APIConfig())
        #expect(t.call(api, "PUT", "/collections/c", #"{"sparse_vectors":{"s":{}}}"#).0 == 200)
        let points = #"{"points":[{"id":1,"vector":{"s":{"indices":[1,5],"values":[1,1]}}},{"id":2,"vector":{"s":{"indices":[5],"values":[3]}}},{"id":3,"vector":{}}]}"#
        #expect(t.call(api, "PUT", "/collections/c/points", points, query: ["wait": "true"]).0 == 200)
        #expect(hits(api, #"{"query":{"indices":[5],"values":[1]},"using":"s"}"#).map(\.0) == [2, 1])
        #expect(t.call(api, "POST", "/collections/c/points/count", "{}").1?["result"]?["count"] == .int(3))
        // Sealed, a sparse-only collection is fully indexed (its postings), so green.
        _ = try engine.collection("c").optimize()
        let info = t.call(api, "GET", "/collections/c").1?["result"]
        let unindexed = try engine.collection("c").status.unindexedPoints
        #expect(info?["status"] == .string("green") && unindexed == 0, "\(info?.compactText ?? "")")
        #expect(hits(api, #"{"query":{"indices":[5],"values":[1]},"using":"s"}"#).map(\.0) == [2, 1])
        try engine.close()
    }
}

/// Multi-vectors scored by MaxSim: searched, re-ranked, updated, deleted, indexed and reopened,
/// every answer checked against brute force computed here.
@Suite struct MultiVectorTests {
    let t = QdrantAPITests()

    /// Point i's "colbert" (3-d, cosine): 1 to 4 vectors; every fifth point has none.
    static func colbert(_ i: Int) -> [[Float]]? {
        guard i % 5 != 0 else { return nil }
        return (0..<(1 + i % 4)).map { j in [Float((i * 3 + j * 7) % 11) - 5, Float((i + j * 5) % 13) - 6, Float((i * 7 + j) % 5) + 0.5] }
    }

    static func unit(_ v: [Float]) -> [Float] {
        let n = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
        return v.map { $0 / n }
    }

    static func maxSim(_ q: [[Float]], _ d: [[Float]]) -> Float {
        q.map(unit).reduce(0) { total, qv in total + d.map(unit).map { dv in zip(qv, dv).reduce(0) { $0 + $1.0 * $1.1 } }.max()! }
    }

    static func truth(_ q: [[Float]], among: [Int], stored: (Int) -> [[Float]]?, k: Int) -> [(Int64, Float)] {
        let scored = among.compactMap { i in stored(i).map { (Int64(i), maxSim(q, $0)) } }
        return Array(scored.sorted { $0.1 > $1.1 || ($0.1 == $1.1 && $0.0 < $1.0) }.prefix(k))
    }

    func hits(_ api: QdrantAPI, _ body: String) -> [(Int64, Float)] { queryHits(t, api, body) }
    func same(_ a: [(Int64, Float)], _ b: [(Int64, Float)]) -> Bool { sameHits(a, b) }

    @Test("multi-vectors: exact MaxSim search and re-ranking, a point without one, update, delete, indexing, reopen")
    func multiVectors() throws {
        let tmp = TempDir()
        var engine: Engine! = try Engine(path: tmp.path, warn: { _ in })
        var api: QdrantAPI! = QdrantAPI(engine: engine, config: APIConfig())
        let create = #"{"vectors":{"dense":{"size":2,"distance":"Dot"},"colbert":{"size":3,"distance":"Cosine","multivector_config":{"comparator":"max_sim"}}}}"#
        #expect(t.call(api, "PUT", "/collections/c", create).0 == 200)
        let params = t.call(api, "GET", "/collections/c").1?["result"]?["config"]?["params"]?["vectors"]
        #expect(params?["colbert"]?["multivector_config"]?["comparator"] == .string("max_sim"), "\(params?.compactText ?? "")")
        let all = Array(0..<200)
        func point(_ i: Int) -> String {
            var v = #""dense":[\#(Float(i % 10) / 10),1]"#
            if let c = MultiVectorTests.colbert(i) { v += #","colbert":\#(c)"# }
            return #"{"id":\#(i),"vector":{\#(v)},"payload":{"i":\#(i)}}"#
        }
        #expect(t.call(api, "PUT", "/collections/c/points", "{\"points\":[\(all.map(point).joined(separator: ","))]}", query: ["wait": "true"]).0 == 200)
        let q: [[Float]] = [[1, 0, 0.5], [-2, 1, 1]]
        func check(_ when: String, stored: (Int) -> [[Float]]?) {
            let want = MultiVectorTests.truth(q, among: all, stored: stored, k: 10)
            #expect(want.count == 10)
            #expect(same(hits(api, #"{"query":\#(q),"using":"colbert","limit":10}"#), want), "\(when)")
            let filtered = MultiVectorTests.truth(q, among: Array(0..<50), stored: stored, k: 5)
            #expect(same(hits(api, #"{"query":\#(q),"using":"colbert","limit":5,"filter":{"must":[{"key":"i","range":{"lt":50}}]}}"#), filtered),
                    "\(when)")
            // Late interaction: candidates by the dense vector, re-ranked by MaxSim.
            let candidates = hits(api, #"{"query":[1,0.2],"using":"dense","limit":40}"#).map { Int($0.0) }
            let rerank = MultiVectorTests.truth(q, among: candidates, stored: stored, k: 5)
            #expect(same(hits(api, #"{"prefetch":{"query":[1,0.2],"using":"dense","limit":40},"query":\#(q),"using":"colbert","limit":5}"#), rerank),
                    "\(when): re-rank")
        }
        check("appendable", stored: MultiVectorTests.colbert)
        _ = try engine.collection("c").optimize()
        check("sealed", stored: MultiVectorTests.colbert)
        // Returned as arrays of (normalised) vectors.
        let got = t.call(api, "POST", "/collections/c/points", #"{"ids":[3],"with_vector":["colbert"],"with_payload":false}"#).1?["result"]?.arrayValue?.first
        #expect(got?["vector"]?["colbert"]?.arrayValue?.count == 4 && got?["vector"]?["dense"] == nil, "\(got?.compactText ?? "")")
        // Update one point's, give one to a point without, delete another's.
        let update = #"{"points":[{"id":1,"vector":{"colbert":[[1,0,0.5]]}},{"id":5,"vector":{"colbert":[[-2,1,1],[0,0,1]]}}]}"#
        #expect(t.call(api, "PUT", "/collections/c/points/vectors", update, query: ["wait": "true"]).0 == 200)
        #expect(t.call(api, "POST", "/collections/c/points/vectors/delete", #"{"points":[2],"vector":["colbert"]}"#, query: ["wait": "true"]).0 == 200)
        func changed(_ i: Int) -> [[Float]]? {
            switch i {
            case 1: return [[1, 0, 0.5]]
            case 5: return [[-2, 1, 1], [0, 0, 1]]
            case 2: return nil
            default: return MultiVectorTests.colbert(i)
            }
        }
        check("changed", stored: changed)
        // One vector of the right size is a multi-vector of one.
        #expect(same(hits(api, #"{"query":[1,0,0.5],"using":"colbert","limit":3}"#),
                     MultiVectorTests.truth([[1, 0, 0.5]], among: all, stored: changed, k: 3)))
        #expect(t.call(api, "PUT", "/collections/c/points", #"{"points":[{"id":1,"vector":{"colbert":[[1,2],[3,4,5]]}}]}"#).0 == 400)
        #expect(t.call(api, "PUT", "/collections/c/points", #"{"points":[{"id":1,"vector":{"colbert":[[1,2,3,4,5,6]]}}]}"#).0 == 400)
        // A point id as the query: its stored multi-vector; the point itself left out.
        let byID = hits(api, #"{"query":5,"using":"colbert","limit":3}"#)
        #expect(same(byID, MultiVectorTests.truth([[-2, 1, 1], [0, 0, 1]], among: all.filter { $0 != 5 }, stored: changed, k: 3)), "\(byID)")
        for (body, fragment) in [
            (#"{"query":[[1,0,0],[1,0]],"using":"colbert"}"#, "has 2 numbers"),
            (#"{"query":[[1,0]],"using":"colbert"}"#, "vectors of 3 dimensions"),
            (#"{"query":[[1,0]],"using":"dense"}"#, "multi-vector"),
            (#"{"query":{"recommend":{"positive":[3]}},"using":"colbert"}"#, "multi-vector"),
        ] {
            let (status, err, _) = t.call(api, "POST", "/collections/c/points/query", body)
            #expect(status == 400 && err?["status"]?["error"]?.stringValue?.contains(fragment) == true, "\(body): \(err?.compactText ?? "")")
        }
        for (body, status) in [(#"{"vectors":{"m":{"size":3,"distance":"Cosine","multivector_config":{"comparator":"min_sim"}}}}"#, 422),
                               (#"{"vectors":{"m":{"size":3,"distance":"Euclid","multivector_config":{"comparator":"max_sim"}}}}"#, 400)] {
            #expect(t.call(api, "PUT", "/collections/d", body).0 == status, "\(body)")
        }
        try engine.close()
        (engine, api) = (nil, nil)
        engine = try Engine(path: tmp.path, warn: { _ in })
        api = QdrantAPI(engine: engine, config: APIConfig())
        check("reopened", stored: changed)
        try engine.close()
    }

    @Test("a multi-vector with its own hnsw_config.m is searched through a graph over its tokens: near-exact with a wide ef, exact on request, reopened")
    func tokenGraph() throws {
        let tmp = TempDir()
        var engine: Engine! = try Engine(path: tmp.path, warn: { _ in })
        var api: QdrantAPI! = QdrantAPI(engine: engine, config: APIConfig())
        let create = #"{"vectors":{"colbert":{"size":3,"distance":"Cosine","hnsw_config":{"m":8},"multivector_config":{"comparator":"max_sim"}}}}"#
        #expect(t.call(api, "PUT", "/collections/c", create).0 == 200)
        let all = Array(0..<400)
        let points = all.compactMap { i in MultiVectorTests.colbert(i).map { #"{"id":\#(i),"vector":{"colbert":\#($0)}}"# } }
        #expect(t.call(api, "PUT", "/collections/c/points", "{\"points\":[\(points.joined(separator: ","))]}", query: ["wait": "true"]).0 == 200)
        _ = try engine.collection("c").optimize()
        let segments = try engine.collection("c").shards[0].status.segments
        #expect(segments.contains { $0.indexed && !$0.appendable && $0.livePoints > 0 })
        func hasTokenGraph() throws -> Bool {
            let shard = try engine.collection("c").shards[0]
            return shard.lock.read { shard.holder.segments.contains { !$0.appendable && $0.multiStores[0].graph != nil } }
        }
        // The wide-ef answers below come through the graph, not the exact scan.
        #expect(try hasTokenGraph())
        func check(_ when: String) {
            for q in [[[Float(1), 0, 0.5], [-2, 1, 1]], [[0, 1, 0]], [[3, -1, 2], [1, 1, 1], [0, 0, 1]]] {
                let want = MultiVectorTests.truth(q, among: all, stored: MultiVectorTests.colbert, k: 10)
                #expect(same(hits(api, #"{"query":\#(q),"using":"colbert","limit":10,"params":{"exact":true}}"#), want), "\(when): exact")
                let wide = hits(api, #"{"query":\#(q),"using":"colbert","limit":10,"params":{"hnsw_ef":400}}"#)
                #expect(Set(wide.map(\.0)).intersection(want.map(\.0)).count >= 9, "\(when): \(wide.map(\.0)) against \(want.map(\.0))")
            }
        }
        check("indexed")
        try engine.close()
        (engine, api) = (nil, nil)
        engine = try Engine(path: tmp.path, warn: { _ in })
        api = QdrantAPI(engine: engine, config: APIConfig())
        #expect(try hasTokenGraph(), "the graph is read back, not dropped")
        check("reopened")
        try engine.close()
    }
}

/// The (id, score) pairs of a query on collection "c".
func queryHits(_ t: QdrantAPITests, _ api: QdrantAPI, _ body: String) -> [(Int64, Float)] {
    let r = t.call(api, "POST", "/collections/c/points/query", body).1?["result"]?["points"]?.arrayValue ?? []
    return r.compactMap { p in p["id"]?.intValue.map { ($0, Float(p["score"]?.doubleValue ?? .nan)) } }
}

/// The same ids in the same order, with scores equal to 1e-4 (relative).
func sameHits(_ a: [(Int64, Float)], _ b: [(Int64, Float)]) -> Bool {
    a.count == b.count && zip(a, b).allSatisfy { $0.0 == $1.0 && abs($0.1 - $1.1) <= 1e-4 * max(1, abs($1.1)) }
}
