// A replica of a shard on another peer: the same reads and writes as `LocalShard`, as peer
// calls (`POST /internal/shards/{collection}/{shard}/{action}`) in the binary forms of
// `ShardWire`. The transport (the cluster's HTTP clients, its secret and headers) is given.

/// Sends one peer call; implemented by the cluster (`ClusterRouter`).
package protocol PeerTransport: AnyObject, Sendable {
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

    func call(_ action: String, _ body: [UInt8], timeout: Double? = nil) throws -> [UInt8] {
        try transport.post(peer, path + action, body, timeout: timeout)
    }

    /// An answer that does not decode is the peer's fault, not the caller's input.
    func answer<T>(_ decode: () throws -> T) throws -> T {
        do { return try decode() } catch let e as VQError {
            throw VQError(.io, "peer \(peer): \(e.message)")
        }
    }

    package func search(_ query: [Float], _ request: ShardSearch) throws -> (hits: [ScoredPoint], skipped: Int) {
        let bytes = try call("search", ShardWire.encodeSearch(query, request))
        return try answer { try ShardWire.decodeHits(bytes, maxHits: request.k) }
    }

    package func scan(ids: [PointID]?, filter: Filter?, withVector: Bool, withPayload: Bool, vectors: VectorLayout?) throws -> [PointRecord] {
        let bytes = try call("scan", ShardWire.encodeScan(ids: ids, filter: filter, withVector: withVector, withPayload: withPayload))
        return try answer { try ShardWire.decodeRecords(bytes, dims: withVector ? vectors?.dims ?? [] : [], sparse: withVector ? vectors?.sparse.count ?? 0 : 0,
                                                    multiDims: withVector ? vectors?.multi.map(\.dim) ?? [] : []) }
    }

    package func sparseStats(store: Int, terms: [UInt32]) throws -> (points: Int, df: [Int]) {
        let bytes = try call("sparse-stats", ShardWire.encodeSparseStats(store: store, terms: terms))
        return try answer { try ShardWire.decodeSparseCounts(bytes, terms: terms.count) }
    }

    package func count() throws -> Int {
        let bytes = try call("count", [])
        return try answer { try ShardWire.decodeCount(bytes) }
    }

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
