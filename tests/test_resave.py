"""Which of two JPEG files of one picture was saved from the other (curate.resave): a right-angle
or mirrored copy saved again keeps its source's quantization lattice."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from curate.imageio import decode
from curate.messy import sample_dir
from curate.resave import RESAVE_MARGIN, pose, resave_gap


def saved(pixels: np.ndarray, quality: int = 92) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def write(tmp_path, name: str, data: bytes):
    p = tmp_path / name
    p.write_bytes(data)
    return p


def original(tmp_path):
    src = sorted((sample_dir() / "fractured").glob("*.jpg"))[0]  # 205 x 256: a side that is no multiple of 8
    return write(tmp_path, "original.jpg", src.read_bytes()), decode(src).pixels


def test_a_turned_copy_saved_again_is_told_from_its_original_both_ways(tmp_path):
    orig, pixels = original(tmp_path)
    for mirror, quarter in ((False, 1), (False, 2), (True, 0), (True, 3)):
        copy = write(tmp_path, f"copy{int(mirror)}{quarter}.jpg", saved(pose(pixels, mirror, quarter)))
        assert resave_gap(orig, copy, mirror, quarter) >= RESAVE_MARGIN
        # seen from the copy: the original is the copy posed back
        back = {(False, 1): (False, 3), (False, 2): (False, 2), (True, 0): (True, 0), (True, 3): (True, 3)}
        assert resave_gap(copy, orig, *back[(mirror, quarter)]) <= -RESAVE_MARGIN


def test_two_copies_of_one_original_are_neither_saved_from_the_other(tmp_path):
    orig, pixels = original(tmp_path)
    a = write(tmp_path, "a.jpg", saved(pose(pixels, False, 1)))
    b = write(tmp_path, "b.jpg", saved(pose(pixels, False, 3), 90))  # a turned 180: off its block grid
    gaps = [resave_gap(a, b, m, q) for m in (False, True) for q in range(4)]
    assert any(g is not None for g in gaps)  # the one pose that maps a onto b was tested
    assert all(g is None or abs(g) < RESAVE_MARGIN for g in gaps)


def test_no_claim_in_a_wrong_pose_on_aligned_grids_or_without_jpeg_tables(tmp_path):
    orig, pixels = original(tmp_path)
    copy = write(tmp_path, "copy.jpg", saved(pose(pixels, False, 1)))
    assert resave_gap(orig, copy, True, 1) is None  # not the same picture in that pose
    square = np.ascontiguousarray(pixels[:200, :200])  # 200 = 25 blocks: a turn maps blocks onto blocks
    a, b = write(tmp_path, "sq.jpg", saved(square, 92)), write(tmp_path, "sq90.jpg", saved(np.rot90(square)))
    assert resave_gap(a, b, False, 1) is None  # one table, posed onto itself: the very same coefficients
    png = tmp_path / "copy.png"
    Image.fromarray(np.ascontiguousarray(pose(pixels, False, 1))).save(png)
    assert resave_gap(orig, png, False, 1) is None


def test_on_grids_that_meet_a_copy_saved_again_holds_its_sources_coefficients(tmp_path):
    """A transpose (mirrored, then turned 90) maps blocks onto blocks: the copy's coefficients are
    its source's rounded onto the copy's lattice, and each gives the other's back; the copy is
    told from its source by the lattice as elsewhere. Two copies of one source are not each
    other's rounded: no claim."""
    _, pixels = original(tmp_path)
    src = write(tmp_path, "src.jpg", saved(pixels, 85))
    shown = decode(src).pixels
    copy = write(tmp_path, "copy.jpg", saved(pose(shown, True, 1)))
    assert resave_gap(src, copy, True, 1) >= RESAVE_MARGIN
    assert resave_gap(copy, src, True, 1) <= -RESAVE_MARGIN
    sibling = write(tmp_path, "sibling.jpg", saved(shown, 90))
    gap = resave_gap(sibling, copy, True, 1)
    assert gap is None or abs(gap) < RESAVE_MARGIN
