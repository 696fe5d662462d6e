// Sparse vectors: (index, value) pairs, scored by dot product over the indices two vectors
// share. Search is exact, as Qdrant's: a point that shares no index with the query is
// not a hit.
//
// Per segment and sparse vector k (see VectorLayout.sparse):
//
//   sparse.K.idx   row i: offset and length (in entries) of its vector in sparse.K.dat; length 0:
//                  the row has none
//   sparse.K.dat   entries (index u32, value f32), each row's sorted by index; append-only
//                  (a rewrite that fits reuses the row's slot)
//
// Sealed segments keep an inverted index in memory (index -> rows and values, rows ascending),
// built from the files when the segment is sealed or opened; a query walks the posting lists
// of its indices into a score per row. The appendable segment is scanned.

import Foundation

/// A sparse vector: indices ascending and distinct, values finite.
package struct SparseVector: Sendable, Equatable {
    package private(set) var indices: [UInt32]
    package private(set) var values: [Float]

    /// Sorts the pairs by index.
    /// - Throws: `.invalidInput` naming the problem: counts that differ, a repeated index, a value
    ///   that is not finite.
    package init(indices: [UInt32], values: [Float]) throws {
        guard indices.count == values.count else {
            throw VQError.invalid("a sparse vector has \(indices.count) indices and \(values.count) values; expected as many of each")
        }
        if let bad = values.firstIndex(where: { !$0.isFinite }) {
            throw VQError.invalid("sparse value \(bad) is \(values[bad]); expected a finite number")
        }
        let order = indices.indices.sorted { indices[$0] < indices[$1] }
        self.indices = order.map { indices[$0] }
        self.values = order.map { values[$0] }
        for i in self.indices.indices.dropFirst() where self.indices[i] == self.indices[i - 1] {
            throw VQError.invalid("sparse index \(self.indices[i]) appears twice; expected distinct indices")
        }
    }

    /// Pairs already sorted and checked (read back from storage or the wire after checks).
    init(sorted entries: UnsafeBufferPointer<SparseEntry>) {
        indices = entries.map(\.index)
        values = entries.map(\.value)
    }

    package var count: Int { indices.count }

    /// The most entries a sparse vector may have (a query's IDF statistics travel between peers).
    package static let maxEntries = 65_536

    /// `{"indices": [...], "values": [...]}`.
    package var json: JSON {
        .object([("indices", .array(indices.map { .int(Int64($0)) })), ("values", .array(values.map { .double(Double($0)) }))])
    }

    /// Parses Qdrant's `{"indices": [...], "values": [...]}`.
    /// - Throws: `.invalidInput` naming `what`.
    package init(json: JSON, _ what: String) throws {
        guard case .object(let members) = json else { throw VQError.invalid("\(what) is \(json.typeName); expected {\"indices\": [...], \"values\": [...]}") }
        if let unknown = members.first(where: { $0.0 != "indices" && $0.0 != "values" }) {
            throw VQError.invalid("\(what) has \"\(unknown.0)\"; expected only \"indices\" and \"values\"")
        }
        guard let i = json["indices"]?.arrayValue, let v = json["values"]?.arrayValue else {
            throw VQError.invalid("\(what) needs \"indices\" and \"values\" arrays")
        }
        guard i.count <= SparseVector.maxEntries else {
            throw VQError.invalid("\(what) has \(i.count) entries; expected at most \(SparseVector.maxEntries)")
        }
        let indices = try i.enumerated().map { n, e -> UInt32 in
            guard let x = e.intValue, x >= 0, x <= Int64(UInt32.max) else {
                throw VQError.invalid("\(what).indices[\(n)] is \(e.compactText); expected an integer from 0 to 4294967295")
            }
            return UInt32(x)
        }
        let values = try v.enumerated().map { n, e -> Float in
            guard let x = e.doubleValue else { throw VQError.invalid("\(what).values[\(n)] is \(e.typeName); expected a number") }
            return Float(x)
        }
        do { try self.init(indices: indices, values: values) } catch let e as VQError { throw VQError.invalid("\(what): \(e.message)") }
    }

    /// The dot product with `entries` (sorted), and whether any index is shared.
    func dot(_ entries: UnsafeBufferPointer<SparseEntry>) -> (score: Float, overlap: Bool) {
        var i = 0, j = 0, sum: Float = 0, overlap = false
        while i < indices.count && j < entries.count {
            let a = indices[i], b = entries[j].index
            if a == b {
                sum += values[i] * entries[j].value
                overlap = true
                i += 1
                j += 1
            } else if a < b {
                i += 1
            } else {
                j += 1
            }
        }
        return (sum, overlap)
    }

    /// The dot product with `other`, and whether any index is shared.
    package func dot(_ other: SparseVector) -> (score: Float, overlap: Bool) {
        let entries = zip(other.indices, other.values).map { SparseEntry(index: $0, value: $1) }
        return entries.withUnsafeBufferPointer { dot($0) }
    }

    /// This vector with each value scaled by `weights[i]`.
    package func scaled(_ weights: [Float]) -> SparseVector {
        var v = self
        for i in v.values.indices { v.values[i] *= weights[i] }
        return v
    }

    /// Qdrant's IDF of an index held by `df` of `n` points: ln((n - df + 0.5) / (df + 0.5) + 1).
    package static func idf(n: Int, df: Int) -> Float {
        Float(log((Double(n - df) + 0.5) / (Double(df) + 0.5) + 1))
    }
}

/// One stored pair.
package struct SparseEntry: BitwiseCopyable, Sendable {
    var index: UInt32
    var value: Float
}

/// Index -> rows holding it and their values (rows ascending); a sealed segment's.
final class SparseInvertedIndex: @unchecked Sendable {
    struct Posting {
        var rows: [UInt32] = []
        var values: [Float] = []
    }

    private(set) var postings: [UInt32: Posting] = [:]
    /// Rows that have the vector.
    private(set) var present = 0

    init(_ store: SparseStore, rows: Int) {
        for row in 0..<rows {
            if !store.lacks(row) { present += 1 }
            for e in store.entries(row) {
                postings[e.index, default: Posting()].rows.append(UInt32(row))
                postings[e.index]!.values.append(e.value)
            }
        }
    }
}

/// One sparse vector's rows in a segment.
package final class SparseStore: @unchecked Sendable {
    package let spec: SparseSpec
    /// sparse.K.idx and sparse.K.dat.
    let values: RowValues<SparseEntry>
    /// Sealed segments: the postings (nil while appendable).
    private(set) var inverted: SparseInvertedIndex?

    init(spec: SparseSpec, values: RowValues<SparseEntry>) {
        self.spec = spec
        self.values = values
    }

    /// Entries held (the manifest's sparse_entries).
    var entryCount: Int { values.data.count }

    /// The most entries an appendable segment's sparse.K.dat may hold (virtual reservation only).
    static let appendableCapacity = 1 << 31

    /// File names of sparse vector `k`.
    static func files(_ k: Int) -> (refs: String, data: String) { ("sparse.\(k).idx", "sparse.\(k).dat") }

    /// Row `row`'s entries (empty: it has no such vector).
    func entries(_ row: Int) -> UnsafeBufferPointer<SparseEntry> { values.values(row) }

    func lacks(_ row: Int) -> Bool { values.lacks(row) }

    package func vector(_ row: Int) -> SparseVector? {
        lacks(row) ? nil : SparseVector(sorted: entries(row))
    }

    private static func entries(_ v: SparseVector) -> [SparseEntry] { zip(v.indices, v.values).map { SparseEntry(index: $0, value: $1) } }

    /// Appends row `refs.count`'s vector (nil: none).
    func append(_ v: SparseVector?) throws {
        guard let v else { return try values.append(nil) }
        try SparseStore.entries(v).withUnsafeBufferPointer { try values.append($0) }
    }

    /// Replaces row `row`'s vector in place where it fits.
    func overwrite(_ row: Int, _ v: SparseVector?) throws {
        guard let v else { return try values.overwrite(row, nil) }
        try SparseStore.entries(v).withUnsafeBufferPointer { try values.overwrite(row, $0) }
    }

    /// Builds the postings (the rows no longer change).
    func freeze(rows: Int) { inverted = SparseInvertedIndex(self, rows: rows) }

    /// Live rows (not in `deleted`) that have this vector, and per index of `terms` how many hold it.
    /// - Complexity: sealed: the deleted rows, plus the posting lists when there are any; else a scan.
    func stats(_ terms: [UInt32], rows: Int, deleted: UnsafePointer<UInt64>, deletedCount: Int) -> (points: Int, df: [Int]) {
        @inline(__always) func skip(_ row: Int) -> Bool { deleted[row >> 6] & (1 << UInt64(row & 63)) != 0 }
        if let inverted {
            var points = inverted.present
            // Only the deleted rows are visited (the set bits), not every row.
            if deletedCount > 0 {
                for w in 0..<((rows + 63) >> 6) {
                    var bits = deleted[w]
                    while bits != 0 {
                        let row = w << 6 | bits.trailingZeroBitCount
                        if row < rows && !lacks(row) { points -= 1 }
                        bits &= bits - 1
                    }
                }
            }
            return (points, terms.map { t in
                guard let p = inverted.postings[t] else { return 0 }
                return deletedCount == 0 ? p.rows.count : p.rows.reduce(0) { $0 + (skip(Int($1)) ? 0 : 1) }
            })
        }
        var points = 0
        for row in 0..<rows where !lacks(row) && !skip(row) { points += 1 }
        var df = [Int](repeating: 0, count: terms.count)
        let position = Dictionary(uniqueKeysWithValues: terms.enumerated().map { ($1, $0) })
        for row in 0..<rows where !lacks(row) && !skip(row) {
            for e in entries(row) { if let i = position[e.index] { df[i] += 1 } }
        }
        return (points, df)
    }

    /// Adds the best rows for `query` (rows `skip` rejects left out; only rows sharing an index) to `top`.
    func search(_ query: SparseVector, rows: Int, tag: UInt64, skip: (Int) -> Bool, into top: inout TopK) {
        if let inverted {
            var scores = [Float](repeating: 0, count: rows)
            var touched = [UInt64](repeating: 0, count: (rows + 63) / 64)
            for (t, w) in zip(query.indices, query.values) {
                guard let p = inverted.postings[t] else { continue }
                for (row, v) in zip(p.rows, p.values) {
                    scores[Int(row)] += w * v
                    touched[Int(row) >> 6] |= 1 << UInt64(row & 63)
                }
            }
            for (w, word) in touched.enumerated() {
                var bits = word
                while bits != 0 {
                    let row = w << 6 | bits.trailingZeroBitCount
                    bits &= bits - 1
                    if !skip(row) { top.push(ScoredKey(score: scores[row], key: tag << 32 | UInt64(row))) }
                }
            }
            return
        }
        for row in 0..<rows where !lacks(row) && !skip(row) {
            let (score, overlap) = query.dot(entries(row))
            if overlap { top.push(ScoredKey(score: score, key: tag << 32 | UInt64(row))) }
        }
    }

    func flush(sequence: UInt64) throws { try values.flush(sequence: sequence) }
    func dropUndo() { values.dropUndo() }
    func verify() -> String? { values.verify() }
}
