// Multi-vectors (late interaction, ColBERT): a point holds several vectors of one size, and a
// query of several vectors scores it by MaxSim: for each query vector the best similarity to
// any of the point's vectors, summed. Qdrant's `multivector_config: {"comparator": "max_sim"}`.
//
// Per segment and multi-vector k (see VectorLayout.multi):
//
//   multi.K.idx   row i: offset (in floats) and number of vectors of its multi-vector in
//                 multi.K.dat; 0 vectors: the row has none
//   multi.K.dat   the vectors, each `dim` floats (cosine: unit length); append-only (a rewrite
//                 that fits reuses the row's slot)
//
//   multi.K.hnsw  sealed, indexed segments of a multi-vector whose own hnsw_config.m asks for one:
//                 an HNSW graph over the single vectors (tokens) of every row (tokens no row
//                 refers to are left out)
//
// Search without a graph scores every row (exact MaxSim, SIMD kernels per pair): the default.
// With one, as ColBERT retrieves: each query vector finds its `ef` nearest tokens in the
// graph, their rows are the candidates, scored exactly in order of an upper bound of their
// MaxSim until the bound cannot beat the k-th score. Faster on large collections, at some
// recall (BENCHMARKS.md, "Multi-vectors").

/// One multi-vector's rows in a segment.
package final class MultiStore: @unchecked Sendable {
    package let spec: VectorSpec
    /// multi.K.idx (lengths in vectors) and multi.K.dat.
    let values: RowValues<Float>
    private var data: MappedArray<Float> { values.data }

    /// The graph over the tokens (sealed, indexed segments whose spec's m is not 0).
    package private(set) var graph: HNSWGraph?
    /// Token -> the row it belongs to (UInt32.max: none), for `graph`.
    private var tokenRow: [UInt32] = []
    /// Tokens of no row, as a bitmap (left out of the graph and of its answers).
    private var orphans: [UInt64] = []

    init(spec: VectorSpec, values: RowValues<Float>) {
        self.spec = spec
        self.values = values
    }

    /// Floats held (the manifest's multi_floats).
    var floatCount: Int { data.count }

    static func graphFile(_ k: Int) -> String { "multi.\(k).hnsw" }

    /// Maps tokens to rows (from the row table) and marks the orphans.
    private func mapTokens(rows: Int) {
        let tokens = data.count / dim
        tokenRow = [UInt32](repeating: .max, count: tokens)
        for row in 0..<rows {
            let ref = values.refs.base[row]
            guard ref.length > 0, floats(row).count > 0 else { continue }
            let first = Int(ref.offset) / dim
            for t in first..<(first + Int(ref.length)) where t < tokens { tokenRow[t] = UInt32(row) }
        }
        orphans = [UInt64](repeating: 0, count: (tokens + 63) / 64)
        for t in 0..<tokens where tokenRow[t] == .max { orphans[t >> 6] |= 1 << UInt64(t & 63) }
    }

    /// Builds the token graph (the rows no longer change) and writes it to `path`.
    /// - Returns: nil when `shouldContinue` said stop.
    func buildGraph(_ params: HNSWParams, rows: Int, path: String, shouldContinue: (@Sendable () -> Bool)?) throws -> HNSWGraph? {
        mapTokens(rows: rows)
        let built = orphans.withUnsafeBufferPointer { o in
            HNSWBuilder.build(vectors: data.base, count: data.count / dim, dim: dim, distance: spec.distance, params: params,
                              skip: o.baseAddress, shouldContinue: shouldContinue)
        }
        guard let g = built else { return nil }
        try g.write(to: path)
        return g
    }

    /// Opens a graph written by `buildGraph` for these rows.
    func openGraph(_ path: String, rows: Int) throws {
        let g = try HNSWGraph.open(path)
        guard g.count == data.count / dim else { throw VQError(.corrupt, "\(path) has \(g.count) nodes; the segment has \(data.count / dim) tokens") }
        mapTokens(rows: rows)
        graph = g
    }

    func attach(_ g: HNSWGraph?, rows: Int) {
        if g != nil && tokenRow.count != data.count / dim { mapTokens(rows: rows) }
        graph = g
    }

    /// The most floats an appendable segment's multi.K.dat may hold (virtual reservation only).
    static let appendableCapacity = 1 << 32

    /// The most vectors one point's multi-vector may have.
    package static let maxVectors = 4096

    static func files(_ k: Int) -> (refs: String, data: String) { ("multi.\(k).idx", "multi.\(k).dat") }

    var dim: Int { spec.dim }

    func lacks(_ row: Int) -> Bool { values.lacks(row) }

    /// Row `row`'s vectors, `dim` floats each (empty: none).
    func floats(_ row: Int) -> UnsafeBufferPointer<Float> { values.values(row) }

    /// Row `row`'s multi-vector (flat, `dim` floats per vector), or nil.
    package func value(_ row: Int) -> [Float]? {
        let f = floats(row)
        return f.isEmpty ? nil : Array(f)
    }

    func append(_ v: [Float]?) throws {
        guard let v else { return try values.append(nil) }
        try v.withUnsafeBufferPointer { try values.append($0) }
    }

    func overwrite(_ row: Int, _ v: [Float]?) throws {
        guard let v else { return try values.overwrite(row, nil) }
        try v.withUnsafeBufferPointer { try values.overwrite(row, $0) }
    }

    /// Adds the best rows by MaxSim with `query` (flat, `dim` floats per vector; prepared) to `top`.
    /// - Parameters:
    ///   - ef: tokens each query vector takes from the graph (when there is one); their rows are
    ///     scored exactly. Without a graph, or with fewer candidates than `top` wants, every row is.
    func search(_ query: [Float], rows: Int, tag: UInt64, ef: Int, exact: Bool, skip: (Int) -> Bool, into top: inout TopK) {
        let distance = DistanceFunction(spec.distance)
        query.withUnsafeBufferPointer { q in
            if let graph, !exact {
                // Each query vector's `ef` nearest tokens: per candidate row, the best similarity
                // seen for each query vector. A token not seen is no closer than the farthest
                // one seen for that query vector (`floor`), so the sum over query vectors of
                // (seen ?? floor) bounds a candidate's MaxSim from above: candidates are scored
                // exactly in order of that bound until it cannot beat the k-th score.
                let nq = q.count / dim
                var slot: [Int: Int] = [:]
                var candidates: [Int] = []
                var seen: [Float] = []
                var floor = [Float](repeating: .infinity, count: nq)
                orphans.withUnsafeBufferPointer { o in
                    for i in 0..<nq {
                        let hits = graph.search(q.baseAddress! + i * dim, vectors: data.base, dim: dim, distance: distance, k: ef, ef: ef,
                                                deleted: o.baseAddress)
                        for h in hits {
                            let row = Int(tokenRow[Int(h.node)])
                            guard row < rows else { continue }
                            let sim = -h.distance
                            floor[i] = min(floor[i], sim)
                            let c: Int
                            if let known = slot[row] { c = known } else {
                                guard !skip(row) else { slot[row] = -1; continue }
                                c = candidates.count
                                slot[row] = c
                                candidates.append(row)
                                seen.append(contentsOf: repeatElement(-.infinity, count: nq))
                            }
                            if c >= 0 { seen[c * nq + i] = max(seen[c * nq + i], sim) }
                        }
                        if hits.isEmpty { floor[i] = -.infinity }
                    }
                }
                if candidates.count >= top.k {
                    let bounds = candidates.indices.map { c in
                        (0..<nq).reduce(Float(0)) { $0 + (seen[c * nq + $1] == -.infinity ? floor[$1] : seen[c * nq + $1]) }
                    }
                    for c in candidates.indices.sorted(by: { bounds[$0] > bounds[$1] }) {
                        if top.isFull && bounds[c] < top.threshold { break }
                        let row = candidates[c]
                        let doc = floats(row)
                        if doc.isEmpty { continue }   // damaged: never a hit
                        let s = MultiStore.maxSim(q, doc, dim: dim, distance)
                        if s >= top.threshold { top.push(ScoredKey(score: s, key: tag << 32 | UInt64(row))) }
                    }
                    return
                }
            }
            for row in 0..<rows where !lacks(row) && !skip(row) {
                let doc = floats(row)
                if doc.isEmpty { continue }   // damaged: never a hit
                let s = MultiStore.maxSim(q, doc, dim: dim, distance)
                if s >= top.threshold { top.push(ScoredKey(score: s, key: tag << 32 | UInt64(row))) }
            }
        }
    }

    /// Σ over the query's vectors of the best similarity (negated distance) to any of `doc`'s.
    static func maxSim(_ query: UnsafeBufferPointer<Float>, _ doc: UnsafeBufferPointer<Float>, dim: Int, _ distance: DistanceFunction) -> Float {
        guard let q = query.baseAddress, let d = doc.baseAddress else { return 0 }
        var total: Float = 0
        for i in 0..<(query.count / dim) {
            var best = -Float.infinity
            for j in 0..<(doc.count / dim) { best = max(best, -distance(q + i * dim, d + j * dim, dim)) }
            total += best
        }
        return total
    }

    func flush(sequence: UInt64) throws { try values.flush(sequence: sequence) }
    func dropUndo() { values.dropUndo() }
    func verify() -> String? { values.verify() }
}
