// The threads that run requests which may block (writes waiting on fsync or a full queue, and in
// a cluster, calls to other peers). A fixed set of plain threads rather than a dispatch queue:
// libdispatch on Linux sizes its pool to the cores and does not add threads while ours block on
// the network, so two peers forwarding to each other could each hold every thread waiting for
// the other's.

import Foundation

final class WorkerPool: @unchecked Sendable {
    private let cond = NSCondition()
    private var jobs = Fifo<@Sendable () -> Void>()

    init(threads: Int, name: String) {
        for i in 0..<max(1, threads) {
            let t = Thread { [self] in run() }
            t.name = "\(name)-\(i)"
            t.start()
        }
    }

    func async(_ job: @escaping @Sendable () -> Void) {
        cond.lock()
        jobs.append(job)
        cond.signal()
        cond.unlock()
    }

    private func run() {
        while true {
            cond.lock()
            while jobs.isEmpty { cond.wait() }
            let job = jobs.popFirst()!
            cond.unlock()
            job()
        }
    }
}
