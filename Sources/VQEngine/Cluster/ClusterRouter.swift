// Shards and replicas across peers: where a distributed collection's writes and searches go.
//
// Writes: the shard's primary (its first active replica in placement order) orders them: it
// applies the operation to its local shard, then sends it to every other active replica
// (`POST /internal/shards/{c}/{s}/apply`), one operation at a time per shard. It answers once
// `write_consistency_factor` replicas have it durable (or applied, for wait=true); a replica
// that missed it is marked Dead through consensus first, so it stops serving reads. Any peer
// forwards a write to the primary (`.../write`); an unreachable primary is marked Dead and the
// next active replica takes over.
//
// Searches: one active replica per shard, the local one when there is one, otherwise the
// replicas in turn; an error moves on to the next replica at once.

import Foundation
import Synchronization

package final class ClusterRouter: ShardRouter, @unchecked Sendable {
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
    package var timeout: Double = 10
    /// Order replicas by recent latency (default), or plain round robin (`--read-replica-choice`).
    package var latencyAware = true

    package init(node: ClusterNode, directory: DataDirectory) {
        self.node = node
        seqDir = directory.root + "/cluster/seq"
    }

    package func distributes(_ name: String) -> Bool { node.collectionMeta(name) != nil }

    private func client(_ peer: PeerID, timeout: Double) throws -> HTTPClient {
        guard let uri = node.address(of: peer) else { throw VQError(.io, "peer \(peer) has no known address") }
        let key = "\(uri) \(timeout)"
        return try clients.withLock { cache in
            if let c = cache[key] { return c }
            let c = try HTTPClient(url: uri, timeout: timeout)
            cache[key] = c
            return c
        }
    }

    /// The shard's replication state here (its lock orders everything done to the shard).
    private func replicationOf(_ collection: String, _ shard: Int) -> ShardReplication {
        replication.withLock { all in
            let key = "\(collection).\(shard)"
            if let r = all[key] { return r }
            let r = ShardReplication(path: seqDir + "/" + key)
            all[key] = r
            return r
        }
    }

    /// Calls a peer's internal shard route; non-200 answers become errors with its message.
    private func call(_ peer: PeerID, _ path: String, _ body: [UInt8], timeout: Double? = nil) throws -> [UInt8] {
        let r = try client(peer, timeout: timeout ?? self.timeout).send("POST", path, body: body,
                                      headers: node.internalHeaders + [(ClusterNode.appliedHeader, String(node.appliedIndex))])
        guard r.status == 200 else { throw VQError(status: r.status, body: r.body, from: "peer \(peer)") }
        return r.body
    }

    /// A shard operation on the wire: [u8 wait][u64 sequence number, 0 = not yet ordered]
    /// [u64 epoch of the primary that ordered it][operation].
    package static func encode(_ operation: [UInt8], _ wait: WriteWait, seq: UInt64 = 0, epoch: UInt64 = 0) -> [UInt8] {
        var w = ByteWriter(capacity: operation.count + 17)
        w.u8(wait == .applied ? 2 : 1)
        w.u64(seq)
        w.u64(epoch)
        w.bytes += operation
        return w.bytes
    }

    /// Decodes a peer's shard operation and checks it against the shard (`dim`), so nothing that
    /// could not be applied reaches the WAL.
    /// - Throws: `.invalidInput` naming what was wrong.
    package static func decode(_ body: [UInt8], dim: Int) throws -> (operation: Operation, bytes: [UInt8], wait: WriteWait, seq: UInt64, epoch: UInt64) {
        guard body.count >= 17, let first = body.first, first == 1 || first == 2 else {
            throw VQError.invalid("shard operation body is malformed: expected a wait byte (1 or 2), sequence and epoch, then the operation")
        }
        let (seq, epoch) = body.withUnsafeBytes {
            (UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: 1, as: UInt64.self)),
             UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: 9, as: UInt64.self)))
        }
        let bytes = Array(body[17...])
        let op: Operation
        do {
            op = try bytes.withUnsafeBytes { try Operation.decode($0) }
            try op.validate(dim: dim)
        } catch let e as VQError {
            throw VQError.invalid("shard operation is malformed: \(e.message)")
        }
        return (op, bytes, first == 2 ? .applied : .durable, seq, epoch)
    }

    private func markDead(_ collection: String, _ shard: Int, _ peer: PeerID, _ why: String) throws {
        node.logEvent("replica dead", [("collection", .string(collection)), ("shard", .int(Int64(shard))), ("peer", .uint(peer)),
                                       ("reason", .string(why))])
        try node.propose(ClusterState.setReplica(collection, shard: shard, peer: peer, .dead))
    }

    // MARK: writes

    package func write(_ collection: VectorCollection, shard: Int, _ operation: Operation, wait: WriteWait, deadline: Date?) throws -> Bool {
        guard node.collectionMeta(collection.name) != nil else { return false }
        let body = ClusterRouter.encode(operation.encode(), wait)
        for _ in 0..<4 {
            guard let meta = node.collectionMeta(collection.name) else { throw VQError(.notFound, "collection \"\(collection.name)\" was deleted") }
            guard let primary = meta.shards[shard].first(where: { $0.state == .active })?.peer else {
                throw VQError(.io, "shard \(shard) of \"\(collection.name)\" has no active replica")
            }
            if primary == node.id {
                try writeAsPrimary(collection, shard: shard, operation, wait: wait, deadline: deadline)
                return true
            }
            do {
                _ = try call(primary, "/internal/shards/\(collection.name)/\(shard)/write", body, timeout: 3 * timeout)
                return true
            } catch let e as VQError where e.kind == .busy {
                // It is no longer the primary (metadata moved on): ask again.
                node.catchUp()
            } catch let e as VQError where e.kind == .unreachable {
                // No answer came: the primary is gone; the next active replica leads.
                try markDead(collection.name, shard, primary, e.message)
            }
        }
        throw VQError(.io, "shard \(shard) of \"\(collection.name)\": no primary replica took the write")
    }

    /// On the primary: apply locally, then to every other active replica, in one order per shard.
    package func writeAsPrimary(_ collection: VectorCollection, shard: Int, _ operation: Operation, wait: WriteWait, deadline: Date?) throws {
        let replication = replicationOf(collection.name, shard)
        replication.lock.lock()
        defer { replication.lock.unlock() }
        guard let meta = node.collectionMeta(collection.name) else { throw VQError(.notFound, "collection \"\(collection.name)\" was deleted") }
        // Only the primary orders: one that has been replaced says so, and the caller asks again.
        guard meta.shards[shard].first(where: { $0.state == .active })?.peer == node.id else {
            replication.ordering = false
            throw VQError(.busy, "this peer is not the primary of shard \(shard) of \"\(collection.name)\"")
        }
        let local = collection.shards[shard]
        let op = try local.submit(operation, deadline: deadline)
        try local.waitDurable(op)
        if wait == .applied { try local.waitApplied(op) }
        let encoded = operation.encode()
        let epoch = replication.epochForOrdering()
        let seq = replication.lastSeq + 1
        replication.applied(seq, epoch: epoch, encoded)
        var acks = 1
        var failures: [(PeerID, String)] = []
        let body = ClusterRouter.encode(encoded, wait, seq: seq, epoch: epoch)
        let others = meta.shards[shard].filter { $0.state == .active && $0.peer != node.id }.map(\.peer)
        if !others.isEmpty {
            // Replicas in parallel; each gets this operation before the next one (shard lock).
            let results = Mutex<[(PeerID, String?)]>([])
            DispatchQueue.concurrentPerform(iterations: others.count) { i in
                let peer = others[i]
                do {
                    _ = try call(peer, "/internal/shards/\(collection.name)/\(shard)/apply", body)
                    results.withLock { $0.append((peer, nil)) }
                } catch {
                    results.withLock { $0.append((peer, "\(error)")) }
                }
            }
            for (peer, error) in results.withLock({ $0 }) {
                if let error { failures.append((peer, error)) } else { acks += 1 }
            }
        }
        // A replica that missed an acknowledged write must not serve reads: Dead, committed
        // before the answer.
        for (peer, why) in failures { try markDead(collection.name, shard, peer, why) }
        let needed = meta.config.writeConsistencyFactor
        if acks < needed {
            throw VQError(.io, "write reached \(acks) of shard \(shard)'s replicas; write_consistency_factor is \(needed)")
        }
    }

    /// On a replica: apply what the primary ordered.
    ///
    /// Operations come in sequence; one already applied is acknowledged again (a resend), and a
    /// gap is refused, so the primary marks this replica Dead and it catches up.
    package func applyAsReplica(_ collection: VectorCollection, shard: Int, _ body: [UInt8]) throws {
        let (operation, bytes, wait, seq, epoch) = try ClusterRouter.decode(body, dim: collection.config.dim)
        let replication = replicationOf(collection.name, shard)
        replication.lock.lock()
        defer { replication.lock.unlock() }
        replication.ordering = false
        // The same operation again (a resend) is acknowledged; anything else out of sequence is
        // refused, so the primary marks this replica Dead and it catches up.
        if seq != 0 && seq <= replication.lastSeq {
            if replication.epoch(of: seq) == epoch { return }
            throw VQError(.io, "replica of shard \(shard) holds a different operation \(seq) (another primary's)")
        }
        if seq != 0 && seq != replication.lastSeq + 1 {
            throw VQError(.io, "replica of shard \(shard) has operations up to \(replication.lastSeq) and was sent \(seq)")
        }
        let local = collection.shards[shard]
        let op = try local.submit(operation, deadline: Date().addingTimeInterval(timeout))
        try local.waitDurable(op)
        if wait == .applied { try local.waitApplied(op) }
        if seq != 0 { replication.applied(seq, epoch: epoch, bytes) }
    }

    /// This peer's last applied (sequence number, epoch) of a shard (where a catch-up starts).
    package func position(_ collection: String, _ shard: Int) -> (seq: UInt64, epoch: UInt64) {
        let r = replicationOf(collection, shard)
        return r.lock.withLock { (r.lastSeq, r.lastEpoch) }
    }

    // MARK: recovery and transfers

    /// On the primary: brings `target`'s replica (Dead or Partial) up to date and makes it Active:
    /// the operations after `fromSeq` when this peer still has them all (and the target has a
    /// history, `fromSeq` > 1), otherwise a copy of the whole shard. Writes to the shard wait
    /// meanwhile (its lock), so nothing slips between the catch-up and the next write.
    package func transfer(_ collection: VectorCollection, shard: Int, to target: PeerID, after: (seq: UInt64, epoch: UInt64)? = nil) throws {
        let replication = replicationOf(collection.name, shard)
        replication.lock.lock()
        defer { replication.lock.unlock() }
        guard let meta = node.collectionMeta(collection.name), let replica = meta.shards[shard].first(where: { $0.peer == target }) else {
            throw VQError(.notFound, "peer \(target) holds no replica of shard \(shard) of \"\(collection.name)\"")
        }
        if replica.state == .active { return }
        guard meta.shards[shard].first(where: { $0.state == .active })?.peer == node.id else {
            throw VQError(.busy, "this peer is not the primary of shard \(shard) of \"\(collection.name)\"")
        }
        if replica.state == .dead { try node.propose(ClusterState.setReplica(collection.name, shard: shard, peer: target, .partial)) }
        let mode: String
        var count = 0
        if let after, let missed = replication.range(after: after.seq, epoch: after.epoch) {
            // The missed range: replayed in order through the replica's usual path.
            for (seq, epoch, bytes) in missed {
                _ = try call(target, "/internal/shards/\(collection.name)/\(shard)/apply", ClusterRouter.encode(bytes, .durable, seq: seq, epoch: epoch))
            }
            mode = "range"
            count = missed.count
        } else {
            let local = collection.shards[shard]
            try local.waitApplied(local.lastOp)
            let records = local.scan(filter: nil, withVector: true, withPayload: true)
            let path = "/internal/shards/\(collection.name)/\(shard)/receive"
            let batches = Array(stride(from: 0, to: max(1, records.count), by: 1000))
            for (i, start) in batches.enumerated() {
                let part = Array(records[start..<min(records.count, start + 1000)])
                var body = ClusterRouter.recordsJSON(part, withVector: true)
                if case .object(var m) = body {
                    m.append(("clear", .bool(i == 0)))
                    if i == batches.count - 1 { m.append(("seq", .uint(replication.lastSeq))); m.append(("epoch", .uint(replication.lastEpoch))) }
                    body = .object(m)
                }
                _ = try call(target, path, Array(JSONWriter.string(body).utf8))
            }
            mode = "copy"
            count = records.count
        }
        try node.propose(ClusterState.setReplica(collection.name, shard: shard, peer: target, .active))
        node.logEvent("replica recovered", [("collection", .string(collection.name)), ("shard", .int(Int64(shard))), ("peer", .uint(target)),
                                            ("mode", .string(mode)), (mode == "range" ? "operations" : "points", .int(Int64(count)))])
    }

    /// On the receiving replica: one batch of a transfer (the first clears the shard).
    package func receive(_ collection: VectorCollection, shard: Int, _ body: JSON) throws {
        // Everything is checked before anything changes: a bad batch leaves the shard as it was.
        let dim = collection.config.dim
        let records = try ClusterRouter.records(body)
        var batch = PointBatch(dim: dim)
        for r in records {
            guard r.vector.count == dim else { throw VQError.invalid("transferred point \(r.id) has \(r.vector.count) dimensions; expected \(dim)") }
            let payload: [UInt8]? = r.payload.map { JSONWriter.bytes($0) }
            r.vector.withUnsafeBufferPointer { batch.append(id: r.id, vector: $0, payload: payload) }
        }
        let operation = Operation.upsert(batch)
        try operation.validate(dim: dim)
        let seq = body["seq"]?.uint64Value
        if let seq, seq >= 1 << 62 { throw VQError.invalid("transfer sequence number \(seq) is out of range") }
        let replication = replicationOf(collection.name, shard)
        replication.lock.lock()
        defer { replication.lock.unlock() }
        let local = collection.shards[shard]
        if body["clear"]?.boolValue == true {
            // Until the last batch arrives the shard matches no one's history.
            replication.reset(to: 0, epoch: 0)
            let existing = local.scan(filter: nil, withVector: false, withPayload: false).map(\.id)
            if !existing.isEmpty { try local.waitApplied(try local.submit(.delete(existing))) }
        }
        if !records.isEmpty { try local.waitApplied(try local.submit(operation)) }
        // The last batch: the shard is now the source's as of its sequence number.
        if let seq { replication.reset(to: seq, epoch: body["epoch"]?.uint64Value ?? 0) }
    }

    /// Forgets a collection's replication positions (it was deleted, or is created anew).
    package func forget(_ collection: String) {
        // A writer still holding the old state keeps writing to its unlinked file, never a new one.
        let dropped = replication.withLock { all in
            let keys = all.keys.filter { $0.hasPrefix(collection + ".") }
            defer { for k in keys { all[k] = nil } }
            return keys.compactMap { all[$0] }
        }
        for r in dropped { r.lock.withLock { r.reset(to: 0, epoch: 0) } }
        for file in FileIO.list(seqDir) where file.hasPrefix(collection + ".") { FileIO.remove(seqDir + "/" + file) }
    }

    /// Has the primary of `shard` bring `target`'s replica up to date (`transfer`), here when
    /// this peer is the primary, otherwise by asking it.
    package func catchUp(_ collection: VectorCollection, shard: Int, to target: PeerID, after: (seq: UInt64, epoch: UInt64)?) throws {
        guard let primary = node.collectionMeta(collection.name)?.shards[shard].first(where: { $0.state == .active })?.peer else {
            throw VQError(.io, "shard \(shard) of \"\(collection.name)\" has no active replica to copy from")
        }
        if primary == node.id {
            try transfer(collection, shard: shard, to: target, after: after)
            return
        }
        var m: [(String, JSON)] = [("to", .uint(target))]
        if let after { m += [("after_seq", .uint(after.seq)), ("after_epoch", .uint(after.epoch))] }
        _ = try call(primary, "/internal/shards/\(collection.name)/\(shard)/transfer", Array(JSONWriter.string(.object(m)).utf8), timeout: 600)
    }

    /// Runs on every peer: asks the primary of each shard where this peer's replica is Dead or
    /// Partial to copy it over (a restarted peer recovers by itself).
    package func startRecovery(engine: Engine) {
        Thread.detachNewThread { [self] in
            while !node.isStopped {
                Thread.sleep(forTimeInterval: 0.5)
                let state = node.metadata
                for (name, meta) in state.collections {
                    for (s, replicas) in meta.shards.enumerated() {
                        guard let mine = replicas.first(where: { $0.peer == node.id }), mine.state != .active else { continue }
                        do {
                            let collection = try engine.collection(name)
                            try catchUp(collection, shard: s, to: node.id, after: position(name, s))
                        } catch {
                            node.logEvent("replica recovery pending", [("collection", .string(name)), ("shard", .int(Int64(s))),
                                                                       ("reason", .string("\(error)"))])
                        }
                    }
                }
            }
        }
    }

    // MARK: searches

    package func search(_ collection: VectorCollection, shard: Int, _ query: [Float], _ request: ShardSearch) throws -> (hits: [ScoredPoint], skipped: Int)? {
        guard let meta = node.collectionMeta(collection.name) else { return nil }
        let order = preferred(meta.shards[shard].filter { $0.state == .active }.map(\.peer))
        guard !order.isEmpty else { throw VQError(.io, "shard \(shard) of \"\(collection.name)\" has no active replica") }
        let config = collection.config
        let me = node.id
        // The local replica first and no factor: read here (if this process stalls, so would a race).
        if order[0] == me && config.readFanOutFactor == 0 {
            stats.withLock { $0.shardReads += 1 }
            return query.withUnsafeBufferPointer { collection.shards[shard].search($0, request) }
        }
        let body = Array(JSONWriter.string(ClusterRouter.searchJSON(query, request)).utf8)
        let outcome = try FanOut.race(order, delay: Double(config.readFanOutDelayMs) / 1000, factor: config.readFanOutFactor) { [self] peer in
            if peer == me { return query.withUnsafeBufferPointer { collection.shards[shard].search($0, request) } }
            let start = DispatchTime.now().uptimeNanoseconds
            inflight.withLock { $0[peer, default: 0] += 1 }
            defer {
                inflight.withLock { $0[peer, default: 1] -= 1 }
                record(peer, seconds: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
            }
            return try ClusterRouter.hits(try JSONParser.parse(try call(peer, "/internal/shards/\(collection.name)/\(shard)/search", body)))
        }
        stats.withLock { s in
            s.shardReads += 1
            s.extraReads += outcome.launched - 1
            s.fanOuts += outcome.delayed
            if outcome.winner > 0 && outcome.delayed > 0 { s.fanOutWins += 1 }
        }
        return outcome.result
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

    // MARK: point reads

    package func scan(_ collection: VectorCollection, shard: Int, ids: [PointID]?, filter: Filter?, withVector: Bool, withPayload: Bool) throws
        -> [PointRecord]? {
        guard node.collectionMeta(collection.name) != nil else { return nil }
        var m: [(String, JSON)] = [("with_vector", .bool(withVector)), ("with_payload", .bool(withPayload))]
        if let ids { m.append(("ids", .array(ids.map(\.json)))) }
        if let filter { m.append(("filter", filter.json)) }
        let body = Array(JSONWriter.string(.object(m)).utf8)
        return try onOneReplica(collection, shard) { [self] peer in
            if peer == node.id {
                if let ids { return collection.shards[shard].retrieve(ids, withVector: withVector, withPayload: withPayload) }
                return collection.shards[shard].scan(filter: filter, withVector: withVector, withPayload: withPayload)
            }
            let answer = try call(peer, "/internal/shards/\(collection.name)/\(shard)/scan", body)
            do { return try ClusterRouter.records(try JSONParser.parse(answer)) } catch {
                throw VQError(.io, "peer \(peer)'s records answer is malformed: \(error)")
            }
        }
    }

    package func count(_ collection: VectorCollection, shard: Int) throws -> Int? {
        guard node.collectionMeta(collection.name) != nil else { return nil }
        return try onOneReplica(collection, shard) { [self] peer in
            if peer == node.id { return collection.shards[shard].pointCount }
            let answer = try JSONParser.parse(try call(peer, "/internal/shards/\(collection.name)/\(shard)/count", []))
            guard let n = answer["count"]?.intValue else { throw VQError(.io, "peer \(peer)'s count answer is malformed") }
            return Int(n)
        }
    }

    /// Runs `read` on one active replica of `shard` (local first, else in turn), moving on to the
    /// next at once when one fails; bad input is not retried.
    private func onOneReplica<T: Sendable>(_ collection: VectorCollection, _ shard: Int, _ read: @escaping @Sendable (PeerID) throws -> T) throws -> T {
        guard let meta = node.collectionMeta(collection.name) else { throw VQError(.notFound, "collection \"\(collection.name)\" is not distributed") }
        let order = preferred(meta.shards[shard].filter { $0.state == .active }.map(\.peer))
        guard !order.isEmpty else { throw VQError(.io, "shard \(shard) of \"\(collection.name)\" has no active replica") }
        return try FanOut.race(order, delay: 0, factor: 0, read).result
    }

    static func recordsJSON(_ records: [PointRecord], withVector: Bool) -> JSON {
        .object([("points", .array(records.map { r in
            var m: [(String, JSON)] = [("id", r.id.json), ("version", .uint(r.version))]
            if withVector { m.append(("vector", .array(r.vector.map { .double(Double($0)) }))) }
            if let p = r.payload { m.append(("payload", p)) }
            return .object(m)
        }))])
    }

    /// Points as a peer sent them (an answer, or a transfer batch).
    /// - Throws: `.invalidInput` for anything but `{"points": [{"id", "version"?, "vector"?: [finite numbers], "payload"?: {...}}]}`.
    package static func records(_ json: JSON) throws -> [PointRecord] {
        guard let points = json["points"]?.arrayValue else { throw VQError.invalid("peer records lack a \"points\" array") }
        return try points.map { p in
            guard let id = p["id"] else { throw VQError.invalid("a peer's record has no id") }
            let vector = try (p["vector"]?.arrayValue ?? []).map { x -> Float in
                guard let d = x.doubleValue, Float(d).isFinite else { throw VQError.invalid("a peer's record \(id.compactText) has a vector element \(x.compactText); expected a finite number") }
                return Float(d)
            }
            let payload = p["payload"].flatMap { $0 == .null ? nil : $0 }
            if let payload, payload.objectValue == nil { throw VQError.invalid("a peer's record \(id.compactText) has a payload that is not an object") }
            return PointRecord(id: try PointID(json: id), version: p["version"]?.uint64Value ?? 0, vector: vector, payload: payload)
        }
    }

    static func searchJSON(_ query: [Float], _ r: ShardSearch) -> JSON {
        var m: [(String, JSON)] = [("vector", .array(query.map { .double(Double($0)) })), ("k", .int(Int64(r.k))), ("ef", .int(Int64(r.ef))),
                                   ("exact", .bool(r.exact)), ("indexed_only", .bool(r.indexedOnly)), ("with_payload", .bool(r.withPayload))]
        if let f = r.filter { m.append(("filter", f.json)) }
        return .object(m)
    }

    /// A peer's shard search. - Throws: `.invalidInput` unless k is 1 to `VectorCollection.maxResults`,
    /// ef at least 1, and the vector finite numbers.
    package static func shardSearch(_ json: JSON) throws -> ([Float], ShardSearch) {
        guard let v = json["vector"]?.arrayValue, let k = json["k"]?.intValue, let ef = json["ef"]?.intValue else {
            throw VQError.invalid("shard search needs vector, k and ef")
        }
        guard (1...Int64(VectorCollection.maxResults)).contains(k) else { throw VQError.invalid("shard search k is \(k); expected 1 to \(VectorCollection.maxResults)") }
        guard (1...Int64(Int32.max)).contains(ef) else { throw VQError.invalid("shard search ef is \(ef); expected 1 or more") }
        let vector = try v.map { x -> Float in
            guard let d = x.doubleValue, Float(d).isFinite else { throw VQError.invalid("shard search vector holds \(x.compactText); expected finite numbers") }
            return Float(d)
        }
        var r = ShardSearch(k: Int(k), ef: Int(ef))
        r.exact = json["exact"]?.boolValue ?? false
        r.indexedOnly = json["indexed_only"]?.boolValue ?? false
        r.withPayload = json["with_payload"]?.boolValue ?? false
        if let f = json["filter"], f != .null { r.filter = try Filter(json: f) }
        return (vector, r)
    }

    static func hitsJSON(_ result: (hits: [ScoredPoint], skipped: Int)) -> JSON {
        .object([("hits", .array(result.hits.map { h in
            var m: [(String, JSON)] = [("id", h.id.json), ("version", .uint(h.version)), ("score", .double(Double(h.score))),
                                       ("rank", .double(Double(h.rank)))]
            if let p = h.payload { m.append(("payload", p)) }
            return .object(m)
        })), ("skipped", .int(Int64(result.skipped)))])
    }

    static func hits(_ json: JSON) throws -> (hits: [ScoredPoint], skipped: Int) {
        let hits = try (json["hits"]?.arrayValue ?? []).map { h -> ScoredPoint in
            guard let id = h["id"], let score = h["score"]?.doubleValue, let rank = h["rank"]?.doubleValue else {
                throw VQError(.io, "a peer's search answer is malformed")
            }
            return ScoredPoint(id: try PointID(json: id), version: h["version"]?.uint64Value ?? 0, score: Float(score), rank: Float(rank),
                               payload: h["payload"])
        }
        return (hits, Int(json["skipped"]?.intValue ?? 0))
    }
}
