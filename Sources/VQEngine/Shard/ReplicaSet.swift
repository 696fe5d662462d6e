// A shard as a set of replicas: the one path for every read and write of a shard, whether a
// replica is here (`LocalShard`) or on another peer (`RemoteShard`). A collection holds one
// replica set per shard; on a single node, or for a collection that is not distributed, the
// set is its local shard alone and every call goes straight to it.
//
// Placement (who holds the shard, in what state), peer calls, read statistics and consensus
// come from the cluster through `ReplicaPlacement` (implemented by `ClusterRouter`).
//
// Writes: the shard's primary (its first active replica in placement order) orders them: it
// applies the operation to its local shard, then sends it to every other active replica
// (`apply`), one operation at a time per shard. It answers once `write_consistency_factor`
// replicas have it durable (or applied, for wait=true); a replica that missed it is marked Dead
// through consensus first, so it stops serving reads. Any peer forwards a write to the primary
// (`write`); a primary that does not answer is marked Dead and the next active replica leads.
//
// Recovery (`transfer`): the primary sends a Dead or new replica the operations it missed, or a
// whole copy of the shard followed by the operations ordered during it; writes go on meanwhile,
// held only while the last few are sent and the replica is made Active.
//
// Reads: one active replica, the local one when there is one, otherwise in the cluster's order
// (fewest outstanding, then recent latency); `read_fan_out_delay_ms` and `read_fan_out_factor`
// race more (`FanOut`); an error moves on to the next replica at once.

import Foundation
import Synchronization

/// A peer's id in the cluster (random, never reused).
package typealias PeerID = UInt64

/// Keys held one at a time: `enter` waits while another caller holds the key.
package final class Gate<Key: Hashable & Sendable>: @unchecked Sendable {
    private let condition = NSCondition()
    private var held = Set<Key>()

    package init() {}

    package func enter(_ key: Key) {
        condition.lock()
        while held.contains(key) { condition.wait() }
        held.insert(key)
        condition.unlock()
    }

    package func leave(_ key: Key) {
        condition.lock()
        held.remove(key)
        condition.broadcast()
        condition.unlock()
    }
}

/// A replica's state, as Qdrant names them.
package enum ReplicaState: String, Sendable {
    /// Has every acknowledged write; serves reads.
    case active = "Active"
    /// Missed a write; serves nothing until recovered.
    case dead = "Dead"
    /// Catching up from an active replica.
    case partial = "Partial"
}

/// The answers of a primary's other replicas to one operation, as they come in.
final class ReplicaAnswers: @unchecked Sendable {
    typealias Answer = (peer: PeerID, error: VQError?, seconds: Double)
    private let condition = NSCondition()
    private var answers: [Answer] = []
    private let count: Int
    /// Peers waited for only while too few others have answered.
    private let notWaitedFor: Set<PeerID>
    private let start = DispatchTime.now().uptimeNanoseconds

    init(_ count: Int, notWaitedFor: Set<PeerID> = []) {
        self.count = count
        self.notWaitedFor = notWaitedFor
    }

    /// Seconds since it was made.
    var elapsed: Double { Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }

    func add(_ peer: PeerID, _ error: VQError?) {
        condition.lock()
        answers.append((peer, error, elapsed))
        condition.broadcast()
        condition.unlock()
    }

    /// The answers once every replica has answered, or at `limit` seconds.
    func waitAll(limit: Double) -> [Answer] { wait(remoteNeeded: .max, lag: 0, limit: limit).answers }

    /// Waits until every replica has answered, one refused as no longer led by this peer
    /// (`.notPrimary`), or `limit` seconds passed; or, once `remoteNeeded` have taken it, until
    /// the others have had `lag` seconds, or 4 times the slowest that took it if longer (a
    /// loaded cluster is slow everywhere; a cut-off replica is slow alone), and no longer than
    /// every replica not in `notWaitedFor` has answered.
    /// - Returns: the answers so far, and the seconds waited.
    func wait(remoteNeeded: Int, lag: Double, limit: Double) -> (answers: [Answer], seconds: Double) {
        condition.lock()
        defer { condition.unlock() }
        while true {
            let now = elapsed
            if answers.count == count || answers.contains(where: { $0.error?.kind == .notPrimary }) { return (answers, now) }
            let taken = answers.filter { $0.error == nil }
            var until = limit
            if taken.count >= remoteNeeded {
                if answers.filter({ !notWaitedFor.contains($0.peer) }).count == count - notWaitedFor.count { return (answers, now) }
                until = min(limit, max(lag, 4 * (taken.map(\.seconds).max() ?? 0)))
            }
            if now >= until { return (answers, now) }
            _ = condition.wait(until: Date().addingTimeInterval(until - now))
        }
    }
}

/// Where one replica of a shard is, and its state.
package struct Replica: Sendable, Equatable {
    package var peer: PeerID
    package var state: ReplicaState

    package init(peer: PeerID, state: ReplicaState) {
        self.peer = peer
        self.state = state
    }
}

extension Array where Element == Replica {
    /// The shard's primary: its first Active replica (placement order). Every peer, and the
    /// metadata's state machine, takes the same one from the same list.
    package var primary: PeerID? { first(where: { $0.state == .active })?.peer }
}

/// What a replica set needs from the cluster.
package protocol ReplicaPlacement: PeerTransport {
    var localPeer: PeerID { get }
    /// Seconds a primary waits, once `write_consistency_factor` replicas have a write, for the
    /// others (at least 4 times the slowest that answered), before marking them Dead.
    var replicaLagTimeout: Double { get }
    /// Whether `peer` recently answered neither a call nor a ping (`suspect`): a call to it is
    /// checked with a ping at once, and a primary does not wait for its replica beyond the others.
    func suspected(_ peer: PeerID) -> Bool
    /// Records that `peer` answered neither a call nor a ping, for a few seconds.
    func suspect(_ peer: PeerID)
    /// The shard's replicas in placement order, nil when the collection is not distributed.
    func replicas(_ collection: String, _ shard: Int) -> [Replica]?
    /// Active replicas' peers in the order to ask them.
    func readOrder(_ peers: [PeerID]) -> [PeerID]
    /// Runs a read on another peer, counted for `readOrder` and the metrics.
    func measureRead<T>(_ peer: PeerID, _ read: () throws -> T) throws -> T
    /// Counts one shard read: how many replicas were asked, how many because of the delay, and
    /// whether a delayed one answered first.
    func countRead(launched: Int, delayed: Int, fanOutWon: Bool)
    /// Commits through consensus that `peer`'s replica is now `state`.
    /// - Parameter ifPrimary: only while this peer is the shard's primary (else `.conflict`).
    func setReplica(_ collection: String, _ shard: Int, _ peer: PeerID, _ state: ReplicaState, reason: String?, ifPrimary: PeerID?) throws
    /// Brings this peer's metadata up to the leader's (placement moved on).
    func refreshMetadata()
    /// Brings this peer's metadata up to the leader's commit; false when that cannot be confirmed
    /// (no leader reachable in time).
    func confirmMetadata() -> Bool
    /// Whether the cluster made `collection` on this peer (so it is distributed even while this
    /// peer's metadata does not show it yet, as after a restart before the log is applied again).
    func isClusterCollection(_ collection: String) -> Bool
    /// The shard's replication position and recent operations here.
    func replication(_ collection: String, _ shard: Int) -> ShardReplication
    /// Whether a whole-shard copy sends segment files (else every point, in batches).
    var segmentFileTransfer: Bool { get }
    /// The collection's `read_fan_out_delay_ms` and `read_fan_out_factor`, for reads that ask
    /// several replicas (a read consistency above 1).
    func readFanOut(_ collection: String) -> (delayMs: Int, factor: Int)
    func log(_ event: String, _ fields: [(String, JSON)])
}

extension ReplicaPlacement {
    package var segmentFileTransfer: Bool { true }
    package var replicaLagTimeout: Double { min(1, callTimeout) }
    package func suspected(_ peer: PeerID) -> Bool { false }
    package func suspect(_ peer: PeerID) {}
    package func setReplica(_ collection: String, _ shard: Int, _ peer: PeerID, _ state: ReplicaState, reason: String?) throws {
        try setReplica(collection, shard, peer, state, reason: reason, ifPrimary: nil)
    }
    /// The collection's `read_fan_out_delay_ms` and `read_fan_out_factor` (none by default).
    package func readFanOut(_ collection: String) -> (delayMs: Int, factor: Int) { (0, 0) }
}

/// How a whole shard is copied to a replica: its segment files (Qdrant's `snapshot` method) or
/// every point (`stream_records`).
package enum TransferMethod: String, Sendable {
    case files = "snapshot"
    case records = "stream_records"
}

package final class ReplicaSet: Sendable {
    package let collection: String
    package let id: Int
    /// This peer's copy (every peer keeps one per shard; the placement says whether it counts).
    package let local: LocalShard
    let placement: (any ReplicaPlacement)?
    /// The last segment-file transfer this copy finished (a finish sent again is answered done).
    let lastTransfer = Mutex<UInt64>(0)
    /// Replicas a copy is under way to (one at a time each).
    let copying = Gate<PeerID>()
    /// Replicas this peer has asked the primary to copy to, while the call is out: one at a time
    /// each (a call given up on as unanswered still holds its thread until its own timeout).
    let askedCopies = Mutex<Set<PeerID>>([])
    /// Free disk bytes a copy to this replica (files or records) leaves (-1: 1% of the disk, at least 64 MiB; tests set it).
    let diskReserve = Atomic<Int>(-1)

    package init(collection: String, id: Int, local: LocalShard, placement: (any ReplicaPlacement)?) {
        self.collection = collection
        self.id = id
        self.local = local
        self.placement = placement
    }

    /// The placement when the collection is distributed.
    var distributed: (any ReplicaPlacement, [Replica])? {
        guard let placement, let replicas = placement.replicas(collection, id) else { return nil }
        return (placement, replicas)
    }

    /// Whether this peer's copy is an active replica (always, when the collection is not distributed).
    package var activeHere: Bool {
        guard let (placement, replicas) = distributed else { return true }
        return replicas.contains { $0.peer == placement.localPeer && $0.state == .active }
    }

    func remote(_ placement: any ReplicaPlacement, _ peer: PeerID) -> RemoteShard {
        RemoteShard(peer: peer, collection: collection, shard: id, transport: placement)
    }

    var what: String { "shard \(id) of \"\(collection)\"" }

    // MARK: reads

    /// Top-k of one active replica (the query is prepared: dimension checked, normalised).
    package func search(_ query: [Float], _ request: ShardSearch, config: CollectionConfig) throws -> (hits: [ScoredPoint], skipped: Int) {
        if readsSeveral {
            let local = self.local
            let (answers, threshold) = try onSeveralReplicas(local: {
                try local.checkIntact()
                return query.withUnsafeBufferPointer { local.search($0, request) }
            }, remote: { $0.searchRead(query, request) })
            let hits = Self.merge(answers.map { ($0.position, $0.value.hits) }, threshold: threshold, id: \.id)
                .sorted { $0.rank > $1.rank || ($0.rank == $1.rank && $0.id < $1.id) }
            return (Array(hits.prefix(request.k)), answers.map(\.value.skipped).max() ?? 0)
        }
        guard let (placement, replicas) = distributed else {
            try local.checkIntact()
            return query.withUnsafeBufferPointer { self.local.search($0, request) }
        }
        let me = placement.localPeer
        let order = placement.readOrder(replicas.filter { $0.state == .active }.map(\.peer))
        guard !order.isEmpty else { throw VQError(.busy, "\(what) has no active replica") }
        // The local replica first and no factor: read here (if this process stalls, so would a race).
        if order[0] == me && config.readFanOutFactor == 0 && local.damage == nil {
            placement.countRead(launched: 1, delayed: 0, fanOutWon: false)
            return query.withUnsafeBufferPointer { self.local.search($0, request) }
        }
        let local = self.local
        let outcome = try FanOut.race(order, delay: Double(config.readFanOutDelayMs) / 1000, factor: config.readFanOutFactor) { [self] peer in
            if peer == me {
                try local.checkIntact()
                return query.withUnsafeBufferPointer { local.search($0, request) }
            }
            return try placement.measureRead(peer) { try remote(placement, peer).search(query, request) }
        }
        placement.countRead(launched: outcome.launched, delayed: outcome.delayed, fanOutWon: outcome.winner > 0 && outcome.delayed > 0)
        return outcome.result
    }

    /// The records of `ids` (or, with ids nil, every point passing `filter`), from one active replica.
    package func scan(ids: [PointID]?, filter: Filter?, withVector: Bool, withPayload: Bool, vectors: VectorLayout) throws -> [PointRecord] {
        if readsSeveral {
            let (answers, threshold) = try onSeveralReplicas(local: { [self] in
                try self.scanOn(nil, 0, ids: ids, filter: filter, withVector: withVector, withPayload: withPayload, vectors: vectors)
            }, remote: { $0.scanRead(ids: ids, filter: filter, withVector: withVector, withPayload: withPayload, vectors: vectors) })
            return Self.merge(answers.map { ($0.position, $0.value) }, threshold: threshold, id: \.id)
        }
        return try onOneReplica { [self] placement, peer in
            try self.scanOn(placement, peer, ids: ids, filter: filter, withVector: withVector, withPayload: withPayload, vectors: vectors)
        }
    }

    /// The records of `ids` (or every point passing `filter`) on one replica (nil placement: the local copy).
    private func scanOn(_ placement: (any ReplicaPlacement)?, _ peer: PeerID, ids: [PointID]?, filter: Filter?, withVector: Bool,
                        withPayload: Bool, vectors: VectorLayout) throws -> [PointRecord] {
        if let placement, peer != placement.localPeer {
            return try placement.measureRead(peer) {
                try remote(placement, peer).scan(ids: ids, filter: filter, withVector: withVector, withPayload: withPayload, vectors: vectors)
            }
        }
        try local.checkIntact()
        if let ids { return local.retrieve(ids, withVector: withVector, withPayload: withPayload) }
        return local.scan(filter: filter, withVector: withVector, withPayload: withPayload)
    }


    /// Sparse vector `store`'s statistics (points that have it, points per index of `terms`), from one active replica.
    package func sparseStats(store: Int, terms: [UInt32]) throws -> (points: Int, df: [Int]) {
        try onOneReplica { [local] placement, peer in
            if let placement, peer != placement.localPeer {
                return try placement.measureRead(peer) { try self.remote(placement, peer).sparseStats(store: store, terms: terms) }
            }
            try local.checkIntact()
            return local.sparseStats(store: store, terms: terms)
        }
    }

    /// The points passing `filter`, from one active replica.
    package func count(filter: Filter) throws -> Int {
        if readsSeveral {
            let (answers, threshold) = try onSeveralReplicas(local: { [local] in
                try local.checkIntact()
                return local.count(filter: filter)
            }, remote: { $0.scanRead(ids: nil, filter: filter, withVector: false, withPayload: false, vectors: nil).map(\.count) })
            return Self.resolveCount(answers.map(\.value), threshold: threshold)
        }
        return try onOneReplica { [local] placement, peer in
            if let placement, peer != placement.localPeer {
                return try placement.measureRead(peer) {
                    try self.remote(placement, peer)
                        .scan(ids: nil, filter: filter, withVector: false, withPayload: false, vectors: nil).count
                }
            }
            try local.checkIntact()
            return local.count(filter: filter)
        }
    }

    /// Facet counts of indexed field `key` (a remote replica's from its points' payloads).
    package func facet(key: String, schema: PayloadFieldSchema, filter: Filter?) throws -> [IndexKey: Int] {
        if readsSeveral {
            let records = try scan(ids: nil, filter: filter, withVector: false, withPayload: true, vectors: local.options.vectors)
            return Self.facetCounts(records, key: key, schema: schema)
        }
        return try onOneReplica { [local] placement, peer in
            if let placement, peer != placement.localPeer {
                let records = try placement.measureRead(peer) {
                    try self.remote(placement, peer)
                        .scan(ids: nil, filter: filter, withVector: false, withPayload: true, vectors: nil)
                }
                return Self.facetCounts(records, key: key, schema: schema)
            }
            try local.checkIntact()
            guard let counts = local.facet(key: key, filter: filter) else { throw VQError(.busy, "\(self.what) is still building the index of \"\(key)\"") }
            return counts
        }
    }

    /// The first `limit` points by the numbers of indexed field `key` (a remote replica's from its payloads).
    package func ordered(key: String, schema: PayloadFieldSchema, filter: Filter?, descending: Bool, startFrom: Double?, limit: Int,
                         withVector: Bool, withPayload: Bool, vectors: VectorLayout) throws -> [(value: Double, record: PointRecord)] {
        if readsSeveral {
            // Ordered by payloads alone; only the winners' vectors are read then.
            let records = try scan(ids: nil, filter: filter, withVector: false, withPayload: true, vectors: vectors)
            var top = Self.orderedRecords(records, key: key, schema: schema, descending: descending, startFrom: startFrom, limit: limit,
                                          withPayload: withPayload)
            if withVector && !top.isEmpty {
                let full = try scan(ids: top.map(\.record.id), filter: nil, withVector: true, withPayload: withPayload, vectors: vectors)
                let byID = Dictionary(full.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
                top = top.compactMap { entry in byID[entry.record.id].map { (entry.value, $0) } }
            }
            return top
        }
        return try onOneReplica { [local] placement, peer in
            if let placement, peer != placement.localPeer {
                let records = try placement.measureRead(peer) {
                    try self.remote(placement, peer)
                        .scan(ids: nil, filter: filter, withVector: withVector, withPayload: true, vectors: vectors)
                }
                return Self.orderedRecords(records, key: key, schema: schema, descending: descending, startFrom: startFrom, limit: limit,
                                           withPayload: withPayload)
            }
            try local.checkIntact()
            guard let out = local.ordered(key: key, filter: filter, descending: descending, startFrom: startFrom, limit: limit,
                                          withVector: withVector, withPayload: withPayload) else {
                throw VQError(.busy, "\(self.what) is still building the index of \"\(key)\"")
            }
            return out
        }
    }

    /// The points in the shard, from one active replica.
    package func count() throws -> Int {
        if readsSeveral {
            let (answers, threshold) = try onSeveralReplicas(local: { [local] in local.pointCount }, remote: { $0.countRead() })
            return Self.resolveCount(answers.map(\.value), threshold: threshold)
        }
        return try onOneReplica { [local] placement, peer in
            if let placement, peer != placement.localPeer {
                return try placement.measureRead(peer) {
                    try self.remote(placement, peer).count()
                }
            }
            return local.pointCount
        }
    }

    /// Runs `read` on one active replica (local first, else in the cluster's order), moving on to
    /// the next at once when one fails.
    private func onOneReplica<T: Sendable>(_ read: @escaping @Sendable ((any ReplicaPlacement)?, PeerID) throws -> T) throws -> T {
        guard let (placement, replicas) = distributed else { return try read(nil, 0) }
        let order = placement.readOrder(replicas.filter { $0.state == .active }.map(\.peer))
        guard !order.isEmpty else { throw VQError(.busy, "\(what) has no active replica") }
        return try FanOut.race(order, delay: 0, factor: 0) { peer in try read(placement, peer) }.result
    }

    // MARK: writes

    /// Writes `operation` to the shard: locally when the collection is not distributed
    /// (returning its operation number, not yet waited for), else through the primary to every
    /// active replica, waited for to `wait` (returning nil).
    package func write(_ operation: Operation, wait: WriteWait, deadline: Date?, config: CollectionConfig) throws -> UInt64? {
        // One look at the placement decides: local only, or through the replicas. (Deciding and
        // then looking again could find neither, and drop the write.)
        guard let placement else { return try local.submit(operation, deadline: deadline) }
        // Not in this peer's metadata: a collection the cluster made here is still distributed.
        // A write taken locally alone (a restarted peer before its metadata log is applied again)
        // would be acknowledged on one copy the replicas never get.
        var current: [Replica]
        if let known = placement.replicas(collection, id) {
            current = known
        } else if !placement.isClusterCollection(collection) {
            return try local.submit(operation, deadline: deadline)
        } else if placement.confirmMetadata(), let caught = placement.replicas(collection, id) {
            current = caught
        } else {
            throw VQError(.busy, "\(what) is not in this peer's metadata yet; retry shortly")
        }
        let encoded = operation.encode()
        for attempt in 0..<4 {
            if attempt > 0 {
                // The caller's timeout bounds the search for a primary too (each try is bounded by the peer timeout).
                if let deadline, Date() >= deadline {
                    throw VQError(.busy, "\(what): the write's timeout passed while its primary changed (\(attempt) tries); it was not acknowledged")
                }
                guard let now = placement.replicas(collection, id) else { throw VQError(.notFound, "collection \"\(collection)\" was deleted") }
                current = now
            }
            let replicas = current
            guard let primary = replicas.primary else {
                throw VQError(.busy, "\(what) has no active replica")
            }
            if primary == placement.localPeer {
                do {
                    try writeAsPrimary(operation, encoded: encoded, wait: wait, deadline: deadline, config: config)
                    return nil
                } catch let e as VQError where e.kind == .busy {
                    // Replaced as primary (a replica's metadata is newer): ask again.
                    placement.refreshMetadata()
                    continue
                }
            }
            do {
                try forward(placement, to: primary, encoded, wait, deadline: deadline)
                return nil
            } catch let e as VQError where e.kind == .busy {
                // It is no longer the primary (metadata moved on): ask again.
                placement.refreshMetadata()
            } catch let e as VQError where e.kind == .unreachable {
                // No answer came: the primary is gone; the next active replica leads. Only while it
                // is still the primary: another forwarder may have replaced it already (and it may
                // be back as a replica), or it was dropped; then the placement has moved on.
                do {
                    try placement.setReplica(collection, id, primary, .dead, reason: e.message, ifPrimary: primary)
                } catch let d as VQError where d.kind == .notFound || d.kind == .conflict {
                    placement.refreshMetadata()
                }
            }
        }
        throw VQError(.busy, "\(what): no primary replica took the write")
    }

    /// Forwards a write to the shard's primary (`watched`: one that answers neither it nor a
    /// ping counts as gone at once, rather than when the write's own call times out, after 3
    /// peer timeouts: the primary may itself wait for its replicas and for consensus). The
    /// primary waits on a full update queue until `deadline` (what is left of the caller's
    /// timeout), as a write taken here would.
    private func forward(_ placement: any ReplicaPlacement, to primary: PeerID, _ encoded: [UInt8], _ wait: WriteWait, deadline: Date?) throws {
        let replica = remote(placement, primary)
        let queueTimeout = deadline.map { $0.timeIntervalSinceNow }
        // In whole seconds: one limit for most writes, so a pooled connection keeps its setting.
        let limit = (3 * placement.callTimeout + max(0, queueTimeout ?? 0)).rounded(.up)
        try watched(placement, primary, "a write") { try replica.write(encoded, wait, timeout: limit, queueTimeout: queueTimeout) }
    }

    /// Runs `call` to `peer`, checking meanwhile that the peer is there: while it is unanswered,
    /// the peer is pinged (`/internal/ping`) every half `replicaLagTimeout`, and one that does
    /// not answer a ping within the other half counts as gone (`.unreachable`) at once. (The
    /// call goes on in the background until its own timeout.)
    func watched(_ placement: any ReplicaPlacement, _ peer: PeerID, _ what: String, _ call: @escaping @Sendable () throws -> Void) throws {
        let answer = ReplicaAnswers(1)
        BlockingPool.shared.run {
            do { try call(); answer.add(peer, nil) } catch { answer.add(peer, VQError.wrap(error)) }
        }
        let half = placement.replicaLagTimeout / 2
        // Just found gone by another call: pinged at once (one that answers is waited for as usual).
        var checkAt = placement.suspected(peer) ? 0 : half
        while true {
            if let first = answer.waitAll(limit: checkAt).first {
                if let error = first.error { throw error }
                return
            }
            do {
                _ = try placement.post(peer, "/internal/ping", [], timeout: half)
            } catch let e as VQError where e.kind == .unreachable {
                if let late = answer.waitAll(limit: 0).first {
                    if let error = late.error { throw error }
                    return
                }
                placement.suspect(peer)
                throw VQError(.unreachable, "peer \(peer) did not answer \(what) in \(String(format: "%.1f", answer.elapsed)) s, nor a ping in "
                              + "\(half) s (--replica-lag-timeout): \(e.message)")
            } catch {
                // Any answer (an error included) says the peer is there: keep waiting.
            }
            checkAt = answer.elapsed + half
        }
    }

    /// On the primary: apply locally, then to every other active replica, in one order per shard.
    /// - Parameter encoded: `operation`'s encoding (made once by the caller).
    package func writeAsPrimary(_ operation: Operation, encoded: [UInt8]? = nil, wait: WriteWait, deadline: Date?, config: CollectionConfig) throws {
        guard let placement else { throw VQError(.notFound, "this server runs no cluster") }
        let replication = placement.replication(collection, id)
        // Starting to order (after a restart or a failover): only with metadata caught up to the
        // leader's commit, so a primary that was replaced while it was away (killed, cut off)
        // never orders on its old view. Checked before the shard's lock (catching up may wait
        // on effects that take it).
        if !replication.lock.withLock({ replication.ordering }) && !placement.confirmMetadata() {
            throw VQError(.busy, "\(what): this peer cannot confirm with the metadata leader that it is still the primary")
        }
        replication.lock.lock()
        defer { replication.lock.unlock() }
        guard let replicas = placement.replicas(collection, id) else { throw VQError(.notFound, "collection \"\(collection)\" was deleted") }
        // Only the primary orders: one that has been replaced says so, and the caller asks again.
        guard replicas.primary == placement.localPeer else {
            replication.ordering = false
            throw VQError(.busy, "this peer is not the primary of \(what)")
        }
        let op = try local.submit(operation, deadline: deadline)
        do {
            try local.waitDurable(op)
        } catch let e as VQError where e.kind == .insufficientStorage || e.kind == .io {
            // The operation stays queued here (it is applied once the disk can take it) but no
            // other replica will get it: this copy gives up being Active, so the others, which
            // do not have it, serve and order from now on; it comes back by a copy. (With no
            // other active replica there is nothing to diverge from.)
            if replicas.contains(where: { $0.state == .active && $0.peer != placement.localPeer }) {
                try? placement.setReplica(collection, id, placement.localPeer, .dead, reason: e.message)
            }
            throw e
        }
        if wait == .applied { try local.waitApplied(op) }
        let encoded = encoded ?? operation.encode()
        let epoch = replication.epochForOrdering()
        let seq = replication.lastSeq + 1
        replication.applied(seq, epoch: epoch, encoded)
        let others = replicas.filter { $0.state == .active && $0.peer != placement.localPeer }.map(\.peer)
        let needed = config.writeConsistencyFactor
        var acks = 1
        var failures: [(PeerID, String)] = []
        if !others.isEmpty {
            // Replicas in parallel; each gets this operation before the next one (shard lock).
            // Replicas of a peer just found gone are sent it too, but once enough others have it,
            // not waited for beyond them.
            let answers = ReplicaAnswers(others.count, notWaitedFor: Set(others.filter { placement.suspected($0) }))
            for peer in others {
                let replica = remote(placement, peer)
                // A thread each (the blocking pool's): a call to a stalled replica holds it.
                BlockingPool.shared.run {
                    do { try replica.apply(encoded, wait, seq: seq, epoch: epoch); answers.add(peer, nil) } catch { answers.add(peer, VQError.wrap(error)) }
                }
            }
            let (answered, waited) = answers.wait(remoteNeeded: needed - 1, lag: placement.replicaLagTimeout, limit: placement.callTimeout + 1)
            if let replaced = answered.first(where: { $0.error?.kind == .notPrimary })?.error {
                // A replica knows a newer primary: this peer stops ordering and marks no one Dead.
                // The operation stays here only (never acknowledged); the current primary's next
                // write finds this copy different and brings it back by a copy.
                // (The caller catches up with the metadata once this shard's lock is let go.)
                replication.ordering = false
                throw VQError(.busy, "this peer is no longer the primary of \(what): \(replaced.message)")
            }
            for (peer, error, _) in answered {
                if let error { failures.append((peer, error.message)) } else { acks += 1 }
            }
            // Replicas still working on it once enough others have it: lagging (cut off, stalled).
            // Each is marked Dead (below) rather than holding every write to the shard for the
            // peer timeout; one that applies it anyway is ahead of nothing it will be sent.
            let within = String(format: "%.2f", waited)
            for peer in others where !answered.contains(where: { $0.peer == peer }) {
                failures.append((peer, acks >= needed
                                 ? "did not take operation \(seq) within \(within) s, while \(acks) replicas had it (--replica-lag-timeout)"
                                 : "did not take operation \(seq) within \(within) s (--peer-timeout)"))
            }
        }
        // A replica that missed an acknowledged write must not serve reads: Dead, committed
        // before the answer, and only while this peer is still the primary (a replaced one's
        // write is not acknowledged).
        for (peer, why) in failures {
            do {
                try placement.setReplica(collection, id, peer, .dead, reason: why, ifPrimary: placement.localPeer)
            } catch let e as VQError where e.kind == .notFound {
                // Dropped meanwhile (a move finished): no longer a replica, so nothing to mark.
                continue
            } catch let e as VQError where e.kind == .conflict {
                replication.ordering = false
                throw VQError(.busy, "this peer is no longer the primary of \(what): \(e.message)")
            }
        }
        if acks < needed {
            throw VQError(.io, "write reached \(acks) of \(what)'s replicas; write_consistency_factor is \(needed)")
        }
    }

    /// On a replica: apply what the primary ordered (`body` as `ShardWire.encodeOperation` made it).
    ///
    /// Operations come in sequence; one already applied is acknowledged again (a resend), and a
    /// gap is refused, so the primary marks this replica Dead and it catches up.
    ///
    /// - Parameter from: the peer that sent it. When this peer's metadata (caught up to the
    ///   sender's before the call) names another primary, the sender is a primary that was
    ///   replaced without knowing it: refused with `.busy`, and the sender does not count this
    ///   replica as failed (a stale primary must not mark the current one's replicas Dead).
    package func applyAsReplica(_ body: [UInt8], vectors: VectorLayout, from: PeerID? = nil) throws {
        guard let placement else { throw VQError(.notFound, "this server runs no cluster") }
        let (operation, bytes, wait, seq, epoch) = try ShardWire.decodeOperation(body, vectors: vectors)
        let replication = placement.replication(collection, id)
        replication.lock.lock()
        defer { replication.lock.unlock() }
        try checkOrderedBy(from, placement, replication)
        if seq != 0 && seq <= replication.lastSeq {
            if replication.epoch(of: seq) == epoch { return }
            throw VQError(.conflict, "replica of \(what) holds a different operation \(seq) (another primary's)")
        }
        if seq != 0 && seq != replication.lastSeq + 1 {
            throw VQError(.conflict, "replica of \(what) has operations up to \(replication.lastSeq) and was sent \(seq)")
        }
        let op = try local.submit(operation, deadline: Date().addingTimeInterval(placement.callTimeout))
        try waitDurable(op, replication)
        if wait == .applied { try local.waitApplied(op) }
        if seq != 0 { replication.applied(seq, epoch: epoch, bytes) }
    }

    /// On a replica: waits until operation `op` is durable. When that fails (a full disk), the
    /// operations submitted stay in the WAL and may still be applied later, so a resend from the
    /// recorded position could apply them twice: this copy then matches no history (0, 0), and
    /// comes back by a whole copy.
    private func waitDurable(_ op: UInt64, _ replication: ShardReplication) throws {
        do {
            try local.waitDurable(op)
        } catch {
            replication.reset(to: 0, epoch: 0)
            throw error
        }
    }

    /// On a replica, under the shard's lock: refuses operations from a peer this peer's
    /// metadata does not name primary (`applyAsReplica`), and stops ordering here.
    private func checkOrderedBy(_ from: PeerID?, _ placement: any ReplicaPlacement, _ replication: ShardReplication) throws {
        if let from, let replicas = placement.replicas(collection, id), let primary = replicas.primary,
           primary != from {
            throw VQError(.notPrimary, "peer \(from) is not the primary of \(what); peer \(primary) is, as this replica's metadata says")
        }
        replication.ordering = false
    }

    /// On a replica: a catch-up's batch of operations the primary ordered (`ShardWire.encodeOperations`),
    /// applied in order as `applyAsReplica` applies one, but made durable together: one wait for
    /// the last, instead of one per operation. Every operation is decoded and validated before
    /// any is applied; those already here (a resend) are skipped; at a gap or another primary's
    /// operation the batch stops, keeping the operations before it, and is refused.
    package func applyBatchAsReplica(_ body: [UInt8], vectors: VectorLayout, from: PeerID) throws {
        guard let placement else { throw VQError(.notFound, "this server runs no cluster") }
        let batch = try ShardWire.decodeOperations(body).map { try ShardWire.decodeOperation($0, vectors: vectors) }
        guard batch.allSatisfy({ $0.seq != 0 }) else { throw VQError.invalid("a batch of operations must carry their sequence numbers") }
        // The batch is made durable as one and waited for as its last says: an earlier operation
        // asking to be waited for until applied would be a wait this batch does not keep.
        guard batch.dropLast().allSatisfy({ $0.wait == .durable }) else {
            throw VQError.invalid("a batch of operations may ask wait=applied of its last operation only")
        }
        let replication = placement.replication(collection, id)
        replication.lock.lock()
        defer { replication.lock.unlock() }
        try checkOrderedBy(from, placement, replication)
        // Submitted, not yet recorded as applied (that waits until they are durable).
        var submitted: [(op: UInt64, seq: UInt64, epoch: UInt64, bytes: [UInt8])] = []
        var failure: (any Error)?
        let deadline = Date().addingTimeInterval(placement.callTimeout)
        for one in batch {
            if one.seq <= replication.lastSeq {
                if replication.epoch(of: one.seq) == one.epoch { continue }
                failure = VQError(.conflict, "replica of \(what) holds a different operation \(one.seq) (another primary's)")
                break
            }
            let next = (submitted.last?.seq ?? replication.lastSeq) + 1
            guard one.seq == next else {
                failure = VQError(.conflict, "replica of \(what) has operations up to \(next - 1) and was sent \(one.seq)")
                break
            }
            do {
                submitted.append((try local.submit(one.operation, deadline: deadline), one.seq, one.epoch, one.bytes))
            } catch {
                failure = error
                break
            }
        }
        // The WAL is one sequence: the last submitted durable means all of them are.
        if let last = submitted.last {
            try waitDurable(last.op, replication)
            if failure == nil, batch.last?.wait == .applied { try local.waitApplied(last.op) }
            for one in submitted { replication.applied(one.seq, epoch: one.epoch, one.bytes) }
        }
        if let failure { throw failure }
    }

    /// This peer's last applied (sequence number, epoch) of the shard (where a catch-up starts).
    package var position: (seq: UInt64, epoch: UInt64) {
        guard let placement else { return (0, 0) }
        let r = placement.replication(collection, id)
        return r.lock.withLock { (r.lastSeq, r.lastEpoch) }
    }

    // MARK: recovery and transfers

    /// On the primary: brings `target`'s replica (Dead or Partial) up to date and makes it Active.
    /// Writes to the shard go on meanwhile, except for the last few operations' catch-up:
    ///
    /// 1. Under the shard's lock: the starting point. The operations after `after` when this
    ///    peer still has them all; otherwise a whole copy of the shard as it is now (its segment
    ///    files pinned, or its points read), at this peer's position. The history after that
    ///    position is pinned, so the operations ordered during the copy stay (`ShardReplication.pin`).
    /// 2. Without the lock: the copy is sent; writes go on to the active replicas.
    /// 3. Catch-up: the operations ordered since, in rounds without the lock while there are
    ///    many, then the last few under it, and the replica is made Active before the next
    ///    write is ordered. Each round's last operation is waited for until applied, so all are
    ///    before the replica serves reads.
    ///
    /// One copy to a replica at a time: another call for the same one waits for it, then finds
    /// the replica Active. When the writes outgrow the pinned history before the copy ends,
    /// the copy is made once more, holding writes throughout (as copies did before).
    /// - Parameter method: how a whole copy is made (nil: `placement.segmentFileTransfer`).
    package func transfer(to target: PeerID, after: (seq: UInt64, epoch: UInt64)?, method: TransferMethod? = nil) throws {
        guard placement != nil else { throw VQError(.notFound, "this server runs no cluster") }
        copying.enter(target)
        defer { copying.leave(target) }
        var after = after
        for attempt in 0..<2 {
            do {
                return try transferOnce(to: target, after: after, method: method, holdWrites: attempt > 0)
            } catch let e as CatchUpLost {
                // Ordered past the pinned history: once more, holding writes for the catch-up.
                placement?.log("replica copy outrun by writes", [("collection", .string(collection)), ("shard", .int(Int64(id))),
                                                                 ("peer", .uint(target)), ("operations", .int(Int64(e.operations)))])
                after = nil
            }
        }
        throw VQError(.busy, "\(what): writes outran the copy to peer \(target) twice")
    }

    /// The history a catch-up needed was gone (`transfer` tries once more).
    private struct CatchUpLost: Error { var operations: Int }

    /// Rounds of catch-up without the shard's lock before the last one under it.
    static let catchUpRounds = 8
    /// A catch-up round of at most this many operations is the last (under the shard's lock).
    static let finalRound = 64
    /// Bytes of one catch-up batch on the wire, at most (a single larger operation goes alone).
    static let catchUpBatchBytes = 1 << 20

    /// - Parameter holdWrites: hold the shard's lock throughout (writes wait for the whole copy).
    private func transferOnce(to target: PeerID, after: (seq: UInt64, epoch: UInt64)?, method: TransferMethod?, holdWrites: Bool) throws {
        guard let placement else { throw VQError(.notFound, "this server runs no cluster") }
        let began = DispatchTime.now().uptimeNanoseconds
        let replication = placement.replication(collection, id)
        if holdWrites { replication.lock.lock() }
        defer { if holdWrites { replication.lock.unlock() } }
        // 1. The starting point, under the shard's lock (nil: Active already).
        enum Copy { case range, files(PinnedFiles), records([PointRecord]) }
        func start() throws -> (copy: Copy, base: (seq: UInt64, epoch: UInt64))?? {
            try replication.lock.withLock {
                guard let replicas = placement.replicas(collection, id), let replica = replicas.first(where: { $0.peer == target }) else {
                    throw VQError(.notFound, "peer \(target) holds no replica of \(what)")
                }
                if replica.state == .active { return .some(nil) }
                guard replicas.primary == placement.localPeer else {
                    throw VQError(.busy, "this peer is not the primary of \(what)")
                }
                if replica.state == .dead { try placement.setReplica(collection, id, target, .partial, reason: nil, ifPrimary: placement.localPeer) }
                let copy: Copy, base: (seq: UInt64, epoch: UInt64)
                if let after, replication.range(after: after.seq, epoch: after.epoch) != nil {
                    (copy, base) = (.range, after)
                } else {
                    try local.waitApplied(local.lastOp)
                    base = (replication.lastSeq, replication.lastEpoch)
                    if (method ?? (placement.segmentFileTransfer ? .files : .records)) == .files {
                        // Another copy holds the files (they are older than now): wait for it unlocked.
                        guard let pinned = try local.pinFiles() else { return nil }
                        copy = .files(pinned)
                    } else {
                        copy = .records(local.scan(filter: nil, withVector: true, withPayload: true))
                    }
                }
                replication.pin(base.seq, epoch: base.epoch)
                return (copy, base)
            }
        }
        var started: (copy: Copy, base: (seq: UInt64, epoch: UInt64))??
        while true {
            started = try start()
            if started != nil { break }
            // Only a file copy that met another copy's pin waits here (unlocked), then tries again.
            local.waitUntilUnpinned()
        }
        guard let (copy, base) = started! else { return }
        let destination = remote(placement, target)
        defer { replication.lock.withLock { replication.unpin(base.seq) } }
        // 2. The copy, while writes go on.
        var mode = "range", count = 0
        switch copy {
        case .range:
            break
        case .files(let pinned):
            defer { pinned.release() }
            let started = Date()
            let bytes = try sendFiles(pinned, to: destination, position: base)
            let seconds = Date().timeIntervalSince(started)
            (mode, count) = ("files", pinned.points)
            placement.log("shard copied", [("collection", .string(collection)), ("shard", .int(Int64(id))), ("peer", .uint(target)),
                                           ("bytes", .int(Int64(bytes))), ("seconds", .double(seconds)),
                                           ("mb_per_s", .double(seconds > 0 ? Double(bytes) / 1e6 / seconds : 0))])
        case .records(let records):
            let started = Date()
            let starts = Array(stride(from: 0, to: max(1, records.count), by: 1000))
            for (i, start) in starts.enumerated() {
                let part = Array(records[start..<min(records.count, start + 1000)])
                try destination.receive(ShardWire.ReceiveBatch(clear: i == 0, last: i == starts.count - 1 ? base : nil, records: part))
            }
            (mode, count) = ("copy", records.count)
            placement.log("shard copied", [("collection", .string(collection)), ("shard", .int(Int64(id))), ("peer", .uint(target)),
                                           ("points", .int(Int64(count))), ("seconds", .double(Date().timeIntervalSince(started)))])
        }
        // 3. The operations ordered since the base: rounds without the lock, the last under it.
        var at = base
        var caughtUp = 0
        for round in 0... {
            replication.lock.lock()
            var locked = true
            defer { if locked { replication.lock.unlock() } }
            guard let missed = replication.range(after: at.seq, epoch: at.epoch, pinned: true) else {
                throw CatchUpLost(operations: caughtUp)
            }
            let last = holdWrites || missed.count <= Self.finalRound || round >= Self.catchUpRounds
            if !last {
                replication.lock.unlock()
                locked = false
            } else {
                // Still the primary, and the replica still placed and not Active (it was not
                // dropped, or made Active by another, meanwhile).
                guard let replicas = placement.replicas(collection, id), replicas.primary == placement.localPeer else {
                    throw VQError(.busy, "this peer is no longer the primary of \(what)")
                }
                guard replicas.contains(where: { $0.peer == target && $0.state == .partial }) else {
                    throw VQError(.notFound, "peer \(target)'s replica of \(what) was dropped or changed state during its copy")
                }
            }
            // In batches (up to 4,096 operations or 1 MiB with their framing, well under any
            // sensible --max-body-bytes), each made durable once on the replica; the last waited
            // for until applied.
            var from = 0, batches = true
            while from < missed.count {
                var to = from, bytes = 4
                while to < missed.count && to - from < ShardWire.maxBatchOperations
                        && (to == from || bytes + ShardWire.framedSize(missed[to].bytes) <= Self.catchUpBatchBytes) {
                    bytes += ShardWire.framedSize(missed[to].bytes)
                    to += 1
                }
                let part = Array(missed[from..<to]), wait: WriteWait = to == missed.count ? .applied : .durable
                var sent = false
                if batches {
                    do {
                        try destination.apply(batch: part, wait)
                        sent = true
                    } catch let e as VQError where (e.kind == .notFound && e.message.contains("no route for"))
                                                    || (e.kind == .invalidInput && e.message.contains("exceeds")) {
                        // A peer without apply-batch (an older version: its router's 404), or a
                        // body limit below the batch (its parser's 413): one operation per call,
                        // as before batches, for the rest of this catch-up. (Anything else the
                        // batch met, one call each would meet too.)
                        batches = false
                    }
                }
                if !sent {
                    for (i, op) in part.enumerated() {
                        try destination.apply(op.bytes, i == part.count - 1 ? wait : .durable, seq: op.seq, epoch: op.epoch)
                    }
                }
                from = to
            }
            caughtUp += missed.count
            if let end = missed.last { at = (end.seq, end.epoch) }
            if last {
                // Only while still the primary: one replaced during the copy (another primary
                // ordered writes this replica never got) must not make it Active.
                try placement.setReplica(collection, id, target, .active, reason: nil, ifPrimary: placement.localPeer)
                if mode == "range" { count = caughtUp }
                placement.log("replica recovered", [("collection", .string(collection)), ("shard", .int(Int64(id))), ("peer", .uint(target)),
                                                    ("mode", .string(mode)), (mode == "range" ? "operations" : "points", .int(Int64(count))),
                                                    ("caught_up", .int(Int64(caughtUp))), ("final_round", .int(Int64(missed.count))),
                                                    ("seconds", .double(Double(DispatchTime.now().uptimeNanoseconds - began) / 1e9))])
                return
            }
        }
    }

    /// On the receiving replica: one batch of a transfer (the first clears the shard). The batch
    /// was checked as it was decoded; nothing changes before that.
    /// - Parameter from: the sender (`checkCopy`).
    package func receive(_ batch: ShardWire.ReceiveBatch, vectors: VectorLayout, from: PeerID) throws {
        guard let placement else { throw VQError(.notFound, "this server runs no cluster") }
        try checkCopy(from: from, placement)
        var points = PointBatch(vectors)
        for r in batch.records {
            let payload: [UInt8]? = r.payload.map { JSONWriter.bytes($0) }
            withOptionalBuffers(r.vectors) { points.append(id: r.id, vectors: $0, sparse: r.sparse, multi: r.multi, payload: payload) }
        }
        // As a file copy: not past the disk's reserve (the points go to the WAL, then a segment).
        let operation = Operation.upsert(points)
        try checkDiskReserve(adding: 2 * operation.encodedSize, at: local.directory)
        let replication = placement.replication(collection, id)
        replication.lock.lock()
        defer { replication.lock.unlock() }
        if batch.clear {
            // Until the last batch arrives the shard matches no one's history.
            replication.reset(to: 0, epoch: 0)
            let existing = local.scan(filter: nil, withVector: false, withPayload: false).map(\.id)
            if !existing.isEmpty { try local.waitApplied(try local.submit(.delete(existing))) }
        }
        if points.count > 0 { try local.waitApplied(try local.submit(operation)) }
        // The last batch: the shard is now the source's as of its sequence number.
        if let last = batch.last { replication.reset(to: last.seq, epoch: last.epoch) }
    }

    /// Has the primary bring `target`'s replica up to date (`transfer`): here when this peer is
    /// the primary, otherwise by asking it.
    package func catchUp(to target: PeerID, after: (seq: UInt64, epoch: UInt64)?, method: TransferMethod? = nil) throws {
        guard let (placement, replicas) = distributed else { throw VQError(.notFound, "collection \"\(collection)\" is not distributed") }
        guard let primary = replicas.primary else {
            throw VQError(.busy, "\(what) has no active replica to copy from")
        }
        if primary == placement.localPeer {
            try transfer(to: target, after: after, method: method)
        } else {
            // A primary cut off during the copy is given up on at once (the next pass asks
            // whoever is primary then), not after the copy's 600 s timeout.
            let source = remote(placement, primary)
            guard askedCopies.withLock({ $0.insert(target).inserted }) else {
                throw VQError(.busy, "\(what): a copy to peer \(target) asked of peer \(primary) is still under way")
            }
            try watched(placement, primary, "a replica copy") { [self] in
                defer { _ = askedCopies.withLock { $0.remove(target) } }
                try source.transfer(to: target, after: after, method: method)
            }
        }
    }
}
