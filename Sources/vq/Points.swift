import Foundation
import VQEngine

// The point verbs for scripts and nightly jobs: get, count, export, delete, and
// delete-collection. Each is written once against the REST API (Client.swift), so an embedded
// run and one through a server print the same. Records print as the JSONL `vq upsert` reads:
// {"id", "vector", "payload"}.

/// `--filter JSON`: a Qdrant filter object (checked as the engine reads it), or nil without the flag.
func filterFlag(_ args: Arguments) throws -> JSON? {
    guard let text = args.string("filter") else { return nil }
    let json: JSON
    do { json = try JSONParser.parse(Array(text.utf8)) } catch {
        throw UsageError(message: "--filter is not valid JSON (\(error)); expected a filter object such as '{\"must\":[{\"key\":\"k\",\"match\":{\"value\":1}}]}'")
    }
    guard case .object = json else { throw UsageError(message: "--filter is \(json.typeName); expected a filter object such as '{\"must\":[...]}'") }
    do { _ = try Filter(json: json) } catch let e as VQError { throw UsageError(message: "--filter: \(e.message)") }
    return json
}

/// A point id from the command line: an unsigned integer, else a string (a UUID; the API checks it).
func pointID(_ text: String) -> JSON {
    if let n = UInt64(text) { return n <= UInt64(Int64.max) ? .int(Int64(n)) : .uint(n) }
    return .string(text)
}

/// A record of the API as a line `vq upsert` reads: id, vector (when asked for), payload.
func recordLine(_ record: JSON, vectors: Bool) -> JSON {
    var members: [(String, JSON)] = [("id", record["id"] ?? .null)]
    if vectors, let v = record["vector"], v != .null { members.append(("vector", v)) }
    members.append(("payload", record["payload"] ?? .object([])))
    return .object(members)
}

/// `vq get NAME ID...`: the points, one JSONL line each, in the order asked; missing ids are
/// reported on stderr and make the exit status 1.
func getPoints(_ args: Arguments, _ target: Target) throws -> Int32 {
    let name = try args.positional(0)
    let ids = Array(args.positionals.dropFirst())
    guard !ids.isEmpty else { throw UsageError(message: "vq get needs point ids after the collection name") }
    let vectors = args.has("with-vectors")
    let records = try withClient(args, target) { client in
        try client.call("POST", collectionPath(name, "/points"),
                        .object([("ids", .array(ids.map(pointID))), ("with_payload", .bool(true)), ("with_vector", .bool(vectors))]))
    }.arrayValue ?? []
    // Keyed by parsed id: a UUID asked for in capitals is the one the API answers in lower case.
    var byID: [PointID: JSON] = [:]
    for r in records { if let id = try? PointID(json: r["id"] ?? .null) { byID[id] = r } }
    var missing = 0
    for id in ids {
        if let key = try? PointID(json: pointID(id)), let r = byID[key] {
            printJSON(recordLine(r, vectors: vectors))
        } else {
            missing += 1
            reportError("point \(id) is not in collection \"\(name)\"")
        }
    }
    return missing == 0 ? 0 : 1
}

/// `vq count NAME [--filter JSON]`: {"collection", "count"}, counted exactly.
func countPoints(_ args: Arguments, _ target: Target) throws -> Int32 {
    let name = try args.positional(0)
    let filter = try filterFlag(args)
    let count = try withClient(args, target) { client in try countMatching(client, name, filter) }
    printJSON(.object([("collection", .string(name)), ("count", .int(Int64(count)))]))
    return 0
}

/// The exact number of points matching `filter` (all without one).
func countMatching(_ client: any APIClient, _ name: String, _ filter: JSON?) throws -> Int {
    var body: [(String, JSON)] = [("exact", .bool(true))]
    if let filter { body.append(("filter", filter)) }
    let result = try client.call("POST", collectionPath(name, "/points/count"), .object(body))
    guard let n = result["count"]?.intValue else { throw VQError(.internal, "the count answer has no count: \(result.compactText)") }
    return Int(n)
}

/// `vq export NAME [--filter JSON] [--with-vectors]`: every (matching) point as a JSONL line, in
/// id order, paged through the scroll API; `vq upsert` reads the output back unchanged.
func exportPoints(_ args: Arguments, _ target: Target) throws -> Int32 {
    let name = try args.positional(0)
    let filter = try filterFlag(args)
    let vectors = args.has("with-vectors")
    let page = try args.int("batch-size", default: 1_000, in: 1...10_000)
    let exported = try withClient(args, target) { client -> Int in
        var offset: JSON = .null
        var exported = 0
        repeat {
            var body: [(String, JSON)] = [("limit", .int(Int64(page))), ("with_payload", .bool(true)), ("with_vector", .bool(vectors))]
            if let filter { body.append(("filter", filter)) }
            if offset != .null { body.append(("offset", offset)) }
            let result = try client.call("POST", collectionPath(name, "/points/scroll"), .object(body))
            for r in result["points"]?.arrayValue ?? [] {
                printJSON(recordLine(r, vectors: vectors))
                exported += 1
            }
            offset = result["next_page_offset"] ?? .null
        } while offset != .null
        return exported
    }
    if !args.quiet { printError("vq: exported \(exported) point\(exported == 1 ? "" : "s") from \"\(name)\"") }
    return 0
}

/// `vq delete NAME (--ids ID,... | --filter JSON)`: deletes the points and waits until applied;
/// prints {"collection", "deleted"} with the number that matched just before.
func deletePoints(_ args: Arguments, _ target: Target) throws -> Int32 {
    let name = try args.positional(0)
    let filter = try filterFlag(args)
    let ids = args.string("ids").map { $0.split(separator: ",").map { pointID($0.trimmingCharacters(in: .whitespaces)) } }
    switch (ids, filter) {
    case (nil, nil): throw UsageError(message: "vq delete needs --ids ID,... or --filter JSON: which points to delete")
    case (.some, .some): throw UsageError(message: "vq delete takes --ids or --filter, not both")
    case (.some(let list), nil) where list.isEmpty: throw UsageError(message: "--ids is empty; expected ids separated by commas")
    default: break
    }
    let selector: JSON = ids.map { JSON.object([("has_id", .array($0))]) } ?? filter!
    let deleted = try withClient(args, target) { client -> Int in
        let matched = try countMatching(client, name, ids == nil ? selector : .object([("must", .array([selector]))]))
        let body: JSON = ids.map { JSON.object([("points", .array($0))]) } ?? .object([("filter", selector)])
        _ = try client.call("POST", collectionPath(name, "/points/delete"), body, query: ["wait": "true"])
        return matched
    }
    printJSON(.object([("collection", .string(name)), ("deleted", .int(Int64(deleted)))]))
    return 0
}

/// `vq delete-collection NAME [--if-exists]`: removes the collection and its data.
func deleteCollection(_ args: Arguments, _ target: Target) throws -> Int32 {
    let name = try args.positional(0)
    var existed = false
    if case .embedded = target, !FileIO.isDirectory(args.dataDir) {
        existed = false  // no data directory: nothing to delete (and none is made)
    } else {
        existed = try withClient(args, target) { client in try client.call("DELETE", collectionPath(name)) }.boolValue ?? false
    }
    if !existed && !args.has("if-exists") {
        throw VQError(.notFound, "collection \"\(name)\" does not exist", hint: "vq delete-collection --if-exists succeeds either way")
    }
    printJSON(.object([("collection", .string(name)), ("deleted", .bool(existed))]))
    return 0
}
