import Foundation
import Testing
@testable import VQEngine

@Suite struct HNSWTests {
    struct Data {
        var dim: Int
        var vectors: [Float]
        var queries: [[Float]]
        var count: Int { vectors.count / dim }
    }

    /// Clustered, seeded data (normalised for cosine).
    func data(count: Int, dim: Int, seed: UInt64, distance: Distance) -> Data {
        var rng = SplitMix64(seed: seed)
        let centers = (0..<20).map { _ in rng.vector(dim) }
        func point() -> [Float] {
            var v = centers[Int.random(in: 0..<20, using: &rng)].map { $0 + 0.3 * rng.float() }
            if distance.normalizes { v.withUnsafeMutableBufferPointer { Distance.normalize($0) } }
            return v
        }
        return Data(dim: dim, vectors: (0..<count).flatMap { _ in point() }, queries: (0..<50).map { _ in point() })
    }

    func exact(_ d: Data, _ q: [Float], _ f: DistanceFunction, k: Int, deleted: Set<Int> = []) -> [UInt32] {
        var top = TopK(k: k)
        d.vectors.withUnsafeBufferPointer { v in
            q.withUnsafeBufferPointer { qp in
                for i in 0..<d.count where !deleted.contains(i) {
                    top.push(ScoredKey(score: -f(qp.baseAddress!, v.baseAddress! + i * d.dim, d.dim), key: UInt64(i)))
                }
            }
        }
        return top.sorted().map { UInt32($0.key) }
    }

    func recall(_ g: HNSWGraph, _ d: Data, _ f: DistanceFunction, ef: Int, deleted: [UInt64]? = nil, deletedSet: Set<Int> = []) -> Double {
        var hits = 0
        for q in d.queries {
            let truth = Set(exact(d, q, f, k: 10, deleted: deletedSet))
            let got = d.vectors.withUnsafeBufferPointer { v in
                q.withUnsafeBufferPointer { qp in
                    deleted.map { bits in
                        bits.withUnsafeBufferPointer { g.search(qp.baseAddress!, vectors: v.baseAddress!, dim: d.dim, distance: f, k: 10, ef: ef, deleted: $0.baseAddress!) }
                    } ?? g.search(qp.baseAddress!, vectors: v.baseAddress!, dim: d.dim, distance: f, k: 10, ef: ef, deleted: nil)
                }
            }
            for c in got {
                #expect(!deletedSet.contains(Int(c.node)), "a deleted row was returned")
                if truth.contains(c.node) { hits += 1 }
            }
        }
        return Double(hits) / Double(d.queries.count * 10)
    }

    func build(_ d: Data, _ distance: Distance, threads: Int) -> HNSWGraph {
        d.vectors.withUnsafeBufferPointer {
            HNSWBuilder.build(vectors: $0.baseAddress!, count: d.count, dim: d.dim, distance: distance,
                              params: HNSWParams(m: 8, efConstruct: 64, threads: threads))!
        }
    }

    @Test("recall@10 stays above 0.9 for every distance (one thread: deterministic)", arguments: Distance.allCases)
    func recallFloor(distance: Distance) {
        let d = data(count: 2000, dim: 16, seed: 3, distance: distance)
        let g = build(d, distance, threads: 1)
        #expect(recall(g, d, DistanceFunction(distance), ef: 64) >= 0.9)
        // A wider beam never hurts much; exact enough at ef = count.
        #expect(recall(g, d, DistanceFunction(distance), ef: 400) >= 0.99)
    }

    @Test("a multi-threaded build gives a well-formed graph with good recall")
    func parallelBuild() {
        let d = data(count: 3000, dim: 16, seed: 5, distance: .euclid)
        let g = build(d, .euclid, threads: 2)
        for node in 0..<UInt32(g.count) {
            let list = g.links(node, level: 0)
            let n = Int(list[0])
            #expect(n >= 1 && n <= g.m0)
            for j in 1...max(1, n) where j <= n {
                #expect(list[j] < UInt32(g.count) && list[j] != node)
            }
        }
        #expect(recall(g, d, DistanceFunction(.euclid), ef: 64) >= 0.85)
    }

    @Test("a build seeded with an earlier graph (some of its rows dropped and renumbered) inserts only the rest and keeps recall")
    func seeded() {
        let d = data(count: 3000, dim: 16, seed: 21, distance: .euclid)
        // The seed: a graph over 2,200 rows, of which every tenth is dropped by the "merge"; the
        // new rows are the seed's survivors (renumbered 0...) then the other 1,000.
        let seedRows = Array(0..<2200)
        let kept = seedRows.filter { $0 % 10 != 3 }
        let seedData = Data(dim: 16, vectors: seedRows.flatMap { Array(d.vectors[($0 * 16)..<(($0 + 1) * 16)]) }, queries: d.queries)
        let seedGraph = build(seedData, .euclid, threads: 1)
        let order = kept + Array(2200..<3000)
        let merged = Data(dim: 16, vectors: order.flatMap { Array(d.vectors[($0 * 16)..<(($0 + 1) * 16)]) }, queries: d.queries)
        let g = merged.vectors.withUnsafeBufferPointer {
            HNSWBuilder.build(vectors: $0.baseAddress!, count: merged.count, dim: 16, distance: .euclid,
                              params: HNSWParams(m: 8, efConstruct: 64, threads: 2), seed: (seedGraph, kept.map(Int32.init)))!
        }
        #expect(g.count == merged.count)
        // The survivors keep their levels; no link points at a dropped or missing node.
        for (i, old) in kept.enumerated() { #expect(g.levels[i] == seedGraph.levels[old]) }
        for node in 0..<UInt32(g.count) {
            let list = g.links(node, level: 0)
            for j in 0..<Int(list[0]) { #expect(list[1 + j] < UInt32(g.count) && list[1 + j] != node) }
        }
        #expect(recall(g, merged, DistanceFunction(.euclid), ef: 64) >= 0.9)
        // A seed of another m is not used (the build starts afresh and still works).
        let other = merged.vectors.withUnsafeBufferPointer {
            HNSWBuilder.build(vectors: $0.baseAddress!, count: merged.count, dim: 16, distance: .euclid,
                              params: HNSWParams(m: 12, efConstruct: 64, threads: 1), seed: (seedGraph, kept.map(Int32.init)))!
        }
        #expect(recall(other, merged, DistanceFunction(.euclid), ef: 64) >= 0.9)
        // ...and really not: its own m, and the survivors' levels drawn anew rather than kept.
        #expect(other.m == 12)
        #expect(kept.indices.contains { other.levels[$0] != seedGraph.levels[kept[$0]] })
    }

    @Test("tombstoned rows are walked through but never returned")
    func tombstones() {
        let d = data(count: 2000, dim: 16, seed: 9, distance: .dot)
        let g = build(d, .dot, threads: 1)
        var bits = [UInt64](repeating: 0, count: (d.count + 63) / 64)
        var deleted = Set<Int>()
        for i in stride(from: 0, to: d.count, by: 3) {
            bits[i >> 6] |= 1 << UInt64(i & 63)
            deleted.insert(i)
        }
        #expect(recall(g, d, DistanceFunction(.dot), ef: 64, deleted: bits, deletedSet: deleted) >= 0.85)
    }

    @Test("a graph file round-trips, and a damaged one is refused")
    func files() throws {
        let tmp = TempDir()
        let d = data(count: 500, dim: 8, seed: 1, distance: .euclid)
        let g = build(d, .euclid, threads: 1)
        let path = tmp.path + "/hnsw.bin"
        try g.write(to: path)
        let back = try HNSWGraph.open(path)
        #expect(back.count == g.count && back.entryPoint == g.entryPoint && back.maxLevel == g.maxLevel)
        let f = DistanceFunction(.euclid)
        for q in d.queries {
            let a = d.vectors.withUnsafeBufferPointer { v in q.withUnsafeBufferPointer { g.search($0.baseAddress!, vectors: v.baseAddress!, dim: 8, distance: f, k: 5, ef: 32, deleted: nil) } }
            let b = d.vectors.withUnsafeBufferPointer { v in q.withUnsafeBufferPointer { back.search($0.baseAddress!, vectors: v.baseAddress!, dim: 8, distance: f, k: 5, ef: 32, deleted: nil) } }
            #expect(a.map(\.node) == b.map(\.node))
        }
        var bytes = try FileIO.readAll(path)
        bytes[bytes.count / 2] ^= 0x10
        try FileIO.writeAtomically(path, bytes)
        #expect(throws: VQError.self) { _ = try HNSWGraph.open(path) }
        try FileIO.writeAtomically(path, Array(bytes.prefix(100)))
        #expect(throws: VQError.self) { _ = try HNSWGraph.open(path) }
    }

    @Test("a build asked to stop returns nothing")
    func cancel() {
        let d = data(count: 2000, dim: 8, seed: 2, distance: .euclid)
        let g = d.vectors.withUnsafeBufferPointer {
            HNSWBuilder.build(vectors: $0.baseAddress!, count: d.count, dim: d.dim, distance: .euclid,
                              params: HNSWParams(m: 8, efConstruct: 32, threads: 1), shouldContinue: { false })
        }
        #expect(g == nil)
    }

    @Test("the C kernels agree with the Swift oracle", arguments: [1, 7, 16, 17, 100, 384])
    func kernels(dim: Int) {
        var rng = SplitMix64(seed: UInt64(dim))
        let a = rng.vector(dim), b = rng.vector(dim)
        let tol = Float(dim) * 1e-5
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                #expect(abs(DistanceFunction(.dot)(pa.baseAddress!, pb.baseAddress!, dim) + DistanceKernels.scalarDot(a, b)) <= tol)
                #expect(abs(DistanceFunction(.euclid)(pa.baseAddress!, pb.baseAddress!, dim) - DistanceKernels.scalarSquaredL2(a, b)) <= tol)
                #expect(abs(DistanceFunction(.manhattan)(pa.baseAddress!, pb.baseAddress!, dim) - DistanceKernels.scalarL1(a, b)) <= tol)
            }
        }
    }
}
