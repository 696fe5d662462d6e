#!/usr/bin/env bash
# Issue 4's benchmarks: /healthz with wrk, search over HTTP against embedded, and
# 10,000 idle keep-alive connections held meanwhile. Needs wrk (apt-get install wrk).
#   Benchmarks/http.sh [MINILM_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
minilm=${1:-../shared/data/minilm-20k}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
swift build -c release >&2
vq=$PWD/.build/release/vq
work=$(mktemp -d)
server=""
trap '[ -n "$server" ] && kill -TERM "$server" 2>/dev/null; rm -rf "$work"' EXIT
ef=64

echo "== embedded (vq bench, ef $ef)"
"$vq" bench "$minilm" --ef $ef --threads 2 -q | tail -2

# One indexed segment, as vq bench builds it, served over HTTP.
"$vq" create-collection m --dim 384 --indexing-threshold 0 --default-segment-number 1 --data-dir "$work/d" -q >/dev/null
"$vq" upsert m "$minilm/base.fvecs" --data-dir "$work/d" -q >/dev/null
"$vq" optimize m --data-dir "$work/d" -q >/dev/null
python3 - "$minilm/query.fvecs" "$work/bodies.jsonl" $ef <<'PY'
import sys, numpy as np
raw = np.fromfile(sys.argv[1], dtype="<i4"); d = int(raw[0]); q = raw.reshape(-1, d + 1)[:, 1:].view("<f4")
with open(sys.argv[2], "w") as out:
    for v in q:
        out.write('{"query":[' + ",".join(repr(float(x)) for x in v) + '],"limit":10,"params":{"hnsw_ef":%s}}\n' % sys.argv[3])
PY
"$vq" serve --listen 127.0.0.1:0 --data-dir "$work/d" 2>"$work/serve.log" &
server=$!
sleep 1
port=$(grep -o '127.0.0.1:[0-9]*' "$work/serve.log" | head -1 | cut -d: -f2)

echo "== GET /healthz, wrk 2 threads, 64 connections"
wrk -t2 -c64 -d10s --latency "http://127.0.0.1:$port/healthz" | grep -E "Requests/sec|50%|99%"

echo "== POST /points/query over HTTP, 1 client"
BODIES="$work/bodies.jsonl" wrk -t1 -c1 -d10s --latency -s Benchmarks/query.lua "http://127.0.0.1:$port" | grep -E "Requests/sec|50%|99%"

echo "== POST /points/query over HTTP, 8 clients, with 10,000 idle keep-alive connections held"
python3 Benchmarks/idle_connections.py "$port" 10000 25 &
idle=$!
sleep 8
BODIES="$work/bodies.jsonl" wrk -t2 -c8 -d10s --latency -s Benchmarks/query.lua "http://127.0.0.1:$port" | grep -E "Requests/sec|50%|99%"
wait $idle
