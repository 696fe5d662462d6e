import Foundation
import Synchronization
import Testing
@testable import VQEngine

/// A cluster placement whose metadata changes between looks (seeded): the collection is
/// distributed (one active replica, here) on one call and maybe not on the next.
final class FlippingPlacement: ReplicaPlacement, @unchecked Sendable {
    let localPeer: PeerID = 1
    let callTimeout: Double = 1
    private let rng = Mutex(SplitMix64(seed: 11))
    private let state: ShardReplication

    init(_ dir: String) { state = ShardReplication(path: dir + "/seq") }

    func replicas(_ collection: String, _ shard: Int) -> [Replica]? {
        rng.withLock { $0.next() % 3 != 0 } ? [Replica(peer: 1, state: .active)] : nil
    }

    func post(_ peer: PeerID, _ path: String, _ body: [UInt8], timeout: Double?) throws -> [UInt8] {
        throw VQError(.unreachable, "no peers in this test")
    }

    func readOrder(_ peers: [PeerID]) -> [PeerID] { peers }
    func measureRead<T>(_ peer: PeerID, _ read: () throws -> T) throws -> T { try read() }
    func countRead(launched: Int, delayed: Int, fanOutWon: Bool) {}
    func setReplica(_ collection: String, _ shard: Int, _ peer: PeerID, _ state: ReplicaState, reason: String?, ifPrimary: PeerID?) throws {}
    func refreshMetadata() {}
    func confirmMetadata() -> Bool { true }
    func isClusterCollection(_ collection: String) -> Bool { false }
    func replication(_ collection: String, _ shard: Int) -> ShardReplication { state }
    func log(_ event: String, _ fields: [(String, JSON)]) {}
}

/// A peer just restarted: its metadata does not show the collection the cluster made here until
/// it catches up with the leader (which `confirms` says it can, or not).
final class RestartedPlacement: ReplicaPlacement, @unchecked Sendable {
    let localPeer: PeerID = 1
    let callTimeout: Double = 1
    let confirms: Bool
    let caughtUp = Mutex(false)
    private let state: ShardReplication

    init(_ dir: String, confirms: Bool) {
        self.confirms = confirms
        state = ShardReplication(path: dir + "/seq")
    }

    func replicas(_ collection: String, _ shard: Int) -> [Replica]? {
        caughtUp.withLock { $0 } ? [Replica(peer: 1, state: .active)] : nil
    }

    func post(_ peer: PeerID, _ path: String, _ body: [UInt8], timeout: Double?) throws -> [UInt8] {
        throw VQError(.unreachable, "no peers in this test")
    }

    func readOrder(_ peers: [PeerID]) -> [PeerID] { peers }
    func measureRead<T>(_ peer: PeerID, _ read: () throws -> T) throws -> T { try read() }
    func countRead(launched: Int, delayed: Int, fanOutWon: Bool) {}
    func setReplica(_ collection: String, _ shard: Int, _ peer: PeerID, _ state: ReplicaState, reason: String?, ifPrimary: PeerID?) throws {}
    func refreshMetadata() { _ = confirmMetadata() }
    func confirmMetadata() -> Bool {
        caughtUp.withLock { $0 = $0 || confirms }
        return confirms
    }
    func isClusterCollection(_ collection: String) -> Bool { true }
    func replication(_ collection: String, _ shard: Int) -> ShardReplication { state }
    func log(_ event: String, _ fields: [(String, JSON)]) {}
}

@Suite struct ReplicaSetTests {
    @Test("a restarted peer whose metadata lacks a cluster collection catches up before writing, or refuses; never writes its copy alone",
          arguments: [true, false])
    func restartedPeerWrites(_ leaderReachable: Bool) throws {
        let tmp = TempDir()
        let (directory, lock) = try Engine.lock(path: tmp.path, address: nil)
        let placement = RestartedPlacement(tmp.path, confirms: leaderReachable)
        let engine = Engine(directory: directory, lock: lock, placement: placement) { _ in }
        let config = CollectionConfig(dim: 2, distance: .dot)
        try engine.createCollection("c", config: config)
        let set = try engine.collection("c").replicaSets[0]
        var batch = PointBatch(dim: 2)
        [Float(1), 0].withUnsafeBufferPointer { batch.append(id: .number(1), vector: $0, payload: nil) }
        if leaderReachable {
            // Through the primary's path (it orders: sequence 1), not as a local-only write.
            #expect(try set.write(.upsert(batch), wait: .applied, deadline: nil, config: config) == nil)
            #expect(placement.replication("c", 0).lastSeq == 1)
            #expect(set.local.pointCount == 1)
        } else {
            #expect(throws: VQError.self) { _ = try set.write(.upsert(batch), wait: .applied, deadline: nil, config: config) }
            #expect(set.local.pointCount == 0 && set.local.lastOp == 0, "nothing was written locally")
        }
        try engine.close()
    }

    @Test("metadata changing between routing and writing never loses an acknowledged batch")
    func noDroppedWrites() throws {
        let tmp = TempDir()
        let (directory, lock) = try Engine.lock(path: tmp.path, address: nil)
        let engine = Engine(directory: directory, lock: lock, placement: FlippingPlacement(tmp.path)) { _ in }
        try engine.createCollection("c", config: CollectionConfig(dim: 4, distance: .dot))
        let collection = try engine.collection("c")
        var acknowledged: Set<PointID> = []
        var refused = 0
        for b in 0..<40 {
            var batch = PointBatch(dim: 4)
            for i in 0..<5 {
                let v: [Float] = [Float(b), Float(i), 1, 0]
                v.withUnsafeBufferPointer { batch.append(id: .number(UInt64(b * 5 + i)), vector: $0, payload: nil) }
            }
            do {
                _ = try collection.upsert(&batch, wait: .applied)
                acknowledged.formUnion(batch.ids)
            } catch let e as VQError {
                // Refusing is allowed (the caller was told); acknowledging and dropping is not.
                #expect(e.kind == .notFound, "\(e)")
                refused += 1
            }
        }
        let stored = Set(collection.shards[0].scan(filter: nil, withVector: false, withPayload: false).map(\.id))
        #expect(!acknowledged.isEmpty)
        #expect(acknowledged.isSubset(of: stored), "acknowledged but missing: \(acknowledged.subtracting(stored).sorted().prefix(5))")
        #expect(acknowledged.count + 5 * refused == 200)
        try engine.close()
    }

    @Test("without a placement a replica set is its local shard: writes return their operation numbers")
    func localOnly() throws {
        let tmp = TempDir()
        let engine = try Engine(path: tmp.path) { _ in }
        try engine.createCollection("c", config: CollectionConfig(dim: 2, distance: .dot))
        let set = try engine.collection("c").replicaSets[0]
        var batch = PointBatch(dim: 2)
        [Float(1), 0].withUnsafeBufferPointer { batch.append(id: .number(1), vector: $0, payload: nil) }
        let op = try #require(try set.write(.upsert(batch), wait: .applied, deadline: nil, config: CollectionConfig(dim: 2, distance: .dot)))
        try set.local.waitApplied(op)
        #expect(try set.count() == 1)
        #expect(try set.scan(ids: [.number(1)], filter: nil, withVector: true, withPayload: false, vectors: VectorLayout(dim: 2, distance: .dot)).first?.vector == [1, 0])
        try engine.close()
    }
}
