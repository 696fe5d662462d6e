#!/usr/bin/env bash
# Issue 3's benchmarks: vq against hnswlib (minilm-20k and synthetic 200k x 128, same threads),
# opening an indexed 200k directory, and the write-load scenario. Release build; a few minutes.
#   Benchmarks/setup-venv.sh && Benchmarks/indexing.sh [MINILM_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
minilm=${1:-../shared/data/minilm-20k}
py=Benchmarks/.venv/bin/python
[ -x "$py" ] || Benchmarks/setup-venv.sh
swift build -c release >&2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for t in 1 2; do
    echo "== minilm-20k, $t thread(s)"
    "$py" Benchmarks/compare.py "$minilm" --threads "$t" --space ip
done

.build/release/vq bench --synthetic 200000,128 --distance euclid --ef 34 --threads 2 --save-dataset "$work/syn" -q >/dev/null
for t in 1 2; do
    echo "== synthetic 200000 x 128 (euclid), $t thread(s)"
    "$py" Benchmarks/compare.py "$work/syn" --threads "$t" --space l2
done

echo "== opening the indexed 200k directory and answering one query"
.build/release/vq bench "$work/syn" --distance euclid --ef 34 --threads 2 --data-dir "$work/d200" -q >/dev/null
"$py" Benchmarks/cold_start.py "$work/d200" bench "$work/syn/query.fvecs"

echo "== write-load on minilm-20k"
.build/release/vq bench "$minilm" --scenario write-load --duration 10 -q
