#!/usr/bin/env python3
"""Issue 17: write throughput of a replicated collection on a healthy cluster (release build).

Three peers on loopback, a collection of 3 shards x 3 replicas (16-d vectors); 8 clients, spread
over the peers, make single-point upserts (wait=true) for SECONDS. Reported: writes per second.
It guards the write path's cost when no fault happens (each write is ordered by its shard's
primary and sent to both other replicas; two thirds arrive at a peer that forwards them), and
each peer's open file descriptors after the run (pooled peer connections: no leak per write).

Usage: Benchmarks/replicated_writes.py [--vq PATH] [--seconds S]   (default .build/release/vq, 8)
"""
import argparse
import http.client
import json
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import transfer as t  # the peer, call and wait helpers


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=8)
    args = t.parse_args(ap)
    peers = t.three_peers()
    ports = [port for _, port in peers]
    pa = ports[0]
    st, body = t.call(pa, "PUT", "/collections/c", {"vectors": {"size": 16, "distance": "Dot"}, "shard_number": 3,
                                                     "replication_factor": 3})
    assert st == 200, body
    clients = 8
    counts = [0] * clients
    stop = time.time() + args.seconds

    def writer(i):
        r = random.Random(i)
        c = http.client.HTTPConnection("127.0.0.1", ports[i % len(ports)], timeout=30)
        k = i
        while time.time() < stop:
            body = json.dumps({"points": [{"id": k, "vector": [r.uniform(-1, 1) for _ in range(16)]}]})
            c.request("PUT", "/collections/c/points?wait=true", body=body, headers={"Content-Type": "application/json"})
            resp = c.getresponse()
            resp.read()
            assert resp.status == 200, resp.status
            counts[i] += 1
            k += clients

    began = time.time()
    threads = [threading.Thread(target=writer, args=(i,)) for i in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    print(f"{t.VQ}: {sum(counts) / (time.time() - began):,.0f} writes/s ({clients} clients, 3 peers, 3 shards x 3 replicas)")
    # Open files per peer after the run: peer connections are pooled, so this stays small
    # however many writes were forwarded.
    fds = [len(os.listdir(f"/proc/{proc.pid}/fd")) for proc, _ in peers]
    print(f"open file descriptors per peer after {sum(counts):,} writes: {fds}")
    for p in list(t.procs):
        t.stop(p)


if __name__ == "__main__":
    t.run_main(main)
