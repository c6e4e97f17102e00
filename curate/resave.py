"""Which of two JPEG files of one picture was saved from the other.

A JPEG stores each 8x8 block's DCT coefficients as multiples of its quantization table (a
lattice). A file decoded, turned by a right angle or mirrored, and saved again keeps its source's
coefficients, on the source's block grid, up to the noise of the new save; the source's pixels sit
on no lattice of the copy's grid, since that grid falls across the source's blocks whenever the
turn moves a side that is not a multiple of 8 long. So the copy's pixels, posed back onto the
source's frame, fit the source's lattice clearly better than the source's pixels fit the copy's
(default-profile pairs of an original and its right-angle or mirrored copy: 0.013-0.22 better,
1% under 0.044). Two copies saved from a third fit neither.

When the turn maps the block grid onto itself (a transpose; a side a multiple of 8), the two
files' coefficients correspond one to one: one saved from the other holds the other's
coefficients rounded onto its own lattice, so each rounded onto the other's lattice gives the
other's back (default-profile originals and copies: 97-100% of coefficients both ways), while
two copies saved from a third do not (at most 89% one way or the other); the lattice distance
then says which was saved from which (0.044-0.071 better).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from curate.errors import ImageError
from curate.imageio import jpeg_luma

BLOCK = 8
MIN_STEP = 6  # quantization steps this coarse only: finer ones drown in the second save's noise
MIN_SIZE = 0.5  # steps: coefficients this large only (a zero is on every lattice)
MAX_BLOCKS = 4096  # blocks sampled per test, evenly over the frame
MIN_COEFFICIENTS = 400  # fewer usable coefficients say nothing
SAME_PICTURE = 6.0  # grey levels: the two posed alike differ this little on average, or no claim
RESAVE_MARGIN = 0.04  # lattice distance (steps) one side must fit better by (no pair of sibling copies reached 0.033)
RESAVE_POSE = 1.0  # degrees from a right angle that still count as a lossless turn
SAME_COEFFICIENTS = 0.95  # share of coefficients each file gives back rounded onto the other's lattice (grids that meet)


def _dct_matrix() -> np.ndarray:
    k, n = np.meshgrid(np.arange(BLOCK), np.arange(BLOCK), indexing="ij")
    d = np.cos(np.pi * (2 * n + 1) * k / (2 * BLOCK)) * np.sqrt(2 / BLOCK)
    d[0] /= np.sqrt(2)
    return d


_DCT = _dct_matrix()


def _coefficients(pixels: np.ndarray) -> np.ndarray:
    """The DCT coefficients of up to MAX_BLOCKS blocks of the frame's own block grid, evenly
    sampled (the same blocks for two frames of one shape)."""
    h, w = (pixels.shape[0] // BLOCK) * BLOCK, (pixels.shape[1] // BLOCK) * BLOCK
    b = pixels[:h, :w].astype(np.float32) - 128.0
    blocks = b.reshape(h // BLOCK, BLOCK, w // BLOCK, BLOCK).transpose(0, 2, 1, 3).reshape(-1, BLOCK, BLOCK)
    if len(blocks) > MAX_BLOCKS:
        blocks = blocks[np.linspace(0, len(blocks) - 1, MAX_BLOCKS).astype(int)]
    return _DCT @ blocks @ _DCT.T


def lattice_distance(coefficients: np.ndarray, table: np.ndarray) -> tuple[float, int]:
    """(mean distance, in steps, of a frame's _coefficients to the table's lattice, counted where
    the step is MIN_STEP or more and the coefficient MIN_SIZE steps or more; how many were counted)."""
    r = coefficients / table
    use = (table >= MIN_STEP)[None] & (np.abs(r) >= MIN_SIZE)
    d = np.abs(r - np.round(r))[use]
    return (float(d.mean()) if d.size else float("nan")), int(d.size)


def pose(pixels: np.ndarray, mirror: bool, quarter: int) -> np.ndarray:
    """The frame mirrored (left-right) first when asked, then turned by quarter x 90 degrees
    counter-clockwise (as shown)."""
    return np.ascontiguousarray(np.rot90(np.fliplr(pixels) if mirror else pixels, quarter))


def lossless(mirror: bool, deg: float) -> tuple[bool, int] | None:
    """(mirror, quarter turns CCW) of a pose (mirrored first, then turned deg CCW) that is a
    lossless turn or mirror (see pose), or None: not within RESAVE_POSE of a right angle, or
    the very same pose."""
    q = round(deg / 90.0)
    if abs(deg - 90.0 * q) > RESAVE_POSE or (q % 4 == 0 and not mirror):
        return None
    return bool(mirror), q % 4


def _unpose(pixels: np.ndarray, mirror: bool, quarter: int) -> np.ndarray:
    back = np.rot90(pixels, -quarter)
    return np.ascontiguousarray(np.fliplr(back) if mirror else back)


def _grids_meet(shape: tuple[int, int], mirror: bool, quarter: int) -> bool:
    """Whether the posed frame's block grid falls on the source's (then the coefficients
    correspond one to one, see same_coefficients)."""
    # only the corner block the pose brings to the top left matters, and of its offset only the
    # remainder mod BLOCK: a frame of BLOCK + that remainder per side says the same as the whole
    shape = tuple(n if n < BLOCK else BLOCK + n % BLOCK for n in shape)
    ys, xs = np.indices(shape)
    py, px = pose(ys, mirror, quarter)[:BLOCK, :BLOCK], pose(xs, mirror, quarter)[:BLOCK, :BLOCK]
    return py.min() % BLOCK == 0 and px.min() % BLOCK == 0


def same_coefficients(a: np.ndarray, b: np.ndarray, table: np.ndarray) -> float:
    """Share of b's coefficients (the _coefficients of frames of one shape on one block grid;
    where the step is MIN_STEP or more and the coefficient MIN_SIZE steps or more) that a's give
    back rounded onto b's lattice (table)."""
    ca, cb = a / table, b / table
    use = (table >= MIN_STEP)[None] & (np.abs(cb) >= MIN_SIZE)
    return float((np.round(ca) == np.round(cb))[use].mean()) if use.any() else 0.0


def resave_gap(a: str | Path, b: str | Path, mirror: bool, quarter: int) -> float | None:
    """How much better b's pixels fit a's lattice than a's fit b's, when b is a posed as
    (mirror, quarter) (see pose): clearly positive (RESAVE_MARGIN) says b was saved from a,
    clearly negative a from b. None when it cannot say: not both JPEGs with their tables, not
    one picture in that pose, block grids that meet on coefficients that are not each other's
    rounded (two copies of a third), too few coarse coefficients."""
    try:
        la = jpeg_luma(a)
        if la is None:  # b is not decoded
            return None
        lb = jpeg_luma(b)
    except ImageError:
        return None
    if lb is None:
        return None
    (pa, ta), (pb, tb) = la, lb
    a_posed = pose(pa, mirror, quarter)
    if a_posed.shape != pb.shape:
        return None
    step = max(1, min(pb.shape) // 256)
    if np.abs(a_posed[::step, ::step].astype(np.float32) - pb[::step, ::step]).mean() > SAME_PICTURE:
        return None
    if min(pb.shape) < BLOCK:  # (no whole block)
        return None
    # a posed on b's block grid, b posed back on a's: each file's coefficients made once
    a_on_grid_b, b_on_grid_a = _coefficients(a_posed), _coefficients(_unpose(pb, mirror, quarter))
    if _grids_meet(pa.shape, mirror, quarter) and min(
            same_coefficients(a_on_grid_b, _coefficients(pb), tb),
            same_coefficients(b_on_grid_a, _coefficients(pa), ta)) < SAME_COEFFICIENTS:
        return None
    a_on_b, n_ab = lattice_distance(a_on_grid_b, tb)
    b_on_a, n_ba = lattice_distance(b_on_grid_a, ta)
    if min(n_ab, n_ba) < MIN_COEFFICIENTS:
        return None
    return round(a_on_b - b_on_a, 4)
