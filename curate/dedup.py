"""Duplicate groups: candidates -> verification -> groups -> representative -> leakage.

1. Candidates (no N x N anywhere, all through `index.HammingIndex`): exact byte and pixel
   hashes; pairs whose `phash` is within PHASH_RADIUS bits under one of the 8 rotations/flips;
   then channels for what a whole-frame hash cannot see, each adding only an image's few
   nearest pairs not proposed yet: the trimmed frame (`thash`: shifts into a black fill),
   the frame with its black share flattened (`lhash_*`: darkened copies whose background
   went black), deskewed disc hashes (`rhash_*`, `ghash_*`: any angle) and shifted / zoomed
   windows (`whash_*`: shifts and zooms up to 10%, and both at once; `twhash`, the trimmed
   frame's centred window, for copies shifted into a fill), and ring hashes (`ring_*`: a turn
   and a zoom about the centre at once, as augmentation scripts make them).
2. Verification on the images, because radiographs look alike to any global hash: ORB
   keypoints on the anatomy (not the background noise) of both images (the second also
   mirrored), ratio-tested matches, RANSAC on a similarity (then a general affine, for
   squashed copies; and when that finds nothing, again on looser matches that agree on how
   much the keypoints turned: resampled copies blur descriptors), then the second image is
   warped onto the first and the two must correlate on their common area (band-passed detail,
   on two equalisations so tone changes and clipped backgrounds do not matter). A pair that
   nearly makes it is aligned again to sub-pixel precision (ECC) and must then correlate
   higher still (not a pair only the shift/zoom windows proposed). A pair aligned by a turn or
   zoom about the frame centres that falls short is scored again on the common area alone (a
   fixed canvas's fill beyond the turned frame rings into the band-pass). A copy crushed mostly to
   black, where ORB finds nothing, is aligned by its whole-frame hash's rotation/flip and must
   correlate as a refined pair must, aligned so or refined. This gives the angle, scale and
   mirror between the two. A mostly black frame that gives no alignment tries keypoints on its
   own grey levels (Features.plain_keypoints).
3. Groups: verified pairs, strongest first, joined by union-find; two groups are joined only
   when their cores (best members: the least flattened to black, then the least padded, then
   the one its copies verify best with) also
   verify against each other, so one false link cannot chain unrelated images together, and
   two groups that hold copies only on a strong link (one that does not shift the two frames'
   centres apart: OFF_CENTRE). Groups a near miss connects then get
   their closest pairs tried (_bridges): fragments of one chain of augmentations.
4. One representative per group: the member most others are aligned with (the un-rotated,
   un-mirrored original and its plain re-encodes), then the one not cut out of another,
   then the larger, better-kept file, then train > val > test, then the path.

Geometry convention (as in curate.messy): a member M relates to its representative R by
M = rotate(mirror^m(R), beta), mirror first, angles counter-clockwise. `dup_angle` is the
rotation that brings M onto R after un-mirroring it: rotate(mirror^m(M), dup_angle) == R.
"""

from __future__ import annotations

import functools
import math
import sys
from collections import defaultdict
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
import pandas as pd

from curate.errors import ImageError
from curate.hashing import (CLIP_FLOORS, GHASH_COLUMNS, LHASH_COLUMNS, RHASH_COLUMNS, RING_COLUMNS, WHASH_COLUMNS,
                            dihedral, equalise, mid_ranks)
from curate.imageio import decode, fit, remap_maps
from curate.index import HammingIndex, best_per_pair, dihedral_pairs
from curate.names import NO_KIN, chain, families, kinship, parent_links, shared_roots
from curate.parallel import Progress, default_workers, map_files, scaled, shared
from curate.resave import RESAVE_MARGIN, lossless, resave_gap

PHASH_RADIUS = 10  # bits, under the best of 8 rotations/flips
# Any angle: deskewed disc hashes (12 disc sizes, queried; turned by the principal axis in
# rhash, by the edge direction in ghash) within RHASH_RADIUS bits of an image's whole disc
# (indexed), and only that image's RHASH_TOP nearest queries not proposed yet. Radius 7 rather
# than 6: on the held-out (seed 23) set, recall 0.978 -> 0.987 (any angle + re-encoded 0.922 ->
# 0.953) at the same precision on both sets, for 18% more pairs to verify.
RHASH_RADIUS, RHASH_TOP = 7, 3
# A copy turned on a grown canvas with a black fill (dark_share >= FILL_DARK) shows the original
# smaller, so its discs are far from the original's whole disc and look-alikes crowd it out of
# the original's RHASH_TOP; such a copy also keeps its own FILL_TOP nearest. On the benchmark
# set: 2% more pairs to verify, any angle + re-encoded 0.946 -> 0.955 (held-out: 0.953 -> 0.969).
FILL_DARK, FILL_TOP = 0.1, 1
# Shift/zoom: centred window vs others' shifted/zoomed windows within WHASH_RADIUS bits, and
# only each image's WHASH_TOP nearest (radiographs' windows look alike; copies come first).
# On the 1,200-base benchmark set: 71 of 73 shifted copies found, 2,400 more pairs to verify.
WHASH_RADIUS, WHASH_TOP = 10, 3
# Turn and zoom at once (hashing.ring_hashes, blind to both and to a mirror): each image's
# moved ring windows against every image's middle one within RING_RADIUS bits, and only each
# image's RING_TOP nearest not proposed yet (most are copies already joined, never verified).
RING_RADIUS, RING_TOP = 8, 5
# Trimmed frames (hashing.thash, the frame without flat edge strips): a copy shifted into a
# black fill lines up with its original again. Only pairs with a trimmed side, each image's
# THASH_TOP nearest not proposed yet.
THASH_RADIUS, THASH_TOP = 8, 2
# Clipped tone changes (hashing.CLIP_FLOORS): a file with at least CLIPPED of its pixels at its
# darkest level is compared at the first floor above that share, and keeps its LHASH_TOP
# nearest within LHASH_RADIUS bits (copies land 0-2 bits apart; phash had them 4-18 apart).
CLIPPED, LHASH_RADIUS, LHASH_TOP = 0.4, 6, 2
VERIFY_SIDE = 192  # px: images are compared at this size (longest side)
ORB_FEATURES = 600  # keypoints per image (matching two images costs their product)
VERIFY_BATCH = 256  # pairs per task in verify_pairs (what a batch derives is dropped after it)
MIN_INLIERS = 12  # keypoint matches that agree on one transform
# A keypoint alignment is sought as a similarity (estimateAffinePartial2D), then as an affine (a
# squashed copy), whose RANSAC costs more (3-point samples). The affine is tried only where the
# similarity found AFFINE_FLOOR inliers. Replaying every verified pair of FracAtlas, messy600 and
# kaggle seeds 1 and 2 (46,868 pairs): each affine alignment scoring 0.78 or more (165) came after
# a similarity with 11 or more inliers; after fewer than 8 an affine found MIN_INLIERS in 5
# FracAtlas look-alikes only (0.13-0.48; now 0, one 0.64 on its looser matches), and no pair's
# decision changed. It skips 36% of FracAtlas's affines, 7% of its verification CPU.
AFFINE_FLOOR = 8
MIN_OVERLAP = 0.3  # share of the smaller image the two must have in common
# Accept a pair when the aligned detail (band-passed, on two equalisations) correlates well:
# MIN_CORRELATION on the keypoint (RANSAC) alignment, or REFINED_CORRELATION once an ECC
# refinement has made the alignment sub-pixel (keypoints put a copy a few pixels off, which
# a fine band cannot forgive; but refinement also pulls look-alike anatomy together, hence the
# higher bar). On the dedup benchmark set, copies that fall short of these are mostly turned
# by an arbitrary angle or re-toned; second exposures of one patient (a different radiograph,
# must stay apart) reach 0.72-0.87 and are what most false merges are.
MIN_CORRELATION = 0.78
REFINED_CORRELATION = 0.86
FLAT_FLOOR = 0.35  # share of darkest pixels (background) flattened in Features.flat
# A keypoint alignment that correlates under REFINE_FLOOR is not worth refining (a half-size ECC
# and a score, ~2 ms a pair). Raising it to 0.5 saved 15% of FracAtlas's verification CPU
# (3,858 of its 31,431 verified pairs score 0.3-0.5) but changed which file two never-tuned
# kaggle sets keep in a group (session 14, README Speed): refinements from there do land.
REFINE_FLOOR = 0.3
LOOSE_FLOOR = 0.6  # the same for an alignment found on the looser matches (see _turned_alike)
# A near miss is first refined at half size: under COARSE_FLOOR there, it is not refined at full
# size. On FracAtlas's 29,872 candidate pairs, 4,644 of the 5,353 refined ones stop there; none
# of them reached more than 0.75 when refined in full (REFINED_CORRELATION is 0.86); every pair's
# decision and score stayed the same; dedup_quality's output with it and without it
# (COARSE_FLOOR=0) is identical on kaggle seed 3 and default seed 5 (and on default seed 11
# before the ring channel and the common-area score came).
COARSE_FLOOR = 0.65
# Two groups that already hold copies meet: the strongest pair between them, or their cores,
# must correlate this well. Two exposures of one patient (the same limb X-rayed twice) pass as a
# pair at 0.78-0.87, as heavily resampled copies do; but each exposure gathers its own copies
# first, and one weak link would then merge them all.
MERGE_CORRELATION = 0.88
# A pair whose alignment keeps the frame centres together (within CENTRED of the side: a turn
# or zoom about the centre, as augmentation scripts make them) and scores below
# MERGE_CORRELATION is scored again on the common area alone (_common_band), which counts only
# if it reaches MERGE_CORRELATION. On the kaggle set (seed 1) one-step parent/child pairs that
# fragments meet on went from 0.48-0.88 to 0.73-0.99 (8 of 12 over 0.88); second exposures of
# one patient (FracAtlas) are rarely centred (offsets 0.04-0.10); centred ones went from
# 0.58-0.78 to 0.71-0.86, which passed as weak links on the default set (seed 11: one more
# pair of exposures joined) until the common score had to be strong.
CENTRED = 0.01
# A strong pair whose alignment moves one frame's centre further than OFF_CENTRE of the longer side
# from the other's (a shift, not a turn or zoom about the centre) joins two groups only as a weak
# link does: a lone picture to a group, or kin (KIN_JOINS). Two exposures of one patient are framed
# apart so: on FracAtlas 16 of the 19 pairs judged different by eye that verify sit 0.018-0.128
# off centre (3 at 0.002-0.003), one exposure saved twice at most 0.001; on kaggle seed 101 IMG0003425 / IMG0003426's 224 px copies
# verify at up to 0.92 across the two, 0.058-0.118 off centre, while every copy pair of a chain
# (turns and zooms about the centre) sits at most 0.014 off (alignment error). A shifted copy (the
# default profile's) is a lone picture and still joins, as a weak link, once every strong one is in.
OFF_CENTRE = 0.03
# The same common area, each image's grey levels replaced by their ranks there (its fill and
# clipped extremes left out): a tone change (gamma, contrast, brightness) keeps the ranks, while
# equalising the whole frame, fill included, bends two re-toned copies' grey levels apart. It
# counts from RANK_CORRELATION. On the kaggle set (seed 1) the parent/child pairs fragments meet
# on went from 0.61-0.80 to 0.94-0.99 (12 of 15); the centred second exposures of one patient
# reach 0.81-0.86 (FracAtlas pairs judged different by eye, benchmarks/fracatlas_pairs.csv, and
# the false pairs verified on the default set, seed 11).
RANK_CORRELATION = 0.92
# Glances: _score's looks at half size (a quarter of the pixels, blurs half as wide), which follow
# the full ones closely, so a look they put well below its bar is not taken in full (the result is
# then what the full look would have given, unless a glance misleads). A loose alignment (only a
# score of LOOSE_FLOOR counts) whose first glance (_glance) is GLANCE_MARGIN below that is not
# scored: replaying 11,000 scored alignments of FracAtlas and kaggle pairs (150 bases, seed 1),
# the first glance correlated 0.99 with the score, and alignments that scored 0.6 glanced at 0.563
# or more (not for the centred ones, see below, nor frames flattened deeper, see _score).
GLANCE_MARGIN = 0.15
# The second look (the common area, and its ranks; see CENTRED and RANK_CORRELATION) of an
# alignment whose band-passed frames correlate under SECOND_GLANCE is taken in full only when its
# glance (_common_glance, _ranked_glance) comes within COMMON_MARGIN / RANK_MARGIN of the bar. In
# the replay above, 2,011 second looks were of such alignments: those that reached 0.88 glanced at
# 0.89 or more, those whose ranks reached 0.92 at 0.71 or more (over all 6,096, down to 0.77 and
# 0.61). A second look costs 2.4-2.7 ms in full, its glances 0.9 ms, and on FracAtlas 9 in 10 are
# then not taken; above SECOND_GLANCE most second looks of copies succeed, and glances only add cost.
SECOND_GLANCE, COMMON_MARGIN, RANK_MARGIN = 0.6, 0.2, 0.3
_ECC_CRITERIA = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 1e-3)
VERIFY_VERSION = "20"  # bump when verification changes meaning: cached pair results are then ignored (20: DEFER_AFFINE)
FRAME_CHANNELS = ("phash", "lhash")  # whole-frame hashes: their variant aligns the two frames
# A pair only the shift/zoom windows proposed is a shift or zoom of one frame: its first
# alignment is good or it is a look-alike. Refining it finds no copy there, but makes second
# exposures of one patient (which differ by just such a shift) pass: 3 of its 4 rescues on the
# benchmark set, 1 of 1 on another, for a tenth of all verification time.
NO_REFINE_CHANNELS = ("window", "twindow")
# Their pairs are verified only while one of the two groups is a lone picture: a shifted copy
# is proposed by the windows alone, while a group of copies is found through its other
# channels. On the kaggle set (150 bases, seed 1) 12 of the 2,264 window pairs verified were
# accepted; on the benchmark set (seed 11) the pairs between groups made 25 of its 33 false
# pairs (precision 0.985 -> 0.996, recall 0.991 and shifted copies' 0.979 unchanged).
LONE_CHANNELS = ("window", "twindow")
# Bridging fragments of one chain (see _bridges): groups a pair scoring at least BRIDGE_FLOOR
# connects try their closest pairs in rounds (the closest 2, then up to 6), stopping once
# joined; BRIDGE_PASSES times, as one bridge can bring a third group near. On the kaggle set
# (150 bases, seed 1, rounds up to 14) it took the radiographs in more than one group 25 -> 18.
BRIDGE_FLOOR, BRIDGE_ROUNDS, BRIDGE_PASSES = 0.6, (2, 6), 2
# File names as a hint, never as evidence (see curate.names): groups whose files share a name
# root (`82-rotated1-rotated2.jpg`, `82 (1).jpg`), where some name says it was derived, are
# bridged as a near miss's groups are, each file's nearest kin by name tried first (0: names
# unused). A root (within one label) spread over more than NAME_GROUPS groups has only the groups
# of a file and of its parent by name bridged, and only if it lies in a label's few folders: a
# chain shattered into many fragments, not a name every folder repeats (names.families).
# 16 rather than 6: on kaggle seeds 71 and 79 (150 bases) one radiograph each fell into 9 and 11
# groups, out of reach at 6; at 16, 7 each (recall 0.964 -> 0.975, 0.977 -> 0.981).
NAME_GROUPS = 16
# A weak link (MIN_CORRELATION to MERGE_CORRELATION) joins two groups when the names say the two
# files are of one family (names.families) and carry one label (sets number each class folder
# afresh: `82.jpg` in `fractured/` and in `not fractured/` are two radiographs; the split is not
# compared, as a test folder's files are mostly copies of train's under their names); in a family
# over NAME_GROUPS groups, only two distinct names of it (not `images (3)`, `images (7)`). The
# names are the second, independent piece of evidence a weak link lacks (0: weak links never do).
KIN_JOINS = 1
# Rounds of verification (see find_duplicates): each group's strongest pairs to other groups,
# ROUND_BUDGETS[k] per group in round k; pairs left after the last round are not verified. On the
# 10,000-file kaggle set (seed 0, main at 2334519) rounds beyond 63 pairs per group (1 + 2 + ... +
# 32) verified 4,487 pairs and joined none; stopping at 31 instead saved 7,574 more but cost recall
# on a never-tuned kaggle set (150 bases, seed 61: 0.991 -> 0.983). Each budget twice (1 three
# times) rather than doubling every round, the same 63 in all: a group that grew in one round
# offers its new members' strongest pairs before its weaker ones are tried, so fewer pairs between
# files that end in one group fail first (kaggle set: 31,047 -> 28,250 pairs verified, 12% less
# verification CPU; kaggle 150 bases, seed 1: 5,982 -> 5,243).
ROUND_BUDGETS = (1, 1, 1, 2, 2, 4, 4, 8, 8, 16, 16)
# The rounds verify near misses (an alignment scoring REFINE_FLOOR to MIN_CORRELATION) without their
# sub-pixel refinement, keeping the alignment; after the last round only those whose two files are
# still apart are refined. On the 10,000-file kaggle set (seed 0) ~3,900 near misses failed between
# files of one radiograph that other pairs joined later, each refined in vain (~4 ms of its ~10).
# The 3% of accepted pairs that pass only refined then join later (the rounds verify 28,255 ->
# 28,360 pairs, then 1,620 refinements): dups CPU -7%; the same groups and kept files there and on
# the tuned kaggle seeds; one or two rounds' delay instead saved less (more refinements).
DEFER = True
# The rounds also leave unscored a near miss's affine alignment (RANSAC's second estimate, found
# after a similarity that scored REFINE_FLOOR or more): on the kaggle set ~4,600 of the rounds'
# near misses lie between files of one radiograph, and their affine score cost ~2.4 ms of their
# ~7; 1 in 100 accepted pairs passes only on it, and joins after the rounds if still apart.
DEFER_AFFINE = True
# Tables of at least this many hashed files search their candidate channels on the workers (a pool
# costs ~0.1 s to start; on 9,633 files the searches take 8 s on one core, the window ones half of it).
PARALLEL_SEARCH = 2000
SPLIT_ORDER = {"train": 0, "val": 1, "test": 2, "": 3}
# candidate channels, earliest first: a pair several propose keeps the earliest's distance and variant
CHANNELS = ("sha256", "pixel_hash", "phash", "thash", "lhash", "rhash", "ghash", "ring", "window", "twindow")

DUP_COLUMNS = ("group", "representative", "relation", "dup_angle", "mirrored", "dup_score", "derived", "dup_scale")


# ---- verification of one pair ------------------------------------------------------------------


@dataclass
class Features:
    """What verification needs of one image, made once per file. The band-passed images are
    large: a worker makes them when first needed and drops them after each batch of pairs."""

    pixels: np.ndarray  # histogram-equalised, VERIFY_SIDE
    flat: np.ndarray  # equalised with the darkest 35% (background) flattened to 0: its noise
    # is what histogram equalisation blows up, and what a tone change clips away
    clipped: float  # share of pixels at the darkest level (a tone change can clip a background)
    keypoints: tuple[np.ndarray, np.ndarray, np.ndarray]  # (points, descriptors, angles) as is
    path: str = ""  # the file, read again for plain_keypoints
    _mirrored: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    _bands: tuple[np.ndarray, np.ndarray] | None = None
    _half: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None
    _plain: dict | None = None
    traces: tuple | None = None  # traces() of the file, where features() could make them from its decode

    @property
    def mirrored(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The keypoints of the left-right mirrored image, made when first needed: most files
        are only ever verified unmirrored (the hashes tell which pairs are mirrored)."""
        if self._mirrored is None:
            flip = (lambda x: np.ascontiguousarray(x[:, ::-1]))
            self._mirrored = _keypoints(flip(self.pixels), flip(_anatomy(self.flat)))
        return self._mirrored

    def plain_keypoints(self, mirrored: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Keypoints on the file's own grey levels (lightly smoothed), not the equalised ones,
        made when first needed: where the anatomy is small on a
        wide black background, equalising blows its JPEG noise up into keypoints that no
        re-saved copy shares (on the kaggle set: copies one augmentation apart, correlating
        0.9+, with 2-7 right matches in 500)."""
        if self._plain is None:
            self._plain = {}
        if mirrored not in self._plain:
            try:
                raw = decode(self.path, max_side=VERIFY_SIDE).pixels
            except Exception:
                return np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8), np.zeros(0, np.float32)
            img = cv2.normalize(cv2.GaussianBlur(raw, (0, 0), 1.0), None, 0, 255, cv2.NORM_MINMAX)
            mask = _anatomy(self.flat)
            if img.shape != mask.shape:
                return np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8), np.zeros(0, np.float32)
            if mirrored:
                img, mask = np.ascontiguousarray(img[:, ::-1]), np.ascontiguousarray(mask[:, ::-1])
            self._plain[mirrored] = _keypoints(img, mask)
        return self._plain[mirrored]

    @property
    def bands(self) -> tuple[np.ndarray, np.ndarray]:
        """_band of pixels and of flat."""
        if self._bands is None:
            self._bands = (_band(self.pixels), _band(self.flat))
        return self._bands

    @property
    def half(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """pixels and flat at half size, and their _half_band (see _glance)."""
        if self._half is None:
            pixels, flat = _halved(self.pixels), _halved(self.flat)
            self._half = (pixels, flat, _half_band(pixels), _half_band(flat))
        return self._half


@dataclass(frozen=True)
class Match:
    ok: bool
    score: float = 0.0  # correlation on the common area (0..1)
    mirrored: bool = False
    beta: float = 0.0  # degrees CCW: b = rotate(mirror^m(a), beta)
    scale: float = 1.0
    inliers: int = 0
    cover_a: float = 0.0  # share of a's frame that b shows
    cover_b: float = 0.0
    offset: float = 0.0  # how far the alignment moves a's frame centre from b's (_offset; see OFF_CENTRE)
    # a near miss whose refinement was put off (verify's defer): (framed, its alignment's 6 numbers)
    pending: tuple | None = field(default=None, compare=False, repr=False)

    @property
    def strong(self) -> bool:
        """Verified well enough to join two groups that both hold copies (MERGE_CORRELATION, OFF_CENTRE)."""
        return self.ok and self.score >= MERGE_CORRELATION and self.offset <= OFF_CENTRE


_ORB = None


def _orb():
    global _ORB
    if _ORB is None:
        _ORB = cv2.ORB_create(nfeatures=ORB_FEATURES, fastThreshold=8, edgeThreshold=15, patchSize=15)
    return _ORB


def _keypoints(img: np.ndarray, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(points, descriptors, angles in degrees) of ORB keypoints."""
    kps, desc = _orb().detectAndCompute(img, mask)
    if desc is None or not kps:
        return np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8), np.zeros(0, np.float32)
    return np.float32([k.pt for k in kps]), desc, np.float32([k.angle for k in kps])


def features(path: str, traced: bool = False) -> Features | None:
    """Decoded, equalised pixels and keypoints of one file (None if it does not decode).
    traced: the file is under 2 * VERIFY_SIDE a side (_small), so libjpeg reduces neither its
    decode at VERIFY_SIDE nor at TRACE_SIDE: the one decode at TRACE_SIDE, shrunk, is the
    other, and the file's traces() are made from it too (on the kaggle set a decode is most of
    their cost)."""
    try:
        raw = decode(path, max_side=TRACE_SIDE if traced else VERIFY_SIDE).pixels
    except ImageError:
        return None
    except Exception:
        return None
    pixels = fit(raw, VERIFY_SIDE) if traced else raw
    if min(pixels.shape) < 16:
        return None
    eq = cv2.equalizeHist(pixels)
    flat = (equalise(pixels, FLAT_FLOOR) * 255).astype(np.uint8)
    clipped = float((pixels == pixels.min()).mean())
    found = Features(eq, flat, clipped, _keypoints(eq, _anatomy(flat)), str(path))
    if traced:
        found.traces = _traces(raw)
    return found


def _features_of(item: tuple[str, bool]) -> Features | None:
    """features() of a (path, traced) item, for map_files (and under a name verify_pairs's
    `features` argument does not hide)."""
    return features(*item)


def _small(table: pd.DataFrame) -> np.ndarray:
    """Rows whose image (as the audit measured it) is under 2 * VERIFY_SIDE a side: see features()."""
    if not {"width", "height"} <= set(table.columns):
        return np.zeros(len(table), bool)
    sides = table[["width", "height"]].apply(pd.to_numeric, errors="coerce").fillna(0).to_numpy()
    return (sides.min(axis=1) > 0) & (sides.max(axis=1) < 2 * VERIFY_SIDE)  # (0: the audit could not decode it)


def _anatomy(flat: np.ndarray) -> np.ndarray:
    """Where keypoints go: the anatomy and its edges, not the background's noise (which a
    tone change or a re-encode wipes out); ORB compares intensities, so tone changes keep them."""
    return cv2.dilate((flat > 0).astype(np.uint8), np.ones((7, 7), np.uint8))


def _matches(a: tuple, b: tuple):
    """Each keypoint of a with its nearest in b: (points in a, points in b, ratio of the
    nearest to the second-nearest distance, turn of the keypoint from a to b in degrees)."""
    (pa, da, aa), (pb, db, ab) = a, b
    if len(da) < 2 or len(db) < 2:
        return np.zeros((0, 2), np.float32), np.zeros((0, 2), np.float32), np.zeros(0), np.zeros(0)
    dist, nearest = _two_nearest(da, db)
    t = nearest[:, 0]
    ratio = dist[:, 0] / np.maximum(dist[:, 1], 1e-9)
    return pa, pb[t], ratio, (ab[t] - aa) % 360


def _two_nearest(da: np.ndarray, db: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hamming distances (int32, as cv2 gives them) and rows of each descriptor of da's two
    nearest in db. faiss counts bits with the CPU's popcount (3.5x cv2.batchDistance, the
    largest single cost of verifying); the distances are the same, and which of two equally
    near is named does not matter (their ratio, 1, fails every ratio test)."""
    faiss = _faiss()
    if faiss is None:  # (the same, as arrays; BFMatcher.knnMatch computes it as objects)
        return cv2.batchDistance(da, db, -1, normType=cv2.NORM_HAMMING, K=2, update=0, crosscheck=False)
    index = faiss.IndexBinaryFlat(da.shape[1] * 8)
    index.add(np.ascontiguousarray(db))
    return index.search(np.ascontiguousarray(da), 2)


@functools.cache
def _faiss():
    """faiss, single-threaded (the workers are the parallelism), or None where it is not installed."""
    try:
        import faiss
    except ImportError:
        return None
    faiss.omp_set_num_threads(1)
    return faiss


def _matches_from_larger(a: tuple, b: tuple):
    """_matches asked from the image with more keypoints: each of its keypoints looks for its
    nearest in the other. Asked from the one with fewer, a small radiograph (224 px, ~100
    keypoints on its anatomy) can fall short of MIN_INLIERS against a copy it matches the
    other way round; so the answer no longer depends on which file comes first."""
    if len(a[1]) >= len(b[1]):
        return _matches(a, b)
    pb, pa, ratio, turn = _matches(b, a)
    return pa, pb, ratio, (-turn) % 360


def _strict(matches) -> tuple[np.ndarray, np.ndarray]:
    """The matches (see _matches) that pass Lowe's ratio test (0.8)."""
    pa, pb, ratio, _ = matches
    keep = ratio < 0.8
    return pa[keep], pb[keep]


def _turned_alike(matches) -> tuple[np.ndarray, np.ndarray]:
    """Looser matches (ratio 0.9) that agree, within 20 degrees, on the commonest turn of their
    keypoints (none when fewer than MIN_INLIERS pass 0.9). A copy turns all its keypoints
    alike; a heavily resampled one blurs its descriptors so that too few pass the strict test,
    and wrong matches drown RANSAC."""
    pa, pb, ratio, turn = matches
    loose = ratio < 0.9
    if loose.sum() < MIN_INLIERS:
        return pa[:0], pb[:0]
    # 10-degree bins (np.histogram's, a tenth of its cost), each summed with its two neighbours
    hist = np.bincount(np.minimum(turn[loose] // 10, 35).astype(np.intp), minlength=36)
    ring = np.concatenate((hist[-1:], hist, hist[:1]))
    peak = 10 * int(np.argmax(ring[:-2] + hist + ring[2:])) + 5
    agree = loose & (np.abs((turn - peak + 180) % 360 - 180) <= 20)
    return pa[agree], pb[agree]


def _correlate(a: np.ndarray, b: np.ndarray, m: np.ndarray, a_band: np.ndarray | None = None,
               overlap: tuple | None = None, common: bool = False) -> tuple[float, float, float]:
    """Correlation of a with b warped onto a's frame by m (a -> b coordinates), and how much
    of each frame the other covers. a_band: _band(a), if already computed; overlap: _overlap
    of the two shapes under m, if already computed (it depends on nothing else). common: both
    band-passed on the common area only (_common_band)."""
    inside, cover_a, cover_b = overlap or _overlap(a.shape, b.shape, m)
    if inside is None:
        return 0.0, cover_a, cover_b
    warped = _warp(b, m, a.shape)
    if common:
        return _common_ncc(inside, (a, warped)), cover_a, cover_b
    x = (_band(a) if a_band is None else a_band)[inside]
    return _ncc(x, _band(warped)[inside]), cover_a, cover_b


def _warp(b: np.ndarray, m: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """b warped onto a frame of `shape` by m (frame -> b coordinates)."""
    return cv2.warpAffine(b, m, (shape[1], shape[0]), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)


def _common_ncc(inside: np.ndarray, *pairs: tuple[np.ndarray, np.ndarray], half: bool = False) -> float:
    """The best _ncc of the (a, b warped onto a) pairs band-passed on the common area alone
    (_common_band), the mask's own blurs made once for all of them. half: images at half size."""
    w, norms = _mask_norms(inside, half)
    return max(_ncc(*(_common_band(x, w, norms, half)[inside] for x in pair)) for pair in pairs)


def _mask_norms(inside: np.ndarray, half: bool = False) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """The mask as weights, and its two blurs (what _common_band divides by)."""
    w = inside.astype(np.float32)
    narrow, wide = _blurs(half)
    return w, tuple(np.maximum(x, 1e-3, out=x) for x in (narrow(w), wide(w)))


def _common_band(img: np.ndarray, w: np.ndarray, norms: tuple[np.ndarray, np.ndarray], half: bool = False) -> np.ndarray:
    """_band computed from the pixels inside the mask w only (blurs divided by the mask's,
    `norms`): what lies beyond the common area (one image's fill, the other's missing corner)
    does not ring into it."""
    f = np.multiply(img, w, dtype=np.float32)
    narrow, wide = _blurs(half)
    out, far = narrow(f), wide(f)  # (in place: these run a dozen times a pair)
    out /= norms[0]
    far /= norms[1]
    out -= far
    return out


def _blurs(half: bool = False):
    """_band's narrow and wide blur, for images at full or half size (both half as wide)."""
    if half:
        return (lambda f: cv2.GaussianBlur(f, (0, 0), 0.5)), (lambda f: cv2.GaussianBlur(f, (19, 19), 3.0))
    return (lambda f: cv2.GaussianBlur(f, (0, 0), 1.0)), _wide_blur


def _off_extremes(img: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Where img is more than 2 grey levels inside ref's darkest and brightest (a fill, a clipped
    tone sits at them). Python ints: uint8 arithmetic would wrap at 0 and 255."""
    return (img > int(ref.min()) + 2) & (img < int(ref.max()) - 2)


def _ranked_common(a: np.ndarray, b: np.ndarray, warped: np.ndarray, inside: np.ndarray | None,
                   half: bool = False) -> float:
    """Correlation of a with b (`warped` onto a: _warp), band-passed on their common area (see
    _common_band) after each image's grey levels there are replaced by their ranks there; the
    two images' darkest and brightest levels (a fill, a clipped tone) are left out."""
    if inside is None:
        return 0.0
    keep = inside & _off_extremes(a, a) & _off_extremes(warped, b)
    keep = cv2.erode(keep.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    if keep.sum() < MIN_OVERLAP * keep.size / 4:
        return 0.0
    ranked = []
    w, norms = _mask_norms(keep, half)
    for img in (a, warped):
        r, values = np.zeros(img.shape, np.float32), img[keep]
        r[keep] = mid_ranks(values)[values] * 255
        ranked.append(_common_band(r, w, norms, half)[keep])
    return _ncc(*ranked)


def _centred(m: np.ndarray, shape_a: tuple[int, int], shape_b: tuple[int, int]) -> bool:
    """m (a -> b) takes a's frame centre to b's, within CENTRED of the longer side: a turn or
    zoom about the centre, as augmentation makes them (a mirror keeps the centre too)."""
    return _offset(m, shape_a, shape_b) <= CENTRED


def _offset(m: np.ndarray, shape_a: tuple[int, int], shape_b: tuple[int, int]) -> float:
    """How far m (a -> b) takes a's frame centre from b's, as a share of a's longer side."""
    (ha, wa), (hb, wb) = shape_a, shape_b
    x, y = m @ np.array([(wa - 1) / 2, (ha - 1) / 2, 1.0])
    return math.hypot(x - (wb - 1) / 2, y - (hb - 1) / 2) / max(ha, wa)


def _overlap(shape_a: tuple[int, int], shape_b: tuple[int, int], m: np.ndarray) -> tuple:
    """(where b warped by m covers a's frame, away from its edge; the share of a's frame it
    covers; the share of b's frame a covers). The mask is None when they share too little."""
    (ha, wa), (hb, wb) = shape_a, shape_b
    inside = cv2.warpAffine(np.ones(shape_b, np.uint8), m, (wa, ha), flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP)
    inside = cv2.erode(inside, np.ones((5, 5), np.uint8))
    count = cv2.countNonZero(inside)  # (a bool mask's mean and sum cost 30x more; count / size is its mean)
    cover_a = count / inside.size
    det = abs(m[0, 0] * m[1, 1] - m[0, 1] * m[1, 0]) or 1e-9
    cover_b = min(1.0, cover_a * ha * wa * det / (hb * wb))
    if count < MIN_OVERLAP * min(ha * wa, hb * wb / det):
        return None, cover_a, cover_b
    return inside > 0, cover_a, cover_b


def _band(img: np.ndarray) -> np.ndarray:
    """Band-pass (difference of Gaussians): the bone and edge detail that tells two patients
    apart, without the bright-middle, dark-border layout every radiograph shares."""
    f = img.astype(np.float32)
    out = cv2.GaussianBlur(f, (0, 0), 1.0)
    out -= _wide_blur(f)
    return out


def _wide_blur(f: np.ndarray) -> np.ndarray:
    """Gaussian blur, sigma 6, on a kernel cut at 3 sigma rather than OpenCV's 4: the same
    result to 0.3% of the weight, 1.8 times faster (verification spent most time here)."""
    return cv2.GaussianBlur(f, (37, 37), 6.0)


def _ncc(x: np.ndarray, y: np.ndarray) -> float:
    x = x - _mean(x)
    y = y - _mean(y)
    denom = float(np.sqrt(float(_sum(x * x)) * float(_sum(y * y))))
    return float(_sum(x * y)) / denom if denom > 0 else 0.0


def _sum(x: np.ndarray):
    """x.sum() without its Python wrapper (the same reduction): _ncc runs ~50 times a pair."""
    return np.add.reduce(x, axis=None)


def _mean(x: np.ndarray):
    """x.mean() as numpy computes it (the sum over an intp count, back in x's float type), unwrapped."""
    return x.dtype.type(_sum(x) / np.intp(x.size))


def _refine(a: np.ndarray, b: np.ndarray, m: np.ndarray, gauss: int = 5) -> np.ndarray | None:
    """Sub-pixel alignment (ECC, affine) of b onto a, starting from m; None if it fails."""
    try:
        _, w = cv2.findTransformECC(a.astype(np.float32), b.astype(np.float32), m.astype(np.float32),
                                    cv2.MOTION_AFFINE, _ECC_CRITERIA, None, gauss)
    except cv2.error:
        return None
    return w.astype(np.float64)


def _coarse_refine(a: np.ndarray, b: np.ndarray, m: np.ndarray) -> np.ndarray | None:
    """_refine on the two images at half size (a quarter of the cost), as a full-size transform."""
    small = [_halved(x) for x in (a, b)]
    sa, sb, half = _halve(m, a.shape, b.shape, small[0].shape, small[1].shape)
    w = _refine(*small, half, gauss=3)
    if w is None:
        return None
    return np.hstack([np.diag(1 / sb) @ w[:, :2] @ np.diag(sa), (w[:, 2] / sb)[:, None]])


def _halved(x: np.ndarray) -> np.ndarray:
    """x at half size (at least 8 px a side)."""
    return cv2.resize(x, (max(8, x.shape[1] // 2), max(8, x.shape[0] // 2)), interpolation=cv2.INTER_AREA)


def _halve(m: np.ndarray, shape_a: tuple[int, int], shape_b: tuple[int, int], small_a: tuple[int, int],
           small_b: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(a's scale, b's scale, m between the halved frames) for m between frames of shape_a and
    shape_b, halved to small_a and small_b."""
    (ha, wa), (hb, wb) = shape_a, shape_b
    sa = np.array([small_a[1] / wa, small_a[0] / ha])
    sb = np.array([small_b[1] / wb, small_b[0] / hb])
    return sa, sb, np.hstack([np.diag(sb) @ m[:, :2] @ np.diag(1 / sa), (sb * m[:, 2])[:, None]])


def _half_band(img: np.ndarray) -> np.ndarray:
    """_band at half size: both blurs half as wide."""
    f = img.astype(np.float32)
    narrow, wide = _blurs(half=True)
    return narrow(f) - wide(f)


def _glance(fa: Features, fb: Features, mirror: bool, m: np.ndarray) -> float:
    """_score's first correlation (the better of the two equalisations, band-passed) at half size."""
    pixels, flat, bands, b, warped, inside = _halves(fa, fb, mirror, m)
    if inside is None:
        return 0.0
    return max(_ncc(band[inside], _half_band(x)[inside]) for band, x in zip(bands, warped))


def _common_glance(halves: tuple) -> float:
    """_score's common-area look at half size (halves: _halves)."""
    pixels, flat, bands, b, warped, inside = halves
    return _common_ncc(inside, (pixels, warped[0]), (flat, warped[1]), half=True)


def _ranked_glance(halves: tuple) -> float:
    """_score's ranked look at half size (halves: _halves). 0: too little common area to rank at
    that size, which says nothing."""
    pixels, flat, bands, b, warped, inside = halves
    return _ranked_common(pixels, b[0], warped[0], inside, half=True)


def _halves(fa: Features, fb: Features, mirror: bool, m: np.ndarray) -> tuple:
    """(a's pixels, flat and their _half_band at half size, b's pixels and flat at half size
    (mirrored if asked) and warped onto a's by m, their common area) for the glances."""
    pixels, flat, *bands = fa.half
    b = [_halved(x) for x in _oriented(fb, mirror)]
    half = _halve(m, fa.pixels.shape, fb.pixels.shape, pixels.shape, b[0].shape)[2]
    inside = _overlap(pixels.shape, b[0].shape, half)[0]
    warped = [_warp(x, half, pixels.shape) for x in b] if inside is not None else None
    return pixels, flat, bands, b, warped, inside


def _plausible(m: np.ndarray) -> bool:
    """No reflection, no absurd scale, no strong shear: what a copy's transform can be."""
    lin = m[:, :2]
    det = np.linalg.det(lin)
    sv = np.linalg.svd(lin, compute_uv=False)
    return det > 0 and 0.4 < math.sqrt(det) < 2.5 and sv[0] / sv[1] <= 1.6


def _score(fa: Features, fb: Features, mirror: bool, m: np.ndarray,
           enough: float = math.inf, bar: float = -math.inf) -> tuple[float, float, float]:
    """Best correlation of the two equalisations under m, and the covers. When one image has
    a background clipped to black beyond what `flat` flattens (a tone change does that), both
    are flattened up to that share, so the other's background noise does not count.
    enough: the caller asks only whether the score reaches this; once the band-passed frames
    do, the rest is not computed (and the score returned may be below the best).
    bar: the caller asks only whether the score reaches this; an alignment whose _glance falls
    GLANCE_MARGIN short of it is not scored in full, and the glance is returned (covers 0: not
    measured, as the caller drops it)."""
    floor = max(fa.clipped, fb.clipped) + 0.02
    if bar > -math.inf and floor <= FLAT_FLOOR and not _centred(m, fa.pixels.shape, fb.pixels.shape):
        glance = _glance(fa, fb, mirror, m)  # (first: most glances end it, and the frames' overlap is not needed then)
        if glance < bar - GLANCE_MARGIN:
            return glance, 0.0, 0.0
    b, b_flat = _oriented(fb, mirror)
    overlap = _overlap(fa.pixels.shape, b.shape, m)  # the same for every pair of images below
    inside, cover_a, cover_b = overlap
    if inside is None:
        return 0.0, cover_a, cover_b
    warped = _warp(b, m, fa.pixels.shape), _warp(b_flat, m, fa.pixels.shape)  # (kept for the common area)
    s1, s2 = (_ncc(band[inside], _band(x)[inside]) for band, x in zip(fa.bands, warped))
    if max(s1, s2) >= enough:
        return max(s1, s2), cover_a, cover_b
    if floor > FLAT_FLOOR:
        a_deep = (equalise(fa.pixels, floor) * 255).astype(np.uint8)  # pixels keep the grey levels' ranks
        b_deep = _oriented(fb, mirror, (equalise(fb.pixels, floor) * 255).astype(np.uint8))
        s2 = max(s2, _correlate(a_deep, b_deep, m, overlap=overlap)[0])
    if max(s1, s2) < MERGE_CORRELATION and _centred(m, fa.pixels.shape, b.shape):
        # a turn/zoom about the centre on a fixed canvas: the fill beyond the turned frame (and the
        # missing corners) rang into the band-pass; scored on the common area alone instead, which
        # counts only when strong (a second look: second exposures gain too, to 0.71-0.86)
        halves = _halves(fa, fb, mirror, m) if max(s1, s2) < SECOND_GLANCE else None
        halves = halves if halves is not None and halves[-1] is not None else None  # (too little at half size)
        if halves is None or _common_glance(halves) >= MERGE_CORRELATION - COMMON_MARGIN:
            common = _common_ncc(inside, (fa.pixels, warped[0]), (fa.flat, warped[1]))
            if common >= MERGE_CORRELATION:
                return common, cover_a, cover_b
        glance = _ranked_glance(halves) if halves is not None else 1.0
        if glance == 0.0 or glance >= RANK_CORRELATION - RANK_MARGIN:
            ranked = _ranked_common(fa.pixels, b, warped[0], inside)
            if ranked >= RANK_CORRELATION:
                return ranked, cover_a, cover_b
    return max(s1, s2), cover_a, cover_b


def _oriented(f: Features, mirror: bool, img: np.ndarray | None = None):
    """f's pixels and flat (or just img), mirrored left-right if asked."""
    flip = (lambda x: np.ascontiguousarray(x[:, ::-1])) if mirror else (lambda x: x)
    return flip(img) if img is not None else (flip(f.pixels), flip(f.flat))


def verify(fa: Features, fb: Features, mirror_first: bool = False, tries: int = 2, frame: int | None = None,
           refine: bool = True, defer: bool = False) -> Match:
    """Is b a copy of a (rotated, mirrored, rescaled, re-toned, re-encoded)?

    mirror_first: try b mirrored first (the hashes say so); tries=1 trusts that hint.
    frame: a whole-frame hash's variant v (a ~ T_v(b)). When one image is mostly black (a tone
    change that crushed it leaves ORB too little to hold) and the keypoints find no alignment
    at all, the frames are aligned by that rotation/flip instead; such a pair must correlate as a
    refined pair must (REFINED_CORRELATION), aligned so or refined.
    refine=False: no sub-pixel refinement (see NO_REFINE_CHANNELS). defer: a near miss is returned
    unrefined, its alignment kept (Match.pending) for _refined to take up later (see DEFER), and
    so are the affine alignments found after it, unscored (DEFER_AFFINE)."""
    best, best_m = Match(False), None
    later = []  # affine alignments not scored yet (defer: see DEFER_AFFINE)
    shapes = fa.pixels.shape, fb.pixels.shape
    for mirror in (mirror_first, not mirror_first)[:tries]:
        matches = _matches_from_larger(fa.keypoints, fb.mirrored if mirror else fb.keypoints)
        for kind in ("strict", "loose", "plain"):
            if kind != "strict" and best_m is not None:
                break  # looser matches only where the strict ones found no alignment at all:
                # on FracAtlas they otherwise join second exposures of one patient
            loose = kind == "loose"
            if kind == "plain":  # keypoints on the unequalised frames (see plain_keypoints)
                if not (fa.path and fb.path) or max(fa.clipped, fb.clipped) < CLIPPED:
                    continue  # (the equalised keypoints do well elsewhere)
                pa, pb = _strict(_matches_from_larger(fa.plain_keypoints(False), fb.plain_keypoints(mirror)))
            else:
                pa, pb = _turned_alike(matches) if loose else _strict(matches)
            if len(pa) < MIN_INLIERS:
                continue
            # the loose matches try a similarity only: a squashed copy keeps its descriptors
            similar = 0  # inliers the similarity found (see AFFINE_FLOOR)
            for k, estimate in enumerate((cv2.estimateAffinePartial2D, cv2.estimateAffine2D)[:1 if loose else 2]):
                if k and similar < AFFINE_FLOOR:
                    break
                m, inl = estimate(pa, pb, method=cv2.RANSAC, ransacReprojThreshold=4.0,
                                  maxIters=2000, confidence=0.995)
                if k == 0:
                    similar = 0 if inl is None else int(inl.sum())
                if m is None or inl is None or int(inl.sum()) < MIN_INLIERS or not _plausible(m):
                    continue
                if k and defer and DEFER_AFFINE and best.score >= REFINE_FLOOR:
                    later.append((mirror, tuple(m.ravel()), int(inl.sum())))  # (scored if still apart: DEFER_AFFINE)
                    continue
                score, cover_a, cover_b = _score(fa, fb, mirror, m, bar=LOOSE_FLOOR if loose else -math.inf)
                if loose and score < LOOSE_FLOOR:
                    continue  # loose matches fit look-alikes too: only a near miss is worth refining
                if score > best.score:
                    ok = score >= MIN_CORRELATION
                    best, best_m = _match(ok, score, mirror, m, int(inl.sum()), cover_a, cover_b, shapes), m
                if best.ok:
                    return best
    framed = best_m is None and frame is not None and max(fa.clipped, fb.clipped) >= CLIPPED
    if framed:
        mirror, m = bool(frame % 2), _frame_matrix(frame, fa.pixels.shape, fb.pixels.shape)
        score, cover_a, cover_b = _score(fa, fb, mirror, m)
        ok = score >= REFINED_CORRELATION and _ranked_under(fa, fb, mirror, m) >= RANK_CORRELATION
        best, best_m = _match(ok, score, mirror, m, 0, cover_a, cover_b, shapes), m
        if best.ok:  # already as close as a refined pair must be (ECC can stray on a frame this flat)
            return best
    if refine and best_m is not None and best.score >= REFINE_FLOOR:
        if defer:  # its keypoint alignment kept, to be refined if the rounds leave the two apart
            return replace(best, pending=(framed, tuple(best_m.ravel()), tuple(later)))
        return _refined(fa, fb, best, best_m, framed)
    return best


def _refined(fa: Features, fb: Features, best: Match, best_m: np.ndarray, framed: bool) -> Match:
    """A near miss (best, aligned by best_m) after a sub-pixel re-alignment: accepted if it then
    reaches REFINED_CORRELATION (and, for a frame-aligned pair, RANK_CORRELATION), else best."""
    shapes = fa.pixels.shape, fb.pixels.shape
    mirror = best.mirrored
    b, b_flat = _oriented(fb, mirror)
    forward = best.cover_a >= best.cover_b  # else a shows more than b (a rotated copy's
    # wedges, say): refine b's frame against a

    def refined(refine_with, enough: float = math.inf) -> tuple[float, np.ndarray | None]:
        if forward:
            w = refine_with(fa.pixels, b, best_m)
            return (_score(fa, fb, mirror, w, enough)[0] if w is not None and _plausible(w) else 0.0), w
        w_ba = refine_with(b, fa.pixels, cv2.invertAffineTransform(best_m))
        w = cv2.invertAffineTransform(w_ba) if w_ba is not None else None
        if w is None or not _plausible(w):
            return 0.0, w
        overlap = _overlap(b.shape, fa.pixels.shape, w_ba)
        bands = (None, None) if mirror else fb.bands  # (b's own, made once for the batch)
        return max(_correlate(b, fa.pixels, w_ba, bands[0], overlap)[0],
                   _correlate(b_flat, fa.flat, w_ba, bands[1], overlap)[0]), w

    if refined(_coarse_refine, COARSE_FLOOR)[0] < COARSE_FLOOR:  # (only whether it gets there counts)
        return best  # far from a copy even aligned at half size: the full refinement would not get there
    score, w = refined(_refine)
    if score >= REFINED_CORRELATION and (not framed or _ranked_under(fa, fb, mirror, w) >= RANK_CORRELATION):
        return _match(True, score, mirror, w, best.inliers, best.cover_a, best.cover_b, shapes)
    return best


def _ranked_under(fa: Features, fb: Features, mirror: bool, m: np.ndarray) -> float:
    """_ranked_common of a and b aligned by m: what a frame-aligned pair must also reach. Its
    deep equalisation (see _score) makes a fill (white corners of a turned canvas) and the other's
    crushed black one edge, and two different radiographs scored 0.89-0.91 on it alone."""
    b = _oriented(fb, mirror)[0]
    return _ranked_common(fa.pixels, b, _warp(b, m, fa.pixels.shape), _overlap(fa.pixels.shape, b.shape, m)[0])


def _frame_matrix(variant: int, shape_a: tuple[int, int], shape_b: tuple[int, int]) -> np.ndarray:
    """a -> (b mirrored if the variant says so) coordinates when a ~ T_v(b): the frames as unit
    squares (the hash ignores their aspect), turned back k quarter turns."""
    (ha, wa), (hb, wb) = shape_a, shape_b
    to_unit = np.diag([1 / max(wa - 1, 1), 1 / max(ha - 1, 1), 1.0])
    quarter = np.array([[0.0, -1.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # (u, v) -> (1 - v, u)
    from_unit = np.diag([wb - 1.0, hb - 1.0, 1.0])
    return (from_unit @ np.linalg.matrix_power(quarter, variant // 2) @ to_unit)[:2]


def _match(ok: bool, score: float, mirror: bool, m: np.ndarray, inliers: int, cover_a: float,
           cover_b: float, shapes: tuple) -> Match:
    """The Match for alignment m; shapes (a's, b's): its offset is measured."""
    phi = math.degrees(math.atan2(m[1, 0], m[0, 0]))
    beta = phi if mirror else -phi  # m maps a onto mirror^k(b); see the module docstring
    scale = math.sqrt(abs(np.linalg.det(m[:, :2])))
    return Match(ok, score, mirror, _wrap(beta), scale, inliers, cover_a, cover_b, _offset(m, *shapes))


def _wrap(deg: float) -> float:
    return (deg + 180.0) % 360.0 - 180.0


class Pair(NamedTuple):
    """A candidate pair to verify (row positions a < b) with what its hashes say (see verify)."""

    a: int
    b: int
    mirror: bool  # b is mirrored: trusted (verifying both ways would double the cost)
    frame: int | None  # a whole-frame hash's rotation/flip (a ~ T_v(b)), else None
    refine: bool  # a near miss gets a sub-pixel re-alignment
    tries: int = 1  # 2: the hash cannot tell a mirror, so b is tried both ways
    lone: bool = False  # verified only while one of the two groups is a lone picture (LONE_CHANNELS)
    kin: bool = False  # the two names share a root (curate.names): a weak link counts as in the rounds
    defer: bool = False  # a near miss is not refined yet (verify's defer; see DEFER)
    start: Match | None = None  # such a near miss (Match.pending): only its refinement is left to do


def _verify_batch(pairs: list[Pair]) -> list[Match]:
    """Verify pairs with the features map_files shared (see _verified_batch)."""
    return _verified_batch(pairs)[0]


def _verified_batch(pairs: list[Pair]) -> tuple[list[Match], dict[int, tuple]]:
    """Verify pairs with the features map_files shared, then drop the band-passed images the
    batch made, so a worker's memory stays flat however many files it meets (kept for every
    file, they took 0.3 GB per worker on 2,869 files). Also returns the keypoints the batch made
    ({row: (mirrored, plain)}: small, and each cost an ORB pass, the plain ones a decode too), for
    the caller to keep: a worker's own copies end with its round."""
    feats = shared()
    rows = {i for a, b, *_ in pairs for i in (a, b) if feats.get(i) is not None}
    had = {i: (feats[i]._mirrored is not None, len(feats[i]._plain or ())) for i in rows}
    out = []
    for p in pairs:
        fa, fb = feats.get(p.a), feats.get(p.b)
        out.append(_verify_pair(fa, fb, p))
    made = {}
    for i in rows:
        f = feats[i]
        f._bands = f._half = None
        if (f._mirrored is not None, len(f._plain or ())) != had[i]:
            made[i] = (f._mirrored, f._plain)
    return out, made


def verify_pairs(pairs: list[Pair], paths: list[str], *, workers: int | None = None,
                 progress: Progress | None = None, features: dict | None = None) -> list[Match]:
    """Verify pairs of files (row positions into `paths`) in batches of up to VERIFY_BATCH (in order:
    pairs of one file sit together), every worker holding all features from the start rather
    than receiving them with each batch. features: {row: Features} already made; otherwise
    they are made here first, in parallel. `progress` counts the pairs."""
    if not pairs:
        return []
    if isinstance(workers, Executor):
        return _verify_on_cluster(pairs, paths, workers, progress)
    if features is None:
        need = sorted({i for a, b, *_ in pairs for i in (a, b)})
        features = dict(zip(need, map_files(_features_of, [(paths[i], False) for i in need], workers=workers)))
    slots = workers if isinstance(workers, int) else default_workers()
    batches = _batches(pairs, slots)
    done = map_files(_verified_batch, batches, workers=workers, shared=features, chunk_size=1,
                     progress=scaled(progress, len(batches), len(pairs)))
    for _, made in done:  # keypoints a worker made, kept for later rounds (a worker's copies end with it)
        for i, (mirrored, plain) in made.items():
            f = features[i]
            if f._mirrored is None:
                f._mirrored = mirrored
            f._plain = {**(plain or {}), **(f._plain or {})}
    return [m for batch, _ in done for m in batch]


def _batches(pairs: list[Pair], slots: int) -> list[list[Pair]]:
    """The pairs in order, in batches of at most VERIFY_BATCH that shrink toward the end (what is
    left over twice the slots, at least 8): the workers take them in turn and finish a round
    together, rather than one waiting out the other's last full batch."""
    out, lo = [], 0
    while lo < len(pairs):
        size = max(8, min(VERIFY_BATCH, -(-(len(pairs) - lo) // (2 * slots))))
        out.append(pairs[lo:lo + size])
        lo += size
    return out


def _verify_on_cluster(pairs: list[Pair], paths: list[str], executor: Executor, progress) -> list[Match]:
    """On a cluster the workers read the files: each batch makes the features of its own files
    (pairs of one file sit together, so most are made once) and only pairs and matches travel,
    not every file's features (~100 KB each) to every worker."""
    batches = [pairs[lo:lo + VERIFY_BATCH] for lo in range(0, len(pairs), VERIFY_BATCH)]
    tasks = [(batch, {i: paths[i] for a, b, *_ in batch for i in (a, b)}) for batch in batches]
    done = map_files(_verify_batch_from_files, tasks, workers=executor, chunk_size=1,
                     progress=scaled(progress, len(tasks), len(pairs)))
    return [m for batch in done for m in batch]


def _verify_batch_from_files(task: tuple[list[Pair], dict[int, str]]) -> list[Match]:
    batch, files = task
    feats = {i: features(path) for i, path in files.items()}
    return [_verify_pair(feats[p.a], feats[p.b], p) for p in batch]


def _verify_pair(fa: Features | None, fb: Features | None, p: Pair) -> Match:
    """verify() as the pair asks; a kin pair (Pair.kin) that fails is tried again the other way
    round, b against a: verification is not symmetric (it warps b onto a's frame), and on the
    kaggle set a parent and child failed one way (0.55, and 0.0: no alignment) and passed the
    other (0.92, 0.91); then both ways as augmentation scripts turn and zoom (_centred_match)."""
    if fa is None or fb is None:
        return Match(False)
    if p.start is not None:  # a near miss the rounds put off refining (see DEFER)
        return _taken_up(fa, fb, p.start)
    m = verify(fa, fb, p.mirror, tries=p.tries, frame=p.frame, refine=p.refine, defer=p.defer)
    if m.ok or not p.kin:
        return m
    m = max(m, _turned_round(verify(fb, fa, p.mirror, tries=p.tries, frame=p.frame, refine=p.refine)),
            key=lambda x: x.score)
    for way in ("forth", "back"):  # then as augmentation makes copies (see LOG_POLAR)
        if m.ok:
            return m
        centred = _centred_match(fa, fb) if way == "forth" else _turned_round(_centred_match(fb, fa))
        m = max(m, centred, key=lambda x: x.score)
    return m


def _taken_up(fa: Features, fb: Features, start: Match) -> Match:
    """What verify(defer=False) gives a near miss it returned put off (`start`, its Match.pending):
    the affine alignments it left unscored are scored (one may pass as it is), then the best is refined."""
    framed, m, later = start.pending
    best, best_m = replace(start, pending=None), np.array(m).reshape(2, 3)
    shapes = fa.pixels.shape, fb.pixels.shape
    for mirror, m, inliers in later:
        m = np.array(m).reshape(2, 3)
        score, cover_a, cover_b = _score(fa, fb, mirror, m)
        if score > best.score:
            best, best_m = _match(score >= MIN_CORRELATION, score, mirror, m, inliers, cover_a, cover_b, shapes), m
            if best.ok:
                return best
    return _refined(fa, fb, best, best_m, framed)


def _turned_round(back: Match) -> Match:
    """The result of verifying b against a, as a -> b."""
    mirrored, beta = _inverse((int(back.mirrored), back.beta))
    return Match(back.ok, back.score, bool(mirrored), beta, 1.0 / back.scale if back.scale > 0 else back.scale,
                 back.inliers, back.cover_b, back.cover_a, back.offset)


# Kin pairs the keypoints cannot align (long thin bones on black, a chain's far members) are
# tried once more as augmentation scripts make copies: turned and zoomed about the frame centre,
# the turn and zoom read off the two images' log-polar maps about the centre (where they are
# shifts) by phase correlation, over LOG_POLAR bins of angle and of log radius. On the kaggle
# set (seeds 1, 3, 61, 67) the 12 parent/child pairs that fragments of one radiograph split on
# scored 0.0-0.77 on keypoints and 0.88-0.98 on the true pose; this pose found 11 (0.88-0.98).
# Seed 107's two (darkened 16-17 grey levels, gamma 1.23-1.25: 0.92, 0.93 on the true pose) were
# found only on the flattened frames (then 0.88, 0.91).
LOG_POLAR = 256


def _log_polar(img: np.ndarray, radius: float) -> np.ndarray:
    h, w = img.shape
    return cv2.warpPolar(img.astype(np.float32), (LOG_POLAR, LOG_POLAR), ((w - 1) / 2, (h - 1) / 2), radius,
                         cv2.WARP_POLAR_LOG | cv2.INTER_LINEAR | cv2.WARP_FILL_OUTLIERS)


def _centred_match(fa: Features, fb: Features) -> Match:
    """b aligned onto a by a turn and zoom about the frame centres (each way mirrored or not),
    read off log-polar maps of the band-passed frames out to the inscribed circle and to the
    corners (the fill of a turned canvas sways one or the other), then of the flattened frames
    (a darkened copy's band is mostly noise), refined (ECC) if short of REFINED_CORRELATION,
    which it must reach: it is not a keypoint alignment (see verify). The first that does."""
    best = Match(False)
    (ha, wa), window = fa.pixels.shape, cv2.createHanningWindow((LOG_POLAR, LOG_POLAR), cv2.CV_32F)
    full = math.hypot(ha, wa) / 2
    band_b = {False: fb.bands[0]}  # b's band-pass, mirrored made when first asked (both radii use it)
    for radius, flat in ((min(ha, wa) / 2, False), (full, False), (full, True)):
        polar_a = _log_polar(fa.flat if flat else fa.bands[0], radius)
        for mirror in (False, True):
            b, b_flat = _oriented(fb, mirror)
            if not flat and mirror not in band_b:
                band_b[mirror] = _band(b)
            (dx, dy), _ = cv2.phaseCorrelate(_log_polar(b_flat if flat else band_b[mirror], radius), polar_a, window)
            angle, zoom = -dy * 360.0 / LOG_POLAR, math.exp(dx * math.log(radius) / LOG_POLAR)
            (hb, wb) = b.shape
            to_a = cv2.getRotationMatrix2D(((wb - 1) / 2, (hb - 1) / 2), angle, zoom)  # b -> a, centre on centre
            to_a[:, 2] += ((wa - wb) / 2, (ha - hb) / 2)
            m = cv2.invertAffineTransform(to_a)
            if not _plausible(m):
                continue
            score, cover_a, cover_b = _score(fa, fb, mirror, m)
            if REFINE_FLOOR <= score < REFINED_CORRELATION:
                w = _refine(fa.pixels, b, m)
                if w is not None and _plausible(w):
                    refined, cover_a2, cover_b2 = _score(fa, fb, mirror, w)
                    if refined > score:
                        score, m, cover_a, cover_b = refined, w, cover_a2, cover_b2
            if score > best.score:
                best = _match(score >= REFINED_CORRELATION, score, mirror, m, 0, cover_a, cover_b,
                              (fa.pixels.shape, b.shape))
                if best.ok:
                    return best
    return best


# ---- candidates ------------------------------------------------------------------------------


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
    variant = np.where(a > b, _INVERSE_VARIANT[variant], variant)
    return pd.DataFrame({"a": np.minimum(a, b), "b": np.maximum(a, b), "dist": dist, "variant": variant,
                         "channel": channel})


# the inverse of variant v = 2k + m (mirror if m, then k quarter turns): a mirrored one is its own
# inverse (a mirror, turned, mirrored again, turns back); a plain turn by k is undone by 4 - k
_INVERSE_VARIANT = np.array([v if v % 2 else 2 * ((4 - v // 2) % 4) for v in range(8)])


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
    return a, b, d, _INVERSE_VARIANT[var]  # the query's variant: T_v(a) ~ b, so a ~ T_v^-1(b)


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
        """The pair's result as verified before, as a Pair asks (kin: both ways, see _verify_pair;
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

# A transform (m, beta): x -> rotate(mirror^m(x), beta). Composition and inverse.


def _compose(t1: tuple[int, float], t2: tuple[int, float]) -> tuple[int, float]:
    """t1 after t2."""
    (m1, b1), (m2, b2) = t1, t2
    return m1 ^ m2, _wrap(b1 + (-b2 if m1 else b2))


def _inverse(t: tuple[int, float]) -> tuple[int, float]:
    m, b = t
    return (m, b) if m else (0, _wrap(-b))


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
        t = _compose(_inverse(self.t[b]), _compose(t_ab, self.t[a]))
        if len(self.members[gb]) > len(self.members[ga]):  # the smaller group moves
            ga, gb, t = gb, ga, _inverse(t)
        self.join(ga, gb, t)
        return True

    def join(self, ga: int, gb: int, t_ab: tuple[int, float]) -> None:
        """Join group gb into ga given the transform core(ga) -> core(gb)."""
        ca, cb = self.core[ga], self.core[gb]
        for x in self.members[gb]:
            self.t[x] = _compose(self.t[x], t_ab)  # core_a -> core_b -> x
            self.group_of[x] = ga
        self.members[ga] += self.members.pop(gb)
        self.pictures[ga] += self.pictures.pop(gb)
        del self.core[gb]
        if self.better(cb, ca):  # the better core leads: re-express transforms from it
            inv = _inverse(self.t[cb])
            for x in self.members[ga]:
                self.t[x] = _compose(self.t[x], inv)
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


# ---- the representative: the member the others were derived from ------------------------------

# Making a copy leaves traces the original lacks: a turn, rescale, squash or zoom resamples it
# (its finest detail fades against the next coarser level), a turn's or shift's fill and a
# crushed tone add black, a tone change moves its grey range off the dataset's usual one. Each
# member's cost counts these against the least marked member of its group, in units:
RESAMPLED_UNIT = math.log(1 / 0.9)  # 10% less fine detail (plain copies differ by < 5%)
FILL_UNIT, FILL_SLACK = 0.02, 0.01  # share of the frame more at black (JPEG noise moves ~0.3%)
TONE_UNIT, TONE_SLACK = 8.0, 6.0  # grey levels further from the dataset's usual black and white
# Members within this cost of the least marked one are equally plausible originals (a copy
# re-saved at a higher JPEG quality gains fine noise and looks up to ~7% sharper than its
# original): how they were saved decides, then the pose the marked (derived) copies share.
CANDIDATE_SLACK = 1.0
DERIVED_COST = 1.0  # a member at least this much above the least marked one is a derived copy
USUAL_FLOOR = 0.05  # an encoding rarer than this among files without copies is as unusual as one never seen
TONE_GAIN = 1.1  # the most a tone change alone sharpens a file (fine detail, ratio; see _derivation)
TRACE_SIDE = 2048  # px: traces are measured at the file's own resolution, up to this side


def traces(path: str) -> tuple[float, float, float, float, float] | None:
    """(fine detail, black share, grey levels at 2% and 98%, white share) of one file at its
    own resolution; None when it does not decode. Fine detail: mean |Laplacian| over the same
    of the half-size image (resampling blurs the finest level first). Black and white: the
    shares at the darkest and brightest level (a fill, a clipped tone); the grey levels are
    those of the other pixels, so a fill (or the JPEG ringing along its edge) does not move them."""
    try:
        pixels = decode(path, max_side=TRACE_SIDE).pixels
    except Exception:
        return None
    return _traces(pixels)


def _traces(pixels: np.ndarray) -> tuple[float, float, float, float, float] | None:
    """traces() of a file's pixels decoded at TRACE_SIDE."""
    if min(pixels.shape) < 16:
        return None
    f = pixels.astype(np.float32)
    fine = float(np.abs(cv2.Laplacian(f, cv2.CV_32F, ksize=1)).mean())
    coarse = float(np.abs(cv2.Laplacian(cv2.pyrDown(f), cv2.CV_32F, ksize=1)).mean())
    # from the histogram: no full-size masks, no sort of the other pixels (a third of the time)
    hist = np.bincount(pixels.ravel(), minlength=256)
    levels = np.flatnonzero(hist)
    darkest, brightest = hist[levels[0]] / pixels.size, hist[levels[-1]] / pixels.size
    hist[levels[[0, -1]]] = 0
    lo, hi = _percentiles(hist, (2, 98)) if hist.any() else (0.0, 0.0)
    return fine / max(coarse, 1e-6), float(darkest), float(lo), float(hi), float(brightest)


def _percentiles(hist: np.ndarray, qs) -> tuple[float, ...]:
    """np.percentile of the grey levels a 256-bin histogram counts, exactly: a percentile whose
    neighbouring sorted values are one level is that level; otherwise numpy on the levels."""
    n, ends = int(hist.sum()), np.cumsum(hist)
    out = []
    for q in qs:
        at = (n - 1) * q / 100  # (numpy's own position may differ from this by rounding: +-1 is checked)
        first, last = np.searchsorted(ends, [max(int(at) - 1, 0), min(int(at) + 2, n - 1)], side="right")
        if first != last:
            return tuple(float(v) for v in np.percentile(np.repeat(np.arange(256, dtype=np.uint8), hist), qs))
        out.append(float(first))
    return tuple(out)


def encoding(path: str) -> str:
    """How a file was saved (format, mode, JPEG subsampling and quantisation tables), from its
    header: a copy re-saved by an augmentation script is usually saved unlike the dataset's
    own files."""
    from PIL import Image, JpegImagePlugin

    try:
        with Image.open(path) as im:
            tables = getattr(im, "quantization", None) or {}
            sampling = JpegImagePlugin.get_sampling(im) if im.format == "JPEG" else -1
            return f"{im.format}|{im.mode}|{sampling}|{sorted((k, list(v)) for k, v in tables.items())}"
    except Exception:
        return ""


def _usual_encodings(table: pd.DataFrame, paths: list[str], groups: _Groups, workers=None) -> tuple[list[str], dict]:
    """Each file's encoding() and how common each encoding is among the files without copies
    (untouched originals, mostly), as a share; among all files when few have no copies."""
    ok = (table["hash_status"] == "ok").to_numpy() if "hash_status" in table else np.ones(len(paths), bool)
    read = iter(map_files(encoding, [p for p, good in zip(paths, ok) if good], workers=workers))  # headers only
    codes = [next(read) if good else "" for good in ok]
    alone = [codes[ms[0]] for ms in groups.members.values() if len(ms) == 1 and codes[ms[0]]]
    pool = alone if len(alone) >= 20 else [c for c in codes if c]
    counts = pd.Series(pool, dtype=object).value_counts(normalize=True).to_dict() if pool else {}
    return codes, counts


def _traces_of(table: pd.DataFrame, paths: list[str], rows: list[int], *, workers=None, cache_dir=None,
               known: dict | None = None) -> list:
    """traces() of the given rows, from the cache where a file is unchanged, else from `known`
    ({row: traces} that features() made), else made here."""
    cache, keys, out = None, {}, {}
    if cache_dir is not None and "size" in table and "mtime_ns" in table:
        from curate.cache import FileCache

        cache = FileCache(Path(cache_dir) / f"traces-v{TRACES_VERSION}.npz")
        sizes, mtimes = table["size"].tolist(), table["mtime_ns"].tolist()  # (a column lookup per row: 0.2 s on kaggle10k)
        for i in rows:
            keys[i] = (paths[i], int(sizes[i]), int(mtimes[i]))
            hit = cache.get(*keys[i])
            if hit is not None:
                out[i] = None if not hit["ok"] else (hit["fine"], hit["black"], hit["lo"], hit["hi"], hit["white"])
    todo = [i for i in rows if i not in out]
    known = {i: known[i] for i in todo if i in (known or {})}
    made = [i for i in todo if i not in known]
    fresh = {**known, **dict(zip(made, map_files(traces, [paths[i] for i in made], workers=workers)))}
    for i, tr in fresh.items():
        out[i] = tr
        if cache is not None:
            fine, black, lo, hi, white = tr or (0.0,) * 5
            cache.put(*keys[i], {"ok": tr is not None, "fine": fine, "black": black, "lo": lo, "hi": hi, "white": white})
    if cache is not None and todo:
        cache.save()
    return [out[i] for i in rows]


TRACES_VERSION = "4"  # bump when traces() changes meaning


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
    encoding() and its share (see _usual_encodings): black and white shares are compared only
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
        inv = _inverse(t[c])
        return sum(1 for x in derived if _near_pose(_compose(t[x], inv)))

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


# A turn or zoom on a canvas of the same size leaves fill beyond the turned frame (a constant,
# or the edge pixel repeated) where its source had anatomy. Between two candidates of one size,
# the one whose pixels beyond the other's frame, as the verified turn and scale put it, are fill
# (and not the other way round) is a copy of the other.
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
        beta = _compose(t[d], _inverse(t[c]))[1]  # c -> d (the sign a mirror leaves open is tried both ways)
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


# Resampling (a turn, a zoom) blurs: put on one geometry, the copy has less fine detail than
# the file it was made from. Two members are each warped onto the other's frame by the verified
# turn and scale (refined by ECC when they do not yet line up) and their fine detail compared
# over the part both show, in both frames (our own warp's blur then counts for each once), as
# the contrast-free ratio of the finest level to the next. On five kaggle sets (6,343 original
# vs copy pairs that line up) the original had more in 99.7% (log ratio, median 0.16-0.19);
# the other way round by up to 0.12 (a copy whose lifted tone makes its noise look like detail).
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
            inside &= _off_extremes(img, ref)
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
    off = abs(_wrap(deg) - 90 * round(_wrap(deg) / 90))
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
        keep = inside * _off_extremes(img, ref) * _off_extremes(other, other_ref)
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
    return t[0] == 0 and abs(_wrap(t[1])) < 45.0


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
    _verify_pair), those the rounds verified one way and failed included; asked: the results as
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
    stage = key = None
    if cache_dir is not None:  # nothing changed since the last run (files, table, code): its result
        from curate import hashing, imageio, index, names, resave
        from curate.cache import StageCache, source_digest, table_digest

        stage = StageCache(cache_dir, "dups")
        key = table_digest(table, str(root), source_digest(sys.modules[__name__], hashing, imageio, index, names, resave))
        hit = stage.get(key, table, DUP_COLUMNS)
        if hit is not None:
            if progress:
                progress(n)
            return hit
    paths = [str(root / p) for p in table["path"]]
    pairs = candidate_pairs(table, workers=workers)
    cache = _PairCache(cache_dir, table, paths) if cache_dir is not None else None

    # exact and pixel-identical files need no verification: each set is one picture (its
    # first file stands for it), so only pairs between pictures are verified
    trivial = pairs["channel"].isin(["sha256", "pixel_hash"]).to_numpy()
    verified: dict[tuple[int, int], Match] = {}
    picture = list(range(n))
    for a, b in pairs.loc[trivial, ["a", "b"]].itertuples(index=False):
        verified[(a, b)] = Match(True, 1.0, False, 0.0, 1.0, 0, 1.0, 1.0)
        picture[b] = picture[a] = min(picture[a], picture[b])
    for i in range(n):  # (pixel sets hold the byte sets: one pass settles every chain)
        picture[i] = picture[picture[i]]
    todo = pairs[~trivial].assign(a=lambda d: [picture[i] for i in d["a"]], b=lambda d: [picture[i] for i in d["b"]])
    todo = todo[todo["a"] != todo["b"]]
    swap = todo["a"] > todo["b"]  # a picture's stand-in may sit after its partner
    todo = todo.assign(a=np.where(swap, todo["b"], todo["a"]), b=np.where(swap, todo["a"], todo["b"]),
                       variant=np.where(swap, _INVERSE_VARIANT[todo["variant"].to_numpy(int)], todo["variant"]))
    # strongest first: the earlier channel, then the nearer hashes (kept in that order below)
    rank = todo["channel"].map({c: i for i, c in enumerate(CHANNELS)})
    todo = todo.assign(rank=rank).sort_values(["rank", "dist", "a", "b"], kind="stable").drop_duplicates(["a", "b"])
    frames = todo["channel"].isin(FRAME_CHANNELS).to_numpy()
    refine = ~todo["channel"].isin(NO_REFINE_CHANNELS).to_numpy()
    tries = np.where(todo["channel"] == "ring", 2, 1)  # (a ring hash cannot tell a mirror)
    lone = todo["channel"].isin(LONE_CHANNELS).to_numpy()
    items = [Pair(int(a), int(b), bool(v % 2), int(v) if f else None, bool(r), int(t), bool(o), defer=DEFER and bool(r))
             for a, b, v, f, r, t, o in zip(todo["a"], todo["b"], todo["variant"], frames, refine, tries, lone)]

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
    small = _small(table)  # (their features make their traces too)
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
            feats.update(zip(new, map_files(_features_of, [(paths[i], bool(small[i])) for i in new],
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
    kin: dict[tuple[str, str], list[int]] = {}  # names.families: (label, root) -> its groups
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
    weak.sort(key=lambda e: (-e[0], e[1], e[2]))
    for score, a, b in weak:  # a weak link with a family name and one label (see KIN_JOINS)
        family = kin.get((label[a], chains[a][0]), ()) if KIN_JOINS and kin else ()
        if (family and chains[a][0] == chains[b][0] and label[a] == label[b]
                and (len(family) <= NAME_GROUPS or kinship(chains[a], chains[b]) > 0)):
            groups.link(a, b, _transform(verified, a, b))
    for score, a, b in weak:
        groups.link(a, b, _transform(verified, a, b), strong=False)
    if progress and shown < n:
        progress(n - shown)
    if cache is not None:
        cache.save(asked)
    grouped = sorted(x for ms in groups.members.values() if len(ms) > 1 for x in ms)
    featured = {i: f.traces for i, f in (feats or {}).items() if f is not None and f.traces is not None}
    found = _traces_of(table, paths, grouped, workers=workers, cache_dir=cache_dir, known=featured)
    codes, share = _usual_encodings(table, paths, groups, workers=workers)
    usual = [share.get(c, 0.0) if share.get(c, 0.0) >= USUAL_FLOOR else 0.0 for c in codes]
    out = _label_groups(table, groups, verified, quality, dict(zip(grouped, found)), usual, codes, paths,
                        workers=workers)
    if stage is not None:
        stage.put(key, out, DUP_COLUMNS)
    return out


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
    return t if a < b else _inverse(t)


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


def _group_root(task: tuple) -> int:
    """_root of one group in a worker: (members, transforms, cost, plain quality, usual, marks,
    content scales, detail, paths or None) -> its representative. The fill and detail tests
    decode members at FRAME_SIDE, each once; the re-save test reads their JPEG tables."""
    members, t, cost, plain, usual, marks, scales, detail, paths = task
    framed = aligned = None
    if paths is not None:
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
            m, beta = _compose(t[d], _inverse(t[c]))  # c -> d
            return aligned_detail(pc, pd_, bool(m), beta, scales[d] / scales[c])

        def resaved(x: int, c: int) -> float | None:
            pose = lossless(*_compose(t[c], _inverse(t[x])))  # x -> c
            return resave_gap(paths[x], paths[c], *pose) if pose is not None else None  # (it checks the frame)
    else:
        resaved = None
    return _root(members, t, cost, plain, usual, marks, framed, aligned, detail, resaved)


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
    multi = [ms for ms in groups.members.values() if len(ms) > 1]
    norm, centre = _tone_norm(traces, multi, codes, usual)
    plain = _plain_quality(quality)
    path_list = table["path"].tolist()
    ordered = sorted(groups.members.values(), key=lambda ms: min(path_list[i] for i in ms))
    edges = _scale_edges(verified)
    # each group's representative: the image work (fill and detail tests) in the workers
    tasks = []
    for members in ordered:
        t = {x: groups.t[x] for x in members}
        cost, marks = _derivation(members, traces, norm, centre, codes, usual)
        scales = _content_scales(members, edges)
        detail = {x: traces[x][0] for x in members if traces.get(x) is not None}
        tasks.append((members, t, cost, {x: plain[x] for x in members}, {x: usual[x] for x in members}, marks,
                      scales, detail, {x: paths[x] for x in members} if paths is not None else None))
    heavy = [k for k, task in enumerate(tasks) if len(task[0]) > 1]  # a lone file is its own representative
    roots = {k: tasks[k][0][0] for k in range(len(tasks))}
    roots.update(zip(heavy, map_files(_group_root, [tasks[k] for k in heavy], workers=workers)))
    for gid, (members, t, cost, _, _, marks, scales, _, _) in enumerate(tasks, start=1):
        rep = roots[gid - 1]
        for x in members:
            derived[x] = marks[x]
        # the kept file's marks are against itself: none. Its own turn wedges (orient) say when
        # it is a copy kept for want of an original (black shares and grey ranges of FracAtlas's
        # own originals vary too widely to say so: 26 of its 124 kept files would be flagged)
        derived[rep] = ""
        content_scale[members] = _scales_to(members, rep, scales)
        inv_rep = _inverse(t[rep])
        for x in members:
            group_id[x] = gid
            m, beta = _compose(t[x], inv_rep)  # rep -> x
            dup = -beta if not m else beta  # undo: un-mirror, then rotate by dup
            angle[x] = round(_wrap(dup), 1) + 0.0
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


def _scales_to(members: list[int], rep: int, scales: dict) -> list[float]:
    """Each member's content scale against the representative (> 1: it shows the picture
    larger, so less of it: zoomed in or cut), NaN where no verified pair links it; orient
    tells a cut copy from the member it was cut from by it. scales: _content_scales."""
    ref = scales.get(rep)
    return [scales[x] / ref if ref and x in scales else float("nan") for x in members]


def _same_pose(t: tuple[int, float]) -> bool:
    return t[0] == 0 and abs(_wrap(t[1])) < 2.0


def _describe(m: int, beta: float) -> str:
    """'re-encoded', 'rotated 90', 'rotated -17°', 'mirrored', 'mirrored+rotated 90', ..."""
    parts = ["mirrored"] if m else []
    b = _wrap(beta)
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
