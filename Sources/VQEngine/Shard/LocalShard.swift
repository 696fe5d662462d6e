// A shard held on this machine: WAL -> update queue -> segments -> optimizer.
//
//   writer:    encode -> queue.push { wal.append } -> wal.sync (group commit) -> acknowledged
//   applier:   [prevent_unoptimized: wait while unindexed points >= threshold]
//              queue.pop -> wal.sync (never applies what is not durable) -> segments (write lock)
//              -> every flush interval or 16 MiB: segments flush, manifest, old WAL files removed
//   optimizer: seal the appendable segment at indexing_threshold, build segments
//              with HNSW graphs off the lock, swap them in under the write lock,
//              then flush (the manifest is the commit point) and drop the old ones
//   readers:   segments under the read lock
//
// The manifest (shard.json) is the commit point of a flush: it names the
// segments, how many rows of each are valid, and the last operation they
// contain. Opening maps the segments and replays the WAL after that operation.
//
//   LocalShard.swift            the pipeline, threads and waiting
//   LocalShard+Optimizer.swift  planning and running optimizations
//   SegmentHolder.swift         segments and the id map: apply, search, retrieve, swap
//   UpdateQueue.swift           the bounded queue (back pressure)
//   Operation.swift             what is logged, and its encoding
//   ShardTypes.swift            options, requests, results

import Foundation
import Synchronization

/// One shard's data, WAL, update queue, applier and optimizer threads.
package final class LocalShard: @unchecked Sendable {
    package let directory: String
    package let options: ShardOptions
    let wal: WAL
    let queue: UpdateQueue
    let lock = RWLock()
    /// Guarded by `lock`; rows mutated by the applier, segments swapped by the optimizer.
    let holder: SegmentHolder

    // Guarded by `flushMutex`.
    private var lastFlush = Date()
    private var bytesSinceFlush = 0

    /// Serialises flushes (applier, optimizer, close); signalled when the last file pin goes.
    private let flushMutex = NSCondition()
    /// Copies holding this shard's flushed files (`pinFiles`); guarded by `flushMutex`. While
    /// one does, no segment file is written or removed: the applier's and the optimizer's
    /// flushes are put off to the next one after it (`flush(orDefer:)`), others wait; writes
    /// are applied in memory and kept in the WAL.
    private var filePins = 0
    /// Directories of segments the optimizer replaced, removed once a committed manifest no
    /// longer names them (the next flush); guarded by `flushMutex`.
    private var retired: [String] = []
    /// Set while the disk refuses writes (see `writeProblem`).
    private let storageProblem = Mutex<String?>(nil)
    private let damaged = Mutex<String?>(nil)
    private let scrubbedFlag = Mutex(false)
    private static let scrubQueue = DispatchQueue(label: "vq-scrub", qos: .utility)

    /// - Throws: `.corrupt` naming the damaged file, when the scrub or `check` found one: reads
    /// and writes of this copy stop there rather than use bad bytes.
    package func checkIntact() throws {
        if let damage { throw VQError(.corrupt, "\(directory) is damaged: \(damage)", hint: "restore it from a replica or a backup") }
    }

    /// Whether the scrub after open has finished.
    package var scrubbed: Bool { scrubbedFlag.withLock { $0 } }
    private var flushedSegments: [SegmentInfo]
    /// The sequence number of the last committed flush (guarded by `flushMutex`).
    private var flushSeq: UInt64
    /// Tests: make the next flush stop after writing segments, before the manifest (a crash there).
    var failBeforeManifestForTesting = false
    /// Tests: while set, the applier takes nothing from the queue (writes are logged, not applied).
    let holdApplierForTesting = Atomic(false)

    // Guarded by `progress`.
    let progress = NSCondition()
    private var appliedOp: UInt64
    private var flushedOp: UInt64
    private var failure: VQError?
    var closing = false
    var stopped = false
    var indexedPointsTotal = 0
    var indexingSeconds = 0.0
    private let applierDone = DispatchSemaphore(value: 0)

    /// One optimization at a time (background thread or `optimize(force:)`).
    let optimizing = NSLock()
    /// Wakes the optimizer thread; guarded by `progress`.
    var optimizerWanted = false
    let optimizerDone = DispatchSemaphore(value: 0)

    /// Opens (or creates) the shard in `directory`, replaying its WAL, and starts its threads.
    /// - Parameter warn: receives one line per repaired problem.
    package init(directory: String, options: ShardOptions, warn: (String) -> Void) throws {
        self.directory = directory
        self.options = options
        queue = UpdateQueue(capacity: options.updateQueueSize, byteCapacity: options.updateQueueBytes)
        let segmentsDir = DataDirectory.segmentsDir(shardDir: directory)
        try FileIO.makeDirectories(segmentsDir)
        let manifestPath = DataDirectory.manifest(shardDir: directory)
        var infos: [SegmentInfo] = []
        var flushed: UInt64 = 0
        var nextSegmentId: UInt64 = 1
        var flushSeq: UInt64 = 0
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
            flushSeq = UInt64(max(0, m["flush_seq"]?.intValue ?? 0))
            for entry in list { infos.append(try SegmentInfo(json: entry, path: manifestPath)) }
        }
        // Segment directories the manifest does not name were started after the last flush
        // (the WAL redoes them) or replaced by an optimization that committed: both go.
        let known = Set(infos.map { String($0.id) })
        for name in FileIO.list(segmentsDir) where !known.contains(name) {
            try FileIO.removeTree(segmentsDir + "/" + name)
        }
        let holder = try SegmentHolder(shardDir: directory, options: options, infos: infos, nextSegmentId: nextSegmentId,
                                       committedFlush: flushSeq)
        var applied = flushed
        wal = try WAL(directory: DataDirectory.walDir(shardDir: directory), nextOpAtLeast: flushed + 1, replayFrom: flushed + 1,
                      fileLimit: options.walFileLimit, acceptGap: ProcessInfo.processInfo.environment["VQ_ACCEPT_WAL_GAP"] == "1",
                      warn: warn) { (op, body) in
            // A record that is intact (its checksum holds) but cannot be applied was written by an
            // older vq that did not check peers' operations: say so loudly and serve the rest,
            // rather than refuse the whole shard.
            do {
                try holder.apply(op, try Operation.decode(body))
            } catch let e as VQError where e.kind == .corrupt || e.kind == .invalidInput {
                warn("error: \(directory): operation \(op) in the WAL cannot be applied and was skipped: \(e.message)")
            }
            applied = op
        }
        self.holder = holder
        for case let seg? in holder.slots {
            if let problem = seg.graphProblem {
                warn("segment \(seg.id) of \(directory): \(problem); searched exactly until the optimizer builds its graph again")
            }
        }
        self.flushedSegments = infos
        self.flushSeq = flushSeq
        self.flushedOp = flushed
        self.appliedOp = applied
        let applier = Thread { [self] in runApplier() }
        applier.name = "vq-applier"
        applier.start()
        if options.backgroundOptimizer {
            let optimizer = Thread { [self] in runOptimizer() }
            optimizer.name = "vq-optimizer"
            optimizer.start()
        } else {
            optimizerDone.signal()
        }
        // The scrub: every segment's files against their checksums, once, in the background (an
        // open maps files and reads nothing; a million points must not wait for this). Files
        // that change are also checked chunk by chunk before a flush replaces their bytes.
        let opened = lock.read { holder.segments.filter { $0.rowCount > 0 } }
        if opened.isEmpty {
            scrubbedFlag.withLock { $0 = true }
        } else {
            // One scrub at a time for the whole process: a server opening many collections reads
            // their files one after another, not all at once.
            LocalShard.scrubQueue.async { [self] in
                defer { scrubbedFlag.withLock { $0 = true } }
                for seg in opened {
                    if withProgress({ $0.closing }) { return }
                    if let problem = LocalShard.verify(seg) { damaged.withLock { $0 = $0 ?? problem } }
                }
            }
        }
    }

    /// A segment's damage, if any: every file against its block checksums (and, sealed before
    /// those existed, against `checksums.json`).
    private static func verify(_ seg: Segment) -> String? {
        seg.verifyBlocks() ?? (seg.appendable ? nil : seg.verifyChecksums())
    }

    /// A damaged segment file found by the scrub (or `check`): the shard answers with this error
    /// instead of reading it, and refuses writes, until the damage is repaired.
    package var damage: String? { damaged.withLock { $0 } }

    /// Verifies every segment's checksums now (`vq check`).
    /// - Returns: one line per damaged segment.
    package func check() -> [String] {
        let problems = lock.read { holder.segments }.compactMap { LocalShard.verify($0) }
        if let first = problems.first { damaged.withLock { $0 = $0 ?? first } }
        return problems
    }

    // MARK: applying

    /// prevent_unoptimized: whether the applier must wait for the optimizer before taking more.
    private var mustWaitForIndexing: Bool {
        guard options.preventUnoptimized, options.indexingEnabled else { return false }
        return lock.read { holder.unindexedPoints } >= options.indexingThresholdRows
    }

    private func runApplier() {
        defer { applierDone.signal() }
        while true {
            // prevent_unoptimized: apply no faster than the optimizer indexes. The queue absorbs
            // the burst; when it is full, back pressure reaches writers.
            while mustWaitForIndexing && !withProgress({ $0.closing }) {
                wakeOptimizer()
                progress.lock()
                if !closing { _ = progress.wait(until: Date().addingTimeInterval(0.05)) }
                progress.unlock()
            }
            let deadline = flushMutex.withLock { lastFlush }.addingTimeInterval(options.flushInterval)
            guard let batch = queue.pop(max: options.preventUnoptimized ? 1 : 64, deadline: deadline) else { return }
            while holdApplierForTesting.load(ordering: .relaxed) && !withProgress({ $0.closing }) { Thread.sleep(forTimeInterval: 0.001) }
            do {
                if let last = batch.last {
                    try syncRetrying(upTo: last.op)
                    for entry in batch {
                        try lock.write { try holder.apply(entry.op, entry.operation) }
                        switch entry.operation {
                        case .upsert(let b), .updateVectors(let b): flushMutex.withLock { bytesSinceFlush += b.floatCount * 4 }
                        default: break
                        }
                        progress.lock()
                        appliedOp = entry.op
                        progress.broadcast()
                        progress.unlock()
                    }
                    wakeOptimizer()
                }
                if Date() >= deadline || flushMutex.withLock({ bytesSinceFlush }) >= options.flushBytes {
                    do { try flush(orDefer: true) } catch let e as VQError where e.kind == .insufficientStorage {
                        // A full disk: what is applied stays in the WAL; the flush is tried again.
                        flushMutex.withLock { lastFlush = Date() }
                        storageProblem.withLock { $0 = e.message }
                    }
                }
            } catch {
                progress.lock()
                failure = VQError.wrap(error)
                progress.broadcast()
                progress.unlock()
                // Stop applying: what is logged stays in the WAL for the next open. Writers
                // waiting for room must not wait forever: closing the queue fails them.
                queue.close()
                return
            }
        }
    }

    /// Makes the WAL durable up to `op`, trying again while it cannot write (a full disk): the
    /// operations wait in order, writers are refused meanwhile, and nothing needs a restart.
    private func syncRetrying(upTo op: UInt64) throws {
        while true {
            do {
                try wal.sync(upTo: op)
                storageProblem.withLock { $0 = nil }
                return
            } catch let e as VQError where e.kind == .insufficientStorage || e.kind == .io {
                storageProblem.withLock { $0 = e.message }
                if withProgress({ $0.closing }) { throw e }
                Thread.sleep(forTimeInterval: 0.2)
            }
        }
    }

    /// Why this shard cannot write now (a full disk), nil when it can: `/readyz` says so.
    package var writeProblem: String? { damage ?? storageProblem.withLock { $0 } }

    func flushForTesting() throws { try flush() }

    /// Writes segments and the manifest, then drops WAL files the segments now cover.
    ///
    /// Holds the read lock throughout, so the applier cannot change rows mid-flush
    /// and the optimizer cannot swap segments; searches go on.
    /// - Parameter orDefer: while a copy pins the files, leave it to the next flush (the
    ///   applier's by time or bytes, the optimizer's after a swap); otherwise wait for the pins.
    func flush(orDefer: Bool = false) throws {
        do { try flushSegments(orDefer: orDefer) } catch let e as VQError where e.kind == .corrupt {
            // Bytes a flush was about to replace were damaged: this copy stops here (see `damage`).
            damaged.withLock { $0 = $0 ?? e.message }
            throw e
        }
    }

    private func flushSegments(orDefer: Bool) throws {
        flushMutex.lock()
        defer { flushMutex.unlock() }
        if orDefer && filePins > 0 {
            lastFlush = Date()
            return
        }
        waitForPins()
        let flushed = try lock.read { try flushHeld() }
        guard let flushed else { return }
        withProgress { $0.flushedOp = flushed }
        wal.removeFlushed(upTo: flushed)
    }

    /// Waits until no copy holds the files (`pinFiles`); the caller holds `flushMutex` (and not `lock`).
    private func waitForPins() {
        while filePins > 0 { flushMutex.wait() }
    }

    /// Waits until no copy holds the files (`pinFiles`).
    package func waitUntilUnpinned() {
        flushMutex.lock()
        waitForPins()
        flushMutex.unlock()
    }

    /// The optimizer's swap is in memory: flushes it (or, while a copy pins the files, leaves
    /// it to the next flush), and removes the replaced segments' directories once a committed
    /// manifest no longer names them.
    func commitSwap(retiring directories: [String]) throws {
        flushMutex.withLock { retired += directories }
        try flush(orDefer: true)
    }

    /// Writes what changed and commits a manifest, then removes retired segment directories;
    /// the caller holds `flushMutex` (no pin is held: `waitForPins`) and the read lock.
    /// - Returns: the operation the new manifest covers, nil when nothing had changed.
    private func flushHeld() throws -> UInt64? {
        let flushed = try flushChanges()
        // The committed manifest (this one, or the last when nothing changed) names none of them.
        for dir in retired { try? FileIO.removeTree(dir) }
        retired = []
        return flushed
    }

    private func flushChanges() throws -> UInt64? {
        lastFlush = Date()
        bytesSinceFlush = 0
        let (applied, previous) = withProgress { ($0.appliedOp, $0.flushedOp) }
        let infos = holder.infos
        let indexFiles = holder.segments.filter(\.needsFieldIndexFile)
        guard applied != previous || infos != flushedSegments || !indexFiles.isEmpty else { return nil }
        let seq = flushSeq + 1
        for seg in holder.segments {
            try seg.flush(sequence: seq)
        }
        // Sealed segments' payload indexes, so the next open reads them instead of every payload
        // (derived data: one that cannot be written now is tried again at the next flush).
        for seg in indexFiles { try? seg.writeFieldIndexes() }
        if failBeforeManifestForTesting { throw VQError(.io, "simulated crash before the manifest (tests)") }
        // New segment directories must exist durably before the manifest names them.
        let known = Set(flushedSegments.map(\.id))
        let fresh = holder.segments.filter { !known.contains($0.id) }
        for seg in fresh { try FileIO.syncDirectory(seg.directory) }
        if !fresh.isEmpty { try FileIO.syncDirectory(DataDirectory.segmentsDir(shardDir: directory)) }
        try ChecksummedJSON.write(DataDirectory.manifest(shardDir: directory), manifestJSON(op: applied, sequence: seq, infos))
        // Committed: the overwrites of this flush stand.
        for seg in holder.segments { seg.dropUndo() }
        flushSeq = seq
        flushedSegments = infos
        return applied
    }

    /// The manifest (shard.json) of a flush: the segments, the last operation they hold.
    private func manifestJSON(op: UInt64, sequence: UInt64, _ infos: [SegmentInfo]) -> JSON {
        .object([
            ("format", .string("vq-shard")), ("version", .int(1)),
            ("flushed_op", .int(Int64(op))), ("next_segment_id", .int(Int64(holder.nextSegmentId))),
            ("flush_seq", .int(Int64(sequence))), ("segments", .array(infos.map(\.json))),
        ])
    }

    /// Runs `body` over this shard flushed and held still, holding every write acknowledged
    /// before the call: the files of the segments the manifest names do not change until it
    /// returns (the applier and the optimizer's swaps wait; searches go on, and writes are
    /// still logged, queued and acknowledged, up to the queue's bound).
    ///
    /// - Parameter body: gets the manifest (the state at one operation) and the directory of
    ///   each segment it names.
    /// - Throws: `.corrupt` when this copy is damaged (a snapshot of it would spread the damage).
    package func withFlushedFiles<T>(_ body: (_ manifest: JSON, _ segmentDirs: [String]) throws -> T) throws -> T {
        try checkIntact()
        // Every write acknowledged before now (durable in the WAL) is in the files: wait until
        // it is applied (the queue drains at the applier's pace; under prevent_unoptimized, at
        // the indexing pace).
        try waitApplied(wal.durableOp)
        flushMutex.lock()
        defer { flushMutex.unlock() }
        waitForPins()
        let (result, flushed) = try lock.read { () -> (T, UInt64?) in
            let flushed = try flushHeld()
            let op = flushed ?? withProgress { $0.flushedOp }
            let manifest = manifestJSON(op: op, sequence: flushSeq, flushedSegments)
            let dirs = flushedSegments.map { DataDirectory.segmentDir(shardDir: directory, id: $0.id) }
            return (try body(manifest, dirs), flushed)
        }
        if let flushed {
            withProgress { $0.flushedOp = flushed }
            wal.removeFlushed(upTo: flushed)
        }
        return result
    }

    /// Flushes this shard and holds its segment files as they are now, open, until the pin is
    /// released: a copy reads them while writes go on (applied in memory and kept in the WAL;
    /// flushes wait meanwhile, so no file named changes or goes). Every write acknowledged
    /// before the call is in them.
    /// - Throws: `.corrupt` when this copy is damaged; `.io` when a file cannot be opened.
    /// - Returns: nil when another copy holds the files now (they are not flushed up to this
    ///   moment): `waitUntilUnpinned`, then try again.
    package func pinFiles() throws -> PinnedFiles? {
        try checkIntact()
        try waitApplied(wal.durableOp)
        flushMutex.lock()
        defer { flushMutex.unlock() }
        if filePins > 0 { return nil }
        let (pinned, flushed) = try lock.read { () -> (PinnedFiles, UInt64?) in
            let flushed = try flushHeld()
            let op = flushed ?? withProgress { $0.flushedOp }
            let manifest = manifestJSON(op: op, sequence: flushSeq, flushedSegments)
            var paths: [(name: String, path: String)] = []
            for info in flushedSegments {
                let dir = DataDirectory.segmentDir(shardDir: directory, id: info.id)
                // Undo and temporary files belong to a flush or write in progress (none now).
                for name in FileIO.list(dir).sorted() where !name.hasSuffix(".undo") && !name.hasSuffix(".tmp") {
                    paths.append(("segments/\(info.id)/\(name)", dir + "/" + name))
                }
            }
            let files = try PinnedFiles.open(paths)
            filePins += 1
            return (PinnedFiles(manifest: manifest, points: holder.locations.count, files: files) { [weak self] in
                guard let self else { return }
                flushMutex.lock()
                filePins -= 1
                flushMutex.broadcast()
                flushMutex.unlock()
            }, flushed)
        }
        if let flushed {
            withProgress { $0.flushedOp = flushed }
            wal.removeFlushed(upTo: flushed)
        }
        return pinned
    }

    /// Replaces this shard's points with another copy's segments (a shard transfer): `staged` is
    /// a shard directory (manifest and segment files, fsynced). The segments move into this
    /// shard under fresh ids (no manifest names them yet, so a crash removes them on open), are
    /// opened there and every block checked against its checksums, and only then does a manifest
    /// naming only them commit the change. Operation numbering then continues past both copies'
    /// (rows keep the other copy's versions; a later write must be newer). Waits for every
    /// accepted write and the optimizer; searches see the old points or the new ones, never a mix.
    /// The caller keeps writes away meanwhile (the shard's replication lock).
    /// - Returns: the points adopted.
    package func adopt(_ staged: String) throws -> Int {
        let manifestPath = DataDirectory.manifest(shardDir: staged)
        let m = try ChecksummedJSON.read(manifestPath)
        // Values from another peer: bounded before any arithmetic on them.
        let limit = Int64(1) << 60
        guard let op = m["flushed_op"]?.intValue, (0..<limit).contains(op), let list = m["segments"]?.arrayValue else {
            throw VQError.invalid("\(manifestPath) lacks flushed_op or segments")
        }
        let stagedSeq = UInt64(min(max(0, m["flush_seq"]?.intValue ?? 0), limit))
        let infos = try list.map { try SegmentInfo(json: $0, path: manifestPath) }
        guard Set(infos.map(\.id)).count == infos.count else { throw VQError.invalid("\(manifestPath) names a segment twice") }
        // Every accepted write applied before the optimizer is held (under prevent_unoptimized
        // the applier waits for the optimizer).
        try waitApplied(lastOp)
        optimizing.lock()
        defer { optimizing.unlock() }
        let ids = lock.write { infos.map { _ in holder.takeSegmentId() } }
        var adopted: [Segment] = []
        do {
            for (info, newID) in zip(infos, ids) {
                var moved = info
                moved.id = newID
                let target = DataDirectory.segmentDir(shardDir: directory, id: newID)
                try FileIO.move(DataDirectory.segmentDir(shardDir: staged, id: info.id), to: target)
                let seg = try Segment(directory: target, info: moved, vectors: options.vectors, graphs: options.graphParams.map { $0.m > 0 },
                                      capacity: moved.appendable ? options.segmentCapacity : moved.rows, committedFlush: stagedSeq,
                                      quantization: options.quantization)
                if let problem = LocalShard.verify(seg) { throw VQError.invalid("segment \(info.id) of the copy is damaged: \(problem)") }
                adopted.append(seg)
            }
        } catch {
            for id in ids { try? FileIO.removeTree(DataDirectory.segmentDir(shardDir: directory, id: id)) }
            throw error
        }
        flushMutex.lock()
        defer { flushMutex.unlock() }
        waitForPins()
        // Past this point a failure leaves memory and disk apart: this copy stops serving
        // (`damage`) until a restart opens the last committed manifest.
        func halt(_ e: any Error) -> any Error {
            damaged.withLock { $0 = $0 ?? "adopting another copy's segments failed midway (\(e)); restart to open the last committed state" }
            return e
        }
        let (after, replaced, points) = try lock.write { () -> (UInt64, [Segment], Int) in
            let applied = withProgress { $0.appliedOp }
            guard applied == wal.nextOp - 1 else {
                for id in ids { try? FileIO.removeTree(DataDirectory.segmentDir(shardDir: directory, id: id)) }
                throw VQError(.conflict, "\(directory): writes arrived while adopting another copy's segments")
            }
            let after = max(applied, UInt64(op))
            let replaced: [Segment]
            do { replaced = try holder.replaceAll(with: adopted) } catch {
                for id in ids { try? FileIO.removeTree(DataDirectory.segmentDir(shardDir: directory, id: id)) }
                throw error
            }
            withProgress { $0.appliedOp = after }
            // Checksum files of the copy carry its flush numbers: this shard's go on above them.
            flushSeq = max(flushSeq, stagedSeq)
            do {
                // The commit point.
                guard try flushHeld() != nil else { throw VQError(.io, "\(directory): the adopted segments were not committed") }
            } catch { throw halt(error) }
            return (after, replaced, holder.locations.count)
        }
        withProgress { $0.flushedOp = after }
        do { try wal.restart(after: after) } catch { throw halt(error) }
        for seg in replaced { try? FileIO.removeTree(seg.directory) }
        // A fresh copy: damage found in the old segments (a scrub) no longer applies.
        damaged.withLock { $0 = nil }
        storageProblem.withLock { $0 = nil }
        withProgress { $0.progress.broadcast() }
        return points
    }

    func withProgress<T>(_ body: (LocalShard) -> T) -> T {
        progress.lock()
        defer { progress.unlock() }
        return body(self)
    }

    // MARK: writing

    /// Logs `operation` and queues it for applying; waits while the queue is full.
    ///
    /// The operation is not durable until `waitDurable` returns.
    /// - Returns: its operation number.
    /// - Throws: `.rateLimited` if the queue stayed full until `deadline`; nothing was logged then.
    package func submit(_ operation: Operation, deadline: Date? = nil) throws -> UInt64 {
        if let failure = withProgress({ $0.failure }) { throw failure }
        try checkIntact()
        // Nothing is logged that the applier would refuse (callers check the rest: the API as it
        // parses, peers' operations with `Operation.validate`).
        switch operation {
        case .upsert(let batch), .updateVectors(let batch):
            guard batch.dims == options.vectors.dims, batch.dims.indices.allSatisfy({ batch.vectors[$0].count == batch.count * batch.dims[$0] }),
                  batch.sparse.count == options.vectors.sparse.count, batch.sparse.allSatisfy({ $0.count == batch.count }),
                  batch.multiDims == options.vectors.multi.map(\.dim), batch.multi.allSatisfy({ $0.count == batch.count }),
                  zip(batch.multi, batch.multiDims).allSatisfy({ column, dim in
                      column.allSatisfy { $0.map { !$0.isEmpty && $0.count % dim == 0 && $0.count / dim <= MultiStore.maxVectors } ?? true }
                  }) else {
                throw VQError.invalid("the operation has vectors of \(batch.dims) dimensions and \(batch.sparse.count) sparse ones; "
                                      + "the shard expects \(options.vectors.dims) and \(options.vectors.sparse.count)")
            }
        case .deleteVectors(_, let vectors):
            let all = options.vectors.count + options.vectors.sparse.count + options.vectors.multi.count
            guard options.vectors.named, vectors.allSatisfy({ (0..<all).contains($0) }) else {
                throw VQError.invalid("the operation deletes vectors \(vectors); the shard has \(options.vectors.count) named vectors")
            }
        default: break
        }
        let op = try queue.push(deadline: deadline, size: operation.encodedSize) { () -> UpdateQueue.Entry in
            let op = try wal.append { operation.encode(into: &$0) }
            return UpdateQueue.Entry(op: op, operation: operation)
        }
        guard let op else {
            if let failure = withProgress({ $0.failure }) { throw failure }
            throw VQError(.rateLimited, "the update queue is full (\(queue.capacity) operations or \(queue.byteCapacity) bytes) and stayed full; "
                          + "the write was not accepted", hint: "retry later, or raise update_queue_size / update_queue_bytes")
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

    /// Waits until operation `op` is applied, or until `deadline`. - Returns: whether it is.
    package func waitApplied(_ op: UInt64, until deadline: Date) throws -> Bool {
        progress.lock()
        defer { progress.unlock() }
        while appliedOp < op {
            if let failure { throw failure }
            if !progress.wait(until: deadline) { return appliedOp >= op }
        }
        return true
    }

    /// The last operation number handed out.
    package var lastOp: UInt64 { wal.nextOp - 1 }

    // MARK: reading

    /// Live points with sparse vector `store`, and per index of `terms` how many hold it.
    package func sparseStats(store: Int, terms: [UInt32]) -> (points: Int, df: [Int]) {
        precondition(options.vectors.sparse.indices.contains(store), "sparse vector checked by the caller")
        return lock.read { holder.sparseStats(store: store, terms: terms) }
    }

    /// Top-`k` over the segments; with `indexedOnly`, unindexed segments too big for a full scan are left out.
    /// - Parameter query: `dim` floats, already normalised for cosine.
    /// - Returns: the hits and how many live points were skipped.

    package func search(_ query: UnsafeBufferPointer<Float>, _ request: ShardSearch) -> (hits: [ScoredPoint], skipped: Int) {
        var params = SegmentSearch(k: request.k, ef: request.ef, exact: request.exact, fullScanRows: options.fullScanRows,
                                   vector: request.vector)
        params.quantization = request.quantization
        let fullScanRows = options.fullScanRows
        if let multi = request.multi {
            precondition(options.vectors.multi.indices.contains(request.vector), "searched vector checked by the caller")
            return lock.read {
                holder.searchMulti(multi, store: request.vector, k: request.k, ef: max(request.ef, request.k), exact: request.exact,
                                   withPayload: request.withPayload, filter: request.filter) { seg in
                    !request.indexedOnly || !seg.appendable || seg.liveCount < fullScanRows
                }
            }
        }
        if let sparse = request.sparse {
            precondition(options.vectors.sparse.indices.contains(request.vector), "searched vector checked by the caller")
            return lock.read {
                // A sealed segment has its postings: that is its index here.
                holder.searchSparse(sparse, store: request.vector, k: request.k, withPayload: request.withPayload, filter: request.filter) { seg in
                    !request.indexedOnly || !seg.appendable || seg.liveCount < fullScanRows
                }
            }
        }
        precondition(options.vectors.specs.indices.contains(request.vector), "searched vector checked by the caller")
        params.ef = max(params.ef, params.k)
        return lock.read {
            holder.search(query, params: params, withPayload: request.withPayload, filter: request.filter) { seg in
                !request.indexedOnly || seg.indexed || seg.liveCount < fullScanRows
            }
        }
    }

    /// The stored points among `ids` (missing ids are left out).
    package func retrieve(_ ids: [PointID], withVector: Bool, withPayload: Bool) -> [PointRecord] {
        lock.read { holder.retrieve(ids, withVector: withVector, withPayload: withPayload) }
    }

    /// Every live point passing `filter`.
    package func scan(filter: Filter?, withVector: Bool, withPayload: Bool) -> [PointRecord] {
        lock.read { holder.scan(filter: filter, withVector: withVector, withPayload: withPayload) }
    }

    package var pointCount: Int { lock.read { holder.locations.count } }

    /// How many live points pass `filter` (from the payload indexes where they answer).
    package func count(filter: Filter) -> Int { lock.read { holder.count(filter: filter) } }

    /// See `SegmentHolder.facet`.
    package func facet(key: String, filter: Filter?) -> [IndexKey: Int]? { lock.read { holder.facet(key: key, filter: filter) } }

    /// See `SegmentHolder.ordered`.
    package func ordered(key: String, filter: Filter?, descending: Bool, startFrom: Double?, limit: Int,
                         withVector: Bool, withPayload: Bool) -> [(value: Double, record: PointRecord)]? {
        lock.read {
            holder.ordered(key: key, filter: filter, descending: descending, startFrom: startFrom, limit: limit,
                           withVector: withVector, withPayload: withPayload)
        }
    }

    /// Indexes the payload fields of `schema` in every segment, dropping fields not in it.
    ///
    /// Sealed segments' new indexes are built first, outside the lock (their rows do not change;
    /// searches and writes go on), then swapped in under the write lock with what is left (the
    /// appendable segment, segments the optimizer made meanwhile).
    package func setPayloadSchema(_ schema: PayloadSchema) {
        let (todo, old) = lock.read { () -> ([(Segment, [(name: String, schema: PayloadFieldSchema)])], PayloadSchema) in
            let todo = holder.segments.filter { !$0.appendable }.map { seg in
                (seg, schema.fields.filter { seg.fieldIndexes[$0.name]?.schema != $0.schema })
            }
            return (todo, holder.schema)
        }
        guard old != schema else { return }
        let built = todo.map { seg, fields in (seg, seg.makeFieldIndexes(fields)) }
        lock.write {
            let live = Set(holder.segments.map(ObjectIdentifier.init))
            for (seg, indexes) in built where live.contains(ObjectIdentifier(seg)) { for index in indexes { seg.install(index) } }
            holder.setSchema(schema)
        }
    }

    /// About how many bytes the payload indexes of every segment hold.
    package var payloadIndexBytes: Int {
        lock.read { holder.segments.reduce(0) { $0 + $1.fieldIndexes.values.reduce(0) { $0 + $1.approximateBytes } } }
    }

    /// Per indexed field, how many live points have a value for it (`payload_schema`'s points).
    package func indexedPointCounts() -> [String: Int] {
        lock.read {
            var counts: [String: Int] = [:]
            for seg in holder.segments {
                for (name, index) in seg.fieldIndexes {
                    counts[name, default: 0] += index.pointCount(count: seg.rowCount, deleted: seg.deletedCount > 0 ? UnsafePointer(seg.deleted.base) : nil)
                }
            }
            return counts
        }
    }

    package var status: ShardStatus {
        let (points, segs, unindexed, indexedVectors) = lock.read {
            (holder.locations.count, holder.segments.map {
                SegmentStatus(id: $0.id, rows: $0.rowCount, livePoints: $0.liveCount, deleted: $0.deletedCount,
                              appendable: $0.appendable, indexed: $0.indexed, codeBytes: $0.stores.reduce(0) { $0 + ($1.codes?.byteCount ?? 0) })
            }, holder.unindexedPoints, holder.indexedVectors)
        }
        return withProgress { s in
            ShardStatus(points: points, segments: segs, queueDepth: queue.depth, appliedOp: s.appliedOp, flushedOp: s.flushedOp,
                        walFiles: wal.fileCount, unindexedPoints: unindexed, indexedPointsTotal: s.indexedPointsTotal,
                        indexingSeconds: s.indexingSeconds, indexedVectors: indexedVectors)
        }
    }

    // MARK: closing

    /// Stops the threads without a final flush, as a crash would leave the shard (tests only).
    func abandonForTesting() {
        withProgress {
            $0.stopped = true
            $0.closing = true
            $0.progress.broadcast()
        }
        queue.close()
        applierDone.wait()
        optimizerDone.wait()
    }

    /// Applies what is queued, stops the optimizer (an optimization in progress finishes), flushes.
    /// Later calls do nothing.
    package func close() throws {
        let already = withProgress { shard in
            let was = shard.stopped
            shard.stopped = true
            shard.closing = true
            shard.progress.broadcast()
            return was
        }
        guard !already else { return }
        queue.close()
        applierDone.wait()
        optimizerDone.wait()
        // A foreground optimize (vq optimize, POST /optimize) stops at its next check; wait for it.
        optimizing.lock()
        optimizing.unlock()
        if let failure = withProgress({ $0.failure }) { throw failure }
        try flush()
    }
}
