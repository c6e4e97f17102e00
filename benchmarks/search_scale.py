"""Neighbour search at scale: 1,000,000 synthetic 64-bit hashes, their 8 rotations/flips in
the index (8,000,000 codes), every hash queried at Hamming <= 8. Time and peak memory.

Random hashes, plus planted near-copies (a rotated/flipped variant with a few bits flipped)
to check that every planted pair is found. Prints a table; not a timed test.

    .venv/bin/python benchmarks/search_scale.py --n 1000000
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from curate.hashing import dihedral  # noqa: E402
from curate.index import dihedral_pairs  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--radius", type=int, default=8)
    ap.add_argument("--planted", type=int, default=1000)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    n, k = args.n, args.planted
    codes = rng.integers(0, 2**63, n, dtype=np.uint64) ^ (rng.integers(0, 2, n, dtype=np.uint64) << np.uint64(63))
    # plant: code[n-k+i] = variant v of code[i] with up to radius bits flipped
    v = rng.integers(0, 8, k)
    planted = dihedral(codes[:k])[np.arange(k), v]
    for i in range(k):
        for b in rng.choice(64, int(rng.integers(0, args.radius + 1)), replace=False):
            planted[i] ^= np.uint64(1) << np.uint64(int(b))
    codes[n - k:] = planted

    t = time.perf_counter()
    variants = dihedral(codes)
    t_var = time.perf_counter() - t
    t, cpu = time.perf_counter(), time.process_time()
    a, b, d, var = dihedral_pairs(codes, variants, args.radius)
    t_search, cpu = time.perf_counter() - t, time.process_time() - cpu
    found = set(zip(a.tolist(), b.tolist()))
    hit = sum((i, n - k + i) in found for i in range(k))
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # KB on Linux
    print(f"{n:,} hashes x 8 variants = {8 * n:,} codes in the index, Hamming <= {args.radius}")
    print(f"{'8 variants (bit operations)':32s} {t_var:8.1f} s")
    print(f"{'index + search (self-join)':32s} {t_search:8.1f} s   (CPU {cpu:.1f} s)")
    print(f"{'pairs found':32s} {len(a):8,d}")
    print(f"{'planted pairs found':32s} {hit:>5d} / {k}")
    print(f"{'peak memory (max RSS)':32s} {peak_gb:8.2f} GB")
    print(f"{'load average (1 min) at the end':32s} {os.getloadavg()[0]:8.1f}   ({os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
