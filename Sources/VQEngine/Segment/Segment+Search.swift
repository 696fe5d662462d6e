// Exact search over one segment: a scan with the metric chosen once per query.

/// A kernel chosen at compile time, so the scan loop has no per-row dispatch.
protocol ScoreKernel {
    static func score(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float
}

enum DotKernel: ScoreKernel {
    @inline(__always)
    static func score(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float { DistanceKernels.dot(a, b, n) }
}

enum NegL2Kernel: ScoreKernel {
    @inline(__always)
    static func score(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float { -DistanceKernels.squaredL2(a, b, n) }
}

enum NegL1Kernel: ScoreKernel {
    @inline(__always)
    static func score(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float { -DistanceKernels.l1(a, b, n) }
}

extension Segment {
    /// Scores every live row against `query` and keeps the best in `top`.
    ///
    /// Keys pushed are `tag << 32 | row`, so results from several segments can share one heap.
    /// - Parameters:
    ///   - query: `dim` floats, already normalised for cosine.
    ///   - accept: an optional row filter (payload conditions); nil scans every live row.
    /// - Complexity: O(rows x dim).
    package func exactSearch(_ query: UnsafePointer<Float>, tag: UInt64, into top: inout TopK, accept: ((Int) -> Bool)? = nil) {
        switch distance {
        case .cosine, .dot: scan(DotKernel.self, query, tag, &top, accept)
        case .euclid: scan(NegL2Kernel.self, query, tag, &top, accept)
        case .manhattan: scan(NegL1Kernel.self, query, tag, &top, accept)
        }
    }

    private func scan<K: ScoreKernel>(_: K.Type, _ query: UnsafePointer<Float>, _ tag: UInt64, _ top: inout TopK, _ accept: ((Int) -> Bool)?) {
        let n = rowCount
        let dim = self.dim
        let base = UnsafePointer(vectors.base)
        let bits = UnsafePointer(deleted.base)
        let hasDeletes = deletedCount > 0
        var threshold = top.threshold
        for row in 0..<n {
            if hasDeletes && bits[row >> 6] & (1 << UInt64(row & 63)) != 0 { continue }
            let s = K.score(query, base + row * dim, dim)
            if s >= threshold {
                if let accept, !accept(row) { continue }
                top.push(ScoredKey(score: s, key: tag << 32 | UInt64(row)))
                threshold = top.threshold
            }
        }
    }
}
