import Foundation
import VQEngine

/// `vq update-collection NAME --read-fan-out-delay-ms MS ...`: PATCH the named settings; prints
/// {"collection": NAME, "updated": {what was set, in PATCH's shape}}.
func updateCollection(_ args: Arguments, _ target: Target) throws -> Int32 {
    let name = try args.positional(0)
    var params: [(String, JSON)] = [], optimizers: [(String, JSON)] = []
    func number(_ flag: String, _ key: String, into list: inout [(String, JSON)], min lower: Int) throws {
        if args.string(flag) != nil { list.append((key, .int(Int64(try args.int(flag, default: 0, in: lower...Int(Int32.max)))))) }
    }
    try number("read-fan-out-delay-ms", "read_fan_out_delay_ms", into: &params, min: 0)
    try number("read-fan-out-factor", "read_fan_out_factor", into: &params, min: 0)
    try number("write-consistency-factor", "write_consistency_factor", into: &params, min: 1)
    try number("indexing-threshold", "indexing_threshold", into: &optimizers, min: 0)
    if let text = args.string("prevent-unoptimized") {
        guard let b = Bool(text.lowercased()) else { throw UsageError(message: "--prevent-unoptimized is '\(text)'; expected true or false") }
        optimizers.append(("prevent_unoptimized", .bool(b)))
    }
    guard !params.isEmpty || !optimizers.isEmpty else {
        throw UsageError(message: "nothing to change; name at least one setting (see vq help update-collection)")
    }
    let patch: JSON = .object((params.isEmpty ? [] : [("params", .object(params))]) + (optimizers.isEmpty ? [] : [("optimizers_config", .object(optimizers))]))
    switch target {
    case .remote(let client):
        _ = try call(client, "PATCH", "/collections/\(name)", patch)
    case .embedded:
        let engine = try openEngine(args, create: false)
        _ = try engine.updateCollection(name) { c in
            for (k, v) in params {
                let n = Int(v.intValue ?? 0)
                switch k {
                case "read_fan_out_delay_ms": c.readFanOutDelayMs = n
                case "read_fan_out_factor": c.readFanOutFactor = n
                default: c.writeConsistencyFactor = n
                }
            }
            for (k, v) in optimizers {
                if k == "indexing_threshold" { c.indexingThreshold = Int(v.intValue ?? 0) } else { c.preventUnoptimized = v.boolValue ?? false }
            }
        }
        try engine.close()
    }
    // The same line remote or embedded: what was set.
    standardOutput.write(bytes: JSONWriter.bytes(.object([("collection", .string(name)), ("updated", patch)])) + [0x0A])
    return 0
}
