#!/usr/bin/env python3
"""Issue 5's cluster benchmarks on loopback (release build, wrk from Debian):

  1. search throughput: 3 peers, minilm-20k in 3 shards x 2 replicas, against one peer with the
     same data in 3 shards; wrk, 8 connections, POST /points/query (ef 64, limit 10)
  2. write latency: single-point upserts (wait=true), one client, replication 1 vs 2 vs 3
  3. failover: SIGKILL the Raft leader, then time until a metadata change (a collection create,
     asked of a survivor) commits

Usage: Benchmarks/cluster.py [MINILM_DIR]     (numpy needed: Benchmarks/setup-venv.sh)
"""
import http.client
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vqhttp import call, wait_until  # noqa: E402

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VQ = ROOT + "/.build/release/vq"
MINILM = sys.argv[1] if len(sys.argv) > 1 else ROOT + "/../shared/data/minilm-20k"
work = tempfile.mkdtemp(prefix="vq-cluster-bench-")
procs = []


def start(args, name):
    log = open(f"{work}/{name}.log", "w+")
    p = subprocess.Popen([VQ] + args + ["--listen", "127.0.0.1:0", "--data-dir", f"{work}/{name}"], stderr=log)
    for _ in range(200):
        time.sleep(0.05)
        log.seek(0)
        m = re.search(r"127\.0\.0\.1:(\d+)", log.read())
        if m:
            procs.append(p)
            return p, int(m.group(1))
    raise SystemExit(f"{name} did not start")


def cluster_of(port):
    return call(port, "GET", "/cluster")[1]["result"]


def fvecs(path):
    raw = np.fromfile(path, dtype="<i4")
    d = int(raw[0])
    return raw.reshape(-1, d + 1)[:, 1:].view("<f4")


def load(port, name, shards, replicas, base):
    status, body = call(port, "PUT", f"/collections/{name}", {"vectors": {"size": base.shape[1], "distance": "Cosine"},
                                                            "shard_number": shards, "replication_factor": replicas})
    assert status == 200, body
    for s in range(0, len(base), 1000):
        pts = [{"id": i, "vector": base[i].tolist()} for i in range(s, min(len(base), s + 1000))]
        status, body = call(port, "PUT", f"/collections/{name}/points?wait=true", {"points": pts})
        assert status == 200, body


def cpu_seconds(proc):
    """User + system CPU seconds a process has used so far (fields 14 and 15 of /proc/PID/stat)."""
    fields = open(f"/proc/{proc.pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(port, bodies, connections=8, seconds=10):
    out = subprocess.run(["wrk", f"-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", ROOT + "/Benchmarks/query.lua",
                          f"http://127.0.0.1:{port}"], env=dict(os.environ, BODIES=bodies), capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, p50, p99, int(errors.group(1)) if errors else 0


try:
    base, queries = fvecs(MINILM + "/base.fvecs"), fvecs(MINILM + "/query.fvecs")
    bodies = f"{work}/bodies.jsonl"
    with open(bodies, "w") as f:
        for q in queries:
            f.write(json.dumps({"query": q.tolist(), "limit": 10, "params": {"hnsw_ef": 64}}) + "\n")

    # 1. search throughput
    single, sport = start(["serve"], "single")
    wait_until(lambda: cluster_of(sport)["raft_info"]["role"] == "Leader", 30)
    load(sport, "m", 3, 1, base)
    call(sport, "POST", "/collections/m/optimize", timeout=600)
    before = cpu_seconds(single)
    s_rps, s50, s99, s_err = wrk(sport, bodies)
    s_cpu = (cpu_seconds(single) - before) / (s_rps * 10)
    single.send_signal(signal.SIGTERM)
    single.wait()
    procs.remove(single)

    a, pa = start(["serve"], "a")
    wait_until(lambda: cluster_of(pa)["raft_info"]["role"] == "Leader", 30)
    secret = open(f"{work}/a/cluster/secret").read().strip()
    b, pb = start(["join", f"http://127.0.0.1:{pa}", "--cluster-secret", secret], "b")
    c, pc = start(["join", f"http://127.0.0.1:{pa}", "--cluster-secret", secret], "c")
    ports = [pa, pb, pc]
    wait_until(lambda: all(len(cluster_of(p)["raft_info"].get("voters", [])) == 3 for p in ports), 30)
    load(pa, "m", 3, 2, base)
    for p in ports:
        call(p, "POST", "/collections/m/optimize", timeout=600)
    before = [cpu_seconds(p) for p in (a, b, c)]
    c_rps, c50, c99, c_err = wrk(pa, bodies)
    c_cpu = [(cpu_seconds(p) - t) / (c_rps * 10) for p, t in zip((a, b, c), before)]
    print("| search, 8 connections (wrk) | req/s | p50 | p99 | errors |")
    print("|---|---|---|---|---|")
    print(f"| one peer, 3 shards | {s_rps:,.0f} | {s50} | {s99} | {s_err} |")
    print(f"| 3 peers, 3 shards x 2 replicas, asked of one peer | {c_rps:,.0f} | {c50} | {c99} | {c_err} |")
    print(f"ratio 3 peers / 1 peer: {c_rps / s_rps:.2f}")
    print(f"server CPU per search: one peer {s_cpu * 1e6:.0f} us; 3 peers: asked {c_cpu[0] * 1e6:.0f} us, "
          f"others {c_cpu[1] * 1e6:.0f} and {c_cpu[2] * 1e6:.0f} us, total {sum(c_cpu) * 1e6:.0f} us")
    # With a machine of `cores` each, searches spread over the three peers (each one asked a
    # third of the time) are bounded by the busiest peer: a third of the total each.
    cores = os.cpu_count()
    print(f"bound with one {cores}-core machine per peer, searches asked of every peer in turn: "
          f"{3 * cores / sum(c_cpu):,.0f} req/s, against one peer's {cores / s_cpu:,.0f} req/s "
          f"({(3 / sum(c_cpu)) / (1 / s_cpu):.2f}x)")
    print()

    # 2. write latency by replication factor
    print("| single-point upsert, wait=true, 1 client | p50 ms | p99 ms |")
    print("|---|---|---|")
    conn = http.client.HTTPConnection("127.0.0.1", pb, timeout=60)
    for r in (1, 2, 3):
        name = f"w{r}"
        assert call(pb, "PUT", f"/collections/{name}", {"vectors": {"size": 384, "distance": "Cosine"}, "shard_number": 3,
                                                         "replication_factor": r})[0] == 200
        lat = []
        for i in range(2000):
            body = json.dumps({"points": [{"id": i, "vector": base[i % len(base)].tolist()}]})
            t = time.perf_counter()
            conn.request("PUT", f"/collections/{name}/points?wait=true", body=body, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            lat.append(time.perf_counter() - t)
            assert resp.status == 200
        lat.sort()
        print(f"| replication_factor {r} | {lat[len(lat) // 2] * 1000:.2f} | {lat[int(len(lat) * 0.99)] * 1000:.2f} |")
    conn.close()
    print()

    # 3. failover
    leader = cluster_of(pa)["raft_info"]["leader"]
    by_id = {cluster_of(p)["peer_id"]: (p, proc) for p, proc in zip(ports, [a, b, c])}
    lport, lproc = by_id[leader]
    survivor = next(p for p in ports if p != lport)
    t = time.perf_counter()
    lproc.kill()
    i = 0
    while True:
        i += 1
        try:
            status, _ = call(survivor, "PUT", f"/collections/after{i}", {"vectors": {"size": 4, "distance": "Dot"}}, timeout=5)
            if status == 200:
                break
        except OSError:
            pass
    print(f"failover: SIGKILL of the leader to the next committed metadata change: {(time.perf_counter() - t) * 1000:.0f} ms")
finally:
    for p in procs:
        if p.poll() is None:
            p.kill()
    subprocess.run(["rm", "-rf", work])
