// What the cluster's metadata means for this peer's data, carried out on threads of its own so
// that a slow disk never stalls Raft's ticker:
//
//   effects   committed creates, updates and deletes of collections (and, after a snapshot
//             restore, every collection the metadata names), in log order; each one's log
//             index is persisted once done (ClusterNode.effectDone), so a restart neither
//             skips nor redoes one
//   recovery  every half second, each shard whose replica here is Dead or Partial asks its
//             primary to bring it up to date (the missed operations, or a whole copy), up to 4
//             shards at once, each on a thread of its own (one slow copy or cut-off primary holds
//             no other); a replica first seen Partial waits one pass, so the mover that added it
//             (a move, `replicate_shard` with its method, a rebalance) copies it as it asked
//   anti-entropy  every `antiEntropyInterval` seconds (`--anti-entropy-interval`; 0: never),
//             each shard this peer is the primary of compares its other active replicas with
//             its copy and repairs what differs (`ReplicaSet.reconcile`)
//   rebalance with `--auto-rebalance`, when the voters change (a peer joined or was removed) and
//             have stayed the same for two seconds, the Raft leader moves replicas until every
//             peer holds an even share (`Rebalancer`); a failed run is tried again 10 s later

import Foundation
import Synchronization

package final class ClusterDriver: Sendable {
    private let node: ClusterNode
    /// Replicas here ("collection/shard") seen Partial in the last recovery pass.
    private let seenPartial = Mutex<Set<String>>([])
    /// Replicas here ("collection/shard") a recovery is under way for.
    private let recovering = Mutex<Set<String>>([])
    /// Recoveries under way at once, at most.
    static let parallelRecoveries = 4
    private let engine: Engine
    private let router: ClusterRouter
    private let antiEntropyInterval: Double
    private let autoRebalance: Bool

    package init(node: ClusterNode, engine: Engine, router: ClusterRouter, antiEntropyInterval: Double = 300, autoRebalance: Bool = false) {
        self.node = node
        self.engine = engine
        self.router = router
        self.antiEntropyInterval = antiEntropyInterval
        self.autoRebalance = autoRebalance
    }

    package func start() {
        let effects = Thread { [self] in
            while let next = node.takeEffect() {
                apply(next.effect, next.state, at: next.index)
                node.effectDone(next.index)
            }
        }
        effects.name = "vq-cluster-effects"
        effects.start()
        let recovery = Thread { [self] in
            while !node.isStopped {
                Thread.sleep(forTimeInterval: 0.5)
                recover()
            }
        }
        recovery.name = "vq-cluster-recovery"
        recovery.start()
        if autoRebalance {
            let rebalance = Thread { [self] in rebalanceOnMembershipChange() }
            rebalance.name = "vq-cluster-rebalance"
            rebalance.start()
        }
        guard antiEntropyInterval > 0 else { return }
        let antiEntropy = Thread { [self] in
            var next = Date().addingTimeInterval(antiEntropyInterval)
            while !node.isStopped {
                Thread.sleep(forTimeInterval: min(0.5, antiEntropyInterval))
                guard Date() >= next else { continue }
                reconcileShards()
                next = Date().addingTimeInterval(antiEntropyInterval)
            }
        }
        antiEntropy.name = "vq-cluster-anti-entropy"
        antiEntropy.start()
    }

    /// A shard this peer holds no replica of (dropped: moved away, or never placed here) keeps no
    /// points: they are deleted (the optimizer reclaims the space) and its replication position
    /// reset, so a replica added here again later is copied whole. Only with metadata confirmed
    /// current with the leader, and under the shard's lock, with the
    /// placement read again inside it: a copy to a replica just added here takes the same lock
    /// after the add is applied, so it is never cleared.
    private func clearDropped(_ name: String, _ s: Int, confirmed: inout Bool?) {
        guard let collection = try? engine.collection(name), collection.replicaSets.indices.contains(s) else { return }
        let local = collection.replicaSets[s].local
        guard local.pointCount > 0 else { return }
        // Only on metadata caught up with the leader's: while the log is applied again after a
        // restart, an older placement can lack a replica the newer one gives this peer.
        if confirmed == nil { confirmed = node.catchUp(timeout: 1) }
        guard confirmed == true else { return }
        let replication = router.replication(name, s)
        replication.lock.lock()
        defer { replication.lock.unlock() }
        guard let replicas = node.collectionMeta(name)?.shards[safe: s], !replicas.contains(where: { $0.peer == node.id }) else { return }
        let ids = local.scan(filter: nil, withVector: false, withPayload: false).map(\.id)
        do {
            try local.waitApplied(try local.submit(.delete(ids)))
            replication.reset(to: 0, epoch: 0)
            node.logEvent("dropped replica cleared", [("collection", .string(name)), ("shard", .int(Int64(s))), ("points", .int(Int64(ids.count)))])
        } catch {
            node.logEvent("error", [("message", .string("clearing dropped replica of \(name)/\(s): \(error)"))])
        }
    }

    /// `--auto-rebalance`: on the leader, a rebalance after each settled change of the voters.
    private func rebalanceOnMembershipChange() {
        var balancedFor = node.status.voters
        var seen = balancedFor
        var since = Date()
        var retryAt = Date.distantPast
        while !node.isStopped {
            Thread.sleep(forTimeInterval: 0.25)
            let status = node.status
            if status.voters != seen {
                seen = status.voters
                since = Date()
            }
            guard seen != balancedFor, Date().timeIntervalSince(since) >= 2, Date() >= retryAt else { continue }
            // Only the leader acts (one peer moves replicas); another peer forgets the change, as
            // the leader saw it too.
            guard status.role == .leader else {
                balancedFor = seen
                continue
            }
            do {
                let (moves, _) = try Rebalancer(node: node, engine: engine).run()
                node.logEvent("rebalanced", [("reason", .string("the voters changed")), ("moves", .int(Int64(moves.count)))])
                balancedFor = seen
            } catch {
                node.logEvent("rebalance pending", [("reason", .string("\(error)"))])
                retryAt = Date().addingTimeInterval(10)
            }
        }
    }

    /// One anti-entropy pass over the shards this peer is the primary of (with another active replica).
    private func reconcileShards() {
        for (name, meta) in node.metadata.collections.sorted(by: { $0.key < $1.key }) {
            for (s, replicas) in meta.shards.enumerated() where !node.isStopped {
                let active = replicas.filter { $0.state == .active }
                guard active.first?.peer == node.id, active.count > 1 else { continue }
                do {
                    let collection = try engine.collection(name)
                    guard collection.replicaSets.indices.contains(s) else { continue }
                    _ = try collection.replicaSets[s].reconcile()
                } catch {
                    node.logEvent("anti-entropy pending", [("collection", .string(name)), ("shard", .int(Int64(s))),
                                                           ("reason", .string("\(error)"))])
                }
            }
        }
    }

    private func apply(_ effect: ClusterEffect, _ state: ClusterState, at index: UInt64) {
        do {
            switch effect {
            case .collectionCreated(let name, let config):
                router.forget(name)
                if !engine.hasCollection(name) { try engine.createCollection(name, config: config) }
                // Recorded after: a collection unrecorded by a crash here is only never deleted by a snapshot.
                try node.setManagedCollections(node.managedCollections.merging([name: index]) { _, new in new })
            case .collectionUpdated(let name, let config):
                _ = try engine.updateCollection(name) { $0 = config }
            case .collectionDeleted(let name):
                router.forget(name)
                if engine.hasCollection(name) { try engine.deleteCollection(name) }
                try node.setManagedCollections(node.managedCollections.filter { $0.key != name })
            case .snapshotRestored:
                // A collection the cluster made here at or before the snapshot's index that the
                // snapshot no longer names was deleted while this peer was away (the delete
                // compacted into the snapshot): deleted here too. One made after it is not judged.
                // Each step on its own: one that fails is logged and the others still happen.
                var managed = node.managedCollections
                for (name, made) in managed.sorted(by: { $0.key < $1.key }) where made <= index && state.collections[name] == nil {
                    do {
                        if engine.hasCollection(name) {
                            router.forget(name)
                            try engine.deleteCollection(name)
                            node.logEvent("collection deleted", [("collection", .string(name)),
                                                                 ("reason", .string("deleted by the cluster while this peer was away"))])
                        }
                        managed[name] = nil
                    } catch {
                        node.logEvent("error", [("message", .string("deleting collection \(name), gone from the cluster: \(error)"))])
                    }
                }
                for name in state.collections.keys where managed[name] == nil { managed[name] = index }
                try node.setManagedCollections(managed)
                for (name, meta) in state.collections where !engine.hasCollection(name) {
                    do { try engine.createCollection(name, config: meta.config) } catch {
                        node.logEvent("error", [("message", .string("creating collection \(name) from the cluster's snapshot: \(error)"))])
                    }
                }
            }
        } catch {
            node.logEvent("error", [("message", .string("applying cluster metadata: \(error)"))])
        }
    }

    private func recover() {
        let state = node.metadata
        // Asked of the leader at most once per pass, and only when a dropped copy holds points.
        var confirmed: Bool?
        let partialBefore = seenPartial.withLock { $0 }
        var partialNow = Set<String>()
        defer { seenPartial.withLock { $0 = partialNow } }
        for (name, meta) in state.collections {
            for (s, replicas) in meta.shards.enumerated() {
                guard let mine = replicas.first(where: { $0.peer == node.id }) else {
                    clearDropped(name, s, confirmed: &confirmed)
                    continue
                }
                guard mine.state != .active else { continue }
                if mine.state == .partial {
                    // Just added (or just made Partial by its copy): its mover goes first.
                    partialNow.insert("\(name)/\(s)")
                    if !partialBefore.contains("\(name)/\(s)") { continue }
                }
                // A few at a time (each holds a worker of its primary, and a record copy its
                // points): the rest wait for a later pass.
                let key = "\(name)/\(s)"
                guard recovering.withLock({ $0.count < Self.parallelRecoveries && $0.insert(key).inserted }) else { continue }
                Thread.detachNewThread { [self] in
                    defer { _ = recovering.withLock { $0.remove(key) } }
                    do {
                        let collection = try engine.collection(name)
                        guard collection.replicaSets.indices.contains(s) else { return }
                        let set = collection.replicaSets[s]
                        try set.catchUp(to: node.id, after: set.position)
                    } catch {
                        node.logEvent("replica recovery pending", [("collection", .string(name)), ("shard", .int(Int64(s))),
                                                                   ("reason", .string("\(error)"))])
                    }
                }
            }
        }
    }
}
