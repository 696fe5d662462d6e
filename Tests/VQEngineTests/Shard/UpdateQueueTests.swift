import Foundation
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
}
