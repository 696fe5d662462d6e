import Foundation
import VQEngine

/// `vq snapshot create|list|download|delete|restore`: Qdrant's snapshot API, embedded or through a
/// server. Snapshots live in the data directory's snapshots/ (the server's, when remote).
///
///   create NAME [--output FILE|-] [--keep N]   create NAME's snapshot; print its description
///   create --full                              every collection and the aliases
///   list [NAME]                                NAME's snapshots (none: the full ones), a JSON line each
///   download NAME SNAPSHOT [--output FILE|-]   copy one out (--full: SNAPSHOT is a full one)
///   delete NAME SNAPSHOT                       (--full: delete a full one)
///   restore NAME FILE [--checksum SHA]         recover NAME from FILE, replacing it (remote: upload)
///   restore --full FILE                        every collection of a full snapshot (embedded)
func snapshot(_ args: Arguments, _ target: Target) throws -> Int32 {
    guard let action = args.positionals.first else {
        throw UsageError(message: "'vq snapshot' needs an ACTION: create, list, download, delete or restore", command: "snapshot")
    }
    let full = args.has("full")
    let rest = Array(args.positionals.dropFirst())
    func operands(_ names: [String]) throws -> [String] {
        guard rest.count == names.count else {
            let given = rest.isEmpty ? "none" : rest.joined(separator: " ")
            throw UsageError(message: "vq snapshot \(action)\(full ? " --full" : "") takes \(names.isEmpty ? "no operands" : names.joined(separator: " ")); got \(given)",
                             command: "snapshot")
        }
        return rest
    }
    // Options of one action are refused with the others rather than ignored.
    let optionsOf: [String: [String]] = ["create": ["output", "keep", "full"], "list": [], "download": ["output", "full"],
                                         "delete": ["full"], "restore": ["checksum", "full"]]
    guard let allowed = optionsOf[action] else {
        throw UsageError(message: "unknown snapshot action '\(action)'; expected create, list, download, delete or restore", command: "snapshot")
    }
    try args.refuse(["output", "keep", "full", "checksum"].filter { !allowed.contains($0) }, "to vq snapshot \(action)")
    let base = { (name: String?) in name.map { collectionPath($0, "/snapshots") } ?? "/snapshots" }

    switch action {
    case "create":
        let name = full ? nil : try operands(["NAME"])[0]
        if full { _ = try operands([]) }
        let keep = try args.int("keep", default: 0, in: 1...Int.max)
        let description = try withClient(args, target) { client -> JSON in
            let d = try client.call("POST", base(name), nil, query: ["wait": "true"])
            if let output = args.string("output"), let snapshot = d["name"]?.stringValue {
                try fetch(args, target, client, base(name) + "/" + snapshot, to: output)
            }
            if keep > 0, let list = try client.call("GET", base(name)).arrayValue, list.count > keep {
                // Oldest first, as the listing sorts them: keep the newest `keep`.
                for old in list.prefix(list.count - keep) {
                    guard let n = old["name"]?.stringValue else { continue }
                    _ = try client.call("DELETE", base(name) + "/" + n)
                    printError("deleted snapshot \(n) (--keep \(keep))")
                }
            }
            return d
        }
        if args.string("output") != "-" { printJSON(description) }
    case "list":
        guard rest.count <= 1 else { throw UsageError(message: "vq snapshot list takes at most NAME", command: "snapshot") }
        let list = try withClient(args, target) { try $0.call("GET", base(rest.first)) }
        for d in list.arrayValue ?? [] { printJSON(d) }
    case "download":
        let ops = try operands(full ? ["SNAPSHOT"] : ["NAME", "SNAPSHOT"])
        let name = full ? nil : ops[0]
        let output = args.string("output") ?? ops.last!
        try withClient(args, target) { client in try fetch(args, target, client, base(name) + "/" + ops.last!, to: output) }
        if output != "-" { printJSON(.object([("snapshot", .string(ops.last!)), ("output", .string(output))])) }
    case "delete":
        let ops = try operands(full ? ["SNAPSHOT"] : ["NAME", "SNAPSHOT"])
        _ = try withClient(args, target) { try $0.call("DELETE", base(full ? nil : ops[0]) + "/" + ops.last!) }
        printJSON(.object([("snapshot", .string(ops.last!)), ("deleted", .bool(true))]))
    case "restore":
        let ops = try operands(full ? ["FILE"] : ["NAME", "FILE"])
        let file = ops.last!
        guard FileIO.exists(file), !FileIO.isDirectory(file) else {
            throw UsageError(message: "snapshot file '\(file)' does not exist or is not a file", command: "snapshot")
        }
        let checksum = args.string("checksum")
        if let checksum, checksum.utf8.count != 64 || !checksum.allSatisfy(\.isHexDigit) {
            throw UsageError(message: "\(args.label("checksum")) is '\(checksum)'; expected a SHA-256 as 64 hex digits", command: "snapshot")
        }
        let start = Date()
        switch target {
        case .embedded:
            let engine = try openEngine(args, create: true)
            defer { try? engine.close() }
            let names: [String]
            if full {
                names = try engine.restoreFullSnapshot(file, checksum: checksum)
            } else {
                try engine.recoverSnapshot(file, as: ops[0], checksum: checksum)
                names = [ops[0]]
            }
            try engine.close()
            for name in names { printRestored(name, start) }
        case .remote(let http):
            guard !full else {
                throw UsageError(message: "vq snapshot restore --full opens a data directory, and a server holds this one "
                                 + "(a server restores no full snapshot); stop it, or restore into a fresh --data-dir and serve that",
                                 command: "snapshot")
            }
            try upload(http, ops[0], file: file, checksum: checksum)
            printRestored(ops[0], start)
        }
    default:
        break
    }
    return 0
}

private func printRestored(_ name: String, _ start: Date) {
    printJSON(.object([("collection", .string(name)), ("restored", .bool(true)),
                       ("seconds", .double((Date().timeIntervalSince(start) * 1000).rounded() / 1000))]))
}

/// Copies the snapshot at API path `path` to `output` (`-`: stdout).
private func fetch(_ args: Arguments, _ target: Target, _ client: any APIClient, _ path: String, to output: String) throws {
    let bytes: [UInt8]
    switch target {
    case .embedded:
        // In this process: the file itself, not a copy through the API's response.
        let engine = (client as! EmbeddedClient).engine
        let parts = path.split(separator: "/").map(String.init)
        let file = try engine.snapshotPath(of: parts.count == 4 ? parts[1] : nil, parts.last!)
        if output != "-" {
            try copyFile(file, to: output)
            return
        }
        bytes = try FileIO.readAll(file)
    case .remote(let http):
        let response = try http.send("GET", path)
        guard response.status == 200 else { throw VQError(status: response.status, body: response.body, from: "server") }
        bytes = response.body
    }
    if output == "-" {
        standardOutput.write(bytes: bytes)
    } else {
        try FileIO.writeAtomically(output, bytes)
    }
}

/// `cp`, durably, through a temporary file.
private func copyFile(_ from: String, to: String) throws {
    let tmp = to + ".tmp"
    FileIO.remove(tmp)
    do {
        try FileManager.default.copyItem(atPath: from, toPath: tmp)
    } catch {
        throw VQError(.io, "cannot copy \(from) to \(to): \(error.localizedDescription)")
    }
    let fd = FileIO.openFD(tmp, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw ioError("open", tmp) }
    defer { close(fd) }
    try FileIO.sync(fd, path: tmp)
    guard rename(tmp, to) == 0 else { throw ioError("rename", tmp) }
    try FileIO.syncDirectory(FileIO.directoryOf(to))
}

/// `POST /collections/NAME/snapshots/upload` with the file as the `snapshot` part.
private func upload(_ http: HTTPClient, _ name: String, file: String, checksum: String?) throws {
    let boundary = "vq-" + UUID().uuidString
    var body = Array("--\(boundary)\r\nContent-Disposition: form-data; name=\"snapshot\"; filename=\"\(name).snapshot\"\r\nContent-Type: application/octet-stream\r\n\r\n".utf8)
    body += try FileIO.readAll(file)
    body += Array("\r\n--\(boundary)--\r\n".utf8)
    let query = "priority=snapshot" + (checksum.map { "&checksum=\($0.lowercased())" } ?? "")
    let response = try http.send("POST", collectionPath(name, "/snapshots/upload?") + query, body: body,
                                 headers: [("Content-Type", "multipart/form-data; boundary=\(boundary)")])
    guard response.status == 200 else { throw VQError(status: response.status, body: response.body, from: "server") }
}
