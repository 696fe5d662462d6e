// Delayed fan-out for reads: ask one replica; if it has not answered within `delay`, ask the
// next one too (and so on, one more per delay); the first answer wins and the others are
// ignored when they come. With `factor` F, 1 + F replicas are asked at once. A failure asks
// the next replica at once, whatever the delay. `gather` is the same for reads that need
// several answers (a read consistency above 1).

import Foundation
import Synchronization

/// A read's deadline: Qdrant's `timeout` on reads, bound for the request as its consistency is
/// (`ReadDeadline.$current`). A peer call is given no longer than what is left of it, and a read
/// that asks several replicas at once (fan-out, consistency) stops waiting for them then (503
/// naming it). A read of this peer's own replica asked alone is not cut short (it runs in
/// memory, waiting on no one).
package struct ReadDeadline: Sendable {
    package let at: Date
    package let seconds: Double

    @TaskLocal package static var current: ReadDeadline?

    package init(seconds: Double) {
        self.seconds = seconds
        at = Date().addingTimeInterval(seconds)
    }

    var remaining: Double { at.timeIntervalSinceNow }

    /// The error of a read still waiting when the deadline passes.
    /// - Parameter failures: what the replicas asked so far answered instead.
    func passed(_ what: String, failures: [String] = []) -> VQError {
        VQError(.busy, "\(what) did not finish within the request's timeout of \(seconds) s"
                + (failures.isEmpty ? "" : " (" + failures.joined(separator: "; ") + ")"))
    }
}

package struct FanOutOutcome<R> {
    package var result: R
    /// Index (into the candidates) of the replica that answered first.
    package var winner: Int
    /// How many replicas were asked.
    package var launched: Int
    /// Extra reads started because the delay passed (not because of failures or the factor).
    package var delayed: Int
}

package enum FanOut {
    /// Races `read` over `candidates` (in order of preference).
    /// - Parameters:
    ///   - delay: seconds before asking the next replica; 0 = only on failure.
    ///   - factor: extra replicas asked at once.
    /// - Throws: the last error when every candidate failed.
    package static func race<C: Sendable, R: Sendable>(_ candidates: [C], delay: Double, factor: Int,
                                                       _ read: @escaping @Sendable (C) throws -> R) throws -> FanOutOutcome<R> {
        precondition(!candidates.isEmpty)
        // Nothing to race: ask in turn, moving on only on failure (each peer call is cut to what
        // is left of the request's deadline; none is tried once it has passed).
        if candidates.count == 1 || (delay <= 0 && factor <= 0) {
            var lastError: any Error = VQError(.io, "no replica answered")
            for (i, c) in candidates.enumerated() {
                if i > 0, let deadline = ReadDeadline.current, deadline.remaining <= 0 {
                    throw deadline.passed("the read", failures: ["\(VQError.wrap(lastError).message)"])
                }
                do {
                    return FanOutOutcome(result: try read(c), winner: i, launched: i + 1, delayed: 0)
                } catch let e as VQError where e.kind == .invalidInput {
                    throw e
                } catch {
                    lastError = error
                }
            }
            throw lastError
        }
        let gathered = try gather(candidates, need: 1, ask: 1, delay: delay, factor: factor, read)
        guard let first = gathered.answers.first else {
            throw gathered.failures.last?.error ?? VQError(.io, "no replica answered")
        }
        return FanOutOutcome(result: first.result, winner: first.index, launched: gathered.launched, delayed: gathered.delayed)
    }

    /// Asks `ask` + `factor` of `candidates` (in order of preference) at once, one more each
    /// `delay` while fewer than `need` have answered, and another at once in place of each that
    /// fails, until `need` have answered or every candidate has answered or failed. Each runs on
    /// a thread of its own (the blocking pool's): a stalled replica holds its read until the
    /// peer timeout, or what is left of the request's deadline (`ReadDeadline`), when that is
    /// sooner; the wait here ends at the deadline too.
    /// - Parameter delay: seconds before asking one more; 0 = only on failure.
    /// - Returns: the answers in the order they came, the failures, how many were asked and how
    ///   many of those because of the delay. Answers that come after it returns are dropped.
    /// - Throws: a failure that is the read's own fault (`.invalidInput`: every replica would
    ///   say so), at once; `.busy` when the request's deadline (`ReadDeadline`) passes with
    ///   fewer than `need` answers.
    package static func gather<C: Sendable, R: Sendable>(_ candidates: [C], need: Int, ask: Int, delay: Double, factor: Int,
                                                         _ read: @escaping @Sendable (C) throws -> R) throws -> FanOutGathered<R> {
        let race = FanOutRace<R>()
        let deadline = ReadDeadline.current
        @Sendable func launch() {
            // Called with the condition held.
            guard race.launched < candidates.count else { return }
            let i = race.launched
            race.launched += 1
            BlockingPool.shared.run {
                // The deadline goes with the read (its peer call is cut to it).
                let outcome = ReadDeadline.$current.withValue(deadline) { Result { try read(candidates[i]) } }
                race.cond.lock()
                defer { race.cond.unlock() }
                switch outcome {
                case .success(let r):
                    race.answers.append((i, r))
                case .failure(let e):
                    race.failures.append((i, e))
                    if let v = e as? VQError, v.kind == .invalidInput { race.badInput = e }
                    // Another in its place, at once (none once the deadline has passed: no one waits for it).
                    if race.answers.count < need && race.badInput == nil && (deadline?.remaining ?? 1) > 0 { launch() }
                }
                race.cond.broadcast()
            }
        }
        race.cond.lock()
        defer { race.cond.unlock() }
        for _ in 0..<min(candidates.count, max(1, ask) + max(0, factor)) { launch() }
        // (An hour stands for never: Foundation's wait cannot take distantFuture here.)
        var nextDelay = Date().addingTimeInterval(delay > 0 ? delay : 3600)
        while race.answers.count < need && race.badInput == nil
                && !(race.answers.count + race.failures.count == race.launched && race.launched == candidates.count) {
            // Failures launch the next replica themselves; here only the delay does.
            if !race.cond.wait(until: min(nextDelay, deadline?.at ?? nextDelay)) {
                // The answers that come later are dropped; their calls end by the deadline too.
                if let deadline, deadline.remaining <= 0 { break }
                if delay > 0 && race.launched < candidates.count {
                    race.delayed += 1
                    launch()
                    nextDelay = Date().addingTimeInterval(delay)
                } else {
                    nextDelay = Date().addingTimeInterval(3600)  // all asked: wait for answers or the last failure
                }
            }
        }
        if let badInput = race.badInput { throw badInput }
        // Too few answers by the deadline: that is the reason, whatever the replicas said.
        if let deadline, deadline.remaining <= 0, race.answers.count < need {
            throw deadline.passed("the read", failures: race.failures.map { VQError.wrap($0.error).message })
        }
        return FanOutGathered(answers: race.answers, failures: race.failures, launched: race.launched, delayed: race.delayed)
    }
}

/// What `FanOut.gather` collected.
package struct FanOutGathered<R> {
    /// (index into the candidates, answer), in the order they came.
    package var answers: [(index: Int, result: R)]
    /// (index into the candidates, error), in the order they came.
    package var failures: [(index: Int, error: any Error)]
    /// How many candidates were asked.
    package var launched: Int
    /// How many of those because the delay passed (not because of failures or the factor).
    package var delayed: Int
}

/// The shared state of one gather (guarded by `cond`).
private final class FanOutRace<R>: @unchecked Sendable {
    let cond = NSCondition()
    var launched = 0
    var delayed = 0
    var answers: [(index: Int, result: R)] = []
    var failures: [(index: Int, error: any Error)] = []
    var badInput: (any Error)?
}
