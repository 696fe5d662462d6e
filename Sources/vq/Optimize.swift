import Foundation
import VQEngine

/// `vq optimize NAME`: seal, index, merge and vacuum now; one JSON summary line.
func optimize(_ args: Arguments, _ target: Target) throws -> Int32 {
    let name = try args.positional(0)
    if case .remote(let client) = target { return try remoteOptimize(client, name) }
    let engine = try openEngine(args, create: false)
    let collection = try engine.collection(name)
    let status = StatusLine(quiet: args.quiet)
    status.show("optimize \(name): sealing, indexing, merging...")
    _ = try collection.settle()
    let report = try collection.optimize()
    status.clear()
    try engine.close()
    let summary: JSON = .object([
        ("collection", .string(name)),
        ("segments_before", .int(Int64(report.segmentsBefore))), ("segments_after", .int(Int64(report.segmentsAfter))),
        ("points_indexed", .int(Int64(report.pointsIndexed))), ("seconds", .double((report.seconds * 1000).rounded() / 1000)),
    ])
    standardOutput.write(bytes: JSONWriter.bytes(summary) + [0x0A])
    return 0
}
