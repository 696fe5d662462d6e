import Foundation
import VQEngine

/// `vq check [NAME]`: verifies the checksums of every segment file (and that each shard opens:
/// WAL and manifest) of one collection or all; one JSON line per collection on stdout, exit 1
/// when anything is damaged.
func check(_ args: Arguments, _ target: Target) throws -> Int32 {
    let names: [String]
    var damaged = false
    func report(_ name: String, _ problems: [String]) {
        if !problems.isEmpty { damaged = true }
        let line: JSON = .object([("collection", .string(name)), ("ok", .bool(problems.isEmpty)),
                                  ("problems", .array(problems.map { .string($0) }))])
        standardOutput.write(bytes: JSONWriter.bytes(line) + [0x0A])
    }
    if case .remote(let client) = target {
        names = args.positionals.isEmpty ? (try call(client, "GET", "/collections")["collections"]?.arrayValue ?? []).compactMap { $0["name"]?.stringValue }
            : [try args.positional(0)]
        for name in names {
            let result = try call(client, "POST", "/collections/\(name)/check")
            report(name, (result["problems"]?.arrayValue ?? []).compactMap(\.stringValue))
        }
        return damaged ? 1 : 0
    }
    let engine = try openEngine(args, create: false)
    names = args.positionals.isEmpty ? engine.collectionNames() : [try args.positional(0)]
    for name in names {
        do {
            report(name, try engine.collection(name).shards.flatMap { $0.check() })
        } catch let e as VQError where e.kind != .notFound {
            report(name, ["cannot open: \(e.message)"])
        }
    }
    try? engine.close()
    return damaged ? 1 : 0
}
