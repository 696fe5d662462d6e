// A bounded heap that keeps the k best (highest-scoring) candidates.

/// One candidate: an internal score (higher is better) and a key (row or point slot).
package struct ScoredKey: Sendable {
    package var score: Float
    package var key: UInt64

    package init(score: Float, key: UInt64) {
        self.score = score
        self.key = key
    }

    /// Worse-than ordering: lower score, or equal score and larger key (so ties keep small keys).
    @inline(__always)
    static func worse(_ a: ScoredKey, _ b: ScoredKey) -> Bool {
        a.score < b.score || (a.score == b.score && a.key > b.key)
    }
}

/// The `k` best candidates seen so far, as a min-heap on "worse".
///
/// - Complexity: `push` is O(log k); `sorted()` O(k log k).
package struct TopK {
    package let k: Int
    private var heap: [ScoredKey] = []

    package init(k: Int) {
        self.k = k
        heap.reserveCapacity(min(k, 1024))
    }

    package var count: Int { heap.count }
    package var isFull: Bool { heap.count >= k }

    /// The score a new candidate must beat once the heap is full.
    @inline(__always)
    package var threshold: Float { heap.count < k ? -.infinity : heap[0].score }

    @inline(__always)
    package mutating func push(_ c: ScoredKey) {
        guard k > 0 else { return }
        if heap.count < k {
            heap.append(c)
            siftUp(heap.count - 1)
        } else if ScoredKey.worse(heap[0], c) {
            heap[0] = c
            siftDown(0)
        }
    }

    private mutating func siftUp(_ start: Int) {
        var i = start
        while i > 0 {
            let parent = (i - 1) / 2
            if ScoredKey.worse(heap[i], heap[parent]) { heap.swapAt(i, parent); i = parent } else { break }
        }
    }

    private mutating func siftDown(_ start: Int) {
        var i = start
        let n = heap.count
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < n && ScoredKey.worse(heap[l], heap[m]) { m = l }
            if r < n && ScoredKey.worse(heap[r], heap[m]) { m = r }
            if m == i { return }
            heap.swapAt(i, m)
            i = m
        }
    }

    /// Best first.
    package func sorted() -> [ScoredKey] {
        heap.sorted { ScoredKey.worse($1, $0) }
    }
}
