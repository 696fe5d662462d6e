#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
@testable import VQEngine

/// A server on 127.0.0.1 that answers one connection with fixed bytes (after reading the
/// request's head), then closes it: answers no real server would give, cut short or refused.
final class CannedServer: @unchecked Sendable {
    let port: Int
    private let listener: Int32
    private let thread: Thread

    init(_ response: [UInt8]) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        listener = fd
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
        }
        guard bound, listen(fd, 1) == 0 else { close(fd); throw VQError(.io, "cannot listen on 127.0.0.1") }
        port = Int(UInt16(bigEndian: addr.sin_port))
        thread = Thread {
            let c = accept(fd, nil, nil)
            guard c >= 0 else { return }
            var head: [UInt8] = []
            var byte: UInt8 = 0
            while !head.suffix(4).elementsEqual([13, 10, 13, 10]) && read(c, &byte, 1) == 1 { head.append(byte) }
            _ = response.withUnsafeBytes { write(c, $0.baseAddress!, $0.count) }
            close(c)
        }
        thread.start()
    }

    deinit { close(listener) }
}

@Suite struct HTTPClientTests {
    static func answer(_ status: String, length: Int, _ body: [UInt8]) -> [UInt8] {
        Array("HTTP/1.1 \(status)\r\nContent-Length: \(length)\r\n\r\n".utf8) + body
    }

    @Test("a download goes to a file as it arrives; one refused, cut short or answered with an error leaves no file")
    func download() throws {
        let tmp = TempDir()
        let file = tmp.path + "/got"
        let body = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let whole = try CannedServer(Self.answer("200 OK", length: body.count, body))
        var asked = -1
        let (status, _) = try HTTPClient(url: "http://127.0.0.1:\(whole.port)").download("/s", to: file) { asked = $0 }
        #expect(status == 200 && asked == body.count)
        #expect(try FileIO.readAll(file) == body)
        FileIO.remove(file)

        // Refused before a byte is written (a disk without the room).
        let refused = try CannedServer(Self.answer("200 OK", length: body.count, body))
        #expect(throws: VQError.self) {
            _ = try HTTPClient(url: "http://127.0.0.1:\(refused.port)").download("/s", to: file) { _ in throw VQError(.insufficientStorage, "no room") }
        }
        #expect(!FileIO.exists(file))

        // Cut short: the connection closes before the length it claimed.
        let short = try CannedServer(Self.answer("200 OK", length: 100, Array(body.prefix(50))))
        do {
            _ = try HTTPClient(url: "http://127.0.0.1:\(short.port)").download("/s", to: file) { _ in }
            Issue.record("a body cut short was taken")
        } catch let e as VQError {
            #expect(e.kind == .unreachable && e.message.contains("after 50 of 100 bytes"), "\(e.message)")
        }
        #expect(!FileIO.exists(file))

        // An error: its status and the start of its body, nothing written.
        let missing = try CannedServer(Self.answer("404 Not Found", length: 4, Array("gone".utf8)))
        let (notFound, message) = try HTTPClient(url: "http://127.0.0.1:\(missing.port)").download("/s", to: file) { _ in
            Issue.record("an error's body was offered to the file")
        }
        #expect(notFound == 404 && message == "gone")
        #expect(!FileIO.exists(file))
    }
}
