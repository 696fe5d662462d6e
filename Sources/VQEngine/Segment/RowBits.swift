/// A set of a segment's rows as a bitmap: what a filter selects, what a search may return.
///
/// Bit i of word i / 64 is row i. Rows at or past `count` are never set.
package struct RowBits: Sendable, Equatable {
    package private(set) var words: [UInt64]
    package let count: Int

    /// No rows (or every row, with `all`).
    package init(count: Int, all: Bool = false) {
        self.count = count
        words = [UInt64](repeating: all ? ~0 : 0, count: (count + 63) / 64)
        if all { clearTail() }
    }

    private mutating func clearTail() {
        if count % 64 != 0, !words.isEmpty { words[words.count - 1] &= (1 << UInt64(count % 64)) - 1 }
    }

    @inline(__always) package func contains(_ row: Int) -> Bool {
        row < count && words[row >> 6] & (1 << UInt64(row & 63)) != 0
    }

    @inline(__always) package mutating func insert(_ row: Int) {
        words[row >> 6] |= 1 << UInt64(row & 63)
    }

    package mutating func formIntersection(_ other: RowBits) {
        precondition(other.count == count)
        for i in words.indices { words[i] &= other.words[i] }
    }

    package mutating func formUnion(_ other: RowBits) {
        precondition(other.count == count)
        for i in words.indices { words[i] |= other.words[i] }
    }

    package mutating func subtract(_ other: RowBits) {
        precondition(other.count == count)
        for i in words.indices { words[i] &= ~other.words[i] }
    }

    /// Removes the rows whose bit is set in `bits` (a segment's deletion bitmap, `count` rows).
    package mutating func subtract(bits: UnsafePointer<UInt64>) {
        for i in words.indices { words[i] &= ~bits[i] }
    }

    /// How many rows are in the set.
    /// - Complexity: O(count / 64).
    package var cardinality: Int { words.reduce(0) { $0 + $1.nonzeroBitCount } }

    package var isEmpty: Bool { words.allSatisfy { $0 == 0 } }

    /// Calls `body` with each row in the set, in ascending order.
    @inline(__always) package func forEach(_ body: (Int) throws -> Void) rethrows {
        for (i, w) in words.enumerated() {
            var word = w
            while word != 0 {
                try body(i << 6 | word.trailingZeroBitCount)
                word &= word - 1
            }
        }
    }

    /// The complement within `count` rows.
    package var inverted: RowBits {
        var out = self
        for i in out.words.indices { out.words[i] = ~out.words[i] }
        out.clearTail()
        return out
    }
}
