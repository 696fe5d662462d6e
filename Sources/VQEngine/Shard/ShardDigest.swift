// Anti-entropy: what a replica holds, summarised so two replicas compare cheaply.
//
// Every live point hashes its content (id, each vector's floats or absence, sparse and multi
// vectors, payload bytes) into 64 bits. Points fall into 256 buckets by a hash of their id
// (ranges of the id hash space); a bucket's digest is its point count and the wrapping sum of
// its points' hashes, so it does not depend on segment layout or row order. Two replicas with
// the same points have equal digests; a bucket that differs names where to look, and the
// per-point hashes of only those buckets say which points to repair (`ReplicaSet.reconcile`).
//
// Versions are not compared: each peer numbers its own WAL operations, so content is what two
// replicas can agree on. The primary's content wins.
//
// Wire forms (ShardWire conventions, every count checked against the bytes present):
//   digest request  | mode u8 (0 summary, 1 buckets' points, 2 given points) | count u32 |
//                   | count x bucket u32 (mode 1) or count x id (mode 2) |
//   summary         | 256 x (count u32 | sum u64) |
//   points          | count u32 | count x (id | hash u64) |

import Foundation

/// A fast, non-cryptographic 64-bit hash of a point's content (four independent lanes over
/// 32-byte blocks, so it runs near memory speed; not for adversaries, for comparing copies).
struct ContentHasher {
    private var a: UInt64 = 0x243F_6A88_85A3_08D3
    private var b: UInt64 = 0x1319_8A2E_0370_7344
    private var c: UInt64 = 0xA409_3822_299F_31D0
    private var d: UInt64 = 0x082E_FA98_EC4E_6C89
    private static let k: UInt64 = 0x9E37_79B9_7F4A_7C15

    @inline(__always) private static func mix(_ h: UInt64, _ w: UInt64) -> UInt64 {
        let x = (h ^ w) &* k
        return x ^ (x >> 31)
    }

    mutating func word(_ w: UInt64) { a = Self.mix(a, w) }

    /// A point id: its kind, then its words.
    mutating func id(_ id: PointID) {
        switch id {
        case .number(let n): word(0); word(n)
        case .uuid(let hi, let lo): word(1); word(hi); word(lo)
        }
    }

    mutating func bytes(_ raw: UnsafeRawBufferPointer) {
        let n = raw.count
        word(UInt64(n))
        var i = 0
        while i + 32 <= n {
            a = Self.mix(a, raw.loadUnaligned(fromByteOffset: i, as: UInt64.self))
            b = Self.mix(b, raw.loadUnaligned(fromByteOffset: i + 8, as: UInt64.self))
            c = Self.mix(c, raw.loadUnaligned(fromByteOffset: i + 16, as: UInt64.self))
            d = Self.mix(d, raw.loadUnaligned(fromByteOffset: i + 24, as: UInt64.self))
            i += 32
        }
        while i + 8 <= n {
            a = Self.mix(a, raw.loadUnaligned(fromByteOffset: i, as: UInt64.self))
            i += 8
        }
        var tail: UInt64 = 0
        var shift: UInt64 = 0
        while i < n {
            tail |= UInt64(raw[i]) << shift
            shift += 8
            i += 1
        }
        b = Self.mix(b, tail)
    }

    mutating func floats(_ v: UnsafeBufferPointer<Float>) { bytes(UnsafeRawBufferPointer(v)) }

    /// The hash (murmur3's finaliser over the lanes).
    var value: UInt64 {
        var h = a ^ (b &* 3) ^ (c &* 5) ^ (d &* 7)
        h ^= h >> 33
        h &*= 0xFF51_AFD7_ED55_8CCD
        h ^= h >> 33
        h &*= 0xC4CE_B9FE_1A85_EC53
        return h ^ (h >> 33)
    }
}

/// Per bucket of the id hash space, how many points a replica holds and the sum of their hashes.
package struct ShardDigest: Equatable, Sendable {
    package static let buckets = 256
    package var counts = [UInt32](repeating: 0, count: ShardDigest.buckets)
    package var sums = [UInt64](repeating: 0, count: ShardDigest.buckets)

    package init() {}

    /// The bucket of `id` (the top byte of a hash of the id).
    package static func bucket(_ id: PointID) -> Int {
        var h = ContentHasher()
        h.id(id)
        return Int(h.value >> 56)
    }

    package mutating func add(_ id: PointID, _ hash: UInt64) {
        let b = Self.bucket(id)
        counts[b] &+= 1
        sums[b] &+= hash
    }

    /// The buckets where `self` and `other` differ.
    package func differing(from other: ShardDigest) -> [Int] {
        (0..<Self.buckets).filter { counts[$0] != other.counts[$0] || sums[$0] != other.sums[$0] }
    }

    package var points: Int { counts.reduce(0) { $0 + Int($1) } }
}

extension Segment {
    /// A hash of live row `row`'s content: id, vectors (absent ones marked), sparse and multi
    /// vectors, and payload bytes. Equal content hashes equal on every peer.
    func contentHash(_ row: Int) -> UInt64 {
        var h = ContentHasher()
        h.id(record(row).id)
        for store in stores {
            if store.lacks(row) { h.word(0) } else { h.word(1); h.floats(store.vector(row)) }
        }
        for store in sparseStores {
            guard let v = store.vector(row) else { h.word(0); continue }
            h.word(1)
            v.indices.withUnsafeBytes { h.bytes($0) }
            v.values.withUnsafeBytes { h.bytes($0) }
        }
        for store in multiStores {
            let f = store.floats(row)
            if f.isEmpty { h.word(0) } else { h.word(1); h.floats(f) }
        }
        let ref = payloadIndex.base[row]
        let size = UInt64(payloadData.count)
        if ref.length > 0, ref.length <= size, ref.offset <= size - ref.length {
            h.word(1)
            h.bytes(UnsafeRawBufferPointer(start: payloadData.base + Int(ref.offset), count: Int(ref.length)))
        } else {
            h.word(0)
        }
        return h.value
    }
}

extension SegmentHolder {
    /// Calls `body` with every live point's id and content hash (those of `buckets` only, when given).
    func eachContentHash(buckets: Set<Int>?, _ body: (PointID, UInt64) -> Void) {
        for (i, seg) in slots.enumerated() {
            guard let seg else { continue }
            rows(inSlot: i, passing: nil).forEach { row in
                let id = seg.record(row).id
                if let buckets, !buckets.contains(ShardDigest.bucket(id)) { return }
                body(id, seg.contentHash(row))
            }
        }
    }

    /// The points of `ids` (missing ones left out) as an upsert batch carrying their stored
    /// vectors and payload bytes unchanged, so the copy hashes equal to the original.
    func batch(of ids: [PointID]) -> PointBatch {
        var batch = PointBatch(options.vectors)
        for id in ids {
            guard let loc = locations[id] else { continue }
            let seg = slots[Int(loc.slot)]!
            let row = Int(loc.row)
            seg.withVectors(row) { batch.append(id: id, vectors: $0, sparse: seg.sparseVectors(row), multi: seg.multiVectors(row),
                                                payload: seg.payloadBytes(row)) }
        }
        return batch
    }
}

extension LocalShard {
    /// The digest of every point this copy holds, once every accepted write is applied.
    package func digest() throws -> ShardDigest {
        try waitApplied(lastOp)
        return lock.read {
            var d = ShardDigest()
            holder.eachContentHash(buckets: nil) { d.add($0, $1) }
            return d
        }
    }

    /// Each point's content hash in `buckets`, once every accepted write is applied.
    package func contentHashes(buckets: Set<Int>) throws -> [PointID: UInt64] {
        try waitApplied(lastOp)
        return lock.read {
            var out: [PointID: UInt64] = [:]
            holder.eachContentHash(buckets: buckets) { out[$0] = $1 }
            return out
        }
    }

    /// The content hashes of those of `ids` this copy holds, once every accepted write is applied.
    package func contentHashes(ids: [PointID]) throws -> [PointID: UInt64] {
        try waitApplied(lastOp)
        return lock.read {
            var out: [PointID: UInt64] = [:]
            for id in ids {
                guard let loc = holder.locations[id], let seg = holder.slots[Int(loc.slot)] else { continue }
                out[id] = seg.contentHash(Int(loc.row))
            }
            return out
        }
    }

    /// `ids`' stored points as an upsert batch (see `SegmentHolder.batch(of:)`).
    package func batch(of ids: [PointID]) -> PointBatch { lock.read { holder.batch(of: ids) } }
}

extension ShardWire {
    /// What a digest request asks for.
    package enum DigestRequest: Equatable {
        case summary
        case buckets(Set<Int>)
        case points([PointID])
    }

    package static func encodeDigestRequest(buckets: [Int]?) -> [UInt8] {
        var w = ByteWriter(capacity: 5 + 4 * (buckets?.count ?? 0))
        w.u8(buckets == nil ? 0 : 1)
        w.u32(UInt32(buckets?.count ?? 0))
        for b in buckets ?? [] { w.u32(UInt32(b)) }
        return w.bytes
    }

    package static func encodeDigestRequest(ids: [PointID]) -> [UInt8] {
        var w = ByteWriter(capacity: 5 + ByteReader.pointIDBytes * ids.count)
        w.u8(2)
        w.u32(UInt32(ids.count))
        for id in ids { w.pointID(id) }
        return w.bytes
    }

    package static func decodeDigestRequest(_ bytes: [UInt8]) throws -> DigestRequest {
        try decode(bytes, "digest request") { r in
            let mode = try r.u8()
            switch mode {
            case 0:
                guard try r.u32() == 0 else { throw VQError(.corrupt, "a summary request names no buckets") }
                return .summary
            case 1:
                let n = try r.count(of: 4, "buckets")
                var buckets = Set<Int>()
                for _ in 0..<n {
                    let b = Int(try r.u32())
                    guard b < ShardDigest.buckets else { throw VQError(.corrupt, "bucket \(b) is out of range 0..<\(ShardDigest.buckets)") }
                    buckets.insert(b)
                }
                return .buckets(buckets)
            case 2:
                let n = try r.count(of: ByteReader.pointIDBytes, "point ids")
                var ids: [PointID] = []
                ids.reserveCapacity(n)
                for _ in 0..<n { ids.append(try r.pointID()) }
                return .points(ids)
            default:
                throw VQError(.corrupt, "unknown digest mode \(mode)")
            }
        }
    }

    package static func encodeDigest(_ d: ShardDigest) -> [UInt8] {
        var w = ByteWriter(capacity: 12 * ShardDigest.buckets)
        for b in 0..<ShardDigest.buckets {
            w.u32(d.counts[b])
            w.u64(d.sums[b])
        }
        return w.bytes
    }

    package static func decodeDigest(_ bytes: [UInt8]) throws -> ShardDigest {
        try decode(bytes, "digest") { r in
            var d = ShardDigest()
            for b in 0..<ShardDigest.buckets {
                d.counts[b] = try r.u32()
                d.sums[b] = try r.u64()
            }
            return d
        }
    }

    package static func encodeHashes(_ hashes: [PointID: UInt64]) -> [UInt8] {
        var w = ByteWriter(capacity: 4 + hashes.count * (ByteReader.pointIDBytes + 8))
        w.u32(UInt32(hashes.count))
        for (id, h) in hashes {
            w.pointID(id)
            w.u64(h)
        }
        return w.bytes
    }

    /// Point hashes, each id once and in one of `buckets` (a peer answering with others is wrong).
    package static func decodeHashes(_ bytes: [UInt8], buckets: Set<Int>) throws -> [PointID: UInt64] {
        try decodeHashes(bytes) { buckets.contains(ShardDigest.bucket($0)) ? nil : "is not in an asked bucket" }
    }

    /// Point hashes, each id once and one of `ids`.
    package static func decodeHashes(_ bytes: [UInt8], ids: Set<PointID>) throws -> [PointID: UInt64] {
        try decodeHashes(bytes) { ids.contains($0) ? nil : "was not asked for" }
    }

    private static func decodeHashes(_ bytes: [UInt8], unexpected: (PointID) -> String?) throws -> [PointID: UInt64] {
        try decode(bytes, "point hashes") { r in
            let n = try r.count(of: ByteReader.pointIDBytes + 8, "point hashes")
            var out: [PointID: UInt64] = [:]
            out.reserveCapacity(n)
            for _ in 0..<n {
                let id = try r.pointID()
                if let why = unexpected(id) { throw VQError(.corrupt, "point \(id) \(why)") }
                guard out.updateValue(try r.u64(), forKey: id) == nil else { throw VQError(.corrupt, "point \(id) is listed twice") }
            }
            return out
        }
    }
}
