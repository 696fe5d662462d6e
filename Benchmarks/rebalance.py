#!/usr/bin/env python3
"""Issue 17: rebalancing onto a new peer while serving (release build, standard library only).

Peers A and B hold a 6-shard collection (replication_factor 1: three shards each) of DATASET's
base vectors, loaded through `vq upsert --url` and indexed. Peer C joins; while one client upserts
10-point batches (wait=true) through A and another searches (ef 64, limit 10) through B,
`vq cluster rebalance` moves replicas onto C. Reported: the moves, their time, the bytes moved
(the moved shards' segment files) and MB/s, every write and search answered or failed, and the
worst and p99 latencies of each during the rebalance against the same clients before it.

Usage: Benchmarks/rebalance.py [DATASET_DIR]   (default /tmp/syn200k)
"""
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import transfer as t  # the peer, call and vq helpers

DATASET = sys.argv[1] if len(sys.argv) > 1 else "/tmp/syn200k"


def main():
    base = f"{DATASET}/base.fvecs"
    dim = t.dim_of(base)
    a, pa = t.start(["serve"], "a")
    t.wait_until(lambda: t.call(pa, "GET", "/cluster")[1]["result"]["raft_info"]["role"] == "Leader", 30)
    secret = open(f"{t.work}/a/cluster/secret").read().strip()
    b, pb = t.start(["join", f"http://127.0.0.1:{pa}", "--cluster-secret", secret], "b")
    t.wait_until(lambda: len(t.call(pa, "GET", "/cluster")[1]["result"]["raft_info"]["voters"]) == 2, 60)
    st, r = t.call(pa, "PUT", "/collections/r", {"vectors": {"size": dim, "distance": "Cosine"}, "shard_number": 6})
    assert st == 200, r
    t.vq("upsert", "r", base, "--url", f"http://127.0.0.1:{pa}", "-q")
    points = t.call(pa, "POST", "/collections/r/points/count", {"exact": True})[1]["result"]["count"]
    c, pc = t.start(["join", f"http://127.0.0.1:{pa}", "--cluster-secret", secret], "c")
    t.wait_until(lambda: len(t.call(pa, "GET", "/cluster")[1]["result"]["raft_info"]["voters"]) == 3, 60)
    qs = t.read_vecs(f"{DATASET}/query.fvecs", 200)
    log = []  # (kind, start, seconds, ok)
    stop = threading.Event()

    def writer():
        vec = [0.01 * (i % 7) for i in range(dim)]
        n = 50_000_000
        while not stop.is_set():
            s = time.time()
            try:
                st, _ = t.call(pa, "PUT", "/collections/r/points?wait=true", {"points": [{"id": n + i, "vector": vec} for i in range(10)]}, timeout=120)
            except OSError:
                st = 0
            log.append(("write", s, time.time() - s, st == 200))
            n += 10

    def searcher():
        i = 0
        while not stop.is_set():
            s = time.time()
            try:
                st, _ = t.call(pb, "POST", "/collections/r/points/query", {"query": qs[i % len(qs)], "limit": 10, "params": {"hnsw_ef": 64}}, timeout=120)
            except OSError:
                st = 0
            log.append(("search", s, time.time() - s, st == 200))
            i += 1

    threads = [threading.Thread(target=writer), threading.Thread(target=searcher)]
    for th in threads:
        th.start()
    time.sleep(5)  # the same clients before the rebalance
    before = {f"{d}/collections/r/shards/{s}": t.tree_bytes(f"{t.work}/{d}/collections/r/shards/{s}/segments")
              for d in ("a", "b") for s in range(6)}
    t0 = time.time()
    out = json.loads(t.vq("cluster", "rebalance", "--url", f"http://127.0.0.1:{pa}", "-q"))
    t1 = time.time()
    time.sleep(2)
    stop.set()
    for th in threads:
        th.join()
    moves = out["moves"]
    ids = {t.call(p, "GET", "/cluster")[1]["result"]["peer_id"]: name for p, name in ((pa, "a"), (pb, "b"), (pc, "c"))}
    moved_bytes = sum(before.get(f"{ids[m['from_peer_id']]}/collections/r/shards/{m['shard_id']}", 0) for m in moves)
    counts = [t.call(p, "POST", "/collections/r/points/count", {"exact": True})[1]["result"]["count"] for p in (pa, pb, pc)]
    for p in list(t.procs):
        t.stop(p)

    def summary(kind, lo, hi):
        xs = [(l, ok) for (k, s, l, ok) in log if k == kind and lo <= s < hi]
        lat = [l for l, ok in xs if ok]
        return {"answered": len(lat), "failed": sum(1 for _, ok in xs if not ok), "p50_ms": round(t.pct(lat, 50) * 1000, 1),
                "p99_ms": round(t.pct(lat, 99) * 1000, 1), "worst_ms": round(max(lat, default=0) * 1000, 1)}

    report = {
        "points": points, "moves": len(moves), "seconds": round(t1 - t0, 2), "moved_mb": round(moved_bytes / 1e6, 1),
        "mb_s": round(moved_bytes / 1e6 / (t1 - t0), 1), "counts_after": counts,
        "writes_before": summary("write", t0 - 5, t0), "writes_during": summary("write", t0, t1),
        "searches_before": summary("search", t0 - 5, t0), "searches_during": summary("search", t0, t1),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    t.run_main(main)
