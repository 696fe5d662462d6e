import Foundation
import Synchronization
import Testing
@testable import VQEngine

@Suite struct BlockingPoolTests {
    @Test("every task gets a thread at once, even while all the others block; idle threads are used again, and end once idle long enough")
    func threads() {
        let pool = BlockingPool(idleSeconds: 0.5)
        let started = Atomic<Int>(0)
        let release = Atomic<Bool>(false)
        for _ in 0..<20 {
            pool.run {
                started.add(1, ordering: .relaxed)
                while !release.load(ordering: .relaxed) { Thread.sleep(forTimeInterval: 0.001) }
            }
        }
        #expect(eventually { started.load(ordering: .relaxed) == 20 }, "a task waited for a busy thread")
        #expect(pool.threadCount.all == 20)
        release.store(true, ordering: .relaxed)
        #expect(eventually { pool.threadCount.idle == 20 })
        // One task at a time now: the idle threads take them, none is started.
        let done = Atomic<Int>(0)
        for _ in 0..<50 {
            let before = done.load(ordering: .relaxed)
            pool.run { done.add(1, ordering: .relaxed) }
            #expect(eventually { done.load(ordering: .relaxed) == before + 1 })
        }
        #expect(pool.threadCount.all == 20, "a thread was started while others were idle")
        #expect(eventually { pool.threadCount.all == 0 }, "idle threads did not end")
    }
}
