import VQEngine

/// `vq info NAME`: config, counts, segments, queues as one JSON object.
func info(_ args: Arguments, _ target: Target) throws -> Int32 {
    let name = try args.positional(0)
    printJSON(try withClient(args, target) { client in try client.call("GET", collectionPath(name, "/info")) })
    return 0
}
