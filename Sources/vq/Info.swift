import VQEngine

/// `vq info NAME`: config, counts, segments, queues as one JSON object.
func info(_ args: Arguments, _ target: Target) throws -> Int32 {
    let name = try args.positional(0)
    if case .remote(let client) = target { return try remoteInfo(client, name) }
    let engine = try openEngine(args, create: false)
    let collection = try engine.collection(name)
    let status = collection.status
    try engine.close()
    let out = collection.infoJSON(status: status)
    standardOutput.write(bytes: JSONWriter.bytes(out) + [0x0A])
    return 0
}
