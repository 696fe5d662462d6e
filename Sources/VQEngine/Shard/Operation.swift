// The operations a shard logs and applies, and their WAL encoding.
//
//   upsert:  | kind 1 u8 | count u32 | dim u32 | ids (count x (tag u8, a u64, b u64)) |
//            | vectors (count x dim x f32) | payloads (count x (present u8 [, blob])) |
//   delete:  | kind 2 u8 | count u32 | ids (count x (tag u8, a u64, b u64)) |

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

    private static let upsertKind: UInt8 = 1
    private static let deleteKind: UInt8 = 2
    private static let setPayloadKind: UInt8 = 3
    private static let deleteKeysKind: UInt8 = 4
    private static let clearPayloadKind: UInt8 = 5

    package func encode() -> [UInt8] {
        var w = ByteWriter(capacity: 0)
        encode(into: &w)
        return w.bytes
    }

    /// Appends the encoding to `w` (the WAL encodes straight into its buffer).
    package func encode(into w: inout ByteWriter) {
        switch self {
        case .upsert(let batch):
            w.u8(Operation.upsertKind)
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
        switch try r.u8() {
        case upsertKind:
            let count = Int(try r.u32())
            let dim = Int(try r.u32())
            var batch = PointBatch(dim: dim)
            batch.ids.reserveCapacity(count)
            for _ in 0..<count { batch.ids.append(try readID(&r)) }
            try r.floats(count * dim, into: &batch.vectors)
            for _ in 0..<count { batch.payloads.append(try r.u8() == 1 ? try r.blob() : nil) }
            return .upsert(batch)
        case deleteKind:
            return .delete(try readIDs(&r))
        case setPayloadKind:
            let ids = try readIDs(&r)
            let payload = try r.blob()
            return .setPayload(ids: ids, payload: payload, overwrite: try r.u8() == 1)
        case deleteKeysKind:
            let ids = try readIDs(&r)
            let n = Int(try r.u32())
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
        guard count <= r.remaining / 17 else { throw VQError(.corrupt, "WAL record claims \(count) ids but is too short") }
        var ids: [PointID] = []
        ids.reserveCapacity(count)
        for _ in 0..<count { ids.append(try readID(&r)) }
        return ids
    }

    private static func writeID(_ w: inout ByteWriter, _ id: PointID) {
        switch id {
        case .number(let n): w.u8(0); w.u64(n); w.u64(0)
        case .uuid(let hi, let lo): w.u8(1); w.u64(hi); w.u64(lo)
        }
    }

    private static func readID(_ r: inout ByteReader) throws -> PointID {
        let tag = try r.u8()
        let a = try r.u64(), b = try r.u64()
        switch tag {
        case 0: return .number(a)
        case 1: return .uuid(a, b)
        default: throw VQError(.corrupt, "unknown point id tag \(tag) in WAL record")
        }
    }
}
