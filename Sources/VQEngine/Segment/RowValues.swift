// Values of varying length per row, in two memory-mapped files: a row table (offset and
// length of each row's value, in elements times `unit`; length 0: the row has none) and the
// values, append-only. A rewrite that fits the row's old slot reuses it (overwriting the same
// points must not grow the segment). Sparse vectors (SparseEntry, unit 1) and multi-vectors
// (Float, unit = the dimension: lengths count vectors) keep theirs so.

/// One kind of varying-length row value of a segment.
struct RowValues<Element: BitwiseCopyable> {
    let refs: MappedArray<PayloadRef>
    let data: MappedArray<Element>
    /// Elements per unit of a ref's length.
    let unit: Int

    /// Opens (or creates) the two files.
    /// - Parameters:
    ///   - elements: how many elements of the values file the manifest covers.
    ///   - appendableCapacity: the reservation of an appendable segment's values file (sealed: `elements`).
    init(refs refsPath: String, data dataPath: String, rows: Int, rowCapacity: Int, elements: Int, appendable: Bool, appendableCapacity: Int,
         unit: Int = 1, committedFlush: UInt64) throws {
        refs = try MappedArray(path: refsPath, count: rows, capacity: rowCapacity, committedFlush: committedFlush)
        data = try MappedArray(path: dataPath, count: elements, capacity: appendable ? max(appendableCapacity, elements) : elements,
                               committedFlush: committedFlush)
        self.unit = unit
    }

    func lacks(_ row: Int) -> Bool { refs.base[row].length == 0 }

    /// Row `row`'s value (empty: none); bounds checked, since the row table is read from a file.
    func values(_ row: Int) -> UnsafeBufferPointer<Element> {
        let ref = refs.base[row]
        let (n, overflow) = ref.length.multipliedReportingOverflow(by: UInt64(unit))
        let size = UInt64(data.count)
        guard ref.length > 0, !overflow, n <= size, ref.offset <= size - n else { return UnsafeBufferPointer(start: nil, count: 0) }
        return UnsafeBufferPointer(start: data.base + Int(ref.offset), count: Int(n))
    }

    /// Appends row `refs.count`'s value (nil or empty: none).
    func append(_ v: UnsafeBufferPointer<Element>?) throws { try refs.append(try store(v, reusing: nil)) }

    /// Replaces row `row`'s value, in its old slot when it fits.
    func overwrite(_ row: Int, _ v: UnsafeBufferPointer<Element>?) throws { refs[row] = try store(v, reusing: refs[row]) }

    private func store(_ v: UnsafeBufferPointer<Element>?, reusing old: PayloadRef?) throws -> PayloadRef {
        guard let v, let base = v.baseAddress, v.count > 0 else { return PayloadRef(offset: 0, length: 0) }
        precondition(v.count % unit == 0)
        let length = UInt64(v.count / unit)
        if let old, old.length >= length, let start = Int(exactly: old.offset), start <= data.count - v.count {
            (data.base + start).update(from: base, count: v.count)
            data.markDirty(start..<(start + v.count))
            return PayloadRef(offset: old.offset, length: length)
        }
        let offset = data.count
        try data.append(contentsOf: v)
        return PayloadRef(offset: UInt64(offset), length: length)
    }

    func flush(sequence: UInt64) throws {
        try data.flush(sequence: sequence)
        try refs.flush(sequence: sequence)
    }

    func dropUndo() {
        data.dropUndo()
        refs.dropUndo()
    }

    func verify() -> String? { refs.verify() ?? data.verify() }
}
