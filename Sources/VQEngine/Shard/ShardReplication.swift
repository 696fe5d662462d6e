// A shard's replication position on this peer, and the recent operations it has applied.
//
// Every operation a primary orders gets the next sequence number of its shard, tagged with the
// primary's epoch (a random id drawn whenever a peer starts ordering a shard: after a failover
// or a restart the same number can name a different operation, and the epoch tells them
// apart). Every replica applies them in that order and remembers the last (epoch, number)
// (`DATA/cluster/seq/COLLECTION.SHARD`,
// written after the operation is durable, so after a crash it is never ahead of the data; a
// stale value only replays a few operations, and upserts and deletes replay harmlessly). The
// last operations (up to 16 MB, `--replication-history-bytes`, or 100,000) stay in memory, trimmed
// as they go: a replica that missed a range the
// source still has catches up with just that range; otherwise it gets the whole shard.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

package final class ShardReplication: @unchecked Sendable {
    /// Held while ordering, applying or transferring this shard's operations.
    package let lock = NSLock()
    package private(set) var lastSeq: UInt64
    package private(set) var lastEpoch: UInt64
    /// Whether this peer ordered the last operation in this process (else a new epoch starts).
    package var ordering = false
    private var recent: [(seq: UInt64, epoch: UInt64, bytes: [UInt8])] = []
    private var head = 0
    private var bytes = 0
    private let path: String
    /// `path`, open for the whole life of this state (one pwrite per operation, no open/close).
    private var fd: Int32 = -1
    /// Bytes of recent operations kept for range catch-ups (`--replication-history-bytes`).
    let maxBytes: Int
    static let maxOps = 100_000

    package init(path: String, maxBytes: Int = 16 << 20) {
        self.path = path
        self.maxBytes = maxBytes
        var seq: UInt64 = 0, epoch: UInt64 = 0
        if let data = try? FileIO.readAll(path), data.count == 16 {
            data.withUnsafeBytes {
                seq = UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self))
                epoch = UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
            }
        }
        lastSeq = seq
        lastEpoch = epoch
        try? FileIO.makeDirectories(FileIO.directoryOf(path))
        fd = FileIO.openFD(path, O_WRONLY | O_CREAT | O_CLOEXEC)
    }

    deinit { if fd >= 0 { close(fd) } }

    /// The epoch for the next operation this peer orders (a new one when it was not ordering).
    package func epochForOrdering() -> UInt64 {
        if !ordering {
            ordering = true
            lastEpoch = UInt64.random(in: 1...UInt64.max)
        }
        return lastEpoch
    }

    /// Records that operation (`epoch`, `seq`), encoded as `op`, is durable here. Call with `lock` held.
    package func applied(_ seq: UInt64, epoch: UInt64, _ op: [UInt8]) {
        lastSeq = seq
        lastEpoch = epoch
        recent.append((seq, epoch, op))
        bytes += op.count
        // Trimmed as it goes: a dropped operation's bytes are freed at once, and the array's
        // dropped prefix is compacted once it is half the array, so memory stays within the
        // byte cap whatever the write pattern.
        while recent.count - head > ShardReplication.maxOps || bytes > maxBytes {
            bytes -= recent[head].bytes.count
            recent[head].bytes = []
            head += 1
        }
        if head > 64 && head * 2 > recent.count {
            recent.removeFirst(head)
            head = 0
        }
        persist()
    }

    /// The epoch of operation `seq` if this peer still holds it (or it is the last one).
    package func epoch(of seq: UInt64) -> UInt64? {
        if seq == lastSeq { return lastEpoch }
        guard head < recent.count, recent[head].seq <= seq, seq < lastSeq else { return nil }
        return recent[head + Int(seq - recent[head].seq)].epoch
    }

    /// After a whole-shard copy: the data is the source's as of (`epoch`, `seq`), with no history
    /// here; (0, 0) while a copy is under way.
    package func reset(to seq: UInt64, epoch: UInt64) {
        lastSeq = seq
        lastEpoch = epoch
        ordering = false
        recent = []
        head = 0
        bytes = 0
        persist()
    }

    /// The operations after a replica's last (`epoch`, `seq`), or nil when this peer cannot tell
    /// they follow on from it (it does not hold that operation, or holds a different one there).
    package func range(after seq: UInt64, epoch: UInt64) -> [(seq: UInt64, epoch: UInt64, bytes: [UInt8])]? {
        guard seq > 0, seq <= lastSeq, self.epoch(of: seq) == epoch else { return nil }
        if seq == lastSeq { return [] }
        return Array(recent[(head + Int(seq + 1 - recent[head].seq))...])
    }

    /// Without fsync: the operation itself is durable before this runs, and a position lost to
    /// an OS crash only costs a full copy later (a restarted primary orders under a new epoch).
    private func persist() {
        guard fd >= 0 else { return }
        var w = ByteWriter(capacity: 16)
        w.u64(lastSeq)
        w.u64(lastEpoch)
        _ = w.bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, 16, 0) }
    }
}
