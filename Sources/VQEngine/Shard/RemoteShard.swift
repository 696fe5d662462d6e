// A replica of a shard on another peer: the same reads and writes as `LocalShard`, as peer
// calls (`POST /internal/shards/{collection}/{shard}/{action}`) in the binary forms of
// `ShardWire`. The transport (the cluster's HTTP clients, its secret and headers) is given.

/// Sends one peer call; implemented by the cluster (`ClusterRouter`).
package protocol PeerTransport: AnyObject, Sendable {
    /// Seconds a peer call may take.
    var callTimeout: Double { get }
    /// POSTs `body` to `path` on `peer`.
    /// - Returns: the body of a 200 answer.
    /// - Throws: `.unreachable` when no answer came, else the answer's error (`VQError(status:body:from:)`).
    func post(_ peer: PeerID, _ path: String, _ body: [UInt8], timeout: Double?) throws -> [UInt8]
}

package struct RemoteShard: Sendable {
    package let peer: PeerID
    private let path: String
    private let transport: any PeerTransport

    package init(peer: PeerID, collection: String, shard: Int, transport: any PeerTransport) {
        self.peer = peer
        self.path = "/internal/shards/\(collection)/\(shard)/"
        self.transport = transport
    }

    /// - Parameter timeout: the call's own; else the peer timeout, cut to what is left of the
    ///   request's deadline (`ReadDeadline`) when it has one.
    func call(_ action: String, _ body: [UInt8], timeout: Double? = nil) throws -> [UInt8] {
        guard timeout == nil, let deadline = ReadDeadline.current else { return try transport.post(peer, path + action, body, timeout: timeout) }
        let left = deadline.remaining
        guard left > 0.001 else { throw deadline.passed("the read of peer \(peer)'s replica") }
        do {
            return try transport.post(peer, path + action, body, timeout: min(transport.callTimeout, left))
        } catch let e as VQError where e.kind == .unreachable && deadline.remaining <= 0.001 {
            // Cut to the deadline, it ran out: that is what happened, not the peer's absence.
            throw deadline.passed("the read of peer \(peer)'s replica")
        }
    }

    /// An answer that does not decode is the peer's fault, not the caller's input.
    func answer<T>(_ decode: () throws -> T) throws -> T {
        do { return try decode() } catch let e as VQError {
            throw VQError(.io, "peer \(peer): \(e.message)")
        }
    }

    /// One read a replica answers (search, scan or count): the call and how its answer decodes.
    package struct Read<T>: Sendable {
        let action: ShardWire.ReadAction
        let body: [UInt8]
        let decode: @Sendable ([UInt8]) throws -> T

        /// The same call, its answer turned into something else.
        package func map<U>(_ transform: @escaping @Sendable (T) -> U) -> Read<U> {
            let decode = self.decode
            return Read<U>(action: action, body: body) { transform(try decode($0)) }
        }
    }

    /// Runs `read` on this replica.
    package func run<T>(_ read: Read<T>) throws -> T {
        let bytes = try call(read.action.rawValue, read.body)
        return try answer { try read.decode(bytes) }
    }

    /// Runs `read` on this replica after its replication position (`readablePosition`), in one
    /// call (`at-position`); a peer without that route (an older version) is asked for its
    /// position and then the read, in two.
    package func runAtPosition<T>(_ read: Read<T>) throws -> (position: UInt64, value: T) {
        let bytes: [UInt8]
        do {
            bytes = try call("at-position", ShardWire.encodeAtPosition(read.action, read.body))
        } catch let e as VQError where e.kind == .notFound && e.message.contains("no route for") {
            let position = try self.position().seq
            return (position, try run(read))
        }
        return try answer {
            let (position, rest) = try ShardWire.decodeAtPositionAnswer(bytes)
            return (position.seq, try read.decode(rest))
        }
    }

    package func searchRead(_ query: [Float], _ request: ShardSearch) -> Read<(hits: [ScoredPoint], skipped: Int)> {
        Read(action: .search, body: ShardWire.encodeSearch(query, request)) { try ShardWire.decodeHits($0, maxHits: request.k) }
    }

    package func scanRead(ids: [PointID]?, filter: Filter?, withVector: Bool, withPayload: Bool, vectors: VectorLayout?) -> Read<[PointRecord]> {
        let dims = withVector ? vectors?.dims ?? [] : [], sparse = withVector ? vectors?.sparse.count ?? 0 : 0
        let multiDims = withVector ? vectors?.multi.map(\.dim) ?? [] : []
        return Read(action: .scan, body: ShardWire.encodeScan(ids: ids, filter: filter, withVector: withVector, withPayload: withPayload)) {
            try ShardWire.decodeRecords($0, dims: dims, sparse: sparse, multiDims: multiDims)
        }
    }

    package func countRead() -> Read<Int> {
        Read(action: .count, body: []) { try ShardWire.decodeCount($0) }
    }

    package func search(_ query: [Float], _ request: ShardSearch) throws -> (hits: [ScoredPoint], skipped: Int) {
        try run(searchRead(query, request))
    }

    package func scan(ids: [PointID]?, filter: Filter?, withVector: Bool, withPayload: Bool, vectors: VectorLayout?) throws -> [PointRecord] {
        try run(scanRead(ids: ids, filter: filter, withVector: withVector, withPayload: withPayload, vectors: vectors))
    }

    package func sparseStats(store: Int, terms: [UInt32]) throws -> (points: Int, df: [Int]) {
        let bytes = try call("sparse-stats", ShardWire.encodeSparseStats(store: store, terms: terms))
        return try answer { try ShardWire.decodeSparseCounts(bytes, terms: terms.count) }
    }

    package func count() throws -> Int { try run(countRead()) }

    /// Forwards a write to this replica as the shard's primary (it orders and replicates).
    /// - Parameter queueTimeout: how long the primary may wait on a full update queue (the
    ///   caller's `?timeout`, what is left of it); the primary's `--write-timeout` when nil.
    package func write(_ operation: [UInt8], _ wait: WriteWait, timeout: Double, queueTimeout: Double? = nil) throws {
        let query = queueTimeout.map { "?timeout=\(min(QdrantAPI.maxTimeout, max(0.001, $0)))" } ?? ""
        _ = try call("write" + query, ShardWire.encodeOperation(operation, wait), timeout: timeout)
    }

    /// Sends an operation the primary (this peer) ordered as (`seq`, `epoch`).
    package func apply(_ operation: [UInt8], _ wait: WriteWait, seq: UInt64, epoch: UInt64) throws {
        _ = try call("apply", ShardWire.encodeOperation(operation, wait, seq: seq, epoch: epoch))
    }

    /// Sends operations the primary ordered, in order (a catch-up's batch; the last waited for
    /// to `wait`, the others made durable with it).
    package func apply(batch: [(seq: UInt64, epoch: UInt64, bytes: [UInt8])], _ wait: WriteWait) throws {
        let ops = batch.enumerated().map { i, op in
            ShardWire.encodeOperation(op.bytes, i == batch.count - 1 ? wait : .durable, seq: op.seq, epoch: op.epoch)
        }
        _ = try call("apply-batch", ShardWire.encodeOperations(ops))
    }

    /// One batch of a whole-shard copy to this replica.
    package func receive(_ batch: ShardWire.ReceiveBatch) throws {
        _ = try call("receive", ShardWire.encodeReceive(batch))
    }

    /// Asks this replica, the primary, to bring `target`'s replica up to date.
    package func transfer(to target: PeerID, after: (seq: UInt64, epoch: UInt64)?, method: TransferMethod? = nil) throws {
        _ = try call("transfer", ShardWire.encodeTransfer(to: target, after: after, method: method), timeout: 600)
    }
}
