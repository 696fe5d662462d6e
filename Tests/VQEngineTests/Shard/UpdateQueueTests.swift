import Foundation
import Synchronization
import Testing
@testable import VQEngine

@Suite struct UpdateQueueTests {
    func entry(_ op: UInt64) -> UpdateQueue.Entry { UpdateQueue.Entry(op: op, operation: .delete([])) }

    @Test("a full queue blocks writers until the applier makes room (back pressure)")
    func backPressure() throws {
        let queue = UpdateQueue(capacity: 2)
        _ = try queue.push(deadline: nil) { entry(1) }
        _ = try queue.push(deadline: nil) { entry(2) }
        let pushed = DispatchSemaphore(value: 0)
        let started = DispatchSemaphore(value: 0)
        Thread {
            started.signal()
            _ = try? queue.push(deadline: nil) { entry(3) }
            pushed.signal()
        }.start()
        started.wait()
        // The writer stays blocked while the queue is full.
        #expect(pushed.wait(timeout: .now() + .milliseconds(200)) == .timedOut)
        #expect(queue.depth == 2)
        let popped = queue.pop(max: 1, deadline: nil)
        #expect(popped?.map(\.op) == [1])
        #expect(pushed.wait(timeout: .now() + .seconds(10)) == .success)
        #expect(queue.pop(max: 10, deadline: nil)?.map(\.op) == [2, 3])
    }

    @Test("a writer whose deadline passes gets nil and nothing is enqueued")
    func deadline() throws {
        let queue = UpdateQueue(capacity: 1)
        _ = try queue.push(deadline: nil) { entry(1) }
        var made = false
        let result = try queue.push(deadline: Date().addingTimeInterval(0.05)) {
            made = true
            return entry(2)
        }
        #expect(result == nil)
        #expect(!made)
        #expect(queue.depth == 1)
    }

    @Test("close wakes the applier; it drains what is left and then gets nil")
    func close() throws {
        let queue = UpdateQueue(capacity: 10)
        _ = try queue.push(deadline: nil) { entry(1) }
        queue.close()
        #expect(queue.pop(max: 10, deadline: nil)?.map(\.op) == [1])
        #expect(queue.pop(max: 10, deadline: nil) == nil)
        #expect(throws: VQError.self) { _ = try queue.push(deadline: nil) { entry(2) } }
    }

    @Test("the byte budget bounds the queue too: a writer over it waits; one batch larger than the budget still goes alone")
    func byteBudget() throws {
        let queue = UpdateQueue(capacity: 100, byteCapacity: 1000)
        _ = try queue.push(deadline: nil, size: 600) { entry(1) }
        #expect(try queue.push(deadline: Date().addingTimeInterval(0.05), size: 600) { entry(2) } == nil, "over the byte budget")
        _ = try queue.push(deadline: nil, size: 400) { entry(3) }
        #expect(queue.queuedBytes == 1000 && queue.depth == 2)
        #expect(queue.pop(max: 10, deadline: nil)?.map(\.op) == [1, 3])
        #expect(queue.queuedBytes == 0)
        // Empty: a batch larger than the whole budget is taken (alone).
        _ = try queue.push(deadline: nil, size: 5000) { entry(4) }
        #expect(try queue.push(deadline: Date().addingTimeInterval(0.05), size: 1) { entry(5) } == nil)
        #expect(queue.pop(max: 10, deadline: nil)?.map(\.op) == [4])
    }
}

@Suite struct FifoTests {
    final class Tracked {
        static let alive = Mutex(0)
        init() { Tracked.alive.withLock { $0 += 1 } }
        deinit { Tracked.alive.withLock { $0 -= 1 } }
    }

    @Test("a taken element is released at once, and order is first in, first out")
    func releases() {
        var fifo = Fifo<Tracked>()
        var kept: [ObjectIdentifier] = []
        for _ in 0..<300 {
            let t = Tracked()
            kept.append(ObjectIdentifier(t))
            fifo.append(t)
        }
        let before = Tracked.alive.withLock { $0 }
        for i in 0..<250 {
            let t = fifo.popFirst()!
            #expect(ObjectIdentifier(t) == kept[i])
        }
        #expect(Tracked.alive.withLock { $0 } == before - 250, "taken elements must not stay in the queue")
        #expect(fifo.count == 50)
        while fifo.popFirst() != nil {}
        #expect(fifo.isEmpty && Tracked.alive.withLock { $0 } == before - 300)
    }
}
