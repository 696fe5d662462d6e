// The operations a shard logs and applies, and their WAL encoding.
//
//   upsert:  | kind 7 u8 | count u32 | vectors u32 | dims (vectors x u32) | ids (count x (tag u8, a u64, b u64)) |
//            | per vector: presence u8 (0 all, 1 flags follow) [, count x u8] and count x dim x f32 (zeros where absent) |
//            | payloads (count x (present u8 [, blob])) |
//   delete:  | kind 2 u8 | count u32 | ids (count x (tag u8, a u64, b u64)) |
//   update vectors: as upsert, kind 8, every payload flag 0 (payloads are kept; absent vectors are kept)
//   delete vectors: | kind 9 u8 | ids | count u32 | vector numbers (count x u32) |
//   with sparse vectors, upsert and update vectors are kinds 10 and 11: as 7 and 8, then before the
//   payloads | sparse vectors u32 | per sparse vector, per point: present u8 [, n u32, n x index u32, n x f32] |
//   with multi-vectors, kinds 12 and 13: as 10 and 11, then before the payloads
//   | multi-vectors u32 | per multi-vector: dim u32, per point: present u8 [, n u32, n x dim x f32] |
//   (delete vectors numbers dense vectors from 0, then sparse ones, then multi-vectors)
//
// Kinds 1 and 6 (upsert and update vectors of one vector, before named vectors:
// | count u32 | dim u32 | ids | vectors | payloads |) are still read.

/// Points to write, stored flat per vector: point i's vector k at
/// `vectors[k][i*dims[k] ..< (i+1)*dims[k]]` (zeros where the point lacks it).
package struct PointBatch: Sendable {
    /// Each vector's dimension (the collection's VectorLayout order).
    package var dims: [Int]
    package var ids: [PointID] = []
    package var vectors: [[Float]]
    /// Per vector, which points carry it; empty when all do.
    package var present: [[Bool]]
    /// Compact JSON bytes of each point's payload object, or nil.
    package var payloads: [[UInt8]?] = []
    /// Per sparse vector, each point's (nil: it lacks it).
    package var sparse: [[SparseVector?]]
    /// Each multi-vector's dimension, and per multi-vector each point's vectors, flat (nil: it lacks it).
    package var multiDims: [Int]
    package var multi: [[[Float]?]]

    package init(dims: [Int], sparse: Int = 0, multiDims: [Int] = []) {
        self.dims = dims
        vectors = Array(repeating: [], count: dims.count)
        present = Array(repeating: [], count: dims.count)
        self.sparse = Array(repeating: [], count: sparse)
        self.multiDims = multiDims
        multi = Array(repeating: [], count: multiDims.count)
    }

    /// A batch for a collection's vectors.
    package init(_ layout: VectorLayout) { self.init(dims: layout.dims, sparse: layout.sparse.count, multiDims: layout.multi.map(\.dim)) }

    /// A batch of one unnamed vector.
    package init(dim: Int) { self.init(dims: [dim]) }

    package var count: Int { ids.count }

    /// Whether point `i` carries vector `k`.
    @inline(__always)
    package func has(_ k: Int, _ i: Int) -> Bool { present[k].isEmpty || present[k][i] }

    /// Appends a point of a single-vector batch.
    package mutating func append(id: PointID, vector: UnsafeBufferPointer<Float>, payload: [UInt8]?) {
        precondition(dims.count == 1 && vector.count == dims[0] && sparse.isEmpty && multi.isEmpty)
        ids.append(id)
        vectors[0].append(contentsOf: vector)
        payloads.append(payload)
    }

    /// Appends a point with each vector given or absent (nil).
    package mutating func append(id: PointID, vectors given: [UnsafeBufferPointer<Float>?], sparse givenSparse: [SparseVector?] = [],
                                 multi givenMulti: [[Float]?] = [], payload: [UInt8]?) {
        precondition(given.count == dims.count && (givenSparse.isEmpty || givenSparse.count == sparse.count)
                     && (givenMulti.isEmpty || givenMulti.count == multi.count))
        for k in sparse.indices { sparse[k].append(givenSparse.isEmpty ? nil : givenSparse[k]) }
        for k in multi.indices { multi[k].append(givenMulti.isEmpty ? nil : givenMulti[k]) }
        let i = ids.count
        for (k, v) in given.enumerated() {
            if let v {
                precondition(v.count == dims[k])
                vectors[k].append(contentsOf: v)
                if !present[k].isEmpty { present[k].append(true) }
            } else {
                vectors[k].append(contentsOf: repeatElement(0, count: dims[k]))
                if present[k].isEmpty { present[k] = Array(repeating: true, count: i) }
                present[k].append(false)
            }
        }
        ids.append(id)
        payloads.append(payload)
    }

    /// Point `i`'s vector `k` (check `has` first: an absent one reads as zeros).
    package func withVector<T>(_ k: Int, _ i: Int, _ body: (UnsafeBufferPointer<Float>) throws -> T) rethrows -> T {
        let d = dims[k]
        return try vectors[k].withUnsafeBufferPointer { try body(UnsafeBufferPointer(rebasing: $0[(i * d)..<((i + 1) * d)])) }
    }

    /// Point `i`'s vectors, absent ones nil.
    package func vectorsOf(_ i: Int) -> [[Float]?] {
        dims.indices.map { k in has(k, i) ? withVector(k, i) { Array($0) } : nil }
    }

    /// Floats held, all vectors together (a sparse pair counts as two).
    package var floatCount: Int {
        vectors.reduce(0) { $0 + $1.count } + sparse.reduce(0) { $0 + $1.reduce(0) { $0 + 2 * ($1?.count ?? 0) } }
            + multi.reduce(0) { $0 + $1.reduce(0) { $0 + ($1?.count ?? 0) } }
    }

    /// Point `i`'s multi-vectors.
    package func multiOf(_ i: Int) -> [[Float]?] { multi.map { $0[i] } }

    /// Point `i`'s sparse vectors.
    package func sparseOf(_ i: Int) -> [SparseVector?] { sparse.map { $0[i] } }

    package mutating func removeAll() {
        ids.removeAll(keepingCapacity: true)
        for k in dims.indices {
            vectors[k].removeAll(keepingCapacity: true)
            present[k].removeAll(keepingCapacity: true)
        }
        for k in sparse.indices { sparse[k].removeAll(keepingCapacity: true) }
        for k in multi.indices { multi[k].removeAll(keepingCapacity: true) }
        payloads.removeAll(keepingCapacity: true)
    }
}

/// One logged change to a shard.
package enum Operation: Sendable {
    case upsert(PointBatch)
    case delete([PointID])
    /// Merge `payload` (an object's JSON) into each point's payload; with `overwrite`, replace it.
    case setPayload(ids: [PointID], payload: [UInt8], overwrite: Bool)
    /// Remove these top-level keys from each point's payload.
    case deletePayloadKeys(ids: [PointID], keys: [String])
    /// Remove each point's payload.
    case clearPayload([PointID])
    /// Replace the vectors of points that exist, keeping their payloads (`batch.payloads` all nil)
    /// and the vectors the batch lacks.
    case updateVectors(PointBatch)
    /// Remove these vectors (VectorLayout numbers) from each point.
    case deleteVectors(ids: [PointID], vectors: [Int])

    private static let upsertKind: UInt8 = 1
    private static let deleteKind: UInt8 = 2
    private static let setPayloadKind: UInt8 = 3
    private static let deleteKeysKind: UInt8 = 4
    private static let clearPayloadKind: UInt8 = 5
    private static let updateVectorsKindV1: UInt8 = 6
    private static let upsertKind2: UInt8 = 7
    private static let updateVectorsKind: UInt8 = 8
    private static let deleteVectorsKind: UInt8 = 9
    private static let upsertSparseKind: UInt8 = 10
    private static let updateVectorsSparseKind: UInt8 = 11
    private static let upsertMultiKind: UInt8 = 12
    private static let updateVectorsMultiKind: UInt8 = 13

    /// The encoding, in a buffer of exactly its size (kept in the replication history).
    package func encode() -> [UInt8] {
        var w = ByteWriter(capacity: encodedSize)
        encode(into: &w)
        return w.bytes
    }

    /// Bytes of the encoding (also what the update queue's byte budget counts: about the memory
    /// the operation holds while queued).
    package var encodedSize: Int {
        let idBytes = Operation.idBytes
        switch self {
        case .upsert(let b), .updateVectors(let b):
            return 9 + b.dims.count * 5 + b.count * idBytes + b.floatCount * 4 + b.present.reduce(0) { $0 + $1.count }
                + b.payloads.reduce(0) { $0 + 1 + ($1.map { 4 + $0.count } ?? 0) }
                + (b.sparse.isEmpty && b.multi.isEmpty ? 0 : 4 + b.sparse.reduce(0) { $0 + $1.reduce(0) { $0 + 1 + ($1.map { _ in 4 } ?? 0) } })
                + (b.multi.isEmpty ? 0 : 4 + b.multi.reduce(0) { $0 + 4 + $1.reduce(0) { $0 + 1 + ($1.map { _ in 4 } ?? 0) } })
        case .deleteVectors(let ids, let vectors): return 9 + ids.count * idBytes + vectors.count * 4
        case .delete(let ids), .clearPayload(let ids): return 5 + ids.count * idBytes
        case .setPayload(let ids, let payload, _): return 5 + ids.count * idBytes + 4 + payload.count + 1
        case .deletePayloadKeys(let ids, let keys): return 9 + ids.count * idBytes + keys.reduce(0) { $0 + 4 + $1.utf8.count }
        }
    }

    /// Appends the encoding to `w` (the WAL encodes straight into its buffer).
    package func encode(into w: inout ByteWriter) {
        switch self {
        case .upsert(let batch), .updateVectors(let batch):
            let multi = !batch.multi.isEmpty
            let sparse = !batch.sparse.isEmpty || multi
            if case .upsert = self {
                w.u8(multi ? Operation.upsertMultiKind : sparse ? Operation.upsertSparseKind : Operation.upsertKind2)
            } else {
                w.u8(multi ? Operation.updateVectorsMultiKind : sparse ? Operation.updateVectorsSparseKind : Operation.updateVectorsKind)
            }
            w.u32(UInt32(batch.count))
            w.u32(UInt32(batch.dims.count))
            for d in batch.dims { w.u32(UInt32(d)) }
            for id in batch.ids { Operation.writeID(&w, id) }
            for k in batch.dims.indices {
                if batch.present[k].isEmpty {
                    w.u8(0)
                } else {
                    w.u8(1)
                    for p in batch.present[k] { w.u8(p ? 1 : 0) }
                }
                batch.vectors[k].withUnsafeBufferPointer { w.floats($0) }
            }
            if sparse {
                w.u32(UInt32(batch.sparse.count))
                for column in batch.sparse {
                    for v in column {
                        guard let v else { w.u8(0); continue }
                        w.u8(1)
                        w.u32(UInt32(v.count))
                        for i in v.indices { w.u32(i) }
                        v.values.withUnsafeBufferPointer { w.floats($0) }
                    }
                }
            }
            if multi {
                w.u32(UInt32(batch.multi.count))
                for (k, column) in batch.multi.enumerated() {
                    w.u32(UInt32(batch.multiDims[k]))
                    for v in column {
                        guard let v else { w.u8(0); continue }
                        w.u8(1)
                        w.u32(UInt32(v.count / batch.multiDims[k]))
                        v.withUnsafeBufferPointer { w.floats($0) }
                    }
                }
            }
            for p in batch.payloads {
                if let p { w.u8(1); w.blob(p) } else { w.u8(0) }
            }
        case .delete(let ids):
            w.u8(Operation.deleteKind)
            Operation.writeIDs(&w, ids)
        case .setPayload(let ids, let payload, let overwrite):
            w.u8(Operation.setPayloadKind)
            Operation.writeIDs(&w, ids)
            w.blob(payload)
            w.u8(overwrite ? 1 : 0)
        case .deletePayloadKeys(let ids, let keys):
            w.u8(Operation.deleteKeysKind)
            Operation.writeIDs(&w, ids)
            w.u32(UInt32(keys.count))
            for k in keys { w.blob(Array(k.utf8)) }
        case .clearPayload(let ids):
            w.u8(Operation.clearPayloadKind)
            Operation.writeIDs(&w, ids)
        case .deleteVectors(let ids, let vectors):
            w.u8(Operation.deleteVectorsKind)
            Operation.writeIDs(&w, ids)
            w.u32(UInt32(vectors.count))
            for v in vectors { w.u32(UInt32(v)) }
        }
    }

    package static func decode(_ bytes: UnsafeRawBufferPointer) throws -> Operation {
        var r = ByteReader(bytes)
        let kind = try r.u8()
        switch kind {
        case upsertKind, updateVectorsKindV1, upsertKind2, updateVectorsKind, upsertSparseKind, updateVectorsSparseKind,
             upsertMultiKind, updateVectorsMultiKind:
            let v1 = kind == upsertKind || kind == updateVectorsKindV1
            let count = Int(try r.u32())
            let stores = v1 ? 1 : Int(try r.u32())
            guard stores <= 64 else { throw VQError(.corrupt, "upsert record has \(stores) vectors per point; expected at most 64") }
            var dims: [Int] = []
            for _ in 0..<stores {
                let dim = Int(try r.u32())
                guard dim >= 1, dim <= maxDimension else { throw VQError(.corrupt, "upsert record has \(dim)-dimensional vectors") }
                dims.append(dim)
            }
            // Each point takes at least its id, its vectors and a payload flag: a count the bytes
            // cannot hold is refused before anything is reserved for it.
            let (perPoint, o1) = (dims.reduce(0, +) * 4).addingReportingOverflow(idBytes + 1)
            let (least, o2) = count.multipliedReportingOverflow(by: perPoint)
            guard !o1, !o2, least <= r.remaining else {
                throw VQError(.corrupt, "upsert record claims \(count) points of \(dims) dimensions but holds \(r.remaining) bytes")
            }
            var batch = PointBatch(dims: dims)
            batch.ids.reserveCapacity(count)
            for _ in 0..<count { batch.ids.append(try readID(&r)) }
            for k in 0..<stores {
                if !v1 {
                    switch try r.u8() {
                    case 0: break
                    case 1:
                        guard count <= r.remaining else { throw VQError(.corrupt, "upsert record is too short for its presence flags") }
                        batch.present[k].reserveCapacity(count)
                        for _ in 0..<count {
                            switch try r.u8() {
                            case 0: batch.present[k].append(false)
                            case 1: batch.present[k].append(true)
                            case let flag: throw VQError(.corrupt, "upsert record has presence flag \(flag); expected 0 or 1")
                            }
                        }
                    case let mode: throw VQError(.corrupt, "upsert record has presence mode \(mode); expected 0 or 1")
                    }
                }
                try r.floats(count * dims[k], into: &batch.vectors[k])
            }
            if kind >= upsertSparseKind {
                let stores = Int(try r.u32())
                guard stores <= 64, stores * count <= r.remaining else { throw VQError(.corrupt, "upsert record claims \(stores) sparse vectors per point") }
                batch.sparse = Array(repeating: [], count: stores)
                for k in 0..<stores {
                    batch.sparse[k].reserveCapacity(count)
                    for _ in 0..<count {
                        switch try r.u8() {
                        case 0: batch.sparse[k].append(nil)
                        case 1: batch.sparse[k].append(try r.sparseVector())
                        case let flag: throw VQError(.corrupt, "upsert record has sparse flag \(flag); expected 0 or 1")
                        }
                    }
                }
            }
            if kind >= upsertMultiKind {
                let stores = Int(try r.u32())
                guard stores <= 64, stores * count <= r.remaining else { throw VQError(.corrupt, "upsert record claims \(stores) multi-vectors per point") }
                batch.multi = Array(repeating: [], count: stores)
                for k in 0..<stores {
                    let dim = Int(try r.u32())
                    guard dim >= 1, dim <= maxDimension else { throw VQError(.corrupt, "upsert record has \(dim)-dimensional multi-vectors") }
                    batch.multiDims.append(dim)
                    batch.multi[k].reserveCapacity(count)
                    for _ in 0..<count {
                        switch try r.u8() {
                        case 0: batch.multi[k].append(nil)
                        case 1:
                            let n = Int(try r.u32())
                            guard n >= 1, n <= MultiStore.maxVectors, n * dim <= r.remaining / 4 else {
                                throw VQError(.corrupt, "a multi-vector claims \(n) vectors but the record is too short")
                            }
                            var v: [Float] = []
                            try r.floats(n * dim, into: &v)
                            batch.multi[k].append(v)
                        case let flag: throw VQError(.corrupt, "upsert record has multi-vector flag \(flag); expected 0 or 1")
                        }
                    }
                }
            }
            batch.payloads.reserveCapacity(count)
            for _ in 0..<count {
                switch try r.u8() {
                case 0: batch.payloads.append(nil)
                case 1: batch.payloads.append(try r.blob())
                case let flag: throw VQError(.corrupt, "upsert record has payload flag \(flag); expected 0 or 1")
                }
            }
            if kind == updateVectorsKind || kind == updateVectorsKindV1 || kind == updateVectorsSparseKind || kind == updateVectorsMultiKind {
                guard batch.payloads.allSatisfy({ $0 == nil }) else { throw VQError(.corrupt, "update-vectors record carries payloads") }
                return .updateVectors(batch)
            }
            return .upsert(batch)
        case deleteKind:
            return .delete(try readIDs(&r))
        case setPayloadKind:
            let ids = try readIDs(&r)
            let payload = try r.blob()
            switch try r.u8() {
            case 0: return .setPayload(ids: ids, payload: payload, overwrite: false)
            case 1: return .setPayload(ids: ids, payload: payload, overwrite: true)
            case let flag: throw VQError(.corrupt, "set-payload record has overwrite flag \(flag); expected 0 or 1")
            }
        case deleteKeysKind:
            let ids = try readIDs(&r)
            let n = Int(try r.u32())
            guard n <= r.remaining / 4 else { throw VQError(.corrupt, "payload-key record claims \(n) keys but is too short") }
            var keys: [String] = []
            for _ in 0..<n { keys.append(String(decoding: try r.blob(), as: UTF8.self)) }
            return .deletePayloadKeys(ids: ids, keys: keys)
        case clearPayloadKind:
            return .clearPayload(try readIDs(&r))
        case deleteVectorsKind:
            let ids = try readIDs(&r)
            let n = Int(try r.u32())
            guard n <= r.remaining / 4 else { throw VQError(.corrupt, "delete-vectors record claims \(n) vectors but is too short") }
            var vectors: [Int] = []
            for _ in 0..<n { vectors.append(Int(try r.u32())) }
            return .deleteVectors(ids: ids, vectors: vectors)
        case let kind:
            throw VQError(.corrupt, "unknown operation kind \(kind) in WAL record")
        }
    }

    private static func writeIDs(_ w: inout ByteWriter, _ ids: [PointID]) {
        w.u32(UInt32(ids.count))
        for id in ids { writeID(&w, id) }
    }

    private static func readIDs(_ r: inout ByteReader) throws -> [PointID] {
        let count = Int(try r.u32())
        guard count <= r.remaining / idBytes else { throw VQError(.corrupt, "WAL record claims \(count) ids but is too short") }
        var ids: [PointID] = []
        ids.reserveCapacity(count)
        for _ in 0..<count { ids.append(try readID(&r)) }
        return ids
    }

    /// Bytes of one encoded id (tag, two u64).
    private static let idBytes = ByteReader.pointIDBytes
    /// The largest vector dimension a collection may have (CollectionConfig's bound).
    static let maxDimension = 65_536

    /// Checks what a decoder cannot: that the operation fits a shard of `dims`-dimensional vectors
    /// and can be applied. Peers' operations pass here before they reach the WAL, so no record
    /// is ever logged that would fail when replayed.
    /// - Parameter optional: whether points may lack vectors (named vectors).
    /// - Throws: `.invalidInput` naming the first problem.
    package func validate(dims: [Int], sparse: Int = 0, multiDims: [Int] = [], optional: Bool) throws {
        switch self {
        case .upsert(let batch), .updateVectors(let batch):
            var update = false
            if case .updateVectors = self { update = true }
            guard batch.dims == dims else { throw VQError.invalid("the operation has vectors of \(batch.dims) dimensions; the shard expects \(dims)") }
            guard batch.sparse.count == sparse, batch.sparse.allSatisfy({ $0.count == batch.count }) else {
                throw VQError.invalid("the operation has \(batch.sparse.count) sparse vectors per point; the shard expects \(sparse)")
            }
            guard batch.multiDims == multiDims, batch.multi.count == multiDims.count, batch.multi.allSatisfy({ $0.count == batch.count }) else {
                throw VQError.invalid("the operation has multi-vectors of \(batch.multiDims) dimensions; the shard expects \(multiDims)")
            }
            for (k, column) in batch.multi.enumerated() {
                for (i, v) in column.enumerated() {
                    guard let v else { continue }
                    guard !v.isEmpty, v.count % multiDims[k] == 0, v.count / multiDims[k] <= MultiStore.maxVectors else {
                        throw VQError.invalid("point \(batch.ids[i])'s multi-vector holds \(v.count) floats; expected 1 to \(MultiStore.maxVectors) vectors of \(multiDims[k])")
                    }
                    if let bad = v.firstIndex(where: { !$0.isFinite }) {
                        throw VQError.invalid("point \(batch.ids[i]) has a multi-vector element that is \(v[bad]); expected a finite number")
                    }
                }
            }
            guard batch.payloads.count == batch.count, batch.ids.count == batch.count else {
                throw VQError.invalid("the operation has \(batch.count) ids and \(batch.payloads.count) payloads")
            }
            for k in dims.indices {
                guard batch.vectors[k].count == batch.count * dims[k], batch.present[k].isEmpty || batch.present[k].count == batch.count else {
                    throw VQError.invalid("the operation's vector \(k) holds \(batch.vectors[k].count) floats for \(batch.count) points")
                }
                if !batch.present[k].isEmpty && !optional && !update {
                    throw VQError.invalid("the operation has points without a vector; this shard's points carry every vector")
                }
                if let bad = batch.vectors[k].firstIndex(where: { !$0.isFinite }) {
                    throw VQError.invalid("point \(batch.ids[bad / dims[k]]) has a vector element that is \(batch.vectors[k][bad]); expected a finite number")
                }
            }
            if update {
                guard batch.payloads.allSatisfy({ $0 == nil }) else { throw VQError.invalid("a vector update carries payloads") }
            } else {
                for (i, payload) in batch.payloads.enumerated() {
                    if let payload { try Operation.checkPayload(payload, "point \(batch.ids[i])'s payload") }
                }
            }
        case .deleteVectors(_, let vectors):
            guard optional else { throw VQError.invalid("the unnamed vector cannot be deleted from a point; delete the point") }
            if let bad = vectors.first(where: { !(0..<(dims.count + sparse + multiDims.count)).contains($0) }) {
                throw VQError.invalid("the operation deletes vector \(bad); the shard has \(dims.count + sparse + multiDims.count)")
            }
        case .setPayload(_, let payload, _):
            try Operation.checkPayload(payload, "the payload")
        case .delete, .deletePayloadKeys, .clearPayload:
            break
        }
    }

    private static func checkPayload(_ bytes: [UInt8], _ what: String) throws {
        guard case .object? = try? JSONParser.parse(bytes) else { throw VQError.invalid("\(what) is not a JSON object") }
    }

    private static func writeID(_ w: inout ByteWriter, _ id: PointID) { w.pointID(id) }

    private static func readID(_ r: inout ByteReader) throws -> PointID { try r.pointID() }
}
