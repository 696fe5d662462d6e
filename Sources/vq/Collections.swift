import VQEngine

/// `vq collections`: one name per line.
func listCollections(_ args: Arguments) throws -> Int32 {
    guard FileIO.isDirectory(args.dataDir) else { return 0 }
    let engine = try openEngine(args, create: false)
    for name in engine.collectionNames() { standardOutput.write(name + "\n") }
    return 0
}
