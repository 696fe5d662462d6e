// HNSW: the graph of a sealed segment, its file layout and its search.
//
//   HNSWGraph.swift     layout, open/write, query-time search (no locks: the graph is immutable)
//   HNSWBuilder.swift   multi-threaded construction (hnswlib's algorithm, striped node locks)
//   VisitedSet.swift, CandidateHeap.swift   per-search scratch, pooled
//
// Nodes are the segment's rows (dense UInt32 ids), so a node's vector is row
// `node` of the segment's vectors.f32. One buffer holds everything, laid out
// as the file is:
//
//   offset 0     header (64 bytes): magic "VHNW" u32 | version u32 | count u64 | m u32 | m0 u32 |
//                maxLevel u32 | entry u32 | upperBlocks u64 | crc32c u32 (of all bytes after the header)
//   level0       count x (m0 + 1) u32: [n, link_1 ... link_n, unused...] per node
//   levels       count x u8: the top level of each node (0 for most)
//   upperOffsets count x u32: first upper block of the node (its level 1)
//   upper        upperBlocks x (m + 1) u32: [n, links...] for levels 1...level of each node
//
// each section starts on a 64-byte boundary. Deleted rows stay in the graph
// (tombstones): searches walk through them but never return them.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CVQSupport
import Synchronization

/// Sizes and offsets of the graph's sections for given counts.
struct HNSWLayout {
    static let headerSize = 64
    static let magic: UInt32 = 0x574E_4856  // "VHNW"
    static let version: UInt32 = 1

    let count: Int
    let m: Int
    let m0: Int
    let upperBlocks: Int
    let level0: Int
    let levels: Int
    let upperOffsets: Int
    let upper: Int
    let total: Int

    init(count: Int, m: Int, upperBlocks: Int) {
        func align(_ x: Int) -> Int { (x + 63) & ~63 }
        self.count = count
        self.m = m
        self.m0 = 2 * m
        self.upperBlocks = upperBlocks
        level0 = HNSWLayout.headerSize
        levels = align(level0 + count * (m0 + 1) * 4)
        upperOffsets = align(levels + count)
        upper = align(upperOffsets + count * 4)
        total = align(upper + upperBlocks * (m + 1) * 4)
    }
}

/// An immutable HNSW graph over a segment's rows.
package final class HNSWGraph: @unchecked Sendable {
    package let count: Int
    package let m: Int
    package let m0: Int
    package let maxLevel: Int
    package let entryPoint: UInt32
    let level0: UnsafePointer<UInt32>
    let levels: UnsafePointer<UInt8>
    let upperOffsets: UnsafePointer<UInt32>
    let upper: UnsafePointer<UInt32>
    private let raw: UnsafeRawPointer
    private let length: Int
    private let mapped: Bool

    /// Wraps a complete buffer in the file layout (header filled in).
    /// - Parameter mapped: whether `raw` is an mmap (unmapped on deinit) or an allocation (freed).
    init(raw: UnsafeRawPointer, length: Int, mapped: Bool) {
        self.raw = raw
        self.length = length
        self.mapped = mapped
        count = Int(raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
        m = Int(raw.loadUnaligned(fromByteOffset: 16, as: UInt32.self))
        m0 = Int(raw.loadUnaligned(fromByteOffset: 20, as: UInt32.self))
        maxLevel = Int(raw.loadUnaligned(fromByteOffset: 24, as: UInt32.self))
        entryPoint = raw.loadUnaligned(fromByteOffset: 28, as: UInt32.self)
        let blocks = Int(raw.loadUnaligned(fromByteOffset: 32, as: UInt64.self))
        let layout = HNSWLayout(count: count, m: m, upperBlocks: blocks)
        level0 = (raw + layout.level0).assumingMemoryBound(to: UInt32.self)
        levels = (raw + layout.levels).assumingMemoryBound(to: UInt8.self)
        upperOffsets = (raw + layout.upperOffsets).assumingMemoryBound(to: UInt32.self)
        upper = (raw + layout.upper).assumingMemoryBound(to: UInt32.self)
    }

    deinit {
        if mapped {
            munmap(UnsafeMutableRawPointer(mutating: raw), length)
        } else {
            raw.deallocate()
        }
    }

    /// Bytes the graph occupies.
    package var byteCount: Int { length }

    // MARK: files

    /// Writes the graph to `path` durably (temporary name, fsync, rename).
    package func write(to path: String) throws {
        try FileIO.writeAtomically(path, Array(UnsafeRawBufferPointer(start: raw, count: length)))
    }

    /// Maps a graph file, checking its magic, version, size and checksum.
    /// - Throws: `.corrupt` naming what is wrong.
    package static func open(_ path: String) throws -> HNSWGraph {
        let fd = FileIO.openFD(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ioError("open", path) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw ioError("stat", path) }
        let size = Int(st.st_size)
        guard size >= HNSWLayout.headerSize else { throw VQError(.corrupt, "\(path) is shorter than an HNSW header") }
        guard let p = mmap(nil, size, PROT_READ, MAP_SHARED, fd, 0), p != MAP_FAILED else { throw ioError("mmap", path) }
        let raw = UnsafeRawPointer(p)
        func fail(_ why: String) -> VQError {
            munmap(p, size)
            return VQError(.corrupt, "\(path): \(why)")
        }
        guard raw.loadUnaligned(as: UInt32.self) == HNSWLayout.magic else { throw fail("not an HNSW graph file (bad magic)") }
        let version = raw.loadUnaligned(fromByteOffset: 4, as: UInt32.self)
        guard version == HNSWLayout.version else { throw fail("graph format version \(version); this vq reads \(HNSWLayout.version)") }
        // The header is outside the checksum: check each field before sizes are computed from it.
        let count = raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self), m = raw.loadUnaligned(fromByteOffset: 16, as: UInt32.self)
        let m0 = raw.loadUnaligned(fromByteOffset: 20, as: UInt32.self), maxLevel = raw.loadUnaligned(fromByteOffset: 24, as: UInt32.self)
        let entry = raw.loadUnaligned(fromByteOffset: 28, as: UInt32.self), blocks = raw.loadUnaligned(fromByteOffset: 32, as: UInt64.self)
        guard count <= UInt64(UInt32.max), (1...1024).contains(m), m0 == 2 * m, maxLevel <= 64, blocks <= 1 << 40,
              count == 0 || UInt64(entry) < count else {
            throw fail("the header is damaged (count \(count), m \(m), m0 \(m0), max level \(maxLevel), entry \(entry))")
        }
        let layout = HNSWLayout(count: Int(count), m: Int(m), upperBlocks: Int(blocks))
        guard layout.total == size else { throw fail("file is \(size) bytes; its header says \(layout.total)") }
        let stored = raw.loadUnaligned(fromByteOffset: 40, as: UInt32.self)
        let crc = CRC32C.update(0, UnsafeRawBufferPointer(start: raw + HNSWLayout.headerSize, count: size - HNSWLayout.headerSize))
        guard crc == stored else { throw fail("checksum mismatch; the graph is damaged") }
        return HNSWGraph(raw: raw, length: size, mapped: true)
    }

    // MARK: search

    @inline(__always)
    func links(_ node: UInt32, level: Int) -> UnsafePointer<UInt32> {
        level == 0 ? level0 + Int(node) * (m0 + 1) : upper + (Int(upperOffsets[Int(node)]) + level - 1) * (m + 1)
    }

    /// The `k` nearest live rows to `query`, nearest first.
    ///
    /// - Parameters:
    ///   - vectors: the segment's rows (`count x dim`).
    ///   - ef: the search beam width (at least `k`).
    ///   - deleted: the segment's tombstone bitmap, or nil when nothing is deleted.
    /// - Returns: (distance, row) pairs, lower distance first.
    /// - Complexity: about O(ef x m0 x log(count)) distance evaluations.
    package func search(_ query: UnsafePointer<Float>, vectors: UnsafePointer<Float>, dim: Int, distance: DistanceFunction,
                        k: Int, ef: Int, deleted: UnsafePointer<UInt64>?) -> [Candidate] {
        search(FloatScorer(query: query, vectors: vectors, dim: dim, distance: distance), k: k, ef: ef, deleted: deleted)
    }

    /// The `k` nearest live rows by `scorer`'s distances (a query's float vectors, or codes).
    package func search<S: NodeScorer>(_ scorer: S, k: Int, ef: Int, deleted: UnsafePointer<UInt64>?) -> [Candidate] {
        guard count > 0, k > 0 else { return [] }
        var context = SearchContext.take(nodes: count)
        defer { SearchContext.give(context) }
        let (cur, curDist) = descend(scorer)
        searchBase(scorer, entry: cur, entryDistance: curDist, ef: max(ef, k), deleted: deleted, context: &context)
        return context.takeResults(k)
    }

    /// Greedy descent through the upper levels from the entry point: the level-0 entry and its distance.
    private func descend<S: NodeScorer>(_ scorer: S) -> (UInt32, Float) {
        var cur = entryPoint
        var curDist = scorer.distance(cur)
        var level = maxLevel
        while level > 0 {
            var changed = true
            while changed {
                changed = false
                let block = links(cur, level: level)
                for j in 0..<Int(block[0]) {
                    let nb = block[1 + j]
                    let d = scorer.distance(nb)
                    if d < curDist {
                        curDist = d
                        cur = nb
                        changed = true
                    }
                }
            }
            level -= 1
        }
        return (cur, curDist)
    }

    /// The `k` nearest of the nodes `allowed` admits (a bitmap over all nodes, deleted ones clear).
    ///
    /// The upper levels are descended as usual. On level 0 only allowed nodes are scored: a
    /// node's candidates are its allowed neighbours and, through neighbours that are not allowed,
    /// their allowed neighbours (two hops, as ACORN does), up to `m` per node. The walk then
    /// stays within the allowed nodes without losing its way where they are sparse, and scores
    /// about as many vectors as an unfiltered search. Distances are `scorer`'s (a query's float
    /// vectors, or codes).
    package func searchFiltered<S: NodeScorer>(_ scorer: S, k: Int, ef: Int, allowed: UnsafePointer<UInt64>) -> [Candidate] {
        guard count > 0, k > 0 else { return [] }
        @inline(__always) func admits(_ node: UInt32) -> Bool { allowed[Int(node) >> 6] & (1 << UInt64(node & 63)) != 0 }
        var context = SearchContext.take(nodes: count)
        defer { SearchContext.give(context) }
        let (cur, curDist) = descend(scorer)
        let ef = max(ef, k)
        let stride0 = m0 + 1
        var bound = context.start(Candidate(distance: curDist, node: cur), returnable: admits(cur))
        var picked = [UInt32](repeating: 0, count: m0)
        while let c = context.next(ef: ef, bound: bound, level0: level0, stride: stride0) {
            let list = level0 + Int(c.node) * stride0
            let n = Int(list[0])
            // Allowed neighbours first, then allowed neighbours of the others while fewer than m
            // (the others' links are fetched while the first pass runs).
            var taken = 0
            for j in 1...max(n, 1) where j <= n {
                let nb = list[j]
                if admits(nb) {
                    if context.visited.insert(nb) {
                        picked[taken] = nb
                        taken += 1
                    }
                } else if taken < m {
                    cvq_prefetch(level0 + Int(nb) * stride0)
                }
            }
            var j = 1
            while j <= n && taken < m {
                let via = list[j]
                j += 1
                // A bridge's neighbours are looked at once per search.
                if admits(via) || !context.visited.insert(via) { continue }
                let second = level0 + Int(via) * stride0
                let n2 = Int(second[0])
                var i = 1
                while i <= n2 && taken < m {
                    let nb = second[i]
                    i += 1
                    if admits(nb) && context.visited.insert(nb) {
                        picked[taken] = nb
                        taken += 1
                    }
                }
            }
            for t in 0..<min(taken, 4) { scorer.prefetch(picked[t]) }
            for t in 0..<taken {
                let nb = picked[t]
                if t + 4 < taken { scorer.prefetch(picked[t + 4]) }
                let d = scorer.distance(nb)
                context.offer(Candidate(distance: d, node: nb), ef: ef, returnable: true, bound: &bound)
            }
        }
        return context.takeResults(k)
    }

    /// Beam search on level 0 from `entry`; leaves the best `ef` live nodes in `context.results`.
    private func searchBase<S: NodeScorer>(_ scorer: S, entry: UInt32, entryDistance: Float, ef: Int, deleted: UnsafePointer<UInt64>?,
                                           context: inout SearchContext) {
        @inline(__always) func isDeleted(_ node: UInt32) -> Bool {
            guard let deleted else { return false }
            return deleted[Int(node) >> 6] & (1 << UInt64(node & 63)) != 0
        }
        let stride0 = m0 + 1
        var bound = context.start(Candidate(distance: entryDistance, node: entry), returnable: !isDeleted(entry))
        // Per expanded node: its unvisited neighbours first (the marks are small and near),
        // then their vectors or codes, each fetched `ahead` neighbours before it is scored: one
        // neighbour ahead hides little of a miss when a distance on codes takes a few ns.
        let ahead = 4
        withUnsafeTemporaryAllocation(of: UInt32.self, capacity: stride0) { buffer in
            let fresh = buffer.baseAddress!
            while let c = context.next(ef: ef, bound: bound, level0: level0, stride: stride0) {
                let list = level0 + Int(c.node) * stride0
                let n = Int(list[0])
                var taken = 0
                for j in 1..<(n + 1) where context.visited.insert(list[j]) {
                    fresh[taken] = list[j]
                    taken += 1
                }
                for t in 0..<min(taken, ahead) { scorer.prefetch(fresh[t]) }
                for t in 0..<taken {
                    if t + ahead < taken { scorer.prefetch(fresh[t + ahead]) }
                    let nb = fresh[t]
                    context.offer(Candidate(distance: scorer.distance(nb), node: nb), ef: ef, returnable: !isDeleted(nb), bound: &bound)
                }
            }
        }
    }
}

/// A query's distance to a node, for the graph walk (lower is nearer).
package protocol NodeScorer {
    func distance(_ node: UInt32) -> Float
    /// Starts fetching what `distance(node)` will read.
    func prefetch(_ node: UInt32)
}

/// Distances to the nodes' float vectors.
package struct FloatScorer: NodeScorer {
    let query: UnsafePointer<Float>
    let vectors: UnsafePointer<Float>
    let dim: Int
    let distance: DistanceFunction

    @inline(__always)
    package func distance(_ node: UInt32) -> Float { distance(query, vectors + Int(node) * dim, dim) }

    @inline(__always)
    package func prefetch(_ node: UInt32) { cvq_prefetch(vectors + Int(node) * dim) }
}

/// Reusable scratch for one search: visited marks and the two heaps.
struct SearchContext: @unchecked Sendable {
    var visited: VisitedSet
    var frontier = CandidateHeap(max: false, capacity: 256)
    var results = CandidateHeap(max: true, capacity: 256)

    private static let pool = Mutex<[SearchContext]>([])

    /// Starts the level-0 beam at `entry` (a result too when `returnable`); returns the bound.
    @inline(__always)
    mutating func start(_ entry: Candidate, returnable: Bool) -> Float {
        _ = visited.insert(entry.node)
        frontier.push(entry)
        guard returnable else { return .infinity }
        results.push(entry)
        return entry.distance
    }

    /// The next candidate to expand, or nil when none can improve `ef` results within `bound`;
    /// starts fetching the following candidate's links (read next).
    @inline(__always)
    mutating func next(ef: Int, bound: Float, level0: UnsafePointer<UInt32>, stride: Int) -> Candidate? {
        guard !frontier.isEmpty else { return nil }
        let c = frontier.top
        if c.distance > bound && results.count >= ef { return nil }
        frontier.pop()
        if !frontier.isEmpty { cvq_prefetch(level0 + Int(frontier.top.node) * stride) }
        return c
    }

    /// One step of the level-0 beam: a scored neighbour joins the frontier when it may still
    /// improve the results (fewer than `ef`, or nearer than `bound`), and the results when it
    /// is `returnable` (not deleted, allowed by a filter); `bound` follows the worst result.
    @inline(__always)
    mutating func offer(_ c: Candidate, ef: Int, returnable: Bool, bound: inout Float) {
        guard results.count < ef || c.distance < bound else { return }
        frontier.push(c)
        if returnable {
            if results.count < ef { results.push(c) } else { results.replaceTop(c) }
        }
        if !results.isEmpty { bound = results.top.distance }
    }

    /// The best `k` results, nearest first (empties the results heap).
    mutating func takeResults(_ k: Int) -> [Candidate] {
        while results.count > k { results.pop() }
        var out = [Candidate](repeating: Candidate(distance: 0, node: 0), count: results.count)
        var i = out.count
        while !results.isEmpty {
            i -= 1
            out[i] = results.pop()
        }
        return out
    }

    /// A context for a graph of `nodes` nodes, from the pool when one is free.
    static func take(nodes: Int) -> SearchContext {
        var c = pool.withLock { $0.popLast() } ?? SearchContext(visited: VisitedSet(capacity: nodes))
        c.visited.reset(count: nodes)
        c.frontier.removeAll()
        c.results.removeAll()
        return c
    }

    static func give(_ c: SearchContext) {
        let kept = pool.withLock { p -> Bool in
            guard p.count < 64 else { return false }
            p.append(c)
            return true
        }
        if !kept {
            c.visited.deallocate()
            c.frontier.deallocate()
            c.results.deallocate()
        }
    }
}
