// A collection: its config and one replica set per shard; routes points, merges results.
//
// Point id -> shard by a stable hash (`PointID.stableHash % shard_number`), the
// same in every process and on every peer. Every read and write of a shard goes
// through its `ReplicaSet`, local or distributed alike. Searches ask every shard
// (in parallel when there are several) and merge their top-k.

import Foundation
import Synchronization

/// How long a write waits before it returns.
package enum WriteWait: Sendable {
    /// Once logged and queued (not yet durable): for pipelines that sync later.
    case queued
    /// Once durable in the WAL (Qdrant's `wait=false`).
    case durable
    /// Once applied and searchable (Qdrant's `wait=true`).
    case applied
}

/// A receipt for submitted writes: the last operation number per shard.
package struct WriteTicket: Sendable {
    package var ops: [Int: UInt64] = [:]

    package init() {}

    package mutating func merge(_ other: WriteTicket) {
        for (shard, op) in other.ops { ops[shard] = max(ops[shard] ?? 0, op) }
    }
}

/// A search request.
package struct SearchRequest: Sendable {
    package var vector: [Float]
    package var limit: Int = 10
    package var offset: Int = 0
    package var withPayload = false
    /// Brute force, bypassing graphs.
    package var exact = false
    /// HNSW beam width; nil = max(ef_construct, limit).
    package var hnswEf: Int? = nil
    /// Search indexed segments only (plus unindexed ones small enough for a full scan).
    package var indexedOnly = false
    /// Payload / id conditions (answered from payload indexes where the fields have them).
    package var filter: Filter? = nil
    /// Which vector is searched (VectorLayout number; Qdrant's `using`); with `sparse`, which sparse vector.
    package var using = 0
    /// A sparse query, searched instead of `vector` (exact: the points sharing an index with it).
    package var sparse: SparseVector? = nil
    /// A multi-vector query (flat), scored by MaxSim against multi-vector `using` instead.
    package var multi: [Float]? = nil
    /// How quantized vectors are used (nil: ignored); the default re-scores exactly.
    package var quantization: QuantizedSearch? = QuantizedSearch()

    package init(vector: [Float], limit: Int = 10, using: Int = 0) {
        self.vector = vector
        self.limit = limit
        self.using = using
    }
}

/// Hits, and how many points `indexed_only` left out.
package struct SearchResult: Sendable {
    package var hits: [ScoredPoint]
    package var unindexedSkipped: Int

    package init(hits: [ScoredPoint], unindexedSkipped: Int) {
        self.hits = hits
        self.unindexedSkipped = unindexedSkipped
    }
}

/// Counts for `vq info`.
package struct CollectionStatus: Sendable {
    package var points: Int
    package var shards: [ShardStatus]
    package var segmentCount: Int { shards.reduce(0) { $0 + $1.segments.count } }
    package var queueDepth: Int { shards.reduce(0) { $0 + $1.queueDepth } }
    package var unindexedPoints: Int { shards.reduce(0) { $0 + $1.unindexedPoints } }
    package var indexedVectors: Int { shards.reduce(0) { $0 + $1.indexedVectors } }
    /// Points per second of graph building, over all shards.
    package var indexingRate: Double {
        let seconds = shards.reduce(0) { $0 + $1.indexingSeconds }
        return seconds > 0 ? Double(shards.reduce(0) { $0 + $1.indexedPointsTotal }) / seconds : 0
    }
}

/// A collection open in this process.
package final class VectorCollection: @unchecked Sendable {
    package let name: String
    /// The shards, each a set of replicas (one local one on a single node).
    package let replicaSets: [ReplicaSet]
    /// This process's copy of each shard (`replicaSets[s].local`).
    package let shards: [LocalShard]
    private let liveConfig: Mutex<CollectionConfig>
    /// The current config; the fields no shard depends on (read fan-out, replication) change live.
    package var config: CollectionConfig { liveConfig.withLock { $0 } }

    /// Opens every shard (replaying WALs).
    /// - Parameter placement: the cluster's, on a peer (nil: every shard is local only).
    /// - Parameter everyCore: background graph builds use every core (see `Engine.indexWithEveryCore`).
    init(name: String, config: CollectionConfig, directory: DataDirectory, placement: (any ReplicaPlacement)? = nil, everyCore: Bool = false,
         warn: (String) -> Void) throws {
        self.name = name
        self.liveConfig = Mutex(config)
        var shards: [LocalShard] = []
        var options = config.shardOptions
        options.backgroundUsesEveryCore = everyCore
        for s in 0..<config.shardNumber {
            // A segment-file transfer cut off by a restart left its staging behind: it starts over.
            try? FileIO.removeTree(directory.shardDir(name, s) + ".incoming")
            shards.append(try LocalShard(directory: directory.shardDir(name, s), options: options, warn: warn))
        }
        self.shards = shards
        replicaSets = shards.enumerated().map { ReplicaSet(collection: name, id: $0.offset, local: $0.element, placement: placement) }
    }

    /// Takes a config that differs only in fields no shard reads (see `Engine.updateCollection`).
    func updateLive(_ new: CollectionConfig) {
        liveConfig.withLock { $0 = new }
    }

    /// Serialises payload index builds: each applies the schema current when it runs.
    private let schemaLock = NSLock()

    /// Builds and drops payload indexes in every shard to match the live config's schema (which
    /// may have moved on since this was asked for: the latest one wins, whatever the order).
    func applyPayloadSchema() {
        schemaLock.withLock {
            let schema = config.payloadSchema
            for shard in shards { shard.setPayloadSchema(schema) }
        }
    }

    /// The most results one search may ask for (limit + offset).
    package static let maxResults = 100_000

    package func shardIndex(_ id: PointID) -> Int {
        Int(id.stableHash % UInt64(shards.count))
    }

    // MARK: writing

    /// Checks a value of vector `k` (its dimension and values), and normalises it for cosine.
    /// - Throws: `.invalidInput` naming the dimension or the non-finite element.
    package func prepare(_ vector: inout [Float], _ k: Int = 0) throws {
        let spec = config.vectors[k]
        let what = spec.name.isEmpty ? "vector" : "vector \"\(spec.name)\""
        guard vector.count == spec.dim else {
            throw VQError.invalid("\(what) has \(dimensions(vector.count)); collection \"\(name)\" expects \(spec.dim)")
        }
        if let bad = vector.firstIndex(where: { !$0.isFinite }) {
            throw VQError.invalid("\(what) element \(bad) is \(vector[bad]); expected a finite number")
        }
        if spec.distance.normalizes { vector.withUnsafeMutableBufferPointer { Distance.normalize($0) } }
    }

    /// Checks a value of multi-vector `k` (flat: whole vectors of its size, 1 to 4,096 of them,
    /// finite) and, for a query (`normalize`), normalises each vector for cosine; a point's are
    /// normalised when its batch is written.
    /// - Throws: `.invalidInput` naming the problem.
    package func prepareMulti(_ value: inout [Float], _ k: Int, normalize: Bool = true) throws {
        guard config.vectors.multi.indices.contains(k) else {
            throw VQError.invalid("multi-vector \(k) is searched; collection \"\(name)\" has \(config.vectors.multi.count)")
        }
        let spec = config.vectors.multi[k]
        guard !value.isEmpty, value.count % spec.dim == 0, value.count / spec.dim <= MultiStore.maxVectors else {
            throw VQError.invalid("multi-vector \"\(spec.name)\" needs 1 to \(MultiStore.maxVectors) vectors of \(spec.dim) dimensions each")
        }
        if let bad = value.firstIndex(where: { !$0.isFinite }) {
            throw VQError.invalid("multi-vector \"\(spec.name)\" element \(bad) is \(value[bad]); expected a finite number")
        }
        if normalize && spec.distance.normalizes {
            value.withUnsafeMutableBufferPointer { Distance.normalizeRows($0, dim: spec.dim) }
        }
    }

    /// Upserts a batch whose vectors are already checked (see `prepare`); one operation per shard touched.
    ///
    /// For cosine collections the batch's vectors are normalised in place (no copy).
    package func upsert(_ batch: inout PointBatch, wait: WriteWait, deadline: Date? = nil) throws -> WriteTicket {
        try writeBatch(&batch, wait: wait, deadline: deadline) { .upsert($0) }
    }

    /// Normalises `batch`'s vectors for cosine (in place), splits it by shard and submits
    /// `make(part)` to each shard touched, then waits to `wait`.
    private func writeBatch(_ batch: inout PointBatch, wait: WriteWait, deadline: Date?, _ make: (PointBatch) -> Operation) throws -> WriteTicket {
        precondition(batch.dims == config.vectors.dims)
        for k in batch.dims.indices where config.vectors[k].distance.normalizes {
            let dim = batch.dims[k], count = batch.count
            batch.vectors[k].withUnsafeMutableBufferPointer { Distance.normalizeRows(UnsafeMutableBufferPointer(rebasing: $0[0..<(count * dim)]), dim: dim) }
        }
        for (k, spec) in config.vectors.multi.enumerated() where spec.distance.normalizes && k < batch.multi.count {
            for i in batch.multi[k].indices { batch.multi[k][i]?.withUnsafeMutableBufferPointer { Distance.normalizeRows($0, dim: spec.dim) } }
        }
        let config = self.config
        var ticket = WriteTicket()
        let parts = replicaSets.count == 1 ? [batch] : split(batch)
        for (s, part) in parts.enumerated() where part.count > 0 {
            if let op = try replicaSets[s].write(make(part), wait: wait, deadline: deadline, config: config) { ticket.ops[s] = op }
        }
        try self.wait(ticket, wait)
        return ticket
    }

    /// Replaces the vectors of existing points, keeping their payloads (points that do not exist
    /// when the operation applies are skipped); vectors already checked (see `prepare`).
    package func updateVectors(_ batch: inout PointBatch, wait: WriteWait, deadline: Date? = nil) throws -> WriteTicket {
        precondition(batch.payloads.allSatisfy { $0 == nil })
        return try writeBatch(&batch, wait: wait, deadline: deadline) { .updateVectors($0) }
    }

    /// `batch` split by the shard that owns each point.
    private func split(_ batch: PointBatch) -> [PointBatch] {
        var parts = [PointBatch](repeating: PointBatch(dims: batch.dims, sparse: batch.sparse.count, multiDims: batch.multiDims), count: shards.count)
        withBuffers(batch.vectors) { columns in
            for i in 0..<batch.count {
                let s = shardIndex(batch.ids[i])
                let given = batch.dims.indices.map { k in
                    batch.has(k, i) ? UnsafeBufferPointer(rebasing: columns[k][(i * batch.dims[k])..<((i + 1) * batch.dims[k])]) : nil
                }
                parts[s].append(id: batch.ids[i], vectors: given, sparse: batch.sparseOf(i), multi: batch.multiOf(i), payload: batch.payloads[i])
            }
        }
        return parts
    }

    /// Deletes points by id.
    package func delete(_ ids: [PointID], wait: WriteWait, deadline: Date? = nil) throws -> WriteTicket {
        try submitByShard(ids, wait: wait, deadline: deadline) { .delete($0) }
    }

    /// Removes named vectors (VectorLayout numbers) from points, keeping their other vectors and payloads.
    /// - Throws: `.invalidInput` for a collection of one unnamed vector (delete the point instead).
    package func deleteVectors(_ ids: [PointID], vectors: [Int], wait: WriteWait, deadline: Date? = nil) throws -> WriteTicket {
        guard config.vectors.named else {
            throw VQError.invalid("collection \"\(name)\" has one unnamed vector, which a point cannot lack; delete the point instead")
        }
        return try submitByShard(ids, wait: wait, deadline: deadline) { .deleteVectors(ids: $0, vectors: vectors) }
    }

    /// `ids` split by the shard that owns each.
    private func byShard(_ ids: [PointID]) -> [[PointID]] {
        var parts = [[PointID]](repeating: [], count: shards.count)
        for id in ids { parts[shardIndex(id)].append(id) }
        return parts
    }

    /// Submits `make(idsOfShard)` to every shard that owns some of `ids`, then waits to `wait`.
    private func submitByShard(_ ids: [PointID], wait: WriteWait, deadline: Date?, _ make: ([PointID]) -> Operation) throws -> WriteTicket {
        var ticket = WriteTicket()
        let config = self.config
        for (s, part) in byShard(ids).enumerated() where !part.isEmpty {
            if let op = try replicaSets[s].write(make(part), wait: wait, deadline: deadline, config: config) { ticket.ops[s] = op }
        }
        try self.wait(ticket, wait)
        return ticket
    }

    /// Waits until every operation of `ticket` reached `level`.
    package func wait(_ ticket: WriteTicket, _ level: WriteWait) throws {
        switch level {
        case .queued: return
        case .durable: for (s, op) in ticket.ops { try shards[s].waitDurable(op) }
        case .applied:
            for (s, op) in ticket.ops { try shards[s].waitDurable(op) }
            for (s, op) in ticket.ops { try shards[s].waitApplied(op) }
        }
    }

    // MARK: reading

    /// Top-`limit` (after `offset`) over every shard.
    /// - Throws: `.invalidInput` for a bad vector, limit, offset or ef.
    package func search(_ request: SearchRequest) throws -> SearchResult {
        var query = request.vector
        var multiQuery = request.multi
        if multiQuery != nil {
            try prepareMulti(&multiQuery!, request.using)
        } else if request.sparse == nil {
            guard config.vectors.specs.indices.contains(request.using) else {
                throw VQError.invalid("vector \(request.using) is searched; collection \"\(name)\" has \(config.vectors.count)")
            }
            try prepare(&query, request.using)
        } else {
            guard config.vectors.sparse.indices.contains(request.using) else {
                throw VQError.invalid("sparse vector \(request.using) is searched; collection \"\(name)\" has \(config.vectors.sparse.count)")
            }
        }
        guard request.limit >= 0 else { throw VQError.invalid("limit is \(request.limit); expected 0 or more") }
        guard request.offset >= 0 else { throw VQError.invalid("offset is \(request.offset); expected 0 or more") }
        guard request.limit + request.offset <= VectorCollection.maxResults else {
            throw VQError.invalid("limit + offset is \(request.limit + request.offset); expected at most \(VectorCollection.maxResults) (page with scroll for more)")
        }
        // Search settings that would change nothing are refused, not dropped: quantization's
        // rescore/oversampling where no codes are read, a graph's beam width for a sparse search.
        if let q = request.quantization, q != QuantizedSearch() {
            let why = config.quantization == nil ? "collection \"\(name)\" has no quantization_config"
                : request.sparse != nil ? "sparse vectors have no quantized codes"
                : request.multi != nil ? "multi-vectors have no quantized codes" : nil
            if let why { throw VQError.invalid("params.quantization rescore false or oversampling above 1 does not apply: \(why)") }
            if Double(request.limit + request.offset) * q.oversampling > Double(VectorCollection.maxResults) {
                throw VQError.invalid("(limit + offset) x oversampling is \(Double(request.limit + request.offset) * q.oversampling); "
                                      + "expected at most \(VectorCollection.maxResults)")
            }
        }
        if let ef = request.hnswEf {
            guard ef >= 1 && ef <= VectorCollection.maxResults else { throw VQError.invalid("hnsw_ef is \(ef); expected 1 to \(VectorCollection.maxResults)") }
            if request.sparse != nil { throw VQError.invalid("hnsw_ef does not apply to a sparse search (it is exact, over the postings)") }
        }
        let k = request.limit + request.offset
        if k == 0 { return SearchResult(hits: [], unindexedSkipped: 0) }
        let ef = request.multi != nil ? config.vectors.multi[request.using].efConstruct ?? config.efConstruct
            : request.sparse != nil ? k : config.vectors[request.using].efConstruct ?? config.efConstruct
        var shardRequest = ShardSearch(k: k, ef: request.hnswEf ?? max(ef, k))
        shardRequest.vector = request.using
        if let sparse = request.sparse {
            shardRequest.sparse = config.vectors.sparse[request.using].idf ? try idfWeighted(sparse, store: request.using) : sparse
        }
        shardRequest.multi = multiQuery
        shardRequest.quantization = request.quantization
        shardRequest.exact = request.exact
        shardRequest.indexedOnly = request.indexedOnly
        shardRequest.withPayload = request.withPayload
        shardRequest.filter = request.filter
        var hits: [ScoredPoint]
        var skipped = 0
        // Every shard at once (one replica each), then one merge.
        let config = self.config
        if replicaSets.count == 1 {
            (hits, skipped) = try replicaSets[0].search(query, shardRequest, config: config)
        } else {
            let results = UnsafeMutableBufferPointer<Result<(hits: [ScoredPoint], skipped: Int), any Error>>.allocate(capacity: shards.count)
            results.initialize(repeating: .success(([], 0)))
            defer { results.deinitialize(); results.deallocate() }
            nonisolated(unsafe) let out = results
            let shardRequest = shardRequest, query = query, sets = replicaSets
            // The request's read consistency and deadline, bound again on the threads that run the shards.
            let consistency = ReadConsistency.current, deadline = ReadDeadline.current
            DispatchQueue.concurrentPerform(iterations: sets.count) { s in
                let search = { Result { try sets[s].search(query, shardRequest, config: config) } }
                let bound = { consistency == .factor(1) ? search() : ReadConsistency.$current.withValue(consistency, operation: search) }
                out[s] = deadline == nil ? bound() : ReadDeadline.$current.withValue(deadline, operation: bound)
            }
            hits = []
            for r in results {
                let part = try r.get()
                hits += part.hits
                skipped += part.skipped
            }
            hits.sort { $0.rank > $1.rank || ($0.rank == $1.rank && $0.id < $1.id) }
            if hits.count > k { hits.removeLast(hits.count - k) }
        }
        return SearchResult(hits: Array(hits.dropFirst(request.offset)), unindexedSkipped: skipped)
    }

    /// `query` with each value scaled by its index's IDF over the whole collection (every shard's
    /// points that have sparse vector `store`).
    func idfWeighted(_ query: SparseVector, store: Int) throws -> SparseVector {
        var points = 0
        var df = [Int](repeating: 0, count: query.count)
        for set in replicaSets {
            let s = try set.sparseStats(store: store, terms: query.indices)
            points += s.points
            for i in df.indices { df[i] += s.df[i] }
        }
        return query.scaled(df.map { SparseVector.idf(n: points, df: $0) })
    }

    /// Submits one payload operation per shard touched (ids routed like points).
    package func updatePayload(_ ids: [PointID], wait: WriteWait, deadline: Date? = nil,
                               _ make: ([PointID]) -> Operation) throws -> WriteTicket {
        try submitByShard(ids, wait: wait, deadline: deadline, make)
    }

    /// Points passing `filter`, ordered by id, from the first id >= `offset`, at most `limit`.
    /// - Returns: the page and the id where the next page starts (nil at the end).
    package func scroll(filter: Filter?, offset: PointID?, limit: Int, withVector: Bool, withPayload: Bool) throws
        -> (points: [PointRecord], next: PointID?) {
        var all = try (0..<shards.count).flatMap { try records($0, ids: nil, filter: filter, withVector: withVector, withPayload: withPayload) }
        all.sort { $0.id < $1.id }
        let start = offset.map { o in all.firstIndex { !($0.id < o) } ?? all.count } ?? 0
        let end = min(all.count, start + limit)
        return (Array(all[start..<end]), end < all.count ? all[end].id : nil)
    }

    /// Per value of the indexed field `key`, how many points passing `filter` hold it, most first
    /// (then by value), at most `limit` values (Qdrant's facet).
    /// - Throws: `.invalidInput` when `key` has no keyword, uuid, bool or integer (lookup) index.
    package func facet(key: String, filter: Filter?, limit: Int) throws -> [(value: IndexKey, count: Int)] {
        guard let schema = config.payloadSchema[key], schema.facetable else {
            throw VQError.invalid("facet needs a keyword, uuid, bool or integer index on \"\(key)\"", hint: "create one: PUT /collections/\(name)/index")
        }
        var counts: [IndexKey: Int] = [:]
        for set in replicaSets { counts.merge(try set.facet(key: key, schema: schema, filter: filter), uniquingKeysWith: +) }
        return counts.sorted { $0.value > $1.value || ($0.value == $1.value && $0.key < $1.key) }.prefix(limit).map { ($0.key, $0.value) }
    }

    /// The first `limit` points passing `filter` ordered by the numbers of the indexed field `key`
    /// (Qdrant's order_by), from `startFrom` on.
    /// - Throws: `.invalidInput` when `key` has no integer (range), float or datetime index.
    package func ordered(key: String, filter: Filter?, descending: Bool, startFrom: Double?, limit: Int,
                         withVector: Bool, withPayload: Bool) throws -> [(value: Double, record: PointRecord)] {
        guard let schema = config.payloadSchema[key], schema.orderable else {
            throw VQError.invalid("order_by needs an integer (with range), float or datetime index on \"\(key)\"",
                                  hint: "create one: PUT /collections/\(name)/index")
        }
        var all: [(value: Double, record: PointRecord)] = []
        for set in replicaSets {
            all += try set.ordered(key: key, schema: schema, filter: filter, descending: descending, startFrom: startFrom, limit: limit,
                                   withVector: withVector, withPayload: withPayload, vectors: config.vectors)
        }
        all.sort { descending ? $0.value > $1.value : $0.value < $1.value }
        return Array(all.prefix(limit))
    }

    /// How many points pass `filter`.
    package func count(filter: Filter?) throws -> Int {
        if filter == nil { return try replicaSets.reduce(0) { $0 + (try $1.count()) } }
        return try replicaSets.reduce(0) { $0 + (try $1.count(filter: filter!)) }
    }

    /// One shard's records: of `ids`, or all passing `filter` (a replica's, when distributed).
    private func records(_ s: Int, ids: [PointID]?, filter: Filter?, withVector: Bool, withPayload: Bool) throws -> [PointRecord] {
        try replicaSets[s].scan(ids: ids, filter: filter, withVector: withVector, withPayload: withPayload, vectors: config.vectors)
    }

    /// The ids of the points passing `filter`.
    package func ids(matching filter: Filter) throws -> [PointID] {
        try (0..<shards.count).flatMap { try records($0, ids: nil, filter: filter, withVector: false, withPayload: false).map(\.id) }
    }

    /// Runs the optimizer on every shard now (`vq optimize`): seal, index, merge, vacuum.
    package func optimize() throws -> OptimizeReport {
        var report = OptimizeReport()
        for shard in shards { report.add(try shard.optimize(force: true)) }
        return report
    }

    /// Waits until every submitted write is applied and the optimizer has nothing left to do.
    package func settle() throws -> OptimizeReport {
        var report = OptimizeReport()
        for shard in shards { report.add(try shard.settle()) }
        return report
    }

    /// Points by id, in the order asked (missing ones left out).
    package func retrieve(_ ids: [PointID], withVector: Bool, withPayload: Bool) throws -> [PointRecord] {
        var found: [PointID: PointRecord] = [:]
        for (s, part) in byShard(ids).enumerated() where !part.isEmpty {
            for r in try records(s, ids: part, filter: nil, withVector: withVector, withPayload: withPayload) { found[r.id] = r }
        }
        return ids.compactMap { found[$0] }
    }

    package var pointCount: Int { shards.reduce(0) { $0 + $1.pointCount } }

    package var status: CollectionStatus {
        let s = shards.map(\.status)
        return CollectionStatus(points: s.reduce(0) { $0 + $1.points }, shards: s)
    }

    /// Drains queues, flushes and stops every shard.
    package func close() throws {
        var first: (any Error)?
        for shard in shards {
            do { try shard.close() } catch { if first == nil { first = error } }
        }
        if let first { throw first }
    }
}
