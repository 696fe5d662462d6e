import Foundation
import Testing
@testable import VQEngine

@Suite struct OptimizerTests {
    func options(dim: Int = 8, threshold: Int = 200, background: Bool = false) -> ShardOptions {
        var o = ShardOptions(dim: dim, distance: .euclid)
        o.indexingThresholdRows = threshold
        o.fullScanRows = 50
        o.hnsw = HNSWParams(m: 8, efConstruct: 40, threads: 1)
        o.segmentCapacity = 5000
        o.backgroundOptimizer = background
        return o
    }

    func points(_ range: Range<Int>, dim: Int, seed: UInt64) -> PointBatch {
        var rng = SplitMix64(seed: seed)
        var b = PointBatch(dim: dim)
        for i in range { rng.vector(dim).withUnsafeBufferPointer { b.append(id: .number(UInt64(i)), vector: $0, payload: nil) } }
        return b
    }

    func search(_ shard: LocalShard, _ q: [Float], k: Int, exact: Bool = false, indexedOnly: Bool = false) -> (hits: [ScoredPoint], skipped: Int) {
        var r = ShardSearch(k: k, ef: 64)
        r.exact = exact
        r.indexedOnly = indexedOnly
        return q.withUnsafeBufferPointer { shard.search($0, r) }
    }

    @Test("the optimizer seals at the threshold and indexes; searches find the same nearest points")
    func indexes() throws {
        let tmp = TempDir()
        let shard = try LocalShard(directory: tmp.path, options: options(), warn: { _ in })
        for part in 0..<5 { _ = try shard.submit(.upsert(points((part * 200)..<((part + 1) * 200), dim: 8, seed: UInt64(part)))) }
        let report = try shard.settle()
        let status = shard.status
        #expect(report.pointsIndexed == 1000)
        #expect(status.points == 1000)
        #expect(status.unindexedPoints < 200)
        #expect(status.segments.contains { $0.indexed })
        var rng = SplitMix64(seed: 77)
        var agree = 0
        for _ in 0..<20 {
            let q = rng.vector(8)
            let a = Set(search(shard, q, k: 10).hits.map(\.id)), b = Set(search(shard, q, k: 10, exact: true).hits.map(\.id))
            agree += a.intersection(b).count
        }
        #expect(agree >= 180)
        try shard.close()
        // Reopening maps the graphs; nothing is rebuilt.
        let again = try LocalShard(directory: tmp.path, options: options(), warn: { _ in })
        #expect(again.status.segments.filter(\.indexed).map(\.rows) == status.segments.filter(\.indexed).map(\.rows))
        try again.close()
    }

    @Test("indexed_only skips exactly the points of unindexed segments too big for a full scan")
    func indexedOnly() throws {
        let tmp = TempDir()
        var o = options()
        o.indexingThresholdRows = 0  // nothing is indexed in the background
        let shard = try LocalShard(directory: tmp.path, options: o, warn: { _ in })
        _ = try shard.submit(.upsert(points(0..<300, dim: 8, seed: 1)))
        _ = try shard.settle()
        _ = try shard.optimize(force: true)  // 300 indexed points
        let op = try shard.submit(.upsert(points(300..<420, dim: 8, seed: 2)))  // 120 unindexed (>= full scan 50)
        try shard.waitApplied(op)
        let q = [Float](repeating: 0, count: 8)
        let all = search(shard, q, k: 1000)
        #expect(all.hits.count == 420 && all.skipped == 0)
        let only = search(shard, q, k: 1000, indexedOnly: true)
        #expect(only.skipped == 120)
        #expect(only.hits.allSatisfy { if case .number(let n) = $0.id { return n < 300 } else { return false } })
        // Small unindexed segments are scanned anyway: 10 points < full_scan 50.
        try shard.close()
        o.fullScanRows = 1000
        let wide = try LocalShard(directory: tmp.path, options: o, warn: { _ in })
        #expect(search(wide, q, k: 1000, indexedOnly: true).skipped == 0)
        try wide.close()
    }

    @Test("prevent_unoptimized keeps unindexed points bounded while a writer floods the queue")
    func preventUnoptimized() throws {
        let tmp = TempDir()
        var o = options(threshold: 300, background: true)
        o.preventUnoptimized = true
        let shard = try LocalShard(directory: tmp.path, options: o, warn: { _ in })
        var maxUnindexed = 0
        var last: UInt64 = 0
        for part in 0..<30 {
            last = try shard.submit(.upsert(points((part * 100)..<((part + 1) * 100), dim: 8, seed: UInt64(part))))
            maxUnindexed = max(maxUnindexed, shard.status.unindexedPoints)
        }
        while shard.status.appliedOp < last {
            maxUnindexed = max(maxUnindexed, shard.status.unindexedPoints)
            usleep(1000)
        }
        _ = try shard.settle()
        // The applier stops at the threshold; at most one more operation lands before it notices.
        #expect(maxUnindexed <= 300 + 100)
        #expect(shard.pointCount == 3000)
        try shard.close()
    }

    @Test("searches during optimizer swaps see every point exactly once")
    func swapIsAtomic() throws {
        let tmp = TempDir()
        var o = options(threshold: 0)
        o.defaultSegmentNumber = 1
        let shard = try LocalShard(directory: tmp.path, options: o, warn: { _ in })
        for part in 0..<6 { _ = try shard.submit(.upsert(points((part * 150)..<((part + 1) * 150), dim: 8, seed: UInt64(part)))) }
        _ = try shard.settle()
        let stop = DispatchSemaphore(value: 0)
        let finished = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var problems: [String] = []
        nonisolated(unsafe) var rounds = 0
        Thread {
            defer { finished.signal() }
            let q = [Float](repeating: 0.1, count: 8)
            while stop.wait(timeout: .now()) == .timedOut {
                let hits = self.search(shard, q, k: 2000, exact: true).hits
                let ids = Set(hits.map(\.id))
                if hits.count != 900 || ids.count != 900 { problems.append("\(hits.count) hits, \(ids.count) distinct") }
                rounds += 1
            }
        }.start()
        // Seal, index and merge everything into one segment while the searcher runs.
        let report = try shard.optimize(force: true)
        stop.signal()
        finished.wait()
        #expect(problems.isEmpty, "\(problems.prefix(3))")
        #expect(rounds > 0)
        #expect(report.segmentsAfter <= 2)
        #expect(shard.status.segments.filter { !$0.appendable }.count == 1)
        try shard.close()
    }

    @Test("new points merge into the largest indexed segment, whose graph seeds the merged one; answers stay exact")
    func mergeReusesGraph() throws {
        let tmp = TempDir()
        var o = options(threshold: 300)
        o.defaultSegmentNumber = 1
        let shard = try LocalShard(directory: tmp.path, options: o, warn: { _ in })
        _ = try shard.submit(.upsert(points(0..<1000, dim: 8, seed: 1)))
        _ = try shard.settle()
        _ = try shard.optimize(force: true)
        #expect(shard.lock.read { shard.holder.segments.contains { !$0.appendable && $0.indexed } })
        // More points past the threshold: sealed, then merged into the indexed segment.
        _ = try shard.waitApplied(try shard.submit(.upsert(points(1000..<1400, dim: 8, seed: 2))))
        let report = try shard.settle()
        // Only the new points were inserted (300 sealed at the threshold; the rest stay appendable).
        #expect(report.pointsIndexed > 0 && report.pointsIndexed <= 400, "\(report.pointsIndexed) points indexed")
        let sealed = shard.lock.read { shard.holder.segments.filter { !$0.appendable } }
        #expect(sealed.count == 1 && sealed[0].indexed && sealed[0].liveCount >= 1300, "\(sealed.map(\.liveCount))")
        #expect(sealed.first?.stores[0].graph?.count == sealed.first?.rowCount)
        let q = [Float](repeating: 0.2, count: 8)
        let exact = Set(search(shard, q, k: 10, exact: true).hits.map(\.id))
        #expect(Set(search(shard, q, k: 10).hits.map(\.id)).intersection(exact).count >= 9)
        try shard.close()
    }

    @Test("vacuum rebuilds a segment whose deleted share passes the threshold")
    func vacuum() throws {
        let tmp = TempDir()
        var o = options(threshold: 0)
        o.vacuumMinVectorNumber = 10
        o.deletedThreshold = 0.2
        let shard = try LocalShard(directory: tmp.path, options: o, warn: { _ in })
        _ = try shard.submit(.upsert(points(0..<400, dim: 8, seed: 4)))
        _ = try shard.settle()
        _ = try shard.optimize(force: true)
        let op = try shard.submit(.delete((0..<150).map { .number(UInt64($0)) }))
        try shard.waitApplied(op)
        #expect(shard.status.segments.contains { $0.deleted == 150 })
        _ = try shard.optimize(force: false)
        let sealed = shard.status.segments.filter { !$0.appendable }
        #expect(sealed.allSatisfy { $0.deleted == 0 })
        #expect(sealed.reduce(0) { $0 + $1.livePoints } == 250)
        try shard.close()
    }
}

@Suite struct GraphRepairTests {
    @Test("a damaged or missing hnsw.bin: the shard opens, searches exactly, and the optimizer builds the graph again", arguments: ["flip", "header", "truncate", "delete"])
    func repairs(damage: String) throws {
        let t = OptimizerTests()
        let tmp = TempDir()
        var rng = SplitMix64(seed: 5)
        let queries = (0..<10).map { _ in rng.vector(8) }
        var before: [[PointID]] = []
        do {
            let shard = try LocalShard(directory: tmp.path, options: t.options(), warn: { _ in })
            for part in 0..<3 { _ = try shard.submit(.upsert(t.points((part * 200)..<((part + 1) * 200), dim: 8, seed: UInt64(part)))) }
            _ = try shard.settle()
            #expect(shard.status.segments.contains { $0.indexed })
            before = queries.map { t.search(shard, $0, k: 5, exact: true).hits.map(\.id) }
            try shard.close()
        }
        let graphs = FileIO.list(tmp.path + "/segments").map { tmp.path + "/segments/" + $0 + "/" + Segment.graphFile }.filter(FileIO.exists)
        let graph = try #require(graphs.first)
        var bytes = try FileIO.readAll(graph)
        switch damage {
        case "flip": bytes[bytes.count / 2] ^= 0x40
        case "header": bytes[8] = 0xFF; bytes[15] = 0x7F
        case "truncate": bytes = Array(bytes.prefix(bytes.count / 3))
        default: bytes = []
        }
        if damage == "delete" { FileIO.remove(graph) } else { try FileIO.writeAtomically(graph, bytes) }
        var warnings: [String] = []
        var o = t.options()
        o.backgroundOptimizer = true
        let shard = try LocalShard(directory: tmp.path, options: o, warn: { warnings.append($0) })
        #expect(warnings.contains { $0.contains("searched exactly until the optimizer builds its graph again") }, "\(warnings)")
        // Answers are right meanwhile (exact over the segment), and the graph comes back.
        #expect(queries.map { t.search(shard, $0, k: 5, exact: true).hits.map(\.id) } == before)
        _ = try shard.settle()
        #expect(shard.status.segments.allSatisfy { $0.indexed || $0.appendable }, "\(shard.status.segments)")
        #expect(queries.map { t.search(shard, $0, k: 5, exact: true).hits.map(\.id) } == before)
        try shard.close()
    }
}

@Suite struct SegmentChecksumTests {
    /// A closed shard: 600 points sealed in segments, 50 more in the appendable one, a few of
    /// each deleted (so every file of both kinds has bytes).
    static func sealedShard() throws -> TempDir {
        let t = OptimizerTests()
        let tmp = TempDir()
        let shard = try LocalShard(directory: tmp.path, options: t.options(), warn: { _ in })
        for part in 0..<3 {
            _ = try shard.submit(.upsert(batch(part * 200..<(part + 1) * 200)))
        }
        _ = try shard.settle()
        _ = try shard.submit(.upsert(batch(600..<650)))
        _ = try shard.submit(.delete([.number(5), .number(250), .number(610)]))
        _ = try shard.settle()
        try shard.close()
        return tmp
    }

    static func batch(_ ids: Range<Int>) -> PointBatch {
        var b = PointBatch(dim: 8)
        var rng = SplitMix64(seed: UInt64(ids.lowerBound))
        for i in ids {
            rng.vector(8).withUnsafeBufferPointer { b.append(id: .number(UInt64(i)), vector: $0, payload: Array("{\"n\":\(i)}".utf8)) }
        }
        return b
    }

    /// The directory of the shard's first sealed segment, or of its appendable one, per its manifest.
    static func segmentDir(_ shardDir: String, appendable: Bool) throws -> String {
        let manifest = try ChecksummedJSON.read(DataDirectory.manifest(shardDir: shardDir))
        let entry = try #require(manifest["segments"]?.arrayValue?.first {
            $0["appendable"]?.boolValue == appendable && ($0["rows"]?.intValue ?? 0) > 0
        }, "no \(appendable ? "appendable" : "sealed") segment with rows")
        return DataDirectory.segmentDir(shardDir: shardDir, id: UInt64(try #require(entry["id"]?.intValue)))
    }

    @Test("a damaged segment file (bit flip or garbage, sealed or appendable) is found by the checksums (scrub and check), named, and the shard refuses to use it",
          arguments: ["sealed:vectors.f32:flip", "sealed:rows.bin:garbage", "sealed:deleted.bits:flip", "sealed:payload.dat:flip",
                      "sealed:payload.idx:garbage", "appendable:vectors.f32:garbage", "appendable:rows.bin:flip",
                      "appendable:deleted.bits:garbage", "appendable:payload.dat:garbage", "appendable:payload.idx:flip"])
    func damage(_ damage: String) throws {
        let t = OptimizerTests()
        let tmp = try SegmentChecksumTests.sealedShard()
        let parts = damage.split(separator: ":").map(String.init)
        let file = parts[1]
        let path = try SegmentChecksumTests.segmentDir(tmp.path, appendable: parts[0] == "appendable") + "/" + file
        var bytes = try FileIO.readAll(path)
        let at = bytes.count / 2
        if parts[2] == "flip" {
            bytes[at] ^= 0x10
        } else {
            for k in at..<min(bytes.count, at + 16) { bytes[k] = UInt8(truncatingIfNeeded: 0xA5 &+ k * 37) }
        }
        try FileIO.writeAtomically(path, bytes)
        let shard = try LocalShard(directory: tmp.path, options: t.options(), warn: { _ in })
        // The background scrub finds it (bounded wait), and check() says so at once.
        let deadline = Date().addingTimeInterval(10)
        while shard.damage == nil && Date() < deadline { usleep(10_000) }
        #expect(shard.damage?.contains(file) == true, "\(shard.damage ?? "nothing found")")
        #expect(shard.check().contains { $0.contains(file) && $0.contains("checksum mismatch") })
        do {
            _ = try shard.submit(.delete([.number(1)]))
            Issue.record("a damaged shard took a write")
        } catch let e as VQError {
            #expect(e.kind == .corrupt && e.message.contains(file), "\(e.message)")
        }
        try? shard.close()
    }

    @Test("a truncated or deleted segment file is refused at open, naming it (the shard reports, nothing crashes)",
          arguments: ["rows.bin:truncate", "deleted.bits:truncate", "payload.idx:delete", "vectors.f32:delete"])
    func truncated(_ damage: String) throws {
        let t = OptimizerTests()
        let tmp = try SegmentChecksumTests.sealedShard()
        let parts = damage.split(separator: ":").map(String.init)
        let path = try SegmentChecksumTests.segmentDir(tmp.path, appendable: false) + "/" + parts[0]
        if parts[1] == "delete" { FileIO.remove(path) } else { try FileIO.writeAtomically(path, Array(try FileIO.readAll(path).prefix(3))) }
        do {
            let shard = try LocalShard(directory: tmp.path, options: t.options(), warn: { _ in })
            try? shard.close()
            Issue.record("a shard with a \(damage) file opened")
        } catch let e as VQError {
            #expect(e.kind == .corrupt && e.message.contains(parts[0]), "\(e.message)")
        }
    }

    @Test("an intact data directory passes the scrub and check")
    func intact() throws {
        let t = OptimizerTests()
        let tmp = try SegmentChecksumTests.sealedShard()
        let shard = try LocalShard(directory: tmp.path, options: t.options(), warn: { _ in })
        #expect(shard.check().isEmpty)
        try shard.close()
        // The background scrub agrees.
        let again = try LocalShard(directory: tmp.path, options: t.options(), warn: { _ in })
        let deadline = Date().addingTimeInterval(10)
        while !again.scrubbed && Date() < deadline { usleep(5_000) }
        #expect(again.scrubbed && again.damage == nil)
        try again.close()
    }
}
