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
   (`wedge_fit`, curate.skew), and a kept image that is the turned side gets the verified angle onto the
   other. First, though, the members the dups stage found neither resampled nor filled are
   tried as the upright one the anchor was turned from (curate.upright): an anchor padded by
   a turn's wedges against such a member, or cut from it (it shows the picture larger or about
   as large, by the dups stage's `dup_scale`, while the member shows picture, not fill, beyond
   its frame), gets the verified turn onto it, whatever copies turned further say; a member
   itself shown turned from another is followed back to where the chain starts. Where the
   frames show no such member, the blur each resampling adds says which was made from which
   (curate.pair_pixels' `resample_gap`: a copy put back onto its source is resampled twice). The
   right-angle pose is the representative's (the dups stage keeps the member the others were
   derived from), unless several unmirrored copies agree on another.
3. The image itself, when its group says nothing: a scan turned by an arbitrary angle inside
   an enlarged canvas shows wedges of fill at its corners, which curate.skew's `estimate_skew`
   finds. Applied only from SKEW_CONFIDENCE (calibrated on the benchmark).

Mirrored copies: a rotation cannot undo a left-right flip. A mirrored copy gets the rotation
that stands it upright (still mirrored); `orient_flag` says `mirrored` so a user can flip it.

Every estimate has a confidence. A skew that is wedge-like but not sure enough is not applied:
`rotation` stays 0 and `orient_flag` says `low-confidence`, never a silent guess. Right-angle
turns of a lone image (no copy to compare with) cannot be seen from wedges and are left alone;
skews under MIN_SKEW degrees are not searched.

Modules: curate.skew (one image's own wedges), curate.pair_pixels (two members' pixels: padded,
cut or resampled), curate.group_turns (a group's turns and whom each decision tests),
curate.upright (which member the anchor was turned from); this one makes the group decisions
and runs the image work.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from curate.errors import ImageError
from curate.group_turns import AGREE, GROUP_SNAP, Group, angle_diff, group_confidence, norm_angle, odd_part
from curate.imageio import decode
from curate.pair_pixels import PAD_SURE, beyond_fill, resample_gap
from curate.parallel import Progress, map_files
from curate.resave import RESAVE_MARGIN, resave_gap
from curate.skew import DECODE_SIDE, NO_SKEW, SkewCache, estimate_skew, wedge_fit
from curate.upright import (PAIR_FIT, PAIR_MARGIN, SUPPORT, chain_starts, holds_own_picture, onto_upright, pad_frame,
                            placed_frame, upright_sources, upright_tests)
from curate.verify import VERIFY_SIDE

ORIENT_COLUMNS = ("rotation", "orient_source", "orient_confidence", "orient_flag")
# Why each value is what it is, and the figures behind it: docs/orient-constants.md.
MAJORITY = 3  # distinct copies in one pose that outvote a representative standing alone
COPY_SCORE = 0.9  # a copy is one picture turned from this score; below, maybe two exposures of one limb
VOTE_SCORE = 0.85  # a member verified this well votes on the right-angle pose
WEDGE_AGREE = 2.0  # degrees: a file's own skew and its group's turn agree this closely
SKEW_CONFIDENCE = 0.85  # a lone image's own skew is applied from this confidence (the first with no wrong turn)
CHAIN_STEPS = 3  # rounds of tests that follow a chain back from the candidates the anchor is shown turned from


def probe(item: tuple) -> dict:
    """One file's image work, from one decode: (path, search, tests, frames) -> its own skew
    when `search`, its wedge_fit at each angle of `tests`, and at each (deg, scale) of `frames`
    how well its pixels beyond the frame of another member so placed are fill (beyond_fill)."""
    path, search, tests, frames = item
    try:
        pixels = decode(path, max_side=DECODE_SIDE).pixels
    except ImageError:
        return {"skew": dict(NO_SKEW) if search else None, "fits": {d: 0.0 for d in tests},
                "beyond": {f: None for f in frames}}  # nothing to go by: no claim that it was cut or padded
    fits = {d: wedge_fit(pixels, d) for d in dict.fromkeys(tests)}  # each angle once (pairs repeat them)
    return {"skew": estimate_skew(pixels) if search else None, "fits": fits,
            "beyond": {f: beyond_fill(pixels, *f) for f in frames}}


def _gap_item(item: tuple) -> float:
    """resample_gap of two files (path_x, path_u, x_mirrored, u_mirrored, deg, and the dups
    stage's content scale of u over x)."""
    path_x, path_u, x_mirrored, u_mirrored, deg, scale = item
    try:
        x, u = (decode(p, max_side=DECODE_SIDE).pixels for p in (path_x, path_u))
    except ImageError:
        return 0.0
    return resample_gap(x, u, x_mirrored, u_mirrored, deg, scale * _verify_shrink(x) / _verify_shrink(u))


def _verify_shrink(pixels: np.ndarray) -> float:
    """How far the dups stage's decode (VERIFY_SIDE), where content scales are measured, is
    shrunk from this one (DECODE_SIDE): alike for two files over DECODE_SIDE, not where one is
    under it (a 240 px original 0.8, its copy turned on a 296 px canvas 0.75)."""
    return min(1.0, VERIFY_SIDE / max(pixels.shape))


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
    stage, key = _stage_key(table, root, needed, cache_dir) if cache_dir is not None and skews is None else (None, None)
    hit = stage.get(key, table, ORIENT_COLUMNS) if stage is not None else None
    if hit is not None:  # nothing changed since the last run: its result
        return hit
    out = table.copy()
    n = len(table)
    ok = (table["status"] == "ok").to_numpy() if "status" in table else np.ones(n, bool)
    if needed is None:
        needed = table["keep"].fillna(False).astype(bool).to_numpy() if "keep" in table else np.ones(n, bool)
    cols = _columns(out)
    groups = _groups(cols, ok, ok & np.asarray(needed, bool))
    work = _Work([{"skew": None, "fits": {}, "beyond": {}, "gaps": {}} for _ in range(n)], cols.paths, root,
                 SkewCache(cache_dir, out, root) if skews is None else None, skews, workers)
    _first_round(groups, cols, work, progress)
    _follow_chains(groups, cols, work)
    saved_from = _saved_from(groups, work)
    odd, whole = _odd_decisions(groups, cols, work, progress)
    if work.cache is not None:
        work.cache.save()
    _decide(out, groups, cols, ok, work.found, odd, whole, saved_from)
    if stage is not None:
        stage.put(key, out, ORIENT_COLUMNS)
    return out


def _stage_key(table: pd.DataFrame, root: Path, needed, cache_dir) -> tuple:
    """The stage cache and this run's key in it: the table, the root, the rows wanted and the code."""
    from curate.cache import StageCache, code_digest, table_digest

    key = table_digest(table, str(root.resolve()), None if needed is None else np.asarray(needed, bool).tobytes(),
                       code_digest(sys.modules[__name__]))
    return StageCache(cache_dir, "orient"), key


@dataclass
class _Columns:
    """The columns the decisions read, one value a row: the dups stage's, or what a table without
    them means (every image on its own, upright as it stands, unmarked)."""
    gid: np.ndarray
    angle: np.ndarray
    mirrored: np.ndarray
    score: np.ndarray
    rep: np.ndarray
    exif: np.ndarray
    sha: np.ndarray
    resampled: np.ndarray
    plain: np.ndarray
    unmarked: np.ndarray
    content: np.ndarray
    dims: list
    paths: list


def _columns(out: pd.DataFrame) -> _Columns:
    n = len(out)
    has_groups = {"group", "dup_angle"} <= set(out.columns)
    derived = out["derived"].fillna("").astype(str) if "derived" in out else None
    return _Columns(
        gid=out["group"].to_numpy() if has_groups else np.arange(n),
        angle=out["dup_angle"].fillna(0).astype(float).to_numpy() if has_groups else np.zeros(n),
        mirrored=out["mirrored"].fillna(False).astype(bool).to_numpy() if "mirrored" in out else np.zeros(n, bool),
        score=out["dup_score"].fillna(1.0).astype(float).to_numpy() if "dup_score" in out else np.ones(n),
        rep=out["representative"].fillna(False).astype(bool).to_numpy() if "representative" in out else np.ones(n, bool),
        exif=(~out["exif_orientation"].fillna(1).astype(int).isin([0, 1])).to_numpy() if "exif_orientation" in out
        else np.zeros(n, bool),
        sha=out["sha256"].fillna("").astype(str).to_numpy() if "sha256" in out else np.array([""] * n, object),
        resampled=derived.str.contains("resampled").to_numpy() if derived is not None else np.zeros(n, bool),
        plain=~derived.str.contains("resampled|fill").to_numpy() if derived is not None else np.ones(n, bool),
        unmarked=(derived == "").to_numpy() if derived is not None else np.ones(n, bool),
        content=out["dup_scale"].astype(float).to_numpy() if "dup_scale" in out else np.full(n, np.nan),
        dims=list(zip(out["width"], out["height"])) if {"width", "height"} <= set(out.columns) else [None] * n,
        paths=out["path"].astype(str).tolist())


def _groups(cols: _Columns, ok: np.ndarray, need: np.ndarray) -> list[Group]:
    """The groups that hold a row wanted, each anchored on its representative when wanted, else on
    the first wanted row by path."""
    members_of: dict = {}
    for i in np.flatnonzero(ok):
        members_of.setdefault(cols.gid[i], []).append(i)
    groups = []
    for members in members_of.values():
        wanted = [i for i in members if need[i]]
        if wanted:
            anchor = min(wanted, key=lambda i: (not cols.rep[i], cols.paths[i]))
            groups.append(Group(members, anchor, cols.angle, cols.mirrored, cols.score, cols.exif, cols.rep, cols.sha,
                                cols.resampled, cols.plain, cols.unmarked))
    return groups


@dataclass
class _Work:
    """The image work's findings per row (found[i]: its own skew, wedge fits by angle, fills beyond
    frames, resampling gaps by member) and what it needs to look at more."""
    found: list[dict]
    paths: list[str]
    root: Path
    cache: SkewCache | None
    skews: list | None
    workers: int | None


def _first_round(groups: list[Group], cols: _Columns, work: _Work, progress) -> None:
    """The anchors' relations to their groups, and each anchor's own search where no other member
    stands at an odd angle to it."""
    tasks: dict[int, tuple[bool, list[float], list[tuple]]] = {}
    for g in groups:
        for i, degs in g.tests().items():
            search, tests, frames = tasks.get(i, (False, [], []))
            tasks[i] = (search, tests + degs, frames)
        if not g.clusters:
            _, tests, frames = tasks.get(g.anchor, (False, [], []))
            tasks[g.anchor] = (True, tests, frames)
        for i, degs, more in upright_tests(g, cols.content, cols.dims):
            search, tests, frames = tasks.get(i, (False, [], []))
            tasks[i] = (search, tests + degs, frames + more)
    _run(tasks, work, progress)


def _follow_chains(groups: list[Group], cols: _Columns, work: _Work) -> None:
    """The blur of resampling, only where the frames show the anchor turned from no candidate; then
    the candidates the anchor is shown turned from, each tested against the other candidates
    (onto_upright asks nothing else of them: most groups show none or one); one shown turned from
    another was itself turned further along a chain, so that one is tested next."""
    found, content, dims = work.found, cols.content, cols.dims
    blurred = {id(g) for g in groups if g.candidates and not chain_starts(g, found, content, dims)[1]}
    _gaps([(g.anchor, u) for g in groups if id(g) in blurred for u in g.candidates], cols, work)
    tested: list[set] = [set() for _ in groups]
    for _ in range(CHAIN_STEPS):
        among: dict[int, tuple[bool, list[float], list[tuple]]] = {}
        pairs = []
        for g, done in zip(groups, tested):
            reached = [u for u in upright_sources(g, found, content, dims)[1] if u not in done]
            done.update(reached)
            if id(g) in blurred:
                pairs += [(u, v) for u in reached for v in g.candidates + g.mates if v != u]
            for i, degs, frames in upright_tests(g, content, dims, reached):
                _, tests, had = among.get(i, (False, [], []))
                among[i] = (False, tests + degs, had + frames)
        if not among:
            break
        _run(among, work, None)
        _gaps(pairs, cols, work)


def _saved_from(groups: list[Group], work: _Work) -> dict[int, int]:
    """Per group (by id), the member its anchor was saved again from, turned by a right angle or
    mirrored: that member's pose is the upright one (the first so shown, best verified first)."""
    lossless = [(g, x, m, q) for g in groups for x, m, q in g.lossless]
    gaps = map_files(_resave_item, [(str(work.root / work.paths[x]), str(work.root / work.paths[g.anchor]), m, q)
                                    for g, x, m, q in lossless], workers=work.workers) if lossless else []
    saved_from: dict[int, int] = {}
    for (g, x, _, _), gap in zip(lossless, gaps):
        if gap is not None and gap >= RESAVE_MARGIN:
            saved_from.setdefault(id(g), x)
    return saved_from


def _odd_decisions(groups: list[Group], cols: _Columns, work: _Work, progress) -> tuple[dict, dict]:
    """Per group (by id), the anchor's odd-angle decision (onto_upright's, else _odd_decision's,
    None where the group leaves it open) and the member whose right-angle pose is upright (where
    onto_upright names one); the anchors left open get their own search (round 2)."""
    found, content, dims = work.found, cols.content, cols.dims
    onto = {id(g): onto_upright(g, found, content, dims) for g in groups}
    # the witnesses' pad test, only where their wedges would let the anchor be turned, and the
    # anchor's own picture beyond their frames, only where they would turn or flag it: either can
    # only stop that (most groups turn nothing; measured for every group, they tripled orient's time)
    said = {id(g): _odd_decision(g, found) for g in groups if not onto[id(g)]}
    turning = [g for g in groups if said.get(id(g)) and said[id(g)][0]]
    doubted = [g for g in groups if said.get(id(g)) and (said[id(g)][0] or said[id(g)][3])]
    pads = {x: (False, [], _pad_frames(g, x, content, dims)) for g in turning for _, w in g.clusters for x in g.seen[w]}
    for g in doubted:
        _, _, frames = pads.get(g.anchor, (False, [], []))
        pads[g.anchor] = (False, [], frames + _own_frames(g, content, dims))
    if pads:
        _run(pads, work, None)
    odd = {id(g): onto[id(g)][:6] if onto[id(g)] else _odd_decision(g, found, content, dims) for g in groups}
    whole = {id(g): onto[id(g)][6] for g in groups if onto[id(g)] and onto[id(g)][6] is not None}
    _run({g.anchor: (True, [], []) for g in groups if odd[id(g)] is None and found[g.anchor]["skew"] is None},
         work, progress)
    return odd, whole


def _decide(out: pd.DataFrame, groups: list[Group], cols: _Columns, ok: np.ndarray, found: list, odd: dict,
            whole: dict, saved_from: dict) -> None:
    """Every member's rotation, source, confidence and flag from its group's decisions, into `out`."""
    n, angle, mirrored, score = len(out), cols.angle, cols.mirrored, cols.score
    rotation, confidence = np.zeros(n), np.full(n, np.nan)
    source = np.array([""] * n, dtype=object)
    flag = np.array([""] * n, dtype=object)
    mirror_flag = mirrored.copy()
    for g in groups:
        k = g.anchor
        odd_k, odd_conf, odd_src, odd_flag, upright, turned = odd[id(g)] or _own_skew(g, found[k]["skew"])
        m_rep, q_conf = _quarter(g, odd_k, cols.sha, saved_from.get(id(g), whole.get(id(g))))
        upright = saved_from.get(id(g), upright)
        if upright is not None:  # mirrored is said against the member that stands upright
            mirror_flag[g.members] = mirrored[g.members] != mirrored[upright]
        for i in g.members:
            r = norm_angle(-(angle[i] + m_rep) if mirrored[i] else angle[i] + m_rep)
            fl = odd_flag if i == k else ""
            pose = odd_part(g.turn(k, i))  # i's odd pose against the anchor's
            if i != k and abs(odd_part(r)) >= GROUP_SNAP and not any(angle_diff(pose, o) <= AGREE for o in turned):
                r = norm_angle(r - odd_part(r))  # an odd turn nothing showed: only its right-angle part
            if i != k and r and score[i] < COPY_SCORE:
                r, fl = 0.0, "low-confidence"  # two exposures of one limb, not one picture turned
            rotation[i] = r
            confidence[i] = min(odd_conf, q_conf) if i == k else min(odd_conf, q_conf, group_confidence(score[i]))
            quarter_turned = abs(norm_angle(r - odd_k)) > AGREE if i == k else True
            source[i] = "" if not r else (odd_src if i == k and not quarter_turned else "group")
            flag[i] = fl
    for i in np.flatnonzero(cols.exif):
        source[i] = "exif" + ("+" + source[i] if source[i] else "")
    out["rotation"] = rotation
    out["orient_source"] = source
    out["orient_confidence"] = np.round(confidence, 3)
    out["orient_flag"] = np.array([";".join(f for f in (fl, "mirrored" if m else "") if f)
                                   for fl, m in zip(flag, mirror_flag & ok)], dtype=object)


def _run(tasks: dict, work: _Work, progress) -> None:
    """Do the image work of `tasks` (row -> (search, test angles, frames)) into work.found;
    searches come from work.skews or the cache where they are there already."""
    found, cache, skews = work.found, work.cache, work.skews
    todo = []
    for i, (search, tests, frames) in sorted(tasks.items()):
        known = (skews[i] if skews is not None else cache.get(i)) if search else None
        if known is not None:
            found[i]["skew"], search = known, False
        if search or tests or frames:
            todo.append((i, search, tests, frames))
    if progress:
        progress(len(tasks) - len(todo))
    done = map_files(probe, [(work.root / work.paths[i], s, tuple(t), tuple(f)) for i, s, t, f in todo],
                     workers=work.workers, progress=progress)
    for (i, search, _, _), res in zip(todo, done):
        found[i]["fits"].update(res["fits"])
        found[i]["beyond"].update(res["beyond"])
        if search:
            found[i]["skew"] = res["skew"]
            if cache is not None:
                cache.put(i, res["skew"])


def _gaps(pairs: list[tuple[int, int]], cols: _Columns, work: _Work) -> None:
    """resample_gap of each pair (x, u) not measured yet, into found[x]["gaps"][u] (and its
    negative into found[u]["gaps"][x])."""
    found, content, root, paths = work.found, cols.content, work.root, work.paths
    todo = list(dict.fromkeys((x, u) for x, u in pairs
                              if u not in found[x]["gaps"] and content[x] > 0 and content[u] > 0))
    done = map_files(_gap_item, [(str(root / paths[x]), str(root / paths[u]), bool(cols.mirrored[x]),
                                  bool(cols.mirrored[u]), float(cols.angle[x] - cols.angle[u]),
                                  float(content[u] / content[x])) for x, u in todo],
                     workers=work.workers) if todo else []
    for (x, u), gap in zip(todo, done):
        found[x]["gaps"][u], found[u]["gaps"][x] = gap, -gap


def _pad_frames(g: Group, x: int, content, dims) -> list[tuple]:
    """The anchor's frame placed in witness x (see placed_frame), for x's pad test in _odd_decision."""
    frame = placed_frame(g, g.anchor, x, content, dims) if x != g.anchor else None
    return [frame] if frame is not None else []


def _own_frames(g: Group, content, dims) -> list[tuple]:
    """Each cluster witness's frame placed in the anchor (see pad_frame), for the anchor's own-picture
    test in _odd_decision."""
    return [f for _, w in g.clusters for x in g.seen[w] if (f := pad_frame(g, g.anchor, x, content, dims)) is not None]


def _witness_pad(g: Group, found: list, w: int, content, dims) -> float:
    """How well the pixels of cluster w's witnesses beyond the anchor's frame fit a fill (the
    best of them; 0 when not tested): a Kaggle-style copy turned and zoomed out on the anchor's
    canvas fills them whether or not its corners keep a wedge's shape."""
    fills = [(found[x].get("beyond", {}).get(f) or (0.0, 0.0))[0]
             for x in g.seen[w] for f in _pad_frames(g, x, content, dims)]
    return max(fills, default=0.0)


def _odd_decision(g: Group, found: list, content=None, dims=None) -> tuple | None:
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
        # the anchor shows picture of its own beyond the frame of every member tested: made from none
        # of them, so a fit under SUPPORT is a chance one (kaggle 829's 66.jpg: 0.38 at 8.2 against
        # its copy zoomed in 1.2 with no fill left, its own pixels beyond that copy's frame 0.06, 8.1)
        unsourced = content is not None and all(holds_own_picture(g, found, k, x, content, dims) for x in g.seen[w])
        if pad >= PAD_SURE:
            straight.append((pad, w))
        elif fk >= PAIR_FIT and fk - fw >= PAIR_MARGIN and (g.score[w] >= COPY_SCORE or fk >= SUPPORT) \
                and (g.resampled[k] or not all(g.resampled[x] for x in g.seen[w])) and not (unsourced and fk < SUPPORT):
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


def _own_skew(g: Group, skew: dict | None) -> tuple:
    """The anchor's turn beyond a right angle from its own wedges (the group could not say):
    applied only from SKEW_CONFIDENCE; a turn the group verified is taken at the pair's angle."""
    if skew is None:
        return 0.0, 0.5, "", "", None, []
    s, conf = float(skew["rotation"]), float(skew["confidence"])
    if s and conf >= SKEW_CONFIDENCE:
        o = next((o for o, _ in g.clusters if angle_diff(o, s) <= WEDGE_AGREE), None)
        return (s, conf, "skew", "", None, [0.0]) if o is None else (o, conf, "group", "", None, [0.0])
    unsure = bool(s) or bool(skew.get("flag"))
    return 0.0, (1.0 - conf if s else conf), "", "low-confidence" if unsure else "", None, []


def _resave_item(item: tuple) -> float | None:
    return resave_gap(*item)


def _quarter(g: Group, odd_k: float, sha, saved_from: int | None = None) -> tuple[float, float]:
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


def orient_summary(table: pd.DataFrame) -> dict:
    rotated = table["rotation"] != 0
    return {
        "reoriented": int(rotated.sum()),
        "by_source": {k: int(v) for k, v in table.loc[rotated, "orient_source"].value_counts().sort_index().items()},
        "low_confidence": int(table["orient_flag"].str.contains("low-confidence").sum()),
        "mirrored": int(table["orient_flag"].str.contains("mirrored").sum()),
    }
