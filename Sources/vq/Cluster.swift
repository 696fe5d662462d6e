import Foundation
import VQEngine

/// `vq cluster [status | remove-peer ID]`: asks a running peer.
func cluster(_ args: Arguments, _ target: Target) throws -> Int32 {
    guard case .remote(let client) = target else {
        throw VQError(.notFound, "vq cluster needs a running peer; no server holds \(args.dataDir)",
                      hint: "pass --url http://HOST:PORT of any peer, or start one with vq serve")
    }
    let action = args.positionals.first ?? "status"
    switch action {
    case "status":
        guard args.positionals.count <= 1 else { throw UsageError(message: "vq cluster status takes no ID") }
        let info = try call(client, "GET", "/cluster")
        switch (args.string("format") ?? "table").lowercased() {
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
        _ = try call(client, "DELETE", "/cluster/peer/\(id)")
        if !args.has("quiet") { printError("removed peer \(id)") }
    default:
        throw UsageError(message: "unknown cluster action '\(action)'; expected status or remove-peer")
    }
    return 0
}

private func printClusterTable(_ info: JSON) {
    let me = info["peer_id"]?.uint64Value
    let raft = info["raft_info"]
    let leader = raft?["leader"]?.uint64Value
    var rows: [[String]] = [["PEER", "URI", "ROLE", "HEALTH"]]
    for (key, peer) in info["peers"]?.objectValue ?? [] {
        let uri = peer["uri"]?.stringValue ?? "?"
        let id = UInt64(key)
        var role = id == leader ? "leader" : "follower"
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
}
