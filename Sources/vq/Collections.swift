import VQEngine

/// `vq collections`: one name per line.
func listCollections(_ args: Arguments, _ target: Target) throws -> Int32 {
    if case .remote(let client) = target { return try remoteCollections(client) }
    guard FileIO.isDirectory(args.dataDir) else { return 0 }
    let engine = try openEngine(args, create: false)
    for name in engine.collectionNames() { standardOutput.write(name + "\n") }
    return 0
}
