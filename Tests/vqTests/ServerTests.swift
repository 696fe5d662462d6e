#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

/// A `vq serve` child on 127.0.0.1 and a free port, stopped with SIGTERM.
final class ServerProcess {
    let process = Process()
    let scratch: Scratch
    var port = 0
    private let errPipe = Pipe()
    private var log = ""

    /// - Parameters:
    ///   - command: `["serve"]`, or `["join", URL]` for a peer joining a cluster.
    ///   - scratch: the data directory's parent, to restart a peer on its directory.
    init(_ extra: [String] = [], command: [String] = ["serve"], scratch: Scratch = Scratch()) throws {
        self.scratch = scratch
        process.executableURL = vqBinary
        process.arguments = command + ["--listen", "127.0.0.1:0", "--data-dir", scratch.data] + extra
        process.standardError = errPipe
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        // Read stderr until the "listening" line names the port (bounded).
        let handle = errPipe.fileHandleForReading
        for _ in 0..<200 where port == 0 {
            let chunk = handle.availableData
            if chunk.isEmpty { break }
            log += String(decoding: chunk, as: UTF8.self)
            if let r = log.range(of: "127.0.0.1:"), let p = Int(log[r.upperBound...].prefix { $0.isNumber }) { port = p }
        }
        guard port > 0 else { throw VQTestError("server did not start: \(log)") }
    }

    /// Sends SIGTERM and returns the exit status and everything it logged.
    func stop() -> (Int32, String) {
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
        log += String(decoding: errPipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        return (process.terminationStatus, log)
    }

    var url: String { "http://127.0.0.1:\(port)" }

    /// What it has logged so far (read without blocking).
    var logSoFar: String {
        let fd = errPipe.fileHandleForReading.fileDescriptor
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n <= 0 { break }
            log += String(decoding: buffer[0..<n], as: UTF8.self)
        }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
        return log
    }

    /// The cluster secret this peer keeps in its data directory.
    var secret: String {
        ((try? String(contentsOfFile: scratch.data + "/cluster/secret", encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// A new peer joining `member`'s cluster (through `member`), with the cluster's secret.
    static func joining(_ member: ServerProcess, _ extra: [String] = []) throws -> ServerProcess {
        try ServerProcess(["--cluster-secret", member.secret] + extra, command: ["join", member.url])
    }

    /// SIGSTOP / SIGCONT: a peer that stalls (a GC pause, a saturated disk) without dying.
    func pause() { _ = Glibc.kill(process.processIdentifier, SIGSTOP) }
    func resume() { _ = Glibc.kill(process.processIdentifier, SIGCONT) }

    /// SIGKILL, as a crash.
    func kill() {
        _ = Glibc.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    deinit { if process.isRunning { process.terminate(); process.waitUntilExit() } }
}

struct VQTestError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// A raw TCP connection to the server, for exact control over the bytes.
final class RawConnection {
    private(set) var fd: Int32

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var tv = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard rc == 0 else { throw VQTestError("connect failed") }
    }

    deinit { if fd >= 0 { close(fd) } }

    /// Closes the socket from this side (an abrupt client disconnect).
    func disconnect() {
        close(fd)
        fd = -1
    }

    func send(_ text: String) { _ = text.withCString { write(fd, $0, strlen($0)) } }

    func send(bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress!, $0.count) }
            if n <= 0 { return }
            offset += n
        }
    }

    /// Reads one response (head + Content-Length body); nil on EOF or timeout.
    func response() -> (status: Int, headers: String, body: String)? {
        var data = [UInt8]()
        var buf = [UInt8](repeating: 0, count: 65_536)
        while true {
            if let end = findHeaderEnd(data) {
                let head = String(decoding: data[0..<end], as: UTF8.self)
                let length = head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-length:") }
                    .flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) } ?? 0
                if data.count >= end + 4 + length {
                    let status = Int(head.split(separator: " ")[1]) ?? 0
                    let body = String(decoding: data[(end + 4)..<(end + 4 + length)], as: UTF8.self)
                    pending = Array(data[(end + 4 + length)...])
                    return (status, head, body)
                }
            }
            if !pending.isEmpty { data += pending; pending = []; continue }
            let n = read(fd, &buf, buf.count)
            if n <= 0 { return nil }
            data += buf[0..<n]
        }
    }

    private var pending: [UInt8] = []

    private func findHeaderEnd(_ d: [UInt8]) -> Int? {
        guard d.count >= 4 else { return nil }
        for i in 0...(d.count - 4) where d[i] == 13 && d[i + 1] == 10 && d[i + 2] == 13 && d[i + 3] == 10 { return i }
        return nil
    }

    /// Whether the server closed the connection (EOF within the timeout).
    func closedByServer() -> Bool {
        var b: UInt8 = 0
        return read(fd, &b, 1) == 0
    }
}

/// One request with a binary body (peers' operations), on its own connection.
func request(_ port: Int, _ method: String, _ path: String, bytes: [UInt8], headers: [String: String] = [:]) throws
    -> (status: Int, headers: String, body: String) {
    let c = try RawConnection(port: port)
    var text = "\(method) \(path) HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    for (k, v) in headers { text += "\(k): \(v)\r\n" }
    c.send(text + "Content-Length: \(bytes.count)\r\n\r\n")
    c.send(bytes: bytes)
    guard let r = c.response() else { throw VQTestError("no response to \(method) \(path)") }
    return r
}

func request(_ port: Int, _ method: String, _ path: String, _ body: String? = nil, headers: [String: String] = [:]) throws
    -> (status: Int, headers: String, body: String) {
    let c = try RawConnection(port: port)
    var text = "\(method) \(path) HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    for (k, v) in headers { text += "\(k): \(v)\r\n" }
    if let body { text += "Content-Length: \(body.utf8.count)\r\n\r\n\(body)" } else { text += "\r\n" }
    c.send(text)
    guard let r = c.response() else { throw VQTestError("no response to \(method) \(path)") }
    return r
}

@Suite struct ServerTests {
    @Test("the core API round trip, keep-alive, pipelining and a graceful stop")
    func roundTrip() throws {
        let server = try ServerProcess()
        let p = server.port
        #expect(try request(p, "GET", "/").body.contains("\"version\""))
        #expect(try request(p, "PUT", "/collections/c", #"{"vectors":{"size":3,"distance":"Dot"}}"#).status == 200)
        #expect(try request(p, "PUT", "/collections/c", #"{"vectors":{"size":3,"distance":"Dot"}}"#).status == 409)
        let up = try request(p, "PUT", "/collections/c/points?wait=true",
                             #"{"points":[{"id":1,"vector":[1,0,0],"payload":{"k":"a"}},{"id":2,"vector":[0,1,0]}]}"#)
        #expect(up.status == 200 && up.body.contains("\"completed\""))
        let q = try request(p, "POST", "/collections/c/points/query", #"{"query":[1,0.1,0],"limit":1,"with_payload":true}"#)
        #expect(q.body.contains(#""id":1,"version":1,"score":1"#) && q.body.contains(#""payload":{"k":"a"}"#), "\(q.body)")
        // Three pipelined requests on one keep-alive connection come back in order.
        let c = try RawConnection(port: p)
        c.send("GET /healthz HTTP/1.1\r\n\r\nGET /collections/c/exists HTTP/1.1\r\n\r\nPOST /collections/c/points/count HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}")
        #expect(c.response()?.body == "healthz check passed")
        #expect(c.response()?.body.contains(#"{"exists":true}"#) == true)
        #expect(c.response()?.body.contains(#"{"count":2}"#) == true)
        let (status, log) = server.stop()
        #expect(status == 0)
        #expect(log.contains("stopped"))
    }

    @Test("bad requests get the right status and a clear message, and the server keeps serving")
    func badRequests() throws {
        let server = try ServerProcess(["--max-body-bytes", "2000", "--header-timeout", "1"])
        let p = server.port
        #expect(try request(p, "PUT", "/collections/c", #"{"vectors":{"size":3,"distance":"Cosine"}}"#).status == 200)
        let cases: [(String, String, String?, Int, String)] = [
            ("POST", "/collections/c/points/search", "{bad json", 400, "not valid JSON"),
            ("POST", "/collections/c/points/search", #"{"vector":[1,2]}"#, 400, "vector has 2 dimensions"),
            ("POST", "/collections/nope/points/search", #"{"vector":[1,2,3]}"#, 404, "does not exist"),
            ("POST", "/collections/c/points/search", #"{"vector":[1,2,3],"filter":{"must":[{"key":"x"}]}}"#, 400, "needs match, range"),
            ("PUT", "/collections/c/points", #"{"points":[{"id":"42","vector":[1,2,3]}]}"#, 400, "is not a UUID"),
            ("PUT", "/collections/c/points", "{\"points\":[{\"id\":1,\"vector\":[" + String(repeating: "1,", count: 1000) + "1]}]}", 413, "exceeds"),
            ("GET", "/nowhere", nil, 404, "no route"),
            ("DELETE", "/collections", nil, 405, "expected GET"),
            ("PUT", "/collections/c/points/search", "{}", 405, "is not allowed"),
        ]
        for (m, path, body, status, fragment) in cases {
            let r = try request(p, m, path, body)
            #expect(r.status == status, "\(m) \(path): \(r.body)")
            #expect(r.body.contains(fragment), "\(m) \(path): \(r.body)")
            #expect(r.body.hasPrefix("{\"status\":{\"error\":"), "\(r.body)")
        }
        #expect(try request(p, "DELETE", "/collections").headers.contains("Allow: GET"))
        // Malformed request line: 400 and the connection is closed.
        let bad = try RawConnection(port: p)
        bad.send("NONSENSE\r\n\r\n")
        #expect(bad.response()?.status == 400)
        #expect(bad.closedByServer())
        // A slow client that never finishes its headers is answered 408 and dropped after the
        // 1 s header timeout, well before the test's own 10 s receive timeout.
        let slow = try RawConnection(port: p)
        slow.send("GET / HTTP/1.1\r\nX-Slow: ")
        let waited = Date()
        #expect(slow.response()?.status == 408)
        #expect(slow.closedByServer())
        #expect(Date().timeIntervalSince(waited) < 5)
        // An abrupt disconnect in the middle of a body.
        let gone = try RawConnection(port: p)
        gone.send("PUT /collections/c/points HTTP/1.1\r\nContent-Length: 500\r\n\r\n{\"points\":")
        gone.disconnect()
        // A client that sends requests and leaves before the answers: writes fail, the server lives on.
        for _ in 0..<20 {
            let leaver = try RawConnection(port: p)
            leaver.send("POST /collections/c/points/count HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}GET /healthz HTTP/1.1\r\n\r\n")
        }
        // Thousands of pipelined requests in one burst are all answered, in order.
        let burst = try RawConnection(port: p)
        burst.send(String(repeating: "GET /healthz HTTP/1.1\r\n\r\n", count: 3000) + "GET /collections/c/exists HTTP/1.1\r\n\r\n")
        var answered = 0
        while answered < 3000, let r = burst.response(), r.body == "healthz check passed" { answered += 1 }
        #expect(answered == 3000)
        #expect(burst.response()?.body.contains("\"exists\":true") == true)
        // Still serving.
        #expect(try request(p, "GET", "/healthz").status == 200)
        #expect(server.stop().0 == 0)
    }

    @Test("API keys: every route but health needs one; the read-only key may only read")
    func apiKeys() throws {
        let server = try ServerProcess(["--api-key", "secret", "--read-only-api-key", "reader"])
        let p = server.port
        #expect(try request(p, "GET", "/healthz").status == 200)
        #expect(try request(p, "GET", "/collections").status == 401)
        #expect(try request(p, "GET", "/collections", headers: ["api-key": "wrong"]).status == 401)
        #expect(try request(p, "PUT", "/collections/k", #"{"vectors":{"size":2,"distance":"Dot"}}"#,
                            headers: ["Authorization": "Bearer secret"]).status == 200)
        #expect(try request(p, "GET", "/collections", headers: ["api-key": "reader"]).status == 200)
        #expect(try request(p, "POST", "/collections/k/points/query", #"{"query":[1,0]}"#, headers: ["api-key": "reader"]).status == 200)
        #expect(try request(p, "PUT", "/collections/k/points", #"{"points":[{"id":1,"vector":[1,0]}]}"#,
                            headers: ["api-key": "reader"]).status == 403)
        _ = server.stop()
    }

    @Test("a full update queue answers 429 with Retry-After, applies nothing of the refused write, and drains once indexing resumes")
    func backPressure() throws {
        // prevent_unoptimized with the optimizer off: after 64 unindexed points (1 KB at 4-d) the
        // applier stops, the 2-slot queue fills, and the next write times out waiting for room.
        let server = try ServerProcess(["--update-queue-size", "2", "--prevent-unoptimized"])
        let p = server.port
        #expect(try request(p, "PUT", "/collections/q", #"{"vectors":{"size":4,"distance":"Dot"},"#
                            + #""optimizers_config":{"indexing_threshold":1,"max_optimization_threads":0}}"#).status == 200)
        let first = (0..<64).map { #"{"id":\#($0),"vector":[1,\#($0),0,0]}"# }.joined(separator: ",")
        #expect(try request(p, "PUT", "/collections/q/points?wait=true", #"{"points":[\#(first)]}"#).status == 200)
        var accepted: [Int] = []
        var refused: (id: Int, headers: String, body: String)?
        for id in 100..<110 {
            let r = try request(p, "PUT", "/collections/q/points?timeout=0.5", #"{"points":[{"id":\#(id),"vector":[0,0,1,\#(id)]}]}"#)
            if r.status == 429 { refused = (id, r.headers, r.body); break }
            #expect(r.status == 200, "\(r.body)")
            accepted.append(id)
        }
        let busy = try #require(refused, "ten writes into a 2-slot queue with the applier stopped were all accepted")
        #expect(!accepted.isEmpty && accepted.count <= 3, "accepted \(accepted)")
        #expect(busy.headers.lowercased().contains("retry-after:"), "\(busy.headers)")
        #expect(busy.body.hasPrefix(#"{"status":{"error":"#) && busy.body.contains("queue"), "\(busy.body)")
        // Turning the optimizer back on (a live PATCH) indexes, and the queued writes apply.
        #expect(try request(p, "PATCH", "/collections/q", #"{"optimizers_config":{"max_optimization_threads":null}}"#).status == 200)
        var count = 0
        for _ in 0..<300 where count != 64 + accepted.count {
            let body = try request(p, "POST", "/collections/q/points/count", #"{"exact":true}"#).body
            let result = (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any]
            count = (result?["result"] as? [String: Any])?["count"] as? Int ?? -1
            if count != 64 + accepted.count { usleep(100_000) }
        }
        #expect(count == 64 + accepted.count)
        for id in accepted { #expect(try request(p, "GET", "/collections/q/points/\(id)").status == 200) }
        #expect(try request(p, "GET", "/collections/q/points/\(busy.id)").status == 404)
        let info = try request(p, "GET", "/collections/q").body
        #expect(info.contains(#""max_optimization_threads":null"#), "\(info)")
        #expect(server.stop().0 == 0)
    }

    @Test("Qdrant's Python client works against vq serve",
          .enabled(if: ProcessInfo.processInfo.environment["VQ_COMPAT_PYTHON"] != nil, "set VQ_COMPAT_PYTHON (.ci/run does) to a python with qdrant-client"))
    func qdrantClient() throws {
        let server = try ServerProcess()
        let python = ProcessInfo.processInfo.environment["VQ_COMPAT_PYTHON"]!
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("compat/qdrant_client_compat.py").path
        let p = Process()
        p.executableURL = URL(fileURLWithPath: python)
        p.arguments = [script, "http://127.0.0.1:\(server.port)"]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 0, "\(text)")
        #expect(text.contains("all checks passed"))
        _ = server.stop()
    }
}

@Suite struct RemoteModeTests {
    @Test("vq bench --url searches a running server with N clients and reports QPS and percentiles")
    func benchAgainstServer() throws {
        let server = try ServerProcess()
        let s = Scratch()
        #expect(try request(server.port, "PUT", "/collections/b", #"{"vectors":{"size":3,"distance":"Dot"}}"#).status == 200)
        #expect(try request(server.port, "PUT", "/collections/b/points?wait=true",
                            #"{"points":[{"id":1,"vector":[1,0,0]},{"id":2,"vector":[0,1,0]}]}"#).status == 200)
        let queries = s.path + "/q.jsonl"
        try "[1,0,0]\n[0,1,0]\n[0,0,1]\n".write(toFile: queries, atomically: true, encoding: .utf8)
        let run = try vq(["bench", "--url", server.url, "--collection", "b", "--queries", queries, "--clients", "2", "--duration", "1", "--json"])
        #expect(run.status == 0, "\(run.stderr)")
        let result = (try? JSONSerialization.jsonObject(with: Data(run.stdout.utf8))) as? [String: Any]
        #expect((result?["requests"] as? Int ?? 0) > 10 && result?["errors"] as? Int == 0, "\(run.stdout)")
        #expect(result?["p99_ms"] != nil && result?["clients"] as? Int == 2)
        // A missing collection fails at once with the server's message.
        let missing = try vq(["bench", "--url", server.url, "--collection", "nope", "--queries", queries, "--duration", "1"])
        #expect(missing.status != 0 && missing.stderr.contains("does not exist"), "\(missing.stderr)")
        // Options a local scenario has no use for are refused before any work, naming them.
        for (options, named) in [(["--scenario", "sparse", "--limit", "5"], "--limit"), (["--synthetic", "100,4", "--quantile", "0.9"], "--quantile"),
                                 (["--synthetic", "100,4", "--default-segment-number", "2"], "--default-segment-number"),
                                 (["--synthetic", "100,4", "--clients", "2"], "--clients")] {
            let refused = try vq(["bench"] + options)
            #expect(refused.status == 2 && refused.stderr.contains(named + " does not apply"), "\(options): \(refused.stderr)")
        }
        // And the other way: what shapes a local benchmark, given with --url; --ef where nothing reads it.
        for (options, named) in [(["--url", server.url, "--collection", "m", "--threads", "2"], "--threads"),
                                 (["--url", server.url, "--collection", "m", "--scenario", "filter"], "--scenario"),
                                 (["--synthetic", "100,4", "--scenario", "write-load", "--ef", "32"], "--ef")] {
            let refused = try vq(["bench"] + options)
            #expect(refused.status == 2 && refused.stderr.contains(named + " does not apply"), "\(options): \(refused.stderr)")
        }
        _ = server.stop()
    }

    @Test("remote and embedded commands print the same results on the same data; a served directory redirects")
    func remoteEqualsEmbedded() throws {
        let server = try ServerProcess()
        let url = "http://127.0.0.1:\(server.port)"
        let s = Scratch()
        var rng = Rng(state: 5)
        let vectors = (0..<300).map { _ in rng.vector(8) }
        try writeFile(s.path + "/p.jsonl", jsonl(vectors, payload: { "{\"n\":\($0),\"s\":\"x\($0)\"}" }))
        let queries = (0..<20).map { _ in rng.vector(8) }
        try writeFile(s.path + "/q.jsonl", queries.map { "[" + $0.map { "\($0)" }.joined(separator: ",") + "]\n" }.joined())
        var outputs: [String] = []
        for mode in [["--data-dir", s.data], ["--url", url]] {
            #expect(try vq(["create-collection", "r", "--dim", "8", "--distance", "euclid"] + mode).status == 0)
            let up = try vq(["upsert", "r", s.path + "/p.jsonl", "--batch-size", "50"] + mode)
            #expect(up.status == 0, "\(up.stderr)")
            let found = try vq(["search", "r", "--queries", s.path + "/q.jsonl", "-k", "5", "--with-payload", "--exact"] + mode)
            #expect(found.status == 0, "\(found.stderr)")
            outputs.append(found.stdout)
            #expect(try vq(["collections"] + mode).stdout == "r\n")
            let info = try vq(["info", "r"] + mode)
            #expect(info.status == 0 && info.stdout.contains("\"points\":300") && info.stdout.contains("\"segments\":["), "\(info.stdout)")
        }
        #expect(outputs[0] == outputs[1])
        #expect(outputs[0].split(separator: "\n").count == 20)
        // The server's own directory: embedded commands are sent to it.
        let redirected = try vq(["collections", "--data-dir", server.scratch.data])
        #expect(redirected.stdout == "r\n")
        #expect(redirected.stderr.contains("talking to it"))
        // Errors keep their exit codes.
        #expect(try vq(["search", "r", "--vector", "[1,2]", "--url", url]).status == 2)
        #expect(try vq(["search", "nope", "--vector", "[1,2]", "--url", url]).status == 1)
        #expect(try vq(["collections", "--url", "http://127.0.0.1:1"]).status == 1)
        _ = server.stop()
    }
}

@Suite struct NamedVectorCLITests {
    @Test("vq upsert reads named vectors from JSONL (a point may lack one) and vq search --using searches one, through a server and embedded alike")
    func namedFromCLI() throws {
        let server = try ServerProcess()
        let url = "http://127.0.0.1:\(server.port)"
        let s = Scratch()
        #expect(try request(server.port, "PUT", "/collections/n",
                            #"{"vectors":{"a":{"size":2,"distance":"Euclid"},"b":{"size":3,"distance":"Euclid"}},"sparse_vectors":{"s":{}}}"#).status == 200)
        let lines = (0..<100).map { i in
            "{\"id\":\(i),\"vector\":{\"a\":[\(i),0]" + (i % 2 == 0 ? ",\"b\":[0,\(i),1]" : "")
                + ",\"s\":{\"indices\":[\(i % 3)],\"values\":[\(i)]}},\"payload\":{\"i\":\(i)}}\n"
        }
        try writeFile(s.path + "/p.jsonl", lines.joined())
        let up = try vq(["upsert", "n", s.path + "/p.jsonl", "--batch-size", "30", "--url", url])
        #expect(up.status == 0, "\(up.stderr)")
        let remote = try vq(["search", "n", "--vector", "[0,41.2,1]", "--using", "b", "-k", "3", "--url", url])
        #expect(remote.status == 0 && remote.stdout.hasPrefix(#"{"results":[{"id":42,"#), "\(remote.stdout) \(remote.stderr)")
        #expect(try vq(["search", "n", "--vector", "[40.6,0]", "--using", "a", "-k", "1", "--url", url]).stdout.hasPrefix(#"{"results":[{"id":41,"#))
        #expect(try vq(["search", "n", "--vector", "[1,2]", "--using", "c", "--url", url]).status == 2)
        let sparse = try vq(["search", "n", "--sparse", #"{"indices":[1],"values":[1]}"#, "--using", "s", "-k", "2", "--url", url])
        #expect(sparse.status == 0 && sparse.stdout.hasPrefix(#"{"results":[{"id":97,"score":97"#), "\(sparse.stdout) \(sparse.stderr)")
        #expect(try vq(["search", "n", "--sparse", #"{"indices":[1,1],"values":[1,2]}"#, "--using", "s", "--url", url]).status == 2)
        // Hybrid from the shell: a dense and a sparse prefetch fused by RRF (k 2): 41 and 97 lead
        // their lists (1/2 each, ties by id), then 40 and 94 (1/3).
        let prefetch = #"[{"query":[40.6,0],"using":"a","limit":5},{"query":{"indices":[1],"values":[1]},"using":"s","limit":5}]"#
        let fused = try vq(["search", "n", "--prefetch", prefetch, "--fusion", "rrf", "-k", "4", "--url", url])
        let fusedIDs = fused.stdout.components(separatedBy: "\"id\":").dropFirst().compactMap { Int($0.prefix { $0.isNumber }) }
        #expect(fused.status == 0 && fusedIDs == [41, 97, 40, 94], "\(fused.stdout) \(fused.stderr)")
        #expect(try vq(["search", "n", "--prefetch", prefetch, "--fusion", "max", "--url", url]).status == 2)
        // Flags a form has no use for are refused by name, not ignored.
        let efPrefetch = try vq(["search", "n", "--prefetch", prefetch, "--fusion", "rrf", "--hnsw-ef", "8", "--url", url])
        #expect(efPrefetch.status == 2 && efPrefetch.stderr.contains("--hnsw-ef does not apply"), "\(efPrefetch.stderr)")
        let exactSparse = try vq(["search", "n", "--sparse", #"{"indices":[1],"values":[1]}"#, "--using", "s", "--exact", "--url", url])
        #expect(exactSparse.status == 2 && exactSparse.stderr.contains("--exact does not apply"), "\(exactSparse.stderr)")
        // A line without vectors of that shape names the problem and its line.
        try writeFile(s.path + "/bad.jsonl", #"{"id":1,"vector":[1,2]}"# + "\n")
        let bad = try vq(["upsert", "n", s.path + "/bad.jsonl", "--url", url])
        #expect(bad.status == 2 && bad.stderr.contains("line 1") && bad.stderr.contains("named vectors"), "\(bad.stderr)")
        _ = server.stop()
        // The same directory, embedded.
        let embedded = try vq(["search", "n", "--vector", "[0,41.2,1]", "--using", "b", "-k", "3", "--data-dir", server.scratch.data])
        #expect(embedded.status == 0 && embedded.stdout == remote.stdout, "\(embedded.stdout) \(embedded.stderr)")
        let sparseEmbedded = try vq(["search", "n", "--sparse", #"{"indices":[1],"values":[1]}"#, "--using", "s", "-k", "2", "--data-dir", server.scratch.data])
        #expect(sparseEmbedded.stdout == sparse.stdout, "\(sparseEmbedded.stdout) \(sparseEmbedded.stderr)")
        let fusedEmbedded = try vq(["search", "n", "--prefetch", prefetch, "--fusion", "rrf", "-k", "4", "--data-dir", server.scratch.data])
        #expect(fusedEmbedded.stdout == fused.stdout, "\(fusedEmbedded.stdout) \(fusedEmbedded.stderr)")
        #expect(try vq(["search", "n", "--vector", "[1,2]", "--using", "s", "--data-dir", server.scratch.data]).status == 2)
        let missing = try vq(["search", "n", "--vector", "[1,2]", "--data-dir", server.scratch.data])
        #expect(missing.status == 2 && missing.stderr.contains("no unnamed vector"), "\(missing.stderr)")
    }
}

@Suite struct MemoryBoundTests {
    @Test("unfinished large bodies past --max-buffered-bytes get 503 and are closed; the server keeps serving")
    func bodyBudget() throws {
        let server = try ServerProcess(["--max-buffered-bytes", "3000000", "--header-timeout", "2"])
        let chunk = [UInt8](repeating: 0x20, count: 1_200_000)
        var connections: [RawConnection] = []
        for _ in 0..<4 {
            let c = try RawConnection(port: server.port)
            c.send("PUT /collections/x/points HTTP/1.1\r\nHost: x\r\nContent-Length: 20000000\r\n\r\n")
            c.send(bytes: chunk)
            connections.append(c)
        }
        // Each is answered: 503 once the server-wide budget is used up, else 408 when the
        // request does not finish within the header timeout.
        let statuses = connections.map { $0.response()?.status ?? 0 }
        #expect(statuses.allSatisfy { $0 == 503 || $0 == 408 }, "\(statuses)")
        #expect(statuses.contains(503), "\(statuses)")
        #expect(try request(server.port, "GET", "/healthz").status == 200)
        let (status, log) = server.stop()
        #expect(status == 0, "\(log)")
    }
}

@Suite(.serialized) struct DiskFullTests {
    /// Mounts a small tmpfs on `path` (root only); nil when this machine does not allow it.
    static func mountSmall(_ path: String, megabytes: Int) -> Bool {
        guard getuid() == 0 else { return false }
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/mount")
        p.arguments = ["-t", "tmpfs", "-o", "size=\(megabytes)m", "tmpfs", path]
        p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return false }
        p.waitUntilExit()
        return p.terminationStatus == 0
    }

    static func unmount(_ path: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/umount")
        p.arguments = [path]
        try? p.run()
        p.waitUntilExit()
    }

    static func batch(_ ids: Range<Int>) -> String {
        "{\"points\":[" + ids.map { i in "{\"id\":\(i),\"vector\":[" + (0..<64).map { "\(($0 * 7 + i) % 13)" }.joined(separator: ",") + "]}" }
            .joined(separator: ",") + "]}"
    }

    @Test("a full disk: writes get 507 and /readyz 503; once space is freed writes resume without a restart and nothing acknowledged is lost",
          .enabled(if: getuid() == 0, "mounts a small tmpfs: root only"))
    func diskFull() throws {
        let scratch = Scratch()
        guard DiskFullTests.mountSmall(scratch.data, megabytes: 8) else {
            FileHandle.standardError.write(Data("DiskFullTests: this machine does not allow mounting a tmpfs; not run\n".utf8))
            return
        }
        defer { DiskFullTests.unmount(scratch.data) }
        var server: ServerProcess? = try ServerProcess(scratch: scratch)
        defer { _ = server?.stop() }
        let port = server!.port
        #expect(try request(port, "PUT", "/collections/c", #"{"vectors":{"size":64,"distance":"Dot"}}"#).status == 200)
        #expect(try request(port, "PUT", "/collections/c/points?wait=true", DiskFullTests.batch(0..<400)).status == 200)
        var acknowledged = 400
        // Fill the disk, then write until the server says so.
        let filler = scratch.data + "/filler"
        _ = FileManager.default.createFile(atPath: filler, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: filler))
        let block = Data(count: 1 << 16)
        while (try? handle.write(contentsOf: block)) != nil {}
        try? handle.close()
        var refused: (status: Int, body: String)?
        for b in 2..<200 where refused == nil {
            let r = try request(port, "PUT", "/collections/c/points?wait=true", DiskFullTests.batch((b * 200)..<((b + 1) * 200)))
            if r.status == 200 { acknowledged = (b + 1) * 200 } else { refused = (r.status, r.body) }
        }
        let full = try #require(refused)
        #expect(full.status == 507 && full.body.contains("No space left"), "\(full)")
        #expect(eventually(5) { (try? request(port, "GET", "/readyz"))?.status == 503 })
        #expect(try request(port, "POST", "/collections/c/points/count", #"{"exact":true}"#).status == 200, "reads go on")
        // A flush cut short by the full disk leaves the files as their checksums say: no false damage.
        let check = try request(port, "POST", "/collections/c/check", "{}")
        #expect(check.status == 200 && check.body.contains(#""problems":[]"#), "\(check.body)")
        // A collection that cannot be made now is refused and leaves no trace behind.
        let create = try request(port, "PUT", "/collections/c2", #"{"vectors":{"size":4,"distance":"Dot"}}"#)
        #expect(create.status != 200, "\(create.body)")
        // Space again: the next writes are taken, with no restart.
        try FileManager.default.removeItem(atPath: filler)
        let next = acknowledged + 100_000
        #expect(eventually(10) {
            (try? request(port, "PUT", "/collections/c/points?wait=true", DiskFullTests.batch(next..<(next + 200))))?.status == 200
        })
        #expect(eventually(5) { (try? request(port, "GET", "/readyz"))?.status == 200 })
        #expect(try request(port, "GET", "/collections").body.contains("\"c2\"") == false)
        #expect(try request(port, "PUT", "/collections/c2", #"{"vectors":{"size":4,"distance":"Dot"}}"#).status == 200)
        func count(_ p: Int) -> Int {
            let body = (try? request(p, "POST", "/collections/c/points/count", #"{"exact":true}"#))?.body ?? ""
            return Int(body.components(separatedBy: "\"count\":").dropFirst().first?.prefix { $0.isNumber } ?? "") ?? -1
        }
        #expect(count(port) >= acknowledged + 200)
        // And after a restart, every acknowledged point is there.
        _ = server?.stop()
        server = try ServerProcess(scratch: scratch)
        let again = server!.port
        #expect(eventually(10) { count(again) >= acknowledged + 200 }, "\(count(again)) of \(acknowledged + 200)")
        let probe = try request(again, "POST", "/collections/c/points", "{\"ids\":[0,\(max(0, acknowledged - 1)),\(next)]}")
        #expect(probe.body.components(separatedBy: "\"id\":").count - 1 == 3, "\(probe.body.prefix(300))")
    }
}
