// Anti-entropy: the primary compares each active replica's content with its own and repairs
// what differs, so replicas converge even where the write path cannot tell (a write a dying
// primary sent to some replicas only, a copy damaged and rewritten by hand, a bug).
//
//   pass 1  (writes go on) the primary's digest and each replica's (ShardDigest: 256 buckets);
//           equal digests end it. A bucket may also differ only because writes were in flight.
//   pass 2  (writes go on) per replica, the content hashes of the differing buckets' points;
//           the points that differ are suspects (a point that differed only while a write was
//           in flight compares equal and is never held)
//   pass 3  (the shard's lock held: no write is ordered, so both copies hold the same
//           operations once applied) the suspects only, compared again; points the replica
//           lacks or holds differently are sent as an upsert of the primary's stored point,
//           points only the replica holds as a delete, both unsequenced (`apply` with sequence
//           0: the replication position does not move).
//
// A replica that cannot be compared (no answer) is reported and left to the write path; one that
// is known to differ and cannot be repaired is marked Dead, so it serves no reads and is copied.
// Only a primary whose metadata the Raft leader confirms repairs; a replica that names another
// primary refuses (as for writes), and the repair stops without marking anyone.

import Foundation

extension ReplicaSet {
    /// Points sent per repair call.
    static let repairBatch = 1000

    /// Compares every other active replica with this peer's copy and repairs the difference
    /// (this peer must be the shard's primary). Returns the report `repair` gives.
    package func reconcile() throws -> JSON {
        guard let (placement, replicas) = distributed else { throw VQError(.notFound, "collection \"\(collection)\" is not distributed") }
        let started = Date()
        let me = placement.localPeer
        guard replicas.primary == me else {
            throw VQError(.busy, "this peer is not the primary of \(what)")
        }
        struct Outcome { var differing = 0, upserted = 0, deleted = 0; var error: String? }
        let others = replicas.filter { $0.state == .active && $0.peer != me }.map(\.peer)
        var outcomes: [PeerID: Outcome] = [:]
        var candidates: [(PeerID, [Int])] = []
        let mine = try local.digest()
        for peer in others {
            do {
                let diff = mine.differing(from: try remote(placement, peer).digest())
                outcomes[peer] = Outcome(differing: diff.count)
                if !diff.isEmpty { candidates.append((peer, diff)) }
            } catch {
                outcomes[peer] = Outcome(error: VQError.wrap(error).message)
            }
        }
        // Pass 2, writes still going on: the points of the differing buckets, compared one by one.
        // Those that differ now are suspects; a point that differed only while a write was in
        // flight is equal here and never held.
        var suspects: [(PeerID, [PointID])] = []
        for (peer, buckets) in candidates {
            do {
                let ours = try local.contentHashes(buckets: Set(buckets))
                let theirs = try remote(placement, peer).contentHashes(buckets: Set(buckets))
                let ids = Set(ours.keys).union(theirs.keys).filter { ours[$0] != theirs[$0] }
                if !ids.isEmpty { suspects.append((peer, ids.sorted())) }
            } catch {
                // Not compared: reported, not judged.
                outcomes[peer]?.error = "could not compare: \(VQError.wrap(error).message)"
            }
        }
        var lockHeld = 0.0
        if !suspects.isEmpty {
            // Repairs overwrite replicas: only a primary whose metadata is confirmed current with the
            // Raft leader sends them (one replaced while away must not; checked before the lock).
            guard placement.confirmMetadata() else {
                throw VQError(.busy, "\(what): this peer cannot confirm with the metadata leader that it is still the primary")
            }
            // Pass 3, the shard's lock held (no write is ordered, so both copies hold the same
            // operations once applied): the suspects only, compared again and repaired.
            let replication = placement.replication(collection, id)
            replication.lock.lock()
            let locked = Date()
            defer {
                replication.lock.unlock()
            }
            guard let now = placement.replicas(collection, id), now.primary == me else {
                throw VQError(.busy, "this peer is no longer the primary of \(what)")
            }
            for (peer, ids) in suspects where now.contains(Replica(peer: peer, state: .active)) {
                let destination = remote(placement, peer)
                let plan: (upsert: [PointID], delete: [PointID])
                do { plan = try difference(destination, ids: ids) } catch {
                    outcomes[peer]?.error = "could not compare: \(VQError.wrap(error).message)"
                    continue
                }
                do {
                    try send(plan, to: destination)
                    outcomes[peer]?.upserted = plan.upsert.count
                    outcomes[peer]?.deleted = plan.delete.count
                    if !plan.upsert.isEmpty || !plan.delete.isEmpty {
                        placement.log("replica repaired", [("collection", .string(collection)), ("shard", .int(Int64(id))),
                                                           ("peer", .uint(peer)), ("upserted", .int(Int64(plan.upsert.count))),
                                                           ("deleted", .int(Int64(plan.delete.count)))])
                    }
                } catch let e as VQError where e.kind == .notPrimary {
                    // The replica knows a newer primary: this peer stops and marks no one Dead.
                    replication.ordering = false
                    throw VQError(.busy, "this peer is no longer the primary of \(what): \(e.message)")
                } catch {
                    // Known to differ and not repaired: it must not serve reads; recovery copies it.
                    let why = "anti-entropy repair failed: \(VQError.wrap(error).message)"
                    outcomes[peer]?.error = why
                    try? placement.setReplica(collection, id, peer, .dead, reason: why, ifPrimary: placement.localPeer)
                }
            }
            lockHeld = Date().timeIntervalSince(locked)
        }
        var rows: [JSON] = others.map { peer in
            let o = outcomes[peer] ?? Outcome()
            var fields: [(String, JSON)] = [("peer_id", .uint(peer)), ("state", .string(ReplicaState.active.rawValue)),
                                            ("differing_buckets", .int(Int64(o.differing))),
                                            ("upserted", .int(Int64(o.upserted))), ("deleted", .int(Int64(o.deleted)))]
            if let e = o.error { fields.append(("error", .string(e))) }
            return .object(fields)
        }
        // Replicas not Active are being copied or caught up from the primary: not compared.
        for r in replicas where r.state != .active {
            rows.append(.object([("peer_id", .uint(r.peer)), ("state", .string(r.state.rawValue)), ("compared", .bool(false))]))
        }
        return .object([("shard_id", .int(Int64(id))), ("primary", .uint(me)), ("points", .int(Int64(mine.points))),
                        ("buckets", .int(Int64(ShardDigest.buckets))), ("replicas", .array(rows)),
                        ("seconds", .double(Date().timeIntervalSince(started))), ("writes_held_seconds", .double(lockHeld))])
    }

    /// Pass 3 for one replica (the shard's lock held): of `ids`, those it lacks or holds
    /// differently, and those only it holds.
    private func difference(_ destination: RemoteShard, ids: [PointID]) throws -> (upsert: [PointID], delete: [PointID]) {
        let ours = try local.contentHashes(ids: ids)
        let theirs = try destination.contentHashes(ids: ids)
        let extra = theirs.keys.filter { ours[$0] == nil }.sorted()
        let differ = ours.compactMap { theirs[$0.key] == $0.value ? nil : $0.key }.sorted()
        return (differ, extra)
    }

    /// Makes the replica's points of a `difference` the primary's: unsequenced applies.
    private func send(_ plan: (upsert: [PointID], delete: [PointID]), to destination: RemoteShard) throws {
        for start in stride(from: 0, to: plan.delete.count, by: 100 * Self.repairBatch) {
            let ids = Array(plan.delete[start..<min(plan.delete.count, start + 100 * Self.repairBatch)])
            try destination.apply(Operation.delete(ids).encode(), .applied, seq: 0, epoch: 0)
        }
        for start in stride(from: 0, to: plan.upsert.count, by: Self.repairBatch) {
            let batch = local.batch(of: Array(plan.upsert[start..<min(plan.upsert.count, start + Self.repairBatch)]))
            try destination.apply(Operation.upsert(batch).encode(), .applied, seq: 0, epoch: 0)
        }
    }

    /// Runs `reconcile` on the shard's primary: here when this peer is it, otherwise by asking it.
    package func repair() throws -> JSON {
        guard let (placement, replicas) = distributed else { throw VQError(.notFound, "collection \"\(collection)\" is not distributed") }
        guard let primary = replicas.primary else {
            throw VQError(.busy, "\(what) has no active replica")
        }
        if primary == placement.localPeer { return try reconcile() }
        return try remote(placement, primary).reconcile()
    }

    /// The peer route's answer to a digest request (`ShardWire.encodeDigestRequest`): this peer's
    /// copy's summary, or the content hashes of the asked buckets.
    package func digestAnswer(_ body: [UInt8]) throws -> [UInt8] {
        try local.checkIntact()
        switch try ShardWire.decodeDigestRequest(body) {
        case .summary: return ShardWire.encodeDigest(try local.digest())
        case .buckets(let buckets): return ShardWire.encodeHashes(try local.contentHashes(buckets: buckets))
        case .points(let ids): return ShardWire.encodeHashes(try local.contentHashes(ids: ids))
        }
    }
}

extension RemoteShard {
    /// This replica's digest.
    package func digest() throws -> ShardDigest {
        let bytes = try call("digest", ShardWire.encodeDigestRequest(buckets: nil))
        return try answer { try ShardWire.decodeDigest(bytes) }
    }

    /// This replica's content hashes of the points in `buckets`.
    package func contentHashes(buckets: Set<Int>) throws -> [PointID: UInt64] {
        let bytes = try call("digest", ShardWire.encodeDigestRequest(buckets: buckets.sorted()), timeout: 600)
        return try answer { try ShardWire.decodeHashes(bytes, buckets: buckets) }
    }

    /// This replica's content hashes of those of `ids` it holds (asked 100,000 at a time, so a
    /// request stays well under the body limit however far the replica diverged).
    package func contentHashes(ids: [PointID]) throws -> [PointID: UInt64] {
        var out: [PointID: UInt64] = [:]
        for start in stride(from: 0, to: ids.count, by: 100_000) {
            let part = Array(ids[start..<min(ids.count, start + 100_000)])
            let bytes = try call("digest", ShardWire.encodeDigestRequest(ids: part), timeout: 600)
            out.merge(try answer { try ShardWire.decodeHashes(bytes, ids: Set(part)) }) { a, _ in a }
        }
        return out
    }

    /// Asks this replica, the primary, to reconcile the shard's replicas; its report.
    package func reconcile() throws -> JSON {
        let bytes = try call("reconcile", [], timeout: 3600)
        return try answer {
            let report = try JSONParser.parse(bytes)
            guard case .object = report else { throw VQError(.corrupt, "a repair report is not a JSON object") }
            return report
        }
    }
}
