import Foundation
import VQEngine

/// `vq cluster [status | remove-peer ID | token | repair COLLECTION | rebalance [COLLECTION]]`:
/// asks a running peer; `token` reads the data directory (the secret is never served over HTTP).
func cluster(_ args: Arguments, _ target: Target) throws -> Int32 {
    let action = args.positionals.first ?? "status"
    // Flags of one action are refused with the others rather than ignored.
    if args.has("force") && action != "remove-peer" { throw UsageError(message: "--force applies to remove-peer only") }
    if args.given("format") && action != "status" { throw UsageError(message: "--format applies to status only") }
    if args.given("shard") && action != "repair" { throw UsageError(message: "--shard applies to repair only") }
    if args.has("dry-run") && action != "rebalance" { throw UsageError(message: "--dry-run applies to rebalance only") }
    if action == "token" && args.given("url") {
        throw UsageError(message: "vq cluster token reads --data-dir; the secret is never served over HTTP, so --url does not apply")
    }
    if action == "token" {
        guard args.positionals.count == 1 else { throw UsageError(message: "vq cluster token takes no ID") }
        let path = DataDirectory(args.dataDir).clusterSecret
        guard FileIO.exists(path) else {
            throw VQError(.notFound, "\(path) does not exist: \(args.dataDir) is not the data directory of a cluster peer",
                          hint: "pass --data-dir of a peer started with vq serve or vq join")
        }
        let secret = String(decoding: try FileIO.readAll(path), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        standardOutput.write(secret + "\n")
        return 0
    }
    guard case .remote(let client) = target else {
        throw VQError(.notFound, "vq cluster needs a running peer; no server holds \(args.dataDir)",
                      hint: "pass --url http://HOST:PORT of any peer, or start one with vq serve")
    }
    switch action {
    case "status":
        guard args.positionals.count <= 1 else { throw UsageError(message: "vq cluster status takes no ID") }
        let info = try call(client, "GET", "/cluster")
        // A table for a person at a terminal, JSON for a pipe (as every other command prints).
        switch (args.string("format") ?? (isatty(STDOUT_FILENO) == 1 ? "table" : "json")).lowercased() {
        case "json":
            standardOutput.write(JSONWriter.string(info) + "\n")
        case "table":
            printClusterTable(info)
        case let other:
            throw UsageError(message: "--format is '\(other)'; expected table or json")
        }
    case "remove-peer":
        guard args.positionals.count == 2 else { throw UsageError(message: "vq cluster remove-peer needs the peer's ID (see vq cluster)") }
        let text = args.positionals[1]
        guard let id = UInt64(text), id > 0 else { throw UsageError(message: "peer id '\(text)' is not a positive integer") }
        _ = try call(client, "DELETE", "/cluster/peer/\(id)" + (args.has("force") ? "?force=true" : ""))
        if !args.has("quiet") { printError("removed peer \(id)") }
    case "repair":
        guard args.positionals.count == 2 else { throw UsageError(message: "vq cluster repair needs the COLLECTION whose replicas to compare") }
        var path = collectionPath(args.positionals[1], "/cluster/repair")
        if args.given("shard") { path += "?shard=\(try args.int("shard", default: 0, in: 0...1_000_000))" }
        let report = try call(client, "POST", path)
        standardOutput.write(JSONWriter.string(report) + "\n")
        let shards = report["shards"]?.arrayValue ?? []
        let all = shards.flatMap { $0["replicas"]?.arrayValue ?? [] }
        let rows = all.filter { $0["compared"]?.boolValue != false }
        let failed = rows.filter { $0["error"] != nil }.count + shards.filter { $0["error"] != nil }.count
        if !args.has("quiet") {
            let repaired = rows.reduce(0) { $0 + Int($1["upserted"]?.intValue ?? 0) + Int($1["deleted"]?.intValue ?? 0) }
            let recovering = all.count - rows.count
            printError("compared \(rows.count) replicas: \(repaired) points repaired"
                       + (failed > 0 ? ", \(failed) shards or replicas could not be compared or repaired (see \"error\")" : "")
                       + (recovering > 0 ? "; \(recovering) not Active (being recovered from the primary), not compared" : ""))
        }
        // Something left unchecked is not a success (1, as a failed run; usage errors are 2).
        if failed > 0 { return 1 }
    case "rebalance":
        guard args.positionals.count <= 2 else { throw UsageError(message: "vq cluster rebalance takes at most one COLLECTION") }
        var query: [String] = []
        if args.positionals.count == 2 { query.append("collection=" + percentEncode(args.positionals[1])) }
        if args.has("dry-run") { query.append("dry_run=true") }
        let result = try call(client, "POST", "/cluster/rebalance" + (query.isEmpty ? "" : "?" + query.joined(separator: "&")))
        standardOutput.write(JSONWriter.string(result) + "\n")
        if !args.has("quiet") {
            let n = result["moves"]?.arrayValue?.count ?? 0
            printError(n == 0 ? "replicas are already even" : args.has("dry-run") ? "\(n) moves planned" : "moved \(n) replicas")
        }
    default:
        throw UsageError(message: "unknown cluster action '\(action)'; expected status, remove-peer, token, repair or rebalance")
    }
    return 0
}

private func printClusterTable(_ info: JSON) {
    let me = info["peer_id"]?.uint64Value
    let raft = info["raft_info"]
    let leader = raft?["leader"]?.uint64Value
    let voters = Set((raft?["voters"]?.arrayValue ?? []).compactMap(\.uint64Value))
    var rows: [[String]] = [["PEER", "URI", "ROLE", "HEALTH"]]
    for (key, peer) in info["peers"]?.objectValue ?? [] {
        let uri = peer["uri"]?.stringValue ?? "?"
        let id = UInt64(key)
        var role = id == leader ? "leader" : voters.isEmpty || id.map(voters.contains) == true ? "follower" : "learner"
        if id == me { role += " (this peer)" }
        // Each peer's own health check, with a short timeout: "up" or why not.
        var health = "up"
        do {
            let r = try HTTPClient(url: uri, timeout: 1).send("GET", "/healthz")
            if r.status != 200 { health = "status \(r.status)" }
        } catch {
            health = "unreachable"
        }
        rows.append([key, uri, role, health])
    }
    let widths = (0..<4).map { c in rows.map { $0[c].count }.max() ?? 0 }
    for row in rows {
        standardOutput.write(zip(row, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: "  ")
            .trimmingCharacters(in: .whitespaces) + "\n")
    }
    let term = raft?["term"]?.uint64Value ?? 0, commit = raft?["commit"]?.uint64Value ?? 0
    standardOutput.write("term \(term), commit \(commit)" + (leader == nil ? ", no leader" : "") + "\n")
    if let quorum = raft?["quorum"]?.uint64Value, !voters.isEmpty {
        // A majority of voters must answer for any change to commit: surviving one failed peer takes three.
        let tolerated = voters.count - Int(quorum)
        let has = raft?["has_quorum"]?.boolValue == true
        standardOutput.write("quorum: \(has ? "yes" : "NO") (\(voters.count) voter\(voters.count == 1 ? "" : "s"), \(quorum) needed; "
                             + "survives \(tolerated) failed peer\(tolerated == 1 ? "" : "s"))\n")
    }
}
