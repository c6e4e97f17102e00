"""How many degrees (counter-clockwise, after EXIF) each kept image needs to stand upright.

Runs after the split, on the images that need it: the kept ones, and the members of their
duplicate groups that decide them (the rest of a group gets its turn from the group's decision,
with no image work). Three sources, in this order of trust:

1. EXIF orientation: the loader already applies it (`curate.imageio.decode`); the audit flags it.
2. The duplicate group. `dup_angle` (from the dups stage's verified pairs, composed along the
   group) is the turn that brings a file onto its representative after un-mirroring, so the
   turn between any two members is known. An odd angle (not a right angle) between two
   members is one exposure turned inside a canvas: the turned one shows the turn's fill
   wedges at exactly that angle and the other does not; each side is tested at that angle
   (`wedge_fit`), and a kept image that is the turned side gets the verified angle onto the
   other. First, though, the members the dups stage found neither resampled nor filled are
   tried as the upright one the anchor was turned from (`_onto_upright`): an anchor padded by
   a turn's wedges against such a member, or cut from it (it shows the picture larger or about
   as large, by the dups stage's `dup_scale`, while the member shows picture, not fill, beyond
   its frame), gets the verified turn onto it, whatever copies turned further say; a member
   itself shown turned from another is followed back to where the chain starts. Where the
   frames show no such member, the blur each resampling adds says which was made from which
   (`resample_gap`: a copy put back onto its source is resampled twice). The
   right-angle pose is the representative's (the dups stage keeps the member the others were
   derived from), unless several unmirrored copies agree on another.
3. The image itself, when its group says nothing: a scan turned by an arbitrary angle inside
   an enlarged canvas shows wedges of fill at its corners (constant/black, replicated edge
   pixels, or a mirror of the inside). `estimate_skew` tests, for each candidate angle,
   whether the pixels that angle puts in the wedges are that fill, against a null that the
   fill does not explain; cheap on a small copy first (most straight images stop there), then
   refined on larger copies. Applied only from SKEW_CONFIDENCE (calibrated on the benchmark).

Mirrored copies: a rotation cannot undo a left-right flip. A mirrored copy gets the rotation
that stands it upright (still mirrored); `orient_flag` says `mirrored` so a user can flip it.

Every estimate has a confidence. A skew that is wedge-like but not sure enough is not applied:
`rotation` stays 0 and `orient_flag` says `low-confidence`, never a silent guess. Right-angle
turns of a lone image (no copy to compare with) cannot be seen from wedges and are left alone;
skews under MIN_SKEW degrees are not searched.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from curate.errors import ImageError
from curate.imageio import decode, fit, remap_buffer
from curate.parallel import Progress, map_files
from curate.resave import RESAVE_MARGIN, lossless, resave_gap

ORIENT_COLUMNS = ("rotation", "orient_source", "orient_confidence", "orient_flag")
MIN_CONFIDENCE = 0.5  # an orientation below this confidence is not applied (flagged instead)
MIN_SKEW = 3.0  # degrees: smaller turns are not searched (their thin wedges look like border bands)
MAX_SKEW = 45.0
COARSE_SIDE, COARSE_STEP = 96, 1.0  # px (longest side) and degrees of the first, cheap search
MID_SIDE, FINE_SIDE, FINE_STEP = 128, 256, 0.25  # ... and of the refinement of its best candidates
REFINE = 3  # coarse candidates refined
GATE = 0.45  # a coarse best fit must reach this to be refined (else: straight; most are)
# ... and the mid-size best fit this to be refined at FINE_SIDE, the search's dearest step (a
# refined FracAtlas film: mid 3 ms, fine 12.5): on the tuned orient sets (3,464 refined images)
# no fit under it rose past 0.66 there, short of FLAG; 2 in 5 of FracAtlas's refined films stop under it
FINE_GATE = 0.5
# The coarse search's first part: every angle up to FIRST_ALL degrees and every odd one past it.
# Straight radiographs fit best at the thin turns (border bands: 3, 4 or 6 degrees for 4 in 5 of
# FracAtlas's), so a best fit under FIRST_GATE there ends the search (4 in 10 FracAtlas films;
# the search's CPU -13%): on the tuned orient sets no refined image fits under 0.36 there, no
# flagged one under 0.44. Such an image reports that fit (orient_confidence up to +0.04 on 3% of
# FracAtlas's rows)
FIRST_ALL, FIRST_GATE = 7.0, 0.3
# Fit (see _score) that applies a skew, per fill. Measured on a messy set built from FracAtlas
# (benchmarks/orient_quality.py): straight radiographs' best fits stay under ~0.4 (constant)
# and ~0.52 (replicate, only on thin wedges); true skews reach 0.9 (constant), 0.6 (replicate),
# 0.5 (reflect: mirrored anatomy is the hardest to tell apart). Precision first.
ACCEPT = {"constant": 0.6, "replicate": 0.55, "reflect": 0.45}
THIN, THIN_BAR = 6.0, 1.25  # wedges of turns under THIN degrees look like a scan's border bands
FLAG = 0.7  # share of ACCEPT from which an unapplied fit is flagged (0.7% of straight ones)
DECODE_SIDE = FINE_SIDE
ROWS_FROM = 4096  # grid points from which _wedges tests only each row's ends (fewer: not worth it)
MIN_SIDE = 64  # px: smaller images are not searched for wedges
MAJORITY = 3  # distinct copies in one pose that outvote a representative standing alone
GROUP_SNAP = MIN_SKEW  # degrees: a group turn closer than this to a right angle is that right angle
# A copy is one picture turned (aligned detail correlates at least this well, see dups); below
# it, maybe two exposures of the same limb: grouped against leakage, but turned onto the other
# only where the file's own wedges show that turn. Messy-set turned copies: median 0.94 (a
# quarter under 0.9); FracAtlas's own turned pairs: 0.72-0.88.
COPY_SCORE = 0.9
VOTE_SCORE = 0.85  # a member verified this well votes on the right-angle pose (a plain copy of a film kept turned 180 scored 0.8996)
WEDGE_AGREE = 2.0  # degrees: a file's own skew and its group's turn agree this closely
# Wedge fit (of ACCEPT) that confirms a group's odd-angle turn at the pair's precise angle: 10
# of 4024 straight FracAtlas films reach it at their best angle; weakly-wedged copies, 0.78-0.96.
SUPPORT = 0.75
PAIR_FIT, PAIR_MARGIN = 0.3, 0.2  # a pair's turned side fits wedges this well, and this much better than the other
TEST_STEP = 0.5  # degrees between the angles tested around a pair's turn (its angle is good to ~1)
# ... from the nearest point of a TEST_GRID lattice, far finer than that error: an image size's
# wedge geometry is then met again (_sparse_wedges) instead of made anew for each pair (kaggle10k:
# 10,044 tests, geometry 3 of their 4.5 ms), with identical orientation columns on kaggle10k
TEST_GRID = 0.1
SKEW_BAR = 0.5  # estimate_skew reports a skew from this confidence (its fill's acceptance bar)
SKEW_CONFIDENCE = 0.85  # a lone image's own skew is applied from this confidence (orient_quality: the first with no wrong turn on seeds 1, 2 and kaggle 1)
NOISE = 2.0  # grey levels per pixel: JPEG noise, so flat regions count as no evidence
CLIP = 60.0  # grey levels: one wild pixel must not outweigh many
AGREE = 3.0  # degrees: votes within this of each other agree
WITNESSES = 3  # distinct members of a cluster (one odd angle to the anchor) whose wedges are tested
# The member judged upright (see _onto_upright): up to UPRIGHT_CANDIDATES members per group that
# the dups stage found neither resampled nor filled are tested. A copy cut from one does not
# show the picture CUT_SCALE smaller (the dups stage's dup_scale): zoomed in, or about the same
# scale, where the turn cuts the original's corners off (kaggle seeds 1-73 but 83, every pair orient
# tests: 1,609 -> 1,661 of 1,875 turned copies shown turned from their original, still none of
# 251 originals from a copy; see _cut).
CHAIN_STEPS = 3  # rounds of tests that follow a chain back from the candidates the anchor is shown turned from
UPRIGHT_CANDIDATES = 6  # 3 left a chain's original out behind nearer copies (kaggle 7: a wrong 20 degree turn)
RESAVE_CANDIDATES = 3  # members at a right angle or mirrored the anchor is tested as saved from
UPRIGHT_SCORE = 0.8  # a candidate is verified against the anchor this well (a re-toned, turned, zoomed copy scores 0.80-0.85)
CUT_SCALE = 0.03
# Beyond a cut copy's frame its original fits a fill under 0.2 and holds at least PICTURE grey
# levels per pixel that no fill explains (kaggle seeds 1 and 7, every pair of a turned copy and
# its original at 224 px: 1,239 of 1,413 cut pairs; 926 at 6.0); a dark, flat border explains
# nothing either way, so it says nothing. A chain copy's mixed fills can look so too (75 of 552
# pairs the other way round): only an unmarked member is trusted as the source (see _turned_from).
BEYOND_FILL, PICTURE = 0.2, 3.0
# ... under BEYOND_LOOSE where the copy shows no picture of its own beyond the original's frame
# (dark, flat radiograph borders fit 0.2-0.3; docs/measurements.md's orientation section has
# the figures)
BEYOND_LOOSE = 0.3
# Under CUT_SURE the member is picture even if its wedges fit (below SUPPORT): 224 px originals
# fit 0.3-0.87 by chance
CUT_SURE = 0.1
# Beyond the original's frame a copy turned and zoomed on its canvas fits a fill: with wedges at
# the pair's angle besides, PAD_FIT is enough; alone, PAD_SURE (originals beyond their copies'
# frames: at most 0.57, kaggle seeds 1 and 7, 2,220 pairs; copies beyond the original's: 728
# of 2,220 reach it).
PAD_FIT, PAD_SURE = 0.3, 0.6
# ... and from PAD_BACKED, against a member that bears no mark at all, they back wedges from
# PAIR_FIT (a zoomed-out chain copy's mixed fills fit neither well; originals beyond the frames of
# their candidate copies zoomed in: at most 0.31, kaggle seeds 1-73 but 83, 134 pairs)
PAD_BACKED = 0.4
SCALE_ERROR = 0.01  # how far a verified content scale may be off (see beyond_fill)
# ... but a chain's dup_scale is composed along the group's verified pairs, and a copy zoomed out
# 0.96-0.98 leaves a band of fill a few pixels wide: its pad (_turned_from) is looked for at every
# scale within PAD_REACH of the verified one, in SCALE_ERROR steps (docs/measurements.md's
# orientation section has the figures)
PAD_REACH = 0.03
# A picture turned inside a canvas enlarged to hold all of it (cv2, PIL's expand) gets a canvas of
# w|cos| + h|sin| by h|cos| + w|sin|, rounded: within CANVAS_PX of that at an angle within
# CANVAS_TURN of the pair's verified one, at the same pixel scale (CANVAS_SCALE), one member is the
# other so turned. Messy default seeds 1-43: 767 of 868 pairs of a turned copy and a member
# upright (the rest resized or zoomed) so placed, none the other way round (868), 1 of 80 with both
# turned at 1.5 degrees (two copies 3.1 apart), none at 1.0 (which loses 4 true pairs).
CANVAS_PX, CANVAS_TURN, CANVAS_SCALE = 2.0, 1.0, 0.03
# Every turn or zoom resamples the picture (linear interpolation), which blurs its finest detail
# a little more each time: put onto the other's frame, the member a copy was made from stays
# sharper than the copy, while the copy matches the member resampled once (see resample_gap).
# From RESAMPLED_GAP (log sharpness) x is shown made from u. Kaggle seeds 1-83 (224 px, with
# GAP_MARGIN 7): originals against their turned copies 99% from 0.15.
RESAMPLED_GAP = 0.15
GAP_MIN_CORR = 0.8  # the two put onto one frame correlate at least this well, or no claim
# ... and show the picture within this factor of each other: a copy magnified further holds
# little detail of the picture's own, and its re-save's JPEG noise looks sharp (kaggle 43's
# upright 11.jpg against its copy zoomed in 2.08 in four steps measured 0.23 the wrong way)
GAP_SCALE = 1.5
# ... compared only this many pixels inside both frames, the canvas's edge included: a copy's fill
# lies just beyond its source's frame once put back, and a verified geometry a few percent off
# (kaggle 59's 80-rotated3.jpg, content scale 0.96 for a zoom of 1.007) leaves its sharp edge
# within a few pixels of it (Kaggle seeds 1-83, 9,390 originals against their copies: 9 read
# the wrong way with 3 px off the frame alone, 2 with the canvas too, 1 at 5 px, none at 7).
# 7 px is also the coarse term's reach (blur sigma 2, then a 3x3 Laplacian): nearer, the black
# beyond a placed picture's edge inflates its coarse detail (kaggle 457's 37.jpg against its copy
# zoomed in 1.31: the copy put back read 0.55 at 3 px, 0.79 at 7, 0.80 at 10 and 14)
GAP_MARGIN = 7


# ---- skew from the image itself ---------------------------------------------------------------


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


# The refinement's last step tests a quarter-degree lattice (see estimate_skew), so images of one
# size meet the same hypotheses again: on FracAtlas 45% of them are among the last 64 met. (Up to
# ~2 MB each: 64 of them stay under ~100 MB.)
@functools.lru_cache(maxsize=64)
def _dense_wedges(h: int, w: int, deg: float, stretch: float, same: bool):
    """_wedges on every pixel of an h x w image, kept."""
    return _wedges(h, w, deg, _grid(h, w), max(2.0, max(h, w) / 40), stretch, same)


# The refinement's angles lie on a half-degree lattice (coarse whole degrees +- k/2), so images of
# one size meet the same hypotheses again: on FracAtlas 1 in 8 of them is new; wedge_fit's on a
# TEST_GRID lattice (~1,700 at one size, 220 MB at 128 px). (Up to ~260 KB each, ~130 KB typical.)
@functools.lru_cache(maxsize=2048)
def _sparse_wedges(h: int, w: int, deg: float, stretch: float, same: bool):
    """_wedges on every other pixel of an h x w image (see _grid), kept."""
    return _wedges(h, w, deg, _grid(h, w, True), max(2.0, max(h, w) / 40), stretch, same)


# the first search's layouts, its two parts apart: most of a set's images share a few sizes, and
# the geometry is most of the cost of that search (about 7 MB a size)
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
    if skew_confidence(evidence) >= SKEW_BAR:
        rotation, confidence = -round(float(deg), 2), skew_confidence(evidence)
    else:  # confidence that the image is straight: high when no wedge fits at all
        rotation, confidence = 0.0, 1.0 - skew_confidence(evidence)
    return {"rotation": rotation, "confidence": round(float(confidence), 3),
            "flag": bool(rotation == 0 and FLAG <= evidence), "score": round(float(evidence), 3),
            "fit": round(float(fit_score), 3), "coarse": round(float(score), 3),
            "angle": round(float(deg), 2), "fill": mode}


_NO_SKEW = {"rotation": 0.0, "confidence": 0.0, "flag": False, "score": 0.0, "angle": 0.0, "fill": ""}


def skew_file(path: str | Path) -> dict:
    """estimate_skew of one file; a file that does not decode gets 0 with no confidence."""
    try:
        pixels = decode(path, max_side=DECODE_SIDE).pixels
    except ImageError:
        return dict(_NO_SKEW)
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


def probe(item: tuple) -> dict:
    """One file's image work, from one decode: (path, search, tests, frames) -> its own skew
    when `search`, its wedge_fit at each angle of `tests`, and at each (deg, scale) of `frames`
    how well its pixels beyond the frame of another member so placed are fill (beyond_fill)."""
    path, search, tests, frames = item
    try:
        pixels = decode(path, max_side=DECODE_SIDE).pixels
    except ImageError:
        return {"skew": dict(_NO_SKEW) if search else None, "fits": {d: 0.0 for d in tests},
                "beyond": {f: None for f in frames}}  # nothing to go by: no claim that it was cut or padded
    fits = {d: wedge_fit(pixels, d) for d in dict.fromkeys(tests)}  # each angle once (pairs repeat them)
    return {"skew": estimate_skew(pixels) if search else None, "fits": fits,
            "beyond": {f: beyond_fill(pixels, *f) for f in frames}}


def beyond_fill(pixels: np.ndarray, deg: float, scale: float, reach: float = SCALE_ERROR,
                mixed: bool = False) -> tuple[float, float]:
    """How well the pixels beyond the frame of another member of the same size, turned `deg` CCW
    and scaled by `scale` into this image, are fill (dups.fill_beyond; either sign of the turn, as
    a mirror leaves it open), and how much they hold that the fill does not explain (grey levels
    per pixel): a good fit when this image was padded around that member's picture; a poor fit
    and much left over when it shows picture there (that member was cut from it). The scale is
    tried within `reach` of `scale`, in SCALE_ERROR steps (beyond the first, until a fit reaches
    PAD_SURE). mixed: a pad of two constants counts as fill too (dups.fill_beyond)."""
    from curate.original import fill_beyond

    img = pixels.astype(np.float32)
    # the verified scale is known to about SCALE_ERROR: a frame edge moved by that error lands on
    # picture, so the pixels show picture only if they do at every scale within it, and fill if
    # they are fill at any (a copy zoomed out 0.907 with a replicated border, verified at 0.8995,
    # left 8.2 grey levels unexplained at 0.8995 and 2.7 at 0.907)
    found = []
    for step in range(int(round(reach / SCALE_ERROR)) + 1):
        # beyond SCALE_ERROR, only while no scale has shown a pad (PAD_SURE): most frames stop there
        if step > 1 and max(f for f, _ in found) >= PAD_SURE:
            break
        found += [fill_beyond(img, sign * deg, scale * (1 + SCALE_ERROR) ** k, residual=True, mixed=mixed)
                  for sign in (1, -1) for k in sorted({-step, step})]
    return round(max(f for f, _ in found), 3), round(min(left for _, left in found), 2)


def _sharpness(pixels: np.ndarray, mask: np.ndarray) -> float:
    """Finest detail over coarse detail within the mask (log): a tone change scales both alike."""
    fine = np.abs(cv2.Laplacian(pixels, cv2.CV_32F, ksize=1))[mask].mean()
    coarse = np.abs(cv2.Laplacian(cv2.GaussianBlur(pixels, (0, 0), 2.0), cv2.CV_32F, ksize=3))[mask].mean()
    return float(np.log(max(fine, 1e-6) / max(coarse, 1e-6)))


def _placed(pixels: np.ndarray, flip: bool, deg: float, scale: float, flip_after: bool, shape) -> tuple:
    """pixels mirrored when `flip`, turned deg CCW and scaled about the centre into a canvas of
    `shape`, mirrored again when `flip_after`; and where it holds them (GAP_MARGIN inside)."""
    img = np.ascontiguousarray(pixels[:, ::-1]) if flip else pixels
    h, w = img.shape
    m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), deg, scale)
    # rounded to whole grey levels as any saved file is: on a dark, flat picture a float placement
    # is smoother than a file by its rounding alone (kaggle 443's upright 15.jpg read as made from
    # its copy zoomed in 1.14, 0.18 the wrong way; rounded, 0.09)
    out = np.rint(cv2.warpAffine(img, m, (shape[1], shape[0]), flags=cv2.INTER_LINEAR))
    inside = cv2.warpAffine(np.ones(img.shape, np.uint8), m, (shape[1], shape[0]), flags=cv2.INTER_NEAREST)
    # GAP_MARGIN from the canvas's own edge too: interpolation draws what lies beyond it into the
    # edge rows (the demo's upright 64.jpg read +0.19 the wrong way against its copy with white
    # wedges, -0.34 without its canvas's edge)
    side = 2 * GAP_MARGIN + 1
    inside = cv2.erode(inside, np.ones((side, side), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=0) > 0
    return (out[:, ::-1], inside[:, ::-1]) if flip_after else (out, inside)


def resample_gap(x_pixels: np.ndarray, u_pixels: np.ndarray, x_mirrored: bool, u_mirrored: bool,
                 deg: float, scale: float) -> float:
    """How surely x was resampled from u rather than u from x: u is x (mirrored as marked) turned
    deg CCW and scaled by `scale` about the centre. Each is put onto the other's frame; a copy
    put back onto its source was resampled twice, so the source is sharper than it, while the
    source put onto the copy matches the copy. Returns (u's sharpness over x put onto u) minus
    (x's over u put onto x), log: > 0 when u is the less resampled; 0 when they do not align or
    one shows the picture more than GAP_SCALE times larger."""
    if not 1 / GAP_SCALE <= scale <= GAP_SCALE:
        return 0.0
    x, u = x_pixels.astype(np.float32), u_pixels.astype(np.float32)
    into_u, on_u = _placed(x, x_mirrored, deg, scale, u_mirrored, u.shape)
    into_x, on_x = _placed(u, u_mirrored, -deg, 1.0 / scale, x_mirrored, x.shape)
    if on_u.sum() < 400 or on_x.sum() < 400 or np.corrcoef(into_u[on_u], u[on_u])[0, 1] < GAP_MIN_CORR:
        return 0.0
    return round((_sharpness(u, on_u) - _sharpness(into_u, on_u)) - (_sharpness(x, on_x) - _sharpness(into_x, on_x)), 3)


def _gap_item(item: tuple) -> float:
    """resample_gap of two files (path_x, path_u, then resample_gap's other arguments)."""
    path_x, path_u, *geometry = item
    try:
        x, u = (decode(p, max_side=DECODE_SIDE).pixels for p in (path_x, path_u))
    except ImageError:
        return 0.0
    return resample_gap(x, u, *geometry)


ORIENT_CACHE_VERSION = "7"  # bump when skew_file's results change meaning: old entries are ignored


class _SkewCache:
    """estimate_skew results kept per (path, size, mtime_ns): the search is most of orient's
    time, and a re-run should redo only new or changed files."""

    def __init__(self, cache_dir, table: pd.DataFrame, root: Path):
        from curate.cache import FileCache

        usable = cache_dir is not None and {"size", "mtime_ns"} <= set(table.columns)
        self.cache = FileCache(Path(cache_dir) / f"skews-v{ORIENT_CACHE_VERSION}.npz") if usable else None
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
        # (the flag is re-derived, so a changed FLAG needs no new cache)
        if hit is None:
            return None
        # the decision is re-derived, so a changed SKEW_CONFIDENCE or FLAG needs no new cache
        conf = skew_confidence(hit["score"])
        applied = conf >= SKEW_BAR and hit["angle"] != 0
        return {**hit, "rotation": -hit["angle"] if applied else 0.0, "confidence": conf if applied else 1.0 - conf,
                "flag": bool(not applied and FLAG <= hit["score"])}

    def put(self, i: int, skew: dict) -> None:
        if self.cache is not None:
            self.cache.put(*self.key(i), skew)
            self.changed = True

    def save(self) -> None:
        if self.changed:
            self.cache.save()


# ---- the stage --------------------------------------------------------------------------------


def norm_angle(deg: float) -> float:
    """Into (-180, 180], rounded to 0.01; near-multiples of 90 snapped to them."""
    deg = (float(deg) + 180.0) % 360.0 - 180.0
    if deg == -180.0:
        deg = 180.0
    nearest = round(deg / 90.0) * 90.0
    if abs(deg - nearest) < 0.5:
        deg = nearest
    return 0.0 if abs(deg) < 1e-9 else round(deg, 2)


def group_confidence(dup_score: float) -> float:
    """Confidence of a turn taken from a verified duplicate pair. The dups stage accepted the
    pair only after aligning the two images (its angles are within 2 degrees), so a verified
    pair is at least MIN_CONFIDENCE sure; a closer match (dup_score, 0-1) is surer."""
    return round(min(1.0, MIN_CONFIDENCE + 0.5 * max(0.0, float(dup_score))), 3)


def _odd(turn: float) -> float:
    """The part of a turn beyond the nearest right angle, in [-45, 45]."""
    return float(turn) - 90.0 * round(float(turn) / 90.0)


class _Group:
    """One duplicate group's geometry (from the dups stage), its anchor (the member whose
    orientation is wanted: the representative when wanted, else the first wanted one) and the
    anchor's odd-angle relations to the other members.

    resampled[x]: the dups stage found x resampled against the group's least-marked member
    (its `derived` marks): made from another member. A cluster whose every tested member is
    so marked, while the anchor is not, cannot hold the upright member the anchor was turned
    from (on Kaggle-style chains such clusters are copies turned further)."""

    def __init__(self, members: list[int], anchor: int, angle, mirrored, score, exif, rep,
                 sha=None, resampled=None, plain=None, unmarked=None):
        self.members, self.anchor = members, anchor
        self.angle, self.mirrored, self.score, self.rep = angle, mirrored, score, rep
        self.resampled = resampled if resampled is not None else np.zeros(len(angle), bool)
        # members that may be the upright one the anchor was turned from (see _onto_upright):
        # plain (the dups stage found no resampling or fill; a tone change does not turn), no
        # EXIF turn, one picture with the anchor, at an odd angle to it; the representative first.
        # unmarked: not even re-toned (the cut test asks that)
        self.candidates: list[int] = []
        self.unmarked = unmarked if unmarked is not None else np.zeros(len(angle), bool)
        if plain is not None:
            for x in sorted((x for x in members if x != anchor and plain[x] and not exif[x]
                             and score[x] >= UPRIGHT_SCORE and abs(_odd(self.turn(anchor, x))) >= GROUP_SNAP),
                            key=lambda x: (not rep[x], -score[x], x)):
                if len(self.candidates) < UPRIGHT_CANDIDATES and (
                        sha is None or not sha[x] or all(sha[x] != sha[y] for y in self.candidates)):
                    self.candidates.append(x)
        # members at the anchor's own pose, as plain: a candidate turned from one of them was turned
        # from where the anchor stands (see _chain)
        self.mates: list[int] = []
        if plain is not None:
            for x in sorted((x for x in members if x != anchor and plain[x] and not exif[x] and score[x] >= UPRIGHT_SCORE
                             and abs(self.turn(anchor, x)) < GROUP_SNAP), key=lambda x: (not rep[x], -score[x], x)):
                if len(self.mates) < WITNESSES and not (sha is not None and sha[x] and any(sha[x] == sha[y] for y in self.mates + [anchor])):
                    self.mates.append(x)
        # members the anchor may have been saved from by a lossless turn or mirror (see resaved_from)
        self.lossless: list[tuple[int, bool, int]] = []
        for x in sorted((x for x in members if x != anchor and not (sha is not None and sha[x] and sha[x] == sha[anchor])),
                        key=lambda x: (-score[x], x)):
            pose = self.pose(x, anchor)
            if pose is not None and len(self.lossless) < RESAVE_CANDIDATES and (
                    sha is None or not sha[x] or all(sha[x] != sha[y] for y, _, _ in self.lossless)):
                self.lossless.append((x, *pose))
        # the clusters of members at an odd angle to the anchor: (anchor's turn onto them, witness)
        self.clusters: list[tuple[float, int]] = []
        # up to WITNESSES distinct members of each cluster, the witness first: any of them whose
        # wedges show its turn shows the anchor straight (one copy's wedges can be faint)
        self.seen: dict[int, list[int]] = {}
        for x in sorted((x for x in members if x != anchor), key=lambda x: (bool(exif[x]), -score[x], x)):
            o = _odd(self.turn(anchor, x))
            if abs(o) < GROUP_SNAP:
                continue
            c = next((w for c, w in self.clusters if _angle_diff(o, c) <= AGREE), None)
            if c is None:
                self.clusters.append((o, x))  # the witness: no EXIF turn, the best-verified copy
                self.seen[x] = [x]
            elif len(self.seen[c]) < WITNESSES and not exif[x] and (
                    sha is None or not sha[x] or all(sha[x] != sha[y] for y in self.seen[c])):
                self.seen[c].append(x)

    def turn(self, x: int, y: int) -> float:
        """The turn (CCW) that stands x upright if y stands upright: with rotate(mirror^m(x), a_x)
        == representative, x onto y is a_x - a_y, its sign flipped when x is mirrored."""
        d = self.angle[x] - self.angle[y]
        return norm_angle(-d if self.mirrored[x] else d)

    def pose(self, x: int, y: int) -> tuple[bool, int] | None:
        """(mirror, quarter turns CCW) that make y of x exactly (curate.resave.pose), or None when
        the two are not one frame turned by a right angle or mirrored (or the very same pose)."""
        d = self.angle[x] - self.angle[y]
        return lossless(self.mirrored[x] != self.mirrored[y], -d if self.mirrored[y] else d)

    def tests(self) -> dict[int, list[float]]:
        """The wedge fits that decide the anchor's odd angle: the anchor at each cluster's turn,
        each witness at the turn onto the anchor (angles as _score's hypotheses: minus the turn)."""
        need: dict[int, list[float]] = {}
        for o, w in self.clusters:
            need.setdefault(self.anchor, []).append(round(-o, 2))
            for x in self.seen[w]:
                need.setdefault(x, []).append(self.test_angle(x))
        return need

    def test_angle(self, x: int) -> float:
        """The angle x's wedges are tested at: its own turn onto the anchor."""
        return round(-_odd(self.turn(x, self.anchor)), 2)


def orient(table: pd.DataFrame, root: str | Path, *, needed=None, workers: int | None = None,
           progress: Progress | None = None, cache_dir: str | Path | None = None,
           skews: list[dict | None] | None = None) -> pd.DataFrame:
    """Add rotation, orient_source, orient_confidence and orient_flag to the table.

    needed: the rows whose orientation is wanted (a boolean mask; default: the `keep` column
    when the table has one, else every row). Images are looked at only for them and for the
    members of their duplicate groups that decide them; the other members of such a group get
    their turn from the group's decision (no image work); rows of no such group are not
    examined (rotation 0, orient_confidence empty).
    Uses the dups stage's columns when present (group, representative, dup_angle, mirrored,
    dup_score); without them every image is treated on its own. cache_dir keeps each file's
    own skew search between runs. skews (one estimate_skew result per row, or None) replaces
    the search, e.g. in tests.
    """
    root = Path(root)
    n = len(table)
    stage = key = None
    if cache_dir is not None and skews is None:  # nothing changed since the last run: its result
        from curate import imageio, resave
        from curate.cache import StageCache, source_digest, table_digest

        stage = StageCache(cache_dir, "orient")
        key = table_digest(table, str(root.resolve()), None if needed is None else np.asarray(needed, bool).tobytes(),
                           source_digest(sys.modules[__name__], imageio, resave))
        hit = stage.get(key, table, ORIENT_COLUMNS)
        if hit is not None:
            return hit
    out = table.copy()
    ok = (table["status"] == "ok").to_numpy() if "status" in table else np.ones(n, bool)
    if needed is None:
        needed = table["keep"].fillna(False).astype(bool).to_numpy() if "keep" in table else np.ones(n, bool)
    need = ok & np.asarray(needed, bool)
    has_groups = {"group", "dup_angle"} <= set(out.columns)
    gid = out["group"].to_numpy() if has_groups else np.arange(n)
    angle = out["dup_angle"].fillna(0).astype(float).to_numpy() if has_groups else np.zeros(n)
    mirrored = out["mirrored"].fillna(False).astype(bool).to_numpy() if "mirrored" in out else np.zeros(n, bool)
    score = out["dup_score"].fillna(1.0).astype(float).to_numpy() if "dup_score" in out else np.ones(n)
    rep = out["representative"].fillna(False).astype(bool).to_numpy() if "representative" in out else np.ones(n, bool)
    exif = (~out["exif_orientation"].fillna(1).astype(int).isin([0, 1])).to_numpy() if "exif_orientation" in out \
        else np.zeros(n, bool)
    sha = out["sha256"].fillna("").astype(str).to_numpy() if "sha256" in out else np.array([""] * n, object)
    resampled = out["derived"].fillna("").astype(str).str.contains("resampled").to_numpy() if "derived" in out \
        else np.zeros(n, bool)
    plain = ~out["derived"].fillna("").astype(str).str.contains("resampled|fill").to_numpy() if "derived" in out \
        else np.ones(n, bool)
    unmarked = (out["derived"].fillna("").astype(str) == "").to_numpy() if "derived" in out else np.ones(n, bool)
    content = out["dup_scale"].astype(float).to_numpy() if "dup_scale" in out else np.full(n, np.nan)
    dims = list(zip(out["width"], out["height"])) if {"width", "height"} <= set(out.columns) else [None] * n
    paths = out["path"].astype(str).tolist()

    members_of: dict = {}
    for i in np.flatnonzero(ok):
        members_of.setdefault(gid[i], []).append(i)
    groups = []
    for members in members_of.values():
        wanted = [i for i in members if need[i]]
        if wanted:
            anchor = min(wanted, key=lambda i: (not rep[i], paths[i]))
            groups.append(_Group(members, anchor, angle, mirrored, score, exif, rep, sha, resampled, plain, unmarked))

    # round 1: the anchors' relations to their groups, and each anchor's own search where no
    # other member stands at an odd angle to it
    cache = _SkewCache(cache_dir, out, root) if skews is None else None
    found: list[dict] = [{"skew": None, "fits": {}, "beyond": {}, "gaps": {}} for _ in range(n)]
    tasks: dict[int, tuple[bool, list[float], list[tuple]]] = {}
    for g in groups:
        for i, degs in g.tests().items():
            search, tests, frames = tasks.get(i, (False, [], []))
            tasks[i] = (search, tests + degs, frames)
        if not g.clusters:
            _, tests, frames = tasks.get(g.anchor, (False, [], []))
            tasks[g.anchor] = (True, tests, frames)
        for i, degs, more in _upright_tests(g, content, dims):
            search, tests, frames = tasks.get(i, (False, [], []))
            tasks[i] = (search, tests + degs, frames + more)
    _run(tasks, found, paths, root, cache, skews, workers, progress)
    # the blur of resampling, only where the frames show the anchor turned from no candidate
    blurred = {id(g) for g in groups if g.candidates and not _chain(g, found, content, dims)[1]}
    _gaps([(g.anchor, u) for g in groups if id(g) in blurred for u in g.candidates], found, paths, root, angle,
          mirrored, content, workers)
    # the candidates the anchor is shown turned from, each tested against the other candidates
    # (_onto_upright asks nothing else of them: most groups show none or one); one shown turned
    # from another was itself turned further along a chain, so that one is tested next
    tested: list[set] = [set() for _ in groups]
    for _ in range(CHAIN_STEPS):
        among: dict[int, tuple[bool, list[float], list[tuple]]] = {}
        pairs = []
        for g, done in zip(groups, tested):
            reached = [u for u in _sources(g, found, content, dims)[1] if u not in done]
            done.update(reached)
            if id(g) in blurred:
                pairs += [(u, v) for u in reached for v in g.candidates + g.mates if v != u]
            for i, degs, frames in _upright_tests(g, content, dims, reached):
                _, tests, had = among.get(i, (False, [], []))
                among[i] = (False, tests + degs, had + frames)
        if not among:
            break
        _run(among, found, paths, root, cache, skews, workers, None)
        _gaps(pairs, found, paths, root, angle, mirrored, content, workers)
    # an anchor saved again from another member turned by a right angle or mirrored: that
    # member's pose is the upright one (the first so shown, best verified first)
    lossless = [(g, x, m, q) for g in groups for x, m, q in g.lossless]
    gaps = map_files(_resave_item, [(str(root / paths[x]), str(root / paths[g.anchor]), m, q)
                                    for g, x, m, q in lossless], workers=workers) if lossless else []
    saved_from: dict[int, int] = {}
    for (g, x, _, _), gap in zip(lossless, gaps):
        if gap is not None and gap >= RESAVE_MARGIN:
            saved_from.setdefault(id(g), x)
    # round 2: the anchors whose group left their odd angle open search their own wedges
    onto = {id(g): _onto_upright(g, found, content, dims) for g in groups}
    # the witnesses' pad test, only where their wedges would let the anchor be turned: it can
    # only stop a turn (most groups turn nothing)
    turning = [g for g in groups if not onto[id(g)] and _wedges_turn(g, found)]
    pads = {x: (False, [], _pad_frames(g, x, content, dims)) for g in turning for _, w in g.clusters for x in g.seen[w]}
    if pads:
        _run(pads, found, paths, root, cache, skews, workers, None)
    odd = {id(g): onto[id(g)][:6] if onto[id(g)] else _odd_decision(g, found, content, dims) for g in groups}
    whole = {id(g): onto[id(g)][6] for g in groups if onto[id(g)] and onto[id(g)][6] is not None}
    _run({g.anchor: (True, [], []) for g in groups if odd[id(g)] is None and found[g.anchor]["skew"] is None},
         found, paths, root, cache, skews, workers, progress)
    if cache is not None:
        cache.save()

    rotation, confidence = np.zeros(n), np.full(n, np.nan)
    source = np.array([""] * n, dtype=object)
    flag = np.array([""] * n, dtype=object)
    mirror_flag = mirrored.copy()
    for g in groups:
        k = g.anchor
        odd_k, odd_conf, odd_src, odd_flag, upright, turned = odd[id(g)] or _own_skew(g, found[k]["skew"])
        m_rep, q_conf = _quarter(g, odd_k, sha, saved_from.get(id(g), whole.get(id(g))))
        upright = saved_from.get(id(g), upright)
        if upright is not None:  # mirrored is said against the member that stands upright
            mirror_flag[g.members] = mirrored[g.members] != mirrored[upright]
        for i in g.members:
            r = norm_angle(-(angle[i] + m_rep) if mirrored[i] else angle[i] + m_rep)
            fl = odd_flag if i == k else ""
            pose = _odd(g.turn(k, i))  # i's odd pose against the anchor's
            if i != k and abs(_odd(r)) >= GROUP_SNAP and not any(_angle_diff(pose, o) <= AGREE for o in turned):
                r = norm_angle(r - _odd(r))  # an odd turn nothing showed: only its right-angle part
            if i != k and r and score[i] < COPY_SCORE:
                r, fl = 0.0, "low-confidence"  # two exposures of one limb, not one picture turned
            rotation[i] = r
            confidence[i] = min(odd_conf, q_conf) if i == k else min(odd_conf, q_conf, group_confidence(score[i]))
            quarter_turned = abs(norm_angle(r - odd_k)) > AGREE if i == k else True
            source[i] = "" if not r else (odd_src if i == k and not quarter_turned else "group")
            flag[i] = fl
    for i in np.flatnonzero(exif):
        source[i] = "exif" + ("+" + source[i] if source[i] else "")
    out["rotation"] = rotation
    out["orient_source"] = source
    out["orient_confidence"] = np.round(confidence, 3)
    out["orient_flag"] = np.array([";".join(f for f in (fl, "mirrored" if m else "") if f)
                                   for fl, m in zip(flag, mirror_flag & ok)], dtype=object)
    if stage is not None:
        stage.put(key, out, ORIENT_COLUMNS)
    return out


def _run(tasks: dict, found: list, paths: list, root: Path, cache, skews, workers, progress) -> None:
    """Do the image work of `tasks` (row -> (search, test angles, frames)) into `found`; searches
    come from `skews` or the cache where they are there already."""
    todo = []
    for i, (search, tests, frames) in sorted(tasks.items()):
        known = (skews[i] if skews is not None else cache.get(i)) if search else None
        if known is not None:
            found[i]["skew"], search = known, False
        if search or tests or frames:
            todo.append((i, search, tests, frames))
    if progress:
        progress(len(tasks) - len(todo))
    done = map_files(probe, [(root / paths[i], s, tuple(t), tuple(f)) for i, s, t, f in todo],
                     workers=workers, progress=progress)
    for (i, search, _, _), res in zip(todo, done):
        found[i]["fits"].update(res["fits"])
        found[i]["beyond"].update(res["beyond"])
        if search:
            found[i]["skew"] = res["skew"]
            if cache is not None:
                cache.put(i, res["skew"])


def _gaps(pairs: list[tuple[int, int]], found: list, paths: list, root: Path, angle, mirrored, content,
          workers) -> None:
    """resample_gap of each pair (x, u) not measured yet, into found[x]["gaps"][u] (and its
    negative into found[u]["gaps"][x])."""
    todo = list(dict.fromkeys((x, u) for x, u in pairs
                              if u not in found[x]["gaps"] and content[x] > 0 and content[u] > 0))
    done = map_files(_gap_item, [(str(root / paths[x]), str(root / paths[u]), bool(mirrored[x]), bool(mirrored[u]),
                                  float(angle[x] - angle[u]), float(content[u] / content[x])) for x, u in todo],
                     workers=workers) if todo else []
    for (x, u), gap in zip(todo, done):
        found[x]["gaps"][u], found[u]["gaps"][x] = gap, -gap


def _frame(g: _Group, x: int, u: int, content, dims, reach: float = SCALE_ERROR,
           mixed: bool = False) -> tuple[float, float, float, bool] | None:
    """(turn, scale, reach, mixed) that put x's picture into u's canvas, for beyond_fill; None when
    the two differ in size or a content scale is unknown (nothing to compare)."""
    if dims[x] is None or tuple(dims[x]) != tuple(dims[u]) or not (content[x] > 0 and content[u] > 0):
        return None
    return round(g.turn(x, u), 2), round(float(content[u] / content[x]), 4), reach, mixed


def _shows_more(x: int, u: int, content) -> bool:
    """Whether x shows the picture CUT_SCALE larger than u (the dups stage's content scales)."""
    if not (content[x] > 0 and content[u] > 0):
        return False
    return round(float(content[u] / content[x]), 4) <= 1 / (1 + CUT_SCALE)


def _cut(g: _Group, x: int, u: int, content, dims) -> tuple[float, float, float] | None:
    """x's frame placed in u (see _frame) unless u shows the picture CUT_SCALE larger: where x
    shows it larger the frame lies inside u's canvas, and at about the same scale the turn
    between them leaves u's corners beyond it; u's pixels there say whether x was cut from u
    (picture) or u padded around x (fill). None otherwise."""
    frame = _frame(g, x, u, content, dims)
    return frame if frame is not None and not _shows_more(u, x, content) else None


def _pad(g: _Group, x: int, u: int, content, dims) -> tuple | None:
    """u's frame placed in x (see _frame) at every scale within PAD_REACH, two constants counting
    as a fill (a Kaggle-style chain copy's pad holds black and white): x's pixels there say whether
    x was padded around u's picture."""
    return _frame(g, u, x, content, dims, PAD_REACH, mixed=True)


def _pair_tests(g: _Group, x: int, u: int, content, dims) -> list[tuple[int, list[float], list[tuple]]]:
    """The image work that says whether x was turned from u (see _turned_from): x's wedges at its
    turn onto u, u's at its turn onto x, x's pixels beyond u's frame (padded around u?: a turn
    on a fixed canvas fills x's corners even where a zoom in hides the wedges' shape) and, where
    x shows the picture larger, u's pixels beyond x's frame (cut from u?); and u's pixels beyond
    x's frame, two constants counting as a fill, at any scale (padded around x?)."""
    cut, pad = _cut(g, x, u, content, dims), _pad(g, x, u, content, dims)
    beyond = [f for f in (cut, _frame(g, x, u, content, dims, mixed=True)) if f is not None]
    return [(x, [round(-_odd(g.turn(x, u)), 2)], [pad] if pad else []),
            (u, [round(-_odd(g.turn(u, x)), 2)], beyond)]


def _upright_tests(g: _Group, content, dims, shown: list[int] | None = None) -> list[tuple[int, list[float], list[tuple]]]:
    """The image work _onto_upright needs: the anchor against each candidate (shown None), or
    each of the `shown` candidates against every other candidate."""
    if shown is None:
        return [t for u in g.candidates for t in _pair_tests(g, g.anchor, u, content, dims)]
    return [t for u in shown for v in g.candidates + g.mates if v != u for t in _pair_tests(g, u, v, content, dims)]


def _sources(g: _Group, found: list, content, dims) -> tuple[list[tuple[int, float]], list[int]]:
    """_chain by the frames, or where they show the anchor turned from no candidate, by the
    resampling too (see _turned_from)."""
    by_frames = _chain(g, found, content, dims)
    return by_frames if by_frames[1] else _chain(g, found, content, dims, resampling=True)


def _chain(g: _Group, found: list, content, dims, resampling: bool = False) -> tuple[list[tuple[int, float]], list[int]]:
    """Where the chain the anchor was turned along begins: of the candidates it is shown turned
    from (_turned_from), those shown turned from another of them drop out; each one left that
    was itself turned from other candidates is replaced by those, tested so in turn, until the
    ones left were turned from none (a chain's original: kaggle 2's 14-rotated1-rotated1.jpg was
    turned 22.8 degrees onto its parent 14-rotated1.jpg). One turned from a member at the anchor's
    own pose (g.mates) starts the chain where the anchor stands: the anchor itself. Returns those
    starts with the surety of the weakest step to them, and every candidate reached (the ones not
    yet tested against the others read as starts)."""
    def sources(u: int, among) -> list[tuple[int, float]]:  # (v, how surely u was turned from v)
        return [(v, e) for v in among if v != u and abs(_odd(g.turn(u, v))) >= GROUP_SNAP
                and (e := _turned_from(g, found, u, v, content, dims, resampling)) > 0]

    step = [(u, e) for u in g.candidates if (e := _turned_from(g, found, g.anchor, u, content, dims, resampling)) > 0]
    starts, reached = [], []
    while step:
        step = [(u, e) for u, e in step if u not in reached]
        reached += [u for u, _ in step]
        step = [(u, e) for u, e in step if not sources(u, [v for v, _ in step])]
        further = []
        for u, e in step:
            if sources(u, g.mates):  # turned from where the anchor stands: nothing to turn it by
                starts.append((g.anchor, e))
                continue
            back = sources(u, g.candidates)
            if back:
                further += [(v, min(e, ev)) for v, ev in back]
            else:
                starts.append((u, e))
        step = further
    return sorted(starts, key=lambda s: g.candidates.index(s[0]) if s[0] in g.candidates else -1), reached


def _enlarged_canvas(g: _Group, x: int, u: int, content, dims) -> bool:
    """Whether x's canvas is the one u's picture needs turned by the pair's angle in a canvas
    enlarged to hold all of it, at u's pixel scale (see CANVAS_PX): x is u so turned. A turn only
    adds canvas, so the reverse cannot also hold."""
    if dims[x] is None or dims[u] is None or not (content[x] > 0 and content[u] > 0):
        return False
    turn = g.turn(x, u)
    (wx, hx), (wu, hu) = (float(v) for v in dims[x]), (float(v) for v in dims[u])
    if round(turn / 90.0) % 2:  # a quarter turn swaps u's sides first
        wu, hu = hu, wu
    # content scale is per longest side (dups): the same pixel scale when it matches the sides' ratio
    if abs(content[x] / content[u] * max(wx, hx) / max(wu, hu) - 1.0) > CANVAS_SCALE:
        return False
    t = np.radians(abs(_odd(turn)) + np.arange(-CANVAS_TURN, CANVAS_TURN + 1e-9, 0.05))
    c, s = np.cos(t), np.sin(t)
    off = np.maximum(np.abs(wx - (wu * c + hu * s)), np.abs(hx - (hu * c + wu * s)))
    return bool(off.min() <= CANVAS_PX)


def _turned_from(g: _Group, found: list, x: int, u: int, content, dims, resampling: bool = False) -> float:
    """How surely x is u turned (0: not shown): x's canvas is u's turned and enlarged
    (_enlarged_canvas), or x is padded (its wedges at the pair's angle fit SUPPORT at least and
    PAIR_MARGIN better than u's: a straight film fits one angle by chance up to ~0.55, a thin
    one up to 0.85; and where u shows the picture larger, x's pixels beyond u's frame, placed at
    any scale within PAD_REACH of the verified one, two constants counting as a fill, fit a fill
    PAD_FIT at least: a copy cut from x would show x's picture there; elsewhere x was cut from u
    too, so u's pixels beyond x's frame fit a fill under BEYOND_LOOSE; its wedges from PAIR_FIT
    where they fit PAD_BACKED (PAD_FIT where u shows picture beyond x's frame, see below) and u
    bears no mark at all; or, with no wedges to go by, they fit PAD_SURE, a Kaggle-style zoom out
    on the same canvas, which u's wedges outweigh only from SUPPORT) or cut (u does not show the picture CUT_SCALE
    larger, u's pixels beyond x's frame are picture, not a zoom out's fill (BEYOND_FILL;
    BEYOND_LOOSE where x shows no picture of its own beyond u's frame, which at about u's scale
    it must not: a copy made from u has nothing of its own there), u is not the padded one
    (unless clearly picture, CUT_SURE, and u's wedges under SUPPORT), and u bears no mark at
    all: a Kaggle-style chain copy can shrink without a fill that beyond_fill sees, and such a
    copy seldom escapes every mark). u's wedges at the pair's angle count against x only where u
    may have been padded around x: not where u's pixels beyond x's frame hold PICTURE grey levels
    and fit no fill (BEYOND_FILL) even with two constants (a chain's pad holds black and white),
    while x shows no picture of its own beyond u's frame: then u's fit is a chance one (224 px
    originals fit 0.3-0.87). With `resampling` (the frames showed no candidate, see _sources),
    failing all that, x is also shown made from u when u is sharper than x put onto its frame by
    RESAMPLED_GAP more than x is than u put onto x's (resample_gap), and u's wedges do not say u
    was padded around x."""
    if _enlarged_canvas(g, x, u, content, dims):
        return 1.0
    fx = found[x]["fits"].get(round(-_odd(g.turn(x, u)), 2), 0.0)
    fu = found[u]["fits"].get(round(-_odd(g.turn(u, x)), 2), 0.0)
    u_padded = fu >= PAIR_FIT and fu - fx >= PAIR_MARGIN
    cut, pad = _cut(g, x, u, content, dims), _pad(g, x, u, content, dims)
    # (a file that did not decode says nothing: None)
    beyond, picture = (found[u]["beyond"].get(cut) or (1.0, 0.0)) if cut else (1.0, 0.0)
    fill, left = (found[x]["beyond"].get(pad) or (0.0, 0.0)) if pad else (0.0, 0.0)
    own_picture = fill < PAD_FIT and left >= PICTURE  # x shows picture of its own beyond u's frame
    shows_less = pad is not None and _shows_more(u, x, content)  # u shows the picture larger: cut from x?
    # at about u's scale, a copy made from u holds nothing of its own beyond u's frame (two copies
    # both cut from a third do)
    same_scale = cut is not None and not _shows_more(x, u, content)
    # u's pixels beyond x's frame, two constants counting as a fill: picture there says u was not
    # padded around x (kaggle 7's upright 58.jpg against its chain copy zoomed out to 0.78, white
    # then black: 0.14 with one fill, 0.60 with two); against wedges that do not confirm a turn
    # (under SUPPORT) a fit under BEYOND_LOOSE is picture too, as for a cut (dark, flat borders fit
    # 0.2-0.3): the originals of 9 kept copies (8 zoomed in 1.1-1.6) on kaggle seeds 1-73 but 83
    # fit 0.21-0.29 there with 4-22 grey levels left, against chance wedges of 0.35-0.46
    beyond_u = found[u]["beyond"].get(_frame(g, x, u, content, dims, mixed=True)) or (1.0, 0.0)
    u_picture = beyond_u[1] >= PICTURE and beyond_u[0] < (BEYOND_FILL if fu >= SUPPORT else BEYOND_LOOSE)
    backed = shows_less and g.unmarked[u] and fx >= PAIR_FIT and fill >= (PAD_FIT if u_picture else PAD_BACKED)
    # where u does not show the picture larger, x turned from u was cut from it too: u's pixels
    # beyond x's frame are u's picture, not fill (kaggle seeds 1-73 but 83: the turned copies so
    # shown padded against their original, at most 0.33 in 346 pairs; kaggle 241's original
    # against a chain copy zoomed out to 0.86, 0.385)
    cut_from = cut is None or beyond < BEYOND_LOOSE
    if (fx >= SUPPORT or backed) and fx - fu >= PAIR_MARGIN and (fill >= PAD_FIT if shows_less else cut_from):
        return fx
    # ... and where x shows no picture of its own beyond u's frame either, u's wedges are chance
    if u_picture and not own_picture:
        u_padded = False
    # no original beyond a copy's frame fits PAD_SURE (see PAD_FIT): only a fit that confirms a
    # turn (SUPPORT) says u was padded instead (kaggle 73's 27.jpg fits 0.30 by chance against its
    # copy's pad of 0.84)
    if fill >= PAD_SURE and not (u_padded and fu >= SUPPORT):
        return fill
    if g.unmarked[u] and picture >= PICTURE and not (same_scale and own_picture) and (
            not u_padded and beyond < (BEYOND_FILL if own_picture else BEYOND_LOOSE)
            or not own_picture and fu < SUPPORT and beyond < CUT_SURE):
        return 1.0 - beyond
    # resampling: the frames showed no candidate, so the blur of resampling says which was made
    # from which (a copy is as blurred against a sibling made in fewer steps: only a fallback)
    gap = found[x]["gaps"].get(u, 0.0) if resampling else 0.0
    if gap >= RESAMPLED_GAP and not u_padded:
        return min(1.0, gap)
    return 0.0


def _onto_upright(g: _Group, found: list, content, dims) -> tuple | None:
    """The verified turn onto the member judged upright, when the anchor was turned from it.

    The candidates (unmarked by the dups stage, no EXIF turn, one picture with the anchor at an
    odd angle) the anchor is shown turned from (_turned_from), followed back along the chain to
    where it starts (_chain), are judged upright; a chain that starts at a member at the anchor's
    own pose leaves the anchor as it stands. When they agree on the anchor's odd turn, the anchor
    gets the turn onto the first (the representative first), whatever copies turned further say
    (their wedges call any less turned member straight). When they agree on the whole turn too,
    the first's right-angle pose is the upright one (a Kaggle-style chain turns 5-25 degrees a
    step: copies end up turned beyond 45); else it stays _quarter's. When they disagree the
    anchor is flagged and left as it is. None when no candidate is so shown. Returns
    _odd_decision's tuple and the member whose right-angle pose is upright (or None)."""
    k = g.anchor
    upright, reached = _sources(g, found, content, dims)
    if not reached:
        return None
    turns = [0.0 if u == k else _odd(g.turn(k, u)) for u, _ in upright]
    if not upright or any(_angle_diff(t, turns[0]) > AGREE for t in turns):
        return 0.0, 0.5, "", "low-confidence", None, [], None
    u, e = upright[0]
    conf = min(group_confidence(g.score[u]), round(0.5 + 0.5 * min(1.0, e), 3))
    if u == k:
        return 0.0, conf, "", "", None, [0.0], None
    whole = all(_angle_diff(g.turn(k, v), g.turn(k, u)) <= AGREE for v, _ in upright)
    return turns[0], conf, "group", "", u, [0.0], u if whole else None


def _wedges_turn(g: _Group, found: list) -> bool:
    """Whether the wedges alone (no pad test) would turn g's anchor beyond a right angle."""
    decided = _odd_decision(g, found)
    return decided is not None and bool(decided[0])


def _pad_frames(g: _Group, x: int, content, dims) -> list[tuple]:
    """The anchor's frame placed in witness x (see _frame), for x's pad test in _odd_decision."""
    frame = _frame(g, g.anchor, x, content, dims) if x != g.anchor else None
    return [frame] if frame is not None else []


def _witness_pad(g: _Group, found: list, w: int, content, dims) -> float:
    """How well the pixels of cluster w's witnesses beyond the anchor's frame fit a fill (the
    best of them; 0 when not tested): a Kaggle-style copy turned and zoomed out on the anchor's
    canvas fills them whether or not its corners keep a wedge's shape."""
    fills = [(found[x].get("beyond", {}).get(f) or (0.0, 0.0))[0]
             for x in g.seen[w] for f in _pad_frames(g, x, content, dims)]
    return max(fills, default=0.0)


def _odd_decision(g: _Group, found: list, content=None, dims=None) -> tuple | None:
    """The anchor's turn beyond a right angle, from its group: (turn, confidence, source, flag,
    the member that stands upright), or None when the group does not settle it.

    A pair at an odd angle is one exposure turned inside a canvas: one of the two shows the
    turn's fill wedges at exactly the pair's angle and the other does not. Tested at that one
    angle the two sides differ clearly (orient_quality, seed 1: a padded side fits 0.35-1.6,
    its straight partner 0.01-0.5 and at least 0.24 less): the side that fits PAIR_MARGIN
    better is the turned one. The anchor so shown (against a copy, or sure on its own) is
    turned by the verified angle; a witness so shown is a turned copy of an anchor that stands
    as it is. A group of many copies tests the anchor at many angles, and a straight anchor
    fits one of them by chance now and then (Kaggle-style sets: 9 of 74 kept originals turned
    by 4-37 degrees, each while other copies' wedges showed it straight, at fits 1.08-1.54
    against its chance fits of 0.37-0.93): the anchor is turned only when it fits better, by
    PAIR_MARGIN, than any copy's wedges say it stands, and, tested at more than one angle,
    only from SUPPORT (4 more kept originals of a Kaggle-style set fitted 0.35-0.73 with no
    copy to say otherwise; the right turns so decided fitted 0.92-1.6). Below that the anchor
    is flagged, not turned. A witness whose pixels beyond the anchor's frame fit a fill
    PAD_SURE (see _turned_from) was padded around the anchor's picture: it shows the anchor
    straight whatever the wedges say (kaggle seed 73: an original's chance fit of 0.30 turned
    it onto its copy zoomed out to 0.88, whose wedges fit 0.04 and pad 0.84)."""
    k = g.anchor
    padded, straight = [], []
    for o, w in g.clusters:
        fk = found[k]["fits"].get(round(-o, 2), 0.0)
        fw = max(found[x]["fits"].get(g.test_angle(x), 0.0) for x in g.seen[w])
        pad = _witness_pad(g, found, w, content, dims) if content is not None else 0.0
        if pad >= PAD_SURE:
            straight.append((pad, w))
        elif fk >= PAIR_FIT and fk - fw >= PAIR_MARGIN and (g.score[w] >= COPY_SCORE or fk >= SUPPORT) \
                and (g.resampled[k] or not all(g.resampled[x] for x in g.seen[w])):
            padded.append((fk, o, w))
        elif fw >= PAIR_FIT and fw - fk >= PAIR_MARGIN:
            straight.append((fw, w))
    shown_straight = max((fw for fw, _ in straight), default=0.0)
    padded = [p for p in padded if p[0] >= shown_straight + PAIR_MARGIN]
    if padded and len(g.clusters) > 1 and max(padded)[0] < SUPPORT:  # one chance fit among many tests
        return 0.0, round(1.0 - 0.5 * min(1.0, max(padded)[0]), 3), "", "low-confidence", None, []
    if padded:
        fk, o, w = max(padded)
        return o, min(group_confidence(g.score[w]), round(0.5 + 0.5 * min(1.0, fk), 3)), "group", "", w, [0.0]
    if straight:
        turned = [o for o, w in g.clusters if any(w == x for _, x in straight)]
        return 0.0, round(0.5 + 0.5 * min(1.0, max(straight)[0]), 3), "", "", None, turned
    return None


def _own_skew(g: _Group, skew: dict | None) -> tuple:
    """The anchor's turn beyond a right angle from its own wedges (the group could not say):
    applied only from SKEW_CONFIDENCE; a turn the group verified is taken at the pair's angle."""
    if skew is None:
        return 0.0, 0.5, "", "", None, []
    s, conf = float(skew["rotation"]), float(skew["confidence"])
    if s and conf >= SKEW_CONFIDENCE:
        o = next((o for o, _ in g.clusters if _angle_diff(o, s) <= WEDGE_AGREE), None)
        return (s, conf, "skew", "", None, [0.0]) if o is None else (o, conf, "group", "", None, [0.0])
    unsure = bool(s) or bool(skew.get("flag"))
    return 0.0, (1.0 - conf if s else conf), "", "low-confidence" if unsure else "", None, []


def _resave_item(item: tuple) -> float | None:
    return resave_gap(*item)


def _quarter(g: _Group, odd_k: float, sha, saved_from: int | None = None) -> tuple[float, float]:
    """The representative's turn to upright (its right-angle pose and the odd part decided for
    the anchor), and its confidence.

    When the anchor was saved again from a member turned by a right angle or mirrored
    (`saved_from`, see curate.resave), that member's pose is the upright one.

    The right-angle pose is the representative's own: the dups stage keeps as representative
    the member the others were derived from (the one without a copy's traces), and a right
    angle leaves no wedges to say otherwise. Only when MAJORITY or more distinct copies
    (verified at VOTE_SCORE or better) stand in one other pose, and no other member in the
    representative's, does that pose win: two turned copies agree by chance one time in three
    (a copy mirrored and turned 90 stands as one turned 270), so two are not enough."""
    k = g.anchor
    base = (-odd_k if g.mirrored[k] else odd_k) - g.angle[k]  # the representative's turn, up to right angles
    rep = next((x for x in g.members if g.rep[x]), k)

    def vote(x: int) -> float:  # 'the representative stands upright after this' if x does
        return norm_angle(base + 90.0 * round((-g.angle[x] - base) / 90.0))

    if saved_from is not None:
        return vote(saved_from), group_confidence(g.score[saved_from])
    own = vote(rep)
    copies = [x for x in g.members if x != rep and g.score[x] >= VOTE_SCORE]
    backing: dict[float, set] = {}
    for x in copies:
        backing.setdefault(vote(x), set()).add(sha[x] or x)
    if own in backing:
        return own, 1.0
    best = max(backing, key=lambda v: len(backing[v]), default=None)
    if best is not None and len(backing[best]) >= MAJORITY:
        return best, round(0.5 + 0.5 * len(backing[best]) / (len(backing[best]) + 1), 3)
    return own, 1.0


def _angle_diff(a: float, b: float) -> float:
    return abs((a - b + 180.0) % 360.0 - 180.0)


def orient_summary(table: pd.DataFrame) -> dict:
    rotated = table["rotation"] != 0
    return {
        "reoriented": int(rotated.sum()),
        "by_source": {k: int(v) for k, v in table.loc[rotated, "orient_source"].value_counts().sort_index().items()},
        "low_confidence": int(table["orient_flag"].str.contains("low-confidence").sum()),
        "mirrored": int(table["orient_flag"].str.contains("mirrored").sum()),
    }
