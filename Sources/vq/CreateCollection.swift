import VQEngine

/// `vq create-collection NAME --dim N [...]`
func createCollection(_ args: Arguments, _ target: Target) throws -> Int32 {
    let name = try args.positional(0)
    try Engine.validateName(name)
    let dim = try args.requiredInt("dim", in: 1...65_536)
    var distance = Distance.cosine
    if let text = args.string("distance") {
        guard let d = Distance(name: text) else {
            throw UsageError(message: "--distance is '\(text)'; expected cosine, dot, euclid or manhattan"
                             + suggestion(text.lowercased(), ["cosine", "dot", "euclid", "manhattan"]))
        }
        distance = d
    }
    var config = CollectionConfig(dim: dim, distance: distance)
    config.shardNumber = try args.int("shards", default: 1, in: 1...1024)
    config.replicationFactor = try args.int("replication-factor", default: 1, in: 1...64)
    config.writeConsistencyFactor = try args.int("write-consistency-factor", default: 1, in: 1...64)
    config.readFanOutDelayMs = try args.int("read-fan-out-delay-ms", default: 0, in: 0...600_000)
    config.readFanOutFactor = try args.int("read-fan-out-factor", default: 0, in: 0...64)
    config.m = try args.int("m", default: 16, in: 0...512)
    config.efConstruct = try args.int("ef-construct", default: 100, in: 4...10_000)
    config.fullScanThreshold = try args.int("full-scan-threshold", default: 10_000, in: 0...Int(Int32.max))
    config.indexingThreshold = try args.int("indexing-threshold", default: 10_000, in: 0...Int(Int32.max))
    if args.string("max-segment-size") != nil {
        config.maxSegmentSize = try args.int("max-segment-size", default: 0, in: 1...Int(Int32.max))
    }
    config.maxIndexingThreads = try args.int("max-indexing-threads", default: 0, in: 0...1024)
    config.defaultSegmentNumber = try args.int("default-segment-number", default: 0, in: 0...1024)
    config.preventUnoptimized = args.has("prevent-unoptimized")
    config.quantization = try quantizationFlag(args)
    config.updateQueueSize = try args.int("update-queue-size", default: 1_000_000, in: 1...100_000_000)
    config.updateQueueBytes = try args.int("update-queue-bytes", default: 1 << 30, in: (1 << 20)...(1 << 40))
    do { try config.validate() } catch let e as VQError { throw UsageError(message: e.message) }
    if case .remote = target {
        // The REST API takes no per-collection queue bounds (the server's --update-queue-* set
        // them): refused rather than dropped.
        for flag in ["update-queue-size", "update-queue-bytes"] where args.given(flag) {
            throw UsageError(message: "--\(flag) applies to embedded collections; a server sets it with vq serve --\(flag)")
        }
    }
    do {
        switch target {
        case .remote(let http): _ = try call(http, "PUT", collectionPath(name), config.qdrantCreateBody)
        case .embedded:
            // The engine's own call: the REST body has no place for the update queue's bounds.
            let engine = try openEngine(args, create: true)
            defer { try? engine.close() }
            try engine.createCollection(name, config: config)
        }
    } catch let e as VQError where e.kind == .conflict && args.has("if-not-exists") {
        // Already there: left as it is (its settings are not compared), as SQL's IF NOT EXISTS.
        printJSON(.object([("collection", .string(name)), ("created", .bool(false))]))
        return 0
    }
    printJSON(.object([("collection", .string(name)), ("created", .bool(true))]))
    return 0
}

/// `--quantization int8|turbo4` and `--quantile Q` (int8 only; default 0.99); nil without them.
func quantizationFlag(_ args: Arguments) throws -> Quantization? {
    guard let kind = args.string("quantization") else {
        if args.string("quantile") != nil { throw UsageError(message: "--quantile is for --quantization int8") }
        return nil
    }
    switch kind.lowercased() {
    case "int8": return .scalar(quantile: args.string("quantile") == nil ? 0.99 : try args.double("quantile", in: 0.5...1))
    case "turbo4":
        if args.string("quantile") != nil { throw UsageError(message: "--quantile is for --quantization int8, not turbo4") }
        return .turbo4
    default:
        throw UsageError(message: "--quantization is '\(kind)'; expected int8 or turbo4" + suggestion(kind.lowercased(), ["int8", "turbo4"]))
    }
}
