#!/usr/bin/env python3
"""Issue 17: read `consistency` on a replicated collection (release build, standard library only).

Three peers (`--peer-timeout 2`) hold DATASET's base vectors in 3 shards x 3 replicas, loaded
through `vq upsert --url` and indexed. One client sends the first 300 queries (ef 64, limit 10)
to peer A, one after another, with each consistency (1, 2, majority, quorum, all): reported are
p50, p99 and recall@10 against the ground truth. Then peer C is stopped (SIGSTOP: a stalled
replica the cluster has not marked Dead) and the same runs (30 queries each) report what was
answered, what failed (503 naming the replica) and the latencies, first with the collection's
default fan-out, then with `read_fan_out_delay_ms` 20 (a spare replica asked once 20 ms pass);
C is continued after.

With --healthy only the first part runs (about a minute), for repeated runs comparing builds.

Usage: Benchmarks/consistency.py [--healthy] [--vq PATH] [DATASET_DIR]   (default ../shared/data/minilm-20k)
"""
import argparse
import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import transfer as t  # the peer, call and vq helpers

CONSISTENCIES = ["1", "2", "majority", "quorum", "all"]


def run(port, consistency, queries, truth):
    lat, found, failed, errors = [], 0, 0, set()
    for i, q in enumerate(queries):
        s = time.perf_counter()
        st, r = t.call(port, "POST", f"/collections/m/points/query?consistency={consistency}",
                       {"query": q, "limit": 10, "params": {"hnsw_ef": 64}}, timeout=30)
        if st == 200:
            lat.append(time.perf_counter() - s)
            if truth:
                found += len({p["id"] for p in r["result"]["points"]} & set(truth[i][:10]))
        else:
            failed += 1
            errors.add(str(r)[:160])
    return {"consistency": consistency, "answered": len(lat), "failed": failed, "p50_ms": round(t.pct(lat, 50) * 1000, 2),
            "p99_ms": round(t.pct(lat, 99) * 1000, 2), "recall": round(found / (10 * len(lat)), 4) if truth and lat else None,
            "errors": sorted(errors)[:1]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dataset", nargs="?", default=t.ROOT + "/../shared/data/minilm-20k")
    ap.add_argument("--healthy", action="store_true", help="only the healthy runs (about a minute)")
    args = t.parse_args(ap)
    base = f"{args.dataset}/base.fvecs"
    dim = t.dim_of(base)
    (a, pa), (b, pb), (c, pc) = t.three_peers(["--peer-timeout", "2"])
    st, r = t.call(pa, "PUT", "/collections/m", {"vectors": {"size": dim, "distance": "Cosine"}, "shard_number": 3,
                                                  "replication_factor": 3})
    assert st == 200, r
    t.vq("upsert", "m", base, "--url", f"http://127.0.0.1:{pa}", "-q")
    for p in (pa, pb, pc):
        t.call(p, "POST", "/collections/m/optimize", timeout=600)
    queries = t.read_vecs(f"{args.dataset}/query.fvecs", 300)
    truth = t.read_vecs(f"{args.dataset}/groundtruth.ivecs", 300)
    healthy = [run(pa, cons, queries, truth) for cons in CONSISTENCIES]
    print(json.dumps({"healthy": healthy}), flush=True)
    if args.healthy:
        for h in healthy:
            print(f"| {h['consistency']} | {h['p50_ms']} ms | {h['p99_ms']} ms | {h['recall']} |")
        return
    c.send_signal(signal.SIGSTOP)
    try:
        stalled = [run(pa, cons, queries[:30], None) for cons in CONSISTENCIES]
        # The collection's read fan-out applies to these reads too: one more replica once 20 ms pass.
        st, r = t.call(pa, "PATCH", "/collections/m", {"params": {"read_fan_out_delay_ms": 20}})
        assert st == 200, r
        hedged = [run(pa, cons, queries[:30], None) for cons in CONSISTENCIES]
    finally:
        c.send_signal(signal.SIGCONT)
    print(json.dumps({"stalled": stalled, "hedged": hedged}))
    print()
    print("| consistency | p50 | p99 | recall@10 | peer C stopped: answered / failed | p50 | p99 | and read_fan_out_delay_ms 20: answered / failed | p50 | p99 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for h, s, f in zip(healthy, stalled, hedged):
        print(f"| {h['consistency']} | {h['p50_ms']} ms | {h['p99_ms']} ms | {h['recall']} | {s['answered']} / {s['failed']} "
              f"| {s['p50_ms']} ms | {s['p99_ms']} ms | {f['answered']} / {f['failed']} | {f['p50_ms']} ms | {f['p99_ms']} ms |")
    for s in stalled:
        if s["errors"]:
            print(f"{s['consistency']}: {s['errors'][0]}")


if __name__ == "__main__":
    t.run_main(main)
