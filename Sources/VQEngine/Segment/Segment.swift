// Segments: where a shard's points live.
//
//   Segment.swift          storage of one segment: vectors, rows, deletions, payloads, graph
//   Segment+Search.swift   search: the HNSW graph when it has one, else an exact scan
//
// A segment keeps memory-mapped arrays (see MappedArray), row i of each
// describing the same point:
//
//   vectors.f32   row i at floats [i*dim, (i+1)*dim)          (cosine: unit length)
//                 (vector k > 0 of a collection with named vectors: vectors.K.f32; see VectorLayout)
//   absent.bits   named vectors only: bit i set = row i lacks the vector (absent.K.bits for vector k > 0)
//   sparse.K.idx, sparse.K.dat  sparse vector k (see SparseVectors.swift)
//   multi.K.idx, multi.K.dat    multi-vector k (see MultiVectors.swift)
//   rows.bin      RowRecord: id tag, id words, version (op number of the last write)
//   deleted.bits  bit i set = row i is deleted (a tombstone)
//   payload.idx   PayloadRef: offset and length of the row's payload JSON in payload.dat
//   payload.dat   payload JSON, append-only
//   hnsw.bin      the HNSW graph over the rows (sealed, indexed segments only; see HNSWGraph; hnsw.K.bin
//                 for vector k > 0); rows that lack the vector are left out of it
//   *.sum0, *.sum1  every file: CRC-32C per 64 KiB chunk as last flushed (see MappedArray),
//                 also for the files that change (deleted.bits, the appendable segment's);
//                 checked before a flush replaces a chunk, and in full by the scrub and `check`
//   payload_index.bin  sealed segments: their payload indexes (derived data, rebuilt from the
//                 payloads when missing, damaged or for another schema; see FieldIndex.swift)
//   checksums.json  segments sealed by vq before block checksums: CRC-32C and length of their
//                 sealed files; still verified, no longer written
//
// The appendable segment takes new rows; a full one stops being appendable and
// a new one takes over. Opening maps the files: nothing is parsed or rebuilt.
// How many rows of each file are valid comes from the shard manifest.

/// A row's identity: the point id and the operation that last wrote it.
package struct RowRecord: BitwiseCopyable, Sendable {
    /// 0 = numeric id in `a`; 1 = UUID in `a` (high) and `b` (low).
    var tag: UInt64
    var a: UInt64
    var b: UInt64
    var version: UInt64

    init(id: PointID, version: UInt64) {
        switch id {
        case .number(let n): tag = 0; a = n; b = 0
        case .uuid(let hi, let lo): tag = 1; a = hi; b = lo
        }
        self.version = version
    }

    var id: PointID { tag == 0 ? .number(a) : .uuid(a, b) }
}

/// Where a row's payload JSON lives in payload.dat; length 0 means no payload.
package struct PayloadRef: BitwiseCopyable, Sendable {
    var offset: UInt64
    var length: UInt64
}

/// What the shard manifest records of a segment.
package struct SegmentInfo: Sendable, Equatable {
    package var id: UInt64
    package var rows: Int
    package var payloadBytes: Int
    package var appendable: Bool
    package var indexed = false
    /// Entries in each sparse vector's sparse.K.dat.
    package var sparseEntries: [Int] = []
    /// Floats in each multi-vector's multi.K.dat.
    package var multiFloats: [Int] = []

    var json: JSON {
        var m: [(String, JSON)] = [("id", .int(Int64(id))), ("rows", .int(Int64(rows))), ("payload_bytes", .int(Int64(payloadBytes))),
                                   ("appendable", .bool(appendable)), ("indexed", .bool(indexed))]
        if !sparseEntries.isEmpty { m.append(("sparse_entries", .array(sparseEntries.map { .int(Int64($0)) }))) }
        if !multiFloats.isEmpty { m.append(("multi_floats", .array(multiFloats.map { .int(Int64($0)) }))) }
        return .object(m)
    }

    init(id: UInt64, rows: Int, payloadBytes: Int, appendable: Bool, indexed: Bool = false) {
        self.id = id
        self.rows = rows
        self.payloadBytes = payloadBytes
        self.appendable = appendable
        self.indexed = indexed
    }

    init(json: JSON, path: String) throws {
        guard let id = json["id"]?.intValue, let rows = json["rows"]?.intValue, let bytes = json["payload_bytes"]?.intValue,
              let appendable = json["appendable"]?.boolValue, id >= 0, (0...Int64(UInt32.max)).contains(rows), (0...(Int64(1) << 50)).contains(bytes) else {
            throw VQError(.corrupt, "\(path) has a malformed segment entry: \(json.compactText)")
        }
        self.init(id: UInt64(id), rows: Int(rows), payloadBytes: Int(bytes), appendable: appendable,
                  indexed: json["indexed"]?.boolValue ?? false)
        if let floats = json["multi_floats"] {
            guard let list = floats.arrayValue, list.count <= 64 else { throw VQError(.corrupt, "\(path) has a malformed multi_floats: \(floats.compactText)") }
            multiFloats = try list.map {
                guard let n = $0.intValue, (0...(Int64(1) << 50)).contains(n) else { throw VQError(.corrupt, "\(path) has a malformed multi_floats: \(floats.compactText)") }
                return Int(n)
            }
        }
        if let entries = json["sparse_entries"] {
            guard let list = entries.arrayValue, list.count <= 64 else { throw VQError(.corrupt, "\(path) has a malformed sparse_entries: \(entries.compactText)") }
            sparseEntries = try list.map {
                guard let n = $0.intValue, (0...(Int64(1) << 50)).contains(n) else { throw VQError(.corrupt, "\(path) has a malformed sparse_entries: \(entries.compactText)") }
                return Int(n)
            }
        }
    }
}

/// One vector's rows in a segment: the floats, which rows lack it, and its graph.
package final class VectorStore: @unchecked Sendable {
    package let spec: VectorSpec
    let data: MappedArray<Float>
    /// Bit i set: row i lacks this vector; nil when every row has it (the unnamed vector).
    let absent: MappedArray<UInt64>?
    package private(set) var absentCount = 0
    /// The graph over the rows that have the vector; nil until indexed, or when its m is 0.
    package internal(set) var graph: HNSWGraph?
    /// Quantized codes of the rows (scalar int8 or TurboQuant), with the graph; nil without quantization.
    package internal(set) var codes: VectorCodes?

    /// Codes the rows (those that lack the vector are coded too, and never scored).
    func makeCodes(rows: Int, _ kind: Quantization) -> VectorCodes {
        VectorCodes(kind, vectors: data.base, count: rows, dim: dim, distance: distance) { [unowned self] in self.lacks($0) }
    }

    init(spec: VectorSpec, data: MappedArray<Float>, absent: MappedArray<UInt64>?) {
        self.spec = spec
        self.data = data
        self.absent = absent
        if let absent { for w in absent.buffer { absentCount += w.nonzeroBitCount } }
    }

    package var dim: Int { spec.dim }
    package var distance: Distance { spec.distance }

    @inline(__always)
    package func lacks(_ row: Int) -> Bool {
        guard let absent else { return false }
        return absent.base[row >> 6] & (1 << UInt64(row & 63)) != 0
    }

    package func vector(_ row: Int) -> UnsafeBufferPointer<Float> {
        UnsafeBufferPointer(start: data.base + row * dim, count: dim)
    }

    /// Sets whether `row` lacks the vector (named vectors only).
    func setAbsent(_ row: Int, _ lacking: Bool) throws {
        guard let absent else { precondition(!lacking, "the unnamed vector cannot be absent"); return }
        let word = row >> 6, bit = UInt64(1) << UInt64(row & 63)
        while word >= absent.count { try absent.append(0) }
        let was = absent[word] & bit != 0
        if was == lacking { return }
        if lacking { absent[word] |= bit; absentCount += 1 } else { absent[word] &= ~bit; absentCount -= 1 }
    }

    /// Rows to leave out of a search of this vector: `deleted` plus the rows that lack it;
    /// nil when that is just `deleted` (no row lacks it).
    func excluded(deleted: UnsafePointer<UInt64>, rows: Int) -> [UInt64]? {
        guard absentCount > 0, let absent else { return nil }
        let words = (rows + 63) / 64
        var out = [UInt64](repeating: 0, count: words)
        for w in 0..<words { out[w] = deleted[w] | (w < absent.count ? absent.base[w] : 0) }
        return out
    }

    func flush(sequence: UInt64) throws {
        try data.flush(sequence: sequence)
        try absent?.flush(sequence: sequence)
    }

    func dropUndo() {
        data.dropUndo()
        absent?.dropUndo()
    }

    func verify() -> String? { data.verify() ?? absent?.verify() }

    /// File names of vector `k`.
    static func files(_ k: Int) -> (vectors: String, absent: String, graph: String) {
        k == 0 ? (DataDirectory.SegmentFile.vectors.rawValue, "absent.bits", Segment.graphFile)
               : ("vectors.\(k).f32", "absent.\(k).bits", "hnsw.\(k).bin")
    }
}

/// One segment's points, vectors and payloads.
///
/// Mutated only by its shard's applier thread, under the shard's write lock;
/// searched under the read lock.
package final class Segment: @unchecked Sendable {
    package let id: UInt64
    package let directory: String
    package let capacity: Int
    package private(set) var appendable: Bool
    package private(set) var deletedCount = 0
    /// One store per vector of the collection's VectorLayout.
    package let stores: [VectorStore]
    /// One store per sparse vector of the layout.
    package let sparseStores: [SparseStore]
    /// One store per multi-vector of the layout.
    package let multiStores: [MultiStore]
    let rows: MappedArray<RowRecord>
    let deleted: MappedArray<UInt64>
    let payloadIndex: MappedArray<PayloadRef>
    let payloadData: MappedArray<UInt8>
    /// Whether the optimizer has built the graphs (of the vectors whose m is not 0).
    package private(set) var indexed = false
    /// How indexed segments quantize their dense vectors (nil: not at all).
    let quantization: Quantization?
    /// The payload indexes, by field name (see Segment+Filter.swift); changed under the shard's
    /// write lock.
    package internal(set) var fieldIndexes: [String: FieldIndex] = [:]
    /// Whether payload_index.bin holds exactly `fieldIndexes` (sealed segments).
    var fieldIndexFileCurrent = false

    /// The most payload bytes one segment's payload.dat may hold (virtual reservation only).
    static let payloadCapacity = 1 << 34

    /// Opens a segment's files (creating empty ones for a new segment).
    /// - Parameter capacity: the most rows it may ever hold; for a sealed segment, its row count.
    /// - Parameter committedFlush: the manifest's flush sequence number (undo files of later flushes are applied).
    /// - Parameter graphs: which vectors have a graph once indexed (all when nil).
    /// - Parameter quantization: indexed segments keep codes of their dense vectors (nil: none).
    package init(directory: String, info: SegmentInfo, vectors layout: VectorLayout, graphs: [Bool]? = nil, capacity: Int,
                 committedFlush: UInt64 = 0, quantization: Quantization? = nil) throws {
        self.quantization = quantization
        self.id = info.id
        self.directory = directory
        self.capacity = max(capacity, info.rows)
        self.appendable = info.appendable
        try FileIO.makeDirectories(directory)
        typealias F = DataDirectory.SegmentFile
        func path(_ f: F) -> String { directory + "/" + f.rawValue }
        let cap = self.capacity
        let c = committedFlush
        stores = try layout.specs.enumerated().map { k, spec in
            let files = VectorStore.files(k)
            return VectorStore(spec: spec,
                               data: try MappedArray(path: directory + "/" + files.vectors, count: info.rows * spec.dim,
                                                     capacity: cap * spec.dim, committedFlush: c),
                               absent: layout.named ? try MappedArray(path: directory + "/" + files.absent, count: (info.rows + 63) / 64,
                                                                      capacity: (cap + 63) / 64, committedFlush: c) : nil)
        }
        sparseStores = try layout.sparse.enumerated().map { k, spec in
            let files = SparseStore.files(k)
            return SparseStore(spec: spec, values: try RowValues(
                refs: directory + "/" + files.refs, data: directory + "/" + files.data, rows: info.rows, rowCapacity: cap,
                elements: k < info.sparseEntries.count ? info.sparseEntries[k] : 0, appendable: info.appendable,
                appendableCapacity: SparseStore.appendableCapacity, committedFlush: c))
        }
        multiStores = try layout.multi.enumerated().map { k, spec in
            let files = MultiStore.files(k)
            return MultiStore(spec: spec, values: try RowValues(
                refs: directory + "/" + files.refs, data: directory + "/" + files.data, rows: info.rows, rowCapacity: cap,
                elements: k < info.multiFloats.count ? info.multiFloats[k] : 0, appendable: info.appendable,
                appendableCapacity: MultiStore.appendableCapacity, unit: spec.dim, committedFlush: c))
        }
        rows = try MappedArray(path: path(.rows), count: info.rows, capacity: cap, committedFlush: c)
        deleted = try MappedArray(path: path(.deleted), count: (info.rows + 63) / 64, capacity: (cap + 63) / 64, committedFlush: c)
        payloadIndex = try MappedArray(path: path(.payloadIndex), count: info.rows, capacity: cap, committedFlush: c)
        payloadData = try MappedArray(path: path(.payloadData), count: info.payloadBytes,
                                      capacity: info.appendable ? max(Segment.payloadCapacity, info.payloadBytes) : info.payloadBytes,
                                      committedFlush: c)
        for w in deleted.buffer { deletedCount += w.nonzeroBitCount }
        if !info.appendable { for store in sparseStores { store.freeze(rows: info.rows) } }
        // Checksums describe a sealed segment; an appendable one (a crash after sealing, before
        // the manifest said so) will be sealed, and summed, again.
        if info.appendable {
            // Files that describe a sealed segment's rows: an appendable one (a crash after
            // sealing, before the manifest said so) writes them again when it is sealed.
            FileIO.remove(directory + "/" + Segment.checksumsFile)
            FileIO.remove(directory + "/" + Segment.fieldIndexFile)
            for k in layout.specs.indices { FileIO.remove(directory + "/" + VectorStore.files(k).graph) }
            for k in layout.multi.indices { FileIO.remove(directory + "/" + MultiStore.graphFile(k)) }
        }
        if info.indexed {
            // A graph can be rebuilt from the vectors: a damaged or missing one leaves the segment
            // searched exactly (and unindexed, so the optimizer builds it again), not unopenable.
            do {
                for (k, store) in stores.enumerated() where graphs?[k] ?? true {
                    let path = directory + "/" + VectorStore.files(k).graph
                    let g = try HNSWGraph.open(path)
                    guard g.count == info.rows else {
                        throw VQError(.corrupt, "\(path) has \(g.count) nodes; the segment has \(info.rows) rows")
                    }
                    store.graph = g
                }
                for (k, store) in multiStores.enumerated() where graphs?[stores.count + k] ?? true {
                    try store.openGraph(directory + "/" + MultiStore.graphFile(k), rows: info.rows)
                }
                // Codes are derived data: made again at open (a few ms per 100k rows).
                if let quantization { for store in stores where store.graph != nil { store.codes = store.makeCodes(rows: info.rows, quantization) } }
                indexed = true
            } catch {
                for store in stores { store.graph = nil }
                for store in multiStores { store.attach(nil, rows: 0) }
                graphProblem = "\(error)"
            }
        }
    }

    /// Why the segment's graph could not be opened (it is searched exactly until rebuilt).
    package private(set) var graphProblem: String?

    package static let checksumsFile = "checksums.json"

    /// The files a sealed segment never changes again, with their bytes now.
    private var immutableFiles: [(DataDirectory.SegmentFile, UnsafeRawBufferPointer)] {
        [(.vectors, UnsafeRawBufferPointer(stores[0].data.buffer)), (.rows, UnsafeRawBufferPointer(rows.buffer)),
         (.payloadIndex, UnsafeRawBufferPointer(payloadIndex.buffer)), (.payloadData, UnsafeRawBufferPointer(payloadData.buffer))]
    }

    /// Checks the sealed files against `checksums.json` (segments sealed before block checksums).
    /// - Returns: what is damaged, naming the file; nil when all match or nothing can be checked
    ///   (no checksums yet, or ones recorded past what the manifest covers: an unfinished flush).
    package func verifyChecksums() -> String? {
        let path = directory + "/" + Segment.checksumsFile
        guard FileIO.exists(path) else { return nil }
        guard let json = try? ChecksummedJSON.read(path), json["format"]?.stringValue == "vq-segment-checksums" else {
            return "\(path) is damaged"
        }
        for (file, bytes) in immutableFiles {
            guard let entry = json["files"]?[file.rawValue], let length = entry["bytes"]?.intValue, let crc = entry["crc32c"]?.uint64Value else {
                return "\(path) lacks \(file.rawValue)"
            }
            if Int(length) != bytes.count { return Int(length) > bytes.count ? nil : "\(directory)/\(file.rawValue) is \(bytes.count) bytes; it was sealed at \(length)" }
            if UInt64(CRC32C.update(0, bytes)) != crc { return "\(directory)/\(file.rawValue) is damaged (checksum mismatch)" }
        }
        return nil
    }

    /// Checks every file against its block checksums (see MappedArray), reading the files.
    /// - Returns: the first damage found, naming the file; nil when all match.
    package func verifyBlocks() -> String? {
        for store in stores { if let problem = store.verify() { return problem } }
        for store in sparseStores { if let problem = store.verify() { return problem } }
        for store in multiStores { if let problem = store.verify() { return problem } }
        return rows.verify() ?? deleted.verify() ?? payloadIndex.verify() ?? payloadData.verify()
    }

    package static let graphFile = "hnsw.bin"

    /// Builds the graph of each vector whose params have m > 0 over every row that has it
    /// (deleted ones stay as tombstones), and of each multi-vector over its tokens, and writes
    /// them durably.
    ///
    /// Does not attach them: call `attach(_:)` under the shard's write lock, since searches read
    /// the graphs. Only for sealed segments, whose rows no longer change.
    /// - Parameter params: per dense vector, then per multi-vector (ShardOptions.graphParams).
    /// - Parameter seeds: per dense vector, a graph its first rows already have (see HNSWBuilder).
    /// - Throws: `.cancelled` when `shouldContinue` said stop.
    package func buildIndex(_ params: [HNSWParams], seeds: [(graph: HNSWGraph, oldOf: [Int32])?] = [],
                            shouldContinue: (@Sendable () -> Bool)? = nil) throws -> BuiltIndex {
        precondition(!appendable && params.count == stores.count + multiStores.count)
        let multi = try multiStores.enumerated().map { k, store -> HNSWGraph? in
            guard params[stores.count + k].m > 0 else { return nil }
            guard let g = try store.buildGraph(params[stores.count + k], rows: rowCount, path: directory + "/" + MultiStore.graphFile(k),
                                               shouldContinue: shouldContinue) else {
                throw VQError(.cancelled, "indexing segment \(id) was stopped")
            }
            return g
        }
        let graphs: [HNSWGraph?] = try stores.enumerated().map { k, store in
            guard params[k].m > 0 else { return nil }
            guard let g = HNSWBuilder.build(vectors: store.data.base, count: rowCount, dim: store.dim, distance: store.distance,
                                            params: params[k], skip: store.absentCount > 0 ? UnsafePointer(store.absent!.base) : nil,
                                            seed: k < seeds.count ? seeds[k] : nil, shouldContinue: shouldContinue) else {
                throw VQError(.cancelled, "indexing segment \(id) was stopped")
            }
            try g.write(to: directory + "/" + VectorStore.files(k).graph)
            return g
        } + multi
        let codes = zip(stores, graphs).map { store, g in g == nil ? nil : quantization.map { store.makeCodes(rows: rowCount, $0) } }
        return BuiltIndex(graphs: graphs, codes: codes)
    }

    /// Graphs (per dense vector, then per multi-vector) and codes (per dense vector) of a segment.
    package struct BuiltIndex {
        package var graphs: [HNSWGraph?]
        package var codes: [VectorCodes?]
    }

    /// Publishes what `buildIndex` built.
    package func attach(_ built: BuiltIndex) {
        let graphs = built.graphs
        precondition(graphs.count == stores.count + multiStores.count)
        for (k, (store, g)) in zip(stores, graphs).enumerated() {
            precondition(g == nil || g!.count == rowCount)
            store.graph = g
            store.codes = k < built.codes.count ? built.codes[k] : nil
        }
        for (k, store) in multiStores.enumerated() { store.attach(graphs[stores.count + k], rows: rowCount) }
        indexed = true
    }

    package var rowCount: Int { rows.count }
    package var liveCount: Int { rows.count - deletedCount }
    package var isFull: Bool { rows.count >= capacity }

    package var info: SegmentInfo {
        var i = SegmentInfo(id: id, rows: rows.count, payloadBytes: payloadData.count, appendable: appendable, indexed: indexed)
        i.sparseEntries = sparseStores.map(\.entryCount)
        i.multiFloats = multiStores.map(\.floatCount)
        return i
    }

    /// Whether each sparse store can take these vectors (its data file is bounded).
    package func hasRoom(for sparse: [SparseVector?], multi: [[Float]?] = []) -> Bool {
        zip(sparseStores, sparse).allSatisfy { store, v in store.entryCount + (v?.count ?? 0) <= SparseStore.appendableCapacity }
            && zip(multiStores, multi).allSatisfy { store, v in store.floatCount + (v?.count ?? 0) <= MultiStore.appendableCapacity }
    }

    /// Entries of the largest sparse store (merges keep under SparseStore.appendableCapacity).
    package var sparseEntries: Int { sparseStores.map(\.entryCount).max() ?? 0 }

    /// Floats of the largest multi-vector store (merges keep under MultiStore.appendableCapacity).
    package var multiFloats: Int { multiStores.map(\.floatCount).max() ?? 0 }

    /// Stops taking new rows (its payload indexes sort their numbers: rows no longer change).
    package func seal() {
        appendable = false
        for index in fieldIndexes.values { index.freeze(rows: rowCount) }
        for store in sparseStores { store.freeze(rows: rowCount) }
    }

    // MARK: rows

    @inline(__always)
    package func isDeleted(_ row: Int) -> Bool {
        deleted.base[row >> 6] & (1 << UInt64(row & 63)) != 0
    }

    package func record(_ row: Int) -> RowRecord { rows.base[row] }

    /// Row `row`'s vectors, absent ones nil.
    package func vectors(_ row: Int) -> [[Float]?] {
        stores.map { $0.lacks(row) ? nil : Array($0.vector(row)) }
    }

    /// Row `row`'s multi-vectors (flat), absent ones nil.
    package func multiVectors(_ row: Int) -> [[Float]?] {
        multiStores.map { $0.value(row) }
    }

    /// Row `row`'s sparse vectors, absent ones nil.
    package func sparseVectors(_ row: Int) -> [SparseVector?] {
        sparseStores.map { $0.vector(row) }
    }

    /// Row `row`'s vectors as buffers for `body` (absent ones nil).
    func withVectors<T>(_ row: Int, _ body: ([UnsafeBufferPointer<Float>?]) throws -> T) rethrows -> T {
        try body(stores.map { $0.lacks(row) ? nil : $0.vector(row) })
    }

    /// Marks `row` deleted (idempotent).
    package func markDeleted(_ row: Int) {
        let word = row >> 6, bit = UInt64(1) << UInt64(row & 63)
        if deleted[word] & bit == 0 {
            deleted[word] |= bit
            deletedCount += 1
        }
    }

    /// Appends a row.
    /// - Parameter vectors: one per store; nil where the point lacks the vector (named vectors).
    /// - Returns: the new row number.
    package func append(id: PointID, version: UInt64, vectors: [UnsafeBufferPointer<Float>?], sparse: [SparseVector?] = [],
                        multi: [[Float]?] = [], payload: [UInt8]?) throws -> Int {
        precondition(vectors.count == stores.count && (sparse.isEmpty || sparse.count == sparseStores.count))
        let row = rows.count
        guard row < capacity else { throw VQError(.internal, "segment \(id) is full (\(capacity) rows)") }
        for (store, v) in zip(stores, vectors) {
            if let v {
                precondition(v.count == store.dim)
                try store.data.append(contentsOf: v)
            } else {
                try store.data.append(repeating: 0, count: store.dim)
            }
            if store.absent != nil { try store.setAbsent(row, v == nil) }
        }
        for (k, store) in sparseStores.enumerated() { try store.append(k < sparse.count ? sparse[k] : nil) }
        for (k, store) in multiStores.enumerated() { try store.append(k < multi.count ? multi[k] : nil) }
        try rows.append(RowRecord(id: id, version: version))
        if (row + 1 + 63) / 64 > deleted.count { try deleted.append(0) }
        try payloadIndex.append(try storePayload(payload))
        return row
    }

    /// Replaces a live row's vectors, version and payload in place.
    package func overwrite(row: Int, version: UInt64, vectors: [UnsafeBufferPointer<Float>?], sparse: [SparseVector?] = [],
                           multi: [[Float]?] = [], payload: [UInt8]?) throws {
        for (k, store) in sparseStores.enumerated() { try store.overwrite(row, k < sparse.count ? sparse[k] : nil) }
        for (k, store) in multiStores.enumerated() { try store.overwrite(row, k < multi.count ? multi[k] : nil) }
        for (store, v) in zip(stores, vectors) {
            let dim = store.dim
            if let v {
                (store.data.base + row * dim).update(from: v.baseAddress!, count: dim)
            } else {
                (store.data.base + row * dim).update(repeating: 0, count: dim)
            }
            store.data.markDirty((row * dim)..<((row + 1) * dim))
            if store.absent != nil { try store.setAbsent(row, v == nil) }
        }
        var r = rows[row]
        r.version = version
        rows[row] = r
        payloadIndex[row] = try storePayload(payload, reusing: payloadIndex[row])
    }

    /// Sets a row's payload bytes (nil clears it).
    package func setPayload(row: Int, version: UInt64, _ payload: [UInt8]?) throws {
        var r = rows[row]
        r.version = version
        rows[row] = r
        payloadIndex[row] = try storePayload(payload, reusing: payloadIndex[row])
    }

    /// Stores payload bytes: in the row's old slot when they fit there (overwriting the same
    /// points must not grow the segment), else appended.
    private func storePayload(_ payload: [UInt8]?, reusing old: PayloadRef? = nil) throws -> PayloadRef {
        guard let payload, !payload.isEmpty else { return PayloadRef(offset: 0, length: 0) }
        if let old, old.length >= UInt64(payload.count), let start = Int(exactly: old.offset), start <= payloadData.count - payload.count {
            payload.withUnsafeBufferPointer { (payloadData.base + start).update(from: $0.baseAddress!, count: $0.count) }
            payloadData.markDirty(start..<(start + payload.count))
            return PayloadRef(offset: old.offset, length: UInt64(payload.count))
        }
        let offset = payloadData.count
        try payload.withUnsafeBufferPointer { (p) in try payloadData.append(contentsOf: p) }
        return PayloadRef(offset: UInt64(offset), length: UInt64(payload.count))
    }

    /// The row's payload JSON bytes, or nil.
    package func payloadBytes(_ row: Int) -> [UInt8]? {
        let ref = payloadIndex.base[row]
        // Checked without overflow: the index is read from a file.
        let size = UInt64(payloadData.count)
        guard ref.length > 0, ref.length <= size, ref.offset <= size - ref.length else { return nil }
        return Array(UnsafeBufferPointer(start: payloadData.base + Int(ref.offset), count: Int(ref.length)))
    }

    /// The row's payload as JSON (nil when absent or unreadable).
    package func payload(_ row: Int) -> JSON? {
        guard let bytes = payloadBytes(row) else { return nil }
        return try? JSONParser.parse(bytes)
    }

    /// Writes everything changed since the last flush and fsyncs it; overwrites stay undoable
    /// until `dropUndo()` (see MappedArray).
    package func flush(sequence: UInt64 = 0) throws {
        for store in stores { try store.flush(sequence: sequence) }
        for store in sparseStores { try store.flush(sequence: sequence) }
        for store in multiStores { try store.flush(sequence: sequence) }
        try rows.flush(sequence: sequence)
        try deleted.flush(sequence: sequence)
        try payloadData.flush(sequence: sequence)
        try payloadIndex.flush(sequence: sequence)
    }

    /// Forgets the undo data of the last flush (its manifest is durable).
    package func dropUndo() {
        for store in stores { store.dropUndo() }
        for store in sparseStores { store.dropUndo() }
        for store in multiStores { store.dropUndo() }
        rows.dropUndo()
        deleted.dropUndo()
        payloadIndex.dropUndo()
        payloadData.dropUndo()
    }
}
