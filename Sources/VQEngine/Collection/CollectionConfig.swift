// A collection's configuration, shaped like Qdrant's collection info `config`.
//
//   {"params": {"vectors": {"size": 384, "distance": "Cosine"}, "shard_number": 1,    (or named: {"a": {...}})
//               "replication_factor": 1, "write_consistency_factor": 1,
//               "read_fan_out_delay_ms": 0, "read_fan_out_factor": 0},
//    "hnsw_config": {"m": 16, "ef_construct": 100, "full_scan_threshold": 10000, "max_indexing_threads": 0},
//    "optimizer_config": {"deleted_threshold": 0.2, "vacuum_min_vector_number": 1000,
//               "default_segment_number": 0, "max_segment_size": null, "indexing_threshold": 10000,
//               "flush_interval_sec": 5, "prevent_unoptimized": false},
//    "update_queue_size": 1000000, "update_queue_bytes": 1073741824,
//    "payload_schema": {"city": "keyword", "price": {"type": "integer", "lookup": false, "range": true}}}
//
// Sizes in kilobytes of vector data, as Qdrant counts them.

/// Everything a collection is created with.
package struct CollectionConfig: Sendable, Equatable {
    /// The vectors each point carries (one unnamed, or named ones).
    package var vectors: VectorLayout
    package var shardNumber = 1
    package var replicationFactor = 1
    package var writeConsistencyFactor = 1
    package var readFanOutDelayMs = 0
    package var readFanOutFactor = 0
    package var m = 16
    package var efConstruct = 100
    package var fullScanThreshold = 10_000
    package var maxIndexingThreads = 0
    package var deletedThreshold = 0.2
    package var vacuumMinVectorNumber = 1000
    package var defaultSegmentNumber = 0
    /// Kilobytes of vector data one segment may hold; nil = automatic (200,000 KB).
    package var maxSegmentSize: Int? = nil
    package var indexingThreshold = 10_000
    package var flushIntervalSec = 5
    package var preventUnoptimized = false
    /// Background optimization jobs per shard: nil = automatic (one), 0 = optimizations off
    /// (`vq optimize` still runs them), more than 1 is accepted and runs one.
    package var maxOptimizationThreads: Int? = nil
    package var updateQueueSize = 1_000_000
    /// The update queue's bound in bytes of queued operations, per shard.
    package var updateQueueBytes = 1 << 30
    /// Indexed payload fields (`PUT /collections/NAME/index`).
    package var payloadSchema = PayloadSchema()
    /// Megabytes per write-ahead log file (Qdrant's wal_config.wal_capacity_mb).
    package var walCapacityMb = 32
    /// Quantization of the dense vectors (Qdrant's quantization_config: scalar int8 or turbo
    /// bits4); nil: none.
    package var quantization: Quantization? = nil
    /// quantization_config.*.always_ram (reported back; codes are always in RAM here).
    package var quantizationAlwaysRam: Bool? = nil

    /// Qdrant's `quantization_config`: `{"scalar": {"type": "int8", "quantile", "always_ram"}}`,
    /// `{"turbo": {"bits": "bits4", "always_ram"}}` or null.
    package var quantizationJSON: JSON {
        guard let q = quantization, case .object(var m) = q.json[0].1 else { return .null }
        if let r = quantizationAlwaysRam { m.append(("always_ram", .bool(r))) }
        return .object([(q.json[0].0, .object(m))])
    }

    package static let formatVersion = 1
    package static let automaticMaxSegmentSize = 200_000
    /// default_segment_number 0 means this many: one, so a search walks one graph (the fastest
    /// way, BENCHMARKS.md "The default path"); merges are cheap since the largest segment's graph
    /// seeds the merged one. max_segment_size still bounds a segment, so large collections get as
    /// few segments as it allows.
    package static let automaticSegmentNumber = 1

    /// A collection of one unnamed vector.
    package init(dim: Int, distance: Distance = .cosine) {
        vectors = VectorLayout(dim: dim, distance: distance)
    }

    package init(vectors: VectorLayout) {
        self.vectors = vectors
    }

    /// Rows of vector data in `kilobytes` at these vectors' dimensions (at least 1).
    package func rows(forKilobytes kilobytes: Int) -> Int {
        max(1, kilobytes * 1024 / (vectors.floatsPerPoint * 4))
    }

    /// The shard options this config implies.
    package var shardOptions: ShardOptions {
        var o = ShardOptions(vectors: vectors)
        o.updateQueueSize = updateQueueSize
        o.updateQueueBytes = updateQueueBytes
        o.segmentCapacity = rows(forKilobytes: maxSegmentSize ?? CollectionConfig.automaticMaxSegmentSize)
        o.flushInterval = Double(flushIntervalSec)
        o.indexingThresholdRows = indexingThreshold == 0 ? 0 : rows(forKilobytes: indexingThreshold)
        o.fullScanRows = fullScanThreshold == 0 ? 0 : rows(forKilobytes: fullScanThreshold)
        o.hnsw = HNSWParams(m: m, efConstruct: efConstruct, threads: maxIndexingThreads)
        o.preventUnoptimized = preventUnoptimized
        o.defaultSegmentNumber = defaultSegmentNumber == 0 ? CollectionConfig.automaticSegmentNumber : defaultSegmentNumber
        o.deletedThreshold = deletedThreshold
        o.vacuumMinVectorNumber = vacuumMinVectorNumber
        o.backgroundOptimizer = maxOptimizationThreads != 0
        o.payloadSchema = payloadSchema
        o.walFileLimit = walCapacityMb << 20
        o.quantization = quantization
        return o
    }

    /// Checks every field's range.
    /// - Throws: `.invalidInput` naming the field, its value and the allowed range.
    package func validate() throws {
        func check(_ ok: Bool, _ name: String, _ value: some CustomStringConvertible, _ expected: String) throws {
            if !ok { throw VQError.invalid("\(name) is \(value); expected \(expected)") }
        }
        try vectors.validate()
        try check((1...1024).contains(shardNumber), "shard_number", shardNumber, "1 to 1024")
        try check((1...64).contains(replicationFactor), "replication_factor", replicationFactor, "1 to 64")
        try check((1...64).contains(writeConsistencyFactor), "write_consistency_factor", writeConsistencyFactor, "1 to 64")
        try check(writeConsistencyFactor <= replicationFactor, "write_consistency_factor", writeConsistencyFactor,
                  "at most replication_factor (\(replicationFactor))")
        try check((0...600_000).contains(readFanOutDelayMs), "read_fan_out_delay_ms", readFanOutDelayMs, "0 (off) to 600000")
        try check((0...64).contains(readFanOutFactor), "read_fan_out_factor", readFanOutFactor, "0 to 64")
        try check(m == 0 || (2...512).contains(m), "m", m, "0 (no index) or 2 to 512")
        try check((4...10_000).contains(efConstruct), "ef_construct", efConstruct, "4 to 10000")
        try check(fullScanThreshold >= 0, "full_scan_threshold", fullScanThreshold, "a non-negative number of kilobytes")
        try check(maxIndexingThreads >= 0, "max_indexing_threads", maxIndexingThreads, "0 (all cores) or more")
        try check((0...1).contains(deletedThreshold), "deleted_threshold", deletedThreshold, "0 to 1")
        try check(vacuumMinVectorNumber >= 0, "vacuum_min_vector_number", vacuumMinVectorNumber, "0 or more")
        try check(defaultSegmentNumber >= 0, "default_segment_number", defaultSegmentNumber, "0 (automatic) or more")
        if let maxSegmentSize {
            try check(maxSegmentSize >= 1, "max_segment_size", maxSegmentSize, "at least 1 kilobyte")
        }
        try check(indexingThreshold >= 0, "indexing_threshold", indexingThreshold, "0 (no indexing) or more kilobytes")
        try check((0...86_400).contains(flushIntervalSec), "flush_interval_sec", flushIntervalSec, "0 to 86400")
        if let maxOptimizationThreads {
            try check(maxOptimizationThreads >= 0, "max_optimization_threads", maxOptimizationThreads, "null (automatic), 0 (off) or more")
        }
        try check((1...100_000_000).contains(updateQueueSize), "update_queue_size", updateQueueSize, "1 to 100000000")
        try check(((1 << 20)...(1 << 40)).contains(updateQueueBytes), "update_queue_bytes", updateQueueBytes, "1048576 (1 MiB) to 1099511627776 (1 TiB)")
        try check((1...4096).contains(walCapacityMb), "wal_capacity_mb", walCapacityMb, "1 to 4096")
        if case .scalar(let q) = quantization { try check(q >= 0.5 && q <= 1, "quantization_config.scalar.quantile", q, "0.5 to 1") }
        if quantization == .turbo4, let name = vectors.specs.first(where: { $0.distance == .manhattan })?.name {
            throw VQError.invalid("quantization_config.turbo needs Cosine, Dot or Euclid distances; vector \(name.isEmpty ? "(unnamed)" : "'\(name)'") is Manhattan")
        }
    }

    package var json: JSON {
        .object([
            ("format", .string("vq-collection")),
            ("version", .int(Int64(CollectionConfig.formatVersion))),
            ("params", .object([
                ("vectors", vectors.json),
            ] + (vectors.sparseJSON.map { [("sparse_vectors", $0)] } ?? []) + [
                ("shard_number", .int(Int64(shardNumber))),
                ("replication_factor", .int(Int64(replicationFactor))),
                ("write_consistency_factor", .int(Int64(writeConsistencyFactor))),
                ("read_fan_out_delay_ms", .int(Int64(readFanOutDelayMs))),
                ("read_fan_out_factor", .int(Int64(readFanOutFactor))),
            ])),
            ("hnsw_config", .object([
                ("m", .int(Int64(m))), ("ef_construct", .int(Int64(efConstruct))),
                ("full_scan_threshold", .int(Int64(fullScanThreshold))),
                ("max_indexing_threads", .int(Int64(maxIndexingThreads))),
            ])),
            ("optimizer_config", .object([
                ("deleted_threshold", .double(deletedThreshold)),
                ("vacuum_min_vector_number", .int(Int64(vacuumMinVectorNumber))),
                ("default_segment_number", .int(Int64(defaultSegmentNumber))),
                ("max_segment_size", maxSegmentSize.map { .int(Int64($0)) } ?? .null),
                ("indexing_threshold", .int(Int64(indexingThreshold))),
                ("flush_interval_sec", .int(Int64(flushIntervalSec))),
                ("max_optimization_threads", maxOptimizationThreads.map { .int(Int64($0)) } ?? .null),
                ("prevent_unoptimized", .bool(preventUnoptimized)),
            ])),
            ("update_queue_size", .int(Int64(updateQueueSize))),
            ("update_queue_bytes", .int(Int64(updateQueueBytes))),
            ("payload_schema", payloadSchema.json),
            ("wal_config", .object([("wal_capacity_mb", .int(Int64(walCapacityMb)))])),
            ("quantization_config", quantizationJSON),
        ])
    }

    /// Reads a stored config.
    /// - Throws: `.corrupt` naming the missing or malformed field.
    package init(json: JSON, path: String) throws {
        func field(_ keys: String...) throws -> JSON {
            var v: JSON? = json
            for k in keys { v = v?[k] }
            guard let v else { throw VQError(.corrupt, "\(path) lacks \(keys.joined(separator: "."))") }
            return v
        }
        func int(_ keys: String...) throws -> Int {
            var v: JSON? = json
            for k in keys { v = v?[k] }
            guard let i = v?.intValue else { throw VQError(.corrupt, "\(path): \(keys.joined(separator: ".")) is missing or not an integer") }
            return Int(i)
        }
        guard try field("format").stringValue == "vq-collection" else { throw VQError(.corrupt, "\(path) is not a vq collection config") }
        let version = try int("version")
        guard version == CollectionConfig.formatVersion else {
            throw VQError(.corrupt, "\(path) has format version \(version); this vq reads version \(CollectionConfig.formatVersion)")
        }
        do { self.init(vectors: try VectorLayout(json: try field("params", "vectors"), sparse: json["params"]?["sparse_vectors"])) }
        catch let e as VQError where e.kind == .invalidInput {
            throw VQError(.corrupt, "\(path): params.vectors: \(e.message)")
        }
        shardNumber = try int("params", "shard_number")
        replicationFactor = try int("params", "replication_factor")
        writeConsistencyFactor = try int("params", "write_consistency_factor")
        readFanOutDelayMs = try int("params", "read_fan_out_delay_ms")
        readFanOutFactor = try int("params", "read_fan_out_factor")
        m = try int("hnsw_config", "m")
        efConstruct = try int("hnsw_config", "ef_construct")
        fullScanThreshold = try int("hnsw_config", "full_scan_threshold")
        maxIndexingThreads = try int("hnsw_config", "max_indexing_threads")
        deletedThreshold = try field("optimizer_config", "deleted_threshold").doubleValue ?? 0.2
        vacuumMinVectorNumber = try int("optimizer_config", "vacuum_min_vector_number")
        defaultSegmentNumber = try int("optimizer_config", "default_segment_number")
        maxSegmentSize = try field("optimizer_config", "max_segment_size").intValue.map { Int($0) }
        indexingThreshold = try int("optimizer_config", "indexing_threshold")
        flushIntervalSec = try int("optimizer_config", "flush_interval_sec")
        preventUnoptimized = try field("optimizer_config", "prevent_unoptimized").boolValue ?? false
        // Absent in configs written before the field existed: automatic.
        maxOptimizationThreads = json["optimizer_config"]?["max_optimization_threads"]?.intValue.map { Int($0) }
        updateQueueSize = try int("update_queue_size")
        // Absent in configs written before the field existed: the default.
        updateQueueBytes = json["update_queue_bytes"]?.intValue.map { Int($0) } ?? (1 << 30)
        // Absent in configs written before these fields.
        walCapacityMb = json["wal_config"]?["wal_capacity_mb"]?.intValue.map { Int($0) } ?? 32
        if let scalar = json["quantization_config"]?["scalar"] {
            quantization = .scalar(quantile: scalar["quantile"]?.doubleValue ?? 1)
            quantizationAlwaysRam = scalar["always_ram"]?.boolValue
        } else if let turbo = json["quantization_config"]?["turbo"] {
            guard turbo["bits"]?.stringValue ?? "bits4" == "bits4" else {
                throw VQError(.corrupt, "\(path) has quantization_config.turbo.bits \(turbo["bits"]!.compactText); this vq reads bits4")
            }
            quantization = .turbo4
            quantizationAlwaysRam = turbo["always_ram"]?.boolValue
        }
        if let schema = json["payload_schema"] {
            do { payloadSchema = try PayloadSchema(json: schema) } catch {
                throw VQError(.corrupt, "\(path): payload_schema is malformed: \(error)")
            }
        }
    }
}
