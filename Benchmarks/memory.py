#!/usr/bin/env python3
"""Issue 12's memory bound: RSS of `vq serve` while clients overwrite the same points as fast as
they can (release build, loopback only, stops by itself).

  Benchmarks/memory.py [SECONDS] [CLIENTS] [DIM] [-- extra vq serve flags]
  VQ_MEMORY_SCENARIO=queue Benchmarks/memory.py 0 4 16 -- --update-queue-bytes 67108864

Default scenario: each client PUTs 256-point batches (ids cycling over 0..1999, random vectors)
with wait=false. Prints RSS every 5 s, the RSS after the first second and at the end, their
ratio, the acknowledged writes and the 429s (back pressure) seen.

Scenario "queue": the collection's optimizer is off and prevent_unoptimized on, so nothing is
applied past the first few points and every write waits in the update queue; clients send
2,000,000 distinct points once each (?timeout=0.1); once the queue's byte budget is used up
they get 429. Then prevent_unoptimized is turned off, the queue drains, and the exact count
must equal the points acknowledged.
"""
import atexit
import http.client
import json
import shutil
import signal
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VQ = ROOT + "/.build/release/vq"
args = sys.argv[1:]
extra = []
if "--" in args:
    extra = args[args.index("--") + 1:]
    args = args[:args.index("--")]
SECONDS = float(args[0]) if len(args) > 0 else 60
CLIENTS = int(args[1]) if len(args) > 1 else 4
DIM = int(args[2]) if len(args) > 2 else 128

work = tempfile.mkdtemp(prefix="vq-memory-")
log = open(f"{work}/serve.log", "w+")
server = subprocess.Popen([VQ, "serve", "--listen", "127.0.0.1:0", "--data-dir", f"{work}/d"] + extra, stderr=log)
port = None
for _ in range(200):
    time.sleep(0.05)
    log.seek(0)
    m = re.search(r"127\.0\.0\.1:(\d+)", log.read())
    if m:
        port = int(m.group(1))
        break
assert port, "server did not start"


def cleanup():
    if server.poll() is None:
        server.terminate()
        server.wait()
    shutil.rmtree(work, ignore_errors=True)


atexit.register(cleanup)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))


def rss_kb(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def call(method, path, body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    c.request(method, path, body=json.dumps(body) if body is not None else None)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


SCENARIO = os.environ.get("VQ_MEMORY_SCENARIO", "overwrite")
body = {"vectors": {"size": DIM, "distance": "Dot"}}
if SCENARIO == "queue":
    body["optimizers_config"] = {"max_optimization_threads": 0, "indexing_threshold": 1, "prevent_unoptimized": True}
status, _ = call("PUT", "/collections/m", body)
assert status == 200, status
TOTAL = 2_000_000
next_id = [0]
id_lock = threading.Lock()

stop = time.time() + SECONDS if SECONDS > 0 else float("inf")
acked = [0] * CLIENTS
refused = [0] * CLIENTS


def queue_client(i):
    rng = random.Random(i)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    while True:
        with id_lock:
            first = next_id[0]
            if first >= TOTAL:
                return
            next_id[0] = first + 256
        body = json.dumps({"points": [{"id": p, "vector": [rng.random() for _ in range(DIM)]} for p in range(first, min(TOTAL, first + 256))]})
        conn.request("PUT", "/collections/m/points?wait=false&timeout=0.1", body=body)
        r = conn.getresponse()
        r.read()
        if r.status == 200:
            acked[i] += min(TOTAL, first + 256) - first
        elif r.status == 429:
            # Back pressure: this batch is not acknowledged (and must not appear).
            refused[i] += 1
        else:
            raise SystemExit(f"status {r.status}")


def client(i):
    if SCENARIO == "queue":
        return queue_client(i)
    rng = random.Random(i)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    start = i * 256
    while time.time() < stop:
        ids = [(start + k) % 2000 for k in range(256)]
        start = (start + 256) % 2000
        body = json.dumps({"points": [{"id": p, "vector": [rng.random() for _ in range(DIM)], "payload": {"n": p}} for p in ids]})
        conn.request("PUT", "/collections/m/points?wait=false", body=body)
        r = conn.getresponse()
        r.read()
        if r.status == 200:
            acked[i] += 1
        elif r.status == 429:
            refused[i] += 1
            time.sleep(0.05)
        else:
            raise SystemExit(f"status {r.status}")


threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
t0 = time.time()
for t in threads:
    t.start()
first = None
samples = []
while any(t.is_alive() for t in threads):
    time.sleep(1)
    r = rss_kb(server.pid)
    samples.append(r)
    if first is None:
        first = r
    if len(samples) % 5 == 0:
        print(f"t={len(samples):3d}s rss={r / 1024:.0f} MB", flush=True)
for t in threads:
    t.join()
end = rss_kb(server.pid)
elapsed = time.time() - t0
what = "points" if SCENARIO == "queue" else "batches"
print(f"clients {CLIENTS}, dim {DIM}, {elapsed:.0f} s: {what} acknowledged {sum(acked)}, refused (429) {sum(refused)}")
print(f"rss after 1 s: {first / 1024:.0f} MB, at the end: {end / 1024:.0f} MB, peak {max(samples) / 1024:.0f} MB, end/first {end / first:.2f}")
print(f"at the end: anonymous {rss_kb(server.pid, 'RssAnon') / 1024:.0f} MB, file-backed {rss_kb(server.pid, 'RssFile') / 1024:.0f} MB")
if SCENARIO == "queue":
    status, _ = call("PATCH", "/collections/m", {"optimizers_config": {"prevent_unoptimized": False}})
    assert status == 200, status
    for _ in range(600):
        status, data = call("POST", "/collections/m/points/count", {"exact": True})
        n = json.loads(data)["result"]["count"]
        if n >= sum(acked):
            break
        time.sleep(1)
    print(f"after draining: {n} points counted, {sum(acked)} acknowledged: {'none lost' if n == sum(acked) else 'LOST ' + str(sum(acked) - n)}")
status, info = call("GET", "/collections/m/info")
info = json.loads(info)["result"]
print(f"collection: {info.get('points')} points, {len(info.get('segments', []))} segments, queue {info.get('queue_depth')}, "
      f"unindexed {info.get('unindexed_points')}")
if os.environ.get("VQ_MEMORY_VERBOSE"):
    print(json.dumps(info)[:3000])
time.sleep(float(os.environ.get("VQ_MEMORY_IDLE", "0")))
if os.environ.get("VQ_MEMORY_IDLE"):
    print(f"after {os.environ['VQ_MEMORY_IDLE']} s idle: {rss_kb(server.pid) / 1024:.0f} MB (anonymous {rss_kb(server.pid, 'RssAnon') / 1024:.0f} MB)")
cleanup()
