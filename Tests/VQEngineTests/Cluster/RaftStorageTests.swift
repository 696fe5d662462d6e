#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
@testable import VQEngine

@Suite struct RaftStorageTests {
    func entries(_ range: ClosedRange<UInt64>, term: UInt64) -> [RaftEntry] {
        range.map { RaftEntry(term: term, index: $0, voters: $0 == 1 ? [1, 2] : nil, data: Array("cmd\($0)".utf8)) }
    }

    @Test("every message kind survives the wire form; damaged batches are refused, not crashed on")
    func codec() throws {
        let s = RaftSnapshot(index: 9, term: 3, voters: [1, 2, 3], data: [1, 2, 3])
        let batch = [
            RaftEnvelope(from: 1, to: 2, term: 4, message: .requestVote(lastIndex: 10, lastTerm: 3)),
            RaftEnvelope(from: 2, to: 1, term: 4, message: .vote(granted: true)),
            RaftEnvelope(from: 1, to: 2, term: 4, message: .append(prevIndex: 9, prevTerm: 3, entries: entries(1...3, term: 4), commit: 8)),
            RaftEnvelope(from: 2, to: 1, term: 4, message: .appendResponse(success: false, match: 0, hint: 7)),
            RaftEnvelope(from: 1, to: 3, term: 4, message: .installSnapshot(s)),
            RaftEnvelope(from: 3, to: 1, term: 4, message: .snapshotResponse(match: 9)),
        ]
        let bytes = RaftCodec.encode(batch)
        #expect(try RaftCodec.decode(bytes) == batch)
        for cut in [0, 3, 20, bytes.count / 2, bytes.count - 1] {
            #expect(throws: VQError.self) { try RaftCodec.decode(Array(bytes.prefix(cut))) }
        }
        #expect(throws: VQError.self) { try RaftCodec.decode(bytes + [0]) }
        var badTag = RaftCodec.encode([batch[1]])
        badTag[4 + 24] = 99
        #expect(throws: VQError.self) { try RaftCodec.decode(badTag) }
    }

    @Test("term, vote, log and snapshot survive reopening; truncation and compaction persist")
    func reopen() throws {
        let tmp = TempDir()
        let dir = tmp.path + "/raft"
        do {
            let s = try FileRaftStorage(dir: dir, warn: { _ in })
            try s.saveHardState(RaftHardState(term: 5, votedFor: 2))
            try s.replaceEntries(from: 1, with: entries(1...6, term: 1))
            try s.replaceEntries(from: 5, with: entries(5...7, term: 2))  // a conflicting suffix replaced
            try s.saveSnapshot(RaftSnapshot(index: 3, term: 1, voters: [1, 2], data: [42]))
            try s.replaceEntries(from: 8, with: entries(8...8, term: 2))
        }
        let s = try FileRaftStorage(dir: dir, warn: { _ in })
        #expect(s.hardState == RaftHardState(term: 5, votedFor: 2))
        #expect(s.snapshot == RaftSnapshot(index: 3, term: 1, voters: [1, 2], data: [42]))
        #expect(s.entries.map(\.index) == [4, 5, 6, 7, 8])
        #expect(s.entries.map(\.term) == [1, 2, 2, 2, 2])
        #expect(s.entries[1].data == Array("cmd5".utf8))
        #expect(throws: VQError.self) { try s.replaceEntries(from: 20, with: entries(20...20, term: 2)) }
    }

    @Test("a torn last record is dropped with a warning; damage before intact records is refused")
    func damage() throws {
        let tmp = TempDir()
        let dir = tmp.path + "/raft"
        do {
            let s = try FileRaftStorage(dir: dir, warn: { _ in })
            try s.replaceEntries(from: 1, with: entries(1...4, term: 1))
        }
        let log = dir + "/log"
        let intact = try FileIO.readAll(log)
        // Torn: the last record cut short.
        try Data(intact.dropLast(3)).write(to: URL(fileURLWithPath: log))
        var warnings: [String] = []
        let torn = try FileRaftStorage(dir: dir, warn: { warnings.append($0) })
        #expect(torn.entries.map(\.index) == [1, 2, 3])
        #expect(warnings.count == 1 && warnings[0].contains("torn"))
        // Damage in the first record, with intact ones after it.
        var flipped = intact
        flipped[10] ^= 0xFF
        try Data(flipped).write(to: URL(fileURLWithPath: log))
        #expect(throws: VQError.self) { _ = try FileRaftStorage(dir: dir, warn: { _ in }) }
        // A damaged state file is refused too.
        try Data(intact).write(to: URL(fileURLWithPath: log))
        var state = try FileIO.readAll(dir + "/state")
        state[0] ^= 1
        try Data(state).write(to: URL(fileURLWithPath: dir + "/state"))
        #expect(throws: VQError.self) { _ = try FileRaftStorage(dir: dir, warn: { _ in }) }
    }

    @Test("a Raft node reopened on file storage keeps its term, vote and log")
    func nodeOnFiles() throws {
        let tmp = TempDir()
        let dir = tmp.path + "/raft"
        var committed: UInt64 = 0
        do {
            let node = try RaftNode(id: 1, storage: try FileRaftStorage(dir: dir, warn: { _ in }),
                                    timing: RaftTiming(electionTicks: 2, heartbeatTicks: 1), seed: 1, voters: [1])
            for _ in 0..<10 where node.role != .leader { try node.tick() }
            _ = try node.propose([7])
            committed = node.takeReady().committed.last?.index ?? 0
        }
        let node = try RaftNode(id: 1, storage: try FileRaftStorage(dir: dir, warn: { _ in }),
                                timing: RaftTiming(electionTicks: 2, heartbeatTicks: 1), seed: 1)
        #expect(node.term == 1 && node.lastIndex == committed && committed == 3)
        for _ in 0..<10 where node.role != .leader { try node.tick() }
        #expect(node.role == .leader && node.term == 2)
        #expect(node.takeReady().committed.contains { $0.data == [7] })
    }
}

@Suite struct ShardReplicationTests {
    @Test("a catch-up range must continue the replica's own history: same number and epoch, else a full copy")
    func ranges() throws {
        let tmp = TempDir()
        let path = tmp.path + "/seq/c.0"
        let r = ShardReplication(path: path)
        let a = r.epochForOrdering()
        for seq in UInt64(1)...5 { r.applied(seq, epoch: a, [UInt8(seq)]) }
        #expect(r.range(after: 3, epoch: a)?.map(\.seq) == [4, 5])
        #expect(r.range(after: 5, epoch: a)?.isEmpty == true)
        #expect(r.range(after: 3, epoch: a &+ 1) == nil)  // another primary's operation 3
        #expect(r.range(after: 0, epoch: 0) == nil)       // no history: copy
        #expect(r.range(after: 9, epoch: a) == nil)       // ahead of us
        // The position and the history survive a restart (a restarted primary still serves ranges).
        let reopened = ShardReplication(path: path)
        #expect(reopened.lastSeq == 5 && reopened.lastEpoch == a)
        #expect(reopened.range(after: 5, epoch: a)?.isEmpty == true)
        #expect(reopened.range(after: 2, epoch: a)?.map(\.seq) == [3, 4, 5])
        #expect(reopened.range(after: 2, epoch: a)?.map(\.bytes) == [[3], [4], [5]])
        // A restarted primary orders under a new epoch and its history goes on from there.
        let b = reopened.epochForOrdering()
        #expect(b != a)
        reopened.applied(6, epoch: b, [6])
        #expect(ShardReplication(path: path).range(after: 4, epoch: a)?.map(\.epoch) == [a, b])
        // A copy resets the position and the history.
        reopened.reset(to: 0, epoch: 0)
        let copied = ShardReplication(path: path)
        #expect(copied.lastSeq == 0)
        #expect(copied.range(after: 4, epoch: a) == nil)
    }

    @Test("the logged history: a torn tail is dropped, a log that does not end at the position is not used, the bound holds across files")
    func loggedHistory() throws {
        let tmp = TempDir()
        let path = tmp.path + "/seq/c.0"
        let r = ShardReplication(path: path, maxBytes: 100)
        let a = r.epochForOrdering()
        // 30 operations of 10 bytes: the files switch every 100 bytes.
        for seq in UInt64(1)...30 { r.applied(seq, epoch: a, Array(repeating: UInt8(seq), count: 10)) }
        let files = [path + ".log0", path + ".log1"]
        let sizes: [Int] = files.map { FileIO.fileSize($0) ?? 0 }
        let total = sizes[0] + sizes[1]
        // Each file switches once it holds 100 bytes: at most 100 + one 34-byte record each.
        #expect(total <= 268, "\(sizes): bounded by about twice the history")
        let kept = try #require(ShardReplication(path: path, maxBytes: 100).range(after: 25, epoch: a))
        #expect(kept.map(\.seq) == [26, 27, 28, 29, 30])
        #expect(ShardReplication(path: path, maxBytes: 100).range(after: 15, epoch: a) == nil, "older than the bound")

        // A torn last record (a crash mid-append): the position says 30 but the log ends at 29,
        // so the history is not trusted (a range from it would skip 30).
        // The newer log is the one whose first record has the higher sequence number.
        let firsts: [UInt64] = try files.map { f in
            let head = try FileIO.readAll(f)
            return head.count >= 8 ? head.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) } : 0
        }
        let newest = firsts[0] > firsts[1] ? files[0] : files[1]
        let size = try #require(FileIO.fileSize(newest))
        #expect(truncate(newest, off_t(size - 3)) == 0)
        let torn = ShardReplication(path: path, maxBytes: 100)
        #expect(torn.lastSeq == 30)
        #expect(torn.range(after: 27, epoch: a) == nil)
        // And it starts over cleanly from there.
        torn.applied(31, epoch: a, [1])
        torn.applied(32, epoch: a, [2])
        #expect(ShardReplication(path: path, maxBytes: 100).range(after: 31, epoch: a)?.map(\.seq) == [32])

        // Written under another boot (an OS crash may have lost a tail of both files while the
        // WAL kept operations after it): not trusted.
        try FileIO.writeAtomically(path + ".boot", Array("another-boot".utf8))
        #expect(ShardReplication(path: path, maxBytes: 100).range(after: 31, epoch: a) == nil)
    }

    @Test("a copy's pinned position keeps the operations after it beyond the bound, serves a range when its own operation is gone, and goes past its own bound")
    func pins() throws {
        let tmp = TempDir()
        let r = ShardReplication(path: tmp.path + "/seq/c.0", maxBytes: 100, pinnedMaxBytes: 300)
        let a = r.epochForOrdering()
        let op = { (seq: UInt64) in [UInt8](repeating: UInt8(truncatingIfNeeded: seq), count: 10) }
        for seq in UInt64(1)...5 { r.applied(seq, epoch: a, op(seq)) }
        r.pin(5, epoch: a)
        // 250 bytes after the pin: past the bound of 100, within the pinned 300.
        for seq in UInt64(6)...30 { r.applied(seq, epoch: a, op(seq)) }
        #expect(r.range(after: 5, epoch: a)?.map(\.seq) == Array(6...30))
        #expect(r.range(after: 3, epoch: a) == nil, "before the pin: trimmed as usual")
        r.unpin(5)
        #expect(r.range(after: 5, epoch: a) == nil, "let go: trimmed to the bound again")
        #expect(r.range(after: 25, epoch: a)?.count == 5)
        // A position with no operation of its own here (this copy was itself copied there).
        r.reset(to: 40, epoch: a)
        r.pin(40, epoch: a)
        #expect(r.range(after: 40, epoch: a)?.isEmpty == true)
        let b = r.epochForOrdering()
        r.applied(41, epoch: b, op(41))
        r.applied(42, epoch: b, op(42))
        #expect(r.range(after: 40, epoch: a)?.map(\.seq) == [41, 42])
        #expect(r.range(after: 40, epoch: b) == nil, "another operation 40")
        // Past the pinned bound: the oldest go, and the pin with them.
        for seq in UInt64(43)...80 { r.applied(seq, epoch: b, op(seq)) }
        #expect(r.range(after: 40, epoch: a) == nil)
        r.unpin(40)
        #expect(r.range(after: 75, epoch: b)?.count == 5)
        // A shard never written to: its copy starts at 0.
        let fresh = ShardReplication(path: tmp.path + "/seq/c.1")
        #expect(fresh.range(after: 0, epoch: 0) == nil, "0 is no position")
        fresh.pin(0, epoch: 0)
        #expect(fresh.range(after: 0, epoch: 0, pinned: true)?.isEmpty == true)
        fresh.applied(1, epoch: fresh.epochForOrdering(), [1])
        #expect(fresh.range(after: 0, epoch: 0, pinned: true)?.map(\.seq) == [1])
        // Only for the copy that pinned it: another replica at 0 holds nothing, and gets a copy.
        #expect(fresh.range(after: 0, epoch: 0) == nil)
    }

    @Test("a torn record at the end of the log is cut off, so what is appended after it is read back")
    func tornTailCut() throws {
        let tmp = TempDir()
        let path = tmp.path + "/seq/c.0"
        let r = ShardReplication(path: path)
        let a = r.epochForOrdering()
        for seq in UInt64(1)...3 { r.applied(seq, epoch: a, [UInt8(seq)]) }
        // A half-written fourth record (the process died mid-append), the position still at 3.
        let log = try #require([path + ".log0", path + ".log1"].first { (FileIO.fileSize($0) ?? 0) > 0 })
        let fd = FileIO.openFD(log, O_WRONLY | O_APPEND)
        _ = [UInt8](repeating: 7, count: 10).withUnsafeBytes { write(fd, $0.baseAddress, 10) }
        close(fd)
        let reopened = ShardReplication(path: path)
        #expect(reopened.range(after: 1, epoch: a)?.map(\.seq) == [2, 3])
        reopened.applied(4, epoch: a, [4])
        #expect(ShardReplication(path: path).range(after: 1, epoch: a)?.map(\.seq) == [2, 3, 4])
    }
}
