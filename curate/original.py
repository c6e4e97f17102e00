"""Which member of a group of copies is the original: the one the others were derived from.

Making a copy leaves traces the original lacks (curate.traces): a turn, rescale, squash or zoom
resamples it (its finest detail fades against the next coarser level), a turn's or shift's fill
and a crushed tone add black, a tone change moves its grey range off the dataset's usual one,
and an augmentation script saves it unlike the dataset's own files. Each member's cost counts
these against the least marked member (_derivation); among the least marked, the one saved the
usual way, not shown a copy by the fill beyond another's frame (fill_beyond), with the more fine
detail when two are put on one geometry (aligned_detail), in the pose the derived copies share,
and the better file is kept (_root); a member it was losslessly turned and saved again from
(curate.resave) takes over. originals() does this for every group, _group_root for one in a worker.
"""

from __future__ import annotations

import functools
import math
from collections import defaultdict

import cv2
import numpy as np
import pandas as pd

from curate.hashing import mid_ranks
from curate.imageio import decode, remap_maps
from curate.parallel import map_files
from curate.resave import RESAVE_MARGIN, lossless, resave_gap
from curate.traces import encoding
from curate.verify import compose, inverse, off_extremes, wrap

# Each constant's history (sets, seeds, before/after): docs/dedup-constants.md.
# A member's cost counts its traces against the least marked member of its group, in units:
RESAMPLED_UNIT = math.log(1 / 0.9)  # 10% less fine detail (plain copies differ by < 5%)
FILL_UNIT, FILL_SLACK = 0.02, 0.01  # share of the frame more at black (JPEG noise moves ~0.3%)
TONE_UNIT, TONE_SLACK = 8.0, 6.0  # grey levels further from the dataset's usual black and white
CANDIDATE_SLACK = 1.0  # equally plausible originals within this: a re-save at a higher quality looks ~7% sharper
DERIVED_COST = 1.0  # a member at least this much above the least marked one is a derived copy
USUAL_FLOOR = 0.05  # an encoding rarer than this among files without copies is as unusual as one never seen
TONE_GAIN = 1.1  # the most a tone change alone sharpens a file (fine detail, ratio; see _derivation)


def usual_encodings(table: pd.DataFrame, paths: list[str], groups, workers=None) -> tuple[list[str], list[float]]:
    """Each file's encoding() and how common that encoding is among the files without copies
    (untouched originals, mostly; groups: dedup's union-find), as a share, 0 under USUAL_FLOOR;
    among all files when few have no copies."""
    ok = (table["hash_status"] == "ok").to_numpy() if "hash_status" in table else np.ones(len(paths), bool)
    read = iter(map_files(encoding, [p for p, good in zip(paths, ok) if good], workers=workers))  # headers only
    codes = [next(read) if good else "" for good in ok]
    alone = [codes[ms[0]] for ms in groups.members.values() if len(ms) == 1 and codes[ms[0]]]
    pool = alone if len(alone) >= 20 else [c for c in codes if c]
    share = pd.Series(pool, dtype=object).value_counts(normalize=True).to_dict() if pool else {}
    return codes, [share.get(c, 0.0) if share.get(c, 0.0) >= USUAL_FLOOR else 0.0 for c in codes]


def originals(ordered: list[list[int]], t: list, traces: dict, quality: list, codes: list[str] | None,
              usual: list[float], verified: dict, paths: list[str] | None = None, workers=None) -> list[tuple]:
    """Each group's (representative, its members' marks, their content scales against it: _scales_to),
    for the groups `ordered` (rows; t[x]: x's transform from its group's core). quality: dedup's
    _quality_key per row; codes, usual: usual_encodings(); verified: the verified pairs; paths None:
    no image tests."""
    norm, centre = _tone_norm(traces, [ms for ms in ordered if len(ms) > 1], codes, usual)
    plain = _plain_quality(quality)
    edges = _scale_edges(verified)
    # each group's representative: the image work (fill and detail tests) in the workers
    tasks = []
    for members in ordered:
        cost, marks = _derivation(members, traces, norm, centre, codes, usual)
        detail = {x: traces[x][0] for x in members if traces.get(x) is not None}
        tasks.append((members, {x: t[x] for x in members}, cost, {x: plain[x] for x in members},
                      {x: usual[x] for x in members}, marks, _content_scales(members, edges), detail,
                      {x: paths[x] for x in members} if paths is not None else None))
    heavy = [k for k, task in enumerate(tasks) if len(task[0]) > 1]  # a lone file is its own representative
    roots = {k: tasks[k][0][0] for k in range(len(tasks))}
    roots.update(zip(heavy, map_files(_group_root, [tasks[k] for k in heavy], workers=workers)))
    return [(roots[k], task[5], _scales_to(task[0], roots[k], task[6])) for k, task in enumerate(tasks)]


def _tone_norm(traces: dict, groups: list[list[int]], codes: list[str] | None = None,
               usual: list[float] | None = None) -> tuple:
    """(the dataset's usual grey range (2% and 98%), the median range of every file measured).
    The usual range is the median over the grouped files that show no resampling or fill
    (originals and their plain copies, mostly; a set of augmented copies has fills that move
    the range of most of its files). (None, None) when nothing was measured."""
    found = [tr for tr in traces.values() if tr is not None]
    if not found:
        return None, None
    centre = float(np.median([tr[2] for tr in found])), float(np.median([tr[3] for tr in found]))
    plain = []
    for members in groups:
        marks = _derivation(members, traces, None, centre, codes, usual)[1]
        plain += [traces[x] for x in members if marks[x] == "" and traces.get(x) is not None]
    plain = plain or found
    return (float(np.median([tr[2] for tr in plain])), float(np.median([tr[3] for tr in plain]))), centre


def _derivation(members: list[int], traces: dict, norm: tuple[float, float] | None,
                centre: tuple[float, float] | None = None, codes: list[str] | None = None,
                usual: list[float] | None = None) -> tuple[dict, dict]:
    """Each member's cost (see RESAMPLED_UNIT) against the least marked member, and its marks
    as text ('resampled', 'fill', 'tone', joined by '+'; '' for none). Black is compared only
    between members with the same black point (a brightened copy lifts the original's black
    background off the darkest level), white likewise; fine detail with the sharpest member neither filled nor
    far off the group's usual tone (a crushed black makes hard edges, a flattened tone leaves
    the JPEG noise on top);
    tone only between members not resampled or filled (a fill of repeated edge pixels moves a
    turned copy's grey range). norm: the usual grey range (None: no tone marks); centre: the
    median range of every file measured, which says what is far off for the sharpness
    reference (the usual range is itself found with that reference). codes, usual: each row's
    encoding() and its share (see usual_encodings): black and white shares are compared only
    between members saved alike (JPEG noise at another quality spreads an extreme level
    differently), and the sharpness reference is among those saved the most usual way (a low
    quality's blocks look like fine detail)."""
    known = {x: traces.get(x) for x in members if traces.get(x) is not None}
    cost = {x: DERIVED_COST for x in members}  # not measured: no claim to be the original
    marks = {x: "" for x in members}
    if not known:
        return {x: 0.0 for x in members}, marks
    code = {x: codes[x] if codes else "" for x in members}
    def excess(x: int, share: int, point: int) -> float:  # more black (white) than the others at its level
        tr = known[x]
        least = min(o[share] for y, o in known.items()
                    if abs(o[point] - tr[point]) <= TONE_SLACK and code[y] == code[x])
        return max(0.0, tr[share] - least - FILL_SLACK) / FILL_UNIT

    fill = {x: max(excess(x, 1, 2), excess(x, 4, 3)) for x in known}
    off = {x: abs(tr[2] - norm[0]) + abs(tr[3] - norm[1]) if norm else 0.0 for x, tr in known.items()}

    def tone(x: int, among: list[int]) -> float:
        return max(0.0, off[x] - min(off[y] for y in among) - TONE_SLACK) / TONE_UNIT if among else 0.0

    unfilled = [x for x in known if fill[x] < DERIVED_COST] or list(known)
    top = max(usual[x] for x in unfilled) if usual else 0.0
    saved = [x for x in unfilled if not usual or usual[x] >= top / 2]
    far = {x: abs(known[x][2] - centre[0]) + abs(known[x][3] - centre[1]) if centre else 0.0 for x in saved}
    typical = float(np.median(list(far.values())))
    reference = [x for x in saved if far[x] <= typical + TONE_SLACK + TONE_UNIT]
    # a tone change adds at most ~8% fine detail to a FracAtlas film (180 tone copies): a member
    # left out for its tone but sharper than that sets the reference all the same (an original
    # whose grey range is far from the set's median), unless its black point is lifted (flattened
    # shadows, whose JPEG noise looks like detail on a smooth film)
    shadows = max(known[x][2] for x in reference) + TONE_SLACK
    sharpest = max(max(known[x][0] for x in reference),
                   max(known[x][0] for x in saved if known[x][2] <= shadows) / TONE_GAIN)
    resampled = {x: max(0.0, math.log(sharpest / max(tr[0], 1e-6))) / RESAMPLED_UNIT for x, tr in known.items()}
    plain = [x for x in known if max(resampled[x], fill[x]) < DERIVED_COST]
    for x in known:
        parts = {"resampled": resampled[x], "fill": fill[x], "tone": tone(x, plain) if x in plain else 0.0}
        # a tone change has no direction (the dataset's usual range is wide): it is no cost, it
        # only orders members equal on the rest (see _root)
        cost[x] = parts["resampled"] + parts["fill"]
        marks[x] = "+".join(k for k, v in parts.items() if v >= DERIVED_COST)
    return cost, marks


def _plain_quality(quality: list) -> list:
    """_quality_key without bytes per pixel: a copy saved at a higher JPEG quality than its
    original has more bytes, not more of the radiograph."""
    return [q[:2] + q[3:] for q in quality]


def _root(members: list[int], t: dict, cost: dict, quality: list, usual: list, marks: dict | None = None,
          framed=None, aligned=None, detail: dict | None = None, resaved=None) -> int:
    """The member the others were derived from: the least marked (within CANDIDATE_SLACK);
    among those, the one saved the way the dataset's files without copies are (`usual`: that
    encoding's share, per row), then one not shown a copy by its fill (`framed(candidates)`: the
    set so shown, see _framed_copies), then the less marked, then the one in the pose (mirror,
    right-angle turn) the derived members were made in, then one not re-toned (`marks`),
    then the better file (quality). The less marked (to a tenth of a unit: a lossless turn
    measures a hair apart) comes before the pose: on Kaggle-style chains every copy is
    turned, and a pose shared by many copies says nothing of which member they came from.
    Last, the member so chosen meets the other candidates saved as usually, and up to
    ALIGN_CHALLENGERS members marked only by fill or tone (an original with a black border
    of its own), the finest `detail` (traces) first, one at a time: `aligned(c, d)` (see aligned_detail) > 0
    says d lost detail against c; the one the other clearly lost detail against stays, and
    one that takes over meets those it has not met yet. Then, above all that, a member the chosen
    one was saved from (`resaved(x, c)` >= RESAVE_MARGIN: c is x turned by a right angle or
    mirrored and saved again, see curate.resave) takes over: a lossless turn leaves no other
    trace, and the re-save can even look sharper."""
    rep = _least_marked(members, t, cost, quality, usual, marks, framed, aligned, detail)
    if resaved is None:
        return rep
    met, moved = set(), True
    while moved:  # each pair once: the test is one-sided, a member that takes over meets the rest
        moved = False
        for x in members:
            if x != rep and frozenset((rep, x)) not in met:
                met.add(frozenset((rep, x)))
                gap = resaved(x, rep)
                if gap is not None and gap >= RESAVE_MARGIN:
                    rep, moved = x, True
                    break
    return rep


def _least_marked(members: list[int], t: dict, cost: dict, quality: list, usual: list, marks: dict | None,
                  framed, aligned, detail: dict | None) -> int:
    """_root before the re-save test."""
    best = min(cost[x] for x in members)
    candidates = [x for x in members if cost[x] <= best + CANDIDATE_SLACK]
    derived = [x for x in members if cost[x] >= best + DERIVED_COST]

    def made_from(c: int) -> int:  # derived members in c's pose, give or take a small turn
        inv = inverse(t[c])
        return sum(1 for x in derived if _near_pose(compose(t[x], inv)))

    toned = {c: "tone" in (marks or {}).get(c, "") for c in candidates}
    copies = framed(sorted(candidates, key=lambda c: cost[c])[:FRAME_CANDIDATES]) if framed and len(candidates) > 1 else set()
    rep = min(candidates, key=lambda c: (-usual[c], c in copies, round(cost[c], 1), -made_from(c), toned[c],
                                         quality[c]))
    if aligned is None:
        return rep
    alike = sorted((c for c in candidates if c != rep and usual[c] >= usual[rep]), key=lambda c: cost[c])
    fill_only = sorted((x for x in members if x not in candidates and usual[x] >= usual[rep]
                        and "resampled" not in (marks or {}).get(x, "resampled")),
                       key=lambda x: (-(detail or {}).get(x, 0.0), cost[x]))
    pool, met, moved = alike[:ALIGN_CANDIDATES] + fill_only[:ALIGN_CHALLENGERS], set(), True
    while moved:  # a member that takes over meets the others too (each pair once)
        moved = False
        for x in pool:
            if x != rep and frozenset((rep, x)) not in met:
                met.add(frozenset((rep, x)))
                verdict = aligned(rep, x)
                if verdict is not None and verdict < -ALIGN_MARGIN:
                    rep, moved = x, True
    return rep


# The fill test (fill_beyond): a turn or zoom on a same-size canvas leaves fill where its source had anatomy.
FRAME_SIDE = 256  # px: the fill test works on images this size (longest side)
FRAME_FIT, FRAME_MARGIN = 0.2, 0.15  # a copy's fill fits this well, and this much better than its source's
FRAME_CANDIDATES = 10  # the least marked candidates tested against each other
CROP_SCALE = 0.03  # a view enlarged less than this (3%) against another is not called a crop
FRAME_NOISE = 2.0  # grey levels per pixel: JPEG noise, so flat regions count as no evidence


@functools.lru_cache(maxsize=16)
def _centred_grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Each pixel's float32 offset from the centre (dx, dy) on an h x w canvas, read-only: made
    once per size (fill_beyond runs several times per image pair, and the grid was a third of it)."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    dx, dy = xs - (w - 1) / 2, ys - (h - 1) / 2
    dx.flags.writeable = dy.flags.writeable = False
    return dx, dy


def fill_beyond(img: np.ndarray, deg: float, scale: float, residual: bool = False, mixed: bool = False):
    """How well img's pixels beyond the frame of a same-size exposure turned deg CCW and scaled
    by `scale` about the centre are fill: a constant (against the pixels just inside the frame)
    or the frame's edge pixel repeated (against the edge pixel moved along the edge).
    (null - fill) / (null + fill + noise) over those pixels, the better of the two fills; 0
    when the frame covers the canvas. residual: (that, and the better fill's mean residual in
    grey levels: how much those pixels hold that no fill explains, 0 when the frame covers it).
    mixed: two constants count as a fill too, each pixel the nearer one (split where the pixels'
    histogram splits best, Otsu), against the pixels just inside the frame so measured: a
    Kaggle-style chain pads each step with black or white, so its pad holds both."""
    h, w = img.shape
    dx, dy = _centred_grid(h, w)
    a, b = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    u, v = (a * dx - b * dy) / scale, (b * dx + a * dy) / scale  # canvas -> exposure
    hu, hv = (w - 1) / 2, (h - 1) / 2
    out = (np.abs(u) > hu + 1.5 / scale) | (np.abs(v) > hv + 1.5 / scale)  # a pixel's blur beyond the edge
    if out.sum() < 0.01 * h * w:
        return (0.0, 0.0) if residual else 0.0
    uo, vo, vals = u[out], v[out], img[out]

    def at(uu, vv, inset: float) -> np.ndarray:  # img at exposure points, moved `inset` inside the frame
        uu, vv = np.clip(uu, -hu + inset, hu - inset), np.clip(vv, -hv + inset, hv - inset)
        x = scale * (a * uu + b * vv) + (w - 1) / 2
        y = scale * (-b * uu + a * vv) + (h - 1) / 2
        return cv2.remap(img, *remap_maps(x, y), cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).ravel()[:x.size]

    step = max(2.0, max(h, w) / 40)
    across_u = (np.abs(uo) - hu) > (np.abs(vo) - hv)  # beyond a left/right edge: move along v
    shift_u, shift_v = np.where(across_u, 0.0, step), np.where(across_u, step, 0.0)
    const = float(np.median(vals))
    inside = at(uo, vo, 3.0)
    tests = [(np.abs(vals - at(uo, vo, 1.0)),
              0.5 * (np.abs(vals - at(uo + shift_u, vo + shift_v, 1.0)) + np.abs(vals - at(uo - shift_u, vo - shift_v, 1.0)))),
             (np.abs(vals - const), np.abs(inside - const))]
    if mixed:
        split, _ = cv2.threshold(np.clip(vals, 0, 255).astype(np.uint8), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        low, high = vals[vals <= split], vals[vals > split]
        pair = [float(np.median(part)) if part.size else const for part in (low, high)]
        tests.append((np.minimum(np.abs(vals - pair[0]), np.abs(vals - pair[1])),
                      np.minimum(np.abs(inside - pair[0]), np.abs(inside - pair[1]))))
    best, left = -1.0, 0.0
    for fill, null in tests:
        f, n = float(np.minimum(fill, 60).sum()), float(np.minimum(null, 60).sum())
        fit = (n - f) / (n + f + FRAME_NOISE * vals.size)
        if fit > best:
            best, left = fit, f / vals.size
    return (best, left) if residual else best


def _scale_edges(verified: dict) -> dict[int, list[tuple[int, float]]]:
    """Each file's accepted pairs as (other file, content scale of the other against it)."""
    edges = defaultdict(list)
    for (a, b), m in verified.items():
        if m.ok and m.scale > 0:
            edges[a].append((b, m.scale))
            edges[b].append((a, 1.0 / m.scale))
    return edges


def _content_scales(members: list[int], edges: dict) -> dict[int, float]:
    """Each member's content scale against the first, through the group's verified pairs
    (edges: _scale_edges, made once for all groups: walking every pair per group took 21 s
    of a FracAtlas re-run)."""
    inside = set(members)
    scale, todo = {members[0]: 1.0}, [members[0]]
    while todo:
        x = todo.pop()
        for y, s in edges.get(x, ()):
            if y in inside and y not in scale:
                scale[y] = scale[x] * s
                todo.append(y)
    return scale


def _framed_copies(candidates: list[int], t: dict, scales: dict, pixels) -> set[int]:
    """The candidates whose fill shows them a copy of another candidate of the same size
    (see fill_beyond). pixels(x): x's image at FRAME_SIDE, or None."""
    shown = set()
    for c, d in ((c, d) for c in candidates for d in candidates if c < d):
        pc, pd_ = pixels(c), pixels(d)
        if pc is None or pd_ is None or pc.shape != pd_.shape or c not in scales or d not in scales:
            continue
        beta = compose(t[d], inverse(t[c]))[1]  # c -> d (the sign a mirror leaves open is tried both ways)
        s = scales[d] / scales[c]
        fd = max(fill_beyond(pd_, sign * beta, s) for sign in (1, -1))
        fc = max(fill_beyond(pc, sign * beta, 1 / s) for sign in (1, -1))
        if fd >= FRAME_FIT and fd - fc >= FRAME_MARGIN:
            shown.add(d)
        elif fc >= FRAME_FIT and fc - fd >= FRAME_MARGIN:
            shown.add(c)
        elif _cropped(pc.shape, beta, s):  # no fill either way: the one that shows less was cropped
            shown.add(d)
        elif _cropped(pc.shape, beta, 1 / s):
            shown.add(c)
    return shown


def _cropped(shape: tuple[int, int], deg: float, scale: float) -> bool:
    """A same-size view turned deg and enlarged by `scale` (> 1 + CROP_SCALE) about the centre
    lies inside the first one's canvas: it shows a part of what the first shows."""
    if scale < 1 + CROP_SCALE:
        return False
    h, w = shape
    hu, hv = (w - 1) / 2, (h - 1) / 2
    a, b = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    corners = np.array([[hu, hv], [hu, -hv], [-hu, hv], [-hu, -hv]])
    u = (a * corners[:, 0] - b * corners[:, 1]) / scale
    v = (b * corners[:, 0] + a * corners[:, 1]) / scale
    return bool(np.all(np.abs(u) <= hu + 1) and np.all(np.abs(v) <= hv + 1))


# The detail test (aligned_detail): resampling blurs, so put on one geometry a copy has less fine detail.
ALIGN_CANDIDATES = 6  # candidates the chosen member meets
ALIGN_CHALLENGERS = 2  # members marked only by fill or tone (a black border of the original's own) it meets
ALIGN_MARGIN = 0.12  # log detail ratio (both frames summed) that says which member lost detail
ALIGN_CORRELATION = 0.6  # rank correlation the two must line up to for their detail to be compared
ALIGN_TURN, ALIGN_SCALE = 1.0, 0.02  # degrees off a right angle, log scale: less is not resampled
_ECC_ALIGN = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 1e-4)


def _detail(img: np.ndarray, mask: np.ndarray) -> float:
    """Finest level over the next (differences of Gaussians), summed over mask: resampling
    blurs the first; a tone change scales both."""
    b1, b2 = cv2.GaussianBlur(img, (0, 0), 1.0), cv2.GaussianBlur(img, (0, 0), 2.0)
    return float((np.abs(img - b1) * mask).sum()) / max(float((np.abs(b1 - b2) * mask).sum()), 1e-6)


def _pose_matrix(shape_c: tuple[int, int], shape_d: tuple[int, int], mirror: bool, deg: float,
                 scale: float) -> np.ndarray:
    """c -> d pixel coordinates: mirrored left-right first, turned deg CCW and scaled about the centres."""
    (hc, wc), (hd, wd) = shape_c, shape_d
    m = cv2.getRotationMatrix2D(((wc - 1) / 2, (hc - 1) / 2), deg, scale)
    if mirror:
        m = m @ np.array([[-1.0, 0.0, wc - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    m[0, 2] += (wd - wc) / 2
    m[1, 2] += (hd - hc) / 2
    return m


def _ranks(v: np.ndarray) -> np.ndarray:
    """Each grey level's mid-rank among v (levels to a whole grey)."""
    levels = np.clip(np.rint(v), 0, 255).astype(np.int64)
    return mid_ranks(levels)[levels]


def _line_up(c: np.ndarray, d: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, float]:
    """(d -> c matrix, rank correlation over the common part, black and white fills left out): m as
    given when it lines the two up (>= 0.9), else refined by ECC."""
    w = cv2.invertAffineTransform(m).astype(np.float32)

    def fit(w: np.ndarray) -> float:
        size = d.shape[::-1]
        wc = cv2.warpAffine(c, w, size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
        inside = cv2.warpAffine(np.ones_like(c), w, size, flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP) > 0
        for img, ref in ((wc, c), (d, d)):  # a fill is at its image's darkest or brightest level
            inside &= off_extremes(img, ref)
        if inside.sum() < 100:
            return 0.0
        # of the grey levels' ranks: a tone change (gamma, contrast) keeps their order
        r = np.corrcoef(_ranks(wc[inside]), _ranks(d[inside]))[0, 1]
        return float(r) if np.isfinite(r) else 0.0

    r = fit(w)
    if r >= 0.9:
        return w, r
    try:
        w = cv2.findTransformECC(d, c, w.copy(), cv2.MOTION_AFFINE, _ECC_ALIGN, None, 5)[1]
    except cv2.error:
        return w, r
    return w, fit(w)


def aligned_detail(c: np.ndarray, d: np.ndarray, mirror: bool, deg: float, scale: float) -> float | None:
    """log of how much more fine detail c has than d, each measured on the other's geometry too
    (d is c mirrored if so, turned deg CCW and scaled by `scale`, give or take a shift): > 0
    when d was resampled from c. None when the two are not resampled one against the other
    (a right-angle turn, a mirror, a tone: nothing to see) or do not line up."""
    off = abs(wrap(deg) - 90 * round(wrap(deg) / 90))
    if off < ALIGN_TURN and abs(math.log(max(scale, 1e-6))) < ALIGN_SCALE:
        return None
    best = None
    for sign in ((1, -1) if mirror else (1,)):  # the sign a mirror leaves open
        w, r = _line_up(c, d, _pose_matrix(c.shape, d.shape, mirror, sign * deg, scale))
        if best is None or r > best[1]:
            best = (w, r)
    w, r = best
    if r < ALIGN_CORRELATION:
        return None
    to_d = cv2.invertAffineTransform(w)
    kernel = np.ones((5, 5), np.uint8)

    def common(img: np.ndarray, ref: np.ndarray, other: np.ndarray, other_ref: np.ndarray, inside: np.ndarray):
        # where both show the exposure, off their darkest and brightest levels and the hard
        # edges a fill or a clipped tone makes there
        keep = inside * off_extremes(img, ref) * off_extremes(other, other_ref)
        return cv2.erode(keep.astype(np.float32), kernel)

    c_on_d = cv2.warpAffine(c, to_d, d.shape[::-1], flags=cv2.INTER_LINEAR)
    in_d = common(d, d, c_on_d, c, cv2.warpAffine(np.ones_like(c), to_d, d.shape[::-1], flags=cv2.INTER_NEAREST))
    d_on_c = cv2.warpAffine(d, w, c.shape[::-1], flags=cv2.INTER_LINEAR)
    in_c = common(c, c, d_on_c, d, cv2.warpAffine(np.ones_like(d), w, c.shape[::-1], flags=cv2.INTER_NEAREST))
    if in_c.sum() < 100 or in_d.sum() < 100:
        return None
    return (math.log(_detail(c, in_c) / max(_detail(d_on_c, in_c), 1e-6))
            + math.log(_detail(c_on_d, in_d) / max(_detail(d, in_d), 1e-6)))


def _near_pose(t: tuple[int, float]) -> bool:
    """Not mirrored, and turned less than 45 degrees."""
    return t[0] == 0 and abs(wrap(t[1])) < 45.0


def _group_root(task: tuple) -> int:
    """_root of one group in a worker: (members, transforms, cost, plain quality, usual, marks,
    content scales, detail, paths or None) -> its representative. The fill and detail tests
    decode members at FRAME_SIDE, each once; the re-save test reads their JPEG tables."""
    members, t, cost, plain, usual, marks, scales, detail, paths = task
    if paths is None:
        return _root(members, t, cost, plain, usual, marks, None, None, detail, None)
    seen = {}

    def pixels(x: int):
        if x not in seen:
            try:
                seen[x] = decode(paths[x], max_side=FRAME_SIDE).pixels.astype(np.float32)
            except Exception:
                seen[x] = None
        return seen[x]

    def framed(cands):
        return _framed_copies(cands, t, scales, pixels)

    def aligned(c: int, d: int) -> float | None:
        pc, pd_ = pixels(c), pixels(d)
        if pc is None or pd_ is None or c not in scales or d not in scales:
            return None
        m, beta = compose(t[d], inverse(t[c]))  # c -> d
        return aligned_detail(pc, pd_, bool(m), beta, scales[d] / scales[c])

    def resaved(x: int, c: int) -> float | None:
        pose = lossless(*compose(t[c], inverse(t[x])))  # x -> c
        return resave_gap(paths[x], paths[c], *pose) if pose is not None else None  # (it checks the frame)

    return _root(members, t, cost, plain, usual, marks, framed, aligned, detail, resaved)


def _scales_to(members: list[int], rep: int, scales: dict) -> list[float]:
    """Each member's content scale against the representative (> 1: it shows the picture
    larger, so less of it: zoomed in or cut), NaN where no verified pair links it; orient
    tells a cut copy from the member it was cut from by it. scales: _content_scales."""
    ref = scales.get(rep)
    return [scales[x] / ref if ref and x in scales else float("nan") for x in members]
