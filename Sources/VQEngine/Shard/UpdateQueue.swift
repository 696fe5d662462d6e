// The bounded queue between a shard's WAL and its applier.
//
// Writers put (op number, operation) here after logging; the applier takes
// them into segments. When the queue holds `capacity` entries, writers wait
// (back pressure) until the applier makes room or their deadline passes.

import Foundation

/// A bounded FIFO of logged operations with blocking, deadline-aware push.
package final class UpdateQueue: @unchecked Sendable {
    package struct Entry: Sendable {
        package var op: UInt64
        package var operation: Operation
    }

    package let capacity: Int
    private let cond = NSCondition()
    private var items: [Entry] = []
    private var head = 0
    private var closed = false

    package init(capacity: Int) {
        precondition(capacity > 0)
        self.capacity = capacity
    }

    /// Entries waiting to be applied.
    package var depth: Int {
        cond.lock()
        defer { cond.unlock() }
        return items.count - head
    }

    /// Waits for room, then runs `make` (which logs the operation and returns its number) and enqueues.
    ///
    /// `make` runs under the queue's lock, so operation numbers enter the queue in order.
    /// - Returns: the entry's op number, or nil if `deadline` passed while the queue stayed full.
    /// - Throws: whatever `make` throws; `.internal` if the queue is closed.
    package func push(deadline: Date?, _ make: () throws -> Entry) throws -> UInt64? {
        cond.lock()
        defer { cond.unlock() }
        while items.count - head >= capacity && !closed {
            if let deadline {
                if !cond.wait(until: deadline) && items.count - head >= capacity { return nil }
            } else {
                cond.wait()
            }
        }
        if closed { throw VQError(.internal, "the shard is closing; the update was not accepted") }
        let entry = try make()
        items.append(entry)
        cond.broadcast()
        return entry.op
    }

    /// Takes up to `max` entries, waiting until `deadline` for at least one.
    /// - Returns: the entries (empty on timeout), or nil once closed and drained.
    package func pop(max: Int, deadline: Date?) -> [Entry]? {
        cond.lock()
        defer { cond.unlock() }
        while items.count == head && !closed {
            if let deadline {
                if !cond.wait(until: deadline) { break }
            } else {
                cond.wait()
            }
        }
        let n = min(max, items.count - head)
        guard n > 0 else { return closed ? nil : [] }
        let out = Array(items[head..<(head + n)])
        head += n
        if head > 1024 && head * 2 > items.count {
            items.removeFirst(head)
            head = 0
        }
        cond.broadcast()
        return out
    }

    /// Wakes everyone; pushes fail from now on; pops drain what is left.
    package func close() {
        cond.lock()
        closed = true
        cond.broadcast()
        cond.unlock()
    }
}
