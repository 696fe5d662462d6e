// One payload field's index within one segment.
//
//   terms     value -> rows holding it, ascending (keyword, uuid, bool, integer lookups, text
//             tokens): `match` is a posting list, `any` a union, `except` present - union
//   numbers   row -> its numbers (integer ranges, float, datetime as seconds since 1970); a
//             sealed segment also keeps them sorted by value, so a range is two binary searches
//   geo       row -> its points, checked against the shape
//   present   rows with a non-null value at the path (is_empty, except, the point count)
//
// Built from the segment's payloads when it opens or is created by the optimizer, kept in step
// by the applier as rows are written (only the appendable segment's rows change; sealed ones
// only gain tombstones, which searches skip). An index answers a condition only where its
// answer is the same as checking each row's JSON (or is Qdrant's defined index semantics:
// text tokens, UUID values); everything else is checked per row.

import Foundation

/// A value as an index keys it.
package enum IndexKey: Hashable, Sendable, Comparable {
    case string(String)
    case int(Int64)
    case bool(Bool)

    /// Strings, then integers, then false, then true; within a kind by value.
    package static func < (a: IndexKey, b: IndexKey) -> Bool {
        switch (a, b) {
        case let (.string(x), .string(y)): return x < y
        case let (.int(x), .int(y)): return x < y
        case let (.bool(x), .bool(y)): return !x && y
        case (.string, _): return true
        case (.int, .bool): return true
        default: return false
        }
    }

    package var json: JSON {
        switch self {
        case .string(let s): return .string(s)
        case .int(let i): return .int(i)
        case .bool(let b): return .bool(b)
        }
    }
}

package final class FieldIndex: @unchecked Sendable {
    package let name: String
    package let schema: PayloadFieldSchema
    private var terms = TermPostings()
    private var numbers = RowNumbers()
    /// (value, row) by value, then row; nil while the segment is appendable (ranges then scan `numbers`).
    private var sorted: [(value: Double, row: UInt32)]?
    private var geo: [UInt32: [GeoPoint]] = [:]
    private var present: [UInt64] = []
    // Sealed segments only (built by `freeze`): bitmaps, so large selections cost a copy of
    // rows / 64 words instead of a bit per row.
    /// Terms holding at least 1/64 of the rows.
    private var denseTerms: [IndexKey: RowBits] = [:]
    /// When every row has at most one number: `below[j]` holds the rows of `sorted[0 ..< j * step]`.
    private var below: [RowBits] = []
    private var belowStep = 0

    /// Mutated only under the shard's write lock; read under its read lock.
    package init(name: String, schema: PayloadFieldSchema) {
        self.name = name
        self.schema = schema
    }

    // MARK: values

    private var termsIndexed: Bool { schema.termsIndexed }
    private var numbersIndexed: Bool { schema.orderable }

    /// The keys one JSON value contributes.
    private func keys(_ v: JSON) -> [IndexKey] {
        switch (schema.type, v) {
        case (.keyword, .string(let s)): return [.string(s)]
        case (.uuid, .string(let s)): return FieldIndex.uuid(s).map { [.string($0)] } ?? []
        case (.bool, .bool(let b)): return [.bool(b)]
        case (.integer, .int(let i)): return schema.lookup ? [.int(i)] : []
        case (.integer, .uint(let u)): return schema.lookup && u <= UInt64(Int64.max) ? [.int(Int64(u))] : []
        // 3.0 equals 3 when each point's JSON is checked; the index must agree.
        case (.integer, .double(let d)): return schema.lookup && d == d.rounded() && abs(d) < 9.2e18 ? [.int(Int64(d))] : []
        case (.text, .string(let s)): return Array(Set(Tokenizer(schema).tokens(s, forIndex: true))).map { .string($0) }
        default: return []
        }
    }

    /// The key a condition's value looks up, if this index holds such keys.
    private func lookupKey(_ v: JSON) -> IndexKey? {
        guard termsIndexed, schema.type != .text else { return nil }
        let k = keys(v)
        switch (schema.type, v) {
        case (.keyword, .string), (.uuid, .string), (.bool, .bool), (.integer, .int), (.integer, .uint): return k.first
        default: return nil
        }
    }

    private func number(_ v: JSON) -> Double? {
        switch (schema.type, v) {
        case (.integer, _), (.float, _): return v.doubleValue  // as ranges compare each point's JSON
        case (.datetime, .string(let s)): return Datetime.parse(s)
        default: return nil
        }
    }

    /// A UUID in its canonical lowercase form; nil when `s` is not one.
    static func uuid(_ s: String) -> String? { UUID(uuidString: s)?.uuidString.lowercased() }

    // MARK: writing

    /// Indexes `payload` as row `row`'s.
    package func add(row: Int, payload: JSON?) {
        let values = Filter.nonNullValues(payload, name)
        guard !values.isEmpty else { return }
        let r = UInt32(row)
        while present.count <= row >> 6 { present.append(0) }
        present[row >> 6] |= 1 << UInt64(row & 63)
        if termsIndexed {
            var seen = Set<IndexKey>()
            for v in values {
                for k in keys(v) where seen.insert(k).inserted { insert(r, into: k) }
            }
        }
        if numbersIndexed {
            let ns = values.compactMap(number)
            if !ns.isEmpty {
                numbers[r] = ns
                if sorted != nil { for n in ns { insertSorted(n, r) } }
            }
        }
        if schema.type == .geo {
            let ps = values.compactMap(GeoPoint.init(json:))
            if !ps.isEmpty { geo[r] = ps }
        }
    }

    /// Forgets row `row`, whose payload was `payload`.
    package func remove(row: Int, payload: JSON?) {
        let r = UInt32(row)
        if row >> 6 < present.count { present[row >> 6] &= ~(1 << UInt64(row & 63)) }
        if termsIndexed {
            var seen = Set<IndexKey>()
            for v in Filter.nonNullValues(payload, name) {
                for k in keys(v) where seen.insert(k).inserted { delete(r, from: k) }
            }
        }
        if let ns = numbers.remove(r), sorted != nil {
            for n in ns {
                let i = lowerBound(n, r)
                if i < sorted!.count, sorted![i].row == r { sorted!.remove(at: i) }
            }
        }
        geo.removeValue(forKey: r)
    }

    private func insert(_ row: UInt32, into key: IndexKey) {
        if var list = terms.removeValue(forKey: key) {
            // Rows mostly arrive in order (appends); an overwritten row goes back in its place.
            if let last = list.last, last >= row {
                let i = FieldIndex.lowerBound(list, row)
                if i < list.count && list[i] == row { terms[key] = list; return }
                list.insert(row, at: i)
            } else {
                list.append(row)
            }
            terms[key] = list
        } else {
            terms[key] = [row]
        }
    }

    private func delete(_ row: UInt32, from key: IndexKey) {
        guard var list = terms.removeValue(forKey: key) else { return }
        let i = FieldIndex.lowerBound(list, row)
        if i < list.count && list[i] == row { list.remove(at: i) }
        if !list.isEmpty { terms[key] = list }
    }

    private static func lowerBound(_ list: [UInt32], _ row: UInt32) -> Int {
        var lo = 0, hi = list.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if list[mid] < row { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    /// The first position in `sorted` not before (value, row).
    private func lowerBound(_ value: Double, _ row: UInt32 = 0) -> Int {
        var lo = 0, hi = sorted!.count
        while lo < hi {
            let mid = (lo + hi) / 2
            let e = sorted![mid]
            if e.value < value || (e.value == value && e.row < row) { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    private func insertSorted(_ value: Double, _ row: UInt32) {
        sorted!.insert((value, row), at: lowerBound(value, row))
    }

    /// Prepares for reads only (the segment of `rows` rows was sealed: its rows no longer
    /// change): numbers sorted, with cumulative bitmaps for wide ranges; dense terms as bitmaps.
    package func freeze(rows: Int) {
        guard sorted == nil else { return }
        let dense = max(64, rows / 64)
        terms.forEach { k, list in if list.count >= dense { denseTerms[k] = bits([list], count: rows) } }
        guard numbersIndexed else { return }
        var s: [(value: Double, row: UInt32)] = []
        s.reserveCapacity(numbers.count)
        numbers.forEachValue { r, n in s.append((n, r)) }
        let single = numbers.allSingle
        s.sort { $0.value < $1.value || ($0.value == $1.value && $0.row < $1.row) }
        sorted = s
        // 64 cumulative bitmaps: a range is then two bitmaps and at most two steps of rows.
        guard single, s.count >= 256 else { return }
        belowStep = (s.count + 63) / 64
        var acc = RowBits(count: rows)
        below = [acc]
        for (i, e) in s.enumerated() {
            if Int(e.row) < rows { acc.insert(Int(e.row)) }
            if (i + 1) % belowStep == 0 { below.append(acc) }
        }
    }

    /// Rows whose number is below `x` (or at most `x` with `inclusive`), from the cumulative bitmaps.
    private func rowsBelow(_ x: Double, inclusive: Bool, count: Int) -> RowBits {
        let s = sorted!
        var lo = 0, hi = s.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if s[mid].value < x || (inclusive && s[mid].value == x) { lo = mid + 1 } else { hi = mid }
        }
        let j = min(lo / belowStep, below.count - 1)
        var b = below[j]
        for i in (j * belowStep)..<lo where Int(s[i].row) < count { b.insert(Int(s[i].row)) }
        return b
    }

    // MARK: reading

    /// Rows with a non-null value at the path.
    package func presentRows(count: Int) -> RowBits {
        var bits = RowBits(count: count)
        for (i, w) in present.enumerated() where w != 0 {
            var word = w
            while word != 0 {
                let row = i << 6 | word.trailingZeroBitCount
                if row < count { bits.insert(row) }
                word &= word - 1
            }
        }
        return bits
    }

    /// Rows holding any of `keys`: dense terms from their bitmaps, the rest from posting lists.
    private func termRows(_ keys: [IndexKey], count: Int) -> RowBits {
        var lists: [[UInt32]] = []
        var dense: [RowBits] = []
        for k in keys {
            if let d = denseTerms[k], d.count == count { dense.append(d) } else if let list = terms[k] { lists.append(list) }
        }
        var b = bits(lists, count: count)
        for d in dense { b.formUnion(d) }
        return b
    }

    private func bits(_ lists: [[UInt32]], count: Int) -> RowBits {
        var b = RowBits(count: count)
        for list in lists { for r in list where Int(r) < count { b.insert(Int(r)) } }
        return b
    }

    /// The rows of a `count`-row segment that pass `condition`, or nil when this index cannot
    /// answer it (the rows are then checked one by one).
    /// - Complexity: O(matching rows + count / 64) for terms and sorted numbers; O(rows with
    ///   values) for an appendable segment's numbers and for geo shapes.
    package func rows(_ condition: Filter, count: Int) -> RowBits? {
        switch condition {
        case .match(_, let v):
            guard let k = lookupKey(v) else { return nil }
            return termRows([k], count: count)
        case .matchAny(_, let vs):
            let ks = vs.map(lookupKey)
            guard !ks.contains(where: { $0 == nil }) else { return nil }
            return termRows(ks.map { $0! }, count: count)
        case .matchExcept(_, let vs):
            let ks = vs.map(lookupKey)
            guard !ks.contains(where: { $0 == nil }) else { return nil }
            var b = presentRows(count: count)
            b.subtract(termRows(ks.map { $0! }, count: count))
            return b
        case .matchText(_, let text), .matchPhrase(_, let text):
            guard schema.type == .text else { return nil }
            let tokens = Set(Tokenizer(schema).tokens(text, forIndex: false))
            guard !tokens.isEmpty else { return RowBits(count: count) }
            var b: RowBits?
            for t in tokens.sorted(by: { terms.rowCount(.string($0)) < terms.rowCount(.string($1)) }) {
                let one = termRows([.string(t)], count: count)
                if b == nil { b = one } else { b!.formIntersection(one) }
            }
            return b
        case .range(_, let bounds, let datetime):
            guard numbersIndexed, datetime == (schema.type == .datetime) else { return nil }
            var b = RowBits(count: count)
            if sorted != nil, !below.isEmpty, count == below[0].count {
                // Wide or narrow, two bitmaps and at most two steps of rows.
                switch (bounds.lt, bounds.lte) {
                case let (lt?, lte?):
                    b = rowsBelow(lt, inclusive: false, count: count)
                    b.formIntersection(rowsBelow(lte, inclusive: true, count: count))
                case let (lt?, nil): b = rowsBelow(lt, inclusive: false, count: count)
                case let (nil, lte?): b = rowsBelow(lte, inclusive: true, count: count)
                case (nil, nil): b = rowsBelow(.infinity, inclusive: true, count: count)
                }
                if let gt = bounds.gt { b.subtract(rowsBelow(gt, inclusive: true, count: count)) }
                if let gte = bounds.gte { b.subtract(rowsBelow(gte, inclusive: false, count: count)) }
            } else if let sorted {
                var i = bounds.gte.map { lowerBound($0) } ?? bounds.gt.map { lowerBound($0.nextUp) } ?? 0
                while i < sorted.count {
                    let e = sorted[i]
                    if let lt = bounds.lt, !(e.value < lt) { break }
                    if let lte = bounds.lte, !(e.value <= lte) { break }
                    if bounds.contains(e.value), Int(e.row) < count { b.insert(Int(e.row)) }
                    i += 1
                }
            } else {
                numbers.forEachValue { r, n in if Int(r) < count && bounds.contains(n) { b.insert(Int(r)) } }
            }
            return b
        case .geo(_, let shape):
            guard schema.type == .geo else { return nil }
            var b = RowBits(count: count)
            for (r, ps) in geo where Int(r) < count && ps.contains(where: shape.contains) { b.insert(Int(r)) }
            return b
        case .isEmpty:
            return presentRows(count: count).inverted
        default:
            return nil
        }
    }

    /// How many of the segment's live rows have a value (`payload_schema`'s points).
    package func pointCount(count: Int, deleted: UnsafePointer<UInt64>?) -> Int {
        var b = presentRows(count: count)
        if let deleted { b.subtract(bits: deleted) }
        return b.cardinality
    }

    /// About how many bytes of memory the index holds (posting lists, numbers, bitmaps; hash
    /// table overhead counted as 16 bytes per entry).
    package var approximateBytes: Int {
        var n = present.count * 8
        n += terms.approximateBytes
        n += numbers.approximateBytes
        n += (sorted?.count ?? 0) * 16
        n += geo.reduce(0) { $0 + $1.value.count * 16 + 48 }
        n += denseTerms.reduce(0) { $0 + $1.value.words.count * 8 } + below.reduce(0) { $0 + $1.words.count * 8 }
        return n
    }

    package var facetable: Bool { schema.facetable }
    package var orderable: Bool { schema.orderable }

    /// Adds to `counts`, per value, how many of `rows` hold it (a row once per distinct value).
    package func facetCounts(_ rows: RowBits, into counts: inout [IndexKey: Int]) {
        guard facetable else { return }
        terms.forEach { k, list in
            var n = 0
            if let d = denseTerms[k], d.count == rows.count {
                for (a, b) in zip(d.words, rows.words) { n += (a & b).nonzeroBitCount }
            } else {
                for r in list where rows.contains(Int(r)) { n += 1 }
            }
            if n > 0 { counts[k, default: 0] += n }
        }
    }

    /// The facet keys of one payload (what a remote replica's points are counted by).
    package func facetKeys(_ payload: JSON?) -> Set<IndexKey> {
        Set(Filter.nonNullValues(payload, name).flatMap(keys))
    }

    /// The numbers of one payload that `order_by` sorts by.
    package func orderValues(_ payload: JSON?) -> [Double] {
        Filter.nonNullValues(payload, name).compactMap(number)
    }

    /// The rows' numbers for ordering: (value, row) pairs of rows in `rows`, ascending by value.
    package func orderedValues(_ rows: RowBits) -> [(value: Double, row: UInt32)] {
        guard numbersIndexed else { return [] }
        if let sorted { return sorted.filter { rows.contains(Int($0.row)) } }
        var out: [(value: Double, row: UInt32)] = []
        numbers.forEachValue { r, n in if rows.contains(Int(r)) { out.append((n, r)) } }
        out.sort { $0.value < $1.value || ($0.value == $1.value && $0.row < $1.row) }
        return out
    }
}

// MARK: persistence

// A sealed segment's indexes are written to payload_index.bin (derived data: a damaged,
// missing or outdated file is rebuilt from the payloads), so opening does not parse every
// payload again:
//
//   | magic "VPIX" u32 | version u32 | rows u64 | fields u32 |
//   per field: | name blob | field_schema JSON blob |
//              | terms u32 | (kind u8: 0 string blob, 1 int u64, 2 bool u8 | n u32 | rows u32 * n) * terms |
//              | numbers u32 | (row u32 | n u32 | f64 * n) * numbers |
//              | geo u32 | (row u32 | n u32 | (lat f64, lon f64) * n) * geo |
//              | present words u32 | u64 * words |
//   | crc32c of the above u32 |

extension FieldIndex {
    static let fileMagic: UInt32 = 0x5849_5056  // "VPIX"
    /// Bumped whenever what a payload contributes to an index changes (keys, numbers, tokens,
    /// UUIDs, datetimes): a file from other rules is rebuilt, not trusted. 2: integer fields
    /// index 3.0 as 3 and fractions for ranges.
    static let fileVersion: UInt32 = 2

    func encode(into w: inout ByteWriter) {
        w.blob(Array(name.utf8))
        w.blob(JSONWriter.bytes(schema.json))
        w.u32(UInt32(terms.count))
        terms.forEach { k, list in
            switch k {
            case .string(let s): w.u8(0); w.blob(Array(s.utf8))
            case .int(let i): w.u8(1); w.u64(UInt64(bitPattern: i))
            case .bool(let b): w.u8(2); w.u8(b ? 1 : 0)
            }
            w.u32(UInt32(list.count))
            for r in list { w.u32(r) }
        }
        w.u32(UInt32(numbers.count))
        numbers.forEachRow { r, ns in
            w.u32(r)
            w.u32(UInt32(ns.count))
            for n in ns { w.u64(n.bitPattern) }
        }
        w.u32(UInt32(geo.count))
        for (r, ps) in geo {
            w.u32(r)
            w.u32(UInt32(ps.count))
            for p in ps { w.u64(p.lat.bitPattern); w.u64(p.lon.bitPattern) }
        }
        w.u32(UInt32(present.count))
        for word in present { w.u64(word) }
    }

    /// Reads one field written by `encode`, checking every count and row against `rows`.
    static func decode(_ r: inout ByteReader, rows: Int) throws -> FieldIndex {
        func count(_ each: Int) throws -> Int {
            let n = Int(try r.u32())
            guard n.multipliedReportingOverflow(by: each).partialValue <= r.remaining else {
                throw VQError(.corrupt, "payload index claims \(n) entries; \(r.remaining) bytes left")
            }
            return n
        }
        func row() throws -> UInt32 {
            let v = try r.u32()
            guard Int(v) < rows else { throw VQError(.corrupt, "payload index names row \(v); the segment has \(rows)") }
            return v
        }
        guard let name = String(validating: try r.blob(), as: UTF8.self),
              let schemaJSON = try? JSONParser.parse(try r.blob()), let schema = try? PayloadFieldSchema(json: schemaJSON) else {
            throw VQError(.corrupt, "payload index has a malformed field header")
        }
        let index = FieldIndex(name: name, schema: schema)
        for _ in 0..<(try count(5)) {
            let key: IndexKey
            switch try r.u8() {
            case 0:
                guard let text = String(validating: try r.blob(), as: UTF8.self) else { throw VQError(.corrupt, "payload index has a malformed term") }
                key = .string(text)
            case 1: key = .int(Int64(bitPattern: try r.u64()))
            case 2: key = .bool(try r.u8() != 0)
            case let kind: throw VQError(.corrupt, "payload index has a term of unknown kind \(kind)")
            }
            var list: [UInt32] = []
            let n = try count(4)
            list.reserveCapacity(n)
            for _ in 0..<n {
                let next = try row()
                guard list.last.map({ $0 < next }) ?? true else { throw VQError(.corrupt, "payload index has a posting list out of order") }
                list.append(next)
            }
            index.terms[key] = list
        }
        for _ in 0..<(try count(8)) {
            let at = try row()
            let ns = try (0..<(try count(8))).map { _ in Double(bitPattern: try r.u64()) }
            guard ns.allSatisfy(\.isFinite) else { throw VQError(.corrupt, "payload index holds a number that is not finite") }
            index.numbers[at] = ns
        }
        for _ in 0..<(try count(8)) {
            let at = try row()
            index.geo[at] = try (0..<(try count(16))).map { _ in
                GeoPoint(lat: Double(bitPattern: try r.u64()), lon: Double(bitPattern: try r.u64()))
            }
        }
        index.present = try (0..<(try count(8))).map { _ in try r.u64() }
        return index
    }
}

/// Value -> rows holding it, ascending; a value held by one row (ids, timestamps as integers)
/// keeps that row inline instead of in an array of its own.
struct TermPostings {
    private enum Rows {
        case one(UInt32)
        case many([UInt32])
    }
    private var table: [IndexKey: Rows] = [:]

    var count: Int { table.count }

    subscript(key: IndexKey) -> [UInt32]? {
        get {
            switch table[key] {
            case .one(let r)?: return [r]
            case .many(let list)?: return list
            case nil: return nil
            }
        }
        set {
            guard let newValue, !newValue.isEmpty else { table[key] = nil; return }
            table[key] = newValue.count == 1 ? .one(newValue[0]) : .many(newValue)
        }
    }

    mutating func removeValue(forKey key: IndexKey) -> [UInt32]? {
        defer { table[key] = nil }
        return self[key]
    }

    func rowCount(_ key: IndexKey) -> Int {
        switch table[key] {
        case .one?: return 1
        case .many(let list)?: return list.count
        case nil: return 0
        }
    }

    func forEach(_ body: (IndexKey, [UInt32]) -> Void) {
        for (k, rows) in table {
            switch rows {
            case .one(let r): body(k, [r])
            case .many(let list): body(k, list)
            }
        }
    }

    /// Hash entries counted as 48 bytes, arrays as 32 plus their rows.
    var approximateBytes: Int {
        table.reduce(0) { n, e in
            if case .many(let list) = e.value { return n + 48 + 32 + list.count * 4 }
            return n + 48
        }
    }
}

/// Each row's numbers: a column of one number per row (NaN where a row has none or several),
/// and a table for the rows with several (8 bytes a row instead of a hash entry and an array).
struct RowNumbers {
    private var single: [Double] = []
    private var several: [UInt32: [Double]] = [:]
    /// Rows with at least one number.
    private(set) var count = 0

    /// Whether no row has more than one number.
    var allSingle: Bool { several.isEmpty }

    var approximateBytes: Int { single.capacity * 8 + several.reduce(0) { $0 + $1.value.count * 8 + 64 } }

    subscript(row: UInt32) -> [Double]? {
        get {
            if let many = several[row] { return many }
            let r = Int(row)
            return r < single.count && !single[r].isNaN ? [single[r]] : nil
        }
        set {
            _ = remove(row)
            guard let newValue, !newValue.isEmpty else { return }
            count += 1
            if newValue.count > 1 { several[row] = newValue; return }
            let r = Int(row)
            if r >= single.count { single.append(contentsOf: repeatElement(.nan, count: r + 1 - single.count)) }
            single[r] = newValue[0]
        }
    }

    /// Forgets a row's numbers; returns them.
    @discardableResult
    mutating func remove(_ row: UInt32) -> [Double]? {
        let old = self[row]
        if old != nil { count -= 1 }
        several[row] = nil
        if Int(row) < single.count { single[Int(row)] = .nan }
        return old
    }

    /// Calls `body` with every (row, number), rows with one number in row order first.
    func forEachValue(_ body: (UInt32, Double) -> Void) {
        for (r, n) in single.enumerated() where !n.isNaN { body(UInt32(r), n) }
        for (r, ns) in several { for n in ns { body(r, n) } }
    }

    /// Calls `body` with every row that has numbers, and its numbers.
    func forEachRow(_ body: (UInt32, [Double]) -> Void) {
        for (r, n) in single.enumerated() where !n.isNaN { body(UInt32(r), [n]) }
        for (r, ns) in several { body(r, ns) }
    }
}

/// Splits text into tokens as a text index's schema says.
package struct Tokenizer {
    let schema: PayloadFieldSchema

    init(_ schema: PayloadFieldSchema) { self.schema = schema }

    /// The tokens of `text`; with `forIndex` and the prefix tokenizer, every prefix of each too.
    package func tokens(_ text: String, forIndex: Bool) -> [String] {
        var out: [String] = []
        var current = ""
        func flush() {
            defer { current = "" }
            guard !current.isEmpty else { return }
            let token = schema.lowercase ? current.lowercased() : current
            let n = token.count
            if let max = schema.maxTokenLen, max > 0, n > max, schema.tokenizer != .prefix { return }
            if let min = schema.minTokenLen, n < min { return }
            if schema.tokenizer == .prefix && forIndex {
                let lower = Swift.max(1, schema.minTokenLen ?? 1)
                let upper = Swift.min(n, schema.maxTokenLen.flatMap { $0 > 0 ? $0 : nil } ?? n)
                if lower <= upper { for len in lower...upper { out.append(String(token.prefix(len))) } }
            } else {
                out.append(token)
            }
        }
        for ch in text {
            let separator = schema.tokenizer == .whitespace ? ch.isWhitespace : !(ch.isLetter || ch.isNumber)
            if separator { flush() } else { current.append(ch) }
        }
        flush()
        return out
    }
}
