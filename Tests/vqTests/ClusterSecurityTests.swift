#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
import VQEngine

/// Peers' messages for the hostile-input tests: the engine's own encoders (`ShardWire`,
/// `RaftCodec`), and, where a message must lie about its counts, one made by hand with the
/// engine's `ByteWriter`.
enum WireBytes {
    /// A shard operation body: [wait][seq][epoch] then an upsert of `count` points of `dim`
    /// dimensions (the `vectors` and `payloads` given, which may lie about the counts).
    static func upsert(count: UInt32, dim: UInt32, ids: [UInt64], vectors: [Float], payloads: [[UInt8]?]) -> [UInt8] {
        var w = ByteWriter()
        w.u8(1); w.u32(count); w.u32(dim)
        for id in ids { w.pointID(.number(id)) }
        for v in vectors { w.u32(v.bitPattern) }
        for p in payloads {
            if let p { w.u8(1); w.blob(p) } else { w.u8(0) }
        }
        return ShardWire.encodeOperation(w.bytes, .durable)
    }

    static func search(_ vector: [Float], k: UInt32, ef: UInt32) -> [UInt8] {
        ShardWire.encodeSearch(vector, ShardSearch(k: Int(k), ef: Int(ef)))
    }

    /// A transfer batch of records (`dim` 0: without vectors; the payload as raw JSON text).
    static func receive(clear: Bool, dim: UInt32, records: [(UInt64, [Float], [UInt8]?)], seq: UInt64 = 0) -> [UInt8] {
        let points = records.map { id, vector, payload in
            PointRecord(id: .number(id), version: 1, vectors: vector.isEmpty ? [] : [vector], payload: payload.flatMap { try? JSONParser.parse($0) })
        }
        var w = ByteWriter()
        w.u8(clear ? 1 : 0); w.u64(seq); w.u64(0)
        ShardWire.encodeRecords(points, withVector: dim > 0, into: &w)
        return w.bytes
    }
}

/// Runs `vq args` for at most `seconds` (then SIGTERM): its exit status and stderr.
func runBounded(_ args: [String], seconds: Double) throws -> (Int32, String) {
    let p = Process()
    p.executableURL = vqBinary
    p.arguments = args
    let err = Pipe()
    p.standardError = err
    p.standardOutput = FileHandle.nullDevice
    try p.run()
    let deadline = Date().addingTimeInterval(seconds)
    while p.isRunning && Date() < deadline { usleep(20_000) }
    if p.isRunning { p.terminate() }
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))
}

/// The peer id a server reports in GET /cluster.
func peerID(_ server: ServerProcess) -> UInt64? { PeerView(server.port).flatMap { UInt64($0.id) } }

/// The internal routes a peer serves (all POST), for a collection "c".
let internalRoutes = ["raft", "propose", "voters", "commit", "ping", "join", "shards/c/0/write", "shards/c/0/apply", "shards/c/0/apply-batch", "shards/c/0/search",
                      "shards/c/0/transfer", "shards/c/0/receive", "shards/c/0/count", "shards/c/0/scan", "shards/c/0/position", "shards/c/0/at-position", "collections/c/cluster", "rebalance"]

@Suite(.serialized) struct ClusterSecurityTests {
    @Test("a fresh vq serve closes every internal route: it generates a secret (0600) that vq cluster token prints and vq join needs")
    func closedByDefault() throws {
        let a = try ServerProcess(["--api-key", "user-key-0123456789"])
        #expect(eventually(10) {
            (try? request(a.port, "GET", "/cluster", headers: ["api-key": "user-key-0123456789"]))?.body.contains("Leader") == true
        }, "never led")
        let secret = a.secret
        #expect(secret.count == 64 && ClusterSecurityTests.isHex(secret), "\(secret)")
        var info = stat()
        #expect(stat(a.scratch.data + "/cluster/secret", &info) == 0 && info.st_mode & 0o777 == 0o600)
        let token = try vq(["cluster", "token", "--data-dir", a.scratch.data])
        #expect(token.status == 0 && token.stdout == secret + "\n" && token.stderr.isEmpty, "\(token)")
        #expect(try request(a.port, "PUT", "/collections/c", #"{"vectors":{"size":4,"distance":"Dot"}}"#,
                            headers: ["api-key": "user-key-0123456789"]).status == 200)
        for route in internalRoutes {
            for headers in [[:], ["api-key": "user-key-0123456789"], ["x-vq-cluster-secret": "not-the-secret-0123456789"]] {
                let r = try request(a.port, "POST", "/internal/" + route, "{}", headers: headers)
                #expect(r.status == 403 && r.body.contains("cluster secret"), "\(route) \(headers): \(r.status) \(r.body)")
            }
        }
        // With the secret the route answers (the count of an empty shard: a u64 0).
        let count = try request(a.port, "POST", "/internal/shards/c/0/count", bytes: [], headers: ["x-vq-cluster-secret": secret])
        #expect(count.status == 200 && count.body.utf8.count == 8 && count.body.utf8.allSatisfy { $0 == 0 }, "\(count.body)")
        let (_, log) = a.stop()
        #expect(log.contains("cluster secret generated") && log.contains("vq cluster token --data-dir"), "\(log)")
        #expect(!log.contains(secret), "the secret itself must not be logged")

        // The directory keeps its secret: a different one is refused, a malformed one too.
        let other = try vq(["serve", "--data-dir", a.scratch.data, "--listen", "127.0.0.1:0", "--cluster-secret", "another-secret-0123456789"])
        #expect(other.status == 2 && other.stderr.contains("differs from the secret"), "\(other.stderr)")
        let short = try vq(["serve", "--data-dir", Scratch().data, "--listen", "127.0.0.1:0", "--cluster-secret", "short"])
        #expect(short.status == 2 && short.stderr.contains("expected 16 to 256"), "\(short.stderr)")
        let none = try vq(["cluster", "token", "--data-dir", Scratch().data])
        #expect(none.status == 1 && none.stderr.contains("not the data directory of a cluster peer"), "\(none.stderr)")
    }

    static func isHex(_ s: String) -> Bool { s.allSatisfy { $0.isHexDigit } }

    @Test("a second vq serve on a port in use fails with 'address already in use' and exit 1")
    func portInUse() throws {
        let a = try ServerProcess()
        // Bounded: a second server that did start is stopped rather than waited for.
        let (status, text) = try runBounded(["serve", "--listen", "127.0.0.1:\(a.port)", "--data-dir", Scratch().data], seconds: 15)
        #expect(status == 1 && text.lowercased().contains("address already in use"), "\(status): \(text)")
        // The first one still answers every connection itself.
        for _ in 0..<20 { #expect(try request(a.port, "GET", "/healthz").status == 200) }
        _ = a.stop()
    }

    @Test("hostile peer requests get 400 and change nothing; the server stays up and the collection answers after a restart")
    func hostileInput() throws {
        let a = try ServerProcess()
        #expect(eventually(10) { PeerView(a.port)?.role == "Leader" })
        // As a peer sends them: the secret, and who is calling.
        let secret = ["x-vq-cluster-secret": a.secret, "x-vq-peer": "7 http://127.0.0.1:9"]
        #expect(try request(a.port, "PUT", "/collections/c", #"{"vectors":{"size":4,"distance":"Dot"}}"#).status == 200)
        #expect(try request(a.port, "PUT", "/collections/c/points?wait=true",
                            #"{"points":[{"id":1,"vector":[1,0,0,0],"payload":{"k":1}},{"id":2,"vector":[0,1,0,0]}]}"#).status == 200)
        let nan = Float.nan
        let bodies: [(String, [UInt8], String)] = [
            ("wrong dimension", WireBytes.upsert(count: 1, dim: 1, ids: [9], vectors: [1], payloads: [nil]), "[1] dimensions"),
            ("NaN", WireBytes.upsert(count: 1, dim: 4, ids: [9], vectors: [1, nan, 0, 0], payloads: [nil]), "finite"),
            ("payload not JSON", WireBytes.upsert(count: 1, dim: 4, ids: [9], vectors: [1, 0, 0, 0], payloads: [Array("\u{1}x".utf8)]),
             "not a JSON object"),
            ("payload not an object", WireBytes.upsert(count: 1, dim: 4, ids: [9], vectors: [1, 0, 0, 0], payloads: [Array("[1]".utf8)]),
             "not a JSON object"),
            ("2^32-1 points", WireBytes.upsert(count: UInt32.max, dim: 4, ids: [9], vectors: [1, 0, 0, 0], payloads: [nil]), "claims"),
            ("count x dim overflows", WireBytes.upsert(count: UInt32.max, dim: UInt32.max, ids: [], vectors: [], payloads: []), "malformed"),
            ("truncated", Array(WireBytes.upsert(count: 1, dim: 4, ids: [9], vectors: [1, 0, 0, 0], payloads: [nil]).prefix(30)), "malformed"),
            ("empty", [], "malformed"),
        ]
        for action in ["apply", "write", "apply-batch"] {
            for (what, body, fragment) in bodies {
                let sent = action == "apply-batch" ? ShardWire.encodeOperations([body]) : body
                let r = try request(a.port, "POST", "/internal/shards/c/0/\(action)", bytes: sent, headers: secret)
                #expect(r.status == 400 && r.body.contains(fragment), "\(action) \(what): \(r.status) \(r.body)")
            }
        }
        // A catch-up batch's own framing, and operations without sequence numbers.
        let one = WireBytes.upsert(count: 1, dim: 4, ids: [9], vectors: [1, 0, 0, 0], payloads: [nil])
        var huge = ByteWriter()
        huge.u32(UInt32.max)
        let batches: [(String, [UInt8], String)] = [
            ("no operations", ShardWire.encodeOperations([]), "0 operations"),
            ("2^32-1 operations", huge.bytes, "4294967295 operations"),
            ("bytes after the last", ShardWire.encodeOperations([one]) + [0], "after its last"),
            ("a length past the end", Array(ShardWire.encodeOperations([one]).dropLast()), "malformed"),
            ("no sequence numbers", ShardWire.encodeOperations([one]), "sequence numbers"),
        ]
        // A forwarded write's timeout is bounded as the API's is.
        let late = try request(a.port, "POST", "/internal/shards/c/0/write?timeout=1e12", bytes: one, headers: secret)
        #expect(late.status == 400 && late.body.contains("at most 86400"), "\(late.status) \(late.body)")
        for (what, body, fragment) in batches {
            let r = try request(a.port, "POST", "/internal/shards/c/0/apply-batch", bytes: body, headers: secret)
            #expect(r.status == 400 && r.body.contains(fragment), "apply-batch \(what): \(r.status) \(r.body)")
        }
        let searches: [(String, [UInt8], String)] = [
            ("k 0", WireBytes.search([1, 0, 0, 0], k: 0, ef: 10), "k is 0"),
            ("k 2^32-1", WireBytes.search([1, 0, 0, 0], k: UInt32.max, ef: 10), "k is 4294967295"),
            ("ef 0", WireBytes.search([1, 0, 0, 0], k: 1, ef: 0), "ef is 0"),
            ("2-d vector", WireBytes.search([1, 0], k: 1, ef: 4), "2 dimensions"),
            ("infinity", WireBytes.search([1, 0, 0, .infinity], k: 1, ef: 4), "finite"),
            ("JSON", Array(#"{"vector":[1,0,0,0],"k":1,"ef":4}"#.utf8), "malformed"),
            ("truncated", Array(WireBytes.search([1, 0, 0, 0], k: 1, ef: 4).prefix(20)), "malformed"),
        ]
        for (what, body, fragment) in searches {
            let r = try request(a.port, "POST", "/internal/shards/c/0/search", bytes: body, headers: secret)
            #expect(r.status == 400 && r.body.contains(fragment), "\(what): \(r.status) \(r.body)")
        }
        // A read at a position: the read is named by a known code, and its own body is checked as it is alone.
        for (what, body, fragment) in [("no read", [], "names read none"), ("read 9", [9], "names read 9"),
                                       ("a 2-d search", [1] + WireBytes.search([1, 0], k: 1, ef: 4), "2 dimensions"),
                                       ("a truncated scan", [2, 1], "malformed")] as [(String, [UInt8], String)] {
            let r = try request(a.port, "POST", "/internal/shards/c/0/at-position", bytes: body, headers: secret)
            #expect(r.status == 400 && r.body.contains(fragment), "at-position \(what): \(r.status) \(r.body)")
        }
        let counted = try request(a.port, "POST", "/internal/shards/c/0/at-position", bytes: [3], headers: secret)
        #expect(counted.status == 200 && counted.headers.lowercased().contains("content-length: 24"), "\(counted.headers)")
        let receives: [(String, [UInt8])] = [
            ("payload not an object", WireBytes.receive(clear: false, dim: 4, records: [(9, [1, 0, 0, 0], Array("\"text\"".utf8))])),
            ("wrong dimension", WireBytes.receive(clear: false, dim: 2, records: [(9, [1, 0], nil)])),
            ("no vectors", WireBytes.receive(clear: false, dim: 0, records: [(9, [], nil)])),
            ("infinity", WireBytes.receive(clear: false, dim: 4, records: [(9, [1, 0, 0, .infinity], nil)])),
            // A bad batch that asks to clear the shard first: nothing is cleared.
            ("clear with a bad point", WireBytes.receive(clear: true, dim: 2, records: [(9, [1, 0], nil)])),
            ("sequence number out of range", WireBytes.receive(clear: false, dim: 4, records: [], seq: UInt64.max)),
            ("JSON", Array(#"{"points":[]}"#.utf8)),
        ]
        for (what, body) in receives {
            let r = try request(a.port, "POST", "/internal/shards/c/0/receive", bytes: body, headers: secret)
            #expect(r.status == 400, "\(what): \(r.status) \(r.body)")
        }
        let proposals = [#"{"op":"create_collection","name":"bad name!","config":{"dim":4},"shards":[[1]]}"#,
                         #"{"op":"add_peer","id":5,"uri":"ftp://elsewhere"}"#, #"{"op":"nonsense"}"#, "[]"]
        for body in proposals {
            let r = try request(a.port, "POST", "/internal/propose", body, headers: secret)
            #expect(r.status == 400, "\(body): \(r.status) \(r.body)")
        }
        // Raft messages with values no peer could send: a match past the leader's log, a term at
        // the top of the range. Dropped; the leader goes on.
        let me = try #require(peerID(a))
        let term = try #require(((clusterInfo(a.port)?["raft_info"] as? [String: Any])?["term"] as? NSNumber)?.uint64Value)
        let raft = RaftCodec.encode([
            RaftEnvelope(from: 77, to: me, term: term, message: .appendResponse(success: true, match: UInt64.max, hint: 0)),
            RaftEnvelope(from: 77, to: me, term: UInt64.max, message: .requestVote(lastIndex: UInt64.max, lastTerm: UInt64.max)),
        ])
        #expect(try request(a.port, "POST", "/internal/raft", bytes: raft, headers: secret).status == 200)
        #expect(try request(a.port, "PUT", "/collections/c2", #"{"vectors":{"size":4,"distance":"Dot"}}"#).status == 200)

        // Nothing was stored, and after a restart the collection answers as before.
        func countIs2(_ port: Int) -> Bool {
            (try? request(port, "POST", "/collections/c/points/count", #"{"exact":true}"#))?.body.contains("\"count\":2") == true
        }
        #expect(countIs2(a.port))
        let (_, log) = a.stop()
        #expect(!log.contains("cannot be applied"), "\(log)")
        let again = try ServerProcess(scratch: a.scratch)
        #expect(eventually(10) { countIs2(again.port) })
        let search = try request(again.port, "POST", "/collections/c/points/search", #"{"vector":[1,0,0,0],"limit":1}"#)
        #expect(search.status == 200 && search.body.contains("\"id\":1"), "\(search.body)")
        #expect(try request(again.port, "PUT", "/collections/c/points?wait=true", #"{"points":[{"id":3,"vector":[0,0,1,0]}]}"#).status == 200)
        _ = again.stop()
    }

    @Test("an unreachable joiner stays a learner: the cluster keeps its quorum and stays writable, also after a restart")
    func unreachableJoiner() throws {
        let a = try ServerProcess()
        #expect(eventually(10) { PeerView(a.port)?.role == "Leader" })
        // The join waits (up to its timeout) for a catch-up that never comes; meanwhile and after,
        // metadata changes commit.
        let join = try RawConnection(port: a.port)
        let body = #"{"id":424242,"uri":"http://127.0.0.1:1"}"#
        join.send("POST /internal/join HTTP/1.1\r\nHost: x\r\nx-vq-cluster-secret: \(a.secret)\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)")
        #expect(eventually(10) {
            let raft = clusterInfo(a.port)?["raft_info"] as? [String: Any]
            return (raft?["learners"] as? [NSNumber])?.map(\.uint64Value) == [424242]
        }, "\(clusterInfo(a.port) ?? [:])")
        #expect(try request(a.port, "PUT", "/collections/w1", #"{"vectors":{"size":4,"distance":"Dot"}}"#).status == 200)
        let status = try vq(["cluster", "--url", a.url, "--format", "table"])
        #expect(status.stdout.contains("learner") && status.stdout.contains("quorum: yes (1 voter, 1 needed"), "\(status.stdout)")
        a.kill()
        let again = try ServerProcess(scratch: a.scratch)
        #expect(eventually(10) { PeerView(again.port)?.role == "Leader" })
        #expect(try request(again.port, "PUT", "/collections/w2", #"{"vectors":{"size":4,"distance":"Dot"}}"#).status == 200)
        // It holds nothing, so it is removed without --force.
        let removed = try vq(["cluster", "remove-peer", "424242", "--url", again.url])
        #expect(removed.status == 0, "\(removed.stderr)")
        #expect(PeerView(again.port)?.peers["424242"] == nil)
        _ = again.stop()
    }

    @Test("remove-peer of a peer holding replicas is refused naming them; --force moves them, and the removed peer stops")
    func removePeerWithReplicas() throws {
        let a = try ServerProcess()
        #expect(eventually(10) { PeerView(a.port)?.role == "Leader" })
        let b = try ServerProcess.joining(a)
        let c = try ServerProcess.joining(a)
        // Joined: all three vote (a learner counts as a peer before it does).
        #expect(eventually(20) {
            [a, b, c].allSatisfy { ((clusterInfo($0.port)?["raft_info"] as? [String: Any])?["voters"] as? [Any])?.count == 3 }
        })
        #expect(try request(a.port, "PUT", "/collections/r",
                            #"{"vectors":{"size":8,"distance":"Dot"},"shard_number":2,"replication_factor":2}"#).status == 200)
        #expect(try request(a.port, "PUT", "/collections/r/points?wait=true", ClusterTests.points(0..<300)).status == 200)
        let victim = try #require(peerID(c))
        let refused = try vq(["cluster", "remove-peer", String(victim), "--url", a.url])
        #expect(refused.status == 2 && refused.stderr.contains("holds replicas of r/") && refused.stderr.contains("--force"), "\(refused.stderr)")
        let forced = try vq(["cluster", "remove-peer", String(victim), "--force", "--url", a.url])
        #expect(forced.status == 0, "\(forced.stderr)")
        // The removed peer learns it and stops by itself.
        #expect(eventually(15) { !c.process.isRunning }, "the removed peer is still running")
        let (_, clog) = c.stop()
        #expect(clog.contains("removed from the cluster"), "\(clog.suffix(2000))")
        // Every shard still has two active replicas, none on the removed peer; nothing was lost,
        // and writes do not wait on it.
        for s in [a, b] {
            #expect(eventually(10) { PeerView(s.port)?.peers.count == 2 })
            let placement = try request(s.port, "GET", "/collections/r/cluster").body
            #expect(!placement.contains(String(victim)), "\(placement)")
            // Two active replicas of each shard, between this peer's and the other's.
            let result = try #require((try JSONSerialization.jsonObject(with: Data(placement.utf8)) as? [String: Any])?["result"] as? [String: Any])
            let replicas = ((result["local_shards"] as? [[String: Any]]) ?? []) + ((result["remote_shards"] as? [[String: Any]]) ?? [])
            for shard in 0..<2 {
                let states = replicas.filter { ($0["shard_id"] as? Int) == shard }.map { $0["state"] as? String ?? "" }
                #expect(states == ["Active", "Active"], "shard \(shard): \(states)")
            }
        }
        let meta = try #require(clusterInfo(a.port))
        #expect(((meta["raft_info"] as? [String: Any])?["voters"] as? [Any])?.count == 2)
        #expect(try request(b.port, "PUT", "/collections/r/points?wait=true", ClusterTests.points(300..<400)).status == 200)
        for s in [a, b] {
            let count = try request(s.port, "POST", "/collections/r/points/count", #"{"exact":true}"#)
            #expect(count.body.contains("\"count\":400"), "\(count.body)")
        }
        // A removed peer cannot come back on its directory: it is refused at start, or told at
        // its first election, and stops either way (bounded wait).
        let (_, backLog) = try runBounded(["serve", "--data-dir", c.scratch.data, "--listen", "127.0.0.1:0"], seconds: 20)
        #expect(backLog.contains("removed from its cluster") || backLog.contains("removed from the cluster"), "\(backLog)")
        _ = a.stop()
        _ = b.stop()
    }

    @Test("seeded random bodies to every internal route, with the secret, never kill the server")
    func randomBodies() throws {
        let a = try ServerProcess()
        #expect(eventually(10) { PeerView(a.port)?.role == "Leader" })
        #expect(try request(a.port, "PUT", "/collections/c", #"{"vectors":{"size":4,"distance":"Dot"}}"#).status == 200)
        // As a peer sends them: the secret, and who is calling (routes that check the sender need it).
        let secret = ["x-vq-cluster-secret": a.secret, "x-vq-peer": "7 http://127.0.0.1:9"]
        let valid = WireBytes.upsert(count: 2, dim: 4, ids: [1, 2], vectors: [1, 0, 0, 0, 0, 1, 0, 0], payloads: [Array(#"{"a":1}"#.utf8), nil])
        let seeds: [[UInt8]] = [valid, WireBytes.search([1, 0, 0, 0], k: 3, ef: 8), WireBytes.receive(clear: false, dim: 4, records: [(1, [1, 0, 0, 0], nil)]),
                                Array(#"{"op":"add_peer","id":7,"uri":"http://127.0.0.1:9"}"#.utf8), Array(#"{"voters":[1,2]}"#.utf8)]
        var rng = Rng(state: 20_261_129)
        var statuses: [Int: Int] = [:]
        for route in internalRoutes {
            // Membership routes get noise only: a valid join of an address nobody serves would
            // wait out its catch-up timeout (the unreachable-joiner test covers that case).
            let noiseOnly = route == "join" || route == "voters"
            for _ in 0..<25 {
                var body: [UInt8]
                switch noiseOnly ? 0 : rng.next() % 3 {
                case 0: body = (0..<Int(rng.next() % 200)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
                case 1:
                    // A seed with a few bytes flipped.
                    body = seeds[Int(rng.next() % UInt64(seeds.count))]
                    for _ in 0..<(1 + rng.next() % 4) where !body.isEmpty {
                        body[Int(rng.next() % UInt64(body.count))] = UInt8(truncatingIfNeeded: rng.next())
                    }
                default:
                    // A seed cut short.
                    let seed = seeds[Int(rng.next() % UInt64(seeds.count))]
                    body = Array(seed.prefix(Int(rng.next() % UInt64(seed.count + 1))))
                }
                // Every request is answered (a dead server answers nothing and this throws).
                let r = try request(a.port, "POST", "/internal/" + route, bytes: body, headers: secret)
                statuses[r.status, default: 0] += 1
            }
        }
        #expect(try request(a.port, "GET", "/healthz").status == 200)
        #expect(try request(a.port, "PUT", "/collections/c2", #"{"vectors":{"size":4,"distance":"Dot"}}"#).status == 200)
        // A call that does not name its sender where the receiver checks who sends: refused, naming the header.
        for route in ["shards/c/0/apply", "shards/c/0/receive", "shards/c/0/receive-files"] {
            let anonymous = try request(a.port, "POST", "/internal/" + route, bytes: valid, headers: ["x-vq-cluster-secret": a.secret])
            #expect(anonymous.status == 400 && anonymous.body.contains("x-vq-peer"), "\(route): \(anonymous.status) \(anonymous.body)")
        }
        let (status, log) = a.stop()
        #expect(status == 0, "\(log.suffix(3000))")
        #expect(statuses[400, default: 0] > 50, "\(statuses)")
    }
}
