import VQEngine

/// `vq info NAME`: config, counts, segments, queues as one JSON object.
func info(_ args: Arguments, _ target: Target) throws -> Int32 {
    let name = try args.positional(0)
    if case .remote(let client) = target { return try remoteInfo(client, name) }
    let engine = try openEngine(args, create: false)
    let collection = try engine.collection(name)
    let status = collection.status
    try engine.close()
    var config = collection.config.json
    if case .object(let members) = config { config = .object(members.filter { $0.0 != "format" && $0.0 != "version" }) }
    let segments: [JSON] = status.shards.enumerated().flatMap { (shard, s) in
        s.segments.map { seg in
            JSON.object([("shard", .int(Int64(shard))), ("id", .int(Int64(seg.id))), ("rows", .int(Int64(seg.rows))),
                         ("points", .int(Int64(seg.livePoints))), ("deleted", .int(Int64(seg.deleted))),
                         ("appendable", .bool(seg.appendable)), ("indexed", .bool(seg.indexed))])
        }
    }
    let shards: [JSON] = status.shards.enumerated().map { (i, s) in
        .object([("shard", .int(Int64(i))), ("points", .int(Int64(s.points))), ("queue_depth", .int(Int64(s.queueDepth))),
                 ("applied_op", .int(Int64(s.appliedOp))), ("flushed_op", .int(Int64(s.flushedOp))), ("wal_files", .int(Int64(s.walFiles)))])
    }
    let out: JSON = .object([
        ("name", .string(name)), ("points", .int(Int64(status.points))),
        ("segments_count", .int(Int64(status.segmentCount))), ("queue_depth", .int(Int64(status.queueDepth))),
        ("unindexed_points", .int(Int64(status.unindexedPoints))),
        ("indexing_rate", .double((status.indexingRate * 10).rounded() / 10)), ("config", config),
        ("shards", .array(shards)), ("segments", .array(segments)),
    ])
    standardOutput.write(bytes: JSONWriter.bytes(out) + [0x0A])
    return 0
}
