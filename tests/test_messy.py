"""The messy-dataset builder: layout, determinism, ground truth, and every kind of mess it makes."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from curate.errors import ImageError, InputError, UsageError
from curate.imageio import decode
from curate.messy import (
    BROKEN_KINDS,
    DEFAULT_KINDS,
    ODD_KINDS,
    build_messy,
    default_truth_path,
    main,
    read_truth,
    rotate_expand,
    sample_dir,
)

HEX_NAME = re.compile(r"[0-9a-f]{32}\.(jpg|png)")


def make_bases(folder: Path, n: int = 12) -> list[tuple[Path, str]]:
    """n smooth, asymmetric 60x80 greyscale JPEGs (so turns and flips are visible), half fractured."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    pairs = []
    for i in range(n):
        img = np.full((60, 80), 20, np.uint8)
        for _ in range(4):
            x, y = int(rng.integers(0, 60)), int(rng.integers(0, 40))
            w, h, tone = (int(v) for v in rng.integers([8, 8, 80], [20, 20, 255]))
            cv2.rectangle(img, (x, y), (x + w, y + h), tone, -1)
        img = cv2.GaussianBlur(img, (0, 0), 2)
        path = folder / f"base{i:02d}.jpg"
        cv2.imwrite(str(path), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
        pairs.append((path, "fractured" if i % 2 else "not fractured"))
    return pairs


@pytest.fixture
def bases(tmp_path):
    return make_bases(tmp_path / "bases")


@pytest.fixture
def messy(tmp_path, bases):
    """A small messy set with every copy kind likely: each base gets copies."""
    dest = tmp_path / "messy"
    truth = build_messy(bases, dest, seed=7, copy_fraction=1.0, fractured_boost=3.0)
    return dest, truth


def files_under(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def test_same_seed_gives_the_same_bytes_and_another_seed_does_not(tmp_path, bases):
    a = build_messy(bases, tmp_path / "a", seed=3)
    b = build_messy(bases, tmp_path / "b", seed=3)
    c = build_messy(bases, tmp_path / "c", seed=4)
    pd.testing.assert_frame_equal(a, b)
    assert files_under(tmp_path / "a") == files_under(tmp_path / "b")
    for rel in files_under(tmp_path / "a"):
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()
    assert set(a.file) != set(c.file)


def test_every_file_is_in_the_truth_and_the_truth_lies_outside_the_tree(tmp_path, messy):
    dest, truth = messy
    assert files_under(dest) == set(truth.file)
    assert truth.file.is_unique
    assert default_truth_path(dest) == tmp_path / "messy_truth.csv"
    on_disk = read_truth(tmp_path / "messy_truth.csv")
    pd.testing.assert_frame_equal(on_disk, truth, check_dtype=False)


def test_layout_is_split_then_label_with_random_hex_names(messy):
    dest, truth = messy
    assert sorted(p.name for p in dest.iterdir()) == ["test", "train", "val"]
    for split in dest.iterdir():
        assert sorted(p.name for p in split.iterdir()) == ["fractured", "not fractured"]
    made = truth[truth.kind.isin(["original", *DEFAULT_KINDS])]
    assert made.file.map(lambda f: bool(HEX_NAME.fullmatch(f.split("/")[-1]))).all()
    assert (truth.file.str.split("/").str[0] == truth.split).all()
    assert (truth.file.str.split("/").str[1] == truth.label).all()


def test_each_base_appears_once_as_original_and_copies_leak_across_splits(messy, bases):
    _, truth = messy
    originals = truth[truth.kind == "original"]
    assert sorted(originals.source) == sorted(p.stem for p, _ in bases)
    images = truth[truth.source != ""]
    splits_per_source = images.groupby("source").split.nunique()
    assert (splits_per_source > 1).any()


def test_every_kind_of_copy_odd_and_broken_file_is_made(messy):
    _, truth = messy
    assert set(DEFAULT_KINDS) <= set(truth.kind)
    assert {f"odd-{k}" for k in ODD_KINDS} <= set(truth["transform"])
    assert {f"broken-{k}" for k in BROKEN_KINDS} <= set(truth["transform"])
    assert {"constant", "replicate", "reflect"} <= set(truth.border)
    names = set(truth.file.str.split("/").str[-1])
    assert {".DS_Store", "Thumbs.db"} <= names
    assert any(not n.isascii() and " " in n for n in names)


def test_the_kind_mix_is_a_parameter(tmp_path, bases):
    truth = build_messy(
        bases, tmp_path / "m", seed=1, copy_fraction=1.0, kinds={"mirror": 1}, n_broken=0, n_odd=0, n_conflicts=0
    )
    assert set(truth.kind) == {"original", "mirror"}
    assert truth[truth.kind == "mirror"].mirrored.all()
    with pytest.raises(UsageError):
        build_messy(bases, tmp_path / "m2", kinds={"melt": 1})


def test_broken_and_junk_files_fail_to_decode_with_the_expected_reason(tmp_path, messy):
    dest, truth = messy
    bad = truth[truth.expected_status != "ok"]
    assert len(bad) == len(BROKEN_KINDS) + 2  # + .DS_Store and Thumbs.db
    for row in bad.itertuples():
        with pytest.raises(ImageError) as err:
            decode(dest / row.file)
        assert err.value.reason == row.expected_status, row.file


def test_odd_but_valid_files_decode_and_look_like_their_source(messy):
    dest, truth = messy
    original = {r.source: dest / r.file for r in truth[truth.kind == "original"].itertuples()}
    is_odd = truth["transform"].str.startswith("odd-") & (truth.expected_status == "ok")
    odd = {r.transform: r for r in truth[is_odd].itertuples()}

    def decoded(kind):
        return decode(dest / odd[kind].file)

    assert decoded("odd-png-as-jpg").format == "PNG"
    assert decoded("odd-png16").bit_depth == 16
    assert decoded("odd-rgb").colour
    assert decoded("odd-exif-rotated").exif_orientation == 6
    assert decoded("odd-tiny").pixels.shape == (16, 16)
    assert decoded("odd-blank").pixels.max() <= 2
    for kind in ("odd-png-as-jpg", "odd-png16", "odd-exif-rotated", "odd-unicode-name"):
        mine, theirs = decoded(kind).pixels, decode(original[odd[kind].source]).pixels
        assert mine.shape == theirs.shape, kind  # EXIF applied: upright like the source
        assert np.abs(mine.astype(int) - theirs).mean() < 3, kind


def undo(pixels: np.ndarray, row, source_shape: tuple[int, int]) -> np.ndarray:
    """Bring a copy back onto its source using the truth: rotate by -angle, then un-mirror."""
    if row.angle % 90 == 0:
        back = np.rot90(pixels, -int(row.angle // 90))
    else:
        back = rotate_expand(pixels, -row.angle)
        h, w = source_shape  # the expanded canvas is centred: crop the middle
        top, left = (back.shape[0] - h) // 2, (back.shape[1] - w) // 2
        back = back[top : top + h, left : left + w]
    return np.fliplr(back) if row.mirrored else back


def test_angle_and_mirror_in_the_truth_bring_each_copy_back_onto_its_source(messy):
    dest, truth = messy
    original = {r.source: dest / r.file for r in truth[truth.kind == "original"].itertuples()}
    geometric = truth[truth.kind.isin(["rotate", "mirror", "mirror+rotate", "arbitrary", "mirror+arbitrary"])]
    assert len(geometric) >= 5
    for row in geometric.itertuples():
        source = decode(original[row.source]).pixels.astype(int)
        back = undo(decode(dest / row.file).pixels, row, source.shape)
        assert back.shape == source.shape, row.transform
        inner = (slice(8, -8), slice(8, -8))  # interpolation at the edges differs
        assert np.abs(back[inner] - source[inner]).mean() < 6, row.transform
        # and the copy really differs from its source (the change is not a no-op)
        if back.shape == decode(dest / row.file).pixels.shape:
            assert np.abs(decode(dest / row.file).pixels.astype(int) - source).mean() > 6


def test_positive_angles_turn_counter_clockwise_like_rot90():
    img = np.zeros((40, 60), np.uint8)
    img[:10, -10:] = 255  # top-right corner lit; a CCW quarter turn moves it to top-left
    turned = rotate_expand(img, 90)
    assert turned.shape == (60, 40)
    assert np.array_equal(turned, np.rot90(img, 1))
    wedge = rotate_expand(np.full((50, 50), 200, np.uint8), 30, "constant")
    assert wedge.shape == (69, 69) and wedge[0, 0] == 0 and wedge[34, 34] == 200


def test_fractured_images_get_more_copies(tmp_path):
    pairs = make_bases(tmp_path / "b", n=40)
    truth = build_messy(pairs, tmp_path / "m", seed=0, copy_fraction=0.4, n_conflicts=0)
    copies = truth[truth.kind.isin(DEFAULT_KINDS)].groupby("label").size()
    assert copies["fractured"] > 1.5 * copies["not fractured"]


def test_label_conflicts_are_copies_filed_under_the_other_class(messy):
    _, truth = messy
    conflicts = truth[(truth.source != "") & (truth.label != truth.source_label)]
    assert len(conflicts) == 2
    assert set(conflicts.kind) <= {"exact", "reencode"}


def test_refuses_a_non_empty_dest_and_a_truth_file_inside_it(tmp_path, bases):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("keep me")
    with pytest.raises(InputError):
        build_messy(bases, tmp_path / "full")
    assert (tmp_path / "full" / "x.txt").read_text() == "keep me"
    with pytest.raises(UsageError):
        build_messy(bases, tmp_path / "new", truth_path=tmp_path / "new" / "truth.csv")
    assert not (tmp_path / "new").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp left


def test_module_entry_point_writes_dataset_and_truth(tmp_path, bases, capsys):
    src = bases[0][0].parent.parent / "by_label"
    for path, label in bases:
        (src / label.replace(" ", "_")).mkdir(parents=True, exist_ok=True)
        (src / label.replace(" ", "_") / path.name).write_bytes(path.read_bytes())
    main([str(src), str(tmp_path / "out"), "--seed", "2", "--truth", str(tmp_path / "t.csv")])
    truth = read_truth(tmp_path / "t.csv")
    assert files_under(tmp_path / "out") == set(truth.file)
    assert set(truth[truth.kind == "original"].label) == {"fractured", "not fractured"}
    assert "files in" in capsys.readouterr().out


def test_bundled_sample_is_real_small_attributed_and_decodes(tmp_path):
    root = sample_dir()
    table = pd.read_csv(root / "sample.csv")
    assert 150 <= len(table) <= 300
    assert set(table.fractured) == {0, 1}
    assert table.region.nunique() >= 4
    assert table.groupby(["region", "frontal"]).size().max() >= 10  # look-alikes from other patients
    assert sum((root / f).stat().st_size for f in table.file) < 4_000_000
    assert "CC BY 4.0" in (root / "ATTRIBUTION.md").read_text()
    for f in table.file:
        assert max(decode(root / f).pixels.shape) <= 256
    truth = build_messy(None, tmp_path / "demo", seed=0)
    assert (truth.kind == "original").sum() == len(table)
    assert files_under(tmp_path / "demo") == set(truth.file)
