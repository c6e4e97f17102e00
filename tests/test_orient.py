"""Orientation: skew from the corner wedges, rotations from the duplicate group, honest confidence."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

import curate.orient as orient_module
import curate.pair_pixels as pair_pixels
import curate.skew as skew_module
import curate.upright as upright
from curate.messy import rotate_expand
from curate.orient import orient, orient_summary
from curate.skew import estimate_skew
from tests.conftest import radiograph, save


def scan_like(seed: int, size=(240, 200)) -> np.ndarray:
    """A textured fake radiograph (bones on soft tissue), big enough to show wedges."""
    rng = np.random.default_rng(seed)
    h, w = size
    tissue = cv2.GaussianBlur(rng.normal(90, 60, (h, w)).astype(np.float32), (0, 0), 2.5) * 2 - 90
    img = np.clip(tissue, 10, 170)
    bones = radiograph(seed, size).astype(np.float32)
    return np.clip(img + bones, 0, 255).astype(np.uint8)


def framed(seed: int) -> np.ndarray:
    """Like many real radiographs: a dark field, a white film edge on two sides, a black band
    and a slightly tilted collimation edge inside the exposure."""
    img = scan_like(seed)
    img[:, :6] = 250  # white film edge
    img[-5:, :] = 245
    img[:8, :] = 0  # black band along the top
    cv2.line(img, (20, 30), (190, 36), 200, 2)  # a collimator's shadow, 2 degrees off level
    return img


# ---- the image alone ------------------------------------------------------------------------


@pytest.mark.parametrize("border", ["constant", "replicate", "reflect"])
@pytest.mark.parametrize("angle", [-23.0, 11.5, 37.0])
def test_a_skewed_copy_is_straightened_within_2_degrees(border, angle):
    skewed = rotate_expand(scan_like(int(abs(angle) * 10)), angle, border)
    est = estimate_skew(skewed)
    assert abs(est["rotation"] + angle) <= 2.0, est  # the rotation undoes the skew
    assert est["confidence"] >= 0.5 and not est["flag"], est


@pytest.mark.parametrize("make", [scan_like, framed])
@pytest.mark.parametrize("seed", range(4))
def test_a_straight_image_gets_0_without_a_flag(make, seed):
    est = estimate_skew(make(seed))
    assert est["rotation"] == 0.0, est
    assert est["confidence"] >= 0.5 and not est["flag"], est


def test_only_a_fit_that_holds_at_mid_size_is_refined_at_full_size(monkeypatch):
    """The search's dearest step (FINE_SIDE) runs only where the mid-size fit reaches FINE_GATE: a
    straight image whose coarse fit passed GATE by chance stops at mid size, with that fit as its
    evidence; a skewed one goes on."""
    sides = []
    real_fit = skew_module.fit
    monkeypatch.setattr(skew_module, "fit", lambda pixels, side: sides.append(side) or real_fit(pixels, side))
    est = estimate_skew(scan_like(3))  # straight; its coarse best fit is 0.52, at mid size 0.44
    assert est["coarse"] >= skew_module.GATE and est["score"] < skew_module.FINE_GATE, est
    assert sides == [skew_module.COARSE_SIDE, skew_module.MID_SIDE]
    assert est["rotation"] == 0.0 and not est["flag"], est
    sides.clear()
    est = estimate_skew(rotate_expand(scan_like(5), 11.5, "constant"))
    assert sides[-1] == skew_module.FINE_SIDE and abs(est["rotation"] + 11.5) <= 0.5, est


def test_the_coarse_search_of_a_straight_image_ends_after_its_first_part(monkeypatch):
    """Straight radiographs fit best at the thin turns: a best fit under FIRST_GATE over them and
    the odd degrees ends the coarse search there; a skew at an even degree past FIRST_ALL is still
    found, from the rest of the search."""
    tested = []
    real_fits = skew_module._fits
    monkeypatch.setattr(skew_module, "_fits",
                        lambda img, hyps, *a: tested.append([abs(h[0]) for h in hyps]) or real_fits(img, hyps, *a))
    est = estimate_skew(framed(1))  # straight; its first part's best fit is 0.18, the rest's 0.21
    assert len(tested) == 1 and 8.0 not in tested[0] and 9.0 in tested[0], tested
    assert est["coarse"] < skew_module.FIRST_GATE and est["rotation"] == 0.0 and not est["flag"], est
    tested.clear()
    est = estimate_skew(rotate_expand(scan_like(2), 32.0, "constant"))
    assert 32.0 not in tested[0] and 32.0 in tested[1], tested[:2]
    assert abs(est["rotation"] + 32.0) <= 0.5, est


def test_an_image_with_nothing_to_go_by_is_not_turned():
    """Blank and flat images show no wedges: 0, and nothing to flag."""
    for img in (np.zeros((120, 100), np.uint8), np.full((120, 100), 200, np.uint8)):
        est = estimate_skew(img)
        assert est["rotation"] == 0.0 and not est["flag"]


# ---- the stage ------------------------------------------------------------------------------


def dup_table(rows):
    cols = ["path", "status", "group", "representative", "dup_angle", "mirrored", "dup_score"]
    return pd.DataFrame(rows, columns=cols)


def test_copies_in_a_group_get_the_turn_onto_the_representative(tmp_path):
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
        ("skew.png", "ok", 1, False, -20.3, False, 0.9),
    ])
    out = orient(t, tmp_path, workers=1).set_index("path")
    assert out.loc["orig.png", "rotation"] == 0 and out.loc["orig.png", "orient_flag"] == ""
    assert out.loc["rot90.png", "rotation"] == -90
    assert abs(out.loc["mirror_rot180.png", "rotation"]) == 180
    assert "mirrored" in out.loc["mirror_rot180.png", "orient_flag"]
    assert out.loc["skew.png", "rotation"] == -20.3  # the verified pair's angle, not a re-estimate
    assert out.loc["rot90.png", "orient_source"] == "group"
    assert out.loc["skew.png", "orient_source"] == "group"  # its turn onto the upright member
    assert (out["orient_confidence"] >= 0.5).all()


def test_two_exposures_of_one_limb_are_not_turned_onto_each_other(tmp_path):
    """Grouped (a leak risk) but not one picture turned: a few degrees of posture is not a skew
    of the file (no wedges), and which of two poses is upright is for the user to say."""
    save(tmp_path / "a.png", scan_like(8))
    save(tmp_path / "b.png", scan_like(9))
    save(tmp_path / "c.png", np.rot90(scan_like(10)))
    t = dup_table([("a.png", "ok", 1, True, 0.0, False, 1.0),
                   ("b.png", "ok", 1, False, 6.0, False, 0.78),
                   ("c.png", "ok", 1, False, -90.0, False, 0.78)])
    out = orient(t, tmp_path, workers=1).set_index("path")
    assert list(out["rotation"]) == [0.0, 0.0, 0.0]
    assert list(out["orient_flag"]) == ["", "", "low-confidence"]


def test_the_right_angle_pose_is_the_representatives(tmp_path):
    """The dups stage keeps as representative the member the others were derived from: a kept
    copy turned 90 is turned back onto it, and a representative with one copy in another pose
    is not turned by a vote of one."""
    base = scan_like(2)
    save(tmp_path / "orig.png", base)
    save(tmp_path / "rot.png", np.rot90(base, 1))
    t = dup_table([("orig.png", "ok", 3, True, 0.0, False, 1.0), ("rot.png", "ok", 3, False, -90.0, False, 0.9)])
    t["keep"] = [False, True]
    out = orient(t, tmp_path, workers=1).set_index("path")
    assert out.loc["rot.png", "rotation"] == -90 and out.loc["rot.png", "orient_source"] == "group"
    assert out.loc["orig.png", "rotation"] == 0
    t["keep"] = [True, False]
    out = orient(t, tmp_path, workers=1).set_index("path")
    assert out.loc["orig.png", "rotation"] == 0 and out.loc["orig.png", "orient_flag"] == ""


def test_a_rotated_representative_yields_to_a_clear_majority(tmp_path):
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
    # a plain copy verified a little under COPY_SCORE against a turned film still votes (seed 1: 0.8996)
    t["dup_score"] = [1.0, 0.99, 0.96, 0.87]
    assert orient(t, tmp_path, workers=1).set_index("path").loc["rep_rot90.png", "rotation"] == -90


def test_a_lone_skewed_scan_is_straightened_from_its_wedges(tmp_path, monkeypatch):
    monkeypatch.setattr("curate.orient.SKEW_CONFIDENCE", 0.5)  # at the estimator's own bar
    save(tmp_path / "skew.png", rotate_expand(scan_like(5), -14.0, "replicate"))
    save(tmp_path / "straight.png", scan_like(6))
    t = pd.DataFrame({"path": ["skew.png", "straight.png"], "status": ["ok", "ok"]})
    out = orient(t, tmp_path, workers=1).set_index("path")
    assert abs(out.loc["skew.png", "rotation"] - 14.0) <= 2 and out.loc["skew.png", "orient_source"] == "skew"
    assert out.loc["straight.png", "rotation"] == 0 and out.loc["straight.png", "orient_source"] == ""
    assert orient_summary(out.reset_index())["by_source"] == {"skew": 1}


def test_broken_files_get_no_rotation(tmp_path):
    save(tmp_path / "a.png", scan_like(3))
    (tmp_path / "b.jpg").write_bytes(b"junk")
    t = pd.DataFrame({"path": ["a.png", "b.jpg"], "status": ["ok", "corrupt"]})
    out = orient(t, tmp_path, workers=1)
    assert list(out["rotation"]) == [0.0, 0.0]
    assert out.loc[0, "orient_confidence"] >= 0.5 and out.loc[0, "orient_flag"] == ""
    assert list(out.columns[-4:]) == ["rotation", "orient_source", "orient_confidence", "orient_flag"]


def test_an_unsure_skew_is_flagged_not_applied(tmp_path):
    """Wedge-like but unsure: the representative's rotation stays 0 and it says low-confidence;
    a copy keeps only the sure, right-angle part of its turn."""
    for name in ("rep.png", "copy.png", "straight.png", "rot90.png"):
        save(tmp_path / name, scan_like(4))
    t = dup_table([("rep.png", "ok", 1, True, 0.0, False, 1.0),
                   ("copy.png", "ok", 1, False, 0.0, False, 1.0),
                   ("straight.png", "ok", 1, False, 12.0, False, 0.9),  # the rep may be skewed 12 degrees...
                   ("rot90.png", "ok", 1, False, 90.0, False, 0.9)])
    unsure = {"rotation": 0.0, "confidence": 0.55, "flag": True, "score": 0.9, "angle": 12.0, "fill": "reflect"}
    straight = {"rotation": 0.0, "confidence": 0.9, "flag": False, "score": 0.1, "angle": 5.0, "fill": "constant"}
    out = orient(t, tmp_path, skews=[unsure, dict(unsure), straight, dict(straight)])
    assert list(out["rotation"]) == [0.0, 0.0, 0.0, 90.0]  # ...so no one is turned by 12 on a guess
    assert list(out["orient_flag"]) == ["low-confidence", "", "", ""]


def test_a_lone_skew_under_the_calibrated_confidence_is_flagged_not_turned(tmp_path, monkeypatch):
    """The same skewed scan is straightened at the estimator's bar and left alone, flagged,
    when its confidence falls under a stricter one."""
    import curate.orient as orient_module

    monkeypatch.setattr(orient_module, "SKEW_CONFIDENCE", 0.5)

    save(tmp_path / "skew.png", rotate_expand(scan_like(5), -14.0, "replicate"))
    t = pd.DataFrame({"path": ["skew.png"], "status": ["ok"]})
    sure = orient(t, tmp_path, workers=1).iloc[0]
    assert abs(sure["rotation"] - 14.0) <= 2 and sure["orient_flag"] == ""
    monkeypatch.setattr(orient_module, "SKEW_CONFIDENCE", sure["orient_confidence"] + 0.01)
    unsure = orient(t, tmp_path, workers=1).iloc[0]
    assert unsure["rotation"] == 0.0 and unsure["orient_flag"] == "low-confidence"


def test_skews_are_cached_and_a_rerun_decides_the_same(tmp_path, monkeypatch):
    """A second orient over unchanged files reads each file's search from the cache and gives
    the same columns, an image too small to search (not searched, confidence 0.5) included."""
    monkeypatch.setattr("curate.orient.SKEW_CONFIDENCE", 0.5)  # at the estimator's own bar
    import curate.orient as orient_module
    from curate.audit import audit
    from curate.layout import scan

    root = tmp_path / "data"
    save(root / "a" / "0.png", rotate_expand(scan_like(7), 25.0, "constant"))
    for i in range(1, 3):
        save(root / "a" / f"{i}.png", scan_like(i))
    save(root / "a" / "tiny.png", scan_like(3, size=(40, 48)))
    table = audit(scan(root), root, workers=1)
    cache = tmp_path / "cache"
    first = orient(table, root, cache_dir=cache, workers=1)
    assert list(cache.glob("skews-*.npz"))
    for stage in cache.glob("orient-result*"):  # the whole stage's result would come back unread
        stage.unlink()
    monkeypatch.setattr(orient_module, "estimate_skew", lambda pixels: pytest.fail("searched again"))
    second = orient(table, root, cache_dir=cache, workers=1)
    pd.testing.assert_frame_equal(first, second)
    tiny = first[first["path"].str.endswith("tiny.png")].iloc[0]
    assert tiny["rotation"] == 0.0 and tiny["orient_confidence"] == 0.5
    turned = sorted(first["rotation"].tolist())
    assert abs(turned[0] + 25.0) <= 2 and turned[1:] == [0.0, 0.0, 0.0]


def test_a_rerun_with_the_same_input_looks_at_no_image(tmp_path, monkeypatch):
    """The whole stage's result comes back when the table (files, groups, kept rows) is the same."""
    monkeypatch.setattr("curate.orient.SKEW_CONFIDENCE", 0.5)  # at the estimator's own bar
    import curate.orient as orient_module
    from curate.audit import audit
    from curate.layout import scan

    root = tmp_path / "data"
    save(root / "a" / "0.png", rotate_expand(scan_like(7), 25.0, "constant"))
    save(root / "a" / "1.png", scan_like(1))
    table = audit(scan(root), root, workers=1)
    first = orient(table, root, cache_dir=tmp_path / "cache", workers=1)
    monkeypatch.setattr(orient_module, "probe", lambda item: pytest.fail("looked again"))
    pd.testing.assert_frame_equal(first, orient(table, root, cache_dir=tmp_path / "cache", workers=1))
    # another input is decided again (here from the per-file skews), not given the stored columns
    flipped = orient(table.iloc[::-1].reset_index(drop=True), root, cache_dir=tmp_path / "cache", workers=1)
    assert flipped["rotation"].tolist() == first["rotation"].tolist()[::-1] != first["rotation"].tolist()


@pytest.mark.parametrize("border", ["constant", "replicate", "reflect"])
def test_a_kept_turned_copy_gets_the_verified_angle_onto_its_upright_original(tmp_path, border):
    """The kept file is the turned copy (its original is dropped as a leak): the pair's angle
    turns it back, because the copy shows the turn's wedges at that angle and the original
    does not; the original itself is not turned."""
    base = scan_like(11)
    save(tmp_path / "copy.png", rotate_expand(base, 21.0, border))
    save(tmp_path / "orig.png", base)
    t = dup_table([("copy.png", "ok", 1, True, 0.0, False, 1.0),
                   ("orig.png", "ok", 1, False, 20.6, False, 0.95)])  # rotate(orig, 20.6) == copy
    t["keep"] = [True, False]
    out = orient(t, tmp_path, workers=1).set_index("path")
    assert out.loc["copy.png", "rotation"] == -20.6 and out.loc["copy.png", "orient_source"] == "group"
    assert out.loc["copy.png", "orient_flag"] == "" and out.loc["copy.png", "orient_confidence"] >= 0.5
    assert out.loc["orig.png", "rotation"] == 0


def test_a_kept_copy_in_the_canvas_its_turn_enlarged_is_turned_onto_the_original(tmp_path, monkeypatch):
    """Neither side shows wedges (a reflected fill can pass for anatomy), but the kept copy's
    canvas is exactly the one the original's picture needs turned 21 degrees and enlarged to hold
    it, at the same pixel scale: it is the turned one. The original kept is left as it is: a
    turn only adds canvas. The copy shrunk to the original's longest side: its canvas says
    nothing (another pixel scale), but resampled twice (turned, then shrunk) it is the blurred
    one, so it too is turned onto the original (resample_gap); without that, it stands."""
    base = scan_like(11)
    copy = rotate_expand(base, 21.0, "reflect")
    save(tmp_path / "copy.png", copy)
    save(tmp_path / "orig.png", base)
    small = cv2.resize(copy, (round(copy.shape[1] * 240 / copy.shape[0]), 240), interpolation=cv2.INTER_AREA)
    save(tmp_path / "small.png", small)
    monkeypatch.setattr(orient_module, "wedge_fit", lambda pixels, deg: 0.0)
    monkeypatch.setattr(orient_module, "estimate_skew", lambda pixels: dict(skew_module.NO_SKEW))
    sides = {"copy.png": copy.shape[::-1], "orig.png": base.shape[::-1], "small.png": small.shape[::-1]}
    for kept, rows, scale in (
            ("copy.png", [("copy.png", "ok", 1, True, 0.0, False, 1.0), ("orig.png", "ok", 1, False, 20.6, False, 0.95)],
             {"copy.png": 1.0, "orig.png": max(copy.shape) / max(base.shape)}),
            ("orig.png", [("orig.png", "ok", 1, True, 0.0, False, 1.0), ("copy.png", "ok", 1, False, -20.6, False, 0.95)],
             {"orig.png": 1.0, "copy.png": max(base.shape) / max(copy.shape)}),
            ("small.png", [("small.png", "ok", 1, True, 0.0, False, 1.0), ("orig.png", "ok", 1, False, 20.6, False, 0.95)],
             {"small.png": 1.0, "orig.png": max(copy.shape) / max(base.shape)})):
        t = dup_table(rows)
        t["width"], t["height"] = [sides[p][0] for p in t["path"]], [sides[p][1] for p in t["path"]]
        t["dup_scale"] = [scale[p] for p in t["path"]]
        out = orient(t.assign(keep=t["representative"]), tmp_path, workers=1).set_index("path")
        assert out.loc[kept, "rotation"] == (0.0 if kept == "orig.png" else -20.6), (kept, out)
    assert out.loc["small.png", "orient_source"] == "group"
    monkeypatch.setattr(orient_module, "resample_gap", lambda *args: 0.0)
    out = orient(t.assign(keep=t["representative"]), tmp_path, workers=1).set_index("path")
    assert out.loc["small.png", "rotation"] == 0.0 and out.loc["small.png", "orient_source"] == "", out


def test_dropped_copies_are_not_looked_at(tmp_path, monkeypatch):
    """Only kept images (and the members that decide them) are decoded: copies in the kept
    image's pose and dropped lone images are not, and get no examined confidence."""
    import curate.orient as orient_module

    base = scan_like(12)
    save(tmp_path / "kept.png", base)
    save(tmp_path / "copy1.png", base)
    save(tmp_path / "copy2.png", base[::2, ::2])
    save(tmp_path / "skewed.png", rotate_expand(base, -17.0, "constant"))
    save(tmp_path / "leak.png", scan_like(13))
    t = dup_table([("kept.png", "ok", 1, True, 0.0, False, 1.0),
                   ("copy1.png", "ok", 1, False, 0.0, False, 1.0),
                   ("copy2.png", "ok", 1, False, 0.0, False, 0.97),
                   ("skewed.png", "ok", 1, False, 17.0, False, 0.93),
                   ("leak.png", "ok", 2, True, 0.0, False, 1.0)])
    t["keep"] = [True, False, False, False, False]
    decoded = []
    real = orient_module.decode
    monkeypatch.setattr(orient_module, "decode", lambda path, **kw: decoded.append(Path(path).name) or real(path, **kw))
    out = orient(t, tmp_path, workers=1).set_index("path")
    assert sorted(decoded) == ["kept.png", "skewed.png"]  # the skewed copy decides whether kept is turned
    assert out.loc["kept.png", "rotation"] == 0 and out.loc["skewed.png", "rotation"] == 17.0
    assert out.loc["leak.png", "rotation"] == 0 and np.isnan(out.loc["leak.png", "orient_confidence"])


def _decide(angles: list[float], fits: dict[int, dict], resampled: tuple[int, ...] = ()):
    """The group's odd-angle decision for member 0 (kept) given each member's wedge fits (and
    the members the dups stage marked resampled)."""
    from curate.group_turns import Group
    from curate.orient import _odd_decision

    n = len(angles)
    group = Group(list(range(n)), 0, np.array(angles, float), np.zeros(n, bool), np.ones(n), np.zeros(n, bool),
                   np.array([True] + [False] * (n - 1)), resampled=np.isin(np.arange(n), resampled))
    return _odd_decision(group, [{"skew": None, "fits": fits.get(i, {})} for i in range(n)])


def test_a_kept_image_padded_at_its_one_tested_angle_gets_that_turn():
    turn, _, source, flag, upright, _ = _decide([0.0, 20.0], {0: {20.0: 0.5}, 1: {-20.0: 0.0}})
    assert (turn, source, flag, upright) == (-20.0, "group", "", 1)


def test_a_chance_fit_among_several_tested_angles_is_flagged_not_turned():
    """A straight original tested against many copies fits one angle now and then."""
    turn, _, _, flag, _, _ = _decide([0.0, 20.0, -33.0], {0: {20.0: 0.5, -33.0: 0.1}})
    assert turn == 0.0 and flag == "low-confidence"
    turn, *_ = _decide([0.0, 20.0, -33.0], {0: {20.0: 0.9, -33.0: 0.1}})  # from SUPPORT it is a turn
    assert turn == -20.0


def test_a_copy_whose_wedges_show_the_kept_image_straight_outweighs_a_weaker_fit():
    turn, _, source, flag, _, turned = _decide([0.0, 20.0, -33.0], {0: {20.0: 0.9, -33.0: 0.1}, 2: {33.0: 1.4}})
    assert (turn, source, flag) == (0.0, "", "") and turned == [33.0]


def test_any_copy_at_the_pairs_angle_can_show_the_kept_image_straight():
    """Two copies turned 41 and 41.5 degrees from a kept original: the first's wedges are faint
    (a chance fit of the original beats it), the second's are clear (seed 13: an original turned 41)."""
    turn, _, _, flag, _, turned = _decide([0.0, 41.0, 41.5], {0: {41.0: 0.54}, 1: {-41.0: 0.24}, 2: {-41.5: 1.05}})
    assert (turn, flag) == (0.0, "") and turned == [-41.0]


def test_a_kept_image_is_not_turned_onto_copies_made_from_another_member():
    """The kept image fits wedges at its turn onto a copy, but every copy at that angle is marked
    resampled while the kept one is not: they were turned further (Kaggle-style chains)."""
    assert _decide([0.0, 20.0, 20.5], {0: {20.0: 0.9}}, resampled=(1, 2)) is None  # open: its own skew decides
    assert _decide([0.0, 20.0, 20.5], {0: {20.0: 0.9}}, resampled=(1,))[0] == -20.0  # one is not: it may be upright


def cut_copy(img: np.ndarray, angle: float, zoom: float, fill: int = 0) -> np.ndarray:
    """Kaggle-style: turned and zoomed about the centre on the same canvas, corners filled."""
    h, w = img.shape
    m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle, zoom)
    return cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=fill)


def kaggle_group(tmp_path, kept: str, contrast: float = 1.0, zoom: float = 1.45) -> pd.DataFrame:
    """An original, a copy turned 20 and zoomed in so far that no wedge is left (cut), and that
    copy turned 15 more with wedges; `kept` is the representative. dup_angle and dup_scale as the
    dups stage gives them (onto the representative; content scale against it). contrast: of the
    original's detail (small radiographs resized to 224 px hold little); zoom: the cut copy's."""
    base = scan_like(5).astype(np.float32)
    base = np.clip((base - base.mean()) * contrast + base.mean(), 0, 255).astype(np.uint8)
    save(tmp_path / "orig.png", base)
    cut = cut_copy(base, 20.0, zoom)
    save(tmp_path / "cut.png", cut)
    save(tmp_path / "further.png", cut_copy(cut, 15.0, 1.0))
    # (dup_angle, dup_scale, derived) of each file against the original
    geo = {"orig.png": (0.0, 1.0, ""), "cut.png": (-20.0, zoom, ""), "further.png": (-35.0, zoom, "resampled")}
    return group_table(geo, kept)


def group_table(geo: dict, kept: str) -> pd.DataFrame:
    """One group's dups table, 200x240 files: geo maps each file to (angle, scale, derived)
    against the original; dup_angle and dup_scale come out onto the representative `kept`."""
    a0, s0, _ = geo[kept]
    t = dup_table([(p, "ok", 1, p == kept, a - a0, False, 1.0 if p == kept else 0.93) for p, (a, _, _) in geo.items()])
    t["dup_scale"] = [s / s0 for _, s, _ in geo.values()]
    t["derived"] = ["" if p == kept else d for p, (_, _, d) in geo.items()]
    t["width"], t["height"] = 200, 240
    t["keep"] = t["representative"]
    return t


def test_a_kept_cut_copy_is_turned_onto_the_original_it_was_cut_from(tmp_path):
    """No wedges on the kept copy (zoomed in past its corners), and a copy turned further calls it
    straight by its own wedges; the original in its group shows the picture the copy was cut
    from: the kept copy gets the verified turn onto it."""
    out = orient(kaggle_group(tmp_path, "cut.png"), tmp_path, workers=1).set_index("path")
    assert abs(out.loc["cut.png", "rotation"] + 20.0) <= 0.5, out
    assert out.loc["cut.png", "orient_source"] == "group" and out.loc["cut.png", "orient_flag"] == ""
    assert out.loc["orig.png", "rotation"] == 0  # the original, upright, needs no turn


def test_a_kept_cut_copy_of_a_faint_original_is_turned_onto_it(tmp_path):
    """The original beyond the cut copy's frame holds only ~4 grey levels a pixel that no fill
    explains (as many 224 px Kaggle-style originals do): still picture, not a zoom out's fill."""
    out = orient(kaggle_group(tmp_path, "cut.png", contrast=0.18), tmp_path, workers=1).set_index("path")
    assert abs(out.loc["cut.png", "rotation"] + 20.0) <= 0.5, out


def test_a_kept_cut_copy_is_turned_onto_an_original_whose_picture_beyond_its_frame_is_flat(tmp_path):
    """A faint original beyond a copy cut at 1.3 fits a fill 0.29 (dark, flat radiograph borders
    do so too): still picture, since the copy shows nothing of its own beyond the original's frame."""
    out = orient(kaggle_group(tmp_path, "cut.png", contrast=0.18, zoom=1.3), tmp_path, workers=1).set_index("path")
    assert abs(out.loc["cut.png", "rotation"] + 20.0) <= 0.5, out


def test_a_kept_cut_copy_is_turned_onto_an_original_that_fits_wedges_by_chance(tmp_path, monkeypatch):
    """224 px originals fit wedges at a pair's angle 0.3-0.87 by chance (kaggle seed 13's 28.jpg:
    0.61 against its cut copy's 0.05; here 0.7 against 0.41): beyond the copy's frame the
    original is clearly picture, so its chance fit does not make it the padded one."""
    t = kaggle_group(tmp_path, "cut.png")
    original = cv2.imread(str(tmp_path / "orig.png"), cv2.IMREAD_GRAYSCALE)
    real = orient_module.wedge_fit
    monkeypatch.setattr(orient_module, "wedge_fit", lambda px, deg: 0.7 if np.array_equal(px, original)
                        else real(px, deg))
    out = orient(t, tmp_path, workers=1).set_index("path")
    assert abs(out.loc["cut.png", "rotation"] + 20.0) <= 0.5, out


def measured_as(monkeypatch, img: np.ndarray, fit: float, beyond: tuple[float, float]) -> None:
    """orient measures img's wedges as `fit` and its pixels beyond a member's frame as `beyond`
    (fill, picture): the values a real miss measured, which a synthetic copy does not reproduce."""
    real_fit, real_beyond = orient_module.wedge_fit, orient_module.beyond_fill
    monkeypatch.setattr(orient_module, "wedge_fit", lambda px, deg: fit if np.array_equal(px, img)
                        else real_fit(px, deg))
    monkeypatch.setattr(orient_module, "beyond_fill", lambda px, *frame: beyond if np.array_equal(px, img)
                        else real_beyond(px, *frame))


def near_scale_group(tmp_path, kept: str, zoom: float, fill: int) -> pd.DataFrame:
    """An original and a copy of it turned 20 about the centre at about its scale (zoom within
    CUT_SCALE), its corners filled with `fill`; `kept` is the representative."""
    base = scan_like(5)
    save(tmp_path / "orig.png", base)
    save(tmp_path / "copy.png", cut_copy(base, 20.0, zoom, fill))
    return group_table({"orig.png": (0.0, 1.0, ""), "copy.png": (-20.0, zoom, "")}, kept)


@pytest.mark.parametrize("zoom", [0.985, 1.0, 1.02])
def test_a_kept_copy_at_about_the_originals_scale_is_turned_onto_the_original_its_turn_cut(tmp_path, monkeypatch, zoom):
    """A Kaggle-style chain copy turned at about its original's scale whose mixed fills neither its
    wedges nor its pixels beyond the original's frame show (kaggle 7's 60-rotated1-rotated2-
    rotated1.jpg: 0.30, and 0.57): the turn cut the original's corners off, and beyond the copy's
    frame the original shows them, picture: it gets the turn onto it."""
    t = near_scale_group(tmp_path, "copy.png", zoom, 0)
    copy = cv2.imread(str(tmp_path / "copy.png"), cv2.IMREAD_GRAYSCALE)
    measured_as(monkeypatch, copy, fit=0.27, beyond=(0.57, 0.4))
    out = orient(t, tmp_path, workers=1).set_index("path")
    assert abs(out.loc["copy.png", "rotation"] + 20.0) <= 0.5 and out.loc["copy.png", "orient_source"] == "group", out


@pytest.mark.parametrize("zoom, fill", [(0.985, 0), (1.0, 255), (1.02, 0)])
def test_a_kept_original_is_not_turned_onto_a_copy_at_about_its_scale(tmp_path, zoom, fill):
    """Beyond the original's frame the copy shows its fill, not picture: the original stays."""
    out = orient(near_scale_group(tmp_path, "orig.png", zoom, fill), tmp_path, workers=1).set_index("path")
    assert out.loc["orig.png", "rotation"] == 0 and out.loc["orig.png", "orient_flag"] == "", out


def test_a_kept_copy_is_not_turned_onto_a_sibling_cut_from_the_same_original_at_about_its_scale(tmp_path):
    """Two copies of one original, both zoomed in 1.1, one turned 20 (black corners), the kept one
    -2 (its original no candidate: under GROUP_SNAP). The sibling shows picture beyond the kept
    one's frame, but so does the kept one beyond the sibling's: it was not made from the sibling
    (kaggle 73's 48-rotated9-rotated2.jpg, turned -1.5, was so turned 24 degrees onto a copy)."""
    base = scan_like(5)
    save(tmp_path / "orig.png", base)
    save(tmp_path / "turned.png", cut_copy(base, 20.0, 1.1, 0))
    save(tmp_path / "kept.png", cut_copy(base, -2.0, 1.1, 255))
    geo = {"orig.png": (0.0, 1.0, "resampled"), "turned.png": (-20.0, 1.1, ""), "kept.png": (2.0, 1.1, "")}
    out = orient(group_table(geo, "kept.png"), tmp_path, workers=1).set_index("path")
    assert out.loc["kept.png", "rotation"] == 0, out


def test_a_kept_zoomed_out_copy_with_faint_wedges_is_turned_onto_the_original_its_pad_fits(tmp_path, monkeypatch):
    """A chain copy turned 20 and zoomed out to 0.9 whose mixed fills fit its wedges only 0.6 (under
    SUPPORT) and a fill beyond the original's frame 0.45 (under PAD_SURE; kaggle 7's 34-rotated1-
    rotated1-rotated1.jpg: 0.61 and 0.54), with a copy turned further in the group: the two
    together show it padded around the original, which bears no mark."""
    base = scan_like(5)
    save(tmp_path / "orig.png", base)
    copy = cut_copy(base, 20.0, 0.9, 0)
    save(tmp_path / "out.png", copy)
    save(tmp_path / "further.png", cut_copy(copy, 15.0, 1.0, 255))
    measured_as(monkeypatch, copy, fit=0.6, beyond=(0.45, 1.0))
    geo = {"orig.png": (0.0, 1.0, ""), "out.png": (-20.0, 0.9, ""), "further.png": (-35.0, 0.9, "resampled")}
    out = orient(group_table(geo, "out.png"), tmp_path, workers=1).set_index("path")
    assert abs(out.loc["out.png", "rotation"] + 20.0) <= 0.5 and out.loc["out.png", "orient_source"] == "group", out


@pytest.mark.parametrize("contrast, zoom", [(1.0, 1.45), (0.18, 1.45), (0.18, 1.3)])
def test_a_kept_original_is_not_turned_onto_a_cut_copy_of_it(tmp_path, contrast, zoom):
    out = orient(kaggle_group(tmp_path, "orig.png", contrast, zoom), tmp_path, workers=1).set_index("path")
    assert out.loc["orig.png", "rotation"] == 0 and out.loc["orig.png", "orient_flag"] == "", out


def test_a_kept_right_angle_copy_saved_again_is_turned_onto_the_member_it_was_saved_from(tmp_path):
    """Nothing in the pixels says which of two right-angle poses is upright, but a copy turned
    losslessly and saved again keeps its source's JPEG lattice (curate.resave): kept, it gets the
    turn onto its source; the source kept is left as it is."""
    from curate.imageio import decode
    from curate.messy import jpeg_bytes, sample_dir

    src = sorted((sample_dir() / "fractured").glob("*.jpg"))[0]
    (tmp_path / "orig.jpg").write_bytes(src.read_bytes())
    (tmp_path / "rot.jpg").write_bytes(jpeg_bytes(np.ascontiguousarray(np.rot90(decode(src).pixels, 1))))
    (tmp_path / "mir.jpg").write_bytes(jpeg_bytes(np.ascontiguousarray(np.fliplr(decode(src).pixels))))
    t = dup_table([("orig.jpg", "ok", 3, False, 90.0, False, 0.98), ("rot.jpg", "ok", 3, True, 0.0, False, 1.0)])
    out = orient(t.assign(keep=[False, True]), tmp_path, workers=1).set_index("path")
    assert out.loc["rot.jpg", "rotation"] == -90 and out.loc["rot.jpg", "orient_source"] == "group"
    t = dup_table([("orig.jpg", "ok", 3, True, 0.0, False, 1.0), ("rot.jpg", "ok", 3, False, -90.0, False, 0.98)])
    out = orient(t.assign(keep=[True, False]), tmp_path, workers=1).set_index("path")
    assert out.loc["orig.jpg", "rotation"] == 0 and out.loc["orig.jpg", "orient_flag"] == ""
    # a mirrored copy kept: not turned, flagged mirrored against its source
    t = dup_table([("orig.jpg", "ok", 4, False, 0.0, True, 0.98), ("mir.jpg", "ok", 4, True, 0.0, False, 1.0)])
    out = orient(t.assign(keep=[False, True]), tmp_path, workers=1).set_index("path")
    assert out.loc["mir.jpg", "rotation"] == 0 and out.loc["mir.jpg", "orient_flag"] == "mirrored"


@pytest.mark.parametrize("sparse", [False, True])
def test_wedge_pixels_found_from_the_rows_ends_are_those_of_every_pixel(monkeypatch, sparse):
    rng = np.random.default_rng(3)
    cases = [(int(rng.integers(60, 257)), int(rng.integers(60, 257)), float(rng.choice([-1, 1]) * rng.uniform(3, 44)),
              float(rng.choice([0.0, -1.0, 2.0])), bool(rng.integers(2))) for _ in range(40)]

    def wedges(rows_from):
        monkeypatch.setattr(skew_module, "ROWS_FROM", rows_from)
        return [skew_module._wedges(h, w, d, skew_module._grid(h, w, sparse), 4.0, st, same) for h, w, d, st, same in cases]

    for fast, every in zip(wedges(0), wedges(10 ** 9)):
        assert (fast is None) == (every is None)
        if fast is not None:
            assert all(np.array_equal(x, y) for x, y in zip(fast, every))


def test_a_zoomed_out_copy_is_not_read_as_picture_beyond_the_frame_when_its_scale_is_a_little_off():
    # A film, and a copy of it turned 11 deg and zoomed out to 0.907 with a replicated border. The
    # dups stage verified the copy's scale as 0.8995 (1% off): the copy's border must still read
    # as fill (else the original looks cut from its copy and gets turned onto it), while the film
    # itself, seen beyond the frame of a 10% crop, must still read as picture.
    rng = np.random.default_rng(1)
    film = cv2.GaussianBlur(rng.uniform(0, 255, (224, 224)).astype(np.float32), (0, 0), 1.2)
    film = np.clip((film - film.mean()) * 4 + 128, 0, 255).astype(np.uint8)
    m = cv2.getRotationMatrix2D((111.5, 111.5), 11.0, 0.907)
    copy = cv2.warpAffine(film, m, (224, 224), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    fit, _ = pair_pixels.beyond_fill(copy, 11.0, 0.8995)
    assert fit >= upright.BEYOND_FILL
    fit, picture = pair_pixels.beyond_fill(film, 11.0, 0.8995)
    assert fit < upright.BEYOND_FILL and picture >= upright.PICTURE


def chain_group(tmp_path, steps: list[tuple[float, float]], kept: str) -> pd.DataFrame:
    """Kaggle-style: an original and a chain of copies, each the previous one turned and zoomed
    on the same canvas with black corners (steps: (turn, zoom) each); `kept` the representative.
    The copies after the first are marked resampled, as the dups stage marks copies of copies."""
    img = scan_like(5)
    save(tmp_path / "orig.png", img)
    geo, angle, zoom = {"orig.png": (0.0, 1.0, "")}, 0.0, 1.0
    for k, (turn, z) in enumerate(steps, start=1):
        img = cut_copy(img, turn, z)
        angle, zoom = angle + turn, zoom * z
        save(tmp_path / f"copy{k}.png", img)
        geo[f"copy{k}.png"] = (-angle, zoom, "resampled" + "+fill" * (k > 1))
    return group_table(geo, kept)


def test_a_kept_copy_padded_on_its_canvas_is_turned_onto_the_original(tmp_path):
    """A copy turned 18 degrees on the original's canvas and zoomed out to 0.88 (so the original
    shows the picture larger, as a copy cut from it would), then a copy of it turned 15 more whose
    wedges call it straight: its pixels beyond the original's frame are the turn's fill, so it is
    turned onto the original."""
    out = orient(chain_group(tmp_path, [(18.0, 0.88), (15.0, 0.95)], "copy1.png"), tmp_path, workers=1)
    out = out.set_index("path")
    assert abs(out.loc["copy1.png", "rotation"] + 18.0) <= 0.5, out
    assert out.loc["copy1.png", "orient_source"] == "group"


def test_a_kept_original_is_not_turned_onto_copies_padded_from_it(tmp_path):
    out = orient(chain_group(tmp_path, [(18.0, 0.88), (15.0, 0.95)], "orig.png"), tmp_path, workers=1).set_index("path")
    assert out.loc["orig.png", "rotation"] == 0 and out.loc["orig.png", "orient_flag"] == "", out


def test_a_kept_original_fitting_wedges_by_chance_is_not_turned_onto_its_zoomed_out_copy(tmp_path, monkeypatch):
    """Kaggle seed 73: an original and its one copy, turned 18 degrees on the same canvas and
    zoomed out to 0.88 with black corners (marked fill, so no upright candidate). The original
    fitted wedges at the pair's angle 0.30 by chance, the copy (padded all round, not in a wedge's
    shape) 0.04: those fits are given here. The copy's pixels beyond the original's frame are the
    zoom's fill: the original stands."""
    t = chain_group(tmp_path, [(18.0, 0.88)], "orig.png")
    t["derived"] = ["", "fill"]
    original = cv2.imread(str(tmp_path / "orig.png"), cv2.IMREAD_GRAYSCALE)
    monkeypatch.setattr(orient_module, "wedge_fit", lambda px, deg: 0.3 if np.array_equal(px, original) else 0.04)
    out = orient(t, tmp_path, workers=1).set_index("path")
    assert out.loc["orig.png", "rotation"] == 0 and out.loc["orig.png", "orient_flag"] == "", out
    assert abs(out.loc["copy1.png", "rotation"] + 18.0) <= 0.5  # the copy gets its turn onto the original


def test_a_copy_turned_beyond_45_by_its_chain_gets_the_originals_right_angle_pose(tmp_path):
    """Three turns of 22-25 degrees on a fixed canvas: 70 in all, 20 short of a right angle.
    The original is where the copy was turned from: the whole turn onto it, not the 20 degrees
    to the nearest right angle."""
    out = orient(chain_group(tmp_path, [(25.0, 0.9), (23.0, 0.95), (22.0, 0.95)], "copy3.png"), tmp_path, workers=1)
    out = out.set_index("path")
    assert abs(out.loc["copy3.png", "rotation"] + 70.0) <= 0.5, out


def padded_pair(tmp_path, kept: str, scale_error: float) -> pd.DataFrame:
    """An original and a copy of it turned 14 degrees and zoomed out to 0.93 on the same canvas,
    its border replicated; the copy's dup_scale off by scale_error, as a chain's composed scale
    can be (kaggle seed 1: 0.8702 for a copy zoomed 0.893)."""
    img = scan_like(5)
    h, w = img.shape
    m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), 14.0, 0.93)
    save(tmp_path / "orig.png", img)
    save(tmp_path / "copy.png", cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE))
    return group_table({"orig.png": (0.0, 1.0, ""), "copy.png": (-14.0, 0.93 * (1 + scale_error), "")}, kept)


def test_a_kept_zoomed_out_copy_is_turned_onto_the_original_when_its_scale_is_a_few_percent_off(tmp_path, monkeypatch):
    """No wedges to go by (Kaggle-style copies padded all round often fit none; the fits are
    given): the copy's pixels beyond the original's frame are its zoom's fill, though the verified
    scale puts that frame's edge 2.5% inside the copy's picture."""
    monkeypatch.setattr(orient_module, "wedge_fit", lambda px, deg: 0.05)
    out = orient(padded_pair(tmp_path, "copy.png", -0.025), tmp_path, workers=1).set_index("path")
    assert abs(out.loc["copy.png", "rotation"] + 14.0) <= 0.5, out
    assert out.loc["copy.png", "orient_source"] == "group"


def test_a_kept_original_fitting_wedges_by_chance_is_not_turned_onto_a_zoomed_out_chain_copy(tmp_path, monkeypatch):
    """Kaggle seed 241's original fitted a replicate fill's wedges at -6 by chance (1.05) against a
    three-step chain copy zoomed out to 0.86 and re-toned, whose own wedges fitted ~0: taken as
    padded against it, it was turned 6.4 degrees. A copy turned from a member that shows the
    picture smaller was cut from it too, so that member's pixels beyond the copy's frame are its
    picture; the chain copy's there fit a fill 0.385 (its mixed pad): the original stands. A
    first-generation copy turned 20 (black corners) shows it straight by its own wedges."""
    base = scan_like(5)
    save(tmp_path / "orig.png", base)
    chain = cut_copy(base, 6.4, 0.86, 255)
    save(tmp_path / "chain.png", chain)
    save(tmp_path / "turned.png", cut_copy(base, 20.0, 1.0, 0))
    measured_as(monkeypatch, base, fit=1.05, beyond=(0.0, 20.0))
    measured_as(monkeypatch, chain, fit=0.0, beyond=(0.385, 12.98))
    geo = {"orig.png": (0.0, 1.0, ""), "chain.png": (-6.4, 0.86, "tone"), "turned.png": (-20.0, 1.0, "resampled")}
    out = orient(group_table(geo, "orig.png"), tmp_path, workers=1).set_index("path")
    assert out.loc["orig.png", "rotation"] == 0, out


def test_a_kept_chain_copy_padded_with_black_and_white_is_turned_onto_the_original(tmp_path, monkeypatch):
    """A chain copy: turned 15 and zoomed out to 0.85 with black corners, then turned 12 more and
    zoomed out to 0.9 with white ones. Beyond the original's frame its pad holds both (no one fill
    explains it) and its wedges at the whole turn fit little (given here, as such chains measure):
    two constants are a fill too, so it was padded around the original, which bears no mark."""
    base = scan_like(5)
    save(tmp_path / "orig.png", base)
    first = cut_copy(base, 15.0, 0.85, 0)
    save(tmp_path / "first.png", first)
    second = cut_copy(first, 12.0, 0.9, 255)
    save(tmp_path / "second.png", second)
    monkeypatch.setattr(orient_module, "wedge_fit", lambda px, deg: 0.1)
    geo = {"orig.png": (0.0, 1.0, ""), "first.png": (-15.0, 0.85, "resampled"),
           "second.png": (-27.0, 0.85 * 0.9, "")}
    out = orient(group_table(geo, "second.png"), tmp_path, workers=1).set_index("path")
    assert abs(out.loc["second.png", "rotation"] + 27.0) <= 0.5 and out.loc["second.png", "orient_source"] == "group", out


def _onto(monkeypatch, angles: list[float], shown: dict[tuple[int, int], float],
          blurred: dict[tuple[int, int], float] | None = None):
    """onto_upright for member 0 (kept, the representative; every member a plain, unmarked copy
    verified at 1.0) when x is shown turned from u exactly for the pairs (x, u) in `shown`, and
    by the resampling (see upright_sources) for those in `blurred` too."""
    from curate.group_turns import Group
    from curate.upright import onto_upright

    n = len(angles)
    group = Group(list(range(n)), 0, np.array(angles, float), np.zeros(n, bool), np.ones(n), np.zeros(n, bool),
                   np.array([True] + [False] * (n - 1)), plain=np.ones(n, bool), unmarked=np.ones(n, bool))

    def turned_from(g, found, x, u, content, dims, resampling=False):
        return shown.get((x, u)) or (blurred or {}).get((x, u), 0.0) * resampling

    monkeypatch.setattr(upright, "_turned_from", turned_from)
    return onto_upright(group, [{"fits": {}, "beyond": {}, "gaps": {}}] * n, np.ones(n), [None] * n)


def test_the_resampling_shows_the_source_only_where_the_frames_show_none(monkeypatch):
    """The kept copy (0) is softer than the original (2, turned 35 from it) and than a sibling
    made in fewer steps (1, turned 15): the resampling alone shows both, and the sibling softer
    than the original, so the chain starts at the original. Where the frames show the sibling,
    they decide (kaggle 1's 46-rotated1-rotated3.jpg: a sibling one step nearer the original is
    as sharp against it as a source)."""
    blurred = {(0, 1): 0.2, (0, 2): 0.3, (1, 2): 0.2}
    turn, _, source, _, upright, _, _ = _onto(monkeypatch, [0.0, 15.0, 35.0], {}, blurred)
    assert (turn, source, upright) == (-35.0, "group", 2)
    turn, _, source, _, upright, _, _ = _onto(monkeypatch, [0.0, 15.0, 35.0], {(0, 1): 0.9}, blurred)
    assert (turn, source, upright) == (-15.0, "group", 1)


def test_a_kept_copy_turned_from_a_turned_copy_gets_the_turn_onto_the_chains_original(monkeypatch):
    """Kaggle-style chain: the kept copy (member 0) was made from a copy turned 15 from it (1),
    itself made from the original (2, turned 35 from the kept one). The kept copy is shown turned
    from the copy only (kaggle 2's 14-rotated1-rotated1.jpg: its original's pad fit 0.36), but
    that copy is shown turned from the original: the chain starts there, and the kept copy gets
    the whole turn onto it, not the 15 degrees onto its parent."""
    turn, _, source, flag, upright, _, _ = _onto(monkeypatch, [0.0, 15.0, 35.0], {(0, 1): 0.97, (1, 2): 0.9})
    assert (turn, source, flag, upright) == (-35.0, "group", "", 2)


def test_a_kept_copy_is_not_turned_onto_a_copy_turned_from_a_member_at_its_own_pose(monkeypatch):
    """The kept copy (0) stands 1.2 degrees from the original (1: too close to be a candidate),
    and is shown turned from a sibling turned 20 (2: kaggle 2's 32-rotated1-rotated1.jpg, turned
    -0.6, against 32-rotated10.jpg, turned 20.7), but that sibling is shown turned from the
    original: the chain starts where the kept copy stands, so it is not turned."""
    turn, _, source, flag, upright, _, _ = _onto(monkeypatch, [0.0, -1.2, 20.0], {(0, 2): 0.9, (2, 1): 0.9})
    assert (turn, source, flag, upright) == (0.0, "", "", None)


def frame_measured(monkeypatch, img: np.ndarray, single: tuple[float, float], mixed: tuple[float, float]) -> None:
    """orient measures img's pixels beyond any member's frame as `single` with one fill and as
    `mixed` where two constants count as a fill too (beyond_fill's `mixed`)."""
    real = orient_module.beyond_fill

    def measured(px, deg, scale, reach=pair_pixels.SCALE_ERROR, two=False):
        return (mixed if two else single) if np.array_equal(px, img) else real(px, deg, scale, reach, two)

    monkeypatch.setattr(orient_module, "beyond_fill", measured)


def test_a_kept_cut_copy_is_turned_onto_an_original_whose_wedge_fit_its_picture_belies(tmp_path, monkeypatch):
    """A copy turned 20 and zoomed in 1.3 (no wedges, nothing beyond the original's frame); the
    original fits wedges at the pair's angle 0.45 by chance, and beyond the copy's frame it fits
    a fill 0.15 with 8 grey levels a pixel left (two constants no better): not clearly picture
    (CUT_SURE), but it was not padded around the copy, so its wedges are a chance fit and the
    copy was cut from it (kaggle 31's 62-rotated1-rotated1.jpg against 62.jpg: 0.315, 0.16)."""
    t = kaggle_group(tmp_path, "cut.png", zoom=1.3)
    original = cv2.imread(str(tmp_path / "orig.png"), cv2.IMREAD_GRAYSCALE)
    real = orient_module.wedge_fit
    monkeypatch.setattr(orient_module, "wedge_fit", lambda px, deg: 0.45 if np.array_equal(px, original)
                        else real(px, deg))
    frame_measured(monkeypatch, original, single=(0.15, 8.0), mixed=(0.15, 8.0))
    out = orient(t, tmp_path, workers=1).set_index("path")
    assert abs(out.loc["cut.png", "rotation"] + 20.0) <= 0.5 and out.loc["cut.png", "orient_source"] == "group", out


@pytest.mark.parametrize("fit, turned", [(0.44, True), (0.9, False)])
def test_a_chance_wedge_fit_gives_way_to_picture_beyond_the_frame_that_fits_under_beyond_loose(tmp_path, monkeypatch, fit, turned):
    """Kaggle 37's 56-rotated1-rotated1.jpg kept: turned 20 and zoomed in 1.3; its original fits
    wedges at the pair's angle 0.44 by chance, and beyond the copy's frame a fill 0.29 with 8.6
    grey levels a pixel left (two constants no better): over BEYOND_FILL, under BEYOND_LOOSE, as
    dark, flat borders fit, so picture, not a pad around the copy; the copy is turned onto it.
    Wedges that confirm a turn (SUPPORT) still mark the original as the padded one."""
    t = kaggle_group(tmp_path, "cut.png", zoom=1.3)
    original = cv2.imread(str(tmp_path / "orig.png"), cv2.IMREAD_GRAYSCALE)
    real = orient_module.wedge_fit
    monkeypatch.setattr(orient_module, "wedge_fit", lambda px, deg: fit if np.array_equal(px, original)
                        else real(px, deg))
    frame_measured(monkeypatch, original, single=(0.29, 8.6), mixed=(0.29, 8.6))
    out = orient(t, tmp_path, workers=1).set_index("path")
    if turned:
        assert abs(out.loc["cut.png", "rotation"] + 20.0) <= 0.5 and out.loc["cut.png", "orient_source"] == "group", out
    else:
        assert out.loc["cut.png", "rotation"] == 0, out


def test_a_kept_original_is_not_turned_onto_a_chain_copy_whose_pad_holds_two_fills(tmp_path, monkeypatch):
    """Kaggle 7's 58.jpg: its chain copy (white corners, then black, zoomed out to 0.78 and
    turned 3.9 in all) fits wedges at the pair's angle 0.53 and its pixels beyond the original's
    frame fit one fill 0.14 with 19.6 grey levels left, but two constants 0.60: the pad of two
    steps, so the copy was padded around the original, and the original stands."""
    base = scan_like(5)
    save(tmp_path / "orig.png", base)
    chain = cut_copy(cut_copy(base, 13.0, 0.92, 255), -16.9, 0.85, 0)
    save(tmp_path / "chain.png", chain)
    monkeypatch.setattr(orient_module, "wedge_fit", lambda px, deg: 0.53 if np.array_equal(px, chain) else 0.26)
    frame_measured(monkeypatch, chain, single=(0.14, 19.6), mixed=(0.60, 2.1))
    geo = {"orig.png": (0.0, 1.0, ""), "chain.png": (3.9, 0.78, "")}
    out = orient(group_table(geo, "orig.png"), tmp_path, workers=1).set_index("path")
    assert out.loc["orig.png", "rotation"] == 0, out


def test_a_kept_zoomed_out_copy_is_turned_onto_an_original_showing_picture_where_its_wedges_would_be(tmp_path, monkeypatch):
    """A chain copy zoomed out to 0.9 and turned 30: its wedges fit 0.5 and its pad beyond the
    original's frame 0.33 (under PAD_BACKED: kaggle 73's 33-rotated2-rotated1-rotated1.jpg, 0.66
    and 0.40); beyond the copy's frame the original's corners hold 10 grey levels a pixel no fill
    explains: it was not cut from the copy, so the copy was padded around it, whatever a copy
    turned 15 further says by its wedges."""
    base = scan_like(5)
    save(tmp_path / "orig.png", base)
    copy = cut_copy(base, 30.0, 0.9, 0)
    save(tmp_path / "copy.png", copy)
    save(tmp_path / "further.png", cut_copy(copy, 15.0, 1.0, 255))
    real = orient_module.wedge_fit
    monkeypatch.setattr(orient_module, "wedge_fit", lambda px, deg: 0.5 if np.array_equal(px, copy)
                        else 0.05 if np.array_equal(px, base) else real(px, deg))
    frame_measured(monkeypatch, copy, single=(0.33, 4.0), mixed=(0.33, 4.0))
    frame_measured(monkeypatch, base, single=(0.05, 10.0), mixed=(0.05, 10.0))
    geo = {"orig.png": (0.0, 1.0, ""), "copy.png": (-30.0, 0.9, ""), "further.png": (-45.0, 0.9, "resampled")}
    out = orient(group_table(geo, "copy.png"), tmp_path, workers=1).set_index("path")
    assert abs(out.loc["copy.png", "rotation"] + 30.0) <= 0.5 and out.loc["copy.png", "orient_source"] == "group", out


def test_a_kept_zoomed_out_copy_is_turned_onto_an_original_whose_wedge_fit_is_under_support(tmp_path, monkeypatch):
    """Kaggle 73's 27-rotated1.jpg kept: turned 18 and zoomed out to 0.88 with black corners, its
    wedges fit 0.04, its original's 0.30 by chance, and the original's corners beyond the copy's
    frame are dark and flat (no picture to go by: given here). The copy's pixels beyond the
    original's frame are its zoom's fill (from PAD_SURE, which no original reaches beyond a copy's
    frame): a wedge fit under SUPPORT does not outweigh that, so the copy is turned onto it."""
    t = chain_group(tmp_path, [(18.0, 0.88)], "copy1.png")
    t["derived"] = ["", ""]
    original = cv2.imread(str(tmp_path / "orig.png"), cv2.IMREAD_GRAYSCALE)
    monkeypatch.setattr(orient_module, "wedge_fit", lambda px, deg: 0.3 if np.array_equal(px, original) else 0.04)
    frame_measured(monkeypatch, original, single=(0.3, 1.0), mixed=(0.3, 1.0))
    out = orient(t, tmp_path, workers=1).set_index("path")
    assert abs(out.loc["copy1.png", "rotation"] + 18.0) <= 0.5 and out.loc["copy1.png", "orient_source"] == "group", out


def test_a_kept_original_is_not_read_as_cut_from_a_copy_whose_wedges_reach_the_skew_bar(tmp_path, monkeypatch):
    """Kaggle 829's upright 7.jpg: its copy turned -12.3 and zoomed out to 0.872 (border
    replicated) fits wedges at the pair's angle 1.33, the original 0.21 by chance. The verified
    turn and scale, 1.1 degrees and 1.2% off, put the original's bright edge band beyond its frame
    in the copy, so the copy's pixels there read as picture (0.08, 19 grey levels left; the
    original's beyond the copy's frame 0.335, none left: the values measured, given here). Wedges
    that reach the skew search's own bar are no chance fit: the copy was padded around the
    original, which stands (it was turned -13.4 onto the copy)."""
    base = scan_like(5)
    save(tmp_path / "orig.png", base)
    h, w = base.shape
    m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), -12.3, 0.872)
    copy = cv2.warpAffine(base, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    save(tmp_path / "copy.png", copy)
    measured_as(monkeypatch, copy, fit=1.33, beyond=(0.081, 18.98))
    measured_as(monkeypatch, base, fit=0.21, beyond=(0.335, 0.0))
    geo = {"orig.png": (0.0, 1.0, ""), "copy.png": (12.3, 0.872, "")}
    out = orient(group_table(geo, "orig.png"), tmp_path, workers=1).set_index("path")
    assert out.loc["orig.png", "rotation"] == 0, out
    assert abs(out.loc["copy.png", "rotation"] - 12.3) <= 0.5, out  # the copy still gets its turn back


def test_a_kept_original_fitting_wedges_by_chance_is_not_turned_onto_a_copy_cut_from_it(tmp_path, monkeypatch):
    """Kaggle 829's upright 66.jpg: its one copy at an odd angle, turned 8 and zoomed in 1.2 (no
    fill left: wedges 0.05), and the original fitting wedges at the pair's angle 0.38 by chance
    (given here). Under SUPPORT, and the original shows picture of its own beyond the copy's frame
    (measured): it was not made from the copy, so its fit is a chance one and it stands."""
    base = scan_like(5)
    save(tmp_path / "orig.png", base)
    save(tmp_path / "copy.png", cut_copy(base, 8.0, 1.2))
    monkeypatch.setattr(orient_module, "wedge_fit", lambda px, deg: 0.38 if np.array_equal(px, base) else 0.05)
    geo = {"orig.png": (0.0, 1.0, ""), "copy.png": (-8.0, 1.2, "tone")}
    out = orient(group_table(geo, "orig.png"), tmp_path, workers=1).set_index("path")
    assert out.loc["orig.png", "rotation"] == 0 and out.loc["orig.png", "orient_flag"] == "", out


@pytest.mark.parametrize("angle, zoom", [(20.0, 1.3), (-12.0, 0.9), (8.0, 1.0)])
def test_resample_gap_says_which_of_two_members_was_resampled_from_the_other(angle, zoom):
    """A copy turned and zoomed (linear interpolation) put back onto its original is resampled
    twice: the original is the sharper, whichever way round the pair is asked."""
    base = scan_like(5)
    copy = cut_copy(base, angle, zoom)
    assert pair_pixels.resample_gap(copy, base, False, False, -angle, 1 / zoom) >= upright.RESAMPLED_GAP
    assert pair_pixels.resample_gap(base, copy, False, False, angle, zoom) <= -upright.RESAMPLED_GAP


@pytest.mark.parametrize("kept, rotation", [("cut.png", -20.0), ("orig.png", 0.0)])
def test_a_copy_whose_frames_say_nothing_is_turned_onto_the_original_it_was_resampled_from(tmp_path, monkeypatch,
                                                                                           kept, rotation):
    """A copy turned 20 and zoomed in 1.3: no wedges left, and beyond its frame the original holds
    a dark, flat border (fill 0.25, 1 grey level a pixel left: as a zoom out's fill would), so
    neither frame says which was cut from which (kaggle 1-73: 18 such misses). The copy is blurred
    by its resampling: kept, it is turned onto the original; the original kept stands."""
    base = scan_like(5)
    save(tmp_path / "orig.png", base)
    save(tmp_path / "cut.png", cut_copy(base, 20.0, 1.3))
    measured_as(monkeypatch, base, fit=0.0, beyond=(0.25, 1.0))
    t = group_table({"orig.png": (0.0, 1.0, ""), "cut.png": (-20.0, 1.3, "")}, kept)
    out = orient(t, tmp_path, workers=1).set_index("path")
    assert abs(out.loc[kept, "rotation"] - rotation) <= 0.5, out
    assert out.loc[kept, "orient_source"] == ("group" if rotation else ""), out


@pytest.mark.parametrize("contrast, seed", [(0.08, 5), (0.1, 7)])
def test_resample_gap_reads_a_dark_flat_original_as_the_source_of_its_zoomed_copy(contrast, seed):
    """Kaggle 443's upright 15.jpg: dark (mean 34) and almost flat, so its finest detail is
    mostly each file's rounding to whole grey levels. Against its copy zoomed in 1.245 the
    original must still read as the source (a float placement, smoother than any saved file,
    read it as made from the copy)."""
    b = scan_like(seed).astype(np.float32)
    base = np.clip(np.rint((b - b.mean()) * contrast + 34), 0, 255).astype(np.uint8)
    copy = cut_copy(base, -20.0, 1.245)
    assert pair_pixels.resample_gap(base, copy, False, False, -20.0, 1.245) < 0


@pytest.mark.parametrize("seed", [5, 11])
def test_resample_gap_reads_a_dark_flat_original_as_the_source_of_its_copy_with_white_wedges(seed):
    """The demo's upright 64.jpg (mean 31): its copy, turned with white wedges and re-saved as
    JPEG, put back onto the original's canvas draws its wedges' edge into the canvas's edge rows
    as a sharp line, which on a dark, flat picture outweighed the copy's blur (+0.19 the wrong
    way): the comparison leaves the canvas's edge out."""
    b = scan_like(seed, (224, 224)).astype(np.float32)
    base = np.clip(np.rint((b - b.mean()) * 0.05 + 31), 0, 255).astype(np.uint8)
    copy = cut_copy(base, 20.0, 1.0, 255)
    copy = cv2.imdecode(cv2.imencode(".jpg", copy, [cv2.IMWRITE_JPEG_QUALITY, 75])[1], cv2.IMREAD_GRAYSCALE)
    assert pair_pixels.resample_gap(base, copy, False, False, 20.0, 1.0) <= -upright.RESAMPLED_GAP


@pytest.mark.parametrize("angle, mirrored, shrink", [(21.0, False, 1.0), (-33.0, False, 1.0), (17.0, True, 1.0),
                                                     (21.0, False, 0.8)])
def test_resample_gap_reads_a_turned_copy_on_a_grown_canvas_as_made_from_its_original(angle, mirrored, shrink):
    """curate.messy's arbitrary turns grow the canvas to hold the whole picture, its centre at
    the canvas's centre (mirrored first, or shrunk after, too). Put onto each other's frames
    centre onto centre, the two line up and the original reads as the source; placed about its
    own centre only, the copy's picture lay off the original's and no claim was made."""
    base = scan_like(11)
    copy = rotate_expand(np.ascontiguousarray(base[:, ::-1]) if mirrored else base, angle, "constant")
    copy = cv2.resize(copy, None, fx=shrink, fy=shrink, interpolation=cv2.INTER_AREA)
    turn = angle if mirrored else -angle  # brings the copy, un-mirrored, onto the original (its dup_angle)
    assert pair_pixels.resample_gap(base, copy, False, mirrored, -turn, shrink) <= -upright.RESAMPLED_GAP
    assert pair_pixels.resample_gap(copy, base, mirrored, False, turn, 1 / shrink) >= upright.RESAMPLED_GAP


def test_a_resample_gap_is_measured_at_the_scale_between_the_decodes(tmp_path, monkeypatch):
    """The dups stage's content scales are between decodes shrunk to VERIFY_SIDE, orient's
    decodes to DECODE_SIDE: a 240 px original and its copy turned on a 296 px canvas (the same
    pixel scale) are both shrunk to 192 px there (content scale 1.23), but here only the copy, to
    256 px: here the original shows the picture 296 / 256 times as large as the copy."""
    base = scan_like(11)
    save(tmp_path / "orig.png", base)
    save(tmp_path / "copy.png", rotate_expand(base, 21.0, "constant"))
    seen = []
    monkeypatch.setattr(orient_module, "resample_gap", lambda *args: seen.append(args[-1]) or 0.0)
    orient_module._gap_item((str(tmp_path / "copy.png"), str(tmp_path / "orig.png"), False, False, -21.0, 296 / 240))
    assert seen and abs(seen[0] - 296 / 256) < 0.005, seen


def test_resample_gap_makes_no_claim_between_members_of_very_different_scales():
    """Magnified twice, a copy's finest detail is its own JPEG noise, not the picture's: no claim
    (kaggle 43's upright 11.jpg measured 0.23 the wrong way against its copy zoomed in 2.08)."""
    base = scan_like(5)
    copy = cut_copy(base, 20.0, 2.0)
    assert pair_pixels.resample_gap(base, copy, False, False, 20.0, 2.0) == 0.0


def test_a_pairs_wedge_test_reuses_the_geometry_of_a_nearby_turn_of_the_same_image_size():
    # wedge_fit tests a pair's turn, known to about a degree, from the nearest TEST_GRID point:
    # pairs of one image size turned alike meet the same wedge geometry again instead of
    # making it anew, and a turned scan's wedges still fit at its turn
    skewed = rotate_expand(scan_like(173), 17.33, "constant")
    first = skew_module.wedge_fit(skewed, 17.33)
    assert first >= upright.SUPPORT
    made = skew_module._sparse_wedges.cache_info().misses
    again = skew_module.wedge_fit(skewed, 17.31)
    assert skew_module._sparse_wedges.cache_info().misses == made
    assert again == first
