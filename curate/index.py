"""Hamming-distance neighbour search over 64-bit codes that scales (no N x N matrix).

Multi-index hashing: the 64 bits are cut into m bands. Band i is probed with up to t_i bit
flips, and the t_i are chosen so that sum(t_i + 1) > r: if two codes differ in at most r bits
then, by pigeonhole, some band i differs in at most t_i bits. Each band keeps the codes sorted
by that band's value with a direct-address offset table (2^bits + 1 entries), so a query looks
up its band value and every value within t_i bit flips of it, then checks the codes found with
XOR + popcount. With r = 8 and m = 3 that is ~240 look-ups per band.

Speed comes from memory order, not from fewer candidates: the queries are sorted by the band's
value and probed flip mask by flip mask, so consecutive look-ups land next to each other in the
tables. A pair close in several bands is reported only by the first such band (no np.unique).

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


def _band_values(codes: np.ndarray, start: int, stop: int) -> np.ndarray:
    return ((codes >> _U64(start)) & _U64((1 << (stop - start)) - 1)).astype(np.int64)


def _runs(first: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the runs [first, first + count) laid end to end (counts > 0), and where
    each run ends. A cumulative sum of steps: faster than np.repeat when runs are short."""
    ends = np.cumsum(counts)
    step = np.ones(int(ends[-1]), dtype=np.int64)
    step[0] = first[0]
    step[ends[:-1]] = first[1:] - (first[:-1] + counts[:-1] - 1)
    return np.cumsum(step, out=step), ends


def _spread(values: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """values[i] repeated over run i (runs end at `ends`): an XOR prefix scan of the changes,
    about twice as fast as np.repeat when the runs are short."""
    out = np.zeros(int(ends[-1]), dtype=_U64)
    out[0] = values[0]
    out[ends[:-1]] = values[1:] ^ values[:-1]
    return np.bitwise_xor.accumulate(out, out=out)


class HammingIndex:
    """Codes to search, organised for radius queries up to `max_radius` bits."""

    def __init__(self, codes: np.ndarray, *, max_radius: int = 8):
        self.codes = np.ascontiguousarray(codes, dtype=_U64)
        self.max_radius = int(max_radius)
        m = bands_for(self.max_radius)
        edges = np.linspace(0, 64, m + 1).round().astype(int).tolist()
        self.bands = list(zip(edges[:-1], edges[1:]))  # [start, stop) bit ranges
        n = len(self.codes)
        self._tables = []
        for start, stop in self.bands:
            keys = _band_values(self.codes, start, stop)
            if n < 1 << 32:  # one sort of (key, position) beats a stable argsort
                order = np.sort((keys << 32) | np.arange(n, dtype=np.int64)) & 0xFFFFFFFF
            else:  # pragma: no cover - over 4 billion codes
                order = np.argsort(keys, kind="stable")
            counts = np.bincount(keys, minlength=1 << (stop - start))
            offsets = np.zeros(len(counts) + 1, dtype=np.int64)
            np.cumsum(counts, out=offsets[1:])
            # a sparse table (few codes, e.g. one dataset's hashes) is probed through a byte map
            # of its non-empty values, which stays in cache where the offsets would not
            occupied = counts > 0 if n < len(counts) // 4 else None
            # the codes themselves in band order: candidates are read from contiguous runs
            self._tables.append((order, self.codes[order], offsets, occupied))

    def __len__(self) -> int:
        return len(self.codes)

    def flips(self, radius: int) -> list[int]:
        """Bit flips probed per band for `radius` (-1: band not needed): sum(t + 1) = radius + 1,
        spread evenly, the spare ones on the widest bands (fewest codes per value)."""
        m = len(self.bands)
        units = [(radius + 1) // m] * m
        widest = sorted(range(m), key=lambda i: self.bands[i][0] - self.bands[i][1])
        for i in widest[:(radius + 1) % m]:
            units[i] += 1
        return [u - 1 for u in units]

    def search(self, queries: np.ndarray, radius: int | None = None, *, chunk: int = 1024
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All (query index, code index, distance) with distance <= radius, each pair once,
        sorted by query then code."""
        radius = self.max_radius if radius is None else int(radius)
        if radius > self.max_radius:
            raise ValueError(f"radius {radius} is over this index's max_radius {self.max_radius}")
        queries = np.ascontiguousarray(queries, dtype=_U64)
        flips = self.flips(radius)
        out_q, out_c = [], []
        for b, (start, stop) in enumerate(self.bands):
            if flips[b] < 0 or len(queries) == 0 or len(self.codes) == 0:
                continue
            keys = _band_values(queries, start, stop)
            by_key = np.argsort(keys)  # neighbouring queries probe neighbouring table entries
            masks = _flip_masks(stop - start, flips[b])
            for lo in range(0, len(queries), chunk):
                q, c = self._probe(b, queries, keys, by_key[lo:lo + chunk], masks, radius)
                # a pair within reach of an earlier band was reported by that band
                x = queries[q] ^ self.codes[c]
                new = np.ones(len(q), dtype=bool)
                for e in range(b):
                    if flips[e] >= 0:
                        new &= np.bitwise_count(_band_values(x, *self.bands[e])) > flips[e]
                out_q.append(q[new])
                out_c.append(c[new])
        if not out_q:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, empty.astype(np.uint8)
        q, c = np.concatenate(out_q), np.concatenate(out_c)
        by_pair = np.lexsort((c, q))
        q, c = q[by_pair], c[by_pair]
        return q, c, np.bitwise_count(queries[q] ^ self.codes[c]).astype(np.uint8)

    def _probe(self, band: int, queries: np.ndarray, keys: np.ndarray, rows: np.ndarray,
               masks: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray]:
        """(query, code) pairs within `radius` among the codes whose band value is within the
        flip masks of the query rows' band values."""
        order, sorted_codes, offsets, occupied = self._tables[band]
        probe = (masks[:, None] ^ keys[rows][None, :]).ravel()  # mask-major: in table order
        if occupied is None:
            first = offsets[probe]
            counts = offsets[probe + 1] - first
            hit = np.flatnonzero(counts)  # a look-up can find nothing
            first, counts = first[hit], counts[hit]
        else:
            hit = np.flatnonzero(occupied[probe])
            first = offsets[probe[hit]]
            counts = offsets[probe[hit] + 1] - first
        if len(hit) == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        pos, ends = _runs(first, counts)
        x = sorted_codes[pos]
        x ^= _spread(queries[rows][hit % len(rows)], ends)  # each candidate's query code
        near = np.flatnonzero(np.bitwise_count(x) <= radius)
        run = np.searchsorted(ends, near, side="right")  # the look-up each near code came from
        return rows[hit[run] % len(rows)], order[pos[near]]


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
    return best_per_pair(qi[keep], ci[keep], d[keep], var[keep])


def best_per_pair(a: np.ndarray, b: np.ndarray, dist: np.ndarray, variant: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One row per (a, b): the smallest distance (then the lowest variant), sorted by (a, b)."""
    order = np.lexsort((variant, dist, b, a))
    a, b, dist, variant = a[order], b[order], dist[order], variant[order]
    first = np.ones(len(a), dtype=bool)
    first[1:] = (a[1:] != a[:-1]) | (b[1:] != b[:-1])
    return a[first], b[first], dist[first], variant[first]
