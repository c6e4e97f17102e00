"""Orientation: skew from the corner wedges, rotations from the duplicate group, honest confidence."""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pytest

from curate.messy import rotate_expand
from curate.orient import ACCEPT_SCORE, FLAG_SCORE, estimate_skew, orient
from tests.conftest import radiograph, save


def scan_like(seed: int, size=(240, 200)) -> np.ndarray:
    """A textured fake radiograph (bones on soft tissue), big enough to show wedges."""
    rng = np.random.default_rng(seed)
    h, w = size
    tissue = cv2.GaussianBlur(rng.normal(90, 60, (h, w)).astype(np.float32), (0, 0), 2.5) * 2 - 90
    img = np.clip(tissue, 10, 170)
    bones = radiograph(seed, size).astype(np.float32)
    return np.clip(img + bones, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("border", ["constant", "replicate", "reflect"])
@pytest.mark.parametrize("angle", [-23.0, 11.5, 37.0])
def test_skew_is_estimated_within_2_degrees(border, angle):
    skewed = rotate_expand(scan_like(int(abs(angle) * 10)), angle, border)
    est = estimate_skew(skewed)
    assert abs(est["angle"] - angle) <= 2.0, est  # the best wedge fit is the true skew
    if border == "reflect" and est["rotation"] == 0:
        # mirrored wedges are the hardest to tell from anatomy: an unsure fit may stay at 0,
        # but only as a flagged one (score in the flag band), never as "straight"
        assert est["score"] >= FLAG_SCORE, est
    else:
        assert abs(est["rotation"] + angle) <= 2.0, est  # the rotation undoes the skew
        assert est["confidence"] >= 0.5


@pytest.mark.parametrize("seed", range(6))
def test_a_straight_image_stays_at_0_with_high_confidence(seed):
    est = estimate_skew(scan_like(seed))
    assert est["rotation"] == 0.0
    assert est["confidence"] >= 0.5 and est["score"] < ACCEPT_SCORE


def dup_table(rows):
    cols = ["path", "status", "group", "representative", "dup_angle", "mirrored", "dup_score"]
    return pd.DataFrame(rows, columns=cols)


def test_rotated_and_mirrored_copies_are_turned_onto_the_upright_original(tmp_path):
    base = scan_like(1)
    save(tmp_path / "orig.png", base)
    save(tmp_path / "rot90.png", np.rot90(base, 1))  # turned 90 CCW: needs -90
    save(tmp_path / "mirror_rot180.png", np.rot90(np.fliplr(base), 2))  # needs 180, stays mirrored
    save(tmp_path / "skew.png", rotate_expand(base, 20.0, "constant"))  # needs -20
    # dup_angle as the dups stage gives it: rotate(mirror^m(file), dup_angle) == representative
    t = dup_table([
        ("orig.png", "ok", 1, True, 0.0, False, 1.0),
        ("rot90.png", "ok", 1, False, -90.0, False, 0.95),
        ("mirror_rot180.png", "ok", 1, False, 180.0, True, 0.9),
        ("skew.png", "ok", 1, False, -20.0, False, 0.9),
    ])
    out = orient(t, tmp_path, workers=1).set_index("path")
    assert out.loc["orig.png", "rotation"] == 0
    assert out.loc["rot90.png", "rotation"] == -90
    assert abs(out.loc["mirror_rot180.png", "rotation"]) == 180
    assert "mirrored" in out.loc["mirror_rot180.png", "orient_flag"]
    assert abs(out.loc["skew.png", "rotation"] + 20) <= 2
    assert set(out.loc[["rot90.png", "skew.png"], "orient_source"]) == {"group"}
    assert (out["orient_confidence"] >= 0.5).all()


def test_the_upright_orientation_is_the_one_most_copies_share(tmp_path):
    base = scan_like(2)
    # The representative happens to be a 90-degree copy; three members are upright.
    save(tmp_path / "rep_rot90.png", np.rot90(base, 1))
    for i in range(3):
        save(tmp_path / f"up{i}.png", base)
    t = dup_table([("rep_rot90.png", "ok", 7, True, 0.0, False, 1.0)]
                  + [(f"up{i}.png", "ok", 7, False, 90.0, False, 1.0) for i in range(3)])
    out = orient(t, tmp_path, workers=1).set_index("path")
    assert out.loc["rep_rot90.png", "rotation"] == -90
    assert (out.loc[[f"up{i}.png" for i in range(3)], "rotation"] == 0).all()


def test_broken_files_and_lone_straight_images_get_no_rotation(tmp_path):
    save(tmp_path / "a.png", scan_like(3))
    (tmp_path / "b.jpg").write_bytes(b"junk")
    t = pd.DataFrame({"path": ["a.png", "b.jpg"], "status": ["ok", "corrupt"]})
    out = orient(t, tmp_path, workers=1)
    assert list(out["rotation"]) == [0.0, 0.0]
    assert out.loc[0, "orient_confidence"] >= 0.5 and out.loc[0, "orient_flag"] == ""
    assert list(out.columns[-4:]) == ["rotation", "orient_source", "orient_confidence", "orient_flag"]


def test_an_unsure_fit_is_flagged_not_applied(tmp_path):
    save(tmp_path / "a.png", scan_like(4))
    t = pd.DataFrame({"path": ["a.png"], "status": ["ok"]})
    unsure = [{"rotation": 0.0, "confidence": 0.55, "score": ACCEPT_SCORE - 0.03, "angle": 12.0,
               "fill": "reflect", "geometry": "expand"}]
    out = orient(t, tmp_path, skews=unsure)
    assert out.loc[0, "rotation"] == 0 and out.loc[0, "orient_flag"] == "low-confidence"


def test_skews_are_cached_and_a_rerun_decides_the_same(tmp_path):
    """A second orient over unchanged files reads the cache and gives the same rotations."""
    from curate.audit import audit
    from curate.layout import scan
    from curate.orient import cached_skews, orient
    from tests.conftest import radiograph, save

    root = tmp_path / "data"
    for i in range(3):
        save(root / "a" / f"{i}.png", radiograph(i))
    table = audit(scan(root), root, workers=1)
    cache = tmp_path / "cache"
    first = orient(table, root, skews=cached_skews(table, root, cache, workers=1))
    assert list(cache.glob("skews-*.npz"))
    done = []
    second = orient(table, root, skews=cached_skews(table, root, cache, workers=1, progress=done.append))
    assert done == [3]  # all three counted at once, as cache hits
    assert first["rotation"].tolist() == second["rotation"].tolist()
