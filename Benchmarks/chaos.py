#!/usr/bin/env python3
"""Network faults between hosts, checked in the style of Jepsen (issue 17).

Each peer runs in its own Linux network namespace with its own address on a bridge this
script creates (10.231.N.0/24, the test's own hosts only), so peers talk over real
interfaces, not loopback. Writers upsert through random peers while a seeded schedule
injects faults; afterwards every link heals and the checker asks:

  - lost:       every write acknowledged (HTTP 200, wait=true) is on every replica;
  - converged:  the replicas hold the same points (compared after a clean stop, embedded), after an
                anti-entropy pass (`/cluster/repair`) whose repairs are reported;
  - leaders:    no two peers were leader in one Raft term (sampled every 50 ms);
  - metadata:   a metadata change (an alias) succeeds whenever a majority is connected.

It also reports availability: per fault, the writes acknowledged while it held and the longest
time without one (`during_faults`, with the answers by peer and status), the longest such gap
over the run, and the first error answers. Writers connect with a 0.5 s timeout and leave a
peer that did not answer alone for 5 s, so the counts measure the peers, not a client waiting
out a cut-off address. `--keep` keeps the peers' logs and data after a pass too.

Faults: isolate a peer or the leader (its link down), flap a link, one-way partition (the
peer hears nothing but can send: the others resolve its address to a MAC no one has), pause a peer
(SIGSTOP), kill and restart a peer (SIGKILL). Needs root and `ip netns`; without them it says
so and exits 0. Any failure prints the seed: `chaos.py --seed N --rounds R` replays the same
schedule (timing still varies run to run). `--faults kill,pause` draws from those kinds only.
The collection has replication_factor 3 and write_consistency_factor 2, so an acknowledged write
is on two replicas. `.ci/run` runs a short schedule (4 rounds, seed 7); longer randomized runs
report in BENCHMARKS.md.

  sudo Benchmarks/chaos.py --vq .build/release/vq --rounds 30 --seed 7
"""
import argparse
import http.client as httpclient
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time


def sh(*args, check=True):
    return subprocess.run(args, check=check, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def http(method, url, body=None, timeout=3.0, connect_timeout=None):
    """(status, parsed JSON or None); status 0 when the peer could not be reached.
    connect_timeout: seconds to connect (default: timeout), as a client's pool gives up on an
    address that does not answer sooner than on a request under way."""
    data = json.dumps(body).encode() if body is not None else None
    host, _, rest = url[len("http://"):].partition("/")
    name, _, port = host.partition(":")
    conn = httpclient.HTTPConnection(name, int(port or 80), timeout=connect_timeout or timeout)
    try:
        conn.connect()
        conn.sock.settimeout(timeout)
        conn.request(method, "/" + rest, body=data, headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        raw = r.read()
        try:
            return r.status, json.loads(raw or b"null")
        except ValueError:
            return r.status, raw.decode(errors="replace")  # /readyz and friends answer text
    except (OSError, ValueError, httpclient.HTTPException):
        return 0, None
    finally:
        conn.close()


class Net:
    """A bridge and one namespace per peer; removed by `close` whatever happened."""

    def __init__(self, peers):
        tag = os.getpid() % 10000
        self.subnet = f"10.231.{os.getpid() % 250}"
        self.bridge = f"vqb{tag}"
        self.ns = [f"vqn{tag}-{i}" for i in range(1, peers + 1)]
        self.host_if = [f"vqh{tag}-{i}" for i in range(1, peers + 1)]
        self.addr = [f"{self.subnet}.{i}" for i in range(1, peers + 1)]
        self.made = []
        try:
            self._build(peers)
        except subprocess.CalledProcessError:
            self.close()
            raise

    def _build(self, peers):
        sh("ip", "link", "add", self.bridge, "type", "bridge")
        self.made.append(("link", self.bridge))
        sh("ip", "addr", "add", f"{self.subnet}.254/24", "dev", self.bridge)
        sh("ip", "link", "set", self.bridge, "up")
        for i in range(peers):
            sh("ip", "netns", "add", self.ns[i])
            self.made.append(("netns", self.ns[i]))
            sh("ip", "link", "add", self.host_if[i], "type", "veth", "peer", "name", "eth0", "netns", self.ns[i])
            sh("ip", "link", "set", self.host_if[i], "master", self.bridge, "up")
            sh("ip", "-n", self.ns[i], "addr", "add", f"{self.addr[i]}/24", "dev", "eth0")
            sh("ip", "-n", self.ns[i], "link", "set", "eth0", "up")
            sh("ip", "-n", self.ns[i], "link", "set", "lo", "up")
        # One-way partitions: see `deafen` (neighbour entries only; no tc classifier needed).
        self.one_way = True

    def link(self, i, up):
        sh("ip", "link", "set", self.host_if[i], "up" if up else "down")

    def deafen(self, i, on):
        """Drops what is sent to peer i (it still sends): a one-way partition. Every other
        namespace, and the host, resolves peer i's address to a MAC address no one has, so the
        bridge floods those frames and no one takes them: connections to peer i time out as over
        a cut link, while what peer i sends arrives. Healing removes the entries (ARP again)."""
        nowhere = "02:00:5e:00:00:01"
        for j in range(len(self.ns)):
            if j != i:
                if on:
                    sh("ip", "-n", self.ns[j], "neigh", "replace", self.addr[i], "lladdr", nowhere, "dev", "eth0", "nud", "permanent")
                else:
                    sh("ip", "-n", self.ns[j], "neigh", "del", self.addr[i], "dev", "eth0", check=False)
        if on:
            sh("ip", "neigh", "replace", self.addr[i], "lladdr", nowhere, "dev", self.bridge, "nud", "permanent")
        else:
            sh("ip", "neigh", "del", self.addr[i], "dev", self.bridge, check=False)

    def close(self):
        for kind, name in reversed(self.made):
            if kind == "netns":
                sh("ip", "netns", "del", name, check=False)
            else:
                sh("ip", "link", "del", name, check=False)


class Peer:
    def __init__(self, vq, net, i, root, secret, extra=()):
        self.vq, self.net, self.i, self.secret, self.extra = vq, net, i, secret, list(extra)
        self.dir = f"{root}/peer{i + 1}"
        self.url = f"http://{net.addr[i]}:6333"
        self.proc = None
        self.log = open(f"{root}/peer{i + 1}.log", "ab")

    def start(self, join=None):
        cmd = ["ip", "netns", "exec", self.net.ns[self.i], self.vq] + (["join", join] if join else ["serve"]) + [
            "--data-dir", self.dir, "--listen", f"{self.net.addr[self.i]}:6333", "--cluster-secret", self.secret] + self.extra
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.time() + 30
        while time.time() < deadline:
            if http("GET", self.url + "/readyz", timeout=1)[0] == 200:
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"peer {self.i + 1} exited: see {self.log.name}")
            time.sleep(0.1)
        raise RuntimeError(f"peer {self.i + 1} not ready in 30 s")

    def signal(self, sig):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vq", default=".build/release/vq")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--writers", type=int, default=2)
    ap.add_argument("--faults", default="", help="comma-separated fault kinds to draw from (default: all)")
    ap.add_argument("--json", action="store_true", help="print the report as one JSON line")
    ap.add_argument("--keep", action="store_true", help="keep the peers' data directories and logs, also after a pass")
    ap.add_argument("--serve-arg", action="append", default=[], help="an argument given to every peer (repeat: --serve-arg=--peer-timeout --serve-arg=2)")
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    if os.geteuid() != 0 or shutil.which("ip") is None or sh("ip", "netns", "list", check=False).returncode != 0:
        print("chaos: skipped (needs root and ip netns)")
        return 0
    vq = os.path.abspath(args.vq)
    rng = random.Random(seed)
    print(f"chaos: seed {seed}, {args.rounds} rounds (replay: chaos.py --seed {seed} --rounds {args.rounds})", flush=True)
    # Leftovers of a run that was killed (its finally never ran) would clash with this one.
    for ns in sh("ip", "netns", "list", check=False).stdout.split():
        if ns.startswith("vqn") and "-" in ns:
            sh("ip", "netns", "del", ns, check=False)
    for line in sh("ip", "-o", "link", "show", "type", "bridge", check=False).stdout.splitlines():
        name = line.split(":")[1].strip() if ":" in line else ""
        if name.startswith("vqb"):
            sh("ip", "link", "del", name, check=False)
    # SIGTERM (a CI timeout) runs the cleanup in `finally` too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    try:
        net = Net(3)
    except subprocess.CalledProcessError as e:
        # Root without the right to make interfaces (a container without CAP_NET_ADMIN) is a
        # skip; any other failure is a failure.
        if "Operation not permitted" not in e.stderr and "Permission denied" not in e.stderr:
            raise
        print(f"chaos: skipped (cannot create network namespaces here: {e.stderr.strip()})")
        return 0
    root = tempfile.mkdtemp(prefix="vq-chaos-")
    peers = [Peer(vq, net, i, root, "chaos-secret-0123456789", args.serve_arg) for i in range(3)]
    stop = threading.Event()
    acked, lock = set(), threading.Lock()
    ack_time = {}
    tries = []  # (start, end, peer, status) of every write
    terms = {}
    report = {"seed": seed, "rounds": args.rounds, "faults": []}
    errors = report["write_errors"] = []  # the first few answers other than 200
    try:
        peers[0].start()
        for p in peers[1:]:
            p.start(join=peers[0].url)
        deadline = time.time() + 30
        while time.time() < deadline:
            st, info = http("GET", peers[0].url + "/cluster")
            if st == 200 and len((info or {}).get("result", {}).get("raft_info", {}).get("voters", [])) == 3:
                break
            time.sleep(0.2)
        else:
            raise RuntimeError("three voters not reached in 30 s")
        st, body = http("PUT", peers[0].url + "/collections/c", {
            "vectors": {"size": 4, "distance": "Dot"}, "shard_number": 2, "replication_factor": 3,
            "write_consistency_factor": 2}, timeout=20)
        if st != 200:
            raise RuntimeError(f"create collection: {st} {body}")

        def writer(w):
            wr = random.Random(seed * 31 + w)
            k = w
            # Like a client given every peer's address: one that did not answer is left alone for
            # 5 s (else most of the writers' time during a fault goes to waiting out the cut-off
            # peer, and the count says little about the peers that are reachable).
            shunned = {}
            while not stop.is_set():
                now = time.time()
                candidates = [p for p in peers if shunned.get(p.i, 0) <= now] or peers
                p = wr.choice(candidates)
                vec = [wr.uniform(-1, 1) for _ in range(4)]
                st, answer = http("PUT", p.url + "/collections/c/points?wait=true",
                             {"points": [{"id": k, "vector": vec, "payload": {"k": k}}]}, timeout=3, connect_timeout=0.5)
                with lock:
                    tries.append((now, time.time(), p.i + 1, st))
                    if st not in (0, 200) and len(errors) < 5:
                        errors.append(f"peer {p.i + 1}: {st} {json.dumps(answer)[:300]}")
                if st == 0:
                    shunned[p.i] = time.time() + 5.0
                if st == 200:
                    with lock:
                        acked.add(k)
                        ack_time[k] = time.time()
                k += args.writers

        def observer():
            while not stop.is_set():
                for p in peers:
                    st, info = http("GET", p.url + "/cluster", timeout=0.3)
                    raft = (info or {}).get("result", {}).get("raft_info", {}) if st == 200 else {}
                    if raft.get("role") == "Leader":
                        terms.setdefault(raft.get("term"), set()).add(p.i + 1)
                time.sleep(0.05)

        threads = [threading.Thread(target=writer, args=(w,), daemon=True) for w in range(args.writers)]
        threads.append(threading.Thread(target=observer, daemon=True))
        started = time.time()
        for t in threads:
            t.start()

        def leader():
            for p in peers:
                st, info = http("GET", p.url + "/cluster", timeout=1)
                raft = (info or {}).get("result", {}).get("raft_info", {}) if st == 200 else {}
                if raft.get("role") == "Leader":
                    return p.i
            return rng.randrange(3)

        kinds = ["isolate", "isolate-leader", "flap", "pause", "kill"] + (["one-way"] if net.one_way else [])
        if args.faults:
            unknown = set(args.faults.split(",")) - set(kinds)
            if unknown:
                raise SystemExit(f"chaos: unknown or unavailable fault kinds {sorted(unknown)}; expected some of {kinds}")
            kinds = args.faults.split(",")
        alias_ok = alias_tried = 0
        windows = []  # [fault start, fault end] per round
        for r in range(args.rounds):
            kind = rng.choice(kinds)
            i = leader() if kind == "isolate-leader" else rng.randrange(3)
            hold = rng.uniform(1.5, 4.0)
            report["faults"].append(f"{kind}:{i + 1}")
            windows.append([time.time()])
            print(f"  round {r + 1} at {time.time():.2f}: {kind} peer {i + 1} for {hold:.1f} s", flush=True)
            majority = [p for p in peers if p.i != i]
            if kind in ("isolate", "isolate-leader"):
                net.link(i, False)
            elif kind == "one-way":
                net.deafen(i, True)
            elif kind == "pause":
                peers[i].signal(signal.SIGSTOP)
            elif kind == "kill":
                peers[i].signal(signal.SIGKILL)
                peers[i].proc.wait()
            if kind == "flap":
                end = time.time() + hold
                while time.time() < end:
                    net.link(i, False)
                    time.sleep(0.3)
                    net.link(i, True)
                    time.sleep(0.3)
            else:
                # A metadata change through the majority side must commit while the fault holds.
                alias_tried += 1
                via = rng.choice(majority)
                began = time.time()
                st, body = http("POST", via.url + "/collections/aliases",
                                {"actions": [{"create_alias": {"alias_name": f"a{r}", "collection_name": "c"}}]}, timeout=15)
                alias_ok += st == 200
                if st != 200:
                    report.setdefault("metadata_failures", []).append(
                        f"round {r + 1} via peer {via.i + 1} after {time.time() - began:.1f} s: {st} {json.dumps(body)[:200]}")
                time.sleep(max(0.0, hold - (time.time() - began)))
            windows[-1].append(time.time())
            if kind in ("isolate", "isolate-leader"):
                net.link(i, True)
            elif kind == "one-way":
                net.deafen(i, False)
            elif kind == "pause":
                peers[i].signal(signal.SIGCONT)
            elif kind == "kill":
                peers[i].start()
            time.sleep(1.0)
        stop.set()
        stopped = time.time()
        for t in threads:
            t.join(timeout=10)
        # The longest time no write was acknowledged, from the writers' start to their stop.
        times = sorted([started] + [t for t in ack_time.values() if t <= stopped] + [stopped])
        report["longest_gap_seconds"] = round(max(b - a for a, b in zip(times, times[1:])), 2)
        # Per fault: writes acknowledged while it held, and the longest time without one then.
        report["during_faults"] = []
        for (a, b) in windows:
            inside = sorted([a] + [t for t in ack_time.values() if a <= t <= b] + [b])
            # Writes that ended while it held, by the peer asked: "peer:status" -> (count, slowest seconds).
            ended = {}
            for (t0, t1, peer, st) in tries:
                if a <= t1 <= b:
                    n, slowest = ended.get(f"{peer}:{st}", (0, 0))
                    ended[f"{peer}:{st}"] = (n + 1, round(max(slowest, t1 - t0), 2))
            report["during_faults"].append({"seconds": round(b - a, 1), "acknowledged": len(inside) - 2,
                                            "longest_gap_seconds": round(max(y - x for x, y in zip(inside, inside[1:])), 2),
                                            "writes_ended": dict(sorted(ended.items()))})
        # Healed: wait until every peer sees every replica active.
        healed = time.time()
        converged = None
        while time.time() - healed < 120:
            states = []
            for p in peers:
                st, info = http("GET", p.url + "/collections/c/cluster", timeout=2)
                res = (info or {}).get("result", {}) if st == 200 else {}
                states += [s.get("state") for s in res.get("local_shards", []) + res.get("remote_shards", [])] if res else ["?"]
            if states and all(s == "Active" for s in states):
                converged = time.time() - healed
                break
            time.sleep(0.25)
        report["converged_seconds"] = None if converged is None else round(converged, 2)
        # Anti-entropy once converged: what the write path left different is repaired (and
        # counted), and the equality check below then holds the repaired replicas to it.
        st, rep = http("POST", peers[0].url + "/collections/c/cluster/repair", timeout=60)
        rows = [r for s in ((rep or {}).get("result") or {}).get("shards", []) for r in s.get("replicas", [])] if st == 200 else []
        report["repair"] = {"status": st, "compared": sum(1 for r in rows if r.get("compared", True)),
                            "differing_buckets": sum(r.get("differing_buckets", 0) for r in rows),
                            "repaired_points": sum(r.get("upserted", 0) + r.get("deleted", 0) for r in rows),
                            "errors": [r["error"] for r in rows if "error" in r]}
        for p in peers:
            p.stop()
        # Each peer's copy, read embedded after a clean stop.
        exports = []
        for p in peers:
            out = sh(vq, "export", "c", "--with-vectors", "-q", "--data-dir", p.dir, check=False)
            if out.returncode != 0:
                raise RuntimeError(f"export of peer {p.i + 1} failed: {out.stderr.strip()}")
            exports.append(out.stdout)
        ids = [set(json.loads(line)["id"] for line in e.splitlines() if line) for e in exports]
        lost = {i + 1: len(acked - s) for i, s in enumerate(ids)}
        report.update({
            "acknowledged": len(acked), "points": [len(s) for s in ids], "lost": lost,
            "lost_everywhere": len(acked - set().union(*ids)),
            "lost_sample": sorted(acked - set().union(*ids))[:10] or sorted(acked - ids[0])[:10],
            "replicas_equal": len(set(exports)) == 1,
            "terms_with_two_leaders": sorted(t for t, who in terms.items() if len(who) > 1),
            "terms_seen": len(terms), "metadata_changes": f"{alias_ok}/{alias_tried}",
        })
        # Nothing acknowledged would make every other check vacuous.
        ok = len(acked) > 0 and sum(lost.values()) == 0 and report["replicas_equal"] and not report["terms_with_two_leaders"] \
            and alias_ok == alias_tried and converged is not None and report["repair"]["status"] == 200 \
            and not report["repair"]["errors"]
        report["ok"] = ok
        # Where the gaps are: per peer, the missing acknowledged ids' shards and times (UTC).
        def shard(k):  # PointID.stableHash % shard_number (mix64), for this report only
            m = (1 << 64) - 1
            z = (k + 0x9E3779B97F4A7C15) & m
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & m
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & m
            return (z ^ (z >> 31)) % 2
        report["gaps"] = {i + 1: [(k, shard(k), time.strftime("%H:%M:%S", time.gmtime(ack_time[k])) + f"{ack_time[k] % 1:.2f}"[1:])
                                  for k in sorted(acked - s)[:8]] for i, s in enumerate(ids) if acked - s}
        report["lost_acked_at"] = [round(ack_time[k], 2) for k in report["lost_sample"] if k in ack_time]
        print(json.dumps(report) if args.json else "\n".join(f"  {k}: {v}" for k, v in report.items() if k != "faults"))
        if not ok:
            print(f"chaos: FAILED with seed {seed}; logs in {root}", file=sys.stderr)
            return 1
        if args.keep:
            print(f"chaos: logs kept in {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)
        return 0
    finally:
        stop.set()
        for p in peers:
            p.stop()
        net.close()


if __name__ == "__main__":
    sys.exit(main())
