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
            let (status, err, _) = t.call(api, method, "/collections/c/" + path, body, query: ["wait": "true"])
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
