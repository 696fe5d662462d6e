import Foundation
import VQEngine

/// `vq serve`: the Qdrant-compatible REST API over a data directory, until SIGINT/SIGTERM.
///
/// Settings: flags, then `VQ_*` environment variables, then `--config FILE` (JSON with the
/// same names in snake_case), then defaults.
func serve(_ args: Arguments) throws -> Int32 {
    var file: JSON = .object([])
    if let path = args.string("config") {
        do { file = try JSONParser.parse(try FileIO.readAll(path)) } catch let e as JSONParseError {
            throw UsageError(message: "--config \(path) is not valid JSON: \(e)")
        }
        guard case .object = file else { throw UsageError(message: "--config \(path) must hold a JSON object") }
    }
    func setting(_ flag: String) -> String? {
        if let v = args.string(flag) { return v }
        let key = flag.replacingOccurrences(of: "-", with: "_")
        switch file[key] {
        case .string(let s)?: return s
        case .int(let i)?: return String(i)
        case .double(let d)?: return String(d)
        case .bool(let b)?: return String(b)
        default: return nil
        }
    }
    func number(_ flag: String, _ fallback: Double) throws -> Double {
        guard let text = setting(flag) else { return fallback }
        guard let v = Double(text), v > 0 else { throw UsageError(message: "--\(flag) is '\(text)'; expected a positive number") }
        return v
    }
    let listen = setting("listen") ?? "127.0.0.1:6333"
    guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]), (0...65_535).contains(port) else {
        throw UsageError(message: "--listen is '\(listen)'; expected HOST:PORT such as 127.0.0.1:6333")
    }
    var http = HTTPServerConfig()
    http.host = String(listen[..<colon])
    http.port = port
    http.limits.maxBodyBytes = Int(try number("max-body-bytes", Double(http.limits.maxBodyBytes)))
    http.limits.maxHeaderBytes = Int(try number("max-header-bytes", Double(http.limits.maxHeaderBytes)))
    http.maxConnections = Int(try number("max-connections", Double(http.maxConnections)))
    http.idleTimeout = try number("idle-timeout", http.idleTimeout)
    http.headerTimeout = try number("header-timeout", http.headerTimeout)
    var api = APIConfig()
    api.apiKey = setting("api-key")
    api.readOnlyApiKey = setting("read-only-api-key")
    api.writeTimeout = try number("write-timeout", api.writeTimeout)
    api.preventUnoptimized = args.has("prevent-unoptimized") || setting("prevent-unoptimized") == "true"
    api.updateQueueSize = Int(try number("update-queue-size", Double(api.updateQueueSize)))
    guard (1...100_000_000).contains(api.updateQueueSize) else {
        throw UsageError(message: "--update-queue-size is \(api.updateQueueSize); expected 1 to 100000000")
    }
    let jsonLogs: Bool
    switch setting("log-format") ?? "text" {
    case "text": jsonLogs = false
    case "json": jsonLogs = true
    case let other: throw UsageError(message: "--log-format is '\(other)'; expected text or json")
    }
    @Sendable func log(_ event: String, _ fields: [(String, JSON)] = []) {
        if jsonLogs {
            printError(JSONWriter.string(.object([("time", .double(Date().timeIntervalSince1970)), ("event", .string(event))] + fields)))
        } else {
            printError("vq serve: \(event)" + fields.map { " \($0.0)=\(JSONWriter.string($0.1))" }.joined())
        }
    }

    // A client that disconnects must not kill the server: writes to it fail with EPIPE instead.
    signal(SIGPIPE, SIG_IGN)

    // Idle keep-alive connections are file descriptors: allow as many as the hard limit does.
    var limit = rlimit()
    if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max
        _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    }

    // Bind first (to learn the port), then lock the directory recording the address.
    nonisolated(unsafe) var apiRef: QdrantAPI?
    let server = try HTTPServer(config: http, inline: { apiRef?.isInline($0) ?? false }) { request in
        apiRef?.handle(request) ?? HTTPResponse.text(503, "starting")
    }
    let address = "http://\(http.host):\(server.port)"
    api.advertisedURL = address
    let engine = try Engine(path: args.dataDir, address: address) { log("warning", [("message", .string($0))]) }
    apiRef = QdrantAPI(engine: engine, config: api)
    server.start()
    log("listening", [("address", .string(address)), ("data_dir", .string(args.dataDir))])

    let done = DispatchSemaphore(value: 0)
    signal(SIGINT, SIG_IGN)
    signal(SIGTERM, SIG_IGN)
    var sources: [any DispatchSourceSignal] = []
    for sig in [SIGINT, SIGTERM] {
        let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
        source.setEventHandler { done.signal() }
        source.resume()
        sources.append(source)
    }
    done.wait()
    log("stopping")
    server.stop()
    try engine.close()
    log("stopped")
    _ = sources
    return 0
}
