// What the cluster's metadata means for this peer's data, carried out on threads of its own so
// that a slow disk never stalls Raft's ticker:
//
//   effects   committed creates, updates and deletes of collections (and, after a snapshot
//             restore, every collection the metadata names), in log order; each one's log
//             index is persisted once done (ClusterNode.effectDone), so a restart neither
//             skips nor redoes one
//   recovery  every half second, each shard whose replica here is Dead or Partial asks its
//             primary to bring it up to date (the missed operations, or a whole copy)
//   anti-entropy  every `antiEntropyInterval` seconds (`--anti-entropy-interval`; 0: never),
//             each shard this peer is the primary of compares its other active replicas with
//             its copy and repairs what differs (`ReplicaSet.reconcile`)

import Foundation

package final class ClusterDriver: Sendable {
    private let node: ClusterNode
    private let engine: Engine
    private let router: ClusterRouter
    private let antiEntropyInterval: Double

    package init(node: ClusterNode, engine: Engine, router: ClusterRouter, antiEntropyInterval: Double = 300) {
        self.node = node
        self.engine = engine
        self.router = router
        self.antiEntropyInterval = antiEntropyInterval
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
        for (name, meta) in state.collections {
            for (s, replicas) in meta.shards.enumerated() {
                guard let mine = replicas.first(where: { $0.peer == node.id }), mine.state != .active else { continue }
                do {
                    let collection = try engine.collection(name)
                    guard collection.replicaSets.indices.contains(s) else { continue }
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
