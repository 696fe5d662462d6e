// The graph walk on 8-bit codes (see Vectors/ScalarQuantization.swift): distances from a coded
// query to coded rows, lower is nearer, on the same scale as the float distances.

import CVQSupport

/// Distances from a coded query to a segment's coded rows. Holds plain pointers: valid inside
/// `ScalarCodes.withScorer` only.
package struct CodeScorer: NodeScorer {
    let rows: UnsafePointer<UInt8>
    let sums: UnsafePointer<Int32>
    let squares: UnsafePointer<UInt32>
    /// The query's codes minus 128, and the sum of its codes and of their squares.
    let query: UnsafePointer<Int8>
    let querySum: Int64
    let querySquares: Int64
    let dim: Int
    let lo: Float
    let step: Float
    let dot: cvq_u8i8_kernel
    let l1: cvq_u8_kernel
    /// The query's codes unshifted (for L1 only).
    let queryCodes: UnsafePointer<UInt8>
    /// 0: negated dot product, 1: squared L2, 2: L1.
    let kind: Int

    @inline(__always)
    package func distance(_ node: UInt32) -> Float {
        let row = rows + Int(node) * dim
        if kind == 2 { return step * Float(l1(queryCodes, row, dim)) }
        // sum cx cy = sum cx (cy - 128) + 128 sum cx, in exact integers.
        let rowSum = Int64(sums[Int(node)])
        let cross = Int64(dot(row, query, dim)) + 128 * rowSum
        if kind == 0 { return -(Float(dim) * lo * lo + lo * step * Float(querySum + rowSum) + step * step * Float(cross)) }
        // sum (cx - cy)^2 = sum cx^2 + sum cy^2 - 2 sum cx cy: exact, so never negative.
        return step * step * Float(max(0, Int64(squares[Int(node)]) + querySquares - 2 * cross))
    }

    @inline(__always)
    package func prefetch(_ node: UInt32) { cvq_prefetch(rows + Int(node) * dim) }
}

extension ScalarCodes {
    /// Calls `body` with a scorer for `query` (`dim` floats, prepared as the stored vectors are).
    package func withScorer<T>(_ query: UnsafePointer<Float>, _ body: (CodeScorer) -> T) -> T {
        withUnsafeTemporaryAllocation(of: Int8.self, capacity: dim) { q in
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: dim) { u in
                let (sum, squares) = encode(query, into: q.baseAddress!)
                for j in 0..<dim { u[j] = UInt8(Int(q[j]) + 128) }
                let k = U8Kernels.selected
                let kind: Int
                switch distance {
                case .cosine, .dot: kind = 0
                case .euclid: kind = 1
                case .manhattan: kind = 2
                }
                return body(CodeScorer(rows: codes, sums: sums, squares: self.squares, query: UnsafePointer(q.baseAddress!), querySum: sum,
                                       querySquares: squares, dim: dim, lo: lo, step: step, dot: k.dot_u8i8, l1: k.l1,
                                       queryCodes: UnsafePointer(u.baseAddress!), kind: kind))
            }
        }
    }
}
