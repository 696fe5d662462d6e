// The bounded queue between a shard's WAL and its applier.
//
// Writers put (op number, operation) here after logging; the applier takes
// them into segments. The queue is bounded twice: by `capacity` operations and
// by `byteCapacity` bytes of operations (a few large batches must not hold
// gigabytes). When either is reached, writers wait (back pressure) until the
// applier makes room or their deadline passes; an operation larger than the
// whole byte budget is still taken when the queue is empty. Taken entries are
// released at once, so memory follows what is queued, not what went through.

import Foundation

/// A bounded FIFO of logged operations with blocking, deadline-aware push.
package final class UpdateQueue: @unchecked Sendable {
    package struct Entry: Sendable {
        package var op: UInt64
        package var operation: Operation
    }

    package let capacity: Int
    package let byteCapacity: Int
    private let cond = NSCondition()
    private var items = Fifo<(entry: Entry, bytes: Int)>()
    private var bytes = 0
    private var closed = false

    package init(capacity: Int, byteCapacity: Int = 1 << 30) {
        precondition(capacity > 0 && byteCapacity > 0)
        self.capacity = capacity
        self.byteCapacity = byteCapacity
    }

    /// Bytes of queued operations.
    package var queuedBytes: Int { cond.withLock { bytes } }


    /// Entries waiting to be applied.
    package var depth: Int {
        cond.lock()
        defer { cond.unlock() }
        return items.count
    }

    /// Waits for room, then runs `make` (which logs the operation and returns its number) and enqueues.
    ///
    /// `make` runs under the queue's lock, so operation numbers enter the queue in order.
    /// - Returns: the entry's op number, or nil if `deadline` passed while the queue stayed full.
    /// - Throws: whatever `make` throws; `.internal` if the queue is closed.
    /// - Parameter size: the operation's size in bytes (its memory while queued).
    package func push(deadline: Date?, size: Int = 0, _ make: () throws -> Entry) throws -> UInt64? {
        cond.lock()
        defer { cond.unlock() }
        // Room for this one: under both limits, or an empty queue (a batch larger than the whole
        // budget still goes through, alone).
        func room() -> Bool { items.isEmpty || (items.count < capacity && bytes + size <= byteCapacity) }
        while !room() && !closed {
            if let deadline {
                if !cond.wait(until: deadline) && !room() { return nil }
            } else {
                cond.wait()
            }
        }
        if closed { throw VQError(.internal, "the shard is closing; the update was not accepted") }
        let entry = try make()
        items.append((entry, size))
        bytes += size
        cond.broadcast()
        return entry.op
    }

    /// Takes up to `max` entries, waiting until `deadline` for at least one.
    /// - Returns: the entries (empty on timeout), or nil once closed and drained.
    package func pop(max: Int, deadline: Date?) -> [Entry]? {
        cond.lock()
        defer { cond.unlock() }
        while items.isEmpty && !closed {
            if let deadline {
                if !cond.wait(until: deadline) { break }
            } else {
                cond.wait()
            }
        }
        let n = min(max, items.count)
        guard n > 0 else { return closed ? nil : [] }
        var out: [Entry] = []
        out.reserveCapacity(n)
        for _ in 0..<n {
            let taken = items.popFirst()!
            out.append(taken.entry)
            bytes -= taken.bytes
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
