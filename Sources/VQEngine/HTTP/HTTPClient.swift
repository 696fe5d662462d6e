// A small blocking HTTP/1.1 client with a keep-alive connection pool, for the
// CLI's remote mode (and, later, peers). One request per call; idle
// connections are reused; a request that finds its pooled connection closed
// is retried once on a fresh one.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Synchronization

/// A client for one server (scheme http, host, port).
package final class HTTPClient: Sendable {
    /// The most bytes of a response's head (status line and headers) this client reads.
    static let maxHeadBytes = 64 << 10
    /// The largest response body this client accepts (a peer's shard transfer batch included).
    static let maxBodyBytes = 1 << 30

    package let host: String
    package let port: Int
    package let timeout: Double
    /// Sent with every request (an api-key).
    package let headers: [(String, String)]
    /// Pooled connections, each with the timeout its socket has now.
    private let idle = Mutex<[(fd: Int32, timeout: Double)]>([])

    /// - Parameter url: `http://HOST:PORT` (a trailing slash or path is ignored).
    /// - Throws: `.invalidInput` for anything but an http URL with a numeric IPv4 or localhost host.
    package init(url: String, timeout: Double = 30, headers: [(String, String)] = []) throws {
        self.headers = headers
        guard url.hasPrefix("http://") else { throw VQError.invalid("URL \(url) is not supported; expected http://HOST:PORT") }
        var rest = url.dropFirst(7)
        if let slash = rest.firstIndex(of: "/") { rest = rest[..<slash] }
        let parts = rest.split(separator: ":")
        guard !parts.isEmpty, parts.count <= 2 else { throw VQError.invalid("URL \(url) has no host; expected http://HOST:PORT") }
        host = parts[0] == "localhost" ? "127.0.0.1" : String(parts[0])
        if parts.count == 2 {
            guard let p = Int(parts[1]), (1...65_535).contains(p) else { throw VQError.invalid("URL \(url) has a bad port") }
            port = p
        } else {
            port = 80
        }
        self.timeout = timeout
    }

    deinit { idle.withLock { for c in $0 { close(c.fd) } } }

    /// Sets how long a send or a read (and a connect) on `fd` may wait: at least a millisecond
    /// (a zero timeval would mean forever).
    private static func setTimeouts(_ fd: Int32, _ seconds: Double) {
        let t = max(0.001, seconds)
        var tv = timeval(tv_sec: Int(t), tv_usec: .init((t - Double(Int(t))) * 1e6))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    private func connect(timeout: Double) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ioError("socket", "") }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        guard inet_pton(AF_INET, host, &addr.sin_addr) == 1 else {
            close(fd)
            throw VQError.invalid("host \(host) is not an IPv4 address")
        }
        HTTPClient.setTimeouts(fd, timeout)
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { systemConnect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard rc == 0 else {
            let code = errno
            close(fd)
            throw VQError(.unreachable, "cannot connect to http://\(host):\(port): \(errnoText(code))", hint: "is vq serve running there?")
        }
        return fd
    }

    /// Sends one request and returns the response (a body is JSON unless `headers` give a Content-Type).
    /// - Throws: `.io` when the server cannot be reached or the answer is malformed.
    /// - Throws: `.invalidInput` when the path or a header holds a control character or (the path)
    ///   a space: text from a request body (a recover's `location`, `api_key`) never splits this one.
    /// - Parameter timeout: for this request, instead of the client's.
    package func send(_ method: String, _ path: String, body: [UInt8]? = nil, headers: [(String, String)] = [],
                      timeout: Double? = nil) throws -> HTTPResponse {
        let bytes = try request(method, path, body: body, headers: headers)
        let seconds = timeout ?? self.timeout
        for attempt in 0..<2 {
            // A request sent again goes on a fresh connection (the others pooled may be stale too).
            let pooled = attempt == 0 ? takeIdle() : nil
            let fd = try pooled?.fd ?? connect(timeout: seconds)
            // Set only when it differs (callers with a timeout of their own mostly use the same one).
            if let pooled, pooled.timeout != seconds { HTTPClient.setTimeouts(fd, seconds) }
            do {
                let response = try exchange(fd, bytes)
                if response.keepAlive {
                    idle.withLock { $0.append((fd, seconds)) }
                } else {
                    close(fd)
                }
                return response.response
            } catch is StaleConnection where pooled != nil {
                // The pooled connection failed while the request was being sent (the server let
                // it go): the request was not taken; sent again on a fresh connection.
                close(fd)
            } catch let e as StaleConnection {
                close(fd)
                throw e.error
            } catch {
                // A timeout or a failure after the request may have been taken: never sent twice.
                close(fd)
                throw error
            }
        }
        throw VQError(.unreachable, "no response from http://\(host):\(port)")
    }

    /// A connection that failed while the request was being sent (closed or reset): on a pooled
    /// connection, the server let it go idle; the request can go again on a fresh one. (Once the
    /// request is sent, no failure is retried: the server may have taken it.)
    private struct StaleConnection: Error {
        let error: VQError
    }

    /// A pooled connection the server has not closed or reset meanwhile (one it has is dropped:
    /// an idle keep-alive the server let go), or nil.
    private func takeIdle() -> (fd: Int32, timeout: Double)? {
        while let c = idle.withLock({ $0.popLast() }) {
            var byte: UInt8 = 0
            let n = recv(c.fd, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT))
            // Nothing to read and still open: usable. (Bytes waiting would be no answer to anything.)
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return c }
            close(c.fd)
        }
        return nil
    }

    /// GETs `path` into `file` as its body arrives (a snapshot may be larger than memory), on a
    /// connection of its own, and makes the file durable.
    /// - Parameter room: given the body's length before a byte of it is written; throws to refuse it
    ///   (a disk without the room).
    /// - Returns: the status, and for any but 200 the start of the answer's body (nothing written).
    package func download(_ path: String, headers: [(String, String)] = [], to file: String,
                          room: (Int) throws -> Void) throws -> (status: Int, message: String) {
        let bytes = try request("GET", path, body: nil, headers: headers)
        let fd = try connect(timeout: timeout)
        defer { close(fd) }
        do {
            try sendAll(fd, bytes)
            var buffer = HTTPClient.readBuffer()
            var head = try readHead(fd, &buffer, needLength: false)
            guard head.status == 200 else {
                // The start of the answer, however it is framed (to its length, else to the close).
                let want = head.length >= 0 ? min(head.length, 64 << 10) : 64 << 10
                while head.rest.count < want, let more = try readSome(fd, &buffer) { head.rest += more }
                return (head.status, String(decoding: head.rest.prefix(want), as: UTF8.self))
            }
            guard head.length >= 0 else { throw VQError(.io, "the answer from http://\(host):\(port) has no Content-Length") }
            return try store(fd, head, &buffer, to: file, room: room)
        } catch let e as StaleConnection {
            throw e.error
        }
    }

    /// The body of a 200 answer to `download`, written to `file` as it arrives.
    private func store(_ fd: Int32, _ head: Head, _ buffer: inout [UInt8], to file: String, room: (Int) throws -> Void) throws -> (status: Int, message: String) {
        try room(head.length)
        let out = FileIO.openFD(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC)
        guard out >= 0 else { throw ioError("create", file) }
        var done = false
        defer {
            close(out)
            if !done { FileIO.remove(file) }
        }
        var written = 0
        var chunk = Array(head.rest.prefix(head.length))
        while true {
            try chunk.withUnsafeBytes { try FileIO.writeAll(out, $0, path: file) }
            written += chunk.count
            if written >= head.length { break }
            guard let more = try readSome(fd, &buffer) else {
                throw VQError(.unreachable, "http://\(host):\(port) closed the connection after \(written) of \(head.length) bytes")
            }
            chunk = Array(more.prefix(head.length - written))
        }
        try FileIO.sync(out, path: file)
        done = true
        return (200, "")
    }

    /// A response's head, and the bytes read after it with it.
    private struct Head {
        var status: Int
        var headers: [(String, String)]
        /// Its Content-Length (-1 when it gave none).
        var length: Int
        var keepAlive: Bool
        var rest: [UInt8]
    }

    /// A request's bytes: its head and its body.
    private func request(_ method: String, _ path: String, body: [UInt8]?, headers: [(String, String)]) throws -> [UInt8] {
        func plain(_ s: String, spaces: Bool) -> Bool { s.utf8.allSatisfy { $0 >= 0x20 && $0 != 0x7F && (spaces || $0 != 0x20) } }
        guard plain(path, spaces: false) else { throw VQError.invalid("request path \"\(path)\" holds a space or a control character") }
        for (k, v) in self.headers + headers where !plain(k, spaces: false) || !plain(v, spaces: true) {
            throw VQError.invalid("header \(k) holds a control character")
        }
        var head = "\(method) \(path) HTTP/1.1\r\nHost: \(host):\(port)\r\n"
        for (k, v) in self.headers + headers { head += "\(k): \(v)\r\n" }
        if let body {
            // JSON unless the caller says otherwise (an upload's multipart body).
            if !headers.contains(where: { $0.0.lowercased() == "content-type" }) { head += "Content-Type: application/json\r\n" }
            head += "Content-Length: \(body.count)\r\n"
        }
        head += "\r\n"
        return Array(head.utf8) + (body ?? [])
    }

    /// - Throws: `StaleConnection` when the connection was closed or reset (the server let it go).
    private func sendAll(_ fd: Int32, _ bytes: [UInt8]) throws {
        var done = 0
        while done < bytes.count {
            // (MSG_NOSIGNAL: a connection the server closed is an error here, not a SIGPIPE.)
            let n = bytes.withUnsafeBytes { systemSend(fd, $0.baseAddress! + done, $0.count - done) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 {
                let code = errno
                let error = VQError(.unreachable, "sending to http://\(host):\(port) failed: \(errnoText(code))")
                if code == EPIPE || code == ECONNRESET { throw StaleConnection(error: error) }
                throw error
            }
            done += n
        }
    }

    /// The next bytes from the server, read into `buffer` (one per exchange), or nil once it has
    /// closed the connection.
    private func readSome(_ fd: Int32, _ buffer: inout [UInt8]) throws -> ArraySlice<UInt8>? {
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { throw VQError(.unreachable, "reading from http://\(host):\(port) failed: \(errnoText())") }
            return n == 0 ? nil : buffer[0..<n]
        }
    }

    /// A buffer for one exchange's reads.
    private static func readBuffer() -> [UInt8] { [UInt8](repeating: 0, count: 64 << 10) }

    /// A response's head, read and checked (a peer's answer is untrusted input: its head is
    /// bounded and scanned once), and the bytes after it read with it.
    /// - Parameter needLength: whether a head without Content-Length is refused.
    private func readHead(_ fd: Int32, _ buffer: inout [UInt8], needLength: Bool = true) throws -> Head {
        var data: [UInt8] = []
        var scanned = 0
        while true {
            if data.count >= 4 {
                for i in max(0, scanned - 3)...(data.count - 4) where data[i] == 13 && data[i + 1] == 10 && data[i + 2] == 13 && data[i + 3] == 10 {
                    let head = String(decoding: data[0..<i], as: UTF8.self).split(separator: "\r\n")
                    let statusParts = head.first?.split(separator: " ") ?? []
                    guard statusParts.count >= 2, let status = Int(statusParts[1]) else {
                        throw VQError(.io, "malformed response from http://\(host):\(port)")
                    }
                    var headers: [(String, String)] = []
                    var length = -1
                    var keepAlive = true
                    for line in head.dropFirst() {
                        guard let colon = line.firstIndex(of: ":") else { continue }
                        let name = line[..<colon].lowercased(), value = line[line.index(after: colon)...].trimmingCharactersSpaceTab()
                        headers.append((name, value))
                        if name == "content-length" { length = Int(value) ?? -1 }
                        if name == "connection" && value.lowercased() == "close" { keepAlive = false }
                    }
                    guard length >= 0 || !needLength else { throw VQError(.io, "response from http://\(host):\(port) has no Content-Length") }
                    return Head(status: status, headers: headers, length: length, keepAlive: keepAlive, rest: Array(data[(i + 4)...]))
                }
                scanned = data.count
            }
            guard let more = try readSome(fd, &buffer) else { throw VQError(.unreachable, "http://\(host):\(port) closed the connection") }
            data += more
            guard data.count <= HTTPClient.maxHeadBytes else {
                throw VQError(.io, "response head from http://\(host):\(port) exceeds \(HTTPClient.maxHeadBytes) bytes")
            }
        }
    }

    private func exchange(_ fd: Int32, _ bytes: [UInt8]) throws -> (response: HTTPResponse, keepAlive: Bool) {
        try sendAll(fd, bytes)
        var buffer = HTTPClient.readBuffer()
        let head = try readHead(fd, &buffer)
        // Held in memory: no larger than maxBodyBytes (a download of more goes to a file).
        guard head.length <= HTTPClient.maxBodyBytes else {
            throw VQError(.io, "response from http://\(host):\(port) claims \(head.length) bytes; at most \(HTTPClient.maxBodyBytes) are read")
        }
        var body = head.rest
        body.reserveCapacity(min(head.length, 1 << 20))  // the claim grows the buffer only as bytes come
        while body.count < head.length {
            guard let more = try readSome(fd, &buffer) else { throw VQError(.unreachable, "http://\(host):\(port) closed the connection") }
            body += more
        }
        // Bytes past the body are no answer to anything: the connection is not used again.
        let clean = body.count == head.length
        return (HTTPResponse(status: head.status, headers: head.headers, body: Array(body.prefix(head.length))), head.keepAlive && clean)
    }
}

/// send(2) without SIGPIPE, for types whose own `send` would shadow it.
func systemSend(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int {
    send(fd, buffer, count, Int32(MSG_NOSIGNAL))
}

/// connect(2), for types whose own `connect` would shadow it.
func systemConnect(_ fd: Int32, _ addr: UnsafePointer<sockaddr>, _ len: socklen_t) -> Int32 {
    connect(fd, addr, len)
}
