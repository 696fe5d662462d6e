import Foundation
import Testing
@testable import VQEngine

@Suite struct PayloadAPITests {
    let t = QdrantAPITests()

    /// A collection of 300 points with payloads {"city", "n", "when", "tags", "meta": {"a", "b"}}.
    func fixture() throws -> (TempDir, Engine, QdrantAPI, [[String: JSON]]) {
        let tmp = TempDir()
        let engine = try Engine(path: tmp.path, warn: { _ in })
        let api = QdrantAPI(engine: engine, config: APIConfig())
        #expect(t.call(api, "PUT", "/collections/c", #"{"vectors":{"size":2,"distance":"Euclid"}}"#).0 == 200)
        var rng = SplitMix64(seed: 5)
        var payloads: [[String: JSON]] = []
        var points: [JSON] = []
        for i in 0..<300 {
            let p: [String: JSON] = ["city": .string(["paris", "rome", "oslo"][Int(rng.next() % 3)]), "n": .int(Int64(rng.next() % 50)),
                                     "when": .string(Datetime.format(1_700_000_000 + Double(rng.next() % 100_000))),
                                     "meta": .object([("a", .int(Int64(i))), ("b", .string("x"))])]
            payloads.append(p)
            points.append(.object([("id", .int(Int64(i))), ("vector", .array([.double(Double(i)), .double(0)])),
                                   ("payload", .object(p.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }))]))
        }
        #expect(t.call(api, "PUT", "/collections/c/points", JSONWriter.string(.object([("points", .array(points))])), query: ["wait": "true"]).0 == 200)
        return (tmp, engine, api, payloads)
    }

    @Test("create and delete payload indexes; payload_schema reports each index's type, params and point count; bad schemas are refused")
    func indexes() throws {
        let (dir, engine, api, _) = try fixture()
        defer { withExtendedLifetime(dir) {} }
        #expect(t.call(api, "PUT", "/collections/c/index", #"{"field_name":"city","field_schema":"keyword"}"#, query: ["wait": "true"]).0 == 200)
        #expect(t.call(api, "PUT", "/collections/c/index", #"{"field_name":"n","field_schema":{"type":"integer","lookup":false,"range":true}}"#, query: ["wait": "true"]).0 == 200)
        let (_, info, _) = t.call(api, "GET", "/collections/c")
        let schema = info?["result"]?["payload_schema"]
        #expect(schema?["city"] == JSONParser.parseOrNull(#"{"data_type":"keyword","points":300}"#))
        #expect(schema?["n"]?["params"] == JSONParser.parseOrNull(#"{"type":"integer","lookup":false,"range":true}"#))
        for (body, fragment) in [(#"{"field_name":"x","field_schema":"integr"}"#, "not a payload index type"),
                                 (#"{"field_name":"x","field_schema":{"type":"keyword","on_disk":true}}"#, "on_disk"),
                                 (#"{"field_name":"x","field_schema":{"type":"text","tokenizer":"multilingual"}}"#, "multilingual"),
                                 (#"{"field_name":"x","field_schema":{"type":"keyword","lookup":true}}"#, "not a parameter of a keyword index"),
                                 (#"{"field_name":"x"}"#, "field_schema"), (#"{"field_name":"x","field_schema":"keyword","bogus":1}"#, "bogus"),
                                 (#"{"field_name":"a..b","field_schema":"keyword"}"#, "not a payload key path")] {
            let (status, err, _) = t.call(api, "PUT", "/collections/c/index", body)
            #expect(status == 400 && err?["status"]?["error"]?.stringValue?.contains(fragment) == true, "\(body): \(err?.compactText ?? "")")
        }
        // Without wait the answer comes at once and the index is built in the background.
        let (_, ack, _) = t.call(api, "PUT", "/collections/c/index", #"{"field_name":"meta.a","field_schema":"integer"}"#)
        #expect(ack?["result"]?["status"] == .string("acknowledged"))
        var built = false
        for _ in 0..<500 where !built {
            built = t.call(api, "GET", "/collections/c").1?["result"]?["payload_schema"]?["meta.a"]?["points"] == .int(300)
            if !built { usleep(10_000) }
        }
        #expect(built)
        #expect(t.call(api, "DELETE", "/collections/c/index/n", query: ["wait": "true"]).0 == 200)
        #expect(t.call(api, "GET", "/collections/c").1?["result"]?["payload_schema"]?["n"] == nil)
        // The schema is part of the stored config: a reopened engine indexes the same fields.
        try engine.close()
        let path = engine.directory.collectionConfig("c")
        let stored = try CollectionConfig(json: try ChecksummedJSON.read(path), path: path)
        #expect(stored.payloadSchema["city"]?.type == .keyword && stored.payloadSchema["n"] == nil)
    }

    @Test("filters, selectors and order_by refuse what vq would otherwise ignore, naming it")
    func refusals() throws {
        let (dir, engine, api, _) = try fixture()
        defer { withExtendedLifetime(dir) {} }
        #expect(t.call(api, "PUT", "/collections/c/index", #"{"field_name":"when","field_schema":"datetime"}"#, query: ["wait": "true"]).0 == 200)
        for (path, body, fragment) in [
            ("points/count", #"{"filter":{"must":[{"key":"n","match":{"value":1},"range":{"gt":0}}]}}"#, "both match and range"),
            ("points/count", #"{"filter":{"must":[{"key":"n","match":{"value":1,"any":[2]}}]}}"#, "exactly one of"),
            ("points/count", #"{"filter":{"must":[{"key":"n","values_count":{"gtx":1}}]}}"#, "values_count"),
            ("points/count", #"{"filter":{"must":[{"key":"n","match":{"value":1},"boost":2}]}}"#, "boost"),
            ("points/count", #"{"filter":{"must":[{"key":"x","is_empty":{"key":"n"}}]}}"#, "stands alone"),
            ("points/scroll", #"{"with_payload":["meta[0].a"]}"#, "array element"),
            ("points/scroll", #"{"order_by":{"key":"when","start_from":"yesterday"}}"#, "RFC 3339"),
            ("points/payload", #"{"payload":{"a":1},"points":[1],"key":"meta"}"#, "key"),
            ("points/delete", #"{"points":[1],"filter":{"must":[{"key":"n","match":{"value":1}}]}}"#, "both"),
            ("points/scroll", #"{"limit":5,"shard_key":"a"}"#, "shard_key"),
            ("points", #"{"ids":[1],"foo":1}"#, "foo"),
            ("points/count", #"{"exact":false,"bogus":1}"#, "bogus"),
            ("points/query", #"{"query":{"nearest":[1,0],"mmr":{"diversity":0.5}}}"#, "not supported"),
            ("points/query", #"{"query":[1,0],"score_threshold":"0.9"}"#, "score_threshold"),
            ("points/query", #"{"query":[1,0],"params":{"hnsw_ef":2147483647}}"#, "hnsw_ef"),
        ] {
            let (status, err, _) = t.call(api, "POST", "/collections/c/" + path, body)
            #expect(status == 400 && err?["status"]?["error"]?.stringValue?.contains(fragment) == true, "\(body): \(err?.compactText ?? "")")
        }
        try engine.close()
    }

    @Test("with_payload include and exclude return only the selected keys")
    func selectors() throws {
        let (dir, engine, api, payloads) = try fixture()
        defer { withExtendedLifetime(dir) {} }
        let (_, inc, _) = t.call(api, "POST", "/collections/c/points", #"{"ids":[7],"with_payload":{"include":["city","meta.a"]}}"#)
        #expect(inc?["result"]?.arrayValue?.first?["payload"] == .object([("city", payloads[7]["city"]!), ("meta", .object([("a", .int(7))]))]))
        let (_, exc, _) = t.call(api, "POST", "/collections/c/points/scroll", #"{"limit":1,"with_payload":{"exclude":["when","meta.b"]}}"#)
        let p = exc?["result"]?["points"]?.arrayValue?.first?["payload"]
        #expect(p?["when"] == nil && p?["meta"]?["b"] == nil && p?["meta"]?["a"] == .int(0) && p?["city"] != nil)
        let (_, list, _) = t.call(api, "POST", "/collections/c/points/search", #"{"vector":[3,0],"limit":1,"with_payload":["n"]}"#)
        #expect(list?["result"]?.arrayValue?.first?["payload"] == .object([("n", payloads[3]["n"]!)]))
        #expect(t.call(api, "POST", "/collections/c/points/scroll", #"{"with_payload":{"only":["n"]}}"#).0 == 400)
        try engine.close()
    }

    @Test("facet counts per value match counting in the test; order_by scroll matches sorting in the test; both need an index")
    func facetAndOrder() throws {
        let (dir, engine, api, payloads) = try fixture()
        defer { withExtendedLifetime(dir) {} }
        #expect(t.call(api, "POST", "/collections/c/facet", #"{"key":"city"}"#).0 == 400)
        #expect(t.call(api, "POST", "/collections/c/points/scroll", #"{"order_by":"n"}"#).0 == 400)
        #expect(t.call(api, "PUT", "/collections/c/index", #"{"field_name":"city","field_schema":"keyword"}"#, query: ["wait": "true"]).0 == 200)
        #expect(t.call(api, "PUT", "/collections/c/index", #"{"field_name":"n","field_schema":"integer"}"#, query: ["wait": "true"]).0 == 200)
        #expect(t.call(api, "PUT", "/collections/c/index", #"{"field_name":"when","field_schema":"datetime"}"#, query: ["wait": "true"]).0 == 200)
        let (_, facet, _) = t.call(api, "POST", "/collections/c/facet", #"{"key":"city","filter":{"must":[{"key":"n","range":{"lt":25}}]},"exact":true}"#)
        var counts: [String: Int] = [:]
        for p in payloads where p["n"]!.intValue! < 25 { counts[p["city"]!.stringValue!, default: 0] += 1 }
        let expected = counts.sorted { $0.value > $1.value || ($0.value == $1.value && $0.key < $1.key) }
        #expect(facet?["result"]?["hits"]?.arrayValue?.map { "\($0["value"]!.stringValue!)=\($0["count"]!.intValue!)" }
                == expected.map { "\($0.key)=\($0.value)" })
        let (_, asc, _) = t.call(api, "POST", "/collections/c/points/scroll", #"{"limit":20,"order_by":{"key":"n","start_from":10},"with_payload":false}"#)
        let got = asc?["result"]?["points"]?.arrayValue ?? []
        let values = got.map { $0["order_value"]!.intValue! }
        let want = payloads.map { $0["n"]!.intValue! }.filter { $0 >= 10 }.sorted().prefix(20)
        #expect(values == Array(want))
        let (_, desc, _) = t.call(api, "POST", "/collections/c/points/scroll", #"{"limit":5,"order_by":{"key":"when","direction":"desc"}}"#)
        let times = desc?["result"]?["points"]?.arrayValue?.compactMap { $0["order_value"]?.intValue.map { Double($0) / 1_000_000 } } ?? []
        #expect(times == Array(payloads.compactMap { $0["when"]?.stringValue.flatMap(Datetime.parse) }.sorted(by: >).prefix(5)))
        #expect(t.call(api, "POST", "/collections/c/points/scroll", #"{"order_by":"n","offset":3}"#).0 == 400)
        // The query API: no query = the passing points in id order; {"order_by"} as in scroll.
        let (_, plain, _) = t.call(api, "POST", "/collections/c/points/query", #"{"filter":{"must":[{"key":"city","match":{"value":"rome"}}]},"limit":4,"offset":1}"#)
        let romeIDs = payloads.indices.filter { payloads[$0]["city"] == .string("rome") }
        #expect(plain?["result"]?["points"]?.arrayValue?.compactMap { $0["id"]?.intValue.map(Int.init) } == Array(romeIDs.dropFirst().prefix(4)))
        let (_, byN, _) = t.call(api, "POST", "/collections/c/points/query", #"{"query":{"order_by":{"key":"n","direction":"desc"}},"limit":3}"#)
        #expect(byN?["result"]?["points"]?.arrayValue?.compactMap { $0["order_value"]?.intValue } == Array(payloads.map { $0["n"]!.intValue! }.sorted(by: >).prefix(3)))
        try engine.close()
    }
}
