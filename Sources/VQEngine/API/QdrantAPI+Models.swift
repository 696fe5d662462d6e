// Request bodies -> engine calls, engine results -> Qdrant's JSON shapes.

import Foundation

extension QdrantAPI {
    // MARK: small readers

    func requireArray(_ body: JSON, _ key: String) throws -> [JSON] {
        guard let v = body[key] else { throw VQError.invalid("request body lacks \"\(key)\"") }
        guard let a = v.arrayValue else { throw VQError.invalid("\"\(key)\" is \(v.typeName); expected an array") }
        return a
    }

    /// Refuses a body member vq does not know (never silently dropped).
    /// - Throws: `.invalidInput` naming the member and the ones `what` takes.
    func rejectUnknown(_ body: JSON, _ known: [String], _ what: String) throws {
        guard case .object(let members) = body else { throw VQError.invalid("\(what) is \(body.typeName); expected an object") }
        if let bad = members.first(where: { !known.contains($0.0) }) {
            throw VQError.invalid("\(what) has \"\(bad.0)\", which vq does not support; expected " + known.joined(separator: ", "))
        }
    }

    /// Refuses members vq does not know and settings it knows but does not implement (null counts
    /// as absent). `unsupported` maps a member to why it is refused; `allowed` lists the rest.
    func checkSettings(_ body: JSON?, _ what: String, allowed: [String], unsupported: [String: String] = [:]) throws {
        guard let body, body != .null else { return }
        guard case .object(let members) = body else { throw VQError.invalid("\(what) is \(body.typeName); expected an object") }
        for (key, value) in members where value != .null {
            if let why = unsupported[key] { throw VQError.invalid("\(what).\(key) is not supported: \(why)") }
            if !allowed.contains(key) {
                throw VQError.invalid("\(what) has \"\(key)\", which vq does not know; expected " + allowed.joined(separator: ", "))
            }
        }
    }

    /// Members a request knows but this form of it has no use for: refused by name, not ignored.
    func refuseMembers(_ body: JSON, _ names: [String], _ form: String) throws {
        for name in names where body[name].map({ $0 != .null }) ?? false {
            throw VQError.invalid("\(form) does not take \"\(name)\"")
        }
    }

    /// score_threshold: a number, or absent/null.
    func scoreThreshold(_ body: JSON) throws -> Double? {
        guard let v = body["score_threshold"], v != .null else { return nil }
        guard let d = v.doubleValue else { throw VQError.invalid("\"score_threshold\" is \(v.typeName); expected a number") }
        return d
    }

    /// Whether a score passes a score_threshold: at least it for similarities, at most it for distances.
    static func passes(_ score: Float, _ threshold: Double, higherIsBetter: Bool) -> Bool {
        higherIsBetter ? Double(score) >= threshold : Double(score) <= threshold
    }

    func int(_ body: JSON, _ key: String, default d: Int, min lower: Int = 0) throws -> Int {
        guard let v = body[key], v != .null else { return d }
        guard let i = v.intValue, i >= Int64(lower), i <= Int64(Int32.max) else {
            throw VQError.invalid("\"\(key)\" is \(v.compactText); expected an integer of at least \(lower)")
        }
        return Int(i)
    }

    func bool(_ body: JSON, _ key: String, default d: Bool) throws -> Bool {
        guard let v = body[key], v != .null else { return d }
        guard let b = v.boolValue else { throw VQError.invalid("\"\(key)\" is \(v.typeName); expected true or false") }
        return b
    }

    /// with_payload: true/false, a list of keys, or {"include"|"exclude": keys} (see PayloadSelector).
    func withPayload(_ body: JSON, default d: Bool) throws -> PayloadSelector {
        try PayloadSelector(json: body["with_payload"], default: d)
    }

    func filter(_ body: JSON) throws -> Filter? {
        guard let f = body["filter"], f != .null else { return nil }
        return try Filter(json: f)
    }

    func parsePathID(_ text: String) throws -> PointID {
        if let n = UInt64(text) { return .number(n) }
        if let u = PointID(uuidString: text) { return u }
        throw VQError.invalid("point id \"\(text)\" is invalid; expected an unsigned integer or a UUID")
    }

    /// `?wait=true`: applied and searchable; otherwise once durable. `?timeout=S` bounds back pressure.
    func writeOptions(_ r: HTTPRequest) throws -> (WriteWait, Date) {
        let wait: WriteWait
        switch r.query["wait"]?.lowercased() {
        case nil, "false", "0": wait = .durable
        case "true", "1", "": wait = .applied
        case let other?: throw VQError.invalid("wait is \"\(other)\"; expected true or false")
        }
        return (wait, Date().addingTimeInterval(try timeoutParameter(r) ?? config.writeTimeout))
    }

    /// The longest `?timeout=S` taken: a day. (Far larger deadlines overflow the clock that
    /// waits on them: Foundation's `NSCondition.wait(until:)` traps past about 9.2e9 s.)
    package static let maxTimeout: Double = 86_400

    /// `?timeout=S`, checked: a positive number of seconds, at most a day; nil when not given.
    func timeoutParameter(_ r: HTTPRequest) throws -> Double? { try Self.timeout(r.query["timeout"]) }

    /// A `timeout` parameter's text, checked (see `timeoutParameter`).
    package static func timeout(_ text: String?) throws -> Double? {
        guard let t = text else { return nil }
        guard let v = Double(t), v > 0, v <= Self.maxTimeout else {
            throw VQError.invalid("timeout is \"\(t)\"; expected a positive number of seconds, at most \(Int(Self.maxTimeout))")
        }
        return v
    }

    /// How long a metadata change may take to commit through Raft: `?timeout=S` (Qdrant's "wait
    /// for operation commit"), else `fallback`. Without a cluster a change commits at once, locally.
    func commitTimeout(_ r: HTTPRequest, fallback: Double = 10) throws -> Double { try timeoutParameter(r) ?? fallback }

    func updateResult(_ ticket: WriteTicket, _ wait: WriteWait, _ start: UInt64) -> HTTPResponse {
        APIEnvelope.ok(.object([("operation_id", .int(Int64(ticket.ops.values.max() ?? 0))),
                                ("status", .string(wait == .applied ? "completed" : "acknowledged"))]), since: start)
    }

    /// The points a selector names: {"points": [ids]} or {"filter": {...}}.
    /// - Parameter also: the other members the request's body takes (anything else is refused).
    func selected(_ collection: VectorCollection, _ body: JSON, also: [String] = []) throws -> [PointID] {
        try checkSettings(body, "request", allowed: ["points", "filter"] + also,
                          unsupported: ["shard_key": "vq places points by id; there are no shard keys",
                                        "key": "vq changes payload keys at the top level only"])
        if let points = body["points"], points != .null, let f = body["filter"], f != .null {
            throw VQError.invalid("request names points both by \"points\" and by \"filter\"; give one")
        }
        if let points = body["points"], points != .null {
            guard let list = points.arrayValue else {
                if case .object = points { return try collection.ids(matching: try Filter(json: points)) }
                throw VQError.invalid("\"points\" is \(points.typeName); expected a list of point ids")
            }
            return try list.map { try PointID(json: $0) }
        }
        if let f = try filter(body) { return try collection.ids(matching: f) }
        throw VQError.invalid("request names no points; expected \"points\": [ids] or \"filter\"")
    }

    // MARK: JSON out

    func recordJSON(_ p: PointRecord, withVector: VectorSelector, withPayload: PayloadSelector) -> JSON {
        var m: [(String, JSON)] = [("id", p.id.json)]
        if withPayload.wanted { m.append(("payload", withPayload.apply(p.payload))) }
        if withVector.wanted { m.append(("vector", withVector.json(p))) }
        return .object(m)
    }

    /// - Parameter vector: the point's vectors as `VectorSelector.json` renders them, or nil.
    func scoredJSON(_ h: ScoredPoint, vector: JSON?, payload selector: PayloadSelector = .all) -> JSON {
        // The float's shortest form (0.98058069, not 0.9805806875228882), as Qdrant prints f32 scores.
        let score = Double(h.score.description) ?? Double(h.score)
        var m: [(String, JSON)] = [("id", h.id.json), ("version", .int(Int64(h.version))), ("score", .double(score))]
        if selector.wanted { m.append(("payload", selector.apply(h.payload))) }
        if let vector { m.append(("vector", vector)) }
        return .object(m)
    }

    /// The vectors of `hits` as `selector` renders them (one retrieve), by id; empty when none are wanted.
    func hitVectors(_ collection: VectorCollection, _ ids: [PointID], _ selector: VectorSelector) throws -> [PointID: JSON] {
        guard selector.wanted else { return [:] }
        return Dictionary(try collection.retrieve(ids, withVector: true, withPayload: false).map { ($0.id, selector.json($0)) },
                          uniquingKeysWith: { a, _ in a })
    }

    // MARK: collections

    func createCollection(_ name: String, _ r: HTTPRequest, _ start: UInt64) throws -> HTTPResponse {
        try Engine.validateName(name)
        let body = r.body.isEmpty ? JSON.object([]) : try JSONParser.parseRequest(r.body)
        try checkCollectionSettings(body, creating: true)
        // Sparse vectors alone: no dense ones ("vectors" absent or {}).
        let sparseOnly = body["sparse_vectors"].map { $0 != .null } ?? false
        guard let vectors = body["vectors"].flatMap({ $0 == .null ? nil : $0 }) ?? (sparseOnly ? .object([]) : nil) else {
            throw VQError.invalid("collection needs \"vectors\": {\"size\": N, \"distance\": \"Cosine\"} or {name: {\"size\", \"distance\"}}")
        }
        var c = CollectionConfig(vectors: try VectorLayout(json: vectors, sparse: body["sparse_vectors"]))
        c.preventUnoptimized = config.preventUnoptimized
        c.updateQueueSize = config.updateQueueSize
        c.updateQueueBytes = config.updateQueueBytes
        c.shardNumber = try int(body, "shard_number", default: 1, min: 1)
        c.replicationFactor = try int(body, "replication_factor", default: 1, min: 1)
        c.writeConsistencyFactor = try int(body, "write_consistency_factor", default: 1, min: 1)
        c.readFanOutDelayMs = try int(body, "read_fan_out_delay_ms", default: 0)
        c.readFanOutFactor = try int(body, "read_fan_out_factor", default: 0)
        try applyHNSW(&c, body["hnsw_config"])
        try applyOptimizers(&c, body["optimizers_config"])
        if let wal = body["wal_config"], wal != .null { c.walCapacityMb = try int(wal, "wal_capacity_mb", default: c.walCapacityMb, min: 1) }
        try applyQuantization(&c, body["quantization_config"])
        if let cluster {
            // Through consensus: every peer creates its local part when it applies the entry.
            try c.validate()
            guard cluster.aliases[name] == nil else { throw VQError(.conflict, "\"\(name)\" is an alias; choose another collection name") }
            guard !engine.hasCollection(name) && cluster.collectionMeta(name) == nil else {
                throw VQError(.conflict, "collection \"\(name)\" already exists")
            }
            let placement = try ClusterState.placement(shards: c.shardNumber, replicas: c.replicationFactor, peers: cluster.status.voters)
            do {
                try cluster.propose(ClusterState.createCollection(name, c, placement: placement), timeout: try commitTimeout(r))
            } catch let e as VQError where e.kind == .conflict && cluster.collectionMeta(name)?.config == c {
                // Committed by an attempt whose answer was lost (a leader change): it is ours.
            }
            guard engine.hasCollection(name) else {
                // Still being made here (the effects thread is behind): say so, undo nothing.
                guard cluster.waitApplied(cluster.appliedIndex, timeout: 20) else {
                    throw VQError(.busy, "collection \"\(name)\" is committed but not yet created on this peer; retry shortly")
                }
                if engine.hasCollection(name) { return APIEnvelope.ok(.bool(true), since: start) }
                // Not made here (a full disk, say): take it out of the metadata again, so no entry
                // is left that names a collection this peer cannot serve.
                try? cluster.propose(ClusterState.deleteCollection(name))
                throw VQError(.io, "collection \"\(name)\" could not be created on this peer (see its log); the create was undone",
                              hint: "free disk space or fix what the log names, then create it again")
            }
        } else {
            try engine.createCollection(name, config: c)
        }
        return APIEnvelope.ok(.bool(true), since: start)
    }

    /// What vq takes in a create (PUT) or update (PATCH) body; everything else is refused, naming it.
    ///
    /// Storage hints (`on_disk`, `on_disk_payload`, `memmap_threshold`) are taken whatever their
    /// value: vq keeps vectors, graphs and payloads in memory-mapped files in every case, and the
    /// page cache decides what stays in RAM.
    func checkCollectionSettings(_ body: JSON, creating: Bool) throws {
        let unsupported = [
            "strict_mode_config": "vq has no strict mode",
            "init_from": "create the collection, then upsert its points",
            "metadata": "vq keeps no collection metadata",
        ]
        func flag(_ j: JSON?, _ key: String, _ what: String) throws {
            if let v = j?[key], v != .null, v.boolValue == nil { throw VQError.invalid("\(what).\(key) is \(v.typeName); expected true or false") }
        }
        if creating {
            try checkSettings(body, "collection", allowed: ["vectors", "sparse_vectors", "quantization_config", "shard_number", "sharding_method", "replication_factor",
                                                           "write_consistency_factor", "read_fan_out_delay_ms", "read_fan_out_factor",
                                                           "on_disk_payload", "hnsw_config", "optimizers_config", "wal_config"], unsupported: unsupported)
            if let v = body["vectors"], v != .null {
                // One unnamed vector's params, or a map of named ones.
                func params(_ p: JSON, _ what: String) throws {
                    try checkSettings(p, what, allowed: ["size", "distance", "on_disk", "datatype", "hnsw_config", "multivector_config"], unsupported: [
                        "quantization_config": "vq quantizes per collection: give quantization_config at the top level"])
                    try checkSettings(p["multivector_config"], "\(what).multivector_config", allowed: ["comparator"])
                    try flag(p, "on_disk", what)
                    try datatype(p["datatype"], "\(what).datatype")
                    try checkSettings(p["hnsw_config"], "\(what).hnsw_config", allowed: ["m", "ef_construct", "on_disk"], unsupported: [
                        "full_scan_threshold": "set full_scan_threshold on the collection's hnsw_config",
                        "max_indexing_threads": "set max_indexing_threads on the collection's hnsw_config",
                        "payload_m": "vq builds no extra payload links yet", "inline_storage": "vq keeps vectors apart from the graph"])
                    try flag(p["hnsw_config"], "on_disk", "\(what).hnsw_config")
                }
                if v["size"] != nil || v["distance"] != nil {
                    try params(v, "vectors")
                } else if case .object(let members) = v {
                    for (name, p) in members {
                        guard case .object = p else { throw VQError.invalid("vectors.\(name) is \(p.typeName); expected {\"size\": N, \"distance\": ...}") }
                        try params(p, "vectors.\(name)")
                    }
                }
            }
            if case .object(let members)? = body["sparse_vectors"] {
                for (name, p) in members {
                    try checkSettings(p, "sparse_vectors.\(name)", allowed: ["index", "modifier"])
                    // Search is exact either way (the index is walked or the segment scanned): storage and
                    // threshold hints are taken.
                    try checkSettings(p["index"], "sparse_vectors.\(name).index", allowed: ["on_disk", "full_scan_threshold", "datatype"])
                    try flag(p["index"], "on_disk", "sparse_vectors.\(name).index")
                    try datatype(p["index"]?["datatype"], "sparse_vectors.\(name).index.datatype")
                }
            }
            if let m = body["sharding_method"], m != .null, m.stringValue?.lowercased() != "auto" {
                guard m.stringValue?.lowercased() == "custom" else { throw VQError.unknownValue("sharding_method is \(m.compactText); expected \"auto\" or \"custom\"") }
                throw VQError.invalid("sharding_method \(m.compactText) is not supported: vq places points by id (auto)")
            }
            try checkSettings(body["wal_config"], "wal_config", allowed: ["wal_capacity_mb", "wal_segments_ahead"])
            if let ahead = body["wal_config"]?["wal_segments_ahead"], ahead != .null, ahead.intValue != 0 {
                throw VQError.invalid("wal_config.wal_segments_ahead \(ahead.compactText) is not supported: vq creates log files as it fills them (0)")
            }
        } else {
            try checkSettings(body, "update", allowed: ["params", "hnsw_config", "optimizers_config", "quantization_config"],
                              unsupported: unsupported.merging(["vectors": "vector settings cannot change",
                                                                "sparse_vectors": "sparse vector settings cannot change",
                                                                "wal_config": "the log's file size is set when the collection is created"]) { a, _ in a })
            try checkSettings(body["params"], "params", allowed: ["replication_factor", "write_consistency_factor", "read_fan_out_delay_ms",
                                                                  "read_fan_out_factor", "on_disk_payload"])
            try flag(body["params"], "on_disk_payload", "params")
        }
        try flag(body, "on_disk_payload", "collection")
        try checkSettings(body["hnsw_config"], "hnsw_config", allowed: ["m", "ef_construct", "full_scan_threshold", "max_indexing_threads", "on_disk"],
                          unsupported: ["payload_m": "vq builds no extra payload links yet", "inline_storage": "vq keeps vectors apart from the graph"])
        try flag(body["hnsw_config"], "on_disk", "hnsw_config")
        try checkSettings(body["optimizers_config"], "optimizers_config",
                          allowed: ["deleted_threshold", "vacuum_min_vector_number", "default_segment_number", "max_segment_size",
                                    "indexing_threshold", "flush_interval_sec", "max_optimization_threads", "prevent_unoptimized",
                                    "memmap_threshold"])
    }

    /// `quantization_config`: `{"scalar": {"type": "int8", "quantile", "always_ram"}}` or
    /// `{"turbo": {"bits": "bits4", "always_ram"}}`; product and binary quantization and the
    /// narrower turbo codes are refused by name.
    func applyQuantization(_ c: inout CollectionConfig, _ q: JSON?) throws {
        guard let q, q != .null else { return }
        let offered = "vq offers scalar int8 and turbo bits4 quantization"
        try checkSettings(q, "quantization_config", allowed: ["scalar", "turbo"], unsupported: ["product": offered, "binary": offered])
        guard case .object(let kinds) = q, kinds.count == 1 else {
            throw VQError.invalid("quantization_config needs exactly one of \"scalar\": {\"type\": \"int8\"} or \"turbo\": {\"bits\": \"bits4\"}")
        }
        let body = kinds[0].1
        guard case .object = body else { throw VQError.invalid("quantization_config.\(kinds[0].0) is \(body.compactText); expected an object") }
        if let t = q["turbo"] {
            try checkSettings(t, "quantization_config.turbo", allowed: ["bits", "always_ram"])
            if let bits = t["bits"], bits != .null {
                guard let b = bits.stringValue, ["bits4", "bits2", "bits1_5", "bits1"].contains(b) else {
                    throw VQError.unknownValue("quantization_config.turbo.bits is \(bits.compactText); expected \"bits4\", \"bits2\", \"bits1_5\" or \"bits1\"")
                }
                guard b == "bits4" else { throw VQError.invalid("quantization_config.turbo.bits \"\(b)\" is not supported: vq offers bits4") }
            }
            c.quantization = .turbo4
            try alwaysRam(t, "turbo", &c)
            return
        }
        let s = q["scalar"]!
        try checkSettings(s, "quantization_config.scalar", allowed: ["type", "quantile", "always_ram"])
        guard s["type"]?.stringValue == "int8" else {
            throw VQError.unknownValue("quantization_config.scalar.type is \(s["type"]?.compactText ?? "missing"); expected \"int8\"")
        }
        var quantile = 1.0
        if let v = s["quantile"], v != .null {
            guard let d = v.doubleValue, d >= 0.5, d <= 1 else {
                throw VQError.invalid("quantization_config.scalar.quantile is \(v.compactText); expected a number from 0.5 to 1")
            }
            quantile = d
        }
        c.quantization = .scalar(quantile: quantile)
        try alwaysRam(s, "scalar", &c)
    }

    /// `always_ram`: codes are always in RAM here, so true (or absent) is what vq does; false
    /// (codes on disk with the vectors) is refused rather than stored and ignored.
    private func alwaysRam(_ q: JSON, _ kind: String, _ c: inout CollectionConfig) throws {
        guard let v = q["always_ram"], v != .null else { return }
        guard let b = v.boolValue else { throw VQError.invalid("quantization_config.\(kind).always_ram is \(v.typeName); expected true or false") }
        guard b else { throw VQError.invalid("quantization_config.\(kind).always_ram false is not supported: vq keeps quantized vectors in RAM") }
        c.quantizationAlwaysRam = true
    }

    /// A vector datatype: float32 is what vq stores; float16 and uint8 are Qdrant's but not
    /// implemented (400); anything else is not a datatype (422).
    func datatype(_ t: JSON?, _ what: String) throws {
        guard let t, t != .null, t.stringValue?.lowercased() != "float32" else { return }
        guard let s = t.stringValue?.lowercased(), ["float16", "uint8"].contains(s) else {
            throw VQError.unknownValue("\(what) is \(t.compactText); expected \"float32\", \"float16\" or \"uint8\"")
        }
        throw VQError.invalid("\(what) \(t.compactText) is not supported: vq stores float32")
    }

    func applyHNSW(_ c: inout CollectionConfig, _ h: JSON?) throws {
        guard let h, h != .null else { return }
        c.m = try int(h, "m", default: c.m)
        c.efConstruct = try int(h, "ef_construct", default: c.efConstruct, min: 4)
        c.fullScanThreshold = try int(h, "full_scan_threshold", default: c.fullScanThreshold)
        c.maxIndexingThreads = try int(h, "max_indexing_threads", default: c.maxIndexingThreads)
    }

    func applyOptimizers(_ c: inout CollectionConfig, _ o: JSON?) throws {
        guard let o, o != .null else { return }
        if let d = o["deleted_threshold"], d != .null {
            guard let v = d.doubleValue else { throw VQError.invalid("deleted_threshold is \(d.typeName); expected a number from 0 to 1") }
            c.deletedThreshold = v
        }
        c.vacuumMinVectorNumber = try int(o, "vacuum_min_vector_number", default: c.vacuumMinVectorNumber)
        c.defaultSegmentNumber = try int(o, "default_segment_number", default: c.defaultSegmentNumber)
        if let v = o["max_segment_size"], v != .null { c.maxSegmentSize = try int(o, "max_segment_size", default: 0, min: 1) }
        c.indexingThreshold = try int(o, "indexing_threshold", default: c.indexingThreshold)
        c.flushIntervalSec = try int(o, "flush_interval_sec", default: c.flushIntervalSec)
        c.preventUnoptimized = try bool(o, "prevent_unoptimized", default: c.preventUnoptimized)
        // Present and null means automatic again (Qdrant's "no limit").
        if let v = o["max_optimization_threads"] {
            c.maxOptimizationThreads = v == .null ? nil : try int(o, "max_optimization_threads", default: 0)
        }
    }

    func updateCollection(_ name: String, _ r: HTTPRequest, _ start: UInt64) throws -> HTTPResponse {
        let body = r.body.isEmpty ? JSON.object([]) : try JSONParser.parseRequest(r.body)
        try checkCollectionSettings(body, creating: false)
        if let cluster, let meta = cluster.collectionMeta(name) {
            var c = meta.config
            try changeCollection(&c, body)
            try c.validate()
            guard c.vectors == meta.config.vectors, c.shardNumber == meta.config.shardNumber,
                  c.replicationFactor == meta.config.replicationFactor else {
                throw VQError.invalid("vector size, distance, shard_number and replication_factor cannot change; create a new collection")
            }
            try cluster.propose(ClusterState.updateCollection(name, c), timeout: try commitTimeout(r))
            return APIEnvelope.ok(.bool(true), since: start)
        }
        _ = try engine.updateCollection(name) { c in try changeCollection(&c, body) }
        return APIEnvelope.ok(.bool(true), since: start)
    }

    /// `PUT /collections/NAME/index` (create) and `DELETE /collections/NAME/index/FIELD`: changes
    /// the payload schema in the config (through Raft in a cluster, so every replica indexes it);
    /// each open shard builds or drops the field's index in every segment.
    func changePayloadIndex(_ name: String, field: String, schema: PayloadFieldSchema?, _ r: HTTPRequest, _ start: UInt64) throws -> HTTPResponse {
        let (wait, _) = try writeOptions(r)
        try PayloadSchema.validate(fieldName: field)
        func change(_ c: inout CollectionConfig) { c.payloadSchema[field] = schema }
        if let cluster, let meta = cluster.collectionMeta(name) {
            var c = meta.config
            change(&c)
            if c != meta.config { try cluster.propose(ClusterState.updateCollection(name, c)) }
        } else {
            _ = try engine.updateCollection(name, waitForIndexes: wait == .applied) { change(&$0) }
        }
        return APIEnvelope.ok(.object([("operation_id", .int(0)), ("status", .string(wait == .applied ? "completed" : "acknowledged"))]),
                              since: start)
    }

    func createPayloadIndex(_ name: String, _ r: HTTPRequest, _ body: JSON, _ start: UInt64) throws -> HTTPResponse {
        try rejectUnknown(body, ["field_name", "field_schema", "field_type"], "create index request")
        guard let field = body["field_name"]?.stringValue else { throw VQError.invalid("create index needs \"field_name\": a payload key") }
        guard let s = body["field_schema"] ?? body["field_type"], s != .null else {
            throw VQError.invalid("create index needs \"field_schema\": one of " + PayloadFieldType.allCases.map(\.rawValue).joined(separator: ", "))
        }
        return try changePayloadIndex(name, field: field, schema: try PayloadFieldSchema(json: s), r, start)
    }

    /// Qdrant's `payload_schema` of collection info: per field, its type, params and point count.
    func payloadSchemaInfo(_ collection: VectorCollection) -> JSON {
        var counts: [String: Int] = [:]
        for shard in collection.shards { counts.merge(shard.indexedPointCounts(), uniquingKeysWith: +) }
        return .object(collection.config.payloadSchema.fields.map { name, schema in
            var m: [(String, JSON)] = [("data_type", .string(schema.type.rawValue))]
            if schema.parameterised { m.append(("params", schema.paramsJSON)) }
            m.append(("points", .int(Int64(counts[name] ?? 0))))
            return (name, .object(m))
        })
    }

    /// What a PATCH body changes.
    func changeCollection(_ c: inout CollectionConfig, _ body: JSON) throws {
        if let p = body["params"], p != .null {
            c.replicationFactor = try int(p, "replication_factor", default: c.replicationFactor, min: 1)
            c.writeConsistencyFactor = try int(p, "write_consistency_factor", default: c.writeConsistencyFactor, min: 1)
            c.readFanOutDelayMs = try int(p, "read_fan_out_delay_ms", default: c.readFanOutDelayMs)
            c.readFanOutFactor = try int(p, "read_fan_out_factor", default: c.readFanOutFactor)
        }
        try applyHNSW(&c, body["hnsw_config"])
        try applyOptimizers(&c, body["optimizers_config"])
        // A new quantization_config replaces the old one whole ("Disabled": none); the
        // collection reopens and its indexed segments make their codes again.
        if let q = body["quantization_config"], q != .null {
            if case .string(let s) = q {
                guard s == "Disabled" else { throw VQError.invalid("quantization_config is \(q.compactText); expected an object or \"Disabled\"") }
                c.quantization = nil
                c.quantizationAlwaysRam = nil
            } else {
                var fresh = c
                fresh.quantization = nil
                fresh.quantizationAlwaysRam = nil
                try applyQuantization(&fresh, q)
                c = fresh
            }
        }
    }

    /// A collection's counts; a distributed one's points are one replica of every shard,
    /// wherever it is (queues and segments stay this peer's).
    func status(of collection: VectorCollection) throws -> CollectionStatus {
        var status = collection.status
        if cluster?.collectionMeta(collection.name) != nil { status.points = try collection.count(filter: nil) }
        return status
    }

    func collectionInfo(_ name: String) throws -> JSON {
        let collection = try openCollection(name)
        let c = collection.config
        let status = try status(of: collection)
        return .object([
            ("status", .string(c.indexingThreshold > 0 && status.unindexedPoints >= c.shardOptions.indexingThresholdRows ? "yellow" : "green")),
            ("optimizer_status", .string("ok")),
            ("indexed_vectors_count", .int(Int64(status.indexedVectors))),
            ("points_count", .int(Int64(status.points))),
            ("segments_count", .int(Int64(status.segmentCount))),
            ("config", .object([
                ("params", .object(c.qdrantParams + [("on_disk_payload", .bool(true))])),
                ("hnsw_config", .object(c.qdrantHNSW + [("on_disk", .bool(true))])),
                ("optimizer_config", .object(c.qdrantOptimizers + [("memmap_threshold", .null)])),
                ("wal_config", .object([("wal_capacity_mb", .int(Int64(c.walCapacityMb))), ("wal_segments_ahead", .int(0))])),
                ("quantization_config", c.quantizationJSON),
            ])),
            ("payload_schema", payloadSchemaInfo(collection)),
            ("update_queue", .object([("length", .int(Int64(status.queueDepth)))])),
        ])
    }

    /// `GET /collections/{name}/cluster`: this peer's replicas and where the others are.
    func collectionCluster(_ name: String) throws -> JSON {
        let collection = try openCollection(name)
        let me = cluster?.id ?? 1
        guard let meta = cluster?.collectionMeta(name) else {
            let shards: [JSON] = collection.shards.enumerated().map { i, s in
                .object([("shard_id", .int(Int64(i))), ("points_count", .int(Int64(s.pointCount))), ("state", .string("Active"))])
            }
            return .object([("peer_id", .uint(me)), ("shard_count", .int(Int64(shards.count))), ("local_shards", .array(shards)),
                            ("remote_shards", .array([])), ("shard_transfers", .array([]))])
        }
        var local: [JSON] = [], remote: [JSON] = []
        for (i, replicas) in meta.shards.enumerated() {
            for r in replicas {
                if r.peer == me {
                    let points = collection.shards.indices.contains(i) ? collection.shards[i].pointCount : 0
                    local.append(.object([("shard_id", .int(Int64(i))), ("points_count", .int(Int64(points))),
                                          ("state", .string(r.state.rawValue))]))
                } else {
                    remote.append(.object([("shard_id", .int(Int64(i))), ("peer_id", .uint(r.peer)), ("state", .string(r.state.rawValue))]))
                }
            }
        }
        return .object([("peer_id", .uint(me)), ("shard_count", .int(Int64(meta.shards.count))), ("local_shards", .array(local)),
                        ("remote_shards", .array(remote)), ("shard_transfers", .array([]))])
    }

    // MARK: points

    func upsert(_ collection: VectorCollection, _ r: HTTPRequest, _ body: JSON, _ start: UInt64) throws -> HTTPResponse {
        let (wait, deadline) = try writeOptions(r)
        return updateResult(try upsertTicket(collection, body, wait, deadline), wait, start)
    }

    /// The points of an upsert body: {"points": [{"id", "vector", "payload"}]} or {"batch": {"ids", "vectors", "payloads"}}.
    func pointBatch(_ collection: VectorCollection, _ body: JSON, payloads allowed: Bool = true) throws -> PointBatch {
        try checkSettings(body, "points request", allowed: allowed ? ["points", "batch"] : ["points"],
                          unsupported: ["shard_key": "vq places points by id; there are no shard keys",
                                        "update_filter": "vq does not make upserts conditional"])
        if body["points"] != nil && body["batch"] != nil { throw VQError.invalid("request has both \"points\" and \"batch\"; give one") }
        var batch = PointBatch(collection.config.vectors)
        func add(_ id: JSON, _ vector: JSON?, _ payload: JSON?, _ what: String) throws {
            let pid = try PointID(json: id)
            let vectors = try pointVectors(vector, collection, "\(what).vector", partial: !allowed)
            var bytes: [UInt8]?
            switch payload {
            case nil, .null?: bytes = nil
            case .object? where allowed: bytes = JSONWriter.bytes(payload!)
            case .object?: throw VQError.invalid("\(what).payload is not taken here; update vectors keeps each point's payload")
            case let other?: throw VQError.invalid("\(what).payload is \(other.typeName); expected an object")
            }
            withOptionalBuffers(vectors.dense) { batch.append(id: pid, vectors: $0, sparse: vectors.sparse, multi: vectors.multi, payload: bytes) }
        }
        if let points = body["points"] {
            guard let list = points.arrayValue else { throw VQError.invalid("\"points\" is \(points.typeName); expected an array") }
            for (i, p) in list.enumerated() {
                try checkSettings(p, "points[\(i)]", allowed: allowed ? ["id", "vector", "payload"] : ["id", "vector"])
                guard let id = p["id"] else { throw VQError.invalid("points[\(i)] lacks \"id\"") }
                try add(id, p["vector"], p["payload"], "points[\(i)]")
            }
        } else if let b = body["batch"], allowed {
            try checkSettings(b, "batch", allowed: ["ids", "vectors", "payloads"])
            let ids = try requireArray(b, "ids")
            // One vector per id, or {name: [one vector per id]}.
            var perPoint: [JSON]
            switch b["vectors"] {
            case .array(let list)?: perPoint = list
            case .object(let members)?:
                perPoint = Array(repeating: .object([]), count: ids.count)
                for (name, column) in members {
                    guard let list = column.arrayValue, list.count == ids.count else {
                        throw VQError.invalid("batch.vectors.\(name) must be an array with one vector per id (\(ids.count))")
                    }
                    for i in ids.indices {
                        guard case .object(var m) = perPoint[i] else { continue }
                        if list[i] != .null { m.append((name, list[i])) }
                        perPoint[i] = .object(m)
                    }
                }
            default: throw VQError.invalid("batch.vectors must be an array with one vector per id (\(ids.count)), or {name: array}")
            }
            guard perPoint.count == ids.count else {
                throw VQError.invalid("batch.vectors has \(perPoint.count) vectors; expected one per id (\(ids.count))")
            }
            let payloads = b["payloads"]?.arrayValue
            if let payloads, payloads.count != ids.count { throw VQError.invalid("batch.payloads has \(payloads.count) entries; expected \(ids.count)") }
            for i in ids.indices { try add(ids[i], perPoint[i], payloads?[i], "batch[\(i)]") }
        } else {
            throw VQError.invalid(allowed ? "upsert needs \"points\": [...] or \"batch\": {\"ids\", \"vectors\", \"payloads\"}"
                                  : "update vectors needs \"points\": [{\"id\", \"vector\"}]")
        }
        return batch
    }

    func upsertTicket(_ collection: VectorCollection, _ body: JSON, _ wait: WriteWait, _ deadline: Date) throws -> WriteTicket {
        var batch = try pointBatch(collection, body)
        return try collection.upsert(&batch, wait: wait, deadline: deadline)
    }

    /// `PUT /points/vectors`: new vectors for existing points, payloads kept; a point that does not
    /// exist is a 404 (checked before anything is written).
    /// - Parameter check: refuse points that do not exist (read from the applied state; without
    ///   `wait` a point written just before may not be applied yet, so only `wait=true` checks).
    func updateVectorsTicket(_ collection: VectorCollection, _ body: JSON, _ wait: WriteWait, _ deadline: Date,
                             check: Bool = false) throws -> WriteTicket {
        var batch = try pointBatch(collection, body, payloads: false)
        if check || wait == .applied {
            let found = Set(try collection.retrieve(batch.ids, withVector: false, withPayload: false).map(\.id))
            if let missing = batch.ids.first(where: { !found.contains($0) }) {
                throw VQError(.notFound, "no point with id \(missing) in collection \"\(collection.name)\"")
            }
        }
        return try collection.updateVectors(&batch, wait: wait, deadline: deadline)
    }

    /// `PUT` (Qdrant's) or `POST /points/vectors`.
    func updateVectors(_ collection: VectorCollection, _ c: RouteCall) throws -> HTTPResponse {
        let (wait, deadline) = try writeOptions(c.request)
        return updateResult(try updateVectorsTicket(collection, try c.body(), wait, deadline), wait, c.start)
    }

    /// `POST /points/batch`: {"operations": [...]}, applied in order; one update result each.
    func batchUpdate(_ collection: VectorCollection, _ r: HTTPRequest, _ body: JSON, _ start: UInt64) throws -> HTTPResponse {
        let (wait, deadline) = try writeOptions(r)
        try rejectUnknown(body, ["operations"], "batch update request")
        let operations = try requireArray(body, "operations")
        var results: [JSON] = []
        var earlier = WriteTicket()
        for (i, op) in operations.enumerated() {
            guard case .object(let members) = op, members.count == 1, let (kind, inner) = members.first else {
                throw VQError.invalid("operations[\(i)] must be an object with one operation")
            }
            // An operation that reads points (a filter to resolve, points that must exist) sees
            // the earlier ones of the batch applied, as in Qdrant.
            if inner["filter"] != nil || kind == "update_vectors" { try collection.wait(earlier, .applied) }
            let ticket: WriteTicket
            switch kind {
            case "upsert": ticket = try upsertTicket(collection, inner, wait, deadline)
            case "delete": ticket = try collection.delete(try selected(collection, inner), wait: wait, deadline: deadline)
            case "set_payload": ticket = try setPayloadTicket(collection, inner, overwrite: false, wait, deadline)
            case "overwrite_payload": ticket = try setPayloadTicket(collection, inner, overwrite: true, wait, deadline)
            case "delete_payload": ticket = try deletePayloadTicket(collection, inner, wait, deadline)
            case "clear_payload":
                let ids = try selected(collection, inner)
                ticket = try collection.updatePayload(ids, wait: wait, deadline: deadline) { .clearPayload($0) }
            case "update_vectors": ticket = try updateVectorsTicket(collection, inner, wait, deadline, check: true)
            case "delete_vectors": ticket = try deleteVectorsTicket(collection, inner, wait, deadline)
            default:
                throw VQError.invalid("operations[\(i)] is \"\(kind)\"; expected upsert, delete, set_payload, overwrite_payload, "
                                      + "delete_payload, clear_payload, update_vectors or delete_vectors")
            }
            earlier.merge(ticket)
            results.append(.object([("operation_id", .int(Int64(ticket.ops.values.max() ?? 0))),
                                    ("status", .string(wait == .applied ? "completed" : "acknowledged"))]))
        }
        return APIEnvelope.ok(.array(results), since: start)
    }

    /// `POST /points/vectors/delete`: {"points" | "filter", "vector": [names]}.
    func deleteVectorsTicket(_ collection: VectorCollection, _ body: JSON, _ wait: WriteWait, _ deadline: Date) throws -> WriteTicket {
        let ids = try selected(collection, body, also: ["vector"])
        let names = try requireArray(body, "vector")
        guard !names.isEmpty else { throw VQError.invalid("\"vector\" is empty; expected the names of the vectors to delete") }
        // Dense vectors are numbered from 0, sparse ones after them (Operation.deleteVectors).
        let layout = collection.config.vectors
        let vectors = try names.enumerated().map { i, n -> Int in
            guard let name = n.stringValue else { throw VQError.invalid("vector[\(i)] is \(n.typeName); expected a vector name") }
            switch try layout.ref(name) {
            case .dense(let k): return k
            case .sparse(let k): return layout.count + k
            case .multi(let k): return layout.count + layout.sparse.count + k
            }
        }
        return try collection.deleteVectors(ids, vectors: Array(Set(vectors)).sorted(), wait: wait, deadline: deadline)
    }

    func getPoints(_ collection: VectorCollection, _ body: JSON) throws -> JSON {
        try checkSettings(body, "retrieve request", allowed: ["ids", "with_payload", "with_vector", "with_vectors"],
                          unsupported: ["shard_key": "vq places points by id; there are no shard keys"])
        let ids = try requireArray(body, "ids").map { try PointID(json: $0) }
        let wv = try withVector(body, collection.config.vectors), wp = try withPayload(body, default: true)
        return .array(try collection.retrieve(ids, withVector: wv.wanted, withPayload: wp.wanted).map { recordJSON($0, withVector: wv, withPayload: wp) })
    }

    func deletePoints(_ collection: VectorCollection, _ r: HTTPRequest, _ body: JSON, _ start: UInt64) throws -> HTTPResponse {
        let (wait, deadline) = try writeOptions(r)
        let ids = try selected(collection, body)
        return updateResult(try collection.delete(ids, wait: wait, deadline: deadline), wait, start)
    }

    func setPayload(_ collection: VectorCollection, _ r: HTTPRequest, _ body: JSON, overwrite: Bool, _ start: UInt64) throws -> HTTPResponse {
        let (wait, deadline) = try writeOptions(r)
        return updateResult(try setPayloadTicket(collection, body, overwrite: overwrite, wait, deadline), wait, start)
    }

    func setPayloadTicket(_ collection: VectorCollection, _ body: JSON, overwrite: Bool, _ wait: WriteWait, _ deadline: Date) throws -> WriteTicket {
        guard let payload = body["payload"], case .object = payload else { throw VQError.invalid("\"payload\" must be an object") }
        let ids = try selected(collection, body, also: ["payload"])
        let bytes = JSONWriter.bytes(payload)
        return try collection.updatePayload(ids, wait: wait, deadline: deadline) { .setPayload(ids: $0, payload: bytes, overwrite: overwrite) }
    }

    func deletePayload(_ collection: VectorCollection, _ r: HTTPRequest, _ body: JSON, _ start: UInt64) throws -> HTTPResponse {
        let (wait, deadline) = try writeOptions(r)
        return updateResult(try deletePayloadTicket(collection, body, wait, deadline), wait, start)
    }

    func deletePayloadTicket(_ collection: VectorCollection, _ body: JSON, _ wait: WriteWait, _ deadline: Date) throws -> WriteTicket {
        let keys = try requireArray(body, "keys").map { k -> String in
            guard let s = k.stringValue else { throw VQError.invalid("\"keys\" must hold strings") }
            return s
        }
        let ids = try selected(collection, body, also: ["keys"])
        return try collection.updatePayload(ids, wait: wait, deadline: deadline) { .deletePayloadKeys(ids: $0, keys: keys) }
    }

    func clearPayload(_ collection: VectorCollection, _ r: HTTPRequest, _ body: JSON, _ start: UInt64) throws -> HTTPResponse {
        let (wait, deadline) = try writeOptions(r)
        let ids = try selected(collection, body)
        let ticket = try collection.updatePayload(ids, wait: wait, deadline: deadline) { .clearPayload($0) }
        return updateResult(ticket, wait, start)
    }

    func scroll(_ collection: VectorCollection, _ body: JSON) throws -> JSON {
        try checkSettings(body, "scroll request", allowed: ["offset", "limit", "filter", "with_payload", "with_vector", "with_vectors", "order_by"],
                          unsupported: ["shard_key": "vq places points by id; there are no shard keys"])
        let limit = try int(body, "limit", default: 10, min: 1)
        guard limit <= VectorCollection.maxResults else { throw VQError.invalid("limit is \(limit); expected at most \(VectorCollection.maxResults)") }
        let offset = try body["offset"].flatMap { $0 == .null ? nil : try PointID(json: $0) }
        let wv = try withVector(body, collection.config.vectors), wp = try withPayload(body, default: true)
        if let order = body["order_by"], order != .null {
            guard offset == nil else { throw VQError.invalid("offset cannot be used with order_by; page with order_by.start_from") }
            let rows = try ordered(collection, order, filter: try filter(body), limit: limit, withVector: wv, withPayload: wp)
            return .object([("points", .array(rows)), ("next_page_offset", .null)])
        }
        let (points, next) = try collection.scroll(filter: try filter(body), offset: offset, limit: limit, withVector: wv.wanted, withPayload: wp.wanted)
        return .object([("points", .array(points.map { recordJSON($0, withVector: wv, withPayload: wp) })),
                        ("next_page_offset", next?.json ?? .null)])
    }

    /// Points by Qdrant's order_by ("key" or {"key", "direction": "asc"|"desc", "start_from"}), each
    /// as a record with its `order_value` (and a 0 score in the query API, where points have one).
    func ordered(_ collection: VectorCollection, _ order: JSON, filter: Filter?, limit: Int, withVector wv: VectorSelector,
                 withPayload wp: PayloadSelector, score: Bool = false) throws -> [JSON] {
        let key: String
        var descending = false
        var startFrom: Double?
        switch order {
        case .string(let k): key = k
        case .object:
            try rejectUnknown(order, ["key", "direction", "start_from"], "order_by")
            guard let k = order["key"]?.stringValue else { throw VQError.invalid("order_by needs \"key\": an indexed payload field") }
            key = k
            switch order["direction"]?.stringValue?.lowercased() {
            case nil, "asc": descending = false
            case "desc": descending = true
            default: throw VQError.unknownValue("order_by.direction is \(order["direction"]!.compactText); expected \"asc\" or \"desc\"")
            }
            if let s = order["start_from"], s != .null {
                // A datetime index starts from an RFC 3339 datetime or microseconds since 1970
                // (what its order_value says); a numeric one from a number.
                let datetime = collection.config.payloadSchema[k]?.type == .datetime
                let v = datetime ? (s.stringValue.flatMap(Datetime.parse) ?? s.doubleValue.map { $0 / 1_000_000 }) : s.doubleValue
                guard let v else {
                    throw VQError.invalid("order_by.start_from is \(s.compactText); expected " + (datetime ? "an RFC 3339 datetime or microseconds" : "a number"))
                }
                startFrom = v
            }
        default: throw VQError.invalid("order_by is \(order.typeName); expected a key or {\"key\", \"direction\", \"start_from\"}")
        }
        let rows = try collection.ordered(key: key, filter: filter, descending: descending, startFrom: startFrom, limit: limit,
                                          withVector: wv.wanted, withPayload: wp.wanted)
        let datetime = collection.config.payloadSchema[key]?.type == .datetime
        return rows.map { v, r in
            guard case .object(var m) = recordJSON(r, withVector: wv, withPayload: wp) else { return .null }
            if score { m.insert(contentsOf: [("version", .int(Int64(r.version))), ("score", .double(0))], at: 1) }
            // Qdrant's order_value is a number: datetimes as microseconds since 1970.
            let value: JSON = datetime ? .int(Int64((v * 1_000_000).rounded())) : (v == v.rounded() && abs(v) < 1e15 ? .int(Int64(v)) : .double(v))
            m.append(("order_value", value))
            return .object(m)
        }
    }

    /// `POST /collections/NAME/facet`: {"key", "filter", "limit", "exact"} -> {"hits": [{"value", "count"}]}.
    func facet(_ collection: VectorCollection, _ body: JSON) throws -> JSON {
        try rejectUnknown(body, ["key", "filter", "limit", "exact"], "facet request")
        guard let key = body["key"]?.stringValue else { throw VQError.invalid("facet needs \"key\": an indexed payload field") }
        _ = try bool(body, "exact", default: false)  // counts are always exact here
        let limit = try int(body, "limit", default: 10, min: 1)
        let hits = try collection.facet(key: key, filter: try filter(body), limit: limit)
        return .object([("hits", .array(hits.map { .object([("value", $0.value.json), ("count", .int(Int64($0.count)))]) }))])
    }

    func count(_ collection: VectorCollection, _ body: JSON) throws -> JSON {
        try checkSettings(body, "count request", allowed: ["filter", "exact"],
                          unsupported: ["shard_key": "vq places points by id; there are no shard keys"])
        _ = try bool(body, "exact", default: true)  // counts are always exact here
        return .object([("count", .int(Int64(try collection.count(filter: try filter(body)))))])
    }

    /// Shared by search and query: limit, offset, params, filter, score_threshold, with_*.
    func runSearch(_ collection: VectorCollection, query: QueryVector, using: VectorRef, body: JSON) throws -> [JSON] {
        try runSearchCounting(collection, query: query, using: using, body: body).points
    }

    /// - Parameter filter: used instead of the body's when given (a recommendation adds its examples).
    func runSearchCounting(_ collection: VectorCollection, query: QueryVector, using: VectorRef, body: JSON,
                           filter given: Filter?? = nil) throws -> (points: [JSON], skipped: Int, indexedOnly: Bool) {
        var req = searchRequest(query, using, limit: try int(body, "limit", default: 10))
        req.offset = try int(body, "offset", default: 0)
        let selector = try withPayload(body, default: false)
        req.withPayload = selector.wanted
        req.filter = try given ?? filter(body)
        try applySearchParams(body["params"], to: &req)
        let threshold = try scoreThreshold(body)
        let result = try collection.search(req)
        var hits = result.hits
        if let threshold {
            let higher = higherIsBetter(collection, using)
            hits = hits.filter { QdrantAPI.passes($0.score, threshold, higherIsBetter: higher) }
        }
        let wv = try withVector(body, collection.config.vectors)
        let vectors = try hitVectors(collection, hits.map(\.id), wv)
        return (hits.map { scoredJSON($0, vector: wv.wanted ? vectors[$0.id] ?? (wv.layout.named ? .object([]) : .array([])) : nil, payload: selector) }, result.unindexedSkipped,
                req.indexedOnly)
    }

    /// Search params vq implements.
    func checkSearchParams(_ params: JSON?) throws {
        try checkSettings(params, "params", allowed: ["hnsw_ef", "exact", "indexed_only", "quantization"],
                          unsupported: ["acorn": "vq's filtered walk is always on"])
        if let q = params?["quantization"], q != .null { _ = try quantization(params!) }
    }

    /// Search params (`hnsw_ef`, `exact`, `indexed_only`, `quantization`; checked by
    /// `checkSearchParams`) into `req`; absent or null leaves its defaults.
    func applySearchParams(_ params: JSON?, to req: inout SearchRequest) throws {
        guard let params, params != .null else { return }
        if let ef = params["hnsw_ef"], ef != .null { req.hnswEf = try int(params, "hnsw_ef", default: 0, min: 1) }
        req.exact = try bool(params, "exact", default: false)
        req.indexedOnly = try bool(params, "indexed_only", default: false)
        req.quantization = try quantization(params)
    }

    /// params.quantization: {"ignore", "rescore", "oversampling"} (Qdrant's); nil when ignored.
    func quantization(_ params: JSON) throws -> QuantizedSearch? {
        guard let q = params["quantization"], q != .null else { return QuantizedSearch() }
        try rejectUnknown(q, ["ignore", "rescore", "oversampling"], "params.quantization")
        if try bool(q, "ignore", default: false) { return nil }
        var oversampling = 1.0
        if let o = q["oversampling"], o != .null {
            guard let v = o.doubleValue, v >= 1, v <= 100 else {
                throw VQError.invalid("params.quantization.oversampling is \(o.compactText); expected a number from 1 to 100")
            }
            oversampling = v
        }
        return QuantizedSearch(rescore: try bool(q, "rescore", default: true), oversampling: oversampling)
    }

    func search(_ collection: VectorCollection, _ body: JSON) throws -> JSON {
        try checkSettings(body, "search request", allowed: ["vector", "filter", "params", "limit", "offset", "with_payload", "with_vector", "with_vectors",
                                                            "score_threshold"],
                          unsupported: ["shard_key": "vq places points by id; there are no shard keys"])
        try checkSearchParams(body["params"])
        let (query, using) = try namedQuery(body["vector"], collection)
        return .array(try runSearch(collection, query: query, using: using, body: body))
    }

    /// POST /points/query, nearest-vector form: {"query": [..]} or {"query": {"nearest": [..]}}.
    func query(_ collection: VectorCollection, _ body: JSON) throws -> JSON {
        try checkSettings(body, "query request", allowed: ["prefetch", "query", "using", "filter", "params", "score_threshold", "limit", "offset",
                                                           "with_vector", "with_vectors", "with_payload", "lookup_from"],
                          unsupported: ["shard_key": "vq places points by id; there are no shard keys"])
        try checkSearchParams(body["params"])
        if let prefetch = body["prefetch"], prefetch != .null { return try hybridQuery(collection, body) }
        guard let q = body["query"], q != .null else {
            // No query: the points passing the filter in id order, as Qdrant's query API gives them.
            try refuseMembers(body, ["score_threshold", "params", "using", "lookup_from"], "a query request without \"query\" (points in id order)")
            let limit = try int(body, "limit", default: 10), offset = try int(body, "offset", default: 0)
            guard limit + offset <= VectorCollection.maxResults else {
                throw VQError.invalid("limit + offset is \(limit + offset); expected at most \(VectorCollection.maxResults)")
            }
            let wv = try withVector(body, collection.config.vectors), wp = try withPayload(body, default: false)
            let (page, _) = try collection.scroll(filter: try filter(body), offset: nil, limit: max(1, limit + offset),
                                                  withVector: wv.wanted, withPayload: wp.wanted)
            return .object([("points", .array(page.dropFirst(offset).prefix(limit).map { r -> JSON in
                guard case .object(var m) = recordJSON(r, withVector: wv, withPayload: wp) else { return .null }
                m.insert(contentsOf: [("version", .int(Int64(r.version))), ("score", .double(0))], at: 1)
                return .object(m)
            }))])
        }
        if let rec = q["recommend"], q.objectValue?.count == 1 {
            return .object([("points", .array(try recommend(collection, rec, body: body)))])
        }
        if let d = q["discover"], q.objectValue?.count == 1 {
            return .object([("points", .array(try discover(collection, d, body: body)))])
        }
        if let c = q["context"], q.objectValue?.count == 1 {
            return .object([("points", .array(try contextSearch(collection, c, body: body)))])
        }
        if let order = q["order_by"], q.objectValue?.count == 1 {
            try refuseMembers(body, ["offset", "score_threshold", "params", "using", "lookup_from"], "an order_by query (page with order_by.start_from)")
            let limit = try int(body, "limit", default: 10)
            guard limit <= VectorCollection.maxResults else { throw VQError.invalid("limit is \(limit); expected at most \(VectorCollection.maxResults)") }
            return .object([("points", .array(try ordered(collection, order, filter: try filter(body), limit: limit,
                                                           withVector: try withVector(body, collection.config.vectors),
                                                           withPayload: try withPayload(body, default: false),
                                                           score: true)))])
        }
        let using = try usingRef(body, collection)
        let (v, referenced) = try queryVector(collection, body, q, using: using)
        let r = try runSearchCounting(collection, query: v, using: using, body: body,
                                      filter: referenced == nil ? nil : .some(QdrantAPI.excluding(referenced, try filter(body))))
        // vq adds how many points indexed_only left out, only when it was asked for.
        return r.indexedOnly ? .object([("points", .array(r.points)), ("unindexed_skipped", .int(Int64(r.skipped)))])
            : .object([("points", .array(r.points))])
    }
}

/// A collection's config in Qdrant's JSON: the one encoder for collection info and for the body
/// that creates it (`vq create-collection --url`); `QdrantAPI.createCollection` reads it back.
extension CollectionConfig {
    package var qdrantParams: [(String, JSON)] {
        [("vectors", vectors.json)] + (vectors.sparseJSON.map { [("sparse_vectors", $0)] } ?? []) + [
         ("shard_number", .int(Int64(shardNumber))), ("replication_factor", .int(Int64(replicationFactor))),
         ("write_consistency_factor", .int(Int64(writeConsistencyFactor))),
         ("read_fan_out_factor", .int(Int64(readFanOutFactor))), ("read_fan_out_delay_ms", .int(Int64(readFanOutDelayMs)))]
    }

    package var qdrantHNSW: [(String, JSON)] {
        [("m", .int(Int64(m))), ("ef_construct", .int(Int64(efConstruct))), ("full_scan_threshold", .int(Int64(fullScanThreshold))),
         ("max_indexing_threads", .int(Int64(maxIndexingThreads)))]
    }

    package var qdrantOptimizers: [(String, JSON)] {
        [("deleted_threshold", .double(deletedThreshold)), ("vacuum_min_vector_number", .int(Int64(vacuumMinVectorNumber))),
         ("default_segment_number", .int(Int64(defaultSegmentNumber))), ("max_segment_size", maxSegmentSize.map { .int(Int64($0)) } ?? .null),
         ("indexing_threshold", .int(Int64(indexingThreshold))), ("flush_interval_sec", .int(Int64(flushIntervalSec))),
         ("max_optimization_threads", maxOptimizationThreads.map { .int(Int64($0)) } ?? .null),
         ("prevent_unoptimized", .bool(preventUnoptimized))]
    }

    /// `PUT /collections/NAME`'s body for this config.
    package var qdrantCreateBody: JSON {
        .object(qdrantParams + [("hnsw_config", .object(qdrantHNSW)), ("optimizers_config", .object(qdrantOptimizers))]
                + (quantization == nil ? [] : [("quantization_config", quantizationJSON)]))
    }
}
