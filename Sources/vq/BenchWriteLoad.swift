import Foundation
import VQEngine

/// One run of the write-load scenario.
struct WriteLoadRun {
    var label: String
    var idle: [Double]
    var loaded: [Double]
    var pointsWritten: Int
    var maxUnindexed: Int
    var meanSkipped: Double
}

struct WriteLoadReport {
    var dataset: BenchDataset
    var seconds: Double
    var runs: [WriteLoadRun]

    var table: String {
        var s = "write-load on \(dataset.name) (\(dataset.count) x \(dataset.dim)): a writer re-upserts every point at full speed "
        s += "for \(Int(seconds)) s while one thread searches; latencies in ms\n"
        s += "run                                  idle p50 idle p99      p50      p95      p99      max  points written  max unindexed  mean skipped\n"
        for r in runs {
            let idle = r.idle.sorted(), load = r.loaded.sorted()
            s += r.label.padding(toLength: 36, withPad: " ", startingAt: 0)
            s += String(format: " %8.3f %8.3f %8.3f %8.3f %8.3f %8.3f %15d %14d %13.0f\n", percentile(idle, 0.5), percentile(idle, 0.99),
                        percentile(load, 0.5), percentile(load, 0.95), percentile(load, 0.99), load.last ?? 0,
                        r.pointsWritten, r.maxUnindexed, r.meanSkipped)
        }
        return s
    }

    var json: String {
        func r3(_ x: Double) -> JSON { .double((x * 1000).rounded() / 1000) }
        let out: JSON = .object([
            ("scenario", .string("write-load")), ("dataset", .string(dataset.name)), ("seconds", r3(seconds)),
            ("runs", .array(runs.map { r in
                let idle = r.idle.sorted(), load = r.loaded.sorted()
                return .object([
                    ("run", .string(r.label)), ("idle_p50_ms", r3(percentile(idle, 0.5))), ("idle_p99_ms", r3(percentile(idle, 0.99))),
                    ("p50_ms", r3(percentile(load, 0.5))), ("p95_ms", r3(percentile(load, 0.95))), ("p99_ms", r3(percentile(load, 0.99))),
                    ("max_ms", r3(load.last ?? 0)), ("searches", .int(Int64(load.count))), ("points_written", .int(Int64(r.pointsWritten))),
                    ("max_unindexed_points", .int(Int64(r.maxUnindexed))), ("mean_unindexed_skipped", r3(r.meanSkipped)),
                ])
            })),
        ])
        return JSONWriter.string(out) + "\n"
    }
}

/// The seed's claim, measured: search latency while a writer upserts at full speed, three ways:
/// default, indexed_only, indexed_only + prevent_unoptimized.
///
/// Each run builds its own indexed collection, measures idle latency, then starts a
/// writer that re-upserts every point (so the size stays put and every write makes
/// an unindexed copy) while the main thread searches for `seconds`. The update
/// queue is 64 operations so back pressure, not memory, bounds the writer.
func benchWriteLoad(root: String, config base: CollectionConfig, dataset: BenchDataset, k: Int, seconds: Double,
                    progress: StatusLine) throws -> WriteLoadReport {
    let variants: [(String, Bool, Bool)] = [
        ("default", false, false), ("indexed_only", true, false), ("indexed_only + prevent_unoptimized", true, true),
    ]
    var runs: [WriteLoadRun] = []
    for (i, (label, indexedOnly, prevent)) in variants.enumerated() {
        progress.show("bench write-load: \(label): building...")
        let engine = try Engine(path: root + "/run\(i)") { printError("vq: warning: \($0)") }
        var config = base
        config.preventUnoptimized = prevent
        config.updateQueueSize = 64
        config.maxSegmentSize = nil
        try engine.createCollection("w", config: config)
        let collection = try engine.collection("w")
        _ = try benchIngest(collection, dataset)
        _ = try collection.settle()
        var request = SearchRequest(vector: [], limit: k)
        request.indexedOnly = indexedOnly
        let queries = (0..<dataset.queryCount).map { Array(dataset.queries[($0 * dataset.dim)..<(($0 + 1) * dataset.dim)]) }
        func timedSearch(_ q: Int) throws -> (Double, Int) {
            request.vector = queries[q % queries.count]
            let t = DispatchTime.now().uptimeNanoseconds
            let r = try collection.search(request)
            return (Double(DispatchTime.now().uptimeNanoseconds - t) / 1e6, r.unindexedSkipped)
        }
        var idle: [Double] = []
        let idleEnd = Date().addingTimeInterval(min(2, seconds / 3))
        var q = 0
        while Date() < idleEnd { idle.append(try timedSearch(q).0); q += 1 }

        progress.show("bench write-load: \(label): writing and searching for \(Int(seconds)) s...")
        let stop = Locked(false)
        let written = Locked(0)
        let done = DispatchSemaphore(value: 0)
        let d = dataset
        let writer = Thread {
            defer { done.signal() }
            var batch = PointBatch(dim: d.dim)
            var next = 0
            d.base.withUnsafeBufferPointer { base in
                while !stop.load() {
                    batch.removeAll()
                    for _ in 0..<256 {
                        let i = next % d.count
                        batch.append(id: .number(UInt64(i)), vector: UnsafeBufferPointer(rebasing: base[(i * d.dim)..<((i + 1) * d.dim)]), payload: nil)
                        next += 1
                    }
                    guard (try? collection.upsert(&batch, wait: .durable, deadline: Date().addingTimeInterval(0.5))) != nil else { continue }
                    written.add(256)
                }
            }
        }
        writer.start()
        var loaded: [Double] = []
        var skipped = 0
        var maxUnindexed = 0
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            let (ms, s) = try timedSearch(q)
            loaded.append(ms)
            skipped += s
            q += 1
            if q % 64 == 0 { maxUnindexed = max(maxUnindexed, collection.status.unindexedPoints) }
        }
        stop.store(true)
        done.wait()
        try engine.close()
        try? FileIO.removeTree(root + "/run\(i)")
        runs.append(WriteLoadRun(label: label, idle: idle, loaded: loaded, pointsWritten: written.load(), maxUnindexed: maxUnindexed,
                                 meanSkipped: Double(skipped) / Double(max(1, loaded.count))))
    }
    return WriteLoadReport(dataset: dataset, seconds: seconds, runs: runs)
}

/// A value behind a lock, shared with the benchmark's writer thread (not Synchronization.Atomic: a class can be captured).
final class Locked<T: Sendable>: @unchecked Sendable {
    private var value: T
    private let lock = NSLock()
    init(_ value: T) { self.value = value }
    func load() -> T { lock.lock(); defer { lock.unlock() }; return value }
    func store(_ v: T) { lock.lock(); value = v; lock.unlock() }
}

extension Locked where T == Int {
    func add(_ n: Int) { lock.lock(); value += n; lock.unlock() }
}
