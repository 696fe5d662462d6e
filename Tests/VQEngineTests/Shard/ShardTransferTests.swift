import Foundation
import Synchronization
import Testing
@testable import VQEngine

/// A count shared with other threads.
final class Tally: Sendable {
    private let count = Mutex(0)
    func add() { count.withLock { $0 += 1 } }
    var value: Int { count.withLock { $0 } }
}

@Suite struct ShardTransferTests {
    /// Peer 1 holds 3,100 points (some deleted, an indexed segment with a graph); peer 2's
    /// replica is Dead and holds something else.
    static func diverged(files: Bool = true, history: (bytes: Int, pinned: Int)? = nil) throws -> ReplicaPair {
        let pair = try ReplicaPair(files: files, history: history)
        try pair.upsert(Array(0..<3000))
        _ = try pair.engines[0].collection("c").delete([.number(5), .number(2999)], wait: .applied)
        let primary = try pair.set(0).local
        _ = try primary.optimize(force: true)
        // A delete in the indexed segment: its deleted-rows file is summed again by a later flush.
        _ = try pair.engines[0].collection("c").delete([.number(6)], wait: .applied)
        // Written after the optimization: in the appendable segment.
        try pair.upsert(Array(3000..<3100), tag: 1)
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
        #expect(copy.status.indexedVectors == primary.status.indexedVectors && copy.status.indexedVectors >= 2997,
                "the graph came with the files: \(copy.status.indexedVectors)")
        #expect(copy.status.indexingSeconds == 0)
        #expect(!FileIO.exists(copy.directory + ".incoming"), "the staging directory is gone")
        // The replica's position is the primary's: the next write follows on in sequence.
        let (mine, theirs) = (try pair.set(1).position, try pair.set(0).position)
        #expect(mine == theirs && mine.seq > 0)
        try pair.upsert([7, 9000], tag: 3)
        #expect(try pair.contents(0) == pair.contents(1))
        // A restart opens the adopted segments (the manifest committed them) and writes after it
        // are newer than the adopted rows.
        try pair.reopen(1)
        #expect(try pair.contents(0) == pair.contents(1))
        try pair.upsert([7, 9001], tag: 4)
        try pair.reopen(1)
        #expect(try pair.contents(0) == pair.contents(1))
        #expect(try pair.set(1).local.digest() == pair.set(0).local.digest())
        // The adopted segments kept their block checksums: a flipped byte in the largest summed file is found.
        let segments = try pair.set(1).local.directory + "/segments"
        let files = FileIO.list(segments).flatMap { d in FileIO.list(segments + "/" + d).map { segments + "/" + d + "/" + $0 } }
            .filter { !$0.contains(".sum") && FileIO.exists($0 + ".sum0") || FileIO.exists($0 + ".sum1") }
        let largest = try #require(files.max { (FileIO.fileSize($0) ?? 0) < (FileIO.fileSize($1) ?? 0) })
        let fd = FileIO.openFD(largest, O_RDWR)
        var byte: UInt8 = 0
        _ = pread(fd, &byte, 1, 100)
        byte ^= 0xFF
        _ = pwrite(fd, &byte, 1, 100)
        close(fd)
        try pair.reopen(1)
        let problems = try pair.set(1).local.check()
        #expect(!problems.isEmpty, "damage in \(largest) went unseen")
        try pair.close()
    }

    /// Has `pair`'s primary take 100 upserts and a delete from another thread at the first
    /// message of the next copy, which waits (up to 30 s) for them. - Returns: writes acknowledged.
    static func writeDuringCopy(_ pair: ReplicaPair) -> Tally {
        let acknowledged = Tally()
        let engine = pair.engines[0]
        let batches = (0..<100).map { i in pair.batch([UInt64(10_000 + i), UInt64(i)], tag: 9) }
        pair.placements[0].onCopy.withLock {
            $0 = { [acknowledged] in
                let done = DispatchSemaphore(value: 0)
                DispatchQueue.global().async {
                    for var batch in batches where (try? engine.collection("c").upsert(&batch, wait: .applied)) != nil {
                        acknowledged.add()
                    }
                    if (try? engine.collection("c").delete([.number(7)], wait: .applied)) != nil { acknowledged.add() }
                    done.signal()
                }
                _ = done.wait(timeout: .now() + 30)
            }
        }
        return acknowledged
    }

    @Test("writes go on while a replica is copied: acknowledged during the copy, and the replica has them before it is Active",
          arguments: [true, false])
    func writesGoOnDuringCopy(files: Bool) throws {
        let pair = try Self.diverged(files: files)
        let acknowledged = Self.writeDuringCopy(pair)
        pair.placements[0].calls.withLock { $0 = [:] }
        try pair.set(0).transfer(to: 2, after: nil)
        #expect(acknowledged.value == 101, "writes waited for the copy")
        #expect(pair.shared.withLock { $0 } == [Replica(peer: 1, state: .active), Replica(peer: 2, state: .active)])
        #expect(pair.placements[0].calls.withLock { $0["apply-batch operations"] } == 101, "the writes made during the copy followed it, in order")
        #expect(try pair.contents(0) == pair.contents(1))
        #expect(try pair.set(1).position == pair.set(0).position)
        #expect(pair.placements[0].events.withLock { $0 }.filter { $0 == "replica copy outrun by writes" }.isEmpty)
        // And the next write follows on in sequence.
        try pair.upsert([1, 20_000], tag: 5)
        #expect(try pair.contents(0) == pair.contents(1))
        try pair.close()
    }

    @Test("writes that outgrow the pinned history during a copy: the copy is made again, holding writes, and ends equal")
    func copyOutrunByWrites() throws {
        let pair = try Self.diverged(history: (bytes: 1000, pinned: 2000))
        let acknowledged = Self.writeDuringCopy(pair)
        try pair.set(0).transfer(to: 2, after: nil)
        #expect(acknowledged.value == 101)
        #expect(pair.placements[0].events.withLock { $0 }.filter { $0 == "replica copy outrun by writes" }.count == 1)
        #expect(pair.shared.withLock { $0 }[1].state == .active)
        #expect(try pair.contents(0) == pair.contents(1))
        try pair.close()
    }

    @Test("a copy (files, or records) that would leave the replica's disk below its reserve stops (507) and its staged files go; the live copy is untouched",
          arguments: [true, false])
    func diskReserve(_ files: Bool) throws {
        let pair = try Self.diverged(files: files)
        let before = try pair.contents(1)
        try pair.set(1).diskReserve.store(Int.max / 2, ordering: .relaxed)
        do {
            try pair.set(0).transfer(to: 2, after: nil)
            Issue.record("the copy went on past the reserve")
        } catch let e as VQError {
            #expect(e.kind == .insufficientStorage && e.message.contains("bytes free"), "\(e.message)")
        }
        if files { #expect(!FileIO.exists(try pair.set(1).local.directory + ".incoming"), "the staged files are gone") }
        #expect(try pair.contents(1) == before)
        #expect(pair.shared.withLock { $0 }[1].state != .active)
        try pair.set(1).diskReserve.store(-1, ordering: .relaxed)
        try pair.set(0).transfer(to: 2, after: nil)
        #expect(try pair.contents(0) == pair.contents(1))
        try pair.close()
    }

    @Test("a record copy is taken only from the primary, and never over an Active copy")
    func recordCopyGuards() throws {
        let pair = try ReplicaPair(files: false)
        try pair.upsert(Array(0..<20))
        let before = try pair.contents(1)
        let wipe = ShardWire.ReceiveBatch(clear: true, last: (1, 1), records: [])
        let vectors = pair.config.vectors
        #expect(throws: VQError.self) { try pair.set(1).receive(wipe, vectors: vectors, from: 1) }  // Active
        pair.shared.withLock { $0[1].state = .dead }
        do {
            try pair.set(1).receive(wipe, vectors: vectors, from: 2)
            Issue.record("a copy from a peer that is not the primary was taken")
        } catch let e as VQError {
            #expect(e.kind == .notPrimary, "\(e.message)")
        }
        // With no active replica there is no primary: no one's copy is taken.
        pair.shared.withLock { $0[0].state = .dead }
        #expect(throws: VQError.self) { try pair.set(1).receive(wipe, vectors: vectors, from: 1) }
        #expect(try pair.contents(1) == before)
        try pair.close()
    }

    @Test("two calls to copy the same replica at once: one copies, the other waits for it and finds the replica Active")
    func oneCopyPerReplica() throws {
        let pair = try Self.diverged()
        let set = try pair.set(0)
        let failures = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: 2) { _ in
            do { try set.transfer(to: 2, after: nil) } catch { failures.withLock { $0.append("\(error)") } }
        }
        #expect(failures.withLock { $0 }.isEmpty)
        #expect(pair.placements[0].events.withLock { $0 }.filter { $0 == "replica recovered" }.count == 1)
        #expect(try pair.contents(0) == pair.contents(1))
        try pair.close()
    }

    @Test("a restarted primary still serves a replica the operations it missed (the logged history), not a whole copy")
    func restartedPrimaryServesRange() throws {
        var pair = try ReplicaPair()
        // The replica misses three writes (marked Dead), then the primary restarts.
        let missed: [[UInt64]] = [Array(100..<110), Array(110..<120), Array(120..<130)]
        try pair.writeWithReplicaMissing(missed, after: Array(0..<100))
        #expect(pair.shared.withLock { $0 }[1].state == .dead)
        try pair.reopen(0)
        pair.placements[0].reopenReplication()
        pair.placements[0].calls.withLock { $0 = [:] }
        try pair.set(0).transfer(to: 2, after: try pair.set(1).position)
        #expect(pair.placements[0].calls.withLock { $0 } == ["apply-batch": 1, "apply-batch operations": 3],
                "the three missed operations, in one batch, nothing copied whole")
        #expect(try pair.contents(0) == pair.contents(1))
        try pair.close()
    }

    @Test("a catch-up batch is applied in order and made durable once; a resend is skipped; a gap is refused, keeping what came before it")
    func catchUpBatch() throws {
        let pair = try ReplicaPair()
        // Peer 2 misses six operations.
        try pair.writeWithReplicaMissing((0..<6).map { [UInt64($0)] }, after: [100])
        let replica = try pair.set(1)
        let at = replica.position
        let missed = try #require(pair.placements[0].replication("c", 0).range(after: at.seq, epoch: at.epoch))
        #expect(missed.count == 6)
        // As the primary sends them: durable, the last waited for until applied.
        func send(_ ops: [(seq: UInt64, epoch: UInt64, bytes: [UInt8])], from: PeerID = 1, wait: WriteWait = .durable) throws {
            let body = ShardWire.encodeOperations(ops.enumerated().map { i, op in
                ShardWire.encodeOperation(op.bytes, i == ops.count - 1 ? .applied : wait, seq: op.seq, epoch: op.epoch)
            })
            try replica.applyBatchAsReplica(body, vectors: pair.config.vectors, from: from)
        }
        // An earlier operation asking to be applied before the answer: a wait the batch does not keep, refused.
        do {
            try send(Array(missed[0..<3]), wait: .applied)
            Issue.record("a batch asking wait=applied before its last was taken")
        } catch let e as VQError {
            #expect(e.kind == .invalidInput && e.message.contains("its last operation only"), "\(e.message)")
        }
        #expect(replica.position == at)
        try send(Array(missed[0..<3]))
        #expect(replica.position.seq == missed[2].seq && replica.local.pointCount == 4)
        try send(Array(missed[0..<4]))  // three sent again (skipped), one new
        #expect(replica.position.seq == missed[3].seq && replica.local.pointCount == 5)
        #expect(throws: VQError.self) { try send([missed[5]]) }  // the fifth is missing: a gap, nothing applied
        #expect(replica.position.seq == missed[3].seq && replica.local.pointCount == 5)
        // The fifth, then one past the end of the sequence: the fifth is kept, the gap refused.
        var beyond = missed[5]
        beyond.seq += 1
        #expect(throws: VQError.self) { try send([missed[4], beyond]) }
        try replica.local.waitApplied(replica.local.lastOp)  // (a refused batch waits for durability only)
        #expect(replica.position.seq == missed[4].seq && replica.local.pointCount == 6)
        // From a peer its metadata does not name primary: refused.
        #expect(throws: VQError.self) { try send([missed[5]], from: 2) }
        try send([missed[5]])
        let primary = try pair.set(0).position
        #expect(replica.position == primary)
        #expect(try pair.contents(0) == pair.contents(1))
        try pair.close()
    }

    @Test("a catch-up to a peer without batches (an older version) sends one operation per call")
    func catchUpWithoutBatches() throws {
        let pair = try ReplicaPair()
        try pair.writeWithReplicaMissing((0..<3).map { [UInt64(100 + $0)] }, after: Array(0..<10))
        pair.placements[0].noBatches.store(true, ordering: .relaxed)
        pair.placements[0].calls.withLock { $0 = [:] }
        try pair.set(0).transfer(to: 2, after: try pair.set(1).position)
        #expect(pair.placements[0].calls.withLock { $0 } == ["apply-batch": 1, "apply": 3])
        #expect(pair.shared.withLock { $0 }.allSatisfy { $0.state == .active })
        #expect(try pair.contents(0) == pair.contents(1))
        try pair.close()
    }

    @Test("a write whose replica is dropped while the write is on its way succeeds: a dropped replica needs no marking")
    func droppedReplicaDuringWrite() throws {
        let pair = try ReplicaPair()
        pair.placements[0].dropOnApply.store(true, ordering: .relaxed)
        try pair.upsert(Array(0..<10))
        #expect(pair.shared.withLock { $0 } == [Replica(peer: 1, state: .active)])
        #expect(try pair.set(0).local.pointCount == 10)
        try pair.close()
    }

    @Test("a replica that has not taken a write within the lag timeout, while enough others have it, is marked Dead and the write answers; it catches up afterwards")
    func laggingReplica() throws {
        let pair = try ReplicaPair()
        try pair.upsert(Array(0..<10))
        pair.placements[0].stallApply.store(true, ordering: .relaxed)
        try pair.upsert(Array(10..<20))
        // Answered while the replica's call is still waiting: it waits until the test lets it go
        // (or the 5 s peer timeout), so seeing it wait now means the write did not wait for it.
        #expect(eventually { pair.placements[0].applyStalled.load(ordering: .relaxed) }, "the write waited for the stalled replica")
        #expect(pair.shared.withLock { $0 } == [Replica(peer: 1, state: .active), Replica(peer: 2, state: .dead)])
        // The next write goes to the active replicas only: no second stall.
        try pair.upsert(Array(20..<25))
        #expect(pair.placements[0].calls.withLock { $0["apply"] } == 2, "one apply before the stall, one stalled, none after")
        pair.placements[0].stallApply.store(false, ordering: .relaxed)
        while pair.placements[0].applyStalled.load(ordering: .relaxed) { Thread.sleep(forTimeInterval: 0.005) }
        try pair.set(0).transfer(to: 2, after: try pair.set(1).position)
        #expect(pair.shared.withLock { $0 }.allSatisfy { $0.state == .active })
        #expect(try pair.contents(0) == pair.contents(1))
        #expect(try pair.set(1).local.pointCount == 25)
        try pair.close()
    }

    @Test("a write forwarded to a primary that answers neither it nor a ping goes to the next primary without waiting out the call",
          arguments: [true, false])
    func forwardedWriteChecksPrimary(_ primaryGone: Bool) throws {
        let pair = try ReplicaPair()
        let peer2 = pair.placements[1]
        peer2.forwardWrites.store(true, ordering: .relaxed)
        peer2.stallWrite.store(true, ordering: .relaxed)
        peer2.failPing.store(primaryGone, ordering: .relaxed)
        if !primaryGone {
            // Slow, but there: answers pings, and the write once let go.
            Thread.detachNewThread {
                Thread.sleep(forTimeInterval: 1.2)
                peer2.stallWrite.store(false, ordering: .relaxed)
            }
        }
        try pair.upsert(Array(0..<10), via: 1)
        if primaryGone {
            // The forwarded call waits until the test lets it go (or 15 s): seeing it wait now
            // means the write did not wait for it.
            #expect(eventually { peer2.writeStalled.load(ordering: .relaxed) }, "the write waited out the stalled call to the primary")
            #expect(pair.shared.withLock { $0 } == [Replica(peer: 1, state: .dead), Replica(peer: 2, state: .active)])
            #expect(try pair.set(1).local.pointCount == 10)
            #expect(peer2.suspected(1), "the primary found gone is suspected, so other writes do not wait for it")
            peer2.stallWrite.store(false, ordering: .relaxed)
            while peer2.writeStalled.load(ordering: .relaxed) { Thread.sleep(forTimeInterval: 0.005) }
        } else {
            #expect(pair.shared.withLock { $0 }.allSatisfy { $0.state == .active }, "a primary that answers pings stays")
            #expect(peer2.calls.withLock { $0["ping", default: 0] } >= 2)
            #expect(try pair.contents(0) == pair.contents(1))
            #expect(try pair.set(0).local.pointCount == 10)
        }
        try pair.close()
    }

    @Test("a write forwarded to its primary waits on the primary's full update queue for what is left of the caller's timeout")
    func forwardedWriteTimeout() throws {
        let pair = try ReplicaPair(updateQueueSize: 1)
        pair.placements[1].forwardWrites.store(true, ordering: .relaxed)
        // The primary's applier takes the first write and stops; the second fills its queue.
        let primary = try pair.set(0).local
        primary.holdApplierForTesting.store(true, ordering: .relaxed)
        for id in [UInt64(1), 2] {
            try pair.upsert([id], wait: .durable)
        }
        // Through the replica: its timeout reaches the primary, which refuses once it passes
        // (with no timeout carried, the primary would wait for room until the call gave up).
        var third = pair.batch([3])
        let began = Date()
        do {
            _ = try pair.engines[1].collection("c").upsert(&third, wait: .durable, deadline: Date().addingTimeInterval(0.3))
            Issue.record("a write past a full queue was acknowledged")
        } catch let e as VQError {
            #expect(e.kind == .rateLimited, "\(e)")
        }
        #expect(Date().timeIntervalSince(began) < PairPlacement.writeTimeout / 2, "the primary waited its own write timeout, not the caller's")
        #expect(pair.placements[1].calls.withLock { $0["write", default: 0] } == 1)
        primary.holdApplierForTesting.store(false, ordering: .relaxed)
        try pair.upsert([3], via: 1)
        #expect(try pair.set(0).local.pointCount == 3)
        try pair.close()
    }

    @Test("a replica asks its primary for one copy at a time: one given up on as unanswered holds off another until its call ends")
    func oneAskedCopyAtATime() throws {
        let pair = try ReplicaPair()
        try pair.writeWithReplicaMissing([[1]], after: [0])
        let asker = pair.placements[1]
        asker.stallTransfer.store(true, ordering: .relaxed)
        asker.failPing.store(true, ordering: .relaxed)
        #expect(throws: VQError.self, "the primary answers neither the copy nor a ping") { try pair.set(1).catchUp(to: 2, after: pair.set(1).position) }
        #expect(eventually { asker.transferStalled.load(ordering: .relaxed) }, "the call given up on is still out")
        do {
            try pair.set(1).catchUp(to: 2, after: pair.set(1).position)
            Issue.record("a second copy was asked while the first call was out")
        } catch let e as VQError {
            #expect(e.kind == .busy && e.message.contains("still under way"), "\(e.message)")
        }
        #expect(asker.calls.withLock { $0["transfer", default: 0] } == 1)
        asker.stallTransfer.store(false, ordering: .relaxed)
        asker.failPing.store(false, ordering: .relaxed)
        #expect(eventually { !asker.transferStalled.load(ordering: .relaxed) && (try? pair.set(1).askedCopies.withLock { $0.isEmpty }) == true })
        // Once that call has ended, the replica asks again and is copied.
        try pair.set(1).catchUp(to: 2, after: pair.set(1).position)
        #expect(try pair.contents(0) == pair.contents(1))
        try pair.close()
    }

    @Test("a replica of a peer just found gone is sent the write but not waited for once enough others have it")
    func suspectedReplica() throws {
        let pair = try ReplicaPair()
        pair.placements[0].lagTimeout.withLock { $0 = 5 }
        pair.placements[0].suspect(2)
        pair.placements[0].stallApply.store(true, ordering: .relaxed)
        var points = pair.batch(Array(0..<5))
        let began = Date()
        _ = try pair.engines[0].collection("c").upsert(&points, wait: .applied)
        // Answered without the 5 s lag timeout, while the replica's call still waits.
        #expect(Date().timeIntervalSince(began) < 2.5, "the write waited out the lag timeout for the suspected replica")
        #expect(eventually { pair.placements[0].applyStalled.load(ordering: .relaxed) }, "the write waited for the suspected replica")
        #expect(pair.shared.withLock { $0 } == [Replica(peer: 1, state: .active), Replica(peer: 2, state: .dead)])
        pair.placements[0].stallApply.store(false, ordering: .relaxed)
        while pair.placements[0].applyStalled.load(ordering: .relaxed) { Thread.sleep(forTimeInterval: 0.005) }
        try pair.close()
    }

    @Test("a primary replaced while its write was on its way marks no replica Dead and does not acknowledge the write")
    func replacedPrimaryMarksNoOne() throws {
        let pair = try ReplicaPair()
        // The replica's answer (a failure) comes at once; no lag timeout may end the wait first.
        pair.placements[0].lagTimeout.withLock { $0 = 5 }
        pair.placements[0].replaceOnApply.store(true, ordering: .relaxed)
        do {
            try pair.set(0).writeAsPrimary(.upsert(pair.batch([1])), wait: .applied, deadline: nil, config: pair.config)
            Issue.record("a replaced primary acknowledged its write")
        } catch let e as VQError {
            #expect(e.kind == .busy && e.message.contains("no longer the primary"), "\(e.message)")
        }
        #expect(pair.shared.withLock { $0 } == [Replica(peer: 1, state: .dead), Replica(peer: 2, state: .active)],
                "the replica that serves now stays Active")
        try pair.close()
    }

    @Test("a write whose primary does not answer is tried on the next one only within the write's timeout")
    func writeRetryDeadline() throws {
        let pair = try ReplicaPair()
        // Peer 2 forwards to peer 1, which does not answer (this test's peer calls have no "write").
        let batch = pair.batch([1, 2])
        do {
            _ = try pair.set(1).write(.upsert(batch), wait: .applied, deadline: Date().addingTimeInterval(-1), config: pair.config)
            Issue.record("the write was tried again past its timeout")
        } catch let e as VQError {
            #expect(e.kind == .busy && e.message.contains("timeout"), "\(e.message)")
        }
        // Without a timeout the next try goes to peer 2, the primary now.
        _ = try pair.set(1).write(.upsert(batch), wait: .applied, deadline: nil, config: pair.config)
        #expect(try pair.set(1).local.pointCount == 2)
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

    @Test("a damaged or incomplete staged copy is refused before the live shard changes; only the primary sends, never over an Active copy")
    func refusesDamage() throws {
        let pair = try Self.diverged()
        let replica = try pair.set(1)
        let before = try pair.contents(1)
        let manifest = ChecksummedJSON.encode(.object([("format", .string("vq-shard")), ("version", .int(1)), ("flushed_op", .int(1)),
                                                       ("next_segment_id", .int(2)), ("segments", .array([]))]))
        func staged(_ t: UInt64) throws {
            try replica.receiveFiles(ShardWire.encodeFiles(.begin(transfer: t)), from: 1)
            try replica.receiveFiles(ShardWire.encodeFiles(.chunk(transfer: t, path: "segments/1/rows.bin", offset: 0, bytes: [1, 2, 3])), from: 1)
        }
        // A finish whose list lies about a size.
        try staged(42)
        let missing = ShardWire.encodeFiles(.finish(transfer: 42, manifest: manifest, seq: 1, epoch: 1,
                                                    files: [ShardWire.FileEntry(path: "segments/1/rows.bin", size: 4)]))
        #expect(throws: VQError.self) { try replica.receiveFiles(missing, from: 1) }
        #expect(!FileIO.exists(replica.local.directory + ".incoming"), "a failed finish removes the staging")
        // A manifest that does not name the segment sent.
        try staged(43)
        let unnamed = ShardWire.encodeFiles(.finish(transfer: 43, manifest: manifest, seq: 1, epoch: 1,
                                                    files: [ShardWire.FileEntry(path: "segments/1/rows.bin", size: 3)]))
        #expect(throws: VQError.self) { try replica.receiveFiles(unnamed, from: 1) }
        // A chunk that would leave a hole; another transfer's chunk.
        try staged(44)
        #expect(throws: VQError.self) {
            try replica.receiveFiles(ShardWire.encodeFiles(.chunk(transfer: 44, path: "segments/1/rows.bin", offset: 10, bytes: [1])), from: 1)
        }
        #expect(throws: VQError.self) {
            try replica.receiveFiles(ShardWire.encodeFiles(.chunk(transfer: 7, path: "segments/1/x", offset: 0, bytes: [1])), from: 1)
        }
        // From a peer that is not the primary; onto an Active copy.
        #expect(throws: VQError.self) { try replica.receiveFiles(ShardWire.encodeFiles(.begin(transfer: 45)), from: 2) }
        pair.shared.withLock { $0 = [Replica(peer: 1, state: .active), Replica(peer: 2, state: .active)] }
        #expect(throws: VQError.self) { try replica.receiveFiles(ShardWire.encodeFiles(.begin(transfer: 46)), from: 1) }
        #expect(try pair.contents(1) == before)
        try pair.close()
    }

    @Test("a copy damaged on the way fails its block checksums and is not adopted")
    func damagedInTransit() throws {
        let pair = try Self.diverged()
        let before = try pair.contents(1)
        pair.placements[0].corruptFiles.store(true, ordering: .relaxed)
        #expect(throws: VQError.self) { try pair.set(0).transfer(to: 2, after: nil) }
        #expect(try pair.contents(1) == before)
        #expect(pair.shared.withLock { $0 }[1].state != .active)
        let leftovers = try FileIO.list(pair.set(1).local.directory + "/segments").count
        pair.placements[0].corruptFiles.store(false, ordering: .relaxed)
        try pair.set(0).transfer(to: 2, after: nil)
        #expect(try pair.contents(0) == pair.contents(1))
        #expect(leftovers <= 2, "the refused copy's segments were removed")
        try pair.close()
    }

    @Test("a finish sent again after it completed is answered done, not refused")
    func finishIsIdempotent() throws {
        let pair = try Self.diverged()
        try pair.set(0).transfer(to: 2, after: nil)
        // The transfer's finish, again: the id is the last one the replica completed.
        let t = try pair.set(1).lastTransfer.withLock { $0 }
        #expect(t != 0)
        pair.shared.withLock { $0 = [Replica(peer: 1, state: .active), Replica(peer: 2, state: .partial)] }
        let finish = ShardWire.encodeFiles(.finish(transfer: t, manifest: [], seq: 0, epoch: 0, files: []))
        try pair.set(1).receiveFiles(finish, from: 1)
        #expect(try pair.contents(0) == pair.contents(1))
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
                     "shard.json", "segments/1/", "segments/1/a b", String(repeating: "9", count: 30), "segments/1/rows.bin.undo",
                     "segments/1/x.tmp"] {
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
        // The transfer request's method flags: one at most, none unknown.
        #expect(try ShardWire.decodeTransfer(ShardWire.encodeTransfer(to: 3, after: (4, 5), method: .records)).method == .records)
        #expect(try ShardWire.decodeTransfer(ShardWire.encodeTransfer(to: 3, after: nil, method: .files)).method == .files)
        #expect(try ShardWire.decodeTransfer(ShardWire.encodeTransfer(to: 3, after: nil)).method == nil)
        var both = ShardWire.encodeTransfer(to: 3, after: nil)
        both[8] = 6
        #expect(throws: VQError.self) { _ = try ShardWire.decodeTransfer(both) }
        #expect(throws: VQError.self) { _ = try ShardWire.decodeFiles(ShardWire.encodeFiles(.begin(transfer: 1)) + [0]) }
    }
}
