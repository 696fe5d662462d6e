import Foundation
import Testing
@testable import VQEngine

@Suite struct QdrantAPITests {
    func call(_ api: QdrantAPI, _ method: String, _ path: String, _ body: String? = nil, query: [String: String] = [:],
              headers: [(String, String)] = []) -> (Int, JSON?, HTTPResponse) {
        let r = api.handle(HTTPRequest(method: method, path: path, query: query, headers: headers, body: body.map { Array($0.utf8) } ?? []))
        return (r.status, try? JSONParser.parse(r.body), r)
    }

    @Test("metrics count requests per route from many threads at once: totals, errors, cumulative buckets")
    func metricsCounts() throws {
        let tmp = TempDir()
        let engine = try Engine(path: tmp.path, warn: { _ in })
        let api = QdrantAPI(engine: engine, config: APIConfig())
        #expect(call(api, "PUT", "/collections/m", #"{"vectors":{"size":2,"distance":"Dot"}}"#).0 == 200)
        DispatchQueue.concurrentPerform(iterations: 8) { _ in
            for _ in 0..<50 { _ = call(api, "POST", "/collections/m/points/query", #"{"query":[1,0]}"#) }
            for _ in 0..<5 { _ = call(api, "POST", "/collections/m/points/query", #"{"query":[1]}"#) }
            _ = call(api, "GET", "/no/such/route")
        }
        let text = String(decoding: call(api, "GET", "/metrics").2.body, as: UTF8.self)
        let lines = Set(text.split(separator: "\n").map(String.init))
        let route = "points.query"
        #expect(lines.contains("vq_http_requests_total{route=\"\(route)\"} 440"), "\(text.prefix(600))")
        #expect(lines.contains("vq_http_request_errors_total{route=\"\(route)\"} 40"))
        #expect(lines.contains("vq_http_request_duration_seconds_bucket{route=\"\(route)\",le=\"5.0\"} 440"))
        #expect(lines.contains("vq_http_request_duration_seconds_count{route=\"\(route)\"} 440"))
        #expect(lines.contains("vq_http_requests_total{route=\"other\"} 8") && lines.contains("vq_http_request_errors_total{route=\"other\"} 8"))
        // Buckets are cumulative: never fewer requests in a wider one.
        let counts = text.split(separator: "\n").filter { $0.hasPrefix("vq_http_request_duration_seconds_bucket{route=\"\(route)\"") }
            .compactMap { Int($0.split(separator: " ").last!) }
        #expect(counts.count == Metrics.buckets.count + 1 && zip(counts, counts.dropFirst()).allSatisfy { $0 <= $1 })
        try engine.close()
    }

    @Test("query parameters: wait, timeout (of writes, metadata changes and reads), ordering and consistency are checked and honoured; any other is refused by name")
    func queryParameters() throws {
        let tmp = TempDir()
        let engine = try Engine(path: tmp.path, warn: { _ in })
        let api = QdrantAPI(engine: engine, config: APIConfig())
        #expect(call(api, "PUT", "/collections/q", #"{"vectors":{"size":2,"distance":"Dot"}}"#).0 == 200)
        let upsert = #"{"points":[{"id":1,"vector":[1,0]}]}"#
        for ordering in ["weak", "medium", "strong"] {
            #expect(call(api, "PUT", "/collections/q/points", upsert, query: ["wait": "true", "ordering": ordering]).0 == 200)
        }
        // A read's timeout: the local copy answers within it.
        let timed = call(api, "POST", "/collections/q/points/query", #"{"query":[1,0]}"#, query: ["timeout": "5", "consistency": "all"])
        #expect(timed.0 == 200 && timed.1?["result"]?["points"]?.arrayValue?.count == 1)
        for consistency in ["1", "2", "majority", "quorum", "all"] {
            let (s, body, _) = call(api, "POST", "/collections/q/points/query", #"{"query":[1,0]}"#, query: ["consistency": consistency])
            #expect(s == 200 && body?["result"]?["points"]?.arrayValue?.count == 1, "consistency \(consistency): one replica is all of them")
        }
        #expect(call(api, "PUT", "/collections/q/index", #"{"field_name":"k","field_schema":"keyword"}"#, query: ["wait": "true", "ordering": "weak"]).0 == 200)
        // Metadata changes take Qdrant's timeout (a server without a cluster commits at once).
        #expect(call(api, "PUT", "/collections/t", #"{"vectors":{"size":2,"distance":"Dot"}}"#, query: ["timeout": "30"]).0 == 200)
        #expect(call(api, "PATCH", "/collections/t", #"{"optimizers_config":{}}"#, query: ["timeout": "30"]).0 == 200)
        #expect(call(api, "POST", "/collections/aliases", #"{"actions":[{"create_alias":{"collection_name":"t","alias_name":"u"}}]}"#,
                     query: ["timeout": "30"]).0 == 200)
        #expect(call(api, "DELETE", "/collections/t", nil, query: ["timeout": "30"]).1?["result"] == .bool(true))
        for (method, path, body, query, status, fragment) in [
            ("PUT", "/collections/q/points", upsert, ["wait": "true", "ordering": "fast"], 422, "ordering"),
            ("POST", "/collections/q/points/query", #"{"query":[1,0]}"#, ["consistency": "0"], 422, "consistency"),
            ("POST", "/collections/q/points/query", #"{"query":[1,0]}"#, ["consistency": "some"], 422, "consistency"),
            ("PUT", "/collections/q/points", upsert, ["consistency": "all"], 400, "\"consistency\""),
            ("POST", "/collections/q/points/query", #"{"query":[1,0]}"#, ["ordering": "strong"], 400, "\"ordering\""),
            ("POST", "/collections/q/points/query", #"{"query":[1,0]}"#, ["exact": "true"], 400, "\"exact\""),
            ("GET", "/collections", nil, ["consistency": "all"], 400, "\"consistency\""),
            ("GET", "/collections/q", nil, ["timeout": "5"], 400, "\"timeout\""),
            ("POST", "/collections/q/points/query", #"{"query":[1,0]}"#, ["timeout": "0"], 400, "timeout"),
            ("PUT", "/collections/q/points", upsert, ["timeout": "abc"], 400, "timeout"),
            // A deadline past what the clock can wait on (NSCondition traps) is refused, not taken.
            ("PUT", "/collections/q/points", upsert, ["timeout": "1e12", "wait": "true"], 400, "at most 86400"),
            ("PUT", "/collections/q/points", upsert, ["timeout": "inf"], 400, "at most 86400"),
            // Metadata changes take a timeout for their commit (checked the same way), nothing else.
            ("PATCH", "/collections/q", #"{"optimizers_config":{}}"#, ["timeout": "0"], 400, "timeout"),
            ("PUT", "/collections/r", #"{"vectors":{"size":2,"distance":"Dot"}}"#, ["timeout": "1e12"], 400, "at most 86400"),
            ("DELETE", "/collections/q", nil, ["wait": "true"], 400, "\"wait\""),
            ("POST", "/collections/q/optimize", nil, ["ordering": "strong"], 400, "\"ordering\""),
            ("POST", "/collections/q/optimize", nil, ["timeout": "5"], 400, "\"timeout\""),
            ("PUT", "/collections/q/index", #"{"field_name":"k","field_schema":"keyword"}"#, ["timeout": "5"], 400, "\"timeout\""),
            ("POST", "/collections/q/points/query", #"{"query":[1,0],"params":{"quantization":{"oversampling":2}}}"#, [:], 400, "no quantization_config"),
        ] as [(String, String, String?, [String: String], Int, String)] {
            let (s, err, _) = call(api, method, path, body, query: query)
            #expect(s == status && err?["status"]?["error"]?.stringValue?.contains(fragment) == true, "\(method) \(path) \(query): \(s) \(err?.compactText ?? "")")
        }
        try engine.close()
    }

    @Test("back pressure becomes 429 with Retry-After; other kinds map to their statuses")
    func statuses() {
        let overloaded = APIEnvelope.error(VQError(.rateLimited, "queue full"), since: DispatchTime.now().uptimeNanoseconds)
        #expect(overloaded.status == 429)
        #expect(overloaded.headers.contains { $0.0 == "Retry-After" })
        #expect(VQErrorKind.invalidInput.httpStatus == 400 && VQErrorKind.notFound.httpStatus == 404 && VQErrorKind.conflict.httpStatus == 409)
    }

    @Test("writes wait for durability or application, payload updates merge, filters select")
    func pointsInProcess() throws {
        let tmp = TempDir()
        let engine = try Engine(path: tmp.path, warn: { _ in })
        let api = QdrantAPI(engine: engine, config: APIConfig())
        #expect(call(api, "PUT", "/collections/c", #"{"vectors":{"size":2,"distance":"Euclid"}}"#).0 == 200)
        let (s1, up, _) = call(api, "PUT", "/collections/c/points",
                               #"{"batch":{"ids":[1,2,3],"vectors":[[0,0],[1,0],[5,5]],"payloads":[{"g":"a"},{"g":"b"},null]}}"#,
                               query: ["wait": "true"])
        #expect(s1 == 200 && up?["result"]?["status"] == .string("completed"))
        #expect(call(api, "POST", "/collections/c/points/payload", #"{"payload":{"x":1},"filter":{"must":[{"key":"g","match":{"value":"a"}}]}}"#,
                     query: ["wait": "true"]).0 == 200)
        let (_, got, _) = call(api, "POST", "/collections/c/points", #"{"ids":[1,3]}"#)
        #expect(got?["result"]?.arrayValue?.first?["payload"] == JSONParser.parseOrNull(#"{"g":"a","x":1}"#))
        let (_, hits, _) = call(api, "POST", "/collections/c/points/search", #"{"vector":[0.9,0],"limit":2}"#)
        #expect(hits?["result"]?.arrayValue?.map { $0["id"] } == [.int(2), .int(1)])
        #expect(hits?["result"]?.arrayValue?.first?["score"]?.doubleValue.map { abs($0 - 0.1) < 1e-6 } == true)
        let (bad, err, _) = call(api, "PUT", "/collections/c/points", #"{"points":[{"id":9,"vector":[1,2,3]}]}"#)
        #expect(bad == 400 && err?["status"]?["error"]?.stringValue?.contains("3 dimensions") == true)
        let (deleted, first, _) = call(api, "DELETE", "/collections/c")
        #expect(deleted == 200 && first?["result"] == .bool(true))
        #expect(call(api, "GET", "/collections/c").0 == 404)
        // Deleting what is not there is not an error (Qdrant answers false; fixtures rely on it).
        let (again, second, _) = call(api, "DELETE", "/collections/c")
        #expect(again == 200 && second?["result"] == .bool(false))
        try engine.close()
    }
}

@Suite struct PointsBatchTests {
    @Test("update vectors keeps payloads (appendable and sealed segments); batch update applies operations in order; deleting vectors is refused")
    func vectorsAndBatch() throws {
        let t = QdrantAPITests()
        let tmp = TempDir()
        let engine = try Engine(path: tmp.path, warn: { _ in })
        let api = QdrantAPI(engine: engine, config: APIConfig())
        #expect(t.call(api, "PUT", "/collections/c", #"{"vectors":{"size":2,"distance":"Euclid"}}"#).0 == 200)
        #expect(t.call(api, "PUT", "/collections/c/points", #"{"points":[{"id":1,"vector":[0,0],"payload":{"a":1}},{"id":2,"vector":[5,5],"payload":{"a":2}}]}"#,
                       query: ["wait": "true"]).0 == 200)
        _ = try engine.collection("c").optimize()   // point 1 and 2 now live in a sealed segment
        #expect(t.call(api, "PUT", "/collections/c/points/vectors", #"{"points":[{"id":2,"vector":[0.1,0]}]}"#, query: ["wait": "true"]).0 == 200)
        let (_, near, _) = t.call(api, "POST", "/collections/c/points/query", #"{"query":[0.1,0],"limit":1,"with_payload":true}"#)
        #expect(near?["result"]?["points"]?.arrayValue?.first?["id"] == .int(2))
        #expect(near?["result"]?["points"]?.arrayValue?.first?["payload"] == JSONParser.parseOrNull(#"{"a":2}"#))
        let (missing, err, _) = t.call(api, "PUT", "/collections/c/points/vectors", #"{"points":[{"id":9,"vector":[1,1]}]}"#, query: ["wait": "true"])
        #expect(missing == 404 && err?["status"]?["error"]?.stringValue?.contains("9") == true)
        // In order: upsert 3, tag it, delete 1, then overwrite 3's payload.
        let batch = #"{"operations":[{"upsert":{"points":[{"id":3,"vector":[9,9]}]}},{"set_payload":{"payload":{"t":"x"},"points":[3]}},"#
            + #"{"delete":{"points":[1]}},{"overwrite_payload":{"payload":{"only":true},"filter":{"must":[{"key":"t","match":{"value":"x"}}]}}}]}"#
        let (status, result, _) = t.call(api, "POST", "/collections/c/points/batch", batch, query: ["wait": "true"])
        #expect(status == 200 && result?["result"]?.arrayValue?.count == 4, "\(result?.compactText ?? "")")
        let (_, got, _) = t.call(api, "POST", "/collections/c/points", #"{"ids":[1,3]}"#)
        #expect(got?["result"]?.arrayValue?.map { $0["id"] } == [.int(3)])
        #expect(got?["result"]?.arrayValue?.first?["payload"] == JSONParser.parseOrNull(#"{"only":true}"#))
        #expect(t.call(api, "POST", "/collections/c/points/vectors/delete", #"{"points":[3],"vector":[""]}"#).0 == 400)
        #expect(t.call(api, "POST", "/collections/c/points/batch", #"{"operations":[{"frobnicate":{}}]}"#).0 == 400)
        try engine.close()
    }
}

@Suite struct RecommendTests {
    @Test("recommend: average_vector, best_score and sum_scores rank a known set as computed by hand; examples are left out; ids and vectors mix")
    func strategies() throws {
        let t = QdrantAPITests()
        let tmp = TempDir()
        let engine = try Engine(path: tmp.path, warn: { _ in })
        let api = QdrantAPI(engine: engine, config: APIConfig())
        #expect(t.call(api, "PUT", "/collections/c", #"{"vectors":{"size":2,"distance":"Cosine"}}"#).0 == 200)
        let points = #"{"points":[{"id":1,"vector":[1,0]},{"id":2,"vector":[0.9,0.1]},{"id":3,"vector":[0,1]},{"id":4,"vector":[-1,0]},{"id":5,"vector":[0.7,0.7]}]}"#
        #expect(t.call(api, "PUT", "/collections/c/points", points, query: ["wait": "true"]).0 == 200)
        func ids(_ query: String) -> [Int64] {
            (t.call(api, "POST", "/collections/c/points/query", query).1?["result"]?["points"]?.arrayValue ?? []).compactMap { $0["id"]?.intValue }
        }
        // Only positive 1: nearest to [1,0], 1 itself left out.
        #expect(ids(#"{"query":{"recommend":{"positive":[1]}},"limit":4}"#) == [2, 5, 3, 4])
        // 2 x [1,0] - [0,1] = [2,-1]: 2, then 5, then 4 (3 is an example).
        #expect(ids(#"{"query":{"recommend":{"positive":[1],"negative":[3]}},"limit":4}"#) == [2, 5, 4])
        // best_score (Qdrant's): 2 = sigmoid(0.99) = 0.75; 4 = -sigmoid(0) = -0.5 (its best negative, 0,
        // beats its best positive, -1); 5 = -sigmoid(0.707) = -0.71 (a tie is not a win for the positive).
        #expect(ids(#"{"query":{"recommend":{"positive":[1],"negative":[3],"strategy":"best_score"}},"limit":4}"#) == [2, 4, 5])
        // sum_scores: cos to 1 minus cos to 3: 2 (0.88), 5 (0), 4 (-1).
        #expect(ids(#"{"query":{"recommend":{"positive":[1],"negative":[3],"strategy":"sum_scores"}},"limit":4}"#) == [2, 5, 4])
        // A vector example is no point: nothing is left out for it.
        #expect(ids(#"{"query":{"recommend":{"positive":[[0,1]]}},"limit":1}"#) == [3])
        // Discovery: target [1,0] alone ranks 2, 5, 3; the pair (4 positive, 1 negative) puts only 3 in
        // its positive zone (a tie counts as positive), so 3 leads: 1 + sig(0), then -1 + sig(0.99), -1 + sig(0.71).
        #expect(ids(#"{"query":{"discover":{"target":[1,0],"context":[{"positive":4,"negative":1}]}},"limit":3}"#) == [3, 2, 5])
        // Context (3 positive, 1 negative): 4 and 5 are not on 1's side (loss 0), 2 is (0.11 - 0.99).
        #expect(ids(#"{"query":{"context":[{"positive":3,"negative":1}]},"limit":3}"#) == [4, 5, 2])
        let (_, legacyDiscover, _) = t.call(api, "POST", "/collections/c/points/discover",
                                            #"{"target":[1,0],"context":[{"positive":4,"negative":1}],"limit":1}"#)
        #expect(legacyDiscover?["result"]?.arrayValue?.compactMap { $0["id"]?.intValue } == [3])
        #expect(t.call(api, "POST", "/collections/c/points/query", #"{"query":{"discover":{"context":[]}}}"#).0 == 400)
        // Examples from another collection (lookup_from): its point 1 is [0,1] there, so 3 comes first
        // here, and nothing is left out (the ids name points of the other collection).
        #expect(t.call(api, "PUT", "/collections/other", #"{"vectors":{"size":2,"distance":"Cosine"}}"#).0 == 200)
        #expect(t.call(api, "PUT", "/collections/other/points", #"{"points":[{"id":1,"vector":[0,1]}]}"#, query: ["wait": "true"]).0 == 200)
        #expect(ids(#"{"query":{"recommend":{"positive":[1]}},"lookup_from":{"collection":"other"},"limit":2}"#) == [3, 5])
        #expect(ids(#"{"query":1,"lookup_from":{"collection":"other"},"limit":1}"#) == [3])
        #expect(t.call(api, "POST", "/collections/c/points/query", #"{"query":1,"lookup_from":{"collection":"nowhere"}}"#).0 == 404)
        // The legacy route and its batch.
        let (_, legacy, _) = t.call(api, "POST", "/collections/c/points/recommend", #"{"positive":[1],"limit":2}"#)
        #expect(legacy?["result"]?.arrayValue?.compactMap { $0["id"]?.intValue } == [2, 5])
        #expect(t.call(api, "POST", "/collections/c/points/recommend/batch", #"{"searches":[{"positive":[1],"limit":1},{"positive":[4],"limit":1}]}"#)
            .1?["result"]?.arrayValue?.compactMap { $0.arrayValue?.first?["id"]?.intValue } == [2, 3])
        #expect(t.call(api, "POST", "/collections/c/points/query", #"{"query":{"recommend":{"positive":[42]}}}"#).0 == 404)
        #expect(t.call(api, "POST", "/collections/c/points/query", #"{"query":{"recommend":{"positive":[1],"strategy":"best"}}}"#).0 == 422)
        #expect(t.call(api, "POST", "/collections/c/points/query", #"{"query":{"recommend":{"positive":[1],"strategy":7}}}"#).0 == 422)
        // The same example twice is one example, not a crash.
        #expect(ids(#"{"query":{"recommend":{"positive":[1,1]}},"limit":1}"#) == [2])
        try engine.close()
    }
}

@Suite struct GroupsTests {
    @Test("grouped search: groups in the order of their best hit, group_size hits each, limit groups, with_lookup from another collection")
    func groups() throws {
        let t = QdrantAPITests()
        let tmp = TempDir()
        let engine = try Engine(path: tmp.path, warn: { _ in })
        let api = QdrantAPI(engine: engine, config: APIConfig())
        #expect(t.call(api, "PUT", "/collections/c", #"{"vectors":{"size":2,"distance":"Euclid"}}"#).0 == 200)
        let points = (1...12).map { #"{"id":\#($0),"vector":[\#($0),0],"payload":{"doc":\#($0 % 3)}}"# }.joined(separator: ",")
        #expect(t.call(api, "PUT", "/collections/c/points", #"{"points":["# + points + "]}", query: ["wait": "true"]).0 == 200)
        #expect(t.call(api, "PUT", "/collections/docs", #"{"vectors":{"size":2,"distance":"Euclid"}}"#).0 == 200)
        #expect(t.call(api, "PUT", "/collections/docs/points", #"{"points":[{"id":1,"vector":[0,0],"payload":{"title":"one"}},{"id":2,"vector":[0,0],"payload":{"title":"two"}}]}"#,
                       query: ["wait": "true"]).0 == 200)
        let body = #"{"query":[0,0],"group_by":"doc","group_size":2,"limit":2,"with_lookup":{"collection":"docs","with_payload":["title"]}}"#
        let (status, r, _) = t.call(api, "POST", "/collections/c/points/query/groups", body)
        let groups = r?["result"]?["groups"]?.arrayValue ?? []
        #expect(status == 200 && groups.map { $0["id"] } == [.int(1), .int(2)], "\(r?.compactText ?? "")")
        #expect(groups.map { $0["hits"]?.arrayValue?.compactMap { $0["id"]?.intValue } ?? [] } == [[1, 4], [2, 5]])
        #expect(groups.first?["lookup"]?["payload"] == JSONParser.parseOrNull(#"{"title":"one"}"#))
        let (_, legacy, _) = t.call(api, "POST", "/collections/c/points/search/groups", #"{"vector":[12,0],"group_by":"doc","group_size":1,"limit":3}"#)
        #expect(legacy?["result"]?["groups"]?.arrayValue?.map { $0["id"] } == [.int(0), .int(2), .int(1)])
        #expect(t.call(api, "POST", "/collections/c/points/query/groups", #"{"query":[0,0]}"#).0 == 400)
        try engine.close()
    }
}

@Suite struct HybridQueryTests {
    @Test("prefetch with rrf and dbsf fusion and with a re-ranking vector ranks a known set as computed by hand; filters reach the prefetches")
    func fusion() throws {
        let t = QdrantAPITests()
        let tmp = TempDir()
        let engine = try Engine(path: tmp.path, warn: { _ in })
        let api = QdrantAPI(engine: engine, config: APIConfig())
        #expect(t.call(api, "PUT", "/collections/c", #"{"vectors":{"size":2,"distance":"Euclid"}}"#).0 == 200)
        let points = (1...6).map { #"{"id":\#($0),"vector":[\#($0),0],"payload":{"n":\#($0)}}"# }.joined(separator: ",")
        #expect(t.call(api, "PUT", "/collections/c/points", #"{"points":["# + points + "]}", query: ["wait": "true"]).0 == 200)
        func ids(_ body: String) -> [Int64] {
            let (status, r, _) = t.call(api, "POST", "/collections/c/points/query", body)
            #expect(status == 200, "\(r?.compactText ?? "")")
            return (r?["result"]?["points"]?.arrayValue ?? []).compactMap { $0["id"]?.intValue }
        }
        let prefetch = #"[{"query":[0,0],"limit":4},{"query":[3.1,0],"limit":3}]"#
        // A = 1,2,3,4; B = 3,4,2. RRF (k = 2): 3 = 1/4 + 1/2, 2 = 1/3 + 1/4, 4 = 1/5 + 1/3, 1 = 1/2.
        #expect(ids(#"{"prefetch":\#(prefetch),"query":{"fusion":"rrf"},"limit":4}"#) == [3, 2, 4, 1])
        // k = 60 flattens positions: 3 and 2 (in both lists) lead.
        #expect(Array(ids(#"{"prefetch":\#(prefetch),"query":{"rrf":{"k":60}},"limit":4}"#).prefix(2)) == [3, 2])
        #expect(Array(ids(#"{"prefetch":\#(prefetch),"query":{"fusion":"dbsf"},"limit":4}"#).prefix(2)) == [3, 2])
        // Re-rank A's four by [4,0].
        #expect(ids(#"{"prefetch":{"query":[0,0],"limit":4},"query":[4,0],"limit":4}"#) == [4, 3, 2, 1])
        // The root filter reaches both prefetches: 1 is gone.
        #expect(ids(#"{"prefetch":\#(prefetch),"query":{"fusion":"rrf"},"filter":{"must":[{"key":"n","range":{"gte":2}}]},"limit":6}"#).contains(1) == false)
        #expect(t.call(api, "POST", "/collections/c/points/query", #"{"prefetch":[{"query":[0,0]}],"query":{"fusion":"max"}}"#).0 == 422)
        #expect(t.call(api, "POST", "/collections/c/points/query", #"{"prefetch":[{"query":{"fusion":"rrf"}}],"query":[1,0]}"#).0 == 400)
        // What vq would otherwise ignore is refused, naming it.
        for (path, body, fragment) in [
            ("query", #"{"query":3,"lookup_from":{"collection":"c","vector":"image"}}"#, "vector \"image\" does not exist"),
            ("query", #"{"query":[1,0],"params":{"quantization":{"rescore":true,"speed":1}}}"#, "speed"),
            ("query", #"{"query":[1,0],"using":"image"}"#, "vector \"image\" does not exist"),
            ("query", #"{"prefetch":[{"query":[1,0],"lookup_from":{}}],"query":{"fusion":"rrf"}}"#, "lookup_from needs"),
            ("query", #"{"query":[1,0],"limt":3}"#, "limt"),
            ("search", #"{"vector":[1,0],"with_vectors":true,"params":{"hnsw_ef":8,"exactly":true}}"#, "exactly"),
            // Members a form of the request has no use for.
            ("query", #"{"prefetch":[{"query":[1,0]}],"query":{"fusion":"rrf"},"using":"image"}"#, "fusion query does not take \"using\""),
            ("query", #"{"prefetch":[{"query":[1,0]}],"query":[1,0],"params":{"hnsw_ef":8}}"#, "prefetch does not take \"params\""),
            ("query", #"{"filter":{},"score_threshold":0.5}"#, "does not take \"score_threshold\""),
            ("query", #"{"query":{"order_by":"n"},"offset":2}"#, "does not take \"offset\""),
            ("query/groups", #"{"query":[1,0],"vector":[0,1],"group_by":"n"}"#, "\"vector\""),
            ("search/groups", #"{"vector":[1,0],"using":"image","group_by":"n"}"#, "\"using\""),
        ] {
            let (status, err, _) = t.call(api, "POST", "/collections/c/points/" + path, body)
            #expect(status == 400 && err?["status"]?["error"]?.stringValue?.contains(fragment) == true, "\(body): \(err?.compactText ?? "")")
        }
        try engine.close()
    }
}

@Suite struct CollectionSettingsTests {
    @Test("settings vq does not implement are refused with a 400 naming them, never dropped; what it does implement is taken")
    func refusals() throws {
        let t = QdrantAPITests()
        let tmp = TempDir()
        let engine = try Engine(path: tmp.path, warn: { _ in })
        let api = QdrantAPI(engine: engine, config: APIConfig())
        for (body, fragment) in [
            (#"{"vectors":{"size":4,"distance":"Dot"},"sparse_vectors":{"text":{}}}"#, "sparse_vectors"),
            (#"{"vectors":{"size":4,"distance":"Dot"},"quantization_config":{"binary":{}}}"#, "binary"),
            (#"{"vectors":{"size":4,"distance":"Dot","multivector_config":{"comparator":"max_sim"}}}"#, "unnamed multi-vector"),
            (#"{"vectors":{"size":4,"distance":"Dot","datatype":"float16"}}"#, "datatype"),
            (#"{"vectors":{"size":4,"distance":"Dot"},"hnsw_config":{"payload_m":16}}"#, "payload_m"),
            (#"{"vectors":{"size":4,"distance":"Dot"},"on_disk_payload":"no"}"#, "on_disk_payload"),
            (#"{"vectors":{"size":4,"distance":"Dot"},"wal_config":{"wal_segments_ahead":2}}"#, "wal_segments_ahead"),
            (#"{"vectors":{"dense":{"size":4,"distance":"Manhattan","multivector_config":{"comparator":"max_sim"}}}}"#, "Cosine or Dot"),
            (#"{"vectors":{"size":4,"distance":"Dot"},"sharding_method":"custom"}"#, "sharding_method"),
            (#"{"vectors":{"size":4,"distance":"Dot"},"shard_numbr":2}"#, "shard_numbr"),
        ] {
            let (status, err, _) = t.call(api, "PUT", "/collections/c", body)
            #expect(status == 400 && err?["status"]?["error"]?.stringValue?.contains(fragment) == true, "\(body): \(err?.compactText ?? "")")
        }
        // A value outside an enumeration is 422, as Qdrant answers bodies its schema rejects.
        for (body, fragment) in [
            (#"{"vectors":{"size":4,"distance":"Cosin"}}"#, "distance"),
            (#"{"vectors":{"dense":{"size":4,"distance":"Dot"},"sparse":{"size":4,"distance":"Near"}}}"#, "vectors.sparse.distance"),
            (#"{"vectors":{"size":4,"distance":"Dot","datatype":"float64"}}"#, "datatype"),
            (#"{"vectors":{},"sparse_vectors":{"s":{"modifier":"bm25"}}}"#, "modifier"),
            (#"{"vectors":{"size":4,"distance":"Dot"},"sharding_method":"random"}"#, "sharding_method"),
        ] {
            let (status, err, _) = t.call(api, "PUT", "/collections/c", body)
            #expect(status == 422 && err?["status"]?["error"]?.stringValue?.contains(fragment) == true, "\(body): \(status) \(err?.compactText ?? "")")
        }
        #expect(t.call(api, "GET", "/collections/c").0 == 404, "a refused create leaves nothing")
        // Storage hints are taken either way (everything is memory-mapped); the WAL file size is used.
        let ok = #"{"vectors":{"size":4,"distance":"Dot","on_disk":false,"datatype":"float32"},"on_disk_payload":false,"sparse_vectors":null,"#
            + #""hnsw_config":{"m":8,"on_disk":false},"optimizers_config":{"memmap_threshold":20000},"wal_config":{"wal_capacity_mb":8,"wal_segments_ahead":0}}"#
        #expect(t.call(api, "PUT", "/collections/c", ok).0 == 200)
        #expect(t.call(api, "GET", "/collections/c").1?["result"]?["config"]?["wal_config"]?["wal_capacity_mb"] == .int(8))
        for (body, fragment) in [(#"{"wal_config":{"wal_capacity_mb":64}}"#, "wal_config"), (#"{"vectors":{"":{"on_disk":true}}}"#, "vectors"),
                                 (#"{"optimizers_config":{"indexing_threshhold":1}}"#, "indexing_threshhold")] {
            let (status, err, _) = t.call(api, "PATCH", "/collections/c", body)
            #expect(status == 400 && err?["status"]?["error"]?.stringValue?.contains(fragment) == true, "\(body): \(err?.compactText ?? "")")
        }
        try engine.close()
    }
}

extension JSONParser {
    static func parseOrNull(_ text: String) -> JSON { (try? parse(text)) ?? .null }
}
