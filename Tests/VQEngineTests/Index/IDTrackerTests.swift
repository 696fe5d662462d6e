import Testing
@testable import VQEngine

@Suite struct IDTrackerTests {
    @Test("behaves like a Dictionary under random inserts, updates and removals", arguments: [1, 2, 3] as [UInt64])
    func matchesDictionary(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        var tracker = IDTracker()
        var oracle: [PointID: UInt64] = [:]
        for step in 0..<20_000 {
            // A small id space so collisions, updates and removals are frequent.
            let id: PointID = Bool.random(using: &rng) ? .number(UInt64.random(in: 0..<500, using: &rng))
                : .uuid(UInt64.random(in: 0..<3, using: &rng), UInt64.random(in: 0..<200, using: &rng))
            switch Int.random(in: 0..<3, using: &rng) {
            case 0, 1:
                tracker[id] = UInt64(step)
                oracle[id] = UInt64(step)
            default:
                #expect(tracker.removeValue(forKey: id) == oracle.removeValue(forKey: id))
            }
            if step % 997 == 0 {
                #expect(tracker.count == oracle.count)
                for (k, v) in oracle { #expect(tracker[k] == v) }
            }
        }
        #expect(tracker.count == oracle.count)
        for (k, v) in oracle { #expect(tracker[k] == v) }
        #expect(tracker[.number(10_000)] == nil)
    }
}
