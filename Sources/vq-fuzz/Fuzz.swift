// Fuzz targets for what the server reads from the network: the HTTP request
// parser, the JSON of API bodies (parse, then decode as the API does), and every
// binary decoder a peer can reach:
//
//   op     a shard operation (`/internal/shards/.../apply|write`): wire header, WAL
//          encoding, validation against a 4-d shard
//   raft   a batch of Raft messages (`/internal/raft`), then stepped into a node
//   peer   peers' shard messages (first byte: which one; `ShardWire`) and metadata commands
//   api    a request body to one of the API's collection routes (first byte: which one),
//          handled by a QdrantAPI over a small collection with payload indexes
//
//   swift build --product vq-fuzz --scratch-path .build-fuzz -Xswiftc -sanitize=fuzzer -Xswiftc -parse-as-library -Xswiftc -DFUZZING
//   VQ_FUZZ=http .build-fuzz/debug/vq-fuzz -max_total_time=60     (or VQ_FUZZ=json)
//
// Without FUZZING it is a replayer: `vq-fuzz http FILE...` runs saved inputs through the same code.

import Foundation
import VQEngine

/// The vectors of the fuzzed shard: two named ones, so presence flags and vector numbers are exercised.
let fuzzLayout = VectorLayout(named: [VectorSpec(name: "a", dim: 4, distance: .cosine), VectorSpec(name: "b", dim: 2, distance: .dot)],
                              sparse: [SparseSpec(name: "s")], multi: [VectorSpec(name: "m", dim: 3, distance: .dot)])

/// Feeds one input to the chosen target; crashes (the only failure a fuzzer sees) are bugs.
func fuzzOne(_ target: String, _ bytes: UnsafeRawBufferPointer) {
    switch target {
    case "op":
        if let decoded = try? ShardWire.decodeOperation(Array(bytes), vectors: fuzzLayout) {
            // What validates must encode back and decode to the same operation.
            let again = decoded.operation.encode()
            precondition((try? again.withUnsafeBytes { try VQEngine.Operation.decode($0) }) != nil, "a validated operation does not round-trip")
        }
        _ = try? VQEngine.Operation.decode(bytes)
    case "raft":
        guard let messages = try? RaftCodec.decode(Array(bytes)) else { return }
        _ = RaftCodec.encode(messages)
        // Step them into a leader of a small cluster and a follower: no input may trap.
        for node in fuzzNodes() {
            for var m in messages {
                m.to = node.id
                try? node.step(m)
            }
            _ = node.takeReady()
        }
    case "peer":
        // The first byte picks the message; the rest is its body.
        guard let kind = bytes.first else { return }
        let body = Array(bytes.dropFirst())
        switch kind % 8 {
        case 0:
            let multiDims = fuzzLayout.multi.map(\.dim)
            if let (q, s) = try? ShardWire.decodeSearch(body, dims: fuzzLayout.dims, sparse: fuzzLayout.sparse.count, multiDims: multiDims, maxResults: 100) {
                precondition((s.sparse != nil || s.multi != nil ? q.isEmpty : q.count == fuzzLayout[s.vector].dim) && s.k >= 1 && s.ef >= 1)
                precondition(s.multi.map { !$0.isEmpty && $0.count % multiDims[s.vector] == 0 } ?? true)
                _ = try? ShardWire.decodeSearch(ShardWire.encodeSearch(q, s), dims: fuzzLayout.dims, sparse: fuzzLayout.sparse.count, multiDims: multiDims,
                                                maxResults: 100)
            }
        case 1:
            if let hits = try? ShardWire.decodeHits(body) { _ = try? ShardWire.decodeHits(ShardWire.encodeHits(hits)) }
        case 2: _ = try? ShardWire.decodeScan(body)
        case 3:
            let multiDims = fuzzLayout.multi.map(\.dim)
            if let records = try? ShardWire.decodeRecords(body, dims: fuzzLayout.dims, sparse: fuzzLayout.sparse.count, multiDims: multiDims) {
                precondition(records.allSatisfy { $0.vectors.count == fuzzLayout.count && $0.sparse.count == fuzzLayout.sparse.count
                    && $0.multi.count == multiDims.count })
                _ = try? ShardWire.decodeRecords(ShardWire.encodeRecords(records, withVector: true), dims: fuzzLayout.dims, sparse: fuzzLayout.sparse.count,
                                                 multiDims: multiDims)
            }
        case 4: _ = try? ShardWire.decodeReceive(body, vectors: fuzzLayout)
        case 5:
            _ = try? ShardWire.decodeTransfer(body)
            if let (store, terms) = try? ShardWire.decodeSparseStats(body, sparse: fuzzLayout.sparse.count) {
                precondition(store < fuzzLayout.sparse.count && terms.count <= SparseVector.maxEntries)
            }
            _ = try? ShardWire.decodeSparseCounts(body, terms: 3)
        case 6: _ = try? ShardWire.decodeCount(body)
        default:
            // Metadata: a command applied to a state, or a whole snapshot.
            var state = ClusterState()
            _ = try? state.apply(body)
            if let json = try? JSONParser.parse(body) { _ = try? ClusterState(json: json) }
        }
    case "api":
        guard let kind = bytes.first, let api = FuzzAPI.shared else { return }
        let (method, path) = FuzzAPI.routes[Int(kind) % FuzzAPI.routes.count]
        let response = api.handle(HTTPRequest(method: method, path: path, query: ["wait": "true"], body: Array(bytes.dropFirst())))
        precondition(response.status < 500 || response.status == 503, "\(method) \(path) answered \(response.status): \(String(decoding: response.body, as: UTF8.self))")
    case "json":
        guard let json = try? JSONParser.parseRequest(Array(bytes)) else { return }
        // Decode as the API would: filters, ids, vectors, and the writer round trip.
        if let f = json["filter"] { _ = try? Filter(json: f) }
        if let ids = json["ids"]?.arrayValue { for id in ids { _ = try? PointID(json: id) } }
        _ = try? JSONParser.parse(JSONWriter.bytes(json))
        if let f = try? Filter(json: json) { _ = f.matches(id: .number(1), payload: json) }
    default:
        var limits = HTTPLimits()
        limits.maxBodyBytes = 1 << 16
        limits.maxHeaderBytes = 4096
        _ = HTTPParser.parse(bytes, limits: limits)
    }
}

/// The API over a temporary data directory: collection "c" (4-d, cosine) of 50 points with
/// payloads, keyword/integer/text indexes on some fields, and an alias "a" for it.
enum FuzzAPI {
    static let shared: QdrantAPI? = {
        let dir = FileManager.default.temporaryDirectory.path + "/vq-fuzz-api-\(getpid())"
        try? FileManager.default.removeItem(atPath: dir)
        guard let engine = try? Engine(path: dir, warn: { _ in }) else { return nil }
        let api = QdrantAPI(engine: engine, config: APIConfig())
        func call(_ method: String, _ path: String, _ body: String) {
            _ = api.handle(HTTPRequest(method: method, path: path, query: ["wait": "true"], body: Array(body.utf8)))
        }
        call("PUT", "/collections/c", #"{"vectors":{"size":4,"distance":"Cosine"}}"#)
        let points = (0..<50).map { i in
            #"{"id":\#(i),"vector":[\#(i % 7),1,\#(i % 3),0.5],"payload":{"city":"c\#(i % 4)","n":\#(i),"text":"w\#(i % 5) x","tags":["t\#(i % 2)"],"loc":{"lon":\#(i),"lat":\#(i % 80)}}}"#
        }
        call("PUT", "/collections/c/points", #"{"points":["# + points.joined(separator: ",") + "]}")
        for (field, schema) in [("city", "\"keyword\""), ("n", "\"integer\""), ("text", "\"text\""), ("loc", "\"geo\"")] {
            call("PUT", "/collections/c/index", #"{"field_name":"\#(field)","field_schema":\#(schema)}"#)
        }
        call("POST", "/collections/aliases", #"{"actions":[{"create_alias":{"collection_name":"c","alias_name":"a"}}]}"#)
        return api
    }()

    /// The routes a body can reach (reads and writes of points, indexes, aliases; not deleting the collection).
    static let routes: [(String, String)] = [
        ("POST", "/collections/c/points/query"), ("POST", "/collections/c/points/search"), ("POST", "/collections/a/points/scroll"),
        ("POST", "/collections/c/points/count"), ("POST", "/collections/c/facet"), ("POST", "/collections/c/points/query/groups"),
        ("POST", "/collections/c/points/recommend"), ("POST", "/collections/c/points"), ("PUT", "/collections/c/points"),
        ("POST", "/collections/c/points/batch"), ("PUT", "/collections/c/points/vectors"), ("POST", "/collections/c/points/payload"),
        ("POST", "/collections/c/points/delete"), ("PUT", "/collections/c/index"), ("POST", "/collections/aliases"),
        ("PATCH", "/collections/c"), ("POST", "/collections/c/points/search/batch"), ("POST", "/collections/c/points/query/batch"),
        ("POST", "/collections/c/points/discover"), ("POST", "/collections/c/points/search/groups"),
    ]
}

/// A leader of voters {1, 2, 3} with a learner 4, and a follower, on memory storage.
func fuzzNodes() -> [RaftNode] {
    guard let leader = try? RaftNode(id: 1, storage: MemoryRaftStorage(), seed: 1, voters: [1, 2, 3]),
          let follower = try? RaftNode(id: 2, storage: MemoryRaftStorage(), seed: 2) else { return [] }
    // Campaign, win with 2's vote, then commit a few entries.
    for _ in 0..<100 where leader.role != .candidate { try? leader.tick() }
    try? leader.step(RaftEnvelope(from: 2, to: 1, term: leader.term, message: .vote(granted: true)))
    leader.learners = [4]
    for i in 0..<3 { _ = try? leader.propose([UInt8(i)]) }
    _ = leader.takeReady()
    return [leader, follower]
}

#if FUZZING
let fuzzTarget = ProcessInfo.processInfo.environment["VQ_FUZZ"] ?? "http"

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    fuzzOne(fuzzTarget, UnsafeRawBufferPointer(start: data, count: size))
    return 0
}

typealias FuzzCallback = @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt

@_silgen_name("LLVMFuzzerRunDriver")
func runFuzzerDriver(_ argc: UnsafeMutablePointer<CInt>,
                     _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                     _ callback: FuzzCallback) -> CInt

/// SwiftPM links an executable's entry point under this name; hand control to libFuzzer's driver.
@_cdecl("vq_fuzz_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var count = argc
    var vector = argv
    return runFuzzerDriver(&count, &vector) { data, size in fuzzerTestOneInput(data, size) }
}
#else
@main
struct FuzzReplay {
    static func main() throws {
        let args = CommandLine.arguments.dropFirst()
        guard let target = args.first, ["http", "json", "op", "raft", "peer"].contains(target) else {
            FileHandle.standardError.write(Data("usage: vq-fuzz http|json|op|raft|peer FILE...\n".utf8))
            exit(2)
        }
        for path in args.dropFirst() {
            let bytes = try FileIO.readAll(path)
            bytes.withUnsafeBytes { fuzzOne(target, $0) }
        }
    }
}
#endif
