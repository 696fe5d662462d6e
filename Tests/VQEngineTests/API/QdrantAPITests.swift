import Foundation
import Testing
@testable import VQEngine

@Suite struct QdrantAPITests {
    func call(_ api: QdrantAPI, _ method: String, _ path: String, _ body: String? = nil, query: [String: String] = [:],
              headers: [(String, String)] = []) -> (Int, JSON?, HTTPResponse) {
        let r = api.handle(HTTPRequest(method: method, path: path, query: query, headers: headers, body: body.map { Array($0.utf8) } ?? []))
        return (r.status, try? JSONParser.parse(r.body), r)
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
        #expect(call(api, "DELETE", "/collections/c").0 == 200)
        #expect(call(api, "GET", "/collections/c").0 == 404)
        try engine.close()
    }
}

extension JSONParser {
    static func parseOrNull(_ text: String) -> JSON { (try? parse(text)) ?? .null }
}
