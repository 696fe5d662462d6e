import VQEngine

/// `vq collections`: one name per line.
func listCollections(_ args: Arguments, _ target: Target) throws -> Int32 {
    if case .embedded = target, !FileIO.isDirectory(args.dataDir) { return 0 }
    let result = try withClient(args, target) { client in try client.call("GET", "/collections") }
    for c in result["collections"]?.arrayValue ?? [] {
        if let name = c["name"]?.stringValue { standardOutput.write(name + "\n") }
    }
    return 0
}
