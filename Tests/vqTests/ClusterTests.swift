#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Synchronization
import Testing

/// GET /cluster's result from a peer, or nil when it does not answer.
func clusterInfo(_ port: Int) -> [String: Any]? {
    guard let r = try? request(port, "GET", "/cluster"), r.status == 200,
          let top = (try? JSONSerialization.jsonObject(with: Data(r.body.utf8))) as? [String: Any] else { return nil }
    return top["result"] as? [String: Any]
}

/// Polls `condition` every 50 ms for up to `seconds`.
func eventually(_ seconds: Double, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if condition() { return true }
        usleep(50_000)
    }
    return condition()
}

struct PeerView {
    var id: String
    var leader: String?
    var role: String
    var peers: [String: String]
    /// Peers that vote (a joined peer is a learner until it has caught up).
    var voters: Int

    init?(_ port: Int) {
        guard let info = clusterInfo(port), let raft = info["raft_info"] as? [String: Any] else { return nil }
        id = "\(info["peer_id"] ?? "")"
        leader = raft["leader"].flatMap { $0 is NSNull ? nil : "\($0)" }
        role = raft["role"] as? String ?? ""
        voters = (raft["voters"] as? [Any])?.count ?? 0
        peers = ((info["peers"] as? [String: Any]) ?? [:]).mapValues { (($0 as? [String: Any])?["uri"] as? String) ?? "" }
    }
}

@Suite(.serialized) struct ClusterTests {
    /// Waits until every peer sees the same leader and exactly `count` peers.
    func settled(_ servers: [ServerProcess], count: Int, seconds: Double = 20) -> Bool {
        eventually(seconds) {
            let views = servers.compactMap { PeerView($0.port) }
            guard views.count == servers.count, let leader = views.first?.leader else { return false }
            return views.allSatisfy { $0.leader == leader && $0.peers.count == count && $0.voters == count }
                && views.contains { $0.id == leader && $0.role == "Leader" }
        }
    }

    @Test("a collection deleted while a peer was away, its delete compacted into a snapshot, is deleted on the peer's return")
    func deleteCompactedAway() throws {
        let compact = ["--raft-compact-entries", "10"]
        let a = try ServerProcess(compact)
        #expect(eventually(10) { PeerView(a.port)?.role == "Leader" })
        let b = try ServerProcess.joining(a, compact)
        let c = try ServerProcess.joining(a, compact)
        #expect(settled([a, b, c], count: 3))
        #expect(try request(a.port, "PUT", "/collections/gone", #"{"vectors":{"size":2,"distance":"Dot"},"replication_factor":3}"#).status == 200)
        #expect(try request(a.port, "PUT", "/collections/kept", #"{"vectors":{"size":2,"distance":"Dot"},"replication_factor":3}"#).status == 200)
        #expect(eventually(10) { FileManager.default.fileExists(atPath: c.scratch.data + "/collections/gone") })
        #expect(c.stop().0 == 0)
        // While c is away: the delete, then enough metadata changes that the log holding it is
        // compacted into a snapshot (every 10 entries here).
        #expect(try request(a.port, "DELETE", "/collections/gone").status == 200)
        for i in 0..<12 {
            #expect(try request(a.port, "PUT", "/collections/tmp\(i)", #"{"vectors":{"size":2,"distance":"Dot"}}"#).status == 200)
            #expect(try request(a.port, "DELETE", "/collections/tmp\(i)").status == 200)
        }
        let back = try ServerProcess(compact, scratch: c.scratch)
        #expect(eventually(30) { !FileManager.default.fileExists(atPath: c.scratch.data + "/collections/gone") }, "gone is still on the returning peer")
        // Made from the snapshot in the same pass, right after the delete (if c left before it was made).
        #expect(eventually(10) { FileManager.default.fileExists(atPath: c.scratch.data + "/collections/kept") })
        let listed = try request(back.port, "GET", "/collections").body
        #expect(listed.contains("kept") && !listed.contains("gone"), "\(listed)")
        let log = back.stop().1
        #expect(log.contains("deleted by the cluster while this peer was away"), "\(log)")
        for p in [a, b] { _ = p.stop() }
    }

    @Test("join, leader killed and a new one elected, restart at a new address, remove-peer, vq cluster")
    func membership() throws {
        let a = try ServerProcess()
        #expect(eventually(10) { PeerView(a.port)?.role == "Leader" })
        let b = try ServerProcess.joining(a)
        let c = try ServerProcess.joining(b)  // through a follower: forwarded to the leader
        #expect(settled([a, b, c], count: 3), "\([a, b, c].map { PeerView($0.port).map { "\($0)" } ?? "down" })")
        let ids = [a, b, c].map { PeerView($0.port)!.id }
        #expect(Set(ids).count == 3)

        // Kill the leader: the other two elect a new one, and a metadata change commits again
        // (removing the dead peer, asked of either survivor).
        let leaderID = try #require(PeerView(a.port)?.leader)
        let all = [a, b, c]
        let dead = try #require(all.first { PeerView($0.port)?.id == leaderID })
        let survivors = all.filter { $0 !== dead }
        dead.kill()
        #expect(eventually(15) {
            let views = survivors.compactMap { PeerView($0.port) }
            return views.count == 2 && views[0].leader != nil && views[0].leader != leaderID && views[0].leader == views[1].leader
        })
        var removed = false
        for _ in 0..<100 where !removed {
            removed = (try? request(survivors[0].port, "DELETE", "/cluster/peer/\(leaderID)"))?.status == 200
            if !removed { usleep(100_000) }
        }
        #expect(removed)
        #expect(settled(survivors, count: 2))

        // Restart a survivor on its directory, at a new port: it rejoins by itself and the
        // cluster learns its new address.
        let restarting = survivors[1]
        let restartedID = PeerView(restarting.port)!.id
        #expect(restarting.stop().0 == 0)
        // One of two voters cannot commit: a metadata change's ?timeout bounds the wait (Qdrant's
        // "wait for operation commit"), answered 503 after it rather than after the default 10 s.
        let vectors = #"{"vectors":{"size":2,"distance":"Dot"}}"#
        let began = Date()
        let alone = try request(survivors[0].port, "PUT", "/collections/uncommitted?timeout=1", vectors)
        #expect(alone.status == 503 && alone.body.contains("did not commit in time"), "\(alone.status) \(alone.body)")
        #expect(Date().timeIntervalSince(began) < 6)
        let restarted = try ServerProcess(scratch: restarting.scratch)
        let pair = [survivors[0], restarted]
        #expect(settled(pair, count: 2))
        // The timed-out change was not taken back (as in Qdrant): if it reached the leader's log
        // it commits once a majority is back (the peer that was asked may have forwarded it to
        // the stopped leader instead). A change made after it commits after it, so then its fate
        // is known; both go, so the peers hold no replicas when one is removed below.
        #expect(try request(survivors[0].port, "PUT", "/collections/after", vectors).status == 200)
        for name in ["uncommitted", "after"] where try request(survivors[0].port, "GET", "/collections/\(name)").status == 200 {
            #expect(try request(survivors[0].port, "DELETE", "/collections/\(name)").body.contains(#""result":true"#))
        }
        #expect(eventually(10) { PeerView(survivors[0].port)?.peers[restartedID] == restarted.url })
        #expect(PeerView(restarted.port)?.id == restartedID)

        // vq cluster prints both peers and the leader; remove-peer takes one out; the last one stays.
        let table = try vq(["cluster", "--url", survivors[0].url, "--format", "table"])
        #expect(table.status == 0)
        #expect(table.lines.count == 5 && table.stdout.contains("leader") && table.stdout.contains(restarted.url), "\(table.stdout)")
        #expect(table.stdout.contains("quorum: yes (2 voters, 2 needed; survives 0 failed peers)"), "\(table.stdout)")
        #expect(table.stdout.contains("up"))
        let json = try vq(["cluster", "--url", restarted.url, "--format", "json"])
        #expect(json.stdout.contains("\"raft_info\""))
        let remove = try vq(["cluster", "remove-peer", restartedID, "--url", survivors[0].url])
        #expect(remove.status == 0, "\(remove.stderr)")
        #expect(eventually(10) { PeerView(survivors[0].port)?.peers.count == 1 })
        let last = PeerView(survivors[0].port)!.id
        let refused = try vq(["cluster", "remove-peer", last, "--url", survivors[0].url])
        #expect(refused.status == 2 && refused.stderr.contains("last peer"), "\(refused.stderr)")
        for s in pair { _ = s.stop() }
        // A directory that belongs to a cluster is restarted with serve, not joined again.
        let again = try vq(["join", survivors[0].url, "--data-dir", restarted.scratch.data, "--listen", "127.0.0.1:0"])
        #expect(again.status == 2 && again.stderr.contains("already belongs to a cluster"), "\(again.stderr)")
    }

    @Test("the cluster secret guards internal routes; API keys do not open them")
    func secret() throws {
        let a = try ServerProcess(["--cluster-secret", "s3cret-0123456789", "--api-key", "user"])
        #expect(eventually(10) { (try? request(a.port, "GET", "/cluster", headers: ["api-key": "user"]))?.body.contains("Leader") == true })
        let raft = try request(a.port, "POST", "/internal/raft", "x", headers: ["api-key": "user"])
        #expect(raft.status == 403 && raft.body.contains("cluster secret"), "\(raft.body)")
        let garbage = try request(a.port, "POST", "/internal/raft", "garbage", headers: ["x-vq-cluster-secret": "s3cret-0123456789"])
        #expect(garbage.status == 400, "\(garbage.status) \(garbage.body)")
        // A joiner without the secret is refused; with it, it joins.
        let outsider = try vq(["join", a.url, "--data-dir", Scratch().data, "--listen", "127.0.0.1:0"])
        #expect(outsider.status == 2 && outsider.stderr.contains("needs the cluster secret"), "\(outsider.stderr)")
        let wrong = try vq(["join", a.url, "--data-dir", Scratch().data, "--listen", "127.0.0.1:0", "--cluster-secret", "not-the-secret-at-all"])
        #expect(wrong.status == 1 && wrong.stderr.contains("403"), "\(wrong.stderr)")
        let b = try ServerProcess(["--cluster-secret", "s3cret-0123456789"], command: ["join", a.url])
        #expect(eventually(15) {
            ((try? request(a.port, "GET", "/cluster", headers: ["api-key": "user"]))?.body.components(separatedBy: "\"uri\"").count ?? 0) == 3
        })
        _ = b.stop()
        _ = a.stop()
    }

    /// A body of `ids` as 8-d points whose vectors encode the id (so search results are checkable).
    static func points(_ ids: Range<Int>) -> String {
        "{\"points\":[" + ids.map { i in "{\"id\":\(i),\"vector\":[\(i % 97),\(i % 89),\(i % 83),\(i % 79),1,2,3,\(i / 1000)]}" }.joined(separator: ",") + "]}"
    }

    @Test("3 peers, 3 shards x 2 replicas: every point from every peer; a peer killed mid-writes loses no acknowledged write")
    func replicatedData() throws {
        let a = try ServerProcess()
        #expect(eventually(10) { PeerView(a.port)?.role == "Leader" })
        let b = try ServerProcess.joining(a)
        let c = try ServerProcess.joining(a)
        let peers = [a, b, c]
        #expect(settled(peers, count: 3))
        // Too many replicas for the peers: refused, naming the peer count.
        let tooMany = try request(b.port, "PUT", "/collections/bad", #"{"vectors":{"size":8,"distance":"Euclid"},"replication_factor":4}"#)
        #expect(tooMany.status == 400 && tooMany.body.contains("3 peers"), "\(tooMany.body)")
        #expect(try request(b.port, "PUT", "/collections/r", #"{"vectors":{"size":8,"distance":"Euclid"},"shard_number":3,"replication_factor":2}"#).status == 200)
        let total = 20_000
        for start in stride(from: 0, to: total, by: 2000) {
            let r = try request(peers[start / 2000 % 3].port, "PUT", "/collections/r/points?wait=true", Self.points(start..<start + 2000))
            #expect(r.status == 200, "\(r.body)")
        }
        // Read consistency: one replica per shard by default; 2, majority, quorum and all ask both
        // replicas of every shard (a position call and the read each), and agree here; more
        // replicas than the collection has is refused, naming its replication_factor.
        let one = try request(a.port, "POST", "/collections/r/points/query?consistency=1", #"{"query":[0,0,0,0,0,0,0,0],"limit":3}"#)
        #expect(one.status == 200)
        for consistency in ["2", "majority", "quorum", "all"] {
            let q = try request(a.port, "POST", "/collections/r/points/query?consistency=\(consistency)", #"{"query":[0,0,0,0,0,0,0,0],"limit":3}"#)
            let ids = { (body: String) in body.components(separatedBy: "\"id\":").dropFirst().compactMap { Int($0.prefix { $0.isNumber }) } }
            #expect(q.status == 200 && ids(q.body) == ids(one.body) && ids(q.body).count == 3, "\(consistency): \(q.body) against \(one.body)")
            let counted = try request(b.port, "POST", "/collections/r/points/count?consistency=\(consistency)", #"{"exact":true}"#)
            #expect(counted.body.contains(#""count":20000"#), "\(counted.body)")
        }
        let beyondFactor = try request(a.port, "POST", "/collections/r/points/query?consistency=3", #"{"query":[0,0,0,0,0,0,0,0],"limit":3}"#)
        #expect(beyondFactor.status == 400 && beyondFactor.body.contains("replication_factor 2"), "\(beyondFactor.body)")
        // Every peer holds 2 of the 3 shards and answers for all of them.
        for p in peers {
            let info = try request(p.port, "GET", "/collections/r/cluster").body
            #expect(info.components(separatedBy: "\"shard_id\"").count - 1 == 6, "\(info)")
            #expect(try request(p.port, "POST", "/collections/r/points/count", #"{"exact":true}"#).body.contains(#""count":20000"#))
            let some = (0..<50).map { String($0 * 397) }.joined(separator: ",")
            let got = try request(p.port, "POST", "/collections/r/points", "{\"ids\":[\(some)]}").body
            #expect(got.components(separatedBy: "\"id\"").count - 1 == 50)
            let q = try request(p.port, "POST", "/collections/r/points/query", #"{"query":[5,5,5,5,1,2,3,0],"limit":5,"params":{"exact":true}}"#).body
            #expect(q.contains(#""id":5,"#), "\(q)")
        }

        // Named vectors across peers: "a" on every point, "b" on even ones; searched by name on
        // remote replicas, returned by name, one deleted from a point.
        #expect(try request(a.port, "PUT", "/collections/n",
                            #"{"vectors":{"a":{"size":2,"distance":"Euclid"},"b":{"size":2,"distance":"Euclid"}},"sparse_vectors":{"s":{"modifier":"idf"}},"shard_number":3,"replication_factor":2}"#).status == 200)
        let named = (0..<300).map { i in
            "{\"id\":\(i),\"vector\":{\"s\":{\"indices\":[\(i % 10)],\"values\":[\(i)]},\"a\":[\(i % 7),\(i % 5)]" + (i % 2 == 0 ? ",\"b\":[\(i),0]}}" : "}}")
        }
        let namedUp = try request(c.port, "PUT", "/collections/n/points?wait=true", "{\"points\":[\(named.joined(separator: ","))]}")
        #expect(namedUp.status == 200, "\(namedUp.body)")
        #expect(try request(b.port, "POST", "/collections/n/points/vectors/delete?wait=true", #"{"points":[100],"vector":["b"]}"#).status == 200)
        func checkNamed(_ port: Int) throws {
            let q = try request(port, "POST", "/collections/n/points/query", #"{"query":[100.5,0],"using":"b","limit":5}"#).body
            let ids = q.components(separatedBy: "\"id\":").dropFirst().compactMap { Int($0.prefix { $0.isNumber }) }
            #expect(ids == [102, 98, 104, 96, 106], "\(q)")
            let got = try request(port, "POST", "/collections/n/points", #"{"ids":[1,2],"with_vector":true,"with_payload":false}"#).body
            #expect(got.contains(#"{"id":1,"vector":{"a":[1.0,1.0],"s":{"indices":[1],"values":[1.0]}}}"#), "\(got)")
            #expect(got.contains(#"{"id":2,"vector":{"a":[2.0,2.0],"b":[2.0,0.0],"s":{"indices":[2],"values":[2.0]}}}"#), "\(got)")
            // Sparse with IDF over the whole collection (every shard's counts, remote ones included):
            // 30 of 300 points hold index 3, idf = ln(270.5 / 30.5 + 1).
            let sparse = try request(port, "POST", "/collections/n/points/query", #"{"query":{"indices":[3],"values":[1]},"using":"s","limit":3}"#).body
            let sparseIDs = sparse.components(separatedBy: "\"id\":").dropFirst().compactMap { Int($0.prefix { $0.isNumber }) }
            #expect(sparseIDs == [293, 283, 273], "\(sparse)")
            let top = sparse.components(separatedBy: "\"score\":").dropFirst().first.flatMap { Double($0.prefix { $0.isNumber || $0 == "." }) }
            #expect(top.map { abs($0 - 293 * log(270.5 / 30.5 + 1)) < 0.05 } == true, "\(sparse)")
        }
        for p in peers { try checkNamed(p.port) }

        // Writes stream through b while c is killed: every acknowledged batch is then found
        // from both survivors, and searches stay complete.
        let acknowledged = Mutex<[Range<Int>]>([])
        let failed = Mutex(0)
        let stop = Mutex(false)
        let writerPort = b.port
        let writer = Thread {
            for start in stride(from: total, to: total + 1000 * 100, by: 100) where !stop.withLock({ $0 }) {
                if let r = try? request(writerPort, "PUT", "/collections/r/points?wait=true", Self.points(start..<start + 100)), r.status == 200 {
                    acknowledged.withLock { $0.append(start..<start + 100) }
                } else {
                    failed.withLock { $0 += 1 }
                }
            }
        }
        writer.start()
        #expect(eventually(20) { acknowledged.withLock { $0.count } >= 5 })
        c.kill()
        let atKill = acknowledged.withLock { $0.count }
        var completeSearches = 0
        for i in 0..<20 {
            let q = try request(a.port, "POST", "/collections/r/points/query", "{\"query\":[\(i),\(i),\(i),\(i),1,2,3,0],\"limit\":10}")
            if q.status == 200 && q.body.components(separatedBy: "\"id\"").count - 1 == 10 { completeSearches += 1 }
        }
        #expect(completeSearches == 20)
        #expect(eventually(30) { acknowledged.withLock { $0.count } >= atKill + 20 }, "writes did not go on after the kill")
        stop.withLock { $0 = true }
        while !writer.isFinished { usleep(20_000) }
        let acked = acknowledged.withLock { $0 }
        #expect(failed.withLock { $0 } <= 3, "writes failed while the dead replica was marked")
        for p in [a, b] {
            for range in acked {
                let ids = range.map(String.init).joined(separator: ",")
                let got = try request(p.port, "POST", "/collections/r/points", "{\"ids\":[\(ids)]}")
                #expect(got.body.components(separatedBy: "\"id\"").count - 1 == range.count, "batch \(range) from \(p.port): \(got.body.prefix(200))")
            }
        }
        // The dead peer's replicas are marked Dead; reads keep working from the survivors, with
        // consistency all (the active replicas); 2 cannot be met where one replica is left.
        let view = try request(a.port, "GET", "/collections/r/cluster").body
        #expect(view.contains("Dead"), "\(view)")
        let allAlive = try request(a.port, "POST", "/collections/r/points/count?consistency=all", #"{"exact":true}"#)
        #expect(allAlive.body.contains("\"count\":\(total + acked.count * 100)"), "\(allAlive.body)")
        let two = try request(a.port, "POST", "/collections/r/points/count?consistency=2", #"{"exact":true}"#)
        #expect(two.status == 503 && two.body.contains("1 are active"), "\(two.body)")

        // The peer comes back on its directory: it rejoins, its replicas are copied from the
        // primaries and become Active, and it then answers for everything acknowledged.
        let back = try ServerProcess(scratch: c.scratch)
        #expect(eventually(30) {
            let v = (try? request(a.port, "GET", "/collections/r/cluster"))?.body ?? "Dead"
            return !v.contains("Dead") && !v.contains("Partial")
        }, "replicas did not recover")
        let expected = total + acked.count * 100
        #expect(try request(back.port, "POST", "/collections/r/points/count", #"{"exact":true}"#).body.contains("\"count\":\(expected)"))
        try checkNamed(back.port)
        let local = try request(back.port, "GET", "/collections/r/cluster").body
        let counts = local.components(separatedBy: "\"points_count\":").dropFirst().compactMap { Int($0.prefix { $0.isNumber }) }
        #expect(counts.count == 2 && counts.reduce(0, +) > expected / 2, "\(local)")

        // Shard operations: move a replica to the peer that lacks it, drop down to one replica,
        // and the last one cannot be dropped.
        let shard0 = try request(a.port, "GET", "/collections/r/cluster").body
        let ids = [a, b, back].map { PeerView($0.port)!.id }
        let holders = ids.filter { id in
            (try? request([a, b, back][ids.firstIndex(of: id)!].port, "GET", "/collections/r/cluster").body)?
                .contains(#"{"shard_id":0,"points_count""#) == true
        }
        #expect(holders.count == 2, "\(shard0)")
        let lacking = try #require(ids.first { !holders.contains($0) })
        // Asked of a follower: checked there, carried out by the leader (as rebalances are).
        let follower = try #require([a, b, back].first { PeerView($0.port)?.role == "Follower" })
        let move = try request(follower.port, "POST", "/collections/r/cluster",
                               "{\"move_shard\":{\"shard_id\":0,\"from_peer_id\":\(holders[0]),\"to_peer_id\":\(lacking)}}")
        #expect(move.status == 200, "\(move.body)")
        let badMove = try request(follower.port, "POST", "/collections/r/cluster",
                                  "{\"move_shard\":{\"shard_id\":9,\"from_peer_id\":\(holders[0]),\"to_peer_id\":\(lacking)}}")
        #expect(badMove.status == 400 && badMove.body.contains("shard_id"), "\(badMove.body)")
        let moved = [a, b, back][ids.firstIndex(of: lacking)!]
        #expect(try request(moved.port, "GET", "/collections/r/cluster").body.contains(#"{"shard_id":0,"points_count""#))
        #expect(try request(b.port, "POST", "/collections/r/points/count", #"{"exact":true}"#).body.contains("\"count\":\(expected)"))
        // A named-vector shard copied whole to a peer that lacks it.
        let namedHolders = ids.filter { id in
            (try? request([a, b, back][ids.firstIndex(of: id)!].port, "GET", "/collections/n/cluster").body)?
                .contains(#"{"shard_id":1,"points_count""#) == true
        }
        let namedLacking = try #require(ids.first { !namedHolders.contains($0) })
        #expect(try request(a.port, "POST", "/collections/n/cluster",
                            "{\"move_shard\":{\"shard_id\":1,\"from_peer_id\":\(namedHolders[0]),\"to_peer_id\":\(namedLacking)}}").status == 200)
        for p in [a, b, back] { try checkNamed(p.port) }
        let drop = try request(a.port, "POST", "/collections/r/cluster", "{\"drop_replica\":{\"shard_id\":0,\"peer_id\":\(lacking)}}")
        #expect(drop.status == 200, "\(drop.body)")
        let last = try request(a.port, "POST", "/collections/r/cluster", "{\"drop_replica\":{\"shard_id\":0,\"peer_id\":\(holders[1])}}")
        #expect(last.status == 400 && last.body.contains("only active replica"), "\(last.body)")
        let removeSole = try request(a.port, "DELETE", "/cluster/peer/\(holders[1])")
        #expect(removeSole.status == 400 && removeSole.body.contains("holds replicas of") && removeSole.body.contains("r/0"), "\(removeSole.body)")
        #expect(try request(back.port, "POST", "/collections/r/points/count", #"{"exact":true}"#).body.contains("\"count\":\(expected)"))
        // The restarted peer caught up with the operations it missed; the moved shard was copied
        // whole, as its segment files.
        let each = [a, b, back].map { $0.stop().1 }
        let logs = each.joined()
        #expect(logs.contains(#"mode="range""#), "\(logs.suffix(3000))")
        #expect(!each[[a, b, back].firstIndex { $0 === follower }!].contains(#"replica moved collection="r""#), "the follower forwarded the move")
        #expect(logs.contains(#"replica moved collection="r""#))
        #expect(logs.contains(#"mode="files""#))
        #expect(!logs.contains(#"mode="copy""#), "no copy point by point")
    }

    @Test("a restarted peer replays the metadata log without replaying its effects: delete then re-create keeps the new data")
    func replayIsNotRedone() throws {
        let a = try ServerProcess()
        #expect(eventually(10) { PeerView(a.port)?.role == "Leader" })
        let create = #"{"vectors":{"size":2,"distance":"Dot"}}"#
        #expect(try request(a.port, "PUT", "/collections/z", create).status == 200)
        #expect(try request(a.port, "PUT", "/collections/z/points?wait=true", #"{"points":[{"id":1,"vector":[1,0]},{"id":2,"vector":[0,1]},{"id":3,"vector":[1,1]}]}"#).status == 200)
        #expect(try request(a.port, "DELETE", "/collections/z").status == 200)
        #expect(try request(a.port, "PUT", "/collections/z", create).status == 200)
        #expect(try request(a.port, "PUT", "/collections/z/points?wait=true", #"{"points":[{"id":7,"vector":[1,0]}]}"#).status == 200)
        #expect(a.stop().0 == 0)
        let again = try ServerProcess(scratch: a.scratch)
        #expect(eventually(10) { PeerView(again.port)?.role == "Leader" })
        Thread.sleep(forTimeInterval: 0.3)
        #expect(try request(again.port, "POST", "/collections/z/points/count", #"{"exact":true}"#).body.contains(#""count":1"#))
        #expect(try request(again.port, "GET", "/collections/z/points/7").status == 200)
        _ = again.stop()
    }

    @Test("read fan-out: settings change live on every peer; a stalled peer's shard is answered by its other replica")
    func readFanOut() throws {
        // Round robin on a: the stalled peer is asked first for about half the searches.
        let a = try ServerProcess(["--read-replica-choice", "round-robin"])
        #expect(eventually(10) { PeerView(a.port)?.role == "Leader" })
        let b = try ServerProcess.joining(a)
        let x = try ServerProcess.joining(a)
        #expect(settled([a, b, x], count: 3))
        #expect(try request(a.port, "PUT", "/collections/f", #"{"vectors":{"size":8,"distance":"Euclid"},"shard_number":3,"replication_factor":2}"#).status == 200)
        #expect(try request(a.port, "PUT", "/collections/f/points?wait=true", Self.points(0..<600)).status == 200)
        // Changed through one peer, in effect on all of them (through Raft, no restart).
        let patched = try vq(["update-collection", "f", "--read-fan-out-delay-ms", "30", "--url", x.url])
        #expect(patched.status == 0 && patched.stdout.contains(#""read_fan_out_delay_ms":30"#), "\(patched.stderr)")
        for p in [a, b, x] {
            #expect(eventually(10) { (try? request(p.port, "GET", "/collections/f"))?.body.contains(#""read_fan_out_delay_ms":30"#) == true })
        }
        // Warm up, then stall x: a holds two shards; the third has replicas on b and x only.
        for i in 0..<5 { _ = try request(a.port, "POST", "/collections/f/points/query", "{\"query\":[\(i),0,0,0,1,2,3,0],\"limit\":10}") }
        x.pause()
        defer { x.resume() }
        var slowest = 0.0
        var complete = 0
        for i in 0..<20 {
            let t = Date()
            let q = try request(a.port, "POST", "/collections/f/points/query", "{\"query\":[\(i),\(i),0,0,1,2,3,0],\"limit\":10}")
            slowest = max(slowest, Date().timeIntervalSince(t))
            if q.status == 200 && q.body.components(separatedBy: "\"id\"").count - 1 == 10 { complete += 1 }
        }
        #expect(complete == 20)
        #expect(slowest < 2, "a search took \(slowest) s with the stalled replica")
        let metrics = try request(a.port, "GET", "/metrics").body
        let fanOuts = metrics.components(separatedBy: "\nvq_read_fan_outs_total ").dropFirst().first.flatMap { Int($0.prefix { $0.isNumber }) } ?? 0
        #expect(fanOuts >= 1, "no fan-out counted: \(metrics.suffix(600))")
        x.resume()
        // A payload index made through one peer goes through Raft: every peer indexes its replicas,
        // and filters, facets and counts agree on every peer.
        #expect(try request(a.port, "PUT", "/collections/f/points/payload?wait=true",
                            #"{"payload":{"g":"low"},"points":[0,1,2,3,4,5,6,7,8,9]}"#).status == 200)
        let made = try vq(["create-index", "f", "g", "keyword", "--url", b.url])
        #expect(made.status == 0, "\(made.stderr)")
        for p in [a, b, x] {
            #expect(eventually(10) { (try? request(p.port, "GET", "/collections/f"))?.body.contains(#""g":{"data_type":"keyword""#) == true })
            let count = try request(p.port, "POST", "/collections/f/points/count", #"{"filter":{"must":[{"key":"g","match":{"value":"low"}}]},"exact":true}"#)
            #expect(count.body.contains(#""count":10"#), "\(count.body)")
            let facet = try request(p.port, "POST", "/collections/f/facet", #"{"key":"g"}"#)
            #expect(facet.body.contains(#"{"value":"low","count":10}"#), "\(facet.body)")
        }
        // An alias made through one peer (Raft) names the collection on every peer.
        let alias = try request(x.port, "POST", "/collections/aliases", #"{"actions":[{"create_alias":{"collection_name":"f","alias_name":"current"}}]}"#)
        #expect(alias.status == 200, "\(alias.body)")
        for p in [a, b, x] {
            #expect(eventually(10) { (try? request(p.port, "POST", "/collections/current/points/count", #"{"exact":true}"#))?.body.contains(#""count":600"#) == true })
            #expect(try request(p.port, "GET", "/aliases").body.contains(#"{"alias_name":"current","collection_name":"f"}"#))
        }
        for p in [a, b, x] { _ = p.stop() }
    }

    @Test("concurrent writes through every peer, forwarded to each other's primaries, all succeed with no replica lost")
    func concurrentForwardedWrites() throws {
        let a = try ServerProcess()
        #expect(eventually(10) { PeerView(a.port)?.role == "Leader" })
        let b = try ServerProcess.joining(a)
        let c = try ServerProcess.joining(a)
        #expect(settled([a, b, c], count: 3))
        #expect(try request(a.port, "PUT", "/collections/w", #"{"vectors":{"size":8,"distance":"Euclid"},"shard_number":3,"replication_factor":2}"#).status == 200)
        let ports = [a.port, b.port, c.port]
        let failures = Mutex<[String]>([])
        let writers = 12, batches = 15
        let done = DispatchGroup()
        for w in 0..<writers {
            done.enter()
            Thread.detachNewThread {
                defer { done.leave() }
                for i in 0..<batches {
                    let start = (w * batches + i) * 50
                    do {
                        let r = try request(ports[(w + i) % 3], "PUT", "/collections/w/points?wait=true", Self.points(start..<start + 50))
                        if r.status != 200 { failures.withLock { $0.append("\(r.status) \(r.body.prefix(200))") } }
                    } catch {
                        failures.withLock { $0.append("\(error)") }
                    }
                }
            }
        }
        #expect(done.wait(timeout: .now() + 60) == .success, "writers did not finish in 60 s")
        #expect(failures.withLock { $0 }.isEmpty, "\(failures.withLock { $0 }.prefix(3))")
        #expect(try request(b.port, "POST", "/collections/w/points/count", #"{"exact":true}"#).body.contains("\"count\":\(writers * batches * 50)"))
        #expect(!(try request(c.port, "GET", "/collections/w/cluster").body.contains("Dead")))
        for p in [a, b, c] { _ = p.stop() }
    }

    /// Replicas per peer of `collection`, as `port`'s GET /collections/NAME/cluster tells.
    static func replicaCounts(_ port: Int, _ collection: String) -> [String: Int] {
        guard let r = try? request(port, "GET", "/collections/\(collection)/cluster"),
              let top = (try? JSONSerialization.jsonObject(with: Data(r.body.utf8))) as? [String: Any],
              let result = top["result"] as? [String: Any] else { return [:] }
        var counts: [String: Int] = [:]
        counts["\(result["peer_id"] ?? "")"] = (result["local_shards"] as? [Any])?.count ?? 0
        for case let remote as [String: Any] in (result["remote_shards"] as? [Any]) ?? [] {
            counts["\(remote["peer_id"] ?? "")", default: 0] += 1
        }
        return counts
    }

    @Test("rebalance onto a joined peer (planned, then moved while serving); --auto-rebalance does it by itself; repair finds equal replicas")
    func rebalanceAndRepair() throws {
        let x = try ServerProcess(["--auto-rebalance"])
        #expect(eventually(10) { PeerView(x.port)?.role == "Leader" })
        // Four shards made while x is alone: all on x.
        #expect(try request(x.port, "PUT", "/collections/auto", #"{"vectors":{"size":8,"distance":"Euclid"},"shard_number":4}"#).status == 200)
        #expect(try request(x.port, "PUT", "/collections/auto/points?wait=true", Self.points(0..<1000)).status == 200)
        let y = try ServerProcess.joining(x, ["--auto-rebalance"])
        #expect(settled([x, y], count: 2))
        // The leader (x) moves two shards to y without being asked.
        #expect(eventually(30) { Self.replicaCounts(x.port, "auto").values.sorted() == [2, 2] }, "\(Self.replicaCounts(x.port, "auto"))")
        #expect(try request(y.port, "POST", "/collections/auto/points/count", #"{"exact":true}"#).body.contains(#""count":1000"#))
        // The moved shards' points leave x (deleted once its replicas are dropped).
        #expect(eventually(10) { x.logSoFar.components(separatedBy: "dropped replica cleared").count - 1 == 2 }, "\(x.logSoFar)")
        for p in [x, y] { _ = p.stop() }

        // Without the setting: nothing moves until asked.
        let a = try ServerProcess()
        #expect(eventually(10) { PeerView(a.port)?.role == "Leader" })
        let b = try ServerProcess.joining(a)
        #expect(settled([a, b], count: 2))
        // A third peer without the setting: nothing moves until asked.
        #expect(try request(a.port, "PUT", "/collections/r", #"{"vectors":{"size":8,"distance":"Euclid"},"shard_number":3,"replication_factor":2}"#).status == 200)
        #expect(try request(b.port, "PUT", "/collections/r/points?wait=true", Self.points(0..<3000)).status == 200)
        let c = try ServerProcess.joining(a)
        #expect(settled([a, b, c], count: 3))
        let cID = try #require(PeerView(c.port)?.id)
        let planned = try vq(["cluster", "rebalance", "r", "--dry-run", "--url", c.url])
        #expect(planned.status == 0, "\(planned.stderr)")
        let plannedMoves = planned.stdout.components(separatedBy: "\"to_peer_id\":\(cID)").count - 1
        #expect(plannedMoves == 2, "6 replicas over 3 peers: 2 move to the new one: \(planned.stdout)")
        #expect(Self.replicaCounts(a.port, "r")[cID] == nil, "a dry run moves nothing")
        // Writes go on while replicas move.
        let writing = Atomic<Bool>(true)
        let failures = Mutex<[String]>([])
        let writePort = b.port
        let writer = Thread {
            var start = 3000
            while writing.load(ordering: .relaxed) && start < 20_000 {
                do {
                    let r = try request(writePort, "PUT", "/collections/r/points?wait=true", Self.points(start..<start + 100))
                    if r.status != 200 { failures.withLock { $0.append("\(r.status) \(r.body.prefix(200))") } }
                } catch { failures.withLock { $0.append("\(error)") } }
                start += 100
            }
            writing.store(false, ordering: .relaxed)
        }
        writer.start()
        let moved = try vq(["cluster", "rebalance", "--url", b.url])
        writing.store(false, ordering: .relaxed)
        #expect(moved.status == 0, "\(moved.stderr)")
        #expect(moved.stderr.contains("moved 2 replicas"), "\(moved.stderr) \(moved.stdout)")
        #expect(eventually(10) { !writing.load(ordering: .relaxed) })
        #expect(failures.withLock { $0 }.isEmpty, "\(failures.withLock { $0 }.prefix(3))")
        #expect(Self.replicaCounts(a.port, "r").values.sorted() == [2, 2, 2], "\(Self.replicaCounts(a.port, "r"))")
        let again = try vq(["cluster", "rebalance", "--url", a.url])
        #expect(again.status == 0 && again.stderr.contains("already even"), "\(again.stderr)")

        // Every peer answers with every acknowledged point; the replicas agree.
        func count(_ port: Int) throws -> Int? {
            let body = try request(port, "POST", "/collections/r/points/count", #"{"exact":true}"#).body
            return body.range(of: #""count":"#).flatMap { Int(body[$0.upperBound...].prefix { $0.isNumber }) }
        }
        let total = try count(a.port)
        #expect((total ?? 0) >= 3000)
        for p in [b, c] { #expect(try count(p.port) == total) }
        // A replica marked Dead by a slow answer under load is recovered in the background first.
        #expect(eventually(30) { (try? request(a.port, "GET", "/collections/r/cluster").body).map { !$0.contains("Dead") && !$0.contains("Partial") } == true })
        let repair = try vq(["cluster", "repair", "r", "--url", c.url])
        #expect(repair.status == 0, "\(repair.stderr)")
        #expect(repair.stderr.contains("compared 3 replicas: 0 points repaired"), "\(repair.stderr) \(repair.stdout) \((try? request(a.port, "GET", "/collections/r/cluster").body) ?? "")")
        #expect(repair.stdout.components(separatedBy: "\"differing_buckets\":0").count - 1 == 3, "\(repair.stdout)")
        // Refused by name: an unknown shard, a query it does not take, a flag of another action.
        #expect(try request(a.port, "POST", "/collections/r/cluster/repair?shard=9").status == 400)
        #expect(try request(a.port, "POST", "/collections/r/cluster/repair?wait=false").status == 400)
        #expect(try request(a.port, "POST", "/cluster/rebalance?dry_run=maybe").status == 400)
        #expect(try request(a.port, "POST", "/cluster/rebalance?collection=nope").status == 404)
        #expect(try vq(["cluster", "repair", "--url", a.url]).status == 2)
        #expect(try vq(["cluster", "status", "--dry-run", "--url", a.url]).status == 2)

        // Qdrant's transfer methods: stream_records copies point by point, snapshot by files; the
        // others, and fields vq does not know, are refused by name.
        let info = try JSONSerialization.jsonObject(with: Data(try request(a.port, "GET", "/collections/r/cluster").body.utf8)) as? [String: Any]
        let result = try #require(info?["result"] as? [String: Any])
        let aID = "\(result["peer_id"] ?? "")"
        let aShards = Set(((result["local_shards"] as? [[String: Any]]) ?? []).compactMap { $0["shard_id"] as? Int })
        let lackingShard = try #require([0, 1, 2].first { !aShards.contains($0) })
        let walDelta = try request(a.port, "POST", "/collections/r/cluster",
                                   "{\"replicate_shard\":{\"shard_id\":\(lackingShard),\"to_peer_id\":\(aID),\"method\":\"wal_delta\"}}")
        #expect(walDelta.status == 400 && walDelta.body.contains("method"), "\(walDelta.body)")
        let unknown = try request(a.port, "POST", "/collections/r/cluster",
                                  "{\"replicate_shard\":{\"shard_id\":\(lackingShard),\"to_peer_id\":\(aID),\"hurry\":true}}")
        #expect(unknown.status == 400 && unknown.body.contains("hurry"), "\(unknown.body)")
        let streamed = try request(a.port, "POST", "/collections/r/cluster",
                                   "{\"replicate_shard\":{\"shard_id\":\(lackingShard),\"to_peer_id\":\(aID),\"method\":\"stream_records\"}}")
        #expect(streamed.status == 200, "\(streamed.body)")
        #expect(try request(a.port, "POST", "/collections/r/cluster",
                            "{\"drop_replica\":{\"shard_id\":\(lackingShard),\"peer_id\":\(aID)}}").status == 200)
        let logs = [a, b, c].map { $0.stop().1 }.joined()
        #expect(logs.contains(#"mode="copy""#) && logs.contains(#"mode="files""#), "a record copy for stream_records, file copies for moves")
    }

    @Test("a snapshot recovered into a 3-peer cluster (from the peer's own file, and uploaded through another) gets every replica back, copied from the recovering peer")
    func snapshotRecoveryInCluster() throws {
        let a = try ServerProcess()
        #expect(eventually(10) { PeerView(a.port)?.role == "Leader" })
        let b = try ServerProcess.joining(a)
        let c = try ServerProcess.joining(a)
        #expect(settled([a, b, c], count: 3))
        #expect(try request(a.port, "PUT", "/collections/s",
                            #"{"vectors":{"size":8,"distance":"Euclid"},"shard_number":2,"replication_factor":2,"write_consistency_factor":2}"#).status == 200)
        #expect(try request(b.port, "PUT", "/collections/s/points?wait=true", Self.points(0..<500)).status == 200)
        // A snapshot holds the shards its peer has a replica of: taken where both are.
        let holder = try #require([a, b, c].first { p in
            (try? request(p.port, "GET", "/collections/s/cluster").body)?.components(separatedBy: "\"points_count\"").count == 3
        })
        let backup = a.scratch.path + "/s.snapshot"
        let made = try vq(["snapshot", "create", "s", "--output", backup, "--url", holder.url])
        #expect(made.status == 0, "\(made.stderr)")
        let name = try #require((try JSONSerialization.jsonObject(with: Data(made.stdout.utf8)) as? [String: Any])?["name"] as? String)
        // After the snapshot: not in what is recovered.
        #expect(try request(c.port, "PUT", "/collections/s/points?wait=true", Self.points(500..<600)).status == 200)
        func count(_ port: Int) throws -> Int? {
            let body = try request(port, "POST", "/collections/s/points/count", #"{"exact":true}"#).body
            return body.range(of: #""count":"#).flatMap { Int(body[$0.upperBound...].prefix { $0.isNumber }) }
        }
        #expect(try count(a.port) == 600)
        /// Every shard has `replicas` Active replicas on distinct peers, and every peer counts `points`.
        func recovered(_ points: Int, replicas: Int) throws {
            // As each peer sees it (the recover answered once its own metadata had it all).
            for p in [a, b, c] {
                #expect(eventually(10) {
                    guard let info = try? request(p.port, "GET", "/collections/s/cluster").body else { return false }
                    return info.components(separatedBy: "\"shard_id\"").count - 1 == 2 * replicas && !info.contains("Dead") && !info.contains("Partial")
                }, "peer \(p.port): \((try? request(p.port, "GET", "/collections/s/cluster").body) ?? "")")
                #expect(eventually(10) { (try? count(p.port)) == points })
            }
            // The snapshot's write_consistency_factor once every replica is copied (committed
            // through Raft before the answer; another peer applies it a moment later).
            #expect(eventually(10) {
                (try? request(b.port, "GET", "/collections/s").body)?.contains(#""write_consistency_factor":2"#) == true
            })
        }
        // From the peer's own snapshots directory.
        let location = "file://\(holder.scratch.data)/snapshots/s/\(name)"
        let r = try request(holder.port, "PUT", "/collections/s/snapshots/recover", "{\"location\":\"\(location)\"}")
        #expect(r.status == 200, "\(r.body)")
        try recovered(500, replicas: 2)
        // Uploaded through another peer (not the leader).
        #expect(try request(a.port, "PUT", "/collections/s/points?wait=true", Self.points(500..<700)).status == 200)
        let other: ServerProcess = try #require([a, b, c].first { $0 !== holder })
        let uploaded = try vq(["snapshot", "restore", "s", backup, "--url", other.url])
        #expect(uploaded.status == 0, "\(uploaded.stderr)")
        try recovered(500, replicas: 2)
        let repair = try vq(["cluster", "repair", "s", "--url", b.url])
        #expect(repair.status == 0 && repair.stderr.contains("0 points repaired"), "\(repair.stderr)")
        let logs = [a, b, c].map { $0.stop().1 }.joined()
        #expect(logs.contains(#"mode="files""#), "the other replicas were copied as segment files")
    }
}

