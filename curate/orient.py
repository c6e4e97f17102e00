"""How many degrees (counter-clockwise, after EXIF) each image needs to stand upright.

Three sources, in this order of trust:

1. EXIF orientation: the loader already applies it (`curate.imageio.decode`); the audit flags it.
2. The duplicate group: a copy stands upright when turned onto its group's upright pose.
   `dup_angle` (from the dups stage's verified pair) is the turn that brings a file onto its
   representative after un-mirroring. Which pose is upright: the one most members share (most
   copies of a radiograph are not turned; the same bytes twice count once); when two poses tie
   (typically an original and one copy turned 90, where the representative may be either), a
   pose model learnt from the dataset's own images (each thumbnail turned 0/90/180/270 is an
   example of that turn) decides if it leads clearly; otherwise no member is turned and the
   group is flagged. Turning a user's upright original is the worst mistake this stage can
   make, so a tie is never settled by a guess.
3. The image itself: a scan turned by an arbitrary angle inside an enlarged canvas shows
   wedges of fill at its corners (constant/black, replicated edge pixels, or a mirror of the
   inside). `estimate_skew` tests, for each candidate angle, whether the pixels that angle puts
   in the wedges are that fill, against a null that the fill does not explain; cheap on a small
   copy first (most straight images stop there), then refined on larger copies.

Mirrored copies: a rotation cannot undo a left-right flip. A mirrored copy gets the rotation
that stands it upright (still mirrored); `orient_flag` says `mirrored` so a user can flip it.

Every estimate has a confidence. A skew that is wedge-like but not sure enough is not applied:
`rotation` stays 0 and `orient_flag` says `low-confidence`, never a silent guess. Right-angle
turns of a lone image (no copy to compare with) cannot be seen from wedges and are left alone;
skews under MIN_SKEW degrees are not searched.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from curate.errors import ImageError
from curate.imageio import decode, fit
from curate.parallel import Progress, map_files

ORIENT_COLUMNS = ("rotation", "orient_source", "orient_confidence", "orient_flag")
MIN_CONFIDENCE = 0.5  # an orientation below this confidence is not applied (flagged instead)
MIN_SKEW = 3.0  # degrees: smaller turns are not searched (their thin wedges look like border bands)
MAX_SKEW = 45.0
COARSE_SIDE, COARSE_STEP = 96, 1.0  # px (longest side) and degrees of the first, cheap search
MID_SIDE, FINE_SIDE, FINE_STEP = 128, 256, 0.25  # ... and of the refinement of its best candidates
REFINE = 3  # coarse candidates refined
GATE = 0.45  # a coarse best fit must reach this to be refined (else: straight; most are)
# Fit (see _score) that applies a skew, per fill. Measured on a messy set built from FracAtlas
# (benchmarks/orient_quality.py): straight radiographs' best fits stay under ~0.4 (constant)
# and ~0.52 (replicate, only on thin wedges); true skews reach 0.9 (constant), 0.6 (replicate),
# 0.5 (reflect: mirrored anatomy is the hardest to tell apart). Precision first.
ACCEPT = {"constant": 0.6, "replicate": 0.55, "reflect": 0.45}
THIN, THIN_BAR = 6.0, 1.25  # wedges of turns under THIN degrees look like a scan's border bands
FLAG = 0.7  # share of ACCEPT from which an unapplied fit is flagged (0.7% of straight ones)
DECODE_SIDE = FINE_SIDE
MIN_SIDE = 64  # px: smaller images are not searched for wedges
THUMB_SIDE = 24  # px: thumbnails for the pose model (which way up a radiograph stands)
POSE_MARGIN = 0.5  # mean log-likelihood lead the pose model needs to settle a tie between poses
POSE_TRAIN = 1500  # images (x4 turns) the pose model learns from, at most
GROUP_SNAP = MIN_SKEW  # degrees: a group turn closer than this to a right angle is that right angle
# A copy is one picture turned (aligned detail correlates at least this well, see dups); below
# it, maybe two exposures of the same limb: grouped against leakage, but turned onto the other
# only where the file's own wedges show that turn. Messy-set turned copies: median 0.94 (a
# quarter under 0.9); FracAtlas's own turned pairs: 0.72-0.88.
COPY_SCORE = 0.9
WEDGE_AGREE = 2.0  # degrees: a file's own skew and its group's turn agree this closely
# Wedge fit (of ACCEPT) that confirms a group's odd-angle turn at the pair's precise angle: 10
# of 4024 straight FracAtlas films reach it at their best angle; weakly-wedged copies, 0.78-0.96.
SUPPORT = 0.75
NOISE = 2.0  # grey levels per pixel: JPEG noise, so flat regions count as no evidence
CLIP = 60.0  # grey levels: one wild pixel must not outweigh many
AGREE = 3.0  # degrees: votes within this of each other agree


# ---- skew from the image itself ---------------------------------------------------------------


def _frame_size(w: int, h: int, deg: float) -> tuple[float, float] | None:
    """Size of the original exposure inside a w x h canvas enlarged to hold it turned by deg."""
    c, s = abs(np.cos(np.radians(deg))), abs(np.sin(np.radians(deg)))
    det = c * c - s * s
    if det < 1e-3:
        return None
    w0, h0 = (w * c - h * s) / det, (h * c - w * s) / det  # canvas was enlarged to hold it all
    return (w0, h0) if min(w0, h0) > 8 else None


def _sample(img: np.ndarray, x, y) -> np.ndarray:
    """Bilinear samples of img at the points (x, y)."""
    x, y = np.broadcast_arrays(np.asarray(x, np.float32), np.asarray(y, np.float32))
    n = x.size
    cols = 1024  # remap wants a 2-D map under 32k a side
    pad = (-n) % cols
    mx = np.pad(x.ravel(), (0, pad)).reshape(-1, cols)
    my = np.pad(y.ravel(), (0, pad)).reshape(-1, cols)
    return cv2.remap(img, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).ravel()[:n]


def _score(img: np.ndarray, deg: float, grid, delta: float, stretch: float = 0.0) -> tuple[float, str]:
    """How well 'img is an exposure turned deg CCW in an enlarged canvas, corners filled' fits.

    Each pixel the hypothesis puts in a corner wedge is compared with what the fill would make
    it (a constant; the exposure's edge pixel, replicated; its mirror image inside the edge)
    and, as the null, with what it would be if the fill did NOT hold (the same test `delta`
    pixels along the edge; for a constant fill, the pixel just inside the edge). Flat
    regions say nothing either way and cancel out; where the image has detail a true wedge
    stands out (its fill residual is JPEG noise, the null's is the detail).
    Score per wedge side = sum(null - fill) / sum(null + fill + noise); the lower middle of
    the four sides counts (all wedges must agree, one odd side is tolerated), divided by the
    fill's acceptance bar (so 1 = just sure enough; thin wedges need more). `stretch` moves
    the exposure's width by that many pixels (and its height so the canvas still fits): near
    45 degrees the canvas pins the exposure's shape only loosely. Returns (score, fill mode).
    """
    h, w = img.shape
    size = _frame_size(w, h, deg)
    if size is None:
        return -1.0, ""
    a, b = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    hu = (size[0] + stretch - 1) / 2
    hv = (size[1] - stretch * abs(a) / max(abs(b), 1e-3) - 1) / 2
    cx, cy = (w - 1) / 2, (h - 1) / 2
    dx, dy, index = grid
    u = a * dx - b * dy  # canvas -> exposure coordinates (inverse of cv2's CCW rotation)
    v = b * dx + a * dy
    eu, ev = np.abs(u) - hu, np.abs(v) - hv
    margin = 1.0  # interpolation blurs a pixel either side of the wedge's edge
    beyond_u = (eu > margin) & (ev < -margin)
    sel = beyond_u | ((ev > margin) & (eu < -margin))
    if int(sel.sum()) < 16:
        return -1.0, ""
    bu = beyond_u[sel]
    normal = np.where(bu, u[sel], v[sel])  # exposure coordinate across the nearest edge
    along = np.where(bu, v[sel], u[sel])
    sign = np.where(normal > 0, 1.0, -1.0)
    half = np.where(bu, hu, hv)
    depth = np.abs(normal) - half
    side = bu * 2 + (normal > 0)  # which of the four wedge sides

    def points(pos, shift):  # canvas points at |normal| = pos, moved `shift` along the edge
        nn, tt = sign * pos, along + shift
        uu, vv = np.where(bu, nn, tt), np.where(bu, tt, nn)
        return cx + a * uu + b * vv, cy - b * uu + a * vv

    # replicate: the fill just beyond the edge, not the edge pixel itself (scans often carry a
    # bright or dark line in their outermost pixel row); reflect: the mirror image about the
    # edge (half a pixel beyond the edge pixel); constant: just inside the edge, where a
    # constant fill would end in a step (deeper inside tells nothing of where the edge is)
    edge, mirror, inside = half + margin + 0.5, half + 1.0 - depth, half - 1.5
    spots = [points(edge, 0), points(edge, delta), points(edge, -delta),
             points(mirror, 0), points(mirror, delta), points(mirror, -delta), points(inside, 0)]
    xs = np.concatenate([x for x, _ in spots])
    ys = np.concatenate([y for _, y in spots])
    e0, e1, e2, m0, m1, m2, ins = _sample(img, xs, ys).reshape(7, -1)
    out = img.ravel()[index[sel]]
    const = float(np.median(out))
    tests = {
        "constant": (np.abs(out - const), np.abs(ins - const)),
        "replicate": (np.abs(out - e0), 0.5 * (np.abs(out - e1) + np.abs(out - e2))),
        "reflect": (np.abs(out - m0), 0.5 * (np.abs(out - m1) + np.abs(out - m2))),
    }
    count = np.bincount(side, minlength=4)
    bar = THIN_BAR if abs(deg) < THIN else 1.0
    best, best_mode = -1.0, ""
    for mode, (fill, null) in tests.items():
        fill, null = np.minimum(fill, CLIP), np.minimum(null, CLIP)
        f = np.bincount(side, fill, minlength=4)
        n = np.bincount(side, null, minlength=4)
        scores = sorted(((n - f) / (n + f + NOISE * count))[count >= 6])
        s = scores[len(scores) // 2 - 1] / (ACCEPT[mode] * bar) if len(scores) >= 3 else -1.0
        if s > best:
            best, best_mode = float(s), mode
    return best, best_mode


def _grid(img: np.ndarray, sparse: bool = False):
    """Pixel offsets from the centre, and their flat indices: every pixel, or (sparse) every
    other one in a checkerboard, which halves the cost of the first search."""
    h, w = img.shape
    ys, xs = np.mgrid[0:h, 0:w]
    keep = ((xs + ys) % 2 == 0).ravel() if sparse else np.ones(h * w, bool)
    index = np.flatnonzero(keep)
    return ((xs.ravel()[index] - (w - 1) / 2).astype(np.float32), (ys.ravel()[index] - (h - 1) / 2).astype(np.float32),
            index)


def _best(img: np.ndarray, angles, stretches=(0.0,), sparse=False) -> list[tuple[float, str, float, float]]:
    """(score, fill mode, angle, stretch) of each hypothesis, best first."""
    grid = _grid(img, sparse)
    delta = max(2.0, max(img.shape) / 40)
    found = [(*_score(img, float(d), grid, delta, st * max(img.shape) / FINE_SIDE), float(d), st)
             for d in angles if MIN_SKEW <= abs(d) <= MAX_SKEW for st in stretches]
    return sorted(found, key=lambda f: f[0], reverse=True)


def estimate_skew(pixels: np.ndarray) -> dict:
    """Skew of a greyscale image from the fill wedges at its corners.

    Cheap test first: every angle on a small copy (every other pixel); an image whose best fit
    stays under GATE (three in four FracAtlas radiographs) stops there. Otherwise the best three
    distinct candidates are refined on larger copies. Returns {"rotation": degrees CCW that straighten it (0 when none is
    sure), "confidence": 0-1 of that rotation (including a rotation of 0), "flag": True when a
    wedge-like fit was found but is not sure enough to apply, "score": the evidence (1 = the
    acceptance bar), "angle": the best hypothesis' skew, "fill": constant/replicate/reflect}.
    """
    if min(pixels.shape) < MIN_SIDE:  # too small to see wedges in: nothing to go by
        return {"rotation": 0.0, "confidence": 0.5, "flag": False, "score": 0.0, "fit": 0.0, "coarse": 0.0,
                "angle": 0.0, "fill": ""}
    pixels = pixels.astype(np.float32)
    angles = [s * d for d in np.arange(MIN_SKEW, MAX_SKEW + 0.01, COARSE_STEP) for s in (1, -1)]
    coarse = _best(fit(pixels, COARSE_SIDE), angles, sparse=True)
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
        d0 = mid[0][2]
        fine = _best(fit(pixels, FINE_SIDE), [d0 + k * FINE_STEP for k in range(-2, 3)],
                     stretches=(0.0, -1.0, 1.0) if abs(d0) > 30 else (0.0,))
        fit_score, mode, deg, _ = fine[0]
    evidence = round(max(0.0, float(fit_score)), 3)  # rounded as cached, so a cache hit decides alike
    if evidence >= 1.0:
        rotation, confidence = -round(float(deg), 2), min(1.0, 0.5 * evidence)
    else:  # confidence that the image is straight: high when no wedge fits at all
        rotation, confidence = 0.0, 1.0 - 0.5 * evidence
    return {"rotation": rotation, "confidence": round(float(confidence), 3),
            "flag": bool(FLAG <= evidence < 1.0), "score": round(float(evidence), 3),
            "fit": round(float(fit_score), 3), "coarse": round(float(score), 3),
            "angle": round(float(deg), 2), "fill": mode}


def thumbnail(pixels: np.ndarray, side: int = THUMB_SIDE) -> np.ndarray:
    """side x side, aspect kept (padded with 0), zero mean, unit norm: what the pose model sees."""
    small = fit(pixels, side).astype(np.float32)
    h, w = small.shape
    canvas = np.zeros((side, side), np.float32)
    y, x = (side - h) // 2, (side - w) // 2
    canvas[y:y + h, x:x + w] = small
    canvas -= canvas.mean()
    return canvas / (np.linalg.norm(canvas) + 1e-6)


def skew_file(path: str | Path) -> dict:
    """estimate_skew of one file, plus its thumbnail; a file that does not decode gets 0 with
    no confidence."""
    try:
        pixels = decode(path, max_side=DECODE_SIDE).pixels
    except ImageError:
        return {"rotation": 0.0, "confidence": 0.0, "flag": False, "score": 0.0, "angle": 0.0, "fill": "",
                "thumb": None}
    return {**estimate_skew(pixels), "thumb": thumbnail(pixels)}


ORIENT_CACHE_VERSION = "3"  # bump when skew_file's results change meaning: old entries are ignored


def cached_skews(table: pd.DataFrame, root: str | Path, cache_dir: str | Path, *, workers: int | None = None,
                 progress: Progress | None = None) -> list[dict | None]:
    """skew_file for every ok row, reusing results kept per (path, size, mtime_ns) in cache_dir:
    the image work is most of orient's time, and a re-run should redo only new or changed files."""
    from curate.cache import FileCache

    root = Path(root)
    cache = FileCache(Path(cache_dir) / f"skews-v{ORIENT_CACHE_VERSION}.npz")
    ok = (table["status"] == "ok").to_numpy()
    keys = [(os.path.realpath(root / p), int(sz), int(mt))  # realpath: a link loop does not raise
            for p, sz, mt in zip(table["path"], table["size"], table["mtime_ns"])]
    skews: list[dict | None] = [None] * len(table)
    todo = []
    for i in np.flatnonzero(ok):
        hit = cache.get(*keys[i])
        if hit is None:
            todo.append(i)
            continue
        thumb = np.frombuffer(bytes.fromhex(hit.pop("thumb_hex")), np.float16).astype(np.float32)
        # (the flag is re-derived, so a changed FLAG needs no new cache)
        skews[i] = {**hit, "flag": bool(hit["rotation"] == 0 and FLAG <= hit["score"] < 1.0),
                    "thumb": thumb.reshape(THUMB_SIDE, THUMB_SIDE) if thumb.size else None}
    if progress:
        progress(int(ok.sum()) - len(todo))
    found = map_files(skew_file, [root / table["path"].iloc[i] for i in todo], workers=workers, progress=progress)
    for i, sk in zip(todo, found):
        thumb = None if sk["thumb"] is None else np.asarray(sk["thumb"], np.float16)
        stored = {k: v for k, v in sk.items() if k != "thumb"}
        stored["thumb_hex"] = "" if thumb is None else thumb.tobytes().hex()
        cache.put(*keys[i], stored)
        # the same float16 rounding as a cache hit, so a re-run decides exactly as this run did
        skews[i] = {**sk, "thumb": None if thumb is None else thumb.astype(np.float32)}
    if todo:
        cache.save()
    return skews


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


def orient(table: pd.DataFrame, root: str | Path, *, workers: int | None = None,
           progress: Progress | None = None, skews: list[dict] | None = None) -> pd.DataFrame:
    """Add rotation, orient_source, orient_confidence and orient_flag to the table.

    Uses the dups stage's columns when present (group, representative, dup_angle, mirrored,
    dup_score); without them every image is treated on its own. `skews` (one skew_file result
    per row, None for rows that are not ok) may be passed to skip the image work, e.g. from a
    cache.
    """
    root = Path(root)
    ok = (table["status"] == "ok").to_numpy() if "status" in table else np.ones(len(table), bool)
    if skews is None:
        idx = np.flatnonzero(ok)
        found = map_files(skew_file, [root / table["path"].iloc[i] for i in idx], workers=workers, progress=progress)
        skews = [None] * len(table)
        for i, s in zip(idx, found):
            skews[i] = s
    out = table.copy()
    n = len(out)
    rotation = np.zeros(n)
    source = np.array([""] * n, dtype=object)
    confidence = np.zeros(n)
    flag = np.array([""] * n, dtype=object)

    has_groups = {"group", "dup_angle"} <= set(out.columns)
    groups = out["group"].to_numpy() if has_groups else np.arange(n)
    dup_angle = out["dup_angle"].fillna(0).astype(float).to_numpy() if has_groups else np.zeros(n)
    mirrored = out["mirrored"].fillna(False).astype(bool).to_numpy() if "mirrored" in out else np.zeros(n, bool)
    dup_score = out["dup_score"].fillna(1.0).astype(float).to_numpy() if "dup_score" in out else np.ones(n)
    is_rep = out["representative"].fillna(False).astype(bool).to_numpy() if "representative" in out else np.ones(n, bool)
    sha = out["sha256"].fillna("").astype(str).to_numpy() if "sha256" in out else None
    copy = dup_score >= COPY_SCORE  # one picture turned, not two exposures of the same limb

    thumbs = [sk["thumb"] for sk in skews if sk is not None and sk.get("thumb") is not None]
    pose_logp = _pose_model(thumbs)
    members_of: dict = {}
    for i in np.flatnonzero(ok):
        members_of.setdefault(groups[i], []).append(i)
    for members in members_of.values():
        rep = next((i for i in members if is_rep[i]), members[0])
        witnesses = [i for i in members if i == rep or copy[i]]
        m_rep, conf_rep, flag_rep, unsure_pose = _upright_pose(witnesses, rep, skews, dup_angle, mirrored, pose_logp,
                                                               sha)
        for i in members:
            a = dup_angle[i] if i != rep else 0.0
            # rotate(mirror^m(M), a) == R and R stands upright after m_rep: M needs a + m_rep,
            # or, mirrored, -(a + m_rep) (it then stands upright but stays mirrored)
            r = norm_angle(-(a + m_rep) if mirrored[i] else a + m_rep)
            flag[i] = flag_rep
            if i != rep:
                quarter = round(r / 90.0) * 90.0
                if (abs(r - quarter) < GROUP_SNAP or flag_rep
                        or not (copy[i] or _wedges_agree(skews[i], r - quarter, root / out["path"].iloc[i]))):
                    # An odd angle to the representative is a skew of this file when the two
                    # are one picture, or its own corners show wedges of it: two
                    # exposures of one limb differ by a few degrees of posture, and turning a
                    # straight film would be wrong. (Also: within the pair's angle error of a
                    # right angle; the representative may be skewed itself.) Keep only the
                    # right-angle part.
                    r = norm_angle(quarter)
                if quarter % 360 != 0 and (unsure_pose or not copy[i]):
                    # which of the two poses is upright is not known, or the two are separate
                    # exposures rather than one picture turned: turn neither, ask the user
                    r, flag[i] = 0.0, "low-confidence"
            conf = conf_rep if i == rep else min(group_confidence(dup_score[i]), conf_rep if m_rep else 1.0)
            if conf < MIN_CONFIDENCE and r != 0:
                r, flag[i] = 0.0, "low-confidence"
            rotation[i], confidence[i] = r, conf
            # a turn is the image's own (skew) when it undoes the image's own sure wedges
            own = skews[i]["rotation"] != 0 and _angle_diff(r, skews[i]["rotation"]) <= AGREE
            source[i] = ("skew" if own else "group") if r else ""
    flag = np.array([";".join(f for f in (fl, "mirrored" if m else "") if f) for fl, m in zip(flag, mirrored)],
                    dtype=object)
    out["rotation"] = rotation
    out["orient_source"] = source
    out["orient_confidence"] = np.round(confidence, 3)
    out["orient_flag"] = flag
    return out


def _pose_model(thumbs: list):
    """Which way up an image stands, learnt from the dataset itself, when first asked.

    Every thumbnail turned by 0, 90, 180 and 270 degrees is an example of that turn; most
    images of a dataset stand upright, so the model learns what upright looks like there.
    Returns thumb -> log P(the image is an upright one turned by k * 90 CCW), k = 0..3, or None
    for too few images."""
    if len(thumbs) < 40:
        return None
    model = []

    def logp(thumb) -> np.ndarray | None:
        if thumb is None:
            return None
        if not model:
            from sklearn.linear_model import LogisticRegression

            pick = np.linspace(0, len(thumbs) - 1, min(len(thumbs), POSE_TRAIN)).round().astype(int)
            x = np.array([np.rot90(thumbs[j], k).ravel() for j in pick for k in range(4)])
            y = np.tile(np.arange(4), len(pick))
            model.append(LogisticRegression(max_iter=300).fit(x, y))
        return model[0].predict_log_proba(np.asarray(thumb, np.float32).reshape(1, -1))[0]

    return logp


def _upright_pose(members, rep, skews, dup_angle, mirrored, pose_logp, sha=None) -> tuple[float, float, str, bool]:
    """The turn that stands the representative upright, its confidence, flag, and whether the
    group's right-angle pose is unknown.

    Each member says which turn of the representative would leave it, the member, upright (its
    own pose, corrected by its own wedges when they are sure). A turn backed by two or more
    members and by more than any other wins. Otherwise, when the members stand in different
    right-angle poses (often: an original and one copy turned 90), the representative's pose
    is not taken on trust (it may be the copy): the pose model learnt from the dataset decides
    if it leads clearly, else nobody in the group is turned and the group is flagged. Without
    any of that, the representative's own pose stands, corrected only by its own sure skew.
    """
    own = skews[rep]
    own_m, own_conf = float(own["rotation"]), float(own["confidence"])
    own_flag = "low-confidence" if own["flag"] else ""
    votes = []
    for i in members:
        a = 0.0 if i == rep else dup_angle[i]
        s = float(skews[i]["rotation"])  # 0 unless the wedges are sure
        m = norm_angle((-s - a) if mirrored[i] else (s - a))
        if not s and abs(m - round(m / 90.0) * 90.0) >= GROUP_SNAP:
            # a copy at an odd angle to the representative, with no sure wedges of its own, is
            # most likely a skewed copy: it only says which right-angle pose is up
            m = norm_angle(round(m / 90.0) * 90.0)
        votes.append(m)
    # the same bytes twice are one witness, not two
    content = [sha[i] if sha is not None and sha[i] else i for i in members]
    counts = [len({c for m2, c in zip(votes, content) if _angle_diff(m, m2) <= AGREE}) for m in votes]
    best = max(range(len(votes)), key=lambda j: (counts[j], members[j] == rep))
    rivals = [counts[j] for j in range(len(votes)) if _angle_diff(votes[j], votes[best]) > AGREE]
    if members[best] != rep and counts[best] >= 2 and counts[best] > max(rivals, default=0):
        agreeing = [votes[j] for j in range(len(votes)) if _angle_diff(votes[j], votes[best]) <= AGREE]
        return norm_angle(float(np.median(agreeing))), round(min(1.0, 0.5 + 0.5 * counts[best] / len(votes)), 3), "", False

    def quarter(m: float) -> int:
        return int(round(m / 90.0)) % 4

    if len({quarter(v) for v in votes}) == 1 or (members[best] == rep and counts[best] >= 2
                                                  and counts[best] > max(rivals, default=0)):
        return own_m, own_conf, own_flag, False  # all stand the same way up, or most with the representative
    # the right-angle poses with the most votes tie: the pose model breaks the tie
    top = max(counts)
    poses = {quarter(v) for v, c in zip(votes, counts) if c == top}
    if len(poses) == 1:
        q = poses.pop()
        if q == quarter(own_m):
            return own_m, own_conf, own_flag, False
        return float(np.median([v for v in votes if quarter(v) == q])), 0.5 + 0.5 * top / len(votes), "", False
    logps = [pose_logp(skews[i].get("thumb")) if pose_logp else None for i in members]
    if any(lp is None for lp in logps):
        return own_m, own_conf, "low-confidence", True

    def likelihood(m: float) -> float:  # of 'the representative stands upright after m'
        total = 0.0
        for i, lp in zip(members, logps):
            a = 0.0 if i == rep else dup_angle[i]
            need = -(a + m) if mirrored[i] else a + m  # member i stands upright after `need`
            total += lp[quarter(-need)]  # so it now looks like an upright one turned by -need
        return total / len(members)  # the members are one radiograph: their evidence is not independent

    candidates = {q: (own_m if q == quarter(own_m) else float(np.median([v for v in votes if quarter(v) == q])))
                  for q in poses}
    scored = sorted(((likelihood(m), q, m) for q, m in candidates.items()), reverse=True)
    lead = scored[0][0] - scored[1][0]
    if lead < POSE_MARGIN:
        return own_m, own_conf, "low-confidence", True
    conf = round(float(1.0 / (1.0 + np.exp(-lead))), 3)
    m = scored[0][2]
    if scored[0][1] == quarter(own_m):
        return own_m, min(own_conf, conf), own_flag, False
    return norm_angle(m), conf, "", False


def _wedges_agree(sk: dict, turn: float, path: Path) -> bool:
    """Do the file's own corners show wedges that a turn by `turn` degrees straightens? Its own
    search may have found them surely; else they are tested at that one angle, which the pair
    gives precisely, so a fit of SUPPORT (under the search's own bar) is evidence enough."""
    if sk["rotation"]:
        return _angle_diff(sk["rotation"], turn) <= WEDGE_AGREE
    try:
        pixels = fit(decode(path, max_side=DECODE_SIDE).pixels.astype(np.float32), FINE_SIDE)
    except ImageError:
        return False
    if min(pixels.shape) < MIN_SIDE:
        return False
    found = _best(pixels, [-turn + d for d in (-0.5, 0.0, 0.5)])
    return bool(found) and found[0][0] >= SUPPORT


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
