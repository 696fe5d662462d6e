import Foundation
import VQEngine

/// Where a data command runs: in this process, or on a server over HTTP.
enum Target {
    case embedded
    case remote(HTTPClient)
}

/// `--url`/`VQ_URL` means remote; so does a data directory held by a running `vq serve`
/// (its lock file records the address); otherwise the command opens the directory itself. A
/// url from the client config file gives way to a data directory given by flag or environment.
func resolveTarget(_ args: Arguments) throws -> Target {
    if let url = args.string("url"), !(args.source("url") == .file && [.flag, .environment].contains(args.source("data-dir"))) {
        return .remote(try httpClient(args, url))
    }
    let dir = DataDirectory(args.dataDir)
    if FileIO.exists(dir.lockFile) {
        let holder = DirectoryLock.readHolder(dir)
        if let address = holder.address, let pid = holder.pid, kill(pid, 0) == 0, address.hasPrefix("http://") {
            // Only if the holder really still holds it: try the lock without keeping it.
            if (try? DirectoryLock(dir)) == nil {
                if !args.quiet { printError("vq: \(args.dataDir) is served by process \(pid) at \(address); talking to it") }
                return .remote(try httpClient(args, address))
            }
        }
    }
    return .embedded
}

/// A client of the server at `url` with the command's --timeout and --api-key.
func httpClient(_ args: Arguments, _ url: String) throws -> HTTPClient {
    // Snapshots, repairs and rebalancing copy whole collections or shards: an hour unless told,
    // not the 30 s of other requests.
    let long = args.spec.name == "snapshot" || (args.spec.name == "cluster" && ["repair", "rebalance"].contains(args.positionals.first ?? ""))
    let fallback: Double = long ? 3600 : 30
    let timeout = args.string("timeout") == nil ? fallback : try args.double("timeout", in: 0.001...86_400)
    return try HTTPClient(url: url, timeout: timeout, headers: args.string("api-key").map { [("api-key", $0)] } ?? [])
}

/// One API call: JSON in, the envelope's `result` out; errors become VQError with the server's message.
func call(_ client: HTTPClient, _ method: String, _ path: String, _ body: JSON? = nil, rawBody: [UInt8]? = nil) throws -> JSON {
    var attempt = 0
    while true {
        let response = try client.send(method, path, body: rawBody ?? body.map { JSONWriter.bytes($0) })
        let json = try? JSONParser.parse(response.body)
        if response.status == 200, let json { return json["result"] ?? json }
        if response.status == 429 && attempt < 20 {
            // Back pressure: honour Retry-After, as Qdrant's clients do.
            attempt += 1
            let wait = response.headers.first { $0.0 == "retry-after" }.flatMap { Double($0.1) } ?? 1
            Thread.sleep(forTimeInterval: wait)
            continue
        }
        throw VQError(status: response.status, body: response.body, from: "server")
    }
}

/// Streams batches as `PUT /points?wait=false` with at most `inFlight` requests outstanding.
final class RemoteUploader: @unchecked Sendable {
    let client: HTTPClient
    let path: String
    private let slots: DispatchSemaphore
    private let group = DispatchGroup()
    private let lock = NSLock()
    private var failure: (any Error)?

    /// The collection's vectors: batches carry `"vectors": [...]` or `{name: [...]}`.
    let layout: VectorLayout

    init(client: HTTPClient, collection: String, layout: VectorLayout, inFlight: Int) {
        self.client = client
        self.layout = layout
        path = "/collections/\(collection)/points?wait=false"
        slots = DispatchSemaphore(value: inFlight)
    }

    /// Encodes `batch` and sends it in the background (blocks while `inFlight` are outstanding).
    func send(_ batch: PointBatch) throws {
        if let failure = lock.withLock({ failure }) { throw failure }
        var w = JSONWriter(capacity: batch.floatCount * 12 + batch.count * 32)
        w.raw("{\"batch\":{\"ids\":[")
        for (i, id) in batch.ids.enumerated() {
            if i > 0 { w.raw(",") }
            w.write(id.json)
        }
        // One array per vector: the unnamed one as a list, named ones as {name: list} (null where a point lacks it).
        func column(_ k: Int) {
            let dim = batch.dims[k]
            w.raw("[")
            for i in 0..<batch.count {
                if i > 0 { w.raw(",") }
                guard batch.has(k, i) else { w.raw("null"); continue }
                w.raw("[")
                for j in 0..<dim {
                    if j > 0 { w.raw(",") }
                    w.writeFloat(batch.vectors[k][i * dim + j])
                }
                w.raw("]")
            }
            w.raw("]")
        }
        w.raw("],\"vectors\":")
        if layout.named {
            w.raw("{")
            for k in layout.specs.indices {
                if k > 0 { w.raw(",") }
                w.write(.string(layout[k].name))
                w.raw(":")
                column(k)
            }
            for (k, spec) in layout.sparse.enumerated() {
                if k > 0 || !layout.specs.isEmpty { w.raw(",") }
                w.write(.string(spec.name))
                w.raw(":")
                w.write(.array(batch.sparse[k].map { $0?.json ?? .null }))
            }
            for (k, spec) in layout.multi.enumerated() {
                if k > 0 || !layout.specs.isEmpty || !layout.sparse.isEmpty { w.raw(",") }
                w.write(.string(spec.name))
                w.raw(":")
                let dim = spec.dim
                w.write(.array(batch.multi[k].map { v in
                    v.map { v in .array(stride(from: 0, to: v.count, by: dim).map { .array(v[$0..<($0 + dim)].map { .double(Double($0)) }) }) } ?? .null
                }))
            }
            w.raw("}")
        } else {
            column(0)
        }
        w.raw(",\"payloads\":[")
        for (i, p) in batch.payloads.enumerated() {
            if i > 0 { w.raw(",") }
            if let p { w.bytes.append(contentsOf: p) } else { w.raw("null") }
        }
        w.raw("]}}")
        let body = w.bytes
        slots.wait()
        group.enter()
        DispatchQueue.global().async { [self] in
            defer { slots.signal(); group.leave() }
            do {
                _ = try call(client, "PUT", path, rawBody: body)
            } catch {
                lock.withLock { if failure == nil { failure = error } }
            }
        }
    }

    /// Waits for every batch sent; rethrows the first failure.
    func finish() throws {
        group.wait()
        if let failure = lock.withLock({ failure }) { throw failure }
    }
}

/// Runs one query remotely (POST /points/query) and converts the answer to engine hits.
/// - Parameter using: the named vector to search (nil: the unnamed one).
func remoteSearch(_ client: HTTPClient, _ name: String, _ r: SearchRequest, using: String? = nil) throws -> SearchResult {
    var params: [(String, JSON)] = [("exact", .bool(r.exact)), ("indexed_only", .bool(r.indexedOnly))]
    if let q = r.quantization {
        if !q.rescore || q.oversampling != 1 {
            params.append(("quantization", .object([("rescore", .bool(q.rescore)), ("oversampling", .double(q.oversampling))])))
        }
    } else {
        params.append(("quantization", .object([("ignore", .bool(true))])))
    }
    if let ef = r.hnswEf { params.append(("hnsw_ef", .int(Int64(ef)))) }
    let body: JSON = .object([
        ("query", r.sparse?.json ?? .array(r.vector.map { .double(Double($0)) })), ("limit", .int(Int64(r.limit))),
        ("with_payload", .bool(r.withPayload)), ("params", .object(params)),
    ] + (r.filter.map { [("filter", $0.json)] } ?? []) + (using.map { [("using", .string($0))] } ?? []))
    let result = try call(client, "POST", "/collections/\(name)/points/query", body)
    let hits = try (result["points"]?.arrayValue ?? []).map { p -> ScoredPoint in
        let id = try PointID(json: p["id"] ?? .null)
        let score = floatFromShortest(p["score"]?.doubleValue ?? 0)
        return ScoredPoint(id: id, version: UInt64(p["version"]?.intValue ?? 0), score: score, rank: score,
                           payload: r.withPayload ? (p["payload"] ?? .null) : nil)
    }
    return SearchResult(hits: hits, unindexedSkipped: Int(result["unindexed_skipped"]?.intValue ?? 0))
}

/// The float whose shortest decimal form the server printed as `d`.
///
/// `Float(d)` can land one unit off when the decimal was rounded twice (to
/// Double, then to Float); of it and its neighbours, take the one that prints back as `d`.
func floatFromShortest(_ d: Double) -> Float {
    let f = Float(d)
    for candidate in [f, f.nextUp, f.nextDown] where Double(candidate.description) == d { return candidate }
    return f
}
