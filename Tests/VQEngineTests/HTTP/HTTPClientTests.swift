#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Synchronization
import Testing
@testable import VQEngine

/// A server on 127.0.0.1 that plays a script: for each connection it accepts (in order), for each
/// entry it reads a request's head and writes the entry's bytes (`piece` bytes at a time), or,
/// for nil, answers nothing and holds the connection `hold` seconds; then it closes the connection.
/// Answers no real server would give: cut short, split, refused, or let go.
final class CannedServer: @unchecked Sendable {
    let port: Int
    /// Connections accepted, and closed, so far.
    var accepted: Int { counter.accepted.load(ordering: .relaxed) }
    var closed: Int { counter.closed.load(ordering: .relaxed) }
    private final class Counter: Sendable {
        let accepted = Atomic<Int>(0)
        let closed = Atomic<Int>(0)
    }
    private let counter = Counter()
    private let listener: Int32
    private let thread: Thread

    init(_ connections: [[[UInt8]?]], piece: Int = 0, hold: Double = 0.3) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        listener = fd
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
        }
        guard bound, listen(fd, 4) == 0 else { close(fd); throw VQError(.io, "cannot listen on 127.0.0.1") }
        port = Int(UInt16(bigEndian: addr.sin_port))
        let counter = self.counter
        thread = Thread {
            for script in connections {
                let c = accept(fd, nil, nil)
                guard c >= 0 else { return }
                counter.accepted.add(1, ordering: .relaxed)
                for answer in script {
                    var head: [UInt8] = []
                    var byte: UInt8 = 0
                    while !head.suffix(4).elementsEqual([13, 10, 13, 10]) && read(c, &byte, 1) == 1 { head.append(byte) }
                    guard let answer else { Thread.sleep(forTimeInterval: hold); break }
                    let step = piece > 0 ? piece : max(1, answer.count)
                    for start in stride(from: 0, to: answer.count, by: step) {
                        let part = Array(answer[start..<min(answer.count, start + step)])
                        _ = part.withUnsafeBytes { write(c, $0.baseAddress!, $0.count) }
                        if piece > 0 { usleep(1000) }
                    }
                }
                close(c)
                counter.closed.add(1, ordering: .relaxed)
            }
        }
        thread.start()
    }

    deinit { close(listener) }
}

@Suite struct HTTPClientTests {
    static func answer(_ status: String, length: Int, _ body: [UInt8], extra: String = "") -> [UInt8] {
        Array("HTTP/1.1 \(status)\r\nContent-Length: \(length)\r\n\(extra)\r\n".utf8) + body
    }

    @Test("a download goes to a file as it arrives; one refused, cut short or answered with an error leaves no file")
    func download() throws {
        let tmp = TempDir()
        let file = tmp.path + "/got"
        let body = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let whole = try CannedServer([[Self.answer("200 OK", length: body.count, body)]])
        var asked = -1
        let (status, _) = try HTTPClient(url: "http://127.0.0.1:\(whole.port)").download("/s", to: file) { asked = $0 }
        #expect(status == 200 && asked == body.count)
        #expect(try FileIO.readAll(file) == body)

        // Refused before a byte is written (a disk without the room): the file there stays as it was.
        let refused = try CannedServer([[Self.answer("200 OK", length: body.count, body)]])
        do {
            _ = try HTTPClient(url: "http://127.0.0.1:\(refused.port)").download("/s", to: file) { _ in throw VQError(.insufficientStorage, "no room") }
            Issue.record("a download with no room was written")
        } catch let e as VQError {
            #expect(e.kind == .insufficientStorage, "\(e)")
        }
        #expect(try FileIO.readAll(file) == body)
        FileIO.remove(file)

        // Cut short: the connection closes before the length it claimed.
        let short = try CannedServer([[Self.answer("200 OK", length: 100, Array(body.prefix(50)))]])
        do {
            _ = try HTTPClient(url: "http://127.0.0.1:\(short.port)").download("/s", to: file) { _ in }
            Issue.record("a body cut short was taken")
        } catch let e as VQError {
            #expect(e.kind == .unreachable && e.message.contains("after 50 of 100 bytes"), "\(e.message)")
        }
        #expect(!FileIO.exists(file))

        // An error: its status and the start of its body, nothing written; also without a length.
        let missing = try CannedServer([[Self.answer("404 Not Found", length: 4, Array("gone".utf8))],
                                        [Array("HTTP/1.1 403 Forbidden\r\n\r\nno key".utf8)]])
        let client = try HTTPClient(url: "http://127.0.0.1:\(missing.port)")
        for (code, text) in [(404, "gone"), (403, "no key")] {
            let (status, message) = try client.download("/s", to: file) { _ in Issue.record("an error's body was offered to the file") }
            #expect(status == code && message == text)
        }
        #expect(!FileIO.exists(file))
    }

    @Test("send: a head split across reads; a pooled connection the server let go is not used; a request that timed out is not sent again")
    func send() throws {
        let ok = Self.answer("200 OK", length: 2, Array("hi".utf8))
        // Byte by byte, then the server lets the kept-alive connection go: the next request
        // finds it closed before it is sent and goes on a fresh one.
        let server = try CannedServer([[ok], [ok]], piece: 1)
        let client = try HTTPClient(url: "http://127.0.0.1:\(server.port)", timeout: 5)
        for i in 0..<2 {
            if i == 1 { #expect(eventually { server.closed == 1 }) }
            let r = try client.send("GET", "/x")
            #expect(r.status == 200 && r.body == Array("hi".utf8))
        }
        #expect(server.accepted == 2)

        // Answered once, then silent: the second request times out (its own 0.2 s, not the
        // client's 5 s: a read that fails, before the server lets the connection go at 1 s) and
        // is not sent again (a second connection would be accepted once the first is let go).
        let silent = try CannedServer([[ok, nil], [ok]], hold: 1)
        let slow = try HTTPClient(url: "http://127.0.0.1:\(silent.port)", timeout: 5)
        #expect(try slow.send("GET", "/x").status == 200)
        do {
            _ = try slow.send("POST", "/write", body: [], timeout: 0.2)
            Issue.record("a request with no answer was answered")
        } catch let e as VQError {
            #expect(e.message.contains("reading from") && !e.message.contains("closed the connection"), "\(e.message)")
        }
        Thread.sleep(forTimeInterval: 1.2)
        #expect(silent.accepted == 1, "a request that may have been taken is never sent twice")

        // Bytes past the body: the answer is taken, and the connection (whose next answer would
        // be the junk, then nothing) is not used again.
        let extra = try CannedServer([[ok + Array("junk".utf8), nil], [ok]])
        let c2 = try HTTPClient(url: "http://127.0.0.1:\(extra.port)", timeout: 2)
        #expect(try c2.send("GET", "/x").body == Array("hi".utf8))
        #expect(try c2.send("GET", "/x").body == Array("hi".utf8))
    }
}
