"""Candidate pairs: which pairs of files are worth verifying, from their hashes alone.

No N x N anywhere, all through `index.HammingIndex`: exact byte and pixel hashes; pairs whose
`phash` is within PHASH_RADIUS bits under one of the 8 rotations/flips; then channels for what a
whole-frame hash cannot see, each adding only an image's few nearest pairs not proposed yet: the
trimmed frame (`thash`: shifts into a black fill), the frame with its black share flattened
(`lhash_*`: darkened copies whose background went black), deskewed disc hashes (`rhash_*`,
`ghash_*`: any angle) and shifted / zoomed windows (`whash_*`: shifts and zooms up to 10%, and
both at once; `twhash`, the trimmed frame's centred window, for copies shifted into a fill), and
ring hashes (`ring_*`: a turn and a zoom about the centre at once, as augmentation scripts make
them). Every pair proposed is verified on its pixels (curate.verify).
"""

from __future__ import annotations

from concurrent.futures import Executor

import numpy as np
import pandas as pd

from curate.hashing import (CLIP_FLOORS, GHASH_COLUMNS, LHASH_COLUMNS, RHASH_COLUMNS, RING_COLUMNS, WHASH_COLUMNS,
                            dihedral)
from curate.index import HammingIndex, best_per_pair, dihedral_pairs
from curate.parallel import map_files

# Each constant's history (sets, seeds, before/after): docs/dedup-constants.md.
PHASH_RADIUS = 10  # bits, under the best of 8 rotations/flips
# any angle: disc hashes within this of an image's whole disc; only its few nearest (look-alikes crowd in)
RHASH_RADIUS, RHASH_TOP = 7, 3
# a copy turned on a black, grown canvas shows the original smaller: it keeps its own nearest disc match too
FILL_DARK, FILL_TOP = 0.1, 1
# shifts and zooms: windows within this, each image's nearest only (radiographs' windows look alike)
WHASH_RADIUS, WHASH_TOP = 10, 3
# a turn and a zoom at once (ring hashes): most nearest are copies already joined, never verified
RING_RADIUS, RING_TOP = 8, 5
# trimmed frames: a copy shifted into a black fill lines up with its original again
THASH_RADIUS, THASH_TOP = 8, 2
# a file this much at its darkest level was clipped: compared on flattened hashes (copies 0-2 bits apart)
CLIPPED, LHASH_RADIUS, LHASH_TOP = 0.4, 6, 2
PARALLEL_SEARCH = 2000  # hashed files from which the channels are searched on the workers (a pool costs ~0.1 s)
# candidate channels, earliest first: a pair several propose keeps the earliest's distance and variant
CHANNELS = ("sha256", "pixel_hash", "phash", "thash", "lhash", "rhash", "ghash", "ring", "window", "twindow")


def candidate_pairs(table: pd.DataFrame, workers=None) -> pd.DataFrame:
    """Pairs (a < b, row positions) worth verifying, with the channel that proposed them.

    Exact bytes or pixels, then pHash under 8 rotations/flips (all within PHASH_RADIUS); then
    the any-angle and the shift/zoom channels, whose radii reach into look-alike territory, add
    only each image's few nearest pairs that no earlier channel proposed. `variant` v: a ~ T_v(b),
    the rotation/flip v of hashing.dihedral (of whole frames for phash and lhash, else of the
    hashed discs or windows, whose mirror bit is still the frames'). The channels' searches run
    side by side on `workers` processes (from PARALLEL_SEARCH files); what each adds is then
    settled in channel order."""
    n = len(table)
    ok = np.flatnonzero((table["hash_status"] == "ok").to_numpy())
    frames = []
    for col in ("sha256", "pixel_hash"):
        if col in table:
            same = table.iloc[ok].groupby(table[col].iloc[ok], sort=False).indices
            firsts, others = [], []  # each set's first file with each of the others, one frame for all sets
            for rows in same.values():
                if len(rows) > 1:
                    rows = ok[np.sort(rows)]
                    firsts.append(np.full(len(rows) - 1, rows[0]))
                    others.append(rows[1:])
            if firsts:
                frames.append(_pairs(np.concatenate(firsts), np.concatenate(others), 0, 0, col))
    if len(ok) >= 2:
        searches = {}  # channel -> (search function, its arguments): run below, all at once
        phash = table["phash"].to_numpy(dtype=np.uint64)[ok]
        searches["phash"] = (dihedral_pairs, (phash, dihedral(phash), PHASH_RADIUS), {})
        if "thash" in table:
            th = table["thash"].to_numpy(dtype=np.uint64)[ok]
            searches["thash"] = (dihedral_pairs, (th, dihedral(th), THASH_RADIUS), {})
        dark = table["dark_share"].to_numpy()[ok] if "dark_share" in table else np.zeros(len(ok))
        if LHASH_COLUMNS[-1] in table:
            codes = table[list(LHASH_COLUMNS)].to_numpy(dtype=np.uint64)[ok]
            # the first floor a little above the file's own black share flattens all of it
            step = np.minimum(np.searchsorted(CLIP_FLOORS, dark + 0.02), len(CLIP_FLOORS) - 1)
            for k in range(len(CLIP_FLOORS)):
                q = np.flatnonzero((dark >= CLIPPED) & (step == k))  # files clipped up to this floor
                if len(q):
                    searches[f"lhash{k}"] = (dihedral_pairs, (codes[:, k], dihedral(codes[:, k]), LHASH_RADIUS),
                                             {"queries": q, "query_codes": codes[q, k:k + 1]})
        for channel, columns in (("rhash", RHASH_COLUMNS), ("ghash", GHASH_COLUMNS)):
            if columns[-1] in table:
                disc = table[list(columns)].to_numpy(dtype=np.uint64)[ok]
                searches[channel] = (dihedral_pairs, (disc[:, 0], dihedral(disc[:, 0]), RHASH_RADIUS),
                                     {"queries": np.arange(len(ok)), "query_codes": disc})
        if RING_COLUMNS[-1] in table:
            searches["ring"] = (ring_pairs, (table[list(RING_COLUMNS)].to_numpy(dtype=np.uint64)[ok], RING_RADIUS), {})
        if WHASH_COLUMNS[-1] in table:
            windows = table[list(WHASH_COLUMNS)].to_numpy(dtype=np.uint64)[ok]
            searches["window"] = (window_pairs, (windows, WHASH_RADIUS), {})
            if "twhash" in table:  # the trimmed frame's centred window, for frames that had strips
                tw = table["twhash"].to_numpy(dtype=np.uint64)[ok]
                cut = np.flatnonzero(tw != windows[:, 0])
                searches["twindow"] = (window_pairs, (windows, WHASH_RADIUS), {"queries": cut, "query_codes": tw[cut]})
        parallel = len(ok) >= PARALLEL_SEARCH and not isinstance(workers, Executor)
        # the window searches first: they take half the time
        names = sorted(searches, key=lambda c: not c.endswith("window"))
        found = dict(zip(names, map_files(_search, [searches[c] for c in names], workers=workers if parallel else 1,
                                          chunk_size=1)))

        a, b, d, v = found["phash"]
        frames.append(_pairs(ok[a], ok[b], d, v, "phash"))
        if "thash" in found:
            cut = th != phash  # the frame had flat strips to trim
            f = found["thash"]
            _add_nearest_new(frames, ok, n, f, THASH_TOP, "ab", "thash", keep=cut[f[0]] | cut[f[1]])
        for k in range(len(CLIP_FLOORS)):
            if f"lhash{k}" in found:
                _add_nearest_new(frames, ok, n, found[f"lhash{k}"], LHASH_TOP, "a", "lhash")
        for channel in ("rhash", "ghash"):
            if channel in found:
                f = found[channel]
                _add_nearest_new(frames, ok, n, f, RHASH_TOP, "b", channel)  # b: the indexed image
                _add_nearest_new(frames, ok, n, f, FILL_TOP, "a", channel, keep=dark[f[0]] >= FILL_DARK)
        if "ring" in found:
            _add_nearest_new(frames, ok, n, found["ring"], RING_TOP, "ab", "ring")
        if "window" in found:
            _add_nearest_new(frames, ok, n, found["window"], WHASH_TOP, "a", "window")  # a: the querying image
        if "twindow" in found:
            _add_nearest_new(frames, ok, n, found["twindow"], THASH_TOP, "a", "twindow")
    if not frames:
        return pd.DataFrame({"a": [], "b": [], "dist": [], "variant": [], "channel": []})
    pairs = pd.concat(frames, ignore_index=True)
    rank = pairs["channel"].map({c: i for i, c in enumerate(CHANNELS)})
    pairs = pairs.assign(rank=rank).sort_values(["a", "b", "rank", "dist"], kind="stable")
    return pairs.drop_duplicates(["a", "b"]).drop(columns="rank").reset_index(drop=True)


def _search(spec: tuple) -> tuple[np.ndarray, ...]:
    """One channel's search, (function, args, kwargs), in a worker."""
    func, args, kwargs = spec
    return func(*args, **kwargs)


def _add_nearest_new(frames: list[pd.DataFrame], ok: np.ndarray, n: int, found: tuple, top: int, sides: str,
                     channel: str, keep: np.ndarray | bool = True) -> None:
    """Add to `frames` the pairs `found` (a, b, distance, variant; positions into `ok`, of a
    table of n rows) that no frame holds yet and `keep` allows, only each image's `top`
    nearest: as the pair's a, its b, or either (`sides` "a", "b" or "ab")."""
    a, b, d, v = found
    new = keep & ~_proposed(ok[a], ok[b], frames, n)
    a, b, d, v = a[new], b[new], d[new], v[new]
    near = np.zeros(len(a), dtype=bool)
    for side in sides:
        near |= nearest(a if side == "a" else b, d, top)
    frames.append(_pairs(ok[a[near]], ok[b[near]], d[near], v[near], channel))


def _pairs(a, b, dist, variant, channel: str) -> pd.DataFrame:
    """Pairs as a < b; `variant` v says a ~ T_v(b) (hashing.dihedral's rotation/flip v of b), so
    it is inverted where the two swap places."""
    a, b, variant = np.asarray(a), np.asarray(b), np.asarray(variant)
    variant = np.where(a > b, INVERSE_VARIANT[variant], variant)
    return pd.DataFrame({"a": np.minimum(a, b), "b": np.maximum(a, b), "dist": dist, "variant": variant,
                         "channel": channel})


# the inverse of variant v = 2k + m (mirror if m, then k quarter turns): a mirrored one is its own
# inverse (a mirror, turned, mirrored again, turns back); a plain turn by k is undone by 4 - k
INVERSE_VARIANT = np.array([v if v % 2 else 2 * ((4 - v // 2) % 4) for v in range(8)])


def _proposed(a: np.ndarray, b: np.ndarray, frames: list[pd.DataFrame], n: int) -> np.ndarray:
    """Which of the pairs (a, b) the frames already hold."""
    if not frames:
        return np.zeros(len(a), dtype=bool)
    known = np.concatenate([f["a"].to_numpy(np.int64) * n + f["b"].to_numpy(np.int64) for f in frames])
    return np.isin(np.minimum(a, b).astype(np.int64) * n + np.maximum(a, b), known)


def window_pairs(windows: np.ndarray, radius: int, queries: np.ndarray | None = None,
                 query_codes: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
    """Shift/zoom candidates: each image's centred window, under its 8 rotations/flips, against
    every image's shifted and zoomed windows (hashing.WHASH_COLUMNS). Returns (a, b, distance,
    variant: a ~ T_v(b)) with the best variant per image pair, a != b (a pair may come in both
    orders). queries / query_codes: other codes to ask with (one per row), and the image each belongs to."""
    n, k = windows.shape
    if query_codes is None:
        queries, query_codes = np.arange(n), windows[:, 0]
    index = HammingIndex(windows.reshape(-1), max_radius=radius)
    q, c, d = index.search(dihedral(np.asarray(query_codes, dtype=np.uint64)).reshape(-1), radius)
    a, var, b = np.asarray(queries)[q // 8], q % 8, c // k
    keep = a != b
    a, b, d, var = best_per_pair(a[keep], b[keep], d[keep], var[keep])
    return a, b, d, INVERSE_VARIANT[var]  # the query's variant: T_v(a) ~ b, so a ~ T_v^-1(b)


def ring_pairs(rings: np.ndarray, radius: int) -> tuple[np.ndarray, ...]:
    """Turn/zoom candidates: every image's moved ring windows (hashing.RING_COLUMNS) against
    every image's middle one. Returns (a, b, distance, variant 0) with a < b, the nearest window
    per image pair (the variant says nothing: the hash is blind to turns and mirrors)."""
    n, k = rings.shape
    index = HammingIndex(rings[:, k // 2], max_radius=radius)
    q, c, d = index.search(rings.reshape(-1), radius)
    a, b = q // k, c
    keep = a != b
    a, b, d = np.minimum(a, b)[keep], np.maximum(a, b)[keep], d[keep]
    return best_per_pair(a, b, d, np.zeros(len(a), dtype=np.int64))


def nearest(who: np.ndarray, dist: np.ndarray, top: int) -> np.ndarray:
    """Mask of the pairs that are among the `top` smallest distances of their `who` image
    (ties broken by position, so the result does not depend on anything else)."""
    order = np.lexsort((np.arange(len(who)), dist, who))
    rank = np.empty(len(who), dtype=np.int64)
    sorted_who = who[order]
    rank[order] = np.arange(len(who)) - np.searchsorted(sorted_who, sorted_who, side="left")
    return rank < top
