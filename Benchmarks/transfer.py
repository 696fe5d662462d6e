#!/usr/bin/env python3
"""Issue 17: whole-shard copies and anti-entropy on loopback (release build, standard library only).

For each copy method (`--shard-transfer records`, every point sent and indexed again by the
replica; `files`, the segment files with their HNSW graphs):
  1. peer A holds one shard of DATASET's base vectors (indexed, through `vq upsert --url`);
  2. peer B joins; `replicate_shard` copies the shard to B while one client upserts 10-point
     batches (wait=true) to the collection: copy time, MB/s (the shard's segment files over the
     copy time, the same numerator for both methods), the writes acknowledged during the copy and
     their worst latency, and the time until B's copy is indexed (searchable by graph);
  3. `vq cluster repair` on equal replicas (digests only), then after B's copy was changed behind
     the cluster's back (B stopped; 1,000 points upserted and 500 deleted in its data directory,
     embedded; B restarted): points repaired, time, and how long writes were held.

Usage: Benchmarks/transfer.py [DATASET_DIR]   (default /tmp/syn200k: vq bench --synthetic 200000,384
       --save-dataset /tmp/syn200k); prints a table for BENCHMARKS.md.
"""
import json
import os
import re
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vqhttp import call, wait_until  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VQ = ROOT + "/.build/release/vq"
DATASET = sys.argv[1] if len(sys.argv) > 1 else "/tmp/syn200k"
work = tempfile.mkdtemp(prefix="vq-transfer-bench-")
procs = []
ENV = {k: v for k, v in os.environ.items() if not k.startswith("VQ_")}


def start(args, name, port=0):
    log = open(f"{work}/{name}.log", "a+")
    start_at = log.tell()
    p = subprocess.Popen([VQ] + args + ["--listen", f"127.0.0.1:{port}", "--data-dir", f"{work}/{name}"], stderr=log, env=ENV)
    for _ in range(400):
        time.sleep(0.05)
        log.seek(start_at)
        m = re.search(r"listening address=\"?(?:http://)?127\.0\.0\.1:(\d+)", log.read())
        if m:
            procs.append(p)
            return p, int(m.group(1))
    p.kill()
    raise SystemExit(f"{name} did not start; see {work}/{name}.log")


def stop(p):
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=120)
    procs.remove(p)


def parse_args(ap):
    """Parses a benchmark's arguments, adding `--vq PATH` (default: the release build), which
    the peers it starts then run."""
    global VQ
    ap.add_argument("--vq", default=VQ)
    args = ap.parse_args(sys.argv[1:])
    VQ = os.path.abspath(args.vq)
    return args


def three_peers(extra=()):
    """Starts peers a (founding), b and c (joining), each with the server flags `extra`, and waits
    for three voters: [(process, port)]."""
    a, pa = start(["serve", *extra], "a")
    wait_until(lambda: call(pa, "GET", "/cluster")[1]["result"]["raft_info"]["role"] == "Leader", 30)
    secret = open(f"{work}/a/cluster/secret").read().strip()
    peers = [(a, pa)] + [start(["join", f"http://127.0.0.1:{pa}", "--cluster-secret", secret, *extra], name) for name in ("b", "c")]
    wait_until(lambda: len(call(pa, "GET", "/cluster")[1]["result"]["raft_info"]["voters"]) == 3, 30)
    return peers


def run_main(main):
    """Runs a benchmark's `main`, killing every peer it started whatever happens (a paused one
    is resumed first, so it can die)."""
    try:
        main()
    finally:
        for p in list(procs):
            p.send_signal(signal.SIGCONT)
            p.kill()


def vq(*args, stdin=None):
    r = subprocess.run([VQ] + list(args), input=stdin, capture_output=True, env=ENV)
    if r.returncode != 0:
        raise SystemExit(f"vq {' '.join(args)} failed: {r.stderr.decode()[-2000:]}")
    return r.stdout.decode()


def dim_of(fvecs):
    with open(fvecs, "rb") as f:
        return struct.unpack("<i", f.read(4))[0]


def read_vecs(path, n):
    """The first `n` rows of an .fvecs (floats) or .ivecs (ints) file, as lists."""
    out = []
    with open(path, "rb") as f:
        while len(out) < n:
            head = f.read(4)
            if not head:
                break
            d = struct.unpack("<i", head)[0]
            out.append(list(struct.unpack(f"<{d}{'i' if path.endswith('ivecs') else 'f'}", f.read(4 * d))))
    return out


def pct(xs, p):
    """The p-th percentile of `xs` (0 when empty)."""
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))] if xs else 0


def tree_bytes(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


def run(method):
    base = f"{DATASET}/base.fvecs"
    a, pa = start(["serve", "--shard-transfer", method], f"a-{method}")
    wait_until(lambda: call(pa, "GET", "/cluster")[1]["result"]["raft_info"]["role"] == "Leader", 30)
    dim = dim_of(base)
    st, r = call(pa, "PUT", "/collections/t", {"vectors": {"size": dim, "distance": "Cosine"}, "shard_number": 1})
    assert st == 200, r
    t0 = time.time()
    vq("upsert", "t", base, "--url", f"http://127.0.0.1:{pa}", "-q")
    load = time.time() - t0
    points = call(pa, "POST", "/collections/t/points/count", {"exact": True})[1]["result"]["count"]
    secret = open(f"{work}/a-{method}/cluster/secret").read().strip()
    b, pb = start(["join", f"http://127.0.0.1:{pa}", "--cluster-secret", secret, "--shard-transfer", method], f"b-{method}")
    info = call(pb, "GET", "/cluster")[1]["result"]
    bid = info["peer_id"]
    wait_until(lambda: len(call(pa, "GET", "/cluster")[1]["result"]["raft_info"]["voters"]) == 2, 60)
    shard_bytes = tree_bytes(f"{work}/a-{method}/collections/t/shards/0/segments")

    # Writes during the copy.
    stop_writer = threading.Event()
    latencies = []
    next_id = [10_000_000]

    def writer():
        vec = [0.01 * (i % 7) for i in range(dim)]
        while not stop_writer.is_set():
            ids = list(range(next_id[0], next_id[0] + 10))
            next_id[0] += 10
            t = time.time()
            st, _ = call(pa, "PUT", "/collections/t/points?wait=true", {"points": [{"id": i, "vector": vec} for i in ids]})
            latencies.append((t, time.time() - t, st))

    w = threading.Thread(target=writer)
    w.start()
    time.sleep(1)
    t0 = time.time()
    st, r = call(pa, "POST", "/collections/t/cluster", {"replicate_shard": {"shard_id": 0, "to_peer_id": bid}})
    t1 = time.time()
    assert st == 200, r
    # Until B's own copy is indexed (its indexed_vectors_count counts its segments).
    def indexed():
        return call(pb, "GET", "/collections/t")[1]["result"]["indexed_vectors_count"] >= points
    wait_until(indexed, 3600, 0.05)
    ready = time.time() - t0
    time.sleep(1)
    stop_writer.set()
    w.join()
    copy = t1 - t0
    during = [l for (t, l, s) in latencies if t0 <= t <= t1 and s == 200]
    before = [l for (t, l, s) in latencies if t0 - 1 <= t < t0 and s == 200]
    overlapping = [l for (t, l, s) in latencies if t + l >= t0 and t <= t1]
    failed = sum(1 for (_, _, s) in latencies if s != 200)

    # Anti-entropy on equal replicas.
    t2 = time.time()
    out = json.loads(vq("cluster", "repair", "t", "--url", f"http://127.0.0.1:{pa}", "-q"))
    equal_repair = time.time() - t2
    equal_rows = out["shards"][0]["replicas"]

    # B changed behind the cluster's back, then repaired.
    stop(b)
    extra = "".join(json.dumps({"id": 20_000_000 + i, "vector": [0.5] * dim}) + "\n" for i in range(1000)).encode()
    vq("upsert", "t", "-", "--data-dir", f"{work}/b-{method}", "-q", "--no-optimize", stdin=extra)
    vq("delete", "t", "--ids", ",".join(str(i) for i in range(0, 1000, 2)), "--data-dir", f"{work}/b-{method}", "-q")
    b, pb = start(["serve", "--shard-transfer", method], f"b-{method}", pb)
    wait_until(lambda: "Active" in json.dumps(call(pa, "GET", "/collections/t/cluster")[1]), 60)
    t3 = time.time()
    out = json.loads(vq("cluster", "repair", "t", "--url", f"http://127.0.0.1:{pa}", "-q"))
    diverged_repair = time.time() - t3
    row = out["shards"][0]["replicas"][0]
    # Equal afterwards.
    again = json.loads(vq("cluster", "repair", "t", "--url", f"http://127.0.0.1:{pa}", "-q"))["shards"][0]["replicas"][0]
    for p in list(procs):
        stop(p)
    return {
        "method": method, "points": points, "load_s": load, "shard_mb": shard_bytes / 1e6, "copy_s": copy,
        "mb_s": shard_bytes / 1e6 / copy, "ready_s": ready, "writes_during": len(during),
        "writes_per_s_before": len(before), "writes_per_s_during": len(during) / copy,
        "worst_write_s": max(overlapping) if overlapping else 0, "failed_writes": failed,
        "repair_equal_s": equal_repair, "equal_differing": equal_rows[0].get("differing_buckets"),
        "repair_s": diverged_repair, "repaired_upserted": row.get("upserted"), "repaired_deleted": row.get("deleted"),
        "differing_buckets": row.get("differing_buckets"), "held_s": out["shards"][0]["writes_held_seconds"],
        "after_differing": again.get("differing_buckets"),
    }


def main():
    try:
        results = [run(m) for m in ("records", "files")]
    finally:
        for p in procs:
            p.kill()
    for r in results:
        print(json.dumps(r))
    rec, fil = results
    print()
    print(f"{rec['points']} points x {dim_of(DATASET + '/base.fvecs')}, shard segment files {fil['shard_mb']:.0f} MB")
    print("| copy method | copy | MB/s | until the copy is indexed | writes acknowledged during the copy | writes/s during (the second before) | worst write latency |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['method']} | {r['copy_s']:.2f} s | {r['mb_s']:.0f} | {r['ready_s']:.2f} s | {r['writes_during']} "
              f"| {r['writes_per_s_during']:.0f} ({r['writes_per_s_before']}) | {r['worst_write_s']:.2f} s |")
    print(f"files vs records: copy {rec['copy_s'] / fil['copy_s']:.1f}x faster, indexed copy {rec['ready_s'] / fil['ready_s']:.1f}x sooner")
    print()
    print("| anti-entropy | time | result |")
    print("|---|---|---|")
    for r in results:
        print(f"| equal replicas ({r['method']} copy) | {r['repair_equal_s']:.2f} s | {r['equal_differing']} differing buckets |")
        print(f"| 1,000 extra + 500 missing on the replica | {r['repair_s']:.2f} s | {r['differing_buckets']} buckets differed; "
              f"{r['repaired_upserted']} upserted, {r['repaired_deleted']} deleted; writes held {r['held_s']:.3f} s; "
              f"after: {r['after_differing']} differing |")


if __name__ == "__main__":
    main()
