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
python3 - "$t0" "$t1" "$t2" "$t3" "$t4" "$t5" "$t6" "$t7" "$size" "$points" <<'PY'
import sys, json
t = list(map(float, sys.argv[1:9])); size = int(sys.argv[9]); mb = size / 1e6
create, cp, sha, restore = t[1]-t[0], t[3]-t[2], t[5]-t[4], t[7]-t[6]
print(f"snapshot: {mb:.0f} MB; restored {json.loads(sys.argv[10])['count']} points")
print(f"create  {create:6.2f} s  {mb/create:6.0f} MB/s  ({create/cp:.2f}x cp -r + sync of the collection, {cp:.2f} s)")
print(f"restore {restore:6.2f} s  {mb/restore:6.0f} MB/s  (unpack, open and verify every block checksum; {restore/cp:.2f}x cp -r)")
print(f"sha256sum of the file: {sha:.2f} s (create hashes as it writes)")
PY
