#!/usr/bin/env python3
"""Issue 17: how fast a replica that missed operations catches up (release build, stdlib only).

Of three peers, A and B hold a one-shard collection (replication_factor 2, 16-d vectors). B is paused
(SIGSTOP) and the primary marks it Dead; four clients then make N single-point upserts
(wait=true) through the primary. B is resumed, and the script times how long until its replica is Active
again: the primary sends it the N operations it missed from its replication history (a range
catch-up, no whole copy). Reported: the seconds from resuming B to Active (which includes up to
half a second until B's recovery pass asks), the primary's "replica recovered" log line, and the
seconds the catch-up itself took there, with operations per second for each.

Usage: Benchmarks/catchup.py [--vq PATH] [--operations N]   (default .build/release/vq, 20000)
"""
import argparse
import os
import random
import re
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import transfer as t  # the peer, call and wait helpers


def states(port):
    st, body = t.call(port, "GET", "/collections/c/cluster", timeout=5)
    res = body["result"]
    return [s["state"] for s in res["local_shards"] + res["remote_shards"]]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--operations", type=int, default=20000)
    args = t.parse_args(ap)
    # Three voters, so Raft keeps a majority while one peer is paused.
    started = t.three_peers()
    pa = started[0][1]
    st, body = t.call(pa, "PUT", "/collections/c", {"vectors": {"size": 16, "distance": "Dot"}, "shard_number": 1,
                                                     "replication_factor": 2})
    assert st == 200, body
    # The two peers holding a replica: writes go through the primary, the other (B) is paused.
    peers = {t.call(port, "GET", "/cluster")[1]["result"]["peer_id"]: (p, port) for p, port in started}
    # The peer without a replica lists both in placement order: the primary first.
    views = [t.call(port, "GET", "/collections/c/cluster")[1]["result"] for _, port in peers.values()]
    holders = [r["peer_id"] for r in next(v for v in views if not v["local_shards"])["remote_shards"]]
    (b, _), (_, pa) = peers[holders[1]], peers[holders[0]]
    rng = random.Random(7)
    st, body = t.call(pa, "PUT", "/collections/c/points?wait=true",
                      {"points": [{"id": i, "vector": [rng.uniform(-1, 1) for _ in range(16)]} for i in range(1000)]})
    assert st == 200, body
    b.send_signal(signal.SIGSTOP)
    # The first write waits out the lag timeout, then B is Dead.
    st, body = t.call(pa, "PUT", "/collections/c/points?wait=true", {"points": [{"id": 0, "vector": [0.5] * 16}]})
    assert st == 200, body
    assert t.wait_until(lambda: sorted(states(pa)) == ["Active", "Dead"], 30), states(pa)
    n, clients = args.operations, 4
    failed = []

    def writer(w):
        r = random.Random(w)
        for k in range(w, n, clients):
            st, body = t.call(pa, "PUT", "/collections/c/points?wait=true",
                              {"points": [{"id": 1000 + k, "vector": [r.uniform(-1, 1) for _ in range(16)]}]})
            if st != 200:
                failed.append((st, body))

    began = time.time()
    threads = [threading.Thread(target=writer, args=(w,)) for w in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wrote = time.time() - began
    assert not failed, failed[:3]
    resumed = time.time()
    b.send_signal(signal.SIGCONT)
    ok = t.wait_until(lambda: states(pa) == ["Active", "Active"], 300, step=0.01)
    seconds = time.time() - resumed
    log = "".join(open(f"{t.work}/{name}.log").read() for name in ("a", "b", "c"))
    line = ([m for m in re.findall(r".*replica recovered.*", log)] or ["(none)"])[-1]
    print(f"operations missed: {n + 1} (written in {wrote:.1f} s by {clients} clients)")
    print(f"resumed to Active: {seconds:.2f} s ({(n + 1) / seconds:,.0f} operations/s)" if ok else "not Active in 300 s")
    print(f"primary: {line.strip()[line.find('replica recovered'):]}")
    took = re.search(r"seconds=([\d.e-]+)", line)
    if took:
        print(f"the catch-up itself (the primary's seconds): {float(took.group(1)):.3f} s, "
              f"{(n + 1) / float(took.group(1)):,.0f} operations/s")
    for p in list(t.procs):
        t.stop(p)


if __name__ == "__main__":
    t.run_main(main)
