// HTTP/1.1 for vq: transport only, no knowledge of vectors.
//
//   HTTPMessage.swift   requests, responses, status texts
//   HTTPParser.swift    bytes -> request (Content-Length and chunked bodies, limits)
//   HTTPServer.swift    epoll (poll elsewhere) event loop + worker pool, keep-alive, pipelining, timeouts
//   HTTPClient.swift    blocking client with a keep-alive pool, for the CLI and peers

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A parsed request.
package struct HTTPRequest: Sendable {
    package var method: String
    /// The path, percent-decoded, without the query.
    package var path: String
    package var query: [String: String]
    /// Header names lowercased, in arrival order.
    package var headers: [(String, String)]
    package var body: [UInt8]
    package var keepAlive: Bool

    package init(method: String, path: String, query: [String: String] = [:], headers: [(String, String)] = [], body: [UInt8] = [],
                 keepAlive: Bool = true) {
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
        self.keepAlive = keepAlive
    }

    package func header(_ name: String) -> String? {
        let lower = name.lowercased()
        return headers.first { $0.0 == lower }?.1
    }
}

/// A file sent as a response's body, streamed from disk as the client reads it (a download of
/// any size holds one chunk in memory). Open until the last reference goes.
package final class FileBody: @unchecked Sendable {
    package let fd: Int32
    package let length: Int

    /// Opens `path` for sending.
    /// - Throws: `.io` (or `.notFound`) when it cannot be opened.
    package init(path: String) throws {
        let fd = FileIO.openFD(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ioError("open", path) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            close(fd)
            throw ioError("stat", path)
        }
        self.fd = fd
        length = Int(st.st_size)
    }

    /// The whole file in memory (for callers in this process, not the server).
    package func readAll() throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: length)
        let done = try out.withUnsafeMutableBytes { try FileIO.readFull(fd, into: $0, at: 0, path: "a file being sent") }
        guard done == length else { throw VQError(.io, "a file being sent became shorter (\(done) of \(length) bytes)") }
        return out
    }

    deinit { close(fd) }
}

/// A response to send.
package struct HTTPResponse: Sendable {
    package var status: Int
    package var headers: [(String, String)]
    package var body: [UInt8]
    /// Sent after the head instead of `body`, when set.
    package var file: FileBody?

    package init(status: Int, headers: [(String, String)] = [], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    package static func json(_ status: Int, _ body: [UInt8], headers: [(String, String)] = []) -> HTTPResponse {
        HTTPResponse(status: status, headers: [("Content-Type", "application/json")] + headers, body: body)
    }

    /// A 200 with bytes (peers' binary messages).
    package static func binary(_ body: [UInt8]) -> HTTPResponse {
        HTTPResponse(status: 200, headers: [("Content-Type", "application/octet-stream")], body: body)
    }

    package static func text(_ status: Int, _ text: String, contentType: String = "text/plain; charset=utf-8") -> HTTPResponse {
        HTTPResponse(status: status, headers: [("Content-Type", contentType)], body: Array(text.utf8))
    }

    /// Status line, headers (with Content-Length and Connection) and body (not a `file`: the
    /// server streams that after these bytes).
    package func serialized(keepAlive: Bool) -> [UInt8] {
        var head = "HTTP/1.1 \(status) \(HTTPResponse.reason(status))\r\n"
        for (k, v) in headers { head += "\(k): \(v)\r\n" }
        head += "Content-Length: \(file?.length ?? body.count)\r\n"
        head += keepAlive ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n"
        var out = Array(head.utf8)
        if file == nil { out.append(contentsOf: body) }
        return out
    }

    package static func reason(_ status: Int) -> String {
        switch status {
        case 200: return "OK"
        case 201: return "Created"
        case 202: return "Accepted"
        case 204: return "No Content"
        case 400: return "Bad Request"
        case 401: return "Unauthorized"
        case 403: return "Forbidden"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 408: return "Request Timeout"
        case 409: return "Conflict"
        case 411: return "Length Required"
        case 413: return "Payload Too Large"
        case 422: return "Unprocessable Entity"
        case 429: return "Too Many Requests"
        case 431: return "Request Header Fields Too Large"
        case 500: return "Internal Server Error"
        case 501: return "Not Implemented"
        case 503: return "Service Unavailable"
        case 505: return "HTTP Version Not Supported"
        default: return "Status"
        }
    }
}
