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
// Search scores every row that has the vector (exact MaxSim, SIMD kernels per pair), so
// recall is 1; a graph over the points or the single vectors is future work.

/// One multi-vector's rows in a segment.
package final class MultiStore: @unchecked Sendable {
    package let spec: VectorSpec
    let refs: MappedArray<PayloadRef>
    let data: MappedArray<Float>

    init(spec: VectorSpec, refs: MappedArray<PayloadRef>, data: MappedArray<Float>) {
        self.spec = spec
        self.refs = refs
        self.data = data
    }

    /// The most floats an appendable segment's multi.K.dat may hold (virtual reservation only).
    static let appendableCapacity = 1 << 32

    /// The most vectors one point's multi-vector may have.
    package static let maxVectors = 4096

    static func files(_ k: Int) -> (refs: String, data: String) { ("multi.\(k).idx", "multi.\(k).dat") }

    var dim: Int { spec.dim }

    func lacks(_ row: Int) -> Bool { refs.base[row].length == 0 }

    /// Row `row`'s vectors, `dim` floats each (empty: none); bounds checked (refs come from a file).
    func floats(_ row: Int) -> UnsafeBufferPointer<Float> {
        let ref = refs.base[row]
        let (n, overflow) = ref.length.multipliedReportingOverflow(by: UInt64(dim))
        let size = UInt64(data.count)
        guard ref.length > 0, !overflow, n <= size, ref.offset <= size - n else { return UnsafeBufferPointer(start: nil, count: 0) }
        return UnsafeBufferPointer(start: data.base + Int(ref.offset), count: Int(n))
    }

    /// Row `row`'s multi-vector (flat, `dim` floats per vector), or nil.
    package func value(_ row: Int) -> [Float]? {
        let f = floats(row)
        return f.isEmpty ? nil : Array(f)
    }

    func append(_ v: [Float]?) throws { try refs.append(try store(v, reusing: nil)) }

    func overwrite(_ row: Int, _ v: [Float]?) throws { refs[row] = try store(v, reusing: refs[row]) }

    private func store(_ v: [Float]?, reusing old: PayloadRef?) throws -> PayloadRef {
        guard let v, !v.isEmpty else { return PayloadRef(offset: 0, length: 0) }
        let vectors = UInt64(v.count / dim)
        if let old, old.length >= vectors, let start = Int(exactly: old.offset), start <= data.count - v.count {
            v.withUnsafeBufferPointer { (data.base + start).update(from: $0.baseAddress!, count: $0.count) }
            data.markDirty(start..<(start + v.count))
            return PayloadRef(offset: old.offset, length: vectors)
        }
        let offset = data.count
        try v.withUnsafeBufferPointer { try data.append(contentsOf: $0) }
        return PayloadRef(offset: UInt64(offset), length: vectors)
    }

    /// Adds the best rows by MaxSim with `query` (flat, `dim` floats per vector; prepared) to `top`.
    func search(_ query: [Float], rows: Int, tag: UInt64, skip: (Int) -> Bool, into top: inout TopK) {
        let distance = DistanceFunction(spec.distance)
        query.withUnsafeBufferPointer { q in
            for row in 0..<rows where !lacks(row) && !skip(row) {
                let s = MultiStore.maxSim(q, floats(row), dim: dim, distance)
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

    func flush(sequence: UInt64) throws {
        try data.flush(sequence: sequence)
        try refs.flush(sequence: sequence)
    }

    func dropUndo() {
        data.dropUndo()
        refs.dropUndo()
    }

    func verify() -> String? { refs.verify() ?? data.verify() }
}
