"""Verification of one candidate pair on its pixels, and of many pairs on the workers.

Radiographs look alike to any global hash, so every pair is checked on the images: ORB
keypoints on the anatomy (not the background noise) of both images (the second also mirrored),
ratio-tested matches, RANSAC on a similarity (then a general affine, for squashed copies; and
when that finds nothing, again on looser matches that agree on how much the keypoints turned:
resampled copies blur descriptors), then the second image is warped onto the first and the two
must correlate on their common area (band-passed detail, on two equalisations so tone changes
and clipped backgrounds do not matter). A pair that nearly makes it is aligned again to
sub-pixel precision (ECC) and must then correlate higher still (not a pair only the shift/zoom
windows proposed). A pair aligned by a turn or zoom about the frame centres that falls short is
scored again on the common area alone (a fixed canvas's fill beyond the turned frame rings into
the band-pass). A copy crushed mostly to black, where ORB finds nothing, is aligned by its
whole-frame hash's rotation/flip and must correlate as a refined pair must, aligned so or
refined. This gives the angle, scale and mirror between the two. A mostly black frame that
gives no alignment tries keypoints on its own grey levels (Features.plain_keypoints). Kin pairs
(names say so) that still fail are tried both ways and as augmentation turns and zooms
(_centred_match, on log-polar maps).

Geometry convention (as in curate.messy): a transform (m, beta) is x -> rotate(mirror^m(x), beta),
mirror first, angles counter-clockwise; Match.beta is b = rotate(mirror^m(a), beta).
"""

from __future__ import annotations

import functools
import math
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import cv2
import numpy as np
import pandas as pd

from curate.candidates import CLIPPED
from curate.errors import ImageError
from curate.hashing import equalise, mid_ranks
from curate.imageio import decode, fit
from curate.parallel import Progress, default_workers, map_files, scaled, shared
from curate.traces import TRACE_SIDE, pixel_traces

# Each constant's history (sets, seeds, before/after): docs/dedup-constants.md.
VERIFY_SIDE = 192  # px: images are compared at this size (longest side)
ORB_FEATURES = 600  # keypoints per image (matching two images costs their product)
VERIFY_BATCH = 256  # pairs per task in verify_pairs (what a batch derives is dropped after it)
MIN_INLIERS = 12  # keypoint matches that agree on one transform
AFFINE_FLOOR = 8  # similarity inliers before the costlier affine is tried: copies' affines follow 11 or more
MIN_OVERLAP = 0.3  # share of the smaller image the two must have in common
MIN_CORRELATION = 0.78  # aligned detail on the keypoint alignment: second exposures reach 0.72-0.87
REFINED_CORRELATION = 0.86  # after a sub-pixel refinement, which also pulls look-alike anatomy together
FLAT_FLOOR = 0.35  # share of darkest pixels (background) flattened in Features.flat
REFINE_FLOOR = 0.3  # a keypoint alignment under this is not worth refining (refinements from 0.3-0.5 do land)
LOOSE_FLOOR = 0.6  # the same for an alignment found on the looser matches (see _turned_alike)
COARSE_FLOOR = 0.65  # a half-size refinement under this is not done in full (none reached the bar)
MERGE_CORRELATION = 0.88  # joins two groups of copies: two exposures of one patient pass as a pair at 0.78-0.87
CENTRED = 0.01  # share of the side: an alignment this close to centre on centre is a turn or zoom about it
OFF_CENTRE = 0.03  # a strong pair moving the centres further apart is a shift: second exposures are framed so
RANK_CORRELATION = 0.92  # grey-level ranks on the common area: a tone change keeps them; centred exposures reach 0.86
GLANCE_MARGIN = 0.15  # a loose alignment whose half-size glance falls this short of LOOSE_FLOOR is not scored
# a second look (common area, ranks) under SECOND_GLANCE is taken only when its glance comes this close to its bar
SECOND_GLANCE, COMMON_MARGIN, RANK_MARGIN = 0.6, 0.2, 0.3
_ECC_CRITERIA = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 1e-3)
VERIFY_VERSION = "20"  # bump when verification changes meaning: cached pair results are then ignored (20: DEFER_AFFINE)
DEFER_AFFINE = True  # the rounds leave a near miss's affine unscored: scored only if its files are still apart


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
    traced: the file is under 2 * VERIFY_SIDE a side (small_rows), so libjpeg reduces neither its
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
        found.traces = pixel_traces(raw)
    return found


def features_of(item: tuple[str, bool]) -> Features | None:
    """features() of a (path, traced) item, for map_files (and under a name verify_pairs's
    `features` argument does not hide)."""
    return features(*item)


def small_rows(table: pd.DataFrame) -> np.ndarray:
    """True for each row whose image (as the audit measured it) is under 2 * VERIFY_SIDE a side: see features()."""
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


def off_extremes(img: np.ndarray, ref: np.ndarray) -> np.ndarray:
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
    keep = inside & off_extremes(a, a) & off_extremes(warped, b)
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
    return Match(ok, score, mirror, wrap(beta), scale, inliers, cover_a, cover_b, _offset(m, *shapes))


def wrap(deg: float) -> float:
    """The angle deg in [-180, 180)."""
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


def verify_batch(pairs: list[Pair]) -> list[Match]:
    """The pairs' Matches, verified with the features map_files shared (see _verified_batch)."""
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
        out.append(verify_pair(fa, fb, p))
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
        features = dict(zip(need, map_files(features_of, [(paths[i], False) for i in need], workers=workers)))
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
    return [verify_pair(feats[p.a], feats[p.b], p) for p in batch]


def verify_pair(fa: Features | None, fb: Features | None, p: Pair) -> Match:
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
    mirrored, beta = inverse((int(back.mirrored), back.beta))
    return Match(back.ok, back.score, bool(mirrored), beta, 1.0 / back.scale if back.scale > 0 else back.scale,
                 back.inliers, back.cover_b, back.cover_a, back.offset)


# kin pairs keypoints cannot align, tried as a turn and zoom about the centre: log-polar bins of angle and radius
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


# ---- poses ----------------------------------------------------------------------------------------

# A transform (m, beta): x -> rotate(mirror^m(x), beta). Composition and inverse.


def compose(t1: tuple[int, float], t2: tuple[int, float]) -> tuple[int, float]:
    """The transform t1 after t2."""
    (m1, b1), (m2, b2) = t1, t2
    return m1 ^ m2, wrap(b1 + (-b2 if m1 else b2))


def inverse(t: tuple[int, float]) -> tuple[int, float]:
    """The transform that undoes t."""
    m, b = t
    return (m, b) if m else (0, wrap(-b))
