import Foundation
import VQEngine

/// `vq bench`: build time, recall@k and QPS/latency over an ef sweep; or the write-load scenario.
///
/// Build = ingest through the engine (WAL, queue, segments) + `optimize` (HNSW),
/// in a temporary data directory unless --data-dir is given.
func bench(_ args: Arguments) throws -> Int32 {
    let k = try args.int("limit", default: 10, in: 1...1000)
    let threads = try args.int("threads", default: ProcessInfo.processInfo.activeProcessorCount, in: 1...1024)
    let efs = try (args.string("ef") ?? "16,32,48,64,96,128").split(separator: ",").map { text -> Int in
        guard let v = Int(text.trimmingCharacters(in: .whitespaces)), v >= 1 else {
            throw UsageError(message: "--ef has '\(text)'; expected a comma-separated list of positive integers")
        }
        return v
    }
    let distanceName = args.string("distance") ?? "cosine"
    guard let distance = Distance(name: distanceName) else {
        throw UsageError(message: "--distance is '\(distanceName)'; expected cosine, dot, euclid or manhattan")
    }
    // Options a scenario has no use for are refused by name, not ignored.
    try args.refuse(["collection", "clients", "rate"], "without --url (they drive a server)")
    let generated = ["base", "queries", "groundtruth", "save-dataset", "distance", "limit", "m", "ef-construct", "full-scan-threshold",
                     "quantization", "quantile", "oversampling", "default-path", "default-segment-number", "named-vectors", "duration"]
    if args.string("scenario") == "sparse" || args.string("scenario") == "multi" {
        try args.refuse(generated + (args.string("scenario") == "sparse" ? ["ef"] : ["threads"]), "to --scenario \(args.string("scenario")!)")
        guard args.positionals.isEmpty else {
            throw UsageError(message: "--scenario \(args.string("scenario")!) generates its data (--synthetic); a dataset directory does not apply")
        }
    }
    if args.string("quantization") == nil { try args.refuse(["quantile"], "without --quantization int8") }
    if !args.has("default-path") { try args.refuse(["default-segment-number"], "without --default-path") }
    if args.string("scenario") ?? "recall" != "recall" { try args.refuse(["default-path", "named-vectors"], "outside --scenario recall") }
    if args.string("scenario") == "write-load" { try args.refuse(["oversampling", "ef"], "to --scenario write-load") }
    if args.string("scenario") == "write-load" { try args.refuse(["threads"], "to --scenario write-load (one writer, one searcher)") }
    if args.string("scenario") != "write-load" { try args.refuse(["duration"], "without --scenario write-load or --url") }
    if args.string("scenario") == "sparse" {
        // A generated sparse corpus: --synthetic DOCS,VOCABULARY.
        let spec = (args.string("synthetic") ?? "200000,30000").split(separator: ",").compactMap { Int($0) }
        guard spec.count == 2, spec[0] > 0, spec[1] >= 100 else {
            throw UsageError(message: "--synthetic is '\(args.string("synthetic") ?? "")'; with --scenario sparse expected DOCS,VOCABULARY such as 200000,30000")
        }
        let keep = args.benchDataDir
        let root = keep ?? (FileManager.default.temporaryDirectory.path + "/vq-bench-\(getpid())")
        defer { if keep == nil { try? FileIO.removeTree(root) } }
        let progress = StatusLine(quiet: args.quiet)
        let report = try benchSparse(root: root, docs: spec[0], vocabulary: spec[1], queries: try args.int("queries-count", default: 200, in: 1...100_000),
                                     threads: threads, seed: UInt64(try args.int("seed", default: 42, in: 0...Int.max)), progress: progress)
        progress.clear()
        standardOutput.write(args.has("json") ? report.json : report.table)
        return 0
    }
    if args.string("scenario") == "multi" {
        // Generated late-interaction data: --synthetic DOCS,DIM.
        let spec = (args.string("synthetic") ?? "10000,64").split(separator: ",").compactMap { Int($0) }
        guard spec.count == 2, spec[0] > 0, (1...4096).contains(spec[1]) else {
            throw UsageError(message: "--synthetic is '\(args.string("synthetic") ?? "")'; with --scenario multi expected DOCS,DIM such as 10000,64")
        }
        let keep = args.benchDataDir
        let root = keep ?? (FileManager.default.temporaryDirectory.path + "/vq-bench-\(getpid())")
        defer { if keep == nil { try? FileIO.removeTree(root) } }
        let progress = StatusLine(quiet: args.quiet)
        let report = try benchMulti(root: root, docs: spec[0], dim: spec[1], queries: try args.int("queries-count", default: 100, in: 1...100_000),
                                    efs: args.string("ef") == nil ? [32, 64, 128] : efs, seed: UInt64(try args.int("seed", default: 42, in: 0...Int.max)),
                                    progress: progress)
        progress.clear()
        standardOutput.write(args.has("json") ? report.json : report.table)
        return 0
    }
    let dataset = try loadBenchDataset(args, k: k, distance: distance)
    if let dir = args.string("save-dataset") { try dataset.save(to: dir) }
    let scenario = args.string("scenario") ?? "recall"
    var config = CollectionConfig(dim: dataset.dim, distance: distance)
    config.m = try args.int("m", default: 16, in: 2...512)
    config.efConstruct = try args.int("ef-construct", default: 100, in: 4...10_000)
    let oversampling = args.string("oversampling") == nil ? 1 : try args.double("oversampling", in: 1...100)
    config.quantization = try quantizationFlag(args)
    config.maxIndexingThreads = scenario == "recall" ? threads : 0
    if args.string("full-scan-threshold") != nil { config.fullScanThreshold = try args.int("full-scan-threshold", default: 0, in: 0...Int(Int32.max)) }
    config.maxSegmentSize = max(CollectionConfig.automaticMaxSegmentSize, dataset.count * dataset.dim * 4 / 1024 + 1)
    let json = args.has("json")
    let progress = StatusLine(quiet: args.quiet)

    let keep = args.benchDataDir
    let root = keep ?? (FileManager.default.temporaryDirectory.path + "/vq-bench-\(getpid())")
    defer { if keep == nil { try? FileIO.removeTree(root) } }
    switch scenario {
    case "recall":
        // A bulk load as Qdrant's docs advise: no indexing while ingesting, then one optimize
        // that indexes everything into one segment (default_segment_number 1). --default-path
        // builds as a user does instead: a collection with default settings, upserted as `vq
        // upsert` does (indexing while it ingests, every core), then waited for.
        let defaultPath = args.has("default-path")
        if defaultPath {
            config.maxIndexingThreads = 0
            config.maxSegmentSize = nil
            // The automatic count (1) unless asked otherwise, to measure the rule.
            config.defaultSegmentNumber = try args.int("default-segment-number", default: 0, in: 0...1024)
        } else {
            config.indexingThreshold = 0
            config.defaultSegmentNumber = 1
        }
        if args.has("named-vectors") {
            config.vectors = VectorLayout(named: [VectorSpec(name: "dense", dim: dataset.dim, distance: distance),
                                                  VectorSpec(name: "extra", dim: 8, distance: .dot)])
        }
        let engine = try Engine(path: root) { printError("vq: warning: \($0)") }
        engine.indexWithEveryCore = defaultPath
        let name = "bench"
        if engine.hasCollection(name) {
            throw VQError(.conflict, "\(root) already has a collection \"bench\"", hint: "use an empty --data-dir")
        }
        try engine.createCollection(name, config: config)
        let collection = try engine.collection(name)
        progress.show("bench: ingesting \(dataset.count) points...")
        let ingest = try benchIngest(collection, dataset)
        progress.show("bench: indexing...")
        let indexStart = Date()
        _ = try collection.settle()
        if !defaultPath { _ = try collection.optimize() }
        let indexSeconds = Date().timeIntervalSince(indexStart)
        let segments = collection.status.segmentCount
        var rows: [BenchRow] = []
        for ef in efs {
            progress.show("bench: ef \(ef)...")
            rows.append(try benchSearch(collection, dataset, k: k, ef: ef, threads: threads, oversampling: oversampling))
        }
        progress.clear()
        try engine.close()
        var result = BenchResult(dataset: dataset, k: k, threads: threads, ingestSeconds: ingest, indexSeconds: indexSeconds, rows: rows)
        result.segments = segments
        standardOutput.write(json ? result.json : result.table)
    case "filter":
        let report = try benchFilter(root: root, config: config, dataset: dataset, k: k, efs: args.string("ef") == nil ? [64] : efs,
                                     threads: threads, oversampling: oversampling, seed: UInt64(try args.int("seed", default: 42, in: 0...Int.max)),
                                     progress: progress)
        progress.clear()
        standardOutput.write(json ? report.json : report.table)
    case "write-load":
        let seconds = try args.int("duration", default: 10, in: 1...3600)
        let report = try benchWriteLoad(root: root, config: config, dataset: dataset, k: k, seconds: Double(seconds), progress: progress)
        progress.clear()
        standardOutput.write(json ? report.json : report.table)
    default:
        throw UsageError(message: "--scenario is '\(scenario)'; expected recall, filter, sparse, multi or write-load"
                         + suggestion(scenario, ["recall", "filter", "sparse", "multi", "write-load"]))
    }
    return 0
}

func loadBenchDataset(_ args: Arguments, k: Int, distance: Distance) throws -> BenchDataset {
    if let spec = args.string("synthetic") {
        let parts = spec.split(separator: ",").compactMap { Int($0) }
        guard parts.count == 2, parts[0] > 0, parts[1] > 0 else {
            throw UsageError(message: "--synthetic is '\(spec)'; expected N,DIM such as 200000,128")
        }
        let queries = try args.int("queries-count", default: 1000, in: 1...1_000_000)
        let seed = UInt64(try args.int("seed", default: 42, in: 0...Int.max))
        var d = BenchDataset.synthetic(count: parts[0], dim: parts[1], queries: queries, seed: seed)
        d.computeTruth(k: max(k, 10), distance: distance)
        return d
    }
    var basePath = args.string("base"), queryPath = args.string("queries"), truthPath = args.string("groundtruth")
    if let dir = args.positionals.first {
        basePath = basePath ?? dir + "/base.fvecs"
        queryPath = queryPath ?? dir + "/query.fvecs"
        if truthPath == nil && FileIO.exists(dir + "/groundtruth.ivecs") { truthPath = dir + "/groundtruth.ivecs" }
    }
    guard let basePath, let queryPath else {
        throw UsageError(message: "'vq bench' needs a dataset: DIR (base.fvecs, query.fvecs, groundtruth.ivecs), --base and --queries, or --synthetic N,DIM")
    }
    let base = try BenchDataset.readVectors(basePath)
    let queries = try BenchDataset.readVectors(queryPath)
    guard base.dim == queries.dim else {
        throw VQError.invalid("queries have \(dimensions(queries.dim)); the base vectors have \(base.dim)")
    }
    var d = BenchDataset(name: URL(fileURLWithPath: basePath).deletingLastPathComponent().lastPathComponent, dim: base.dim,
                         base: base.data, queries: queries.data, truth: [])
    if let truthPath {
        d.truth = try BenchDataset.readIvecs(truthPath)
        guard d.truth.count >= d.queryCount, d.truth.allSatisfy({ $0.count >= k }) else {
            throw VQError.invalid("\(truthPath) has fewer than \(k) neighbours for some of the \(d.queryCount) queries")
        }
    } else {
        d.computeTruth(k: k, distance: distance)
    }
    return d
}

/// The vector benchmarks search: the unnamed one, or "dense" with --named-vectors.
func benchVector(_ collection: VectorCollection) -> Int {
    collection.config.vectors.named ? (try? collection.config.vectors.index("dense")) ?? 0 : 0
}

/// Upserts the whole dataset through the engine; returns seconds until durable. With named
/// vectors the dataset is vector "dense" and every other vector is the start of it, repeated.
/// - Parameter payload: each point's payload JSON by row (none without it).
func benchIngest(_ collection: VectorCollection, _ d: BenchDataset, idOffset: Int = 0, payload: ((Int) -> [UInt8]?)? = nil) throws -> Double {
    let start = Date()
    let layout = collection.config.vectors
    let main = benchVector(collection)
    var batch = PointBatch(layout)
    var ticket = WriteTicket()
    try d.base.withUnsafeBufferPointer { base in
        for i in 0..<d.count {
            let vector = UnsafeBufferPointer(rebasing: base[(i * d.dim)..<((i + 1) * d.dim)])
            if layout.count == 1 {
                batch.append(id: .number(UInt64(i + idOffset)), vector: vector, payload: payload?(i))
            } else {
                let others = layout.specs.indices.map { k in k == main ? [] : (0..<layout[k].dim).map { vector[$0 % d.dim] } }
                withOptionalBuffers(others) { buffers in
                    batch.append(id: .number(UInt64(i + idOffset)), vectors: layout.specs.indices.map { $0 == main ? vector : buffers[$0] },
                                 payload: payload?(i))
                }
            }
            if batch.count == 1024 || i == d.count - 1 {
                ticket.merge(try collection.upsert(&batch, wait: .queued))
                batch.removeAll()
            }
        }
    }
    try collection.wait(ticket, .durable)
    return Date().timeIntervalSince(start)
}

/// Upserts `count` points that `add` appends (point i into the batch), `batchSize` at a time,
/// waits until durable, then settles and optimizes (seals and indexes).
/// - Returns: seconds of ingest and of indexing.
func benchLoad(_ collection: VectorCollection, count: Int, batchSize: Int, progress: StatusLine,
               _ add: (Int, inout PointBatch) throws -> Void) throws -> (ingest: Double, index: Double) {
    progress.show("bench: ingesting...")
    var start = Date()
    var batch = PointBatch(collection.config.vectors)
    var ticket = WriteTicket()
    for i in 0..<count {
        try add(i, &batch)
        if batch.count == batchSize || i == count - 1 {
            ticket.merge(try collection.upsert(&batch, wait: .queued))
            batch.removeAll()
        }
    }
    try collection.wait(ticket, .durable)
    let ingest = Date().timeIntervalSince(start)
    progress.show("bench: indexing...")
    start = Date()
    _ = try collection.settle()
    _ = try collection.optimize()
    return (ingest, Date().timeIntervalSince(start))
}

struct BenchRow {
    var ef: Int
    var recall: Double
    var qps1: Double
    var qpsN: Double
    var p50: Double, p95: Double, p99: Double, max: Double
}

/// The nearest-rank percentile of sorted values.
func percentile(_ sorted: [Double], _ p: Double) -> Double {
    guard !sorted.isEmpty else { return 0 }
    let rank = Int((p * Double(sorted.count)).rounded(.up)) - 1
    return sorted[min(sorted.count - 1, max(0, rank))]
}

/// Recall@k, single-thread QPS and latency percentiles, then QPS with `threads` threads.
/// - Parameters:
///   - filter: applied to every query; `truth` is then the exact neighbours among the points passing it.
func benchSearch(_ collection: VectorCollection, _ d: BenchDataset, k: Int, ef: Int, threads: Int,
                 filter: Filter? = nil, truth: [[Int32]]? = nil, passes: Int = 3, queries: Int? = nil, oversampling: Double = 1) throws -> BenchRow {
    var request = SearchRequest(vector: [], limit: k, using: benchVector(collection))
    request.quantization = QuantizedSearch(oversampling: oversampling)
    request.hnswEf = ef
    request.filter = filter
    let truthRows = truth ?? d.truth
    let nq = min(d.queryCount, queries ?? d.queryCount)
    var hits = 0
    var latencies: [Double] = []
    latencies.reserveCapacity(nq)
    // Warm-up pass doubles as the recall pass.
    for q in 0..<nq {
        request.vector = Array(d.queries[(q * d.dim)..<((q + 1) * d.dim)])
        let result = try collection.search(request)
        let truth = Set(truthRows[q].prefix(k))
        for h in result.hits { if case .number(let id) = h.id, truth.contains(Int32(id)) { hits += 1 } }
    }
    let vectors = (0..<nq).map { Array(d.queries[($0 * d.dim)..<(($0 + 1) * d.dim)]) }
    // Three timed passes; the fastest one counts (this VM's noise is one-sided).
    var single = Double.infinity
    for _ in 0..<passes {
        var pass: [Double] = []
        pass.reserveCapacity(nq)
        let start = Date()
        for q in 0..<nq {
            request.vector = vectors[q]
            let t = DispatchTime.now().uptimeNanoseconds
            _ = try collection.search(request)
            pass.append(Double(DispatchTime.now().uptimeNanoseconds - t) / 1e6)
        }
        let elapsed = Date().timeIntervalSince(start)
        if elapsed < single {
            single = elapsed
            latencies = pass
        }
    }
    let perThread = max(1, nq / threads)
    let request1 = request
    var multi = threads == 1 ? single : Double.infinity
    for _ in 0..<(threads == 1 ? 0 : passes) {
        let startN = Date()
        DispatchQueue.concurrentPerform(iterations: threads) { t in
            var r = request1
            for q in (t * perThread)..<min(nq, (t + 1) * perThread) {
                r.vector = vectors[q]
                _ = try? collection.search(r)
            }
        }
        multi = min(multi, Date().timeIntervalSince(startN))
    }
    latencies.sort()
    let expected = truthRows.prefix(nq).reduce(0) { $0 + min(k, $1.count) }
    return BenchRow(ef: ef, recall: expected == 0 ? 1 : Double(hits) / Double(expected), qps1: Double(nq) / single,
                    qpsN: Double(perThread * threads) / multi,
                    p50: percentile(latencies, 0.50), p95: percentile(latencies, 0.95), p99: percentile(latencies, 0.99),
                    max: latencies.last ?? 0)
}

struct BenchResult {
    var dataset: BenchDataset
    var k: Int
    var threads: Int
    var ingestSeconds: Double
    var indexSeconds: Double
    var rows: [BenchRow]
    /// Segments searched (sealed and appendable).
    var segments = 1

    var table: String {
        var s = "dataset \(dataset.name): \(dataset.count) x \(dataset.dim), \(dataset.queryCount) queries, k=\(k), kernels \(Kernels.level)\n"
        s += String(format: "build: ingest %.3f s + index %.3f s = %.3f s (%d threads), %d segment(s)\n", ingestSeconds, indexSeconds,
                    ingestSeconds + indexSeconds, threads, segments)
        // Right-aligned over the columns below (String(format:)'s %6@ does not pad on Linux).
        let heads = ["ef", "recall@\(k)", "QPS(1)", "QPS(\(threads))", "p50 ms", "p95 ms", "p99 ms", "max ms"]
        let widths = [6, 9, 10, 10, 9, 9, 9, 9]
        s += zip(heads, widths).map { String(repeating: " ", count: max(0, $1 - $0.count)) + $0 }.joined(separator: " ") + "\n"
        for r in rows {
            s += String(format: "%6d %9.4f %10.0f %10.0f %9.3f %9.3f %9.3f %9.3f\n", r.ef, r.recall, r.qps1, r.qpsN, r.p50, r.p95, r.p99, r.max)
        }
        return s
    }

    var json: String {
        func r3(_ x: Double) -> JSON { .double((x * 1000).rounded() / 1000) }
        let out: JSON = .object([
            ("engine", .string("vq")), ("dataset", .string(dataset.name)), ("count", .int(Int64(dataset.count))),
            ("dim", .int(Int64(dataset.dim))), ("queries", .int(Int64(dataset.queryCount))), ("k", .int(Int64(k))),
            ("threads", .int(Int64(threads))), ("kernels", .string(Kernels.level)),
            ("ingest_seconds", r3(ingestSeconds)), ("index_seconds", r3(indexSeconds)),
            ("build_seconds", r3(ingestSeconds + indexSeconds)), ("segments", .int(Int64(segments))),
            ("rows", .array(rows.map { r in
                .object([("ef", .int(Int64(r.ef))), ("recall", .double((r.recall * 10000).rounded() / 10000)),
                         ("qps_1", .int(Int64(r.qps1))), ("qps_n", .int(Int64(r.qpsN))),
                         ("p50_ms", r3(r.p50)), ("p95_ms", r3(r.p95)), ("p99_ms", r3(r.p99)), ("max_ms", r3(r.max))])
            })),
        ])
        return JSONWriter.string(out) + "\n"
    }
}
