// Read consistency: Qdrant's `consistency` query parameter on reads (search, query, retrieve,
// scroll, count, facet, and the reads the others make): how many replicas of each shard a read
// asks, and which points it returns.
//
//   N (1 by default)  asks N active replicas; returns the points every answer has
//   majority          asks (active / 2) + 1 of them; the points every answer has
//   quorum            asks every active replica and needs a majority of answers; the points a
//                     majority of the active replicas has
//   all               asks every active replica and needs every answer; the points every answer has
//
// Where answers hold a point differently (a write reached one replica and not yet the other),
// the newest wins: the answer of the replica whose replication position (the last operation it
// has, taken just before its answer, which waits until that operation is applied; another
// peer's replica sends it with its answer, in one call) is furthest.
// All active replicas apply one sequence of operations, so the furthest has every write the
// others have. (Positions are compared by sequence number: a replaced primary that still holds
// an operation no one acknowledged can win until it is repaired.) Counts are resolved as Qdrant
// does: the number at least the required replicas reach (the smallest, when all must agree).
// The replicas are asked at once, each on a thread of its own, and a quorum answers as soon as
// a majority has. The collection's fan-out applies: `read_fan_out_factor` more replicas at once,
// and one more each `read_fan_out_delay_ms` while too few have answered, so a stalled replica
// costs that delay rather than the peer timeout. A replica that fails is replaced by another active one while one is left; too
// few answers fail the read (503), naming the shard and each failure; a read the replica
// refuses as invalid fails at once. No active replica at all is a 503 too. Statistics (a
// sparse vector's IDF) come from one replica.
//
// The consistency is bound for the duration of a request (`ReadConsistency.$current`, set by the
// API once it has checked the parameter), so every read path of a collection honours it without
// a parameter of its own; a read that moves to other threads binds it there again.

import Foundation
import Synchronization

package enum ReadConsistency: Sendable, Equatable, CustomStringConvertible {
    case factor(Int)
    case majority
    case quorum
    case all

    /// The consistency of the reads of the request this thread serves.
    @TaskLocal package static var current: ReadConsistency = .factor(1)

    /// - Throws: `.unknownValue` naming the value and what is expected.
    package init(parsing text: String) throws {
        switch text.lowercased() {
        case "majority": self = .majority
        case "quorum": self = .quorum
        case "all": self = .all
        default:
            guard let n = Int(text), n >= 1 else {
                throw VQError.unknownValue("consistency is \"\(text)\"; expected a number of at least 1, majority, quorum or all")
            }
            self = .factor(n)
        }
    }

    package var description: String {
        switch self {
        case .factor(let n): return "\(n)"
        case .majority: return "majority"
        case .quorum: return "quorum"
        case .all: return "all"
        }
    }

    /// Of `active` replicas: how many to ask, how many answers are needed, and how many of the
    /// replicas must hold a point for it to be returned.
    /// - Throws: `.busy` when fewer replicas are active than the consistency asks for.
    func plan(active: Int, _ what: String) throws -> (ask: Int, need: Int, threshold: Int) {
        let majority = active / 2 + 1
        switch self {
        case .factor(let n):
            guard n <= active else { throw VQError(.busy, "consistency \(n) asks \(n) replicas of \(what); \(active) are active") }
            return (n, n, n)
        case .majority: return (majority, majority, majority)
        case .quorum: return (active, majority, majority)
        case .all: return (active, active, active)
        }
    }
}

extension ReplicaSet {
    /// Whether this read asks more than one replica (a consistency above 1, on a distributed collection).
    var readsSeveral: Bool { ReadConsistency.current != .factor(1) && distributed != nil }

    /// Reads on as many active replicas as the current consistency asks (replacing one that
    /// fails while another is left), each after its replication position, and returns once
    /// enough have answered (a quorum does not wait for the last replicas).
    /// - Parameters:
    ///   - local: the read on this peer's replica.
    ///   - remote: the read another peer's replica is asked, in one call with its position.
    /// - Returns: the answers, newest first, and how many replicas must hold a point.
    /// - Throws: `.busy` naming every failure when too few answered.
    func onSeveralReplicas<T: Sendable>(local read: @escaping @Sendable () throws -> T,
                                        remote ask: @escaping @Sendable (RemoteShard) -> RemoteShard.Read<T>) throws
        -> (answers: [(position: UInt64, value: T)], threshold: Int) {
        guard let (placement, replicas) = distributed else { throw VQError(.notFound, "collection \"\(collection)\" is not distributed") }
        let consistency = ReadConsistency.current
        let order = placement.readOrder(replicas.filter { $0.state == .active }.map(\.peer))
        guard !order.isEmpty else { throw VQError(.busy, "\(what) has no active replica") }
        let plan = try consistency.plan(active: order.count, what)
        // The collection's fan-out applies here too: `read_fan_out_factor` more replicas at once,
        // and one more each `read_fan_out_delay_ms` while too few have answered (a replica that
        // stalls costs that delay, not the peer timeout).
        let fanOut = placement.readFanOut(collection)
        let gathered = try FanOut.gather(order, need: plan.need, ask: plan.ask, delay: Double(fanOut.delayMs) / 1000,
                                         factor: fanOut.factor) { [self] peer in
            if peer == placement.localPeer { return (position: try readablePosition().seq, value: try read()) }
            // Measured as a read: a replica that stalls is one the read order should move away from.
            let replica = remote(placement, peer)
            return try placement.measureRead(peer) { try replica.runAtPosition(ask(replica)) }
        }
        // Extra reads are those beyond the replicas the consistency itself asks for.
        placement.countRead(launched: gathered.launched - plan.ask + 1, delayed: gathered.delayed, fanOutWon: false)
        // Newest first; among equals, in the order they were asked (the local replica first).
        let got = gathered.answers.sorted { ($0.result.position, -$0.index) > ($1.result.position, -$1.index) }.map { $0.result }
        guard got.count >= plan.need else {
            let failures = gathered.failures.map { "peer \(order[$0.index]): \(VQError.wrap($0.error).message)" }
            throw VQError(.busy, "consistency \(consistency) needs \(plan.need) answers from the replicas of \(what); \(got.count) answered ("
                          + failures.joined(separator: "; ") + ")")
        }
        return (got, plan.threshold)
    }

    /// Answers another peer's read of this copy (the routes `search`, `scan` and `count`): the
    /// request decoded and checked, the read run on the local copy, the answer encoded.
    package func answer(_ action: ShardWire.ReadAction, _ body: [UInt8], vectors: VectorLayout) throws -> [UInt8] {
        try local.checkIntact()
        switch action {
        case .search:
            let (vector, request) = try ShardWire.decodeSearch(body, dims: vectors.dims, sparse: vectors.sparse.count,
                                                               multiDims: vectors.multi.map(\.dim), maxResults: VectorCollection.maxResults)
            return ShardWire.encodeHits(vector.withUnsafeBufferPointer { local.search($0, request) })
        case .scan:
            let (ids, filter, withVector, withPayload) = try ShardWire.decodeScan(body)
            let records = ids.map { local.retrieve($0, withVector: withVector, withPayload: withPayload) }
                ?? local.scan(filter: filter, withVector: withVector, withPayload: withPayload)
            return ShardWire.encodeRecords(records, withVector: withVector)
        case .count:
            guard body.isEmpty else { throw VQError.invalid("a count request has a body of \(body.count) bytes; expected none") }
            return ShardWire.encodeCount(local.pointCount)
        }
    }

    /// Answers a read at this copy's position (the route `at-position`): the position
    /// (`readablePosition`) first, then the read's answer. A consistency read compares replicas
    /// by it, and asks for both in one call.
    package func answerAtPosition(_ body: [UInt8], vectors: VectorLayout) throws -> [UInt8] {
        let (action, read) = try ShardWire.decodeAtPosition(body)
        let position = try readablePosition()
        return ShardWire.encodeAtPositionAnswer(position, try answer(action, read, vectors: vectors))
    }

    /// This replica's position for a read that compares replicas: taken, then every operation
    /// logged here so far is waited for until applied (at most 2 s), so the read that follows
    /// sees every operation up to it.
    package func readablePosition() throws -> (seq: UInt64, epoch: UInt64) {
        let p = position
        // A replica whose applier is behind would answer older records than its position says
        // (and win the merge with them): it does not answer; the read asks another.
        guard try local.waitApplied(local.lastOp, until: Date().addingTimeInterval(2)) else {
            throw VQError(.busy, "\(what) has operations logged up to \(p.seq) that are not applied yet")
        }
        return p
    }

    /// A count resolved over several replicas' answers: the number at least `threshold` of them
    /// reach (the smallest when every answer must agree), as Qdrant resolves counts.
    static func resolveCount(_ counts: [Int], threshold: Int) -> Int {
        let sorted = counts.sorted(by: >)
        return sorted[min(sorted.count, max(1, threshold)) - 1]
    }

    /// The items at least `threshold` answers hold (by `id`), each as the first answer holding it
    /// (the newest: `onSeveralReplicas` orders them) has it, in that answer's order, then the next's.
    static func merge<T>(_ answers: [(position: UInt64, value: [T])], threshold: Int, id: (T) -> PointID) -> [T] {
        var seen: [PointID: (count: Int, index: Int)] = [:]
        var items: [T] = []
        for answer in answers {
            // An id counts once per answer (a retrieve may name it twice).
            var counted = Set<PointID>()
            for item in answer.value {
                let key = id(item)
                guard counted.insert(key).inserted else { continue }
                if let s = seen[key] {
                    seen[key] = (s.count + 1, s.index)
                } else {
                    seen[key] = (1, items.count)
                    items.append(item)
                }
            }
        }
        return items.enumerated().filter { seen[id($0.element)]!.count >= threshold }.map(\.element)
    }

    /// Facet counts of `records`' payloads (a remote replica's, or merged answers).
    static func facetCounts(_ records: [PointRecord], key: String, schema: PayloadFieldSchema) -> [IndexKey: Int] {
        let index = FieldIndex(name: key, schema: schema)
        var counts: [IndexKey: Int] = [:]
        for r in records { for k in index.facetKeys(r.payload) { counts[k, default: 0] += 1 } }
        return counts
    }

    /// The first `limit` of `records` by the numbers of field `key` in their payloads.
    static func orderedRecords(_ records: [PointRecord], key: String, schema: PayloadFieldSchema, descending: Bool, startFrom: Double?,
                               limit: Int, withPayload: Bool) -> [(value: Double, record: PointRecord)] {
        let index = FieldIndex(name: key, schema: schema)
        var out: [(value: Double, record: PointRecord)] = []
        for var r in records {
            let values = index.orderValues(r.payload).filter { v in startFrom.map { descending ? v <= $0 : v >= $0 } ?? true }
            guard let v = descending ? values.max() : values.min() else { continue }
            if !withPayload { r.payload = nil }
            out.append((v, r))
        }
        out.sort { descending ? $0.value > $1.value : $0.value < $1.value }
        return Array(out.prefix(limit))
    }
}

extension RemoteShard {
    /// The replica's replication position.
    package func position() throws -> (seq: UInt64, epoch: UInt64) {
        let bytes = try call("position", [])
        return try answer { try ShardWire.decodePosition(bytes) }
    }
}
