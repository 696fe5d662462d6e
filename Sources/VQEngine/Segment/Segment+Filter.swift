// Filters on one segment: which live rows pass, from the field indexes where they can answer,
// else by checking each remaining row's JSON; and the search plan that follows from it.
//
//   rows(passing:)   must: indexed conditions intersect first (cheapest), nested filters
//                    recurse within what is left, unindexed conditions are checked last and
//                    only on the rows still in; should / min_should / must_not likewise within
//                    the rows still in. The result is exact: a bitmap of live rows.
//   search(allowed:) few allowed rows (see usesGraph), or no graph: score exactly the
//                    allowed rows, fetching vectors ahead. Otherwise walk the graph: with 30% of the rows or more
//                    allowed, the usual walk with the others passed through and never returned
//                    (as deleted rows); with fewer, scoring allowed rows only, reached directly or
//                    through one row that is not allowed (two hops), so the walk stays connected
//                    where allowed rows are sparse (HNSWGraph.searchFiltered).

import CVQSupport

extension Segment {
    // MARK: indexes

    /// The indexes of `fields` over the rows live now, not attached, in one pass over the
    /// payloads (each parsed once, whatever the number of fields). Of a sealed segment they may
    /// be made without the shard's lock (its rows no longer change; rows deleted meanwhile are
    /// left out of every search anyway).
    package func makeFieldIndexes(_ fields: [(name: String, schema: PayloadFieldSchema)]) -> [FieldIndex] {
        let indexes = fields.map { FieldIndex(name: $0.name, schema: $0.schema) }
        guard !indexes.isEmpty else { return [] }
        for row in 0..<rowCount where !isDeleted(row) {
            guard let p = payload(row) else { continue }
            for index in indexes { index.add(row: row, payload: p) }
        }
        if !appendable { for index in indexes { index.freeze(rows: rowCount) } }
        return indexes
    }

    /// Attaches an index made by `makeFieldIndexes` (under the shard's write lock).
    package func install(_ index: FieldIndex) {
        fieldIndexes[index.name] = index
        if !appendable { fieldIndexFileCurrent = false }
    }

    /// Makes the indexes match `schema`: drops fields no longer in it, builds new or changed ones
    /// (a sealed segment first takes what its payload_index.bin holds).
    package func applySchema(_ schema: PayloadSchema) {
        var changed = false
        for name in fieldIndexes.keys where schema[name] == nil {
            fieldIndexes[name] = nil
            changed = true
        }
        if !appendable && fieldIndexes.isEmpty && !schema.isEmpty { loadFieldIndexes(schema) }
        let missing = schema.fields.filter { fieldIndexes[$0.name]?.schema != $0.schema }
        for index in makeFieldIndexes(missing) {
            fieldIndexes[index.name] = index
            changed = true
        }
        if changed && !appendable { fieldIndexFileCurrent = false }
    }

    package static let fieldIndexFile = "payload_index.bin"

    /// Whether a sealed segment's payload_index.bin should be (re)written: its indexes changed
    /// since it was written or loaded.
    package var needsFieldIndexFile: Bool { !appendable && !fieldIndexFileCurrent && !fieldIndexes.isEmpty }

    /// Writes the indexes of a sealed segment to payload_index.bin (atomically; see FieldIndex).
    package func writeFieldIndexes() throws {
        precondition(!appendable)
        var w = ByteWriter(capacity: 1 << 16)
        w.u32(FieldIndex.fileMagic)
        w.u32(FieldIndex.fileVersion)
        w.u64(UInt64(rowCount))
        w.u32(UInt32(fieldIndexes.count))
        for name in fieldIndexes.keys.sorted() { fieldIndexes[name]!.encode(into: &w) }
        w.u32(CRC32C.checksum(w.bytes))
        try FileIO.writeAtomically(directory + "/" + Segment.fieldIndexFile, w.bytes)
        fieldIndexFileCurrent = true
    }

    /// Takes the indexes of `schema`'s fields from payload_index.bin where it holds them with the
    /// same schema; a missing, damaged or outdated file is ignored (the indexes are rebuilt).
    private func loadFieldIndexes(_ schema: PayloadSchema) {
        let path = directory + "/" + Segment.fieldIndexFile
        guard FileIO.exists(path), let bytes = try? FileIO.readAll(path), bytes.count >= 24 else { return }
        let loaded: [FieldIndex]? = bytes.withUnsafeBytes { raw in
            let body = UnsafeRawBufferPointer(rebasing: raw[0..<(raw.count - 4)])
            guard CRC32C.update(0, body) == raw.loadUnaligned(fromByteOffset: raw.count - 4, as: UInt32.self) else { return nil }
            var r = ByteReader(body)
            guard (try? r.u32()) == FieldIndex.fileMagic, (try? r.u32()) == FieldIndex.fileVersion,
                  (try? r.u64()) == UInt64(rowCount), let n = try? r.u32() else { return nil }
            var out: [FieldIndex] = []
            for _ in 0..<n {
                guard let index = try? FieldIndex.decode(&r, rows: rowCount) else { return nil }
                out.append(index)
            }
            return out
        }
        var all = true
        for index in loaded ?? [] {
            if schema[index.name] == index.schema {
                index.freeze(rows: rowCount)
                fieldIndexes[index.name] = index
            } else {
                all = false
            }
        }
        fieldIndexFileCurrent = loaded != nil && all && fieldIndexes.count == schema.fields.count
    }

    /// Keeps the indexes in step with a row's payload change (nil: none).
    func reindex(row: Int, old: JSON?, new: JSON?) {
        for index in fieldIndexes.values {
            if old != nil { index.remove(row: row, payload: old) }
            if new != nil { index.add(row: row, payload: new) }
        }
    }

    // MARK: filtering

    /// The live rows passing `filter`.
    /// - Parameter rowOf: the row of a point id in this segment, nil when it has none (has_id).
    /// - Complexity: O(rows / 64) per condition, plus the index's work, plus a JSON parse per
    ///   row still in when an unindexed condition is checked.
    package func rows(passing filter: Filter, rowOf: (PointID) -> Int?) -> RowBits {
        var domain = RowBits(count: rowCount, all: true)
        if deletedCount > 0 { domain.subtract(bits: deleted.base) }
        return rows(filter, within: domain, rowOf: rowOf)
    }

    private func rows(_ f: Filter, within domain: RowBits, rowOf: (PointID) -> Int?) -> RowBits {
        guard case let .all(must, should, mustNot, minShould) = f else {
            if let b = indexed(f, rowOf: rowOf) {
                var d = domain
                d.formIntersection(b)
                if case .matchPhrase = f { return check(f, within: d, phrase: true) }
                return d
            }
            return check(f, within: domain)
        }
        var d = domain
        var unindexed: [Filter] = []
        var nested: [Filter] = []
        for c in must {
            if case .all = c {
                nested.append(c)
            } else if isPhrase(c) {
                nested.append(c)   // its index narrows, then each row's tokens are checked
            } else if let b = indexed(c, rowOf: rowOf) {
                d.formIntersection(b)
            } else {
                unindexed.append(c)
            }
        }
        for c in nested where !d.isEmpty { d = rows(c, within: d, rowOf: rowOf) }
        if !should.isEmpty && !d.isEmpty {
            var s = RowBits(count: rowCount)
            for c in should { s.formUnion(rows(c, within: d, rowOf: rowOf)) }
            d = s
        }
        if let (conditions, n) = minShould, n > 0, !d.isEmpty {
            var counts = [Int32](repeating: 0, count: rowCount)
            for c in conditions { rows(c, within: d, rowOf: rowOf).forEach { counts[$0] += 1 } }
            var kept = RowBits(count: rowCount)
            d.forEach { if counts[$0] >= n { kept.insert($0) } }
            d = kept
        }
        for c in mustNot where !d.isEmpty { d.subtract(rows(c, within: d, rowOf: rowOf)) }
        if !unindexed.isEmpty && !d.isEmpty {
            d = check(unindexed.count == 1 ? unindexed[0] : .all(must: unindexed, should: [], mustNot: []), within: d)
        }
        return d
    }

    private func isPhrase(_ f: Filter) -> Bool {
        if case .matchPhrase = f { return true }
        return false
    }

    /// What an index (or the id map) says of one condition; nil when nothing indexes it.
    private func indexed(_ c: Filter, rowOf: (PointID) -> Int?) -> RowBits? {
        switch c {
        case .hasID(let ids):
            var b = RowBits(count: rowCount)
            for id in ids { if let r = rowOf(id), r < rowCount { b.insert(r) } }
            return b
        case .match(let key, _), .matchAny(let key, _), .matchExcept(let key, _), .matchText(let key, _),
             .matchPhrase(let key, _), .range(let key, _, _), .geo(let key, _), .isEmpty(let key):
            return fieldIndexes[key]?.rows(c, count: rowCount)
        default:
            return nil
        }
    }

    /// The rows of `d` whose JSON passes `f` (with `phrase`: a text-indexed phrase, its tokens in order).
    private func check(_ f: Filter, within d: RowBits, phrase: Bool = false) -> RowBits {
        var out = RowBits(count: rowCount)
        if phrase, case let .matchPhrase(key, text) = f, let index = fieldIndexes[key] {
            let tokenizer = Tokenizer(index.schema)
            let wanted = tokenizer.tokens(text, forIndex: false)
            d.forEach { row in
                let texts = Filter.values(payload(row), key).compactMap(\.stringValue)
                if texts.contains(where: { Segment.containsRun(tokenizer.tokens($0, forIndex: false), wanted) }) { out.insert(row) }
            }
            return out
        }
        d.forEach { row in
            if f.matches(id: record(row).id, payload: payload(row)) { out.insert(row) }
        }
        return out
    }

    /// Whether `run` appears in `tokens` as consecutive tokens.
    static func containsRun(_ tokens: [String], _ run: [String]) -> Bool {
        guard !run.isEmpty else { return false }
        guard tokens.count >= run.count else { return false }
        for start in 0...(tokens.count - run.count) where tokens[start] == run[0] {
            if tokens[start..<(start + run.count)].elementsEqual(run) { return true }
        }
        return false
    }

    // MARK: filtered search

    /// The plan for a filtered search: walk the graph, or score the allowed rows exactly.
    ///
    /// Exact when there is no graph, when `exact` is asked, or when under 4% of the segment's
    /// rows are allowed (below that the two-hop walk loses its way: recall@10 0.997 at 5%, 0.95
    /// at 3%, 0.81 at 2% on 200k x 128, BENCHMARKS.md). Otherwise the graph when at least full_scan_threshold
    /// rows are allowed (as in Qdrant), and also below it when scoring them all would cost more
    /// than a walk: a walk scores about 3 x ef x m0 vectors (the measured crossover on 200k x 128
    /// at ef 64 was 6,800 rows).
    package func usesGraph(_ params: SegmentSearch, allowed count: Int) -> Bool {
        guard let graph = stores[params.vector].graph, !params.exact, count * 25 >= rowCount else { return false }
        return count >= params.fullScanRows || count > 3 * max(params.ef, params.k) * graph.m0
    }

    /// Adds the best of the `allowed` rows (live rows that have vector `params.vector` only, `count`
    /// of them) to `top`.
    package func search(_ query: UnsafePointer<Float>, tag: UInt64, params: SegmentSearch, into top: inout TopK,
                        allowed: RowBits, count: Int) {
        let store = stores[params.vector]
        let vectors = store.data
        let distance = DistanceFunction(store.distance)
        let dim = store.dim
        if let graph = store.graph, usesGraph(params, allowed: count) {
            // On codes where the segment has them (the best oversampling x k re-scored from the
            // floats unless asked not to), else on the floats.
            let quantized = params.quantized(store)
            let wanted = params.candidates(quantized?.use)
            func walk<S: NodeScorer>(_ scorer: S) -> [Candidate] {
                if count * 10 >= rowCount * 3 {
                    // Most rows allowed: the usual walk, the others passed through and never returned.
                    let excluded = allowed.inverted
                    return excluded.words.withUnsafeBufferPointer {
                        graph.search(scorer, k: wanted, ef: max(params.ef, wanted), deleted: $0.baseAddress)
                    }
                }
                // Fewer: score allowed rows only; the others are bridges (see HNSWGraph.searchFiltered).
                return allowed.words.withUnsafeBufferPointer {
                    graph.searchFiltered(scorer, k: wanted, ef: max(params.ef, wanted), allowed: $0.baseAddress!)
                }
            }
            let hits = quantized.map { codes, _ in codes.withScorer(query, scalar: { walk($0) }, turbo: { walk($0) }) }
                ?? walk(FloatScorer(query: query, vectors: vectors.base, dim: dim, distance: distance))
            // A walk that found fewer than it could (its neighbourhood ran out of allowed rows)
            // gives way to scoring them all.
            if hits.count >= min(params.k, count) {
                push(hits, rescore: quantized?.use.rescore ?? false, query: query, store: store, tag: tag, into: &top)
                return
            }
        }
        let base = UnsafePointer(vectors.base)
        var threshold = top.threshold
        // Allowed rows lie far apart, beyond what the hardware prefetcher follows: fetch each
        // vector a few rows ahead of scoring it.
        var rows = [Int32]()
        rows.reserveCapacity(count)
        allowed.forEach { rows.append(Int32($0)) }
        let ahead = 6
        for i in 0..<min(ahead, rows.count) { cvq_prefetch(base + Int(rows[i]) * dim) }
        for i in 0..<rows.count {
            if i + ahead < rows.count { cvq_prefetch(base + Int(rows[i + ahead]) * dim) }
            let row = Int(rows[i])
            let s = -distance(query, base + row * dim, dim)
            if s >= threshold {
                top.push(ScoredKey(score: s, key: tag << 32 | UInt64(row)))
                threshold = top.threshold
            }
        }
    }
}
