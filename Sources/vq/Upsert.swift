import Foundation
import VQEngine

/// `vq upsert NAME [FILE|-]`: batches from JSONL, .fvecs or .npy; exit 0 = all durable.
///
/// Embedded: batches are logged without waiting for each fsync; every
/// `syncEvery` batches (and at the end, or before reporting a bad line) one
/// group commit makes all of them durable; then the optimizer is given time
/// to index, as a server would. Remote: batches stream as
/// `PUT /points?wait=false` (acknowledged = durable) with a bounded number in
/// flight, honouring 429 back pressure.
func upsert(_ args: Arguments, _ target: Target) throws -> Int32 {
    let name = try args.positional(0)
    let path = args.positionals.count > 1 ? args.positionals[1] : "-"
    let batchSize = try args.int("batch-size", default: 256, in: 1...1_000_000)
    let idOffset = try args.int("id-offset", default: 0, in: 0...Int.max)
    let format: PointFormat
    if let text = args.string("format") {
        guard let f = PointFormat(rawValue: text.lowercased()) else {
            throw UsageError(message: "--format is '\(text)'; expected jsonl, fvecs or npy" + suggestion(text, ["jsonl", "fvecs", "npy"]))
        }
        format = f
    } else {
        format = path == "-" ? .jsonl : (PointFormat(path: path) ?? .jsonl)
    }

    // The sink: where batches go, how they become durable, how the run ends.
    let layout: VectorLayout
    var engine: Engine?
    var collection: VectorCollection?
    var uploader: RemoteUploader?
    switch target {
    case .embedded:
        engine = try openEngine(args, create: false)
        // Nothing else searches the directory while this process holds it: index with every core.
        engine!.indexWithEveryCore = true
        collection = try engine!.collection(name)
        layout = collection!.config.vectors
    case .remote(let client):
        let info = try call(client, "GET", "/collections/\(name)")
        guard let vectors = info["config"]?["params"]?["vectors"],
              let read = try? VectorLayout(json: vectors, sparse: info["config"]?["params"]?["sparse_vectors"]) else {
            throw VQError(.io, "server did not say the vectors of collection \"\(name)\"")
        }
        layout = read
        uploader = RemoteUploader(client: client, collection: name, layout: layout, inFlight: 4)
    }
    var ticket = WriteTicket()
    let syncEvery = max(1, 65_536 / batchSize)
    var submitted = 0
    var batches = 0
    func send(_ batch: inout PointBatch) throws {
        if let collection {
            ticket.merge(try collection.upsert(&batch, wait: .queued))
            if (batches + 1) % syncEvery == 0 { try collection.wait(ticket, .durable) }
        } else {
            try uploader!.send(batch)
        }
    }
    func makeDurable() throws {
        if let collection { try collection.wait(ticket, .durable) } else { try uploader!.finish() }
    }

    let reader = try PointReader(path: path, format: format, vectors: layout, idOffset: UInt64(idOffset))
    let progress = ProgressBar(label: "upsert \(name):", totalBytes: reader.totalBytes, quiet: args.quiet)
    let start = Date()
    var batch = PointBatch(layout)
    for k in layout.specs.indices { batch.vectors[k].reserveCapacity(batchSize * layout[k].dim) }
    func submit() throws {
        guard batch.count > 0 else { return }
        try send(&batch)
        submitted += batch.count
        batches += 1
        batch.removeAll()
        progress.update(count: submitted, bytes: reader.bytesRead)
    }

    var warned = false
    /// One warning for the Qdrant export fields skipped so far.
    func warnIgnored() {
        guard !warned, !reader.ignoredKeys.isEmpty, !args.quiet else { return }
        warned = true
        printError("vq: warning: ignored \(reader.ignoredKeys.joined(separator: " and ")) in the input (Qdrant export fields; "
                   + "vq places points by id and has no order_by values)")
    }
    defer { warnIgnored() }
    do {
        while true {
            guard try reader.next(into: &batch) else { break }
            warnIgnored()
            // Large vectors (multi-vectors) also end a batch: about 16 MiB of JSON through a server.
            if batch.count >= batchSize || (batch.multi.isEmpty ? false : batch.floatCount >= 1 << 20) { try submit() }
        }
        try submit()
        try makeDurable()
    } catch let e as InputError {
        // Everything before the bad line is stored: make it durable, then report.
        try submit()
        try makeDurable()
        progress.finish()
        try engine?.close()
        reportError("\(e.description)", hint: submitted > 0 ? "the \(submitted) points before it are stored; fix the input and run again" : nil)
        return 2
    }
    progress.update(count: submitted, bytes: reader.bytesRead, force: true)
    progress.finish()
    let durableSeconds = Date().timeIntervalSince(start)
    var unindexed: JSON = .null
    if let collection, let engine {
        if !args.has("no-optimize") {
            // Leave the collection as a server would: applied, sealed and indexed per its thresholds.
            let status = StatusLine(quiet: args.quiet)
            status.show("upsert \(name): \(submitted) points durable; indexing...")
            _ = try collection.settle()
            status.clear()
        }
        unindexed = .int(Int64(collection.status.unindexedPoints))
        try engine.close()
    }
    let seconds = Date().timeIntervalSince(start)
    let summary: JSON = .object([
        ("collection", .string(name)), ("points", .int(Int64(submitted))), ("batches", .int(Int64(batches))),
        ("seconds", .double((seconds * 1000).rounded() / 1000)),
        ("durable_seconds", .double((durableSeconds * 1000).rounded() / 1000)),
        ("points_per_second", .int(Int64(Double(submitted) / max(seconds, 1e-9)))),
        ("unindexed_points", unindexed),
    ])
    standardOutput.write(bytes: JSONWriter.bytes(summary) + [0x0A])
    return 0
}
