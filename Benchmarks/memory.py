#!/usr/bin/env python3
"""Issue 12's memory bound: RSS of `vq serve` while clients overwrite the same points as fast as
they can (release build, loopback only, stops by itself).

  Benchmarks/memory.py [SECONDS] [CLIENTS] [DIM] [-- extra vq serve flags]

Each client PUTs 256-point batches (ids cycling over 0..1999, random vectors) with wait=false.
Prints RSS every 5 s, the RSS after the first second and at the end, their ratio, the
acknowledged writes and the 429s (back pressure) seen.
"""
import http.client
import json
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


status, _ = call("PUT", "/collections/m", {"vectors": {"size": DIM, "distance": "Dot"}})
assert status == 200, status

stop = time.time() + SECONDS
acked = [0] * CLIENTS
refused = [0] * CLIENTS


def client(i):
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
print(f"clients {CLIENTS}, dim {DIM}, {SECONDS:.0f} s: batches acknowledged {sum(acked)}, refused (429) {sum(refused)}")
print(f"rss after 1 s: {first / 1024:.0f} MB, at the end: {end / 1024:.0f} MB, peak {max(samples) / 1024:.0f} MB, end/first {end / first:.2f}")
print(f"at the end: anonymous {rss_kb(server.pid, 'RssAnon') / 1024:.0f} MB, file-backed {rss_kb(server.pid, 'RssFile') / 1024:.0f} MB")
status, info = call("GET", "/collections/m/info")
info = json.loads(info)["result"]
print(f"collection: {info.get('points')} points, {len(info.get('segments', []))} segments, queue {info.get('queue_depth')}, "
      f"unindexed {info.get('unindexed_points')}")
if os.environ.get("VQ_MEMORY_VERBOSE"):
    print(json.dumps(info)[:3000])
time.sleep(float(os.environ.get("VQ_MEMORY_IDLE", "0")))
if os.environ.get("VQ_MEMORY_IDLE"):
    print(f"after {os.environ['VQ_MEMORY_IDLE']} s idle: {rss_kb(server.pid) / 1024:.0f} MB (anonymous {rss_kb(server.pid, 'RssAnon') / 1024:.0f} MB)")
server.terminate()
server.wait()
