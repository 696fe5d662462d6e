// Builds an HNSW graph over a contiguous block of vectors, on several threads.
//
// A build may start from a seed: the graph of a segment whose live rows are the first nodes
// (a merge puts the largest source first). Their levels and links are copied (links to rows
// the merge dropped are removed) and only the other nodes are inserted, as Qdrant 1.14+
// reuses graphs when it merges segments.
//
// hnswlib's algorithm: each node gets a random top level (seeded, so a build
// is reproducible for a given thread count of 1); it is inserted by a greedy
// descent through the upper levels, then at each of its levels a beam search
// of width ef_construct, the heuristic neighbour selection, and back-links
// (pruned with the same heuristic when a neighbour's list is full). Threads
// take nodes from a shared counter; a node's link lists are guarded by one of
// a set of striped mutexes, held only while copying or rewriting that list.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CVQSupport
import Foundation
import Synchronization

/// HNSW build parameters.
package struct HNSWParams: Sendable {
    package var m = 16
    package var efConstruct = 100
    /// Worker threads; 0 = all cores.
    package var threads = 0
    package var seed: UInt64 = 0x5EED

    package init(m: Int = 16, efConstruct: Int = 100, threads: Int = 0) {
        self.m = m
        self.efConstruct = efConstruct
        self.threads = threads
    }
}

/// Builds graphs; one instance per build.
package final class HNSWBuilder: @unchecked Sendable {
    private let vectors: UnsafePointer<Float>
    private let count: Int
    private let dim: Int
    private let distance: DistanceFunction
    private let params: HNSWParams
    private let layout: HNSWLayout
    private let raw: UnsafeMutableRawPointer
    private let level0: UnsafeMutablePointer<UInt32>
    private let levels: UnsafeMutablePointer<UInt8>
    private let upperOffsets: UnsafeMutablePointer<UInt32>
    private let upper: UnsafeMutablePointer<UInt32>
    private let locks: UnsafeMutablePointer<pthread_mutex_t>
    private let lockCount: Int
    private let useLocks: Bool
    private let top = Mutex<(entry: UInt32, maxLevel: Int)>((0, 0))
    private let next = Atomic<Int>(1)
    private let shouldContinue: (@Sendable () -> Bool)?
    private let cancelled = Atomic<Bool>(false)
    /// Bit i set: node i is left out (no links, never reached; a row without this vector).
    private let skip: UnsafePointer<UInt64>?
    /// The first node not skipped (the initial entry); `count` when all are.
    private let first: Int
    /// Nodes 0..<seeded came with the seed graph (their links are in place).
    private let seeded: Int
    private let seedEntry: (entry: UInt32, maxLevel: Int)?

    /// Builds the graph of `count` vectors of `dim` floats (row i = node i).
    /// - Parameter skip: a bitmap of nodes to leave out (isolated, level 0); searches must exclude
    ///   them too (the entry point is one of them only when all are).
    /// - Parameter shouldContinue: asked every few hundred nodes; returning false abandons the build.
    /// - Returns: the graph, or nil when `shouldContinue` said stop.
    /// - Complexity: about O(count x ef_construct x m x log(count)) distance evaluations.
    /// - Parameter seed: a graph to start from, and for each of the first nodes the seed node it
    ///   is (`oldOf[i]`); seed nodes not listed were dropped. Its m must be `params.m`.
    package static func build(vectors: UnsafePointer<Float>, count: Int, dim: Int, distance: Distance, params: HNSWParams,
                              skip: UnsafePointer<UInt64>? = nil, seed: (graph: HNSWGraph, oldOf: [Int32])? = nil,
                              shouldContinue: (@Sendable () -> Bool)? = nil) -> HNSWGraph? {
        let builder = HNSWBuilder(vectors: vectors, count: count, dim: dim, distance: distance, params: params, skip: skip, seed: seed,
                                  shouldContinue: shouldContinue)
        return builder.run()
    }

    @inline(__always)
    private static func skipped(_ skip: UnsafePointer<UInt64>?, _ i: Int) -> Bool {
        guard let skip else { return false }
        return skip[i >> 6] & (1 << UInt64(i & 63)) != 0
    }

    private init(vectors: UnsafePointer<Float>, count: Int, dim: Int, distance: Distance, params: HNSWParams,
                 skip: UnsafePointer<UInt64>?, seed: (graph: HNSWGraph, oldOf: [Int32])?, shouldContinue: (@Sendable () -> Bool)?) {
        self.skip = skip
        first = (0..<count).first { !HNSWBuilder.skipped(skip, $0) } ?? count
        let seed = seed.flatMap { s in s.graph.m == max(2, params.m) && s.oldOf.count <= count && !s.oldOf.isEmpty ? s : nil }
        seeded = seed?.oldOf.count ?? 0
        self.vectors = vectors
        self.count = count
        self.dim = dim
        self.distance = DistanceFunction(distance)
        self.params = params
        self.shouldContinue = shouldContinue
        let m = max(2, params.m)
        // Levels first: they fix the layout. Level l with probability (1/m)^l.
        let mult = 1 / log(Double(m))
        var levelOf = [UInt8](repeating: 0, count: count)
        var blocks = 0
        for i in 0..<count {
            let u = Double(mix64(params.seed ^ (UInt64(i) &* 0x9E37_79B9_7F4A_7C15)) >> 11) / Double(1 << 53)
            var l = HNSWBuilder.skipped(skip, i) ? 0 : min(15, Int(-log(max(u, 1e-300)) * mult))
            if let seed, i < seeded, !HNSWBuilder.skipped(skip, i) { l = Int(seed.graph.levels[Int(seed.oldOf[i])]) }
            levelOf[i] = UInt8(l)
            blocks += l
        }
        layout = HNSWLayout(count: count, m: m, upperBlocks: blocks)
        raw = UnsafeMutableRawPointer.allocate(byteCount: layout.total, alignment: 64)
        raw.initializeMemory(as: UInt8.self, repeating: 0, count: layout.total)
        level0 = (raw + layout.level0).assumingMemoryBound(to: UInt32.self)
        levels = (raw + layout.levels).assumingMemoryBound(to: UInt8.self)
        upperOffsets = (raw + layout.upperOffsets).assumingMemoryBound(to: UInt32.self)
        upper = (raw + layout.upper).assumingMemoryBound(to: UInt32.self)
        var offset = 0
        for i in 0..<count {
            levels[i] = levelOf[i]
            upperOffsets[i] = UInt32(offset)
            offset += Int(levelOf[i])
        }
        // The seed's links, renumbered; links to nodes the merge dropped go.
        var entry: (entry: UInt32, maxLevel: Int)?
        if let seed {
            var newOf = [Int32](repeating: -1, count: seed.graph.count)
            for (i, old) in seed.oldOf.enumerated() { newOf[Int(old)] = Int32(i) }
            let g = seed.graph
            func copy(_ from: UnsafePointer<UInt32>, _ to: UnsafeMutablePointer<UInt32>) {
                var n = 0
                for j in 0..<Int(from[0]) {
                    let target = Int(from[1 + j])
                    guard target < newOf.count, newOf[target] >= 0 else { continue }
                    to[1 + n] = UInt32(newOf[target])
                    n += 1
                }
                to[0] = UInt32(n)
            }
            for i in 0..<seeded where !HNSWBuilder.skipped(skip, i) {
                let old = Int(seed.oldOf[i])
                copy(g.level0 + old * (g.m0 + 1), level0 + i * (layout.m0 + 1))
                for l in 1..<(Int(levelOf[i]) + 1) where levelOf[i] > 0 {
                    copy(g.upper + (Int(g.upperOffsets[old]) + l - 1) * (g.m + 1), upper + (Int(upperOffsets[i]) + l - 1) * (layout.m + 1))
                }
            }
            let e = Int(g.entryPoint)
            if e < newOf.count, newOf[e] >= 0, !HNSWBuilder.skipped(skip, Int(newOf[e])) {
                entry = (UInt32(newOf[e]), g.maxLevel)
            } else if let best = (0..<seeded).filter({ !HNSWBuilder.skipped(skip, $0) }).max(by: { levelOf[$0] < levelOf[$1] }) {
                entry = (UInt32(best), Int(levelOf[best]))
            }
        }
        seedEntry = entry
        let threads = params.threads > 0 ? params.threads : ProcessInfo.processInfo.activeProcessorCount
        useLocks = threads > 1 && count > 1000
        lockCount = useLocks ? 4096 : 1
        locks = .allocate(capacity: lockCount)
        for i in 0..<lockCount { pthread_mutex_init(locks + i, nil) }
    }

    deinit {
        for i in 0..<lockCount { pthread_mutex_destroy(locks + i) }
        locks.deallocate()
    }

    private func run() -> HNSWGraph? {
        if let seedEntry {
            next.store(seeded, ordering: .relaxed)
            top.withLock { $0 = seedEntry }
        } else if first < count {
            next.store(first + 1, ordering: .relaxed)
            top.withLock { $0 = (UInt32(first), Int(levels[first])) }
        }
        if seedEntry != nil ? seeded < count : first < count {
            let threads = useLocks ? max(1, params.threads > 0 ? params.threads : ProcessInfo.processInfo.activeProcessorCount) : 1
            if threads == 1 {
                worker()
            } else {
                DispatchQueue.concurrentPerform(iterations: threads) { _ in worker() }
            }
        }
        if cancelled.load(ordering: .relaxed) {
            raw.deallocate()
            return nil
        }
        let (entry, maxLevel) = top.withLock { $0 }
        raw.storeBytes(of: HNSWLayout.magic, toByteOffset: 0, as: UInt32.self)
        raw.storeBytes(of: HNSWLayout.version, toByteOffset: 4, as: UInt32.self)
        raw.storeBytes(of: UInt64(count), toByteOffset: 8, as: UInt64.self)
        raw.storeBytes(of: UInt32(layout.m), toByteOffset: 16, as: UInt32.self)
        raw.storeBytes(of: UInt32(layout.m0), toByteOffset: 20, as: UInt32.self)
        raw.storeBytes(of: UInt32(maxLevel), toByteOffset: 24, as: UInt32.self)
        raw.storeBytes(of: entry, toByteOffset: 28, as: UInt32.self)
        raw.storeBytes(of: UInt64(layout.upperBlocks), toByteOffset: 32, as: UInt64.self)
        let crc = CRC32C.update(0, UnsafeRawBufferPointer(start: raw + HNSWLayout.headerSize, count: layout.total - HNSWLayout.headerSize))
        raw.storeBytes(of: crc, toByteOffset: 40, as: UInt32.self)
        return HNSWGraph(raw: UnsafeRawPointer(raw), length: layout.total, mapped: false)
    }

    // MARK: insertion

    private struct Scratch {
        var visited: VisitedSet
        var frontier = CandidateHeap(max: false, capacity: 256)
        var results = CandidateHeap(max: true, capacity: 256)
        var list = [UInt32](repeating: 0, count: 1)
        var sorted: [Candidate] = []
        var selected: [Candidate] = []
    }

    private func worker() {
        var s = Scratch(visited: VisitedSet(capacity: count))
        s.list = [UInt32](repeating: 0, count: layout.m0 + 2)
        defer {
            s.visited.deallocate()
            s.frontier.deallocate()
            s.results.deallocate()
        }
        while true {
            let i = next.wrappingAdd(1, ordering: .relaxed).oldValue
            if i >= count { return }
            if i % 256 == 0, let shouldContinue, !shouldContinue() { cancelled.store(true, ordering: .relaxed) }
            if cancelled.load(ordering: .relaxed) { return }
            if HNSWBuilder.skipped(skip, i) { continue }
            insert(UInt32(i), &s)
        }
    }

    @inline(__always)
    private func vector(_ node: UInt32) -> UnsafePointer<Float> { vectors + Int(node) * dim }

    @inline(__always)
    private func links(_ node: UInt32, _ level: Int) -> UnsafeMutablePointer<UInt32> {
        level == 0 ? level0 + Int(node) * (layout.m0 + 1) : upper + (Int(upperOffsets[Int(node)]) + level - 1) * (layout.m + 1)
    }

    @inline(__always)
    private func lock(_ node: UInt32) { if useLocks { pthread_mutex_lock(locks + Int(node) % lockCount) } }

    @inline(__always)
    private func unlock(_ node: UInt32) { if useLocks { pthread_mutex_unlock(locks + Int(node) % lockCount) } }

    /// Copies a node's list at `level` into `s.list` (count first), under its lock.
    @inline(__always)
    private func readLinks(_ node: UInt32, _ level: Int, _ s: inout Scratch) -> Int {
        lock(node)
        let l = links(node, level)
        let n = Int(l[0])
        s.list.withUnsafeMutableBufferPointer { dst in
            for j in 0..<n { dst[j] = l[1 + j] }
        }
        unlock(node)
        return n
    }

    private func insert(_ q: UInt32, _ s: inout Scratch) {
        let level = Int(levels[Int(q)])
        let (entry, maxLevel) = top.withLock { $0 }
        let qv = vector(q)
        var cur = entry
        var curDist = distance(qv, vector(cur), dim)
        var l = maxLevel
        while l > level {
            var changed = true
            while changed {
                changed = false
                let n = readLinks(cur, l, &s)
                for j in 0..<n {
                    let nb = s.list[j]
                    let d = distance(qv, vector(nb), dim)
                    if d < curDist {
                        curDist = d
                        cur = nb
                        changed = true
                    }
                }
            }
            l -= 1
        }
        l = min(level, maxLevel)
        while l >= 0 {
            searchLayer(qv, entry: cur, entryDistance: curDist, level: l, &s)
            // Results, nearest first.
            s.sorted.removeAll(keepingCapacity: true)
            while !s.results.isEmpty { s.sorted.append(s.results.pop()) }
            s.sorted.reverse()
            if let best = s.sorted.first { cur = best.node; curDist = best.distance }
            selectNeighbors(&s, limit: layout.m)
            let mine = links(q, l)
            lock(q)
            mine[0] = UInt32(s.selected.count)
            for (j, c) in s.selected.enumerated() { mine[1 + j] = c.node }
            unlock(q)
            let cap = l == 0 ? layout.m0 : layout.m
            for c in s.selected { connect(c.node, to: q, distance: c.distance, level: l, cap: cap, &s) }
            l -= 1
        }
        if level > maxLevel {
            top.withLock { t in
                if level > t.maxLevel { t = (q, level) }
            }
        }
    }

    /// Beam search of width ef_construct at `level`; leaves the candidates in `s.results`.
    private func searchLayer(_ qv: UnsafePointer<Float>, entry: UInt32, entryDistance: Float, level: Int, _ s: inout Scratch) {
        let ef = params.efConstruct
        s.visited.reset(count: count)
        s.frontier.removeAll()
        s.results.removeAll()
        _ = s.visited.insert(entry)
        s.frontier.push(Candidate(distance: entryDistance, node: entry))
        s.results.push(Candidate(distance: entryDistance, node: entry))
        var bound = entryDistance
        while !s.frontier.isEmpty {
            let c = s.frontier.top
            if c.distance > bound && s.results.count >= ef { break }
            s.frontier.pop()
            if !s.frontier.isEmpty { cvq_prefetch(links(s.frontier.top.node, level)) }
            let n = readLinks(c.node, level, &s)
            if n > 0 {
                s.visited.prefetch(s.list[0])
                cvq_prefetch(vector(s.list[0]))
            }
            for j in 0..<n {
                let nb = s.list[j]
                if j + 1 < n {
                    s.visited.prefetch(s.list[j + 1])
                    cvq_prefetch(vector(s.list[j + 1]))
                }
                if !s.visited.insert(nb) { continue }
                let d = distance(qv, vector(nb), dim)
                if s.results.count < ef || d < bound {
                    s.frontier.push(Candidate(distance: d, node: nb))
                    if s.results.count < ef {
                        s.results.push(Candidate(distance: d, node: nb))
                    } else {
                        s.results.replaceTop(Candidate(distance: d, node: nb))
                    }
                    bound = s.results.top.distance
                }
            }
        }
    }

    /// hnswlib's heuristic: keep a candidate only if it is nearer to the base than to every kept one.
    /// Reads `s.sorted` (nearest first), writes `s.selected`.
    private func selectNeighbors(_ s: inout Scratch, limit: Int) {
        s.selected.removeAll(keepingCapacity: true)
        if s.sorted.count <= limit {
            s.selected.append(contentsOf: s.sorted)
            return
        }
        for c in s.sorted {
            if s.selected.count >= limit { break }
            let cv = vector(c.node)
            var good = true
            for kept in s.selected where distance(cv, vector(kept.node), dim) < c.distance {
                good = false
                break
            }
            if good { s.selected.append(c) }
        }
    }

    /// Adds `q` to `node`'s list at `level`, pruning with the heuristic when the list is full.
    private func connect(_ node: UInt32, to q: UInt32, distance dq: Float, level: Int, cap: Int, _ s: inout Scratch) {
        lock(node)
        defer { unlock(node) }
        let l = links(node, level)
        let n = Int(l[0])
        for j in 0..<n where l[1 + j] == q { return }
        if n < cap {
            l[1 + n] = q
            l[0] = UInt32(n + 1)
            return
        }
        let nv = vector(node)
        s.sorted.removeAll(keepingCapacity: true)
        s.sorted.append(Candidate(distance: dq, node: q))
        for j in 0..<n {
            let x = l[1 + j]
            s.sorted.append(Candidate(distance: distance(nv, vector(x), dim), node: x))
        }
        s.sorted.sort { $0.distance < $1.distance }
        selectNeighbors(&s, limit: cap)
        l[0] = UInt32(s.selected.count)
        for (j, c) in s.selected.enumerated() { l[1 + j] = c.node }
    }
}
