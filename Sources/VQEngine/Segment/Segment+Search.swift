// Search over one segment: the HNSW graph when the segment has one and is not
// small enough for a full scan, else an exact scan. The metric is chosen once
// per query (DistanceFunction); no per-row dispatch beyond one indirect call.

/// How one segment should be searched.
package struct SegmentSearch {
    package var k: Int
    /// HNSW beam width.
    package var ef: Int
    /// Brute force even where a graph exists.
    package var exact = false
    /// Segments with fewer live rows than this are scanned even when indexed (full_scan_threshold).
    package var fullScanRows = 0

    package init(k: Int, ef: Int, exact: Bool = false, fullScanRows: Int = 0) {
        self.k = k
        self.ef = ef
        self.exact = exact
        self.fullScanRows = fullScanRows
    }
}

extension Segment {
    /// Whether a search with `params` would walk the graph rather than scan.
    package func usesGraph(_ params: SegmentSearch) -> Bool {
        graph != nil && !params.exact && liveCount >= params.fullScanRows
    }

    /// Adds this segment's best rows for `query` to `top`, keyed `tag << 32 | row`.
    /// - Parameters:
    ///   - query: `dim` floats, already normalised for cosine.
    /// Filtered searches go through `search(_:tag:params:into:allowed:count:)` (Segment+Filter.swift).
    package func search(_ query: UnsafePointer<Float>, tag: UInt64, params: SegmentSearch, into top: inout TopK) {
        let distance = DistanceFunction(self.distance)
        if let graph, usesGraph(params) {
            let hits = graph.search(query, vectors: vectors.base, dim: dim, distance: distance, k: params.k, ef: params.ef,
                                    deleted: deletedCount > 0 ? UnsafePointer(deleted.base) : nil)
            for h in hits { top.push(ScoredKey(score: -h.distance, key: tag << 32 | UInt64(h.node))) }
            return
        }
        exactSearch(query, tag: tag, distance: distance, into: &top)
    }

    /// Scores every live row against `query` and keeps the best in `top`.
    /// - Complexity: O(rows x dim).
    package func exactSearch(_ query: UnsafePointer<Float>, tag: UInt64, distance: DistanceFunction, into top: inout TopK) {
        let n = rowCount
        let dim = self.dim
        let base = UnsafePointer(vectors.base)
        let bits = UnsafePointer(deleted.base)
        let hasDeletes = deletedCount > 0
        var threshold = top.threshold
        for row in 0..<n {
            if hasDeletes && bits[row >> 6] & (1 << UInt64(row & 63)) != 0 { continue }
            let s = -distance(query, base + row * dim, dim)
            if s >= threshold {
                top.push(ScoredKey(score: s, key: tag << 32 | UInt64(row)))
                threshold = top.threshold
            }
        }
    }
}
