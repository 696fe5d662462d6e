import Foundation
import Synchronization
import VQEngine

/// `vq bench --url URL --collection NAME [DIR | --queries FILE] --clients N --duration S`:
/// searches against a running server or cluster from N client threads (one keep-alive connection
/// each) for S seconds; reports QPS and latency percentiles as the clients saw them. Closed loop by
/// default (each client sends when the last answer came); `--rate R` makes it open loop.
func benchRemote(_ args: Arguments, _ client: HTTPClient) throws -> Int32 {
    // Nothing is built or generated: the options that shape a local benchmark are refused, not dropped.
    try args.refuse(["base", "groundtruth", "synthetic", "queries-count", "seed", "save-dataset", "distance", "m", "ef-construct", "threads",
                     "full-scan-threshold", "quantization", "quantile", "oversampling", "default-path", "default-segment-number",
                     "named-vectors", "scenario", "data-dir"], "with --url (it searches the server's collection as it is)")
    guard let name = args.string("collection") else {
        throw UsageError(message: "vq bench --url needs --collection NAME (the collection to search)")
    }
    let clients = try args.int("clients", default: 8, in: 1...1024)
    let seconds = try args.int("duration", default: 10, in: 1...86_400)
    let k = try args.int("limit", default: 10, in: 1...1000)
    let ef = try args.int("ef", default: 64, in: 1...100_000)
    let path: String
    if let q = args.string("queries") {
        path = q
    } else if let dir = args.positionals.first {
        path = dir + "/query.fvecs"
    } else {
        throw UsageError(message: "vq bench --url needs queries: DIR (with query.fvecs) or --queries FILE")
    }
    let reader = try QueryReader(path: path)
    var bodies: [[UInt8]] = []
    while let v = try reader.next() {
        let body: JSON = .object([("query", .array(v.map { .double(Double($0)) })), ("limit", .int(Int64(k))),
                                  ("params", .object([("hnsw_ef", .int(Int64(ef)))]))])
        bodies.append(JSONWriter.bytes(body))
    }
    guard !bodies.isEmpty else { throw UsageError(message: "\(path) holds no queries") }
    let target = "/collections/\(name)/points/query"
    _ = try call(client, "POST", target, rawBody: bodies[0])  // fails early, with the server's message

    // --rate R: open loop, R requests per second in all, each timed from when it was due (so
    // a stalled server delays the requests behind it too, as real arrivals would be).
    let rate = try args.string("rate").map { _ in Double(try args.int("rate", default: 1, in: 1...1_000_000)) }
    let queries = bodies
    let url = "http://\(client.host):\(client.port)"
    let end = Date().addingTimeInterval(Double(seconds))
    let results = Mutex<[Double]>([])
    let errors = Atomic<Int>(0)
    let start = Date()
    var threads: [Thread] = []
    for c in 0..<clients {
        let t = Thread {
            guard let http = try? HTTPClient(url: url, timeout: client.timeout, headers: client.headers) else { errors.add(1, ordering: .relaxed); return }
            var mine: [Double] = []
            var i = c
            let interval = rate.map { UInt64(Double(clients) / $0 * 1e9) } ?? 0
            var due = DispatchTime.now().uptimeNanoseconds + interval * UInt64(c) / UInt64(clients)
            while Date() < end {
                var t0 = DispatchTime.now().uptimeNanoseconds
                if interval > 0 {
                    if due > t0 { usleep(UInt32((due - t0) / 1000)) }
                    t0 = due
                    due += interval
                }
                let ok = (try? http.send("POST", target, body: queries[i % queries.count]))?.status == 200
                let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
                if ok { mine.append(dt) } else { errors.add(1, ordering: .relaxed) }
                i += clients
            }
            results.withLock { $0 += mine }
        }
        threads.append(t)
        t.start()
    }
    while threads.contains(where: { !$0.isFinished }) { Thread.sleep(forTimeInterval: 0.05) }
    let elapsed = Date().timeIntervalSince(start)
    var lat = results.withLock { $0 }
    lat.sort()
    // Nearest rank, as the embedded bench reports them (the two are compared in BENCHMARKS.md).
    func pct(_ p: Double) -> Double { percentile(lat, p) * 1000 }
    let qps = Double(lat.count) / elapsed
    let failed = errors.load(ordering: .relaxed)
    if args.has("json") {
        let out: JSON = .object([("url", .string(url)), ("collection", .string(name)), ("clients", .int(Int64(clients))),
                                 ("seconds", .double((elapsed * 100).rounded() / 100)), ("requests", .int(Int64(lat.count))),
                                 ("errors", .int(Int64(failed))), ("qps", .double(qps.rounded())),
                                 ("rate", rate.map { .double($0) } ?? .null),
                                 ("p50_ms", .double(pct(0.5))), ("p95_ms", .double(pct(0.95))), ("p99_ms", .double(pct(0.99))),
                                 ("p999_ms", .double(pct(0.999))),
                                 ("max_ms", .double(lat.last.map { $0 * 1000 } ?? 0))])
        standardOutput.write(bytes: JSONWriter.bytes(out) + [0x0A])
    } else {
        standardOutput.write("clients requests errors QPS p50 ms p95 ms p99 ms p99.9 ms max ms\n")
        standardOutput.write(String(format: "%7d %8d %6d %8.0f %6.3f %6.3f %6.3f %8.3f %6.3f\n", clients, lat.count, failed, qps,
                                    pct(0.5), pct(0.95), pct(0.99), pct(0.999), (lat.last ?? 0) * 1000))
    }
    return failed > 0 && lat.isEmpty ? 1 : 0
}
