// Prometheus text for GET /metrics: request counts and latency histograms per
// route, and per-collection gauges (points, segments, queue depth, unindexed
// points, indexing rate) for the collections the server has open.

import CVQSupport
import Foundation

final class Metrics: @unchecked Sendable {
    static let buckets: [Double] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]

    private struct Route {
        var count = 0
        var errors = 0
        var sum = 0.0
        var buckets = [Int](repeating: 0, count: Metrics.buckets.count)
    }

    /// Per route (in `names` order): errors, nanoseconds, then requests per bucket
    /// (the first bucket each fits, the last past every bound; cumulated when rendered, their sum
    /// the count). Relaxed atomic adds: requests on every worker count without a lock or an
    /// allocation.
    private static let slots = 2 + buckets.count + 1
    private let names: [String]
    private let slot: [String: Int]
    private let counters: UnsafeMutablePointer<Int64>

    /// - Parameter routes: every route name a request can be recorded under ("other" is added).
    init(routes: [String]) {
        names = Array(Set(routes + ["other"])).sorted()
        slot = Dictionary(uniqueKeysWithValues: names.enumerated().map { ($0.element, $0.offset) })
        counters = .allocate(capacity: names.count * Metrics.slots)
        counters.initialize(repeating: 0, count: names.count * Metrics.slots)
    }

    deinit { counters.deallocate() }

    func record(route: String, status: Int, seconds: Double) {
        let c = counters + (slot[route] ?? slot["other"]!) * Metrics.slots
        if status >= 400 { cvq_atomic_add(c, 1) }
        cvq_atomic_add(c + 1, Int64(max(0, min(seconds, 1e9)) * 1e9))
        let bucket = Metrics.buckets.firstIndex { seconds <= $0 } ?? Metrics.buckets.count
        cvq_atomic_add(c + 2 + bucket, 1)
    }

    /// The routes that have had requests, by name.
    private var snapshot: [(key: String, value: Route)] {
        names.enumerated().compactMap { i, name in
            let c = counters + i * Metrics.slots
            // The count is the buckets' sum (the last slot is past every bound), read once: no
            // bucket can then exceed it, as Prometheus requires, while requests are counted.
            var r = Route(count: 0, errors: Int(cvq_atomic_load(c)), sum: Double(cvq_atomic_load(c + 1)) / 1e9)
            var running = 0
            for b in 0...Metrics.buckets.count {
                running += Int(cvq_atomic_load(c + 2 + b))
                if b < Metrics.buckets.count { r.buckets[b] = running }
            }
            guard running > 0 else { return nil }
            r.count = running
            return (name, r)
        }
    }

    func render(engine: Engine, router: ClusterRouter?) -> String {
        var s = "# HELP vq_http_requests_total Requests by route.\n# TYPE vq_http_requests_total counter\n"
        let snapshot = self.snapshot
        for (name, r) in snapshot {
            s += "vq_http_requests_total{route=\"\(name)\"} \(r.count)\n"
            s += "vq_http_request_errors_total{route=\"\(name)\"} \(r.errors)\n"
        }
        s += "# HELP vq_http_request_duration_seconds Request latency by route.\n# TYPE vq_http_request_duration_seconds histogram\n"
        for (name, r) in snapshot {
            for (i, b) in Metrics.buckets.enumerated() {
                s += "vq_http_request_duration_seconds_bucket{route=\"\(name)\",le=\"\(b)\"} \(r.buckets[i])\n"
            }
            s += "vq_http_request_duration_seconds_bucket{route=\"\(name)\",le=\"+Inf\"} \(r.count)\n"
            s += "vq_http_request_duration_seconds_sum{route=\"\(name)\"} \(r.sum)\n"
            s += "vq_http_request_duration_seconds_count{route=\"\(name)\"} \(r.count)\n"
        }
        s += "# TYPE vq_collection_points gauge\n# TYPE vq_collection_segments gauge\n# TYPE vq_update_queue_depth gauge\n"
        s += "# TYPE vq_unindexed_points gauge\n# TYPE vq_indexing_rate_points_per_second gauge\n"
        // Only collections already open: a scrape must not open (and replay) every collection.
        for (name, c) in engine.openCollections() {
            let st = c.status
            s += "vq_collection_points{collection=\"\(name)\"} \(st.points)\n"
            s += "vq_collection_segments{collection=\"\(name)\"} \(st.segmentCount)\n"
            s += "vq_update_queue_depth{collection=\"\(name)\"} \(st.queueDepth)\n"
            s += "vq_unindexed_points{collection=\"\(name)\"} \(st.unindexedPoints)\n"
            s += "vq_indexing_rate_points_per_second{collection=\"\(name)\"} \(st.indexingRate)\n"
        }
        if let router {
            let r = router.readStats
            func counter(_ name: String, _ help: String, _ value: Int) {
                s += "# HELP \(name) \(help)\n# TYPE \(name) counter\n\(name) \(value)\n"
            }
            counter("vq_shard_reads_total", "Shard reads of searches (one per shard per search).", r.shardReads)
            counter("vq_shard_extra_reads_total", "Reads beyond one per shard: fan-outs, read_fan_out_factor, retries.", r.extraReads)
            counter("vq_read_fan_outs_total", "Extra reads started because read_fan_out_delay_ms passed.", r.fanOuts)
            counter("vq_read_fan_out_wins_total", "Fan-outs whose extra read answered first.", r.fanOutWins)
            s += "# HELP vq_peer_read_seconds Remote shard reads by peer: count and total seconds.\n# TYPE vq_peer_read_seconds summary\n"
            s += "# HELP vq_peer_read_ewma_seconds Recent remote shard read latency by peer (EWMA).\n# TYPE vq_peer_read_ewma_seconds gauge\n"
            let ewma = router.peerLatency
            for peer in r.peerReads.keys.sorted() {
                s += "vq_peer_read_seconds_count{peer=\"\(peer)\"} \(r.peerReads[peer] ?? 0)\n"
                s += "vq_peer_read_seconds_sum{peer=\"\(peer)\"} \(r.peerSeconds[peer] ?? 0)\n"
                s += "vq_peer_read_ewma_seconds{peer=\"\(peer)\"} \(ewma[peer] ?? 0)\n"
            }
        }
        return s
    }
}
