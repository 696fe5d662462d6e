// Binary heaps of (distance, node) for graph search, on reusable unsafe storage.

/// A node and its distance to the query (lower is better).
package struct Candidate {
    package var distance: Float
    package var node: UInt32

    package init(distance: Float, node: UInt32) {
        self.distance = distance
        self.node = node
    }
}

/// A heap of candidates: `max` = the root is the farthest (result sets), else the nearest (frontier).
///
/// A handle to manually managed storage, reused across searches (`removeAll`
/// keeps it): no allocation, uniqueness or bounds checks per push. Not
/// copyable in spirit: keep one owner and call `deallocate()` once.
package struct CandidateHeap {
    private var storage: UnsafeMutablePointer<Candidate>
    private var capacity: Int
    package private(set) var count = 0
    private let max: Bool

    package init(max: Bool, capacity: Int = 64) {
        self.max = max
        self.capacity = Swift.max(capacity, 16)
        storage = .allocate(capacity: self.capacity)
    }

    package func deallocate() { storage.deallocate() }

    package var isEmpty: Bool { count == 0 }
    package var top: Candidate { storage[0] }

    package mutating func removeAll() { count = 0 }

    @inline(__always)
    private func above(_ a: Candidate, _ b: Candidate) -> Bool {
        max ? a.distance > b.distance : a.distance < b.distance
    }

    private mutating func grow() {
        let bigger = UnsafeMutablePointer<Candidate>.allocate(capacity: capacity * 2)
        bigger.moveInitialize(from: storage, count: count)
        storage.deallocate()
        storage = bigger
        capacity *= 2
    }

    @inline(__always)
    package mutating func push(_ c: Candidate) {
        if count == capacity { grow() }
        var i = count
        count += 1
        while i > 0 {
            let parent = (i - 1) >> 1
            if !above(c, storage[parent]) { break }
            storage[i] = storage[parent]
            i = parent
        }
        storage[i] = c
    }

    /// Replaces the root with `c` and restores the heap (a pop and a push in one sift).
    @inline(__always)
    package mutating func replaceTop(_ c: Candidate) {
        siftDown(c)
    }

    @inline(__always)
    @discardableResult
    package mutating func pop() -> Candidate {
        let first = storage[0]
        count -= 1
        if count > 0 { siftDown(storage[count]) }
        return first
    }

    @inline(__always)
    private mutating func siftDown(_ x: Candidate) {
        var i = 0
        let n = count
        while true {
            let l = 2 * i + 1
            if l >= n { break }
            var c = l
            if l + 1 < n && above(storage[l + 1], storage[l]) { c = l + 1 }
            if !above(storage[c], x) { break }
            storage[i] = storage[c]
            i = c
        }
        storage[i] = x
    }
}
