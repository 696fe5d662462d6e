#!/usr/bin/env python3
"""hnswlib on the same data, same machine, same threads: the reference for `vq bench`.

Usage: python3 Benchmarks/hnswlib_compare.py BASE.fvecs QUERY.fvecs GT.ivecs [--threads N] [--ef 16,32,...] [--space ip|l2] [--json]
   or: python3 Benchmarks/hnswlib_compare.py --synthetic N,DIM [...]  (same generator as `vq bench --synthetic`)
Needs `pip install hnswlib numpy` (Benchmarks/setup-venv.sh makes a venv with both).
Reports build time (M=16, ef_construction=100), and per ef: recall@10 and
single-thread QPS (one batched knn_query call with num_threads=1, so no
per-query Python overhead).
"""
import argparse
import json
import time

import hnswlib
import numpy as np


def fvecs(path):
    raw = np.fromfile(path, dtype="<i4")
    dim = int(raw[0])
    return raw.reshape(-1, dim + 1)[:, 1:].view("<f4").copy()


def ivecs(path):
    raw = np.fromfile(path, dtype="<i4")
    k = int(raw[0])
    return raw.reshape(-1, k + 1)[:, 1:]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("files", nargs="*")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--ef", default="10,16,24,32,48,64,96,128")
    p.add_argument("--space", default="ip")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    base, queries, gt = fvecs(a.files[0]), fvecs(a.files[1]), ivecs(a.files[2])
    threads = a.threads or -1
    n, dim = base.shape
    index = hnswlib.Index(space=a.space, dim=dim)
    t = time.perf_counter()
    index.init_index(max_elements=n, M=16, ef_construction=100, random_seed=100)
    index.add_items(base, np.arange(n), num_threads=threads)
    build = time.perf_counter() - t
    rows = []
    for ef in [int(x) for x in a.ef.split(",")]:
        index.set_ef(max(ef, a.k))
        index.knn_query(queries[:50], k=a.k, num_threads=1)
        best = None
        for _ in range(3):
            t = time.perf_counter()
            labels, _ = index.knn_query(queries, k=a.k, num_threads=1)
            dt = time.perf_counter() - t
            best = dt if best is None else min(best, dt)
        recall = np.mean([len(set(labels[i]) & set(gt[i][: a.k])) / a.k for i in range(len(queries))])
        rows.append({"ef": ef, "recall": round(float(recall), 4), "qps_1": round(len(queries) / best)})
    out = {"engine": "hnswlib", "build_seconds": round(build, 3), "threads": a.threads, "rows": rows}
    if a.json:
        print(json.dumps(out))
    else:
        print(f"hnswlib build {build:.3f}s (threads={a.threads or 'all'})")
        for r in rows:
            print(f"ef {r['ef']:4d} recall@{a.k} {r['recall']:.4f} qps(1 thread) {r['qps_1']}")


if __name__ == "__main__":
    main()
