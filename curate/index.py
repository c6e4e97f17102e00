"""Hamming-distance neighbour search over 64-bit codes that scales (no N x N matrix).

Multi-index hashing: the 64 bits are cut into m bands. If two codes differ in at most r bits,
then some band differs in at most floor(r / m) bits (pigeonhole). Each band keeps the codes
sorted by that band's value with a direct-address offset table (2^bits + 1 entries), so a
query looks up its band value and every value within floor(r / m) bit flips of it, then
checks the few codes found with XOR + popcount. With r = 8 and m = 3 that is 254 look-ups
per band and, for random codes, a handful of candidates per query.

    index = HammingIndex(codes)                       # the searched set (e.g. train)
    q, hit, dist = index.search(queries, radius=8)    # every (query, code) pair within 8 bits
"""

from __future__ import annotations

from itertools import combinations

import numpy as np

_U64 = np.uint64


def bands_for(radius: int) -> int:
    """Fewest bands such that each band needs at most 2 bit flips probed, and at least 3
    (so a band's offset table, 2^bits entries, stays small: <= 2^22)."""
    return max(3, radius // 3 + 1)


def _flip_masks(bits: int, flips: int) -> np.ndarray:
    masks = [0]
    for f in range(1, flips + 1):
        masks += [sum(1 << b for b in combo) for combo in combinations(range(bits), f)]
    return np.array(masks, dtype=np.int64)


class HammingIndex:
    """Codes to search, organised for radius queries up to `max_radius` bits."""

    def __init__(self, codes: np.ndarray, *, max_radius: int = 8):
        self.codes = np.ascontiguousarray(codes, dtype=_U64)
        self.max_radius = int(max_radius)
        m = bands_for(self.max_radius)
        edges = np.linspace(0, 64, m + 1).round().astype(int)
        self.bands = list(zip(edges[:-1], edges[1:]))  # [start, stop) bit ranges
        self.flips = self.max_radius // m
        self._tables = []
        for start, stop in self.bands:
            keys = self._band(self.codes, start, stop)
            order = np.argsort(keys, kind="stable").astype(np.int64)
            counts = np.bincount(keys, minlength=1 << (stop - start))
            offsets = np.zeros(len(counts) + 1, dtype=np.int64)
            np.cumsum(counts, out=offsets[1:])
            # the codes themselves in band order: candidates are read from contiguous runs
            self._tables.append((order, self.codes[order], offsets, _flip_masks(stop - start, self.flips)))

    @staticmethod
    def _band(codes: np.ndarray, start: int, stop: int) -> np.ndarray:
        return ((codes >> _U64(start)) & _U64((1 << (stop - start)) - 1)).astype(np.int64)

    def __len__(self) -> int:
        return len(self.codes)

    def search(self, queries: np.ndarray, radius: int | None = None, *, chunk: int = 2048
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All (query index, code index, distance) with distance <= radius, each pair once."""
        radius = self.max_radius if radius is None else int(radius)
        if radius > self.max_radius:
            raise ValueError(f"radius {radius} is over this index's max_radius {self.max_radius}")
        queries = np.ascontiguousarray(queries, dtype=_U64)
        out_q, out_c, out_d = [], [], []
        for lo in range(0, len(queries), chunk):
            q, c, d = self._search_chunk(queries[lo:lo + chunk], radius)
            out_q.append(q + lo)
            out_c.append(c)
            out_d.append(d)
        if not out_q:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, empty.astype(np.uint8)
        return np.concatenate(out_q), np.concatenate(out_c), np.concatenate(out_d)

    def _search_chunk(self, queries: np.ndarray, radius: int):
        found_q, found_c = [], []
        for (start, stop), (order, sorted_codes, offsets, masks) in zip(self.bands, self._tables):
            keys = (self._band(queries, start, stop)[:, None] ^ masks[None, :]).ravel()
            lo = offsets[keys]
            counts = offsets[keys + 1] - lo
            probe = np.flatnonzero(counts)  # most look-ups of a sparse table find nothing
            lo, counts = lo[probe], counts[probe]
            total = int(counts.sum())
            if total == 0:
                continue
            # expand every [lo, lo + count) run into positions, remembering which query asked
            ends = np.cumsum(counts)
            pos = np.arange(total, dtype=np.int64) + np.repeat(lo - (ends - counts), counts)
            qidx = np.repeat(probe // len(masks), counts)
            keep = np.bitwise_count(queries[qidx] ^ sorted_codes[pos]) <= radius
            found_q.append(qidx[keep])
            found_c.append(order[pos[keep]])
        if not found_q:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, empty.astype(np.uint8)
        q = np.concatenate(found_q)
        c = np.concatenate(found_c)
        # a pair close in several bands was found once per band: keep it once
        pair = np.unique(q * len(self.codes) + c)
        q, c = pair // len(self.codes), pair % len(self.codes)
        return q, c, np.bitwise_count(queries[q] ^ self.codes[c]).astype(np.uint8)


def dihedral_pairs(codes: np.ndarray, variants: np.ndarray, radius: int, *,
                   queries: np.ndarray | None = None, query_codes: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pairs of images whose codes are within `radius` under some rotation/flip.

    codes: (N,) the searched images' codes as they are (column 0 of `variants`);
    variants: (N, 8) their 8 dihedral variants (see hashing.dihedral), which go in the index;
    query_codes: (Q, S) codes of the querying images (S per image, e.g. several scales), by
      default `codes` itself (a self-join); queries: the image index of each query row.
    Returns (query image, found image, distance, variant) with the best variant per pair;
    in a self-join each unordered pair appears once (query < found).
    """
    n = len(variants)
    index = HammingIndex(variants.reshape(-1), max_radius=radius)
    self_join = query_codes is None
    if self_join:
        query_codes = np.asarray(codes, dtype=_U64)[:, None]
        queries = np.arange(n)
    query_codes = np.asarray(query_codes, dtype=_U64)
    s = query_codes.shape[1]
    q, c, d = index.search(query_codes.reshape(-1), radius)
    qi = np.asarray(queries)[q // s]
    ci, var = c // 8, c % 8
    keep = qi != ci if not self_join else qi < ci
    qi, ci, d, var = qi[keep], ci[keep], d[keep], var[keep]
    # best (smallest distance) variant per image pair
    order = np.lexsort((var, d, ci, qi))
    qi, ci, d, var = qi[order], ci[order], d[order], var[order]
    first = np.ones(len(qi), dtype=bool)
    first[1:] = (qi[1:] != qi[:-1]) | (ci[1:] != ci[:-1])
    return qi[first], ci[first], d[first], var[first]
