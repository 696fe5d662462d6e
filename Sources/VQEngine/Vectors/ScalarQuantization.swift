// Scalar quantization (Qdrant's `quantization_config: {"scalar": {"type": "int8"}}`): every
// value of a vector becomes one byte, c = round((x - lo) / step) clipped to 0...255, with one
// range [lo, lo + 255 step] per segment and vector, cut at `quantile` of its values so a few
// outliers do not waste the codes' resolution.
//
// Distances on codes, with x = lo + step c (the query is coded the same way):
//   dot:       sum x y = d lo^2 + lo step (sum cx + sum cy) + step^2 sum cx cy
//   euclid:    sum (x - y)^2 = step^2 sum (cx - cy)^2
//   manhattan: sum |x - y| = step sum |cx - cy|
// with sum cx cy = sum cx (cy - 128) + 128 sum cx: one kernel of unsigned codes against the
// query's shifted to signed ones (AVX-512 VNNI's vpdpbusd: 64 products an instruction; AVX2
// or C otherwise), and euclid as sum cx^2 + sum cy^2 - 2 sum cx cy with the rows' sums of
// squares kept beside their codes. A segment's codes are a quarter
// of its float vectors' bytes and stay in RAM; the graph is walked on them and the best
// candidates are re-scored exactly from the float vectors.

import CVQSupport

/// The 8-bit kernels, chosen once per process (VQ_SIMD caps them like the float ones).
enum U8Kernels {
    nonisolated(unsafe) static let selected: cvq_u8_kernels = cvq_select_u8_kernels(Kernels.limit)
}

/// One segment's codes of one vector.
package final class ScalarCodes: @unchecked Sendable {
    package let dim: Int
    package let count: Int
    /// x = lo + step * code.
    package let lo: Float
    package let step: Float
    let distance: Distance
    let codes: UnsafeMutablePointer<UInt8>
    /// Per row, the sum of its codes (the dot product's cross term) and of their squares, exact.
    let sums: UnsafeMutablePointer<Int32>
    let squares: UnsafeMutablePointer<UInt32>

    /// Codes the `count` rows of `dim` floats at `vectors`.
    /// - Parameter quantile: the share of values the range covers (0.5 to 1; 1: min to max).
    /// - Parameter skip: rows left out of the range (rows without the vector); they are coded anyway.
    package init(vectors: UnsafePointer<Float>, count: Int, dim: Int, distance: Distance, quantile: Double, skip: (Int) -> Bool = { _ in false }) {
        self.dim = dim
        self.count = count
        self.distance = distance
        // The range from every value of a sample of rows spread over the segment (whole rows:
        // a stride over single values could see only some dimensions).
        var sample: [Float] = []
        let total = count * dim
        let rowStride = max(1, count / max(1, 65_536 / dim))
        for row in Swift.stride(from: 0, to: count, by: rowStride) where !skip(row) {
            sample.append(contentsOf: UnsafeBufferPointer(start: vectors + row * dim, count: dim))
        }
        sample.sort()
        var lo: Float = -1, hi: Float = 1
        if !sample.isEmpty {
            let cut = Int(Double(sample.count - 1) * (1 - max(0.5, min(1, quantile))) / 2)
            lo = sample[cut]
            hi = sample[sample.count - 1 - cut]
        }
        if hi <= lo { hi = lo + 1 }
        self.lo = lo
        step = (hi - lo) / 255
        codes = .allocate(capacity: max(1, total))
        sums = .allocate(capacity: max(1, count))
        squares = .allocate(capacity: max(1, count))
        for row in 0..<count {
            var s: Int32 = 0, sq: UInt32 = 0
            for j in 0..<dim {
                let c = code(vectors[row * dim + j])
                codes[row * dim + j] = c
                s += Int32(c)
                sq &+= UInt32(c) * UInt32(c)
            }
            sums[row] = s
            squares[row] = sq
        }
    }

    deinit {
        codes.deallocate()
        sums.deallocate()
        squares.deallocate()
    }

    @inline(__always)
    func code(_ x: Float) -> UInt8 {
        let c = ((x - lo) / step).rounded(.toNearestOrEven)
        return UInt8(max(0, min(255, c.isNaN ? 0 : c)))
    }

    /// Bytes held in RAM (codes and sums).
    package var byteCount: Int { count * dim + count * 8 }

    /// Codes `query` (`dim` floats, prepared as the stored vectors are) into `out`, shifted to
    /// signed (code - 128); returns the sum of its codes and of their squares.
    func encode(_ query: UnsafePointer<Float>, into out: UnsafeMutablePointer<Int8>) -> (sum: Int64, squares: Int64) {
        var s: Int64 = 0, sq: Int64 = 0
        for j in 0..<dim {
            let c = code(query[j])
            out[j] = Int8(Int(c) - 128)
            s += Int64(c)
            sq += Int64(c) * Int64(c)
        }
        return (s, sq)
    }
}
