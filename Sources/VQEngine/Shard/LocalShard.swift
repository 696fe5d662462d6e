// A shard held on this machine: WAL -> update queue -> segments.
//
//   writer:   encode -> queue.push { wal.append } -> wal.sync (group commit) -> acknowledged
//   applier:  queue.pop -> wal.sync (never applies what is not durable) -> segments (write lock)
//             -> every flush interval: segments flush, manifest, old WAL files removed
//   readers:  segments under the read lock
//
// The manifest (shard.json) is the commit point of a flush: it names the
// segments, how many rows of each are valid, and the last operation they
// contain. Opening maps the segments and replays the WAL after that operation.
//
//   LocalShard.swift      the pipeline, threads and waiting
//   SegmentHolder.swift   segments and the id map: apply, search, retrieve
//   UpdateQueue.swift     the bounded queue (back pressure)
//   Operation.swift       what is logged, and its encoding

import Foundation

/// Tunables of one shard, from the collection config.
package struct ShardOptions: Sendable {
    package var dim: Int
    package var distance: Distance
    package var updateQueueSize: Int = 1_000_000
    /// Rows an appendable segment takes before a new one starts.
    package var segmentCapacity: Int = 1 << 20
    package var flushInterval: TimeInterval = 5
    /// Applied vector bytes after which the applier flushes early, so a bulk load
    /// writes segments while it ingests and the WAL to replay stays short.
    package var flushBytes: Int = 16 << 20
    package var walFileLimit: Int = 32 << 20

    package init(dim: Int, distance: Distance) {
        self.dim = dim
        self.distance = distance
    }
}

/// A search hit, with the score as Qdrant reports it.
package struct ScoredPoint: Sendable {
    package var id: PointID
    package var version: UInt64
    package var score: Float
    /// The internal score (higher is better), for merging across shards.
    package var rank: Float
    package var payload: JSON?
}

/// A stored point, as `retrieve` returns it.
package struct PointRecord: Sendable {
    package var id: PointID
    package var version: UInt64
    package var vector: [Float]
    package var payload: JSON?
}

/// Counts for `vq info` and metrics.
package struct ShardStatus: Sendable {
    package var points: Int
    package var segments: [SegmentStatus]
    package var queueDepth: Int
    package var appliedOp: UInt64
    package var flushedOp: UInt64
    package var walFiles: Int
    package var unindexedPoints: Int
}

package struct SegmentStatus: Sendable {
    package var id: UInt64
    package var rows: Int
    package var livePoints: Int
    package var deleted: Int
    package var appendable: Bool
    package var indexed: Bool
}

/// One shard's data, WAL, update queue and applier thread.
package final class LocalShard: @unchecked Sendable {
    package let directory: String
    package let options: ShardOptions
    private let wal: WAL
    private let queue: UpdateQueue
    private let lock = RWLock()
    /// Guarded by `lock`; mutated by the applier only.
    private let holder: SegmentHolder

    // Applier thread only (and close, after the applier stopped).
    private var flushedSegments: [SegmentInfo]
    private var lastFlush = Date()
    private var bytesSinceFlush = 0

    // Guarded by `progress`.
    private let progress = NSCondition()
    private var appliedOp: UInt64
    private var flushedOp: UInt64
    private var failure: VQError?
    private var stopped = false
    private let applierDone = DispatchSemaphore(value: 0)

    /// Opens (or creates) the shard in `directory`, replaying its WAL, and starts the applier.
    /// - Parameter warn: receives one line per repaired problem.
    package init(directory: String, options: ShardOptions, warn: (String) -> Void) throws {
        self.directory = directory
        self.options = options
        queue = UpdateQueue(capacity: options.updateQueueSize)
        let segmentsDir = DataDirectory.segmentsDir(shardDir: directory)
        try FileIO.makeDirectories(segmentsDir)
        let manifestPath = DataDirectory.manifest(shardDir: directory)
        var infos: [SegmentInfo] = []
        var flushed: UInt64 = 0
        var nextSegmentId: UInt64 = 1
        if FileIO.exists(manifestPath) {
            let m = try ChecksummedJSON.read(manifestPath)
            guard m["format"]?.stringValue == "vq-shard", let version = m["version"]?.intValue else {
                throw VQError(.corrupt, "\(manifestPath) is not a vq shard manifest")
            }
            guard version == 1 else { throw VQError(.corrupt, "\(manifestPath) has format version \(version); this vq reads version 1") }
            guard let op = m["flushed_op"]?.intValue, let next = m["next_segment_id"]?.intValue, let list = m["segments"]?.arrayValue,
                  op >= 0, next >= 1 else {
                throw VQError(.corrupt, "\(manifestPath) lacks flushed_op, next_segment_id or segments")
            }
            flushed = UInt64(op)
            nextSegmentId = UInt64(next)
            for entry in list { infos.append(try SegmentInfo(json: entry, path: manifestPath)) }
        }
        // Segment directories the manifest does not name were started after the last flush; the WAL redoes them.
        let known = Set(infos.map { String($0.id) })
        for name in FileIO.list(segmentsDir) where !known.contains(name) {
            try FileIO.removeTree(segmentsDir + "/" + name)
        }
        let holder = try SegmentHolder(shardDir: directory, options: options, infos: infos, nextSegmentId: nextSegmentId)
        var applied = flushed
        wal = try WAL(directory: DataDirectory.walDir(shardDir: directory), nextOpAtLeast: flushed + 1, replayFrom: flushed + 1,
                      fileLimit: options.walFileLimit, warn: warn) { (op, body) in
            try holder.apply(op, try Operation.decode(body))
            applied = op
        }
        self.holder = holder
        self.flushedSegments = infos
        self.flushedOp = flushed
        self.appliedOp = applied
        let thread = Thread { [self] in runApplier() }
        thread.name = "vq-applier"
        thread.start()
    }

    // MARK: applying

    private func runApplier() {
        defer { applierDone.signal() }
        while true {
            let deadline = lastFlush.addingTimeInterval(options.flushInterval)
            guard let batch = queue.pop(max: 64, deadline: deadline) else { return }
            do {
                if let last = batch.last {
                    try wal.sync(upTo: last.op)
                    for entry in batch {
                        try lock.write { try holder.apply(entry.op, entry.operation) }
                        if case .upsert(let b) = entry.operation { bytesSinceFlush += b.vectors.count * 4 }
                        progress.lock()
                        appliedOp = entry.op
                        progress.broadcast()
                        progress.unlock()
                    }
                }
                if Date() >= deadline || bytesSinceFlush >= options.flushBytes { try flush() }
            } catch {
                progress.lock()
                failure = VQError.wrap(error)
                progress.broadcast()
                progress.unlock()
                // Stop applying: what is logged stays in the WAL for the next open.
                return
            }
        }
    }

    /// Writes segments and the manifest, then drops WAL files the segments now cover.
    /// Runs on the applier thread, or after it stopped.
    private func flush() throws {
        lastFlush = Date()
        bytesSinceFlush = 0
        let (segs, infos, nextId) = lock.read { (holder.segments, holder.infos, holder.nextSegmentId) }
        let (applied, flushed) = withProgress { ($0.appliedOp, $0.flushedOp) }
        guard applied != flushed || infos != flushedSegments else { return }
        for seg in segs { try seg.flush() }
        let manifest: JSON = .object([
            ("format", .string("vq-shard")), ("version", .int(1)),
            ("flushed_op", .int(Int64(applied))), ("next_segment_id", .int(Int64(nextId))),
            ("segments", .array(infos.map(\.json))),
        ])
        try ChecksummedJSON.write(DataDirectory.manifest(shardDir: directory), manifest)
        flushedSegments = infos
        withProgress { $0.flushedOp = applied }
        wal.removeFlushed(upTo: applied)
    }

    private func withProgress<T>(_ body: (LocalShard) -> T) -> T {
        progress.lock()
        defer { progress.unlock() }
        return body(self)
    }

    // MARK: writing

    /// Logs `operation` and queues it for applying; waits while the queue is full.
    ///
    /// The operation is not durable until `waitDurable` returns.
    /// - Returns: its operation number.
    /// - Throws: `.overloaded` if the queue stayed full until `deadline`; nothing was logged then.
    package func submit(_ operation: Operation, deadline: Date? = nil) throws -> UInt64 {
        if let failure = withProgress({ $0.failure }) { throw failure }
        let op = try queue.push(deadline: deadline) { () -> UpdateQueue.Entry in
            let op = try wal.append { operation.encode(into: &$0) }
            return UpdateQueue.Entry(op: op, operation: operation)
        }
        guard let op else {
            throw VQError(.overloaded, "the update queue is full (\(queue.capacity) operations) and stayed full; the write was not accepted",
                          hint: "retry later, or raise update_queue_size")
        }
        return op
    }

    /// Returns once operation `op` is durable in the WAL (group commit).
    package func waitDurable(_ op: UInt64) throws {
        try wal.sync(upTo: op)
    }

    /// Returns once operation `op` is applied and searchable.
    package func waitApplied(_ op: UInt64) throws {
        progress.lock()
        defer { progress.unlock() }
        while appliedOp < op {
            if let failure { throw failure }
            progress.wait()
        }
    }

    // MARK: reading

    /// Exact top-`limit` search over every segment.
    /// - Parameter query: `dim` floats, already normalised for cosine.
    package func search(_ query: UnsafeBufferPointer<Float>, limit: Int, withPayload: Bool) -> [ScoredPoint] {
        lock.read { holder.search(query, limit: limit, withPayload: withPayload) }
    }

    /// The stored points among `ids` (missing ids are left out).
    package func retrieve(_ ids: [PointID], withVector: Bool, withPayload: Bool) -> [PointRecord] {
        lock.read { holder.retrieve(ids, withVector: withVector, withPayload: withPayload) }
    }

    package var pointCount: Int { lock.read { holder.locations.count } }

    package var status: ShardStatus {
        let (points, segs) = lock.read {
            (holder.locations.count, holder.segments.map {
                SegmentStatus(id: $0.id, rows: $0.rowCount, livePoints: $0.liveCount, deleted: $0.deletedCount,
                              appendable: $0.appendable, indexed: false)
            })
        }
        let (applied, flushed) = withProgress { ($0.appliedOp, $0.flushedOp) }
        return ShardStatus(points: points, segments: segs, queueDepth: queue.depth, appliedOp: applied, flushedOp: flushed,
                           walFiles: wal.fileCount, unindexedPoints: segs.filter { !$0.indexed }.reduce(0) { $0 + $1.livePoints })
    }

    // MARK: closing

    /// Stops the applier without a final flush, as a crash would leave the shard (tests only).
    func abandonForTesting() {
        withProgress { $0.stopped = true }
        queue.close()
        applierDone.wait()
    }

    /// Applies what is queued, flushes, and stops the applier. Later calls do nothing.
    package func close() throws {
        let already = withProgress { shard in
            let was = shard.stopped
            shard.stopped = true
            return was
        }
        guard !already else { return }
        queue.close()
        applierDone.wait()
        if let failure = withProgress({ $0.failure }) { throw failure }
        try flush()
    }
}
