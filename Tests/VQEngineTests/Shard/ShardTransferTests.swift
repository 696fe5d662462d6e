import Foundation
import Synchronization
import Testing
@testable import VQEngine

@Suite struct ShardTransferTests {
    /// Peer 1 holds 3,000 points (some deleted, an indexed segment with a graph); peer 2's
    /// replica is Dead and holds something else.
    static func diverged(files: Bool = true) throws -> ReplicaPair {
        let pair = try ReplicaPair(files: files)
        var points = pair.batch(Array(0..<3000))
        _ = try pair.engines[0].collection("c").upsert(&points, wait: .applied)
        _ = try pair.engines[0].collection("c").delete([.number(5), .number(2999)], wait: .applied)
        let primary = try pair.set(0).local
        _ = try primary.optimize(force: true)
        // Written after the optimization: in the appendable segment.
        var late = pair.batch(Array(3000..<3100), tag: 1)
        _ = try pair.engines[0].collection("c").upsert(&late, wait: .applied)
        let replica = try pair.set(1).local
        try replica.waitApplied(try replica.submit(.upsert(pair.batch([50_000, 50_001], tag: 7))))
        pair.shared.withLock { $0 = [Replica(peer: 1, state: .active), Replica(peer: 2, state: .dead)] }
        return pair
    }

    @Test("a whole-shard copy sends segment files: the replica ends equal, with the primary's graph (nothing indexed again), and keeps them across a restart")
    func copiesSegmentFiles() throws {
        var pair = try Self.diverged()
        let primary = try pair.set(0).local
        #expect(try pair.set(1).local.status.indexedVectors == 0)
        try pair.set(0).transfer(to: 2, after: nil)
        #expect(pair.shared.withLock { $0 } == [Replica(peer: 1, state: .active), Replica(peer: 2, state: .active)])
        #expect(pair.placements[0].calls.withLock { $0["receive"] } == nil, "no point was sent as a record")
        #expect(try pair.contents(0) == pair.contents(1))
        let copy = try pair.set(1).local
        #expect(copy.status.indexedVectors == primary.status.indexedVectors && copy.status.indexedVectors >= 2998,
                "the graph came with the files: \(copy.status.indexedVectors)")
        #expect(copy.status.indexingSeconds == 0)
        #expect(!FileIO.exists(copy.directory + ".incoming"), "the staging directory is gone")
        // The replica's position is the primary's: the next write follows on in sequence.
        let (mine, theirs) = (try pair.set(1).position, try pair.set(0).position)
        #expect(mine == theirs && mine.seq > 0)
        var more = pair.batch([7, 9000], tag: 3)
        _ = try pair.engines[0].collection("c").upsert(&more, wait: .applied)
        #expect(try pair.contents(0) == pair.contents(1))
        // A restart opens the adopted segments (the manifest committed them) and writes after it
        // are newer than the adopted rows.
        try pair.reopen(1)
        #expect(try pair.contents(0) == pair.contents(1))
        var after = pair.batch([7, 9001], tag: 4)
        _ = try pair.engines[0].collection("c").upsert(&after, wait: .applied)
        try pair.reopen(1)
        #expect(try pair.contents(0) == pair.contents(1))
        #expect(try pair.set(1).local.digest() == pair.set(0).local.digest())
        try pair.close()
    }

    @Test("the record copy (--shard-transfer records) gives the same points")
    func recordCopy() throws {
        let pair = try Self.diverged(files: false)
        try pair.set(0).transfer(to: 2, after: nil)
        #expect(pair.placements[0].calls.withLock { $0["receive-files"] } == nil)
        #expect(try pair.contents(0) == pair.contents(1))
        try pair.close()
    }

    @Test("a transfer cut off leaves the replica's points as they were and not Active; the next one completes")
    func cutOff() throws {
        let pair = try Self.diverged()
        let before = try pair.contents(1)
        pair.placements[0].failFiles.store(true, ordering: .relaxed)
        #expect(throws: VQError.self) { try pair.set(0).transfer(to: 2, after: nil) }
        #expect(try pair.contents(1) == before)
        #expect(pair.shared.withLock { $0 }[1].state != .active)
        pair.placements[0].failFiles.store(false, ordering: .relaxed)
        try pair.set(0).transfer(to: 2, after: nil)
        #expect(try pair.contents(0) == pair.contents(1))
        try pair.close()
    }

    @Test("a damaged or incomplete staged copy is refused before the live shard changes")
    func refusesDamage() throws {
        let pair = try Self.diverged()
        let replica = try pair.set(1)
        let before = try pair.contents(1)
        // Send a real begin and chunks by hand, then a finish whose list lies.
        let t: UInt64 = 42
        try replica.receiveFiles(ShardWire.encodeFiles(.begin(transfer: t)))
        try replica.receiveFiles(ShardWire.encodeFiles(.chunk(transfer: t, path: "segments/1/rows.bin", offset: 0, bytes: [1, 2, 3])))
        let manifest = ChecksummedJSON.encode(.object([("format", .string("vq-shard")), ("version", .int(1)), ("flushed_op", .int(1)),
                                                       ("next_segment_id", .int(2)), ("segments", .array([]))]))
        let missing = ShardWire.encodeFiles(.finish(transfer: t, manifest: manifest, seq: 1, epoch: 1,
                                                    files: [ShardWire.FileEntry(path: "segments/1/rows.bin", size: 4)]))
        #expect(throws: VQError.self) { try replica.receiveFiles(missing) }
        let unnamed = ShardWire.encodeFiles(.finish(transfer: t, manifest: manifest, seq: 1, epoch: 1,
                                                    files: [ShardWire.FileEntry(path: "segments/1/rows.bin", size: 3)]))
        #expect(throws: VQError.self) { try replica.receiveFiles(unnamed) }
        // Another transfer's chunks are refused.
        #expect(throws: VQError.self) {
            try replica.receiveFiles(ShardWire.encodeFiles(.chunk(transfer: 7, path: "segments/1/x", offset: 0, bytes: [1])))
        }
        #expect(try pair.contents(1) == before)
        try pair.close()
    }

    @Test("transfer messages from a peer are checked: paths, offsets, duplicate files, kinds")
    func hostileMessages() throws {
        let ok: [ShardWire.FilesMessage] = [
            .begin(transfer: 1),
            .chunk(transfer: 1, path: "segments/12/vectors-0.bin", offset: 5, bytes: [1, 2]),
            .finish(transfer: 1, manifest: [1], seq: 3, epoch: 4, files: [ShardWire.FileEntry(path: "segments/1/a_b-c.d", size: 9)]),
        ]
        for m in ok { #expect(try ShardWire.decodeFiles(ShardWire.encodeFiles(m)) == m) }
        for path in ["../x", "segments/1/../../x", "segments/a/x", "segments/1/.hidden", "/etc/passwd", "segments/1/x/y", "segments//x",
                     "shard.json", "segments/1/", "segments/1/a b", String(repeating: "9", count: 30)] {
            #expect(throws: VQError.self, "\(path)") {
                _ = try ShardWire.decodeFiles(ShardWire.encodeFiles(.chunk(transfer: 1, path: path, offset: 0, bytes: [])))
            }
        }
        #expect(throws: VQError.self) {
            _ = try ShardWire.decodeFiles(ShardWire.encodeFiles(.chunk(transfer: 1, path: "segments/1/x", offset: 1 << 41, bytes: [1])))
        }
        let twice = ShardWire.FileEntry(path: "segments/1/x", size: 1)
        #expect(throws: VQError.self) {
            _ = try ShardWire.decodeFiles(ShardWire.encodeFiles(.finish(transfer: 1, manifest: [], seq: 0, epoch: 0, files: [twice, twice])))
        }
        #expect(throws: VQError.self) { _ = try ShardWire.decodeFiles([9, 0, 0, 0, 0, 0, 0, 0, 0]) }
        #expect(throws: VQError.self) { _ = try ShardWire.decodeFiles(ShardWire.encodeFiles(.begin(transfer: 1)) + [0]) }
    }
}
