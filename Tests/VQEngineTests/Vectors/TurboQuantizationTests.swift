import CVQSupport
import Foundation
import Testing
@testable import VQEngine

@Suite struct TurboQuantizationTests {
    @Test("the 4-bit kernels (AVX-512 VNNI, AVX2, C) give the same integers as the definition", arguments: [1, 2, 3, 4])
    func kernels(blocks: Int) {
        var rng = SplitMix64(seed: UInt64(blocks))
        let codes = (0..<(64 * blocks)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        let q = (0..<(128 * blocks)).map { _ in Int8(Int(rng.next() % 255) - 127) }
        let lut: [Int8] = [-127, -101, -77, -59, -44, -30, -18, -6, 6, 18, 30, 44, 59, 77, 101, 127]
        var expected: Int32 = 0
        for b in 0..<blocks {
            for j in 0..<64 {
                let c = codes[64 * b + j]
                expected += Int32(lut[Int(c & 15)]) * Int32(q[128 * b + j]) + Int32(lut[Int(c >> 4)]) * Int32(q[128 * b + 64 + j])
            }
        }
        let sum = q.reduce(Int32(0)) { $0 + Int32($1) }
        for k in [cvq_select_u8_kernels(0), cvq_select_u8_kernels(1), cvq_select_u8_kernels(2)] {
            #expect(k.nibble_dot(codes, q, lut, blocks, sum) == expected, "\(String(cString: k.level))")
        }
        // The extremes: every level and query value at +-127 with matching signs, as a query
        // against its own near-duplicate gives (16-bit sums of pairs would wrap).
        for (code, value) in [(UInt8(0xFF), Int8(127)), (UInt8(0x00), Int8(-127))] {
            let c = [UInt8](repeating: code, count: 64 * blocks), x = [Int8](repeating: value, count: 128 * blocks)
            let total = Int32(128 * blocks) * 127 * 127
            for k in [cvq_select_u8_kernels(0), cvq_select_u8_kernels(1), cvq_select_u8_kernels(2)] {
                #expect(k.nibble_dot(c, x, lut, blocks, Int32(value) * Int32(128 * blocks)) == total, "\(String(cString: k.level)) at the extremes")
            }
        }
    }

    @Test("the rotation is orthonormal: it keeps norms and inner products", arguments: [16, 100, 128, 384, 768])
    func rotation(dim: Int) {
        var rng = SplitMix64(seed: 5)
        let r = Rotation(dim: dim)
        #expect(r.padded % 128 == 0 && r.padded >= dim && r.padded - dim < 128)
        let x = rng.vector(dim), y = rng.vector(dim)
        var rx = [Float](repeating: 0, count: r.padded), ry = rx, scratch = rx
        r.apply(x, minus: nil, into: &rx, scratch: &scratch)
        r.apply(y, minus: nil, into: &ry, scratch: &scratch)
        let dot = { (a: [Float], b: [Float]) in zip(a, b).reduce(0) { $0 + Double($1.0) * Double($1.1) } }
        #expect(abs(dot(rx, rx) - dot(x, x)) < 1e-4 * dot(x, x))
        #expect(abs(dot(rx, ry) - dot(x, y)) < 1e-4 * (dot(x, x) * dot(y, y)).squareRoot())
        // It mixes: a unit vector spreads over many coordinates.
        var e = [Float](repeating: 0, count: dim)
        e[0] = 1
        r.apply(e, minus: nil, into: &rx, scratch: &scratch)
        #expect(rx.map(abs).max()! < 0.3, "largest coordinate \(rx.map(abs).max()!)")
    }

    @Test("the levels are the Lloyd-Max quantizer of a Gaussian; each level's table entry is its rounding")
    func levels() {
        let l = TurboCodes.levels
        #expect(l.count == 16 && zip(l, l.dropFirst()).allSatisfy { $0 < $1 })
        // Published values: +-0.1284, 0.3881, 0.6568, 0.9424, 1.2562, 1.6181, 2.0690, 2.7326.
        for (k, v) in [0.1284, 0.3881, 0.6568, 0.9424, 1.2562, 1.6181, 2.0690, 2.7326].enumerated() {
            #expect(abs(l[8 + k] - v) < 2e-3 && abs(l[7 - k] + v) < 2e-3, "level \(8 + k): \(l[8 + k])")
        }
        #expect(TurboCodes.table[15] == 127 && TurboCodes.table[0] == -127)
    }

    @Test("distances on 4-bit codes follow the float distances", arguments: [Distance.cosine, .dot, .euclid])
    func codeDistances(distance: Distance) {
        var rng = SplitMix64(seed: 9)
        let dim = 384, count = 300
        // An offset common to every vector, as real embeddings have (the mean takes it out).
        let common = rng.vector(dim).map { $0 * 0.5 }
        var vectors = (0..<count).flatMap { _ in zip(rng.vector(dim), common).map { $0 + $1 } }
        if distance.normalizes {
            vectors.withUnsafeMutableBufferPointer { v in for r in 0..<count { Distance.normalize(UnsafeMutableBufferPointer(rebasing: v[(r * dim)..<((r + 1) * dim)])) } }
        }
        let codes = vectors.withUnsafeBufferPointer { TurboCodes(vectors: $0.baseAddress!, count: count, dim: dim, distance: distance) { _ in false } }
        #expect(codes.byteCount == count * (dim / 2 + 8) + dim * 4)
        let exact = DistanceFunction(distance)
        var errors = [Float](), spread = [Float]()
        vectors.withUnsafeBufferPointer { v in
            let q = v.baseAddress! + 3 * dim
            codes.withScorer(q) { scorer in
                for r in 0..<count {
                    let e = exact(q, v.baseAddress! + r * dim, dim)
                    errors.append(abs(scorer.distance(UInt32(r)) - e))
                    spread.append(e)
                }
            }
        }
        // The error is a small share of how far apart the distances are.
        let mean = spread.reduce(0, +) / Float(count)
        let deviation = (spread.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Float(count)).squareRoot()
        let typical = errors.reduce(0, +) / Float(count)
        #expect(typical < 0.1 * deviation, "mean error \(typical) against a spread of \(deviation)")
        // The query's own row is the nearest by codes too.
        #expect(errors.indices.min { i, j in
            vectors.withUnsafeBufferPointer { v in codes.withScorer(v.baseAddress! + 3 * dim) { $0.distance(UInt32(i)) < $0.distance(UInt32(j)) } }
        } == 3)
    }

    @Test("a turbo collection: near-exact top hits, exact re-scored scores; PATCH switches quantization; settings checked")
    func collection() throws {
        let t = QdrantAPITests()
        let tmp = TempDir()
        do {
            let engine = try Engine(path: tmp.path, warn: { _ in })
            let api = QdrantAPI(engine: engine, config: APIConfig())
            let create = #"{"vectors":{"size":64,"distance":"Cosine"},"quantization_config":{"turbo":{"bits":"bits4","always_ram":true}},"#
                + #""hnsw_config":{"full_scan_threshold":0}}"#
            #expect(t.call(api, "PUT", "/collections/c", create).0 == 200)
            #expect(t.call(api, "GET", "/collections/c").1?["result"]?["config"]?["quantization_config"]
                    == JSONParser.parseOrNull(#"{"turbo":{"bits":"bits4","always_ram":true}}"#))
            var rng = SplitMix64(seed: 12)
            let vectors = (0..<1500).map { _ in rng.vector(64) }
            let points = vectors.enumerated().map { #"{"id":\#($0.offset),"vector":\#($0.element)}"# }.joined(separator: ",")
            #expect(t.call(api, "PUT", "/collections/c/points", "{\"points\":[\(points)]}", query: ["wait": "true"]).0 == 200)
            _ = try engine.collection("c").optimize()
            func norm(_ v: [Float]) -> Double { zip(v, v).reduce(0) { $0 + Double($1.0 * $1.1) }.squareRoot() }
            func hits(_ body: String) -> [(Int, Double)] {
                (t.call(api, "POST", "/collections/c/points/query", body).1?["result"]?["points"]?.arrayValue ?? []).compactMap { p in
                    p["id"]?.intValue.map { (Int($0), p["score"]?.doubleValue ?? .nan) }
                }
            }
            func recall(_ params: String, _ queries: [[Float]]) -> (found: Int, exactScores: Bool) {
                var found = 0, exactScores = true
                for q in queries {
                    let truth = vectors.enumerated().map { ($0.offset, zip(q, $0.element).reduce(0) { $0 + Double($1.0 * $1.1) } / (norm(q) * norm($0.element))) }
                        .sorted { $0.1 > $1.1 }
                    let got = hits(#"{"query":\#(q),"limit":10,"params":\#(params)}"#)
                    found += Set(got.map(\.0)).intersection(truth.prefix(10).map(\.0)).count
                    exactScores = exactScores && got.allSatisfy { id, s in abs(s - truth.first { $0.0 == id }!.1) < 1e-4 }
                }
                return (found, exactScores)
            }
            // vq info reports the codes' bytes: 1,500 rows x (64 padded to 128 dimensions / 2 + 8) + the mean.
            func quantizedBytes() -> Int64 {
                (t.call(api, "GET", "/collections/c/info").1?["result"]?["segments"]?.arrayValue ?? []).reduce(0) { $0 + ($1["quantized_bytes"]?.intValue ?? 0) }
            }
            #expect(quantizedBytes() == 1500 * (64 + 8) + 64 * 4)
            let queries = (0..<20).map { _ in rng.vector(64) }
            let turbo = recall(#"{"hnsw_ef":64,"quantization":{"oversampling":3}}"#, queries)
            #expect(turbo.found >= 180 && turbo.exactScores, "recall@10 \(Double(turbo.found) / 200)")
            // Without re-scoring the scores are the codes' estimates: close, not exact.
            let raw = hits(#"{"query":\#(queries[0]),"limit":5,"params":{"quantization":{"rescore":false}}}"#)
            #expect(raw.count == 5 && raw.contains { id, s in abs(s - Double(zip(queries[0], vectors[id]).reduce(0) { $0 + $1.0 * $1.1 }) / (norm(queries[0]) * norm(vectors[id]))) > 1e-5 })
            // PATCH: to scalar int8, then off ("Disabled"), then back to turbo; searches stay right throughout.
            for (patch, reported) in [(#"{"scalar":{"type":"int8","quantile":0.99}}"#, #"{"scalar":{"type":"int8","quantile":0.99}}"#),
                                      (#""Disabled""#, "null"), (#"{"turbo":{}}"#, #"{"turbo":{"bits":"bits4"}}"#)] {
                #expect(t.call(api, "PATCH", "/collections/c", #"{"quantization_config":\#(patch)}"#).0 == 200, "\(patch)")
                #expect(t.call(api, "GET", "/collections/c").1?["result"]?["config"]?["quantization_config"] == JSONParser.parseOrNull(reported), "\(patch)")
                // Without quantization, oversampling would change nothing: refused, and the search asked without it.
                let params = patch == #""Disabled""# ? #"{"hnsw_ef":64}"# : #"{"hnsw_ef":64,"quantization":{"oversampling":3}}"#
                if patch == #""Disabled""# {
                    #expect(quantizedBytes() == 0)
                    let refused = t.call(api, "POST", "/collections/c/points/query", #"{"query":\#(queries[0]),"params":{"quantization":{"oversampling":3}}}"#)
                    #expect(refused.0 == 400 && refused.1?["status"]?["error"]?.stringValue?.contains("no quantization_config") == true)
                }
                let r = recall(params, Array(queries.prefix(5)))
                #expect(r.found >= 45 && r.exactScores, "after \(patch): \(r.found) of 50")
            }
            for (method, path, body, status, fragment) in [
                ("PUT", "/collections/d", #"{"vectors":{"size":4,"distance":"Dot"},"quantization_config":{"turbo":{"bits":"bits2"}}}"#, 400, "bits4"),
                ("PUT", "/collections/d", #"{"vectors":{"size":4,"distance":"Dot"},"quantization_config":{"turbo":{"bits":"bits3"}}}"#, 422, "bits3"),
                ("PUT", "/collections/d", #"{"vectors":{"size":4,"distance":"Manhattan"},"quantization_config":{"turbo":{}}}"#, 400, "Manhattan"),
                ("PUT", "/collections/d", #"{"vectors":{"size":4,"distance":"Dot"},"quantization_config":{"turbo":{"bits":"bits4","rotation":1}}}"#, 400, "rotation"),
                ("PUT", "/collections/d", #"{"vectors":{"size":4,"distance":"Dot"},"quantization_config":{"turbo":{},"scalar":{"type":"int8"}}}"#, 400, "exactly one"),
                ("PATCH", "/collections/c", #"{"quantization_config":"Enabled"}"#, 400, "Disabled"),
                ("PATCH", "/collections/c", #"{"quantization_config":{"binary":{}}}"#, 400, "binary"),
                ("PUT", "/collections/d", #"{"vectors":{"size":4,"distance":"Dot"},"quantization_config":{"turbo":{"always_ram":false}}}"#, 400, "always_ram"),
            ] {
                let (s, err, _) = t.call(api, method, path, body)
                #expect(s == status && err?["status"]?["error"]?.stringValue?.contains(fragment) == true, "\(body): \(s) \(err?.compactText ?? "")")
            }
            // A refused PATCH leaves the config as it was.
            #expect(t.call(api, "GET", "/collections/c").1?["result"]?["config"]?["quantization_config"] == JSONParser.parseOrNull(#"{"turbo":{"bits":"bits4"}}"#))
            try engine.close()
        }
        // Reopened from disk: the config and the codes come back.
        let again = try Engine(path: tmp.path, warn: { _ in })
        let api2 = QdrantAPI(engine: again, config: APIConfig())
        #expect(t.call(api2, "GET", "/collections/c").1?["result"]?["config"]?["quantization_config"] == JSONParser.parseOrNull(#"{"turbo":{"bits":"bits4"}}"#))
        try again.close()
    }
}
