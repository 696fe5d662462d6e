// The optimizer: seals, indexes, merges and vacuums segments while searches and writes go on.
//
// Every task but sealing is a rebuild: copy the live rows of some sealed
// segments into a new segment (off the lock; sealed rows never change, only
// their tombstones), build its HNSW graph, fsync it, then under the write lock
// carry over tombstones set meanwhile and point the ids at the new rows. The
// next manifest names the new segment instead of the old ones; until it is
// durable the old ones stay authoritative (a crash leaves the new directory an
// orphan, removed on open), after it the old directories are removed.

import Foundation

extension LocalShard {
    enum OptimizerTask {
        /// Seal the appendable segment; a fresh one takes writes.
        case seal
        /// Rebuild these slots into one segment, with a graph if `index`.
        case rebuild(slots: [Int], index: Bool)
        /// Build a graph for this sealed segment where it is (no tombstones to drop, nothing to merge).
        case indexInPlace(slot: Int)
    }

    func wakeOptimizer() {
        progress.lock()
        optimizerWanted = true
        progress.broadcast()
        progress.unlock()
    }

    /// The background optimizer thread: runs whatever the thresholds call for.
    func runOptimizer() {
        defer { optimizerDone.signal() }
        while true {
            progress.lock()
            if !optimizerWanted && !closing { _ = progress.wait(until: Date().addingTimeInterval(1)) }
            let stop = closing
            optimizerWanted = false
            progress.unlock()
            if stop { return }
            do {
                _ = try optimize(force: false)
            } catch let e as VQError where e.kind == .cancelled {
                return
            } catch {
                // Leave the segments as they are (the old ones stay authoritative) and retry later.
                progress.lock()
                _ = progress.wait(until: Date().addingTimeInterval(1))
                progress.unlock()
            }
        }
    }

    /// Runs optimizations until none is due.
    ///
    /// - Parameter force: seal the appendable segment even below the threshold, index every sealed
    ///   segment, and merge down to `default_segment_number` (what `vq optimize` asks for).
    /// - Returns: what was done.
    package func optimize(force: Bool) throws -> OptimizeReport {
        optimizing.lock()
        defer { optimizing.unlock() }
        // A closed shard's files belong to whoever opens the directory next.
        if withProgress({ $0.stopped }) { throw VQError(.cancelled, "the shard is closed") }
        let start = Date()
        var report = OptimizeReport()
        report.segmentsBefore = lock.read { holder.segments.count }
        var sealed = false
        while true {
            if withProgress({ $0.closing }) { break }
            guard let task = plan(force: force, mayForceSeal: force && !sealed) else { break }
            report.tasks += 1
            switch task {
            case .seal:
                sealed = true
                try lock.write { _ = try holder.sealAppendable() }
            case .rebuild(let slots, let index):
                report.pointsIndexed += try rebuild(slots, index: index, foreground: force)
            case .indexInPlace(let slot):
                report.pointsIndexed += try indexInPlace(slot, foreground: force)
            }
        }
        if report.tasks > 0 { try flush(orDefer: true) }
        report.segmentsAfter = lock.read { holder.segments.count }
        report.seconds = Date().timeIntervalSince(start)
        return report
    }

    /// The next task, or nil when the shard is as the config wants it.
    func plan(force: Bool, mayForceSeal: Bool) -> OptimizerTask? {
        lock.read {
            let o = options
            let app = holder.appendable
            if o.indexingEnabled && app.liveCount >= o.indexingThresholdRows { return .seal }
            if mayForceSeal && app.rowCount > 0 { return .seal }
            let sealed = holder.slots.indices.filter { holder.slots[$0].map { !$0.appendable } ?? false }
            func seg(_ i: Int) -> Segment { holder.slots[i]! }
            let wantIndex = o.wantsGraphs && (o.indexingEnabled || force)
            // 1. Sealed segments without a graph: index them, merging small ones on the way.
            // (Without vectors that want graphs, a sealed segment is done: merging is step 2's.)
            let unindexed = o.wantsGraphs ? sealed.filter { !seg($0).indexed }.sorted { seg($0).liveCount < seg($1).liveCount } : []
            if !unindexed.isEmpty {
                var group: [Int] = []
                var rows = 0
                var entries = 0, floats = 0
                for s in unindexed where group.isEmpty || (rows + seg(s).liveCount <= o.segmentCapacity
                                                          && entries + seg(s).sparseEntries <= SparseStore.appendableCapacity
                                                          && floats + seg(s).multiFloats <= MultiStore.appendableCapacity) {
                    group.append(s)
                    rows += seg(s).liveCount
                    entries += seg(s).sparseEntries
                    floats += seg(s).multiFloats
                }
                // Indexed alone, these would add a segment past default_segment_number: merge them
                // into the largest indexed one instead, whose graph seeds the new one (their points
                // are inserted into it, not built twice).
                let indexed = sealed.filter { seg($0).indexed }
                if wantIndex && indexed.count + 1 > max(1, o.defaultSegmentNumber),
                   let big = indexed.max(by: { seg($0).liveCount < seg($1).liveCount }),
                   rows + seg(big).liveCount <= o.segmentCapacity, entries + seg(big).sparseEntries <= SparseStore.appendableCapacity,
                   floats + seg(big).multiFloats <= MultiStore.appendableCapacity {
                    return .rebuild(slots: group + [big], index: true)
                }
                if group.count == 1 && wantIndex && seg(group[0]).deletedCount == 0 { return .indexInPlace(slot: group[0]) }
                if wantIndex || group.count > 1 { return .rebuild(slots: group, index: wantIndex) }
            }
            // 2. Too many segments: merge the smallest into one.
            if sealed.count > max(1, o.defaultSegmentNumber) {
                let bySize = sealed.sorted { seg($0).liveCount < seg($1).liveCount }
                var group: [Int] = []
                var rows = 0
                var entries = 0, floats = 0
                for s in bySize.prefix(sealed.count - max(1, o.defaultSegmentNumber) + 1)
                    where rows + seg(s).liveCount <= o.segmentCapacity && entries + seg(s).sparseEntries <= SparseStore.appendableCapacity
                                                          && floats + seg(s).multiFloats <= MultiStore.appendableCapacity {
                    group.append(s)
                    rows += seg(s).liveCount
                    entries += seg(s).sparseEntries
                    floats += seg(s).multiFloats
                }
                if group.count > 1 { return .rebuild(slots: group, index: wantIndex || group.allSatisfy { seg($0).indexed }) }
            }
            // 3. Vacuum: segments whose tombstones pass deleted_threshold.
            for s in sealed {
                let x = seg(s)
                if x.deletedCount > 0 && x.deletedCount >= o.vacuumMinVectorNumber
                    && Double(x.deletedCount) > o.deletedThreshold * Double(x.rowCount) {
                    return .rebuild(slots: [s], index: x.indexed || wantIndex)
                }
            }
            return nil
        }
    }

    /// Copies the live rows of `slots` into a new segment (with a graph if `index`) and swaps it in.
    /// - Returns: the number of points indexed.
    private func rebuild(_ slots: [Int], index: Bool, foreground: Bool) throws -> Int {
        let started = Date()
        // The largest indexed source with few tombstones goes first: its graph seeds the new one
        // (its live rows keep their links; only the others are inserted).
        let seedSlot: Int? = index ? lock.read {
            slots.filter { s in
                let seg = holder.slots[s]!
                // Links to dropped rows are removed, not repaired: seed only from a segment with few.
                return seg.indexed && seg.liveCount > 0 && Double(seg.deletedCount) <= 0.02 * Double(seg.rowCount)
            }.max { holder.slots[$0]!.liveCount < holder.slots[$1]!.liveCount }
        } : nil
        let ordered = seedSlot.map { s in [s] + slots.filter { $0 != s } } ?? slots
        let (sources, rowMap, id, schema): ([Segment], [(slot: Int32, row: UInt32)], UInt64, PayloadSchema) = lock.write {
            var map: [(slot: Int32, row: UInt32)] = []
            for s in ordered {
                let seg = holder.slots[s]!
                for row in 0..<seg.rowCount where !seg.isDeleted(row) { map.append((Int32(s), UInt32(row))) }
            }
            return (ordered.map { holder.slots[$0]! }, map, holder.takeSegmentId(), holder.schema)
        }
        var seeds: [(graph: HNSWGraph, oldOf: [Int32])?] = []
        var seededRows = 0
        if let seedSlot {
            let source = sources[0]
            let oldOf = rowMap.prefix { Int($0.slot) == seedSlot }.map { Int32($0.row) }
            let params = options.graphParams
            // A graph of another m is not taken by the builder: no seed then.
            seeds = source.stores.enumerated().map { k, store in
                store.graph.flatMap { $0.m == max(2, params[k].m) ? ($0, oldOf) : nil }
            }
            if seeds.contains(where: { $0 != nil }) { seededRows = oldOf.count }
        }
        let directory = DataDirectory.segmentDir(shardDir: self.directory, id: id)
        do {
            let merged = try Segment(directory: directory, info: SegmentInfo(id: id, rows: 0, payloadBytes: 0, appendable: true),
                                     vectors: options.vectors, capacity: max(1, rowMap.count), quantization: options.quantization)
            let bySlot = Dictionary(uniqueKeysWithValues: zip(ordered, sources))
            for from in rowMap {
                let source = bySlot[Int(from.slot)]!
                let row = Int(from.row)
                let record = source.record(row)
                _ = try source.withVectors(row) {
                    try merged.append(id: record.id, version: record.version, vectors: $0, sparse: source.sparseVectors(row),
                                      multi: source.multiVectors(row), payload: source.payloadBytes(row))
                }
            }
            merged.seal()
            merged.applySchema(schema)
            if index && merged.rowCount > 0 {
                merged.attach(try merged.buildIndex(buildParams(foreground: foreground), seeds: seeds, shouldContinue: keepGoing(foreground)))
            }
            try merged.flush()
            lock.write {
                merged.applySchema(holder.schema)   // a payload index created meanwhile
                holder.replace(sources: slots, with: merged, rowMap: rowMap)
            }
        } catch {
            try? FileIO.removeTree(directory)
            throw error
        }
        // The manifest naming the new segment is the commit point; only then may the old files go.
        try commitSwap(retiring: sources.map(\.directory))
        let seconds = Date().timeIntervalSince(started)
        // Points that came with a seed graph were not indexed again.
        let inserted = rowMap.count - seededRows
        withProgress { s in
            if index {
                s.indexedPointsTotal += inserted
                s.indexingSeconds += seconds
            }
            s.progress.broadcast()
        }
        return index ? inserted : 0
    }

    /// Graph build parameters of each vector: `max_indexing_threads`, where 0 means every core
    /// for a foreground `vq optimize` (and in a CLI process that holds the directory alone) and
    /// all but one for a server's background optimizer, which leaves a core to searches (on 2
    /// cores that halved the p99 under a full-speed writer).
    func buildParams(foreground: Bool) -> [HNSWParams] {
        options.graphParams.map { spec in
            var p = spec
            if p.threads == 0 {
                let cores = ProcessInfo.processInfo.activeProcessorCount
                p.threads = foreground || options.backgroundUsesEveryCore ? cores : max(1, cores - 1)
            }
            return p
        }
    }

    /// Stop a graph build when the shard starts closing (close need not wait for a whole graph).
    func keepGoing(_ foreground: Bool) -> (@Sendable () -> Bool)? {
        { @Sendable [weak self] in !(self?.withProgress { $0.closing } ?? true) }
    }

    /// Builds the graph of one sealed segment in its own directory, then publishes it.
    ///
    /// The manifest still says "not indexed" until the flush after the attach, so a
    /// crash before it leaves the segment as it was (its stray graph file is rewritten later).
    /// - Returns: the number of points indexed.
    private func indexInPlace(_ slot: Int, foreground: Bool) throws -> Int {
        let started = Date()
        let seg = lock.read { holder.slots[slot]! }
        let graph = try seg.buildIndex(buildParams(foreground: foreground), shouldContinue: keepGoing(foreground))
        lock.write { seg.attach(graph) }
        try flush(orDefer: true)
        let seconds = Date().timeIntervalSince(started)
        withProgress { s in
            s.indexedPointsTotal += seg.rowCount
            s.indexingSeconds += seconds
            s.progress.broadcast()
        }
        return seg.rowCount
    }

    /// Applies everything submitted so far, then runs the optimizer until it is idle
    /// (what a server would have done by now; `vq upsert` waits for it before exiting).
    package func settle() throws -> OptimizeReport {
        try waitApplied(lastOp)
        return try optimize(force: false)
    }
}
