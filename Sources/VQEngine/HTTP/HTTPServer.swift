// An HTTP/1.1 server: one event-loop thread per core, all accepting from one
// listening socket and each owning the connections it accepted. One socket, not
// SO_REUSEPORT: another process (a second `vq serve` on the same port) must get
// "address already in use" rather than a share of our connections.
// Short reads run on the loop; other handlers run on a worker pool and hand
// their responses back through the loop's wake-up pipe.
//
//   accept -> read into the connection's buffer -> parse -> (one request in flight
//   per connection, so pipelined requests are answered in order) -> handler (inline
//   or on a worker) -> loop writes the response -> parse the next buffered request
//
// Idle connections cost a buffer and a table entry, not a thread. Slow clients
// are dropped: a request whose headers have not arrived within `headerTimeout`,
// or a connection idle past `idleTimeout`, is closed.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Synchronization

/// Server settings; each is a `vq serve` flag.
package struct HTTPServerConfig: Sendable {
    package var host = "127.0.0.1"
    package var port = 6333
    package var limits = HTTPLimits()
    package var headerTimeout: Double = 10
    package var idleTimeout: Double = 120
    package var maxConnections = 20_000
    /// Bytes of request input all connections together may hold (partly received bodies
    /// included). Past it, the connection holding the most in an unfinished request is answered
    /// 503 and closed, so memory has one bound whatever the clients do.
    package var maxBufferedBytes = 256 << 20
    /// Event-loop threads; 0 = one per core.
    package var loops = 0
    /// Threads for requests that may block (writes, cluster calls).
    package var workerThreads = 64
    /// The answer to a request the server refuses itself (malformed, too large, too slow, over
    /// the connection limit): the application's error shape, plain text by default.
    package var errorResponse: @Sendable (_ status: Int, _ message: String) -> HTTPResponse = { .text($0, $1) }

    package init() {}
}

/// A running server: `loops` event loops (one per core by default) sharing one listening socket.
package final class HTTPServer: @unchecked Sendable {
    /// Decides, once per request, how to answer it (see `HTTPWork`).
    package typealias Handler = @Sendable (HTTPRequest) -> HTTPWork

    package let config: HTTPServerConfig
    package let port: Int
    private let loops: [EventLoop]
    private let listenFD: Int32
    private let closed = Atomic<Bool>(false)

    /// Binds and listens; call `start()` to serve.
    /// - Throws: `.io` naming the address when it cannot bind.
    package init(config: HTTPServerConfig, handler: @escaping Handler) throws {
        self.config = config
        let count = max(1, config.loops > 0 ? config.loops : ProcessInfo.processInfo.activeProcessorCount)
        let workers = WorkerPool(threads: config.workerThreads, name: "vq-http-worker")
        let (fd, port) = try HTTPServer.listenSocket(host: config.host, port: config.port)
        listenFD = fd
        // The connection limit is for the whole server, counted across the loops.
        let open = ConnectionCount()
        var loops: [EventLoop] = []
        for _ in 0..<count {
            var c = config
            c.port = port
            do {
                loops.append(try EventLoop(config: c, listenFD: fd, sharedAccept: count > 1, open: open, handler: handler,
                                           workers: workers))
            } catch {
                close(fd)
                throw error
            }
        }
        self.loops = loops
        self.port = port
    }

    /// Binds and listens on `host:port` (port 0: any free one).
    /// - Returns: the socket and the port bound.
    /// - Throws: `.io` naming the address ("address already in use" when another process has it).
    private static func listenSocket(host: String, port: Int) throws -> (Int32, Int) {
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        let numeric = host == "localhost" ? "127.0.0.1" : host
        guard inet_pton(AF_INET, numeric, &addr.sin_addr) == 1 else {
            throw VQError.invalid("listen address \(host) is not an IPv4 address; expected e.g. 127.0.0.1 or 0.0.0.0")
        }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ioError("socket", "") }
        // SO_REUSEADDR only: restarting while old connections sit in TIME_WAIT is fine, sharing
        // the port with another listener is not.
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0 else {
            let code = errno
            close(fd)
            throw VQError(.io, "cannot listen on \(host):\(port): \(errnoText(code))",
                          hint: code == EADDRINUSE ? "another process uses the port; pick another with --listen" : nil)
        }
        guard listen(fd, 1024) == 0 else { close(fd); throw ioError("listen on", "\(host):\(port)") }
        var actual = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &actual) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        EventLoop.setNonBlocking(fd)
        return (fd, Int(UInt16(bigEndian: actual.sin_port)))
    }

    package func start() { for l in loops { l.start() } }

    /// Stops accepting, finishes requests in flight (up to `grace` seconds), closes every connection.
    package func stop(grace: Double = 10) {
        // Each loop stops watching the socket; it is closed once all have stopped.
        for l in loops { l.stop(grace: grace) }
        if closed.exchange(true, ordering: .relaxed) == false { close(listenFD) }
    }

    /// Open connections (for metrics).
    package var connectionCount: Int { loops.first?.open.value.load(ordering: .relaxed) ?? 0 }
}

/// How to answer one request: on the event loop itself (short and never blocking: reads) or on
/// the worker pool (writes, which may wait on fsync or back pressure; calls to other peers).
package struct HTTPWork: Sendable {
    package var inline: Bool
    package var run: @Sendable () -> HTTPResponse

    package init(inline: Bool, run: @escaping @Sendable () -> HTTPResponse) {
        self.inline = inline
        self.run = run
    }
}

/// Counts shared by a server's loops: open connections, and bytes of request input held.
final class ConnectionCount: Sendable {
    let value = Atomic<Int>(0)
    let buffered = Atomic<Int>(0)
}

/// One event-loop thread and the connections it owns.
final class EventLoop: @unchecked Sendable {
    typealias Handler = HTTPServer.Handler

    /// Owned by the loop thread; workers only carry the reference back with their response.
    private final class Connection: @unchecked Sendable {
        let fd: Int32
        var input: [UInt8] = []
        /// Where the next request starts in `input` (consumed bytes are dropped in batches).
        var inputStart = 0
        /// How far a chunked body's scan got (relative to `inputStart`).
        var parseProgress = HTTPParseProgress()
        var output: [UInt8] = []
        var outputOffset = 0
        /// A file body being streamed after `output` (nothing else is answered until it is sent),
        /// and how much of it has gone into `output`.
        var file: FileBody?
        var fileOffset = 0
        var busy = false
        var closeAfterWrite = false
        var peerClosed = false
        var lastActivity: Double
        var requestStarted: Double?
        /// Input bytes counted in the server-wide total (`ConnectionCount.buffered`).
        var accounted = 0
        /// Refused mid-request: the answer goes out, the rest of the request is read and thrown
        /// away until the client closes (closing with unread input would reset the connection
        /// before the client reads why).
        var discarding = false

        init(fd: Int32, now: Double) {
            self.fd = fd
            lastActivity = now
        }
    }

    private struct Completion: @unchecked Sendable {
        var connection: Connection
        var bytes: [UInt8]
        var file: FileBody?
        var close: Bool
    }

    let config: HTTPServerConfig
    /// The port actually bound (useful when asked for port 0).
    let port: Int
    private let listenFD: Int32
    /// Other loops accept from the same socket: take a few connections per wake-up, not all.
    private let sharedAccept: Bool
    /// Connections open on all loops (the limit is the server's).
    let open: ConnectionCount
    private let wakeRead: Int32
    private let wakeWrite: Int32
    private let handler: Handler
    private let poller: Poller
    private var connections: [Int32: Connection] = [:]
    private let completions = Mutex<[Completion]>([])
    private let stopping = Atomic<Bool>(false)
    private let stopped = DispatchSemaphore(value: 0)
    private let workers: WorkerPool
    private let inFlight = Atomic<Int>(0)
    private var grace: Double = 10
    /// The loop thread's read buffer, reused by every read (not a fresh zeroed 64 KiB each time).
    private let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 << 10, alignment: 64)

    init(config: HTTPServerConfig, listenFD: Int32, sharedAccept: Bool, open: ConnectionCount, handler: @escaping Handler,
         workers: WorkerPool) throws {
        self.config = config
        self.handler = handler
        self.workers = workers
        self.sharedAccept = sharedAccept
        self.open = open
        poller = try Poller()
        port = config.port
        self.listenFD = listenFD
        var pipeFDs: [Int32] = [0, 0]
        guard pipe(&pipeFDs) == 0 else { throw ioError("pipe", "") }
        wakeRead = pipeFDs[0]
        wakeWrite = pipeFDs[1]
        EventLoop.setNonBlocking(wakeRead)
        EventLoop.setNonBlocking(wakeWrite)
        poller.add(listenFD)
        poller.add(wakeRead)
    }

    deinit { chunk.deallocate() }

    static func setNonBlocking(_ fd: Int32) {
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
    }

    private static func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

    /// Starts the event loop thread.
    func start() {
        let t = Thread { [self] in loop() }
        t.name = "vq-http"
        t.start()
    }

    func stop(grace: Double) {
        self.grace = grace
        guard !stopping.exchange(true, ordering: .relaxed) else { return }
        wake()
        _ = stopped.wait(timeout: .now() + grace + 1)
    }

    private func wake() {
        var b: UInt8 = 1
        _ = write(wakeWrite, &b, 1)
    }

    private func loop() {
        defer {
            for (_, c) in connections {
                close(c.fd)
                open.buffered.subtract(c.accounted, ordering: .relaxed)
            }
            open.value.subtract(connections.count, ordering: .relaxed)
            connections.removeAll()
            // A worker still running writes to the wake pipe when done: close it only after the last one.
            for _ in 0..<Int(max(1, grace) * 100) where inFlight.load(ordering: .relaxed) > 0 { usleep(10_000) }
            if inFlight.load(ordering: .relaxed) == 0 {
                close(wakeRead)
                close(wakeWrite)
            }
            stopped.signal()
        }
        var lastSweep = EventLoop.now()
        var lastEvent = 0.0
        var drainDeadline: Double?
        while true {
            if stopping.load(ordering: .relaxed) {
                if drainDeadline == nil {
                    drainDeadline = EventLoop.now() + grace
                    poller.remove(listenFD)
                }
                let busy = inFlight.load(ordering: .relaxed) > 0 || connections.values.contains { $0.outputOffset < $0.output.count }
                if !busy || EventLoop.now() > drainDeadline! { return }
            }
            // Spin briefly before sleeping: waking a halted (virtual) CPU costs tens of microseconds,
            // more than a whole request, so right after traffic the loop polls without blocking.
            var events = poller.wait(timeoutMs: 0)
            if events.isEmpty {
                let spinUntil = lastEvent + EventLoop.spinSeconds
                while events.isEmpty && EventLoop.now() < spinUntil { events = poller.wait(timeoutMs: 0) }
                if events.isEmpty { events = poller.wait(timeoutMs: 250) }
            }
            if !events.isEmpty { lastEvent = EventLoop.now() }
            for ev in events {
                if ev.fd == listenFD {
                    acceptAll()
                } else if ev.fd == wakeRead {
                    var scratch = [UInt8](repeating: 0, count: 256)
                    while read(wakeRead, &scratch, 256) > 0 {}
                    deliverCompletions()
                } else if let c = connections[ev.fd] {
                    if ev.hangup && !ev.readable && !wantsInput(c) {
                        // Hung up while its request runs: hang-ups are reported whatever the mask, so stop
                        // watching it; the response write will fail and drop it.
                        c.peerClosed = true
                        poller.remove(c.fd)
                        if !c.busy { drop(c) }
                        continue
                    }
                    if ev.readable || ev.hangup { readFrom(c) }
                    if connections[ev.fd] === c && ev.writable { flush(c) }
                }
            }
            deliverCompletions()
            let now = EventLoop.now()
            if now - lastSweep >= 0.5 {
                lastSweep = now
                sweep(now)
            }
        }
    }

    private func acceptAll() {
        // With several loops on one socket, each takes a few per wake-up so a burst of
        // connections spreads over the loops (each sees the socket readable while any wait).
        for _ in 0..<(sharedAccept ? 4 : Int.max) {
            let fd = accept(listenFD, nil, nil)
            if fd < 0 { return }
            // Counted before the check, so loops accepting at once cannot both pass the limit.
            if open.value.add(1, ordering: .relaxed).newValue > config.maxConnections || stopping.load(ordering: .relaxed) {
                open.value.subtract(1, ordering: .relaxed)
                let busy = config.errorResponse(503, "server has reached its connection limit").serialized(keepAlive: false)
                _ = busy.withUnsafeBytes { write(fd, $0.baseAddress!, $0.count) }
                close(fd)
                continue
            }
            EventLoop.setNonBlocking(fd)
            var one: Int32 = 1
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            let c = Connection(fd: fd, now: EventLoop.now())
            connections[fd] = c
            poller.add(fd)
        }
    }

    /// Brings the server-wide count of buffered input up to date with `c`'s (its buffer's
    /// capacity: what it holds in memory).
    private func account(_ c: Connection) {
        let now = c.input.capacity
        if now != c.accounted {
            open.buffered.add(now - c.accounted, ordering: .relaxed)
            c.accounted = now
        }
    }

    private func drop(_ c: Connection) {
        guard connections[c.fd] === c else { return }
        c.input = []
        account(c)
        poller.remove(c.fd)
        close(c.fd)
        connections[c.fd] = nil
        open.value.subtract(1, ordering: .relaxed)
    }

    /// How long the loop keeps polling after its last event before it blocks.
    private static var spinSeconds: Double { 0.0002 }

    /// Bytes of unanswered output past which a connection's pipelined requests wait.
    private static var outputHighWater: Int { 1 << 20 }

    /// Whether the loop should read more from `c`: not while a request runs on a worker, not after
    /// the peer closed, not while its output backs up, not past the input cap.
    private func wantsInput(_ c: Connection) -> Bool {
        if c.discarding { return !c.peerClosed }
        return !c.busy && !c.peerClosed && !c.closeAfterWrite && c.file == nil && c.output.count - c.outputOffset < EventLoop.outputHighWater
            && c.input.count - c.inputStart <= config.limits.maxAnyBody + config.limits.maxHeaderBytes + 65_536
    }

    /// Tells the poller what `c` waits for now.
    private func updateInterest(_ c: Connection) {
        guard connections[c.fd] === c else { return }
        poller.modify(c.fd, read: wantsInput(c), write: c.outputOffset < c.output.count)
    }

    private func readFrom(_ c: Connection) {
        while wantsInput(c) {
            let n = read(c.fd, chunk.baseAddress!, chunk.count)
            if n > 0 && c.discarding {
                c.lastActivity = EventLoop.now()
                continue
            }
            if n > 0 {
                if c.input.count == c.inputStart && !c.busy { c.requestStarted = EventLoop.now() }
                c.input.append(contentsOf: UnsafeRawBufferPointer(rebasing: chunk[0..<n]))
                c.lastActivity = EventLoop.now()
                account(c)
                // Over the server's budget for input: a connection in the middle of a request gives
                // way (503, then closed) rather than the server's memory.
                if open.buffered.load(ordering: .relaxed) > config.maxBufferedBytes && c.input.count > c.inputStart && !c.busy {
                    c.input = []
                    c.inputStart = 0
                    account(c)
                    c.discarding = true
                    c.closeAfterWrite = true
                    send(c, config.errorResponse(503, "the server holds too many large request bodies; retry later").serialized(keepAlive: false))
                    updateInterest(c)
                    return
                }
                continue
            }
            if n == 0 {
                c.peerClosed = true
                break
            }
            if errno == EINTR { continue }
            if errno == EAGAIN || errno == EWOULDBLOCK { break }
            drop(c)
            return
        }
        if c.peerClosed && !c.busy && c.input.count == c.inputStart && c.outputOffset >= c.output.count {
            drop(c)
            return
        }
        parseNext(c)
        updateInterest(c)
    }

    /// Answers buffered requests in order: inline ones here, one at a time on a worker otherwise.
    private func parseNext(_ c: Connection) {
        while true {
            guard connections[c.fd] === c else { return }
            guard !c.busy, c.input.count > c.inputStart, !c.closeAfterWrite, c.file == nil,
                  c.output.count - c.outputOffset < EventLoop.outputHighWater else { break }
            var progress = c.parseProgress
            let result = c.input.withUnsafeBytes { raw in
                HTTPParser.parse(UnsafeRawBufferPointer(rebasing: raw[c.inputStart...]), limits: config.limits, progress: &progress)
            }
            c.parseProgress = progress
            switch result {
            case .needMore:
                if c.peerClosed { drop(c); return }
                compact(c)
                return
            case .error(let status, let message):
                c.input = []
                c.inputStart = 0
                account(c)
                c.closeAfterWrite = true
                send(c, config.errorResponse(status, message).serialized(keepAlive: false))
                return
            case .request(let request, let consumed):
                c.inputStart += consumed
                c.requestStarted = c.input.count > c.inputStart ? EventLoop.now() : nil
                let keepAlive = request.keepAlive && !stopping.load(ordering: .relaxed)
                if !keepAlive { c.closeAfterWrite = true }
                let work = handler(request)
                if work.inline {
                    // Short reads run here: no hand-off to a worker and back.
                    let response = work.run()
                    c.lastActivity = EventLoop.now()
                    send(c, response.serialized(keepAlive: keepAlive), file: response.file)
                    continue
                }
                c.busy = true
                let conn = c
                inFlight.add(1, ordering: .relaxed)
                workers.async { [self] in
                    let response = work.run()
                    let bytes = response.serialized(keepAlive: keepAlive)
                    completions.withLock { $0.append(Completion(connection: conn, bytes: bytes, file: response.file, close: !keepAlive)) }
                    inFlight.subtract(1, ordering: .relaxed)
                    wake()
                }
                compact(c)
                return
            }
        }
        compact(c)
    }

    /// Drops consumed input (once per batch of requests, not per request).
    private func compact(_ c: Connection) {
        guard c.inputStart > 0 else { return }
        if c.inputStart >= c.input.count {
            c.input.removeAll(keepingCapacity: c.input.capacity <= 1 << 20)
        } else if c.input.capacity > 1 << 20 && c.input.capacity > 4 * (c.input.count - c.inputStart) {
            c.input = Array(c.input[c.inputStart...])  // a large buffer holding little: give it back
        } else {
            c.input.removeFirst(c.inputStart)
        }
        c.inputStart = 0
        account(c)
    }

    private func deliverCompletions() {
        let ready = completions.withLock { list -> [Completion] in
            let out = list
            list.removeAll()
            return out
        }
        for done in ready {
            let c = done.connection
            guard connections[c.fd] === c else { continue }
            c.busy = false
            c.lastActivity = EventLoop.now()
            if done.close { c.closeAfterWrite = true }
            send(c, done.bytes, file: done.file)
            guard connections[c.fd] === c else { continue }
            if c.input.count > c.inputStart && !c.closeAfterWrite { c.requestStarted = EventLoop.now() }
            parseNext(c)
            updateInterest(c)
        }
    }

    private func send(_ c: Connection, _ bytes: [UInt8], file: FileBody? = nil) {
        if file != nil {
            c.file = file
            c.fileOffset = 0
        }
        if c.outputOffset >= c.output.count {
            c.output = bytes
            c.outputOffset = 0
        } else {
            c.output.append(contentsOf: bytes)
        }
        flush(c)
    }

    private func flush(_ c: Connection) {
        let streaming = c.file != nil
        while c.outputOffset < c.output.count || refill(c) {
            let n = c.output.withUnsafeBytes { write(c.fd, $0.baseAddress! + c.outputOffset, $0.count - c.outputOffset) }
            if n > 0 {
                c.outputOffset += n
                c.lastActivity = EventLoop.now()
                continue
            }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                updateInterest(c)
                return
            }
            drop(c)
            return
        }
        guard connections[c.fd] === c else { return }
        c.output = []
        c.outputOffset = 0
        if c.discarding && !c.peerClosed {
            // Answered: say so with a half-close and wait for the client's (the sweep drops it
            // after the idle timeout otherwise).
            shutdown(c.fd, Int32(SHUT_WR))
            updateInterest(c)
            return
        }
        if c.closeAfterWrite && !c.busy || (c.peerClosed && !c.busy && c.input.count == c.inputStart) {
            drop(c)
            return
        }
        // Requests that arrived while a file went out waited for it: answer them now.
        if streaming && c.file == nil { parseNext(c) }
        updateInterest(c)
    }

    /// Puts the next chunk of a file body into the drained output; false when there is none (or
    /// the file could not be read: the connection is dropped, the client sees a short body).
    private func refill(_ c: Connection) -> Bool {
        guard let file = c.file else { return false }
        let n = min(1 << 20, file.length - c.fileOffset)
        guard n > 0 else {
            c.file = nil
            c.fileOffset = 0
            return false
        }
        var chunk = [UInt8](repeating: 0, count: n)
        let got = chunk.withUnsafeMutableBytes { pread(file.fd, $0.baseAddress!, n, off_t(c.fileOffset)) }
        guard got > 0 else {
            drop(c)
            return false
        }
        if got < n { chunk.removeLast(n - got) }
        c.output = chunk
        c.outputOffset = 0
        c.fileOffset += got
        return true
    }

    /// Closes connections whose request headers are late or that sat idle too long.
    private func sweep(_ now: Double) {
        for c in Array(connections.values) {
            // A client that stopped reading its answers holds buffers: drop it after the idle timeout.
            if (c.outputOffset < c.output.count || c.file != nil) && now - c.lastActivity > config.idleTimeout {
                drop(c)
                continue
            }
            if c.busy || c.file != nil { continue }
            if let started = c.requestStarted, c.input.count > c.inputStart, now - started > config.headerTimeout {
                c.input.removeAll()
                c.inputStart = 0
                account(c)
                c.closeAfterWrite = true
                send(c, config.errorResponse(408, "request not received in time").serialized(keepAlive: false))
            } else if c.input.count == c.inputStart && c.outputOffset >= c.output.count && now - c.lastActivity > config.idleTimeout {
                drop(c)
            }
        }
    }

}
