"""The builder's kaggle profile: augmentation chains, their names, byte copies, a leaky test split, its truth."""

from __future__ import annotations

import re

import cv2
import numpy as np
import pandas as pd
import pytest

from curate.errors import ImageError, UsageError
from curate.imageio import decode
from curate.messy import build_messy, main, read_truth
from curate.messy_kaggle import SIZE, compose
from tests.test_messy import files_under, make_bases

COPY_NAME = re.compile(r"(?P<of>.+?)( - Copy( \(\d+\))?| \(\d+\))+\.jpg")


@pytest.fixture(scope="module")
def kaggle(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("kaggle")
    bases = make_bases(tmp / "bases", n=16)
    dest = tmp / "set"
    truth = build_messy(bases, dest, profile="kaggle", seed=3, median_files=6, copy_share=0.15, val_share=0.05)
    return dest, truth, bases


def test_every_file_is_in_the_truth_beside_the_tree_and_reads_back(kaggle):
    dest, truth, _ = kaggle
    assert files_under(dest) == set(truth.file)
    assert sorted(p.name for p in dest.iterdir()) == ["test", "train", "val"]
    on_disk = read_truth(dest.parent / "set_truth.csv")
    pd.testing.assert_frame_equal(on_disk, truth, check_dtype=False)


def test_bases_are_224_greyscale_and_chains_run_two_to_four_generations(kaggle):
    dest, truth, bases = kaggle
    originals = truth[truth.kind == "original"]
    assert sorted(originals.source) == sorted(p.stem for p, _ in bases)
    for row in truth[truth.expected_status == "ok"].itertuples():
        d = decode(dest / row.file)
        assert (d.width, d.height, d.colour) == (SIZE, SIZE, False), row.file
    deepest = truth[truth.split == "train"].groupby("source").generation.max()
    assert deepest.max() == 4 and (deepest >= 2).sum() >= len(deepest) // 2


def test_each_augmented_file_is_named_for_its_parent_and_made_from_the_parents_pixels(kaggle):
    dest, truth, _ = kaggle
    rows = truth.set_index("file")
    made = truth[truth.kind.isin(["augment", "png-as-jpg", "gif-as-jpg"]) & (truth.split == "train")]
    assert len(made) >= 30
    for row in made.itertuples():
        parent = rows.loc[row.parent]
        assert re.fullmatch(re.escape(row.parent[:-4]) + r"-rotated\d+\.jpg", row.file), row.file
        assert row.generation == parent.generation + 1
        assert row.source == parent.source and row.label == parent.label
    # the second generation is made from first-generation outputs, not from the base again
    second = made[made.generation == 2]
    assert len(second) and set(second.parent) <= set(truth.loc[truth.generation == 1, "file"])


def test_byte_copies_are_named_like_windows_and_browser_copies(kaggle):
    dest, truth, _ = kaggle
    copies = truth[(truth.kind == "byte-copy") & (truth.split == "train")]
    assert len(copies) >= 3
    for row in copies.itertuples():
        assert (dest / row.file).read_bytes() == (dest / row.parent).read_bytes()
        assert COPY_NAME.fullmatch(row.file), row.file
        assert row.file.startswith(row.parent[:-4])


def test_test_and_val_are_mostly_byte_copies_of_train_plus_a_few_radiographs_of_their_own(kaggle):
    dest, truth, _ = kaggle
    train = truth[truth.split == "train"]
    for split in ("test", "val"):
        held = truth[truth.split == split]
        copied = held[held.parent.str.startswith("train/") & (held.kind == "byte-copy")]
        assert len(copied) >= 0.6 * len(held), split
        for row in copied.itertuples():
            assert (dest / row.file).read_bytes() == (dest / row.parent).read_bytes()
        own = set(held.source) - set(train.source)
        assert own and (held.source.isin(own) & (held.kind == "original")).sum() == len(own)
        # about test_share of train's files
        assert 0.03 * len(train) <= len(copied) <= 0.07 * len(train)


def test_the_augmented_class_gets_about_twice_the_files_per_radiograph(tmp_path):
    bases = make_bases(tmp_path / "b", n=40)[:30]  # 15 / 15: boost the fractured class
    truth = build_messy(bases, tmp_path / "m", profile="kaggle", seed=0, median_files=4, boosted="fractured")
    per = truth[truth.split == "train"].groupby(["label", "source"]).size().groupby("label").median()
    assert per["fractured"] >= 1.5 * per["not fractured"]


def test_truncated_files_and_other_formats_under_jpg_names(kaggle):
    dest, truth, _ = kaggle
    broken = truth[truth.kind == "broken-truncated"]
    assert len(broken) == 3 and (broken.expected_status == "corrupt").all()
    for row in broken.itertuples():
        with pytest.raises(ImageError) as err:
            decode(dest / row.file)
        assert err.value.reason == "corrupt"
        assert (dest / row.parent).read_bytes().startswith((dest / row.file).read_bytes())
    for kind, fmt in (("png-as-jpg", "PNG"), ("gif-as-jpg", "GIF")):
        odd = truth[truth.kind == kind]
        assert len(odd) >= 1 and odd.file.str.endswith(".jpg").all()
        assert {decode(dest / f).format for f in odd.file} == {fmt}


def undo(pixels: np.ndarray, row) -> np.ndarray:
    """Back onto the base with the truth's composed transform: unzoom and turn back, then un-mirror."""
    c = (SIZE - 1) / 2
    back = cv2.warpAffine(pixels, cv2.getRotationMatrix2D((c, c), -row.angle, 1 / row.zoom), (SIZE, SIZE))
    return np.fliplr(back) if row.mirrored else back


def test_the_composed_transform_brings_a_deep_file_back_onto_its_base(kaggle):
    dest, truth, _ = kaggle
    base = {r.source: decode(dest / r.file).pixels for r in truth[truth.kind == "original"].itertuples()}
    yy, xx = np.mgrid[:SIZE, :SIZE]
    disc = np.hypot(yy - (SIZE - 1) / 2, xx - (SIZE - 1) / 2) < 44  # inside the canvas at every step

    def corr(a, b):
        return np.corrcoef(a[disc].astype(float), b[disc].astype(float))[0, 1]

    deep = truth[(truth.generation >= 3) & (truth.kind == "augment")]
    assert len(deep) >= 5 and deep.mirrored.any() and (deep.zoom != 1).all() and (deep.tone != "").any()
    for row in deep.itertuples():
        pixels = decode(dest / row.file).pixels
        back = undo(pixels, row)
        assert corr(back, base[row.source]) > 0.9, row.file
        wrong = undo(pixels, row._replace(angle=row.angle + 20))
        assert corr(wrong, base[row.source]) < corr(back, base[row.source]) - 0.05, row.file


def test_compose_flips_the_turn_under_a_mirror():
    start = {"angle": 10.0, "mirrored": False, "zoom": 1.1, "tone": ""}
    step = {"angle": 5.0, "mirrored": True, "zoom": 0.9, "tone": "1.0;1.00;1.00"}
    assert compose(start, step) == {"angle": -5.0, "mirrored": True, "zoom": 0.99, "tone": "1.0;1.00;1.00"}
    assert compose({**start, "angle": 170.0}, {**step, "mirrored": False, "angle": 20.0})["angle"] == -170.0


def test_same_seed_same_bytes_and_settings_of_another_profile_are_refused(tmp_path):
    bases = make_bases(tmp_path / "b", n=6)
    a = build_messy(bases, tmp_path / "a", profile="kaggle", seed=1, median_files=3)
    b = build_messy(bases, tmp_path / "b2", profile="kaggle", seed=1, median_files=3)
    pd.testing.assert_frame_equal(a, b)
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b2" / f).read_bytes() for f in a.file)
    with pytest.raises(UsageError, match="copy_fraction"):
        build_messy(bases, tmp_path / "c", profile="kaggle", copy_fraction=0.5)
    with pytest.raises(UsageError, match="profile"):
        build_messy(bases, tmp_path / "d", profile="nope")


def test_module_entry_point_builds_the_kaggle_profile_from_the_sample(tmp_path, capsys):
    main([str(tmp_path / "out"), "--profile", "kaggle", "--n-bases", "8", "--median-files", "3"])
    truth = read_truth(tmp_path / "out_truth.csv")
    assert truth.source[truth.source != ""].nunique() == 8
    assert files_under(tmp_path / "out") == set(truth.file)
    assert "files in" in capsys.readouterr().out


def test_read_truth_fills_the_new_columns_of_an_old_truth(tmp_path):
    old = "file,source,kind,transform,angle,mirrored,border,params,split,label,source_label,expected_status\n"
    old += "train/a/x.jpg,s,original,original,0.0,false,,,train,a,a,ok\n"
    (tmp_path / "t.csv").write_text(old)
    t = read_truth(tmp_path / "t.csv")
    assert (t.parent[0], t.generation[0], t.zoom[0], t.tone[0]) == ("", 0, 1.0, "")


def test_the_demo_builds_the_kaggle_profile_by_default_once_and_knows_the_old_one(tmp_path):
    from curate.demo import prepare_demo

    root, truth, built = prepare_demo(tmp_path)
    assert built and root.name == "xray-kaggle" and truth.is_file()
    assert sorted(p.name for p in root.iterdir()) == ["test", "train"]
    assert read_truth(truth).generation.max() >= 2
    assert prepare_demo(tmp_path)[2] is False  # reused, never rebuilt under a finished run
    with pytest.raises(UsageError, match="profile"):
        prepare_demo(tmp_path, profile="nope")
