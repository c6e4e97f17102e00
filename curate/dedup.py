"""Duplicate groups: candidates -> verification -> groups -> representative -> leakage.

1. Candidates (curate.candidates): pairs of files whose hashes (exact, whole-frame under 8
   rotations/flips, trimmed, flattened, any-angle discs, shifted/zoomed windows, rings) say
   they may be copies, no N x N anywhere.
2. Verification (curate.verify): each pair on its pixels (keypoints, RANSAC, correlation of
   the aligned detail, sub-pixel refinement of near misses), giving angle, scale and mirror.
3. Groups (here): verified pairs, strongest first, joined by union-find, in rounds that skip
   pairs already joined; two groups are joined only when their cores (best members: the least
   flattened to black, then the least padded, then the one its copies verify best with) also
   verify against each other, so one false link cannot chain unrelated images together, and
   two groups that hold copies only on a strong link (one that does not shift the two frames'
   centres apart: OFF_CENTRE). Groups a near miss connects, or whose names share a root
   (curate.names), then get their closest pairs tried (_bridges): fragments of one chain of
   augmentations. Verified pairs are kept between runs (_PairCache).
4. One representative per group (curate.original): the member the others were derived from
   (the un-rotated, un-mirrored original and its plain re-encodes), then the one not cut out
   of another, then the larger, better-kept file, then train > val > test, then the path.
5. What the groups mean (here): leakage between splits, label conflicts, duplicates.csv.

Geometry convention (as in curate.messy): a member M relates to its representative R by
M = rotate(mirror^m(R), beta), mirror first, angles counter-clockwise. `dup_angle` is the
rotation that brings M onto R after un-mirroring it: rotate(mirror^m(M), dup_angle) == R.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from concurrent.futures import Executor
from pathlib import Path

import numpy as np
import pandas as pd

from curate.candidates import CHANNELS, INVERSE_VARIANT, candidate_pairs
from curate.hashing import GHASH_COLUMNS, RHASH_COLUMNS, RING_COLUMNS, dihedral
from curate.names import NO_KIN, chain, families, kinship, parent_links, shared_roots
from curate.original import originals, usual_encodings
from curate.parallel import Progress, map_files, scaled
from curate.traces import traces_of
from curate.verify import (REFINE_FLOOR, VERIFY_VERSION, Match, Pair, compose, features_of, inverse, small_rows,
                           verify_pairs, wrap)

# Each constant's history (sets, seeds, before/after): docs/dedup-constants.md.
FRAME_CHANNELS = ("phash", "lhash")  # whole-frame hashes: their variant aligns the two frames
NO_REFINE_CHANNELS = ("window", "twindow")  # a shift's first alignment is good: refining only passed exposures
LONE_CHANNELS = ("window", "twindow")  # only while one side is a lone picture (between groups: most false pairs)
# groups a near miss connects try their closest pairs (2, then 6), twice: one bridge can bring a third group near
BRIDGE_FLOOR, BRIDGE_ROUNDS, BRIDGE_PASSES = 0.6, (2, 6), 2
NAME_GROUPS = 16  # a name root over more groups than this is a shattered chain: only parents by name are bridged
KIN_JOINS = 1  # a weak link joins two groups when names say one family and one label (0: never)
# pairs per group in round k: beyond 63 in all none joined; each budget twice, so grown groups offer new pairs first
ROUND_BUDGETS = (1, 1, 1, 2, 2, 4, 4, 8, 8, 16, 16)
DEFER = True  # the rounds put near misses' refinement off: most lie between files other pairs join later
SPLIT_ORDER = {"train": 0, "val": 1, "test": 2, "": 3}
DUP_COLUMNS = ("group", "representative", "relation", "dup_angle", "mirrored", "dup_score", "derived", "dup_scale")


class _PairCache:
    """Verified pairs between runs, keyed by both files' identity (a FileCache whose key path
    is the pair's). Named after the hash and verification versions: a change to either
    (candidates, hints or the test itself) starts it afresh."""

    def __init__(self, cache_dir, table: pd.DataFrame, paths: list[str]):
        from curate.cache import FileCache
        from curate.hashing import HASH_VERSION

        self.cache = FileCache(Path(cache_dir) / f"pairs-v{HASH_VERSION}.{VERIFY_VERSION}.npz")
        sizes = table["size"].tolist() if "size" in table else [-1] * len(paths)
        mtimes = table["mtime_ns"].tolist() if "mtime_ns" in table else [0] * len(paths)
        self.ids = [f"{p}\t{s}\t{m}" for p, s, m in zip(paths, sizes, mtimes)]
        self.usable = [s >= 0 for s in sizes]

    def _key(self, a: int, b: int, kin: bool = False, defer: bool = False) -> tuple[str, int, int]:
        return f"{self.ids[a]}\t{self.ids[b]}" + ("\tkin" if kin else "") + ("\tdefer" if defer else ""), 0, 0

    def get(self, a: int, b: int, kin: bool = False, defer: bool = False) -> Match | None:
        """The pair's result as verified before, as a Pair asks (kin: both ways, see verify_pair;
        defer: a near miss unrefined, see DEFER)."""
        if not (self.usable[a] and self.usable[b]):
            return None
        row = self.cache.get(*self._key(a, b, kin, defer))
        if row is None:
            return None
        return Match(bool(row["ok"]), row["score"], bool(row["mirrored"]), row["beta"], row["scale"],
                     int(row["inliers"]), row["cover_a"], row["cover_b"], row["offset"])

    def save(self, verified: dict[tuple[int, int, bool, bool], Match]) -> None:
        """Keep exactly this run's pairs, {(a, b, kin, defer): result} (so the cache does not grow with
        old ones); not written again when it holds just those already (a re-run with nothing changed)."""
        keep, added = set(), False
        for (a, b, kin, defer), m in verified.items():
            if self.usable[a] and self.usable[b]:
                key = self._key(a, b, kin, defer)
                keep.add(key[0])
                if self.cache.get(*key) is None:  # (a cached pair is never verified again: same values)
                    added = True
                    self.cache.put(*key, {"ok": int(m.ok), "score": float(m.score), "mirrored": int(m.mirrored),
                                          "beta": float(m.beta), "scale": float(m.scale), "inliers": int(m.inliers),
                                          "cover_a": float(m.cover_a), "cover_b": float(m.cover_b),
                                          "offset": float(m.offset)})
        if not added and len(self.cache) == len(keep):
            return
        self.cache.keep_only(keep)
        self.cache.save()



# ---- groups ------------------------------------------------------------------------------------


class _Groups:
    """Union-find whose groups keep a core and every member's transform from that core.
    pictures[i]: file i counts as a picture of its own (not a byte or pixel twin of another)."""

    def __init__(self, n: int, better, pictures: list[bool] | None = None):
        self.members = {i: [i] for i in range(n)}
        self.group_of = list(range(n))
        self.core = {i: i for i in range(n)}
        self.t = [(0, 0.0)] * n  # transform core -> member
        self.better = better
        self.pictures = {i: int(pictures[i]) if pictures is not None else 1 for i in range(n)}

    def link(self, a: int, b: int, t_ab: tuple[int, float], strong: bool = True) -> bool:
        """Join a's and b's groups on the verified pair a -> b (transform t_ab). A weak pair
        (strong=False) joins only a lone picture to a group. True if a and b are now together."""
        ga, gb = self.group_of[a], self.group_of[b]
        if ga == gb:
            return True
        if not strong and self.pictures[ga] > 1 and self.pictures[gb] > 1:
            return False
        # core_a -> a -> b -> core_b
        t = compose(inverse(self.t[b]), compose(t_ab, self.t[a]))
        if len(self.members[gb]) > len(self.members[ga]):  # the smaller group moves
            ga, gb, t = gb, ga, inverse(t)
        self.join(ga, gb, t)
        return True

    def join(self, ga: int, gb: int, t_ab: tuple[int, float]) -> None:
        """Join group gb into ga given the transform core(ga) -> core(gb)."""
        ca, cb = self.core[ga], self.core[gb]
        for x in self.members[gb]:
            self.t[x] = compose(self.t[x], t_ab)  # core_a -> core_b -> x
            self.group_of[x] = ga
        self.members[ga] += self.members.pop(gb)
        self.pictures[ga] += self.pictures.pop(gb)
        del self.core[gb]
        if self.better(cb, ca):  # the better core leads: re-express transforms from it
            inv = inverse(self.t[cb])
            for x in self.members[ga]:
                self.t[x] = compose(self.t[x], inv)
            self.core[ga] = cb


def _quality_key(table: pd.DataFrame):
    """Smaller is better: EXIF upright, more pixels, more bytes per pixel, train first, path."""
    n = len(table)
    width = table["width"].to_numpy() if "width" in table else np.zeros(n)
    height = table["height"].to_numpy() if "height" in table else np.zeros(n)
    size = table["size"].to_numpy() if "size" in table else np.zeros(n)
    exif = table["exif_orientation"].to_numpy() if "exif_orientation" in table else np.ones(n)
    split = table["orig_split"].fillna("").map(SPLIT_ORDER).fillna(3).to_numpy() if "orig_split" in table else np.zeros(n)
    paths = table["path"].tolist()
    pixels = np.nan_to_num(width.astype(float) * height.astype(float))
    bpp = np.where(pixels > 0, size / np.maximum(pixels, 1), 0)
    return [(int(exif[i] not in (0, 1)), -pixels[i], -round(float(bpp[i]), 2), split[i], paths[i]) for i in range(n)]



def _bridges(table: pd.DataFrame, groups: _Groups, verified: dict, picture: list[int],
             named: set[tuple[int, int]] = frozenset(), chains: list[tuple[str, ...]] | None = None,
             asked: dict | None = None) -> list[list[Pair]]:
    """For each two groups a verified pair scoring at least BRIDGE_FLOOR connects (a near miss,
    or a pair too weak to join two groups), their BRIDGE_ROUNDS[-1] closest pairs of pictures by
    the any-angle disc hashes and the ring hashes not verified yet, closest first. A chain of augmentations (each
    made from the one before) drifts: two fragments of it meet on its far members, which no
    longer verify, while the members made one from the other are among the closest pairs (on
    the kaggle set the parent was its child's nearest in the other fragment 3 times in 4).
    named: more pairs of groups to bridge (names.shared_roots); chains: each file's name chain
    (names.chain), whose nearest kin in the other group are tried first, both ways (see
    verify_pair), those the rounds verified one way and failed included; asked: the results as
    each pair was asked, keyed (a, b, kin, defer)."""
    asked = asked if asked is not None else {}
    if RHASH_COLUMNS[-1] not in table or GHASH_COLUMNS[-1] not in table:
        return []
    near = {tuple(sorted((groups.group_of[a], groups.group_of[b]))) for (a, b), m in verified.items()
            if m.score >= BRIDGE_FLOOR and groups.group_of[a] != groups.group_of[b]} | set(named)
    ok = (table["hash_status"] == "ok").to_numpy()
    discs = [table[list(cols)].to_numpy(dtype=np.uint64) for cols in (RHASH_COLUMNS, GHASH_COLUMNS)]
    wholes = [dihedral(d[:, 0]) for d in discs]  # every whole disc's 8 variants, once (not per group pair)
    rings = table[list(RING_COLUMNS)].to_numpy(dtype=np.uint64) if RING_COLUMNS[-1] in table else None
    out = []
    for ga, gb in sorted(near):
        side = [np.array([x for x in sorted(groups.members[g]) if ok[x] and picture[x] == x]) for g in (ga, gb)]
        if min(len(s) for s in side) == 0:
            continue
        dist = np.full((len(side[0]), len(side[1])), 65, dtype=np.int64)
        variant = np.zeros_like(dist)
        for d, whole in zip(discs, wholes):
            for q, c, flip in ((0, 1, False), (1, 0, True)):  # each side's discs against the other's whole disc
                turned = whole[side[c]][None, None]
                step = max(1, 4096 // len(side[c]))  # rows at a time: (rows, 12, C, 8) stays small
                h = np.concatenate([np.bitwise_count(d[side[q][lo:lo + step]][:, :, None, None] ^ turned).min(axis=1)
                                    for lo in range(0, len(side[q]), step)]).astype(np.int64)  # (Q, C, 8)
                best, var = h.min(axis=2), h.argmin(axis=2)
                best, var = (best.T, var.T) if flip else (best, var)
                closer = best < dist
                dist[closer], variant[closer] = best[closer], var[closer]
        if rings is not None:  # each side's moved ring windows against the other's middle one (no variant)
            r0, r1 = rings[side[0]], rings[side[1]]
            k = rings.shape[1] // 2
            best = np.minimum(np.bitwise_count(r0[:, None, :] ^ r1[None, :, k, None]).min(axis=2),
                              np.bitwise_count(r1[None, :, :] ^ r0[:, None, k, None]).min(axis=2)).astype(np.int64)
            closer = best < dist
            dist[closer], variant[closer] = best[closer], -1
        kin = np.full(dist.size, NO_KIN, dtype=np.int64)
        if chains is not None:  # the nearest kin by name first (a hint: verification still decides)
            kin = np.array([kinship(chains[a], chains[b]) for a in side[0] for b in side[1]], dtype=np.int64)
        order = np.lexsort((np.arange(dist.size), dist.reshape(-1), kin))
        pairs = []
        for k in order:
            i, j = divmod(int(k), dist.shape[1])
            a, b = sorted((int(side[0][i]), int(side[1][j])))
            v, named = int(variant.flat[k]), bool(kin[k] < NO_KIN)  # v -1: the ring hashes, blind to a mirror
            if (a, b) not in verified or (named and (a, b, True, False) not in asked and not verified[(a, b)].ok):
                # kin by name: both ways, as the discs' mirror bit is the frames', which a turn and zoom
                # unsettle (on the kaggle set a parent and child, 0.92 unmirrored, failed as mirrored)
                pairs.append(Pair(a, b, v != -1 and bool(v % 2), None, True, 2 if v == -1 or named else 1, kin=named))
            if len(pairs) == BRIDGE_ROUNDS[-1]:
                break
        out.append(pairs)
    return out


def find_duplicates(table: pd.DataFrame, root: str | Path, *, workers: int | None = None,
                    progress: Progress | None = None, cache_dir: str | Path | None = None) -> pd.DataFrame:
    """Add DUP_COLUMNS to a hashed table (see hashing.hash_images). Every row gets a group.

    Candidates are verified in rounds, strongest (nearest hashes) first, and a pair whose two
    files are already joined is not verified at all: in a group of 150 copies most pairs add
    nothing; nor are the pairs left after the last round (ROUND_BUDGETS). Byte- or pixel-identical files are one picture: joined at once, verified once.
    With `cache_dir`, verified pairs are kept keyed by both files' (path, size, mtime): a
    re-run verifies only pairs with a new or changed file."""
    root = Path(root).resolve()
    table = table.reset_index(drop=True)
    n = len(table)
    stage, key, hit = _stage_result(table, root, cache_dir)
    if hit is not None:
        if progress:
            progress(n)
        return hit
    paths = [str(root / p) for p in table["path"]]
    pairs = candidate_pairs(table, workers=workers)
    cache = _PairCache(cache_dir, table, paths) if cache_dir is not None else None
    verified, picture = _pictures(pairs, n)
    items = _to_verify(pairs, picture)

    dark = table["dark_share"].to_numpy() if "dark_share" in table else np.zeros(n)
    quality = _quality_key(table)
    # a group's core is the file other members' transforms are expressed from: the least
    # flattened to black, then the better file (the representative is chosen apart, later)
    groups = _Groups(n, lambda x, y: (round(float(dark[x]), 1), quality[x]) < (round(float(dark[y]), 1), quality[y]),
                     pictures=[i == picture[i] for i in range(n)])
    for (a, b) in verified:
        groups.link(a, b, (0, 0.0))

    # features only for files in a pair the cache does not hold (a re-run with nothing changed:
    # none), made round by round: a pair skipped as already joined needs none
    fresh_items = [p for p in items if cache is None or cache.get(p.a, p.b, defer=p.defer) is None]
    need = sorted({i for p in fresh_items for i in p[:2]})
    made = len(need) // 5
    shown = 0  # steps the bar has moved: it ends on n however many features were needed

    def bar(k: int) -> None:
        nonlocal shown
        shown += k
        progress(k)

    feature_bar = scaled(bar if progress else None, len(need), made)
    feats = None if isinstance(workers, Executor) else {}  # on a cluster each verify batch makes its own
    small = small_rows(table)  # (their features make their traces too)
    advance = scaled(bar if progress else None, len(items), len(need) - made)
    if progress:  # the bar counts files: those in no pair to verify are done already
        bar(n - len(need))
    weak: list[tuple[float, int, int]] = []  # verified, too weak to join two groups of copies
    asked: dict[tuple[int, int, bool, bool], Match] = {}  # every result as its pair asked it (for the cache)
    put_off: list[Pair] = []  # near misses verified unrefined in the rounds (see DEFER)

    def check(taken: list[Pair], counted: bool = True, bridge: bool = False) -> None:
        """Verify the pairs (from the cache where it holds them), then join on the strong ones.
        bridge: pairs _bridges chose, whose weak links are dropped (they could only bring a lone
        picture, and on FracAtlas they brought second exposures: seed 11, 16 -> 22 false pairs),
        but for pairs whose names say they are kin (Pair.kin), weak links as in the rounds."""
        fresh = sorted(p for p in taken if cache is None or cache.get(p.a, p.b, p.kin, p.defer) is None)
        if feats is not None:  # (mirrored and plain keypoints: made by the workers when asked, kept here)
            new = sorted({i for p in fresh for i in p[:2]} - feats.keys())
            feats.update(zip(new, map_files(features_of, [(paths[i], bool(small[i])) for i in new],
                                            workers=workers, progress=feature_bar if counted else None)))
        checked = dict(zip(fresh, verify_pairs(fresh, paths, workers=workers, progress=advance if counted else None,
                                               features=feats)))
        if advance and counted:
            advance(len(taken) - len(fresh))  # (from the cache)
        results = []
        for p in taken:
            m = checked[p] if p in checked else cache.get(p.a, p.b, p.kin, p.defer)
            asked[(p.a, p.b, p.kin, p.defer)] = m
            if p.defer and not m.ok and m.score >= REFINE_FLOOR:  # (its refinement was put off)
                put_off.append(p)
            if p.kin and (p.a, p.b) in verified and not m.ok:
                continue  # (a pair the rounds verified one way keeps that result)
            verified[(p.a, p.b)] = m
            if m.ok:
                results.append((m.score, p.a, p.b, p.kin, m.strong))
        for score, a, b, kin, strong in sorted(results, key=lambda e: (-e[0], e[1], e[2])):
            if strong:
                groups.link(a, b, _transform(verified, a, b))
            elif kin or not bridge:  # weak links wait until every strong one is in (see group_pairs)
                weak.append((score, a, b))

    for budget in ROUND_BUDGETS:
        if not items:
            break
        taken, left = _round(items, groups, budget)
        if advance:
            advance(len(items) - len(left) - len(taken))
        items = left
        # in file order, so a file's pairs share a batch (and its band-passed images)
        check(taken)
    # the near misses the rounds put off refining, where their files are still apart (see DEFER):
    # from the kept alignment, or verified afresh where the result came from the cache
    check([p._replace(defer=False, start=verified[(p.a, p.b)] if verified[(p.a, p.b)].pending else None)
           for p in put_off if groups.group_of[p.a] != groups.group_of[p.b]], counted=False)
    # fragments of one chain of copies: groups a near miss connects get their closest pairs tried
    chains = [chain(p) for p in table["path"]] if NAME_GROUPS else None
    label = table["label"].tolist() if "label" in table else [""] * n
    kin = _bridge(table, groups, verified, picture, chains, label, asked, check)
    _join_weak(groups, weak, verified, kin, chains, label)
    if progress and shown < n:
        progress(n - shown)
    if cache is not None:
        cache.save(asked)
    out = _representatives(table, groups, verified, quality, paths, feats, workers=workers, cache_dir=cache_dir)
    if stage is not None:
        stage.put(key, out, DUP_COLUMNS)
    return out


def _stage_result(table: pd.DataFrame, root: Path, cache_dir) -> tuple:
    """(the stage cache, this run's key, the last run's result if nothing changed since: files,
    table, code); all None without a cache_dir."""
    if cache_dir is None:
        return None, None, None
    from curate.cache import StageCache, code_digest, table_digest

    stage = StageCache(cache_dir, "dups")
    key = table_digest(table, str(root), code_digest(sys.modules[__name__]))
    return stage, key, stage.get(key, table, DUP_COLUMNS)


def _pictures(pairs: pd.DataFrame, n: int) -> tuple[dict[tuple[int, int], Match], list[int]]:
    """(the byte- and pixel-identical pairs, verified as they are; each file's picture, the first
    file of its set). Such files need no verification: each set is one picture (its first file
    stands for it), so only pairs between pictures are verified."""
    trivial = pairs["channel"].isin(["sha256", "pixel_hash"]).to_numpy()
    verified: dict[tuple[int, int], Match] = {}
    picture = list(range(n))
    for a, b in pairs.loc[trivial, ["a", "b"]].itertuples(index=False):
        verified[(a, b)] = Match(True, 1.0, False, 0.0, 1.0, 0, 1.0, 1.0)
        picture[b] = picture[a] = min(picture[a], picture[b])
    for i in range(n):  # (pixel sets hold the byte sets: one pass settles every chain)
        picture[i] = picture[picture[i]]
    return verified, picture


def _to_verify(pairs: pd.DataFrame, picture: list[int]) -> list[Pair]:
    """The candidate pairs between pictures (each file as its picture's stand-in), strongest
    first (the earlier channel, then the nearer hashes), with what their channel says (see Pair)."""
    todo = pairs[~pairs["channel"].isin(["sha256", "pixel_hash"]).to_numpy()]
    todo = todo.assign(a=lambda d: [picture[i] for i in d["a"]], b=lambda d: [picture[i] for i in d["b"]])
    todo = todo[todo["a"] != todo["b"]]
    swap = todo["a"] > todo["b"]  # a picture's stand-in may sit after its partner
    todo = todo.assign(a=np.where(swap, todo["b"], todo["a"]), b=np.where(swap, todo["a"], todo["b"]),
                       variant=np.where(swap, INVERSE_VARIANT[todo["variant"].to_numpy(int)], todo["variant"]))
    rank = todo["channel"].map({c: i for i, c in enumerate(CHANNELS)})
    todo = todo.assign(rank=rank).sort_values(["rank", "dist", "a", "b"], kind="stable").drop_duplicates(["a", "b"])
    frames = todo["channel"].isin(FRAME_CHANNELS).to_numpy()
    refine = ~todo["channel"].isin(NO_REFINE_CHANNELS).to_numpy()
    tries = np.where(todo["channel"] == "ring", 2, 1)  # (a ring hash cannot tell a mirror)
    lone = todo["channel"].isin(LONE_CHANNELS).to_numpy()
    return [Pair(int(a), int(b), bool(v % 2), int(v) if f else None, bool(r), int(t), bool(o), defer=DEFER and bool(r))
            for a, b, v, f, r, t, o in zip(todo["a"], todo["b"], todo["variant"], frames, refine, tries, lone)]


def _bridge(table: pd.DataFrame, groups: _Groups, verified: dict, picture: list[int], chains, label: list[str],
            asked: dict, check) -> dict[tuple[str, str], list[int]]:
    """Try the pairs _bridges chooses, BRIDGE_PASSES times, with check(taken, counted=False,
    bridge=True); returns names.families' (label, root) -> its groups (empty without names)."""
    kin: dict[tuple[str, str], list[int]] = {}
    hashed = np.flatnonzero((table["hash_status"] == "ok").to_numpy())  # (the others: groups of their own)
    hashed_paths, hashed_labels = [table["path"].iat[i] for i in hashed], [label[i] for i in hashed]
    for k in range(BRIDGE_PASSES):
        # groups whose files' names share a root (names.py) are bridged too, once; a shattered
        # chain's file and its parent by name each pass (a fragment's parent may have joined
        # a larger group, which then offers more kin to try)
        named = set()
        if NAME_GROUPS:
            files = hashed_paths, [groups.group_of[i] for i in hashed]
            if not k:
                named, kin = (shared_roots(*files, NAME_GROUPS, hashed_labels),
                              families(*files, NAME_GROUPS, hashed_labels))
            else:
                named = parent_links(*files, {key for key, gs in kin.items() if len(gs) > NAME_GROUPS},
                                     hashed_labels)
        bridges = _bridges(table, groups, verified, picture, named, chains, asked)
        if not bridges:
            break
        for r in range(len(BRIDGE_ROUNDS)):
            lo, hi = (BRIDGE_ROUNDS[r - 1] if r else 0), BRIDGE_ROUNDS[r]
            taken = sorted({p for ps in bridges for p in ps[lo:hi]
                            if groups.group_of[p.a] != groups.group_of[p.b]
                            and ((p.a, p.b, True, False) not in asked if p.kin else (p.a, p.b) not in verified)})
            if taken:
                check(taken, counted=False, bridge=True)
    return kin


def _join_weak(groups: _Groups, weak: list[tuple[float, int, int]], verified: dict, kin: dict, chains,
               label: list[str]) -> None:
    """The weak links (score, a, b), strongest first, once every strong one is in: first those with
    a family name and one label (see KIN_JOINS), joining any two groups; then the rest, joining
    only a lone picture to a group."""
    weak.sort(key=lambda e: (-e[0], e[1], e[2]))
    for score, a, b in weak:
        family = kin.get((label[a], chains[a][0]), ()) if KIN_JOINS and kin else ()
        if (family and chains[a][0] == chains[b][0] and label[a] == label[b]
                and (len(family) <= NAME_GROUPS or kinship(chains[a], chains[b]) > 0)):
            groups.link(a, b, _transform(verified, a, b))
    for score, a, b in weak:
        groups.link(a, b, _transform(verified, a, b), strong=False)


def _representatives(table: pd.DataFrame, groups: _Groups, verified: dict, quality: list, paths: list[str],
                     feats: dict | None, *, workers=None, cache_dir=None) -> pd.DataFrame:
    """The table with DUP_COLUMNS: each group's representative from its members' traces (those
    features() made, the cache's, or measured now) and encodings (curate.original)."""
    grouped = sorted(x for ms in groups.members.values() if len(ms) > 1 for x in ms)
    featured = {i: f.traces for i, f in (feats or {}).items() if f is not None and f.traces is not None}
    found = traces_of(table, paths, grouped, workers=workers, cache_dir=cache_dir, known=featured)
    codes, usual = usual_encodings(table, paths, groups, workers=workers)
    return _label_groups(table, groups, verified, quality, dict(zip(grouped, found)), usual, codes, paths,
                         workers=workers)


def _round(items: list[Pair], groups: _Groups, budget: int) -> tuple[list[Pair], list[Pair]]:
    """(the pairs to verify this round, those left for later): each group's `budget` strongest
    pairs (items come strongest first) to a group it is not joined with yet. Dropped: pairs
    already joined through verified pairs (nothing to add), and a `lone` pair between two
    groups that both hold copies (see LONE_CHANNELS)."""
    taken, left, count = [], [], defaultdict(int)
    for p in items:
        ga, gb = groups.group_of[p.a], groups.group_of[p.b]
        if ga == gb or (p.lone and groups.pictures[ga] > 1 and groups.pictures[gb] > 1):
            continue
        if count[ga] < budget or count[gb] < budget:
            taken.append(p)
            count[ga] += 1
            count[gb] += 1
        else:
            left.append(p)
    return taken, left


def _transform(verified: dict[tuple[int, int], Match], a: int, b: int) -> tuple[int, float]:
    """a -> b from the verified pair."""
    m = verified[(min(a, b), max(a, b))]
    t = (int(m.mirrored), m.beta)
    return t if a < b else inverse(t)


def group_pairs(n: int, verified: dict[tuple[int, int], Match], better) -> _Groups:
    """Groups of n files from verified pairs, as find_duplicates joins them: a strong pair
    (Match.strong: >= MERGE_CORRELATION, frames not shifted apart) joins any two groups, so a chain of copies of copies stays one group
    even where its ends no longer verify against each other; a weaker pair, only once every
    strong one is in, and only a lone picture to a group (two exposures of one patient, each
    with its copies, meet on such links)."""
    groups = _Groups(n, better)
    edges = sorted(((m.score, a, b) for (a, b), m in verified.items() if m.ok), key=lambda e: (-e[0], e[1], e[2]))
    for s, a, b in edges:
        if verified[(a, b)].strong:
            groups.link(a, b, _transform(verified, a, b))
    for s, a, b in edges:
        groups.link(a, b, _transform(verified, a, b), strong=False)
    return groups



def _label_groups(table, groups: _Groups, verified, quality, traces: dict, usual: list,
                  codes: list[str] | None = None, paths: list[str] | None = None, workers=None) -> pd.DataFrame:
    n = len(table)
    group_id = np.zeros(n, dtype=np.int64)
    is_rep = np.zeros(n, dtype=bool)
    relation = [""] * n
    angle = np.zeros(n)
    mirrored = np.zeros(n, dtype=bool)
    score = np.zeros(n)
    content_scale = np.full(n, np.nan)
    sha = table["sha256"].fillna("").tolist() if "sha256" in table else [""] * n
    pix = table["pixel_hash"].fillna("").tolist() if "pixel_hash" in table else [""] * n

    weakest: dict[int, float] = {}  # a member's lowest verified score, where it has no pair with its representative
    for (a, b), m in verified.items():
        if m.ok:
            for x in (a, b):
                weakest[x] = min(weakest.get(x, m.score), m.score)
    derived = [""] * n
    path_list = table["path"].tolist()
    ordered = sorted(groups.members.values(), key=lambda ms: min(path_list[i] for i in ms))
    chosen = originals(ordered, groups.t, traces, quality, codes, usual, verified, paths, workers=workers)
    for gid, (members, (rep, marks, scales_to)) in enumerate(zip(ordered, chosen), start=1):
        for x in members:
            derived[x] = marks[x]
        # the kept file's marks are against itself: none. Its own turn wedges (orient) say when
        # it is a copy kept for want of an original (black shares and grey ranges of FracAtlas's
        # own originals vary too widely to say so: 26 of its 124 kept files would be flagged)
        derived[rep] = ""
        content_scale[members] = scales_to
        inv_rep = inverse(groups.t[rep])
        for x in members:
            group_id[x] = gid
            m, beta = compose(groups.t[x], inv_rep)  # rep -> x
            dup = -beta if not m else beta  # undo: un-mirror, then rotate by dup
            angle[x] = round(wrap(dup), 1) + 0.0
            mirrored[x] = bool(m)
            if x == rep:
                relation[x], score[x], is_rep[x] = "representative", 1.0, True
                angle[x], mirrored[x] = 0.0, False
                continue
            pair = verified.get((min(x, rep), max(x, rep)))
            score[x] = round(pair.score, 4) if pair is not None and pair.ok else round(weakest.get(x, 0.0), 4)
            if sha[x] and sha[x] == sha[rep]:
                relation[x] = "exact"
            elif pix[x] and pix[x] == pix[rep]:
                relation[x] = "pixel-identical"
            else:
                relation[x] = _describe(m, beta)
    out = table.copy()
    out["group"] = group_id
    out["representative"] = is_rep
    out["relation"] = relation
    out["dup_angle"] = angle
    out["mirrored"] = mirrored
    out["dup_score"] = score
    out["derived"] = derived
    out["dup_scale"] = np.round(content_scale, 4)
    return out




def _describe(m: int, beta: float) -> str:
    """'re-encoded', 'rotated 90', 'rotated -17°', 'mirrored', 'mirrored+rotated 90', ..."""
    parts = ["mirrored"] if m else []
    b = wrap(beta)
    quarter = round(b / 90.0) * 90
    if abs(b - quarter) < 2.0:
        if quarter % 360:
            parts.append(f"rotated {int(quarter % 360)}")
    else:
        parts.append(f"rotated {round(b):d}°")
    return "+".join(parts) if parts else "re-encoded"


# ---- what the groups mean: leakage, conflicts, the CSV ------------------------------------------


def _split_col(table: pd.DataFrame) -> pd.Series:
    return table["orig_split"].fillna("") if "orig_split" in table else pd.Series([""] * len(table))


def leakage(table: pd.DataFrame) -> dict:
    """Files (and groups) of each split that have a copy in another split, or in the same one."""
    split = _split_col(table)
    splits = [s for s in ("train", "val", "test", "") if (split == s).any()]
    by_group = defaultdict(set)
    for g, s in zip(table["group"], split):
        by_group[g].add(s)
    sizes = table["group"].map(table["group"].value_counts())
    matrix = {}
    for s in splits:
        row = {}
        for t in splits:
            rows = (split == s) & table["group"].map(lambda g: t in by_group[g])
            if s == t:
                rows &= sizes > 1
            rows = rows & (sizes > 1)
            row[t or "none"] = {"files": int(rows.sum()), "groups": int(table.loc[rows, "group"].nunique())}
        matrix[s or "none"] = row
    leaked = (split.isin(["val", "test"])) & table["group"].map(
        lambda g: len(by_group[g] - {""}) > 1)
    return {"matrix": matrix, "leaked_files": int(leaked.sum()),
            "leaked_groups": int(table.loc[leaked, "group"].nunique())}


def label_conflicts(table: pd.DataFrame) -> pd.DataFrame:
    """Groups whose files carry more than one label: (group, labels, files)."""
    labelled = table[table["label"].fillna("") != ""]
    labels = labelled.groupby("group")["label"].agg(lambda s: sorted(set(s)))
    bad = labels[labels.map(len) > 1]
    files = labelled[labelled["group"].isin(bad.index)].groupby("group")["path"].agg(list)
    return pd.DataFrame({"group": bad.index, "labels": [";".join(v) for v in bad.values],
                         "files": [";".join(files[g]) for g in bad.index]})


def dups_summary(table: pd.DataFrame) -> dict:
    sizes = table["group"].value_counts()
    multi = sizes[sizes > 1].index
    in_multi = table["group"].isin(multi)
    exact_groups = int(table[in_multi & (table["relation"] == "exact")]["group"].nunique())
    geometric = ~table["relation"].isin(["representative", "exact", "pixel-identical"])
    leak = leakage(table)
    return {
        "files": int(len(table)),
        "groups": int(table["group"].nunique()),
        "duplicate_groups": int(len(multi)),
        "files_in_duplicate_groups": int(in_multi.sum()),
        "exact_duplicate_groups": exact_groups,
        "near_duplicate_groups": int(table[in_multi & geometric]["group"].nunique()),
        "duplicates_removed": int((in_multi & ~table["representative"]).sum()),
        "relations": {k: int(v) for k, v in table.loc[in_multi & ~table["representative"], "relation"]
                      .map(_relation_kind)
                      .value_counts().items()},
        "leaked_files": leak["leaked_files"],
        "leaked_groups": leak["leaked_groups"],
        "leakage": leak["matrix"],
        "label_conflicts": int(len(label_conflicts(table))),
    }


def duplicates_frame(table: pd.DataFrame) -> pd.DataFrame:
    """One row per file in a group of two or more: representative first, then its copies."""
    sizes = table["group"].map(table["group"].value_counts())
    rows = table[sizes > 1].copy()
    rows["_rep_first"] = ~rows["representative"]
    rows = rows.sort_values(["group", "_rep_first", "path"], kind="stable")
    return pd.DataFrame({
        "group": rows["group"].to_numpy(),
        "path": rows["path"].to_numpy(),
        "split": _split_col(rows).to_numpy(),
        "label": rows["label"].fillna("").to_numpy() if "label" in rows else "",
        "relation": rows["relation"].to_numpy(),
        "angle": rows["dup_angle"].to_numpy(),
        "mirrored": rows["mirrored"].to_numpy(),
        "score": rows["dup_score"].to_numpy(),
    })


def write_duplicates(table: pd.DataFrame, path: str | Path) -> Path:
    """Write manifests/NAME/duplicates.csv atomically."""
    from curate.workspace import write_csv

    return write_csv(path, duplicates_frame(table))


def _relation_kind(relation: str) -> str:
    """'mirrored+rotated -17°' -> 'mirrored+rotated (other angle)', for counting."""
    return relation if not relation.endswith("°") else relation.rsplit(" ", 1)[0] + " (other angle)"
