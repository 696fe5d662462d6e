import Foundation
import VQEngine

/// `vq bench --scenario sparse`: sparse search on a generated corpus, against a plain exact
/// inverted-index scan written here (the reference) and a brute-force check of it.
///
/// Documents draw 10 to 60 distinct term ids from a Zipf distribution (exponent 1) over the
/// vocabulary, each with a term frequency of 1 plus a geometric count; values are BM25 term
/// weights (k1 1.2, b 0.75). Queries take 2 to 6 distinct terms from the same distribution,
/// past the 20 most frequent ("stop words"), weight 1. Seeded.
///
/// Every document also carries a 64-d dense vector "dense" (uniform, cosine), so a hybrid query
/// can be measured through the API: RRF over a dense and a sparse prefetch of 20 each, against
/// each search alone, one query at a time in this process (JSON in and out, no network).
struct SparseBenchReport {
    var docs: Int
    var vocabulary: Int
    var entries: Int
    var queries: Int
    var ingestSeconds: Double
    var sealSeconds: Double
    var recall: Double
    var bruteForceAgreement: Double
    var qps1: Double
    var qpsN: Double
    var referenceQPS: Double
    var idfQPS: Double
    var p50: Double, p99: Double
    var threads: Int
    /// API latency percentiles (ms), p50 and p99: dense alone, sparse alone, hybrid RRF.
    var api: [(String, Double, Double)] = []

    var table: String {
        var s = String(format: "sparse corpus: %d documents, %d terms, %.1f entries per document, %d queries, k=10\n",
                       docs, vocabulary, Double(entries) / Double(max(1, docs)), queries)
        s += String(format: "build: ingest %.3f s + seal (postings) %.3f s\n", ingestSeconds, sealSeconds)
        s += String(format: "recall@10 %.4f against the reference scan (which agrees with brute force on %.1f%% of the checked top-10s)\n",
                    recall, bruteForceAgreement * 100)
        s += String(format: "QPS(1) %.0f (reference scan %.0f: %.2fx), QPS(%d) %.0f, with modifier idf %.0f; p50 %.3f ms, p99 %.3f ms\n",
                    qps1, referenceQPS, qps1 / max(1, referenceQPS), threads, qpsN, idfQPS, p50, p99)
        for (name, p50, p99) in api { s += String(format: "API %-28@ p50 %.3f ms, p99 %.3f ms\n", name, p50, p99) }
        return s
    }

    var json: String {
        func r3(_ x: Double) -> JSON { .double((x * 1000).rounded() / 1000) }
        let out: JSON = .object([
            ("engine", .string("vq")), ("scenario", .string("sparse")), ("docs", .int(Int64(docs))), ("vocabulary", .int(Int64(vocabulary))),
            ("entries", .int(Int64(entries))), ("queries", .int(Int64(queries))), ("ingest_seconds", r3(ingestSeconds)),
            ("seal_seconds", r3(sealSeconds)), ("recall", .double((recall * 10000).rounded() / 10000)),
            ("brute_force_agreement", .double((bruteForceAgreement * 10000).rounded() / 10000)),
            ("qps_1", .int(Int64(qps1))), ("qps_n", .int(Int64(qpsN))), ("threads", .int(Int64(threads))),
            ("reference_qps_1", .int(Int64(referenceQPS))), ("idf_qps_1", .int(Int64(idfQPS))), ("p50_ms", r3(p50)), ("p99_ms", r3(p99)),
            ("api", .array(api.map { .object([("query", .string($0.0)), ("p50_ms", r3($0.1)), ("p99_ms", r3($0.2))]) })),
        ])
        return JSONWriter.string(out) + "\n"
    }
}

/// A generated corpus: each document's sorted term ids and weights.
private struct SparseCorpus {
    var docs: [(indices: [UInt32], values: [Float])] = []
    var queries: [[UInt32]] = []

    init(docs count: Int, vocabulary: Int, queries nq: Int, seed: UInt64) {
        var rng = BenchRandom(seed: seed ^ 0x5BA4)
        var cdf = [Double](repeating: 0, count: vocabulary)
        var total = 0.0
        for i in 0..<vocabulary {
            total += 1 / Double(i + 1)
            cdf[i] = total
        }
        func zipf(_ rng: inout BenchRandom) -> UInt32 {
            let u = rng.uniform() * total
            var lo = 0, hi = vocabulary - 1
            while lo < hi {
                let mid = (lo + hi) / 2
                if cdf[mid] < u { lo = mid + 1 } else { hi = mid }
            }
            return UInt32(lo)
        }
        var raw: [[(UInt32, Int)]] = []
        var totalLength = 0
        for _ in 0..<count {
            let want = 10 + Int(rng.next() % 51)
            var terms: [UInt32: Int] = [:]
            var attempts = 0
            while terms.count < want && attempts < want * 8 {
                attempts += 1
                let t = zipf(&rng)
                if terms[t] == nil {
                    var tf = 1
                    while rng.uniform() < 0.3 && tf < 20 { tf += 1 }
                    terms[t] = tf
                }
            }
            let doc = terms.sorted { $0.key < $1.key }
            totalLength += doc.reduce(0) { $0 + $1.value }
            raw.append(doc)
        }
        let average = Double(totalLength) / Double(max(1, count))
        let k1 = 1.2, b = 0.75
        docs = raw.map { doc in
            let length = Double(doc.reduce(0) { $0 + $1.1 })
            return (doc.map(\.0), doc.map { _, tf in Float(Double(tf) * (k1 + 1) / (Double(tf) + k1 * (1 - b + b * length / average))) })
        }
        queries = (0..<nq).map { _ in
            let want = 2 + Int(rng.next() % 5)
            var terms = Set<UInt32>()
            while terms.count < want {
                let t = zipf(&rng)
                if t >= 20 { terms.insert(t) }
            }
            return terms.sorted()
        }
    }
}

/// The reference: term -> (doc, weight) lists and a dense score accumulator, exact.
private struct ReferenceIndex {
    var postings: [UInt32: (docs: [Int32], values: [Float])] = [:]
    let count: Int

    init(_ corpus: SparseCorpus) {
        count = corpus.docs.count
        for (d, doc) in corpus.docs.enumerated() {
            for (t, v) in zip(doc.indices, doc.values) {
                postings[t, default: ([], [])].docs.append(Int32(d))
                postings[t]!.values.append(v)
            }
        }
    }

    func search(_ query: [UInt32], k: Int, scores: inout [Float], touched: inout [Int32]) -> [Int32] {
        touched.removeAll(keepingCapacity: true)
        for t in query {
            guard let p = postings[t] else { continue }
            for (d, v) in zip(p.docs, p.values) {
                if scores[Int(d)] == 0 { touched.append(d) }
                scores[Int(d)] += v
            }
        }
        var top = TopK(k: k)
        for d in touched { top.push(ScoredKey(score: scores[Int(d)], key: UInt64(d))) }
        for d in touched { scores[Int(d)] = 0 }
        return top.sorted().map { Int32($0.key) }
    }
}

func benchSparse(root: String, docs: Int, vocabulary: Int, queries: Int, threads: Int, seed: UInt64, progress: StatusLine) throws -> SparseBenchReport {
    progress.show("bench: generating \(docs) documents...")
    let corpus = SparseCorpus(docs: docs, vocabulary: vocabulary, queries: queries, seed: seed)
    let k = 10
    // The reference answers, checked against brute force on a sample of queries.
    progress.show("bench: reference answers...")
    let reference = ReferenceIndex(corpus)
    var scores = [Float](repeating: 0, count: docs)
    var touched: [Int32] = []
    let truth = corpus.queries.map { reference.search($0, k: k, scores: &scores, touched: &touched) }
    let checked = min(20, queries)
    var agree = 0
    for q in 0..<checked {
        let query = Set(corpus.queries[q])
        var scored: [(Int32, Float)] = []
        for (d, doc) in corpus.docs.enumerated() {
            var s: Float = 0, overlap = false
            for (t, v) in zip(doc.indices, doc.values) where query.contains(t) { s += v; overlap = true }
            if overlap { scored.append((Int32(d), s)) }
        }
        let brute = scored.sorted { $0.1 > $1.1 || ($0.1 == $1.1 && $0.0 < $1.0) }.prefix(k).map(\.0)
        if Set(brute) == Set(truth[q]) { agree += 1 }
    }
    let start = Date()
    for _ in 0..<3 {
        for q in corpus.queries { _ = reference.search(q, k: k, scores: &scores, touched: &touched) }
    }
    let referenceQPS = Double(queries * 3) / Date().timeIntervalSince(start)

    // vq: a collection of one sparse vector "text" (and one with modifier idf), ingested and sealed.
    let engine = try Engine(path: root) { printError("vq: warning: \($0)") }
    defer { try? engine.close() }
    let dim = 64
    var config = CollectionConfig(vectors: VectorLayout(named: [VectorSpec(name: "dense", dim: dim, distance: .cosine)],
                                                        sparse: [SparseSpec(name: "text"), SparseSpec(name: "idf", idf: true)]))
    config.indexingThreshold = 0
    config.defaultSegmentNumber = 1
    try engine.createCollection("sparse", config: config)
    let collection = try engine.collection("sparse")
    var rng = BenchRandom(seed: seed ^ 0xDE75E)
    let (ingest, seal) = try benchLoad(collection, count: docs, batchSize: 1024, progress: progress) { d, batch in
        let doc = corpus.docs[d]
        let v = try SparseVector(indices: doc.indices, values: doc.values)
        let dense = (0..<dim).map { _ in Float(rng.uniform() * 2 - 1) }
        dense.withUnsafeBufferPointer { batch.append(id: .number(UInt64(d)), vectors: [$0], sparse: [v, v], payload: nil) }
    }

    func request(_ q: [UInt32], store: Int) throws -> SearchRequest {
        var r = SearchRequest(vector: [], limit: k, using: store)
        r.sparse = try SparseVector(indices: q, values: q.map { _ in 1 })
        return r
    }
    let requests = try corpus.queries.map { try request($0, store: 1) }   // "text" (sparse stores sort by name: idf, text)
    var found = 0
    for (q, r) in requests.enumerated() {
        let hits = try collection.search(r).hits
        let want = Set(truth[q])
        for h in hits { if case .number(let id) = h.id, want.contains(Int32(id)) { found += 1 } }
    }
    let expected = truth.reduce(0) { $0 + $1.count }
    var latencies: [Double] = []
    var best = Double.infinity
    for _ in 0..<3 {
        var pass: [Double] = []
        let t0 = Date()
        for r in requests {
            let t = DispatchTime.now().uptimeNanoseconds
            _ = try collection.search(r)
            pass.append(Double(DispatchTime.now().uptimeNanoseconds - t) / 1e6)
        }
        let elapsed = Date().timeIntervalSince(t0)
        if elapsed < best { best = elapsed; latencies = pass }
    }
    latencies.sort()
    let perThread = max(1, queries / threads)
    var multi = Double.infinity
    for _ in 0..<3 {
        let t0 = Date()
        DispatchQueue.concurrentPerform(iterations: threads) { t in
            for q in (t * perThread)..<min(queries, (t + 1) * perThread) { _ = try? collection.search(requests[q]) }
        }
        multi = min(multi, Date().timeIntervalSince(t0))
    }
    let idfRequests = try corpus.queries.map { try request($0, store: 0) }
    var idfBest = Double.infinity
    for _ in 0..<3 {
        let t0 = Date()
        for r in idfRequests { _ = try collection.search(r) }
        idfBest = min(idfBest, Date().timeIntervalSince(t0))
    }
    // Through the API, one query at a time: dense alone, sparse alone, and both fused.
    let api = QdrantAPI(engine: engine, config: APIConfig())
    func latency(_ body: (Int) -> String) -> (Double, Double) {
        var times: [Double] = []
        for q in 0..<queries {
            let request = HTTPRequest(method: "POST", path: "/collections/sparse/points/query", body: Array(body(q).utf8))
            let t = DispatchTime.now().uptimeNanoseconds
            let response = api.handle(request)
            times.append(Double(DispatchTime.now().uptimeNanoseconds - t) / 1e6)
            precondition(response.status == 200, String(decoding: response.body, as: UTF8.self))
        }
        times.sort()
        return (percentile(times, 0.5), percentile(times, 0.99))
    }
    func denseJSON(_ q: Int) -> String { "[" + (0..<dim).map { "\(Float(($0 * 7 + q * 13) % 19) / 9 - 1)" }.joined(separator: ",") + "]" }
    func sparseJSON(_ q: Int) -> String {
        #"{"indices":\#(corpus.queries[q]),"values":\#(corpus.queries[q].map { _ in 1 })}"#
    }
    let denseAlone = latency { #"{"query":\#(denseJSON($0)),"using":"dense","limit":10}"# }
    let sparseAlone = latency { #"{"query":\#(sparseJSON($0)),"using":"text","limit":10}"# }
    let hybrid = latency {
        #"{"prefetch":[{"query":\#(denseJSON($0)),"using":"dense","limit":20},{"query":\#(sparseJSON($0)),"using":"text","limit":20}],"#
            + #""query":{"fusion":"rrf"},"limit":10}"#
    }
    var report = SparseBenchReport(docs: docs, vocabulary: vocabulary, entries: corpus.docs.reduce(0) { $0 + $1.indices.count }, queries: queries,
                             ingestSeconds: ingest, sealSeconds: seal, recall: expected == 0 ? 1 : Double(found) / Double(expected),
                             bruteForceAgreement: Double(agree) / Double(max(1, checked)),
                             qps1: Double(queries) / best, qpsN: Double(perThread * threads) / multi, referenceQPS: referenceQPS,
                             idfQPS: Double(queries) / idfBest, p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99), threads: threads)
    report.api = [("dense (64-d, HNSW)", denseAlone.0, denseAlone.1), ("sparse", sparseAlone.0, sparseAlone.1),
                  ("hybrid: dense + sparse, RRF", hybrid.0, hybrid.1)]
    return report
}
