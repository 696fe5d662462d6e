import Foundation
import Testing
@testable import VQEngine

@Suite struct CollectionTests {
    func engine(_ tmp: TempDir) throws -> Engine { try Engine(path: tmp.path, warn: { _ in }) }

    @Test("several shards give exactly the brute-force top-k", arguments: [1, 3])
    func shardedSearch(shards: Int) throws {
        let tmp = TempDir()
        let e = try engine(tmp)
        var config = CollectionConfig(dim: 16, distance: .cosine)
        config.shardNumber = shards
        try e.createCollection("c", config: config)
        let c = try e.collection("c")
        var rng = SplitMix64(seed: UInt64(shards))
        var b = PointBatch(dim: 16)
        var vectors: [[Float]] = []
        for i in 0..<500 {
            let v = rng.vector(16)
            vectors.append(v)
            v.withUnsafeBufferPointer { b.append(id: .number(UInt64(i)), vector: $0, payload: nil) }
        }
        _ = try c.upsert(&b, wait: .applied)
        #expect(c.pointCount == 500)
        for _ in 0..<20 {
            let q = rng.vector(16)
            let expected = oracleTopK(vectors, ids: b.ids, query: q, distance: .cosine, k: 10)
            var request = SearchRequest(vector: q, limit: 10)
            let got = try c.search(request).hits
            #expect(got.map(\.id) == expected.map(\.0))
            for (g, x) in zip(got, expected) { #expect(abs(Double(g.score) - x.1) < 1e-4) }
            request.offset = 5
            request.limit = 5
            #expect(try c.search(request).hits.map(\.id) == Array(expected.map(\.0)[5..<10]))
        }
        try e.close()
    }

    @Test("updates: read fan-out settings change in place at once; shard settings reopen and keep the data")
    func updateCollection() throws {
        let tmp = TempDir()
        do {
            let e = try engine(tmp)
            try e.createCollection("u", config: CollectionConfig(dim: 2, distance: .dot))
            let before = try e.collection("u")
            var b = PointBatch(dim: 2)
            [Float(1), 2].withUnsafeBufferPointer { b.append(id: .number(7), vector: $0, payload: nil) }
            _ = try before.upsert(&b, wait: .durable)
            _ = try e.updateCollection("u") { $0.readFanOutDelayMs = 20; $0.readFanOutFactor = 1 }
            #expect(try e.collection("u") === before)
            #expect(before.config.readFanOutDelayMs == 20 && before.config.readFanOutFactor == 1)
            _ = try e.updateCollection("u") { $0.indexingThreshold = 1 }
            let after = try e.collection("u")
            #expect(after !== before)
            #expect(after.config.indexingThreshold == 1 && after.config.readFanOutDelayMs == 20)
            #expect(after.pointCount == 1)
            #expect(throws: VQError.self) { _ = try e.updateCollection("u") { $0.shardNumber = 2 } }
            try e.close()
        }
        let reopened = try engine(tmp)
        #expect(try reopened.collection("u").config.readFanOutFactor == 1)
        try reopened.close()
    }

    @Test("bad vectors are rejected with the dimension or element named")
    func badVectors() throws {
        let tmp = TempDir()
        let e = try engine(tmp)
        try e.createCollection("c", config: CollectionConfig(dim: 3))
        let c = try e.collection("c")
        #expect(throws: VQError.self) { try c.search(SearchRequest(vector: [1, 2])) }
        do {
            _ = try c.search(SearchRequest(vector: [1, .nan, 2]))
            Issue.record("NaN accepted")
        } catch let error as VQError {
            #expect(error.kind == .invalidInput)
            #expect(error.message.contains("element 1"))
        }
        try e.close()
    }

    @Test("names, duplicates and configs are validated")
    func validation() throws {
        let tmp = TempDir()
        let e = try engine(tmp)
        #expect(throws: VQError.self) { try e.createCollection("bad name", config: CollectionConfig(dim: 3)) }
        #expect(throws: VQError.self) { try e.createCollection("../x", config: CollectionConfig(dim: 3)) }
        try e.createCollection("ok-1_x", config: CollectionConfig(dim: 3))
        do {
            try e.createCollection("ok-1_x", config: CollectionConfig(dim: 3))
            Issue.record("duplicate accepted")
        } catch let error as VQError {
            #expect(error.kind == .conflict)
        }
        var bad = CollectionConfig(dim: 3)
        bad.writeConsistencyFactor = 2
        #expect(throws: VQError.self) { try e.createCollection("w", config: bad) }
        #expect(e.collectionNames() == ["ok-1_x"])
        do {
            _ = try e.collection("missing")
            Issue.record("missing collection opened")
        } catch let error as VQError {
            #expect(error.kind == .notFound)
        }
        try e.close()
    }

    @Test("config survives a JSON round trip")
    func configRoundTrip() throws {
        var config = CollectionConfig(dim: 384, distance: .manhattan)
        config.shardNumber = 3
        config.replicationFactor = 2
        config.readFanOutDelayMs = 25
        config.readFanOutFactor = 1
        config.preventUnoptimized = true
        config.maxSegmentSize = 5000
        config.updateQueueSize = 77
        #expect(try CollectionConfig(json: config.json, path: "x") == config)
    }

    @Test("a second holder of the data directory is refused, naming the pid")
    func lock() throws {
        let tmp = TempDir()
        let e = try engine(tmp)
        do {
            _ = try engine(tmp)
            Issue.record("second lock taken")
        } catch let error as VQError {
            #expect(error.kind == .busy)
            #expect(error.message.contains("process \(getpid())"))
        }
        try e.close()
    }
}
