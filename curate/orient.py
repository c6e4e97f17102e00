"""How many degrees (counter-clockwise, after EXIF) each image needs to stand upright.

Three sources, in this order of trust:

1. EXIF orientation: the loader already applies it (`curate.imageio.decode`); the audit flags it.
2. The duplicate group: a rotated copy of a radiograph stands upright when turned onto its
   group's upright member. `dup_angle` (from the dups stage) is the turn that brings a file
   onto its representative after un-mirroring. Members vote on which orientation is upright
   (most copies of a radiograph are not rotated); a tie goes to the representative.
3. The image itself: a scan turned by an arbitrary angle shows wedges of fill at its corners
   (black, replicated edge pixels, or a mirror of the edge). `estimate_skew` fits that: for each
   candidate angle it predicts where the wedges are and tests whether those pixels are fill
   (constant, equal to the nearest edge pixel, or mirror images of the inside), against the
   same test one band further inside. A straight radiograph has no wedge that fits, so it gets 0.

Mirrored copies: a rotation cannot undo a left-right flip. A mirrored copy gets the rotation
that stands it upright (still mirrored); `mirrored` stays true so a user can flip it or drop it.

Every estimate has a confidence; below MIN_CONFIDENCE the rotation stays 0 and `orient_flag`
says `low-confidence`, never a silent guess. Right-angle turns of a lone image (no copy to
compare with) cannot be seen from wedges and are left alone.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from curate.errors import ImageError
from curate.imageio import decode, fit
from curate.parallel import Progress, map_files

ORIENT_COLUMNS = ("rotation", "orient_source", "orient_confidence", "orient_flag")
MIN_CONFIDENCE = 0.5  # an orientation below this confidence is not applied (flagged instead)
# Evidence of a skew = mean of the best wedge fit (see _score) and how far it stands above the
# median fit over all angles (a real wedge is one sharp peak). Straight FracAtlas radiographs
# reach ~0.5 at worst (most stay under 0.25); skewed copies mostly 0.3-0.9. The bar is set for
# near-zero false skews at the cost of leaving some skewed copies at 0 (flagged when >= FLAG).
# Measured by benchmarks/orient_quality.py.
ACCEPT_SCORE = 0.5
FLAG_SCORE = 0.35
MIN_SKEW = 2.0  # degrees: smaller turns are not searched (wedges too thin to see)
MAX_SKEW = 45.0
COARSE_SIDE, FINE_SIDE = 128, 256
REFINE = 3  # coarse candidates refined
# Canvas geometry of the rotation: "expand" (canvas enlarged to keep every pixel, as PIL's
# expand=True and curate.messy do); "same" (turned inside its own frame) is also supported
# but off by default: it adds false fits on black-cornered radiographs.
GEOMETRIES = ("expand",)  # px, longest side for the coarse search and the refinement
DECODE_SIDE = 640
THUMB_SIDE = 24
TOLERANCE = 12.0  # grey levels: evidence must stand out from JPEG noise and smooth content
CLIP = 60.0  # grey levels: one wild pixel must not outweigh many
AGREE = 3.0  # degrees: votes within this of each other agree


# ---- skew from the image itself ---------------------------------------------------------------


def _frame_size(w: int, h: int, deg: float, geometry: str) -> tuple[float, float] | None:
    """Size of the original exposure inside a w x h canvas turned by deg."""
    if geometry == "same":  # turned inside its own frame (corners cut off)
        return float(w), float(h)
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


def _score(img: np.ndarray, deg: float, geometry: str, grid, scale: float = 1.0) -> tuple[float, str]:
    """How well 'img is an exposure turned deg CCW inside this canvas, corners filled' fits.

    For the pixels the hypothesis puts outside the exposure, compare each with what the fill
    would make it (constant, nearest edge pixel, mirror of the inside); compare the same test
    applied one band inside the exposure (where it should fail). Score per side of the
    exposure = (inside - outside) / (inside + outside + noise); the hypothesis scores the mean
    over sides, so all four wedges must agree. Returns (score, fill mode).
    """
    h, w = img.shape
    size = _frame_size(w, h, deg, geometry)
    if size is None:
        return -1.0, ""
    hu, hv = (size[0] - 1) / 2, (size[1] - 1) / 2
    cx, cy = (w - 1) / 2, (h - 1) / 2
    a, b = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    dx, dy = grid
    u = a * dx - b * dy  # canvas -> exposure coordinates (inverse of cv2's CCW rotation)
    v = b * dx + a * dy
    eu, ev = np.abs(u) - hu, np.abs(v) - hv
    margin = 1.0  # interpolation blurs a pixel either side of the wedge's edge
    beyond_u = (eu > margin) & (ev < -margin)
    beyond_v = (ev > margin) & (eu < -margin)

    def to_canvas(uu, vv):
        return cx + a * uu + b * vv, cy - b * uu + a * vv

    flat = img.ravel()  # the grid covers every pixel in raster order
    fill_values = flat[beyond_u | beyond_v]
    if fill_values.size < 8:
        return -1.0, ""
    const = float(np.median(fill_values))
    # Per fill mode and side: the share of outside pixels the fill explains minus the share of
    # inside pixels the same test explains (where it should not: a wrong or a straight
    # hypothesis explains both alike).
    sides: dict = {"constant": [], "replicate": [], "reflect": []}
    for mask, along_u in ((beyond_u, True), (beyond_v, False)):
        for sign in (1, -1):
            sel = mask & ((u if along_u else v) * sign > 0)
            if int(sel.sum()) < 6:
                continue
            uu, vv = u[sel], v[sel]
            half = hu if along_u else hv
            depth = (eu if along_u else ev)[sel]

            def at(pos):  # samples at |coordinate| = pos on this side, the other coordinate kept
                pos = sign * pos
                return _sample(img, *(to_canvas(pos, vv) if along_u else to_canvas(uu, pos)))

            out = flat[sel]
            # replicate: compare with the fill just beyond the edge, not the edge pixel itself
            # (scans often carry a bright or dark line in their outermost pixel row)
            # (a reflected border mirrors about half a source pixel beyond the edge pixel)
            edge, mirror = at(half + margin + 0.5), at(half + scale - depth)
            inner_d, inner_2d, inner_3d = at(half - 1 - depth), at(half - 1 - 2 * depth), at(half - 1 - 3 * depth)
            tests = {
                # a black (or any constant) wedge ends at a sharp edge: just inside is not fill
                "constant": (np.abs(out - const), np.abs(at(half - 1.5) - const)),
                # a replicated edge pixel stays equal over a distance the content does not
                "replicate": (np.abs(out - edge), np.abs(inner_d - inner_2d)),
                # a mirror about the edge, which the inside is not about a line further in
                "reflect": (np.abs(out - mirror), np.abs(inner_d - inner_3d)),
            }
            for mode, (outside, inside) in tests.items():
                ro, ri = np.minimum(outside, CLIP).mean(), np.minimum(inside, CLIP).mean()
                sides[mode].append(float((ri - ro) / (ri + ro + TOLERANCE)))
    best, best_mode = -1.0, ""
    for mode, diffs in sides.items():
        # All wedges must agree: the lower middle of the sides' scores (one odd side tolerated).
        diffs = sorted(diffs)
        s = diffs[len(diffs) // 2 - 1] if len(diffs) >= 3 else -1.0
        if s > best:
            best, best_mode = s, mode
    return best, best_mode


def _grid(img: np.ndarray):
    h, w = img.shape
    ys, xs = np.mgrid[0:h, 0:w]
    return (xs.ravel() - (w - 1) / 2).astype(np.float32), (ys.ravel() - (h - 1) / 2).astype(np.float32)


def estimate_skew(pixels: np.ndarray) -> dict:
    """Skew of a greyscale image from the fill wedges at its corners.

    Returns {"rotation": degrees CCW that straighten it (0 when none found), "confidence": 0-1
    (of the rotation, including a rotation of 0), "score": fit of the best skew hypothesis,
    "angle": that hypothesis' skew, "fill": constant/replicate/reflect, "geometry": same/expand}.
    """
    coarse = fit(pixels, COARSE_SIDE).astype(np.float32)
    grid = _grid(coarse)
    candidates = [s * d for d in np.arange(MIN_SKEW, MAX_SKEW + 0.01, 1.0) for s in (1, -1)]
    c_scale = max(coarse.shape) / max(pixels.shape)
    coarse_scores = sorted(((*_score(coarse, deg, geometry, grid, c_scale), deg, geometry)
                            for geometry in GEOMETRIES for deg in candidates), reverse=True)
    # Refine the best few distinct angles on a finer image (scores are re-measured there).
    finer = fit(pixels, FINE_SIDE).astype(np.float32)
    f_scale = max(finer.shape) / max(pixels.shape)
    grid = _grid(finer)
    score, deg, mode, geometry, tried = -1.0, 0.0, "", "", []
    for _, _, start, geom in coarse_scores:
        if len(tried) == REFINE or any(abs(start - t) < 2 for t in tried):
            if len(tried) == REFINE:
                break
            continue
        tried.append(start)
        for d in np.arange(start - 1.0, start + 1.01, 0.5):
            if MIN_SKEW - 0.5 <= abs(d) <= MAX_SKEW:
                s, m = _score(finer, float(d), geom, grid, f_scale)
                if s > score:
                    score, deg, mode, geometry = s, float(d), m, geom
    score = float(max(score, 0.0))
    # How far the best fit stands above the typical one: a real wedge is one sharp peak.
    peak = score - float(np.median([c[0] for c in coarse_scores]))
    evidence = max(0.0, (score + peak) / 2)
    if evidence >= ACCEPT_SCORE:
        rotation, confidence = -round(float(deg), 2), min(1.0, 0.5 + (evidence - ACCEPT_SCORE))
    else:  # confidence that the image is straight: high when no wedge fits at all
        rotation, confidence = 0.0, 1.0 - 0.5 * evidence / ACCEPT_SCORE
    return {"rotation": rotation, "confidence": round(float(confidence), 3), "score": round(evidence, 3),
            "fit": round(score, 3), "peak": round(peak, 3), "angle": round(float(deg), 2), "fill": mode, "geometry": geometry}


def thumbnail(pixels: np.ndarray, side: int = THUMB_SIDE) -> np.ndarray:
    """side x side, aspect kept (padded with 0), zero mean, unit norm: for the layout prior."""
    small = fit(pixels, side).astype(np.float32)
    h, w = small.shape
    canvas = np.zeros((side, side), np.float32)
    y, x = (side - h) // 2, (side - w) // 2
    canvas[y:y + h, x:x + w] = small
    canvas -= canvas.mean()
    return canvas / (np.linalg.norm(canvas) + 1e-6)


def skew_file(path: str | Path) -> dict:
    """estimate_skew of one file (plus its thumbnail); a file that does not decode gets 0."""
    try:
        pixels = decode(path, max_side=DECODE_SIDE).pixels
    except ImageError:
        return {"rotation": 0.0, "confidence": 0.0, "score": 0.0, "angle": 0.0, "fill": "", "geometry": "",
                "thumb": None}
    return {**estimate_skew(pixels), "thumb": thumbnail(pixels)}


ORIENT_CACHE_VERSION = "1"  # bump when estimate_skew changes: old entries are then ignored


def cached_skews(table: pd.DataFrame, root: str | Path, cache_dir: str | Path, *, workers: int | None = None,
                 progress: Progress | None = None) -> list[dict | None]:
    """skew_file for every ok row, reusing results kept per (path, size, mtime_ns) in cache_dir:
    the image work is most of orient's time, and a re-run should redo only new or changed files."""
    from curate.cache import FileCache

    root = Path(root)
    cache = FileCache(Path(cache_dir) / f"skews-v{ORIENT_CACHE_VERSION}.npz")
    ok = (table["status"] == "ok").to_numpy()
    keys = [(str((root / p).resolve()), int(sz), int(mt))
            for p, sz, mt in zip(table["path"], table["size"], table["mtime_ns"])]
    skews: list[dict | None] = [None] * len(table)
    todo = []
    for i in np.flatnonzero(ok):
        hit = cache.get(*keys[i])
        if hit is None:
            todo.append(i)
            continue
        thumb = np.frombuffer(bytes.fromhex(hit.pop("thumb_hex")), np.float16).astype(np.float32)
        skews[i] = {**hit, "thumb": thumb.reshape(THUMB_SIDE, THUMB_SIDE) if thumb.size else None}
    if progress:
        progress(int(ok.sum()) - len(todo))
    found = map_files(skew_file, [root / table["path"].iloc[i] for i in todo], workers=workers, progress=progress)
    for i, sk in zip(todo, found):
        thumb = sk.get("thumb")
        stored = {k: v for k, v in sk.items() if k != "thumb"}
        stored["thumb_hex"] = "" if thumb is None else np.asarray(thumb, np.float16).tobytes().hex()
        cache.put(*keys[i], stored)
        # the same float16 rounding as a cache hit, so a re-run decides exactly as this run did
        skews[i] = {**sk, "thumb": None if thumb is None else np.asarray(thumb, np.float16).astype(np.float32)}
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


def _angle_diff(a: float, b: float) -> float:
    return abs((a - b + 180.0) % 360.0 - 180.0)


def orient(table: pd.DataFrame, root: str | Path, *, workers: int | None = None,
           progress: Progress | None = None, skews: list[dict] | None = None) -> pd.DataFrame:
    """Add rotation, orient_source, orient_confidence and orient_flag to the table.

    Uses the dups stage's columns when present (group, dup_angle, mirrored, dup_score);
    without them every image is treated on its own. `skews` (one estimate_skew result per
    row) may be passed to skip the image work, e.g. from a cache.
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
    rotation = np.zeros(len(out))
    source = np.array([""] * len(out), dtype=object)
    confidence = np.zeros(len(out))
    flag = np.array([""] * len(out), dtype=object)

    has_groups = {"group", "dup_angle"} <= set(out.columns)
    groups = out["group"].to_numpy() if has_groups else np.arange(len(out))
    dup_angle = out["dup_angle"].fillna(0).astype(float).to_numpy() if has_groups else np.zeros(len(out))
    mirrored = out["mirrored"].fillna(False).astype(bool).to_numpy() if "mirrored" in out else np.zeros(len(out), bool)
    dup_score = out["dup_score"].fillna(1.0).astype(float).to_numpy() if "dup_score" in out else np.ones(len(out))
    is_rep = out["representative"].fillna(False).astype(bool).to_numpy() if "representative" in out else np.ones(len(out), bool)

    thumbs = [s["thumb"] for s in skews if s is not None and s.get("thumb") is not None]
    mean_thumb = np.mean(thumbs, axis=0) if len(thumbs) >= 20 else None  # too few: no prior

    members_of: dict = {}
    for i in np.flatnonzero(ok):
        members_of.setdefault(groups[i], []).append(i)
    for members in members_of.values():
        # Each member says what turn stands the representative upright (m), with a weight.
        votes = []
        for i in members:
            sk = skews[i]
            s = sk["rotation"]
            a = dup_angle[i]
            m = (-s - a) if mirrored[i] else (s - a)
            # a member with a wedge-like but unsure fit may be skewed: its vote is weak
            unsure = FLAG_SCORE <= sk["score"] < ACCEPT_SCORE
            votes.append((norm_angle(m), (0.3 if unsure else sk["confidence"]) * dup_score[i], i))
        clusters = []
        for m, wgt, i in votes:
            support = [(m2, w2, j) for m2, w2, j in votes if _angle_diff(m, m2) <= AGREE]
            weight = sum(w2 for _, w2, _ in support)
            has_rep = any(is_rep[j] for _, _, j in support)
            votes_for = sum(w2 >= 0.5 for _, w2, _ in support)  # sure votes count one each
            clusters.append((votes_for, has_rep, weight, m, support))
        # Equal support (often: an original and one rotated copy): the orientation in which
        # the representative looks most like the dataset's average image wins, since most
        # images of a dataset stand the same way; then the representative's own.
        clusters = [(n, _layout_fit(skews, members, is_rep, m, mean_thumb), has, w, m, sup)
                    for n, has, w, m, sup in clusters]
        clusters.sort(key=lambda c: c[:4], reverse=True)
        _, _, _, weight, m_rep, support = clusters[0]
        total = sum(w for _, w, _ in votes) or 1.0
        agreement = weight / total
        for i in members:
            a = dup_angle[i]
            r = norm_angle(-(a + m_rep) if mirrored[i] else a + m_rep)
            sk = skews[i]
            alone = len(members) == 1
            # A copy's turn is as sure as the verified pair; a lone image's as its wedge fit.
            conf = sk["confidence"] if alone else dup_score[i] * max(agreement, 0.5) ** 0.5
            if alone and FLAG_SCORE <= sk["score"] < ACCEPT_SCORE:
                flag[i] = "low-confidence"
                conf = sk["score"]
            elif conf < MIN_CONFIDENCE and r != 0:
                flag[i] = "low-confidence"
                r = 0.0
            rotation[i] = r
            confidence[i] = round(float(conf), 3)
            if r != 0:
                source[i] = "skew" if alone or (a == 0 and not mirrored[i] and abs(m_rep) < 90) else "group"
            if mirrored[i]:
                flag[i] = ";".join(f for f in (flag[i], "mirrored") if f)
    out["rotation"] = rotation
    out["orient_source"] = source
    out["orient_confidence"] = confidence
    out["orient_flag"] = flag
    return out


def _layout_fit(skews, members, is_rep, m_rep: float, mean_thumb) -> float:
    """How much the representative, turned by the right-angle part of m_rep, looks like the
    dataset's average image (correlation; 0 without a prior). Rounded so near-ties stay ties."""
    rep = next((i for i in members if is_rep[i]), members[0])
    thumb = skews[rep].get("thumb") if skews[rep] else None
    if mean_thumb is None or thumb is None:
        return 0.0
    k = int(round(m_rep / 90.0)) % 4
    return round(float(np.sum(np.rot90(thumb, k) * mean_thumb)), 2)


def orient_summary(table: pd.DataFrame) -> dict:
    rotated = table["rotation"] != 0
    return {
        "reoriented": int(rotated.sum()),
        "by_source": {k: int(v) for k, v in table.loc[rotated, "orient_source"].value_counts().sort_index().items()},
        "low_confidence": int(table["orient_flag"].str.contains("low-confidence").sum()),
        "mirrored": int(table["orient_flag"].str.contains("mirrored").sum()),
    }
