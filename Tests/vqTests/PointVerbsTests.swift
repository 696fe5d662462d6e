#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
import VQEngine

/// get, count, export, delete, delete-collection and create-collection --if-not-exists, embedded
/// and through a server.
@Suite struct PointVerbsTests {
    /// 40 points of 4 dimensions with payloads: i, even, and a nested value.
    func points() -> String {
        var rng = Rng(state: 21)
        return jsonl((0..<40).map { _ in rng.vector(4) }) { #"{"i":\#($0),"even":\#($0 % 2 == 0),"tags":{"t":["a","b\#($0)"],"w":\#(Double($0) / 8)}}"# }
    }

    @Test("each verb prints the same embedded and through a server; deletes by filter and ids; missing ids exit 1")
    func embeddedAndRemote() throws {
        let scratch = Scratch()
        let data = ["--data-dir", scratch.data]
        try writeFile(scratch.path + "/p.jsonl", points())
        #expect(try vq(["create-collection", "p", "--dim", "4", "--distance", "dot"] + data).status == 0)
        #expect(try vq(["upsert", "p", scratch.path + "/p.jsonl", "-q"] + data).status == 0)
        let even = #"{"must":[{"key":"even","match":{"value":true}}]}"#
        let reads: [[String]] = [["get", "p", "3", "7", "--with-vectors"], ["get", "p", "12"], ["count", "p"], ["count", "p", "--filter", even],
                                 ["export", "p", "--with-vectors", "--batch-size", "7", "-q"], ["export", "p", "--filter", even, "-q"]]
        let embedded = try reads.map { try vq($0 + data) }
        for (r, argv) in zip(embedded, reads) { #expect(r.status == 0, "\(argv): \(r.stderr)") }
        #expect(embedded[0].stdout.split(separator: "\n").count == 2 && embedded[0].stdout.hasPrefix(#"{"id":3,"vector":["#))
        #expect(embedded[1].stdout == #"{"id":12,"payload":{"i":12,"even":true,"tags":{"t":["a","b12"],"w":1.5}}}"# + "\n")
        #expect(embedded[2].stdout == #"{"collection":"p","count":40}"# + "\n")
        #expect(embedded[3].stdout == #"{"collection":"p","count":20}"# + "\n")
        #expect(embedded[4].stdout.split(separator: "\n").count == 40 && embedded[5].stdout.split(separator: "\n").count == 20)

        let server = try ServerProcess(scratch: scratch)
        let url = ["--url", server.url]
        for (argv, expected) in zip(reads, embedded) {
            let r = try vq(argv + url)
            #expect(r.status == 0 && r.stdout == expected.stdout, "\(argv): \(r.stdout.prefix(200)) \(r.stderr)")
        }
        // A missing id: the found ones print, the missing one is named, exit 1.
        let missing = try vq(["get", "p", "5", "999"] + url)
        #expect(missing.status == 1 && missing.stdout.hasPrefix(#"{"id":5,"#) && missing.stderr.contains("999"), "\(missing.stderr)")
        // Deletes, through the server: by filter, then by ids (one already gone).
        let byFilter = try vq(["delete", "p", "--filter", even] + url)
        #expect(byFilter.status == 0 && byFilter.stdout == #"{"collection":"p","deleted":20}"# + "\n", "\(byFilter.stderr)")
        let byIDs = try vq(["delete", "p", "--ids", "1,3,4"] + url)
        #expect(byIDs.stdout == #"{"collection":"p","deleted":2}"# + "\n", "\(byIDs.stderr)")
        #expect(try vq(["count", "p"] + url).stdout == #"{"collection":"p","count":18}"# + "\n")
        // A collection whose optimizer is off stays unindexed: the upsert waits for its queue, not for green.
        #expect(try request(server.port, "PUT", "/collections/off", #"{"vectors":{"size":4,"distance":"Dot"},"optimizers_config":{"indexing_threshold":1,"max_optimization_threads":0}}"#).status == 200)
        let off = try vq(["upsert", "off", scratch.path + "/p.jsonl", "-q"] + url)
        #expect(off.status == 0 && off.stdout.contains(#""unindexed_points":40"#) && !off.stderr.contains("still indexing"), "\(off.stdout) \(off.stderr)")
        #expect(server.stop().0 == 0)
        #expect(try vq(["count", "p"] + data).stdout == #"{"collection":"p","count":18}"# + "\n", "the deletes are durable")

        // Usage mistakes exit 2 and say what was expected.
        for (argv, fragment) in [(["delete", "p"], "--ids ID,... or --filter"), (["delete", "p", "--ids", "1", "--filter", even], "not both"),
                                 (["count", "p", "--filter", "{oops"], "not valid JSON"), (["count", "p", "--filter", "[1]"], "filter object"),
                                 (["get", "p"], "point ids"),
                                 (["upsert", "p", scratch.path + "/p.jsonl", "--start-line", "999"], "past the end of the input (40 records)"),
                                 (["update-collection", "p", "--quantization", "none", "--quantile", "0.9"], "--quantile does not apply")] {
            let r = try vq(argv + data)
            #expect(r.status == 2 && r.stderr.contains(fragment), "\(argv): \(r.status) \(r.stderr)")
        }
    }

    @Test("create-collection --if-not-exists and delete-collection --if-exists make scripts re-runnable")
    func idempotentCollections() throws {
        let scratch = Scratch()
        let data = ["--data-dir", scratch.data]
        #expect(try vq(["delete-collection", "c", "--if-exists"] + data).stdout == #"{"collection":"c","deleted":false}"# + "\n")
        #expect(try vq(["create-collection", "c", "--dim", "3", "--if-not-exists"] + data).stdout == #"{"collection":"c","created":true}"# + "\n")
        let again = try vq(["create-collection", "c", "--dim", "3", "--if-not-exists"] + data)
        #expect(again.status == 0 && again.stdout == #"{"collection":"c","created":false}"# + "\n")
        let conflict = try vq(["create-collection", "c", "--dim", "3"] + data)
        #expect(conflict.status == 1 && conflict.stderr.contains("already exists"))
        #expect(try vq(["delete-collection", "c"] + data).stdout == #"{"collection":"c","deleted":true}"# + "\n")
        let gone = try vq(["delete-collection", "c"] + data)
        #expect(gone.status == 1 && gone.stderr.contains("does not exist") && gone.stderr.contains("--if-exists"))
        // The same through a server.
        let server = try ServerProcess(scratch: scratch)
        let url = ["--url", server.url]
        #expect(try vq(["create-collection", "c", "--dim", "3", "--if-not-exists"] + url).stdout == #"{"collection":"c","created":true}"# + "\n")
        #expect(try vq(["create-collection", "c", "--dim", "3", "--if-not-exists"] + url).stdout == #"{"collection":"c","created":false}"# + "\n")
        #expect(try vq(["delete-collection", "c"] + url).stdout == #"{"collection":"c","deleted":true}"# + "\n")
        #expect(try vq(["delete-collection", "c"] + url).status == 1)
        #expect(try vq(["delete-collection", "c", "--if-exists"] + url).stdout == #"{"collection":"c","deleted":false}"# + "\n")
        #expect(server.stop().0 == 0)
    }

    @Test("export --with-vectors | upsert copies a collection: ids, vectors and payloads unchanged")
    func roundTrip() throws {
        let scratch = Scratch()
        let data = ["--data-dir", scratch.data]
        try writeFile(scratch.path + "/p.jsonl", points() + #"{"id":"8f8c7c1e-7ad3-4a5b-9a51-1d2b8c1d6a10","vector":[0.5,-0.25,0.125,3],"payload":{}}"# + "\n")
        for name in ["a", "b"] { #expect(try vq(["create-collection", name, "--dim", "4", "--distance", "dot"] + data).status == 0) }
        #expect(try vq(["upsert", "a", scratch.path + "/p.jsonl", "-q"] + data).status == 0)
        let first = try vq(["export", "a", "--with-vectors", "-q"] + data)
        #expect(first.status == 0 && first.stdout.split(separator: "\n").count == 41)
        try writeFile(scratch.path + "/a.jsonl", first.stdout)
        #expect(try vq(["upsert", "b", scratch.path + "/a.jsonl", "-q"] + data).status == 0)
        let second = try vq(["export", "b", "--with-vectors", "-q"] + data)
        #expect(second.stdout == first.stdout)
        #expect(first.stdout.contains(#"{"id":"8f8c7c1e-7ad3-4a5b-9a51-1d2b8c1d6a10","vector":[0.5,-0.25,0.125,3.0],"payload":{}}"#), "\(first.stdout.suffix(300))")
        let upper = try vq(["get", "a", "8F8C7C1E-7AD3-4A5B-9A51-1D2B8C1D6A10"] + data)
        #expect(upper.status == 0 && upper.stdout.hasPrefix(#"{"id":"8f8c7c1e-7ad3-4a5b-9a51-1d2b8c1d6a10""#), "\(upper.stdout) \(upper.stderr)")
        // A Qdrant scroll dump's extra fields load, with one warning for the whole file.
        let dump = (100..<103).map { #"{"id":\#($0),"payload":{"x":1},"vector":[1,0,0,0],"shard_key":null,"order_value":\#($0)}"# }.joined(separator: "\n")
        try writeFile(scratch.path + "/dump.jsonl", dump + "\n")
        let loaded = try vq(["upsert", "b", scratch.path + "/dump.jsonl"] + data)
        #expect(loaded.status == 0 && loaded.stderr.components(separatedBy: "warning").count == 2 && loaded.stderr.contains("shard_key and order_value"),
                "\(loaded.stderr)")
        #expect(try vq(["count", "b"] + data).stdout == #"{"collection":"b","count":44}"# + "\n")
    }
}

/// A nightly batch: bad lines skipped and reported, a run killed part-way and resumed.
@Suite struct NightlyBatchTests {
    @Test("--max-errors skips bad lines (stderr, --rejects); SIGKILL part-way, resumed with --start-line: exactly the good lines stored")
    func killedAndResumed() throws {
        let scratch = Scratch()
        let data = ["--data-dir", scratch.data]
        var rng = Rng(state: 5)
        let count = 30_000
        let bad: Set<Int> = [3, 777, 12_345, 29_999]  // 0-based line indexes
        var lines: [String] = []
        for i in 0..<count {
            if bad.contains(i) { lines.append(i % 2 == 0 ? #"{"id":\#(i),"vector":[1,2]}"# : "{oops \(i)") } else {
                lines.append(#"{"id":\#(i),"vector":[\#(rng.vector(8).map { "\($0)" }.joined(separator: ","))],"payload":{"n":\#(i)}}"#)
            }
        }
        let file = scratch.path + "/nightly.jsonl"
        try writeFile(file, lines.joined(separator: "\n") + "\n")
        #expect(try vq(["create-collection", "n", "--dim", "8"] + data).status == 0)

        // Without --max-errors the first bad line stops the run; the summary still prints.
        let stopped = try vq(["upsert", "n", file, "--no-optimize", "-q"] + data)
        #expect(stopped.status == 2 && stopped.stderr.contains("line 4:"), "\(stopped.stderr)")
        #expect(stopped.stdout.contains(#""status":"failed","points":3,"batches":1,"rejected":0,"last_line":3"#), "\(stopped.stdout)")
        // Too few allowed: stops at the third bad line, names where to resume.
        let tooMany = try vq(["upsert", "n", file, "--max-errors", "2", "--no-optimize", "-q"] + data)
        #expect(tooMany.status == 2 && tooMany.stderr.contains("--start-line 12346") && tooMany.stdout.contains(#""rejected":3"#),
                "\(tooMany.stderr) \(tooMany.stdout)")

        // Start again from an empty collection.
        #expect(try vq(["delete-collection", "n"] + data).status == 0 && vq(["create-collection", "n", "--dim", "8"] + data).status == 0)
        // A run killed part-way, then resumed from the first line whose point is not stored:
        // every good line stored, no bad one.
        // The run reads the first half of the file from a pipe: once that write returns, it has
        // read nearly all of it (a pipe holds 64 KiB), and it is still waiting for the rest when
        // killed, so the kill always lands mid-run, with no sleep.
        let process = Process()
        process.executableURL = vqBinary
        process.arguments = ["upsert", "n", "-", "--max-errors", "10", "--batch-size", "64", "--no-optimize", "-q"] + data
        let input = Pipe()
        process.standardInput = input
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        input.fileHandleForWriting.write(Data((lines.prefix(count / 2).joined(separator: "\n") + "\n").utf8))
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        try? input.fileHandleForWriting.close()
        let stored = Set(try vq(["export", "n", "-q"] + data).stdout.split(separator: "\n").compactMap {
            Int($0.split(separator: ",")[0].dropFirst(6))
        })
        let resume = (0..<count).first { !bad.contains($0) && !stored.contains($0) }.map { $0 + 1 } ?? count
        #expect(resume <= count / 2 + 1, "the kill landed after the first half: resume at \(resume)")
        let rejects = scratch.path + "/rejects.jsonl"
        let resumed = try vq(["upsert", "n", file, "--max-errors", "10", "--rejects", rejects, "--start-line", "\(resume)", "-q"] + data)
        let skippedBad = bad.filter { $0 + 1 >= resume }
        #expect(resumed.status == 0 && resumed.stdout.contains(#""status":"ok""#) && resumed.stdout.contains(#""rejected":\#(skippedBad.count)"#)
                && resumed.stdout.contains(#""last_line":\#(count - 1)"#), "resumed at \(resume): \(resumed.stdout) \(resumed.stderr)")
        for i in skippedBad { #expect(resumed.stderr.contains("line \(i + 1):")) }
        #expect(try String(contentsOfFile: rejects, encoding: .utf8) == skippedBad.sorted().map { lines[$0] + "\n" }.joined())
        let ids = try vq(["export", "n", "-q"] + data).stdout.split(separator: "\n").compactMap { Int($0.split(separator: ",")[0].dropFirst(6)) }
        #expect(ids == (0..<count).filter { !bad.contains($0) }, "\(ids.count) stored")
    }
}

/// --api-key, --timeout and the client config file: flags, then environment, then file.
@Suite struct ClientConfigTests {
    @Test("api key and url from flag, environment or config file in that order; a url in the file gives way to a given --data-dir; unknown keys refused")
    func precedence() throws {
        let server = try ServerProcess(["--api-key", "right-key-0123456789"])
        defer { _ = server.stop() }
        let scratch = Scratch()
        let config = scratch.path + "/config.json"
        try writeFile(config, #"{"url":"\#(server.url)","api_key":"right-key-0123456789","timeout":5}"#)
        let env = ["VQ_CONFIG": config]
        // From the file alone.
        #expect(try vq(["create-collection", "c", "--dim", "2"], env: env).status == 0)
        #expect(try vq(["collections"], env: env).stdout == "c\n")
        // A flag beats the environment, which beats the file.
        let wrongFlag = try vq(["collections", "--api-key", "wrong-key-0123456789"], env: env.merging(["VQ_API_KEY": "right-key-0123456789"]) { $1 })
        #expect(wrongFlag.status == 1 && wrongFlag.stderr.contains("API key"), "\(wrongFlag.stderr)")
        let wrongEnv = try vq(["collections"], env: env.merging(["VQ_API_KEY": "wrong-key-0123456789"]) { $1 })
        #expect(wrongEnv.status == 1, "\(wrongEnv.stderr)")
        #expect(try vq(["collections", "--api-key", "right-key-0123456789", "--url", server.url]).stdout == "c\n")
        let missing = try vq(["collections", "--url", server.url])
        #expect(missing.status == 1, "no key: \(missing.stderr)")
        // --data-dir on the command line means this directory, whatever url the file names.
        let local = try vq(["collections", "--data-dir", scratch.path + "/empty"], env: env)
        #expect(local.status == 0 && local.stdout.isEmpty, "\(local.stdout) \(local.stderr)")
        // Mistakes in the file are usage errors naming the key.
        try writeFile(config, #"{"url":"\#(server.url)","apikey":"x"}"#)
        let unknown = try vq(["collections"], env: env)
        #expect(unknown.status == 2 && unknown.stderr.contains("\"apikey\"") && unknown.stderr.contains("api_key"), "\(unknown.stderr)")
        try writeFile(config, #"{"timeout":"soon"}"#)
        #expect(try vq(["collections"], env: env).stderr.contains("timeout"))
        let gone = try vq(["collections"], env: ["VQ_CONFIG": scratch.path + "/nope.json"])
        #expect(gone.status == 2 && gone.stderr.contains("nope.json"))
        // vq bench builds locally in a scratch directory whatever the file says.
        try writeFile(config, #"{"url":"http://127.0.0.1:1","data_dir":"\#(scratch.path)/mine"}"#)
        let bench = try vq(["bench", "--synthetic", "200,4", "--queries-count", "5", "--ef", "16", "-q"], env: env)
        #expect(bench.status == 0 && !FileManager.default.fileExists(atPath: scratch.path + "/mine"), "\(bench.stderr)")
        // A key or timeout on the command line of an embedded run is refused, not dropped.
        let embeddedKey = try vq(["collections", "--data-dir", scratch.path + "/empty", "--api-key", "x"])
        #expect(embeddedKey.status == 2 && embeddedKey.stderr.contains("--api-key applies when talking to a server"), "\(embeddedKey.stderr)")
        // vq serve is no client: it takes no --url.
        #expect(try vq(["serve", "--url", server.url]).status == 2)
    }

    @Test("vq serve --config refuses unknown settings by name and honours data_dir")
    func serveConfig() throws {
        let scratch = Scratch()
        let file = scratch.path + "/serve.json"
        try writeFile(file, #"{"lisen":"127.0.0.1:0"}"#)
        let unknown = try vq(["serve", "--config", file])
        #expect(unknown.status == 2 && unknown.stderr.contains("\"lisen\"") && unknown.stderr.contains("listen"), "\(unknown.stderr)")
        // data_dir is used: a directory that cannot be made is named in the failure.
        try writeFile(scratch.path + "/plain", "not a directory")
        try writeFile(file, #"{"listen":"127.0.0.1:0","data_dir":"\#(scratch.path)/plain/data"}"#)
        let bad = try vq(["serve", "--config", file])
        #expect(bad.status != 0 && bad.stderr.contains(scratch.path + "/plain/data"), "\(bad.stderr)")
        // A lag timeout past the peer timeout is refused, not quietly lowered.
        let lag = try vq(["serve", "--listen", "127.0.0.1:0", "--data-dir", scratch.path + "/lag", "--peer-timeout", "2", "--replica-lag-timeout", "3"])
        #expect(lag.status == 2 && lag.stderr.contains("--replica-lag-timeout is 3.0; expected at most --peer-timeout (2.0)"), "\(lag.stderr)")
        // A duration past a day is refused: a deadline that far overflows the clock waiting on it.
        let long = try vq(["serve", "--listen", "127.0.0.1:0", "--data-dir", scratch.path + "/long", "--write-timeout", "1e12"])
        #expect(long.status == 2 && long.stderr.contains("--write-timeout is '1e12'; expected a positive number of seconds, at most 86400"), "\(long.stderr)")
    }
}

/// vq serve --log-requests / -v: one line per request.
@Suite struct RequestLogTests {
    @Test("--log-requests logs method, path, status, bytes and microseconds per request, as JSON with --log-format json; -v as text")
    func requestLines() throws {
        let json = try ServerProcess(["--log-requests", "--log-format", "json"])
        #expect(try vq(["collections", "--url", json.url]).status == 0)
        #expect(try vq(["info", "nope", "--url", json.url]).status == 1)
        let (_, log) = json.stop()
        let events = log.split(separator: "\n").compactMap { try? JSONParser.parse(Array($0.utf8)) }
        let requests = events.filter { $0["event"]?.stringValue == "request" }
        func has(_ path: String, _ status: Int64) -> Bool {
            requests.contains { r in r["method"]?.stringValue == "GET" && r["path"]?.stringValue == path && r["status"]?.intValue == status }
        }
        #expect(has("/collections", 200), "\(log)")
        #expect(has("/collections/nope/info", 404))
        for r in requests {
            #expect((r["bytes"]?.intValue ?? -1) > 0 && (r["us"]?.intValue ?? -1) >= 0)
            let time = r["time"]?.stringValue ?? ""
            #expect(time.count == 24 && time.hasSuffix("Z") && time.dropFirst(10).hasPrefix("T"), "ISO-8601: \(time)")
        }
        let text = try ServerProcess(["-v"])
        #expect(try vq(["collections", "--url", text.url]).status == 0)
        let (_, textLog) = text.stop()
        #expect(textLog.contains(#"vq serve: request method="GET" path="/collections" status=200 bytes="#), "\(textLog)")
        // Without the flag nothing per request.
        let quiet = try ServerProcess()
        #expect(try vq(["collections", "--url", quiet.url]).status == 0)
        #expect(!quiet.stop().1.contains("request method"))
    }
}

@Suite struct UpdateQuantizationTests {
    @Test("update-collection --quantization turbo4|int8|none changes the collection's codes, embedded and through a server")
    func switchQuantization() throws {
        let scratch = Scratch()
        let data = ["--data-dir", scratch.data]
        var rng = Rng(state: 9)
        try writeFile(scratch.path + "/p.jsonl", jsonl((0..<300).map { _ in rng.vector(8) }))
        #expect(try vq(["create-collection", "q", "--dim", "8", "--indexing-threshold", "0"] + data).status == 0)
        #expect(try vq(["upsert", "q", scratch.path + "/p.jsonl", "-q"] + data).status == 0)
        #expect(try vq(["optimize", "q"] + data).status == 0)
        func quantization(_ target: [String]) throws -> String {
            let info = try vq(["info", "q"] + target)
            let config = try JSONParser.parse(Array(info.stdout.utf8))["config"]?["quantization_config"]
            return config.map { JSONWriter.string($0) } ?? "absent"
        }
        let set = try vq(["update-collection", "q", "--quantization", "turbo4"] + data)
        #expect(set.status == 0 && set.stdout == #"{"collection":"q","updated":{"quantization_config":{"turbo":{"bits":"bits4"}}}}"# + "\n", "\(set.stdout) \(set.stderr)")
        #expect(try quantization(data) == #"{"turbo":{"bits":"bits4"}}"#)
        let search = try vq(["search", "q", "--vector", "[1,0,0,0,0,0,0,0]", "-k", "3"] + data)
        let hits = try resultIDs(search.stdout)
        #expect(search.status == 0 && hits.count == 3, "\(search.stdout) \(search.stderr)")
        let server = try ServerProcess(scratch: scratch)
        let url = ["--url", server.url]
        #expect(try vq(["update-collection", "q", "--quantization", "int8", "--quantile", "0.95"] + url).status == 0)
        #expect(try quantization(url) == #"{"scalar":{"type":"int8","quantile":0.95}}"#)
        #expect(try vq(["update-collection", "q", "--quantization", "none"] + url).status == 0)
        #expect(try quantization(url) == "null")
        let bad = try vq(["update-collection", "q", "--quantization", "int4"] + url)
        #expect(bad.status == 2 && bad.stderr.contains("expected int8 or turbo4"))
        #expect(server.stop().0 == 0)
    }
}
