// Threads for work that blocks, such as peer calls that may wait out a timeout. They are kept
// between uses, so a write's fan-out to its replicas does not start a thread per replica per
// write, and there are always enough: a task never waits for a busy thread. (GCD's global
// pool does not promise that, and a stalled peer would hold one of its few threads.)

import Foundation

package final class BlockingPool: @unchecked Sendable {
    /// The process's pool for peer calls.
    package static let shared = BlockingPool(idleSeconds: 30)

    private let condition = NSCondition()
    private var tasks = Fifo<@Sendable () -> Void>()
    /// Threads waiting for a task (one signalled but not yet awake still counts).
    private var idle = 0
    /// Threads running.
    private var threads = 0
    /// Seconds an idle thread waits for a task before it ends.
    private let idleSeconds: Double

    package init(idleSeconds: Double) { self.idleSeconds = idleSeconds }

    /// Threads running (busy or idle), and of those idle.
    package var threadCount: (all: Int, idle: Int) {
        condition.lock()
        defer { condition.unlock() }
        return (threads, idle)
    }

    /// Runs `task` on a pool thread: an idle one, or a new one when every thread is busy.
    package func run(_ task: @escaping @Sendable () -> Void) {
        condition.lock()
        tasks.append(task)
        let start = tasks.count > idle
        if start { threads += 1 } else { condition.signal() }
        condition.unlock()
        if start {
            let thread = Thread { [self] in work() }
            thread.name = "vq-blocking"
            thread.start()
        }
    }

    private func work() {
        condition.lock()
        while true {
            while tasks.isEmpty {
                idle += 1
                let signalled = condition.wait(until: Date().addingTimeInterval(idleSeconds))
                idle -= 1
                if !signalled && tasks.isEmpty {
                    threads -= 1
                    condition.unlock()
                    return
                }
            }
            let task = tasks.popFirst()!
            condition.unlock()
            task()
            condition.lock()
        }
    }
}
