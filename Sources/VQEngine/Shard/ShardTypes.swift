// Value types a shard takes and returns.

import Foundation

/// Tunables of one shard, from the collection config.
package struct ShardOptions: Sendable {
    package var vectors: VectorLayout
    package var updateQueueSize: Int = 1_000_000
    /// The update queue's bound in bytes of queued operations.
    package var updateQueueBytes: Int = 1 << 30
    /// Rows an appendable segment takes before a new one starts (max_segment_size).
    package var segmentCapacity: Int = 1 << 20
    package var flushInterval: TimeInterval = 5
    /// Applied vector bytes after which the applier flushes early, so a bulk load
    /// writes segments while it ingests and the WAL to replay stays short.
    package var flushBytes: Int = 16 << 20
    package var walFileLimit: Int = 32 << 20
    /// Live points at which the appendable segment is sealed and indexed (indexing_threshold); 0 = never.
    package var indexingThresholdRows = 0
    /// Segments with fewer live points are searched by exact scan (full_scan_threshold).
    package var fullScanRows = 0
    package var hnsw = HNSWParams()
    /// Apply updates only while unindexed points are below the indexing threshold.
    package var preventUnoptimized = false
    /// Sealed segments the merger aims for.
    package var defaultSegmentNumber = 2
    package var deletedThreshold = 0.2
    package var vacuumMinVectorNumber = 1000
    /// Whether the background optimizer runs (off in tests that drive it by hand).
    package var backgroundOptimizer = true
    /// Background graph builds (max_indexing_threads 0) use every core rather than all but one.
    package var backgroundUsesEveryCore = false
    /// Quantization (nil: none): indexed segments keep codes of their dense vectors in RAM
    /// and walk their graphs on them.
    package var quantization: Quantization? = nil
    /// The payload fields each segment indexes (as opened; `LocalShard.setPayloadSchema` changes it).
    package var payloadSchema = PayloadSchema()

    package init(vectors: VectorLayout) {
        self.vectors = vectors
    }

    /// A shard of one unnamed vector.
    package init(dim: Int, distance: Distance) {
        self.init(vectors: VectorLayout(dim: dim, distance: distance))
    }

    /// The graph parameters of each vector (m 0: that vector gets no graph).
    /// Per dense vector, then per multi-vector. A multi-vector's graph (over its single vectors,
    /// for candidate search) is built only when its own `hnsw_config.m` asks for one: without it
    /// searches are exact MaxSim, which the graph trades for speed at some recall (BENCHMARKS.md).
    package var graphParams: [HNSWParams] {
        vectors.specs.map { $0.hnsw(hnsw) } + vectors.multi.map { spec in
            var p = spec.hnsw(hnsw)
            if spec.m == nil { p.m = 0 }
            return p
        }
    }

    /// Whether any vector wants a graph.
    package var wantsGraphs: Bool { graphParams.contains { $0.m > 0 } }

    /// Whether the appendable segment is sealed at the indexing threshold: for HNSW graphs, or for
    /// the postings of sparse vectors (m = 0 without sparse vectors, or a zero threshold, turn it off).
    package var indexingEnabled: Bool { indexingThresholdRows > 0 && (wantsGraphs || !vectors.sparse.isEmpty) }
}

/// A search as a shard sees it.
package struct ShardSearch: Sendable {
    package var k: Int
    package var ef: Int
    package var exact = false
    package var indexedOnly = false
    package var withPayload = false
    package var filter: Filter? = nil
    /// Which vector (VectorLayout number) is searched; with `sparse`, which sparse vector.
    package var vector = 0
    /// A sparse query (IDF already applied), searched instead of the dense one.
    package var sparse: SparseVector? = nil
    /// A multi-vector query (flat, prepared), scored by MaxSim against multi-vector `vector`.
    package var multi: [Float]? = nil
    /// Quantized vectors (where a segment has codes): nil ignores them; else re-score exactly or
    /// not, over `oversampling` x k candidates.
    package var quantization: QuantizedSearch? = QuantizedSearch()

    package init(k: Int, ef: Int) {
        self.k = k
        self.ef = ef
    }
}

/// How a search uses quantized vectors (Qdrant's search params `quantization`).
package struct QuantizedSearch: Sendable, Equatable {
    package var rescore = true
    package private(set) var oversampling: Double = 1

    /// `oversampling` is kept at float32 precision, the precision peers receive it in, so the
    /// bound every peer checks (k x oversampling) is the one checked here.
    package init(rescore: Bool = true, oversampling: Double = 1) {
        self.rescore = rescore
        self.oversampling = Double(Float(oversampling))
    }
}

/// A search hit, with the score as Qdrant reports it.
package struct ScoredPoint: Sendable {
    package var id: PointID
    package var version: UInt64
    package var score: Float
    /// The internal score (higher is better), for merging across shards.
    package var rank: Float
    package var payload: JSON?

    package init(id: PointID, version: UInt64, score: Float, rank: Float, payload: JSON?) {
        self.id = id
        self.version = version
        self.score = score
        self.rank = rank
        self.payload = payload
    }
}

/// A stored point, as `retrieve` returns it.
package struct PointRecord: Sendable {
    package var id: PointID
    package var version: UInt64
    /// Its vectors in VectorLayout order, nil where it lacks one; empty when not asked for.
    package var vectors: [[Float]?]
    /// Its sparse vectors likewise.
    package var sparse: [SparseVector?]
    /// Its multi-vectors likewise (flat).
    package var multi: [[Float]?]
    package var payload: JSON?

    package init(id: PointID, version: UInt64, vectors: [[Float]?], sparse: [SparseVector?] = [], multi: [[Float]?] = [], payload: JSON?) {
        self.id = id
        self.version = version
        self.vectors = vectors
        self.sparse = sparse
        self.multi = multi
        self.payload = payload
    }
}

/// Counts for `vq info` and metrics.
package struct ShardStatus: Sendable {
    package var points: Int
    package var segments: [SegmentStatus]
    package var queueDepth: Int
    package var appliedOp: UInt64
    package var flushedOp: UInt64
    package var walFiles: Int
    package var unindexedPoints: Int
    package var indexedPointsTotal: Int
    package var indexingSeconds: Double
    /// Vectors in an index (a graph, or a sealed segment's sparse postings), about: Qdrant's
    /// indexed_vectors_count (each vector of a point counts).
    package var indexedVectors = 0
    /// Points per second over every graph built since the shard opened (0 before the first).
    package var indexingRate: Double { indexingSeconds > 0 ? Double(indexedPointsTotal) / indexingSeconds : 0 }
}

package struct SegmentStatus: Sendable {
    package var id: UInt64
    package var rows: Int
    package var livePoints: Int
    package var deleted: Int
    package var appendable: Bool
    package var indexed: Bool
    /// Bytes of quantized codes the segment holds in RAM (0 without quantization).
    package var codeBytes = 0
}

/// What one optimizer run did.
package struct OptimizeReport: Sendable {
    package var segmentsBefore = 0
    package var segmentsAfter = 0
    package var pointsIndexed = 0
    package var seconds = 0.0
    package var tasks = 0

    package init() {}

    package mutating func add(_ other: OptimizeReport) {
        segmentsBefore += other.segmentsBefore
        segmentsAfter += other.segmentsAfter
        pointsIndexed += other.pointsIndexed
        seconds = max(seconds, other.seconds)
        tasks += other.tasks
    }
}
