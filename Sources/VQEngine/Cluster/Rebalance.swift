// Rebalancing: moving replicas between peers until every voting peer holds an even share of
// each collection's replicas (Qdrant's open-source edition leaves this to the operator).
//
// The plan (`Rebalance.plan`, a pure function of the metadata) works collection by collection:
// while the peer holding the most replicas of the collection holds two or more than the peer
// holding the fewest, one replica moves from the first to the second (a shard the second does not
// hold yet, a non-primary replica when there is one, so reads and writes keep their primary).
// Ties go to the peer with more (or fewer) replicas over all collections, then to the lower id, so
// the plan is deterministic and overall load evens out too.
//
// Each move is a shard transfer while serving (`Rebalancer.move`): the target is added as a
// Partial replica, the primary copies the shard to it (writes to the shard wait meanwhile), it
// becomes Active, and only then is the source's replica dropped. A move that fails takes back the
// replica it added and stops the run, leaving every shard with its old replicas. Only the Raft
// leader moves (`POST /cluster/rebalance` is forwarded there), one run at a time.

import Foundation
import Synchronization

package enum Rebalance {
    package struct Move: Equatable, Sendable, CustomStringConvertible {
        package var collection: String
        package var shard: Int
        package var from: PeerID
        package var to: PeerID

        package init(collection: String, shard: Int, from: PeerID, to: PeerID) {
            self.collection = collection
            self.shard = shard
            self.from = from
            self.to = to
        }

        package var description: String { "\(collection)/\(shard): \(from) -> \(to)" }

        package var json: JSON {
            .object([("collection", .string(collection)), ("shard_id", .int(Int64(shard))), ("from_peer_id", .uint(from)),
                     ("to_peer_id", .uint(to))])
        }
    }

    /// The moves that even out `collections`' replicas over `peers` (only `only`'s when given).
    package static func plan(_ collections: [String: CollectionMeta], peers: [PeerID], only: String? = nil) -> [Move] {
        guard peers.count > 1 else { return [] }
        var metas = collections
        var moves: [Move] = []
        var total: [PeerID: Int] = [:]
        for p in peers { total[p] = 0 }
        for meta in metas.values { for replicas in meta.shards { for r in replicas where total[r.peer] != nil { total[r.peer]! += 1 } } }
        for name in metas.keys.sorted() where only == nil || only == name {
            // Bounded: each move narrows the gap between two peers, so it ends; the cap is a guard.
            for _ in 0..<(metas[name]!.shards.count * peers.count + 1) {
                var load: [PeerID: Int] = [:]
                for p in peers { load[p] = 0 }
                for replicas in metas[name]!.shards { for r in replicas where load[r.peer] != nil { load[r.peer]! += 1 } }
                // Most loaded first (ties: more overall, then lower id); least loaded first likewise.
                let heavy = peers.sorted { (load[$0]!, total[$0]!, $1) > (load[$1]!, total[$1]!, $0) }
                let light = peers.sorted { (load[$0]!, total[$0]!, $0) < (load[$1]!, total[$1]!, $1) }
                var chosen: Move?
                search: for from in heavy {
                    for to in light where load[from]! - load[to]! >= 2 {
                        let shards = metas[name]!.shards
                        let candidates = shards.indices.filter { s in
                            shards[s].contains { $0.peer == from } && !shards[s].contains { $0.peer == to }
                        }
                        // A replica that is not the primary first (the shard keeps its primary).
                        let isPrimary = { (s: Int) in shards[s].primary == from }
                        if let s = candidates.first(where: { !isPrimary($0) }) ?? candidates.first {
                            chosen = Move(collection: name, shard: s, from: from, to: to)
                            break search
                        }
                    }
                }
                guard let move = chosen else { break }
                var replicas = metas[name]!.shards[move.shard]
                let at = replicas.firstIndex { $0.peer == move.from }!
                replicas.remove(at: at)
                replicas.append(Replica(peer: move.to, state: .active))
                metas[name]!.shards[move.shard] = replicas
                total[move.from]! -= 1
                total[move.to]! += 1
                moves.append(move)
            }
        }
        return moves
    }
}

/// Carries out replica moves through the cluster's metadata and shard transfers.
package struct Rebalancer: Sendable {
    private let node: ClusterNode
    private let engine: Engine
    /// How long each metadata change may take to commit.
    private let commitTimeout: Double
    /// One run at a time per process (a second is refused, not queued).
    private static let running = Atomic<Bool>(false)

    package init(node: ClusterNode, engine: Engine, commitTimeout: Double = 10) {
        self.node = node
        self.engine = engine
        self.commitTimeout = commitTimeout
    }

    /// Adds `to` as a replica of the shard (Partial) unless it holds one, and has the primary copy
    /// it. A copy that fails takes back the replica this call added (a target that cannot take it
    /// must not stay a Partial replica of the shard).
    package func replicate(_ name: String, _ shard: Int, to: PeerID, method: TransferMethod? = nil) throws {
        guard let shards = node.collectionMeta(name)?.shards, shards.indices.contains(shard) else {
            throw VQError(.notFound, "collection \"\(name)\" has no shard \(shard)")
        }
        let added = !shards[shard].contains { $0.peer == to }
        if added { try node.propose(ClusterState.replica("add_replica", name, shard: shard, peer: to), timeout: commitTimeout) }
        do {
            let collection = try engine.collection(name)
            guard collection.replicaSets.indices.contains(shard) else { throw VQError(.notFound, "collection \"\(name)\" has no shard \(shard) here") }
            try collection.replicaSets[shard].catchUp(to: to, after: nil, method: method)
        } catch {
            if added { try? node.propose(ClusterState.replica("drop_replica", name, shard: shard, peer: to), timeout: commitTimeout) }
            throw error
        }
    }

    /// Moves a replica: copies it to `move.to`, then drops `move.from`'s.
    package func move(_ move: Rebalance.Move, method: TransferMethod? = nil) throws {
        try replicate(move.collection, move.shard, to: move.to, method: method)
        // Dropped only while the new replica is Active (another mover may have changed the shard).
        // The primary committed that; this peer's metadata may not have applied it yet.
        let active = { node.collectionMeta(move.collection)?.shards[safe: move.shard]?.contains(Replica(peer: move.to, state: .active)) == true }
        if !active() { _ = node.catchUp(timeout: 5) }
        guard active() else {
            throw VQError(.conflict, "\(move): the new replica is not Active; the old one is kept")
        }
        try node.propose(ClusterState.replica("drop_replica", move.collection, shard: move.shard, peer: move.from), timeout: commitTimeout)
        node.logEvent("replica moved", [("collection", .string(move.collection)), ("shard", .int(Int64(move.shard))),
                                        ("from", .uint(move.from)), ("to", .uint(move.to))])
    }

    /// Plans over the current metadata and voters and, unless `dryRun`, carries the moves out one
    /// at a time, planning again after each (the metadata may have moved on meanwhile: a replica
    /// marked Dead, a peer removed). Returns the moves made (or, with `dryRun`, planned).
    package func run(only: String? = nil, dryRun: Bool = false) throws -> (moves: [Rebalance.Move], done: Int) {
        if let only, node.collectionMeta(only) == nil { throw VQError(.notFound, "collection \"\(only)\" is not distributed") }
        return try Self.exclusively("a rebalance") { try runHeld(only: only, dryRun: dryRun) }
    }

    /// Runs `body` as the only rebalance or snapshot recovery of this process (the leader's, for a
    /// rebalance): replicas moved by one must not be moved under the other.
    package static func exclusively<T>(_ what: String, _ body: () throws -> T) throws -> T {
        guard running.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged else {
            throw VQError(.conflict, "a rebalance or a snapshot recovery is already running on this peer; \(what) waits for it to finish")
        }
        defer { running.store(false, ordering: .releasing) }
        return try body()
    }

    /// Voters the metadata knows the address of and has not removed: where replicas may go.
    package var placeablePeers: [PeerID] {
        let state = node.metadata
        return node.status.voters.filter { state.peers[$0] != nil && !state.removed.contains($0) }.sorted()
    }

    private func runHeld(only: String?, dryRun: Bool) throws -> (moves: [Rebalance.Move], done: Int) {
        func plan() -> [Rebalance.Move] { Rebalance.plan(node.metadata.collections, peers: placeablePeers, only: only) }
        let first = plan()
        if dryRun { return (first, 0) }
        var done: [Rebalance.Move] = []
        var next = first
        // Bounded: a plan's moves narrow the gaps; twice the first plan (and some) covers replanning.
        while let m = next.first, done.count < 2 * first.count + 8 {
            // One mover at a time: the leader's (a peer that stops leading stops moving).
            guard node.status.role == .leader, !node.isStopped else {
                throw VQError(.busy, "rebalance stopped after \(done.count) moves: this peer no longer leads the cluster")
            }
            do { try move(m) } catch {
                let e = VQError.wrap(error)
                throw VQError(e.kind, "rebalance stopped after \(done.count) moves: moving \(m): \(e.message)")
            }
            done.append(m)
            next = plan()
        }
        return (done, done.count)
    }
}
