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
    var quantization: JSON?
    if let kind = args.string("quantization") {
        // Qdrant's PATCH form: a new config replaces the old one; "Disabled" removes it.
        if kind.lowercased() == "none" {
            if args.string("quantile") != nil { throw UsageError(message: "--quantile does not apply to --quantization none") }
            quantization = .string("Disabled")
        } else {
            quantization = try quantizationFlag(args).map { .object($0.json) }
        }
    } else if args.string("quantile") != nil {
        throw UsageError(message: "--quantile is for --quantization int8")
    }
    guard !params.isEmpty || !optimizers.isEmpty || quantization != nil else {
        throw UsageError(message: "nothing to change; name at least one setting (see vq help update-collection)")
    }
    let patch: JSON = .object((params.isEmpty ? [] : [("params", .object(params))]) + (optimizers.isEmpty ? [] : [("optimizers_config", .object(optimizers))])
                              + (quantization.map { [("quantization_config", $0)] } ?? []))
    _ = try withClient(args, target) { client in try client.call("PATCH", collectionPath(name), patch) }
    // The same line remote or embedded: what was set.
    standardOutput.write(bytes: JSONWriter.bytes(.object([("collection", .string(name)), ("updated", patch)])) + [0x0A])
    return 0
}
