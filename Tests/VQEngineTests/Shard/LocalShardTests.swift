import Foundation
import Testing
@testable import VQEngine

@Suite struct LocalShardTests {
    func batch(_ ids: Range<Int>, dim: Int, rng: inout SplitMix64, payload: Bool = false) -> (PointBatch, [[Float]]) {
        var b = PointBatch(dim: dim)
        var vectors: [[Float]] = []
        for i in ids {
            let v = rng.vector(dim)
            vectors.append(v)
            v.withUnsafeBufferPointer { b.append(id: .number(UInt64(i)), vector: $0, payload: payload ? Array("{\"i\":\(i)}".utf8) : nil) }
        }
        return (b, vectors)
    }

    func search(_ shard: LocalShard, _ q: [Float], k: Int) -> [PointID] {
        q.withUnsafeBufferPointer { shard.search($0, ShardSearch(k: k, ef: 100)) }.hits.map(\.id)
    }

    @Test("upserts are searchable once applied, and survive reopening without replay", arguments: [Distance.dot, .euclid, .manhattan])
    func upsertSearchReopen(distance: Distance) throws {
        let tmp = TempDir()
        var rng = SplitMix64(seed: 11)
        var options = ShardOptions(dim: 12, distance: distance)
        options.segmentCapacity = 64  // several segments
        let (b, vectors) = batch(0..<300, dim: 12, rng: &rng)
        let q = rng.vector(12)
        let expected = oracleTopK(vectors, ids: b.ids, query: q, distance: distance, k: 10).map(\.0)
        do {
            let shard = try LocalShard(directory: tmp.path, options: options, warn: { _ in })
            let op = try shard.submit(.upsert(b))
            try shard.waitDurable(op)
            try shard.waitApplied(op)
            #expect(shard.pointCount == 300)
            #expect(shard.status.segments.count == 5)
            #expect(search(shard, q, k: 10) == expected)
            try shard.close()
        }
        let shard = try LocalShard(directory: tmp.path, options: options, warn: { _ in })
        #expect(shard.pointCount == 300)
        #expect(search(shard, q, k: 10) == expected)
        try shard.close()
    }

    @Test("overwrites and deletes across segments leave one live copy per id")
    func overwriteAndDelete() throws {
        let tmp = TempDir()
        var rng = SplitMix64(seed: 5)
        var options = ShardOptions(dim: 4, distance: .dot)
        options.segmentCapacity = 10
        let shard = try LocalShard(directory: tmp.path, options: options, warn: { _ in })
        let (first, _) = batch(0..<25, dim: 4, rng: &rng, payload: true)
        _ = try shard.submit(.upsert(first))
        let (second, _) = batch(20..<30, dim: 4, rng: &rng)
        _ = try shard.submit(.upsert(second))
        let op = try shard.submit(.delete([.number(0), .number(21), .number(999)]))
        try shard.waitApplied(op)
        #expect(shard.pointCount == 28)
        let got = shard.retrieve([.number(0), .number(1), .number(22)], withVector: true, withPayload: true)
        #expect(got.map(\.id) == [.number(1), .number(22)])
        #expect(got[0].payload == .object([("i", .int(1))]))
        #expect(got[1].payload == nil)  // overwritten without payload
        #expect(got[1].vector == Array(second.vectors[0][8..<12]))
        // Every live id appears once in a full search.
        let all = search(shard, [1, 1, 1, 1], k: 100)
        #expect(all.count == 28)
        #expect(Set(all).count == 28)
        try shard.close()
    }

    @Test("pinned files stay as they were while writes go on and the optimizer runs; a flush waits for the pin, the applier's and the optimizer's put themselves off")
    func pinnedFiles() throws {
        let tmp = TempDir()
        var rng = SplitMix64(seed: 9)
        var options = ShardOptions(dim: 8, distance: .cosine)
        options.flushBytes = 1  // the applier flushes after every batch
        let shard = try LocalShard(directory: tmp.path, options: options, warn: { _ in })
        let (first, _) = batch(0..<100, dim: 8, rng: &rng, payload: true)
        try shard.waitApplied(try shard.submit(.upsert(first)))
        let pinned = try #require(try shard.pinFiles())
        func onDisk() throws -> [String: [UInt8]] {
            Dictionary(uniqueKeysWithValues: try pinned.files.map { ($0.name, try FileIO.readAll(tmp.path + "/" + $0.name)) })
        }
        let before = try onDisk()
        #expect(pinned.points == 100)
        #expect(pinned.files.map(\.size) == pinned.files.map { before[$0.name]?.count ?? -1 })
        #expect(try shard.pinFiles() == nil, "held by another copy: not flushed up to now")
        // Writes go on (overwrites, new points, a delete), each followed by a timed flush (the
        // upsert's runs before the delete is taken, so it has run once the delete is applied).
        let (second, _) = batch(50..<200, dim: 8, rng: &rng, payload: true)
        try shard.waitApplied(try shard.submit(.upsert(second)))
        try shard.waitApplied(try shard.submit(.delete([.number(3)])))
        #expect(shard.pointCount == 199)
        #expect(try onDisk() == before)
        // The optimizer does not wait: its swaps are committed by the next flush after the pin,
        // and the segments it replaced stay until then.
        let segments = Set(pinned.files.map { $0.name.split(separator: "/")[1] })
        let report = try shard.optimize(force: true)
        #expect(report.tasks > 0)
        #expect(try onDisk() == before)
        #expect(segments.allSatisfy { FileIO.exists(tmp.path + "/segments/\($0)") })
        // A flush that must happen (the optimizer's, a close's) waits for the pin.
        let flushed = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            try? shard.flushForTesting()
            flushed.signal()
        }
        #expect(flushed.wait(timeout: .now() + 0.2) == .timedOut)
        #expect(try onDisk() == before)
        pinned.release()
        #expect(flushed.wait(timeout: .now() + 30) == .success)
        #expect(!segments.contains { FileIO.exists(tmp.path + "/segments/\($0)") }, "replaced once the manifest no longer names them")
        try shard.close()
        let reopened = try LocalShard(directory: tmp.path, options: options, warn: { _ in })
        #expect(reopened.pointCount == 199)
        try reopened.close()
    }

    @Test("an unflushed shard replays its WAL on open")
    func replayWithoutFlush() throws {
        let tmp = TempDir()
        var rng = SplitMix64(seed: 8)
        var options = ShardOptions(dim: 8, distance: .cosine)
        options.flushInterval = 3600
        let (b, _) = batch(0..<50, dim: 8, rng: &rng)
        var ops: [UInt64] = []
        do {
            let shard = try LocalShard(directory: tmp.path, options: options, warn: { _ in })
            ops.append(try shard.submit(.upsert(b)))
            ops.append(try shard.submit(.delete([.number(3)])))
            try shard.waitDurable(ops[1])
            // No close: as if the process died. The manifest was never written.
            #expect(!FileIO.exists(DataDirectory.manifest(shardDir: tmp.path)))
            shard.abandonForTesting()
        }
        let shard = try LocalShard(directory: tmp.path, options: options, warn: { _ in })
        #expect(shard.pointCount == 49)
        #expect(shard.status.appliedOp == ops[1])
        try shard.close()
    }

    @Test("operations encode and decode losslessly")
    func operationCoding() throws {
        var rng = SplitMix64(seed: 1)
        var (b, _) = batch(0..<5, dim: 3, rng: &rng, payload: true)
        b.ids[2] = .uuid(0xDEAD, 0xBEEF)
        b.payloads[3] = nil
        let bytes = Operation.upsert(b).encode()
        guard case .upsert(let back) = try bytes.withUnsafeBytes({ try Operation.decode($0) }) else {
            Issue.record("decoded the wrong kind")
            return
        }
        #expect(back.ids == b.ids)
        #expect(back.vectors == b.vectors)
        #expect(back.payloads.map { $0 ?? [] } == b.payloads.map { $0 ?? [] })
        #expect(throws: VQError.self) { _ = try bytes.dropLast(3).withUnsafeBytes { try Operation.decode($0) } }
        // Vector updates: the same layout under their own kind, never with payloads.
        var v = b
        v.payloads = v.payloads.map { _ in nil }
        let vbytes = Operation.updateVectors(v).encode()
        guard case .updateVectors(let vback) = try vbytes.withUnsafeBytes({ try Operation.decode($0) }) else {
            Issue.record("decoded the wrong kind")
            return
        }
        #expect(vback.ids == v.ids && vback.vectors == v.vectors && vback.payloads.allSatisfy { $0 == nil })
        var forged = Operation.upsert(b).encode()
        forged[0] = 6  // an update-vectors record that carries payloads
        #expect(throws: VQError.self) { _ = try forged.withUnsafeBytes { try Operation.decode($0) } }
    }
}

@Suite struct FlushCrashTests {
    @Test("a crash between writing segments and the manifest loses nothing: overwritten rows are put back and the WAL redoes them")
    func crashBeforeManifest() throws {
        let tmp = TempDir()
        var o = ShardOptions(dim: 2, distance: .euclid)
        o.segmentCapacity = 4
        o.flushInterval = 3600
        o.backgroundOptimizer = false
        var b = PointBatch(dim: 2)
        for i in 0..<6 { [Float(i), 0].withUnsafeBufferPointer { b.append(id: .number(UInt64(i)), vector: $0, payload: Array("{\"i\":\(i)}".utf8)) } }
        do {
            let shard = try LocalShard(directory: tmp.path, options: o, warn: { _ in })
            try shard.waitApplied(try shard.submit(.upsert(b)))
            try shard.flushForTesting()  // committed: points 0-3 in a sealed segment, 4-5 appendable
            // Move point 1 out of the sealed segment (payload update), delete point 4, overwrite point 5.
            _ = try shard.submit(.setPayload(ids: [.number(1)], payload: Array("{\"x\":1}".utf8), overwrite: false))
            _ = try shard.submit(.delete([.number(4)]))
            var c = PointBatch(dim: 2)
            [Float(9), 9].withUnsafeBufferPointer { c.append(id: .number(5), vector: $0, payload: nil) }
            try shard.waitApplied(try shard.submit(.upsert(c)))
            shard.failBeforeManifestForTesting = true
            #expect(throws: VQError.self) { try shard.flushForTesting() }
            shard.abandonForTesting()
        }
        let shard = try LocalShard(directory: tmp.path, options: o, warn: { _ in })
        let got = shard.retrieve((0..<6).map { .number(UInt64($0)) }, withVector: true, withPayload: true)
        #expect(got.map(\.id) == [.number(0), .number(1), .number(2), .number(3), .number(5)])
        #expect(got[1].payload == (try JSONParser.parse(#"{"i":1,"x":1}"#)))
        #expect(got[4].vector == [9, 9] && got[4].payload == nil)
        #expect(shard.pointCount == 5)
        try shard.close()
    }
}
