#!/usr/bin/env bash
# A/B of two vq release binaries over HTTP on the same data, alternating so that both see the
# same machine: /healthz (wrk -t2 -c64), a query at 1 client (p50) and 8 clients (req/s), 3
# rounds of 5 s each. Needs wrk.
#   Benchmarks/ab-http.sh OLD_VQ NEW_VQ [MINILM_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
old=$(realpath "$1"); new=$(realpath "$2")
minilm=${3:-../shared/data/minilm-20k}
work=$(mktemp -d)
server=""
trap '[ -n "$server" ] && kill -TERM "$server" 2>/dev/null; rm -rf "$work"' EXIT
"$new" create-collection m --dim 384 --indexing-threshold 0 --default-segment-number 1 --data-dir "$work/d" -q >/dev/null
"$new" upsert m "$minilm/base.fvecs" --data-dir "$work/d" -q >/dev/null
"$new" optimize m --data-dir "$work/d" -q >/dev/null
python3 - "$minilm/query.fvecs" "$work/bodies.jsonl" <<'PY'
import sys, struct
data=open(sys.argv[1],'rb').read(); d=struct.unpack('<i',data[:4])[0]; n=len(data)//(4*(d+1))
with open(sys.argv[2],'w') as out:
    for i in range(n):
        v=struct.unpack('<%df'%d, data[i*4*(d+1)+4:(i+1)*4*(d+1)])
        out.write('{"query":['+','.join(repr(x) for x in v)+'],"limit":10,"params":{"hnsw_ef":64}}\n')
PY
for round in 1 2 3; do
  for bin in old new; do
    rm -rf $work/c; cp -r $work/d $work/c
    vq=$old; [ $bin = new ] && vq=$new
    "$vq" serve --listen 127.0.0.1:0 --data-dir $work/c 2>$work/serve.log & pid=$!
    server=$pid
    sleep 1.5
    port=$(grep -o '127.0.0.1:[0-9]*' $work/serve.log | head -1 | cut -d: -f2)
    h=$(wrk -t2 -c64 -d5s "http://127.0.0.1:$port/healthz" | grep Requests/sec | awk '{print $2}')
    q1=$(BODIES=$work/bodies.jsonl wrk -t1 -c1 -d5s --latency -s Benchmarks/query.lua "http://127.0.0.1:$port" | grep -E " 50%" | awk '{print $2}')
    q8=$(BODIES=$work/bodies.jsonl wrk -t2 -c8 -d5s -s Benchmarks/query.lua "http://127.0.0.1:$port" | grep Requests/sec | awk '{print $2}')
    echo "round $round $bin healthz $h query1_p50 $q1 query8 $q8"
    kill -TERM $pid; wait $pid || true
    server=""
  done
done
