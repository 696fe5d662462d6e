import Foundation
import VQEngine

/// `vq bench --scenario multi`: multi-vector (MaxSim) search on generated late-interaction
/// data, against brute force computed here.
///
/// Documents hold 8 to 32 token vectors, queries 16; tokens are drawn around 256 shared
/// centres (a topic vocabulary) with noise, cosine. Seeded.
struct MultiBenchReport {
    var docs: Int
    var dim: Int
    var tokens: Int
    var queries: Int
    var ingestSeconds: Double
    var indexSeconds: Double
    var rows: [(ef: Int, recall: Double, qps: Double, p50: Double, p99: Double)]
    var bruteForceQPS: Double

    var table: String {
        var s = String(format: "multi-vectors: %d documents, %d tokens (%.1f per document) of %d dimensions, %d queries of 16 tokens, k=10\n",
                       docs, tokens, Double(tokens) / Double(max(1, docs)), dim, queries)
        s += String(format: "build: ingest %.3f s + index %.3f s; brute-force MaxSim here: %.1f QPS\n", ingestSeconds, indexSeconds, bruteForceQPS)
        s += "    ef    recall    QPS(1)   vs brute force   p50 ms   p99 ms\n"
        for r in rows {
            let ef = r.ef == 0 ? "exact" : String(r.ef)
            s += String(format: "%@%@  %8.4f  %8.1f  %14.2fx  %7.3f  %7.3f\n", String(repeating: " ", count: max(0, 6 - ef.count)), ef, r.recall, r.qps,
                        r.qps / max(1e-9, bruteForceQPS), r.p50, r.p99)
        }
        return s
    }

    var json: String {
        func r3(_ x: Double) -> JSON { .double((x * 1000).rounded() / 1000) }
        let out: JSON = .object([
            ("engine", .string("vq")), ("scenario", .string("multi")), ("docs", .int(Int64(docs))), ("dim", .int(Int64(dim))),
            ("tokens", .int(Int64(tokens))), ("queries", .int(Int64(queries))), ("ingest_seconds", r3(ingestSeconds)),
            ("index_seconds", r3(indexSeconds)), ("brute_force_qps", r3(bruteForceQPS)),
            ("rows", .array(rows.map { r in
                .object([("ef", .int(Int64(r.ef))), ("recall", .double((r.recall * 10000).rounded() / 10000)), ("qps_1", r3(r.qps)),
                         ("p50_ms", r3(r.p50)), ("p99_ms", r3(r.p99))])
            })),
        ])
        return JSONWriter.string(out) + "\n"
    }
}

func benchMulti(root: String, docs: Int, dim: Int, queries nq: Int, efs: [Int], seed: UInt64, progress: StatusLine) throws -> MultiBenchReport {
    progress.show("bench: generating \(docs) documents...")
    var rng = BenchRandom(seed: seed ^ 0xC01B)
    func unit(_ v: [Float]) -> [Float] {
        let n = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
        return n > 0 ? v.map { $0 / n } : v
    }
    let centres = (0..<256).map { _ in unit((0..<dim).map { _ in Float(rng.uniform() * 2 - 1) }) }
    func token() -> [Float] {
        let c = centres[Int(rng.next() % 256)]
        return unit(c.map { $0 + Float(rng.uniform() - 0.5) * 0.6 })
    }
    let corpus = (0..<docs).map { _ in (0..<(8 + Int(rng.next() % 25))).flatMap { _ in token() } }
    let queries = (0..<nq).map { _ in (0..<16).flatMap { _ in token() } }
    let k = 10

    // Brute force: plain loops, unit vectors, so MaxSim is a sum of best dot products.
    progress.show("bench: brute-force MaxSim...")
    func maxSim(_ q: [Float], _ d: [Float]) -> Float {
        var total: Float = 0
        for i in stride(from: 0, to: q.count, by: dim) {
            var best = -Float.infinity
            for j in stride(from: 0, to: d.count, by: dim) {
                var s: Float = 0
                for x in 0..<dim { s += q[i + x] * d[j + x] }
                best = max(best, s)
            }
            total += best
        }
        return total
    }
    let start = Date()
    let truth: [[Int]] = queries.map { q -> [Int] in
        let scored: [(Int, Float)] = corpus.indices.map { ($0, maxSim(q, corpus[$0])) }
        let ranked = scored.sorted { (a: (Int, Float), b: (Int, Float)) -> Bool in a.1 > b.1 || (a.1 == b.1 && a.0 < b.0) }
        return ranked.prefix(k).map { $0.0 }
    }
    let bruteForceQPS = Double(nq) / Date().timeIntervalSince(start)

    let engine = try Engine(path: root) { printError("vq: warning: \($0)") }
    defer { try? engine.close() }
    // A token graph (hnsw_config.m on the vector) for the ef rows; "exact" scores every document.
    var config = CollectionConfig(vectors: VectorLayout(named: [], multi: [VectorSpec(name: "colbert", dim: dim, distance: .cosine, m: 16)]))
    config.indexingThreshold = 0
    config.defaultSegmentNumber = 1
    try engine.createCollection("multi", config: config)
    let collection = try engine.collection("multi")
    let (ingest, index) = try benchLoad(collection, count: docs, batchSize: 256, progress: progress) { d, batch in
        batch.append(id: .number(UInt64(d)), vectors: [], multi: [corpus[d]], payload: nil)
    }

    var rows: [(ef: Int, recall: Double, qps: Double, p50: Double, p99: Double)] = []
    // ef 0 in the report: exact MaxSim over every document (no graph), vq's kernels.
    for ef in [0] + efs {
        progress.show("bench: ef \(ef)...")
        var found = 0
        var times: [Double] = []
        var best = Double.infinity
        for pass in 0..<2 {
            var pass1: [Double] = []
            let t0 = Date()
            for (q, query) in queries.enumerated() {
                var r = SearchRequest(vector: [], limit: k, using: 0)
                r.multi = query
                if ef == 0 { r.exact = true } else { r.hnswEf = ef }
                let t = DispatchTime.now().uptimeNanoseconds
                let hits = try collection.search(r).hits
                pass1.append(Double(DispatchTime.now().uptimeNanoseconds - t) / 1e6)
                if pass == 0 {
                    let want = Set(truth[q])
                    for h in hits { if case .number(let id) = h.id, want.contains(Int(id)) { found += 1 } }
                }
            }
            let elapsed = Date().timeIntervalSince(t0)
            if elapsed < best { best = elapsed; times = pass1 }
        }
        times.sort()
        rows.append((ef, Double(found) / Double(nq * k), Double(nq) / best, percentile(times, 0.5), percentile(times, 0.99)))
    }
    return MultiBenchReport(docs: docs, dim: dim, tokens: corpus.reduce(0) { $0 + $1.count / dim }, queries: nq, ingestSeconds: ingest,
                            indexSeconds: index, rows: rows, bruteForceQPS: bruteForceQPS)
}
