// The map from point id to (segment slot, row): an open-addressing hash table.
//
// Swift's Dictionary hashes with seeded SipHash; for 200,000 ids that was most
// of a cold `vq search` (the map is rebuilt on open). This table hashes with a
// fixed 64-bit mixer, probes linearly at load <= 1/2, and deletes by backward
// shift (no tombstones), in three flat arrays.

/// Point id -> packed (slot, row), with O(1) expected lookups, inserts and removals.
package struct IDTracker {
    /// 0 = empty, 1 = numeric id in `a`, 2 = UUID in `a` (high) and `b` (low).
    private var tags: [UInt8]
    private var a: [UInt64]
    private var b: [UInt64]
    private var values: [UInt64]
    package private(set) var count = 0
    private var mask: Int

    package init(capacity: Int = 0) {
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        tags = [UInt8](repeating: 0, count: size)
        a = [UInt64](repeating: 0, count: size)
        b = [UInt64](repeating: 0, count: size)
        values = [UInt64](repeating: 0, count: size)
        mask = size - 1
    }

    @inline(__always)
    private static func split(_ id: PointID) -> (UInt8, UInt64, UInt64) {
        switch id {
        case .number(let n): return (1, n, 0)
        case .uuid(let hi, let lo): return (2, hi, lo)
        }
    }

    @inline(__always)
    private func home(_ tag: UInt8, _ x: UInt64, _ y: UInt64) -> Int {
        Int(truncatingIfNeeded: mix64(x ^ mix64(y &+ UInt64(tag)))) & mask
    }

    /// The slot holding `id`, or the empty slot where it would go.
    @inline(__always)
    private func find(_ tag: UInt8, _ x: UInt64, _ y: UInt64) -> (index: Int, found: Bool) {
        var i = home(tag, x, y)
        while true {
            let t = tags[i]
            if t == 0 { return (i, false) }
            if t == tag && a[i] == x && b[i] == y { return (i, true) }
            i = (i + 1) & mask
        }
    }

    package subscript(id: PointID) -> UInt64? {
        get {
            let (t, x, y) = IDTracker.split(id)
            let (i, found) = find(t, x, y)
            return found ? values[i] : nil
        }
        set {
            guard let newValue else {
                removeValue(forKey: id)
                return
            }
            let (t, x, y) = IDTracker.split(id)
            var (i, found) = find(t, x, y)
            if !found {
                if (count + 1) * 2 > tags.count {
                    grow()
                    i = find(t, x, y).index
                }
                tags[i] = t
                a[i] = x
                b[i] = y
                count += 1
            }
            values[i] = newValue
        }
    }

    /// Removes `id`; returns its value if it was there.
    @discardableResult
    package mutating func removeValue(forKey id: PointID) -> UInt64? {
        let (t, x, y) = IDTracker.split(id)
        var (i, found) = find(t, x, y)
        guard found else { return nil }
        let old = values[i]
        count -= 1
        // Backward-shift deletion: pull later entries of the probe run into the hole.
        var j = i
        while true {
            tags[i] = 0
            while true {
                j = (j + 1) & mask
                if tags[j] == 0 { return old }
                let k = home(tags[j], a[j], b[j])
                // Move j into i unless its home lies cyclically in (i, j].
                let inRange = i <= j ? (i < k && k <= j) : (i < k || k <= j)
                if !inRange { break }
            }
            tags[i] = tags[j]
            a[i] = a[j]
            b[i] = b[j]
            values[i] = values[j]
            i = j
        }
    }

    private mutating func grow() {
        let old = (tags, a, b, values)
        let size = tags.count * 2
        tags = [UInt8](repeating: 0, count: size)
        a = [UInt64](repeating: 0, count: size)
        b = [UInt64](repeating: 0, count: size)
        values = [UInt64](repeating: 0, count: size)
        mask = size - 1
        for i in 0..<old.0.count where old.0[i] != 0 {
            let j = find(old.0[i], old.1[i], old.2[i]).index
            tags[j] = old.0[i]
            a[j] = old.1[i]
            b[j] = old.2[i]
            values[j] = old.3[i]
        }
    }
}
