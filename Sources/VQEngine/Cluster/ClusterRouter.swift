// The cluster side of replica sets (`Shard/ReplicaSet.swift`): where each shard's replicas are
// (the Raft metadata), how to reach a peer (pooled HTTP clients carrying the cluster secret and
// this peer's applied metadata index), which replica to read first (fewest reads outstanding,
// then recent latency), replica state changes through consensus, each shard's replication
// state, and the recovery loop that brings this peer's Dead or Partial replicas back.

import Foundation
import Synchronization

package final class ClusterRouter: ReplicaPlacement {
    let node: ClusterNode
    private let replication = Mutex<[String: ShardReplication]>([:])
    private let seqDir: String
    private let clients = Mutex<[String: HTTPClient]>([:])
    private let turn = Atomic<Int>(0)
    /// Recent read latency per peer (EWMA, seconds) and when it was last updated.
    private let latency = Mutex<[PeerID: (seconds: Double, at: UInt64)]>([:])
    /// Remote shard reads outstanding per peer.
    private let inflight = Mutex<[PeerID: Int]>([:])
    private let stats = Mutex(ReadStats())
    /// Seconds a peer-to-peer shard call may take.
    package let callTimeout: Double
    /// Seconds a primary waits for a replica once enough others have a write (`--replica-lag-timeout`).
    package let replicaLagTimeout: Double
    /// Order replicas by recent latency (default), or plain round robin (`--read-replica-choice`).
    private let latencyAware: Bool
    /// Bytes of recent operations each shard keeps for range catch-ups.
    private let historyBytes: Int
    /// Whole-shard copies send segment files (`--shard-transfer files`) or every point (`records`).
    package let segmentFileTransfer: Bool

    package init(node: ClusterNode, directory: DataDirectory, latencyAware: Bool = true, timeout: Double = 10, lagTimeout: Double = 1,
                 historyBytes: Int = 16 << 20, segmentFileTransfer: Bool = true) {
        self.segmentFileTransfer = segmentFileTransfer
        self.node = node
        seqDir = directory.root + "/cluster/seq"
        self.latencyAware = latencyAware
        callTimeout = timeout
        replicaLagTimeout = lagTimeout
        self.historyBytes = historyBytes
    }

    package var localPeer: PeerID { node.id }

    /// Peers that answered neither a call nor a ping, and until when that is believed.
    private let suspects = Mutex<[PeerID: UInt64]>([:])

    package func suspected(_ peer: PeerID) -> Bool {
        suspects.withLock { ($0[peer] ?? 0) > DispatchTime.now().uptimeNanoseconds }
    }

    /// For twice the lag timeout (at least 2 s): long enough for the writes already waiting on
    /// it, short enough that a peer back from a cut is tried again soon (a call that finds it
    /// gone again pays the lag timeout once more).
    package func suspect(_ peer: PeerID) {
        let now = DispatchTime.now().uptimeNanoseconds
        let until = now + UInt64(max(2, 2 * replicaLagTimeout) * 1e9)
        // Logged when it starts, not for every call that finds the peer gone meanwhile.
        let already = suspects.withLock { s in
            defer { s[peer] = until }
            return (s[peer] ?? 0) > now
        }
        if !already { node.logEvent("peer suspected", [("peer", .uint(peer)), ("seconds", .double(max(2, 2 * replicaLagTimeout)))]) }
    }

    package func readFanOut(_ collection: String) -> (delayMs: Int, factor: Int) {
        guard let config = node.collectionMeta(collection)?.config else { return (0, 0) }
        return (config.readFanOutDelayMs, config.readFanOutFactor)
    }

    package func replicas(_ collection: String, _ shard: Int) -> [Replica]? {
        guard let meta = node.collectionMeta(collection), meta.shards.indices.contains(shard) else { return nil }
        return meta.shards[shard]
    }

    /// One client (and its pool of connections) per peer address; a call's own timeout is set
    /// per request (timeouts vary per call: what is left of a read's or a write's deadline).
    private func client(_ peer: PeerID) throws -> HTTPClient {
        guard let uri = node.address(of: peer) else { throw VQError(.unreachable, "peer \(peer) has no known address") }
        return try clients.withLock { cache in
            if let c = cache[uri] { return c }
            let c = try HTTPClient(url: uri, timeout: callTimeout)
            cache[uri] = c
            return c
        }
    }

    package func post(_ peer: PeerID, _ path: String, _ body: [UInt8], timeout: Double?) throws -> [UInt8] {
        let r = try client(peer).send("POST", path, body: body, headers: node.internalHeaders + [(ClusterNode.appliedHeader, String(node.appliedIndex))],
                                      timeout: timeout ?? callTimeout)
        guard r.status == 200 else { throw VQError(status: r.status, body: r.body, from: "peer \(peer)") }
        return r.body
    }

    /// The shard's replication state here (its lock orders everything done to the shard).
    package func replication(_ collection: String, _ shard: Int) -> ShardReplication {
        replication.withLock { all in
            let key = "\(collection).\(shard)"
            if let r = all[key] { return r }
            let r = ShardReplication(path: seqDir + "/" + key, maxBytes: historyBytes)
            all[key] = r
            return r
        }
    }

    package func setReplica(_ collection: String, _ shard: Int, _ peer: PeerID, _ state: ReplicaState, reason: String?, ifPrimary: PeerID?) throws {
        if state == .dead {
            node.logEvent("replica dead", [("collection", .string(collection)), ("shard", .int(Int64(shard))), ("peer", .uint(peer)),
                                           ("reason", .string(reason ?? ""))])
        }
        // No wait for effects on local data (a replica state has none): callers hold shard locks.
        try node.propose(ClusterState.setReplica(collection, shard: shard, peer: peer, state, primary: ifPrimary), waitEffects: false)
    }

    package func refreshMetadata() { node.catchUp() }

    package func confirmMetadata() -> Bool { node.catchUp() }

    package func isClusterCollection(_ collection: String) -> Bool { node.manages(collection) }

    package func log(_ event: String, _ fields: [(String, JSON)]) { node.logEvent(event, fields) }

    package func readOrder(_ peers: [PeerID]) -> [PeerID] { preferred(peers) }

    package func measureRead<T>(_ peer: PeerID, _ read: () throws -> T) throws -> T {
        let start = DispatchTime.now().uptimeNanoseconds
        inflight.withLock { $0[peer, default: 0] += 1 }
        defer {
            inflight.withLock { $0[peer, default: 1] -= 1 }
            record(peer, seconds: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        return try read()
    }

    package func countRead(launched: Int, delayed: Int, fanOutWon: Bool) {
        stats.withLock { s in
            s.shardReads += 1
            s.extraReads += launched - 1
            s.fanOuts += delayed
            if fanOutWon { s.fanOutWins += 1 }
        }
    }

    /// Forgets a collection's replication positions (it was deleted, or is created anew).
    package func forget(_ collection: String) {
        // A writer still holding the old state keeps writing to its unlinked file, never a new one.
        let dropped = replication.withLock { all in
            let keys = all.keys.filter { $0.hasPrefix(collection + ".") }
            defer { for k in keys { all[k] = nil } }
            return keys.compactMap { all[$0] }
        }
        // Never waits for a shard's lock (this runs on the effects thread, and a lock holder may be
        // waiting for metadata): a state in use is only dropped, and its holder finishes alone.
        for r in dropped where r.lock.try() {
            r.reset(to: 0, epoch: 0)
            r.lock.unlock()
        }
        for file in FileIO.list(seqDir) where file.hasPrefix(collection + ".") { FileIO.remove(seqDir + "/" + file) }
    }

    /// Replicas in the order to ask them: this peer's first, then the fewest reads outstanding,
    /// then recent latency (an EWMA per peer, so one that keeps being slow is asked less), ties in
    /// turn to spread the load.
    private func preferred(_ peers: [PeerID]) -> [PeerID] {
        guard peers.count > 1 else { return peers }
        let start = turn.add(1, ordering: .relaxed).newValue % peers.count
        let rotated = Array(peers[start...] + peers[..<start])
        if !latencyAware {
            // Round robin, the local replica first: what a router without latency data does.
            return rotated.filter { $0 == node.id } + rotated.filter { $0 != node.id }
        }
        // An estimate older than a second is forgotten: the replica is tried again (a probe), so
        // one that recovered gets its share back.
        let now = DispatchTime.now().uptimeNanoseconds
        let ewma = latency.withLock { $0 }.compactMapValues { $0.at + 1_000_000_000 > now ? $0.seconds : nil }
        let busy = inflight.withLock { $0 }
        return rotated.enumerated().sorted { x, y in
            if (x.element == node.id) != (y.element == node.id) { return x.element == node.id }
            // Fewest reads outstanding first: a replica that has stopped answering is passed over
            // at once, before any of its slow reads completes to raise its estimate.
            let i = busy[x.element] ?? 0, j = busy[y.element] ?? 0
            if i != j { return i < j }
            let a = ewma[x.element] ?? 0, b = ewma[y.element] ?? 0
            // Within 20% counts as a tie, so comparable replicas share the load.
            if max(a, b) > 0 && abs(a - b) > 0.2 * max(a, b) { return a < b }
            return x.offset < y.offset
        }.map(\.element)
    }

    private func record(_ peer: PeerID, seconds: Double) {
        let now = DispatchTime.now().uptimeNanoseconds
        latency.withLock { table in
            if let old = table[peer], old.at + 1_000_000_000 > now {
                table[peer] = (0.8 * old.seconds + 0.2 * seconds, now)
            } else {
                table[peer] = (seconds, now)
            }
        }
        stats.withLock { s in
            s.peerReads[peer, default: 0] += 1
            s.peerSeconds[peer, default: 0] += seconds
        }
    }

    /// Read fan-out counters for /metrics.
    package struct ReadStats: Sendable {
        package var shardReads = 0
        /// Reads beyond one per shard (fan-outs, factor, retries after errors).
        package var extraReads = 0
        /// Extra reads started because a replica had not answered within read_fan_out_delay_ms.
        package var fanOuts = 0
        /// Fan-outs whose extra read answered first.
        package var fanOutWins = 0
        package var peerReads: [PeerID: Int] = [:]
        package var peerSeconds: [PeerID: Double] = [:]
    }

    package var readStats: ReadStats { stats.withLock { $0 } }
    package var peerLatency: [PeerID: Double] { latency.withLock { $0 }.mapValues(\.seconds) }

}
