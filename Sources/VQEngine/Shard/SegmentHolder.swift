// The segments of one shard and the id -> (segment, row) map over them.
//
// Not synchronised: LocalShard holds it behind a readers-writer lock, and only
// the applier (or the opening thread, replaying the WAL) mutates it.

/// A shard's segments, its appendable segment and the map from point id to row.
package final class SegmentHolder: @unchecked Sendable {
    struct Location {
        var segment: Int32
        var row: UInt32
    }

    let shardDir: String
    let options: ShardOptions
    private(set) var segments: [Segment] = []
    private(set) var locations: [PointID: Location] = [:]
    private(set) var appendableIndex = 0
    private(set) var nextSegmentId: UInt64

    /// Opens the segments the manifest names and rebuilds the id map.
    init(shardDir: String, options: ShardOptions, infos: [SegmentInfo], nextSegmentId: UInt64) throws {
        self.shardDir = shardDir
        self.options = options
        self.nextSegmentId = nextSegmentId
        for info in infos {
            segments.append(try Segment(directory: DataDirectory.segmentDir(shardDir: shardDir, id: info.id), info: info,
                                        dim: options.dim, distance: options.distance,
                                        capacity: info.appendable ? options.segmentCapacity : info.rows))
        }
        buildLocations()
        if let i = segments.lastIndex(where: { $0.appendable && !$0.isFull }) {
            appendableIndex = i
        } else {
            try addAppendableSegment()
        }
    }

    /// Rebuilds the id map; where two live rows share an id (a flush cut short), the newer version wins.
    private func buildLocations() {
        locations.removeAll(keepingCapacity: true)
        for (s, seg) in segments.enumerated() {
            for row in 0..<seg.rowCount where !seg.isDeleted(row) {
                let rec = seg.record(row)
                let id = rec.id
                if let old = locations[id] {
                    let oldSeg = segments[Int(old.segment)]
                    if oldSeg.record(Int(old.row)).version > rec.version {
                        seg.markDeleted(row)
                        continue
                    }
                    oldSeg.markDeleted(Int(old.row))
                }
                locations[id] = Location(segment: Int32(s), row: UInt32(row))
            }
        }
    }

    private func addAppendableSegment() throws {
        let id = nextSegmentId
        nextSegmentId += 1
        let info = SegmentInfo(id: id, rows: 0, payloadBytes: 0, appendable: true)
        segments.append(try Segment(directory: DataDirectory.segmentDir(shardDir: shardDir, id: id), info: info,
                                    dim: options.dim, distance: options.distance, capacity: options.segmentCapacity))
        appendableIndex = segments.count - 1
    }

    var infos: [SegmentInfo] { segments.map(\.info) }

    /// Applies one logged operation.
    ///
    /// Idempotent in sequence: replaying operations that a cut-short flush
    /// already partly wrote ends in the same state.
    func apply(_ op: UInt64, _ operation: Operation) throws {
        switch operation {
        case .upsert(let batch):
            guard batch.dim == options.dim else {
                throw VQError(.corrupt, "operation \(op) has \(batch.dim)-dimensional vectors; the shard expects \(options.dim)")
            }
            let dim = options.dim
            try batch.vectors.withUnsafeBufferPointer { (vectors) in
                for i in 0..<batch.count {
                    try upsert(batch.ids[i], UnsafeBufferPointer(rebasing: vectors[(i * dim)..<((i + 1) * dim)]), batch.payloads[i], op)
                }
            }
        case .delete(let ids):
            for id in ids {
                if let loc = locations.removeValue(forKey: id) {
                    segments[Int(loc.segment)].markDeleted(Int(loc.row))
                }
            }
        }
    }

    private func upsert(_ id: PointID, _ vector: UnsafeBufferPointer<Float>, _ payload: [UInt8]?, _ op: UInt64) throws {
        if let loc = locations[id] {
            let seg = segments[Int(loc.segment)]
            if Int(loc.segment) == appendableIndex && seg.appendable {
                try seg.overwrite(row: Int(loc.row), version: op, vector: vector, payload: payload)
                return
            }
            seg.markDeleted(Int(loc.row))
        }
        if segments[appendableIndex].isFull || !segments[appendableIndex].appendable {
            segments[appendableIndex].seal()
            try addAppendableSegment()
        }
        let row = try segments[appendableIndex].append(id: id, version: op, vector: vector, payload: payload)
        locations[id] = Location(segment: Int32(appendableIndex), row: UInt32(row))
    }

    /// Exact top-`limit` over every segment.
    func search(_ query: UnsafeBufferPointer<Float>, limit: Int, withPayload: Bool) -> [ScoredPoint] {
        var top = TopK(k: limit)
        for (i, seg) in segments.enumerated() {
            seg.exactSearch(query.baseAddress!, tag: UInt64(i), into: &top)
        }
        return top.sorted().map { hit in
            let seg = segments[Int(hit.key >> 32)]
            let row = Int(hit.key & 0xFFFF_FFFF)
            let rec = seg.record(row)
            return ScoredPoint(id: rec.id, version: rec.version, score: options.distance.userScore(hit.score), rank: hit.score,
                               payload: withPayload ? seg.payload(row) : nil)
        }
    }

    func retrieve(_ ids: [PointID], withVector: Bool, withPayload: Bool) -> [PointRecord] {
        ids.compactMap { id in
            guard let loc = locations[id] else { return nil }
            let seg = segments[Int(loc.segment)]
            let row = Int(loc.row)
            return PointRecord(id: id, version: seg.record(row).version, vector: withVector ? Array(seg.vector(row)) : [],
                               payload: withPayload ? seg.payload(row) : nil)
        }
    }
}
