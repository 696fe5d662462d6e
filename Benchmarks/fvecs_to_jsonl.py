#!/usr/bin/env python3
"""Convert a TEXMEX .fvecs file to vq JSON Lines: {"id": row, "vector": [...]} per line.

Usage: fvecs_to_jsonl.py IN.fvecs OUT.jsonl
Floats are printed with repr() of the float32 value widened to double (as numpy's
tolist() does), the way most embedding pipelines write them.
"""
import json
import sys

import numpy as np


def convert(src: str, dst: str) -> None:
    """Writes dst as JSON Lines of src's vectors, id = row number."""
    raw = np.fromfile(src, dtype="<i4")
    dim = int(raw[0])
    vectors = raw.reshape(-1, dim + 1)[:, 1:].view("<f4")
    with open(dst, "w") as out:
        for i, row in enumerate(vectors):
            out.write(json.dumps({"id": i, "vector": row.tolist()}, separators=(",", ":")))
            out.write("\n")


def main() -> None:
    convert(sys.argv[1], sys.argv[2])


if __name__ == "__main__":
    main()
