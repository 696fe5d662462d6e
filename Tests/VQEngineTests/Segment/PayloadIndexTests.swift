import Foundation
import Testing
@testable import VQEngine

/// Random payloads and filters, and an oracle that checks each point's JSON.
struct PayloadModel {
    var rng: SplitMix64
    static let cities = ["paris", "rome", "oslo", "lima", "kyiv"]
    static let words = ["red", "green", "blue", "fast", "slow", "cheap", "good", "vector", "search", "engine"]

    init(seed: UInt64) { rng = SplitMix64(seed: seed) }

    mutating func pick<T>(_ a: [T]) -> T { a[Int(rng.next() % UInt64(a.count))] }
    mutating func chance(_ p: Double) -> Bool { Double(rng.next() % 1000) / 1000 < p }

    /// The indexed fields the tests use.
    static var schema: PayloadSchema {
        var s = PayloadSchema()
        s["city"] = PayloadFieldSchema(type: .keyword)
        s["n"] = PayloadFieldSchema(type: .integer)
        s["price"] = PayloadFieldSchema(type: .float)
        s["flag"] = PayloadFieldSchema(type: .bool)
        s["when"] = PayloadFieldSchema(type: .datetime)
        s["uid"] = PayloadFieldSchema(type: .uuid)
        s["text"] = PayloadFieldSchema(type: .text)
        s["loc"] = PayloadFieldSchema(type: .geo)
        s["tags"] = PayloadFieldSchema(type: .keyword)
        s["meta.a"] = PayloadFieldSchema(type: .integer)
        return s
    }

    static func uuid(_ i: Int) -> String { String(format: "%08x-0000-4000-8000-%012x", i, i * 7) }

    mutating func payload() -> JSON? {
        if chance(0.05) { return nil }
        var m: [(String, JSON)] = []
        if !chance(0.1) {
            if chance(0.1) { m.append(("city", .null)) } else if chance(0.05) { m.append(("city", .int(3))) } else if chance(0.15) {
                m.append(("city", .array([.string(pick(Self.cities)), .string(pick(Self.cities))])))
            } else { m.append(("city", .string(pick(Self.cities)))) }
        }
        if !chance(0.1) {
            let x = Int64(rng.next() % 100)
            // Mostly integers; sometimes the same number as 3.0, or a fraction, as JSON allows.
            m.append(("n", chance(0.1) ? .array([.int(x), .int(Int64(rng.next() % 100))])
                      : chance(0.05) ? .double(Double(x)) : chance(0.05) ? .double(Double(x) + 0.5) : .int(x)))
        }
        if !chance(0.2) { m.append(("price", .double(Double(rng.next() % 10_000) / 100))) }
        if !chance(0.2) { m.append(("flag", .bool(chance(0.5)))) }
        if !chance(0.2) { m.append(("when", .string(Datetime.format(1_700_000_000 + Double(rng.next() % 1_000_000))))) }
        if !chance(0.3) { m.append(("uid", .string(Self.uuid(Int(rng.next() % 20))))) }
        if !chance(0.2) { m.append(("text", .string((0..<(1 + Int(rng.next() % 4))).map { _ in pick(Self.words) }.joined(separator: " ")))) }
        if !chance(0.3) {
            m.append(("loc", .object([("lon", .double(Double(rng.next() % 360) - 180)), ("lat", .double(Double(rng.next() % 180) - 90))])))
        }
        if chance(0.6) { m.append(("tags", .array((0..<Int(rng.next() % 3)).map { _ in .string(pick(Self.cities)) }))) }
        if chance(0.7) { m.append(("meta", .object([("a", .int(Int64(rng.next() % 10)))]))) }
        if chance(0.5) {
            m.append(("items", .array((0..<(1 + Int(rng.next() % 3))).map { _ in
                .object([("k", .string(pick(Self.cities))), ("v", .int(Int64(rng.next() % 10)))])
            })))
        }
        return .object(m)
    }

    mutating func condition(depth: Int) -> JSON {
        func keyed(_ key: String, _ name: String, _ v: JSON) -> JSON { .object([("key", .string(key)), (name, v)]) }
        if depth < 2 && chance(0.2) { return filter(depth: depth + 1) }
        switch rng.next() % 17 {
        case 0: return keyed("city", "match", .object([("value", .string(pick(Self.cities)))]))
        case 1: return keyed("city", "match", .object([("any", .array([.string(pick(Self.cities)), .string(pick(Self.cities))]))]))
        case 2: return keyed(pick(["city", "tags"]), "match", .object([("except", .array([.string(pick(Self.cities))]))]))
        case 3: return keyed("n", "match", .object([("value", .int(Int64(rng.next() % 100)))]))
        case 4:
            let lo = Int64(rng.next() % 100)
            return keyed("n", "range", .object([("gte", .int(lo)), ("lt", .int(lo + Int64(rng.next() % 40)))]))
        case 5: return keyed("price", "range", .object([("gt", .double(Double(rng.next() % 10_000) / 100))]))
        case 6: return keyed("flag", "match", .object([("value", .bool(chance(0.5)))]))
        case 7:
            let t = 1_700_000_000 + Double(rng.next() % 1_000_000)
            return keyed("when", "range", .object([("gte", .string(Datetime.format(t))), ("lte", .string(Datetime.format(t + 300_000)))]))
        case 8: return keyed("uid", "match", .object([("value", .string(Self.uuid(Int(rng.next() % 20))))]))
        case 9: return keyed("text", "match", .object([("text", .string(pick(Self.words) + (chance(0.3) ? " " + pick(Self.words) : "")))]))
        case 10:
            return keyed("loc", "geo_radius", .object([("center", .object([("lon", .double(Double(rng.next() % 360) - 180)),
                                                                             ("lat", .double(Double(rng.next() % 180) - 90))])),
                                                       ("radius", .double(3_000_000))]))
        case 11: return keyed("tags", "match", .object([("value", .string(pick(Self.cities)))]))
        case 12: return .object([("is_empty", .object([("key", .string(pick(["city", "tags", "n", "text"])))]))])
        case 13: return keyed("meta.a", "range", .object([("lte", .int(Int64(rng.next() % 10)))]))
        case 14: return keyed("tags", "values_count", .object([("gte", .int(Int64(rng.next() % 3)))]))
        case 15:
            return .object([("nested", .object([("key", .string("items")), ("filter", .object([("must", .array([
                keyed("k", "match", .object([("value", .string(pick(Self.cities)))])),
                keyed("v", "range", .object([("gte", .int(Int64(rng.next() % 10)))])),
            ]))]))]))])
        default:
            return .object([("has_id", .array((0..<5).map { _ in .int(Int64(rng.next() % 700)) }))])
        }
    }

    mutating func filter(depth: Int = 0) -> JSON {
        var m: [(String, JSON)] = []
        func list() -> JSON { .array((0..<(1 + Int(rng.next() % 3))).map { _ in condition(depth: depth) }) }
        if chance(0.8) { m.append(("must", list())) }
        if chance(0.3) { m.append(("should", list())) }
        if chance(0.3) { m.append(("must_not", list())) }
        if chance(0.15) { m.append(("min_should", .object([("conditions", list()), ("min_count", .int(Int64(1 + rng.next() % 2)))]))) }
        return .object(m)
    }

    /// The oracle: each point's JSON, with text conditions on the text-indexed field by tokens
    /// (the index's semantics) and everything else as `Filter.matches` checks it.
    static func passes(_ f: Filter, id: PointID, payload: JSON?, textIndexed: Bool = true) -> Bool {
        func passes(_ f: Filter, id: PointID, payload: JSON?) -> Bool { Self.passes(f, id: id, payload: payload, textIndexed: textIndexed) }
        switch f {
        case let .all(must, should, mustNot, minShould):
            if must.contains(where: { !passes($0, id: id, payload: payload) }) { return false }
            if mustNot.contains(where: { passes($0, id: id, payload: payload) }) { return false }
            if !should.isEmpty && !should.contains(where: { passes($0, id: id, payload: payload) }) { return false }
            if let (c, n) = minShould, c.filter({ passes($0, id: id, payload: payload) }).count < n { return false }
            return true
        case let .matchText(key, text) where key == "text" && textIndexed:
            let words = Set(text.split(separator: " ").map(String.init))
            return Filter.values(payload, key).contains { v in
                let doc = Set((v.stringValue ?? "").split(separator: " ").map(String.init))
                return !words.isEmpty && words.isSubset(of: doc)
            }
        default:
            return f.matches(id: id, payload: payload)
        }
    }
}

@Suite struct PayloadIndexTests {
    func options(_ schema: PayloadSchema) -> ShardOptions {
        var o = OptimizerTests().options(threshold: 150)
        o.payloadSchema = schema
        return o
    }

    /// Checks 120 random filters: scan and count agree with the oracle over `model`.
    func check(_ shard: LocalShard, _ model: [PointID: JSON?], seed: UInt64, _ stage: String, textIndexed: Bool = true) throws {
        var gen = PayloadModel(seed: seed)
        for i in 0..<120 {
            let json = gen.filter()
            let f = try Filter(json: json)
            let expected = Set(model.filter { PayloadModel.passes(f, id: $0.key, payload: $0.value, textIndexed: textIndexed) }.keys)
            let got = shard.scan(filter: f, withVector: false, withPayload: false).map(\.id)
            #expect(Set(got) == expected && got.count == expected.count, "\(stage) filter \(i): \(json.compactText): got \(got.count), expected \(expected.count)")
            #expect(shard.count(filter: f) == expected.count, "\(stage) count \(i)")
        }
    }

    @Test("every index type answers as checking each point's JSON does, through writes, payload updates, deletes, sealing, merging and reopening",
          arguments: [1, 2, 3] as [UInt64])
    func oracle(seed: UInt64) throws {
        let tmp = TempDir()
        var gen = PayloadModel(seed: seed * 1000)
        var model: [PointID: JSON?] = [:]
        var shard = try LocalShard(directory: tmp.path, options: options(PayloadModel.schema), warn: { _ in })
        var rng = SplitMix64(seed: seed)
        func upsert(_ ids: [Int]) throws {
            var b = PointBatch(dim: 8)
            for i in ids {
                let p = gen.payload()
                model[.number(UInt64(i))] = .some(p)
                rng.vector(8).withUnsafeBufferPointer { b.append(id: .number(UInt64(i)), vector: $0, payload: p.map { JSONWriter.bytes($0) }) }
            }
            _ = try shard.submit(.upsert(b))
        }
        try upsert(Array(0..<120))
        try shard.waitApplied(shard.lastOp)
        try check(shard, model, seed: seed + 10, "appendable")
        // Overwrites, payload changes and deletes in both the appendable and sealed segments.
        try upsert(Array(100..<500))
        try upsert((0..<60).map { _ in Int(rng.next() % 500) })
        let patched = (0..<30).map { _ in PointID.number(rng.next() % 500) }
        _ = try shard.submit(.setPayload(ids: patched, payload: Array(#"{"city":"oslo","n":7}"#.utf8), overwrite: false))
        for id in patched {
            guard case .some(let old) = model[id] else { continue }
            var members = old?.objectValue ?? []
            for (k, v) in [("city", JSON.string("oslo")), ("n", JSON.int(7))] {
                if let i = members.firstIndex(where: { $0.0 == k }) { members[i].1 = v } else { members.append((k, v)) }
            }
            model[id] = .some(.object(members))
        }
        let cleared = (0..<10).map { _ in PointID.number(rng.next() % 500) }
        _ = try shard.submit(.clearPayload(cleared))
        for id in cleared where model[id] != nil { model[id] = .some(nil) }
        let gone = (0..<40).map { _ in PointID.number(rng.next() % 500) }
        _ = try shard.submit(.delete(gone))
        for id in gone { model[id] = nil }
        try shard.waitApplied(shard.lastOp)
        try check(shard, model, seed: seed + 20, "mixed")
        _ = try shard.settle()
        try check(shard, model, seed: seed + 30, "settled")
        try shard.close()
        // A damaged payload_index.bin is rebuilt from the payloads; the others are read, not rebuilt.
        let files = FileIO.list(tmp.path + "/segments").map { tmp.path + "/segments/" + $0 + "/" + Segment.fieldIndexFile }.filter(FileIO.exists)
        #expect(!files.isEmpty, "no sealed segment wrote its payload indexes")
        if let first = files.first {
            var bytes = try FileIO.readAll(first)
            bytes[bytes.count / 2] ^= 0x40
            try FileIO.writeAtomically(first, bytes)
        }
        shard = try LocalShard(directory: tmp.path, options: options(PayloadModel.schema), warn: { _ in })
        let loaded = shard.lock.read { shard.holder.segments.filter { !$0.appendable && $0.rowCount > 0 }.map(\.fieldIndexFileCurrent) }
        #expect(loaded.filter { !$0 }.count == min(1, files.count), "\(loaded)")
        try check(shard, model, seed: seed + 40, "reopened")
        // Without indexes every condition is checked per point: the same answers.
        shard.setPayloadSchema(PayloadSchema())
        try check(shard, model, seed: seed + 40, "no indexes", textIndexed: false)
        try shard.close()
    }

    @Test("filtered searches return the nearest passing points: exact below full_scan_threshold, graph walk above it")
    func filteredSearch() throws {
        let tmp = TempDir()
        var o = options(PayloadModel.schema)
        o.indexingThresholdRows = 400
        o.fullScanRows = 100
        let shard = try LocalShard(directory: tmp.path, options: o, warn: { _ in })
        var rng = SplitMix64(seed: 9)
        var vectors: [[Float]] = [], ids: [PointID] = [], payloads: [JSON] = []
        var b = PointBatch(dim: 8)
        for i in 0..<2000 {
            let v = rng.vector(8)
            // "c" holds i % 100: value 0 is 1% of the points, "g" i % 2: half of them.
            let p: JSON = .object([("city", .string("c\(i % 100)")), ("n", .int(Int64(i % 2)))])
            vectors.append(v); ids.append(.number(UInt64(i))); payloads.append(p)
            v.withUnsafeBufferPointer { b.append(id: .number(UInt64(i)), vector: $0, payload: JSONWriter.bytes(p)) }
        }
        _ = try shard.submit(.upsert(b))
        _ = try shard.settle()
        #expect(shard.status.segments.contains { $0.indexed })
        for (filter, graph) in [(#"{"must":[{"key":"city","match":{"value":"c0"}}]}"#, false), (#"{"must":[{"key":"n","match":{"value":1}}]}"#, true)] {
            let f = try Filter(json: try JSONParser.parse(Array(filter.utf8)))
            let sealed = shard.lock.read { shard.holder.segments.first { $0.indexed }! }
            let allowed = sealed.rows(passing: f) { _ in nil }
            #expect(sealed.usesGraph(SegmentSearch(k: 10, ef: 64, fullScanRows: 100), allowed: allowed.cardinality) == graph, "\(filter)")
            var found = 0
            for _ in 0..<20 {
                let q = rng.vector(8)
                var r = ShardSearch(k: 10, ef: 64)
                r.filter = f
                let hits = q.withUnsafeBufferPointer { shard.search($0, r) }.hits
                #expect(hits.allSatisfy { h in f.matches(id: h.id, payload: payloads[ids.firstIndex(of: h.id)!]) })
                let keep = ids.indices.filter { f.matches(id: ids[$0], payload: payloads[$0]) }
                let truth = oracleTopK(keep.map { vectors[$0] }, ids: keep.map { ids[$0] }, query: q, distance: .euclid, k: 10).map(\.0)
                found += Set(hits.map(\.id)).intersection(truth).count
            }
            #expect(found >= (graph ? 180 : 200), "\(filter): recall \(found) / 200")
        }
        try shard.close()
    }
}
