// Readiness notification: epoll on Linux, poll(2) elsewhere.

import CVQSupport
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One ready descriptor.
struct PollEvent {
    var fd: Int32
    var readable: Bool
    var writable: Bool
    var hangup: Bool
}

/// Level-triggered readiness for many descriptors.
final class Poller {
    #if os(Linux)
    private let epfd: Int32
    private var fds = [Int32](repeating: 0, count: 512)
    private var bits = [UInt32](repeating: 0, count: 512)

    init() throws {
        epfd = cvq_epoll_create()
        guard epfd >= 0 else { throw ioError("epoll_create1", "") }
    }

    deinit { close(epfd) }

    func add(_ fd: Int32, read: Bool = true, write: Bool = false) { _ = cvq_epoll_ctl(epfd, 0, fd, read ? 1 : 0, write ? 1 : 0) }
    func modify(_ fd: Int32, read: Bool, write: Bool) { _ = cvq_epoll_ctl(epfd, 1, fd, read ? 1 : 0, write ? 1 : 0) }
    func remove(_ fd: Int32) { _ = cvq_epoll_ctl(epfd, 2, fd, 0, 0) }

    func wait(timeoutMs: Int32) -> [PollEvent] {
        let n = fds.withUnsafeMutableBufferPointer { f in
            bits.withUnsafeMutableBufferPointer { b in cvq_epoll_wait(epfd, f.baseAddress!, b.baseAddress!, Int32(f.count), timeoutMs) }
        }
        guard n > 0 else { return [] }
        return (0..<Int(n)).map { i in
            PollEvent(fd: fds[i], readable: bits[i] & 1 != 0, writable: bits[i] & 2 != 0, hangup: bits[i] & 4 != 0)
        }
    }
    #else
    private var interest: [Int32: (read: Bool, write: Bool)] = [:]

    init() throws {}

    func add(_ fd: Int32, read: Bool = true, write: Bool = false) { interest[fd] = (read, write) }
    func modify(_ fd: Int32, read: Bool, write: Bool) { interest[fd] = (read, write) }
    func remove(_ fd: Int32) { interest[fd] = nil }

    func wait(timeoutMs: Int32) -> [PollEvent] {
        var fds = interest.map { fd, i in
            pollfd(fd: fd, events: Int16((i.read ? POLLIN : 0) | (i.write ? POLLOUT : 0)), revents: 0)
        }
        let n = fds.withUnsafeMutableBufferPointer { poll($0.baseAddress!, nfds_t($0.count), timeoutMs) }
        guard n > 0 else { return [] }
        return fds.filter { $0.revents != 0 }.map {
            PollEvent(fd: $0.fd, readable: $0.revents & Int16(POLLIN) != 0, writable: $0.revents & Int16(POLLOUT) != 0,
                      hangup: $0.revents & Int16(POLLHUP | POLLERR) != 0)
        }
    }
    #endif
}
