#!/usr/bin/env bash
# Builds vq (release) and runs the main job on an embedded data directory:
# create a collection, upsert 10,000 generated points from a pipe, search.
# Needs only the Swift toolchain and awk; leaves nothing behind.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release >&2
vq=.build/release/vq
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
data="$work/vq-data"

"$vq" create-collection demo --dim 64 --data-dir "$data"

# 10,000 points of 64 seeded random numbers, payload {"group": i % 10}.
awk 'BEGIN { srand(42); for (i = 0; i < 10000; i++) {
    printf "{\"id\":%d,\"vector\":[", i
    for (j = 0; j < 64; j++) printf "%s%.6f", (j ? "," : ""), rand() * 2 - 1
    printf "],\"payload\":{\"group\":%d}}\n", i % 10 } }' |
    "$vq" upsert demo - --data-dir "$data"

query=$(awk 'BEGIN { srand(7); printf "["; for (j = 0; j < 64; j++) printf "%s%.6f", (j ? "," : ""), rand() * 2 - 1; print "]" }')
"$vq" search demo --vector "$query" --limit 5 --with-payload --format table --data-dir "$data"
"$vq" search demo --vector "$query" --limit 3 --data-dir "$data"
