import Foundation
import Testing
@testable import VQEngine

@Suite struct RebalanceTests {
    static func meta(_ shards: [[PeerID]]) -> CollectionMeta {
        CollectionMeta(config: CollectionConfig(dim: 2, distance: .dot), shards: shards.map { $0.map { Replica(peer: $0, state: .active) } })
    }

    /// `collections` after `moves`, checking each move as it goes: the source holds the shard,
    /// the target does not.
    static func apply(_ moves: [Rebalance.Move], to collections: [String: CollectionMeta]) -> [String: CollectionMeta] {
        var out = collections
        for m in moves {
            var replicas = out[m.collection]!.shards[m.shard]
            #expect(replicas.contains { $0.peer == m.from }, "\(m): the source holds no replica")
            #expect(!replicas.contains { $0.peer == m.to }, "\(m): the target already holds one")
            replicas.removeAll { $0.peer == m.from }
            replicas.append(Replica(peer: m.to, state: .active))
            out[m.collection]!.shards[m.shard] = replicas
        }
        return out
    }

    static func load(_ meta: CollectionMeta, _ peers: [PeerID]) -> [Int] {
        peers.map { p in meta.shards.reduce(0) { $0 + $1.filter { $0.peer == p }.count } }
    }

    @Test("a new peer gets its share; moves take non-primary replicas first; a balanced cluster plans nothing")
    func basics() {
        // Six shards, one replica each, all on peer 1; peers 2 and 3 joined.
        let lopsided = ["c": Self.meta(Array(repeating: [1], count: 6))]
        let moves = Rebalance.plan(lopsided, peers: [1, 2, 3])
        #expect(moves.count == 4)
        #expect(Self.load(Self.apply(moves, to: lopsided)["c"]!, [1, 2, 3]) == [2, 2, 2])
        #expect(Rebalance.plan(lopsided, peers: [1, 2, 3]) == moves, "deterministic")

        // Two replicas per shard on peers 1 and 2 (1 primary of shards 0 and 1, 2 of 2 and 3); peer 3 joins.
        let replicated = ["r": Self.meta([[1, 2], [1, 2], [2, 1], [2, 1]])]
        let moved = Rebalance.plan(replicated, peers: [1, 2, 3])
        #expect(moved.count == 2)
        #expect(Self.load(Self.apply(moved, to: replicated)["r"]!, [1, 2, 3]).sorted() == [2, 3, 3])
        for m in moved {
            #expect(replicated["r"]!.shards[m.shard].first?.peer != m.from, "\(m) moved a primary while a non-primary replica could go")
        }

        #expect(Rebalance.plan(["c": Self.meta([[1], [2], [3], [1]])], peers: [1, 2, 3]).isEmpty)
        #expect(Rebalance.plan(lopsided, peers: [1]).isEmpty, "one peer: nowhere to move")
        // Only the named collection; and a replica on a peer that no longer votes is not counted.
        let two = ["a": Self.meta([[1], [1]]), "b": Self.meta([[1], [1]])]
        #expect(Rebalance.plan(two, peers: [1, 2], only: "b").allSatisfy { $0.collection == "b" })
        #expect(Rebalance.plan(two, peers: [1, 2], only: "b").count == 1)
    }

    @Test("random placements (seeded): after the plan every collection is even within one and no shard has two replicas on a peer")
    func randomPlacements() {
        var rng = SplitMix64(seed: 2026)
        for round in 0..<300 {
            let peerCount = 2 + Int(rng.next() % 5)
            let peers = (1...peerCount).map { PeerID($0 * 10) }
            var collections: [String: CollectionMeta] = [:]
            for c in 0..<(1 + Int(rng.next() % 3)) {
                let rf = 1 + Int(rng.next() % UInt64(min(3, peerCount)))
                let shards = (0..<(1 + Int(rng.next() % 8))).map { _ -> [PeerID] in
                    // rf distinct peers, drawn from a random subset (some peers may hold nothing).
                    var pool = peers.shuffled(using: &rng)
                    pool = Array(pool.prefix(max(rf, 1 + Int(rng.next() % UInt64(peerCount)))))
                    return Array(pool.prefix(rf))
                }
                collections["c\(c)"] = Self.meta(shards)
            }
            let moves = Rebalance.plan(collections, peers: peers)
            let after = Self.apply(moves, to: collections)
            for (name, meta) in after {
                let load = Self.load(meta, peers)
                let rf = collections[name]!.shards[0].count
                // Always reachable: a peer holding two more replicas than another holds a shard the other lacks.
                #expect(load.max()! - load.min()! <= 1, "round \(round) \(name): \(load)")
                for (s, replicas) in meta.shards.enumerated() {
                    #expect(replicas.count == rf, "round \(round) \(name)/\(s): replica count changed")
                    #expect(Set(replicas.map(\.peer)).count == replicas.count, "round \(round) \(name)/\(s): two replicas on one peer")
                }
            }
            #expect(Rebalance.plan(after, peers: peers).isEmpty, "round \(round): a second plan after the first moves nothing")
        }
    }
}
