import Foundation
import Synchronization
import Testing
@testable import VQEngine

@Suite struct SnapshotAPITests {
    func call(_ api: QdrantAPI, _ method: String, _ path: String, _ body: String? = nil, query: [String: String] = [:],
              headers: [(String, String)] = [], raw: [UInt8]? = nil) -> (Int, JSON?, HTTPResponse) {
        let r = api.handle(HTTPRequest(method: method, path: path, query: query, headers: headers, body: raw ?? body.map { Array($0.utf8) } ?? []))
        return (r.status, try? JSONParser.parse(r.body), r)
    }

    /// Every point of a collection, with vectors and payloads, as comparable text.
    func dump(_ api: QdrantAPI, _ name: String) -> String {
        let (status, body, _) = call(api, "POST", "/collections/\(name)/points/scroll", #"{"limit":10000,"with_vector":true,"with_payload":true}"#)
        #expect(status == 200, "scroll \(name)")
        return JSONWriter.string(body?["result"]?["points"] ?? .null)
    }

    func upsert(_ api: QdrantAPI, _ name: String, _ ids: Range<Int>, _ rng: inout SplitMix64, wait: Bool = true) -> Int {
        let points = ids.map { i -> String in
            let v = rng.vector(8).map { String($0) }.joined(separator: ",")
            return #"{"id":\#(i),"vector":[\#(v)],"payload":{"n":\#(i),"tag":"t\#(i % 5)"}}"#
        }
        return call(api, "PUT", "/collections/\(name)/points", #"{"points":[\#(points.joined(separator: ","))]}"#,
                    query: ["wait": wait ? "true" : "false"]).0
    }

    func multipart(_ file: [UInt8], part: String = "snapshot") -> (body: [UInt8], contentType: String) {
        let b = "b0undary"
        let body = Array("--\(b)\r\nContent-Disposition: form-data; name=\"\(part)\"; filename=\"x.snapshot\"\r\n\r\n".utf8) + file
            + Array("\r\n--\(b)--\r\n".utf8)
        return (body, "multipart/form-data; boundary=\(b)")
    }

    @Test("a snapshot of indexed, appendable and deleted rows over two shards recovers to the same points, graphs and all")
    func roundTrip() throws {
        let tmp = TempDir()
        try roundTripIn(tmp)
        // Still a working collection after a reopen (graphs, payload index and all).
        let again = try Engine(path: tmp.path, warn: { _ in })
        #expect(try again.collection("copy").pointCount == 3100 - 6 + 1)
        try again.close()
    }

    func roundTripIn(_ tmp: TempDir) throws {
        let engine = try Engine(path: tmp.path, warn: { _ in })
        let api = QdrantAPI(engine: engine, config: APIConfig())
        #expect(call(api, "PUT", "/collections/src", #"{"vectors":{"size":8,"distance":"Cosine"},"shard_number":2,"optimizers_config":{"indexing_threshold":500}}"#).0 == 200)
        #expect(call(api, "PUT", "/collections/src/index", #"{"field_name":"tag","field_schema":"keyword"}"#, query: ["wait": "true"]).0 == 200)
        var rng = SplitMix64(seed: 11)
        #expect(upsert(api, "src", 0..<3000, &rng) == 200)
        #expect(call(api, "POST", "/collections/src/optimize").0 == 200)
        // Tombstones in sealed segments, and fresh rows in the appendable ones.
        #expect(call(api, "POST", "/collections/src/points/delete", #"{"points":[1,2,3,500,1500,2999]}"#, query: ["wait": "true"]).0 == 200)
        #expect(upsert(api, "src", 3000..<3100, &rng) == 200)
        let before = dump(api, "src")
        let indexed = call(api, "GET", "/collections/src").1?["result"]?["indexed_vectors_count"]?.intValue ?? 0
        #expect(indexed >= 2900)

        let (status, created, _) = call(api, "POST", "/collections/src/snapshots", query: ["wait": "true"])
        #expect(status == 200)
        let name = try #require(created?["result"]?["name"]?.stringValue)
        let sha = try #require(created?["result"]?["checksum"]?.stringValue)
        #expect(name.hasPrefix("src-") && name.hasSuffix(".snapshot"))
        #expect(call(api, "GET", "/collections/src/snapshots").1?["result"]?.arrayValue?.map { $0["name"]?.stringValue } == [name])
        let file = try engine.snapshotPath(of: "src", name)
        #expect(try SHA256.hex(file: file) == sha)
        let (dl, _, download) = call(api, "GET", "/collections/src/snapshots/\(name)")
        let onDisk = try FileIO.readAll(file)
        #expect(dl == 200 && download.body == onDisk)

        // Recovered by upload under another name, and by a file:// location over the original.
        let form = multipart(download.body)
        let up = call(api, "POST", "/collections/copy/snapshots/upload", query: ["priority": "snapshot", "checksum": sha.uppercased()],
                      headers: [("content-type", form.contentType)], raw: form.body)
        #expect(up.0 == 200, "\(up.1.map { JSONWriter.string($0) } ?? "")")
        #expect(upsert(api, "src", 5000..<5010, &rng) == 200)  // changed after the snapshot: the recover undoes it
        let loc = call(api, "PUT", "/collections/src/snapshots/recover", #"{"location":"file://\#(file)","checksum":"\#(sha)"}"#)
        #expect(loc.0 == 200, "\(loc.1.map { JSONWriter.string($0) } ?? "")")
        for restored in ["copy", "src"] {
            #expect(dump(api, restored) == before, "\(restored): the same points, vectors and payloads")
            let info = call(api, "GET", "/collections/\(restored)").1?["result"]
            #expect(info?["indexed_vectors_count"]?.intValue == indexed, "\(restored): graphs come with the files, not rebuilt")
            #expect(info?["config"]?["params"]?["shard_number"]?.intValue == 2)
            let search = call(api, "POST", "/collections/\(restored)/points/query",
                              #"{"query":[1,0,0,0,0,0,0,1],"limit":5,"filter":{"must":[{"key":"tag","match":{"value":"t3"}}]}}"#)
            #expect(search.1?["result"] == call(api, "POST", "/collections/src/points/query",
                                                #"{"query":[1,0,0,0,0,0,0,1],"limit":5,"filter":{"must":[{"key":"tag","match":{"value":"t3"}}]}}"#).1?["result"])
        }
        #expect(upsert(api, "copy", 9000..<9001, &rng) == 200)
        try engine.close()
    }

    @Test("a snapshot taken while writers go on holds every write acknowledged before it, and nothing not yet acknowledged at its end")
    func consistentUnderWrites() throws {
        let tmp = TempDir()
        let engine = try Engine(path: tmp.path, warn: { _ in })
        let api = QdrantAPI(engine: engine, config: APIConfig())
        #expect(call(api, "PUT", "/collections/w", #"{"vectors":{"size":8,"distance":"Dot"},"shard_number":2}"#).0 == 200)
        let acknowledged = Mutex(0)
        let stop = Mutex(false)
        let writer = Thread {
            var rng = SplitMix64(seed: 3)
            var next = 0
            // Acknowledged = durable (wait=false), as Qdrant's clients take a write by default.
            while !stop.withLock({ $0 }) && next < 200_000 {
                guard upsert(api, "w", next..<(next + 50), &rng, wait: false) == 200 else { break }
                next += 50
                acknowledged.withLock { $0 = next }
            }
        }
        writer.start()
        while acknowledged.withLock({ $0 }) < 2000 { Thread.sleep(forTimeInterval: 0.002) }
        let before = acknowledged.withLock { $0 }
        let (status, created, _) = call(api, "POST", "/collections/w/snapshots", query: ["wait": "true"])
        let after = acknowledged.withLock { $0 } + 50  // a batch may be logged, not yet acknowledged
        stop.withLock { $0 = true }
        while !writer.isFinished { Thread.sleep(forTimeInterval: 0.002) }
        #expect(status == 200)
        let file = try engine.snapshotPath(of: "w", try #require(created?["result"]?["name"]?.stringValue))
        try engine.recoverSnapshot(file, as: "w2", checksum: nil)
        let ids = Set(try engine.collection("w2").scroll(filter: nil, offset: nil, limit: 1 << 30, withVector: false, withPayload: false)
            .points.compactMap { if case .number(let n) = $0.id { Int(n) } else { nil } })
        #expect(Set(0..<before).isSubset(of: ids), "\(before) acknowledged before; \(ids.count) in the snapshot")
        #expect(ids.allSatisfy { $0 < after })

        // Deterministically: writes acknowledged (durable) but not yet applied when the snapshot is
        // asked for are in it; the snapshot waits for them.
        let shard = try engine.collection("w").shards[0]
        shard.holdApplierForTesting.store(true, ordering: .relaxed)
        var rng = SplitMix64(seed: 9)
        #expect(upsert(api, "w", 300_000..<300_400, &rng, wait: false) == 200)
        let done = Mutex<String?>(nil)
        let taker = Thread {
            let name = try? engine.createSnapshot(of: "w").name
            done.withLock { $0 = name }
        }
        taker.start()
        Thread.sleep(forTimeInterval: 0.05)
        #expect(done.withLock { $0 } == nil, "the snapshot waits for the acknowledged writes to be applied")
        shard.holdApplierForTesting.store(false, ordering: .relaxed)
        while !taker.isFinished { Thread.sleep(forTimeInterval: 0.002) }
        let held = try engine.snapshotPath(of: "w", try #require(done.withLock { $0 }))
        try engine.recoverSnapshot(held, as: "w3", checksum: nil)
        let w3 = try engine.collection("w3").retrieve((300_000..<300_400).map { PointID.number(UInt64($0)) }, withVector: false, withPayload: false)
        #expect(w3.count == 400)
        try engine.close()
    }

    @Test("snapshot requests that vq cannot honour are refused, naming what was wrong")
    func refusals() throws {
        let tmp = TempDir()
        let engine = try Engine(path: tmp.path, warn: { _ in })
        let api = QdrantAPI(engine: engine, config: APIConfig())
        #expect(call(api, "PUT", "/collections/r", #"{"vectors":{"size":2,"distance":"Dot"}}"#).0 == 200)
        let name = try #require(call(api, "POST", "/collections/r/snapshots").1?["result"]?["name"]?.stringValue)
        let file = try engine.snapshotPath(of: "r", name)
        try FileIO.writeAtomically(tmp.path + "/outside.snapshot", try FileIO.readAll(file))
        #expect(call(api, "PUT", "/collections/full/snapshots/recover", #"{"location":"file://\#(tmp.path)/outside.snapshot"}"#).0 == 400)
        let good = multipart(try FileIO.readAll(file))
        for (method, path, body, query, headers, raw, status, fragment) in [
            ("POST", "/collections/none/snapshots", nil, [:], [], nil, 404, "does not exist"),
            ("GET", "/collections/none/snapshots", nil, [:], [], nil, 404, "does not exist"),
            ("GET", "/collections/r/snapshots/r-1.snapshot", nil, [:], [], nil, 404, "does not exist"),
            ("GET", "/collections/r/snapshots/..snapshot", nil, [:], [], nil, 400, "not a snapshot name"),
            ("DELETE", "/snapshots/x", nil, [:], [], nil, 400, "not a snapshot name"),
            ("PUT", "/collections/r/snapshots/recover", #"{"location":"file://\#(file)","priority":"replica"}"#, [:], [], nil, 400, "priority"),
            ("PUT", "/collections/r/snapshots/recover", #"{"location":"file://\#(file)","checksum":"abc"}"#, [:], [], nil, 400, "64 hex"),
            ("PUT", "/collections/r/snapshots/recover", #"{"location":"file://\#(file)","checksum":"\#(String(repeating: "0", count: 64))"}"#,
             [:], [], nil, 400, "SHA-256"),
            ("PUT", "/collections/r/snapshots/recover", #"{"location":"file://\#(tmp.path)/outside.snapshot"}"#, [:], [], nil, 400, "outside"),
            ("PUT", "/collections/r/snapshots/recover", #"{"location":"https://example.com/x.snapshot"}"#, [:], [], nil, 400, "https"),
            ("PUT", "/collections/r/snapshots/recover", #"{"location":"file://\#(file)","wait":true}"#, [:], [], nil, 400, "wait"),
            ("PUT", "/collections/r/snapshots/recover", #"{}"#, [:], [], nil, 400, "location"),
            ("PUT", "/collections/r/snapshots/recover", #"{"location":"file://\#(file)","api_key":"k"}"#, [:], [], nil, 400, "api_key"),
            ("PUT", "/collections/r/snapshots/recover", #"{"location":"http://127.0.0.1:9/x\r\nX-Injected: 1"}"#, [:], [], nil, 400,
             "control character"),
            ("PUT", "/collections/r/snapshots/recover", #"{"location":"http://127.0.0.1:9/x","api_key":"k\r\nX: 1"}"#, [:], [], nil, 400,
             "control character"),
            ("POST", "/collections/r/snapshots", nil, ["ordering": "strong"], [], nil, 400, "\"ordering\""),
            ("GET", "/collections/r/snapshots", nil, ["consistency": "all"], [], nil, 400, "\"consistency\""),
            ("DELETE", "/collections/r/snapshots/\(name)", nil, ["wait": "false"], [], nil, 400, "wait=false"),
            ("PUT", "/collections/r/snapshots/recover", #"{"location":"file://\#(file)"}"#, ["timeout": "5"], [], nil, 400, "\"timeout\""),
            ("POST", "/collections/r/snapshots/upload", nil, [:], [("content-type", "application/json")], Array("{}".utf8), 400, "multipart"),
            ("POST", "/collections/r/snapshots/upload", nil, [:], [("content-type", good.contentType)], multipart([1, 2], part: "file").body, 400,
             "\"snapshot\""),
            ("POST", "/collections/r/snapshots/upload", nil, ["priority": "no_sync"], [("content-type", good.contentType)], good.body, 400, "priority"),
            // A second part would be ignored: refused, naming the parts.
            ("POST", "/collections/r/snapshots/upload", nil, [:], [("content-type", good.contentType)],
             Array(good.body.dropLast(Array("--b0undary--\r\n".utf8).count)) + Array("--b0undary\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhi\r\n--b0undary--\r\n".utf8),
             400, "[snapshot, note]"),
            ("POST", "/collections/r/snapshots/upload", nil, [:], [("content-type", good.contentType)], multipart(Array(repeating: 7, count: 2048)).body,
             400, "wrong checksum"),
        ] as [(String, String, String?, [String: String], [(String, String)], [UInt8]?, Int, String)] {
            let (s, json, _) = call(api, method, path, body, query: query, headers: headers, raw: raw)
            let message = json?["status"]?["error"]?.stringValue ?? ""
            #expect(s == status && message.contains(fragment), "\(method) \(path): \(s) \(message)")
        }
        // A full snapshot is not a collection's, and the other way round.
        let full = try #require(call(api, "POST", "/snapshots").1?["result"]?["name"]?.stringValue)
        let fullFile = try engine.snapshotPath(of: nil, full)
        let wrongKind = call(api, "PUT", "/collections/r/snapshots/recover", #"{"location":"file://\#(fullFile)"}"#)
        #expect(wrongKind.0 == 400 && (wrongKind.1?["status"]?["error"]?.stringValue ?? "").contains("full snapshot"))
        #expect(throws: VQError.self) { _ = try engine.restoreFullSnapshot(file, checksum: nil) }
        // Nothing half-made is left behind by the refusals.
        #expect(FileIO.list(engine.directory.collectionsDir) == ["r"])
        #expect(engine.collectionNames() == ["r"])
        try engine.close()
    }

    @Test("wait=false answers 202 at once and the snapshot appears; delete removes it and its checksum")
    func asyncCreateAndDelete() throws {
        let tmp = TempDir()
        let engine = try Engine(path: tmp.path, warn: { _ in })
        let api = QdrantAPI(engine: engine, config: APIConfig())
        #expect(call(api, "PUT", "/collections/a", #"{"vectors":{"size":2,"distance":"Dot"}}"#).0 == 200)
        let (status, body, _) = call(api, "POST", "/collections/a/snapshots", query: ["wait": "false"])
        #expect(status == 202 && body?["status"]?.stringValue == "accepted")
        var names: [String] = []
        for _ in 0..<500 {
            names = (call(api, "GET", "/collections/a/snapshots").1?["result"]?.arrayValue ?? []).compactMap { $0["name"]?.stringValue }
            if !names.isEmpty { break }
            Thread.sleep(forTimeInterval: 0.01)
        }
        let name = try #require(names.first)
        // The listing shows finished snapshots only: their checksum is there with them.
        #expect(call(api, "GET", "/collections/a/snapshots").1?["result"]?.arrayValue?.first?["checksum"]?.stringValue?.count == 64)
        #expect(call(api, "DELETE", "/collections/a/snapshots/\(name)").0 == 200)
        #expect(FileIO.list(engine.directory.snapshotsDir(of: "a")).isEmpty)
        try engine.close()
    }

    @Test("a full snapshot restores every collection and the aliases into a fresh data directory")
    func fullRoundTrip() throws {
        let tmp = TempDir()
        let engine = try Engine(path: tmp.path + "/a", warn: { _ in })
        let api = QdrantAPI(engine: engine, config: APIConfig())
        var rng = SplitMix64(seed: 5)
        for name in ["one", "two"] {
            #expect(call(api, "PUT", "/collections/\(name)", #"{"vectors":{"size":8,"distance":"Euclid"}}"#).0 == 200)
            #expect(upsert(api, name, 0..<(name == "one" ? 300 : 40), &rng) == 200)
        }
        #expect(call(api, "POST", "/collections/aliases", #"{"actions":[{"create_alias":{"alias_name":"latest","collection_name":"two"}}]}"#).0 == 200)
        let full = try #require(call(api, "POST", "/snapshots").1?["result"])
        #expect(call(api, "GET", "/snapshots").1?["result"]?.arrayValue?.count == 1)
        let file = try engine.snapshotPath(of: nil, full["name"]!.stringValue!)
        let dumps = ["one", "two"].map { dump(api, $0) }
        try engine.close()

        let fresh = try Engine(path: tmp.path + "/b", warn: { _ in })
        #expect(try fresh.restoreFullSnapshot(file, checksum: full["checksum"]?.stringValue) == ["one", "two"])
        let api2 = QdrantAPI(engine: fresh, config: APIConfig())
        #expect(["one", "two"].map { dump(api2, $0) } == dumps)
        #expect(try fresh.aliases() == ["latest": "two"])
        try fresh.close()
    }

    @Test("a recover over a collection that a crash cut short leaves the collection whole: the old one back, or the new one alone")
    func replacementCutShort() throws {
        let tmp = TempDir()
        let directory = DataDirectory(tmp.path)
        /// The directory opened (its replacements finished), used and closed.
        func opened(_ body: (Engine, QdrantAPI) throws -> Void) throws {
            let engine = try Engine(path: tmp.path, warn: { _ in })
            try body(engine, QdrantAPI(engine: engine, config: APIConfig()))
            try engine.close()
        }
        var old = "", newer = "", file = ""
        try opened { engine, api in
            var rng = SplitMix64(seed: 8)
            #expect(call(api, "PUT", "/collections/r", #"{"vectors":{"size":8,"distance":"Dot"}}"#).0 == 200)
            #expect(upsert(api, "r", 0..<30, &rng) == 200)
            old = dump(api, "r")
            file = try engine.snapshotPath(of: "r", try #require(call(api, "POST", "/collections/r/snapshots").1?["result"]?["name"]?.stringValue))
            #expect(upsert(api, "r", 30..<40, &rng) == 200)
            newer = dump(api, "r")
        }
        // Cut short after the old collection was moved aside, before the new one took its place.
        #expect(rename(directory.collectionDir("r"), directory.replacedDir("r")) == 0)
        try opened { engine, api in
            #expect(dump(api, "r") == newer, "the collection that was being replaced is back")
            #expect(!FileIO.exists(directory.replacedDir("r")))
            try engine.recoverSnapshot(file, as: "s", checksum: nil)
        }
        // Cut short after the new one took its place, before the old one was removed.
        #expect(rename(directory.collectionDir("r"), directory.replacedDir("r")) == 0)
        #expect(rename(directory.collectionDir("s"), directory.collectionDir("r")) == 0)
        try opened { engine, api in
            #expect(dump(api, "r") == old, "the recovered collection stays")
            #expect(!FileIO.exists(directory.replacedDir("r")) && engine.collectionNames() == ["r"])
            // And a recover whole: nothing is left aside.
            var rng = SplitMix64(seed: 1)
            #expect(upsert(api, "r", 50..<60, &rng) == 200)
            try engine.recoverSnapshot(file, as: "r", checksum: nil)
            #expect(dump(api, "r") == old && FileIO.list(directory.collectionsDir) == ["r"])
        }
        // A copy left aside by a crash after the swap goes when the directory is opened, so it never comes back after a delete;
        // work a crash cut short (a delete, a staged copy, a download) is cleared on opening.
        try FileManager.default.copyItem(atPath: directory.collectionDir("r"), toPath: directory.replacedDir("r"))
        try FileIO.makeDirectories(directory.collectionsDir + "/.deleting-gone/shards")
        try FileIO.makeDirectories(directory.collectionsDir + "/.recovering-half")
        try FileIO.writeAtomically(directory.snapshotsDir + "/.download-r-1", [1, 2, 3])
        try opened { _, api in
            #expect(call(api, "DELETE", "/collections/r").1?["result"] == .bool(true))
        }
        try opened { engine, _ in
            #expect(engine.collectionNames().isEmpty && FileIO.list(directory.collectionsDir).isEmpty, "\(FileIO.list(directory.collectionsDir))")
            #expect(!FileIO.list(directory.snapshotsDir).contains { $0.hasPrefix(".download-") })
        }
    }

    @Test("a recover from an http:// location whose answer claims an impossible length is refused (507), not a crash")
    func hugeDownload() throws {
        let tmp = TempDir()
        let engine = try Engine(path: tmp.path, warn: { _ in })
        let api = QdrantAPI(engine: engine, config: APIConfig())
        let liar = try CannedServer([[Array("HTTP/1.1 200 OK\r\nContent-Length: \(Int.max)\r\n\r\nxx".utf8)]])
        let (status, body, _) = call(api, "PUT", "/collections/r/snapshots/recover", #"{"location":"http://127.0.0.1:\#(liar.port)/s.snapshot"}"#)
        #expect(status == 507 && body?["status"]?["error"]?.stringValue?.contains("\(Int.max) bytes") == true, "\(status) \(body?.compactText ?? "")")
        #expect(!FileIO.list(engine.directory.snapshotsDir).contains { $0.hasPrefix(".download-") })
        try engine.close()
    }
}
