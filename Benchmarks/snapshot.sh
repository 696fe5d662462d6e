#!/usr/bin/env bash
# Snapshot create and restore time for an indexed collection (issue 17), with two references
# measured in the same run: `cp -r` of the collection's directory and `sha256sum` of the file.
#   Benchmarks/snapshot.sh [DATASET_DIR]   (default: synthetic 200000 x 384, made here)
# Release build; a few minutes (most of it indexing the collection once).
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release >&2
vq=.build/release/vq
# A server named in the environment or a client config file would take these commands over.
unset VQ_URL VQ_CONFIG VQ_DATA_DIR
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
dataset=${1:-}
if [ -z "$dataset" ]; then
    dataset="$work/syn"
    "$vq" bench --synthetic 200000,384 --queries-count 10 --ef 16 --save-dataset "$dataset" -q >/dev/null
fi
# An indexed collection "bench" in $work/d (vq bench keeps it there).
"$vq" bench "$dataset" --ef 16 --threads 2 --data-dir "$work/d" -q >/dev/null
now() { date +%s.%N; }
sync
t0=$(now); "$vq" snapshot create bench --data-dir "$work/d" --output "$work/b.snapshot" >"$work/desc.json"; t1=$(now)
sync
t2=$(now); cp -r "$work/d/collections/bench" "$work/copy"; sync; t3=$(now)
t4=$(now); sha256sum "$work/b.snapshot" >/dev/null; t5=$(now)
t6=$(now); "$vq" snapshot restore bench "$work/b.snapshot" --data-dir "$work/r" >/dev/null; t7=$(now)
points=$("$vq" count bench --data-dir "$work/r")
size=$(stat -c %s "$work/b.snapshot")

# Recovered through a server from an http:// location: server A serves the snapshot (its
# download route), server B downloads it to disk as it arrives and recovers it.
serve() {  # serve DIR LOG: starts vq serve on a free port, prints its pid and URL
    "$vq" serve --data-dir "$1" --listen 127.0.0.1:0 2>"$2" &
    local pid=$! url=""
    for _ in $(seq 1 100); do
        url=$(grep -o 'address="http://[0-9.:]*"' "$2" | head -1 | cut -d'"' -f2) || true
        [ -n "$url" ] && break
        sleep 0.1
    done
    echo "$pid $url"
}
read -r pa ua < <(serve "$work/d" "$work/a.log")
read -r pb ub < <(serve "$work/h" "$work/b.log")
trap 'kill "$pa" "$pb" 2>/dev/null || true; rm -rf "$work"' EXIT
name=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["name"])' "$work/desc.json")
sync
t8=$(now)
curl -sf -X PUT "$ub/collections/bench/snapshots/recover" -H 'content-type: application/json' \
     -d "{\"location\":\"$ua/collections/bench/snapshots/$name\"}" >/dev/null
t9=$(now)
fetched=$(curl -sf -X POST "$ub/collections/bench/points/count" -H 'content-type: application/json' -d '{"exact":true}')
kill "$pa" "$pb"; wait "$pa" "$pb" 2>/dev/null || true

python3 - "$t0" "$t1" "$t2" "$t3" "$t4" "$t5" "$t6" "$t7" "$t8" "$t9" "$size" "$points" "$fetched" <<'PY'
import sys, json
t = list(map(float, sys.argv[1:11])); size = int(sys.argv[11]); mb = size / 1e6
create, cp, sha, restore, http = t[1]-t[0], t[3]-t[2], t[5]-t[4], t[7]-t[6], t[9]-t[8]
print(f"snapshot: {mb:.0f} MB; restored {json.loads(sys.argv[12])['count']} points")
print(f"create  {create:6.2f} s  {mb/create:6.0f} MB/s  ({create/cp:.2f}x cp -r + sync of the collection, {cp:.2f} s)")
print(f"restore {restore:6.2f} s  {mb/restore:6.0f} MB/s  (unpack, open and verify every block checksum; {restore/cp:.2f}x cp -r)")
print(f"recover from http:// {http:6.2f} s  {mb/http:6.0f} MB/s  (download to disk, then as restore; {http/restore:.2f}x restore); "
      f"{json.loads(sys.argv[13])['result']['count']} points")
print(f"sha256sum of the file: {sha:.2f} s (create hashes as it writes)")
PY
