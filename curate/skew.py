"""One image's own skew, from the fill wedges a turn inside an enlarged canvas leaves at its corners.

A scan turned by an arbitrary angle inside an enlarged canvas shows wedges of fill at its corners
(constant/black, replicated edge pixels, or a mirror of the inside). `estimate_skew` tests, for
each candidate angle, whether the pixels that angle puts in the wedges are that fill, against a
null that the fill does not explain; cheap on a small copy first (most straight images stop
there), then refined on larger copies. `wedge_fit` tests one known angle (a verified pair's
turn); `skew_file` searches one file; `SkewCache` keeps the searches between runs. Right-angle
turns cannot be seen from wedges; skews under MIN_SKEW degrees are not searched.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from curate.errors import ImageError
from curate.imageio import decode, fit, remap_buffer

# Why each value is what it is, and the figures behind it: docs/orient-constants.md.
MIN_SKEW = 3.0  # degrees: smaller turns are not searched (their thin wedges look like border bands)
MAX_SKEW = 45.0  # degrees: past it, the same wedges are a right angle's plus a smaller turn
COARSE_SIDE = 96  # px (longest side) of the first, cheap search: most images stop there
COARSE_STEP = 1.0  # degrees between its angles: the refinement finds the rest
MID_SIDE = 128  # px of the refinement of its best candidates
FINE_SIDE = 256  # px of the refinement's last, dearest step
FINE_STEP = 0.25  # degrees between that step's angles
REFINE = 3  # coarse candidates refined (distinct peaks, not one peak's flanks)
GATE = 0.45  # a coarse best fit must reach this to be refined (else: straight; most are)
FINE_GATE = 0.5  # ... and a mid-size best fit this to pay for FINE_SIDE: on the tuned sets none under it reached FLAG
FIRST_ALL = 7.0  # degrees: the coarse search's first part holds every angle up to this and every odd one past it
FIRST_GATE = 0.3  # ... and a best fit under this there ends the search: straight films fit best at thin turns
ACCEPT = {"constant": 0.6, "replicate": 0.55, "reflect": 0.45}  # fit that applies a skew, per fill: precision first
THIN = 6.0  # degrees: wedges of smaller turns look like a scan's border bands...
THIN_BAR = 1.25  # ... so they must fit this much better
FLAG = 0.7  # share of ACCEPT from which an unapplied fit is flagged (0.7% of straight ones)
DECODE_SIDE = FINE_SIDE  # the largest copy the search looks at: no need to decode more
ROWS_FROM = 4096  # grid points from which _wedges tests only each row's ends (fewer: not worth it)
MIN_SIDE = 64  # px: smaller images are not searched for wedges
TEST_STEP = 0.5  # degrees between the angles tested around a pair's turn (its angle is good to ~1)
TEST_GRID = 0.1  # degrees: ... from the nearest point of this lattice, so an image size's wedge geometry is met again
SKEW_BAR = 0.5  # estimate_skew reports a skew from this confidence (its fill's acceptance bar)
NOISE = 2.0  # grey levels per pixel: JPEG noise, so flat regions count as no evidence
CLIP = 60.0  # grey levels: one wild pixel must not outweigh many


def _frame_size(w: int, h: int, deg: float) -> tuple[float, float] | None:
    """Size of the original exposure inside a w x h canvas enlarged to hold it turned by deg."""
    c, s = abs(np.cos(np.radians(deg))), abs(np.sin(np.radians(deg)))
    det = c * c - s * s
    if det < 1e-3:
        return None
    w0, h0 = (w * c - h * s) / det, (h * c - w * s) / det  # canvas was enlarged to hold it all
    return (w0, h0) if min(w0, h0) > 8 else None


def _wedges(h: int, w: int, deg: float, grid, delta: float, stretch: float, same: bool):
    """Where the hypothesis 'an exposure turned deg CCW in an enlarged canvas' (see _fits) puts
    its wedge pixels: (their flat indices, the wedge side of each, the 7 points sampled for
    each: x and y, 7 rows), or None when it does not fit the canvas."""
    size = (float(w), float(h)) if same else _frame_size(w, h, deg)
    if size is None:
        return None
    a, b = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    hu = (size[0] + stretch - 1) / 2
    hv = (size[1] - stretch * abs(a) / max(abs(b), 1e-3) - 1) / 2
    cx, cy = (w - 1) / 2, (h - 1) / 2
    margin = 1.0  # interpolation blurs a pixel either side of the wedge's edge
    dx, dy, index, row = grid
    # only pixels outside the exposure (grown by the margin) can be wedge pixels: each row's
    # inside is one interval, so the exact test below runs on the rows' ends only
    near = _outside_rows(h, a, b, hu + margin, hv + margin) if len(dx) > ROWS_FROM else None
    if near is not None:
        lo, hi = near
        near = np.flatnonzero((dx < lo[row]) | (dx > hi[row]))
        dx, dy, index = dx[near], dy[near], index[near]
    u = a * dx - b * dy  # canvas -> exposure coordinates (inverse of cv2's CCW rotation)
    v = b * dx + a * dy
    eu, ev = np.abs(u) - hu, np.abs(v) - hv
    beyond_u = (eu > margin) & (ev < -margin)
    sel = beyond_u | ((ev > margin) & (eu < -margin))
    if int(sel.sum()) < 16:
        return None
    bu, u, v = beyond_u[sel], u[sel], v[sel]
    normal = np.where(bu, u, v)  # exposure coordinate across the nearest edge
    side = (bu * np.int8(2)) + (normal > 0)  # which of the four wedge sides (int8: a radix sort)
    order = np.argsort(side, kind="stable")  # side by side, so each side's sum is one run
    bu, normal, side = bu[order], normal[order], side[order]
    along = np.where(bu, v[order], u[order])
    sign = np.where(normal > 0, 1.0, -1.0)
    half = np.where(bu, hu, hv)
    depth = np.abs(normal) - half
    xs, ys = np.empty((7, len(bu)), np.float32), np.empty((7, len(bu)), np.float32)
    cut = len(bu) - int(bu.sum())  # sorted by side: the v sides (bu False) come first

    vs, us = slice(0, cut), slice(cut, None)  # (u, v) per side: (along, normal) on the v sides, (normal, along) on the u sides

    def across(pos):  # the terms of the canvas points at |normal| = pos (rows share them)
        nn = sign * pos
        return b * nn[vs], a * nn[vs], cx + a * nn[us], cy - b * nn[us]

    def shifted(shift):  # ... and of the points moved `shift` along the edge
        tt = along + shift
        return cx + a * tt[vs], cy - b * tt[vs], b * tt[us], a * tt[us]

    # replicate: the fill just beyond the edge, not the edge pixel itself (scans often carry a
    # bright or dark line in their outermost pixel row); reflect: the mirror image about the
    # edge (half a pixel beyond the edge pixel); constant: just inside the edge, where a
    # constant fill would end in a step (deeper inside tells nothing of where the edge is)
    edge, mirror, inside = (across(p) for p in (half + margin + 0.5, half + 1.0 - depth, half - 1.5))
    still, ahead, behind = (shifted(s) for s in (0, delta, -delta))
    # row k: x = cx + a u + b v, y = cy - b u + a v (summed in that order)
    for k, (pos, shift) in enumerate(((edge, still), (edge, ahead), (edge, behind), (mirror, still), (mirror, ahead),
                                      (mirror, behind), (inside, still))):
        xs[k, vs], ys[k, vs] = shift[0] + pos[0], shift[1] + pos[1]
        xs[k, us], ys[k, us] = pos[2] + shift[2], pos[3] + shift[3]
    return index[sel][order], side, xs, ys


def _outside_rows(h: int, a: float, b: float, reach_u: float, reach_v: float):
    """Per row of an h-row image, the offsets from the centre (lo, hi) strictly between which
    |u| < reach_u and |v| < reach_v (u, v as in _wedges), a little shrunk so rounding cannot
    put a pixel that the exact test selects inside; None when there is no such inside (or
    the turn is too small to bound it this way)."""
    slack = 1e-3
    reach_u, reach_v = reach_u - slack, reach_v - slack
    if reach_u <= 0 or reach_v <= 0 or a <= 0.5 or abs(b) < 1e-3:
        return None
    dy = np.arange(h) - (h - 1) / 2
    lo_u, hi_u = (b * dy - reach_u) / a, (b * dy + reach_u) / a
    lo_v, hi_v = (-a * dy - reach_v) / b, (-a * dy + reach_v) / b
    if b < 0:
        lo_v, hi_v = hi_v, lo_v
    # (where hi < lo the row has no inside: every pixel is below lo or above hi)
    return np.maximum(lo_u, lo_v) + slack, np.minimum(hi_u, hi_v) - slack


def _layout(h: int, w: int, hyps: tuple, sparse: bool):
    """The wedge pixels and sample points of every hypothesis (deg, stretch, same) on an h x w
    image, end to end, side by side within each: what _fits needs besides the pixels."""
    wedges = _sparse_wedges if sparse else _dense_wedges
    found = [wedges(h, w, d, st * max(h, w) / FINE_SIDE, same) for d, st, same in hyps]
    live = [k for k, f in enumerate(found) if f is not None]
    if not live:
        return None
    parts = [found[k] for k in live]
    lengths = np.array([len(p[0]) for p in parts])
    bins = np.repeat(np.arange(len(live)), lengths) * 4 + np.concatenate([p[1] for p in parts])
    count = np.bincount(bins, minlength=4 * len(live))
    starts = np.concatenate([[0], np.cumsum(count)[:-1]])
    runs = np.flatnonzero(count)  # the (hypothesis, side) runs that hold points
    total = int(lengths.sum())
    mx, my = remap_buffer(7 * total), remap_buffer(7 * total)
    for k, m in ((2, mx), (3, my)):  # the hypotheses' points end to end, straight into the maps
        np.concatenate([p[k] for p in parts], axis=1, out=m.ravel()[:7 * total].reshape(7, total))
    return np.array(live), np.concatenate([p[0] for p in parts]), count.reshape(-1, 4), runs, starts[runs], \
        np.cumsum(lengths), mx, my


# the refinement's last step tests a quarter-degree lattice: images of one size meet its hypotheses again
@functools.lru_cache(maxsize=64)
def _dense_wedges(h: int, w: int, deg: float, stretch: float, same: bool):
    """_wedges on every pixel of an h x w image, kept."""
    return _wedges(h, w, deg, _grid(h, w), max(2.0, max(h, w) / 40), stretch, same)


# the refinement's angles lie on a half-degree lattice, wedge_fit's on TEST_GRID's: met again, size by size
@functools.lru_cache(maxsize=2048)
def _sparse_wedges(h: int, w: int, deg: float, stretch: float, same: bool):
    """_wedges on every other pixel of an h x w image (see _grid), kept."""
    return _wedges(h, w, deg, _grid(h, w, True), max(2.0, max(h, w) / 40), stretch, same)


# the first search's layouts, its two parts apart: a set's images share a few sizes, and geometry is most of its cost
_kept_layout = functools.lru_cache(maxsize=16)(_layout)


def _fits(img: np.ndarray, hyps: tuple, sparse: bool = False, keep: bool = False) -> list[tuple[float, str]]:
    """How well 'img is an exposure turned deg CCW in an enlarged canvas, corners filled' fits,
    for each hypothesis (deg, stretch, same) of `hyps`: (score, fill mode), -1 where it cannot.

    Each pixel the hypothesis puts in a corner wedge is compared with what the fill would make
    it (a constant; the exposure's edge pixel, replicated; its mirror image inside the edge)
    and, as the null, with what it would be if the fill did NOT hold (the same test `delta`
    pixels along the edge; for a constant fill, the pixel just inside the edge). Flat
    regions say nothing either way and cancel out; where the image has detail a true wedge
    stands out (its fill residual is JPEG noise, the null's is the detail).
    Score per wedge side = sum(null - fill) / sum(null + fill + noise); the lower middle of
    the four sides counts (all wedges must agree, one odd side is tolerated), divided by the
    fill's acceptance bar (so 1 = just sure enough; thin wedges need more). `stretch` moves
    the exposure's width by that many pixels at FINE_SIDE (and its height so the canvas still
    fits): near 45 degrees the canvas pins the exposure's shape only loosely. `same`: the
    exposure was turned inside a canvas of its own size (corners cut off), not an enlarged one.
    All hypotheses are scored at once (one sampling pass, one count per wedge side); `keep`
    keeps their layout for the next image of the same size.
    """
    h, w = img.shape
    out_scores = [(-1.0, "")] * len(hyps)
    lay = (_kept_layout if keep else _layout)(h, w, tuple(hyps), sparse)
    if lay is None:
        return out_scores
    live, index, count, runs, run_starts, ends, mx, my = lay
    m, n_pts = len(live), len(index)
    out = img.ravel()[index]
    samples = cv2.remap(img, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).ravel()[:7 * n_pts]
    e0, e1, e2, m0, m1, m2, ins = samples.reshape(7, -1)
    const = np.empty(n_pts, np.float32)  # each hypothesis' median wedge pixel: the constant it would be filled with
    for a, b in zip([0, *ends[:-1].tolist()], ends.tolist()):  # (plain ints and one kth where one will do: 40% faster)
        lo, hi = (b - a - 1) // 2, (b - a) // 2
        part = out[a:b].copy()
        part.partition((lo, hi) if lo != hi else lo)
        const[a:b] = np.float32(0.5) * (part[lo] + part[hi])
    # fill and null residuals of each fill (rows: constant, replicate, reflect), clipped, summed per side
    res, other = np.empty((6, n_pts), np.float32), np.empty(n_pts, np.float32)
    for row, (x, y) in enumerate(((out, const), (ins, const), (out, e0), (out, e1), (out, m0), (out, m1))):
        np.abs(np.subtract(x, y, out=res[row]), out=res[row])  # in place: no temporaries of n_pts each
    for row, y in ((3, e2), (5, m2)):  # the null's two sides, averaged
        res[row] += np.abs(np.subtract(out, y, out=other), out=other)
        res[row] *= np.float32(0.5)
    np.minimum(res, CLIP, out=res)
    sums = np.zeros((6, 4 * m))
    sums[:, runs] = np.add.reduceat(res, run_starts, axis=1, dtype=np.float64)
    sums = sums.reshape(6, m, 4)
    tests = {"constant": (sums[0], sums[1]), "replicate": (sums[2], sums[3]), "reflect": (sums[4], sums[5])}
    valid = count >= 6
    nvalid = valid.sum(axis=1)
    bar = np.array([THIN_BAR if abs(hyps[k][0]) < THIN else 1.0 for k in live])
    best, best_mode = np.full(m, -1.0), np.array([""] * m, dtype=object)
    for mode, (f, n) in tests.items():
        with np.errstate(invalid="ignore", divide="ignore"):
            sides = np.where(valid, (n - f) / (n + f + NOISE * count), np.inf)
        sides.sort(axis=1)
        s = sides[np.arange(m), np.maximum(nvalid // 2 - 1, 0)] / (ACCEPT[mode] * bar)
        s = np.where(nvalid >= 3, s, -1.0)
        better = s > best
        best, best_mode = np.where(better, s, best), np.where(better, mode, best_mode)
    for j, k in enumerate(live):
        out_scores[k] = (float(best[j]), str(best_mode[j]))
    return out_scores


@functools.lru_cache(maxsize=8)
def _grid(h: int, w: int, sparse: bool = False):
    """Pixel offsets from the centre, their flat indices and rows: every pixel, or (sparse)
    every other one in a checkerboard, which halves the cost of the first search."""
    ys, xs = np.mgrid[0:h, 0:w]
    keep = ((xs + ys) % 2 == 0).ravel() if sparse else np.ones(h * w, bool)
    index = np.flatnonzero(keep)
    return ((xs.ravel()[index] - (w - 1) / 2).astype(np.float32), (ys.ravel()[index] - (h - 1) / 2).astype(np.float32),
            index, index // w)


def _best(img: np.ndarray, angles, stretches=(0.0,), sparse=False,
          frames=(False,), keep=False) -> list[tuple[float, str, float, float]]:
    """(score, fill mode, angle, stretch) of each hypothesis, best first (frames: see _fits's
    `same`; keep: see _fits)."""
    hyps = tuple((float(d), float(st), bool(same)) for d in angles if MIN_SKEW <= abs(d) <= MAX_SKEW
                 for st in stretches for same in frames)
    found = [(*f, d, st) for f, (d, st, _) in zip(_fits(img, hyps, sparse, keep), hyps)]
    return sorted(found, key=lambda f: f[0], reverse=True)


def skew_confidence(evidence: float) -> float:
    """Confidence of a skew whose wedges fit this well (1 = the fill's acceptance bar)."""
    return round(min(1.0, 0.5 * max(0.0, float(evidence))), 3)


@functools.cache
def _coarse_angles() -> tuple[list[float], list[float], dict[float, int]]:
    """The coarse search's angles: its first part, the rest, and each angle's place in the whole."""
    angles = [float(s * d) for d in np.arange(MIN_SKEW, MAX_SKEW + 0.01, COARSE_STEP) for s in (1, -1)]
    first = [d for d in angles if abs(d) <= FIRST_ALL or abs(d) % 2 == 1]
    return first, [d for d in angles if d not in first], {d: k for k, d in enumerate(angles)}


def estimate_skew(pixels: np.ndarray) -> dict:
    """Skew of a greyscale image from the fill wedges at its corners.

    Cheap test first: every angle on a small copy (every other pixel), the thin turns and odd
    degrees before the rest (see FIRST_GATE); an image whose best fit stays under GATE (three in
    four FracAtlas radiographs) stops there. Otherwise the best three distinct candidates are
    refined on a larger copy, and on a larger one again where the best of them reaches
    FINE_GATE. Returns {"rotation": degrees CCW that straighten it (0 when none is
    sure), "confidence": 0-1 of that rotation (including a rotation of 0), "flag": True when a
    wedge-like fit was found but is not sure enough to apply, "score": the evidence (1 = the
    acceptance bar), "angle": the best hypothesis' skew, "fill": constant/replicate/reflect}.
    """
    if min(pixels.shape) < MIN_SIDE:  # too small to see wedges in: nothing to go by
        return {"rotation": 0.0, "confidence": 0.5, "flag": False, "score": 0.0, "fit": 0.0, "coarse": 0.0,
                "angle": 0.0, "fill": ""}
    pixels = pixels.astype(np.float32)
    small, (first, rest, rank) = fit(pixels, COARSE_SIDE), _coarse_angles()
    coarse = _best(small, first, sparse=True, keep=True)
    if coarse[0][0] >= FIRST_GATE:  # the rest, merged in the whole search's order (ties as one call would)
        coarse = sorted(coarse + _best(small, rest, sparse=True, keep=True), key=lambda f: (-f[0], rank[f[2]]))
    score, mode, deg, _ = coarse[0]
    fit_score = score
    if score >= GATE:
        starts = []
        for _, _, d, _ in coarse:
            if not any(abs(d - t) < 3.0 for t in starts):  # distinct peaks, not one peak's flanks
                starts.append(d)
            if len(starts) == REFINE:
                break
        mid = _best(fit(pixels, MID_SIDE), [t + k * 0.5 for t in starts for k in range(-3, 4)], sparse=True)
        fit_score, mode, deg, _ = mid[0]
        if fit_score >= FINE_GATE:
            fine = _best(fit(pixels, FINE_SIDE), [deg + k * FINE_STEP for k in range(-2, 3)],
                         stretches=(0.0, -1.0, 1.0) if abs(deg) > 30 else (0.0,))
            fit_score, mode, deg, _ = fine[0]
    evidence = round(max(0.0, float(fit_score)), 3)  # rounded as cached, so a cache hit decides alike
    return {**_decided(evidence, round(float(deg), 2)), "score": evidence,
            "fit": round(float(fit_score), 3), "coarse": round(float(score), 3),
            "angle": round(float(deg), 2), "fill": mode}


def _decided(evidence: float, angle: float) -> dict:
    """rotation, confidence and flag from a search's evidence and best angle: one rule for a
    fresh search and a cache hit (so a changed SKEW_BAR or FLAG needs no new cache)."""
    confidence = skew_confidence(evidence)
    if confidence >= SKEW_BAR:
        return {"rotation": -angle, "confidence": round(float(confidence), 3), "flag": False}
    # confidence that the image is straight: high when no wedge fits at all
    return {"rotation": 0.0, "confidence": round(float(1.0 - confidence), 3), "flag": bool(FLAG <= evidence)}


NO_SKEW = {"rotation": 0.0, "confidence": 0.0, "flag": False, "score": 0.0, "angle": 0.0, "fill": ""}


def skew_file(path: str | Path) -> dict:
    """estimate_skew of one file; a file that does not decode gets 0 with no confidence."""
    try:
        pixels = decode(path, max_side=DECODE_SIDE).pixels
    except ImageError:
        return dict(NO_SKEW)
    return estimate_skew(pixels)


def wedge_fit(pixels: np.ndarray, deg: float) -> float:
    """How well the image shows the corner wedges of an exposure turned by `deg` CCW, a turn
    known (to a degree or so) from a verified pair: the best fit near deg, in an enlarged
    canvas or one of the exposure's own size (1 = the search's acceptance bar)."""
    if min(pixels.shape) < MIN_SIDE or abs(deg) < MIN_SKEW:
        return 0.0
    near = round(deg / TEST_GRID) * TEST_GRID
    found = _best(fit(pixels.astype(np.float32), MID_SIDE), [round(near + k * TEST_STEP, 2) for k in range(-2, 3)],
                  sparse=True, frames=(False, True))
    return round(max(0.0, found[0][0]), 3) if found else 0.0


SKEW_CACHE_VERSION = "7"  # bump when skew_file's results change meaning: old entries are ignored


class SkewCache:
    """estimate_skew results kept per (path, size, mtime_ns): the search is most of orient's
    time, and a re-run should redo only new or changed files."""

    def __init__(self, cache_dir, table: pd.DataFrame, root: Path):
        from curate.cache import FileCache

        usable = cache_dir is not None and {"size", "mtime_ns"} <= set(table.columns)
        self.cache = FileCache(Path(cache_dir) / f"skews-v{SKEW_CACHE_VERSION}.npz") if usable else None
        self.rows = list(zip(table["path"], table["size"], table["mtime_ns"])) if usable else None
        self.root, self.keys = root, {}
        self.changed = False

    def key(self, i: int) -> tuple[str, int, int]:
        """Row i's key, made when first asked (only the rows searched: realpath is a few syscalls a row)."""
        if i not in self.keys:
            p, size, mtime = self.rows[i]
            self.keys[i] = os.path.realpath(self.root / p), int(size), int(mtime)  # realpath: a link loop does not raise
        return self.keys[i]

    def get(self, i: int) -> dict | None:
        hit = self.cache.get(*self.key(i)) if self.cache is not None else None
        if hit is None or not hit["fill"]:  # no fill: not searched (too small, or undecodable): as it was
            return hit
        return {**hit, **_decided(hit["score"], hit["angle"])}

    def put(self, i: int, skew: dict) -> None:
        if self.cache is not None:
            self.cache.put(*self.key(i), skew)
            self.changed = True

    def save(self) -> None:
        if self.changed:
            self.cache.save()
