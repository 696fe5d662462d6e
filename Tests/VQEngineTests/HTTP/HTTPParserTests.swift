import Testing
@testable import VQEngine

@Suite struct HTTPParserTests {
    func parse(_ text: String, limits: HTTPLimits = HTTPLimits()) -> HTTPParseResult {
        Array(text.utf8).withUnsafeBytes { HTTPParser.parse($0, limits: limits) }
    }

    @Test("a request with a Content-Length body, query and percent-encoded path")
    func contentLength() throws {
        let raw = "POST /collections/a%20b/points?wait=true&x=1+2 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\n\r\n"
        guard case .request(let r, let consumed) = parse(raw) else { Issue.record("not parsed"); return }
        #expect(r.method == "POST" && r.path == "/collections/a b/points")
        #expect(r.query == ["wait": "true", "x": "1 2"])
        #expect(r.body == Array("hello".utf8))
        #expect(r.header("HOST") == "x")
        #expect(r.keepAlive)
        // Pipelining: the next request starts right after.
        #expect(consumed == raw.utf8.count - "GET / HTTP/1.1\r\n\r\n".utf8.count)
    }

    @Test("chunked bodies are reassembled; incomplete ones wait for more")
    func chunked() {
        let raw = "PUT /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n"
        guard case .request(let r, let consumed) = parse(raw) else { Issue.record("not parsed"); return }
        #expect(r.body == Array("hello world".utf8))
        #expect(consumed == raw.utf8.count)
        guard case .needMore = parse(String(raw.dropLast(7))) else { Issue.record("expected needMore"); return }
    }

    @Test("a chunked body arriving a few bytes at a time resumes its scan and ends up whole")
    func chunkedTrickle() {
        var raw = "POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        for i in 0..<200 { raw += "1\r\n\(i % 10)\r\n" }
        raw += "0\r\n\r\n"
        let bytes = Array(raw.utf8)
        var progress = HTTPParseProgress()
        var result: HTTPParseResult = .needMore
        for end in stride(from: 1, through: bytes.count, by: 7) + [bytes.count] {
            result = bytes.withUnsafeBytes { HTTPParser.parse(UnsafeRawBufferPointer(rebasing: $0[0..<end]), limits: HTTPLimits(), progress: &progress) }
            if case .request = result { break }
        }
        guard case .request(let r, let consumed) = result else { Issue.record("not parsed"); return }
        #expect(consumed == bytes.count)
        #expect(r.body == Array((0..<200).map { String($0 % 10) }.joined().utf8))
    }

    @Test("malformed and oversized requests get the right status", arguments: [
        ("GARBAGE\r\n\r\n", 400), ("GET / HTTP/2.0\r\n\r\n", 505), ("GET / FTP/1.0\r\n\r\n", 400),
        ("GET x HTTP/1.1\r\n\r\n", 400), ("get / HTTP/1.1\r\n\r\n", 400), ("GET / HTTP/1.1\r\nbad header\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400), ("POST / HTTP/1.1\r\nContent-Length: 2000\r\n\r\n", 413),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
        ("POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
        ("GET /%zz HTTP/1.1\r\n\r\n", 400),
    ])
    func errors(raw: String, status: Int) {
        var limits = HTTPLimits()
        limits.maxBodyBytes = 1000
        guard case .error(let got, _) = parse(raw, limits: limits) else { Issue.record("accepted \(raw)"); return }
        #expect(got == status)
    }

    @Test("headers past the limit get 431 even before they end")
    func headerLimit() {
        var limits = HTTPLimits()
        limits.maxHeaderBytes = 100
        let raw = "GET / HTTP/1.1\r\nX-Long: " + String(repeating: "a", count: 200)
        guard case .error(let status, _) = parse(raw, limits: limits) else { Issue.record("accepted"); return }
        #expect(status == 431)
    }

    @Test("Connection: close and HTTP/1.0 turn keep-alive off")
    func connection() {
        guard case .request(let a, _) = parse("GET / HTTP/1.1\r\nConnection: close\r\n\r\n"),
              case .request(let b, _) = parse("GET / HTTP/1.0\r\n\r\n") else { Issue.record("not parsed"); return }
        #expect(!a.keepAlive && !b.keepAlive)
    }
}

@Suite struct FilterTests {
    let payload = try! JSONParser.parse(#"{"city":"Paris","n":7,"tags":["a","b"],"nested":{"x":1.5},"empty":[],"nothing":null}"#)

    func check(_ filter: String, _ expected: Bool, id: PointID = .number(1)) throws {
        let f = try Filter(json: try JSONParser.parse(filter))
        #expect(f.matches(id: id, payload: payload) == expected, "\(filter)")
    }

    @Test("conditions match as in Qdrant")
    func conditions() throws {
        try check(#"{"must":[{"key":"city","match":{"value":"Paris"}}]}"#, true)
        try check(#"{"must":[{"key":"city","match":{"value":"Rome"}}]}"#, false)
        try check(#"{"must":[{"key":"tags","match":{"value":"b"}}]}"#, true)
        try check(#"{"must":[{"key":"city","match":{"any":["Rome","Paris"]}}]}"#, true)
        try check(#"{"must":[{"key":"city","match":{"except":["Rome","Paris"]}}]}"#, false)
        try check(#"{"must":[{"key":"n","range":{"gte":7,"lt":8}}]}"#, true)
        try check(#"{"must":[{"key":"nested.x","range":{"gt":1.5}}]}"#, false)
        try check(#"{"must":[{"has_id":[1,2]}]}"#, true)
        try check(#"{"must_not":[{"has_id":[1]}]}"#, false)
        try check(#"{"must":[{"is_empty":{"key":"empty"}}, {"is_empty":{"key":"missing"}}]}"#, true)
        try check(#"{"must":[{"is_empty":{"key":"city"}}]}"#, false)
        try check(#"{"must":[{"is_null":{"key":"nothing"}}]}"#, true)
        try check(#"{"should":[{"key":"city","match":{"value":"Rome"}},{"key":"n","match":{"value":7}}]}"#, true)
        try check(#"{"should":[{"key":"city","match":{"value":"Rome"}}]}"#, false)
        try check(#"{"must":[{"should":[{"key":"n","match":{"value":8}}],"must_not":[{"key":"city","match":{"value":"Oslo"}}]}]}"#, false)
    }

    @Test("unknown shapes are refused with a message", arguments: [
        #"{"must":[{"key":"city"}]}"#, #"{"mst":[]}"#, #"{"must":[{"key":"n","range":{"gte":"x"}}]}"#, #"[1]"#,
        #"{"must":[{"key":"c","match":{"value":1.5}}]}"#, #"{"must":[{"has_id":["no"]}]}"#,
    ])
    func refused(text: String) {
        #expect(throws: VQError.self) { _ = try Filter(json: try JSONParser.parse(text)) }
    }
}
