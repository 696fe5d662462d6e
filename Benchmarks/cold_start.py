#!/usr/bin/env python3
"""Wall time of one `vq search` process on an existing data directory (open + one query + exit).

Usage: python3 Benchmarks/cold_start.py DATA_DIR COLLECTION QUERY.fvecs [RUNS]
"""
import statistics
import subprocess
import sys
import time

import numpy as np

VQ = __file__.rsplit("/Benchmarks/", 1)[0] + "/.build/release/vq"
data, name, queries = sys.argv[1], sys.argv[2], sys.argv[3]
runs = int(sys.argv[4]) if len(sys.argv) > 4 else 21
raw = np.fromfile(queries, dtype="<i4")
dim = int(raw[0])
q = "[" + ",".join(map(str, raw.reshape(-1, dim + 1)[0, 1:].view("<f4").tolist())) + "]"
times = []
for _ in range(runs):
    t = time.perf_counter()
    subprocess.run([VQ, "search", name, "--vector", q, "--data-dir", data], check=True, capture_output=True)
    times.append(time.perf_counter() - t)
print(f"one `vq search` process: median {statistics.median(times) * 1000:.1f} ms, max {max(times) * 1000:.1f} ms ({runs} runs)")
