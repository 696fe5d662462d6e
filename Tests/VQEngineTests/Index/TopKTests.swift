import Testing
@testable import VQEngine

@Suite struct TopKTests {
    @Test("keeps the k best, best first, ties to the smaller key", arguments: [1, 5, 10, 100])
    func matchesSortOracle(k: Int) {
        for seed in 0..<50 as Range<UInt64> {
            var rng = SplitMix64(seed: seed)
            let n = Int.random(in: 0..<300, using: &rng)
            // Few distinct scores so ties are common.
            let items = (0..<n).map { ScoredKey(score: Float(Int.random(in: 0..<20, using: &rng)), key: UInt64($0)) }
            var top = TopK(k: k)
            for item in items { top.push(item) }
            let expected = items.sorted { $0.score > $1.score || ($0.score == $1.score && $0.key < $1.key) }.prefix(k)
            let got = top.sorted()
            #expect(got.map(\.key) == expected.map(\.key))
        }
    }

    @Test("threshold is -inf until full")
    func threshold() {
        var top = TopK(k: 2)
        #expect(top.threshold == -.infinity)
        top.push(ScoredKey(score: 1, key: 1))
        top.push(ScoredKey(score: 3, key: 2))
        #expect(top.threshold == 1)
        top.push(ScoredKey(score: 2, key: 3))
        #expect(top.threshold == 2)
    }
}
