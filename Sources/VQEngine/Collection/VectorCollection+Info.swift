import Foundation

extension VectorCollection {
    /// What `vq info` prints: name, counts, indexing rate, config, shards and segments.
    /// The server answers the same at `GET /collections/{name}/info` (vq's extension), so remote and
    /// embedded `vq info` print the same.
    package func infoJSON(status: CollectionStatus) -> JSON {
        var stored = config.json
        if case .object(let members) = stored { stored = .object(members.filter { $0.0 != "format" && $0.0 != "version" }) }
        let segments: [JSON] = status.shards.enumerated().flatMap { (shard, s) in
            s.segments.map { seg in
                JSON.object([("shard", .int(Int64(shard))), ("id", .int(Int64(seg.id))), ("rows", .int(Int64(seg.rows))),
                             ("points", .int(Int64(seg.livePoints))), ("deleted", .int(Int64(seg.deleted))),
                             ("appendable", .bool(seg.appendable)), ("indexed", .bool(seg.indexed)),
                             ("quantized_bytes", .int(Int64(seg.codeBytes)))])
            }
        }
        let shards: [JSON] = status.shards.enumerated().map { (i, s) in
            .object([("shard", .int(Int64(i))), ("points", .int(Int64(s.points))), ("queue_depth", .int(Int64(s.queueDepth))),
                     ("applied_op", .int(Int64(s.appliedOp))), ("flushed_op", .int(Int64(s.flushedOp))), ("wal_files", .int(Int64(s.walFiles)))])
        }
        return .object([
            ("name", .string(name)), ("points", .int(Int64(status.points))),
            ("segments_count", .int(Int64(status.segmentCount))), ("queue_depth", .int(Int64(status.queueDepth))),
            ("unindexed_points", .int(Int64(status.unindexedPoints))),
            ("indexing_rate", .double((status.indexingRate * 10).rounded() / 10)), ("config", stored),
            ("shards", .array(shards)), ("segments", .array(segments)),
        ])
    }
}
