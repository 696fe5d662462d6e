import Foundation
import Synchronization
import Testing
@testable import VQEngine

@Suite struct ConsistencyTests {
    /// 50 points on both replicas; behind the cluster's back peer 1's copy (the one read with
    /// consistency 1, and first) also holds point 9000, and point 3 with tag 7.
    static func differing() throws -> ReplicaPair {
        let pair = try ReplicaPair()
        try pair.upsert(Array(0..<50))
        let mine = try pair.set(0).local
        try mine.waitApplied(try mine.submit(.upsert(pair.batch([9000, 3], tag: 7))))
        return pair
    }

    func scroll(_ pair: ReplicaPair, _ consistency: ReadConsistency) throws -> [PointRecord] {
        try ReadConsistency.$current.withValue(consistency) {
            try pair.engines[0].collection("c").scroll(filter: nil, offset: nil, limit: 1000, withVector: false, withPayload: true).points
        }
    }

    func tag(_ records: [PointRecord], _ id: UInt64) -> JSON? { records.first { $0.id == .number(id) }?.payload?["tag"] }

    @Test("consistency above 1: a point too few replicas hold is left out of scrolls, counts and searches; where replicas differ the newest wins")
    func agreement() throws {
        let pair = try Self.differing()
        // One replica (the local one): its own points.
        #expect(try scroll(pair, .factor(1)).count == 51)
        for consistency in [ReadConsistency.all, .quorum, .majority, .factor(2)] {
            let records = try scroll(pair, consistency)
            #expect(records.count == 50 && !records.contains { $0.id == .number(9000) }, "\(consistency)")
            let count = try ReadConsistency.$current.withValue(consistency) { try pair.engines[0].collection("c").count(filter: nil) }
            #expect(count == 50, "\(consistency)")
        }
        // Point 9000 is the nearest to this query; it is on one replica only.
        let query: [Float] = { let v: [Float] = [6, 0, 7, 1]; let n = (v.map { $0 * $0 }.reduce(0, +)).squareRoot(); return v.map { $0 / n } }()
        let search = { (c: ReadConsistency) in
            try ReadConsistency.$current.withValue(c) { try pair.set(0).search(query, ShardSearch(k: 60, ef: 64), config: pair.config).hits.map(\.id) }
        }
        #expect(try search(.factor(1)).first == .number(9000))
        #expect(try search(.all).count == 50 && !search(.all).contains(.number(9000)))
        // An id asked for twice still counts once per replica.
        let twice = try ReadConsistency.$current.withValue(.all) {
            try pair.set(0).scan(ids: [.number(9000), .number(9000), .number(1)], filter: nil, withVector: false, withPayload: false, vectors: pair.config.vectors)
        }
        #expect(twice.map(\.id) == [.number(1)])
        // Equal positions: the first asked (the local replica) wins; the other replica one
        // operation ahead: its point 3 wins.
        #expect(tag(try scroll(pair, .all), 3) == .int(7))
        let state = pair.placements[1].replication("c", 0)
        state.lock.withLock { state.applied(state.lastSeq + 1, epoch: state.lastEpoch, []) }
        #expect(tag(try scroll(pair, .all), 3) == .int(0))
        // The other replica sends its position with each answer, in one call; a peer without
        // that route (an older version) is asked for both in two, with the same outcome.
        let calls = { pair.placements[0].calls.withLock { ($0["at-position", default: 0], $0["position", default: 0]) } }
        let before = calls()
        #expect(tag(try scroll(pair, .all), 3) == .int(0))
        #expect(calls() == (before.0 + 1, before.1))
        pair.placements[0].noAtPosition.store(true, ordering: .relaxed)
        #expect(tag(try scroll(pair, .all), 3) == .int(0))
        #expect(try ReadConsistency.$current.withValue(.all) { try pair.engines[0].collection("c").count(filter: nil) } == 50)
        #expect(calls().0 == before.0 + 3 && calls().1 == before.1 + 2)
        try pair.close()
    }

    @Test("a read's timeout: a replica that does not answer is waited for until then, not the peer timeout, and its call is cut to it")
    func readTimeout() throws {
        let pair = try Self.differing()
        pair.placements[0].stallReads.store(true, ordering: .relaxed)
        defer { pair.placements[0].stallReads.store(false, ordering: .relaxed) }
        let began = Date()
        do {
            _ = try ReadDeadline.$current.withValue(ReadDeadline(seconds: 0.3)) { try scroll(pair, .all) }
            Issue.record("a read waiting on a stalled replica answered")
        } catch let e as VQError {
            #expect(e.kind == .busy && e.message.contains("timeout of 0.3 s"), "\(e.message)")
        }
        // The peer timeout here is 5 s: the read ended at its own.
        #expect(Date().timeIntervalSince(began) < pair.placements[0].callTimeout / 2)
        #expect((pair.placements[0].readTimeout.withLock { $0 } ?? 99) <= 0.3)
        // What this peer answers alone is not held up by it.
        let local = try ReadDeadline.$current.withValue(ReadDeadline(seconds: 0.3)) { try scroll(pair, .factor(1)) }
        #expect(local.count == 51)
        try pair.close()
    }

    @Test("a replica that does not answer: consistency 1 reads another, 2, majority, quorum and all fail naming it; a Dead replica is not asked")
    func unanswered() throws {
        let pair = try Self.differing()
        pair.placements[0].failReads.store(true, ordering: .relaxed)
        #expect(try scroll(pair, .factor(1)).count == 51)
        for consistency in [ReadConsistency.all, .quorum, .majority, .factor(2)] {
            do {
                _ = try scroll(pair, consistency)
                Issue.record("consistency \(consistency) answered without the replica")
            } catch let e as VQError {
                #expect(e.kind == .busy && e.message.contains("peer 2") && e.message.contains("1 answered"), "\(e.message)")
            }
        }
        // Marked Dead: not asked, so all is met by the one active replica, and 2 cannot be.
        pair.shared.withLock { $0[1].state = .dead }
        #expect(try scroll(pair, .all).count == 51)
        #expect(throws: VQError.self) { try scroll(pair, .factor(2)) }
        // No active replica at all: refused, for every consistency.
        pair.shared.withLock { $0[0].state = .dead }
        for consistency in [ReadConsistency.all, .quorum, .majority, .factor(2)] {
            #expect(throws: VQError.self) { try scroll(pair, consistency) }
        }
        try pair.close()
    }

    @Test("consistency values: numbers from 1, majority, quorum, all; anything else is refused by name; counts and points resolved over answers")
    func parsing() throws {
        #expect(try ReadConsistency(parsing: "3") == .factor(3))
        #expect(try ReadConsistency(parsing: "Majority") == .majority)
        #expect(try ReadConsistency(parsing: "quorum") == .quorum)
        #expect(try ReadConsistency(parsing: "ALL") == .all)
        for bad in ["0", "-1", "most", ""] {
            #expect(throws: VQError.self) { try ReadConsistency(parsing: bad) }
        }
        #expect(try ReadConsistency.quorum.plan(active: 3, "s") == (3, 2, 2))
        #expect(try ReadConsistency.majority.plan(active: 3, "s") == (2, 2, 2))
        #expect(try ReadConsistency.all.plan(active: 3, "s") == (3, 3, 3))
        #expect(throws: VQError.self) { try ReadConsistency.factor(4).plan(active: 3, "s") }
        // Counts: the number at least `threshold` replicas reach.
        #expect(ReplicaSet.resolveCount([10, 5, 9], threshold: 1) == 10)
        #expect(ReplicaSet.resolveCount([10, 5, 9], threshold: 2) == 9)
        #expect(ReplicaSet.resolveCount([10, 5, 9], threshold: 3) == 5)
        // Merging: a point as the first (newest) answer holds it, kept when enough answers do.
        let merged = ReplicaSet.merge([(7, [("a", 1), ("b", 1)]), (5, [("a", 2), ("c", 2), ("b", 2)]), (5, [("c", 3)])],
                                      threshold: 2) { PointID.number(UInt64($0.0.unicodeScalars.first!.value)) }
        #expect(merged.map { "\($0.0)\($0.1)" } == ["a1", "b1", "c2"])
    }
}
