import Foundation
import VQEngine

/// `vq search NAME (--vector JSON | --queries FILE)`: one JSON line (or table) per query.
func search(_ args: Arguments, _ target: Target) throws -> Int32 {
    let name = try args.positional(0)
    let limit = try args.int("limit", default: 10, in: 1...100_000)
    let table: Bool
    switch (args.string("format") ?? "json").lowercased() {
    case "json", "jsonl": table = false
    case "table": table = true
    case let other: throw UsageError(message: "--format is '\(other)'; expected json or table" + suggestion(other, ["json", "table"]))
    }
    if let prefetch = args.string("prefetch") {
        try args.refuse(["queries", "exact", "hnsw-ef", "indexed-only", "oversampling", "no-rescore", "no-quantization"],
                        "to --prefetch (a hybrid query: give search params inside the prefetch JSON)")
        return try searchPrefetch(args, target, name: name, limit: limit, table: table, prefetch: prefetch) }
    if args.string("fusion") != nil { throw UsageError(message: "--fusion fuses the searches of --prefetch JSON; give --prefetch") }
    let vectorText = args.string("vector")
    let queriesPath = args.string("queries")
    let sparseText = args.string("sparse")
    guard [vectorText, queriesPath, sparseText].compactMap({ $0 }).count == 1 else {
        throw UsageError(message: "'vq search' needs exactly one of --vector JSON, --sparse JSON or --queries FILE")
    }
    var sparse: SparseVector?
    if let sparseText {
        try args.refuse(["exact", "hnsw-ef", "oversampling", "no-rescore", "no-quantization"], "to --sparse (a sparse search is exact, over its postings)")
        guard args.string("using") != nil else { throw UsageError(message: "--sparse needs --using NAME: the sparse vector to search") }
        do { sparse = try SparseVector(json: try JSONParser.parse(sparseText), "--sparse") } catch let e as VQError {
            throw UsageError(message: e.message)
        } catch {
            throw UsageError(message: "--sparse is not valid JSON: \(error)")
        }
    }
    var single: [Float]?
    if let vectorText {
        let json: JSON
        do { json = try JSONParser.parse(vectorText) } catch {
            throw UsageError(message: "--vector is not valid JSON: \(error)")
        }
        guard let items = json.arrayValue else { throw UsageError(message: "--vector is \(json.typeName); expected a JSON array of numbers") }
        single = try items.enumerated().map { i, e in
            guard let d = e.doubleValue else { throw UsageError(message: "--vector element \(i) is \(e.typeName); expected a number") }
            return Float(d)
        }
    }
    var engine: Engine?
    var collection: VectorCollection?
    var client: HTTPClient?
    switch target {
    case .embedded:
        engine = try openEngine(args, create: false)
        collection = try engine!.collection(name)
    case .remote(let c):
        client = c
    }
    let reader = try queriesPath.map { try QueryReader(path: $0) }
    var request = SearchRequest(vector: [], limit: limit)
    request.withPayload = args.has("with-payload")
    request.exact = args.has("exact")
    if args.has("no-quantization") {
        request.quantization = nil
    } else {
        request.quantization = QuantizedSearch(rescore: !args.has("no-rescore"),
                                               oversampling: args.string("oversampling") == nil ? 1 : try args.double("oversampling", in: 1...100))
    }
    request.indexedOnly = args.has("indexed-only")
    if let filter = try filterFlag(args) { request.filter = try Filter(json: filter) }
    if args.string("hnsw-ef") != nil { request.hnswEf = try args.int("hnsw-ef", default: 0, in: 1...1_000_000) }
    // --using NAME: a named vector (checked here when embedded, by the server when remote).
    let using = args.string("using")
    if let collection {
        do {
            switch try collection.config.vectors.ref(using) {
            case .dense(let k):
                guard sparse == nil else { throw VQError.invalid("vector \"\(using ?? "")\" is dense; give --vector") }
                request.using = k
            case .sparse(let k):
                guard sparse != nil else { throw VQError.invalid("vector \"\(using ?? "")\" is sparse; give --sparse '{\"indices\": [...], \"values\": [...]}'") }
                request.using = k
            case .multi:
                throw VQError.invalid("vector \"\(using ?? "")\" is a multi-vector; vq search takes dense and sparse queries (query multi-vectors through the API)")
            }
        } catch let e as VQError {
            throw UsageError(message: "--using: \(e.message)")
        }
    }
    request.sparse = sparse
    var queryNumber = 0
    while true {
        if let reader {
            guard let v = try reader.next() else { break }
            request.vector = v
        } else if sparse != nil {
            guard queryNumber == 0 else { break }
        } else {
            guard let v = single else { break }
            request.vector = v
            single = nil
        }
        queryNumber += 1
        let result: SearchResult
        do {
            if let collection { result = try collection.search(request) } else { result = try remoteSearch(client!, name, request, using: using) }
        } catch let e as VQError where e.kind == .invalidInput {
            throw InputError(line: reader?.recordNumber ?? 1, unit: reader == nil ? (sparse == nil ? "--vector" : "--sparse") : "query", message: e.message)
        }
        writeHits(result.hits, query: queryNumber, withPayload: request.withPayload, table: table,
                  unindexedSkipped: request.indexedOnly ? result.unindexedSkipped : nil)
    }
    try engine?.close()
    return 0
}

/// One query's hits: a JSON line `{"results": [...]}` or a table.
private func writeHits(_ hits: [ScoredPoint], query: Int, withPayload: Bool, table: Bool, unindexedSkipped: Int? = nil) {
    if table {
        writeTable(hits, query: query, withPayload: withPayload)
        return
    }
    var w = JSONWriter(capacity: 64 + hits.count * 48)
    w.raw("{\"results\":[")
    for (i, h) in hits.enumerated() {
        if i > 0 { w.raw(",") }
        w.raw("{\"id\":")
        w.write(h.id.json)
        w.raw(",\"score\":")
        w.writeFloat(h.score)
        if withPayload {
            w.raw(",\"payload\":")
            w.write(h.payload ?? .null)
        }
        w.raw("}")
    }
    w.raw("]")
    if let unindexedSkipped { w.raw(",\"unindexed_skipped\":\(unindexedSkipped)") }
    w.raw("}\n")
    standardOutput.write(bytes: w.bytes)
}

/// `vq search NAME --prefetch JSON (--fusion rrf|dbsf | --vector JSON | --sparse JSON)`: Qdrant's
/// query API with prefetches (hybrid search), sent to the API in this process or to the server.
private func searchPrefetch(_ args: Arguments, _ target: Target, name: String, limit: Int, table: Bool, prefetch: String) throws -> Int32 {
    let prefetchJSON: JSON
    do { prefetchJSON = try JSONParser.parse(prefetch) } catch { throw UsageError(message: "--prefetch is not valid JSON: \(error)") }
    guard prefetchJSON.arrayValue != nil || prefetchJSON.objectValue != nil else {
        throw UsageError(message: "--prefetch is \(prefetchJSON.typeName); expected a prefetch object or a list of them, as in Qdrant's query API")
    }
    var query: JSON
    let given = [args.string("fusion"), args.string("vector"), args.string("sparse")].compactMap { $0 }
    guard given.count == 1 else {
        throw UsageError(message: "--prefetch needs exactly one of --fusion rrf|dbsf, --vector JSON or --sparse JSON (to re-rank the prefetched points)")
    }
    if let fusion = args.string("fusion") {
        guard ["rrf", "dbsf"].contains(fusion.lowercased()) else {
            throw UsageError(message: "--fusion is '\(fusion)'; expected rrf or dbsf" + suggestion(fusion.lowercased(), ["rrf", "dbsf"]))
        }
        query = .object([("fusion", .string(fusion.lowercased()))])
    } else {
        do { query = try JSONParser.parse(given[0]) } catch { throw UsageError(message: "the re-ranking query is not valid JSON: \(error)") }
    }
    var body: [(String, JSON)] = [("prefetch", prefetchJSON), ("query", query), ("limit", .int(Int64(limit))),
                                  ("with_payload", .bool(args.has("with-payload")))]
    if let using = args.string("using") { body.append(("using", .string(using))) }
    if let filter = try filterFlag(args) { body.append(("filter", filter)) }
    let result: JSON
    do {
        result = try withClient(args, target) { client in try client.call("POST", collectionPath(name, "/points/query"), .object(body)) }
    } catch let e as VQError where e.kind == .invalidInput {
        throw UsageError(message: e.message)
    }
    let hits = try (result["points"]?.arrayValue ?? []).map { p -> ScoredPoint in
        let score = Float(p["score"]?.doubleValue ?? 0)
        return ScoredPoint(id: try PointID(json: p["id"] ?? .null), version: 0, score: score, rank: score, payload: p["payload"])
    }
    writeHits(hits, query: 1, withPayload: args.has("with-payload"), table: table)
    return 0
}

private func writeTable(_ hits: [ScoredPoint], query: Int, withPayload: Bool) {
    var out = "query \(query)\n"
    out += "  rank  id                                      score\(withPayload ? "         payload" : "")\n"
    for (i, h) in hits.enumerated() {
        let rank = String(i + 1)
        let id = h.id.description
        let score = String(h.score)
        out += "  " + rank + String(repeating: " ", count: max(1, 6 - rank.count))
        out += id + String(repeating: " ", count: max(1, 40 - id.count))
        out += score
        if withPayload {
            out += String(repeating: " ", count: max(1, 14 - score.count)) + (h.payload.map { JSONWriter.string($0) } ?? "-")
        }
        out += "\n"
    }
    standardOutput.write(out)
}
