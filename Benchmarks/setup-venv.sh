#!/usr/bin/env bash
# Makes Benchmarks/.venv with what the comparison scripts need (hnswlib, numpy).
set -euo pipefail
cd "$(dirname "$0")"
python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q hnswlib numpy
echo "Benchmarks/.venv ready"
