"""The Hamming index finds exactly what a brute-force scan finds, without an N x N matrix."""

from __future__ import annotations

import numpy as np

from curate.hashing import dihedral
from curate.index import HammingIndex, dihedral_pairs


def random_codes(rng, n):
    return rng.integers(0, 2**63, n, dtype=np.uint64) ^ (rng.integers(0, 2, n, dtype=np.uint64) << np.uint64(63))


def flip_bits(rng, code, k):
    for b in rng.choice(64, k, replace=False):
        code ^= np.uint64(1) << np.uint64(b)
    return code


def test_radius_search_matches_brute_force():
    rng = np.random.default_rng(0)
    db = random_codes(rng, 3000)
    queries = np.array([flip_bits(rng, db[i], int(rng.integers(0, 12))) for i in range(300)], dtype=np.uint64)
    index = HammingIndex(db, max_radius=8)
    for radius in (0, 3, 8):
        q, c, d = index.search(queries, radius)
        brute = np.bitwise_count(queries[:, None] ^ db[None, :])  # fine in a test: 300 x 3000
        bq, bc = np.nonzero(brute <= radius)
        assert set(zip(q.tolist(), c.tolist())) == set(zip(bq.tolist(), bc.tolist()))
        assert (d == brute[q, c]).all()


def test_rotated_and_flipped_codes_are_found_with_their_variant():
    rng = np.random.default_rng(1)
    codes = random_codes(rng, 500)
    turned = dihedral(codes[:5])[:, 5]  # variant 5: mirrored, then turned 180 degrees
    codes = np.concatenate([codes, [flip_bits(rng, t, 2) for t in turned]])
    a, b, d, v = dihedral_pairs(codes, dihedral(codes), 4)
    found = {(int(x), int(y)): int(w) for x, y, w in zip(a, b, v)}
    for i in range(5):
        assert (i, 500 + i) in found
    assert len(found) == 5  # and nothing else among random codes
