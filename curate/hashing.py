"""Exact and perceptual hashes of every image, cached per file.

Per file, from ONE reduced-size decode:
- `sha256`: of the bytes (taken from the audit when it has run);
- `pixel_hash`: of the decoded pixels, so a lossless re-save (other container, stripped
  metadata) is recognised as the same picture;
- `phash`: a 64-bit DCT hash of the whole frame squeezed to 32x32. Bit (r, c) is the sign of
  DCT coefficient (r, c) of the rank-equalised image (so brightness, contrast and gamma do not
  move it). Mirroring an image negates the odd-frequency coefficients and transposing it
  transposes them, so the hashes of all 8 rotations/flips of the image are bit operations on
  this one number (`dihedral`), not 8 decodes;
- `thash`: the same of the frame without its flat edge strips (a shift's or a pad's fill);
- `rhash_0 .. rhash_{n-1}`: the arbitrary-angle channel. A disc around the frame centre is
  turned so its principal axis (second moments of the equalised intensities) is horizontal,
  then hashed like `phash`; a copy rotated by any angle about the centre then hashes like the
  original up to a 180-degree turn or a flip (covered by `dihedral` again). Rotated copies
  that grew their canvas show the original's disc at a smaller relative size, so the disc is
  hashed at a few radii (`DISC_SCALES`); `rhash_0` (the full inscribed disc) is what others
  are compared against; `ghash_*` the same discs turned by their dominant edge direction;
- `lhash_0 .. lhash_3`: the frame hashed like `phash` with its darkest 50, 65, 80 and 90%
  flattened (CLIP_FLOORS), for darkened copies whose background went black;
- `whash_0 .. whash_44`: shifted and zoomed windows (see WINDOWS), and `twhash`, the centred
  window of the frame without its flat edge strips (`thash`'s frame);
- `ring_0 .. ring_8`: a turn- and zoom-tolerant hash. The disc about the frame centre is
  sampled on log-spaced rings; each ring's Fourier magnitudes over its angle do not move when
  the image turns (or is mirrored) about the centre, and a zoom about the centre moves the
  rings along the log radius. The (ring x frequency) magnitudes are hashed like `phash`, on a
  window of RING_WINDOW rings moved by -4..+4 rings (`ring_4`, the middle one, is what the
  others are compared against): augmentation chains turn AND zoom each copy, which the disc
  hashes (deskewed by an axis a fill moves) miss;
- `dark_share`: the share of pixels at the darkest level (a clipped background, a fill).

The dedup stage uses these only to propose candidates; every pair is verified on pixels.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from curate.audit import sha256_of
from curate.cache import FileCache
from curate.errors import ImageError
from curate.imageio import decode
from curate.parallel import Progress, map_files

HASH_VERSION = "13"  # bump when a hash changes meaning: old caches are then ignored
HASH_SIDE = 128  # decode size (longest side): enough for 32x32 hashes, cheap to decode
DISC_SCALES = tuple(round(0.935 ** i, 3) for i in range(12))  # disc radii, 1.0 down to 0.48
RHASH_COLUMNS = tuple(f"rhash_{i}" for i in range(len(DISC_SCALES)))
GHASH_COLUMNS = tuple(f"ghash_{i}" for i in range(len(DISC_SCALES)))  # the same, edge-deskewed
# Shift/zoom channel: 32x32 windows of the frame squeezed to side x side. At side 40 (windows
# of 80% of the frame) moved by 0, +-5 and +-10% in x and y; at sides 36 and 44 (zoomed by 0.9
# and 1.1) moved by 0 and about +-6 / +-9%; at 38 and 42 centred. (side, window offsets in px).
# `whash_0` (side 40, centred) is what the others are compared against.
WINDOWS = ((40, (4, 0, 2, 6, 8)), (36, (2, 0, 4)), (44, (6, 2, 10)), (38, (3,)), (42, (5,)))
WHASH_COLUMNS = tuple(f"whash_{i}" for i in range(sum(len(offs) ** 2 for _, offs in WINDOWS)))
# Clipped tone changes: a darkened copy can have most of its background crushed to one black
# level, which moves `phash` (its ranks start above `equalise`'s 35% floor). The frame is hashed
# again with the darkest share flattened at each of these floors; a file whose black share is
# near one of them is compared there, where only the brightest pixels keep their ranks.
CLIP_FLOORS = (0.5, 0.65, 0.8, 0.9)
LHASH_COLUMNS = tuple(f"lhash_{i}" for i in range(len(CLIP_FLOORS)))
# Rings (see ring_hashes): RING_COUNT log-spaced radii from RING_RADII[0] to RING_RADII[1] of the
# shorter side (inside the disc a turn keeps and a zoom of 0.85 still fills), RING_ANGLES samples
# each, the first RING_FREQS Fourier magnitudes; windows of RING_WINDOW rings moved by up to
# RING_SHIFT rings (a ring apart is a zoom of about 8%; +-4: 0.72-1.37).
RING_COUNT, RING_RADII, RING_ANGLES, RING_FREQS, RING_WINDOW, RING_SHIFT = 24, (0.06, 0.42), 64, 8, 16, 4
# Each ring's samples are standardised (mean 0, sd 1; RING_SPREAD grey levels added to the sd so a
# flat ring stays flat) before its magnitudes are taken: a tone change (brightness, contrast, gamma)
# is close to linear along one ring. Ranking grey levels on a disc instead ranks them among other
# content once a copy is zoomed. Kaggle seed 1: parent/child pairs within RING_RADIUS 0.947 -> 0.975
# (seeds 3 and 29: 0.944 -> 0.971, 0.961 -> 0.981), pairs of two radiographs within it 567 -> 671;
# default seed 11 (FracAtlas bases): copy/original within it 0.849 -> 0.860, two radiographs 1252 -> 724.
RING_SPREAD = 1.0
RING_COLUMNS = tuple(f"ring_{i}" for i in range(2 * RING_SHIFT + 1))
HASH_COLUMNS = ("hash_status", "pixel_hash", "phash", "thash", *LHASH_COLUMNS, *RHASH_COLUMNS, *GHASH_COLUMNS,
                *WHASH_COLUMNS, "twhash", *RING_COLUMNS, "deskew_angle", "anisotropy", "dark_share")
# The candidate channels' many codes: in the table and the cache, but not in CSVs for people.
CHANNEL_COLUMNS = ("thash", *LHASH_COLUMNS, *RHASH_COLUMNS, *GHASH_COLUMNS, *WHASH_COLUMNS, "twhash", *RING_COLUMNS)

_U64 = np.uint64


# ---- the DCT sign hash and its 8 dihedral variants ------------------------------------------


def dct_hash(img32: np.ndarray) -> int:
    """64 bits: signs of the 8x8 lowest DCT frequencies (the DC bit is always 0)."""
    coef = cv2.dct(np.asarray(img32, dtype=np.float32))[:8, :8]
    bits = (coef > 0).ravel()
    bits[0] = False
    return int(np.packbits(bits[::-1]).view(">u8")[0])


def _variant_tables() -> tuple[np.ndarray, np.ndarray]:
    """For variant v = (mirror m, then k quarter turns CCW), v = 2*k + m: the source bit of each
    output bit and the bits whose sign flips."""
    perms, masks = [], []
    r, c = np.mgrid[0:8, 0:8]
    for k in range(4):
        for m in range(2):
            idx = r * 8 + c  # which coefficient of the original lands at each position
            sign = np.ones((8, 8), dtype=int)
            if m:  # left-right flip: coefficient (r, c) times (-1)^c
                sign = sign * np.where(c % 2, -1, 1)
            for _ in range(k):  # np.rot90 (CCW) = transpose, then flip up-down
                idx, sign = idx.T, sign.T
                sign = sign * np.where(r % 2, -1, 1)
            sign = sign.ravel().copy()
            sign[0] = 1  # the DC bit is constant
            perms.append(idx.ravel())
            masks.append(int(sum(1 << i for i in range(64) if sign[i] < 0)))
    return np.array(perms), np.array(masks, dtype=_U64)


_PERMS, _MASKS = _variant_tables()
VARIANT_NAMES = tuple(f"{'mirror+' if m else ''}rot{90 * k}" for k in range(4) for m in range(2))


def _byte_tables() -> np.ndarray:
    """(8 variants, 8 byte positions, 256 byte values) -> that byte's bits, moved."""
    tables = np.zeros((8, 8, 256), dtype=_U64)
    values = np.arange(256)
    for v in range(8):
        src_of = _PERMS[v]  # output bit p comes from input bit src_of[p]
        for p in range(64):
            src = int(src_of[p])
            on = (values >> (src % 8)) & 1
            tables[v, src // 8] |= (on.astype(_U64) << _U64(p))
    return tables


_BYTE_TABLES = _byte_tables()


def dihedral(codes: np.ndarray) -> np.ndarray:
    """(N,) uint64 hashes -> (N, 8) hashes of the 8 rotations/flips (column 0 = as is).

    Column v = 2*k + m is the hash of the image mirrored left-right if m, then turned k
    quarter turns counter-clockwise. Pure bit operations (byte look-up tables): no decode.
    """
    codes = np.ascontiguousarray(codes, dtype=_U64)
    as_bytes = codes.view(np.uint8).reshape(-1, 8)  # little-endian: byte j holds bits 8j..8j+7
    if codes.dtype.byteorder == ">":  # pragma: no cover - big-endian machines
        as_bytes = as_bytes[:, ::-1]
    out = np.empty((len(codes), 8), dtype=_U64)
    for v in range(8):
        acc = np.full(len(codes), _MASKS[v], dtype=_U64)
        for j in range(8):
            acc ^= _BYTE_TABLES[v, j][as_bytes[:, j]]
        out[:, v] = acc
    return out


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.bitwise_count(np.bitwise_xor(np.asarray(a, dtype=_U64), np.asarray(b, dtype=_U64)))


# ---- per-image features ----------------------------------------------------------------------


def equalise(pixels: np.ndarray, floor: float = 0.35, ranks: np.ndarray | None = None) -> np.ndarray:
    """Grey levels -> their mid-rank (0..1): brightness, contrast and gamma changes drop out.
    The darkest `floor` share of pixels (the background) all map to 0, so a copy whose dark
    levels were clipped together by a tone change still agrees with its original.
    ranks: mid_ranks(pixels), when the caller has them already."""
    ranks = mid_ranks(pixels) if ranks is None else ranks
    return cv2.LUT(pixels, _floor_lut(ranks, floor))  # = lut[pixels], faster


def _floor_lut(ranks: np.ndarray, floor) -> np.ndarray:
    """equalise's look-up table: mid-ranks with the darkest `floor` share flattened to 0 (with
    ranks[:, None] and an array of floors, one table per floor in the columns)."""
    return np.clip((ranks - floor) / (1.0 - floor), 0.0, 1.0).astype(np.float32)


def mid_ranks(pixels: np.ndarray) -> np.ndarray:
    """The mid-rank (0..1) of each of the 256 grey levels among the image's pixels."""
    hist = np.bincount(pixels.ravel(), minlength=256).astype(np.float64)
    return (np.cumsum(hist) - hist / 2) / max(hist.sum(), 1.0)


def _dct_rows(n: int = 32, k: int = 8) -> np.ndarray:
    """The first k DCT-II basis rows for n samples (cv2.dct's signs; scale does not matter)."""
    x = np.arange(n)
    return np.cos(np.pi * (2 * x[None, :] + 1) * np.arange(k)[:, None] / (2 * n)).astype(np.float32)


_DCT8 = _dct_rows()


def dct_hashes(stack: np.ndarray) -> np.ndarray:
    """dct_hash of each 32x32 image of a (K, 32, 32) stack, in one batched product -> (K,) uint64."""
    coef = _DCT8 @ np.asarray(stack, dtype=np.float32) @ _DCT8.T  # (K, 8, 8)
    bits = (coef.reshape(len(coef), 64) > 0)
    bits[:, 0] = False
    # bit p = flat coefficient p: 8 little-endian bytes per row are one uint64
    return np.packbits(bits, axis=1, bitorder="little").view("<u8")[:, 0].astype(_U64)


def window_hashes(eq: np.ndarray, windows=WINDOWS) -> np.ndarray:
    """WHASH_COLUMNS of an equalised image: shifted and zoomed 80% windows (see above)."""
    wins = []
    for side, offsets in windows:
        g = cv2.resize(eq, (side, side), interpolation=cv2.INTER_AREA)
        wins += [g[oy:oy + 32, ox:ox + 32] for oy in offsets for ox in offsets]
    return dct_hashes(np.stack(wins))


def centred_window_hash(eq: np.ndarray) -> int:
    """whash_0 alone: the centred 80% window (side 40, offset 4)."""
    side, (offset, *_) = WINDOWS[0]
    return int(window_hashes(eq, ((side, (offset,)),))[0])


def clip_hashes(pixels: np.ndarray, ranks: np.ndarray | None = None) -> np.ndarray:
    """LHASH_COLUMNS: the frame hashed like phash with its darkest CLIP_FLOORS flattened.
    The four equalisations are the channels of one image: one look-up, one resize.
    ranks: mid_ranks(pixels), when the caller has them already."""
    ranks = mid_ranks(pixels) if ranks is None else ranks
    luts = _floor_lut(ranks[:, None], np.asarray(CLIP_FLOORS))  # (256, floors)
    four = cv2.LUT(cv2.merge([pixels] * len(CLIP_FLOORS)), luts[:, None, :])
    small = cv2.resize(four, (32, 32), interpolation=cv2.INTER_AREA)
    return dct_hashes(np.moveaxis(small, 2, 0))


def trimmed(pixels: np.ndarray, tolerance: int = 4, most: float = 0.25) -> np.ndarray:
    """The frame without the flat strips along its edges (a shift's or a pad's fill: rows and
    columns whose grey levels span at most `tolerance`), at most `most` of each side."""
    h, w = pixels.shape

    def flat_run(lines: np.ndarray, limit: int) -> int:
        spans = lines[:limit].max(axis=1).astype(np.int16) - lines[:limit].min(axis=1)
        steep = np.flatnonzero(spans > tolerance)
        return int(steep[0]) if len(steep) else limit

    top, bottom = flat_run(pixels, int(h * most)), flat_run(pixels[::-1], int(h * most))
    left, right = flat_run(pixels.T, int(w * most)), flat_run(pixels.T[::-1], int(w * most))
    return pixels[top:h - bottom, left:w - right]


def frame_hash(eq: np.ndarray) -> int:
    """phash: the whole frame squeezed to 32x32 (aspect ratio dropped, so squashes agree)."""
    return dct_hash(cv2.resize(eq, (32, 32), interpolation=cv2.INTER_AREA))


def _disc_grid(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    cy = cx = (n - 1) / 2
    inside = (xx - cx) ** 2 + (yy - cy) ** 2 <= (n / 2 - 0.5) ** 2
    return xx - cx, yy - cy, inside


DISC_SAMPLES = 64  # each disc is sampled on this square grid for its moments, then turned to 32x32
_GX, _GY, _DISC_IN = _disc_grid(DISC_SAMPLES)
_DX32, _DY32, _DISC32 = _disc_grid(32)
_OUTSIDE = int((~_DISC_IN).sum())  # samples of a patch outside its disc
# the disc without its rim, where the cut-off itself would look like an edge
_DISC_RIM_FREE = cv2.erode(_DISC_IN.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(np.float32)
# raw moments 1, x, y, xx, yy, xy of a patch: one matrix product for all scales
_MOMENTS = np.stack([np.ones_like(_GX), _GX, _GY, _GX * _GX, _GY * _GY, _GX * _GY]).reshape(6, -1).T


@lru_cache(maxsize=64)
def _disc_maps(h: int, w: int, scales: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    """cv2.remap maps that sample every scale's disc on the DISC_SAMPLES grid in one call (rows
    i*DISC_SAMPLES.. are scale i); samples outside the disc read the zero border. Cached per
    image shape."""
    step = np.asarray(scales, dtype=np.float64)[:, None, None] * (min(h, w) / DISC_SAMPLES)
    mx, my = (w - 1) / 2 + _GX[None] * step, (h - 1) / 2 + _GY[None] * step
    mx[:, ~_DISC_IN] = my[:, ~_DISC_IN] = -100.0
    shape = (len(scales) * DISC_SAMPLES, DISC_SAMPLES)
    return mx.reshape(shape).astype(np.float32), my.reshape(shape).astype(np.float32)


def _equalise_masked(patches: np.ndarray) -> np.ndarray:
    """Rank-equalise each disc of a stack of K patches (0 outside the disc) using only the
    pixels inside it, so whatever lies outside (a rotated copy's border fill, say) cannot
    change the ranks inside. One bincount for all K histograms (bins offset by 256 per disc)."""
    k = len(patches) // DISC_SAMPLES
    idx = patches.reshape(k, -1) + (np.arange(k, dtype=np.uint16) * 256)[:, None]
    hist = np.bincount(idx.ravel(), minlength=k * 256).reshape(k, 256)
    hist[:, 0] -= _OUTSIDE  # the zeros outside the disc do not count
    cdf = np.cumsum(hist, axis=1, dtype=np.float64)
    lut = (cdf - cdf[:, :1]) / np.maximum(cdf[:, -1:] - cdf[:, :1], 1.0)
    return np.take(lut.astype(np.float32).ravel(), idx).reshape(patches.shape)  # lut[0] = 0 outside


def disc_hashes(pixels: np.ndarray, scales=DISC_SCALES) -> tuple[list[int], list[int], float, float]:
    """Deskewed disc hashes at each scale, turned two ways: by the principal axis of the
    intensities (rhash) and by the dominant edge direction (ghash; steadier on near-round
    content, where the principal axis wanders). Plus the intensity angle and anisotropy at
    scale 1. All scales at once: one remap samples the discs, one product gives their moments,
    one remap turns them, one batched DCT hashes them."""
    h, w = pixels.shape
    n, size = len(scales), DISC_SAMPLES
    # samples of each disc, unrotated, for the moments (0 outside the disc)
    patches = cv2.remap(pixels, *_disc_maps(h, w, tuple(scales)), cv2.INTER_LINEAR)
    wgt = _equalise_masked(patches)  # (n * size, size)
    m = (wgt.reshape(n, size * size) @ _MOMENTS).astype(np.float64)
    mass = np.where(m[:, 0] == 0, 1.0, m[:, 0])
    mx, my = m[:, 1] / mass, m[:, 2] / mass
    mu20, mu02, mu11 = m[:, 3] - mass * mx * mx, m[:, 4] - mass * my * my, m[:, 5] - mass * mx * my
    # angle of the principal axis, in degrees CCW as seen on screen (y points down)
    theta = -0.5 * np.degrees(np.arctan2(2 * mu11, mu20 - mu02))
    spread = np.hypot(mu20 - mu02, 2 * mu11) / np.maximum(mu20 + mu02, 1e-9)
    # the dominant edge direction: structure tensor of the smoothed disc, inside its rim
    smooth = cv2.GaussianBlur(wgt, (0, 0), 1.5).reshape(n, size, size)
    jxx, jyy, jxy = _rim_free_tensor(*_gradient(smooth))
    theta_g = -0.5 * np.degrees(np.arctan2(2 * jxy, jxx - jyy))
    hashes = _turned_hashes(wgt, np.concatenate([theta, theta_g])).tolist()  # both turns in one remap
    return hashes[:n], hashes[n:], float(theta[0]), float(spread[0])


def _gradient(stack: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """np.gradient(stack, axis=(1, 2)) of a (K, h, w) float32 stack, the same arithmetic without
    its general-purpose set-up (a sixth of the disc hashes' cost on 224 px files): central
    differences inside, one-sided at the edges."""
    gy, gx = np.empty_like(stack), np.empty_like(stack)
    gy[:, 1:-1] = (stack[:, 2:] - stack[:, :-2]) / 2.0
    gy[:, 0], gy[:, -1] = stack[:, 1] - stack[:, 0], stack[:, -1] - stack[:, -2]
    gx[:, :, 1:-1] = (stack[:, :, 2:] - stack[:, :, :-2]) / 2.0
    gx[:, :, 0], gx[:, :, -1] = stack[:, :, 1] - stack[:, :, 0], stack[:, :, -1] - stack[:, :, -2]
    return gy, gx


def _rim_free_tensor(gy: np.ndarray, gx: np.ndarray) -> list[np.ndarray]:
    """Per disc, the sums of gx*gx, gy*gy and gx*gy inside the disc's rim (the structure tensor),
    each product made in one reused buffer."""
    buf = np.empty_like(gx)
    sums = []
    for a, b in ((gx, gx), (gy, gy), (gx, gy)):
        np.multiply(a, b, out=buf)
        buf *= _DISC_RIM_FREE
        sums.append(buf.sum(axis=(1, 2)))
    return sums


def _turned_hashes(wgt: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Turn disc i % n of the stack of n discs by -theta[i], straight to 32x32, and hash it
    (theta: one or more angles per disc, all in one remap): output offset d from the centre
    samples the disc at (size / 32) R(-theta) d, in the disc's rows."""
    k, size = len(theta), DISC_SAMPLES
    disc = np.arange(k) % (len(wgt) // size)
    c = (size / 32 * np.cos(np.radians(theta))).astype(np.float32)[:, None, None]
    s = (size / 32 * np.sin(np.radians(-theta))).astype(np.float32)[:, None, None]
    mid = np.float32((size - 1) / 2)
    sx = c * _DX32  # = c * _DX32 - s * _DY32 + mid, in place (the same float32 steps)
    sx -= s * _DY32
    sx += mid
    sy = s * _DX32  # = s * _DX32 + c * _DY32 + the disc's centre row
    sy += c * _DY32
    sy += (disc.astype(np.float32) * size + mid)[:, None, None]
    small = cv2.remap(wgt, sx.reshape(k * 32, 32), sy.reshape(k * 32, 32), cv2.INTER_LINEAR)
    return dct_hashes(small.reshape(k, 32, 32) * _DISC32)


@lru_cache(maxsize=64)
def _ring_maps(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """cv2.remap maps sampling the rings (RING_COUNT x RING_ANGLES) of an h x w frame. Cached per image shape."""
    side = min(h, w)
    lo, hi = RING_RADII
    radii = side * lo * (hi / lo) ** (np.arange(RING_COUNT) / (RING_COUNT - 1))
    theta = np.arange(RING_ANGLES) * 2 * np.pi / RING_ANGLES
    mx = ((w - 1) / 2 + radii[:, None] * np.cos(theta)[None]).astype(np.float32)
    my = ((h - 1) / 2 + radii[:, None] * np.sin(theta)[None]).astype(np.float32)
    return mx, my


def ring_hashes(pixels: np.ndarray) -> list[int]:
    """The ring hashes (RING_COLUMNS) of a greyscale frame: see the module docstring."""
    mx, my = _ring_maps(*pixels.shape)
    rings = cv2.remap(cv2.GaussianBlur(pixels.astype(np.float32), (0, 0), 1.0), mx, my, cv2.INTER_LINEAR)
    rings = (rings - rings.mean(axis=1, keepdims=True)) / (rings.std(axis=1, keepdims=True) + RING_SPREAD)
    mags = np.log1p(np.abs(np.fft.rfft(rings, axis=1))[:, :RING_FREQS] * (20 / RING_ANGLES)).astype(np.float32)
    stack = np.stack([mags[s:s + RING_WINDOW] for s in range(2 * RING_SHIFT + 1)])
    coef = np.stack([cv2.dct(x)[:8, :8] for x in stack]).reshape(len(stack), 64) > 0
    coef[:, 0] = False
    return [int(v) for v in np.packbits(coef[:, ::-1], axis=1).view(">u8")[:, 0]]


def pixel_hash(pixels: np.ndarray) -> str:
    return hashlib.blake2b(pixels.tobytes() + repr(pixels.shape).encode(), digest_size=8).hexdigest()


def _empty(status: str) -> dict:
    row = {"hash_status": status, "pixel_hash": "", "phash": 0, "deskew_angle": 0.0, "anisotropy": 0.0,
           "dark_share": 0.0}
    row.update({c: 0 for c in CHANNEL_COLUMNS})
    return row


def hash_file(path: str | Path) -> dict:
    """All hash columns of one file from one reduced decode. Never raises: a file that does
    not decode gets its status word (corrupt, not-image, ...) and zero hashes."""
    try:
        pixels = decode(path, max_side=HASH_SIDE).pixels
    except ImageError as exc:
        return _empty(exc.reason)
    except Exception:  # a decoder bug must not end the run: record it on the file
        return _empty("corrupt")
    ranks = mid_ranks(pixels)  # (equalise and clip_hashes rank the same pixels)
    eq = equalise(pixels, ranks=ranks)
    rh, gh, angle, aniso = disc_hashes(pixels)
    phash, cut, windows = frame_hash(eq), trimmed(pixels), window_hashes(eq)
    eq_cut = equalise(cut) if cut.shape != pixels.shape else None
    row = {"hash_status": "ok", "pixel_hash": pixel_hash(pixels), "phash": phash,
           # the frame without flat edge strips: a copy shifted into a black fill, found again
           "thash": frame_hash(eq_cut) if eq_cut is not None else phash,
           # ... and its centred window: that copy is a crop of the original, which holds the
           # same window shifted by half the shift (one of the original's WHASH windows)
           "twhash": centred_window_hash(eq_cut) if eq_cut is not None else int(windows[0]),
           "deskew_angle": round(angle, 3), "anisotropy": round(aniso, 4),
           # pixels at the darkest level: a background clipped to black, a shift's or turn's fill
           "dark_share": round(float((pixels == pixels.min()).mean()), 4)}
    row.update(zip(LHASH_COLUMNS, clip_hashes(pixels, ranks).tolist()))
    row.update(zip(RHASH_COLUMNS, rh))
    row.update(zip(GHASH_COLUMNS, gh))
    row.update(zip(WHASH_COLUMNS, windows.tolist()))
    row.update(zip(RING_COLUMNS, ring_hashes(pixels)))
    return row


# ---- the stage ---------------------------------------------------------------------------------


def hash_with_sha(path: Path, sha256: str = "") -> dict:
    """hash_file's row with the file's sha256: `sha256` when the audit has taken it (of the same
    bytes: reading and hashing them again cost as much as a small file's decode), else read here."""
    row = hash_file(path)
    row["sha256"] = sha256 or _sha256(path)
    return row


def _hash_item(item: tuple[Path, str]) -> dict:
    """hash_with_sha of a (path, audit's sha256) item, for map_files."""
    return hash_with_sha(*item)


def _sha256(path: Path) -> str:
    """The file's sha256, or "" when it cannot be read (a FIFO or device is never opened)."""
    try:
        return sha256_of(path)
    except (OSError, ImageError):
        return ""


def cache_path(cache_dir: str | Path) -> Path:
    return Path(cache_dir) / f"hashes-v{HASH_VERSION}.npz"


def hash_images(table: pd.DataFrame, root: str | Path, *, workers: int | None = None,
                progress: Progress | None = None, cache_dir: str | Path | None = None) -> pd.DataFrame:
    """Add the hash columns (HASH_COLUMNS, and `sha256` if the audit has not) to the table.

    With `cache_dir`, results are kept per file keyed by (absolute path, size, mtime_ns):
    a re-run hashes only new or changed files. Same result with any number of workers.
    """
    root = Path(root).resolve()
    abs_paths = [str(root / p) for p in table["path"]]
    sizes = table["size"].tolist() if "size" in table else [-1] * len(table)
    mtimes = table["mtime_ns"].tolist() if "mtime_ns" in table else [0] * len(table)
    cache = FileCache(cache_path(cache_dir)) if cache_dir is not None else None

    results: list[dict | None] = [None] * len(table)
    todo, failed = [], {}
    for i, (p, size, mtime) in enumerate(zip(abs_paths, sizes, mtimes)):
        hit = cache.get(p, size, mtime) if cache is not None and size >= 0 else None
        if hit is not None and hit["hash_status"] == "ok":  # a failure is tried again: a decoder may have come (pydicom)
            results[i] = hit
        else:
            todo.append(i)
            if hit is not None:
                failed[i] = hit  # (failing the same way again is nothing to write down)
    if progress and len(todo) < len(table):
        progress(len(table) - len(todo))  # cached files count as done
    audited = table["sha256"].fillna("").tolist() if "sha256" in table else [""] * len(table)
    fresh = map_files(_hash_item, [(Path(abs_paths[i]), audited[i]) for i in todo], workers=workers, progress=progress)
    changed = False
    for i, row in zip(todo, fresh):
        results[i] = row
        if cache is not None and sizes[i] >= 0 and failed.get(i, {}).get("hash_status") != row["hash_status"]:
            cache.put(abs_paths[i], sizes[i], mtimes[i], row)
            changed = True
    if changed:  # (not when only the same files failed the same way again)
        cache.save()

    out = table.copy()
    for col in HASH_COLUMNS:
        values = [r[col] for r in results]
        if col == "phash" or col in CHANNEL_COLUMNS:
            values = np.array([int(v) for v in values], dtype=_U64)
        out[col] = values
    if "sha256" not in out.columns or (out["sha256"].fillna("") == "").all():
        out["sha256"] = [r.get("sha256", "") for r in results]
    return out


def hash_summary(table: pd.DataFrame) -> dict:
    ok = table["hash_status"] == "ok"
    return {
        "files": int(len(table)),
        "hashed": int(ok.sum()),
        "not_hashed": int((~ok).sum()),
        "distinct_sha256": int(table.loc[ok, "sha256"].nunique()),
        "distinct_pixels": int(table.loc[ok, "pixel_hash"].nunique()),
        "distinct_phash": int(table.loc[ok, "phash"].nunique()),
    }


def hex_hashes(table: pd.DataFrame) -> pd.DataFrame:
    """For CSVs: phash as 16 hex digits (spreadsheets mangle 20-digit integers); the candidate
    channels' codes (dozens per file) stay in the cache."""
    out = table.drop(columns=[c for c in CHANNEL_COLUMNS if c in table])
    if "phash" in out:
        out["phash"] = [f"{int(v):016x}" for v in out["phash"]]
    return out
