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
    let maxErrors = try args.int("max-errors", default: 0, in: 0...Int.max)
    let startLine = try args.int("start-line", default: 1, in: 1...Int.max)
    if args.string("rejects") != nil && maxErrors == 0 { throw UsageError(message: "--rejects needs --max-errors N: with none, the first bad line stops the run") }
    let format: PointFormat
    if let text = args.string("format") {
        guard let f = PointFormat(rawValue: text.lowercased()) else {
            throw UsageError(message: "--format is '\(text)'; expected jsonl, fvecs or npy" + suggestion(text, ["jsonl", "fvecs", "npy"]))
        }
        format = f
    } else {
        format = path == "-" ? .jsonl : (PointFormat(path: path) ?? .jsonl)
    }
    if maxErrors > 0 && format != .jsonl {
        throw UsageError(message: "--max-errors skips bad JSON lines; a \(format.rawValue) file cannot be read past a bad record")
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

    // Lines refused under --max-errors: named on stderr, kept whole in --rejects FILE.
    var rejected = 0
    var lastStored = 0
    var rejects: FileHandle?
    func reject(_ e: InputError) throws {
        rejected += 1
        reportError(e.description, hint: nil)
        guard let file = args.string("rejects") else { return }
        if rejects == nil {
            // Appended to: a resumed run (--start-line) keeps what the first one rejected.
            if !FileManager.default.fileExists(atPath: file) {
                guard FileManager.default.createFile(atPath: file, contents: nil) else {
                    throw VQError(.io, "cannot create the rejects file \(file)")
                }
            }
            rejects = FileHandle(forWritingAtPath: file)
            guard rejects != nil else { throw VQError(.io, "cannot write the rejects file \(file)") }
            rejects?.seekToEndOfFile()
        }
        rejects?.write(Data(reader.rejectedLine + [0x0A]))
    }
    defer { try? rejects?.close() }
    /// One JSON line on stdout, whatever the outcome: what is stored, what was refused, and the
    /// last line read into a point (a resumed run starts after it, with --start-line).
    func printSummary(failed: Bool, seconds: Double, durableSeconds: Double, unindexed: JSON) {
        func ms(_ s: Double) -> JSON { .double((s * 1000).rounded() / 1000) }
        printJSON(.object([
            ("collection", .string(name)), ("status", .string(failed ? "failed" : "ok")), ("points", .int(Int64(submitted))),
            ("batches", .int(Int64(batches))), ("rejected", .int(Int64(rejected))), ("last_line", .int(Int64(lastStored))),
            ("seconds", ms(seconds)), ("durable_seconds", ms(durableSeconds)),
            // The rate of making points durable: the indexing wait after is not in it.
            ("points_per_second", durableSeconds > 0 ? .int(Int64(Double(submitted) / durableSeconds)) : .null),
            ("unindexed_points", unindexed),
        ]))
    }

    if startLine > 1 {
        guard try reader.skip(toLine: startLine) else {
            throw UsageError(message: "--start-line \(startLine) is past the end of the input (\(reader.recordNumber) records)", command: "upsert")
        }
        lastStored = startLine - 1
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
            do {
                guard try reader.next(into: &batch) else { break }
            } catch let e as InputError where rejected < maxErrors {
                try reject(e)
                continue
            }
            lastStored = reader.recordNumber
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
        let seconds = Date().timeIntervalSince(start)
        if maxErrors > 0 {
            try reject(e)
            reportError("stopped at line \(e.line): more than --max-errors \(maxErrors) bad lines",
                        hint: "the \(submitted) good points before it are stored; after a fix, resume with --start-line \(e.line)")
        } else {
            reportError(e.description, hint: submitted > 0 ? "the \(submitted) points before it are stored; fix the input and run again" : nil)
        }
        printSummary(failed: true, seconds: seconds, durableSeconds: seconds, unindexed: .null)
        return 2
    } catch {
        // Not the input (a server's refusal, a lost connection, a disk): the summary still prints,
        // but what was sent last may not be stored; re-running from an earlier line is safe.
        try? engine?.close()
        progress.finish()
        printSummary(failed: true, seconds: Date().timeIntervalSince(start), durableSeconds: 0, unindexed: .null)
        throw error
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
    } else if case .remote(let client) = target {
        // The same as embedded: wait until the server has applied and indexed the points (its
        // status green: no queue, unindexed points under the threshold), at most 10 minutes.
        if !args.has("no-optimize") {
            let status = StatusLine(quiet: args.quiet)
            status.show("upsert \(name): \(submitted) points durable; indexing...")
            let deadline = Date().addingTimeInterval(600)
            // A collection whose optimizer is off never turns green by itself: only its queue is waited for.
            let info = try call(client, "GET", "/collections/\(name)")
            let optimizing = info["config"]?["optimizer_config"]?["max_optimization_threads"] != .int(0)
            func settled() throws -> Bool {
                if try (call(client, "GET", "/collections/\(name)/info")["queue_depth"]?.intValue ?? 0) > 0 { return false }
                return try !optimizing || call(client, "GET", "/collections/\(name)")["status"]?.stringValue == "green"
            }
            while try !settled() {
                if Date() > deadline {
                    printError("vq: warning: the server is still indexing \"\(name)\" after 10 minutes; not waiting longer")
                    break
                }
                Thread.sleep(forTimeInterval: 0.05)
            }
            status.clear()
        }
        unindexed = try call(client, "GET", "/collections/\(name)/info")["unindexed_points"] ?? .null
    }
    printSummary(failed: false, seconds: Date().timeIntervalSince(start), durableSeconds: durableSeconds, unindexed: unindexed)
    return 0
}
