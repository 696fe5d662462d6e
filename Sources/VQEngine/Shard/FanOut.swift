// Delayed fan-out for reads: ask one replica; if it has not answered within `delay`, ask the
// next one too (and so on, one more per delay); the first answer wins and the others are
// ignored when they come. With `factor` F, 1 + F replicas are asked at once. A failure asks
// the next replica at once, whatever the delay.

import Foundation
import Synchronization

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
        // Nothing to race: ask in turn, moving on only on failure.
        if candidates.count == 1 || (delay <= 0 && factor <= 0) {
            var lastError: any Error = VQError(.io, "no replica answered")
            for (i, c) in candidates.enumerated() {
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
        let race = FanOutRace<R>()
        @Sendable func launch() {
            // Called with the condition held.
            guard race.launched < candidates.count else { return }
            let i = race.launched
            race.launched += 1
            // A thread of its own (the blocking pool's: never a wait for a busy one): a stalled
            // replica blocks its read until the peer timeout.
            BlockingPool.shared.run {
                let outcome = Result { try read(candidates[i]) }
                race.cond.lock()
                defer { race.cond.unlock() }
                switch outcome {
                case .success(let r):
                    if race.winner == nil { race.winner = (i, r) }
                case .failure(let e):
                    race.failed += 1
                    race.lastError = e
                    if let v = e as? VQError, v.kind == .invalidInput { race.badInput = e }
                    if race.winner == nil && race.badInput == nil { launch() }  // the next one, at once
                }
                race.cond.broadcast()
            }
        }
        race.cond.lock()
        defer { race.cond.unlock() }
        for _ in 0..<min(candidates.count, 1 + max(0, factor)) { launch() }
        var nextDelay = delay > 0 ? Date().addingTimeInterval(delay) : Date().addingTimeInterval(3600)
        while race.winner == nil && race.badInput == nil && !(race.failed == race.launched && race.launched == candidates.count) {
            // Failures launch the next replica themselves; here only the delay does.
            if !race.cond.wait(until: nextDelay) {
                if race.winner == nil && race.launched < candidates.count {
                    race.delayed += 1
                    launch()
                    nextDelay = Date().addingTimeInterval(delay)
                } else {
                    nextDelay = Date().addingTimeInterval(3600)  // all asked: wait for an answer or the last failure
                }
            }
        }
        if let badInput = race.badInput { throw badInput }
        guard let (i, r) = race.winner else { throw race.lastError ?? VQError(.io, "no replica answered") }
        return FanOutOutcome(result: r, winner: i, launched: race.launched, delayed: race.delayed)
    }
}

/// The shared state of one race (guarded by `cond`).
private final class FanOutRace<R>: @unchecked Sendable {
    let cond = NSCondition()
    var launched = 0
    var delayed = 0
    var failed = 0
    var winner: (Int, R)?
    var lastError: (any Error)?
    var badInput: (any Error)?
}
