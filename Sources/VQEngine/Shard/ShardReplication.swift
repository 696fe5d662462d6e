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
// source still has catches up with just that range; otherwise it gets the whole shard. While a
// copy is under way, the operations after its starting position are pinned (kept up to four
// times the bounds, at least 64 MB) for the copy's catch-up.
//
// The history is also logged (`COLLECTION.SHARD.log0` and `.log1`, appended without fsync, as
// the position): a restarted peer (a primary most of all) still serves ranges. Appends go to one
// file until it holds the history's byte bound, then to the other, emptied first; together they
// hold at least the bound's worth of the newest operations, and nothing is written twice.
//   record | seq u64 | epoch u64 | length u32 | crc32c u32 (of seq, epoch, length, body) | body |
// On open both are read, each up to its first damaged record (a torn tail is cut off); the
// history is kept only if it runs without a gap up to the position file's (epoch, number) and the
// machine has not restarted since the files were last written (`COLLECTION.SHARD.boot` holds the
// kernel's boot id). Neither file is fsynced: a process that dies leaves both in the page cache,
// but an OS crash can lose the tail of both while the WAL kept operations after it, and a range
// from that history would skip them. Otherwise the history starts empty and a replica behind it
// is copied whole, as before. Files switch at the byte bound or at 100,000 operations.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

package final class ShardReplication: @unchecked Sendable {
    /// Held while ordering, applying or transferring this shard's operations (recursive: a copy
    /// that holds writes for its whole length takes it once more for each step).
    package let lock = NSRecursiveLock()
    package private(set) var lastSeq: UInt64
    package private(set) var lastEpoch: UInt64
    /// Whether this peer ordered the last operation in this process (else a new epoch starts).
    package var ordering = false
    private var recent: [(seq: UInt64, epoch: UInt64, bytes: [UInt8])] = []
    private var head = 0
    private var bytes = 0
    /// Positions a copy in progress catches up from (`pin`): the operations after each are kept
    /// beyond the usual bound, up to `pinnedMaxBytes`, and the position's epoch is known here
    /// even when its own operation is not (a copy reset the history). Count per position.
    private var pins: [UInt64: (epoch: UInt64, count: Int)] = [:]
    private let path: String
    /// `path`, open for the whole life of this state (one pwrite per operation, no open/close).
    private var fd: Int32 = -1
    /// The history log being appended to (0 or 1), its descriptor and size.
    private var logIndex = 0
    private var logFD: Int32 = -1
    private var logBytes = 0
    private var logRecords = 0
    private static let recordHeader = 24
    /// Bytes of recent operations kept for range catch-ups (`--replication-history-bytes`).
    let maxBytes: Int
    static let maxOps = 100_000
    /// Bytes the history may grow to while a copy catches up from a pinned position (beyond
    /// it, the oldest go and the copy is made again, holding writes).
    let pinnedMaxBytes: Int

    /// - Parameter pinnedMaxBytes: nil: four times `maxBytes`, at least 64 MB.
    package init(path: String, maxBytes: Int = 16 << 20, pinnedMaxBytes: Int? = nil) {
        self.path = path
        self.maxBytes = maxBytes
        self.pinnedMaxBytes = pinnedMaxBytes ?? max(4 * maxBytes, 64 << 20)
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
        loadHistory()
    }

    deinit {
        if fd >= 0 { close(fd) }
        if logFD >= 0 { close(logFD) }
    }

    private func logPath(_ i: Int) -> String { path + ".log\(i)" }

    /// The kernel's boot id (nil where there is none to read): history written under another
    /// boot may have lost its tail.
    static let bootID: String? = (try? FileIO.readAll("/proc/sys/kernel/random/boot_id"))
        .map { String(decoding: $0, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) }

    /// The valid records of log `i`, up to its first damaged or torn one, and where they end.
    private func readLog(_ i: Int) -> (records: [(seq: UInt64, epoch: UInt64, bytes: [UInt8])], end: Int) {
        guard let data = try? FileIO.readAll(logPath(i)) else { return ([], 0) }
        var out: [(seq: UInt64, epoch: UInt64, bytes: [UInt8])] = []
        var end = 0
        data.withUnsafeBytes { raw in
            var at = 0
            while raw.count - at >= Self.recordHeader {
                let seq = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: UInt64.self))
                let epoch = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: at + 8, as: UInt64.self))
                let length = Int(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: at + 16, as: UInt32.self)))
                let crc = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: at + 20, as: UInt32.self))
                guard length <= raw.count - at - Self.recordHeader else { break }
                let covered = CRC32C.update(CRC32C.update(0, UnsafeRawBufferPointer(rebasing: raw[at..<(at + 20)])),
                                            UnsafeRawBufferPointer(rebasing: raw[(at + 24)..<(at + 24 + length)]))
                guard covered == crc else { break }
                out.append((seq, epoch, Array(raw[(at + 24)..<(at + 24 + length)])))
                at += Self.recordHeader + length
            }
            end = at
        }
        return (out, end)
    }

    /// Reads both logs into the history (when it ends at the position) and opens the one to append to.
    private func loadHistory() {
        guard maxBytes > 0 else { return }
        let bootPath = path + ".boot"
        let sameBoot = Self.bootID != nil && (try? FileIO.readAll(bootPath)).map { String(decoding: $0, as: UTF8.self) } == Self.bootID
        // Another boot's logs are not trusted: not read, only emptied.
        let read = sameBoot ? [readLog(0), readLog(1)] : [(records: [], end: 0), (records: [], end: 0)]
        let logs = read.map(\.records)
        // Older file first (by first sequence number); the newer one is appended to.
        let order = (logs[0].first?.seq ?? 0) <= (logs[1].first?.seq ?? 0) ? [0, 1] : [1, 0]
        var all = logs[order[0]] + logs[order[1]]
        // Only the run without a gap that ends the logs counts.
        if let gap = all.indices.dropFirst().last(where: { all[$0].seq != all[$0 - 1].seq + 1 }) { all.removeFirst(gap) }
        if sameBoot, let last = all.last, last.seq == lastSeq, last.epoch == lastEpoch, lastSeq > 0 {
            for r in all {
                recent.append(r)
                bytes += r.bytes.count
            }
            trim()
        }
        // Written once per boot, not at every open (each write is fsynced).
        if !sameBoot, let id = Self.bootID { try? FileIO.writeAtomically(bootPath, Array(id.utf8)) }
        logIndex = logs[order[1]].isEmpty && !logs[order[0]].isEmpty ? order[0] : order[1]
        // A torn tail is cut off, so appends follow the last whole record.
        if let size = FileIO.fileSize(logPath(logIndex)), size > read[logIndex].end {
            _ = truncate(logPath(logIndex), off_t(read[logIndex].end))
        }
        openLog(logIndex, truncate: false)
        logRecords = logs[logIndex].count
        // A log holding something other than the kept history (or another boot's) is emptied.
        if !sameBoot || (recent.isEmpty && (!logs[0].isEmpty || !logs[1].isEmpty)) { clearLogs() }
    }

    private func openLog(_ i: Int, truncate: Bool) {
        if logFD >= 0 { close(logFD) }
        logIndex = i
        logFD = FileIO.openFD(logPath(i), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | (truncate ? O_TRUNC : 0))
        logBytes = truncate ? 0 : (FileIO.fileSize(logPath(i)) ?? 0)
        if truncate { logRecords = 0 }
    }

    private func clearLogs() {
        FileIO.remove(logPath(1 - logIndex))
        openLog(logIndex, truncate: true)
    }

    /// Appends one operation to the log (switching files once this one holds the bound).
    private func log(_ seq: UInt64, _ epoch: UInt64, _ op: [UInt8]) {
        guard logFD >= 0, maxBytes > 0 else { return }
        // An operation larger than the whole history is not kept in memory either: the logs
        // start over after it (a replica behind it is copied whole).
        guard op.count <= maxBytes, op.count <= Int(UInt32.max) else {
            clearLogs()
            return
        }
        if logBytes >= maxBytes || logRecords >= ShardReplication.maxOps {
            openLog(1 - logIndex, truncate: true)
        }
        var w = ByteWriter(capacity: Self.recordHeader)
        w.u64(seq)
        w.u64(epoch)
        w.u32(UInt32(op.count))
        let crc = w.bytes.withUnsafeBytes { h in op.withUnsafeBytes { CRC32C.update(CRC32C.update(0, h), $0) } }
        w.u32(crc)
        // Header and body in one call, the body not copied. Unsynced, like the position: a lost
        // tail only costs a whole copy later.
        let header = w.bytes
        let written = header.withUnsafeBytes { h in
            op.withUnsafeBytes { b in
                var parts = [iovec(iov_base: UnsafeMutableRawPointer(mutating: h.baseAddress), iov_len: h.count),
                             iovec(iov_base: UnsafeMutableRawPointer(mutating: b.baseAddress), iov_len: b.count)]
                return writev(logFD, &parts, 2)
            }
        }
        if written == header.count + op.count {
            logBytes += written
            logRecords += 1
        } else {
            // A short or failed write leaves a record the next open drops, and everything after
            // it: start the logs over (the history in memory stands).
            clearLogs()
        }
    }

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
        trim()
        log(seq, epoch, op)
        persist()
    }

    /// Trimmed as it goes: a dropped operation's bytes are freed at once, and the array's
    /// dropped prefix is compacted once it is half the array, so memory stays within the byte
    /// cap whatever the write pattern.
    private func trim() {
        while head < recent.count {
            // Operations after a pinned position stay, up to the pinned bounds.
            let pin = pins.keys.min()
            let held = pin.map { recent[head].seq > $0 } ?? false
            let over = held
                ? recent.count - head > 4 * ShardReplication.maxOps || bytes > pinnedMaxBytes
                : recent.count - head > ShardReplication.maxOps || bytes > maxBytes
            guard over else { break }
            // A pin whose next operation goes can no longer serve its copy's catch-up.
            if held, let pin { pins[pin] = nil }
            bytes -= recent[head].bytes.count
            recent[head].bytes = []
            head += 1
        }
        if head > 64 && head * 2 > recent.count {
            recent.removeFirst(head)
            head = 0
        }
    }

    /// The epoch of operation `seq` if this peer still holds it (or it is the last one).
    package func epoch(of seq: UInt64) -> UInt64? {
        if seq == lastSeq { return lastEpoch }
        guard seq < lastSeq else { return nil }
        if head < recent.count, recent[head].seq <= seq { return recent[head + Int(seq - recent[head].seq)].epoch }
        // Held for a copy's catch-up: its operation may be gone (or never here), the ones after it are not.
        if let pin = pins[seq], head < recent.count, recent[head].seq == seq + 1 { return pin.epoch }
        return nil
    }

    /// Keeps the operations after (`seq`, `epoch`) (this peer's position when a copy of the
    /// shard starts) for the copy's catch-up, until `unpin`. Call with `lock` held.
    package func pin(_ seq: UInt64, epoch: UInt64) {
        pins[seq, default: (epoch, 0)].count += 1
    }

    /// Lets a `pin` go (a pin the history outgrew, or a reset, is gone already). Call with `lock` held.
    package func unpin(_ seq: UInt64) {
        guard let p = pins[seq] else { return }
        pins[seq] = p.count > 1 ? (p.epoch, p.count - 1) : nil
        if pins[seq] == nil { trim() }
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
        pins = [:]
        clearLogs()
        persist()
    }

    /// The operations after a replica's last (`epoch`, `seq`), or nil when this peer cannot tell
    /// they follow on from it (it does not hold that operation, or holds a different one there).
    /// - Parameter pinned: `seq` is the position a copy from here pinned (only then may it be 0:
    ///   the copy of a shard at no position; otherwise 0 is a replica that holds nothing, as while
    ///   a copy to it is under way).
    package func range(after seq: UInt64, epoch: UInt64, pinned: Bool = false) -> [(seq: UInt64, epoch: UInt64, bytes: [UInt8])]? {
        guard seq > 0 || (pinned && pins[0] != nil), seq <= lastSeq, self.epoch(of: seq) == epoch else { return nil }
        if seq == lastSeq { return [] }
        // epoch(of:) found seq, or a pin on it with the next operation kept.
        guard head < recent.count, recent[head].seq <= seq + 1 else { return nil }
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
