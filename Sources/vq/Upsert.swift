import Foundation
import VQEngine

/// `vq upsert NAME [FILE|-]`: batches from JSONL, .fvecs or .npy; exit 0 = all durable.
///
/// Batches are logged without waiting for each fsync; every `syncEvery`
/// batches (and at the end, or before reporting a bad line) one group commit
/// makes all of them durable. Closing the engine applies and flushes them.
func upsert(_ args: Arguments) throws -> Int32 {
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
    let engine = try openEngine(args, create: false)
    let collection = try engine.collection(name)
    let dim = collection.config.dim
    let reader = try PointReader(path: path, format: format, dim: dim, idOffset: UInt64(idOffset))
    let progress = ProgressBar(label: "upsert \(name):", totalBytes: reader.totalBytes, quiet: args.quiet)
    let start = Date()
    var batch = PointBatch(dim: dim)
    batch.vectors.reserveCapacity(batchSize * dim)
    var ticket = WriteTicket()
    var submitted = 0
    var batches = 0
    let syncEvery = max(1, 65_536 / batchSize)

    func submit() throws {
        guard batch.count > 0 else { return }
        ticket.merge(try collection.upsert(&batch, wait: .queued))
        submitted += batch.count
        batches += 1
        batch.removeAll()
        if batches % syncEvery == 0 { try collection.wait(ticket, .durable) }
        progress.update(count: submitted, bytes: reader.bytesRead)
    }

    do {
        while true {
            let before = batch.vectors.count
            guard let point = try reader.next(into: &batch.vectors) else { break }
            _ = before
            batch.ids.append(point.id)
            batch.payloads.append(point.payload)
            if batch.count >= batchSize { try submit() }
        }
        try submit()
        try collection.wait(ticket, .durable)
    } catch let e as InputError {
        // Everything before the bad line is stored: make it durable, then report.
        try submit()
        try collection.wait(ticket, .durable)
        progress.finish()
        try engine.close()
        reportError("\(e.description)", hint: submitted > 0 ? "the \(submitted) points before it are stored; fix the input and run again" : nil)
        return 2
    }
    progress.update(count: submitted, bytes: reader.bytesRead, force: true)
    progress.finish()
    let durableSeconds = Date().timeIntervalSince(start)
    if !args.has("no-optimize") {
        // Leave the collection as a server would: applied, sealed and indexed per its thresholds.
        let status = StatusLine(quiet: args.quiet)
        status.show("upsert \(name): \(submitted) points durable; indexing...")
        _ = try collection.settle()
        status.clear()
    }
    let status = collection.status
    try engine.close()
    let seconds = Date().timeIntervalSince(start)
    let summary: JSON = .object([
        ("collection", .string(name)), ("points", .int(Int64(submitted))), ("batches", .int(Int64(batches))),
        ("seconds", .double((seconds * 1000).rounded() / 1000)),
        ("durable_seconds", .double((durableSeconds * 1000).rounded() / 1000)),
        ("points_per_second", .int(Int64(Double(submitted) / max(seconds, 1e-9)))),
        ("unindexed_points", .int(Int64(status.unindexedPoints))),
    ])
    standardOutput.write(bytes: JSONWriter.bytes(summary) + [0x0A])
    return 0
}
