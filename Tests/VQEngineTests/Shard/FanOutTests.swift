import Foundation
import Synchronization
import Testing
@testable import VQEngine

/// The read race of `read_fan_out_delay_ms` / `read_fan_out_factor`, with replicas played by
/// closures: one that never answers until released (a stalled peer), one that fails, ones that
/// answer at once. Time bounds are loose (seconds against a 50 ms delay), so the tests are
/// deterministic on a loaded machine.
@Suite struct FanOutTests {
    /// Replicas by index: "stall" blocks until `release`, "fail" throws, anything else answers.
    final class Replicas: @unchecked Sendable {
        let kinds: [String]
        let asked = Mutex<[Int]>([])
        let gate = DispatchSemaphore(value: 0)
        init(_ kinds: [String]) { self.kinds = kinds }
        func read(_ i: Int) throws -> String {
            asked.withLock { $0.append(i) }
            switch kinds[i] {
            case "stall": gate.wait(); return "late \(i)"
            case "fail": throw VQError(.io, "replica \(i) is down")
            case "bad": throw VQError.invalid("bad request")
            default: return "answer \(i)"
            }
        }
        func release() { for _ in kinds { gate.signal() } }
    }

    @Test("delay 0, factor 0: one read per shard")
    func single() throws {
        let r = Replicas(["ok", "ok", "ok"])
        let out = try FanOut.race([0, 1, 2], delay: 0, factor: 0) { try r.read($0) }
        #expect(out.result == "answer 0" && out.launched == 1 && out.delayed == 0)
        #expect(r.asked.withLock { $0 } == [0])
    }

    @Test("a stalled replica triggers exactly one extra read after the delay; the first answer wins")
    func stalled() throws {
        let r = Replicas(["stall", "ok", "ok"])
        defer { r.release() }
        let start = Date()
        let out = try FanOut.race([0, 1, 2], delay: 0.05, factor: 0) { try r.read($0) }
        #expect(out.result == "answer 1" && out.winner == 1)
        #expect(out.launched == 2 && out.delayed == 1)
        #expect(Date().timeIntervalSince(start) >= 0.05 && Date().timeIntervalSince(start) < 3)
        #expect(Set(r.asked.withLock { $0 }) == [0, 1])
    }

    @Test("factor F asks 1 + F replicas at once, without waiting for the delay")
    func factor() throws {
        let r = Replicas(["stall", "stall", "ok", "ok"])
        defer { r.release() }
        let start = Date()
        let out = try FanOut.race([0, 1, 2, 3], delay: 10, factor: 2) { try r.read($0) }
        #expect(out.result == "answer 2" && out.launched == 3 && out.delayed == 0)
        #expect(Date().timeIntervalSince(start) < 3)
    }

    @Test("a failing replica sends the read to the next one at once, whatever the delay; all failing is an error")
    func failures() throws {
        let r = Replicas(["fail", "ok"])
        let start = Date()
        let out = try FanOut.race([0, 1], delay: 10, factor: 0) { try r.read($0) }
        #expect(out.result == "answer 1" && out.delayed == 0)
        #expect(Date().timeIntervalSince(start) < 3)
        let raced = Replicas(["fail", "fail", "ok"])
        #expect(try FanOut.race([0, 1, 2], delay: 10, factor: 1) { try raced.read($0) }.result == "answer 2")
        let dead = Replicas(["fail", "fail"])
        #expect(throws: VQError.self) { try FanOut.race([0, 1], delay: 0.01, factor: 0) { try dead.read($0) } }
        // Bad input is the caller's: not retried elsewhere.
        let bad = Replicas(["bad", "ok"])
        #expect(throws: VQError.self) { try FanOut.race([0, 1], delay: 10, factor: 0) { try bad.read($0) } }
    }

    @Test("gather: asks `ask` replicas, replaces a failing one at once, adds one per delay while too few answered, and stops at `need`")
    func gather() throws {
        // Two needed of three: the failing one is replaced by the third at once.
        let r = Replicas(["ok", "fail", "ok"])
        let out = try FanOut.gather([0, 1, 2], need: 2, ask: 2, delay: 10, factor: 0) { try r.read($0) }
        #expect(Set(out.answers.map(\.index)) == [0, 2] && out.failures.map(\.index) == [1])
        #expect(out.launched == 3 && out.delayed == 0)
        // A stalled one: one more after the delay, counted as delayed; the stalled answer is not waited for.
        let s = Replicas(["ok", "stall", "ok", "ok"])
        defer { s.release() }
        let start = Date()
        let late = try FanOut.gather([0, 1, 2, 3], need: 2, ask: 2, delay: 0.05, factor: 0) { try s.read($0) }
        #expect(Set(late.answers.map(\.index)) == [0, 2] && late.launched == 3 && late.delayed == 1)
        #expect(Date().timeIntervalSince(start) >= 0.05 && Date().timeIntervalSince(start) < 3)
        // Too few can answer: what came, and every failure.
        let down = Replicas(["ok", "fail", "fail"])
        let short = try FanOut.gather([0, 1, 2], need: 2, ask: 2, delay: 10, factor: 0) { try down.read($0) }
        #expect(short.answers.count == 1 && short.failures.count == 2)
        // Bad input is the caller's: thrown at once.
        let bad = Replicas(["ok", "bad", "ok"])
        #expect(throws: VQError.self) { try FanOut.gather([0, 1, 2], need: 2, ask: 2, delay: 10, factor: 0) { try bad.read($0) } }
    }

    @Test("late answers of losers are ignored: one result per race")
    func losersIgnored() throws {
        let r = Replicas(["stall", "ok"])
        let out = try FanOut.race([0, 1], delay: 0.02, factor: 0) { try r.read($0) }
        r.release()
        Thread.sleep(forTimeInterval: 0.05)  // the stalled read now completes, into the void
        #expect(out.result == "answer 1")
    }
}
