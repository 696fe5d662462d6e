import CVQSupport
import Foundation
import Testing
@testable import VQEngine

@Suite struct ScalarQuantizationTests {
    @Test("the 8-bit kernels (AVX-512 VNNI, AVX2, C) give the same integers at every length", arguments: [1, 7, 15, 16, 17, 63, 64, 65, 127, 128, 129, 384])
    func kernels(n: Int) {
        var rng = SplitMix64(seed: UInt64(n))
        let a = (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        let b = (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        let s = b.map { Int8(Int($0) - 128) }
        // Level 1 is AVX2 where level 0 picks VNNI: each SIMD level is checked on a machine that has it.
        let best = cvq_select_u8_kernels(0), avx2 = cvq_select_u8_kernels(1), plain = cvq_select_u8_kernels(2)
        let dot = zip(a, b).reduce(0) { $0 + UInt32($1.0) * UInt32($1.1) }
        let l2 = zip(a, b).reduce(0) { $0 + UInt32((Int($1.0) - Int($1.1)) * (Int($1.0) - Int($1.1))) }
        let l1 = zip(a, b).reduce(0) { $0 + UInt32(abs(Int($1.0) - Int($1.1))) }
        let mixed = zip(a, s).reduce(Int32(0)) { $0 + Int32($1.0) * Int32($1.1) }
        for k in [best, avx2, plain] {
            #expect(k.dot(a, b, n) == dot && k.l2sq(a, b, n) == l2 && k.l1(a, b, n) == l1 && k.dot_u8i8(a, s, n) == mixed, "\(String(cString: k.level))")
        }
    }

    @Test("distances on codes follow the float distances closely, for every metric", arguments: Distance.allCases)
    func codeDistances(distance: Distance) {
        var rng = SplitMix64(seed: 7)
        let dim = 64, count = 200
        var vectors = (0..<(count * dim)).map { _ in rng.float() }
        if distance.normalizes {
            vectors.withUnsafeMutableBufferPointer { v in for r in 0..<count { Distance.normalize(UnsafeMutableBufferPointer(rebasing: v[(r * dim)..<((r + 1) * dim)])) } }
        }
        let codes = vectors.withUnsafeBufferPointer { ScalarCodes(vectors: $0.baseAddress!, count: count, dim: dim, distance: distance, quantile: 1) }
        let exact = DistanceFunction(distance)
        var worst: Float = 0, scale: Float = 0
        vectors.withUnsafeBufferPointer { v in
            let q = v.baseAddress! + 3 * dim
            codes.withScorer(q) { scorer in
                for r in 0..<count {
                    let e = exact(q, v.baseAddress! + r * dim, dim)
                    worst = max(worst, abs(scorer.distance(UInt32(r)) - e))
                    scale = max(scale, abs(e))
                }
            }
        }
        #expect(worst <= 0.02 * scale, "largest error \(worst) against distances up to \(scale)")
    }

    @Test("a row's own codes are at distance exactly 0 (euclid: integers, never negative); the range sees every dimension")
    func exactness() {
        var rng = SplitMix64(seed: 3)
        // Dimension 0 in [0, 1], the others in [-100, 100]; 65,536 rows of 4 (a stride over single
        // values of 4 would see dimension 0 only).
        let dim = 4, count = 65_536
        let vectors = (0..<(count * dim)).map { i in i % dim == 0 ? Float.random(in: 0...1, using: &rng) : Float.random(in: -100...100, using: &rng) }
        let codes = vectors.withUnsafeBufferPointer { ScalarCodes(vectors: $0.baseAddress!, count: count, dim: dim, distance: .euclid, quantile: 0.99) }
        #expect(codes.lo < -50 && codes.lo + 255 * codes.step > 50, "range \(codes.lo) ... \(codes.lo + 255 * codes.step)")
        vectors.withUnsafeBufferPointer { v in
            for row in [0, 17, 4_000, 65_535] {
                codes.withScorer(v.baseAddress! + row * dim) { #expect($0.distance(UInt32(row)) == 0) }
            }
        }
    }

    @Test("a quantized collection: near-exact top hits, re-scored scores exact; ignore and rescore:false do as asked; settings checked")
    func collection() throws {
        let t = QdrantAPITests()
        let tmp = TempDir()
        let engine = try Engine(path: tmp.path, warn: { _ in })
        let api = QdrantAPI(engine: engine, config: APIConfig())
        let create = #"{"vectors":{"size":16,"distance":"Euclid"},"quantization_config":{"scalar":{"type":"int8","quantile":0.99,"always_ram":true}},"#
            + #""hnsw_config":{"full_scan_threshold":0}}"#
        #expect(t.call(api, "PUT", "/collections/c", create).0 == 200)
        #expect(t.call(api, "GET", "/collections/c").1?["result"]?["config"]?["quantization_config"]
                == JSONParser.parseOrNull(#"{"scalar":{"type":"int8","quantile":0.99,"always_ram":true}}"#))
        var rng = SplitMix64(seed: 11)
        let vectors = (0..<1500).map { _ in rng.vector(16) }
        let points = vectors.enumerated().map { #"{"id":\#($0.offset),"vector":\#($0.element),"payload":{"i":\#($0.offset)}}"# }.joined(separator: ",")
        #expect(t.call(api, "PUT", "/collections/c/points", "{\"points\":[\(points)]}", query: ["wait": "true"]).0 == 200)
        _ = try engine.collection("c").optimize()
        func hits(_ body: String) -> [(Int, Double)] {
            (t.call(api, "POST", "/collections/c/points/query", body).1?["result"]?["points"]?.arrayValue ?? []).compactMap { p in
                p["id"]?.intValue.map { (Int($0), p["score"]?.doubleValue ?? .nan) }
            }
        }
        var found = 0, approximate = 0
        for qi in 0..<20 {
            let q = rng.vector(16)
            let truth = vectors.enumerated().map { ($0.offset, zip(q, $0.element).reduce(0) { $0 + Double(($1.0 - $1.1) * ($1.0 - $1.1)) }.squareRoot()) }
                .sorted { $0.1 < $1.1 }
            let got = hits(#"{"query":\#(q),"limit":10,"params":{"hnsw_ef":64,"quantization":{"oversampling":2}}}"#)
            found += Set(got.map(\.0)).intersection(truth.prefix(10).map(\.0)).count
            // Re-scored: each score is the exact distance.
            for (id, score) in got {
                let exact = truth.first { $0.0 == id }!.1
                #expect(abs(score - exact) < 1e-4 * max(1, exact), "point \(id): \(score) against \(exact) (query \(qi))")
            }
            // Walking the floats gives the exact answer's best; codes without re-scoring give scores off by a little.
            #expect(hits(#"{"query":\#(q),"limit":1,"params":{"hnsw_ef":200,"quantization":{"ignore":true}}}"#).first?.0 == truth[0].0)
            let raw = hits(#"{"query":\#(q),"limit":3,"params":{"quantization":{"rescore":false}}}"#)
            #expect(raw.count == 3 && raw.allSatisfy { id, s in abs(s - truth.first { $0.0 == id }!.1) < 0.1 * max(1, s) })
            approximate += raw.filter { id, s in abs(s - truth.first { $0.0 == id }!.1) > 1e-4 * max(1, s) }.count
        }
        // rescore:false is not ignored: scores come from the codes, so most are not the exact ones.
        #expect(approximate >= 30, "\(approximate) of 60 unre-scored scores differ from the exact")
        #expect(found >= 190, "recall@10 \(Double(found) / 200)")
        // Filtered (20% and 60% of the points): the walk on codes keeps to the allowed points,
        // and re-scored scores are exact.
        var filteredFound = 0
        for (qi, limit) in [(0, 300), (1, 900), (2, 300), (3, 900)] {
            let q = rng.vector(16)
            let truth = vectors.prefix(limit).enumerated().map { ($0.offset, zip(q, $0.element).reduce(0) { $0 + Double(($1.0 - $1.1) * ($1.0 - $1.1)) }.squareRoot()) }
                .sorted { $0.1 < $1.1 }
            let got = hits(#"{"query":\#(q),"limit":10,"filter":{"must":[{"key":"i","range":{"lt":\#(limit)}}]},"params":{"hnsw_ef":64,"quantization":{"oversampling":2}}}"#)
            #expect(got.count == 10 && got.allSatisfy { $0.0 < limit }, "query \(qi)")
            for (id, score) in got { #expect(abs(score - truth.first { $0.0 == id }!.1) < 1e-4 * max(1, score)) }
            filteredFound += Set(got.map(\.0)).intersection(truth.prefix(10).map(\.0)).count
        }
        #expect(filteredFound >= 36, "filtered recall@10 \(Double(filteredFound) / 40)")
        for (body, status, fragment) in [
            (#"{"vectors":{"size":4,"distance":"Dot"},"quantization_config":{"product":{"compression":"x16"}}}"#, 400, "product"),
            (#"{"vectors":{"size":4,"distance":"Dot"},"quantization_config":{"scalar":{"type":"int4"}}}"#, 422, "int8"),
            (#"{"vectors":{"size":4,"distance":"Dot"},"quantization_config":{"scalar":{"type":"int8","quantile":0.2}}}"#, 400, "quantile"),
        ] {
            let (s, err, _) = t.call(api, "PUT", "/collections/d", body)
            #expect(s == status && err?["status"]?["error"]?.stringValue?.contains(fragment) == true, "\(body): \(err?.compactText ?? "")")
        }
        let (s, err, _) = t.call(api, "POST", "/collections/c/points/query", #"{"query":[1],"params":{"quantization":{"oversampling":0.5}}}"#)
        #expect(s == 400 && err?["status"]?["error"]?.stringValue?.contains("oversampling") == true)
        try engine.close()
    }
}
