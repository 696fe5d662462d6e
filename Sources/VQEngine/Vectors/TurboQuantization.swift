// TurboQuant, 4 bits a value (Qdrant's `quantization_config: {"turbo": {"bits": "bits4"}}`).
//
// A vector x of a segment becomes z = R(x - m): m the segment's mean (so a common direction,
// which real embeddings have, does not eat the codes' range) and R a fixed pseudo-random
// rotation, after which every coordinate of z looks like a Gaussian of variance |z|^2 / P.
// Each coordinate is coded by the nearest of 16 Lloyd-Max levels for that Gaussian (the
// MSE-optimal scalar quantizer; TurboQuant's near-optimal per-coordinate codes), scaled by the
// row's own sigma. The row keeps P / 2 bytes of codes, one float alpha (the least-squares scale
// of its levels, so z ~ alpha * level[c]) and |z|^2: for 384 dimensions 200 bytes against 1,536
// of floats (0.13x).
//
// R: two rounds of random signs, a random permutation and orthonormal Walsh-Hadamard transforms
// over blocks of 128 or more coordinates (P, the dimension rounded up to 128); O(P log P) a
// vector, so rotating a query costs microseconds, not the d^2 of a dense matrix. Seeded by the
// dimension: the same everywhere, so codes are derived data, made again at open.
//
// Distances: the query is rotated (for euclid after subtracting m) and coded to int8 (q ~ s q8),
// then <R q, z> ~ alpha s sum q8_i level[c_i]: one kernel that looks the levels up by byte
// shuffles (vpshufb) and multiplies them with the query in 8-bit lanes (AVX-512 VNNI's
// vpdpbusd, AVX2's vpmaddubsw, or C), chosen at run time.
//   dot, cosine: x.q = (x - m).q + m.q = <R q, z> + m.q
//   euclid:      |x - q|^2 = |z|^2 + |R(q - m)|^2 - 2 <R(q - m), z>
// Manhattan distances are not rotation-invariant: turbo codes are refused for them.

import CVQSupport
import Foundation

/// How a collection quantizes its dense vectors.
package enum Quantization: Sendable, Equatable {
    /// 8 bits a value over one range per segment and vector, cut at `quantile` of its values.
    case scalar(quantile: Double)
    /// TurboQuant, 4 bits a value after a random rotation.
    case turbo4

    /// Qdrant's `quantization_config` body (`always_ram` added by the caller).
    package var json: [(String, JSON)] {
        switch self {
        case .scalar(let q): return [("scalar", .object([("type", .string("int8")), ("quantile", .double(q))]))]
        case .turbo4: return [("turbo", .object([("bits", .string("bits4"))]))]
        }
    }
}

/// One segment's quantized rows of one vector.
package enum VectorCodes: Sendable {
    case scalar(ScalarCodes)
    case turbo(TurboCodes)

    /// Codes `count` rows of `dim` floats (rows for which `skip` holds are coded but left out of
    /// the statistics).
    init(_ kind: Quantization, vectors: UnsafePointer<Float>, count: Int, dim: Int, distance: Distance, skip: @escaping (Int) -> Bool) {
        switch kind {
        case .scalar(let quantile):
            self = .scalar(ScalarCodes(vectors: vectors, count: count, dim: dim, distance: distance, quantile: quantile, skip: skip))
        case .turbo4:
            self = .turbo(TurboCodes(vectors: vectors, count: count, dim: dim, distance: distance, skip: skip))
        }
    }

    /// Calls the body for the kind of codes with a scorer for `query` (`dim` floats, prepared as
    /// the stored vectors are); two bodies, so each walk is specialised for its scorer.
    func withScorer<T>(_ query: UnsafePointer<Float>, scalar: (CodeScorer) -> T, turbo: (TurboScorer) -> T) -> T {
        switch self {
        case .scalar(let c): return c.withScorer(query, scalar)
        case .turbo(let c): return c.withScorer(query, turbo)
        }
    }

    /// Bytes held in RAM.
    package var byteCount: Int {
        switch self {
        case .scalar(let c): return c.byteCount
        case .turbo(let c): return c.byteCount
        }
    }
}

/// A fixed pseudo-random rotation of `padded` coordinates (see the top of the file).
struct Rotation: Sendable {
    let dim: Int
    let padded: Int
    /// The Walsh-Hadamard block: the largest power of two dividing `padded`.
    let block: Int
    /// Per round, `padded` signs and a permutation (gather order).
    let signs: [Float]
    let order: [Int32]
    static let rounds = 2

    init(dim: Int) {
        self.dim = dim
        padded = max(128, (dim + 127) / 128 * 128)
        block = padded & -padded
        var state = 0x9E37_79B9_7F4A_7C15 ^ UInt64(dim)
        func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        var signs = [Float](), order = [Int32]()
        for _ in 0..<Rotation.rounds {
            for _ in 0..<padded { signs.append(next() & 1 == 0 ? 1 : -1) }
            var p = (0..<Int32(padded)).map { $0 }
            for i in stride(from: padded - 1, to: 0, by: -1) { p.swapAt(i, Int(next() % UInt64(i + 1))) }
            order += p
        }
        self.signs = signs
        self.order = order
    }

    /// out = R(x - mean) (mean nil: R x); `out` and `scratch` hold `padded` floats each.
    func apply(_ x: UnsafePointer<Float>, minus mean: UnsafePointer<Float>?, into out: UnsafeMutablePointer<Float>,
               scratch: UnsafeMutablePointer<Float>) {
        signs.withUnsafeBufferPointer { signs in
            order.withUnsafeBufferPointer { order in
                cvq_rotate(x, mean, dim, padded, block, signs.baseAddress!, order.baseAddress!, Int32(Rotation.rounds), out, scratch)
            }
        }
    }
}

/// One segment's TurboQuant codes of one vector.
package final class TurboCodes: @unchecked Sendable {
    package let dim: Int
    package let count: Int
    let distance: Distance
    let rotation: Rotation
    /// The segment's mean vector (`dim` floats).
    let mean: [Float]
    /// `count` rows of `rotation.padded / 2` bytes (see cvq_nibble_kernel for the layout).
    let codes: UnsafeMutablePointer<UInt8>
    /// Per row: alpha (z ~ alpha * lut[c]) and |z|^2.
    let scales: UnsafeMutablePointer<Float>
    let norms: UnsafeMutablePointer<Float>

    /// The 16 Lloyd-Max levels of a standard Gaussian, ascending.
    static let levels: [Double] = {
        func pdf(_ x: Double) -> Double { x.isInfinite ? 0 : exp(-x * x / 2) / (2 * Double.pi).squareRoot() }
        func cdf(_ x: Double) -> Double { 0.5 * erfc(-x / 2.0.squareRoot()) }
        var c = (0..<16).map { -2.7 + Double($0) * 5.4 / 15 }
        for _ in 0..<2_000 {
            let t = [-Double.infinity] + (0..<15).map { (c[$0] + c[$0 + 1]) / 2 } + [Double.infinity]
            c = (0..<16).map { (pdf(t[$0]) - pdf(t[$0 + 1])) / (cdf(t[$0 + 1]) - cdf(t[$0])) }
        }
        return c
    }()
    /// The levels as signed bytes (the outermost at +-127): the kernels' table.
    nonisolated(unsafe) static let table: UnsafeMutablePointer<Int8> = {
        let p = UnsafeMutablePointer<Int8>.allocate(capacity: 16)
        for k in 0..<16 { p[k] = Int8((levels[k] * 127 / levels[15]).rounded()) }
        return p
    }()
    /// Decision boundaries between the levels, in units of sigma.
    static let boundaries: [Float] = (0..<15).map { Float((levels[$0] + levels[$0 + 1]) / 2) }

    init(vectors: UnsafePointer<Float>, count: Int, dim: Int, distance: Distance, skip: (Int) -> Bool) {
        precondition(distance != .manhattan, "turbo codes need a rotation-invariant distance")
        self.dim = dim
        self.count = count
        self.distance = distance
        let rotation = Rotation(dim: dim)
        self.rotation = rotation
        // The mean over a sample of rows spread over the segment.
        var mean = [Double](repeating: 0, count: dim)
        var sampled = 0
        let rowStride = max(1, count / 20_000)
        for row in stride(from: 0, to: count, by: rowStride) where !skip(row) {
            for j in 0..<dim { mean[j] += Double(vectors[row * dim + j]) }
            sampled += 1
        }
        self.mean = mean.map { Float(sampled == 0 ? 0 : $0 / Double(sampled)) }
        let padded = rotation.padded
        let rowBytes = padded / 2
        codes = .allocate(capacity: max(1, count * rowBytes))
        scales = .allocate(capacity: max(1, count))
        norms = .allocate(capacity: max(1, count))
        let table = TurboCodes.table
        let bounds = TurboCodes.boundaries
        self.mean.withUnsafeBufferPointer { mean in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * padded) { buffer in
                let z = buffer.baseAddress!, scratch = z + padded
                for row in 0..<count {
                    rotation.apply(vectors + row * dim, minus: mean.baseAddress, into: z, scratch: scratch)
                    var squares: Float = 0
                    for i in 0..<padded { squares += z[i] * z[i] }
                    let inverse = squares > 0 ? 1 / (squares / Float(padded)).squareRoot() : 0
                    cvq_encode_nibbles(z, padded, inverse, bounds, table, codes + row * rowBytes, scales + row)
                    norms[row] = squares
                }
            }
        }
    }

    deinit {
        codes.deallocate()
        scales.deallocate()
        norms.deallocate()
    }

    /// Bytes held in RAM (codes, per-row scales and norms, the mean).
    package var byteCount: Int { count * (rotation.padded / 2 + 8) + dim * 4 }

    /// Calls `body` with a scorer for `query` (`dim` floats, prepared as the stored vectors are).
    package func withScorer<T>(_ query: UnsafePointer<Float>, _ body: (TurboScorer) -> T) -> T {
        let padded = rotation.padded
        return withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * padded) { buffer in
            withUnsafeTemporaryAllocation(of: Int8.self, capacity: padded) { q8 in
                let z = buffer.baseAddress!
                let euclid = distance == .euclid
                var offset: Float = 0
                mean.withUnsafeBufferPointer { mean in
                    rotation.apply(query, minus: euclid ? mean.baseAddress : nil, into: z, scratch: z + padded)
                    if euclid {
                        for i in 0..<padded { offset += z[i] * z[i] }
                    } else {
                        for j in 0..<dim { offset += query[j] * mean[j] }
                    }
                }
                var largest: Float = 0
                for i in 0..<padded { largest = max(largest, abs(z[i])) }
                let step = largest > 0 ? largest / 127 : 1
                let sum = cvq_quantize_i8(z, padded, 1 / step, q8.baseAddress!)
                return body(TurboScorer(rows: codes, scales: scales, norms: norms, query: UnsafePointer(q8.baseAddress!), querySum: sum,
                                        table: TurboCodes.table, blocks: padded / 128, step: step, offset: offset, euclid: euclid,
                                        kernel: U8Kernels.selected.nibble_dot))
            }
        }
    }
}

/// Distances from a rotated, int8-coded query to a segment's TurboQuant rows (lower is nearer,
/// on the float distances' scale). Holds plain pointers: valid inside `TurboCodes.withScorer` only.
package struct TurboScorer: NodeScorer {
    let rows: UnsafePointer<UInt8>
    let scales: UnsafePointer<Float>
    let norms: UnsafePointer<Float>
    let query: UnsafePointer<Int8>
    let querySum: Int32
    let table: UnsafePointer<Int8>
    let blocks: Int
    /// The query's int8 step.
    let step: Float
    /// dot: m.q; euclid: |R(q - m)|^2.
    let offset: Float
    let euclid: Bool
    let kernel: cvq_nibble_kernel

    @inline(__always)
    package func distance(_ node: UInt32) -> Float {
        let n = Int(node)
        let product = scales[n] * step * Float(kernel(rows + n * blocks * 64, query, table, blocks, querySum))
        if euclid { return max(0, norms[n] + offset - 2 * product) }
        return -(product + offset)
    }

    @inline(__always)
    package func prefetch(_ node: UInt32) {
        let row = rows + Int(node) * blocks * 64
        for b in 0..<min(blocks, 4) { cvq_prefetch(row + 64 * b) }
    }
}
