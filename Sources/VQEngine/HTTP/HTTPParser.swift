// Parses HTTP/1.1 requests from a byte buffer. Strict: anything malformed is
// an error with a status (400, 413, 431, 501, 505), never a crash.

/// Size limits for requests.
package struct HTTPLimits: Sendable {
    package var maxHeaderBytes = 16 << 10
    package var maxBodyBytes = 32 << 20
    package var maxHeaders = 100
    /// Requests whose path (before any query) ends with one of these may carry bodies of up to
    /// `maxUploadBytes` (file uploads) instead of `maxBodyBytes`.
    package var uploadPathSuffixes: [String] = []
    package var maxUploadBytes = 200 << 20

    package init() {}

    /// The body limit for a request to `target`.
    package func maxBody(target: Substring) -> Int {
        guard !uploadPathSuffixes.isEmpty, maxUploadBytes > maxBodyBytes else { return maxBodyBytes }
        let path = target[..<(target.firstIndex(of: "?") ?? target.endIndex)]
        return uploadPathSuffixes.contains { path.hasSuffix($0) } ? maxUploadBytes : maxBodyBytes
    }

    /// The largest body any request may carry.
    package var maxAnyBody: Int { uploadPathSuffixes.isEmpty ? maxBodyBytes : max(maxUploadBytes, maxBodyBytes) }
}

/// The outcome of looking at the bytes received so far.
package enum HTTPParseResult {
    /// Not a whole request yet.
    case needMore
    /// A request, and how many bytes of the buffer it used.
    case request(HTTPRequest, consumed: Int)
    /// A malformed request: answer with `status` and close.
    case error(status: Int, message: String)
}

/// Where a chunked body's scan stopped, so the next read resumes there instead of
/// walking every chunk again (which made a trickled body quadratic).
package struct HTTPParseProgress: Sendable {
    /// Offset of the next chunk-size line from the start of the request (0 = not started).
    package var chunkLine = 0
    /// Body bytes in the chunks before it.
    package var bodyBytes = 0

    package init(chunkLine: Int = 0, bodyBytes: Int = 0) {
        self.chunkLine = chunkLine
        self.bodyBytes = bodyBytes
    }
}

package enum HTTPParser {
    /// Parses the first request in `buffer`.
    package static func parse(_ buffer: UnsafeRawBufferPointer, limits: HTTPLimits) -> HTTPParseResult {
        var progress = HTTPParseProgress()
        return parse(buffer, limits: limits, progress: &progress)
    }

    /// Parses the first request in `buffer`, resuming a chunked body's scan from `progress`
    /// (reset it when a request completes or the buffer's start moves).
    package static func parse(_ buffer: UnsafeRawBufferPointer, limits: HTTPLimits, progress: inout HTTPParseProgress) -> HTTPParseResult {
        let bytes = buffer.bindMemory(to: UInt8.self)
        // Find the end of the header block.
        var headerEnd = -1
        var i = 0
        let n = bytes.count
        while i + 3 < n {
            if bytes[i] == 13 && bytes[i + 1] == 10 && bytes[i + 2] == 13 && bytes[i + 3] == 10 { headerEnd = i; break }
            i += 1
        }
        if headerEnd < 0 {
            if n > limits.maxHeaderBytes { return .error(status: 431, message: "request headers exceed \(limits.maxHeaderBytes) bytes") }
            return .needMore
        }
        if headerEnd > limits.maxHeaderBytes { return .error(status: 431, message: "request headers exceed \(limits.maxHeaderBytes) bytes") }
        guard let head = String(validating: UnsafeBufferPointer(rebasing: bytes[0..<headerEnd]), as: UTF8.self) else {
            return .error(status: 400, message: "request headers are not valid UTF-8")
        }
        var lines = head.split(separator: "\r\n", omittingEmptySubsequences: false)
        guard !lines.isEmpty else { return .error(status: 400, message: "empty request") }
        let requestLine = lines.removeFirst().split(separator: " ", omittingEmptySubsequences: false)
        guard requestLine.count == 3 else { return .error(status: 400, message: "malformed request line") }
        let method = String(requestLine[0]), target = String(requestLine[1]), version = requestLine[2]
        guard !method.isEmpty, method.utf8.allSatisfy({ $0 >= 0x41 && $0 <= 0x5A }) else {
            return .error(status: 400, message: "malformed method")
        }
        guard version == "HTTP/1.1" || version == "HTTP/1.0" else {
            return .error(status: version.hasPrefix("HTTP/") ? 505 : 400, message: "unsupported protocol version \(version)")
        }
        guard target.hasPrefix("/") else { return .error(status: 400, message: "request target must be an absolute path") }
        if lines.count > limits.maxHeaders { return .error(status: 431, message: "more than \(limits.maxHeaders) header fields") }
        var headers: [(String, String)] = []
        var contentLength: Int?
        var chunked = false
        var keepAlive = version == "HTTP/1.1"
        for line in lines {
            guard let colon = line.firstIndex(of: ":"), colon != line.startIndex else {
                return .error(status: 400, message: "malformed header line")
            }
            let name = line[..<colon].lowercased()
            guard !name.contains(" ") && !name.contains("\t") else { return .error(status: 400, message: "malformed header name") }
            let value = line[line.index(after: colon)...].trimmingCharactersSpaceTab()
            headers.append((name, value))
            switch name {
            case "content-length":
                guard let v = Int(value), v >= 0 else { return .error(status: 400, message: "invalid Content-Length") }
                if let existing = contentLength, existing != v { return .error(status: 400, message: "conflicting Content-Length headers") }
                contentLength = v
            case "transfer-encoding":
                let codings = value.lowercased().split(separator: ",").map { $0.trimmingCharactersSpaceTab() }
                guard codings.last == "chunked", codings.allSatisfy({ $0 == "chunked" || $0 == "identity" }) else {
                    return .error(status: 501, message: "unsupported Transfer-Encoding \(value)")
                }
                chunked = true
            case "connection":
                let v = value.lowercased()
                if v.contains("close") { keepAlive = false } else if v.contains("keep-alive") { keepAlive = true }
            default: break
            }
        }
        if chunked && contentLength != nil { return .error(status: 400, message: "both Content-Length and chunked Transfer-Encoding") }
        let maxBodyBytes = limits.maxBody(target: Substring(target))
        let bodyStart = headerEnd + 4
        var body: [UInt8] = []
        var consumed = bodyStart
        if chunked {
            // Pass 1: walk the chunk headers (resuming where the last call stopped), no copying.
            var p = progress.chunkLine > bodyStart ? progress.chunkLine : bodyStart
            var total = progress.chunkLine > bodyStart ? progress.bodyBytes : 0
            while true {
                // chunk-size [;ext] CRLF
                var lineEnd = p
                while lineEnd + 1 < n && !(bytes[lineEnd] == 13 && bytes[lineEnd + 1] == 10) { lineEnd += 1 }
                if lineEnd + 1 >= n {
                    if lineEnd - p > 4096 { return .error(status: 400, message: "chunk-size line too long") }
                    progress = HTTPParseProgress(chunkLine: p, bodyBytes: total)
                    return .needMore
                }
                var size = 0
                var digits = 0
                var q = p
                while q < lineEnd, let d = hexDigit(bytes[q]) {
                    size = size * 16 + d
                    digits += 1
                    if size > maxBodyBytes { return .error(status: 413, message: "request body exceeds \(maxBodyBytes) bytes") }
                    q += 1
                }
                guard digits > 0, q == lineEnd || bytes[q] == UInt8(ascii: ";") else { return .error(status: 400, message: "malformed chunk size") }
                if size == 0 {
                    // Trailers, then an empty line.
                    var t = lineEnd + 2
                    while true {
                        var e = t
                        while e + 1 < n && !(bytes[e] == 13 && bytes[e + 1] == 10) { e += 1 }
                        if e + 1 >= n {
                            progress = HTTPParseProgress(chunkLine: p, bodyBytes: total)
                            return .needMore
                        }
                        let empty = e == t
                        t = e + 2
                        if empty { break }
                    }
                    consumed = t
                    break
                }
                if total + size > maxBodyBytes { return .error(status: 413, message: "request body exceeds \(maxBodyBytes) bytes") }
                let data = lineEnd + 2
                if data + size + 2 > n {
                    progress = HTTPParseProgress(chunkLine: p, bodyBytes: total)
                    return .needMore
                }
                guard bytes[data + size] == 13 && bytes[data + size + 1] == 10 else { return .error(status: 400, message: "malformed chunk") }
                total += size
                p = data + size + 2
            }
            // Pass 2 (once): copy the chunks' data, re-walking the part scanned by earlier calls.
            body.reserveCapacity(total)
            var r = bodyStart
            while true {
                var lineEnd = r
                while !(bytes[lineEnd] == 13 && bytes[lineEnd + 1] == 10) { lineEnd += 1 }
                var size = 0
                var q = r
                while q < lineEnd, let d = hexDigit(bytes[q]) { size = size * 16 + d; q += 1 }
                if size == 0 { break }
                body.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[(lineEnd + 2)..<(lineEnd + 2 + size)]))
                r = lineEnd + 2 + size + 2
            }
            progress = HTTPParseProgress()
        } else if let length = contentLength, length > 0 {
            if length > maxBodyBytes { return .error(status: 413, message: "request body of \(length) bytes exceeds \(maxBodyBytes)") }
            if n - bodyStart < length { return .needMore }
            body = Array(UnsafeBufferPointer(rebasing: bytes[bodyStart..<(bodyStart + length)]))
            consumed = bodyStart + length
        } else if contentLength == nil && (method == "POST" || method == "PUT" || method == "PATCH") {
            // No length and not chunked: an empty body (HTTP/1.1 requests never read to EOF).
        }
        var path = target
        var query: [String: String] = [:]
        if let q = target.firstIndex(of: "?") {
            path = String(target[..<q])
            for pair in target[target.index(after: q)...].split(separator: "&") {
                let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                let key = percentDecode(String(kv[0])) ?? String(kv[0])
                let value = kv.count > 1 ? (percentDecode(String(kv[1])) ?? String(kv[1])) : ""
                query[key] = value
            }
        }
        guard let decoded = percentDecode(path) else { return .error(status: 400, message: "malformed percent-encoding in path") }
        return .request(HTTPRequest(method: method, path: decoded, query: query, headers: headers, body: body, keepAlive: keepAlive),
                        consumed: consumed)
    }

    private static func hexDigit(_ c: UInt8) -> Int? {
        switch c {
        case 0x30...0x39: return Int(c - 0x30)
        case 0x61...0x66: return Int(c - 0x61 + 10)
        case 0x41...0x46: return Int(c - 0x41 + 10)
        default: return nil
        }
    }

    /// Decodes %XX escapes and '+' in queries; nil when malformed or not UTF-8.
    static func percentDecode(_ s: String) -> String? {
        guard s.contains("%") || s.contains("+") else { return s }
        var out: [UInt8] = []
        var it = Array(s.utf8)[...]
        while let c = it.popFirst() {
            if c == UInt8(ascii: "%") {
                guard let h = it.popFirst(), let l = it.popFirst(), let hv = hexDigit(h), let lv = hexDigit(l) else { return nil }
                out.append(UInt8(hv * 16 + lv))
            } else if c == UInt8(ascii: "+") {
                out.append(0x20)
            } else {
                out.append(c)
            }
        }
        return String(validating: out, as: UTF8.self)
    }
}

extension StringProtocol {
    func trimmingCharactersSpaceTab() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" { s.removeLast() }
        return String(s)
    }
}
