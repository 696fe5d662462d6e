#!/usr/bin/env python3
"""vq against hnswlib on the same data, same machine, same threads, in one run.

Usage: Benchmarks/.venv/bin/python Benchmarks/compare.py DATASET_DIR [--threads N] [--ef LIST] [--space ip|l2]
DATASET_DIR holds base.fvecs, query.fvecs, groundtruth.ivecs (`vq bench --synthetic N,DIM --save-dataset DIR`
makes one). Builds with M=16, ef_construction=100 in both. Prints both sweeps and, at the smallest ef where each
reaches recall@10 >= 0.95, the single-thread QPS ratio; and the build-time ratio.
"""
import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
VQ = os.path.join(HERE, "..", ".build", "release", "vq")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("dataset")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--ef", default="16,24,28,32,34,36,38,40,44,48,56,64,96,128")
    p.add_argument("--space", default="ip", help="ip (cosine/dot data, e.g. minilm) or l2")
    p.add_argument("--default-path", action="store_true", help="vq builds as a user does (vq bench --default-path)")
    p.add_argument("--quantization", help="vq quantizes (vq bench --quantization int8)")
    p.add_argument("--oversampling", help="with --quantization: vq re-scores this many times k")
    a = p.parse_args()
    d = a.dataset
    files = [os.path.join(d, f) for f in ("base.fvecs", "query.fvecs", "groundtruth.ivecs")]
    distance = "euclid" if a.space == "l2" else "dot"
    vq = json.loads(subprocess.run([VQ, "bench", d, "--json", "--distance", distance, "--threads", str(a.threads), "--ef", a.ef]
                                   + (["--default-path"] if a.default_path else [])
                                   + (["--quantization", a.quantization] if a.quantization else [])
                                   + (["--oversampling", a.oversampling] if a.oversampling else []),
                                   check=True, capture_output=True, text=True).stdout)
    hn = json.loads(subprocess.run([sys.executable, os.path.join(HERE, "hnswlib_compare.py"), *files, "--json", "--space", a.space,
                                    "--threads", str(a.threads), "--ef", a.ef], check=True, capture_output=True, text=True).stdout)

    def first95(rows, qps):
        for r in rows:
            if r["recall"] >= 0.95:
                return r["ef"], r["recall"], r[qps]
        return None

    print(f"dataset {os.path.basename(os.path.normpath(d))}: {vq['count']} x {vq['dim']}, {vq['queries']} queries, "
          f"threads {a.threads}, vq kernels {vq['kernels']}")
    print(f"build: vq {vq['build_seconds']:.3f} s (ingest {vq['ingest_seconds']:.3f} + index {vq['index_seconds']:.3f}, "
          f"{vq.get('segments', 1)} segment(s){', default path' if a.default_path else ''}), "
          f"hnswlib {hn['build_seconds']:.3f} s -> vq/hnswlib {vq['build_seconds'] / hn['build_seconds']:.2f}x time")
    print("  ef   vq recall   vq QPS(1)   hnswlib recall   hnswlib QPS(1)")
    for v, h in zip(vq["rows"], hn["rows"]):
        print(f"{v['ef']:4d}   {v['recall']:.4f}   {v['qps_1']:9d}   {h['recall']:.4f}           {h['qps_1']:9d}")
    fv, fh = first95(vq["rows"], "qps_1"), first95(hn["rows"], "qps_1")
    if fv and fh:
        print(f"smallest ef with recall@10 >= 0.95: vq ef {fv[0]} ({fv[1]:.4f}) {fv[2]} QPS, hnswlib ef {fh[0]} ({fh[1]:.4f}) "
              f"{fh[2]} QPS -> vq/hnswlib {fv[2] / fh[2]:.2f}x")


if __name__ == "__main__":
    main()
