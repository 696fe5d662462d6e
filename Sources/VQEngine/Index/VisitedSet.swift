// Visited marks for graph searches: an epoch-tagged array, reset in O(1).

import CVQSupport

/// Marks which nodes a search has seen. `reset()` bumps the epoch instead of clearing;
/// the array is cleared only when the 16-bit epoch wraps.
package struct VisitedSet {
    private var tags: UnsafeMutablePointer<UInt16>
    package private(set) var capacity: Int
    private var epoch: UInt16 = 1

    package init(capacity: Int) {
        self.capacity = max(capacity, 1)
        tags = .allocate(capacity: self.capacity)
        tags.initialize(repeating: 0, count: self.capacity)
    }

    /// Frees the storage (the struct is a handle; call once).
    package func deallocate() { tags.deallocate() }

    /// Starts a new search over `count` nodes.
    package mutating func reset(count: Int) {
        if count > capacity {
            tags.deallocate()
            capacity = count
            tags = .allocate(capacity: count)
            tags.initialize(repeating: 0, count: count)
            epoch = 1
            return
        }
        epoch &+= 1
        if epoch == 0 {
            tags.update(repeating: 0, count: capacity)
            epoch = 1
        }
    }

    /// Marks `i`; returns true if it was not marked yet.
    @inline(__always)
    package mutating func insert(_ i: UInt32) -> Bool {
        let p = tags + Int(i)
        if p.pointee == epoch { return false }
        p.pointee = epoch
        return true
    }

    @inline(__always)
    package func contains(_ i: UInt32) -> Bool { tags[Int(i)] == epoch }

    /// Hints the CPU to fetch `i`'s mark.
    @inline(__always)
    package func prefetch(_ i: UInt32) { cvq_prefetch(tags + Int(i)) }
}
