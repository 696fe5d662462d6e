// The binary forms of shard calls between peers (`RemoteShard` sends them, the peer routes in
// API/QdrantAPI+Cluster.swift read them). Little-endian; vectors as raw float32, payloads and
// filters as compact JSON (their one encoder). Every decoder reads bytes from the network:
// counts are checked against the bytes present before anything is reserved, floats must be
// finite, payloads JSON objects, and nothing may trail the message.
//
//   id          | tag u8 (0 number, 1 uuid) | a u64 | b u64 |                    (17 bytes)
//   json        | length u32 | UTF-8 JSON |            (length 0xFFFFFFFF: absent)
//   search      | dim u32 | dim x f32 | k u32 | ef u32 | flags u8 (1 exact, 2 indexed_only,
//               | 4 with_payload, 8 sparse, 16 multi, 32 quantization ignored, 64 no re-scoring,
//               | 128 oversampling follows) | vector number u32 | [oversampling f32] | filter json |
//               | sparse: sparse vector | multi: n u32 | n x dim x f32 |
//   hits        | count u32 | count x (id | version u64 | score f32 | rank f32 | payload json) |
//               | skipped u64 |
//   scan        | flags u8 (1 with_vector, 2 with_payload, 4 ids) | [count u32 | ids] | filter json |
//   records     | count u32 | vectors u32 (0: none asked) | dims (vectors x u32; 0: none present) |
//               | count x (id | version u64 | per vector: present u8 [, dim x f32] |
//               | with vectors: sparse count u8, each present u8 [, sparse vector]; multi count u8,
//               | each present u8 [, n u32, n x dim x f32] | payload json) |
//   receive     | flags u8 (1 clear, 2 last) | seq u64 | epoch u64 | records |
//   transfer    | to u64 | flags u8 (1 after, 2 copy by records, 4 copy by files) | seq u64 | epoch u64 |
//   count       | points u64 |
//   operation   | wait u8 (1 durable, 2 applied) | seq u64 | epoch u64 | Operation's encoding |

import Foundation

extension ByteWriter {
    package mutating func pointID(_ id: PointID) {
        switch id {
        case .number(let n): u8(0); u64(n); u64(0)
        case .uuid(let hi, let lo): u8(1); u64(hi); u64(lo)
        }
    }

    /// JSON as a length-prefixed blob; nil as the absent marker.
    mutating func json(_ value: JSON?) {
        guard let value else { u32(UInt32.max); return }
        blob(JSONWriter.bytes(value))
    }

    mutating func f32(_ v: Float) { u32(v.bitPattern) }
}

extension ByteReader {
    package static let pointIDBytes = 17

    package mutating func pointID() throws -> PointID {
        let tag = try u8()
        let a = try u64(), b = try u64()
        switch tag {
        case 0: return .number(a)
        case 1: return .uuid(a, b)
        default: throw VQError(.corrupt, "unknown point id tag \(tag)")
        }
    }

    /// A count of items of at least `size` bytes each, checked against what remains.
    mutating func count(of size: Int, _ what: String) throws -> Int {
        let n = Int(try u32())
        guard n <= remaining / max(1, size) else { throw VQError(.corrupt, "\(what) claims \(n) items but \(remaining) bytes remain") }
        return n
    }

    mutating func json() throws -> JSON? {
        let n = try u32()
        if n == UInt32.max { return nil }
        let bytes = try rawBlob(Int(n))
        do { return try JSONParser.parse(bytes) } catch { throw VQError(.corrupt, "embedded JSON is malformed: \(error)") }
    }

    /// A payload: absent, or a JSON object.
    mutating func payload() throws -> JSON? {
        guard let p = try json() else { return nil }
        guard case .object = p else { throw VQError(.corrupt, "a payload is not a JSON object") }
        return p
    }

    mutating func f32() throws -> Float { Float(bitPattern: try u32()) }

    /// A sparse vector: | n u32 | n x index u32 | n x f32 |, checked (distinct indices, finite values).
    mutating func sparseVector() throws -> SparseVector {
        let n = try count(of: 8, "sparse entries")
        guard n <= SparseVector.maxEntries else { throw VQError(.corrupt, "a sparse vector has \(n) entries; expected at most \(SparseVector.maxEntries)") }
        var indices: [UInt32] = []
        indices.reserveCapacity(n)
        for _ in 0..<n { indices.append(try u32()) }
        var values: [Float] = []
        try floats(n, into: &values)
        do { return try SparseVector(indices: indices, values: values) } catch let e as VQError { throw VQError(.corrupt, e.message) }
    }

    /// `dim` floats, each finite.
    mutating func vector(_ dim: Int) throws -> [Float] {
        var v: [Float] = []
        try floats(dim, into: &v)
        if let bad = v.firstIndex(where: { !$0.isFinite }) { throw VQError(.corrupt, "vector element \(bad) is \(v[bad]); expected a finite number") }
        return v
    }

    func end() throws {
        guard remaining == 0 else { throw VQError(.corrupt, "\(remaining) bytes follow the message") }
    }
}

/// Peer messages of shard calls.
package enum ShardWire {
    /// Decodes `bytes` with `read`, turning any problem into a 400-kind error naming `what`.
    static func decode<T>(_ bytes: [UInt8], _ what: String, _ read: (inout ByteReader) throws -> T) throws -> T {
        do {
            return try bytes.withUnsafeBytes { raw in
                var r = ByteReader(raw)
                let value = try read(&r)
                try r.end()
                return value
            }
        } catch let e as VQError {
            throw VQError.invalid("\(what) is malformed: \(e.message)")
        }
    }

    // MARK: search

    package static func encodeSearch(_ query: [Float], _ s: ShardSearch) -> [UInt8] {
        var w = ByteWriter(capacity: query.count * 4 + 64)
        w.u32(UInt32(query.count))
        query.withUnsafeBufferPointer { w.floats($0) }
        w.u32(UInt32(s.k))
        w.u32(UInt32(min(s.ef, Int(UInt32.max))))
        var flags: UInt8 = (s.exact ? 1 : 0) | (s.indexedOnly ? 2 : 0) | (s.withPayload ? 4 : 0) | (s.sparse != nil ? 8 : 0) | (s.multi != nil ? 16 : 0)
        if s.quantization == nil { flags |= 32 } else if s.quantization?.rescore == false { flags |= 64 }
        let oversampling = s.quantization?.oversampling ?? 1
        if oversampling != 1 { flags |= 128 }
        w.u8(flags)
        w.u32(UInt32(s.vector))
        if oversampling != 1 { w.f32(Float(oversampling)) }
        w.json(s.filter?.json)
        if let sparse = s.sparse { sparseVector(sparse, &w) }
        if let multi = s.multi {
            w.u32(UInt32(multi.count))
            multi.withUnsafeBufferPointer { w.floats($0) }
        }
        return w.bytes
    }

    /// - Throws: `.invalidInput` unless the searched vector is one of `dims` and the query has its
    ///   dimension in finite values, k is 1 to `maxResults` and ef at least 1.
    package static func decodeSearch(_ bytes: [UInt8], dims: [Int], sparse: Int = 0, multiDims: [Int] = [],
                                     maxResults: Int) throws -> ([Float], ShardSearch) {
        try decode(bytes, "shard search") { r in
            let n = Int(try r.u32())
            guard n <= dims.max() ?? 0 else { throw VQError(.corrupt, "the vector has \(n) dimensions; the shard has vectors of \(dims)") }
            let query = try r.vector(n)
            let k = Int(try r.u32()), ef = Int(try r.u32())
            guard (1...maxResults).contains(k) else { throw VQError(.corrupt, "k is \(k); expected 1 to \(maxResults)") }
            guard ef >= 1 else { throw VQError(.corrupt, "ef is \(ef); expected 1 or more") }
            let flags = try r.u8()
            var s = ShardSearch(k: k, ef: ef)
            s.exact = flags & 1 != 0
            s.indexedOnly = flags & 2 != 0
            s.withPayload = flags & 4 != 0
            let v = Int(try r.u32())
            let oversampling = flags & 128 != 0 ? try r.f32() : 1
            guard oversampling.isFinite, oversampling >= 1, oversampling <= 100 else {
                throw VQError(.corrupt, "oversampling is \(oversampling); expected 1 to 100")
            }
            s.quantization = flags & 32 != 0 ? nil : QuantizedSearch(rescore: flags & 64 == 0, oversampling: Double(oversampling))
            // Re-scoring reads oversampling x k float vectors: bounded like k itself.
            if let q = s.quantization, Double(k) * q.oversampling > Double(maxResults) {
                throw VQError(.corrupt, "k x oversampling is \(Double(k) * q.oversampling); expected at most \(maxResults)")
            }
            guard flags & 24 != 24 else { throw VQError(.corrupt, "a search is both sparse and multi") }
            if flags & 16 != 0 {
                guard multiDims.indices.contains(v), n == 0 else { throw VQError(.corrupt, "multi-vector \(v) is searched; the shard has \(multiDims.count)") }
            } else if flags & 8 != 0 {
                guard (0..<sparse).contains(v), n == 0 else { throw VQError(.corrupt, "sparse vector \(v) is searched; the shard has \(sparse)") }
            } else {
                guard dims.indices.contains(v) else { throw VQError(.corrupt, "vector \(v) is searched; the shard has \(dims.count)") }
                guard dims[v] == n else { throw VQError(.corrupt, "the query has \(n) dimensions; vector \(v) has \(dims[v])") }
            }
            s.vector = v
            if let f = try r.json() {
                do { s.filter = try Filter(json: f) } catch let e as VQError { throw VQError(.corrupt, "the filter: \(e.message)") }
            }
            if flags & 8 != 0 { s.sparse = try r.sparseVector() }
            if flags & 16 != 0 {
                let count = try r.count(of: 4, "multi-vector floats")
                guard count > 0, count % multiDims[v] == 0, count / multiDims[v] <= MultiStore.maxVectors else {
                    throw VQError(.corrupt, "a multi-vector query of \(count) floats does not fit \(multiDims[v])-dimensional vectors")
                }
                s.multi = try r.vector(count)
            }
            return (query, s)
        }
    }

    package static func encodeHits(_ result: (hits: [ScoredPoint], skipped: Int)) -> [UInt8] {
        var w = ByteWriter(capacity: 32 * result.hits.count + 16)
        w.u32(UInt32(result.hits.count))
        for h in result.hits {
            w.pointID(h.id)
            w.u64(h.version)
            w.f32(h.score)
            w.f32(h.rank)
            w.json(h.payload)
        }
        w.u64(UInt64(max(0, result.skipped)))
        return w.bytes
    }

    /// - Parameter maxHits: the k the search asked for; a peer answering with more is refused.
    package static func decodeHits(_ bytes: [UInt8], maxHits: Int = .max) throws -> (hits: [ScoredPoint], skipped: Int) {
        try decode(bytes, "a peer's search answer") { r in
            let n = try r.count(of: 37, "hits")
            guard n <= maxHits else { throw VQError(.corrupt, "\(n) hits answer a search for \(maxHits)") }
            var hits: [ScoredPoint] = []
            hits.reserveCapacity(n)
            for _ in 0..<n {
                let id = try r.pointID(), version = try r.u64(), score = try r.f32(), rank = try r.f32()
                guard !score.isNaN, !rank.isNaN else { throw VQError(.corrupt, "a hit's score or rank is not a number") }
                hits.append(ScoredPoint(id: id, version: version, score: score, rank: rank, payload: try r.payload()))
            }
            let skipped = try r.u64()
            guard skipped < 1 << 53 else { throw VQError(.corrupt, "skipped count \(skipped) is out of range") }
            return (hits, Int(skipped))
        }
    }

    // MARK: points

    package static func encodeScan(ids: [PointID]?, filter: Filter?, withVector: Bool, withPayload: Bool) -> [UInt8] {
        var w = ByteWriter(capacity: 17 * (ids?.count ?? 0) + 16)
        w.u8((withVector ? 1 : 0) | (withPayload ? 2 : 0) | (ids != nil ? 4 : 0))
        if let ids {
            w.u32(UInt32(ids.count))
            for id in ids { w.pointID(id) }
        }
        w.json(filter?.json)
        return w.bytes
    }

    package static func decodeScan(_ bytes: [UInt8]) throws -> (ids: [PointID]?, filter: Filter?, withVector: Bool, withPayload: Bool) {
        try decode(bytes, "shard scan") { r in
            let flags = try r.u8()
            var ids: [PointID]?
            if flags & 4 != 0 {
                let n = try r.count(of: ByteReader.pointIDBytes, "ids")
                var list: [PointID] = []
                list.reserveCapacity(n)
                for _ in 0..<n { list.append(try r.pointID()) }
                ids = list
            }
            var filter: Filter?
            if let f = try r.json() {
                do { filter = try Filter(json: f) } catch let e as VQError { throw VQError(.corrupt, "the filter: \(e.message)") }
            }
            return (ids, filter, flags & 1 != 0, flags & 2 != 0)
        }
    }

    static func sparseVector(_ v: SparseVector, _ w: inout ByteWriter) {
        w.u32(UInt32(v.count))
        for i in v.indices { w.u32(i) }
        v.values.withUnsafeBufferPointer { w.floats($0) }
    }

    // MARK: sparse statistics

    package static func encodeSparseStats(store: Int, terms: [UInt32]) -> [UInt8] {
        var w = ByteWriter(capacity: 8 + terms.count * 4)
        w.u32(UInt32(store))
        w.u32(UInt32(terms.count))
        for t in terms { w.u32(t) }
        return w.bytes
    }

    /// - Throws: `.invalidInput` unless `store` is one of `sparse` and at most 65,536 terms are asked.
    package static func decodeSparseStats(_ bytes: [UInt8], sparse: Int) throws -> (store: Int, terms: [UInt32]) {
        try decode(bytes, "sparse statistics request") { r in
            let store = Int(try r.u32())
            guard (0..<sparse).contains(store) else { throw VQError(.corrupt, "sparse vector \(store) is asked; the shard has \(sparse)") }
            let n = try r.count(of: 4, "terms")
            guard n <= SparseVector.maxEntries else { throw VQError(.corrupt, "\(n) terms asked; expected at most \(SparseVector.maxEntries)") }
            var terms: [UInt32] = []
            for _ in 0..<n { terms.append(try r.u32()) }
            return (store, terms)
        }
    }

    package static func encodeSparseCounts(_ s: (points: Int, df: [Int])) -> [UInt8] {
        var w = ByteWriter(capacity: 12 + s.df.count * 8)
        w.u64(UInt64(s.points))
        w.u32(UInt32(s.df.count))
        for d in s.df { w.u64(UInt64(d)) }
        return w.bytes
    }

    /// - Throws: unless there are `terms` counts, none above the point count.
    package static func decodeSparseCounts(_ bytes: [UInt8], terms: Int) throws -> (points: Int, df: [Int]) {
        try decode(bytes, "sparse statistics") { r in
            let points = try r.u64()
            guard points < 1 << 40 else { throw VQError(.corrupt, "point count \(points) is out of range") }
            let n = Int(try r.u32())
            guard n == terms else { throw VQError(.corrupt, "\(n) counts for \(terms) terms") }
            var df: [Int] = []
            for _ in 0..<n {
                let d = try r.u64()
                guard d <= points else { throw VQError(.corrupt, "a term count \(d) exceeds the point count \(points)") }
                df.append(Int(d))
            }
            return (Int(points), df)
        }
    }

    /// Records with all their vectors (each present or not), or none when `withVector` is false.
    ///
    ///   | n u32 | vectors per record u32 (0: none) | dims (that many u32) |
    ///   | per record: id, version u64, per vector (presence u8 [, dim x f32]), payload JSON |
    package static func encodeRecords(_ records: [PointRecord], withVector: Bool, into w: inout ByteWriter) {
        w.u32(UInt32(records.count))
        let first = withVector ? records.first?.vectors ?? [] : []
        let dims = first.indices.map { k in records.lazy.compactMap { $0.vectors[k]?.count }.first ?? 0 }
        w.u32(UInt32(dims.count))
        for d in dims { w.u32(UInt32(d)) }
        for r in records {
            w.pointID(r.id)
            w.u64(r.version)
            for k in dims.indices {
                if let v = r.vectors[k] {
                    w.u8(1)
                    v.withUnsafeBufferPointer { w.floats($0) }
                } else {
                    w.u8(0)
                }
            }
            if withVector {
                w.u8(UInt8(r.sparse.count))
                for v in r.sparse {
                    if let v { w.u8(1); sparseVector(v, &w) } else { w.u8(0) }
                }
                w.u8(UInt8(r.multi.count))
                for v in r.multi {
                    if let v {
                        w.u8(1)
                        w.u32(UInt32(v.count))
                        v.withUnsafeBufferPointer { w.floats($0) }
                    } else {
                        w.u8(0)
                    }
                }
            }
            w.json(r.payload)
        }
    }

    package static func encodeRecords(_ records: [PointRecord], withVector: Bool) -> [UInt8] {
        let floats = withVector ? records.reduce(0) { $0 + $1.vectors.reduce(0) { $0 + ($1?.count ?? 0) } } : 0
        var w = ByteWriter(capacity: records.count * 32 + floats * 4 + 8)
        encodeRecords(records, withVector: withVector, into: &w)
        return w.bytes
    }

    package static func decodeRecords(_ bytes: [UInt8], dims: [Int], sparse: Int = 0, multiDims: [Int] = []) throws -> [PointRecord] {
        try decode(bytes, "peer records") { r in try records(&r, dims: dims, sparse: sparse, multiDims: multiDims) }
    }

    /// - Parameter dims: the collection's vectors; records carry all of them (where present) or none.
    /// - Parameter sparse: the collection's sparse vectors when vectors were asked for (each record
    ///   carries that many), else 0.
    static func records(_ r: inout ByteReader, dims expected: [Int], sparse: Int = 0, multiDims: [Int] = []) throws -> [PointRecord] {
        let n = Int(try r.u32())
        let stores = Int(try r.u32())
        // Asked for vectors (`expected` not empty), records carry every one (each present or not).
        let withVector = !expected.isEmpty || sparse > 0 || !multiDims.isEmpty
        guard stores == expected.count || (stores == 0 && (!withVector || n == 0)) else {
            throw VQError(.corrupt, "records carry \(stores) vectors each; expected \(expected.count)")
        }
        var dims: [Int] = []
        for k in 0..<stores {
            let d = Int(try r.u32())
            // A dimension of 0: no record carried that vector.
            guard d == expected[k] || d == 0 else { throw VQError(.corrupt, "records have \(d)-dimensional vectors; expected \(expected[k])") }
            dims.append(expected[k])
        }
        let (least, o) = n.multipliedReportingOverflow(by: ByteReader.pointIDBytes + 8 + 4 + stores)
        guard !o, least <= r.remaining else { throw VQError(.corrupt, "\(n) records claimed but \(r.remaining) bytes remain") }
        var out: [PointRecord] = []
        out.reserveCapacity(n)
        for _ in 0..<n {
            let id = try r.pointID(), version = try r.u64()
            var vectors: [[Float]?] = []
            for d in dims {
                switch try r.u8() {
                case 0: vectors.append(nil)
                case 1: vectors.append(try r.vector(d))
                case let flag: throw VQError(.corrupt, "a record has vector flag \(flag); expected 0 or 1")
                }
            }
            var sparseVectors: [SparseVector?] = []
            var multi: [[Float]?] = []
            if withVector {
                let m = Int(try r.u8())
                guard m == sparse else { throw VQError(.corrupt, "a record carries \(m) sparse vectors; expected \(sparse)") }
                for _ in 0..<m {
                    switch try r.u8() {
                    case 0: sparseVectors.append(nil)
                    case 1: sparseVectors.append(try r.sparseVector())
                    case let flag: throw VQError(.corrupt, "a record has sparse flag \(flag); expected 0 or 1")
                    }
                }
                let mm = Int(try r.u8())
                guard mm == multiDims.count else { throw VQError(.corrupt, "a record carries \(mm) multi-vectors; expected \(multiDims.count)") }
                for dim in multiDims {
                    switch try r.u8() {
                    case 0: multi.append(nil)
                    case 1:
                        let count = try r.count(of: 4, "multi-vector floats")
                        guard count > 0, count % dim == 0, count / dim <= MultiStore.maxVectors else {
                            throw VQError(.corrupt, "a record's multi-vector of \(count) floats does not fit \(dim)-dimensional vectors")
                        }
                        multi.append(try r.vector(count))
                    case let flag: throw VQError(.corrupt, "a record has multi-vector flag \(flag); expected 0 or 1")
                    }
                }
            }
            out.append(PointRecord(id: id, version: version, vectors: vectors, sparse: sparseVectors, multi: multi, payload: try r.payload()))
        }
        return out
    }

    // MARK: transfers

    /// One batch of a whole-shard copy: the first clears the replica; the last carries the
    /// source's position (`seq`, `epoch`).
    package struct ReceiveBatch: Sendable {
        package var clear: Bool
        package var last: (seq: UInt64, epoch: UInt64)?
        package var records: [PointRecord]
    }

    package static func encodeReceive(_ b: ReceiveBatch) -> [UInt8] {
        var w = ByteWriter(capacity: 64)
        w.u8((b.clear ? 1 : 0) | (b.last != nil ? 2 : 0))
        w.u64(b.last?.seq ?? 0)
        w.u64(b.last?.epoch ?? 0)
        w.bytes += encodeRecords(b.records, withVector: true)
        return w.bytes
    }

    /// - Throws: `.invalidInput` unless every record has finite vectors of `vectors`' dimensions,
    ///   and all of them unless they are named.
    package static func decodeReceive(_ bytes: [UInt8], vectors: VectorLayout) throws -> ReceiveBatch {
        try decode(bytes, "transfer batch") { r in
            let flags = try r.u8()
            guard flags & ~3 == 0 else { throw VQError(.corrupt, "transfer batch flags \(flags) are not understood") }
            let seq = try r.u64(), epoch = try r.u64()
            guard seq < maxSeq else { throw VQError(.corrupt, "sequence number \(seq) is out of range") }
            let records = try records(&r, dims: vectors.dims, sparse: vectors.sparse.count, multiDims: vectors.multi.map(\.dim))
            for rec in records where rec.vectors.count != vectors.count || rec.sparse.count != vectors.sparse.count
                || rec.multi.count != vectors.multi.count
                || (!vectors.named && rec.vectors.contains { $0 == nil }) {
                throw VQError(.corrupt, "transferred point \(rec.id) lacks vectors")
            }
            return ReceiveBatch(clear: flags & 1 != 0, last: flags & 2 != 0 ? (seq, epoch) : nil, records: records)
        }
    }

    package static func encodeTransfer(to: PeerID, after: (seq: UInt64, epoch: UInt64)?, method: TransferMethod? = nil) -> [UInt8] {
        var w = ByteWriter(capacity: 25)
        w.u64(to)
        w.u8((after != nil ? 1 : 0) | (method == .records ? 2 : 0) | (method == .files ? 4 : 0))
        w.u64(after?.seq ?? 0)
        w.u64(after?.epoch ?? 0)
        return w.bytes
    }

    package static func decodeTransfer(_ bytes: [UInt8]) throws -> (to: PeerID, after: (seq: UInt64, epoch: UInt64)?, method: TransferMethod?) {
        try decode(bytes, "transfer request") { r in
            let to = try r.u64(), flags = try r.u8(), seq = try r.u64(), epoch = try r.u64()
            guard flags & ~7 == 0, flags & 6 != 6 else { throw VQError(.corrupt, "transfer flags \(flags) are not understood") }
            guard seq < maxSeq else { throw VQError(.corrupt, "position \(seq) is out of range") }
            return (to, flags & 1 != 0 ? (seq, epoch) : nil, flags & 2 != 0 ? .records : flags & 4 != 0 ? .files : nil)
        }
    }

    package static func encodeCount(_ n: Int) -> [UInt8] {
        var w = ByteWriter(capacity: 8)
        w.u64(UInt64(n))
        return w.bytes
    }

    package static func decodeCount(_ bytes: [UInt8]) throws -> Int {
        try decode(bytes, "a peer's count answer") { r in
            let n = try r.u64()
            guard n < 1 << 53 else { throw VQError(.corrupt, "count \(n) is out of range") }
            return Int(n)
        }
    }

    /// The reads a replica answers after its position (`at-position`).
    package enum ReadAction: String, Sendable, CaseIterable {
        case search, scan, count

        var code: UInt8 {
            switch self {
            case .search: 1
            case .scan: 2
            case .count: 3
            }
        }
    }

    /// A read asked after the replica's position: | action u8 | the read's own body |.
    package static func encodeAtPosition(_ action: ReadAction, _ body: [UInt8]) -> [UInt8] { [action.code] + body }

    package static func decodeAtPosition(_ bytes: [UInt8]) throws -> (action: ReadAction, body: [UInt8]) {
        guard let code = bytes.first, let action = ReadAction.allCases.first(where: { $0.code == code }) else {
            throw VQError.invalid("a read at a position is malformed: it names read \(bytes.first.map(String.init) ?? "none"); "
                                  + "expected 1 (search), 2 (scan) or 3 (count)")
        }
        return (action, Array(bytes.dropFirst()))
    }

    /// Its answer: the position (as `encodePosition`), then the read's own answer.
    package static func encodeAtPositionAnswer(_ p: (seq: UInt64, epoch: UInt64), _ answer: [UInt8]) -> [UInt8] { encodePosition(p) + answer }

    package static func decodeAtPositionAnswer(_ bytes: [UInt8]) throws -> (position: (seq: UInt64, epoch: UInt64), rest: [UInt8]) {
        guard bytes.count >= 16 else { throw VQError.invalid("a peer's answer at a position is malformed: \(bytes.count) bytes, under a position's 16") }
        return (try decodePosition(Array(bytes.prefix(16))), Array(bytes.dropFirst(16)))
    }

    /// A replica's replication position: | seq u64 | epoch u64 |.
    package static func encodePosition(_ p: (seq: UInt64, epoch: UInt64)) -> [UInt8] {
        var w = ByteWriter(capacity: 16)
        w.u64(p.seq)
        w.u64(p.epoch)
        return w.bytes
    }

    package static func decodePosition(_ bytes: [UInt8]) throws -> (seq: UInt64, epoch: UInt64) {
        try decode(bytes, "a peer's position answer") { r in
            let seq = try r.u64(), epoch = try r.u64()
            guard seq < maxSeq else { throw VQError(.corrupt, "position \(seq) is out of range") }
            return (seq, epoch)
        }
    }

    // MARK: operations

    /// A shard operation on the wire: the wait level, the primary's (seq, epoch) (0: not yet
    /// ordered), then the operation's WAL encoding.
    package static func encodeOperation(_ operation: [UInt8], _ wait: WriteWait, seq: UInt64 = 0, epoch: UInt64 = 0) -> [UInt8] {
        var w = ByteWriter(capacity: operation.count + 17)
        w.u8(wait == .applied ? 2 : 1)
        w.u64(seq)
        w.u64(epoch)
        w.bytes += operation
        return w.bytes
    }

    /// Sequence numbers (operation positions) a peer may send are below this: far beyond any
    /// shard's life, and far enough below 2^64 that the next one never overflows.
    package static let maxSeq: UInt64 = 1 << 60

    /// Most operations in one batch of a catch-up (`encodeOperations`).
    package static let maxBatchOperations = 4096

    /// Several operations a primary ordered (each as `encodeOperation` made it), in order: a
    /// catch-up's batch. u32 count, then each as a u32-length-prefixed byte string.
    package static func encodeOperations(_ operations: [[UInt8]]) -> [UInt8] {
        var w = ByteWriter(capacity: 4 + operations.reduce(0) { $0 + 4 + $1.count })
        w.u32(UInt32(operations.count))
        for op in operations { w.blob(op) }
        return w.bytes
    }

    /// Bytes an operation takes in `encodeOperations`: its length prefix, the `encodeOperation`
    /// header (wait, sequence, epoch) and the operation.
    package static func framedSize(_ operation: [UInt8]) -> Int { 4 + 17 + operation.count }

    /// The operations of `encodeOperations`, each still to be decoded (`decodeOperation`).
    /// - Throws: `.invalidInput` for a count above `maxBatchOperations`, none, or bytes that do
    ///   not frame exactly.
    package static func decodeOperations(_ body: [UInt8]) throws -> [[UInt8]] {
        try decode(body, "shard operation batch") { r in
            let count = Int(try r.u32())
            guard count >= 1, count <= maxBatchOperations else {
                throw VQError.invalid("shard operation batch has \(count) operations; expected 1 to \(maxBatchOperations)")
            }
            let operations = try (0..<count).map { _ in try r.blob() }
            guard r.remaining == 0 else { throw VQError.invalid("shard operation batch has \(r.remaining) bytes after its last operation") }
            return operations
        }
    }

    /// Decodes a peer's shard operation and checks it against the shard's `vectors`, so nothing
    /// that could not be applied reaches the WAL.
    /// - Throws: `.invalidInput` naming what was wrong.
    package static func decodeOperation(_ body: [UInt8], vectors: VectorLayout) throws
        -> (operation: Operation, bytes: [UInt8], wait: WriteWait, seq: UInt64, epoch: UInt64) {
        guard body.count >= 17, let first = body.first, first == 1 || first == 2 else {
            throw VQError.invalid("shard operation body is malformed: expected a wait byte (1 or 2), sequence and epoch, then the operation")
        }
        let (seq, epoch) = body.withUnsafeBytes {
            (UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: 1, as: UInt64.self)),
             UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: 9, as: UInt64.self)))
        }
        guard seq < maxSeq else { throw VQError.invalid("shard operation sequence number \(seq) is out of range") }
        let bytes = Array(body[17...])
        let op: Operation
        do {
            op = try bytes.withUnsafeBytes { try Operation.decode($0) }
            try op.validate(dims: vectors.dims, sparse: vectors.sparse.count, multiDims: vectors.multi.map(\.dim), optional: vectors.named)
        } catch let e as VQError {
            throw VQError.invalid("shard operation is malformed: \(e.message)")
        }
        return (op, bytes, first == 2 ? .applied : .durable, seq, epoch)
    }
}
