"""Which file of a group is its representative (and so the one the curated set keeps): the
original the others were derived from, or with no original the least changed copy."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from curate.dedup import find_duplicates
from curate.original import _root
from curate.imageio import decode, decode_bytes
from curate.messy import sample_dir
from curate.split import assign_splits
from tests.test_dedup import hashed_folder, jpeg, rotate_expand


def darkened(p: np.ndarray) -> np.ndarray:
    """A darker, harder copy: the background clips to black."""
    return np.clip((p / 255.0) ** 1.2 * 255 - 20, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def chain() -> dict[str, bytes]:
    """A real radiograph and what an augmentation script makes of it: a turned copy, a copy of
    that turned copy, a darkened copy. All saved alike, so only the pixels tell them apart."""
    original = decode(sorted((sample_dir() / "fractured").glob("*.jpg"))[3]).pixels
    turned = rotate_expand(original, 12, "constant")
    return {"original": jpeg(original), "turned": jpeg(turned), "turned_again": jpeg(rotate_expand(turned, -9, "constant")),
            "darkened": jpeg(darkened(original))}


def representative(tmp_path: Path, files: dict[str, bytes]) -> tuple[str, pd.DataFrame]:
    root, table = hashed_folder(tmp_path, files)
    out = find_duplicates(table, root, workers=1)
    assert out["group"].nunique() == 1, out[["path", "group"]]  # one radiograph: one group
    return Path(out.loc[out["representative"], "path"].iloc[0]).stem, out


def test_the_original_is_kept_not_a_turned_or_darkened_copy(tmp_path, chain):
    # the names put the copies first in path order, so the path cannot be what decides
    files = {"z_original": chain["original"], "a_turned": chain["turned"], "b_turned_again": chain["turned_again"],
             "c_darkened": chain["darkened"]}
    rep, out = representative(tmp_path, files)
    assert rep == "z_original"
    marks = dict(zip(out["path"].map(lambda p: Path(p).stem), out["derived"]))
    assert marks["z_original"] == ""
    assert "resampled" in marks["a_turned"] and "resampled" in marks["b_turned_again"]
    assert marks["c_darkened"] != ""


def test_without_the_original_the_least_changed_copy_is_kept(tmp_path, chain):
    # the turned copy, not the copy made from it (turned twice, resampled twice, more fill)
    rep, out = representative(tmp_path, {"a_turned_again": chain["turned_again"], "b_turned": chain["turned"]})
    assert rep == "b_turned"
    assert out.set_index("path").loc["a/a_turned_again.jpg", "derived"] != ""


def test_among_equally_plain_members_the_usual_encoding_then_the_derived_copies_pose_wins():
    # rows 0 and 1: an original and its mirror image, no trace on either; rows 2 and 3: turned
    # copies made from the unmirrored pose (a small turn from row 0, a mirror + turn from row 1)
    t = {0: (0, 0.0), 1: (1, 0.0), 2: (0, 14.0), 3: (0, -20.0)}
    cost = {0: 0.0, 1: 0.0, 2: 2.0, 3: 3.0}
    quality = [(0, 0, 0, "b"), (0, 0, 0, "a"), (0, 0, 0, "c"), (0, 0, 0, "d")]
    assert _root([0, 1, 2, 3], t, cost, quality, [0.0] * 4) == 0
    # but first: the one saved as the dataset's files without copies are (their encoding's share)
    assert _root([0, 1, 2, 3], t, cost, quality, [0.1, 0.9, 0.0, 0.0]) == 1
    assert _root([0, 1], t, cost, quality, [0.9, 0.1]) == 0
    assert _root([0, 1], t, cost, quality, [0.0, 0.0]) == 1  # nothing tells them apart: the path


def test_the_kept_file_is_the_representative_wherever_it_was_found():
    # the original was filed under test, a turned copy under train: the group goes to train
    # (the keep policy) and takes its original along; orig_split still says where it was
    t = pd.DataFrame({"path": ["test/a/orig.jpg", "train/a/turned.jpg", "val/a/turned_again.jpg"],
                      "label": ["a"] * 3, "orig_split": ["test", "train", "val"], "group": [1, 1, 1],
                      "status": ["ok"] * 3, "representative": [True, False, False]})
    out = assign_splits(t, "keep").set_index("path")
    assert out.loc["test/a/orig.jpg", ["keep", "split", "orig_split"]].tolist() == [True, "train", "test"]
    assert out.loc["train/a/turned.jpg", ["keep", "reason"]].tolist() == [False, "duplicate"]
    assert out.loc["val/a/turned_again.jpg", ["keep", "reason"]].tolist() == [False, "leak"]


def test_the_report_marks_the_kept_original_and_says_why_a_copy_stands_in(tmp_path):
    from curate.report import render_report
    from tests.test_report import radiograph, row

    root = tmp_path / "xrays"
    (root / "train/a").mkdir(parents=True)
    for name in ("orig", "turned", "turned_again", "turned_more"):
        radiograph(1 if name == "orig" else 2).save(root / f"train/a/{name}.png")
    table = pd.DataFrame([
        row("train/a/orig.png", "a", "train", 1, derived=""),
        row("train/a/turned.png", "a", "train", 1, representative=False, keep=False, reason="duplicate",
            relation="rotated 12°", derived="resampled+fill"),
        # a group of copies only: the kept one shows a turn's wedges itself (orient straightens it)
        row("train/a/turned_again.png", "a", "train", 2, derived="", orient_source="skew", rotation=9),
        row("train/a/turned_more.png", "a", "train", 2, representative=False, keep=False, reason="duplicate",
            relation="rotated -9°", derived="resampled+fill"),
    ])
    md = render_report(table, root, {"files": 4}, out_dir=tmp_path / "report")["markdown"].read_text()
    line = {g: next(x for x in md.splitlines() if x.startswith(f"| {g} |")) for g in (1, 2)}
    assert "**train/a/orig.png (train, a, original, kept)**" in line[1]
    assert "least-changed copy (no original in the group: its own corners show a turn's wedges)" in line[2]
    assert "turned\\_more.png (train, a, rotated -9°, dropped: duplicate)" in line[2]


def kaggle_step(pixels: np.ndarray, angle: float, zoom: float, fill: int | None) -> np.ndarray:
    """A Kaggle-style augmentation: turned and zoomed about the centre on the same canvas, the
    corners filled with a constant (or the edge pixel repeated when fill is None)."""
    h, w = pixels.shape
    m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle, zoom)
    mode = cv2.BORDER_REPLICATE if fill is None else cv2.BORDER_CONSTANT
    return cv2.warpAffine(pixels, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=mode, borderValue=fill or 0)


def test_on_a_fixed_canvas_zoomed_out_and_cropped_copies_are_told_from_the_original(tmp_path):
    # a 224 px original; a copy zoomed out on white fill, re-toned (so the fill is off the white
    # level); one zoomed in with a small turn (a crop: no fill at all) and a copy of that. The
    # copies' names come first, so the path cannot decide
    from curate.original import _cropped, _framed_copies, fill_beyond

    original = cv2.resize(decode(sorted((sample_dir() / "fractured").glob("*.jpg"))[3]).pixels, (224, 224),
                          interpolation=cv2.INTER_AREA)
    retone = lambda p: np.clip(((p / 255.0) ** 0.9 * 255 - 128) * 0.9 + 122, 0, 255).astype(np.uint8)  # noqa: E731
    zoomed_out = retone(kaggle_step(original, -9.0, 0.86, 255))
    crop = kaggle_step(original, 4.0, 1.2, None)
    files = {"a_zoomed_out": jpeg(zoomed_out), "b_crop": jpeg(crop),
             "c_crop_again": jpeg(kaggle_step(crop, -12.0, 1.05, 0)), "z_original": jpeg(original)}
    assert representative(tmp_path, files)[0] == "z_original"
    # the evidence: the zoomed-out copy's pixels beyond the original's frame are fill, the
    # original's beyond the copy's frame are anatomy; the crop's whole view lies inside the original's
    pixels = {0: original.astype(np.float32), 1: zoomed_out.astype(np.float32), 2: crop.astype(np.float32)}
    assert fill_beyond(pixels[1], -9.0, 0.86) >= 0.3 > 0.1 >= fill_beyond(pixels[0], 9.0, 1 / 0.86)
    assert _cropped((224, 224), 4.0, 1.2) and not _cropped((224, 224), -4.0, 1 / 1.2)
    assert not _cropped((224, 224), 20.0, 1.2)  # turned this far, its corners reach beyond the original's
    t = {0: (0, 0.0), 1: (0, -9.0), 2: (0, 4.0)}
    assert _framed_copies([0, 1, 2], t, {0: 1.0, 1: 0.86, 2: 1.2}, pixels.get) == {1, 2}


def test_a_turned_or_zoomed_copy_has_less_fine_detail_than_its_original_on_either_geometry():
    # zoomed out (its own pixels are then denser) and re-toned, or zoomed in: put on one
    # geometry, the copy shows less fine detail; a mirror resamples nothing and says nothing
    from curate.original import ALIGN_MARGIN, aligned_detail

    retone = lambda p: np.clip(((p / 255.0) ** 0.9 * 255 - 128) * 1.12 + 128, 0, 255).astype(np.uint8)  # noqa: E731
    saved = lambda p: decode_bytes(jpeg(p)).pixels.astype(np.float32)  # noqa: E731
    for k in (0, 3):
        original = cv2.resize(decode(sorted((sample_dir() / "fractured").glob("*.jpg"))[k]).pixels, (224, 224),
                              interpolation=cv2.INTER_AREA)
        for zoom, angle in ((0.86, 12.0), (1.15, 18.0)):
            o, copy = saved(original), saved(retone(kaggle_step(original, angle, zoom, 255)))
            assert aligned_detail(o, copy, False, angle, zoom) > ALIGN_MARGIN
            assert aligned_detail(copy, o, False, -angle, 1 / zoom) < -ALIGN_MARGIN
        assert aligned_detail(saved(original), saved(np.fliplr(original)), True, 0.0, 1.0) is None


def test_an_original_with_a_black_border_of_its_own_is_kept_over_the_copies_that_crop_it(tmp_path):
    # a film edge along two sides, flat black like a turn's fill: the original measures more
    # black than its zoomed-in copies (which crop the edge away), so its black share alone
    # would call it the filled one; on one geometry with each copy it has the finer detail
    original = cv2.resize(decode(sorted((sample_dir() / "fractured").glob("*.jpg"))[0]).pixels, (224, 224),
                          interpolation=cv2.INTER_AREA)
    original[:, :36] = 0
    original[:24, :] = 0
    crop = kaggle_step(original, 14.0, 1.25, None)
    files = {"a_crop": jpeg(crop), "b_crop_again": jpeg(kaggle_step(crop, -10.0, 1.1, 255)),
             "c_other": jpeg(kaggle_step(original, -16.0, 1.22, None)), "z_original": jpeg(original)}
    rep, out = representative(tmp_path, files)
    assert rep == "z_original"


@pytest.mark.parametrize("mirror, quarter", [(False, 1), (True, 2)])
def test_the_original_is_kept_over_its_right_angle_copy_saved_again(tmp_path, mirror, quarter):
    # a lossless turn leaves no resampling or fill, and the copy's new save measures sharper:
    # only the original's quantization lattice, kept in the copy, says which came first
    src = sorted((sample_dir() / "fractured").glob("*.jpg"))[0]
    turned = np.rot90(np.fliplr(decode(src).pixels) if mirror else decode(src).pixels, quarter)
    rep, _ = representative(tmp_path, {"z_original": src.read_bytes(), "a_turned": jpeg(turned)})
    assert rep == "z_original"
