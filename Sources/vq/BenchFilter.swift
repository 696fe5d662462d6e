import Foundation
import VQEngine

/// `vq bench --scenario filter`: filtered searches at several selectivities, with and without
/// payload indexes, against the same queries unfiltered.
///
/// Every point gets `{"cat": KEYWORD, "num": INT}`: cat is "p01" for 0.1% of the points, "p1" for
/// 1%, "p10" for 10%, "p50" for 50%, else "rest"; num is uniform in [0, 1,000,000). Seeded.
/// Filters: each keyword value, and num ranges holding 0.1%, 1%, 2%, 3%, 5%, 10%, 50% and 90%.
struct FilterBenchReport {
    struct Row {
        var label: String
        var selectivity: Double
        var mode: String
        var row: BenchRow
        var baseline: Double
    }
    var dataset: String
    var count: Int
    var dim: Int
    var indexSeconds: Double
    var indexBytes: Int
    var rows: [Row]

    var table: String {
        var s = "dataset \(dataset): \(count) x \(dim), filtered search; payload indexes built in "
            + String(format: "%.3f s, about %.1f MB\n", indexSeconds, Double(indexBytes) / 1e6)
        s += "filter                  select  mode       ef    recall     QPS(1)  vs unfiltered\n"
        for r in rows {
            s += String(format: "%-22@ %7.3f%%  %-9@ %4d  %8.4f %10.0f  %6.2fx\n", r.label, r.selectivity * 100, r.mode, r.row.ef,
                        r.row.recall, r.row.qps1, r.baseline > 0 ? r.row.qps1 / r.baseline : 0)
        }
        return s
    }

    var json: String {
        let out: JSON = .object([
            ("engine", .string("vq")), ("scenario", .string("filter")), ("dataset", .string(dataset)),
            ("count", .int(Int64(count))), ("dim", .int(Int64(dim))),
            ("index_seconds", .double((indexSeconds * 1000).rounded() / 1000)), ("index_bytes", .int(Int64(indexBytes))),
            ("rows", .array(rows.map { r in
                .object([("filter", .string(r.label)), ("selectivity", .double(r.selectivity)), ("mode", .string(r.mode)),
                         ("ef", .int(Int64(r.row.ef))), ("recall", .double((r.row.recall * 10000).rounded() / 10000)),
                         ("qps_1", .int(Int64(r.row.qps1))), ("unfiltered_qps_1", .int(Int64(r.baseline)))])
            })),
        ])
        return JSONWriter.string(out) + "\n"
    }
}

func benchFilter(root: String, config base: CollectionConfig, dataset d: BenchDataset, k: Int, efs: [Int], threads: Int,
                 oversampling: Double = 1, seed: UInt64, progress: StatusLine) throws -> FilterBenchReport {
    var config = base
    config.indexingThreshold = 0
    config.defaultSegmentNumber = 1
    var rng = BenchRandom(seed: seed ^ 0xF11)
    let cats = (0..<d.count).map { _ -> String in
        let r = Double(rng.next() % 1_000_000) / 1_000_000
        return r < 0.001 ? "p01" : r < 0.011 ? "p1" : r < 0.111 ? "p10" : r < 0.611 ? "p50" : "rest"
    }
    let nums = (0..<d.count).map { _ in Int(rng.next() % 1_000_000) }
    let engine = try Engine(path: root) { printError("vq: warning: \($0)") }
    let name = "bench"
    if engine.hasCollection(name) {
        throw VQError(.conflict, "\(root) already has a collection \"bench\"", hint: "use an empty --data-dir")
    }
    try engine.createCollection(name, config: config)
    progress.show("bench: ingesting \(d.count) points with payloads...")
    let collection = try engine.collection(name)
    _ = try benchIngest(collection, d) { Array("{\"cat\":\"\(cats[$0])\",\"num\":\(nums[$0])}".utf8) }
    progress.show("bench: indexing...")
    _ = try collection.settle()
    _ = try collection.optimize()
    progress.show("bench: payload indexes...")
    let indexStart = Date()
    _ = try engine.updateCollection(name) { c in
        c.payloadSchema["cat"] = PayloadFieldSchema(type: .keyword)
        c.payloadSchema["num"] = PayloadFieldSchema(type: .integer)
    }
    let indexSeconds = Date().timeIntervalSince(indexStart)
    let indexBytes = collection.shards.reduce(0) { $0 + $1.payloadIndexBytes }

    let filters: [(String, (Int) -> Bool, String)] = [
        ("cat = p01 (keyword)", { cats[$0] == "p01" }, #"{"must":[{"key":"cat","match":{"value":"p01"}}]}"#),
        ("cat = p1 (keyword)", { cats[$0] == "p1" }, #"{"must":[{"key":"cat","match":{"value":"p1"}}]}"#),
        ("cat = p10 (keyword)", { cats[$0] == "p10" }, #"{"must":[{"key":"cat","match":{"value":"p10"}}]}"#),
        ("cat = p50 (keyword)", { cats[$0] == "p50" }, #"{"must":[{"key":"cat","match":{"value":"p50"}}]}"#),
        ("num < 1000 (range)", { nums[$0] < 1000 }, #"{"must":[{"key":"num","range":{"lt":1000}}]}"#),
        ("num < 10000 (range)", { nums[$0] < 10_000 }, #"{"must":[{"key":"num","range":{"lt":10000}}]}"#),
        ("num < 20000 (range)", { nums[$0] < 20_000 }, #"{"must":[{"key":"num","range":{"lt":20000}}]}"#),
        ("num < 30000 (range)", { nums[$0] < 30_000 }, #"{"must":[{"key":"num","range":{"lt":30000}}]}"#),
        ("num < 50000 (range)", { nums[$0] < 50_000 }, #"{"must":[{"key":"num","range":{"lt":50000}}]}"#),
        ("num < 100000 (range)", { nums[$0] < 100_000 }, #"{"must":[{"key":"num","range":{"lt":100000}}]}"#),
        ("num < 500000 (range)", { nums[$0] < 500_000 }, #"{"must":[{"key":"num","range":{"lt":500000}}]}"#),
        ("num < 900000 (range)", { nums[$0] < 900_000 }, #"{"must":[{"key":"num","range":{"lt":900000}}]}"#),
    ]
    var baselines: [Int: Double] = [:]
    for ef in efs {
        progress.show("bench: unfiltered, ef \(ef)...")
        baselines[ef] = try benchSearch(collection, d, k: k, ef: ef, threads: 1, oversampling: oversampling).qps1
    }
    var prepared: [(String, Double, Filter, [[Int32]])] = []
    for (label, accept, json) in filters {
        progress.show("bench: exact neighbours for \(label)...")
        let mask = (0..<d.count).map(accept)
        let truth = d.exactNeighbours(k: k, distance: config.vectors[0].distance, allowed: mask)
        prepared.append((label, Double(mask.lazy.filter { $0 }.count) / Double(d.count), try Filter(json: try JSONParser.parse(Array(json.utf8))), truth))
    }
    var rows: [FilterBenchReport.Row] = []
    for mode in ["indexed", "no index"] {
        if mode == "no index" { _ = try engine.updateCollection(name) { $0.payloadSchema = PayloadSchema() } }
        let c = try engine.collection(name)
        for (label, selectivity, filter, truth) in prepared {
            for ef in efs {
                progress.show("bench: \(label), \(mode), ef \(ef)...")
                // Without indexes every query parses every point's payload: 20 queries say enough.
                let row = try benchSearch(c, d, k: k, ef: ef, threads: 1, filter: filter, truth: truth, passes: mode == "indexed" ? 3 : 1,
                                          queries: mode == "indexed" ? nil : 20, oversampling: oversampling)
                rows.append(.init(label: label, selectivity: selectivity, mode: mode, row: row, baseline: baselines[ef] ?? 0))
            }
        }
    }
    try engine.close()
    return FilterBenchReport(dataset: d.name, count: d.count, dim: d.dim, indexSeconds: indexSeconds, indexBytes: indexBytes, rows: rows)
}
