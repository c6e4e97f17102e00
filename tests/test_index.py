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


def test_every_radius_matches_brute_force_with_crowded_buckets():
    # codes that share band values (near-identical hashes, as real duplicates make) fill some
    # table buckets with hundreds of codes; every radius up to max_radius must stay exact
    rng = np.random.default_rng(2)
    base = random_codes(rng, 40)
    db = np.concatenate([random_codes(rng, 1500),
                         [flip_bits(rng, base[i % 40], int(rng.integers(0, 6))) for i in range(1500)]])
    db = db.astype(np.uint64)
    queries = np.concatenate([db[::7], [flip_bits(rng, b, 3) for b in base]]).astype(np.uint64)
    brute = np.bitwise_count(queries[:, None] ^ db[None, :])
    for max_radius in (6, 10):  # 3 and 4 bands
        index = HammingIndex(db, max_radius=max_radius)
        for radius in range(max_radius + 1):
            q, c, d = index.search(queries, radius, chunk=97)  # several chunks per band
            bq, bc = np.nonzero(brute <= radius)
            assert len(q) == len(bq)  # each pair once
            assert set(zip(q.tolist(), c.tolist())) == set(zip(bq.tolist(), bc.tolist()))
            assert (d == brute[q, c]).all()


def test_dense_tables_match_brute_force():
    # more codes than a quarter of a band's values: the tables are probed directly (no byte map)
    rng = np.random.default_rng(4)
    db = random_codes(rng, 20000)
    queries = np.array([flip_bits(rng, db[i], int(rng.integers(0, 12))) for i in range(200)], dtype=np.uint64)
    index = HammingIndex(db, max_radius=10)  # 4 bands of 16 bits
    assert all(t[3] is None for t in index._tables)
    brute = np.bitwise_count(queries[:, None] ^ db[None, :])
    for radius in (2, 10):
        q, c, d = index.search(queries, radius)
        bq, bc = np.nonzero(brute <= radius)
        assert list(zip(q.tolist(), c.tolist())) == list(zip(bq.tolist(), bc.tolist()))  # sorted, once each
        assert (d == brute[q, c]).all()


def test_empty_inputs_find_nothing():
    index = HammingIndex(np.zeros(0, dtype=np.uint64))
    assert len(index.search(np.array([1, 2], dtype=np.uint64))[0]) == 0
    index = HammingIndex(np.array([5], dtype=np.uint64))
    assert len(index.search(np.zeros(0, dtype=np.uint64))[0]) == 0


def test_dihedral_self_join_matches_brute_force_over_all_variants():
    rng = np.random.default_rng(3)
    codes = random_codes(rng, 400)
    variants = dihedral(codes)
    # plant copies: a random variant of an earlier code with a few bits flipped
    for i in range(300, 400):
        codes[i] = flip_bits(rng, variants[i - 300, rng.integers(0, 8)], int(rng.integers(0, 7)))
    variants = dihedral(codes)
    a, b, d, v = dihedral_pairs(codes, variants, 6)
    dist = np.bitwise_count(codes[:, None, None] ^ variants[None, :, :])  # (query, found, variant)
    best = dist.min(axis=2)
    bq, bc = np.nonzero((best <= 6) & (np.arange(400)[:, None] < np.arange(400)[None, :]))
    assert set(zip(a.tolist(), b.tolist())) == set(zip(bq.tolist(), bc.tolist()))
    assert (d == best[a, b]).all() and (dist[a, b, v] == d).all()
