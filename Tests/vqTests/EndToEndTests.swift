import Foundation
import Testing

@Suite struct EndToEndTests {
    @Test("create, upsert from a file and from stdin, search: exactly the brute-force top-k, also in a new process")
    func createUpsertSearch() throws {
        let s = Scratch()
        var rng = Rng(state: 42)
        let dim = 16
        let vectors = (0..<400).map { _ in rng.vector(dim) }
        let created = try vq(["create-collection", "docs", "--dim", "\(dim)", "--shards", "2", "--data-dir", s.data])
        #expect(created.status == 0)
        #expect(created.stdout == "{\"collection\":\"docs\",\"created\":true}\n")
        try writeFile(s.path + "/a.jsonl", jsonl(Array(vectors[0..<250]), payload: { "{\"n\":\($0)}" }))
        let fromFile = try vq(["upsert", "docs", s.path + "/a.jsonl", "--batch-size", "64", "--data-dir", s.data])
        #expect(fromFile.status == 0)
        #expect(fromFile.stdout.contains("\"points\":250"))
        let fromStdin = try vq(["upsert", "docs", "-", "--data-dir", s.data], stdin: Data(jsonl(Array(vectors[250...]), firstID: 250).utf8))
        #expect(fromStdin.status == 0, "\(fromStdin.stderr)")
        #expect(fromStdin.stdout.contains("\"points\":150"))

        let queries = (0..<10).map { _ in rng.vector(dim) }
        try writeFile(s.path + "/q.jsonl", queries.map { "{\"vector\":[" + $0.map { "\($0)" }.joined(separator: ",") + "]}\n" }.joined())
        let first = try vq(["search", "docs", "--queries", s.path + "/q.jsonl", "-k", "7", "--data-dir", s.data])
        #expect(first.status == 0)
        #expect(first.lines.count == 10)
        for (i, line) in first.lines.enumerated() {
            #expect(try resultIDs(line) == cosineTopK(vectors, queries[i], k: 7))
        }
        // A new process opens the flushed segments and answers the same.
        let second = try vq(["search", "docs", "--queries", s.path + "/q.jsonl", "-k", "7", "--data-dir", s.data])
        #expect(second.stdout == first.stdout)

        let one = try vq(["search", "docs", "--vector", "[" + queries[0].map { "\($0)" }.joined(separator: ",") + "]", "--limit", "3",
                          "--with-payload", "--data-dir", s.data])
        let top3 = cosineTopK(vectors, queries[0], k: 3)
        #expect(try resultIDs(one.stdout) == top3)
        if top3[0] < 250 { #expect(one.stdout.contains("\"payload\":{\"n\":\(top3[0])}")) }

        let info = try vq(["info", "docs", "--data-dir", s.data])
        #expect(info.status == 0)
        #expect(info.stdout.contains("\"points\":400"))
        #expect(info.stdout.contains("\"shard_number\":2"))
        #expect(try vq(["collections", "--data-dir", s.data]).stdout == "docs\n")
    }

    @Test("fvecs and npy files upsert with row ids plus --id-offset")
    func binaryFormats() throws {
        let s = Scratch()
        var rng = Rng(state: 7)
        let dim = 8
        let vectors = (0..<30).map { _ in rng.vector(dim) }
        var fvecs = Data()
        for v in vectors {
            withUnsafeBytes(of: Int32(dim).littleEndian) { fvecs.append(contentsOf: $0) }
            v.withUnsafeBytes { fvecs.append(contentsOf: $0) }
        }
        try fvecs.write(to: URL(fileURLWithPath: s.path + "/v.fvecs"))
        let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (30, \(dim)), }"
        var padded = header + String(repeating: " ", count: (64 - (10 + header.count + 1) % 64) % 64) + "\n"
        if (10 + padded.count) % 64 != 0 { padded = header + "\n" }
        var npy = Data([0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(padded.count & 0xFF), UInt8(padded.count >> 8)])
        npy.append(Data(padded.utf8))
        for v in vectors { v.withUnsafeBytes { npy.append(contentsOf: $0) } }
        try npy.write(to: URL(fileURLWithPath: s.path + "/v.npy"))

        #expect(try vq(["create-collection", "b", "--dim", "\(dim)", "--distance", "dot", "--data-dir", s.data]).status == 0)
        let a = try vq(["upsert", "b", s.path + "/v.fvecs", "--data-dir", s.data])
        #expect(a.status == 0, "\(a.stderr)")
        let b = try vq(["upsert", "b", s.path + "/v.npy", "--id-offset", "1000", "--data-dir", s.data])
        #expect(b.status == 0, "\(b.stderr)")
        let info = try vq(["info", "b", "--data-dir", s.data])
        #expect(info.stdout.contains("\"points\":60"))
        let q = "[" + vectors[4].map { "\($0)" }.joined(separator: ",") + "]"
        let hit = try vq(["search", "b", "--vector", q, "-k", "2", "--data-dir", s.data])
        #expect(Set(try resultIDs(hit.stdout)) == [4, 1004])
    }

    @Test("bad input stops with exit 2, names the line, and keeps what came before", arguments: [
        ("{\"id\":5,\"vector\":[1,2", "line 6: invalid JSON"),
        ("{\"id\":5,\"vector\":[1,2]}", "line 6: vector has 2 dimensions; the collection expects 3"),
        ("{\"id\":5,\"vector\":[1,NaN,2]}", "line 6: invalid JSON"),
        ("{\"id\":5,\"vector\":[1,1e999,2]}", "line 6: invalid JSON"),
        ("{\"id\":-5,\"vector\":[1,2,3]}", "line 6: point id -5 is invalid"),
        ("{\"id\":\"42\",\"vector\":[1,2,3]}", "line 6: point id \"42\" is not a UUID"),
        ("{\"id\":1.5,\"vector\":[1,2,3]}", "line 6: point id 1.5 is invalid"),
        ("{\"vector\":[1,2,3]}", "line 6: missing \"id\""),
        ("{\"id\":5,\"vectr\":[1,2,3]}", "line 6: unknown key \"vectr\""),
        ("{\"id\":5,\"vector\":[1,2,3],\"payload\":7}", "line 6: \"payload\" is a number; expected an object or null"),
    ])
    func badLines(bad: String, message: String) throws {
        let s = Scratch()
        #expect(try vq(["create-collection", "c", "--dim", "3", "--data-dir", s.data]).status == 0)
        let good = (0..<5).map { "{\"id\":\($0),\"vector\":[1,\($0),2]}\n" }.joined()
        let run = try vq(["upsert", "c", "-", "--batch-size", "2", "--data-dir", s.data], stdin: Data((good + bad + "\n" + good).utf8))
        #expect(run.status == 2)
        #expect(run.stderr.contains(message), "\(run.stderr)")
        // The summary prints in every outcome: what is stored and the last line read into a point.
        #expect(run.stdout.hasPrefix(#"{"collection":"c","status":"failed","points":5,"batches":3,"rejected":0,"last_line":5,"#), "\(run.stdout)")
        let info = try vq(["info", "c", "--data-dir", s.data])
        #expect(info.stdout.contains("\"points\":5"))
    }

    @Test("a bad fvecs record names its record number")
    func badFvecs() throws {
        let s = Scratch()
        #expect(try vq(["create-collection", "c", "--dim", "2", "--data-dir", s.data]).status == 0)
        var data = Data()
        for (dim, values) in [(2, [1, 2]), (2, [Float.nan, 1]), (2, [3, 4])] as [(Int32, [Float])] {
            withUnsafeBytes(of: dim.littleEndian) { data.append(contentsOf: $0) }
            values.withUnsafeBytes { data.append(contentsOf: $0) }
        }
        try data.write(to: URL(fileURLWithPath: s.path + "/x.fvecs"))
        let run = try vq(["upsert", "c", s.path + "/x.fvecs", "--data-dir", s.data])
        #expect(run.status == 2)
        #expect(run.stderr.contains("record 2: vector element 0 is nan"))
        #expect(try vq(["info", "c", "--data-dir", s.data]).stdout.contains("\"points\":1"))
    }

    @Test("missing things are runtime failures (exit 1) with a clear message")
    func runtimeFailures() throws {
        let s = Scratch()
        #expect(try vq(["create-collection", "c", "--dim", "2", "--data-dir", s.data]).status == 0)
        let dup = try vq(["create-collection", "c", "--dim", "2", "--data-dir", s.data])
        #expect(dup.status == 1 && dup.stderr.contains("collection \"c\" already exists"))
        let missing = try vq(["search", "nope", "--vector", "[1,2]", "--data-dir", s.data])
        #expect(missing.status == 1 && missing.stderr.contains("collection \"nope\" does not exist"))
        let file = try vq(["upsert", "c", s.path + "/absent.jsonl", "--data-dir", s.data])
        #expect(file.status == 2 && file.stderr.contains("cannot open"))
        let dim = try vq(["search", "c", "--vector", "[1,2,3]", "--data-dir", s.data])
        #expect(dim.status == 2 && dim.stderr.contains("vector has 3 dimensions; collection \"c\" expects 2"))
        let one = try vq(["search", "c", "--vector", "[1]", "--data-dir", s.data])
        #expect(one.status == 2 && one.stderr.contains("vector has 1 dimension; collection"), "\(one.stderr)")
    }

    @Test("a second process is refused the data directory, naming the holder's pid")
    func lockHeld() throws {
        let s = Scratch()
        #expect(try vq(["create-collection", "c", "--dim", "2", "--data-dir", s.data]).status == 0)
        let holder = Process()
        holder.executableURL = vqBinary
        holder.arguments = ["upsert", "c", "-", "--data-dir", s.data]
        let input = Pipe()
        holder.standardInput = input
        holder.standardOutput = FileHandle.nullDevice
        holder.standardError = FileHandle.nullDevice
        try holder.run()
        defer {
            try? input.fileHandleForWriting.close()
            holder.waitUntilExit()
        }
        // Wait (bounded) until the lock file names the holder, then try to open the directory.
        let lockFile = s.data + "/vq.lock"
        for _ in 0..<500 where (try? String(contentsOfFile: lockFile, encoding: .utf8))?.hasPrefix("\(holder.processIdentifier)\n") != true {
            usleep(10_000)
        }
        let run = try vq(["info", "c", "--data-dir", s.data])
        #expect(run.status == 1)
        #expect(run.stderr.contains("locked by process \(holder.processIdentifier)"))
    }
}

@Suite struct CheckCommandTests {
    @Test("vq check: 0 on an intact directory; 1 naming the file when a sealed segment is damaged")
    func check() throws {
        let s = Scratch()
        var rng = Rng(state: 3)
        let vectors = (0..<600).map { _ in rng.vector(8) }
        #expect(try vq(["create-collection", "c", "--dim", "8", "--data-dir", s.data]).status == 0)
        #expect(try vq(["upsert", "c", "-", "--data-dir", s.data], stdin: Data(jsonl(vectors).utf8)).status == 0)
        #expect(try vq(["optimize", "c", "--data-dir", s.data]).status == 0)
        let ok = try vq(["check", "--data-dir", s.data])
        #expect(ok.status == 0 && ok.stdout.contains("\"ok\":true"), "\(ok.stdout) \(ok.stderr)")
        let segments = s.data + "/collections/c/shards/0/segments"
        func size(_ path: String) -> Int { (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0 }
        let sealed = try #require(try FileManager.default.contentsOfDirectory(atPath: segments).map { segments + "/" + $0 }
            .max { size($0 + "/vectors.f32") < size($1 + "/vectors.f32") })
        var bytes = try Data(contentsOf: URL(fileURLWithPath: sealed + "/vectors.f32"))
        bytes[bytes.count / 2] ^= 0x01
        try bytes.write(to: URL(fileURLWithPath: sealed + "/vectors.f32"))
        let bad = try vq(["check", "c", "--data-dir", s.data])
        #expect(bad.status == 1 && bad.stdout.contains("vectors.f32") && bad.stdout.contains("checksum mismatch"), "\(bad.stdout) \(bad.stderr)")
    }
}

@Suite struct PayloadIndexCommandTests {
    @Test("vq create-index, search --filter and delete-index: filtered results equal brute force over the passing points; bad input exits 2")
    func createIndexAndFilter() throws {
        let s = Scratch()
        var rng = Rng(state: 11)
        let vectors = (0..<400).map { _ in rng.vector(8) }
        let cities = ["oslo", "rome", "lima"]
        #expect(try vq(["create-collection", "c", "--dim", "8", "--data-dir", s.data]).status == 0)
        #expect(try vq(["upsert", "c", "-", "--data-dir", s.data],
                       stdin: Data(jsonl(vectors) { #"{"city":"\#(cities[$0 % 3])","n":\#($0)}"# }.utf8)).status == 0)
        let made = try vq(["create-index", "c", "city", "keyword", "--data-dir", s.data])
        #expect(made.status == 0 && made.stdout == #"{"collection":"c","field":"city","field_schema":"keyword"}"# + "\n", "\(made.stdout)\(made.stderr)")
        #expect(try vq(["create-index", "c", "n", #"{"type":"integer","lookup":false}"#, "--data-dir", s.data]).status == 0)
        let q = rng.vector(8)
        let filter = #"{"must":[{"key":"city","match":{"value":"rome"}},{"key":"n","range":{"gte":100}}]}"#
        let run = try vq(["search", "c", "--vector", "[" + q.map { "\($0)" }.joined(separator: ",") + "]", "-k", "5", "--exact",
                          "--filter", filter, "--data-dir", s.data])
        let keep = (0..<400).filter { $0 % 3 == 1 && $0 >= 100 }
        let truth = cosineTopK(keep.map { vectors[$0] }, q, k: 5).map { keep[$0] }
        let object = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any]
        let results = object?["results"] as? [[String: Any]] ?? []
        let ids = results.compactMap { $0["id"] as? Int }
        #expect(run.status == 0 && ids == truth, "\(run.stdout)\(run.stderr)")
        for bad in [["create-index", "c", "city", "keywrd"], ["search", "c", "--vector", "[0,0,0,0,0,0,0,1]", "--filter", #"{"must":[{"key":"x"}]}"#],
                    ["create-index", "c", "a..b", "keyword"]] {
            let r = try vq(bad + ["--data-dir", s.data])
            #expect(r.status == 2 && r.stderr.contains("vq: error:"), "\(bad): \(r.stderr)")
        }
        let dropped = try vq(["delete-index", "c", "city", "--data-dir", s.data])
        #expect(dropped.status == 0 && dropped.stdout.contains(#""deleted":true"#))
        let info = try vq(["info", "c", "--data-dir", s.data])
        #expect(info.stdout.contains(#""payload_schema":{"n":"#), "\(info.stdout)")
    }
}
