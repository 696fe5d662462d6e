import Foundation
import VQEngine

/// The REST API as the data commands use it: answered in this process (the data directory
/// opened here, requests handled by the same `QdrantAPI` that `vq serve` runs) or by a server
/// over HTTP. A command written against it prints the same either way.
protocol APIClient {
    /// One call; returns the envelope's `result`. An error status throws a `VQError` of the
    /// matching kind carrying the API's message.
    func call(_ method: String, _ path: String, _ body: JSON?, query: [String: String]) throws -> JSON
    func close() throws
}

extension APIClient {
    func call(_ method: String, _ path: String, _ body: JSON? = nil) throws -> JSON { try call(method, path, body, query: [:]) }
}

/// The API in this process, over an engine opened on the data directory.
final class EmbeddedClient: APIClient {
    let engine: Engine
    let api: QdrantAPI

    init(_ args: Arguments, create: Bool) throws {
        engine = try openEngine(args, create: create)
        api = QdrantAPI(engine: engine, config: APIConfig())
    }

    func call(_ method: String, _ path: String, _ body: JSON?, query: [String: String]) throws -> JSON {
        // Paths come percent-encoded, as for a server; the API takes them decoded, as the server's parser hands them on.
        let response = api.handle(HTTPRequest(method: method, path: path.removingPercentEncoding ?? path, query: query,
                                              body: body.map { JSONWriter.bytes($0) } ?? []))
        let json = try? JSONParser.parse(response.body)
        if response.status == 200, let json { return json["result"] ?? json }
        let message = json?["status"]?["error"]?.stringValue ?? "status \(response.status)"
        throw VQError(VQErrorKind(httpStatus: response.status), message)
    }

    func close() throws { try engine.close() }
}

/// A server or cluster over HTTP (`--url`, or the server holding the data directory).
struct RemoteClient: APIClient {
    let http: HTTPClient

    func call(_ method: String, _ path: String, _ body: JSON?, query: [String: String]) throws -> JSON {
        let q = query.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: "&")
        return try vq.call(http, method, q.isEmpty ? path : path + "?" + q, body)
    }

    func close() throws {}
}

/// The client for a command's target; `create` lets an embedded one make the data directory.
func apiClient(_ args: Arguments, _ target: Target, create: Bool = false) throws -> any APIClient {
    switch target {
    case .remote(let http): return RemoteClient(http: http)
    case .embedded: return try EmbeddedClient(args, create: create)
    }
}

/// Runs `body` with the target's client and closes it after (on error too).
func withClient<T>(_ args: Arguments, _ target: Target, create: Bool = false, _ body: (any APIClient) throws -> T) throws -> T {
    let client = try apiClient(args, target, create: create)
    do {
        let result = try body(client)
        try client.close()
        return result
    } catch {
        try? client.close()
        throw error
    }
}

/// Writes one JSON value and a newline on stdout.
func printJSON(_ value: JSON) {
    standardOutput.write(bytes: JSONWriter.bytes(value) + [0x0A])
}

/// A `/collections/NAME` path (the API checks names: letters, digits, `-` and `_`, nothing to escape).
func collectionPath(_ name: String, _ rest: String = "") -> String { "/collections/" + name + rest }
