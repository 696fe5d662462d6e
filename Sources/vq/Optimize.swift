import Foundation
import VQEngine

/// `vq optimize NAME`: seal, index, merge and vacuum now; one JSON summary line.
func optimize(_ args: Arguments, _ target: Target) throws -> Int32 {
    let name = try args.positional(0)
    let status = StatusLine(quiet: args.quiet)
    status.show("optimize \(name): sealing, indexing, merging...")
    let report = try withClient(args, target) { client in try client.call("POST", collectionPath(name, "/optimize")) }
    status.clear()
    printJSON(.object([("collection", .string(name))] + (report.objectValue ?? [])))
    return 0
}
