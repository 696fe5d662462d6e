#!/usr/bin/env python3
"""Issue 2's benchmarks on minilm-20k: ingest, exact search, cold start.

Usage: python3 Benchmarks/engine_foundation.py [DATA_DIR_OF_MINILM]   (default ../shared/data/minilm-20k)
Needs numpy (for the JSONL conversion and the bandwidth reference) and a
release build (`swift build -c release`). Prints a Markdown table.
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fvecs_to_jsonl import convert  # noqa: E402  (the JSONL the benchmark ingests)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VQ = os.path.join(ROOT, ".build", "release", "vq")
DATA = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "..", "shared", "data", "minilm-20k")
RUNS = 9


def vq(*args, stdin=None):
    return subprocess.run([VQ, *args], check=True, capture_output=True, text=True, input=stdin)


def wall(*args):
    t = time.perf_counter()
    vq(*args)
    return time.perf_counter() - t


def main():
    base = os.path.join(DATA, "base.fvecs")
    queries = os.path.join(DATA, "query.fvecs")
    raw = np.fromfile(base, dtype="<i4")
    dim = int(raw[0])
    vectors = raw.reshape(-1, dim + 1)[:, 1:].view("<f4")
    n = len(vectors)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        jsonl = os.path.join(tmp, "base.jsonl")
        convert(base, jsonl)

        for label, src in (("JSONL", jsonl), (".fvecs", base)):
            rates = []
            for r in range(RUNS):
                d = os.path.join(tmp, f"ingest-{label}-{r}")
                # Ingest alone: indexing is measured by Benchmarks/indexing.sh.
                vq("create-collection", "m", "--dim", str(dim), "--indexing-threshold", "0", "--data-dir", d)
                # Start every run from a quiet disk: earlier runs' writeback otherwise lands in this one.
                os.sync()
                time.sleep(0.5)
                summary = json.loads(vq("upsert", "m", src, "--no-optimize", "--data-dir", d, "-q").stdout)
                rates.append(summary["points_per_second"])
            rows.append((f"ingest {label} -> durable (points/s, median of {RUNS}; slowest, fastest)",
                         f"{statistics.median(rates):,.0f} ({min(rates):,.0f}, {max(rates):,.0f})"))

        d = os.path.join(tmp, f"ingest-.fvecs-0")
        one = "[" + ",".join(map(str, vectors[0].tolist())) + "]"
        cold = sorted(wall("search", "m", "--vector", one, "--exact", "--data-dir", d) for _ in range(21))
        all_q = min(wall("search", "m", "--queries", queries, "--exact", "--data-dir", d) for _ in range(RUNS))
        nq = os.path.getsize(queries) // (4 + 4 * dim)
        per_query = (all_q - cold[0]) / (nq - 1)
        rows.append(("cold start: one `vq search` process (ms, median of 21)", f"{cold[10] * 1000:.1f}"))
        rows.append((f"exact search, 1 thread, {n} x {dim} (ms/query)", f"{per_query * 1000:.3f}"))

        scanned = n * dim * 4
        # Read bandwidth, one thread: numpy's float32 sum streams the array once.
        for label, size in (("same working set", scanned), ("1 GiB (DRAM)", 1 << 30)):
            a = np.ones(size // 4, dtype=np.float32)
            a.sum()
            reps = max(3, int(2e9 // size))
            t = time.perf_counter()
            for _ in range(reps):
                a.sum()
            bw = size * reps / (time.perf_counter() - t)
            bound = scanned / bw
            rows.append((f"read bandwidth, {label} (GB/s)", f"{bw / 1e9:.1f}"))
            rows.append((f"exact search / bound at that bandwidth ({bound * 1000:.3f} ms)", f"{per_query / bound:.2f}x"))
    print("| measure | value |\n|---|---|")
    for k, v in rows:
        print(f"| {k} | {v} |")


if __name__ == "__main__":
    main()
