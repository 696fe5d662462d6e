import Foundation
import VQEngine

/// Vectors, queries and exact ground truth for `vq bench`.
struct BenchDataset {
    var name: String
    var dim: Int
    var base: [Float]
    var queries: [Float]
    /// For each query, the ids of its nearest base vectors, nearest first.
    var truth: [[Int32]]

    var count: Int { base.count / dim }
    var queryCount: Int { queries.count / dim }

    /// Reads a TEXMEX .fvecs file (or a 2-D float32 .npy).
    static func readVectors(_ path: String) throws -> (dim: Int, data: [Float]) {
        var data: [Float] = []
        if path.lowercased().hasSuffix(".npy") {
            let bytes = try FileIO.readAll(path)
            guard bytes.count > 10, bytes[0] == 0x93 else { throw VQError.invalid("\(path) is not a .npy file") }
            let headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
            let header = String(decoding: bytes[10..<(10 + headerLength)], as: UTF8.self).filter { !$0.isWhitespace }
            guard header.contains("'descr':'<f4'"), let open = header.range(of: "'shape':("),
                  let close = header[open.upperBound...].firstIndex(of: ")") else {
                throw VQError.invalid("\(path): expected a 2-D little-endian float32 array")
            }
            let dims = header[open.upperBound..<close].split(separator: ",").compactMap { Int($0) }
            guard dims.count == 2 else { throw VQError.invalid("\(path): expected 2 dimensions, found \(dims.count)") }
            data = bytes.withUnsafeBytes { raw in
                (0..<(dims[0] * dims[1])).map { raw.loadUnaligned(fromByteOffset: 10 + headerLength + $0 * 4, as: Float.self) }
            }
            return (dims[1], data)
        }
        let bytes = try FileIO.readAll(path)
        guard bytes.count >= 4 else { throw VQError.invalid("\(path) is empty") }
        let dim = Int(bytes.withUnsafeBytes { $0.loadUnaligned(as: Int32.self) })
        guard dim > 0, bytes.count % (4 + dim * 4) == 0 else { throw VQError.invalid("\(path) is not a .fvecs file of \(dim)-d vectors") }
        let n = bytes.count / (4 + dim * 4)
        data = [Float](repeating: 0, count: n * dim)
        data.withUnsafeMutableBytes { dst in
            bytes.withUnsafeBytes { src in
                for i in 0..<n {
                    (dst.baseAddress! + i * dim * 4).copyMemory(from: src.baseAddress! + i * (4 + dim * 4) + 4, byteCount: dim * 4)
                }
            }
        }
        return (dim, data)
    }

    static func readIvecs(_ path: String) throws -> [[Int32]] {
        let bytes = try FileIO.readAll(path)
        var out: [[Int32]] = []
        var offset = 0
        try bytes.withUnsafeBytes { raw in
            while offset + 4 <= raw.count {
                let k = Int(raw.loadUnaligned(fromByteOffset: offset, as: Int32.self))
                guard k >= 0, offset + 4 + k * 4 <= raw.count else { throw VQError.invalid("\(path) is not a valid .ivecs file") }
                out.append((0..<k).map { raw.loadUnaligned(fromByteOffset: offset + 4 + $0 * 4, as: Int32.self) })
                offset += 4 + k * 4
            }
        }
        return out
    }

    /// Clustered Gaussian data: `count` points around sqrt(count) centres, seeded; queries from the same mixture.
    static func synthetic(count: Int, dim: Int, queries: Int, seed: UInt64) -> BenchDataset {
        var rng = BenchRandom(seed: seed)
        let clusters = max(1, Int(Double(count).squareRoot()))
        var centers = [Float](repeating: 0, count: clusters * dim)
        for i in centers.indices { centers[i] = rng.gaussian() }
        func sample(_ n: Int) -> [Float] {
            var out = [Float](repeating: 0, count: n * dim)
            for i in 0..<n {
                let c = Int(rng.next() % UInt64(clusters))
                for j in 0..<dim { out[i * dim + j] = centers[c * dim + j] + 0.35 * rng.gaussian() }
            }
            return out
        }
        return BenchDataset(name: "synthetic-\(count)x\(dim)", dim: dim, base: sample(count), queries: sample(queries), truth: [])
    }

    /// Exact top-`k` for every query (all cores), by the collection's metric.
    mutating func computeTruth(k: Int, distance: Distance) {
        truth = exactNeighbours(k: k, distance: distance)
    }

    /// Each query's `k` nearest base rows by brute force, among the rows `allowed` admits (all without it).
    func exactNeighbours(k: Int, distance: Distance, allowed: [Bool]? = nil) -> [[Int32]] {
        let dim = self.dim, n = count, nq = queryCount
        var base = self.base
        var queries = self.queries
        if distance.normalizes {
            base.withUnsafeMutableBufferPointer { b in for i in 0..<n { Distance.normalize(UnsafeMutableBufferPointer(rebasing: b[(i * dim)..<((i + 1) * dim)])) } }
            queries.withUnsafeMutableBufferPointer { q in for i in 0..<nq { Distance.normalize(UnsafeMutableBufferPointer(rebasing: q[(i * dim)..<((i + 1) * dim)])) } }
        }
        let out = UnsafeMutableBufferPointer<[Int32]>.allocate(capacity: nq)
        out.initialize(repeating: [])
        defer { out.deallocate() }
        nonisolated(unsafe) let results = out
        let f = DistanceFunction(distance)
        base.withUnsafeBufferPointer { b in
            queries.withUnsafeBufferPointer { q in
                nonisolated(unsafe) let b = b, q = q
                DispatchQueue.concurrentPerform(iterations: nq) { i in
                    var top = TopK(k: k)
                    let qp = q.baseAddress! + i * dim
                    for row in 0..<n where allowed?[row] ?? true {
                        let s = -f(qp, b.baseAddress! + row * dim, dim)
                        if s >= top.threshold { top.push(ScoredKey(score: s, key: UInt64(row))) }
                    }
                    results[i] = top.sorted().map { Int32($0.key) }
                }
            }
        }
        return Array(out)
    }

    /// Writes base.fvecs, query.fvecs and groundtruth.ivecs into `dir` (for hnswlib_compare.py).
    func save(to dir: String) throws {
        try FileIO.makeDirectories(dir)
        func fvecs(_ data: [Float]) -> [UInt8] {
            var out: [UInt8] = []
            out.reserveCapacity(data.count * 4 + data.count / dim * 4)
            for i in 0..<(data.count / dim) {
                withUnsafeBytes(of: Int32(dim).littleEndian) { out.append(contentsOf: $0) }
                data[(i * dim)..<((i + 1) * dim)].withUnsafeBytes { out.append(contentsOf: $0) }
            }
            return out
        }
        try FileIO.writeAtomically(dir + "/base.fvecs", fvecs(base))
        try FileIO.writeAtomically(dir + "/query.fvecs", fvecs(queries))
        var gt: [UInt8] = []
        for row in truth {
            withUnsafeBytes(of: Int32(row.count).littleEndian) { gt.append(contentsOf: $0) }
            row.withUnsafeBytes { gt.append(contentsOf: $0) }
        }
        try FileIO.writeAtomically(dir + "/groundtruth.ivecs", gt)
    }
}

/// SplitMix64 with a Box-Muller Gaussian: seeded, so synthetic data is the same on every run.
struct BenchRandom {
    var state: UInt64
    private var spare: Float?

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        return mix64(state &- 0x9E37_79B9_7F4A_7C15)
    }

    mutating func uniform() -> Double { Double(next() >> 11) / Double(1 << 53) }

    mutating func gaussian() -> Float {
        if let s = spare { spare = nil; return s }
        let u = max(uniform(), 1e-300), v = uniform()
        let r = (-2 * log(u)).squareRoot()
        spare = Float(r * sin(2 * .pi * v))
        return Float(r * cos(2 * .pi * v))
    }
}
