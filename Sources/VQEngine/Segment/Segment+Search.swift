// Search over one segment: the HNSW graph when the segment has one and is not
// small enough for a full scan, else an exact scan. The metric is chosen once
// per query (DistanceFunction); no per-row dispatch beyond one indirect call.

import CVQSupport

/// How one segment should be searched.
package struct SegmentSearch {
    package var k: Int
    /// HNSW beam width.
    package var ef: Int
    /// Brute force even where a graph exists.
    package var exact = false
    /// Segments with fewer live rows than this are scanned even when indexed (full_scan_threshold).
    package var fullScanRows = 0
    /// Which vector (store) is searched.
    package var vector = 0
    /// How quantized codes are used where a segment has them (nil: not at all).
    package var quantization: QuantizedSearch? = QuantizedSearch()

    package init(k: Int, ef: Int, exact: Bool = false, fullScanRows: Int = 0, vector: Int = 0) {
        self.vector = vector
        self.k = k
        self.ef = ef
        self.exact = exact
        self.fullScanRows = fullScanRows
    }

    /// The codes a walk of `store` goes on (nil: its floats), with how they are used.
    func quantized(_ store: VectorStore) -> (codes: VectorCodes, use: QuantizedSearch)? {
        store.codes.flatMap { codes in quantization.map { (codes, $0) } }
    }

    /// Candidates a walk keeps: k, or on codes oversampling x k (the best re-scored exactly).
    func candidates(_ use: QuantizedSearch?) -> Int {
        use.map { max(k, Int((Double(k) * $0.oversampling).rounded(.up))) } ?? k
    }
}

extension Segment {
    /// Whether a search with `params` would walk the graph rather than scan.
    package func usesGraph(_ params: SegmentSearch) -> Bool {
        stores[params.vector].graph != nil && !params.exact && liveCount >= params.fullScanRows
    }

    /// Adds this segment's best rows for `query` to `top`, keyed `tag << 32 | row`.
    /// - Parameters:
    ///   - query: the searched vector's `dim` floats, already normalised for cosine.
    /// Filtered searches go through `search(_:tag:params:into:allowed:count:)` (Segment+Filter.swift).
    package func search(_ query: UnsafePointer<Float>, tag: UInt64, params: SegmentSearch, into top: inout TopK) {
        let store = stores[params.vector]
        let distance = DistanceFunction(store.distance)
        // Rows that lack the vector are left out like deleted ones.
        let excluded = store.excluded(deleted: deleted.base, rows: rowCount)
        if let graph = store.graph, usesGraph(params) {
            // On the codes where the segment has them (the best oversampling x k re-scored from
            // the floats unless asked not to), else on the floats.
            let quantized = params.quantized(store)
            let wanted = params.candidates(quantized?.use)
            let hits = withExcluded(excluded) { skip in
                func walk<S: NodeScorer>(_ scorer: S) -> [Candidate] { graph.search(scorer, k: wanted, ef: max(params.ef, wanted), deleted: skip) }
                return quantized.map { codes, _ in codes.withScorer(query, scalar: { walk($0) }, turbo: { walk($0) }) }
                    ?? walk(FloatScorer(query: query, vectors: store.data.base, dim: store.dim, distance: distance))
            }
            push(hits, rescore: quantized?.use.rescore ?? false, query: query, store: store, tag: tag, into: &top)
            return
        }
        withExcluded(excluded) { skip in exactSearch(query, store: store, tag: tag, distance: distance, skip: skip, into: &top) }
    }

    /// Adds hits of a walk to `top`: re-scored exactly from the float vectors when `rescore` (a
    /// walk on codes; each row's lines fetched a few hits ahead: the rows lie anywhere in a
    /// mapped file), else with the walk's own distances.
    func push(_ hits: [Candidate], rescore: Bool, query: UnsafePointer<Float>, store: VectorStore, tag: UInt64, into top: inout TopK) {
        guard rescore else {
            for h in hits { top.push(ScoredKey(score: -h.distance, key: tag << 32 | UInt64(h.node))) }
            return
        }
        let distance = DistanceFunction(store.distance)
        let base = UnsafePointer(store.data.base), dim = store.dim
        func fetch(_ i: Int) {
            let row = UnsafeRawPointer(base + Int(hits[i].node) * dim)
            for line in Swift.stride(from: 0, to: dim * 4, by: 64) { cvq_prefetch(row + line) }
        }
        let ahead = 3
        for i in 0..<min(ahead, hits.count) { fetch(i) }
        for (i, h) in hits.enumerated() {
            if i + ahead < hits.count { fetch(i + ahead) }
            top.push(ScoredKey(score: -distance(query, base + Int(h.node) * dim, dim), key: tag << 32 | UInt64(h.node)))
        }
    }

    /// Calls `body` with the rows to skip: `excluded` when given, else the deleted rows (nil when none).
    private func withExcluded<T>(_ excluded: [UInt64]?, _ body: (UnsafePointer<UInt64>?) -> T) -> T {
        if let excluded { return excluded.withUnsafeBufferPointer { body($0.baseAddress) } }
        return body(deletedCount > 0 ? UnsafePointer(deleted.base) : nil)
    }

    /// Scores every row of `store` not in `skip` against `query` and keeps the best in `top`.
    /// - Complexity: O(rows x dim).
    func exactSearch(_ query: UnsafePointer<Float>, store: VectorStore, tag: UInt64, distance: DistanceFunction,
                     skip: UnsafePointer<UInt64>?, into top: inout TopK) {
        let n = rowCount
        let dim = store.dim
        let base = UnsafePointer(store.data.base)
        var threshold = top.threshold
        for row in 0..<n {
            if let skip, skip[row >> 6] & (1 << UInt64(row & 63)) != 0 { continue }
            let s = -distance(query, base + row * dim, dim)
            if s >= threshold {
                top.push(ScoredKey(score: s, key: tag << 32 | UInt64(row)))
                threshold = top.threshold
            }
        }
    }
}
