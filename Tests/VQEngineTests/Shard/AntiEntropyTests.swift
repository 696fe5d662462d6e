import Foundation
import Synchronization
import Testing
@testable import VQEngine

/// The replica list both peers of a `PairPlacement` see.
final class SharedReplicas: Sendable {
    private let list: Mutex<[Replica]>
    init(_ replicas: [Replica]) { list = Mutex(replicas) }
    func withLock<T>(_ body: (inout [Replica]) -> T) -> T { list.withLock { body(&$0) } }
}

/// Two peers in one process: engine 1 and engine 2 each hold a replica of every shard; peer calls
/// go straight to the other engine's replica set, through the same handlers the peer routes use.
final class PairPlacement: ReplicaPlacement, @unchecked Sendable {
    let localPeer: PeerID
    let callTimeout: Double = 5
    /// Shared by both peers: the shard's replicas in placement order (peer 1 first: the primary).
    let shared: SharedReplicas
    /// Peer calls made, by action.
    let calls = Mutex<[String: Int]>([:])
    /// When set, `apply` calls to the other peer fail (an unreachable replica).
    let failApply = Atomic<Bool>(false)
    /// When set, an `apply` to the other peer waits (a cut-off or stalled replica) until it is
    /// cleared, then fails; `applyStalled` says one is waiting.
    let stallApply = Atomic<Bool>(false)
    let applyStalled = Atomic<Bool>(false)
    /// When set, an `apply` to the other peer fails after this peer is marked Dead meanwhile (a
    /// primary replaced while its write was on its way).
    let replaceOnApply = Atomic<Bool>(false)
    /// Seconds the primary waits for a lagging replica once enough others have a write.
    var replicaLagTimeout: Double { lagTimeout.withLock { $0 } }
    let lagTimeout = Mutex<Double>(0.5)
    /// Peers found gone (`suspect`), until the test clears them.
    let suspects = Mutex<Set<PeerID>>([])
    func suspected(_ peer: PeerID) -> Bool { suspects.withLock { $0.contains(peer) } }
    func suspect(_ peer: PeerID) { _ = suspects.withLock { $0.insert(peer) } }
    /// When set, writes forwarded to the other peer are served (else they fail as unreachable);
    /// while `stallWrite` is set they wait first (`writeStalled` says one is waiting).
    let forwardWrites = Atomic<Bool>(false)
    let stallWrite = Atomic<Bool>(false)
    let writeStalled = Atomic<Bool>(false)
    /// When set, the other peer has no `apply-batch` route (an older version).
    let noBatches = Atomic<Bool>(false)
    /// The peer has no `at-position` route (an older version): reads at a position take two calls.
    let noAtPosition = Atomic(false)
    /// When set, pings to the other peer fail (it is gone).
    let failPing = Atomic<Bool>(false)
    /// When set, an `apply` to the other peer fails and its replica is dropped meanwhile.
    let dropOnApply = Atomic<Bool>(false)
    /// When set, segment-file transfer messages to the other peer fail.
    let failFiles = Atomic<Bool>(false)
    /// When set, the other peer's digest summary has one bucket's sum off (as while a write is in flight).
    let skewSummary = Atomic<Bool>(false)
    /// When set, requests for point hashes (the second pass) to the other peer fail.
    let failHashes = Atomic<Bool>(false)
    /// When set, reads of the other peer's replica (search, scan, position) fail (a stalled or cut-off replica).
    let failReads = Atomic<Bool>(false)
    /// When set, reads of the other peer's replica get no answer: each waits out its call's
    /// timeout (the last one given is `readTimeout`), then fails.
    let stallReads = Atomic<Bool>(false)
    /// When set, a request to the other peer to copy a replica waits until cleared, then fails;
    /// `transferStalled` says one is waiting.
    let stallTransfer = Atomic<Bool>(false)
    let transferStalled = Atomic<Bool>(false)
    let readTimeout = Mutex<Double?>(nil)
    /// When set, a byte of each deleted-rows file sent is flipped.
    let corruptFiles = Atomic<Bool>(false)
    /// Run once, at the first message of a whole-shard copy to the other peer (the copy waits for it).
    let onCopy = Mutex<(@Sendable () -> Void)?>(nil)
    /// Events logged, by name.
    let events = Mutex<[String]>([])
    /// Whole-shard copies by segment files (else by records).
    let segmentFileTransfer: Bool
    private let stateLock = Mutex<ShardReplication?>(nil)
    private let statePath: String
    private let history: (bytes: Int, pinned: Int)?
    private var state: ShardReplication { stateLock.withLock { $0! } }
    weak var other: Engine?

    /// - Parameter history: the replication history's bounds (nil: the defaults).
    init(_ dir: String, peer: PeerID, shared: SharedReplicas, files: Bool = true, history: (bytes: Int, pinned: Int)? = nil) {
        localPeer = peer
        segmentFileTransfer = files
        self.shared = shared
        self.history = history
        statePath = dir + "/seq-\(peer)"
        stateLock.withLock { $0 = Self.replication(statePath, history) }
    }

    static func replication(_ path: String, _ history: (bytes: Int, pinned: Int)?) -> ShardReplication {
        history.map { ShardReplication(path: path, maxBytes: $0.bytes, pinnedMaxBytes: $0.pinned) } ?? ShardReplication(path: path)
    }

    func replicas(_ collection: String, _ shard: Int) -> [Replica]? { shared.withLock { $0 } }

    /// How long a forwarded write without a timeout waits for room (the server's --write-timeout).
    static let writeTimeout = 10.0

    func post(_ peer: PeerID, _ path: String, _ body: [UInt8], timeout: Double?) throws -> [UInt8] {
        // /internal/shards/{collection}/{shard}/{action}
        let parts = path.split(separator: "/").map(String.init)
        guard parts.count == 5 else {
            guard path == "/internal/ping" else { throw VQError(.notFound, "no \(path) in this test") }
            calls.withLock { $0["ping", default: 0] += 1 }
            if failPing.load(ordering: .relaxed) { throw VQError(.unreachable, "peer \(peer) did not answer") }
            return []
        }
        // The action, and the one query parameter a peer call takes (a forwarded write's timeout).
        let action = String(parts[4].prefix { $0 != "?" })
        let queueTimeout = try QdrantAPI.timeout(parts[4].split(separator: "?").dropFirst().first?.split(separator: "&")
            .first { $0.hasPrefix("timeout=") }.map { String($0.dropFirst(8)) })
        calls.withLock { $0[action, default: 0] += 1 }
        guard let other, let shard = Int(parts[3]) else { throw VQError(.unreachable, "peer \(peer) is gone") }
        let collection = try other.collection(parts[2])
        let set = collection.replicaSets[shard]
        switch action {
        case "apply":
            if dropOnApply.load(ordering: .relaxed) {
                // The replica is dropped (a move finishing) while this operation is on its way.
                shared.withLock { $0.removeAll { $0.peer == peer } }
                throw VQError(.unreachable, "peer \(peer) did not answer")
            }
            if failApply.load(ordering: .relaxed) { throw VQError(.unreachable, "peer \(peer) did not answer") }
            if replaceOnApply.load(ordering: .relaxed) {
                shared.withLock { $0 = $0.map { $0.peer == localPeer ? Replica(peer: localPeer, state: .dead) : $0 } }
                throw VQError(.unreachable, "peer \(peer) did not answer")
            }
            if stallApply.load(ordering: .relaxed) {
                applyStalled.store(true, ordering: .relaxed)
                defer { applyStalled.store(false, ordering: .relaxed) }
                let until = Date().addingTimeInterval(callTimeout)
                while stallApply.load(ordering: .relaxed) && Date() < until { Thread.sleep(forTimeInterval: 0.005) }
                throw VQError(.unreachable, "peer \(peer) did not answer")
            }
            try set.applyAsReplica(body, vectors: collection.config.vectors, from: localPeer)
            return []
        case "write" where forwardWrites.load(ordering: .relaxed):
            if stallWrite.load(ordering: .relaxed) {
                writeStalled.store(true, ordering: .relaxed)
                defer { writeStalled.store(false, ordering: .relaxed) }
                let until = Date().addingTimeInterval(3 * callTimeout)
                while stallWrite.load(ordering: .relaxed) && Date() < until { Thread.sleep(forTimeInterval: 0.005) }
            }
            let (operation, bytes, wait, _, _) = try ShardWire.decodeOperation(body, vectors: collection.config.vectors)
            try set.writeAsPrimary(operation, encoded: bytes, wait: wait, deadline: Date().addingTimeInterval(queueTimeout ?? Self.writeTimeout),
                                   config: collection.config)
            return []
        case "apply-batch":
            if failApply.load(ordering: .relaxed) { throw VQError(.unreachable, "peer \(peer) did not answer") }
            if noBatches.load(ordering: .relaxed) { throw VQError(.notFound, "peer \(peer): no route for POST \(path)") }
            let count = try ShardWire.decodeOperations(body).count
            calls.withLock { $0["apply-batch operations", default: 0] += count }
            try set.applyBatchAsReplica(body, vectors: collection.config.vectors, from: localPeer)
            return []
        case "digest":
            if failHashes.load(ordering: .relaxed) && body.first == 1 { throw VQError(.unreachable, "peer \(peer) did not answer") }
            var answer = try set.digestAnswer(body)
            // A summary taken while a write was in flight: one bucket's sum off.
            if skewSummary.load(ordering: .relaxed) && body.first == 0 { answer[4] ^= 1 }
            return answer
        case "receive-files":
            if failFiles.load(ordering: .relaxed) { throw VQError(.unreachable, "peer \(peer) did not answer") }
            if body.first == 1, let hook = onCopy.withLock({ h in defer { h = nil }; return h }) { hook() }
            var body = body
            if corruptFiles.load(ordering: .relaxed), case .chunk(let t, let path, let offset, var bytes) = try ShardWire.decodeFiles(body),
               path.hasSuffix("deleted.bits"), !bytes.isEmpty {
                bytes[0] ^= 0xFF  // damaged on the way
                body = ShardWire.encodeFiles(.chunk(transfer: t, path: path, offset: offset, bytes: bytes))
            }
            try set.receiveFiles(body, from: localPeer)
            return []
        case "receive":
            if let hook = onCopy.withLock({ h in defer { h = nil }; return h }) { hook() }
            try set.receive(try ShardWire.decodeReceive(body, vectors: collection.config.vectors), vectors: collection.config.vectors, from: localPeer)
            return []
        case "reconcile": return JSONWriter.bytes(try set.reconcile())
        case "transfer":
            if stallTransfer.load(ordering: .relaxed) {
                transferStalled.store(true, ordering: .relaxed)
                defer { transferStalled.store(false, ordering: .relaxed) }
                let until = Date().addingTimeInterval(timeout ?? callTimeout)
                while stallTransfer.load(ordering: .relaxed) && Date() < until { Thread.sleep(forTimeInterval: 0.005) }
                throw VQError(.unreachable, "peer \(peer) did not answer")
            }
            let (to, after, method) = try ShardWire.decodeTransfer(body)
            try set.transfer(to: to, after: after, method: method)
            return []
        case "at-position", "position", "scan", "search", "count":
            if action == "at-position" && noAtPosition.load(ordering: .relaxed) { throw VQError(.notFound, "peer \(peer): no route for POST \(path)") }
            if failReads.load(ordering: .relaxed) { throw VQError(.unreachable, "peer \(peer) did not answer") }
            if stallReads.load(ordering: .relaxed) {
                readTimeout.withLock { $0 = timeout }
                let until = Date().addingTimeInterval(timeout ?? callTimeout)
                while stallReads.load(ordering: .relaxed) && Date() < until { Thread.sleep(forTimeInterval: 0.005) }
                throw VQError(.unreachable, "peer \(peer) did not answer in \(timeout ?? callTimeout) s")
            }
            // As the server's routes answer them.
            if action == "position" { return ShardWire.encodePosition(try set.readablePosition()) }
            if action == "at-position" { return try set.answerAtPosition(body, vectors: collection.config.vectors) }
            return try set.answer(ShardWire.ReadAction(rawValue: action)!, body, vectors: collection.config.vectors)
        default: throw VQError(.unreachable, "no \(action) in this test")
        }
    }

    func readOrder(_ peers: [PeerID]) -> [PeerID] { peers }
    func measureRead<T>(_ peer: PeerID, _ read: () throws -> T) throws -> T { try read() }
    func countRead(launched: Int, delayed: Int, fanOutWon: Bool) {}
    func setReplica(_ collection: String, _ shard: Int, _ peer: PeerID, _ state: ReplicaState, reason: String?, ifPrimary: PeerID?) throws {
        // As the cluster's state machine: a replica no longer placed is its own error, and a
        // mark made as primary by a peer that no longer is one is refused.
        guard shared.withLock({ $0.contains { $0.peer == peer } }) else {
            throw VQError(.notFound, "peer \(peer) holds no replica of shard \(shard) of \(collection) (dropped)")
        }
        if let ifPrimary, let primary = shared.withLock({ $0.first { $0.state == .active }?.peer }), primary != ifPrimary {
            throw VQError(.conflict, "peer \(ifPrimary) is no longer the primary of shard \(shard) of \(collection); peer \(primary) is")
        }
        shared.withLock { $0 = $0.map { $0.peer == peer ? Replica(peer: peer, state: state) : $0 } }
    }
    func refreshMetadata() {}
    func confirmMetadata() -> Bool { true }
    func isClusterCollection(_ collection: String) -> Bool { true }
    func replication(_ collection: String, _ shard: Int) -> ShardReplication { state }
    func log(_ event: String, _ fields: [(String, JSON)]) { events.withLock { $0.append(event) } }

    /// A restart of the replication state: read again from its files.
    func reopenReplication() { stateLock.withLock { $0 = Self.replication(statePath, history) } }
}

/// A collection "c" (dim 4, cosine, one shard) replicated on two in-process peers.
struct ReplicaPair {
    let tmp = TempDir()
    let shared = SharedReplicas([Replica(peer: 1, state: .active), Replica(peer: 2, state: .active)])
    let placements: [PairPlacement]
    var engines: [Engine]
    let config: CollectionConfig

    init(files: Bool = true, history: (bytes: Int, pinned: Int)? = nil, updateQueueSize: Int? = nil) throws {
        var config = CollectionConfig(dim: 4, distance: .cosine)
        config.replicationFactor = 2
        if let updateQueueSize { config.updateQueueSize = updateQueueSize }
        self.config = config
        var placements: [PairPlacement] = []
        var engines: [Engine] = []
        for peer in [PeerID(1), 2] {
            let dir = tmp.path + "/p\(peer)"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let placement = PairPlacement(dir, peer: peer, shared: shared, files: files, history: history)
            let (directory, lock) = try Engine.lock(path: dir, address: nil)
            let engine = Engine(directory: directory, lock: lock, placement: placement) { _ in }
            try engine.createCollection("c", config: config)
            placements.append(placement)
            engines.append(engine)
        }
        placements[0].other = engines[1]
        placements[1].other = engines[0]
        self.placements = placements
        self.engines = engines
    }

    func set(_ i: Int) throws -> ReplicaSet { try engines[i].collection("c").replicaSets[0] }

    /// Points `ids` with vectors from the id and `tag`, payload {"n": id, "tag": tag}.
    func batch(_ ids: [UInt64], tag: Int = 0) -> PointBatch {
        var batch = PointBatch(dim: 4)
        for id in ids {
            let v: [Float] = [Float(id % 7) + 1, Float(id % 5), Float(tag), 1]
            v.withUnsafeBufferPointer { batch.append(id: .number(id), vector: $0, payload: Array("{\"n\":\(id),\"tag\":\(tag)}".utf8)) }
        }
        return batch
    }

    /// Upserts points `ids` (as `batch` makes them) through engine `via`, waited for to `wait`.
    func upsert(_ ids: [UInt64], tag: Int = 0, via: Int = 0, wait: WriteWait = .applied) throws {
        var points = batch(ids, tag: tag)
        _ = try engines[via].collection("c").upsert(&points, wait: wait)
    }

    /// Writes `first` through peer 1 to both replicas, then one write per entry of `missed` that
    /// peer 2 misses (so it is marked Dead).
    func writeWithReplicaMissing(_ missed: [[UInt64]], after first: [UInt64]) throws {
        try upsert(first)
        placements[0].failApply.store(true, ordering: .relaxed)
        for ids in missed { try upsert(ids) }
        placements[0].failApply.store(false, ordering: .relaxed)
    }

    /// Every point of engine `i`'s copy: id, vector and payload, sorted by id.
    func contents(_ i: Int) throws -> [String] {
        try set(i).local.scan(filter: nil, withVector: true, withPayload: true)
            .sorted { $0.id < $1.id }
            .map { "\($0.id) \($0.vectors) \($0.payload.map { JSONWriter.string($0) } ?? "-")" }
    }

    func close() throws { for e in engines { try e.close() } }

    /// Reopens engine `i` on its directory (a restart), with the same placement.
    mutating func reopen(_ i: Int) throws {
        try engines[i].close()
        // The old engine lets its directory lock go when it is released.
        var all = engines.enumerated().filter { $0.offset != i }.map(\.element)
        engines = []
        let (directory, lock) = try Engine.lock(path: tmp.path + "/p\(i + 1)", address: nil)
        all.insert(Engine(directory: directory, lock: lock, placement: placements[i]) { _ in }, at: i)
        engines = all
        placements[1 - i].other = engines[i]
    }
}

@Suite struct AntiEntropyTests {
    @Test("a replica that diverged (an extra point, a missing one, a changed one) is repaired from the primary")
    func repairsDivergence() throws {
        let pair = try ReplicaPair()
        try pair.upsert(Array(0..<600))
        #expect(try pair.contents(0) == pair.contents(1), "the write path replicated every point")
        #expect(try pair.set(0).local.digest() == pair.set(1).local.digest())

        // Behind the write path's back, on the replica only: what a primary that died mid-way
        // (an operation some replicas got) or damage leaves.
        let replica = try pair.set(1).local
        try replica.waitApplied(try replica.submit(.upsert(pair.batch([10_000, 10_001]))))
        try replica.waitApplied(try replica.submit(.delete([.number(3), .number(40)])))
        try replica.waitApplied(try replica.submit(.upsert(pair.batch([5], tag: 9))))
        try replica.waitApplied(try replica.submit(.setPayload(ids: [.number(77)], payload: Array("{\"x\":1}".utf8), overwrite: false)))
        let before = try pair.set(0).local.digest().differing(from: pair.set(1).local.digest())
        #expect(!before.isEmpty && before.count <= 7)

        // Asked through the replica: it forwards to the primary (peer 1), which repairs.
        let report = try pair.set(1).repair()
        #expect(report["primary"]?.uint64Value == 1)
        #expect(report["points"]?.intValue == 600)
        let row = try #require(report["replicas"]?.arrayValue?.first)
        #expect(row["peer_id"]?.uint64Value == 2)
        #expect(row["differing_buckets"]?.intValue == Int64(before.count))
        #expect(row["upserted"]?.intValue == 4, "3 and 40 missing, 5 and 77 changed: \(JSONWriter.string(report))")
        #expect(row["deleted"]?.intValue == 2, "10000 and 10001 extra")
        #expect(row["error"] == nil)
        #expect(try pair.contents(0) == pair.contents(1))
        #expect(try pair.set(0).local.digest() == pair.set(1).local.digest())
        #expect(pair.shared.withLock { $0 }.allSatisfy { $0.state == .active })

        // Converged: the next pass finds nothing and holds no write.
        pair.placements[0].calls.withLock { $0 = [:] }
        let again = try pair.set(0).reconcile()
        #expect(again["replicas"]?.arrayValue?.first?["differing_buckets"]?.intValue == 0)
        #expect(again["writes_held_seconds"]?.doubleValue == 0)
        #expect(pair.placements[0].calls.withLock { $0 } == ["digest": 1], "one summary call and nothing else")
        try pair.close()
    }

    @Test("a replica known to differ that cannot be repaired is marked Dead, so it serves no reads")
    func failedRepairMarksDead() throws {
        let pair = try ReplicaPair()
        try pair.upsert(Array(0..<50))
        let replica = try pair.set(1).local
        try replica.waitApplied(try replica.submit(.delete([.number(7)])))
        pair.placements[0].failApply.store(true, ordering: .relaxed)
        let report = try pair.set(0).reconcile()
        let row = try #require(report["replicas"]?.arrayValue?.first)
        let error = row["error"]?.stringValue ?? ""
        #expect(error.contains("did not answer"), "\(error)")
        #expect(pair.shared.withLock { $0 } == [Replica(peer: 1, state: .active), Replica(peer: 2, state: .dead)])
        // The next pass lists the Dead replica as not compared.
        let next = try pair.set(0).reconcile()
        let dead = try #require(next["replicas"]?.arrayValue?.first)
        #expect(dead["state"]?.stringValue == "Dead" && dead["compared"]?.boolValue == false, "\(JSONWriter.string(next))")
        try pair.close()
    }

    @Test("a bucket that differed only while a write was in flight is compared point by point without holding writes")
    func inFlightDifferenceHoldsNothing() throws {
        let pair = try ReplicaPair()
        try pair.upsert(Array(0..<200))
        pair.placements[0].skewSummary.store(true, ordering: .relaxed)
        pair.placements[0].calls.withLock { $0 = [:] }
        let report = try pair.set(0).reconcile()
        let row = try #require(report["replicas"]?.arrayValue?.first)
        #expect(row["differing_buckets"]?.intValue == 1)
        #expect(row["upserted"]?.intValue == 0 && row["deleted"]?.intValue == 0)
        #expect(report["writes_held_seconds"]?.doubleValue == 0, "\(JSONWriter.string(report))")
        #expect(pair.placements[0].calls.withLock { $0 } == ["digest": 2], "a summary and one bucket's points; nothing applied")
        try pair.close()
    }

    @Test("a replica that cannot be compared point by point is reported, not marked Dead")
    func uncomparedIsNotDead() throws {
        let pair = try ReplicaPair()
        try pair.upsert(Array(0..<50))
        let replica = try pair.set(1).local
        try replica.waitApplied(try replica.submit(.delete([.number(7)])))
        pair.placements[0].failHashes.store(true, ordering: .relaxed)
        let report = try pair.set(0).reconcile()
        let row = try #require(report["replicas"]?.arrayValue?.first)
        let error = row["error"]?.stringValue ?? ""
        #expect(error.hasPrefix("could not compare"), "\(error)")
        #expect(pair.shared.withLock { $0 }.allSatisfy { $0.state == .active })
        try pair.close()
    }

    @Test("only the primary reconciles; a collection that is not distributed has nothing to compare")
    func refusals() throws {
        let pair = try ReplicaPair()
        #expect(throws: VQError.self) { _ = try pair.set(1).reconcile() }
        pair.shared.withLock { $0 = [Replica(peer: 1, state: .dead), Replica(peer: 2, state: .dead)] }
        #expect(throws: VQError.self) { _ = try pair.set(0).repair() }
        let tmp = TempDir()
        let engine = try Engine(path: tmp.path) { _ in }
        try engine.createCollection("c", config: CollectionConfig(dim: 2, distance: .dot))
        #expect(throws: VQError.self) { _ = try engine.collection("c").replicaSets[0].repair() }
        try engine.close()
        try pair.close()
    }

    @Test("digest messages from a peer are checked: mode, bucket range, ids in asked buckets, duplicates, length")
    func hostileDigestMessages() throws {
        #expect(try ShardWire.decodeDigestRequest(ShardWire.encodeDigestRequest(buckets: nil)) == .summary)
        #expect(try ShardWire.decodeDigestRequest(ShardWire.encodeDigestRequest(buckets: [3, 255])) == .buckets([3, 255]))
        #expect(try ShardWire.decodeDigestRequest(ShardWire.encodeDigestRequest(ids: [.number(4), .uuid(1, 2)])) == .points([.number(4), .uuid(1, 2)]))
        #expect(throws: VQError.self) { _ = try ShardWire.decodeDigestRequest([2, 5, 0, 0, 0]) }
        #expect(throws: VQError.self) { _ = try ShardWire.decodeDigestRequest([0, 1, 0, 0, 0, 7, 0, 0, 0]) }
        var bad = ShardWire.encodeDigestRequest(buckets: [3])
        bad[0] = 7
        #expect(throws: VQError.self) { _ = try ShardWire.decodeDigestRequest(bad) }
        #expect(throws: VQError.self) { _ = try ShardWire.decodeDigestRequest(ShardWire.encodeDigestRequest(buckets: [256])) }
        #expect(throws: VQError.self) { _ = try ShardWire.decodeDigestRequest([1, 0xFF, 0xFF, 0xFF, 0x7F]) }
        #expect(throws: VQError.self) { _ = try ShardWire.decodeDigestRequest(ShardWire.encodeDigestRequest(buckets: nil) + [0]) }

        var d = ShardDigest()
        d.add(.number(1), 42)
        #expect(try ShardWire.decodeDigest(ShardWire.encodeDigest(d)) == d)
        #expect(throws: VQError.self) { _ = try ShardWire.decodeDigest(Array(ShardWire.encodeDigest(d).dropLast())) }

        let id = PointID.number(1)
        let b = ShardDigest.bucket(id)
        #expect(try ShardWire.decodeHashes(ShardWire.encodeHashes([id: 9]), buckets: [b]) == [id: 9])
        #expect(throws: VQError.self) { _ = try ShardWire.decodeHashes(ShardWire.encodeHashes([id: 9]), buckets: [(b + 1) % 256]) }
        #expect(try ShardWire.decodeHashes(ShardWire.encodeHashes([id: 9]), ids: [id]) == [id: 9])
        #expect(throws: VQError.self) { _ = try ShardWire.decodeHashes(ShardWire.encodeHashes([id: 9]), ids: [.number(2)]) }
        var twice = ByteWriter()
        twice.u32(2)
        for _ in 0..<2 { twice.pointID(id); twice.u64(9) }
        #expect(throws: VQError.self) { _ = try ShardWire.decodeHashes(twice.bytes, buckets: [b]) }
        var lying = ByteWriter()
        lying.u32(1_000_000)
        #expect(throws: VQError.self) { _ = try ShardWire.decodeHashes(lying.bytes, buckets: [b]) }
    }

    @Test("content hashes see every part of a point and nothing of where it is stored")
    func contentHashCoversThePoint() throws {
        let tmp = TempDir()
        let engine = try Engine(path: tmp.path) { _ in }
        try engine.createCollection("c", config: CollectionConfig(dim: 4, distance: .dot))
        let shard = try engine.collection("c").shards[0]
        func hashOf(_ v: [Float], _ payload: String?) throws -> UInt64 {
            var b = PointBatch(dim: 4)
            v.withUnsafeBufferPointer { b.append(id: .number(1), vector: $0, payload: payload.map { Array($0.utf8) }) }
            try shard.waitApplied(try shard.submit(.upsert(b)))
            return try #require(try shard.contentHashes(buckets: [ShardDigest.bucket(.number(1))])[.number(1)])
        }
        let base = try hashOf([1, 2, 3, 4], "{\"a\":1}")
        #expect(try hashOf([1, 2, 3, 4.0001], "{\"a\":1}") != base)
        #expect(try hashOf([1, 2, 3, 4], "{\"a\":2}") != base)
        #expect(try hashOf([1, 2, 3, 4], nil) != base)
        #expect(try hashOf([1, 2, 3, 4], "{\"a\":1}") == base, "rewritten in another row, same content")
        try shard.flushForTesting()
        #expect(try hashOf([1, 2, 3, 4], "{\"a\":1}") == base)
        try engine.close()
    }
}
