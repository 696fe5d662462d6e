import Foundation
import Testing
@testable import VQEngine

@Suite struct AliasTests {
    @Test("aliases: create, rename, switch atomically, list; every collection route takes one; bad batches change nothing; deleting a collection drops its aliases")
    func aliases() throws {
        let t = QdrantAPITests()
        let tmp = TempDir()
        let engine = try Engine(path: tmp.path, warn: { _ in })
        let api = QdrantAPI(engine: engine, config: APIConfig())
        for (name, id) in [("v1", 1), ("v2", 2)] {
            #expect(t.call(api, "PUT", "/collections/\(name)", #"{"vectors":{"size":2,"distance":"Dot"}}"#).0 == 200)
            #expect(t.call(api, "PUT", "/collections/\(name)/points", #"{"points":[{"id":\#(id),"vector":[1,0]}]}"#, query: ["wait": "true"]).0 == 200)
        }
        func firstID(_ collection: String) -> JSON? {
            t.call(api, "POST", "/collections/\(collection)/points/query", #"{"query":[1,0],"limit":1}"#).1?["result"]?["points"]?.arrayValue?.first?["id"]
        }
        #expect(t.call(api, "POST", "/collections/aliases", #"{"actions":[{"create_alias":{"collection_name":"v1","alias_name":"prod"}}]}"#).0 == 200)
        #expect(firstID("prod") == .int(1))
        #expect(t.call(api, "GET", "/collections/prod").0 == 200)
        #expect(t.call(api, "POST", "/collections/aliases", #"{"actions":[{"rename_alias":{"old_alias_name":"prod","new_alias_name":"live"}}]}"#).0 == 200)
        #expect(t.call(api, "GET", "/collections/prod").0 == 404)
        // The nightly switch: one request, both actions or neither.
        let switchTo = #"{"actions":[{"delete_alias":{"alias_name":"live"}},{"create_alias":{"collection_name":"v2","alias_name":"live"}}]}"#
        #expect(t.call(api, "POST", "/collections/aliases", switchTo).0 == 200)
        #expect(firstID("live") == .int(2))
        let list = t.call(api, "GET", "/aliases").1?["result"]?["aliases"]
        #expect(list == JSONParser.parseOrNull(#"[{"alias_name":"live","collection_name":"v2"}]"#))
        #expect(t.call(api, "GET", "/collections/v1/aliases").1?["result"]?["aliases"] == .array([]))
        for (body, status, fragment) in [
            (#"{"actions":[{"create_alias":{"collection_name":"nope","alias_name":"x"}}]}"#, 404, "nope"),
            (#"{"actions":[{"create_alias":{"collection_name":"v1","alias_name":"v2"}}]}"#, 400, "name of a collection"),
            (#"{"actions":[{"create_alias":{"collection_name":"v1","alias_name":"x"}},{"delete_alias":{"alias_name":"gone"}}]}"#, 404, "gone"),
            (#"{"actions":[{"make_alias":{}}]}"#, 400, "make_alias"),
            (#"{"actions":[{"create_alias":{"collection_name":"v1/","alias_name":"y"}}]}"#, 400, "v1/"),
        ] {
            let (s, err, _) = t.call(api, "POST", "/collections/aliases", body)
            #expect(s == status && err?["status"]?["error"]?.stringValue?.contains(fragment) == true, "\(body): \(err?.compactText ?? "")")
        }
        #expect(t.call(api, "GET", "/collections/x").0 == 404, "a refused batch applied nothing")
        // A collection may not take an alias's name (the alias would hide it).
        let (clash, clashErr, _) = t.call(api, "PUT", "/collections/live", #"{"vectors":{"size":2,"distance":"Dot"}}"#)
        #expect(clash == 409 && clashErr?["status"]?["error"]?.stringValue?.contains("alias") == true)
        // Stored: a restart resolves the same names.
        let stored = try AliasAction.map(try ChecksummedJSON.read(engine.directory.aliases), what: "test")
        #expect(stored == ["live": "v2"])
        #expect(t.call(api, "DELETE", "/collections/v2").0 == 200)
        #expect(t.call(api, "GET", "/aliases").1?["result"]?["aliases"] == .array([]))
        try engine.close()
    }
}
