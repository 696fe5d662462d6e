// The operations a shard logs and applies, and their WAL encoding.
//
//   upsert:  | kind 1 u8 | count u32 | dim u32 | ids (count x (tag u8, a u64, b u64)) |
//            | vectors (count x dim x f32) | payloads (count x (present u8 [, blob])) |
//   delete:  | kind 2 u8 | count u32 | ids (count x (tag u8, a u64, b u64)) |
//   update vectors: as upsert, kind 6, every payload flag 0 (payloads are kept)

/// Points to write, stored flat: vector i at `vectors[i*dim ..< (i+1)*dim]`.
package struct PointBatch: Sendable {
    package var dim: Int
    package var ids: [PointID] = []
    package var vectors: [Float] = []
    /// Compact JSON bytes of each point's payload object, or nil.
    package var payloads: [[UInt8]?] = []

    package init(dim: Int) { self.dim = dim }

    package var count: Int { ids.count }

    package mutating func append(id: PointID, vector: UnsafeBufferPointer<Float>, payload: [UInt8]?) {
        precondition(vector.count == dim)
        ids.append(id)
        vectors.append(contentsOf: vector)
        payloads.append(payload)
    }

    package mutating func removeAll() {
        ids.removeAll(keepingCapacity: true)
        vectors.removeAll(keepingCapacity: true)
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
    /// Replace the vectors of points that exist, keeping their payloads (`batch.payloads` all nil).
    case updateVectors(PointBatch)

    private static let upsertKind: UInt8 = 1
    private static let deleteKind: UInt8 = 2
    private static let setPayloadKind: UInt8 = 3
    private static let deleteKeysKind: UInt8 = 4
    private static let clearPayloadKind: UInt8 = 5
    private static let updateVectorsKind: UInt8 = 6

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
            return 9 + b.count * idBytes + b.vectors.count * 4 + b.payloads.reduce(0) { $0 + 1 + ($1.map { 4 + $0.count } ?? 0) }
        case .delete(let ids), .clearPayload(let ids): return 5 + ids.count * idBytes
        case .setPayload(let ids, let payload, _): return 5 + ids.count * idBytes + 4 + payload.count + 1
        case .deletePayloadKeys(let ids, let keys): return 9 + ids.count * idBytes + keys.reduce(0) { $0 + 4 + $1.utf8.count }
        }
    }

    /// Appends the encoding to `w` (the WAL encodes straight into its buffer).
    package func encode(into w: inout ByteWriter) {
        switch self {
        case .upsert(let batch), .updateVectors(let batch):
            if case .upsert = self { w.u8(Operation.upsertKind) } else { w.u8(Operation.updateVectorsKind) }
            w.u32(UInt32(batch.count))
            w.u32(UInt32(batch.dim))
            for id in batch.ids { Operation.writeID(&w, id) }
            batch.vectors.withUnsafeBufferPointer { w.floats($0) }
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
        }
    }

    package static func decode(_ bytes: UnsafeRawBufferPointer) throws -> Operation {
        var r = ByteReader(bytes)
        let kind = try r.u8()
        switch kind {
        case upsertKind, updateVectorsKind:
            let count = Int(try r.u32())
            let dim = Int(try r.u32())
            // Each point takes at least its id, its vector and a payload flag: a count the bytes
            // cannot hold is refused before anything is reserved for it.
            guard dim >= 1, dim <= maxDimension else { throw VQError(.corrupt, "upsert record has \(dim)-dimensional vectors") }
            let (perPoint, o1) = (dim * 4).addingReportingOverflow(idBytes + 1)
            let (least, o2) = count.multipliedReportingOverflow(by: perPoint)
            guard !o1, !o2, least <= r.remaining else {
                throw VQError(.corrupt, "upsert record claims \(count) points of \(dim) dimensions but holds \(r.remaining) bytes")
            }
            var batch = PointBatch(dim: dim)
            batch.ids.reserveCapacity(count)
            for _ in 0..<count { batch.ids.append(try readID(&r)) }
            try r.floats(count * dim, into: &batch.vectors)
            batch.payloads.reserveCapacity(count)
            for _ in 0..<count {
                switch try r.u8() {
                case 0: batch.payloads.append(nil)
                case 1: batch.payloads.append(try r.blob())
                case let flag: throw VQError(.corrupt, "upsert record has payload flag \(flag); expected 0 or 1")
                }
            }
            if kind == updateVectorsKind {
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

    /// Checks what a decoder cannot: that the operation fits a shard of `dim`-dimensional vectors
    /// and can be applied. Peers' operations pass here before they reach the WAL, so no record
    /// is ever logged that would fail when replayed.
    /// - Throws: `.invalidInput` naming the first problem.
    package func validate(dim: Int) throws {
        switch self {
        case .upsert(let batch):
            guard batch.dim == dim else { throw VQError.invalid("upsert has \(batch.dim)-dimensional vectors; the shard expects \(dim)") }
            guard batch.vectors.count == batch.count * dim, batch.payloads.count == batch.count else {
                throw VQError.invalid("upsert of \(batch.count) points holds \(batch.vectors.count) floats and \(batch.payloads.count) payloads")
            }
            if let bad = batch.vectors.firstIndex(where: { !$0.isFinite }) {
                throw VQError.invalid("point \(batch.ids[bad / dim]) has a vector element that is \(batch.vectors[bad]); expected a finite number")
            }
            for (i, payload) in batch.payloads.enumerated() {
                if let payload { try Operation.checkPayload(payload, "point \(batch.ids[i])'s payload") }
            }
        case .updateVectors(let batch):
            guard batch.dim == dim, batch.vectors.count == batch.count * dim, batch.payloads.count == batch.count,
                  batch.payloads.allSatisfy({ $0 == nil }) else {
                throw VQError.invalid("update of \(batch.count) vectors does not fit a shard of \(dim)-dimensional vectors")
            }
            if let bad = batch.vectors.firstIndex(where: { !$0.isFinite }) {
                throw VQError.invalid("point \(batch.ids[bad / dim]) has a vector element that is \(batch.vectors[bad]); expected a finite number")
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
