#!/usr/bin/env bash
# Issue 6: tail latency with a stalling replica, and what delayed fan-out does about it.
#
# Three peers on loopback, minilm-20k in 3 shards x 2 replicas, searches from `vq bench --url`
# against one peer (A). A first picks replicas round robin (--read-replica-choice round-robin, a
# router with no latency data): healthy; one other peer (X) stopped for 50 ms of every 500 ms
# (SIGSTOP/SIGCONT) with fan-out off; the same with read_fan_out_delay_ms near the healthy p95.
# Then A restarts with the default latency-aware choice: stalled with fan-out off, and delayed;
# last, stalled with read_fan_out_factor 1 (the issue's fourth run).
# Extra reads per query come from A's /metrics.
#
# Load is open loop (`vq bench --rate`): RATE requests per second from CLIENTS connections, each
# request timed from when it was due, so a stall delays what queues behind it, as real traffic.
#
# MODE network (issue 17) makes X slow through the network instead: the other peers reach X
# through Benchmarks/delay_proxy.py (X advertises the proxy's address), which holds all of X's
# traffic for 50 ms at random moments (about every 500 ms) while X itself runs on; the healthy
# run goes through the same proxy, not holding.
#
#   Benchmarks/tail-latency.sh [MINILM_DIR] [SECONDS_PER_RUN] [CLIENTS] [RATE] [process|network]
set -euo pipefail
cd "$(dirname "$0")/.."
minilm=${1:-../shared/data/minilm-20k}
seconds=${2:-20}
clients=${3:-16}
rate=${4:-800}
mode=${5:-process}
case "$mode" in process|network) ;; *) echo "MODE is '$mode'; expected process or network" >&2; exit 2 ;; esac
swift build -c release >&2
vq=$PWD/.build/release/vq
work=$(mktemp -d)
pids=()
stopper=
cleanup() {
    [ -n "$stopper" ] && kill "$stopper" 2>/dev/null || true
    [ -n "${proxy:-}" ] && kill "$proxy" 2>/dev/null || true
    for p in "${pids[@]}"; do kill -CONT "$p" 2>/dev/null || true; kill -TERM "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

port_of() { # LOG: wait for the listening line, print the port
    for _ in $(seq 200); do
        p=$(grep -o '127.0.0.1:[0-9]*' "$1" | head -1 | cut -d: -f2 || true)
        [ -n "$p" ] && { echo "$p"; return; }
        sleep 0.05
    done
    echo "peer did not start: $1" >&2; exit 1
}

"$vq" serve --listen 127.0.0.1:0 --data-dir "$work/a" --read-replica-choice round-robin 2>"$work/a.log" & pids+=($!)
pa=$(port_of "$work/a.log")
sleep 1
export VQ_CLUSTER_SECRET=$("$vq" cluster token --data-dir "$work/a")
"$vq" join "http://127.0.0.1:$pa" --listen 127.0.0.1:0 --data-dir "$work/b" 2>"$work/b.log" & pids+=($!)
pb=$(port_of "$work/b.log")
if [ "$mode" = network ]; then
    # X listens on a port chosen here and advertises the proxy's: the others reach it through the proxy.
    read -r xport proxyport < <(python3 -c 'import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
    python3 Benchmarks/delay_proxy.py "$proxyport" "$xport" 50 500 17 >"$work/proxy.log" 2>&1 & proxy=$!
    "$vq" join "http://127.0.0.1:$pa" --listen "127.0.0.1:$xport" --advertise "http://127.0.0.1:$proxyport" \
        --data-dir "$work/x" 2>"$work/x.log" & pids+=($!)
else
    "$vq" join "http://127.0.0.1:$pa" --listen 127.0.0.1:0 --data-dir "$work/x" 2>"$work/x.log" & pids+=($!)
fi
px=$(port_of "$work/x.log")
xpid=${pids[2]}
sleep 2
A=http://127.0.0.1:$pa
"$vq" create-collection m --dim 384 --shards 3 --replication-factor 2 --url "$A" -q >/dev/null
"$vq" upsert m "$minilm/base.fvecs" --url "$A" -q --no-optimize >/dev/null
for p in $pa $pb $px; do "$vq" optimize m --url "http://127.0.0.1:$p" -q >/dev/null; done

extra_reads() { curl -s "$A/metrics" | awk '/^vq_shard_extra_reads_total /{print $2}'; }
run() { # LABEL
    local before after out
    before=$(extra_reads)
    out=$("$vq" bench "$minilm" --url "$A" --collection m --clients "$clients" --rate "$rate" --duration "$seconds" --ef 64 --json)
    after=$(extra_reads)
    python3 - "$1" "$out" "$before" "$after" <<'PY'
import json, sys
label, r, before, after = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3] or 0), int(sys.argv[4] or 0)
extra = (after - before) / max(1, r["requests"])
print(f"| {label} | {r['qps']:.0f} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} | {r['p99_ms']:.2f} | {r['p999_ms']:.2f} | {r['max_ms']:.1f} | {extra:.3f} | {r['errors']} |")
PY
}
stall_loop() { while true; do kill -STOP "$xpid"; sleep 0.05; kill -CONT "$xpid"; sleep 0.45; done; }
start_stalls() { if [ "$mode" = network ]; then kill -USR1 "$proxy"; else stall_loop & stopper=$!; fi; }
stalled="X stalled 50 ms of 500"
[ "$mode" = network ] && stalled="X's link held 50 ms at random moments"

echo "| run ($rate req/s open loop, $clients clients, ${seconds} s each) | QPS | p50 ms | p95 ms | p99 ms | p99.9 ms | max ms | extra reads/query | errors |"
echo "|---|---|---|---|---|---|---|---|---|"
healthy=$(run "healthy, fan-out off")
echo "$healthy"
p95=$(echo "$healthy" | awk -F'|' '{print $5}' | tr -d ' ')
delay=$(python3 -c "import math; print(max(1, math.ceil(float('$p95'))))")

start_stalls
run "$stalled, fan-out off"
"$vq" update-collection m --read-fan-out-delay-ms "$delay" --url "$A" >/dev/null
run "$stalled, read_fan_out_delay_ms $delay"

# A again, choosing replicas by recent latency (the default).
"$vq" update-collection m --read-fan-out-delay-ms 0 --url "$A" >/dev/null
kill -TERM "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true
"$vq" serve --listen "127.0.0.1:$pa" --data-dir "$work/a" 2>"$work/a2.log" & pids[0]=$!
for _ in $(seq 100); do curl -sf "$A/collections/m" >/dev/null && break; sleep 0.1; done
sleep 2
run "latency-aware choice, $stalled, fan-out off"
"$vq" update-collection m --read-fan-out-delay-ms "$delay" --url "$A" >/dev/null
run "latency-aware choice, $stalled, read_fan_out_delay_ms $delay"
# Last: factor 1 doubles every shard read; at this rate it overloads two cores, and the
# backlog it leaves on the peers would spoil any run after it.
"$vq" update-collection m --read-fan-out-delay-ms 0 --read-fan-out-factor 1 --url "$A" >/dev/null
run "$stalled, read_fan_out_factor 1"
[ -n "$stopper" ] && { kill "$stopper"; stopper=; }
kill -CONT "$xpid" || true
