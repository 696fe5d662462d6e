import Foundation
import VQEngine

/// `vq serve`: the Qdrant-compatible REST API over a data directory, until SIGINT/SIGTERM.
///
/// Settings: flags, then `VQ_*` environment variables, then `--config FILE` (JSON with the
/// same names in snake_case), then defaults.
///
/// `vq join URL` is the same with `join` set: the peer starts with no cluster configuration and
/// asks the member at URL to add it.
func serve(_ args: Arguments, join: String? = nil) throws -> Int32 {
    var file: JSON = .object([])
    if let path = args.string("config") {
        do { file = try JSONParser.parse(try FileIO.readAll(path)) } catch let e as JSONParseError {
            throw UsageError(message: "--config \(path) is not valid JSON: \(e)")
        }
        guard case .object(let members) = file else { throw UsageError(message: "--config \(path) must hold a JSON object") }
        // Every key names a setting: a misspelt one ("lisen") would otherwise leave its default in force.
        let known = args.spec.allOptions.filter { $0.long != "config" && $0.long != "help" && $0.long != "quiet" }
            .map { $0.long.replacingOccurrences(of: "-", with: "_") }
        for (key, _) in members where !known.contains(key) {
            throw UsageError(message: "--config \(path) has an unknown setting \"\(key)\"" + suggestion(key, known)
                             + "; expected the flags' names in snake_case (listen, api_key, data_dir, ...)")
        }
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
        guard let v = Double(text), v > 0, v < 1e15 else { throw UsageError(message: "--\(flag) is '\(text)'; expected a positive number") }
        return v
    }
    /// A duration: a positive number of seconds, at most a day (far larger deadlines overflow
    /// the clock that waits on them).
    func seconds(_ flag: String, _ fallback: Double) throws -> Double {
        let v = try number(flag, fallback)
        guard v <= QdrantAPI.maxTimeout else {
            throw UsageError(message: "--\(flag) is '\(setting(flag) ?? "")'; expected a positive number of seconds, at most \(Int(QdrantAPI.maxTimeout))")
        }
        return v
    }
    let dataDir = setting("data-dir") ?? args.dataDir
    let listen = setting("listen") ?? "127.0.0.1:6333"
    guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]), (0...65_535).contains(port) else {
        throw UsageError(message: "--listen is '\(listen)'; expected HOST:PORT such as 127.0.0.1:6333")
    }
    var http = HTTPServerConfig()
    http.errorResponse = { status, message in APIEnvelope.error(status, message, since: DispatchTime.now().uptimeNanoseconds) }
    http.host = String(listen[..<colon])
    http.port = port
    http.limits.maxBodyBytes = Int(try number("max-body-bytes", Double(http.limits.maxBodyBytes)))
    http.limits.maxHeaderBytes = Int(try number("max-header-bytes", Double(http.limits.maxHeaderBytes)))
    http.limits.uploadPathSuffixes = QdrantAPI.uploadPathSuffixes
    http.maxConnections = Int(try number("max-connections", Double(http.maxConnections)))
    http.idleTimeout = try seconds("idle-timeout", http.idleTimeout)
    http.headerTimeout = try seconds("header-timeout", http.headerTimeout)
    var api = APIConfig()
    api.apiKey = setting("api-key")
    api.readOnlyApiKey = setting("read-only-api-key")
    api.writeTimeout = try seconds("write-timeout", api.writeTimeout)
    api.preventUnoptimized = args.has("prevent-unoptimized") || setting("prevent-unoptimized") == "true"
    api.updateQueueSize = Int(try number("update-queue-size", Double(api.updateQueueSize)))
    api.updateQueueBytes = Int(try number("update-queue-bytes", Double(api.updateQueueBytes)))
    guard ((1 << 20)...(1 << 40)).contains(api.updateQueueBytes) else {
        throw UsageError(message: "--update-queue-bytes is \(api.updateQueueBytes); expected 1048576 (1 MiB) to 1099511627776 (1 TiB)")
    }
    http.maxBufferedBytes = Int(try number("max-buffered-bytes", Double(http.maxBufferedBytes)))
    guard http.maxBufferedBytes >= 1 << 20 else {
        throw UsageError(message: "--max-buffered-bytes is \(http.maxBufferedBytes); expected at least 1048576 (1 MiB)")
    }
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
        let time = isoTime()
        if jsonLogs {
            printError(JSONWriter.string(.object([("time", .string(time)), ("event", .string(event))] + fields)))
        } else {
            printError("\(time) vq serve: \(event)" + fields.map { " \($0.0)=\(JSONWriter.string($0.1))" }.joined())
        }
    }
    let logRequests = args.has("log-requests") || args.has("verbose") || setting("log-requests") == "true" || setting("verbose") == "true"

    // A client that disconnects must not kill the server: writes to it fail with EPIPE instead.
    signal(SIGPIPE, SIG_IGN)

    // SIGINT/SIGTERM stop the server gracefully. Set up first: a signal that arrives while the
    // directory opens or a join is under way must not be lost (setting SIG_IGN discards a
    // pending signal, and a test harness may start us with SIGTERM blocked).
    let done = DispatchSemaphore(value: 0)
    let stopRequested = Locked(false)
    var sources: [any DispatchSourceSignal] = []
    for sig in [SIGINT, SIGTERM] {
        signal(sig, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
        source.setEventHandler {
            stopRequested.store(true)
            done.signal()
        }
        source.resume()
        sources.append(source)
    }

    // Idle keep-alive connections are file descriptors: allow as many as the hard limit does.
    var limit = rlimit()
    if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max
        _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    }

    // Bind first (to learn the port), then lock the directory recording the address.
    nonisolated(unsafe) var apiRef: QdrantAPI?
    let server = try HTTPServer(config: http) { request in
        let work = apiRef?.work(for: request) ?? HTTPWork(inline: true) { HTTPResponse.text(503, "starting") }
        guard logRequests else { return work }
        return HTTPWork(inline: work.inline) {
            let start = DispatchTime.now().uptimeNanoseconds
            let response = work.run()
            log("request", [("method", .string(request.method)), ("path", .string(request.path)), ("status", .int(Int64(response.status))),
                            ("bytes", .int(Int64(response.body.count))),
                            ("us", .int(Int64((DispatchTime.now().uptimeNanoseconds - start) / 1_000)))])
            return response
        }
    }
    let address = "http://\(http.host):\(server.port)"
    api.advertisedURL = address
    let (directory, directoryLock) = try Engine.lock(path: dataDir, address: address)
    let advertise = setting("advertise") ?? address
    guard (try? ClusterState.checkURI(advertise)) != nil else { throw UsageError(message: "--advertise is '\(advertise)'; expected http://HOST:PORT") }
    if let join, ClusterNode.hasLog(directory) {
        throw UsageError(message: "\(dataDir) already belongs to a cluster; start it with 'vq serve --data-dir \(dataDir)' (it rejoins by itself), not 'vq join \(join)'")
    }
    let latencyAware: Bool
    switch setting("read-replica-choice") ?? "latency" {
    case "latency": latencyAware = true
    case "round-robin": latencyAware = false
    case let other: throw UsageError(message: "--read-replica-choice is '\(other)'; expected latency or round-robin")
    }
    // A peer removed from the cluster stops (its data is no longer the cluster's).
    let removed = Locked(false)
    var clusterOptions = ClusterOptions(uri: advertise, secret: setting("cluster-secret"))
    clusterOptions.tickMilliseconds = 10
    if let text = setting("raft-compact-entries") {
        guard let n = Int(text), n >= 1 else { throw UsageError(message: "--raft-compact-entries is '\(text)'; expected an integer of at least 1") }
        clusterOptions.compactAfterEntries = n
    }
    let cluster = try ClusterNode(directory: directory, options: clusterOptions, joining: join != nil,
                                  log: { event, fields in log(event, fields) },
                                  onRemoved: { _ in
                                      removed.store(true)
                                      done.signal()
                                  })
    if cluster.secretGenerated {
        // Where the secret is, not the secret itself: logs travel further than the data directory.
        log("cluster secret generated", [("file", .string(directory.clusterSecret)),
                                         ("join", .string("VQ_CLUSTER_SECRET=$(vq cluster token --data-dir \(dataDir)) vq join \(advertise)"))])
    }
    // The graph, each part given what it uses: distributed collections reach their replicas
    // through the router; the driver carries out committed metadata on local data.
    let historyBytes = Int(try number("replication-history-bytes", Double(16 << 20)))
    let segmentFiles: Bool
    switch setting("shard-transfer") ?? "files" {
    case "files": segmentFiles = true
    case "records": segmentFiles = false
    case let other: throw UsageError(message: "--shard-transfer is '\(other)'; expected files or records")
    }
    let peerTimeout = try seconds("peer-timeout", 10)
    let lagTimeout = try seconds("replica-lag-timeout", min(1, peerTimeout))
    guard lagTimeout <= peerTimeout else {
        throw UsageError(message: "--replica-lag-timeout is \(lagTimeout); expected at most --peer-timeout (\(peerTimeout))")
    }
    let router = ClusterRouter(node: cluster, directory: directory, latencyAware: latencyAware, timeout: peerTimeout,
                               lagTimeout: lagTimeout, historyBytes: historyBytes, segmentFileTransfer: segmentFiles)
    let engine = Engine(directory: directory, lock: directoryLock, placement: router) { log("warning", [("message", .string($0))]) }
    func autoRebalance() throws -> Bool {
        if args.has("auto-rebalance") { return true }
        switch setting("auto-rebalance") {
        case nil, "false": return false
        case "true": return true
        case let other?: throw UsageError(message: "auto_rebalance is '\(other)' in the config file; expected true or false")
        }
    }
    var antiEntropy = 300.0
    if let text = setting("anti-entropy-interval") {
        guard let v = Double(text), v == 0 || (v >= 1 && v < 1e9) else {
            throw UsageError(message: "--anti-entropy-interval is '\(text)'; expected seconds, at least 1 (0 turns periodic passes off)")
        }
        antiEntropy = v
    }
    let driver = ClusterDriver(node: cluster, engine: engine, router: router, antiEntropyInterval: antiEntropy,
                               autoRebalance: try autoRebalance())
    apiRef = QdrantAPI(engine: engine, config: api, cluster: cluster, router: router)
    driver.start()
    server.start()
    cluster.start()
    log("listening", [("address", .string(address)), ("data_dir", .string(dataDir)), ("peer_id", .uint(cluster.id))])
    if let join {
        // Ask the member at URL to add this peer; it forwards to the leader, which commits the
        // address and then the membership change. Retried while the cluster elects a leader.
        let body = JSON.object([("id", .uint(cluster.id)), ("uri", .string(advertise))])
        var joined = false
        var lastError = ""
        for _ in 0..<30 where !joined && !stopRequested.load() {
            do {
                let r = try HTTPClient(url: join, timeout: 30).send("POST", "/internal/join", body: Array(JSONWriter.string(body).utf8),
                                                                  headers: cluster.internalHeaders)
                if r.status == 200 { joined = true; break }
                lastError = "\(join) answered \(r.status): \(String(decoding: r.body.prefix(300), as: UTF8.self))"
                if r.status == 403 || r.status == 400 { break }
            } catch {
                lastError = "\(error)"
            }
            Thread.sleep(forTimeInterval: 1)
        }
        guard joined else {
            cluster.stop()
            server.stop()
            try engine.close()
            throw VQError(.io, "could not join the cluster at \(join): \(lastError)")
        }
        log("joined", [("via", .string(join)), ("peer_id", .uint(cluster.id))])
    }

    done.wait()
    log("stopping", removed.load() ? [("reason", .string("this peer was removed from the cluster"))] : [])
    server.stop()
    cluster.stop()
    try engine.close()
    log("stopped")
    _ = sources
    return 0
}

/// Now as ISO-8601 UTC with milliseconds: 2026-11-29T20:21:00.123Z.
func isoTime(_ date: Date = Date()) -> String {
    let seconds = date.timeIntervalSince1970
    var t = time_t(seconds.rounded(.down))
    var parts = tm()
    gmtime_r(&t, &parts)
    let ms = Int((seconds - seconds.rounded(.down)) * 1000)
    func pad(_ v: Int32, _ width: Int) -> String { String(repeating: "0", count: max(0, width - String(v).count)) + String(v) }
    return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
        + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(Int32(ms), 3))Z"
}
