// The segments of one shard and the id -> (segment, row) map over them.
//
// Not synchronised: LocalShard holds it behind a readers-writer lock; the
// applier (or the opening thread, replaying the WAL) mutates rows, the
// optimizer swaps whole segments. Segments sit in slots that never move while
// they live, so a location (slot, row) stays valid across swaps of others.

/// A shard's segments, its appendable segment and the map from point id to row.
package final class SegmentHolder: @unchecked Sendable {
    struct Location {
        var slot: Int32
        var row: UInt32

        init(slot: Int32, row: UInt32) {
            self.slot = slot
            self.row = row
        }

        init(packed: UInt64) {
            slot = Int32(truncatingIfNeeded: packed >> 32)
            row = UInt32(truncatingIfNeeded: packed)
        }

        var packed: UInt64 { UInt64(UInt32(bitPattern: slot)) << 32 | UInt64(row) }
    }

    /// Point id -> location, packed.
    struct Locations {
        var tracker = IDTracker()
        var count: Int { tracker.count }

        subscript(id: PointID) -> Location? {
            get { tracker[id].map(Location.init(packed:)) }
            set { tracker[id] = newValue?.packed }
        }

        mutating func removeValue(forKey id: PointID) -> Location? {
            tracker.removeValue(forKey: id).map(Location.init(packed:))
        }
    }

    let shardDir: String
    let options: ShardOptions
    private(set) var slots: [Segment?] = []
    private(set) var locations = Locations()
    private(set) var appendableSlot = 0
    private(set) var nextSegmentId: UInt64
    /// The payload fields every segment indexes.
    private(set) var schema: PayloadSchema

    /// Opens the segments the manifest names, rebuilds the id map and the payload indexes.
    init(shardDir: String, options: ShardOptions, infos: [SegmentInfo], nextSegmentId: UInt64, committedFlush: UInt64 = 0) throws {
        self.shardDir = shardDir
        self.options = options
        self.nextSegmentId = nextSegmentId
        self.schema = options.payloadSchema
        for info in infos {
            slots.append(try Segment(directory: DataDirectory.segmentDir(shardDir: shardDir, id: info.id), info: info,
                                     vectors: options.vectors, graphs: options.graphParams.map { $0.m > 0 },
                                     capacity: info.appendable ? options.segmentCapacity : info.rows, committedFlush: committedFlush,
                                     quantization: options.quantization))
        }
        buildLocations()
        for seg in segments { seg.applySchema(schema) }
        if let i = slots.lastIndex(where: { $0!.appendable && !$0!.isFull }) {
            appendableSlot = i
        } else {
            try addAppendableSegment()
        }
    }

    /// The live segments, in slot order.
    var segments: [Segment] { slots.compactMap { $0 } }

    var appendable: Segment { slots[appendableSlot]! }

    /// Rebuilds the id map; where two live rows share an id (a flush cut short), the newer version wins.
    private func buildLocations() {
        locations = Locations(tracker: IDTracker(capacity: slots.reduce(0) { $0 + ($1?.liveCount ?? 0) }))
        for (s, seg) in slots.enumerated() {
            guard let seg else { continue }
            for row in 0..<seg.rowCount where !seg.isDeleted(row) {
                let rec = seg.record(row)
                let id = rec.id
                if let old = locations[id] {
                    let oldSeg = slots[Int(old.slot)]!
                    if oldSeg.record(Int(old.row)).version > rec.version {
                        seg.markDeleted(row)
                        continue
                    }
                    oldSeg.markDeleted(Int(old.row))
                }
                locations[id] = Location(slot: Int32(s), row: UInt32(row))
            }
        }
    }

    /// A new segment id (its directory name).
    func takeSegmentId() -> UInt64 {
        defer { nextSegmentId += 1 }
        return nextSegmentId
    }

    /// Puts `segment` in a free slot; returns the slot.
    private func place(_ segment: Segment) -> Int {
        if let free = slots.firstIndex(where: { $0 == nil }) {
            slots[free] = segment
            return free
        }
        slots.append(segment)
        return slots.count - 1
    }

    private func addAppendableSegment() throws {
        let id = takeSegmentId()
        let info = SegmentInfo(id: id, rows: 0, payloadBytes: 0, appendable: true)
        let seg = try Segment(directory: DataDirectory.segmentDir(shardDir: shardDir, id: id), info: info,
                              vectors: options.vectors, capacity: options.segmentCapacity, quantization: options.quantization)
        seg.applySchema(schema)
        appendableSlot = place(seg)
    }

    /// Indexes the fields of `new` in every segment (building new ones, dropping removed ones).
    /// - Complexity: a JSON parse of every live row's payload per new field.
    func setSchema(_ new: PayloadSchema) {
        schema = new
        for seg in segments { seg.applySchema(new) }
    }

    var infos: [SegmentInfo] { segments.map(\.info) }

    // MARK: applying

    /// Applies one logged operation.
    ///
    /// Idempotent in sequence: replaying operations that a cut-short flush
    /// already partly wrote ends in the same state.
    func apply(_ op: UInt64, _ operation: Operation) throws {
        switch operation {
        case .upsert(let batch), .updateVectors(let batch):
            guard batch.dims == options.vectors.dims, batch.sparse.count == options.vectors.sparse.count,
                  batch.multiDims == options.vectors.multi.map(\.dim) else {
                throw VQError(.corrupt, "operation \(op) has vectors of \(batch.dims) dimensions and \(batch.sparse.count) sparse ones; "
                              + "the shard expects \(options.vectors.dims) and \(options.vectors.sparse.count)")
            }
            // Vector updates keep each point's payload and the vectors they do not name, and skip
            // points that do not exist (any more).
            var update = false
            if case .updateVectors = operation { update = true }
            let stores = batch.dims.indices
            try withBuffers(batch.vectors) { columns in
                for i in 0..<batch.count {
                    var given: [UnsafeBufferPointer<Float>?] = stores.map { k in
                        batch.has(k, i) ? UnsafeBufferPointer(rebasing: columns[k][(i * batch.dims[k])..<((i + 1) * batch.dims[k])]) : nil
                    }
                    var sparse = batch.sparseOf(i)
                    var multi = batch.multiOf(i)
                    guard update else {
                        try upsert(batch.ids[i], given, sparse, multi, batch.payloads[i], op)
                        continue
                    }
                    guard let loc = locations[batch.ids[i]] else { continue }
                    let seg = slots[Int(loc.slot)]!
                    let row = Int(loc.row)
                    for k in stores where !batch.has(k, i) && !seg.stores[k].lacks(row) { given[k] = seg.stores[k].vector(row) }
                    for k in sparse.indices where sparse[k] == nil { sparse[k] = seg.sparseStores[k].vector(row) }
                    for k in multi.indices where multi[k] == nil { multi[k] = seg.multiStores[k].value(row) }
                    // The kept vectors are read from the segment the point may move out of: copy them first.
                    let kept = given.map { $0.map(Array.init) }
                    try withOptionalBuffers(kept) { try upsert(batch.ids[i], $0, sparse, multi, seg.payloadBytes(row), op) }
                }
            }
        case .deleteVectors(let ids, let vectors):
            let dense = options.vectors.count, sparseCount = options.vectors.sparse.count
            for id in ids {
                guard let loc = locations[id] else { continue }
                let seg = slots[Int(loc.slot)]!
                let row = Int(loc.row)
                func lacks(_ v: Int) -> Bool {
                    v < dense ? seg.stores[v].lacks(row)
                        : v < dense + sparseCount ? seg.sparseStores[v - dense].lacks(row) : seg.multiStores[v - dense - sparseCount].lacks(row)
                }
                // Nothing to remove: the point stays as it is (no move, no new version).
                if vectors.allSatisfy(lacks) { continue }
                let kept = seg.stores.indices.map { k in vectors.contains(k) || seg.stores[k].lacks(row) ? nil : Array(seg.stores[k].vector(row)) }
                let sparse = seg.sparseStores.indices.map { k in vectors.contains(dense + k) ? nil : seg.sparseStores[k].vector(row) }
                let multi = seg.multiStores.indices.map { k in vectors.contains(dense + sparseCount + k) ? nil : seg.multiStores[k].value(row) }
                try withOptionalBuffers(kept) { try upsert(id, $0, sparse, multi, seg.payloadBytes(row), op) }
            }
        case .delete(let ids):
            for id in ids {
                if let loc = locations.removeValue(forKey: id) {
                    slots[Int(loc.slot)]!.markDeleted(Int(loc.row))
                }
            }
        case .setPayload(let ids, let payload, let overwrite):
            let patch = (try? JSONParser.parse(payload))?.objectValue ?? []
            for id in ids {
                try updatePayload(id, op) { old in
                    if overwrite { return .object(patch) }
                    var members = old?.objectValue ?? []
                    for (k, v) in patch {
                        if let i = members.firstIndex(where: { $0.0 == k }) { members[i].1 = v } else { members.append((k, v)) }
                    }
                    return .object(members)
                }
            }
        case .deletePayloadKeys(let ids, let keys):
            for id in ids {
                try updatePayload(id, op) { old in .object((old?.objectValue ?? []).filter { !keys.contains($0.0) }) }
            }
        case .clearPayload(let ids):
            for id in ids { try updatePayload(id, op) { _ in nil } }
        }
    }

    /// Rewrites one point's payload: in place in the appendable segment, else by moving the
    /// point there (sealed segments never change rows, only tombstones). Missing ids are skipped.
    private func updatePayload(_ id: PointID, _ op: UInt64, _ change: (JSON?) -> JSON?) throws {
        guard let loc = locations[id] else { return }
        let seg = slots[Int(loc.slot)]!
        let row = Int(loc.row)
        let old = seg.payload(row)
        let changed = change(old)
        let new = changed.map { JSONWriter.bytes($0) }
        if Int(loc.slot) == appendableSlot && seg.appendable {
            try seg.setPayload(row: row, version: op, new)
            if !seg.fieldIndexes.isEmpty { seg.reindex(row: row, old: old, new: changed) }
            return
        }
        try withOptionalBuffers(seg.vectors(row)) { try upsert(id, $0, seg.sparseVectors(row), seg.multiVectors(row), new, op) }
    }

    /// Writes a point: over its row in the appendable segment, else as a new row there (its old
    /// row, if any, deleted). `vectors` may point into the point's own appendable row.
    private func upsert(_ id: PointID, _ vectors: [UnsafeBufferPointer<Float>?], _ sparse: [SparseVector?], _ multi: [[Float]?],
                        _ payload: [UInt8]?, _ op: UInt64) throws {
        if let loc = locations[id] {
            let seg = slots[Int(loc.slot)]!
            if Int(loc.slot) == appendableSlot && seg.appendable {
                let old = seg.fieldIndexes.isEmpty ? nil : seg.payload(Int(loc.row))
                try seg.overwrite(row: Int(loc.row), version: op, vectors: vectors, sparse: sparse, multi: multi, payload: payload)
                if !seg.fieldIndexes.isEmpty { seg.reindex(row: Int(loc.row), old: old, new: payload.flatMap { try? JSONParser.parse($0) }) }
                return
            }
            seg.markDeleted(Int(loc.row))
        }
        if appendable.isFull || !appendable.appendable || !appendable.hasRoom(for: sparse, multi: multi) {
            appendable.seal()
            try addAppendableSegment()
        }
        let row = try appendable.append(id: id, version: op, vectors: vectors, sparse: sparse, multi: multi, payload: payload)
        if !appendable.fieldIndexes.isEmpty, let payload { appendable.reindex(row: row, old: nil, new: try? JSONParser.parse(payload)) }
        locations[id] = Location(slot: Int32(appendableSlot), row: UInt32(row))
    }

    // MARK: optimizing

    /// Seals the appendable segment (if it has rows) and starts a fresh one.
    /// - Returns: whether a segment was sealed.
    @discardableResult
    func sealAppendable() throws -> Bool {
        guard appendable.rowCount > 0 else { return false }
        appendable.seal()
        try addAppendableSegment()
        return true
    }

    /// Replaces the segments in `sources` (slots) with `merged`, whose row i copies `rowMap[i]`.
    ///
    /// Rows deleted in a source since the copy was taken are deleted in `merged`
    /// too; every other row's id now points into `merged`. Caller holds the write lock.
    func replace(sources: [Int], with merged: Segment, rowMap: [(slot: Int32, row: UInt32)]) {
        let slot = place(merged)
        for (i, from) in rowMap.enumerated() {
            let source = slots[Int(from.slot)]!
            if source.isDeleted(Int(from.row)) {
                merged.markDeleted(i)
                continue
            }
            locations[merged.record(i).id] = Location(slot: Int32(slot), row: UInt32(i))
        }
        for s in sources { slots[s] = nil }
    }

    /// Replaces every segment with `adopted` (another copy's, moved into this shard's directory
    /// under fresh ids): the id map is rebuilt from them and an appendable segment is kept.
    /// Caller holds the write lock. - Returns: the segments replaced (their files go once a
    /// manifest naming the new ones is durable).
    func replaceAll(with adopted: [Segment]) throws -> [Segment] {
        // The appendable segment first: nothing changes when it cannot be made.
        var fresh: Segment?
        if !adopted.contains(where: { $0.appendable && !$0.isFull }) {
            let id = takeSegmentId()
            fresh = try Segment(directory: DataDirectory.segmentDir(shardDir: shardDir, id: id),
                                info: SegmentInfo(id: id, rows: 0, payloadBytes: 0, appendable: true),
                                vectors: options.vectors, capacity: options.segmentCapacity, quantization: options.quantization)
        }
        let old = segments
        slots = adopted + (fresh.map { [$0] } ?? [])
        buildLocations()
        for seg in segments { seg.applySchema(schema) }
        appendableSlot = slots.lastIndex { $0!.appendable && !$0!.isFull }!
        return old
    }

    /// Live vector data in segments that have no graph (the appendable one included), in points.
    var unindexedPoints: Int {
        // Without vectors that want graphs, sealing is all the indexing there is (sparse postings).
        let graphs = options.wantsGraphs
        return segments.reduce(0) { $0 + (($1.appendable || (graphs && !$1.indexed)) ? $1.liveCount : 0) }
    }

    /// Vectors in an index, about (rows lacking a vector are subtracted with deleted ones among them).
    var indexedVectors: Int {
        segments.reduce(0) { total, seg in
            guard !seg.appendable else { return total }
            let dense = seg.stores.reduce(0) { $0 + ($1.graph == nil ? 0 : max(0, seg.liveCount - $1.absentCount)) }
            // Sealed sparse stores know their present rows (their postings); deletions are subtracted.
            let sparse = seg.sparseStores.reduce(0) { n, store in
                n + store.stats([], rows: seg.rowCount, deleted: UnsafePointer(seg.deleted.base), deletedCount: seg.deletedCount).points
            }
            return total + dense + sparse
        }
    }

    // MARK: reading

    /// The row of `id` in the segment in `slot`, if it lives there.
    private func row(of id: PointID, inSlot slot: Int) -> Int? {
        guard let loc = locations[id], Int(loc.slot) == slot else { return nil }
        return Int(loc.row)
    }

    /// The live rows of the segment in `slot` passing `filter` (all live rows without one).
    func rows(inSlot slot: Int, passing filter: Filter?) -> RowBits {
        let seg = slots[slot]!
        guard let filter else {
            var all = RowBits(count: seg.rowCount, all: true)
            if seg.deletedCount > 0 { all.subtract(bits: seg.deleted.base) }
            return all
        }
        return seg.rows(passing: filter) { row(of: $0, inSlot: slot) }
    }

    /// Every live point passing `filter`, in no particular order.
    func scan(filter: Filter?, withVector: Bool, withPayload: Bool) -> [PointRecord] {
        var out: [PointRecord] = []
        for (i, seg) in slots.enumerated() {
            guard let seg else { continue }
            rows(inSlot: i, passing: filter).forEach { row in
                let rec = seg.record(row)
                out.append(PointRecord(id: rec.id, version: rec.version, vectors: withVector ? seg.vectors(row) : [],
                                       sparse: withVector ? seg.sparseVectors(row) : [], multi: withVector ? seg.multiVectors(row) : [],
                                       payload: withPayload ? seg.payload(row) : nil))
            }
        }
        return out
    }

    /// Per value of `key`, how many live points passing `filter` hold it; nil when `key` has no
    /// index that counts values.
    func facet(key: String, filter: Filter?) -> [IndexKey: Int]? {
        var counts: [IndexKey: Int] = [:]
        for (i, seg) in slots.enumerated() {
            guard let seg else { continue }
            guard let index = seg.fieldIndexes[key], index.facetable else { return nil }
            index.facetCounts(rows(inSlot: i, passing: filter), into: &counts)
        }
        return counts
    }

    /// The first `limit` live points passing `filter` in the order of `key`'s numbers (each point
    /// once, at its first value in that order), from `startFrom` on; nil when `key` has no
    /// index that orders.
    func ordered(key: String, filter: Filter?, descending: Bool, startFrom: Double?, limit: Int,
                 withVector: Bool, withPayload: Bool) -> [(value: Double, record: PointRecord)]? {
        var entries: [(value: Double, slot: Int, row: UInt32)] = []
        for (i, seg) in slots.enumerated() {
            guard let seg else { continue }
            guard let index = seg.fieldIndexes[key], index.orderable else { return nil }
            for e in index.orderedValues(rows(inSlot: i, passing: filter)) {
                if let startFrom, descending ? e.value > startFrom : e.value < startFrom { continue }
                entries.append((e.value, i, e.row))
            }
        }
        entries.sort { descending ? $0.value > $1.value : $0.value < $1.value }
        var seen = Set<PointID>()
        var out: [(value: Double, record: PointRecord)] = []
        for e in entries where out.count < limit {
            let seg = slots[e.slot]!
            let rec = seg.record(Int(e.row))
            guard seen.insert(rec.id).inserted else { continue }
            out.append((e.value, PointRecord(id: rec.id, version: rec.version, vectors: withVector ? seg.vectors(Int(e.row)) : [],
                                             sparse: withVector ? seg.sparseVectors(Int(e.row)) : [],
                                             multi: withVector ? seg.multiVectors(Int(e.row)) : [],
                                             payload: withPayload ? seg.payload(Int(e.row)) : nil)))
        }
        return out
    }

    /// How many live points pass `filter`.
    func count(filter: Filter) -> Int {
        slots.indices.reduce(0) { $0 + (slots[$1] == nil ? 0 : rows(inSlot: $1, passing: filter).cardinality) }
    }

    /// The best `params.k` rows over the segments `include` admits.
    /// - Returns: the hits, and how many live points were left out (segments `include` rejected).
    func search(_ query: UnsafeBufferPointer<Float>, params: SegmentSearch, withPayload: Bool, filter: Filter? = nil,
                include: (Segment) -> Bool) -> (hits: [ScoredPoint], skipped: Int) {
        var top = TopK(k: params.k)
        let skipped = eachIncluded(include) { i, seg in
            if let filter {
                var allowed = seg.rows(passing: filter) { row(of: $0, inSlot: i) }
                // Rows without the searched vector are never hits.
                let store = seg.stores[params.vector]
                if store.absentCount > 0, let absent = store.absent { allowed.subtract(bits: absent.base) }
                let n = allowed.cardinality
                if n > 0 { seg.search(query.baseAddress!, tag: UInt64(i), params: params, into: &top, allowed: allowed, count: n) }
            } else {
                seg.search(query.baseAddress!, tag: UInt64(i), params: params, into: &top)
            }
        }
        let hits = top.sorted().map { hit in
            let seg = slots[Int(hit.key >> 32)]!
            let row = Int(hit.key & 0xFFFF_FFFF)
            let rec = seg.record(row)
            return ScoredPoint(id: rec.id, version: rec.version, score: options.vectors[params.vector].distance.userScore(hit.score), rank: hit.score,
                               payload: withPayload ? seg.payload(row) : nil)
        }
        return (hits, skipped)
    }

    /// The best `k` rows by sparse vector `store` over the segments `include` admits (exact; only
    /// rows sharing an index with `query`).
    /// - Returns: the hits (dot products as scores), and how many live points were left out.
    func searchSparse(_ query: SparseVector, store: Int, k: Int, withPayload: Bool, filter: Filter?,
                      include: (Segment) -> Bool) -> (hits: [ScoredPoint], skipped: Int) {
        scoreEach(k: k, withPayload: withPayload, filter: filter, include: include) { seg, tag, skip, top in
            seg.sparseStores[store].search(query, rows: seg.rowCount, tag: tag, skip: skip, into: &top)
        }
    }

    /// The best `k` rows by MaxSim with multi-vector `store` (candidates from its token graph
    /// where a segment has one, `ef` per query vector; scored exactly).
    func searchMulti(_ query: [Float], store: Int, k: Int, ef: Int, exact: Bool, withPayload: Bool, filter: Filter?,
                     include: (Segment) -> Bool) -> (hits: [ScoredPoint], skipped: Int) {
        scoreEach(k: k, withPayload: withPayload, filter: filter, include: include) { seg, tag, skip, top in
            seg.multiStores[store].search(query, rows: seg.rowCount, tag: tag, ef: ef, exact: exact, skip: skip, into: &top)
        }
    }

    /// Calls `body` with each live segment `include` admits and its slot.
    /// - Returns: the live points of the segments it rejected.
    private func eachIncluded(_ include: (Segment) -> Bool, _ body: (Int, Segment) -> Void) -> Int {
        var skipped = 0
        for (i, seg) in slots.enumerated() {
            guard let seg else { continue }
            if include(seg) { body(i, seg) } else { skipped += seg.liveCount }
        }
        return skipped
    }

    /// Runs `score` on every segment `include` admits with the rows to skip (deleted, or not
    /// passing `filter`), and turns the best `k` into hits (internal scores as reported ones).
    private func scoreEach(k: Int, withPayload: Bool, filter: Filter?, include: (Segment) -> Bool,
                           _ score: (Segment, UInt64, (Int) -> Bool, inout TopK) -> Void) -> (hits: [ScoredPoint], skipped: Int) {
        var top = TopK(k: k)
        let skipped = eachIncluded(include) { i, seg in
            let rows = seg.rowCount
            if let filter {
                let allowed = seg.rows(passing: filter) { row(of: $0, inSlot: i) }
                if allowed.cardinality > 0 { score(seg, UInt64(i), { $0 >= rows || !allowed.contains($0) }, &top) }
            } else {
                let deleted = UnsafePointer(seg.deleted.base)
                let any = seg.deletedCount > 0
                score(seg, UInt64(i), { any && deleted[$0 >> 6] & (1 << UInt64($0 & 63)) != 0 }, &top)
            }
        }
        let hits = top.sorted().map { hit in
            let seg = slots[Int(hit.key >> 32)]!
            let row = Int(hit.key & 0xFFFF_FFFF)
            let rec = seg.record(row)
            return ScoredPoint(id: rec.id, version: rec.version, score: hit.score, rank: hit.score, payload: withPayload ? seg.payload(row) : nil)
        }
        return (hits, skipped)
    }

    /// Live points that have sparse vector `store`, and per index of `terms` how many hold it (for IDF).
    func sparseStats(store: Int, terms: [UInt32]) -> (points: Int, df: [Int]) {
        var points = 0
        var df = [Int](repeating: 0, count: terms.count)
        for seg in segments {
            let s = seg.sparseStores[store].stats(terms, rows: seg.rowCount, deleted: UnsafePointer(seg.deleted.base), deletedCount: seg.deletedCount)
            points += s.points
            for j in df.indices { df[j] += s.df[j] }
        }
        return (points, df)
    }

    func retrieve(_ ids: [PointID], withVector: Bool, withPayload: Bool) -> [PointRecord] {
        ids.compactMap { id in
            guard let loc = locations[id] else { return nil }
            let seg = slots[Int(loc.slot)]!
            let row = Int(loc.row)
            return PointRecord(id: id, version: seg.record(row).version, vectors: withVector ? seg.vectors(row) : [],
                               sparse: withVector ? seg.sparseVectors(row) : [], multi: withVector ? seg.multiVectors(row) : [],
                               payload: withPayload ? seg.payload(row) : nil)
        }
    }
}

/// Calls `body` with a buffer over each array.
package func withBuffers<T>(_ arrays: [[Float]], _ body: ([UnsafeBufferPointer<Float>]) throws -> T) rethrows -> T {
    var buffers: [UnsafeBufferPointer<Float>] = []
    func step(_ k: Int) throws -> T {
        if k == arrays.count { return try body(buffers) }
        return try arrays[k].withUnsafeBufferPointer { b in
            buffers.append(b)
            return try step(k + 1)
        }
    }
    return try step(0)
}

/// Calls `body` with a buffer over each array that is present (nil for the others).
package func withOptionalBuffers<T>(_ arrays: [[Float]?], _ body: ([UnsafeBufferPointer<Float>?]) throws -> T) rethrows -> T {
    var buffers: [UnsafeBufferPointer<Float>?] = []
    func step(_ k: Int) throws -> T {
        if k == arrays.count { return try body(buffers) }
        guard let a = arrays[k] else {
            buffers.append(nil)
            return try step(k + 1)
        }
        return try a.withUnsafeBufferPointer { b in
            buffers.append(b)
            return try step(k + 1)
        }
    }
    return try step(0)
}
