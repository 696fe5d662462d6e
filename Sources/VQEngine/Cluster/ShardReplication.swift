// A shard's replication position on this peer, and the recent operations it has applied.
//
// Every operation a primary orders gets the next sequence number of its shard; every replica
// applies them in that order and remembers the last one (`DATA/cluster/seq/COLLECTION.SHARD`,
// written after the operation is durable, so after a crash it is never ahead of the data; a
// stale value only replays a few operations, and upserts and deletes replay harmlessly). The
// last operations (up to 64 MB or 100,000) stay in memory: a replica that missed a range the
// source still has catches up with just that range; otherwise it gets the whole shard.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

final class ShardReplication: @unchecked Sendable {
    /// Held while ordering, applying or transferring this shard's operations.
    let lock = NSLock()
    private(set) var lastSeq: UInt64
    private var recent: [(seq: UInt64, bytes: [UInt8])] = []
    private var head = 0
    private var bytes = 0
    private let path: String
    static let maxBytes = 64 << 20
    static let maxOps = 100_000

    init(path: String) {
        self.path = path
        var seq: UInt64 = 0
        if let data = try? FileIO.readAll(path), data.count == 8 {
            seq = data.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        }
        lastSeq = seq
    }

    /// Records that operation `seq` (encoded as `op`) is durable here. Call with `lock` held.
    func applied(_ seq: UInt64, _ op: [UInt8]) {
        lastSeq = seq
        recent.append((seq, op))
        bytes += op.count
        while recent.count - head > ShardReplication.maxOps || bytes > ShardReplication.maxBytes {
            bytes -= recent[head].bytes.count
            head += 1
        }
        if head > 4096 && head * 2 > recent.count {
            recent.removeFirst(head)
            head = 0
        }
        persist()
    }

    /// After a whole-shard copy: the data is the source's as of `seq`, with no history here.
    func reset(to seq: UInt64) {
        lastSeq = seq
        recent = []
        head = 0
        bytes = 0
        persist()
    }

    /// The operations after `from - 1` up to the last, or nil when they are no longer all here.
    func range(from: UInt64) -> [(seq: UInt64, bytes: [UInt8])]? {
        if from == lastSeq + 1 { return [] }
        guard head < recent.count, recent[head].seq <= from, from <= lastSeq else { return nil }
        return Array(recent[(head + Int(from - recent[head].seq))...])
    }

    private func persist() {
        try? FileIO.makeDirectories(FileIO.directoryOf(path))
        let fd = FileIO.openFD(path, O_WRONLY | O_CREAT | O_CLOEXEC)
        guard fd >= 0 else { return }
        var v = lastSeq.littleEndian
        _ = withUnsafeBytes(of: &v) { pwrite(fd, $0.baseAddress, 8, 0) }
        close(fd)
    }
}
